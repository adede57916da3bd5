//! Retry policy of reads and the rate-limit headers it honours.

use std::time::Duration;

use http::HeaderMap;
use time::OffsetDateTime;

use crate::error::Error;
use crate::iso;

/// The last `X-RateLimit-*` values DHMAD sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// `X-RateLimit-Limit`: requests per window.
    pub limit: Option<u32>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u32>,
    /// `X-RateLimit-Reset`: when the window frees up (DHMAD sends an ISO 8601 instant).
    pub reset: Option<OffsetDateTime>,
}

impl RateLimit {
    pub(super) fn from_headers(h: &HeaderMap) -> Option<Self> {
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
        let rl = RateLimit {
            limit: get("x-ratelimit-limit").and_then(|v| v.parse().ok()),
            remaining: get("x-ratelimit-remaining").and_then(|v| v.parse().ok()),
            reset: get("x-ratelimit-reset").and_then(parse_reset),
        };
        (rl.limit.is_some() || rl.remaining.is_some() || rl.reset.is_some()).then_some(rl)
    }
}

/// A `Retry-After` of seconds (an HTTP date is not read), at least one and at most a day, as
/// the body's `retryAfter`.
pub(super) fn retry_after_header(h: &HeaderMap) -> Option<Duration> {
    let secs: u64 = h.get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    (secs > 0).then(|| Duration::from_secs(secs.min(crate::error::MAX_RETRY_AFTER_SECS)))
}

/// DHMAD documents an ISO instant. Other servers send epoch seconds or seconds-to-wait;
/// accept both defensively (a number below 10^9 cannot be a recent epoch, so it is a delay).
fn parse_reset(v: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = iso::parse(v) {
        return Some(t);
    }
    let secs = v.parse::<i64>().ok()?;
    if (0..1_000_000_000).contains(&secs) {
        Some(OffsetDateTime::now_utc() + time::Duration::seconds(secs))
    } else {
        OffsetDateTime::from_unix_timestamp(secs).ok()
    }
}

/// How reads are retried. Writes follow it only after a 429, which DHMAD answers without acting;
/// after any other failure a write is never resent.
///
/// A read is retried after a timeout, a transport error, a 5xx or a 429, at most
/// `max_retries` times. Between attempts it waits an exponential backoff (`initial_backoff`,
/// doubling, capped at `max_backoff`) with equal jitter; after a 429 it waits instead until
/// `X-RateLimit-Reset` or for the body's `retryAfter` (else a `Retry-After` header of seconds),
/// whichever is later (a reset already past counts for nothing), unless that is further away
/// than `max_rate_limit_wait`, or neither is known: then the 429 is returned at once as
/// [`Error::RateLimited`].
///
/// ```
/// use std::time::Duration;
/// let patient = dhmad::RetryPolicy {
///     max_retries: 5,
///     initial_backoff: Duration::from_millis(500),
///     ..dhmad::RetryPolicy::default()
/// };
/// assert_eq!(patient.max_backoff, Duration::from_secs(5));
/// assert_eq!(dhmad::RetryPolicy::none().max_retries, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Backoff before the first retry; doubles each time.
    pub initial_backoff: Duration,
    /// Cap of one backoff.
    pub max_backoff: Duration,
    /// Longest wait for a rate-limit reset; a later reset returns the 429 at once.
    pub max_rate_limit_wait: Duration,
    /// Whether a read that got no answer within the timeout is tried again. A caller with a
    /// deadline of its own (a user waiting on a page) turns it off: each try may take the whole
    /// timeout, and four of them outlast most deadlines.
    pub retry_timeouts: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_rate_limit_wait: Duration::from_secs(10),
            retry_timeouts: true,
        }
    }
}

impl RetryPolicy {
    /// No retries at all, not even after a 429.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = dhmad::Client::builder("sk_sandbox_example")
    ///     .retry_policy(dhmad::RetryPolicy::none())
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The delay before retry number `retry` (0-based) after `err`, or `None` to give up.
    pub(super) fn delay(&self, retry: u32, err: &Error) -> Option<Duration> {
        // A call the gate held back is the gate owner's to schedule. DHMAD's cap on new
        // escrows is not lifted by the rate window's reset: a resend only meets it again.
        if retry >= self.max_retries
            || !err.is_transient()
            || matches!(err, Error::Throttled { .. })
            || err.is_creation_cap()
            || (matches!(err, Error::Timeout) && !self.retry_timeouts)
        {
            return None;
        }
        if matches!(err, Error::RateLimited { .. }) {
            // With no hint at all, an early retry only spends another call of the window:
            // the 429 goes back to the caller, whose budget knows when to try again.
            let wait = err.rate_limit_wait()?;
            return (wait <= self.max_rate_limit_wait)
                .then_some(wait.saturating_add(Duration::from_millis(50)));
        }
        let exp = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_backoff);
        // Equal jitter: half fixed, half random, so many clients do not retry in step.
        let half = exp / 2;
        let jitter = rand::random::<f64>() * half.as_secs_f64();
        let backoff = half + Duration::from_secs_f64(jitter);
        // A 5xx that says how long to wait (a gateway's 503 during maintenance): at least that
        // long, if it is within the backoff's own bound (a caller waiting on the read waits no
        // longer than before); else it comes back to the caller at once, as a far 429 does.
        match err {
            Error::Server(api) => match api.retry_after.map(Duration::from_secs) {
                Some(wait) if wait > self.max_backoff => None,
                Some(wait) => Some(backoff.max(wait)),
                None => Some(backoff),
            },
            _ => Some(backoff),
        }
    }
}
