//! Prometheus metrics behind `GET /metrics`: HTTP requests, webhooks, DHMAD calls, the outbox
//! and the reconciler.
//!
//! Each [`AppState`](crate::state::AppState) owns its recorder and records through
//! `metrics::with_local_recorder`, never a global one: the tests run several storefronts (and
//! sandboxes, which do the same) in one process, and each one's counters must stay its own.
//! A leaf like `state.rs`: callers hand it plain values (`&'static str` labels from closed
//! sets, never a raw path or an id, so the number of series stays bounded).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use dhmad::client::CallRecord;
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Histogram, Unit,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const HTTP_REQUESTS: &str = "storefront_http_requests_total";
const HTTP_DURATION: &str = "storefront_http_request_duration_seconds";
const WEBHOOKS: &str = "storefront_webhooks_total";
const WEBHOOK_REFUSALS: &str = "storefront_webhook_refusals_total";
const DHMAD_CALLS: &str = "storefront_dhmad_calls_total";
const DHMAD_DURATION: &str = "storefront_dhmad_call_duration_seconds";
const DHMAD_BUDGET: &str = "storefront_dhmad_rate_limit_remaining";
const OUTBOX_BACKLOG: &str = "storefront_outbox_backlog";
const OUTBOX_ATTEMPTS: &str = "storefront_outbox_attempts_total";
const OUTBOX_GIVEN_UP: &str = "storefront_outbox_given_up_total";
const RECONCILER_RUNS: &str = "storefront_reconciler_runs_total";
const RECONCILER_ORDERS: &str = "storefront_reconciler_orders_total";
const RECONCILER_LAG: &str = "storefront_reconciler_lag_seconds";
const CHECKOUT_TO_PAID: &str = "storefront_checkout_to_paid_seconds";

/// Latency buckets (seconds) of requests and DHMAD calls: a page in milliseconds, a checkout
/// (two DHMAD calls, each up to `DHMAD_TIMEOUT_SECS`) in up to tens of seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Checkout to paid (seconds): a buyer pays within minutes, or within a day at most.
const PAYMENT_BUCKETS: &[f64] = &[
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    4.0 * 3600.0,
    24.0 * 3600.0,
];
/// Histogram observations are buffered until drained; drain every this many, so a storefront
/// nobody scrapes does not grow (a scrape drains them too).
const UPKEEP_EVERY: u64 = 4096;

/// What happened to a verified, readable webhook (the handler's `result`).
pub const WEBHOOK_OUTCOMES: &[&str] = &["processed", "duplicate", "ignored", "unmatched"];

/// Why a webhook was refused (4xx: DHMAD does not retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookRefusal {
    /// Missing, malformed or wrong signature (401).
    Signature,
    /// Timestamp outside the tolerance, either way (400).
    Stale,
    /// Unreadable headers or body: no timestamp, not JSON, not an envelope (400).
    Malformed,
    /// Larger than the webhook body limit (413).
    TooLarge,
}

impl WebhookRefusal {
    const ALL: [Self; 4] = [
        Self::Signature,
        Self::Stale,
        Self::Malformed,
        Self::TooLarge,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Stale => "stale",
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
        }
    }
}

/// One storefront's recorder and the handle that renders it.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    observations: AtomicU64,
    http: RwLock<HttpSeries>,
}

