//! ISO 8601 timestamps as DHMAD writes them.
//!
//! DHMAD's examples use both `2026-07-01T09:00:00Z` and `2026-07-01T09:00:00.000Z`; both parse.
//! We always write the JavaScript `toISOString()` form (UTC, milliseconds), which is what a
//! Node.js server emits.

use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
use time::{
    format_description::well_known::Rfc3339, macros::format_description, OffsetDateTime, UtcOffset,
};

/// Parses an RFC 3339 / ISO 8601 timestamp, with or without fractional seconds.
///
/// ```
/// let a = dhmad::iso::parse("2026-07-01T09:00:00Z").unwrap();
/// let b = dhmad::iso::parse("2026-07-01T09:00:00.000Z").unwrap();
/// assert_eq!(a, b);
/// ```
pub fn parse(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s.trim(), &Rfc3339)
}

/// Formats a timestamp as `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC.
///
/// ```
/// let t = dhmad::iso::parse("2026-07-01T10:00:00+01:00").unwrap();
/// assert_eq!(dhmad::iso::format(t), "2026-07-01T09:00:00.000Z");
/// ```
pub fn format(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(UtcOffset::UTC)
        .format(&fmt)
        .expect("a UTC timestamp always formats")
}

/// Serde adapter for `OffsetDateTime` fields.
pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*t))
}

/// Serde adapter for `OffsetDateTime` fields.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).map_err(D::Error::custom)
}

/// Serde adapter for `Option<OffsetDateTime>` fields (`null` and absent both mean `None`).
pub mod option {
    use super::*;

    /// Serializes `None` as `null`.
    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format(*t)),
            None => s.serialize_none(),
        }
    }

    /// Accepts a string, `null`, or (with `#[serde(default)]`) an absent field.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) if !s.is_empty() => parse(&s).map(Some).map_err(D::Error::custom),
            _ => Ok(None),
        }
    }
}
