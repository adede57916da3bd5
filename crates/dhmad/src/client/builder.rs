//! Configuration of a [`Client`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::gate::{Gate, GateSlot};
use super::observer::{CallRecord, Observer};
use super::{Client, Inner, RetryPolicy, SANDBOX_API_BASE};
use crate::error::TransportError;

/// Builds a [`Client`].
///
/// ```
/// use std::time::Duration;
/// let client = dhmad::Client::builder("sk_sandbox_0000000000000000000000000000000000000000000000000000000000000000")
///     .base_url("http://127.0.0.1:6002/api/v1")
///     .timeout(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// assert!(!format!("{client:?}").contains("sk_sandbox_0000"));
/// ```
#[derive(Debug)]
pub struct ClientBuilder {
    api_key: SecretString,
    base_url: String,
    connect_timeout: Duration,
    timeout: Duration,
    user_agent: String,
    retry: RetryPolicy,
    resend_writes: bool,
    observer: Observer,
    gate: GateSlot,
}

impl ClientBuilder {
    pub(super) fn new(api_key: String) -> Self {
        // A key read from a file or an `.env` line comes with its newline or a space: sent as
        // it is, it made no valid header, and every call failed as if DHMAD were unreachable.
        let api_key = match api_key.trim() {
            trimmed if trimmed.len() == api_key.len() => api_key,
            trimmed => trimmed.to_owned(),
        };
        Self {
            api_key: SecretString::from(api_key),
            base_url: SANDBOX_API_BASE.to_owned(),
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            user_agent: concat!("dhmad-rust/", env!("CARGO_PKG_VERSION")).to_owned(),
            retry: RetryPolicy::default(),
            resend_writes: true,
            observer: Observer::default(),
            gate: GateSlot::default(),
        }
    }

