//! Prometheus metrics behind `GET /metrics`.
//!
//! Each sandbox owns its recorder and records through `metrics::with_local_recorder`, never a
//! global one: tests run several sandboxes in one process, next to a host app that may install
//! its own global recorder, and each sandbox's counters must stay its own.

use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, describe_counter, describe_histogram, histogram, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::state::AppState;

const API_REQUESTS: &str = "dhmad_sandbox_api_requests_total";
const API_DURATION: &str = "dhmad_sandbox_api_request_duration_seconds";
const WEBHOOKS: &str = "dhmad_sandbox_webhook_deliveries_total";
const SESSIONS: &str = "dhmad_sandbox_checkout_sessions_created_total";
const TRANSITIONS: &str = "dhmad_sandbox_escrow_transitions_total";

/// Latency buckets (seconds): a local emulator answers in well under a second.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// What happened to one webhook attempt.
#[derive(Debug, Clone, Copy)]
pub enum WebhookOutcome {
    /// 2xx.
    Delivered,
    /// Failed, another attempt follows.
    Retried,
    /// Failed for good (3xx/4xx, or the last attempt).
    Failed,
    /// Dropped by fault injection, never sent.
    Dropped,
}

impl WebhookOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retried => "retried",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
        }
    }
}

/// One sandbox's recorder and the handle that renders it.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe_counter!(API_REQUESTS, "/api/v1 requests by route and status");
            describe_histogram!(API_DURATION, Unit::Seconds, "/api/v1 request latency");
            describe_counter!(WEBHOOKS, "webhook delivery attempts by outcome");
            describe_counter!(SESSIONS, "checkout sessions created by action");
            describe_counter!(TRANSITIONS, "escrow status changes by old and new status");
        });
        Self { recorder, handle }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram buffers; called by the deadline ticker.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    fn with(&self, f: impl FnOnce()) {
        metrics::with_local_recorder(&self.recorder, f);
    }

    /// One answered `/api/v1` request.
    pub fn api_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let (method, route) = (method.to_owned(), route.to_owned());
        self.with(|| {
            let status = status.to_string();
            counter!(API_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
                .increment(1);
            histogram!(API_DURATION, "method" => method, "route" => route).record(took.as_secs_f64());
        });
    }

    /// One webhook attempt.
    pub fn webhook(&self, outcome: WebhookOutcome) {
        self.with(|| counter!(WEBHOOKS, "outcome" => outcome.label()).increment(1));
    }

    /// One checkout session created.
    pub fn session_created(&self, action: String) {
        self.with(|| counter!(SESSIONS, "action" => action).increment(1));
    }

    /// One escrow status change.
    pub fn transition(&self, from: String, to: String) {
        self.with(|| counter!(TRANSITIONS, "from" => from, "to" => to).increment(1));
    }
}

/// Middleware of `/api/v1`: counts and times every request by its route template (not the raw
/// path, which would make one series per escrow id).
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Only the methods HTTP names: a label from anything a caller sends (before it is
    // authenticated) would add series without end.
    let method = match *req.method() {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::HEAD
        | Method::OPTIONS => req.method().as_str(),
        _ => "other",
    }
    .to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    state
        .metrics
        .api_request(&method, &route, resp.status().as_u16(), start.elapsed());
    resp
}

/// `GET /metrics`.
pub async fn page(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
