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
/// An instant whose UTC date falls outside the years 0000–9999 (possible from an input such as
/// `9999-12-31T23:59:59-01:00`) is written as the nearest representable one, so that what is
/// written always parses back.
///
/// ```
/// let t = dhmad::iso::parse("2026-07-01T10:00:00+01:00").unwrap();
/// assert_eq!(dhmad::iso::format(t), "2026-07-01T09:00:00.000Z");
/// let edge = dhmad::iso::parse("9999-12-31T23:59:59-01:00").unwrap();
/// assert_eq!(dhmad::iso::format(edge), "9999-12-31T23:59:59.999Z");
/// let early = dhmad::iso::parse("0000-01-01T00:30:00+01:00").unwrap();
/// assert_eq!(dhmad::iso::format(early), "0000-01-01T00:00:00.000Z");
/// ```
pub fn format(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    let first = time::macros::datetime!(0000-01-01 00:00 UTC);
    let last = time::macros::datetime!(9999-12-31 23:59:59.999 UTC);
    let utc = t
        .checked_to_offset(UtcOffset::UTC)
        .unwrap_or(if t < first { first } else { last });
    utc.clamp(first, last)
        .format(&fmt)
        .expect("a UTC timestamp within years 0000-9999 always formats")
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

/// [`option`] for a date whose form DHMAD does not state (`proofInfo`'s keys, §2.1): one that
/// does not read as a timestamp (a number of milliseconds, an object) is `None`, where it
/// would make the whole escrow, and with it a webhook or a page of the list, unreadable.
pub mod lenient_option {
    use super::*;

    pub use super::option::serialize;

    /// A timestamp string as [`option`] reads it; anything else is `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => parse(&s).ok(),
            _ => None,
        })
    }
}
