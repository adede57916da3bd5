//! GET /sessions/:id, expiry, single use, metadata rules, and the control API's
//! cancel / expire with the redirect query merged.

use crate::common::*;
use dhmad::{CheckoutAction as A, CreateSession};
use serde_json::{json, Value};

#[tokio::test]
async fn session_get_expiry_single_use_and_metadata() {
    let env = Env::start().await;
    let id = env.instant(10).await;
    let created = env
        .client
        .create_session(
            &id,
            &CreateSession::new(A::AcceptPay, BUYER, CALLBACK).metadata("order_id", "42"),
        )
        .await
        .unwrap();
    assert_eq!(
        created.url,
        env.url(&format!("/checkout/{}", created.session_id))
    );
    let s = env.client.get_session(&created.session_id).await.unwrap();
    assert_eq!(
        (
            s.status.as_str(),
            s.metadata["order_id"].as_str(),
            s.escrow_id.as_str()
        ),
        ("pending", "42", id.as_str())
    );
    assert_eq!(s.expires_at - s.created_at, time::Duration::minutes(30));
    let e = env
        .client
        .get_session("3f1c2b8e-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.api().unwrap().error.as_deref()),
        (Some(404), Some("Checkout session not found"))
    );
    // Expiry by clock.
    let (st, _) = env
        .control("/sandbox/clock/advance", json!({"seconds": 1801}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        env.client
            .get_session(&created.session_id)
            .await
            .unwrap()
            .status
            .as_str(),
        "expired"
    );
    let (st, v) = env
        .control(
            &format!("/sandbox/sessions/{}/complete", created.session_id),
            json!({}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    // Single use.
    let s2 = env.session(&id, A::AcceptPay, BUYER).await;
    let (st, _) = env
        .control(&format!("/sandbox/sessions/{s2}/complete"), json!({}))
        .await;
    assert_eq!(st, 200);
    let (st, v) = env
        .control(&format!("/sandbox/sessions/{s2}/complete"), json!({}))
        .await;
    assert_eq!((st, v["error"].is_string()), (400, true));
    let done = env.client.get_session(&s2).await.unwrap();
    assert!(done.completed_at.is_some());
    // Metadata values ≤ 500 chars, strings only.
    let long = CreateSession::new(A::Dispute, BUYER, CALLBACK).metadata("k", "x".repeat(501));
    assert_eq!(
        env.client
            .create_session(&id, &long)
            .await
            .unwrap_err()
            .status(),
        Some(400)
    );
    let r = env.http.post(env.url(&format!("/api/v1/escrows/{id}/sessions"))).bearer_auth(env.sandbox.api_key())
        .json(&json!({"action":"dispute","targetUserEmail":BUYER,"redirectUrl":CALLBACK,"metadata":{"n":1}}))
        .send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = env
        .http
        .post(env.url(&format!("/api/v1/escrows/{id}/sessions")))
        .bearer_auth(env.sandbox.api_key())
        .json(&json!({"action":"fly","targetUserEmail":BUYER,"redirectUrl":CALLBACK}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "Bad Request");
    let missing = CreateSession::new(A::Dispute, BUYER, CALLBACK);
    let e = env
        .client
        .create_session("66aa00000000000000000001", &missing)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
}

#[tokio::test]
async fn control_cancel_and_expire_merge_the_query() {
    let env = Env::start().await;
    // An allowed URL with a query of its own (the allow-list matches exactly).
    let url = format!("{CALLBACK}?order=7&status=stale");
    env.sandbox
        .set_allowed_redirect_urls(vec![CALLBACK.into(), url.clone()]);
    let id = env.instant(10).await;
    let s = env.session_to(&id, A::AcceptPay, BUYER, &url).await;
    let (st, v) = env
        .control(&format!("/sandbox/sessions/{s}/cancel"), json!({}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        v["redirect_url"],
        format!("{CALLBACK}?order=7&session_id={s}&status=cancelled")
    );
    let s = env.session(&id, A::AcceptPay, BUYER).await;
    let (_, v) = env
        .control(&format!("/sandbox/sessions/{s}/expire"), json!({}))
        .await;
    assert_eq!(
        v["redirect_url"],
        format!("{CALLBACK}?session_id={s}&status=expired")
    );
    assert_eq!(
        env.client.get_session(&s).await.unwrap().status.as_str(),
        "expired"
    );
    let (st, _) = env
        .control("/sandbox/sessions/unknown/cancel", json!({}))
        .await;
    assert_eq!(st, 404);
}

/// A session past its `expiresAt` reads `expired` on access, not only once the deadline ticker
/// has gone round (here it never does).
#[tokio::test]
async fn a_session_reads_expired_on_access_between_ticks() {
    let mut config = dhmad_sandbox::SandboxConfig::for_tests();
    config.tick_interval = std::time::Duration::from_secs(3600);
    let env = Env::with(config).await;
    let id = env.instant(10).await;
    let created = env
        .client
        .create_session(&id, &CreateSession::new(A::AcceptPay, BUYER, CALLBACK))
        .await
        .unwrap();
    // To a second before expiry (which fires nothing), then the real clock takes it past.
    let (st, _) = env
        .control("/sandbox/clock/advance", json!({"seconds": 1799}))
        .await;
    assert_eq!(st, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let s = env.client.get_session(&created.session_id).await.unwrap();
    assert_eq!(s.status.as_str(), "expired");
}
