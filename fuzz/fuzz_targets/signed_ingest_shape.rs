//! Structure-aware: `arbitrary` picks one of the seed webhooks of `event_parse` (one per data
//! shape of `docs/dhmad-api.md` §6.4), retypes it, edits its `data` (drops, nulls, wrong types,
//! known enum values, timestamps with offsets, extra known fields) and dates it. The envelope is
//! then taken through the storefront's ingest path: signed as DHMAD signs it
//! (`SignedDelivery`), verified from its headers, parsed, read as an event, and round-tripped
//! (`dhmad_fuzz::check_envelope`). A delivery we signed always verifies and always parses.

#![no_main]

use arbitrary::Arbitrary;
use dhmad::webhook::SignedDelivery;
use dhmad::{EventType, WebhookEnvelope};
use dhmad_fuzz::{check_envelope, has_lossy_value, now, verifier, SECRET};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime, UtcOffset};

/// The seed corpus of `event_parse`, whose `data` shapes are the templates.
const TEMPLATES: &[&str] = &[
    include_str!("../corpus/event_parse/escrow_status_updated.json"),
    include_str!("../corpus/event_parse/contract_signed.json"),
    include_str!("../corpus/event_parse/cancellation_requested.json"),
    include_str!("../corpus/event_parse/cancellation_accepted.json"),
    include_str!("../corpus/event_parse/escrow_updated.json"),
    include_str!("../corpus/event_parse/deposit_proof_rejected.json"),
    include_str!("../corpus/event_parse/delivery_rejected.json"),
    include_str!("../corpus/event_parse/proof_submitted.json"),
    include_str!("../corpus/event_parse/proof_required_minimal.json"),
    include_str!("../corpus/event_parse/identity_verification_updated.json"),
    include_str!("../corpus/event_parse/identity_verification_linked.json"),
    include_str!("../corpus/event_parse/unknown_type.json"),
];

/// Field names the payloads of §6.4 and the escrow object of §2.1 use, for inserted fields.
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "_id", "id", "title", "amount", "currency", "amountTnd", "escrowFee", "developerFee",
    "developerFeePercentage", "status", "oldStatus", "mode", "seller", "buyer", "sellerEmail",
    "buyerEmail", "estimatedDeliveryDays", "description", "expiresAt", "paidAt", "deliveredAt",
    "completedAt", "cancelledAt", "completionDeadline", "deliveryRejections", "createdAt",
    "updatedAt", "createdViaThirdParty", "createdByApplicationName", "disputeTicketId",
    "disputeTicket", "ticketNumber", "type", "subject", "previewReason", "signatures",
    "sellerSigned", "sellerSignedAt", "buyerSigned", "buyerSignedAt", "isFullySigned", "signedAt",
    "fulfillmentPolicy", "proofUploadDeadlineHours", "buyerReviewDeadlineHours",
    "allowedProofTypes", "proofInfo", "phase", "uploadDeadline", "reviewDeadline",
    "correctionRounds", "submissionCount", "submissions", "latestSubmission", "checkoutActions",
    "rejectedAt", "reason", "previousDeliveredAt", "rejectedBy", "acceptedBy", "requestedBy",
    "requestedAt", "updatedFields", "contract", "terms", "language", "depositProof", "method",
    "email", "firstName", "lastName", "kyc_status", "previous_kyc_status", "linked_user_id",
    "linked_at", "updated_at", "claim_status", "needs_admin_review", "external_user_id",
];

/// Every wire value of the enums the payloads carry.
fn enum_values() -> impl Iterator<Item = &'static str> {
    [
        dhmad::EscrowStatus::KNOWN,
        dhmad::EscrowMode::KNOWN,
        dhmad::Currency::KNOWN,
        dhmad::CheckoutAction::KNOWN,
        dhmad::ProofPhase::KNOWN,
        dhmad::ProofType::KNOWN,
        dhmad::FulfillmentPolicyType::KNOWN,
        dhmad::PaymentMethod::KNOWN,
        dhmad::Signer::KNOWN,
        dhmad::CancellationRequestStatus::KNOWN,
        dhmad::KycStatus::KNOWN,
        dhmad::ClaimStatus::KNOWN,
        dhmad::ContractLanguage::KNOWN,
    ]
    .into_iter()
    .flatten()
    .copied()
}

#[derive(Debug, Arbitrary)]
struct Input {
    template: u8,
    retype: Retype,
    id: String,
    /// Milliseconds from 2026-07-02T09:00:00Z, wrapped into years 0000..=9999.
    at_ms: i64,
    at_offset_min: i16,
    /// Dispatch delay within the replay window.
    dispatch_s: i16,
    edits: Vec<Edit>,
}

#[derive(Debug, Arbitrary)]
enum Retype {
    Keep,
    Known(u8),
    Other(String),
}

#[derive(Debug, Arbitrary)]
struct Edit {
    /// Which node of `data` (pre-order, wrapped).
    node: u16,
    op: Op,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Remove,
    Set(Atom),
    /// Adds a known field name to an object node.
    Insert(u8, Atom),
}

#[derive(Debug, Arbitrary)]
enum Atom {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(String),
    Enum(u8),
    /// A timestamp: milliseconds from now (wrapped like `at_ms`), an offset in minutes, and
    /// whether to write the milliseconds.
    Time(i64, i16, bool),
    EmptyObject,
    EmptyArray,
    /// A copy of another node of `data`.
    Copy(u16),
}

/// Years 0000..=9999 in milliseconds from the epoch.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;

