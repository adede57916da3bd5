//! Shared pieces of the fuzz targets: the fixed secret and clock, the delivery file format of
//! `webhook_verify`, an independent model of the verifier, and the round-trip oracle of the
//! event parser.

use dhmad::webhook::{sign, VerifyError, WebhookVerifier};
use dhmad::{Event, WebhookEnvelope};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// The secret DHMAD signs with (the one the seed corpus is signed with).
pub const SECRET: &str = "whsec_5f2a1c0e9b8d7a6f";
/// A second secret, as during a rotation.
pub const OLD_SECRET: &str = "whsec_old";
/// The replay window the targets use (the crate's default).
pub const TOLERANCE: Duration = Duration::minutes(5);

/// The verifier's fixed "now": the seed corpus' deliveries are dated around it.
pub fn now() -> OffsetDateTime {
    // 2026-07-02T09:00:00Z
    OffsetDateTime::from_unix_timestamp(1_782_982_800).expect("a valid instant")
}

/// The verifier under test: both secrets (blank ones are ignored), the fixed clock.
pub fn verifier() -> WebhookVerifier {
    WebhookVerifier::new(["", "  ", OLD_SECRET, SECRET]).with_clock(now)
}

/// One input of `webhook_verify`: `signature LF timestamp LF body`. A missing line is an absent
/// header, a line that is not UTF-8 an unreadable one (as `verify_headers` treats it).
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// `X-Webhook-Signature`.
    pub signature: Option<&'a str>,
    /// `X-Webhook-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
}

impl<'a> Delivery<'a> {
    /// Splits a fuzz input into the two headers and the body.
    pub fn split(data: &'a [u8]) -> Self {
        let (signature, rest) = line(data);
        let (timestamp, body) = match rest {
            Some(rest) => line(rest),
            None => (None, None),
        };
        Self {
            signature: signature.and_then(|l| std::str::from_utf8(l).ok()),
            timestamp: timestamp.and_then(|l| std::str::from_utf8(l).ok()),
            body: body.unwrap_or_default(),
        }
    }
}

/// The bytes up to the first LF, and what follows it (`None` without an LF).
fn line(data: &[u8]) -> (Option<&[u8]>, Option<&[u8]>) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (Some(&data[..i]), Some(&data[i + 1..])),
        None => (Some(data), None),
    }
}

/// What the verifier must answer, written from `docs/dhmad-api.md` §6.5 without the crate's
/// code: trim; an optional `sha256=` prefix in any case; 64 hex digits in any case; equal to the
/// MAC of the body, or of its compact re-serialisation (receiver step 3; bodies up to 64 KiB),
/// under one of the secrets; then a timestamp within the window both ways.
pub fn expected_verdict(
    secrets: &[&str],
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
) -> Result<(), VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let sig = signature.unwrap_or("").trim();
    if sig.is_empty() {
        return Err(VerifyError::MissingSignature);
    }
    let digits = match sig.as_bytes().get(..7) {
        Some(p) if p.eq_ignore_ascii_case(b"sha256=") => sig[7..].trim_start(),
        _ => sig,
    };
    if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VerifyError::MalformedSignature);
    }
    let digits = digits.to_ascii_lowercase();
    let compact = compact_form(body);
    let texts = std::iter::once(body).chain(compact.as_deref());
    if !texts
        .flat_map(|text| secrets.iter().map(move |s| sign(s, text)))
        .any(|mac| mac == digits)
    {
        return Err(VerifyError::SignatureMismatch);
    }
    let ts = timestamp.map(str::trim).filter(|t| !t.is_empty());
    let ts = ts.ok_or(VerifyError::MissingTimestamp)?;
    let sent = OffsetDateTime::parse(ts, &Rfc3339).map_err(|_| VerifyError::MalformedTimestamp)?;
    let age = now() - sent;
    if age > TOLERANCE {
        Err(VerifyError::Stale {
            seconds: age.whole_seconds(),
        })
    } else if -age > TOLERANCE {
        Err(VerifyError::FromTheFuture {
            seconds: (-age).whole_seconds(),
        })
    } else {
        Ok(())
    }
}

