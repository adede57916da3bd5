//! Webhook signatures (`docs/dhmad-api.md` §6.5).
//!
//! DHMAD signs the compact JSON body with HMAC-SHA256, keyed by the webhook secret's text as-is
//! (the hex string's bytes, not hex-decoded), and sends the lowercase hex digest in
//! `X-Webhook-Signature`. The raw body is checked first, then its compact re-serialisation
//! (the contract's receiver step 3). The timestamp header is not covered by the MAC; it is checked against
//! a tolerance to limit replays.
//!
//! ```
//! use dhmad::webhook::{sign, WebhookVerifier};
//! let body = br#"{"id":"e1","type":"escrow.updated","timestamp":"2026-07-01T09:00:00.000Z","data":{}}"#;
//! let now = dhmad::iso::parse("2026-07-01T09:00:30Z").unwrap();
//! let sig = sign("whsec_test", body);
//! let verifier = WebhookVerifier::new(["old-secret", "whsec_test"]).with_clock(move || now);
//! verifier.verify(Some(&sig), Some("2026-07-01T09:00:00.000Z"), body).unwrap();
//! assert!(verifier.verify(Some(&sig), Some("2026-07-01T09:00:00.000Z"), b"{}").is_err());
//! ```

use std::sync::Arc;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};

use crate::event::WebhookEnvelope;
use crate::iso;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the lowercase hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";
/// Header carrying the event type.
pub const EVENT_HEADER: &str = "x-webhook-event";
/// Header carrying the delivery id (equal to the envelope id in DHMAD's sandbox emulator).
pub const ID_HEADER: &str = "x-webhook-id";
/// Header carrying the ISO 8601 dispatch time.
pub const TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
/// DHMAD's recommended replay window.
pub const DEFAULT_TOLERANCE: Duration = Duration::minutes(5);

/// Lowercase hex HMAC-SHA256 of `body`, keyed by the bytes of `secret`.
///
/// ```
/// let sig = dhmad::webhook::sign("secret", b"{}");
/// assert_eq!(sig.len(), 64);
/// ```
pub fn sign(secret: &str, body: &[u8]) -> String {
    hex::encode(mac(secret, body).finalize().into_bytes())
}

fn mac(secret: &str, body: &[u8]) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    mac
}

/// The longest body checked in its compact form too. DHMAD's events are a few kilobytes (a
/// proof with its attachments' URLs the largest); a longer body is checked as sent only.
pub const MAX_REFORMATTED: usize = 64 * 1024;

/// `body` re-serialised as DHMAD signs it (§6.5): compact, keys in the order sent (serde_json's
/// `preserve_order`), non-ASCII and `/` unescaped, as `JSON.stringify` writes them. The signed
/// bytes are UNSTATED and DHMAD's own sample verifiers sign such a re-serialisation, so a body
/// that reached us pretty-printed or escaped otherwise (a proxy, a sender's library) is checked
/// in this form too: refused, it would be lost, since a 401 is never retried. Only a body that
/// says the same as a text DHMAD signed passes. `None` when the body is not JSON, is this form
/// already (checked once), or is longer than [`MAX_REFORMATTED`]: the parse comes before any
/// sender is known, and a large body of small values costs tens of times its size in memory.
fn compact(body: &[u8]) -> Option<Vec<u8>> {
    if body.len() > MAX_REFORMATTED {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = serde_json::to_vec(&value).ok()?;
    (text != body).then_some(text)
}

/// Why a delivery was refused. [`VerifyError::is_authentication`] tells a server whether to
/// answer 401 (signature) or 400 (timestamp).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The verifier has no secret.
    #[error("no webhook secret is configured")]
    NoSecret,
    /// `X-Webhook-Signature` absent or empty.
    #[error("missing X-Webhook-Signature header")]
    MissingSignature,
    /// Not 64 hex characters (after an optional `sha256=` prefix).
    #[error("malformed X-Webhook-Signature header")]
    MalformedSignature,
    /// Well-formed, but no configured secret produces it for this body.
    #[error("signature does not match the body")]
    SignatureMismatch,
    /// `X-Webhook-Timestamp` absent.
    #[error("missing X-Webhook-Timestamp header")]
    MissingTimestamp,
    /// Not an ISO 8601 instant.
    #[error("malformed X-Webhook-Timestamp header")]
    MalformedTimestamp,
    /// Older than the tolerance.
    #[error("timestamp is {seconds}s old, outside the tolerance")]
    Stale {
        /// Age in seconds.
        seconds: i64,
    },
    /// Further in the future than the tolerance.
    #[error("timestamp is {seconds}s in the future, outside the tolerance")]
    FromTheFuture {
        /// Skew in seconds.
        seconds: i64,
    },
}

impl VerifyError {
    /// `true` for signature failures (answer 401), `false` for timestamp failures (400) and
    /// for a missing secret (a server misconfiguration: answer 5xx so DHMAD retries).
    pub fn is_authentication(&self) -> bool {
        matches!(
            self,
            Self::MissingSignature | Self::MalformedSignature | Self::SignatureMismatch
        )
    }
}

