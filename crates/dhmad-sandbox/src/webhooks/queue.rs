//! One worker per URL: delivers jobs in order, applying the faults drawn for each.

use std::sync::Arc;
use std::time::Duration;

use dhmad::webhook::SignedDelivery;
use dhmad::WebhookEnvelope;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::log::{DeliveryLog, DeliveryRecord};
use super::DeliverySettings;
use crate::faults::WebhookFate;
use crate::metrics::{Metrics, WebhookOutcome};

/// A reordered event waits at most this long for a successor before it is sent anyway.
const HOLD_MAX: Duration = Duration::from_secs(5);

/// One event for one URL.
pub struct Job {
    pub envelope: Arc<WebhookEnvelope>,
    pub escrow_id: Option<String>,
    pub fate: WebhookFate,
}

pub struct Worker {
    pub url: String,
    pub settings: Arc<DeliverySettings>,
    pub http: reqwest::Client,
    pub log: Arc<DeliveryLog>,
    pub metrics: Arc<Metrics>,
}

enum Next {
    Job(Job),
    Closed,
    HoldExpired,
}

impl Worker {
    pub async fn run(self, mut rx: mpsc::UnboundedReceiver<Job>, cancel: CancellationToken) {
        let mut held: Option<Job> = None;
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return,
                n = recv(&mut rx, held.is_some()) => n,
            };
            match next {
                Next::Job(job) if job.fate.reorder && held.is_none() => held = Some(job),
                Next::Job(job) => {
                    self.process(job).await;
                    if let Some(h) = held.take() {
                        self.process(h).await;
                    }
                }
                Next::HoldExpired => {
                    if let Some(h) = held.take() {
                        self.process(h).await;
                    }
                }
                Next::Closed => {
                    if let Some(h) = held.take() {
                        self.process(h).await;
                    }
                    return;
                }
            }
        }
    }

    async fn process(&self, job: Job) {
        if job.fate.drop {
            self.record(&job, 0, None, Some("dropped by fault injection".into()));
            self.metrics.webhook(WebhookOutcome::Dropped);
            return;
        }
        if job.fate.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(job.fate.delay_ms)).await;
        }
        self.deliver(&job).await;
        if job.fate.duplicate {
            self.deliver(&job).await;
        }
    }

    /// 1 try + one retry per configured delay, on 5xx / timeout / connection error.
    async fn deliver(&self, job: &Job) {
        let tries = self.settings.retry_delays.len() as u32 + 1;
        for attempt in 1..=tries {
            let mut signed = SignedDelivery::new(
                &self.settings.secret,
                &job.envelope,
                OffsetDateTime::now_utc(),
            );
            if job.fate.corrupt_signature {
                signed.signature = dhmad::webhook::sign("corrupted-by-sandbox", &signed.body);
            }
            let mut req = self
                .http
                .post(&self.url)
                .timeout(self.settings.timeout)
                .body(signed.body.clone());
            for (name, value) in signed.headers() {
                req = req.header(name, value);
            }
            let (retry, delivered) = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    self.record(job, attempt, Some(status), None);
                    (status >= 500, resp.status().is_success())
                }
                Err(e) => {
                    let what = if e.is_timeout() {
                        "timeout"
                    } else {
                        "connection error"
                    };
                    let why = root_cause(&e);
                    self.record(job, attempt, None, Some(format!("{what}: {why}")));
                    (true, false)
                }
            };
            let outcome = if delivered {
                WebhookOutcome::Delivered
            } else if retry && attempt < tries {
                WebhookOutcome::Retried
            } else {
                WebhookOutcome::Failed
            };
            self.metrics.webhook(outcome);
            if !retry {
                return;
            }
            if let Some(delay) = self.settings.retry_delays.get(attempt as usize - 1) {
                tokio::time::sleep(*delay).await;
            }
        }
    }

    fn record(&self, job: &Job, attempt: u32, status: Option<u16>, error: Option<String>) {
        tracing::debug!(url = %self.url, event = %job.envelope.event_type, attempt, ?status, "webhook attempt");
        self.log.push(DeliveryRecord {
            event_id: job.envelope.id.clone(),
            event_type: job.envelope.event_type.clone(),
            escrow_id: job.escrow_id.clone(),
            url: self.url.clone(),
            attempt,
            status,
            error,
            at: OffsetDateTime::now_utc(),
        });
    }
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<Job>, holding: bool) -> Next {
    let fut = rx.recv();
    if holding {
        match tokio::time::timeout(HOLD_MAX, fut).await {
            Ok(Some(j)) => Next::Job(j),
            Ok(None) => Next::Closed,
            Err(_) => Next::HoldExpired,
        }
    } else {
        match fut.await {
            Some(j) => Next::Job(j),
            None => Next::Closed,
        }
    }
}

/// The innermost error text (reqwest's outer message repeats the URL).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