/// `body` as DHMAD writes JSON (compact, keys in the order sent), if it is JSON of at most
/// 64 KiB: the second text a signature may cover (§6.5, receiver step 3).
pub fn compact_form(body: &[u8]) -> Option<Vec<u8>> {
    if body.len() > 64 * 1024 {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    serde_json::to_vec(&value).ok()
}

/// What the verifier answers for `sent`, signed as `signed`: it verifies when it is those
/// bytes, or its compact form is (a flipped digit past f64's precision, white space added).
pub fn verdict_for(signed: &[u8], sent: &[u8]) -> Result<(), VerifyError> {
    if sent == signed || compact_form(sent).as_deref() == Some(signed) {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// A cheap, deterministic mix of the input, to pick positions and masks from.
pub fn mix(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The round-trip oracle of a parsed envelope (targets `event_parse` and
/// `signed_ingest_shape`):
///
/// - the envelope's own `to_json` parses back to the same envelope (the timestamp to the
///   millisecond, which is what the crate writes);
/// - `event()` and `Event::from_parts` agree;
/// - a known event written back with `WebhookEnvelope::new(..).to_json()` parses to an equal
///   event, and writing that one again gives the same bytes; unless the input held a value
///   written back with less precision (see [`has_lossy_value`]), in which case what is written
///   must still parse.
pub fn check_envelope(env: &WebhookEnvelope) {
    let _ = env.kind();
    if hits_known_issue(env) {
        // The instant is clamped on writing: the event still parses alike, and what is
        // written parses back.
        let direct = Event::from_parts(&env.event_type, env.data.clone());
        assert_eq!(env.event().ok(), direct.ok(), "from_parts disagrees");
        let json = env.to_json();
        WebhookEnvelope::from_slice(json.as_bytes())
            .unwrap_or_else(|e| panic!("clamped output does not parse back: {e}\n{json}"));
        return;
    }
    let json = env.to_json();
    let again = WebhookEnvelope::from_slice(json.as_bytes())
        .unwrap_or_else(|e| panic!("to_json output does not parse back: {e}\n{json}"));
    assert_eq!(again.id, env.id);
    assert_eq!(again.event_type, env.event_type);
    match (env.timestamp, again.timestamp) {
        (Some(sent), Some(read)) => {
            assert_eq!(read.nanosecond() % 1_000_000, 0, "{json}");
            assert!(
                (read - sent).abs() < Duration::milliseconds(1),
                "timestamp moved: {sent} -> {read}"
            );
        }
        (sent, read) => assert_eq!(sent, read, "{json}"),
    }
    if again.data != env.data {
        assert!(has_lossy_value(&env.data), "data changed\n{json}");
    }

    let direct = Event::from_parts(&env.event_type, env.data.clone());
    let event = match env.event() {
        Ok(event) => event,
        Err(_) => {
            assert!(direct.is_err(), "event() failed, from_parts did not");
            return;
        }
    };
    assert_eq!(direct.ok().as_ref(), Some(&event), "from_parts disagrees");
    assert_eq!(event.event_type().as_str(), env.event_type);
    if let Some(escrow) = event.escrow() {
        let _ = (escrow.seller_email(), escrow.buyer_email());
    }

    let data = event.data();
    let Some(at) = env.timestamp else {
        return;
    };
    let out = WebhookEnvelope::new(env.id.clone(), at, &event).to_json();
    let back = WebhookEnvelope::from_slice(out.as_bytes())
        .unwrap_or_else(|e| panic!("written envelope does not parse back: {e}\n{out}"));
    let event2 = back
        .event()
        .unwrap_or_else(|e| panic!("written event does not parse back: {e}\n{out}"));
    let out2 =
        WebhookEnvelope::new(back.id.clone(), back.timestamp.unwrap_or(at), &event2).to_json();
    if has_lossy_value(&env.data) {
        // Written with less precision: parsing what was written must still work.
        WebhookEnvelope::from_slice(out2.as_bytes())
            .and_then(|e| e.event())
            .unwrap_or_else(|e| panic!("rewritten event does not parse back: {e}\n{out2}"));
        return;
    }
    assert_eq!(
        event2, event,
        "round trip changed the event\n in: {event:?}\nout: {event2:?}\n{out}"
    );
    assert_eq!(event2.data(), data, "writing is not idempotent\n{out}");
    assert_eq!(out2, out, "the written bytes are not stable");
}

/// `true` when `v` holds a value the crate documents as written back with less precision:
///
/// - a timestamp finer than the millisecond (`iso::format` writes milliseconds, as
///   JavaScript's `toISOString()` does; a leap second reads as `…59.999999999`);
/// - a number that does not survive `serde_json`'s text round trip (without its
///   `float_roundtrip` feature, its float parser is not correctly rounded for 17-digit
///   mantissas: `4.8241088934346857e228` reads back as `4.824108893434685e228`);
/// - an integer above `i64::MAX`, or an amount with more digits than an `f64` carries
///   (amounts are written as JSON numbers: "the nearest `f64`, whose shortest form is the
///   decimal itself for every realistic amount", `money.rs`).
pub fn has_lossy_value(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(_) => false,
        Value::Number(n) => {
            if n.as_i64().is_some() {
                return false;
            }
            if n.as_u64().is_some() {
                return true; // above i64::MAX
            }
            let f = n.as_f64().unwrap_or_default();
            serde_json::from_str::<f64>(&n.to_string()).ok() != Some(f)
                || significant_digits(&f.to_string()) > 15
        }
        Value::String(s) => lossy_text(s),
        Value::Array(a) => a.iter().any(has_lossy_value),
        Value::Object(o) => o.iter().any(|(_, v)| has_lossy_value(v)),
    }
}

fn lossy_text(s: &str) -> bool {
    let t = s.trim();
    if let Ok(at) = OffsetDateTime::parse(t, &Rfc3339) {
        return at.nanosecond() % 1_000_000 != 0;
    }
    // A numeric string is read as an amount where an amount is expected.
    t.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && significant_digits(t) > 15
}

fn significant_digits(s: &str) -> usize {
    let mantissa = s.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits.trim_start_matches('0').trim_end_matches('0').len()
}

/// Instants whose UTC date lies outside years 0000..=9999 (RFC 3339 offsets up to ±23:59 allow
/// them, e.g. `9999-12-31T23:59:59-01:00`) are written clamped to that range by
/// `dhmad::iso::format`, documented there, so that what is written always parses back. Inputs
/// holding such a timestamp skip the exact write-back check (the instant moves by design); the
/// write itself must still not panic and must parse back, which `check_clamped` asserts.
pub fn hits_known_issue(env: &WebhookEnvelope) -> bool {
    !env.timestamp.is_none_or(writable) || has_unwritable_time(&env.data)
}

fn writable(t: OffsetDateTime) -> bool {
    t.checked_to_offset(UtcOffset::UTC)
        .is_some_and(|utc| (0..=9999).contains(&utc.year()))
}

fn has_unwritable_time(v: &Value) -> bool {
    match v {
        Value::String(s) => OffsetDateTime::parse(s.trim(), &Rfc3339).is_ok_and(|t| !writable(t)),
        Value::Array(a) => a.iter().any(has_unwritable_time),
        Value::Object(o) => o.iter().any(|(_, v)| has_unwritable_time(v)),
        _ => false,
    }
}
