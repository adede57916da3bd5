//! Errors of the DHMAD API (`docs/dhmad-api.md` §5), mapped to what a caller should do.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use crate::enums::{ErrorCode, OAuthErrorCode};

/// An error answer from DHMAD, parsed from any of its three body shapes:
///
/// - A: `{"error": "Bad Request", "message": "...", "details"?: {...}}` (message may be absent),
///   possibly with a `code` beside it (later revisions) and `retryAfter` on 429;
/// - B: `{"error": {"code", "type", "message", "user_message"}}` (checkout business rules);
/// - C: `{"error": "invalid_grant", "error_description": "..."}` (OAuth).
///
/// ```
/// let b = br#"{"error":{"code":"PAYMENT_ALREADY_DONE","type":"business_rule_violation",
///   "message":"Escrow already paid","user_message":"This order is already paid."}}"#;
/// let e = dhmad::ApiError::parse(400, b);
/// assert_eq!(e.code, Some(dhmad::ErrorCode::PaymentAlreadyDone));
/// assert_eq!(e.user_message.as_deref(), Some("This order is already paid."));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The textual `error` of shapes A and C (`Forbidden`, `invalid_grant`, …).
    pub error: Option<String>,
    /// The machine-readable code, when one was sent.
    pub code: Option<ErrorCode>,
    /// `type` of shape B (`business_rule_violation`).
    pub kind: Option<String>,
    /// Text for developers (falls back to `error` when no message was sent).
    pub message: String,
    /// Text safe to show end users (shape B).
    pub user_message: Option<String>,
    /// Per-field validation messages.
    pub details: BTreeMap<String, String>,
    /// `retryAfter` of 429 bodies, else the answer's `Retry-After` header (429 and 5xx), in
    /// seconds.
    pub retry_after: Option<u64>,
    /// The body as sent (`Null` when it was not JSON).
    pub body: serde_json::Value,
}

/// `error`: a text (shapes A and C) or shape B's object, whose fields are each read on their
/// own too: a `user_message` of another form (per language, say) must not lose the code.
#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorField {
    Text(String),
    Rule {
        #[serde(default, deserialize_with = "crate::nullable::lenient")]
        code: Option<String>,
        #[serde(
            default,
            rename = "type",
            deserialize_with = "crate::nullable::lenient"
        )]
        kind: Option<String>,
        #[serde(default, deserialize_with = "crate::nullable::lenient")]
        message: Option<String>,
        #[serde(default, deserialize_with = "crate::nullable::lenient")]
        user_message: Option<String>,
    },
}

/// The longest `retryAfter` believed, in seconds (a day).
pub(crate) const MAX_RETRY_AFTER_SECS: u64 = 86_400;

/// Each field is read on its own (`lenient`): one of an unexpected type (a numeric `code`
/// beside shape B, a list as `message`) is dropped, not the whole body with DHMAD's
/// `user_message` and code.
#[derive(Deserialize, Default)]
struct RawBody {
    #[serde(default, deserialize_with = "crate::nullable::lenient")]
    error: Option<ErrorField>,
    #[serde(default, deserialize_with = "crate::nullable::lenient")]
    message: Option<String>,
    #[serde(default, deserialize_with = "crate::nullable::lenient")]
    code: Option<String>,
    #[serde(default, deserialize_with = "crate::nullable::lenient")]
    details: Option<serde_json::Value>,
    #[serde(
        default,
        rename = "retryAfter",
        deserialize_with = "crate::nullable::lenient"
    )]
    retry_after: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "crate::nullable::lenient")]
    error_description: Option<String>,
    #[serde(default, deserialize_with = "crate::nullable::lenient")]
    user_message: Option<String>,
}

