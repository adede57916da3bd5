//! Bound parameters as text: the binary formats sqlx sends, read as Postgres would print them.

use anyhow::{bail, Context};

pub(super) fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    b.get(at..at + 4)
        .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

pub(super) struct Reader<'a> {
    pub(super) b: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn bytes(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        let s = self
            .b
            .get(self.at..self.at + n)
            .context("message shorter than announced")?;
        self.at += n;
        Ok(s)
    }
    pub(super) fn u8(&mut self) -> anyhow::Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    pub(super) fn i16(&mut self) -> anyhow::Result<i16> {
        let s = self.bytes(2)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }
    pub(super) fn i32(&mut self) -> anyhow::Result<i32> {
        let s = self.bytes(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub(super) fn u32(&mut self) -> anyhow::Result<u32> {
        Ok(self.i32()? as u32)
    }
    pub(super) fn cstr(&mut self) -> anyhow::Result<String> {
        let rest = &self.b[self.at.min(self.b.len())..];
        let end = rest
            .iter()
            .position(|b| *b == 0)
            .context("unterminated string")?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.at += end + 1;
        Ok(s)
    }
}

/// The SQL type name of a built-in OID, for a cast; `None` for others (enums, domains: the
/// server infers them from the statement, as it did for the storefront).
pub(super) fn type_name(oid: u32) -> Option<&'static str> {
    Some(match oid {
        16 => "boolean",
        17 => "bytea",
        20 => "bigint",
        21 => "smallint",
        23 => "integer",
        25 => "text",
        114 => "json",
        700 => "real",
        701 => "double precision",
        1043 => "varchar",
        1082 => "date",
        1114 => "timestamp",
        1184 => "timestamptz",
        1700 => "numeric",
        2950 => "uuid",
        3802 => "jsonb",
        1009 => "text[]",
        _ => return None,
    })
}

/// A parameter's value as Postgres would read it in text form.
pub(super) fn decode(oid: u32, format: i16, v: &[u8]) -> anyhow::Result<String> {
    let text =
        || String::from_utf8(v.to_vec()).map_err(|_| anyhow::anyhow!("oid {oid}: not UTF-8"));
    if format == 0 {
        return text();
    }
    let int = |n: usize| -> anyhow::Result<i64> {
        if v.len() != n {
            bail!("oid {oid}: {} bytes, expected {n}", v.len());
        }
        Ok(v.iter().fold(0i64, |acc, b| (acc << 8) | i64::from(*b))
            - if n < 8 && v[0] & 0x80 != 0 {
                1i64 << (8 * n)
            } else {
                0
            })
    };
    let postgres_epoch_micros = 946_684_800_i128 * 1_000_000;
    Ok(match oid {
        16 => (v.first() == Some(&1)).to_string(),
        20 => int(8)?.to_string(),
        26 => (int(4)? as u32).to_string(),
        21 => int(2)?.to_string(),
        23 => int(4)?.to_string(),
        700 => f32::from_bits(int(4)? as u32).to_string(),
        701 => f64::from_bits(int(8)? as u64).to_string(),
        17 => format!(
            "\\x{}",
            v.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        2950 => {
            if v.len() != 16 {
                bail!("uuid of {} bytes", v.len());
            }
            let h: String = v.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        }
        1114 | 1184 => {
            let micros = i128::from(int(8)?) + postgres_epoch_micros;
            let t = time::OffsetDateTime::from_unix_timestamp_nanos(micros * 1000)?;
            t.format(&time::format_description::well_known::Rfc3339)?
        }
        1082 => {
            let days = int(4)?;
            let d = time::Date::from_calendar_date(2000, time::Month::January, 1)?
                + time::Duration::days(days);
            d.to_string()
        }
        1700 => numeric(v)?,
        3802 => String::from_utf8(v.get(1..).unwrap_or_default().to_vec())?,
        1009 => text_array(v)?,
        _ => text()?,
    })
}

/// Postgres' binary one-dimensional `text[]` as its text form, `{"a","b",NULL}`: dimensions,
/// a null flag, the element type, each dimension's size and lower bound, then each element as
/// a length (-1 for NULL) and its bytes.
pub(super) fn text_array(v: &[u8]) -> anyhow::Result<String> {
    let word = |at: usize| -> anyhow::Result<i32> {
        let b = v.get(at..at + 4).context("text[] cut short")?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let dims = word(0)?;
    if dims == 0 {
        return Ok("{}".into());
    }
    if dims != 1 {
        bail!("text[] of {dims} dimensions");
    }
    let n = usize::try_from(word(12)?)?;
    let mut at = 20;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        let len = word(at)?;
        at += 4;
        if len < 0 {
            items.push("NULL".to_owned());
            continue;
        }
        let len = usize::try_from(len)?;
        let item = std::str::from_utf8(v.get(at..at + len).context("text[] cut short")?)?;
        at += len;
        items.push(format!(
            "\"{}\"",
            item.replace('\\', "\\\\").replace('"', "\\\"")
        ));
    }
    Ok(format!("{{{}}}", items.join(",")))
}

/// Postgres' binary `numeric`: base-10000 digits with a weight, a sign and a display scale.
pub(super) fn numeric(v: &[u8]) -> anyhow::Result<String> {
    let mut r = Reader { b: v, at: 0 };
    let n = r.i16()?.max(0) as usize;
    let weight = i32::from(r.i16()?);
    let sign = r.i16()? as u16;
    let dscale = r.i16()?.max(0) as usize;
    let digits = (0..n)
        .map(|_| r.i16())
        .collect::<anyhow::Result<Vec<_>>>()?;
    if sign == 0xC000 {
        return Ok("NaN".into());
    }
    let digit = |k: i32| -> i16 {
        usize::try_from(k)
            .ok()
            .and_then(|k| digits.get(k))
            .copied()
            .unwrap_or(0)
    };
    let mut int_part = String::new();
    for k in 0..=weight {
        if k == 0 {
            int_part.push_str(&digit(k).to_string());
        } else {
            int_part.push_str(&format!("{:04}", digit(k)));
        }
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let mut frac = String::new();
    let mut k = weight + 1;
    while frac.len() < dscale {
        frac.push_str(&format!("{:04}", digit(k)));
        k += 1;
    }
    frac.truncate(dscale);
    let minus = if sign == 0x4000 { "-" } else { "" };
    Ok(if frac.is_empty() {
        format!("{minus}{int_part}")
    } else {
        format!("{minus}{int_part}.{frac}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn numerics_read_as_postgres_writes_them() {
        // 15.000: one digit group 15, weight 0, dscale 3.
        let v = [0, 1, 0, 0, 0, 0, 0, 3, 0, 15];
        assert_eq!(numeric(&v).ok().as_deref(), Some("15.000"));
        // 12345.5: groups 1, 2345, 5000; weight 1; dscale 1.
        let v = [0, 3, 0, 1, 0, 0, 0, 1, 0, 1, 0x09, 0x29, 0x13, 0x88];
        assert_eq!(numeric(&v).ok().as_deref(), Some("12345.5"));
    }
}
