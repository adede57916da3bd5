//! The request log and the webhook delivery log keep their newest entries only.

use crate::common::*;
use dhmad_sandbox::state::LOG_CAPACITY;
use dhmad_sandbox::webhooks::{DeliveryLog, DeliveryRecord};

#[tokio::test]
async fn the_request_log_keeps_the_newest_calls() {
    let env = Env::start().await;
    env.api_get("/balance").await;
    for _ in 0..LOG_CAPACITY {
        env.api_get("/me").await;
    }
    let log = env.get_json("/sandbox/requests").await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), LOG_CAPACITY);
    assert!(
        log.iter().all(|r| r["path"] == "/api/v1/me"),
        "the oldest call is dropped"
    );
}

#[test]
fn the_delivery_log_keeps_the_newest_attempts() {
    let log = DeliveryLog::default();
    for attempt in 0..=LOG_CAPACITY as u32 {
        log.push(DeliveryRecord {
            event_id: "e".into(),
            event_type: "escrow.status.updated".into(),
            escrow_id: None,
            url: "http://localhost:3000/webhooks/dhmad".into(),
            attempt,
            status: Some(200),
            error: None,
            at: time::OffsetDateTime::UNIX_EPOCH,
        });
    }
    let all = log.all();
    assert_eq!(all.len(), LOG_CAPACITY);
    assert_eq!(
        (all[0].attempt, all[LOG_CAPACITY - 1].attempt),
        (1, LOG_CAPACITY as u32)
    );
}