impl ApiError {
    /// Parses an error body; anything unreadable still yields an error with the raw text.
    pub fn parse(status: u16, body: &[u8]) -> Self {
        // Its text is stored by callers (a job's last error, the call log): no NUL.
        let repaired = std::str::from_utf8(body)
            .ok()
            .and_then(crate::lenient::repair);
        let body = repaired.as_ref().map_or(body, |text| text.as_bytes());
        let json: serde_json::Value =
            serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        let raw: RawBody = serde_json::from_value(json.clone()).unwrap_or_default();
        let mut out = ApiError {
            status,
            error: None,
            code: raw.code.as_deref().map(ErrorCode::from),
            kind: None,
            message: String::new(),
            user_message: raw.user_message,
            details: BTreeMap::new(),
            retry_after: raw
                .retry_after
                .as_ref()
                .and_then(|v| match v {
                    serde_json::Value::Number(n) => {
                        n.as_u64().or_else(|| n.as_f64().map(|f| f.ceil() as u64))
                    }
                    serde_json::Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                })
                // A wait of 0 or less says nothing of when the window reopens: taken at its word,
                // it would resend at once and spend the window's calls (the 429 goes back to the
                // caller instead). A wait past a day is no wait a client keeps to.
                .filter(|&s| s > 0)
                .map(|s| s.min(MAX_RETRY_AFTER_SECS)),
            body: json.clone(),
        };
        match raw.error {
            Some(ErrorField::Text(t)) => out.error = Some(t),
            Some(ErrorField::Rule {
                code,
                kind,
                message,
                user_message,
            }) => {
                out.code = code.as_deref().map(ErrorCode::from).or(out.code);
                out.kind = kind;
                out.message = message.unwrap_or_default();
                out.user_message = user_message.or(out.user_message);
            }
            None => {}
        }
        if let Some(m) = raw.message.or(raw.error_description) {
            if out.message.is_empty() {
                out.message = m;
            }
        }
        if let Some(serde_json::Value::Object(map)) = raw.details {
            out.details = map
                .into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect();
        }
        if out.message.is_empty() {
            out.message = match (&out.error, json.is_null()) {
                (Some(e), _) => e.clone(),
                (None, true) => {
                    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
                    crate::lenient::storable(&text).into_owned()
                }
                (None, false) => String::new(),
            };
        }
        out
    }

    /// The OAuth error of body shape C (`{"error": "invalid_grant", "error_description": …}`),
    /// when this answer is one: a known `error` value, or any `error` sent with an
    /// `error_description`.
    ///
    /// ```
    /// let e = dhmad::ApiError::parse(400, br#"{"error":"invalid_grant","error_description":"Code expired"}"#);
    /// assert_eq!(e.oauth_error(), Some(dhmad::OAuthErrorCode::InvalidGrant));
    /// assert_eq!(e.message, "Code expired");
    /// ```
    pub fn oauth_error(&self) -> Option<OAuthErrorCode> {
        let text = self.error.as_deref()?;
        let code = OAuthErrorCode::from(text);
        let described = self.body.get("error_description").is_some();
        (code.is_known() || described).then_some(code)
    }
}

