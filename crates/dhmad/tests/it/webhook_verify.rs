//! Verification failures: each says which check failed, and maps to 401 or 400.

use dhmad::webhook::{self, VerifyError, WebhookVerifier, DEFAULT_TOLERANCE};
use time::{Duration, OffsetDateTime};

const SECRET: &str = "whsec_5f2a1c0e9b8d7a6f";
const BODY: &[u8] = br#"{"id":"e1","type":"escrow.updated","timestamp":"2026-07-02T09:00:00.000Z","data":{"escrow":{"id":"66aa00000000000000000001","status":"pending"}}}"#;
const SENT: &str = "2026-07-02T09:00:00.000Z";

fn now() -> OffsetDateTime {
    dhmad::iso::parse("2026-07-02T09:01:00Z").unwrap()
}

fn verifier() -> WebhookVerifier {
    WebhookVerifier::new([SECRET]).with_clock(now)
}

fn good_sig() -> String {
    webhook::sign(SECRET, BODY)
}

#[test]
fn accepts_a_good_delivery() {
    verifier()
        .verify(Some(&good_sig()), Some(SENT), BODY)
        .unwrap();
}

#[test]
fn tampered_body_is_a_mismatch() {
    let mut body = BODY.to_vec();
    let i = body.iter().position(|&b| b == b'p').unwrap();
    body[i] = b'P';
    let err = verifier()
        .verify(Some(&good_sig()), Some(SENT), &body)
        .unwrap_err();
    assert_eq!(err, VerifyError::SignatureMismatch);
    // Tampered after a re-serialiser pretty-printed it: its compact form is not what was signed.
    let pretty = String::from_utf8(pretty(BODY))
        .unwrap()
        .replace("pending", "paid");
    assert_eq!(
        verifier().verify(Some(&good_sig()), Some(SENT), pretty.as_bytes()),
        Err(VerifyError::SignatureMismatch)
    );
}

fn pretty(body: &[u8]) -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(body).unwrap()).unwrap()
}

