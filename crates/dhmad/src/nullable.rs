//! `null` read as the type's default, for collection and text fields DHMAD may send as `null`
//! on some endpoints and omit on others.

use serde::{Deserialize, Deserializer};

/// Use as `#[serde(default, deserialize_with = "crate::nullable::or_default")]`.
pub(crate) fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The field as `T`, or `None` when it is `null` or of another shape. For fields the shop reads
/// as hints only: one odd value there must not make a whole escrow, and with it a webhook,
/// unreadable. Use as `#[serde(default, deserialize_with = "crate::nullable::lenient")]`.
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// A count of days, hours or rounds: a whole number in `u32` whatever its JSON form (`5` or
/// `5.0`; the contract says "number"), else `None`. Use as
/// `#[serde(default, deserialize_with = "crate::nullable::count")]`.
pub(crate) fn count<'de, D>(d: D) -> Result<Option<u32>, D::Error>
where
    D: Deserializer<'de>,
{
    let serde_json::Value::Number(n) = serde_json::Value::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
            .map(|f| f as u64)
    });
    Ok(whole.and_then(|w| u32::try_from(w).ok()))
}

/// [`count`], with 0 for a missing or unreadable one.
pub(crate) fn count_or_zero<'de, D>(d: D) -> Result<u32, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(count(d)?.unwrap_or(0))
}