fn instant(ms_from_now: i64, offset_min: i16) -> OffsetDateTime {
    let base = i128::from(now().unix_timestamp()) * 1000;
    let (min, span) = (i128::from(MIN_MS), i128::from(MAX_MS - MIN_MS + 1));
    let ms = min + (base + i128::from(ms_from_now) - min).rem_euclid(span);
    let utc = OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).expect("in range");
    // RFC 3339 offsets go up to ±23:59.
    let offset_s = i32::from(offset_min).rem_euclid(2 * 1440 - 1) - 1439;
    let offset = UtcOffset::from_whole_seconds(offset_s * 60).expect("in range");
    // The same instant seen in that offset, when that stays within years 0000..=9999.
    match utc.checked_to_offset(offset) {
        Some(t) if (0..=9999).contains(&t.year()) => t,
        _ => utc,
    }
}

fn timestamp_text(t: OffsetDateTime, millis: bool) -> String {
    let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
    let (h, mi, s) = (t.hour(), t.minute(), t.second());
    let frac = if millis {
        format!(".{:03}", t.millisecond())
    } else {
        String::new()
    };
    let off = t.offset();
    let zone = if off.is_utc() {
        "Z".to_owned()
    } else {
        let sign = if off.is_negative() { '-' } else { '+' };
        let (oh, om, _) = off.as_hms();
        format!("{sign}{:02}:{:02}", oh.unsigned_abs(), om.unsigned_abs())
    };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}")
}

/// JSON pointers of every node of `v`, in pre-order (the root is "").
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            out.push(at.clone());
            for (k, c) in o {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(c, format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            out.push(at.clone());
            for (i, c) in a.iter().enumerate() {
                pointers(c, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

fn atom(a: &Atom, data: &Value, nodes: &[String]) -> Value {
    match a {
        Atom::Null => Value::Null,
        Atom::Bool(b) => Value::Bool(*b),
        Atom::Int(i) => Value::from(*i),
        Atom::UInt(u) => Value::from(*u),
        Atom::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Atom::Text(s) => Value::String(s.clone()),
        Atom::Enum(i) => {
            let n = enum_values().count();
            Value::from(enum_values().nth(usize::from(*i) % n).unwrap_or_default())
        }
        Atom::Time(ms, off, millis) => Value::String(timestamp_text(instant(*ms, *off), *millis)),
        Atom::EmptyObject => Value::Object(Map::new()),
        Atom::EmptyArray => Value::Array(Vec::new()),
        Atom::Copy(i) => data
            .pointer(&nodes[usize::from(*i) % nodes.len()])
            .cloned()
            .unwrap_or_default(),
    }
}

fn apply(data: &mut Value, edit: &Edit) {
    let mut nodes = Vec::new();
    pointers(data, String::new(), &mut nodes);
    let at = nodes[usize::from(edit.node) % nodes.len()].clone();
    match &edit.op {
        Op::Set(a) => {
            let v = atom(a, data, &nodes);
            if let Some(slot) = data.pointer_mut(&at) {
                *slot = v;
            }
        }
        Op::Insert(k, a) => {
            let v = atom(a, data, &nodes);
            if let Some(Value::Object(o)) = data.pointer_mut(&at) {
                o.insert(KEYS[usize::from(*k) % KEYS.len()].to_owned(), v);
            }
        }
        Op::Remove => {
            let Some((parent, last)) = at.rsplit_once('/') else {
                return; // the root stays
            };
            let last = last.replace("~1", "/").replace("~0", "~");
            match data.pointer_mut(parent) {
                Some(Value::Object(o)) => {
                    o.shift_remove(&last);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < a.len() {
                            a.remove(i);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let template = TEMPLATES[usize::from(input.template) % TEMPLATES.len()];
    let mut env = WebhookEnvelope::from_slice(template.as_bytes()).expect("seeds parse");
    env.id = input.id;
    env.timestamp = Some(instant(input.at_ms, input.at_offset_min));
    match input.retype {
        Retype::Keep => {}
        Retype::Known(i) => {
            let known = EventType::KNOWN;
            env.event_type = known[usize::from(i) % known.len()].to_owned();
        }
        Retype::Other(t) => env.event_type = t,
    }
    for edit in input.edits.iter().take(16) {
        apply(&mut env.data, edit);
    }

    // Signed the way DHMAD signs, dispatched within the window: always verifies.
    let dispatched = now() + Duration::seconds(i64::from(input.dispatch_s) % 301);
    let delivery = SignedDelivery::new(SECRET, &env, dispatched);
    let v = verifier();
    assert_eq!(
        v.verify(
            Some(&delivery.signature),
            Some(&delivery.timestamp),
            &delivery.body
        ),
        Ok(())
    );
    // Through the HTTP headers too, when they are valid header values (an id can hold
    // anything).
    let mut headers = http::HeaderMap::new();
    let mut valid = true;
    for (name, value) in delivery.headers() {
        match http::HeaderValue::from_str(&value) {
            Ok(value) => {
                headers.insert(name, value);
            }
            Err(_) => valid = false,
        }
    }
    if valid {
        assert_eq!(v.verify_headers(&headers, &delivery.body), Ok(()));
    }

    // What was signed parses back to what was sent.
    let parsed = WebhookEnvelope::from_slice(&delivery.body).expect("a signed body parses");
    assert_eq!(parsed.id, env.id);
    assert_eq!(parsed.event_type, env.event_type);
    assert_eq!(parsed.timestamp, env.timestamp);
    if parsed.data != env.data {
        assert!(has_lossy_value(&env.data), "data changed in transit");
    }
    check_envelope(&parsed);
});
