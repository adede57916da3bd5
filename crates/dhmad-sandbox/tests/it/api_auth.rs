//! Authentication, rate limiting, /me, /balance and the request log.

use crate::common::*;
use dhmad::CheckoutAction;
use dhmad_sandbox::SandboxConfig;
use serde_json::Value;

async fn me_with(env: &Env, header: (&str, String)) -> (u16, Value) {
    let r = env
        .http
        .get(env.url("/api/v1/me"))
        .header(header.0, header.1)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn both_key_headers_work_and_bad_keys_get_401() {
    let env = Env::start().await;
    let key = env.sandbox.api_key().to_owned();
    assert_eq!(
        me_with(&env, ("authorization", format!("Bearer {key}")))
            .await
            .0,
        200
    );
    let (s, me) = me_with(&env, ("x-api-key", key.clone())).await;
    assert_eq!(s, 200);
    assert_eq!(me["apiKey"]["environment"], "sandbox");
    assert_eq!(me["developer"]["email"], env.seller());

    let r = env.http.get(env.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Unauthorized");
    assert!(body["message"].as_str().unwrap().contains("X-API-Key"));

    let (s, body) = me_with(&env, ("x-api-key", "sk_sandbox_nothex".into())).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("Unauthorized")));
    let live = format!("sk_live_{}", "a".repeat(64));
    let (s, body) = me_with(&env, ("authorization", format!("Bearer {live}"))).await;
    assert_eq!(s, 401);
    assert!(
        body["message"].as_str().unwrap().contains("sandbox key"),
        "{body}"
    );
    let other = format!("sk_sandbox_{}", "b".repeat(64));
    assert_eq!(me_with(&env, ("x-api-key", other)).await.0, 401);

    let bad = dhmad::Client::builder(format!("sk_sandbox_{}", "c".repeat(64)))
        .base_url(env.sandbox.api_base())
        .build()
        .unwrap();
    assert!(matches!(bad.me().await, Err(dhmad::Error::Unauthorized(_))));
}

#[tokio::test]
async fn rate_limit_headers_and_429() {
    let env = Env::with(SandboxConfig {
        rate_limit_per_minute: 2,
        ..SandboxConfig::for_tests()
    })
    .await;
    let keyless = || env.http.get(env.url("/api/v1/me")).send();
    // Even a 401 carries the headers and counts.
    let r = keyless().await.unwrap();
    assert_eq!(r.status(), 401);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        (header("x-ratelimit-limit"), header("x-ratelimit-remaining")),
        (Some("2".into()), Some("1".into()))
    );
    env.client.me().await.unwrap();
    let rl = env.client.rate_limit().unwrap();
    assert_eq!((rl.limit, rl.remaining), (Some(2), Some(0)));
    assert!(rl.reset.unwrap() > time::OffsetDateTime::now_utc());
    let r = keyless().await.unwrap();
    assert_eq!(r.status(), 429);
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(r.headers().contains_key(h), "{h}");
    }
    assert!(dhmad::iso::parse(r.headers()["x-ratelimit-reset"].to_str().unwrap()).is_ok());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Too Many Requests");
    assert!(matches!(
        env.client.me().await,
        Err(dhmad::Error::RateLimited { .. })
    ));
}

/// A client that waits exactly `Retry-After` seconds is served: the seconds round up, so the
/// wait never ends before the window has room again.
#[tokio::test]
async fn waiting_retry_after_seconds_is_enough() {
    let env = Env::with(SandboxConfig {
        rate_limit_per_minute: 1,
        rate_window: std::time::Duration::from_secs(2),
        ..SandboxConfig::for_tests()
    })
    .await;
    env.client.me().await.unwrap();
    // The window frees 1.7 s after this refusal: a fraction of a second past a whole one.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = env
        .http
        .get(env.url("/api/v1/me"))
        .bearer_auth(env.sandbox.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let header: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["retryAfter"], header);
    tokio::time::sleep(std::time::Duration::from_secs(header)).await;
    env.client.me().await.unwrap();
}

#[tokio::test]
async fn balance_follows_the_escrows() {
    let env = Env::start().await;
    let zero = env.client.balance().await.unwrap().balance;
    assert!(zero.available.is_zero() && zero.escrow.is_zero() && zero.pending.is_zero());
    let id = env.instant(100).await;
    env.pay(&id).await;
    assert_eq!(
        env.client.balance().await.unwrap().balance.escrow,
        100.into()
    );
    env.client.deliver_escrow(&id).await.unwrap();
    let b = env.client.balance().await.unwrap().balance;
    assert_eq!((b.escrow, b.available), (0.into(), 95.into()));
}

#[tokio::test]
async fn request_log_records_api_calls_without_query() {
    let env = Env::start().await;
    let id = env.instant(10).await;
    env.session(&id, CheckoutAction::AcceptPay, BUYER).await;
    let _ = env
        .http
        .get(env.url("/api/v1/escrows?page=1"))
        .send()
        .await
        .unwrap();
    let log = env.get_json("/sandbox/requests").await;
    let rows: Vec<(String, String, u64)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().into(),
                r["path"].as_str().unwrap().into(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows[0], ("POST".into(), "/api/v1/escrows".into(), 201));
    assert_eq!(
        rows[1],
        ("POST".into(), format!("/api/v1/escrows/{id}/sessions"), 201)
    );
    assert_eq!(rows[2], ("GET".into(), "/api/v1/escrows".into(), 401));
    assert!(log[0]["at"].as_str().is_some());
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let env = Env::start().await;
    let base = env.sandbox.api_base();
    env.client.me().await.unwrap();
    env.sandbox.shutdown().await;
    let client = dhmad::Client::builder(dhmad_sandbox::DEFAULT_API_KEY)
        .base_url(base)
        .retry_policy(dhmad::RetryPolicy::none())
        .build()
        .unwrap();
    assert!(matches!(client.me().await, Err(dhmad::Error::Transport(_))));
}
