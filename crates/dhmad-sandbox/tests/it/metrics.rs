//! `GET /metrics`: Prometheus text with API requests, webhook outcomes, sessions and escrow
//! transitions, each sandbox counting its own.

use std::time::Duration;

use crate::common::*;

/// The value of the series `name` whose labels include every `labels` pair (0 if absent).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics(env: &Env) -> String {
    let r = env.http.get(env.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    r.text().await.unwrap()
}

/// Polls `/metrics` until `name{labels}` reaches `at_least` (webhooks are asynchronous).
async fn wait_for(env: &Env, name: &str, labels: &[(&str, &str)], at_least: f64) -> String {
    for _ in 0..250 {
        let text = metrics(env).await;
        if value(&text, name, labels) >= at_least {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{name}{labels:?} never reached {at_least}:\n{}",
        metrics(env).await
    );
}

#[tokio::test]
async fn metrics_move_with_api_calls_and_webhooks() {
    let env = Env::start().await;
    let before = metrics(&env).await;
    assert_eq!(value(&before, "dhmad_sandbox_api_requests_total", &[]), 0.0);
    // 500 then 400: one retried attempt, then one failed; the next event is delivered.
    env.hooks.script(&[500, 400]);
    let id = env.instant(15).await;
    env.pay(&id).await;
    env.client.deliver_escrow(&id).await.unwrap();

    let hooks = "dhmad_sandbox_webhook_deliveries_total";
    let text = wait_for(&env, hooks, &[("outcome", "delivered")], 1.0).await;
    for outcome in ["retried", "failed", "delivered"] {
        assert_eq!(
            value(&text, hooks, &[("outcome", outcome)]),
            1.0,
            "{outcome}"
        );
    }
    let create = [
        ("method", "POST"),
        ("route", "/api/v1/escrows"),
        ("status", "201"),
    ];
    assert_eq!(
        value(&text, "dhmad_sandbox_api_requests_total", &create),
        1.0
    );
    let deliver = [("route", "/api/v1/escrows/{id}/deliver"), ("status", "200")];
    assert_eq!(
        value(&text, "dhmad_sandbox_api_requests_total", &deliver),
        1.0
    );
    let latency = "dhmad_sandbox_api_request_duration_seconds_count";
    assert_eq!(value(&text, latency, &[("route", "/api/v1/escrows")]), 1.0);
    assert!(text.contains("dhmad_sandbox_api_request_duration_seconds_bucket{"));
    let sessions = "dhmad_sandbox_checkout_sessions_created_total";
    assert_eq!(value(&text, sessions, &[("action", "accept_pay")]), 1.0);
    let moves = "dhmad_sandbox_escrow_transitions_total";
    assert_eq!(
        value(&text, moves, &[("from", "pending"), ("to", "paid")]),
        1.0
    );
    assert_eq!(
        value(&text, moves, &[("from", "paid"), ("to", "completed")]),
        1.0
    );
    assert!(text.contains("# TYPE dhmad_sandbox_api_requests_total counter"));

    // Unknown routes are one series, not one per path.
    env.http
        .get(env.url("/api/v1/nope/123"))
        .bearer_auth(env.sandbox.api_key())
        .send()
        .await
        .unwrap();
    let text = metrics(&env).await;
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_eq!(
        value(&text, "dhmad_sandbox_api_requests_total", &unmatched),
        1.0
    );
}

/// A method label comes only from the methods HTTP names: anything else a caller sends,
/// before it is authenticated, is `other`, so strangers cannot add series without end.
#[tokio::test]
async fn methods_nobody_defined_share_one_series() {
    let env = Env::start().await;
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
        let r = env
            .http
            .request(method, env.url("/api/v1/me"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    let text = metrics(&env).await;
    assert!(!text.contains("method=\"FOO"), "{text}");
    let requests = "dhmad_sandbox_api_requests_total";
    assert_eq!(
        value(&text, requests, &[("method", "other")]),
        5.0,
        "{text}"
    );
}
