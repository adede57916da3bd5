//! Money on the wire: [`Decimal`] read from and written as JSON numbers.
//!
//! DHMAD sends amounts as JSON numbers (`300`, `8.4`). We never do arithmetic on `f64`:
//!
//! - reading, a number is turned into a `Decimal` through its shortest decimal text, so `8.4`
//!   becomes exactly `8.4` (not `8.4000000000000003552…`); a JSON string such as `"8.4"` is
//!   accepted too, defensively;
//! - writing, a whole amount is written as an integer (`300`, as JavaScript's `JSON.stringify`
//!   does, so bytes we sign match what DHMAD would send) and any other amount as the nearest
//!   `f64`, whose shortest form is the decimal itself for every realistic amount.
//!
//! Use it as `#[serde(with = "dhmad::money")]` on `Decimal` fields and
//! `#[serde(default, with = "dhmad::money::option")]` on `Option<Decimal>` fields.
//!
//! ```
//! use rust_decimal::Decimal;
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Fee {
//!     #[serde(with = "dhmad::money")]
//!     amount: Decimal,
//! }
//! let fee: Fee = serde_json::from_str(r#"{"amount":8.4}"#).unwrap();
//! assert_eq!(fee.amount, Decimal::new(84, 1));
//! assert_eq!(serde_json::to_string(&fee).unwrap(), r#"{"amount":8.4}"#);
//! let whole = Fee { amount: Decimal::new(30000, 2) };
//! assert_eq!(serde_json::to_string(&whole).unwrap(), r#"{"amount":300}"#);
//! ```

use std::fmt;
use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Writes `d` as a JSON number: an integer when it is whole, else the nearest `f64`.
pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    let n = d.normalize();
    if n.scale() == 0 {
        if let Some(i) = n.to_i64() {
            return s.serialize_i64(i);
        }
    }
    // Parsing the decimal text is correctly rounded, unlike dividing the mantissa.
    let f = f64::from_str(&n.to_string()).map_err(serde::ser::Error::custom)?;
    s.serialize_f64(f)
}

/// Reads a JSON number (or a numeric string) into a `Decimal`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    d.deserialize_any(DecimalVisitor { strict: false })
}

/// Amounts in what is sent to DHMAD: written as [`serialize`] does; read (by the sandbox) as
/// JSON numbers only, as DHMAD documents money. A string (`"49.900"`, how `rust_decimal`
/// writes itself by default) is refused, so an integration that sends one learns it locally.
pub mod request {
    use super::*;

    pub use super::serialize;

    /// Reads a JSON number into a `Decimal`; a string is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        d.deserialize_any(DecimalVisitor { strict: true })
    }

    /// The same for `Option<Decimal>`.
    pub mod option {
        use super::super::*;

        pub use super::super::option::serialize;

        /// Reads `null` as `None` and a JSON number as `Some`; a string is an error.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
            d.deserialize_option(option::OptionVisitor { strict: true })
        }
    }
}

struct DecimalVisitor {
    /// JSON numbers only (no numeric strings).
    strict: bool,
}

impl Visitor<'_> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount as a JSON number")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        if !v.is_finite() {
            return Err(E::custom("amount is not a finite number"));
        }
        // `Display` of an f64 is its shortest round-tripping decimal text: 8.4 → "8.4".
        Decimal::from_str(&v.to_string())
            .map(|d| d.normalize())
            .map_err(|_| E::custom(format_args!("amount {v} is out of range")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        if self.strict {
            return Err(E::invalid_type(de::Unexpected::Str(v), &self));
        }
        let t = v.trim();
        Decimal::from_str(t)
            .or_else(|_| Decimal::from_scientific(t))
            .map_err(|_| E::custom(format_args!("invalid amount {v:?}")))
    }
}

/// The same for `Option<Decimal>`: `null` and (with `#[serde(default)]`) absence are `None`.
pub mod option {
    use super::*;

    /// Writes `None` as `null`, `Some` as [`super::serialize`] does.
    pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Reads `null` as `None` and a number (or numeric string) as `Some`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        d.deserialize_option(OptionVisitor { strict: false })
    }

    pub(super) struct OptionVisitor {
        pub(super) strict: bool,
    }

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<Decimal>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an amount as a JSON number, or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(DecimalVisitor {
                strict: self.strict,
            })
            .map(Some)
        }
    }
}