/// The signed text is the compact JSON (§6.5), and DHMAD's own sample verifiers re-serialise
/// the body: a body that arrives pretty-printed, with `/` or non-ASCII escaped, still verifies
/// (receiver step 3). Refused with 401, it would never be sent again.
#[test]
fn a_body_reformatted_on_the_way_verifies_by_its_compact_form() {
    let signed = r#"{"id":"e2","type":"escrow.updated","timestamp":"2026-07-02T09:00:00.000Z","data":{"escrow":{"id":"66aa00000000000000000001","title":"Café / thé","status":"pending"}}}"#;
    let sig = webhook::sign(SECRET, signed.as_bytes());
    let escaped = signed.replace('/', "\\/").replace('é', "\\u00e9");
    for body in [pretty(signed.as_bytes()), escaped.into_bytes()] {
        assert_ne!(body, signed.as_bytes());
        verifier()
            .verify(Some(&sig), Some(SENT), &body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    }
    // A long body is checked as sent only: the parse comes before any sender is known.
    let long = format!(
        r#"{{"id":"e3","type":"x.y","timestamp":"2026-07-02T09:00:00.000Z","data":{{"pad":"{}"}}}}"#,
        "x".repeat(webhook::MAX_REFORMATTED)
    );
    let long_sig = webhook::sign(SECRET, long.as_bytes());
    verifier()
        .verify(Some(&long_sig), Some(SENT), long.as_bytes())
        .unwrap();
    assert_eq!(
        verifier().verify(Some(&long_sig), Some(SENT), &pretty(long.as_bytes())),
        Err(VerifyError::SignatureMismatch)
    );
    // Keys in another order are another text: not what DHMAD signed.
    let reordered = signed.replacen(
        r#""id":"e2","type":"escrow.updated""#,
        r#""type":"escrow.updated","id":"e2""#,
        1,
    );
    assert_eq!(
        verifier().verify(Some(&sig), Some(SENT), reordered.as_bytes()),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn tampered_signature_is_a_mismatch() {
    let mut sig = good_sig().into_bytes();
    sig[10] = if sig[10] == b'0' { b'1' } else { b'0' };
    let sig = String::from_utf8(sig).unwrap();
    assert_eq!(
        verifier().verify(Some(&sig), Some(SENT), BODY),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn tampered_timestamp_header_is_caught_by_the_window() {
    // The timestamp header is not covered by the MAC; an old one fails the replay window.
    let old = "2026-07-02T08:00:00.000Z";
    let err = verifier()
        .verify(Some(&good_sig()), Some(old), BODY)
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Stale { seconds: 3660 }),
        "{err:?}"
    );
    assert!(!err.is_authentication());
}

#[test]
fn empty_truncated_and_garbage_signatures() {
    let v = verifier();
    let sig = good_sig();
    assert_eq!(
        v.verify(None, Some(SENT), BODY),
        Err(VerifyError::MissingSignature)
    );
    assert_eq!(
        v.verify(Some(""), Some(SENT), BODY),
        Err(VerifyError::MissingSignature)
    );
    assert_eq!(
        v.verify(Some("   "), Some(SENT), BODY),
        Err(VerifyError::MissingSignature)
    );
    assert_eq!(
        v.verify(Some("sha256="), Some(SENT), BODY),
        Err(VerifyError::MalformedSignature)
    );
    assert_eq!(
        v.verify(Some(&sig[..63]), Some(SENT), BODY),
        Err(VerifyError::MalformedSignature)
    );
    assert_eq!(
        v.verify(Some(&sig[..32]), Some(SENT), BODY),
        Err(VerifyError::MalformedSignature)
    );
    let longer = format!("{sig}00");
    assert_eq!(
        v.verify(Some(&longer), Some(SENT), BODY),
        Err(VerifyError::MalformedSignature)
    );
    let garbage = "z".repeat(64);
    assert_eq!(
        v.verify(Some(&garbage), Some(SENT), BODY),
        Err(VerifyError::MalformedSignature)
    );
}

#[test]
fn prefix_uppercase_and_whitespace_are_tolerated() {
    let v = verifier();
    let sig = good_sig();
    for variant in [
        format!("sha256={sig}"),
        format!("SHA256={sig}"),
        format!("Sha256={}", sig.to_uppercase()),
        sig.to_uppercase(),
        format!("  {sig}\t"),
    ] {
        v.verify(Some(&variant), Some(SENT), BODY)
            .unwrap_or_else(|e| panic!("{variant:?}: {e}"));
    }
}

#[test]
fn any_of_several_secrets_verifies() {
    let old = webhook::sign("whsec_old", BODY);
    let new = webhook::sign("whsec_new", BODY);
    let v = WebhookVerifier::new(["whsec_old", "", "whsec_new"]).with_clock(now);
    v.verify(Some(&old), Some(SENT), BODY).unwrap();
    v.verify(Some(&new), Some(SENT), BODY).unwrap();
    let other = webhook::sign("whsec_other", BODY);
    assert_eq!(
        v.verify(Some(&other), Some(SENT), BODY),
        Err(VerifyError::SignatureMismatch)
    );
}

/// A secret read with its line's newline (`read_to_string`, a mounted file) still verifies.
#[test]
fn a_secret_with_surrounding_white_space_is_trimmed() {
    let v = WebhookVerifier::new([format!(" {SECRET}\n")]).with_clock(now);
    v.verify(Some(&good_sig()), Some(SENT), BODY).unwrap();
}

#[test]
fn no_secret_is_a_configuration_error() {
    let v = WebhookVerifier::new(Vec::<String>::new());
    let err = v.verify(Some(&good_sig()), Some(SENT), BODY).unwrap_err();
    assert_eq!(err, VerifyError::NoSecret);
    assert!(!err.is_authentication());
    let blank = WebhookVerifier::new(["  "]);
    assert_eq!(
        blank.verify_signature(Some(&good_sig()), BODY),
        Err(VerifyError::NoSecret)
    );
}

#[test]
fn stale_and_future_timestamps_with_an_injected_clock() {
    let sig = good_sig();
    let sent = dhmad::iso::parse(SENT).unwrap();
    let at = |offset: Duration| {
        let t = sent + offset;
        WebhookVerifier::new([SECRET]).with_clock(move || t)
    };
    assert_eq!(DEFAULT_TOLERANCE, Duration::minutes(5));
    at(Duration::minutes(5))
        .verify(Some(&sig), Some(SENT), BODY)
        .unwrap();
    at(-Duration::minutes(5))
        .verify(Some(&sig), Some(SENT), BODY)
        .unwrap();
    let stale = at(Duration::minutes(5) + Duration::seconds(1))
        .verify(Some(&sig), Some(SENT), BODY)
        .unwrap_err();
    assert_eq!(stale, VerifyError::Stale { seconds: 301 });
    let future = at(-Duration::minutes(6))
        .verify(Some(&sig), Some(SENT), BODY)
        .unwrap_err();
    assert_eq!(future, VerifyError::FromTheFuture { seconds: 360 });
}

#[test]
fn tolerance_is_configurable() {
    let sig = good_sig();
    let strict = verifier().with_tolerance(Duration::seconds(30));
    assert_eq!(strict.tolerance(), Duration::seconds(30));
    assert!(matches!(
        strict.verify(Some(&sig), Some(SENT), BODY),
        Err(VerifyError::Stale { seconds: 60 })
    ));
    let lax = verifier().with_tolerance(Duration::hours(2));
    lax.verify(Some(&sig), Some("2026-07-02T07:30:00Z"), BODY)
        .unwrap();
    // A negative tolerance is read as its absolute value.
    let neg = verifier().with_tolerance(-Duration::minutes(2));
    assert_eq!(neg.tolerance(), Duration::minutes(2));
}

#[test]
fn timestamps_with_and_without_millis_or_offset() {
    let v = verifier();
    let sig = good_sig();
    for ts in [
        "2026-07-02T09:00:00Z",
        "2026-07-02T09:00:00.123Z",
        "2026-07-02T10:00:00+01:00",
    ] {
        v.verify(Some(&sig), Some(ts), BODY)
            .unwrap_or_else(|e| panic!("{ts}: {e}"));
    }
    assert_eq!(
        v.verify(Some(&sig), None, BODY),
        Err(VerifyError::MissingTimestamp)
    );
    assert_eq!(
        v.verify(Some(&sig), Some(" "), BODY),
        Err(VerifyError::MissingTimestamp)
    );
    assert_eq!(
        v.verify(Some(&sig), Some("1751446800"), BODY),
        Err(VerifyError::MalformedTimestamp)
    );
}

#[test]
fn signature_is_checked_before_timestamp() {
    // A bad signature with a stale timestamp is reported as the signature (401).
    let err = verifier()
        .verify(Some(&"0".repeat(64)), Some("2020-01-01T00:00:00Z"), BODY)
        .unwrap_err();
    assert_eq!(err, VerifyError::SignatureMismatch);
}

#[test]
fn error_kinds_map_to_401_or_400() {
    let status = |e: &VerifyError| if e.is_authentication() { 401 } else { 400 };
    for e in [
        VerifyError::MissingSignature,
        VerifyError::MalformedSignature,
        VerifyError::SignatureMismatch,
    ] {
        assert_eq!(status(&e), 401, "{e}");
    }
    for e in [
        VerifyError::MissingTimestamp,
        VerifyError::MalformedTimestamp,
        VerifyError::Stale { seconds: 400 },
        VerifyError::FromTheFuture { seconds: 400 },
    ] {
        assert_eq!(status(&e), 400, "{e}");
    }
}

#[test]
fn debug_never_prints_secrets() {
    let v = WebhookVerifier::new([SECRET, "whsec_other"]);
    let dbg = format!("{v:?}");
    assert!(!dbg.contains("whsec_"), "{dbg}");
    assert!(dbg.contains("2 redacted"), "{dbg}");
}
