//! The anchors' SQL, taken from the storefront itself.
//!
//! A second storefront talks to Postgres through a relay that reads the protocol going to the
//! server (plain TCP: `sslmode=disable` on that instance only). For one request the relay
//! records every statement the storefront executes, with its parameters, and counts the round
//! trips (*flights*: bytes to the server after the server last spoke). From those statements
//! `script` writes a pgbench script that sends the same statements, in the same order and
//! transaction, with the request's ids replaced by expressions of pgbench's `:i`. So the
//! anchor follows the handler whenever its SQL changes, with nothing to keep in step by hand.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use anyhow::{bail, Context};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpListener, TcpStream,
    },
};

/// One bound parameter: its type and its value as text (`None` for NULL).
#[derive(Debug, Clone)]
pub struct Param {
    pub oid: u32,
    pub value: Option<String>,
    /// Why the value could not be read (a binary format this relay does not know).
    pub unreadable: Option<String>,
}

/// One executed statement.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: String,
    pub params: Vec<Param>,
    /// Sent with the simple protocol (a `Query` message: `BEGIN`, `COMMIT`, …).
    pub simple: bool,
    /// The `options` startup parameter of the connection that sent it: the storefront's
    /// connections do not all have the same (the DHMAD call log's does not wait for the disk).
    pub options: Option<String>,
}

/// What the relay saw.
#[derive(Default)]
pub struct Capture {
    pub flights: AtomicU64,
    pub connections: AtomicU64,
    log: Mutex<Vec<Stmt>>,
    problems: Mutex<Vec<String>>,
}

impl Capture {
    /// The statements recorded since the last call.
    pub fn take(&self) -> Vec<Stmt> {
        self.log
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn problem(&self, p: String) {
        if let Ok(mut v) = self.problems.lock() {
            if v.len() < 10 {
                v.push(p);
            }
        }
    }
}

/// Relays every connection made to `listener` to `upstream`, recording into `capture`.
pub fn spawn_relay(listener: TcpListener, upstream: String, capture: Arc<Capture>) {
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            capture.connections.fetch_add(1, Ordering::Relaxed);
            // `true` while the last bytes seen went from Postgres to the storefront.
            let answered = Arc::new(AtomicBool::new(true));
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(to_server(cr, sw, answered.clone(), capture.clone()));
            tokio::spawn(to_client(sr, cw, answered));
        }
    });
}

