//! The call gate: a hook that decides, before each HTTP exchange, whether it may go out now.
//!
//! DHMAD counts calls per key (or address) in a sliding minute. A process that shares that
//! budget with others (several instances of a shop, background jobs) needs one place that
//! says "not now": the gate. A refused call is never sent and fails with
//! [`Error::Throttled`](crate::Error::Throttled), which the client does not retry: the caller
//! knows best whether to wait, queue the work or give up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What [`Gate::admit`] returns.
pub type Admission<'a> = Pin<Box<dyn Future<Output = Result<(), Duration>> + Send + 'a>>;

/// Decides whether a call may be sent now. Set with
/// [`ClientBuilder::gate`](super::ClientBuilder::gate) or [`Client::with_gate`](super::Client::with_gate).
///
/// # Examples
///
/// A gate that lets every other call through:
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
///
/// struct EveryOther(AtomicU32);
///
/// impl dhmad::Gate for EveryOther {
///     fn admit(&self) -> dhmad::Admission<'_> {
///         let n = self.0.fetch_add(1, Ordering::Relaxed);
///         Box::pin(async move {
///             if n % 2 == 0 { Ok(()) } else { Err(Duration::from_secs(1)) }
///         })
///     }
/// }
///
/// let client = dhmad::Client::builder("sk_sandbox_example")
///     .gate(EveryOther(AtomicU32::new(0)))
///     .build()
///     .unwrap();
/// ```
pub trait Gate: Send + Sync + 'static {
    /// `Ok(())` to send the call now; `Err(wait)` to refuse it, `wait` being about how long
    /// until a call may go out.
    fn admit(&self) -> Admission<'_>;

    /// DHMAD answered 429 and asked to wait `wait` (see [`Error::rate_limit_wait`](crate::Error::rate_limit_wait)):
    /// a gate that keeps a budget can hold every call back until then. Not called for DHMAD's
    /// cap on new escrows ([`Error::is_creation_cap`](crate::Error::is_creation_cap)), which
    /// holds back no other call. Does nothing by default.
    fn rate_limited(&self, wait: Duration) -> Notice<'_> {
        let _ = wait;
        Box::pin(async {})
    }
}

/// What [`Gate::rate_limited`] returns.
pub type Notice<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

#[derive(Clone, Default)]
pub(super) struct GateSlot(pub(super) Option<Arc<dyn Gate>>);

impl std::fmt::Debug for GateSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

impl GateSlot {
    pub(super) async fn admit(&self) -> Result<(), Duration> {
        match &self.0 {
            Some(g) => g.admit().await,
            None => Ok(()),
        }
    }

    pub(super) async fn rate_limited(&self, wait: Duration) {
        if let Some(g) = &self.0 {
            g.rate_limited(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::{routing::get, Router};

    use crate::{Client, Error, RetryPolicy};

    /// Admits the first `n` calls, then refuses.
    struct Budget(AtomicU32);

    impl super::Gate for Budget {
        fn admit(&self) -> super::Admission<'_> {
            let left = self
                .0
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            Box::pin(async move { left.map(|_| ()).map_err(|_| Duration::from_secs(7)) })
        }
    }

    #[tokio::test]
    async fn a_refused_call_is_not_sent_nor_retried_and_other_handles_are_unaffected() {
        let hits = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&hits);
        let app = Router::new().route(
            "/api/v1/me",
            get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { http::StatusCode::SERVICE_UNAVAILABLE }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let seen = Arc::new(Mutex::new(0));
        let observed = Arc::clone(&seen);
        let client = Client::builder("sk_sandbox_example")
            .base_url(format!("http://{addr}/api/v1"))
            .retry_policy(RetryPolicy {
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(1),
                ..RetryPolicy::default()
            })
            .observer(move |_| *observed.lock().unwrap() += 1)
            .gate(Budget(AtomicU32::new(2)))
            .build()
            .unwrap();
        assert!(format!("{client:?}").contains("gate: Some(..)"));

        // A read is retried after its 503: two attempts pass the gate, the third is held back
        // and ends the call (not retried, not sent).
        let err = client.me().await.unwrap_err();
        assert!(
            matches!(err, Error::Throttled { retry_after } if retry_after == Duration::from_secs(7)),
            "{err:?}"
        );
        assert!(err.is_transient() && err.api().is_none() && err.status().is_none());
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2,
            "only admitted calls reach the server"
        );
        assert_eq!(*seen.lock().unwrap(), 2, "the observer sees exchanges only");

        // Another gate over the same connections is its own budget.
        let open = client.with_gate(Budget(AtomicU32::new(1)));
        assert!(matches!(open.me().await, Err(Error::Throttled { .. })));
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    /// Records what DHMAD's 429s asked the gate to wait.
    struct Told(Mutex<Vec<Duration>>);

    impl super::Gate for Arc<Told> {
        fn admit(&self) -> super::Admission<'_> {
            Box::pin(async { Ok(()) })
        }

        fn rate_limited(&self, wait: Duration) -> super::Notice<'_> {
            self.0.lock().unwrap().push(wait);
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn a_429_tells_the_gate_how_long_dhmad_asked_to_wait() {
        let app = Router::new().route(
            "/api/v1/me",
            get(|| async {
                (
                    http::StatusCode::TOO_MANY_REQUESTS,
                    r#"{"error":"Too Many Requests","message":"slow down","retryAfter":7}"#,
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let told = Arc::new(Told(Mutex::new(Vec::new())));
        let client = Client::builder("sk_sandbox_example")
            .base_url(format!("http://{addr}/api/v1"))
            .retry_policy(RetryPolicy::none())
            .gate(Arc::clone(&told))
            .build()
            .unwrap();
        let err = client.me().await.unwrap_err();
        assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
        assert_eq!(*told.0.lock().unwrap(), [Duration::from_secs(7)]);
    }
}