/// Everything a DHMAD call can fail with, grouped by what the caller should do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401: the key is missing, wrong, inactive, expired or of the other environment. Fix config.
    #[error("DHMAD refused the API key: {}", .0.message)]
    Unauthorized(ApiError),
    /// 403 (unless its body is a business rule's): not associated, not a party, or no access.
    /// Not retryable.
    #[error("DHMAD forbids this: {}", .0.message)]
    Forbidden(ApiError),
    /// 404 with DHMAD's error body: no such escrow, session, contract or developer. (A 404
    /// without one is [`Error::Unexpected`].)
    #[error("DHMAD has no such resource: {}", .0.message)]
    NotFound(ApiError),
    /// 400 with a code, or shape B (`type: business_rule_violation`) under another 4xx but 404,
    /// 409 and 429 (a checkout business rule): show `user_message` to the user.
    #[error("DHMAD business rule {code}: {}", .api.message)]
    BusinessRule {
        /// The code, matchable.
        code: ErrorCode,
        /// The full answer.
        api: ApiError,
    },
    /// 400 without a code: the request itself is wrong (`details` per field).
    #[error("DHMAD rejected the request: {}", .0.message)]
    Validation(ApiError),
    /// 409: e.g. `PROOF_NOT_ACCEPTED`; the state does not allow it yet.
    #[error("DHMAD conflict{}: {}", .0.code.as_ref().map(|c| format!(" {c}")).unwrap_or_default(), .0.message)]
    Conflict(ApiError),
    /// 429: wait until `reset` (or `retry_after`).
    #[error("DHMAD rate limit reached")]
    RateLimited {
        /// `retryAfter` of the body.
        retry_after: Option<Duration>,
        /// `X-RateLimit-Reset`.
        reset: Option<OffsetDateTime>,
        /// The full answer.
        api: ApiError,
    },
    /// Not sent: the client's [`Gate`](crate::Gate) refused the call (the caller's own rate
    /// budget is spent). Nothing reached DHMAD, so a write is safe to send later; `retry_after`
    /// is about when the gate expects to admit a call. Never retried by the client.
    #[error("DHMAD call not sent: the call budget is spent for now (about {} s)", .retry_after.as_secs())]
    Throttled {
        /// About how long until a call may go out.
        retry_after: Duration,
    },
    /// 5xx: DHMAD failed; safe to retry reads, reconcile writes.
    #[error("DHMAD server error (HTTP {})", .0.status)]
    Server(ApiError),
    /// Another status (a redirect, 405, 413, …).
    #[error("unexpected HTTP {} from DHMAD: {}", .0.status, .0.message)]
    Unexpected(ApiError),
    /// No answer within the timeout. For a write, the outcome is unknown: reconcile.
    #[error("DHMAD did not answer in time")]
    Timeout,
    /// Connection or protocol failure (DNS, TCP, TLS, a connection closed mid-answer).
    /// Transient; for a write, the outcome may be unknown if the failure came after sending.
    #[error("could not reach DHMAD: {0}")]
    Transport(#[source] TransportError),
    /// Not sent: an id that cannot name one path segment (empty, `.` or `..`, or holding a
    /// control character), which URL parsing would otherwise turn into another endpoint.
    /// DHMAD's ids are hex or UUIDs (`docs/dhmad-api.md` §1.6); never retried.
    #[error("not a DHMAD id: {0:?}")]
    InvalidId(String),
    /// An answer longer than [`MAX_ANSWER_BYTES`](crate::MAX_ANSWER_BYTES): not read further
    /// (a misrouted base URL or a faulty proxy must not fill the memory). Like [`Error::Decode`],
    /// for a write the outcome is unknown.
    #[error("DHMAD's answer (HTTP {status}) is over {limit} bytes: not read")]
    TooLarge {
        /// HTTP status.
        status: u16,
        /// The limit it passed.
        limit: usize,
    },
    /// A success status whose body is not the documented shape. DHMAD did what was asked: a
    /// write (a created escrow, an opened session) must not be sent again; read what it made.
    #[error("could not read DHMAD's answer (HTTP {status}): {source}")]
    Decode {
        /// HTTP status.
        status: u16,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Maps an error status and body to the matching variant.
    pub fn from_response(status: u16, body: &[u8], reset: Option<OffsetDateTime>) -> Self {
        let api = ApiError::parse(status, body);
        // Shape B says what it is: a business rule refused the call, whatever the status (the
        // contract leaves some unstated, `SELLER_NOT_READY`'s among them). Not for the statuses
        // whose variant callers act on: 401, 404, 409 (`PROOF_NOT_ACCEPTED`), 429.
        let rule = api.kind.as_deref() == Some("business_rule_violation");
        if let (true, Some(code), 402..=499) = (rule, api.code.clone(), status) {
            if !matches!(status, 404 | 409 | 429) {
                return Error::BusinessRule { code, api };
            }
        }
        match status {
            400 => match api.code.clone() {
                Some(code) => Error::BusinessRule { code, api },
                None => Error::Validation(api),
            },
            401 => Error::Unauthorized(api),
            // DHMAD says what it has not found or refuses (`{"error":"Escrow not found"}`); a
            // bare or HTML 404 or 403 (a wrong base URL, a proxy's, a web firewall's or a
            // maintenance page) says nothing about the resource, and taking it for "no such
            // escrow" or "not yours" would make a caller give up on one that exists.
            403 if api.error.is_some() || api.code.is_some() => Error::Forbidden(api),
            404 if api.error.is_some() || api.code.is_some() => Error::NotFound(api),
            409 => Error::Conflict(api),
            429 => Error::RateLimited {
                retry_after: api.retry_after.map(Duration::from_secs),
                reset,
                api,
            },
            500..=599 => Error::Server(api),
            _ => Error::Unexpected(api),
        }
    }

    /// The API answer, for errors that have one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Unauthorized(a)
            | Error::Forbidden(a)
            | Error::NotFound(a)
            | Error::Validation(a)
            | Error::Conflict(a)
            | Error::Server(a)
            | Error::Unexpected(a) => Some(a),
            Error::BusinessRule { api, .. } | Error::RateLimited { api, .. } => Some(api),
            Error::Timeout
            | Error::Transport(_)
            | Error::Decode { .. }
            | Error::TooLarge { .. }
            | Error::InvalidId(_)
            | Error::Throttled { .. } => None,
        }
    }

    /// A 429 that is DHMAD's cap on new escrows, not its rate limit: older revisions of its
    /// docs had a daily cap of 10 escrows, answered with `{"limit", "count", "remaining"}` in
    /// the body (UNSTATED whether still enforced, §5.3). Waiting out the rate window does not
    /// lift it, and it says nothing about other calls.
    pub fn is_creation_cap(&self) -> bool {
        let Error::RateLimited { api, .. } = self else {
            return false;
        };
        api.body
            .get("limit")
            .is_some_and(serde_json::Value::is_number)
            && api
                .body
                .get("count")
                .is_some_and(serde_json::Value::is_number)
    }

    /// For a 429, how long DHMAD asks to wait: until `X-RateLimit-Reset` or the body's
    /// `retryAfter`, whichever is later (a reset already past counts for nothing: our clock
    /// may run ahead of DHMAD's); `None` for any other error, or a 429 with neither.
    pub fn rate_limit_wait(&self) -> Option<Duration> {
        let Error::RateLimited {
            retry_after, reset, ..
        } = self
        else {
            return None;
        };
        let until_reset = reset.and_then(|r| {
            let ms = (r - OffsetDateTime::now_utc()).whole_milliseconds();
            (ms > 0).then(|| Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)))
        });
        until_reset.max(*retry_after)
    }

    /// The machine-readable code, if DHMAD sent one.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.api().and_then(|a| a.code.as_ref())
    }

    /// The HTTP status, if DHMAD answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Decode { status, .. } | Error::TooLarge { status, .. } => Some(*status),
            other => other.api().map(|a| a.status),
        }
    }

    /// A message safe to show an end user, when DHMAD gave one.
    pub fn user_message(&self) -> Option<&str> {
        self.api().and_then(|a| a.user_message.as_deref())
    }

    /// Whether the same request may succeed later without change: timeouts, transport
    /// failures, 5xx, 429 and calls the gate held back. (Whether it is *safe* to resend is
    /// the caller's call.)
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Timeout
                | Error::Transport(_)
                | Error::Server(_)
                | Error::RateLimited { .. }
                | Error::Throttled { .. }
        )
    }
}