async fn to_client(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, answered: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        answered.store(true, Ordering::Release);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

async fn to_server(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    answered: Arc<AtomicBool>,
    capture: Arc<Capture>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut conn = Frontend::default();
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if answered.swap(false, Ordering::AcqRel) {
            capture.flights.fetch_add(1, Ordering::Relaxed);
        }
        conn.feed(&buf[..n], &capture);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The frontend half of one connection's protocol, as far as statements go.
#[derive(Default)]
struct Frontend {
    pending: Vec<u8>,
    started: bool,
    /// This connection's `options` startup parameter.
    options: Option<String>,
    /// Prepared statements by name: their SQL and parameter types.
    prepared: HashMap<String, (String, Vec<u32>)>,
}

impl Frontend {
    fn feed(&mut self, bytes: &[u8], capture: &Capture) {
        self.pending.extend_from_slice(bytes);
        loop {
            if !self.started {
                // StartupMessage (or SSLRequest): length, then the body, no type byte.
                let Some(len) = be_i32(&self.pending, 0) else {
                    return;
                };
                let len = len.max(4) as usize;
                if self.pending.len() < len {
                    return;
                }
                let msg: Vec<u8> = self.pending.drain(..len).collect();
                let code = be_i32(&msg, 4).unwrap_or(0);
                if code == 196_608 {
                    // Protocol 3.0: key\0value\0 pairs.
                    self.started = true;
                    let mut parts = msg[8..].split(|b| *b == 0);
                    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
                        if k == b"options" {
                            self.options = Some(String::from_utf8_lossy(v).into_owned());
                        }
                    }
                }
                continue;
            }
            let Some(len) = be_i32(&self.pending, 1) else {
                return;
            };
            let total = 1 + len.max(4) as usize;
            if self.pending.len() < total {
                return;
            }
            let msg: Vec<u8> = self.pending.drain(..total).collect();
            if let Err(e) = self.message(msg[0], &msg[5..], capture) {
                capture.problem(format!("message {:?}: {e:#}", msg[0] as char));
            }
        }
    }

    fn message(&mut self, kind: u8, body: &[u8], capture: &Capture) -> anyhow::Result<()> {
        let mut r = Reader { b: body, at: 0 };
        match kind {
            b'Q' => {
                let sql = r.cstr()?;
                push(
                    capture,
                    Stmt {
                        sql,
                        params: Vec::new(),
                        simple: true,
                        options: self.options.clone(),
                    },
                );
            }
            b'P' => {
                let name = r.cstr()?;
                let sql = r.cstr()?;
                let n = r.i16()? as usize;
                let oids = (0..n).map(|_| r.u32()).collect::<anyhow::Result<_>>()?;
                self.prepared.insert(name, (sql, oids));
            }
            b'B' => {
                let _portal = r.cstr()?;
                let name = r.cstr()?;
                let (sql, oids) = self
                    .prepared
                    .get(&name)
                    .cloned()
                    .with_context(|| format!("bind of unknown statement {name:?}"))?;
                let nf = r.i16()? as usize;
                let formats = (0..nf)
                    .map(|_| r.i16())
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let np = r.i16()? as usize;
                let mut params = Vec::with_capacity(np);
                for k in 0..np {
                    let len = r.i32()?;
                    let oid = oids.get(k).copied().unwrap_or(0);
                    let format = match nf {
                        0 => 0,
                        1 => formats[0],
                        _ => formats.get(k).copied().unwrap_or(0),
                    };
                    let (value, unreadable) = if len < 0 {
                        (None, None)
                    } else {
                        match decode(oid, format, r.bytes(len as usize)?) {
                            Ok(v) => (Some(v), None),
                            Err(e) => (None, Some(format!("{e:#}"))),
                        }
                    };
                    params.push(Param {
                        oid,
                        value,
                        unreadable,
                    });
                }
                push(
                    capture,
                    Stmt {
                        sql,
                        params,
                        simple: false,
                        options: self.options.clone(),
                    },
                );
            }
            // Close of a statement ('S'; 'P' is a portal).
            b'C' if r.u8()? == b'S' => {
                let name = r.cstr()?;
                self.prepared.remove(&name);
            }
            _ => {}
        }
        Ok(())
    }
}

fn push(capture: &Capture, s: Stmt) {
    if let Ok(mut l) = capture.log.lock() {
        if l.len() < 10_000 {
            l.push(s);
        }
    }
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    b.get(at..at + 4)
        .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        let s = self
            .b
            .get(self.at..self.at + n)
            .context("message shorter than announced")?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> anyhow::Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    fn i16(&mut self) -> anyhow::Result<i16> {
        let s = self.bytes(2)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }
    fn i32(&mut self) -> anyhow::Result<i32> {
        let s = self.bytes(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u32(&mut self) -> anyhow::Result<u32> {
        Ok(self.i32()? as u32)
    }
    fn cstr(&mut self) -> anyhow::Result<String> {
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
fn type_name(oid: u32) -> Option<&'static str> {
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
fn decode(oid: u32, format: i16, v: &[u8]) -> anyhow::Result<String> {
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
fn text_array(v: &[u8]) -> anyhow::Result<String> {
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
fn numeric(v: &[u8]) -> anyhow::Result<String> {
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

/// A value of one request that stands for "this order", and how pgbench computes it.
pub struct Key {
    pub value: String,
    pub token: &'static str,
    /// SQL computing the value from `:i`, as text.
    pub text_sql: String,
    /// SQL computing the value from `:i` with its own type (e.g. a uuid).
    pub typed_sql: String,
}

/// A pgbench script with its variables and connection options.
#[derive(Debug, Clone, Default)]
pub struct Mirror {
    pub script: String,
    pub defines: Vec<(String, String)>,
    /// `-c name=value` options for `PGOPTIONS`: the storefront's connection options and any
    /// `SET LOCAL` of its transactions (pgbench cannot prepare a multi-statement string).
    pub options: Vec<String>,
    /// One line per statement, shortened, for the report.
    pub summary: Vec<String>,
}

/// Writes the pgbench twin of `stmts`: `header` (its `\set` lines) computes `:i`.
pub fn script(
    stmts: &[Stmt],
    header: &str,
    keys: &[Key],
    options: Option<&str>,
) -> anyhow::Result<Mirror> {
    let mut m = Mirror {
        script: format!("{}\n", header.trim_end()),
        ..Mirror::default()
    };
    if let Some(o) = options {
        m.options.push(o.trim().to_owned());
    }
    let mut vars = 0;
    for s in stmts {
        let sql = one_line(&s.sql);
        if s.simple {
            for part in sql.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                if let Some(option) = set_local(part) {
                    m.options.push(option?);
                    continue;
                }
                m.script.push_str(part);
                m.script.push_str(";\n");
                m.summary.push(shorten(part));
            }
            continue;
        }
        check_colons(&sql)?;
        let mut out = String::new();
        let mut chars = sql.char_indices().peekable();
        while let Some((at, ch)) = chars.next() {
            if ch != '$' {
                out.push(ch);
                continue;
            }
            let mut end = at + 1;
            while let Some((k, c)) = chars.peek().copied() {
                if c.is_ascii_digit() {
                    end = k + 1;
                    chars.next();
                } else {
                    break;
                }
            }
            let Ok(n) = sql[at + 1..end].parse::<usize>() else {
                out.push('$');
                continue;
            };
            let p = s
                .params
                .get(n - 1)
                .with_context(|| format!("${n} unbound in {sql}"))?;
            if let Some(why) = &p.unreadable {
                bail!("${n} of `{sql}`: {why}");
            }
            out.push_str(&render(p, keys, &mut m.defines, &mut vars));
        }
        m.summary.push(shorten(&sql));
        m.script.push_str(&out);
        m.script.push_str(";\n");
    }
    m.options = dedup_options(&m.options);
    Ok(m)
}

/// `-c name=value` options, each name once (the last value wins, as in Postgres).
fn dedup_options(opts: &[String]) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for o in opts {
        let words: Vec<&str> = o.split_whitespace().collect();
        let mut k = 0;
        while k < words.len() {
            let setting = match words[k] {
                "-c" => {
                    k += 1;
                    words.get(k).copied()
                }
                w => w.strip_prefix("-c").or(w.strip_prefix("--")),
            };
            k += 1;
            let Some((name, value)) = setting.and_then(|s| s.split_once('=')) else {
                continue;
            };
            out.retain(|(n, _)| n != name);
            out.push((name.to_owned(), value.to_owned()));
        }
    }
    out.into_iter()
        .map(|(n, v)| format!("-c {n}={v}"))
        .collect()
}

/// `SET LOCAL name = value` (or `TO value`) as a `-c name=value` connection option.
fn set_local(stmt: &str) -> Option<anyhow::Result<String>> {
    let head = stmt.get(..10)?;
    if !head.eq_ignore_ascii_case("set local ") {
        return None;
    }
    let rest = stmt[10..].trim();
    let parsed = match rest.split_once('=') {
        Some((n, v)) => Some((n.trim(), v.trim())),
        None => {
            let mut w = rest.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some(n), Some(to), Some(v)) if to.eq_ignore_ascii_case("to") => Some((n, v)),
                _ => None,
            }
        }
    };
    Some(
        parsed
            .map(|(n, v)| format!("-c {n}={}", v.trim_matches('\'')))
            .with_context(|| format!("cannot read {stmt:?}")),
    )
}

fn render(
    p: &Param,
    keys: &[Key],
    defines: &mut Vec<(String, String)>,
    vars: &mut usize,
) -> String {
    let cast = type_name(p.oid)
        .map(|t| format!("::{t}"))
        .unwrap_or_default();
    let Some(v) = &p.value else {
        return format!("(NULL{cast})");
    };
    if let Some(k) = keys.iter().find(|k| &k.value == v) {
        return format!("({}{cast})", k.typed_sql);
    }
    let used: Vec<&Key> = keys.iter().filter(|k| v.contains(&k.value)).collect();
    *vars += 1;
    let name = format!("v{vars}");
    if used.is_empty() {
        defines.push((name.clone(), v.clone()));
        return format!("(:{name}{cast})");
    }
    let mut template = v.clone();
    let mut expr = format!(":{name}");
    for k in used {
        template = template.replace(&k.value, k.token);
        expr = format!("replace({expr}, '{}', {})", k.token, k.text_sql);
    }
    defines.push((name, template));
    format!("({expr}{cast})")
}

/// pgbench reads `:name` anywhere in a command as a variable; the storefront's SQL must have
/// none outside casts (`::type`).
fn check_colons(sql: &str) -> anyhow::Result<()> {
    let b = sql.as_bytes();
    for k in 0..b.len() {
        let prev_colon = k > 0 && b[k - 1] == b':';
        let next = b.get(k + 1).copied().unwrap_or(b' ');
        if b[k] == b':'
            && !prev_colon
            && next != b':'
            && (next.is_ascii_alphabetic() || next == b'_')
        {
            bail!(
                "pgbench would read `:{}` as a variable in: {sql}",
                next as char
            );
        }
    }
    Ok(())
}

/// One shortened line per statement (simple-protocol strings split at `;`).
pub fn summarize(stmts: &[Stmt]) -> Vec<String> {
    stmts
        .iter()
        .flat_map(|s| {
            let sql = one_line(&s.sql);
            if s.simple {
                sql.split(';')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(shorten)
                    .collect::<Vec<_>>()
            } else {
                vec![shorten(&sql)]
            }
        })
        .collect()
}

fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn shorten(sql: &str) -> String {
    let s: String = sql.chars().take(90).collect();
    if s.len() < sql.len() {
        format!("{s}…")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_read_as_postgres_writes_them() {
        // 15.000: one digit group 15, weight 0, dscale 3.
        let v = [0, 1, 0, 0, 0, 0, 0, 3, 0, 15];
        assert_eq!(numeric(&v).ok().as_deref(), Some("15.000"));
        // 12345.5: groups 1, 2345, 5000; weight 1; dscale 1.
        let v = [0, 3, 0, 1, 0, 0, 0, 1, 0, 1, 0x09, 0x29, 0x13, 0x88];
        assert_eq!(numeric(&v).ok().as_deref(), Some("12345.5"));
    }

    #[test]
    fn statements_become_a_pgbench_script() {
        let keys = [Key {
            value: "e1".into(),
            token: "@EVT@",
            text_sql: "('e' || :i)".into(),
            typed_sql: "('e' || :i)".into(),
        }];
        let stmts = [
            Stmt {
                sql: "BEGIN; SET LOCAL lock_timeout = '2000ms'".into(),
                params: vec![],
                simple: true,
                options: None,
            },
            Stmt {
                sql: "INSERT INTO t (a, b, c)\n VALUES ($1, $2::text::jsonb, $3)".into(),
                params: vec![
                    Param {
                        oid: 25,
                        value: Some("e1".into()),
                        unreadable: None,
                    },
                    Param {
                        oid: 25,
                        value: Some("{\"id\":\"e1\"}".into()),
                        unreadable: None,
                    },
                    Param {
                        oid: 1184,
                        value: None,
                        unreadable: None,
                    },
                ],
                simple: false,
                options: None,
            },
        ];
        let m = script(&stmts, "\\set i 1", &keys, Some("-c a=b")).unwrap_or_default();
        assert_eq!(m.options, ["-c a=b", "-c lock_timeout=2000ms"]);
        assert!(m.script.contains("BEGIN;\n"), "{}", m.script);
        assert!(
            m.script.contains("VALUES ((('e' || :i)::text), (replace(:v1, '@EVT@', ('e' || :i))::text)::text::jsonb, (NULL::timestamptz));"),
            "{}",
            m.script
        );
        assert_eq!(
            m.defines,
            [("v1".to_owned(), "{\"id\":\"@EVT@\"}".to_owned())]
        );
    }
}
