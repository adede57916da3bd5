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

/// A field that may be left out or be `null`, told apart: `Some(None)` for `null`, `Some(Some(v))`
/// for a value, and (with `#[serde(default)]`) `None` when it is missing. Use as
/// `#[serde(default, deserialize_with = "crate::nullable::present")]`.
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
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

/// A whole number whatever its JSON form (`5`, `5.0`, `"5"`), else `None`.
fn whole(v: &serde_json::Value) -> Option<u64> {
    let n = match v {
        serde_json::Value::Number(n) => n.clone(),
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    })
}

/// A count of days, hours or rounds: a whole number in `u32` whatever its JSON form (`5`,
/// `5.0` or `"5"`; the contract says "number"), else `None`. Use as
/// `#[serde(default, deserialize_with = "crate::nullable::count")]`.
pub(crate) fn count<'de, D>(d: D) -> Result<Option<u32>, D::Error>
where
    D: Deserializer<'de>,
{
    let v = serde_json::Value::deserialize(d)?;
    Ok(whole(&v).and_then(|w| u32::try_from(w).ok()))
}

/// A whole number in `u64` in any JSON form, 0 when missing or unreadable.
pub(crate) fn whole_or_zero<'de, D>(d: D) -> Result<u64, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(whole(&serde_json::Value::deserialize(d)?).unwrap_or(0))
}

/// [`count`], with 0 for a missing or unreadable one.
pub(crate) fn count_or_zero<'de, D>(d: D) -> Result<u32, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(count(d)?.unwrap_or(0))
}
