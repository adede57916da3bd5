//! Fault injection: API faults (500, 429, hang) and webhook faults (drop, duplicate, reorder,
//! corrupt signature, delay), from the control API and from the config, deterministic by seed.

use std::time::{Duration, Instant};

use crate::common::*;
use dhmad::CheckoutAction as A;
use dhmad_sandbox::{FaultConfig, SandboxConfig};
use serde_json::json;

#[tokio::test]
async fn api_faults_answer_500_429_and_hang_for_n_calls() {
    let env = Env::start().await;
    let (st, v) = env.control("/sandbox/faults", json!({"api": [
        {"method": "POST", "path": "/api/v1/escrows", "fault": "error_500", "times": 2},
        {"method": "GET", "path": "/api/v1/escrows/{id}", "fault": "rate_limit_429"},
        {"method": "POST", "path": "/api/v1/escrows/{id}/sessions", "fault": "hang", "hang_ms": 1500}
    ]})).await;
    assert_eq!(st, 200, "{v}");
    let req = dhmad::CreateEscrow::new("x", 10.into(), BUYER).mode(dhmad::EscrowMode::Instant);
    for _ in 0..2 {
        assert!(matches!(
            env.client.create_escrow(&req).await,
            Err(dhmad::Error::Server(_))
        ));
    }
    let id = env.client.create_escrow(&req).await.unwrap().escrow.id;
    let r = env
        .http
        .get(format!("{}/escrows/{id}", env.sandbox.api_base()))
        .bearer_auth(env.sandbox.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // The injected 429 says what a real one says: nothing remains until its reset.
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let reset = dhmad::iso::parse(r.headers()["x-ratelimit-reset"].to_str().unwrap()).unwrap();
    assert!(reset - time::OffsetDateTime::now_utc() <= time::Duration::seconds(2));
    env.client.get_escrow(&id).await.unwrap();
    // The hang outlasts a 500 ms client timeout.
    let impatient = dhmad::Client::builder(env.sandbox.api_key())
        .base_url(env.sandbox.api_base())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let e = impatient
        .create_session(
            &id,
            &dhmad::CreateSession::new(A::AcceptPay, BUYER, CALLBACK),
        )
        .await
        .unwrap_err();
    // A timeout, not the hang's 500: the client gave up before the fault ended.
    assert!(matches!(e, dhmad::Error::Timeout), "{e}");
    let remaining = env.get_json("/sandbox/faults").await;
    assert!(remaining["api"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["times"] == 0));
    let r = env
        .http
        .delete(env.url("/sandbox/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.get_json("/sandbox/faults").await["api"], json!([]));
}

/// A 429 fault whose reset lies past what a date can hold still answers 429, reset a day from
/// now. Before, adding it to the clock panicked and the connection closed without an answer.
#[tokio::test]
async fn a_429_fault_with_a_huge_reset_answers_429_within_a_day() {
    let env = Env::start().await;
    let (st, v) = env
        .control(
            "/sandbox/faults",
            json!({"api": [{"method": "*", "path": "/api/v1/me", "fault": "rate_limit_429",
                            "reset_ms": u64::MAX}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let r = env
        .http
        .get(format!("{}/me", env.sandbox.api_base()))
        .bearer_auth(env.sandbox.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let reset = dhmad::iso::parse(r.headers()["x-ratelimit-reset"].to_str().unwrap()).unwrap();
    let wait = reset - time::OffsetDateTime::now_utc();
    assert!(
        wait > time::Duration::hours(23) && wait <= time::Duration::hours(24),
        "{wait}"
    );
}

#[tokio::test]
async fn a_500_after_acting_has_done_what_was_asked() {
    let env = Env::start().await;
    let (st, v) = env
        .control(
            "/sandbox/faults",
            json!({"api": [
                {"method": "POST", "path": "/api/v1/escrows", "fault": "error_500_after"}
            ]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let req = dhmad::CreateEscrow::new("kept", 10.into(), BUYER).mode(dhmad::EscrowMode::Instant);
    let e = env.client.create_escrow(&req).await.unwrap_err();
    assert!(matches!(e, dhmad::Error::Server(_)), "{e}");
    // The escrow exists although the answer said 500; the next call is served normally.
    let list = env
        .client
        .list_escrows(&dhmad::ListEscrows::default())
        .await
        .unwrap();
    let kept: Vec<_> = list.escrows.iter().filter(|e| e.title == "kept").collect();
    assert_eq!(kept.len(), 1, "{:?}", list.escrows);
    env.client.create_escrow(&req).await.unwrap();
}

#[tokio::test]
async fn not_found_answers_404_and_keeps_what_it_hides() {
    let env = Env::start().await;
    let id = env.instant(10).await;
    let (st, v) = env
        .control(
            "/sandbox/faults",
            json!({"api": [
                {"method": "GET", "path": "/api/v1/escrows/{id}", "fault": "not_found"}
            ]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let e = env.client.get_escrow(&id).await.unwrap_err();
    assert!(matches!(e, dhmad::Error::NotFound(_)), "{e}");
    // The escrow is still there: the next read finds it.
    assert_eq!(env.client.get_escrow(&id).await.unwrap().id, id);
}

#[tokio::test]
async fn delay_serves_the_call_as_dhmad_is_once_the_wait_is_over() {
    let env = Env::start().await;
    let id = env.instant(10).await;
    env.control(
        "/sandbox/faults",
        json!({"api": [
            {"method": "GET", "path": "/api/v1/escrows/{id}", "fault": "delay", "hang_ms": 3000}
        ]}),
    )
    .await;
    let (client, escrow) = (env.client.clone(), id.clone());
    let read = tokio::spawn(async move { client.get_escrow(&escrow).await });
    // The read has arrived (the fault is spent) and is held.
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.get_json("/sandbox/faults").await["api"][0]["times"] != 0 {
        assert!(Instant::now() < deadline, "the read never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Paid while the read is held on its way in: the read tells of the payment.
    env.pay(&id).await;
    assert_eq!(read.await.unwrap().unwrap().status.as_str(), "paid");
}

#[tokio::test]
async fn dropped_duplicated_and_corrupted_webhooks() {
    let env = Env::start().await;
    env.control(
        "/sandbox/faults",
        json!({"seed": 1, "webhooks": {"drop": 1.0}}),
    )
    .await;
    let a = env.instant(10).await;
    env.pay(&a).await;
    assert!(env.hooks.settle(200).await.is_empty());
    let log = env.get_json("/sandbox/deliveries").await;
    assert_eq!(log[0]["attempt"], 0);
    assert!(log[0]["error"].as_str().unwrap().contains("dropped"));

    env.control(
        "/sandbox/faults",
        json!({"seed": 1, "webhooks": {"duplicate": 1.0}}),
    )
    .await;
    env.client.deliver_escrow(&a).await.unwrap();
    let got = env.hooks.wait(2).await;
    assert_eq!(got[0].id, got[1].id);

    env.control(
        "/sandbox/faults",
        json!({"webhooks": {"corrupt_signature": 1.0}}),
    )
    .await;
    let b = env.instant(10).await;
    env.pay(&b).await;
    let got = env.hooks.wait(3).await;
    assert!(!got[2].verified);
}

#[tokio::test]
async fn reorder_lets_the_next_event_overtake() {
    let env = Env::start().await;
    // Every event is drawn "reorder": the first is held until the second has been delivered;
    // the second is not held again because one is already waiting.
    env.control("/sandbox/faults", json!({"webhooks": {"reorder": 1.0}}))
        .await;
    let id = env.quick().await;
    env.pay(&id).await;
    env.client.deliver_escrow(&id).await.unwrap();
    let got = env.hooks.wait(2).await;
    let order: Vec<_> = got.iter().map(|d| d.escrow_status()).collect();
    assert_eq!(order, ["delivered", "paid"]);
}

#[tokio::test]
async fn delay_and_faults_from_config_are_deterministic() {
    let faults: FaultConfig =
        serde_json::from_value(json!({"seed": 9, "webhooks": {"delay_ms": 300}})).unwrap();
    let env = Env::with(SandboxConfig {
        faults,
        ..SandboxConfig::for_tests()
    })
    .await;
    let id = env.instant(10).await;
    let t = Instant::now();
    env.pay(&id).await;
    env.hooks.wait(1).await;
    assert!(t.elapsed() >= Duration::from_millis(290));
    // Same seed, same fates: two sandboxes with drop 0.5 drop the same events.
    let mut runs = Vec::new();
    for run in 0..2 {
        let faults: FaultConfig =
            serde_json::from_value(json!({"seed": 42, "webhooks": {"drop": 0.5}})).unwrap();
        let env = Env::with(SandboxConfig {
            faults,
            ..SandboxConfig::for_tests()
        })
        .await;
        if run == 1 {
            // Ids start with the creation second: the second run makes its escrows seconds
            // later, as two runs straddling a second would, and must still compare alike.
            let (st, v) = env
                .control("/sandbox/clock/advance", json!({"seconds": 2}))
                .await;
            assert_eq!(st, 200, "{v}");
        }
        for _ in 0..6 {
            let id = env.instant(10).await;
            env.pay(&id).await;
        }
        // Each escrow's first attempt, whenever it is logged (a dropped one at once, a
        // delivered one after its round trip): keyed by the escrow id's counter part (after
        // the 8 hex digits of the creation second), which a fresh sandbox numbers alike, so
        // neither the order of logging nor the second of creation matters.
        let mut fates = std::collections::BTreeMap::new();
        // Up to 30 s, as every other wait of the suites.
        for _ in 0..1500 {
            let log = env.get_json("/sandbox/deliveries").await;
            for d in log.as_array().unwrap() {
                let id = d["escrow_id"].as_str().unwrap_or_default();
                fates
                    .entry(id.get(8..).unwrap_or(id).to_owned())
                    .or_insert(d["attempt"] == 0);
            }
            if fates.len() >= 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(fates.len(), 6, "{fates:?}");
        runs.push(fates);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].values().any(|d| *d) && runs[0].values().any(|d| !*d),
        "{:?}",
        runs[0]
    );
}
