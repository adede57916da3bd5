//! A tiny webhook receiver on 127.0.0.1:0: records each delivery, verifies its signature with
//! `dhmad::WebhookVerifier`, and answers statuses from a script (then 200).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use dhmad::WebhookVerifier;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub event_type: String,
    pub header_id: String,
    pub header_event: String,
    pub verified: bool,
    pub body: Value,
    pub at: Instant,
}

impl Delivery {
    pub fn escrow_status(&self) -> String {
        self.body["data"]["escrow"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

#[derive(Default)]
struct Inner {
    got: Vec<Delivery>,
    script: VecDeque<u16>,
}

#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    addr: std::net::SocketAddr,
}

impl Receiver {
    pub async fn start(secret: &str) -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let verifier = WebhookVerifier::new([secret.to_owned()]);
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state((inner.clone(), verifier));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { inner, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The next answers (then 200); 999 = answer 200 after 1.5 s.
    pub fn script(&self, statuses: &[u16]) {
        self.inner.lock().unwrap().script = statuses.iter().copied().collect();
    }

    pub fn all(&self) -> Vec<Delivery> {
        self.inner.lock().unwrap().got.clone()
    }

    pub fn types(&self) -> Vec<String> {
        self.all().into_iter().map(|d| d.event_type).collect()
    }

    /// Waits until at least `n` deliveries arrived (panics after 30 s: deliveries run in the
    /// background, late on a loaded machine).
    pub async fn wait(&self, n: usize) -> Vec<Delivery> {
        let start = Instant::now();
        loop {
            let got = self.all();
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "expected {n} deliveries, got {:?}",
                self.types()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits, then asserts nothing more arrives for `ms`.
    pub async fn settle(&self, ms: u64) -> Vec<Delivery> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.all()
    }
}

type St = (Arc<Mutex<Inner>>, WebhookVerifier);

async fn hook(State((inner, verifier)): State<St>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let verified = verifier.verify_headers(&headers, &body).is_ok();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = {
        let mut g = inner.lock().unwrap();
        g.got.push(Delivery {
            id: json["id"].as_str().unwrap_or_default().to_owned(),
            event_type: json["type"].as_str().unwrap_or_default().to_owned(),
            header_id: h("x-webhook-id"),
            header_event: h("x-webhook-event"),
            verified,
            body: json,
            at: Instant::now(),
        });
        g.script.pop_front().unwrap_or(200)
    };
    if status == 999 {
        // Scripted hang: answer too late.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        return StatusCode::OK;
    }
    StatusCode::from_u16(status).unwrap()
}
