//! Golden vectors for the webhook signature. The expected digests were computed outside this
//! crate (Python's `hmac.new(secret, body, hashlib.sha256).hexdigest()`), so a bug shared by
//! `sign` and `verify` cannot hide behind our own code.

use dhmad::webhook::{self, SignedDelivery, WebhookVerifier};
use dhmad::{Event, WebhookEnvelope};
use time::OffsetDateTime;

const SECRET: &str = "whsec_5f2a1c0e9b8d7a6f";

const BODY_STATUS: &str = r#"{"id":"8d3c0a52-1f7e-4b8e-9d51-7c1d2e3f4a5b","type":"escrow.status.updated","timestamp":"2026-07-02T09:00:00.000Z","data":{"escrow":{"id":"66aa00000000000000000001","title":"Logo pack","amount":300,"escrowFee":15,"status":"paid","oldStatus":"pending"}}}"#;
const SIG_STATUS: &str = "01033f73288c1807d3f5d75c90175ab05a0dbaf846d998415a8627d53c674917";

const BODY_UTF8: &str = r#"{"id":"e2","type":"escrow.updated","timestamp":"2026-07-02T09:00:00.000Z","data":{"escrow":{"id":"66aa00000000000000000002","title":"Chéchia rouge — تونس","status":"pending"}}}"#;
const SIG_UTF8: &str = "d6da40fc0078f517f7d29e5176f242657417bbf4db76782266469122a832fe97";

/// The RFC-style HMAC-SHA256 example (Wikipedia's "quick brown fox").
const FOX_SIG: &str = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";

const SENT_AT: &str = "2026-07-02T09:00:01.000Z";

fn at(s: &str) -> OffsetDateTime {
    dhmad::iso::parse(s).unwrap()
}

fn verifier() -> WebhookVerifier {
    let now = at("2026-07-02T09:00:30Z");
    WebhookVerifier::new([SECRET]).with_clock(move || now)
}

#[test]
fn sign_matches_independent_vectors() {
    assert_eq!(webhook::sign(SECRET, BODY_STATUS.as_bytes()), SIG_STATUS);
    assert_eq!(webhook::sign(SECRET, BODY_UTF8.as_bytes()), SIG_UTF8);
    assert_eq!(
        webhook::sign("key", b"The quick brown fox jumps over the lazy dog"),
        FOX_SIG
    );
}

#[test]
fn verifier_accepts_independent_vectors() {
    let v = verifier();
    v.verify(Some(SIG_STATUS), Some(SENT_AT), BODY_STATUS.as_bytes())
        .unwrap();
    v.verify(Some(SIG_UTF8), Some(SENT_AT), BODY_UTF8.as_bytes())
        .unwrap();
    let fox = WebhookVerifier::new(["key"]);
    fox.verify_signature(
        Some(FOX_SIG),
        b"The quick brown fox jumps over the lazy dog",
    )
    .unwrap();
}

#[test]
fn key_is_the_secret_text_not_its_hex_decoding() {
    // A hex-looking secret must be used as text: decoding it would give another digest.
    let hexish = "5f2a1c0e9b8d7a6f";
    let as_text = webhook::sign(hexish, BODY_STATUS.as_bytes());
    let v = WebhookVerifier::new([hexish]);
    v.verify_signature(Some(&as_text), BODY_STATUS.as_bytes())
        .unwrap();
    assert_ne!(as_text, SIG_STATUS);
}

#[test]
fn envelope_round_trips_to_the_signed_bytes() {
    for (body, sig) in [(BODY_STATUS, SIG_STATUS), (BODY_UTF8, SIG_UTF8)] {
        let env = WebhookEnvelope::from_slice(body.as_bytes()).unwrap();
        assert_eq!(
            env.to_json(),
            body,
            "re-serialisation must be byte-identical"
        );
        let delivery = SignedDelivery::new(SECRET, &env, at(SENT_AT));
        assert_eq!(delivery.body, body.as_bytes());
        assert_eq!(delivery.signature, sig);
        assert_eq!(delivery.timestamp, SENT_AT);
    }
}

#[test]
fn non_ascii_is_written_raw_not_escaped() {
    let env = WebhookEnvelope::from_slice(BODY_UTF8.as_bytes()).unwrap();
    let json = env.to_json();
    assert!(json.contains("Chéchia rouge — تونس"));
    assert!(!json.contains("\\u"));
}

#[test]
fn envelope_is_compact_json_in_key_order() {
    let ev = Event::Unknown {
        event_type: "shop.custom".into(),
        data: serde_json::json!({"zeta": 1, "alpha": {"url": "https://x.tn/a/b"}}),
    };
    let env = WebhookEnvelope::new("evt-1", at("2026-07-02T09:00:00Z"), &ev);
    assert_eq!(
        env.to_json(),
        r#"{"id":"evt-1","type":"shop.custom","timestamp":"2026-07-02T09:00:00.000Z","data":{"zeta":1,"alpha":{"url":"https://x.tn/a/b"}}}"#
    );
}

#[test]
fn typed_event_serialises_amounts_like_dhmad() {
    let env = WebhookEnvelope::from_slice(BODY_STATUS.as_bytes()).unwrap();
    let typed = env.event().unwrap();
    let rebuilt = WebhookEnvelope::new(env.id.clone(), env.timestamp.unwrap(), &typed);
    let json = rebuilt.to_json();
    assert!(json.contains(r#""amount":300,"#), "{json}");
    assert!(json.contains(r#""escrowFee":15,"#), "{json}");
    assert!(!json.contains("300.0"), "{json}");
    assert!(json.starts_with(r#"{"id":"8d3c0a52-1f7e-4b8e-9d51-7c1d2e3f4a5b","type":"escrow.status.updated","timestamp":"#));
}

#[test]
fn signed_delivery_round_trip() {
    let now = at("2026-07-02T09:00:00Z");
    let env = WebhookEnvelope::from_slice(BODY_STATUS.as_bytes()).unwrap();
    let d = SignedDelivery::new(SECRET, &env, now);
    let headers = d.headers();
    assert_eq!(headers[0], ("content-type", "application/json".to_owned()));
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get(webhook::SIGNATURE_HEADER), SIG_STATUS);
    assert_eq!(get(webhook::EVENT_HEADER), "escrow.status.updated");
    assert_eq!(
        get(webhook::ID_HEADER),
        "8d3c0a52-1f7e-4b8e-9d51-7c1d2e3f4a5b"
    );
    assert_eq!(get(webhook::TIMESTAMP_HEADER), "2026-07-02T09:00:00.000Z");

    let mut map = http::HeaderMap::new();
    for (k, v) in &headers {
        map.insert(*k, v.parse().unwrap());
    }
    let v = WebhookVerifier::new([SECRET]).with_clock(move || now);
    v.verify_headers(&map, &d.body).unwrap();
    let back = WebhookEnvelope::from_slice(&d.body).unwrap();
    assert_eq!(back, env);
}
