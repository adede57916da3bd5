//! The call observer: a hook that sees every HTTP exchange with DHMAD, for metrics and logs.

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::RateLimit;

/// One HTTP exchange with DHMAD, as handed to the observer set with
/// [`ClientBuilder::observer`](super::ClientBuilder::observer).
///
/// Each attempt is one record: a read retried twice gives three. New fields may be added in a
/// minor release, so the struct cannot be built or matched exhaustively outside this crate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallRecord {
    /// The HTTP method.
    pub method: Method,
    /// The path below the API base with every id replaced by `{id}` (`/escrows/{id}/deliver`,
    /// `/sessions/{id}`): a label of bounded cardinality, unlike the URL.
    pub endpoint: &'static str,
    /// The HTTP status, or `None` when no answer came (timeout, connection or body error).
    pub status: Option<u16>,
    /// `true` when the attempt timed out.
    pub timed_out: bool,
    /// From sending the request to the end of the answer's body (or the failure).
    pub elapsed: Duration,
    /// 0 for the first attempt, then 1, 2, … for the retries.
    pub attempt: u32,
    /// The answer's `X-RateLimit-*` headers, if it carried any.
    pub rate_limit: Option<RateLimit>,
}

pub(super) type ObserverFn = Arc<dyn Fn(&CallRecord) + Send + Sync>;

/// The optional observer, with a `Debug` that does not try to print a closure.
#[derive(Clone, Default)]
pub(super) struct Observer(pub(super) Option<ObserverFn>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

impl Observer {
    pub(super) fn notify(&self, record: &CallRecord) {
        if let Some(f) = &self.0 {
            f(record);
        }
    }
}

/// The endpoint template of a call's path segments: literals at even positions, ids at odd
/// ones (`["escrows", id, "deliver"]`), which is how every method of the client builds them.
pub(super) fn endpoint(path: &[&str]) -> &'static str {
    match path {
        ["me"] => "/me",
        ["balance"] => "/balance",
        ["escrows"] => "/escrows",
        ["escrows", _] => "/escrows/{id}",
        ["escrows", _, "deliver"] => "/escrows/{id}/deliver",
        ["escrows", _, "reject-delivery"] => "/escrows/{id}/reject-delivery",
        ["escrows", _, "cancel"] => "/escrows/{id}/cancel",
        ["escrows", _, "proof"] => "/escrows/{id}/proof",
        ["escrows", _, "contract"] => "/escrows/{id}/contract",
        ["escrows", _, "sessions"] => "/escrows/{id}/sessions",
        ["sessions", _] => "/sessions/{id}",
        ["identity-verifications"] => "/identity-verifications",
        ["identity-verifications", _] => "/identity-verifications/{id}",
        _ => "other",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::get;

    use super::{endpoint, CallRecord};
    use crate::{Client, Error, RetryPolicy};

    #[test]
    fn ids_never_reach_the_endpoint_label() {
        assert_eq!(endpoint(&["escrows", "66aa"]), "/escrows/{id}");
        assert_eq!(
            endpoint(&["escrows", "66aa", "deliver"]),
            "/escrows/{id}/deliver"
        );
        assert_eq!(endpoint(&["sessions", "3f0c"]), "/sessions/{id}");
        assert_eq!(endpoint(&["escrows", "66aa", "something-new"]), "other");
    }

    /// A server whose `/escrows/{id}` answers 404 with rate-limit headers and whose `/me` fails
    /// twice with a 503 before answering.
    async fn server() -> String {
        let me_calls = Arc::new(Mutex::new(0));
        let app = axum::Router::new()
            .route(
                "/api/v1/escrows/{id}",
                get(|| async {
                    (
                        StatusCode::NOT_FOUND,
                        [
                            ("x-ratelimit-limit", "100"),
                            ("x-ratelimit-remaining", "42"),
                        ],
                        r#"{"error":"Escrow not found"}"#,
                    )
                }),
            )
            .route(
                "/api/v1/me",
                get(move || async move {
                    let mut n = me_calls.lock().unwrap();
                    *n += 1;
                    if *n <= 2 {
                        StatusCode::SERVICE_UNAVAILABLE.into_response()
                    } else {
                        StatusCode::IM_A_TEAPOT.into_response()
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/api/v1")
    }

    #[tokio::test]
    async fn the_observer_sees_every_attempt_with_its_template_status_and_budget() {
        let seen: Arc<Mutex<Vec<CallRecord>>> = Arc::default();
        let log = Arc::clone(&seen);
        let client = Client::builder("sk_sandbox_example")
            .base_url(server().await)
            .retry_policy(RetryPolicy {
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
                ..RetryPolicy::default()
            })
            .observer(move |c| log.lock().unwrap().push(c.clone()))
            .build()
            .unwrap();
        assert!(format!("{client:?}").contains("observer: Some(..)"));

        let err = client.get_escrow("66aa00000000000000000001").await;
        assert!(matches!(err, Err(Error::NotFound(_))), "{err:?}");
        let _ = client.me().await;
        // Nothing listens on port 9: no answer at all.
        let dead = Client::builder("sk_sandbox_example")
            .base_url("http://127.0.0.1:9/api/v1")
            .retry_policy(RetryPolicy::none())
            .observer({
                let log = Arc::clone(&seen);
                move |c| log.lock().unwrap().push(c.clone())
            })
            .build()
            .unwrap();
        let _ = dead.cancel_escrow("66aa00000000000000000001").await;

        let seen = seen.lock().unwrap();
        let summary: Vec<(String, &str, Option<u16>, u32)> = seen
            .iter()
            .map(|c| (c.method.to_string(), c.endpoint, c.status, c.attempt))
            .collect();
        assert_eq!(
            summary,
            [
                ("GET".into(), "/escrows/{id}", Some(404), 0),
                ("GET".into(), "/me", Some(503), 0),
                ("GET".into(), "/me", Some(503), 1),
                ("GET".into(), "/me", Some(418), 2),
                ("POST".into(), "/escrows/{id}/cancel", None, 0),
            ]
        );
        assert_eq!(seen[0].rate_limit.and_then(|r| r.remaining), Some(42));
        assert_eq!(client.rate_limit().and_then(|r| r.remaining), Some(42));
        assert!(seen[1].rate_limit.is_none());
        assert!(seen.iter().all(|c| !c.timed_out));
    }
}
