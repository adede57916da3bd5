//! Delivery policy: signatures, retry schedule, no retry on 4xx, timeouts, connection errors,
//! the delivery log, resend / emit triggers and run-time URL changes.

use std::time::Duration;

use crate::common::*;
use dhmad_sandbox::SandboxConfig;
use serde_json::{json, Value};

fn statuses(log: &[Value]) -> Vec<Value> {
    log.iter().map(|d| d["status"].clone()).collect()
}

#[tokio::test]
async fn two_500s_then_200_makes_three_attempts_on_schedule() {
    let env = Env::start().await;
    env.hooks.script(&[500, 500]);
    env.instant(10).await;
    let id = env.instant(11).await;
    env.pay(&id).await;
    let got = env.hooks.wait(3).await;
    let got_after = env.hooks.settle(400).await;
    assert_eq!(got_after.len(), 3, "no attempt after the 200");
    assert!(got
        .iter()
        .all(|d| d.verified && d.id == got[0].id && d.header_id == got[0].id));
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    // Each retry waits out its delay of the schedule (the test's: 50, then 100 ms). No upper
    // bound: a loaded machine may stall any of them.
    assert!(gap1 >= Duration::from_millis(45), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(95), "{gap2:?}");
    let log = env.deliveries(3).await;
    assert_eq!(statuses(&log), [json!(500), json!(500), json!(200)]);
    let attempts: Vec<_> = log.iter().map(|d| d["attempt"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert_eq!(log[0]["escrow_id"], id);
    assert_eq!(log[0]["event_type"], "escrow.status.updated");
    assert_eq!(log[0]["url"], env.hooks.url());
}

#[tokio::test]
async fn four_xx_is_not_retried_and_5xx_gives_up_after_three_retries() {
    let env = Env::start().await;
    env.hooks.script(&[400, 503, 503, 503, 503]);
    let a = env.instant(10).await;
    env.pay(&a).await;
    env.client.deliver_escrow(&a).await.unwrap();
    env.hooks.wait(5).await;
    let all = env.hooks.settle(500).await;
    assert_eq!(all.len(), 5, "1 try for the 400, 1 + 3 for the 503s");
    let log = env.deliveries(5).await;
    assert_eq!(
        statuses(&log),
        [json!(400), json!(503), json!(503), json!(503), json!(503)]
    );
}

#[tokio::test]
async fn timeouts_and_connection_errors_are_retried() {
    let config = SandboxConfig {
        webhook_timeout: Duration::from_millis(300),
        ..SandboxConfig::for_tests()
    };
    let env = Env::with(config).await;
    env.hooks.script(&[999]);
    let a = env.instant(10).await;
    env.pay(&a).await;
    let log = env.deliveries(2).await;
    assert!(log[0]["status"].is_null() && log[0]["error"].as_str().unwrap().contains("timeout"));
    assert_eq!(log[1]["status"], 200);

    // Nobody listens on discard (9); a port freed by this test could go to a parallel one.
    let closed = "127.0.0.1:9";
    let (st, _) = env
        .http
        .put(env.url("/sandbox/webhooks"))
        .json(&json!({"urls": [format!("http://{closed}/x")]}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(st, 200);
    let b = env.instant(10).await;
    env.pay(&b).await;
    let log = env.deliveries(6).await;
    let errs: Vec<_> = log[2..]
        .iter()
        .map(|d| d["error"].as_str().unwrap().to_owned())
        .collect();
    assert!(errs.iter().all(|e| e.contains("connection")), "{errs:?}");
}

#[tokio::test]
async fn resend_keeps_the_id_and_emit_makes_a_fresh_one() {
    let env = Env::start().await;
    let id = env.quick().await;
    let (st, v) = env
        .control(&format!("/sandbox/escrows/{id}/events/resend"), json!({}))
        .await;
    assert_eq!((st, v["error"].is_string()), (400, true));
    env.pay(&id).await;
    let first = env.hooks.wait(1).await[0].clone();
    let (st, _) = env
        .control(&format!("/sandbox/escrows/{id}/events/resend"), json!({}))
        .await;
    assert_eq!(st, 200);
    let got = env.hooks.wait(2).await;
    assert_eq!(
        (got[1].id.clone(), got[1].body.clone()),
        (first.id.clone(), first.body.clone())
    );
    for t in [
        "escrow.status.updated",
        "escrow.cancellation.requested",
        "escrow.delivery.rejected",
        "escrow.proof.submitted",
        "escrow.deposit_proof.rejected",
        "escrow.updated",
    ] {
        let (st, v) = env
            .control(&format!("/sandbox/escrows/{id}/events"), json!({"type": t}))
            .await;
        assert_eq!(st, 200, "{t}: {v}");
    }
    let got = env.hooks.wait(8).await;
    assert_eq!(got[2].event_type, "escrow.status.updated");
    assert_ne!(got[2].id, first.id);
    assert!(got.iter().all(|d| d.verified));
    // Every emitted payload parses as its typed event.
    for d in &got {
        let env: dhmad::WebhookEnvelope = serde_json::from_value(d.body.clone()).unwrap();
        assert!(env.event().is_ok(), "{}", d.event_type);
    }
    let (st, _) = env
        .control(
            &format!("/sandbox/escrows/{id}/events"),
            json!({"type": "contract.signed"}),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = env
        .control(
            &format!("/sandbox/escrows/{id}/events"),
            json!({"type": "nope.nope"}),
        )
        .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn handle_sets_webhook_urls_at_run_time() {
    let env = Env::start().await;
    env.sandbox.set_webhook_urls(vec![]);
    let id = env.instant(10).await;
    env.pay(&id).await;
    assert!(env.hooks.settle(200).await.is_empty());
    // Nowhere to send it: resending says so, where it said "queued again" for nobody.
    let (st, v) = env
        .control(&format!("/sandbox/escrows/{id}/events/resend"), json!({}))
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("No webhook URL"))
            || v["error"]
                .as_str()
                .is_some_and(|m| m.contains("No webhook URL")),
        "{v}"
    );
    let second = Receiver::start(env.sandbox.webhook_secret()).await;
    env.sandbox
        .set_webhook_urls(vec![env.hooks.url(), second.url()]);
    env.client.deliver_escrow(&id).await.unwrap();
    assert_eq!(env.hooks.wait(1).await[0].id, second.wait(1).await[0].id);
    let v = env.get_json("/sandbox/webhooks").await;
    assert_eq!(v["urls"].as_array().unwrap().len(), 2);
}