/// The HTTP series met so far, by route, then method and status: registered once each, as
/// building a labelled key and finding it in the registry on every request was a tenth of the
/// CPU of a `GET /healthz` (BENCHMARKS.md, item 20). Bounded like the labels themselves.
type HttpSeries = HashMap<String, HashMap<(&'static str, u16), (Counter, Histogram)>>;

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(CHECKOUT_TO_PAID.into()), PAYMENT_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            })
            .map(PrometheusBuilder::build_recorder)
            // Only an empty bucket list fails, and both lists are constants.
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let m = Self {
            recorder,
            handle,
            observations: AtomicU64::new(0),
            http: RwLock::default(),
        };
        m.with(|| {
            describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by method, matched route and status");
            describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request latency, by method and matched route");
            describe_counter!(WEBHOOKS, "verified DHMAD webhooks, by outcome (processed, duplicate, ignored, unmatched, failed)");
            describe_counter!(WEBHOOK_REFUSALS, "refused DHMAD webhooks, by reason (signature, stale, malformed, too_large)");
            describe_counter!(DHMAD_CALLS, "HTTP exchanges with DHMAD (retries included), by method, endpoint and status (timeout, error: no answer)");
            describe_histogram!(DHMAD_DURATION, Unit::Seconds, "latency of one exchange with DHMAD, by method and endpoint");
            describe_gauge!(DHMAD_BUDGET, "calls left in DHMAD's rate-limit window (X-RateLimit-Remaining of the last answer)");
            describe_gauge!(OUTBOX_BACKLOG, "outbox jobs not done yet (due or waiting for their retry)");
            describe_counter!(OUTBOX_ATTEMPTS, "outbox job attempts, by kind and outcome (done, retry, gave_up)");
            describe_counter!(OUTBOX_GIVEN_UP, "outbox jobs given up after their last attempt, by kind");
            describe_counter!(RECONCILER_RUNS, "reconciler passes, by whether the pass stopped early to leave DHMAD's window to checkouts");
            describe_counter!(RECONCILER_ORDERS, "orders the reconciler handled, by result (checked, changed, failed, flagged, creation_resolved, duplicate_cancelled, deliver_requeued)");
            describe_gauge!(RECONCILER_LAG, Unit::Seconds, "at the last pass, time since the oldest order due a look last heard from DHMAD (0: none due)");
            describe_histogram!(CHECKOUT_TO_PAID, Unit::Seconds, "time from an order's checkout to DHMAD holding the money");
            // Known series start at zero, so a rate is defined before the first event.
            for outcome in WEBHOOK_OUTCOMES.iter().chain(&["failed"]) {
                counter!(WEBHOOKS, "outcome" => *outcome).absolute(0);
            }
            for reason in WebhookRefusal::ALL {
                counter!(WEBHOOK_REFUSALS, "reason" => reason.label()).absolute(0);
            }
            gauge!(OUTBOX_BACKLOG).set(0.0);
            gauge!(RECONCILER_LAG).set(0.0);
        });
        m
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// Counts a histogram observation; drains the buffers now and then.
    fn observed(&self) {
        if self.observations.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.handle.run_upkeep();
        }
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// One answered HTTP request. `route` is the matched route template (`/orders/{id}`) or
    /// `unmatched`, never the raw path.
    pub fn http_request(&self, method: &'static str, route: &str, status: u16, took: Duration) {
        let took = took.as_secs_f64();
        let known = self.http.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((count, time)) = known.get(route).and_then(|r| r.get(&(method, status))) {
            count.increment(1);
            time.record(took);
        } else {
            drop(known);
            let (count, time) = self.with(|| {
                (
                    counter!(HTTP_REQUESTS, "method" => method, "route" => route.to_owned(), "status" => status.to_string()),
                    histogram!(HTTP_DURATION, "method" => method, "route" => route.to_owned()),
                )
            });
            count.increment(1);
            time.record(took);
            self.http
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(route.to_owned())
                .or_default()
                .insert((method, status), (count, time));
        }
        self.observed();
    }

    /// A verified webhook handled: one of [`WEBHOOK_OUTCOMES`], or `failed` (answered 5xx,
    /// DHMAD retries).
    pub fn webhook(&self, outcome: &'static str) {
        self.with(|| counter!(WEBHOOKS, "outcome" => outcome).increment(1));
    }

    /// A webhook refused.
    pub fn webhook_refused(&self, reason: WebhookRefusal) {
        self.with(|| counter!(WEBHOOK_REFUSALS, "reason" => reason.label()).increment(1));
    }

    /// One exchange with DHMAD (the `dhmad` client's observer).
    pub fn dhmad_call(&self, call: &CallRecord) {
        let status = match call.status {
            Some(s) => s.to_string(),
            None if call.timed_out => "timeout".to_owned(),
            None => "error".to_owned(),
        };
        let method = call.method.as_str().to_owned();
        self.with(|| {
            counter!(DHMAD_CALLS, "method" => method.clone(), "endpoint" => call.endpoint, "status" => status)
                .increment(1);
            histogram!(DHMAD_DURATION, "method" => method, "endpoint" => call.endpoint)
                .record(call.elapsed.as_secs_f64());
            if let Some(left) = call.rate_limit.and_then(|rl| rl.remaining) {
                gauge!(DHMAD_BUDGET).set(f64::from(left));
            }
        });
        self.observed();
    }

    /// Outbox jobs not done yet.
    pub fn outbox_backlog(&self, jobs: i64) {
        self.with(|| gauge!(OUTBOX_BACKLOG).set(jobs as f64));
    }

    /// One outbox attempt of a job of `kind`: `done`, `retry` or `gave_up`.
    pub fn outbox_attempt(&self, kind: &str, outcome: &'static str) {
        let kind = kind.to_owned();
        self.with(|| {
            counter!(OUTBOX_ATTEMPTS, "kind" => kind.clone(), "outcome" => outcome).increment(1);
            if outcome == "gave_up" {
                counter!(OUTBOX_GIVEN_UP, "kind" => kind).increment(1);
            }
        });
    }

    /// One reconciler pass; `yielded` when it stopped early for checkouts.
    pub fn reconciler_run(&self, yielded: bool) {
        let yielded = if yielded { "true" } else { "false" };
        self.with(|| counter!(RECONCILER_RUNS, "yielded" => yielded).increment(1));
    }

    /// `n` orders the reconciler handled with `result`.
    pub fn reconciler_orders(&self, result: &'static str, n: usize) {
        if n > 0 {
            self.with(|| counter!(RECONCILER_ORDERS, "result" => result).increment(n as u64));
        }
    }

    /// Time since the oldest order due a look last heard from DHMAD (zero when none is due).
    pub fn reconciler_lag(&self, lag: Duration) {
        self.with(|| gauge!(RECONCILER_LAG).set(lag.as_secs_f64()));
    }

    /// An order went from checkout to DHMAD holding the money in `took`.
    pub fn checkout_to_paid(&self, took: Duration) {
        self.with(|| histogram!(CHECKOUT_TO_PAID).record(took.as_secs_f64()));
        self.observed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_instance_counts_alone_and_names_follow_prometheus() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.http_request("GET", "/orders/{id}", 200, Duration::from_millis(3));
        a.webhook("processed");
        a.webhook_refused(WebhookRefusal::TooLarge);
        let text = a.render();
        assert!(
            text.contains(
                r#"storefront_http_requests_total{method="GET",route="/orders/{id}",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"storefront_webhooks_total{outcome="processed"} 1"#));
        assert!(text.contains(r#"storefront_webhook_refusals_total{reason="too_large"} 1"#));
        assert!(text.contains("storefront_http_request_duration_seconds_bucket"));
        assert!(text.contains("# TYPE storefront_outbox_backlog gauge"));
        let other = b.render();
        assert!(
            !other.contains("storefront_http_requests_total{"),
            "{other}"
        );
        assert!(other.contains(r#"storefront_webhooks_total{outcome="processed"} 0"#));
    }

    #[test]
    fn each_series_counts_its_own_requests_and_the_latency_all_of_its_route() {
        let m = Metrics::new();
        for (method, route, status) in [
            ("GET", "/", 200),
            ("GET", "/", 404),
            ("GET", "/", 200),
            ("POST", "/", 200),
            ("GET", "/x", 200),
        ] {
            m.http_request(method, route, status, Duration::from_millis(1));
        }
        let text = m.render();
        for line in [
            r#"storefront_http_requests_total{method="GET",route="/",status="200"} 2"#,
            r#"storefront_http_requests_total{method="GET",route="/",status="404"} 1"#,
            r#"storefront_http_requests_total{method="POST",route="/",status="200"} 1"#,
            r#"storefront_http_requests_total{method="GET",route="/x",status="200"} 1"#,
            r#"storefront_http_request_duration_seconds_count{method="GET",route="/"} 3"#,
            r#"storefront_http_request_duration_seconds_count{method="POST",route="/"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn upkeep_keeps_histograms_whole() {
        let m = Metrics::new();
        for _ in 0..(UPKEEP_EVERY + 10) {
            m.http_request("GET", "/", 200, Duration::from_millis(1));
        }
        let text = m.render();
        let count = format!(
            r#"storefront_http_request_duration_seconds_count{{method="GET",route="/"}} {}"#,
            UPKEEP_EVERY + 10
        );
        assert!(text.contains(&count), "{text}");
    }
}