    /// API base including `/api/v1`; defaults to the local sandbox.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = dhmad::Client::builder("sk_sandbox_example")
    ///     .base_url("https://sandbox.example.tn/api/v1")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(client.base_url(), "https://sandbox.example.tn/api/v1");
    /// ```
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// TCP connect timeout (default 3 s; at most half of [`Self::timeout`], so that a
    /// connection that cannot be made is a connect error, the request never sent, rather than
    /// a timeout whose outcome a write cannot know).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let client = dhmad::Client::builder("sk_sandbox_example")
    ///     .connect_timeout(Duration::from_secs(1))
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Whole-request timeout, per attempt (default 10 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // A call that gets no answer in 5 s fails with `Error::Timeout` (reads are retried first).
    /// let client = dhmad::Client::builder("sk_sandbox_example")
    ///     .timeout(Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// `User-Agent` header.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = dhmad::Client::builder("sk_sandbox_example")
    ///     .user_agent(concat!("my-shop/", env!("CARGO_PKG_VERSION")))
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Retry policy of reads (writes are resent only after a 429, whatever the policy).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let client = dhmad::Client::builder("sk_sandbox_example")
    ///     .retry_policy(dhmad::RetryPolicy {
    ///         max_retries: 5,
    ///         max_rate_limit_wait: Duration::from_secs(30),
    ///         ..dhmad::RetryPolicy::default()
    ///     })
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Whether a write DHMAD answered with 429 is sent again after the wait the retry policy
    /// allows (default `true`: DHMAD did nothing, so no duplicate). With `false`, a write's 429
    /// comes back at once as [`Error::RateLimited`](crate::Error::RateLimited), for a caller
    /// that schedules its own writes (a queue, a shared call budget) and must know how long a
    /// write can stay in flight: one attempt, at most the timeout. Reads keep their retries.
    ///
    /// ```
    /// let client = dhmad::Client::builder("sk_sandbox_example")
    ///     .resend_writes_after_429(false)
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn resend_writes_after_429(mut self, yes: bool) -> Self {
        self.resend_writes = yes;
        self
    }

    /// Calls `f` after every HTTP exchange with DHMAD (each attempt, retries included) with its
    /// method, endpoint template, status, duration and rate-limit headers: the place to count
    /// and time calls for metrics. `f` runs on the task making the call, before its result is
    /// returned, so it must be quick and must not block. Setting it again replaces it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// use dhmad::client::CallRecord;
    ///
    /// let failed = Arc::new(AtomicU64::new(0));
    /// let seen = Arc::clone(&failed);
    /// let client = dhmad::Client::builder("sk_sandbox_example")
    ///     .observer(move |call: &CallRecord| {
    ///         // e.g. `GET /escrows/{id} -> Some(200) in 12ms, 97 calls left`
    ///         let left = call.rate_limit.and_then(|rl| rl.remaining);
    ///         eprintln!(
    ///             "{} {} -> {:?} in {:?}, {left:?} calls left",
    ///             call.method, call.endpoint, call.status, call.elapsed
    ///         );
    ///         match call.status {
    ///             Some(status) if status < 500 => {}
    ///             _ => {
    ///                 // a 5xx, a timeout or no connection
    ///                 seen.fetch_add(1, Ordering::Relaxed);
    ///             }
    ///         }
    ///     })
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(failed.load(Ordering::Relaxed), 0);
    /// ```
    pub fn observer(mut self, f: impl Fn(&CallRecord) + Send + Sync + 'static) -> Self {
        self.observer = Observer(Some(Arc::new(f)));
        self
    }

    /// Asks `gate` before every HTTP exchange (each attempt, retries included); a refused call
    /// is not sent and fails with [`Error::Throttled`](crate::Error::Throttled). See [`Gate`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // A gate that holds every call back (a budget spent until further notice).
    /// struct Closed;
    ///
    /// impl dhmad::Gate for Closed {
    ///     fn admit(&self) -> dhmad::Admission<'_> {
    ///         Box::pin(async { Err(Duration::from_secs(60)) })
    ///     }
    /// }
    ///
    /// let client = dhmad::Client::builder("sk_sandbox_example")
    ///     .gate(Closed)
    ///     .build()
    ///     .unwrap();
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// let err = rt.block_on(client.balance()).unwrap_err();
    /// assert!(matches!(err, dhmad::Error::Throttled { .. }));
    /// ```
    pub fn gate(mut self, gate: impl Gate) -> Self {
        self.gate = GateSlot(Some(Arc::new(gate)));
        self
    }

    /// Builds the client. Fails on a malformed base URL, an `http` one with a live key, or a
    /// TLS setup error.
    ///
    /// # Examples
    ///
    /// ```
    /// use dhmad::{BuildError, Client};
    ///
    /// assert!(Client::builder("sk_sandbox_example").build().is_ok());
    /// assert!(matches!(
    ///     Client::builder("sk_sandbox_example").base_url("ftp://example.tn").build(),
    ///     Err(BuildError::BaseUrl(_))
    /// ));
    /// // A live key only over https.
    /// assert!(matches!(
    ///     Client::builder("sk_live_example").base_url("http://dhmad.example/api/v1").build(),
    ///     Err(BuildError::BaseUrl(_))
    /// ));
    /// ```
    pub fn build(self) -> Result<Client, BuildError> {
        let mut base =
            Url::parse(self.base_url.trim()).map_err(|e| BuildError::BaseUrl(e.to_string()))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(BuildError::BaseUrl("expected an http(s) URL".into()));
        }
        // A live key is a production secret: it never travels in clear text. (A sandbox key
        // may, to a local emulator.)
        if base.scheme() == "http" && self.api_key.expose_secret().starts_with("sk_live_") {
            return Err(BuildError::BaseUrl(
                "a live API key (sk_live_) is only sent over https".into(),
            ));
        }
        // Refused here, not on every call as a transport failure (whose write may look sent).
        if reqwest::header::HeaderValue::from_str(self.api_key.expose_secret()).is_err() {
            return Err(BuildError::ApiKey);
        }
        base.path_segments_mut()
            .map_err(|_| BuildError::BaseUrl("expected an http(s) URL".into()))?
            .pop_if_empty();
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout.min(self.timeout / 2))
            .timeout(self.timeout)
            .user_agent(self.user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BuildError::Http(TransportError::new(e)))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                api_key: self.api_key,
                retry: self.retry,
                resend_writes: self.resend_writes,
                rate_limit: Mutex::new(None),
                observer: self.observer,
            }),
            gate: self.gate,
            retry: None,
        })
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The base URL does not parse as an http(s) URL.
    #[error("invalid DHMAD base URL: {0}")]
    BaseUrl(String),
    /// The API key holds characters no HTTP header can carry (not said which: it is secret).
    #[error("the DHMAD API key holds characters an HTTP header cannot carry")]
    ApiKey,
    /// The HTTP client could not be set up (e.g. the TLS backend failed to initialise).
    #[error("could not build the HTTP client: {0}")]
    Http(#[source] TransportError),
}
