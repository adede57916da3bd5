//! The capture: a webhook receiver standing in for the storefronts, and the sandbox's events
//! as it sent them.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use dhmad::webhook;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::common::*;

use super::*;

/// One webhook as the sandbox sent it.
#[derive(Debug, Clone)]
pub(super) struct Captured {
    pub(super) event_id: String,
    pub(super) event_type: String,
    pub(super) escrow_id: String,
    pub(super) status: String,
    pub(super) updated_at: OffsetDateTime,
    pub(super) signature: String,
    pub(super) body: Bytes,
}

pub(super) type CaptureLog = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A webhook receiver that keeps every delivery and answers 200.
pub(super) async fn start_capture() -> (String, CaptureLog) {
    let log: CaptureLog = Arc::default();
    let keep = log.clone();
    let app = Router::new().route(
        "/capture",
        post(move |headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push((headers, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/capture", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, log)
}

pub(super) fn parse_captured(secret: &str, headers: &HeaderMap, body: &Bytes) -> Captured {
    let signature = headers[webhook::SIGNATURE_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        signature,
        webhook::sign(secret, body),
        "the sandbox signs the bytes it sends"
    );
    let v: Value = serde_json::from_slice(body).unwrap();
    let e = &v["data"]["escrow"];
    let text = |v: &Value| {
        v.as_str()
            .unwrap_or_else(|| {
                panic!(
                    "captured event without {v}: {}",
                    String::from_utf8_lossy(body)
                )
            })
            .to_owned()
    };
    Captured {
        event_id: text(&v["id"]),
        event_type: text(&v["type"]),
        escrow_id: text(&e["id"]),
        status: text(&e["status"]),
        updated_at: dhmad::iso::parse(e["updatedAt"].as_str().unwrap()).unwrap(),
        signature,
        body: body.clone(),
    }
}

impl Torture {
    /// Waits until everything the sandbox has queued so far reached the capture (its webhook
    /// queue is FIFO, so a last event seen means all before it were), and returns it all.
    pub(super) async fn flush_capture(&self) -> Vec<Captured> {
        let marker: Value = self
            .web
            .post(self.sandbox(&format!(
                "/sandbox/escrows/{}/events",
                self.orders[0].escrow_id
            )))
            .json(&json!({"type": "escrow.updated"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let marker = marker["event_id"].as_str().unwrap().to_owned();
        let capture = &self.capture;
        wait_for("the sandbox's webhooks to reach the capture", 60, || {
            let marker = marker.clone();
            async move {
                let log = capture.lock().unwrap();
                log.iter()
                    .any(|(h, _)| h[webhook::ID_HEADER] == marker.as_str())
                    .then_some(())
            }
        })
        .await;
        let secret = self.w.sb.webhook_secret();
        let all: Vec<Captured> = self
            .capture
            .lock()
            .unwrap()
            .iter()
            .map(|(h, b)| parse_captured(secret, h, b))
            .collect();
        let ids: HashSet<&str> = all.iter().map(|c| c.event_id.as_str()).collect();
        assert_eq!(ids.len(), all.len(), "the sandbox sent each event once");
        all
    }
}
