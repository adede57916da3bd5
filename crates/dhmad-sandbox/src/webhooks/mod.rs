//! Signed webhook delivery (`docs/dhmad-api.md` §6.3–§6.6): one ordered queue per URL, retries on
//! 5xx / timeout / connection errors, none on 4xx, and a log of every attempt.

mod log;
mod queue;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dhmad::WebhookEnvelope;
use tokio::sync::mpsc;

pub use log::{DeliveryLog, DeliveryRecord};

use crate::faults::Faults;
use crate::metrics::Metrics;
use queue::{Job, Worker};

/// Settings shared by the per-URL workers.
pub struct DeliverySettings {
    pub secret: String,
    pub retry_delays: Vec<Duration>,
    pub timeout: Duration,
}

/// Fans events out to the configured URLs.
pub struct Dispatcher {
    urls: Mutex<Vec<String>>,
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
    settings: Arc<DeliverySettings>,
    faults: Arc<Faults>,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    /// Every attempt.
    pub log: Arc<DeliveryLog>,
    cancel: tokio_util::sync::CancellationToken,
}

impl Dispatcher {
    /// A dispatcher; workers start lazily on the current Tokio runtime.
    pub fn new(
        urls: Vec<String>,
        settings: DeliverySettings,
        faults: Arc<Faults>,
        metrics: Arc<Metrics>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("DHMAD-Webhooks/sandbox")
            .build()
            .expect("reqwest client builds");
        Self {
            urls: Mutex::new(urls),
            queues: Mutex::new(HashMap::new()),
            settings: Arc::new(settings),
            faults,
            metrics,
            http,
            log: Arc::new(DeliveryLog::default()),
            cancel,
        }
    }

    /// Replaces the target URLs (events already queued still go to their URL).
    pub fn set_urls(&self, urls: Vec<String>) {
        *self.urls.lock().expect("urls lock poisoned") = urls;
    }

    /// The target URLs.
    pub fn urls(&self) -> Vec<String> {
        self.urls.lock().expect("urls lock poisoned").clone()
    }

    /// Queues `envelope` for every URL. Never blocks.
    pub fn enqueue(&self, envelope: WebhookEnvelope, escrow_id: Option<String>) {
        let envelope = Arc::new(envelope);
        for url in self.urls() {
            self.enqueue_to(&url, envelope.clone(), escrow_id.clone());
        }
    }

    fn enqueue_to(&self, url: &str, envelope: Arc<WebhookEnvelope>, escrow_id: Option<String>) {
        let fate = self.faults.webhook_fate();
        let job = Job {
            envelope,
            escrow_id,
            fate,
        };
        let mut queues = self.queues.lock().expect("queues lock poisoned");
        let tx = queues.entry(url.to_owned()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let worker = Worker {
                url: url.to_owned(),
                settings: self.settings.clone(),
                http: self.http.clone(),
                log: self.log.clone(),
                metrics: self.metrics.clone(),
            };
            tokio::spawn(worker.run(rx, self.cancel.clone()));
            tx
        });
        if tx.send(job).is_err() {
            tracing::warn!(url, "webhook queue closed; event not delivered");
        }
    }
}