/// A failure of the HTTP layer: DHMAD could not be reached, or the connection broke before its
/// whole answer arrived. Carried by [`Error::Transport`] and [`crate::BuildError::Http`].
///
/// It hides which HTTP library the crate uses, so that can change without breaking callers.
/// `Display` gives the HTTP library's description and [`std::error::Error::source`] its cause
/// chain (e.g. the I/O error of a refused connection).
///
/// ```
/// fn describe(err: &dhmad::Error) -> &'static str {
///     match err {
///         dhmad::Error::Transport(t) if t.is_connect() => "DHMAD is unreachable",
///         dhmad::Error::Transport(_) => "the connection to DHMAD broke",
///         _ => "another error",
///     }
/// }
/// assert_eq!(describe(&dhmad::Error::Timeout), "another error");
/// ```
/// Its `Display` and `Debug` leave out the URL ([`url`](Self::url) gives it): a session's
/// path is a capability (its hosted page), and errors are logged.
pub struct TransportError {
    err: reqwest::Error,
    url: Option<url::Url>,
}

impl TransportError {
    pub(crate) fn new(err: reqwest::Error) -> Self {
        let url = err.url().cloned();
        Self {
            err: err.without_url(),
            url,
        }
    }

    /// The connection could not be opened (DNS, TCP or TLS): the request was not sent.
    pub fn is_connect(&self) -> bool {
        self.err.is_connect()
    }

    /// A timeout fired. [`Client`](crate::Client) calls report their timeouts as
    /// [`Error::Timeout`] instead, except one while connecting (nothing was sent): that one
    /// is an [`Error::Transport`] that [`is_connect`](Self::is_connect) too.
    pub fn is_timeout(&self) -> bool {
        self.err.is_timeout()
    }

    /// Reading the answer's body failed after its status arrived.
    pub fn is_body(&self) -> bool {
        self.err.is_body() || self.err.is_decode()
    }

    /// The URL the request went to, when known (it never holds the API key).
    pub fn url(&self) -> Option<&str> {
        self.url.as_ref().map(url::Url::as_str)
    }
}

impl std::fmt::Debug for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TransportError").field(&self.err).finish()
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.err, f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.err)
    }
}