/// The clock a verifier reads; injectable for tests.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Verifies deliveries against one or more secrets (several during a rotation).
#[derive(Clone)]
pub struct WebhookVerifier {
    secrets: Vec<SecretString>,
    tolerance: Duration,
    clock: Clock,
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookVerifier")
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl WebhookVerifier {
    /// A verifier accepting any of `secrets` (empty ones are ignored), with the default
    /// 5-minute tolerance and the system clock. Each is trimmed: a secret read from a file or
    /// a variable with its line's newline would match no signature, and DHMAD does not resend
    /// a delivery answered 401 (its secrets are hex: white space is never part of one).
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            secrets: secrets
                .into_iter()
                .map(Into::into)
                .map(|s: String| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .map(SecretString::from)
                .collect(),
            tolerance: DEFAULT_TOLERANCE,
            clock: Arc::new(OffsetDateTime::now_utc),
        }
    }

    /// Accepts timestamps within `tolerance` of now, in both directions.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance.abs();
        self
    }

    /// Reads the time from `clock` instead of the system clock.
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> OffsetDateTime + Send + Sync + 'static,
    ) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the signature over the raw `body`, then the timestamp.
    pub fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        self.verify_signature(signature, body)?;
        self.verify_timestamp(timestamp)
    }

    /// [`Self::verify`] reading the `X-Webhook-*` headers.
    pub fn verify_headers(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        self.verify(get(SIGNATURE_HEADER), get(TIMESTAMP_HEADER), body)
    }

    /// Constant-time check of `signature` against every configured secret, over the raw
    /// `body`, then over its compact re-serialisation (see [`compact`]).
    pub fn verify_signature(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        if self.secrets.is_empty() {
            return Err(VerifyError::NoSecret);
        }
        let raw = signature.map(str::trim).unwrap_or_default();
        if raw.is_empty() {
            return Err(VerifyError::MissingSignature);
        }
        let hex_part = match raw.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("sha256=") => raw[7..].trim_start(),
            _ => raw,
        };
        let expected = hex::decode(hex_part).map_err(|_| VerifyError::MalformedSignature)?;
        if expected.len() != 32 {
            return Err(VerifyError::MalformedSignature);
        }
        let signed = |text: &[u8]| {
            self.secrets
                .iter()
                .any(|s| mac(s.expose_secret(), text).verify_slice(&expected).is_ok())
        };
        if signed(body) || compact(body).is_some_and(|text| signed(&text)) {
            Ok(())
        } else {
            Err(VerifyError::SignatureMismatch)
        }
    }

    /// The accepted clock skew, in both directions.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Checks that `timestamp` lies within the tolerance of the clock.
    pub fn verify_timestamp(&self, timestamp: Option<&str>) -> Result<(), VerifyError> {
        let raw = timestamp.map(str::trim).filter(|s| !s.is_empty());
        let sent = iso::parse(raw.ok_or(VerifyError::MissingTimestamp)?)
            .map_err(|_| VerifyError::MalformedTimestamp)?;
        let age = (self.clock)() - sent;
        if age > self.tolerance {
            Err(VerifyError::Stale {
                seconds: age.whole_seconds(),
            })
        } else if -age > self.tolerance {
            Err(VerifyError::FromTheFuture {
                seconds: (-age).whole_seconds(),
            })
        } else {
            Ok(())
        }
    }
}

/// A complete signed delivery: the exact body and the headers DHMAD sends with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDelivery {
    /// Compact JSON of the envelope.
    pub body: Vec<u8>,
    /// `X-Webhook-Signature`.
    pub signature: String,
    /// `X-Webhook-Event`.
    pub event_type: String,
    /// `X-Webhook-Id` (the envelope id, stable across retries).
    pub webhook_id: String,
    /// `X-Webhook-Timestamp` (dispatch time).
    pub timestamp: String,
}

impl SignedDelivery {
    /// Signs `envelope` with `secret`, dispatched at `dispatched_at`.
    ///
    /// ```
    /// use dhmad::{webhook::{SignedDelivery, WebhookVerifier}, Event, WebhookEnvelope};
    /// let now = time::OffsetDateTime::now_utc();
    /// let ev = Event::Unknown { event_type: "x.y".into(), data: serde_json::json!({"a": 1}) };
    /// let d = SignedDelivery::new("s3cret", &WebhookEnvelope::new("id-1", now, &ev), now);
    /// WebhookVerifier::new(["s3cret"]).verify(Some(&d.signature), Some(&d.timestamp), &d.body).unwrap();
    /// ```
    pub fn new(secret: &str, envelope: &WebhookEnvelope, dispatched_at: OffsetDateTime) -> Self {
        let body = envelope.to_json().into_bytes();
        Self {
            signature: sign(secret, &body),
            event_type: envelope.event_type.clone(),
            webhook_id: envelope.id.clone(),
            timestamp: iso::format(dispatched_at),
            body,
        }
    }

    /// The five headers, `Content-Type` first.
    pub fn headers(&self) -> [(&'static str, String); 5] {
        [
            ("content-type", "application/json".to_owned()),
            (SIGNATURE_HEADER, self.signature.clone()),
            (EVENT_HEADER, self.event_type.clone()),
            (ID_HEADER, self.webhook_id.clone()),
            (TIMESTAMP_HEADER, self.timestamp.clone()),
        ]
    }
}
