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
