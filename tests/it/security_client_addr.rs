//! Client addresses behind a reverse proxy, as rate limits and the login throttle count them:
//! only the proxy's own entry of `CLIENT_IP_HEADER`, only from `TRUSTED_PROXIES`, RFC 7239's
//! `Forwarded`, and an IPv6 client by its /64. Each test reproduces a finding of a review.

use reqwest::header::HeaderValue;
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

/// A storefront behind a proxy that appends `X-Forwarded-For`, allowing 6 checkouts a minute
/// per client (bursts of 5).
async fn behind_a_proxy(pool: PgPool) -> TestApp {
    behind_a_proxy_writing(pool, "x-forwarded-for").await
}

async fn behind_a_proxy_writing(pool: PgPool, header: &str) -> TestApp {
    let mut cfg = offline_config();
    cfg.edge.client_ip_header = Some(header.into());
    cfg.edge.checkout_per_minute = 6;
    spawn(pool, cfg).await
}

/// A proxy that writes RFC 7239's `Forwarded` (HAProxy's `option forwarded`, nginx's
/// documented recipe): each client is counted at its own address. Its elements were read as
/// bare addresses, none was one, and every client shared the proxy's allowance.
#[sqlx::test(migrations = "./migrations")]
async fn a_forwarded_header_names_each_client(pool: PgPool) {
    let app = behind_a_proxy_writing(pool, "forwarded").await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = app
            .http
            .post(app.url("/api/checkout"))
            .header(
                "forwarded",
                format!("for=\"203.0.113.{i}:4711\";proto=https"),
            )
            .json(&json!({"sku": "unicorn", "email": "b@example.tn"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [400; 8], "{statuses:?}");
}

#[sqlx::test(migrations = "./migrations")]
async fn only_the_proxys_own_entry_of_the_client_ip_header_counts(pool: PgPool) {
    let app = behind_a_proxy(pool).await;
    // The client writes a fresh address first each time; the proxy appends what it saw, in a
    // form that is not a bare address. Each run must share one allowance.
    for (run, appended) in ["unknown", "203.0.113.7:4321", "[2001:db8::7]:443"]
        .into_iter()
        .enumerate()
    {
        let mut statuses = Vec::new();
        for i in 0..8 {
            let r = app
                .http
                .post(app.url("/api/checkout"))
                .header("x-forwarded-for", format!("10.{run}.0.{i}, {appended}"))
                .json(&json!({"sku": "unicorn", "email": "b@example.tn"}))
                .send()
                .await
                .unwrap();
            statuses.push(r.status().as_u16());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 429).count(),
            3,
            "{appended}: {statuses:?}"
        );
    }
}

/// nginx appends its entry to the client's line (`$proxy_add_x_forwarded_for`), passing on a
/// byte that is no text: it spoiled the whole line, which was then read as naming no address,
/// so as the proxy's own, this machine's. Ten wrong tokens sent that way locked this machine's
/// tools (a scraper, a cron job with the token) out of the back office.
#[sqlx::test(migrations = "./migrations")]
async fn a_byte_the_client_wrote_does_not_make_it_the_proxy(pool: PgPool) {
    let app = behind_a_proxy(pool).await;
    let admin = |line: &'static [u8], token: &'static str| {
        app.http
            .get(app.url("/admin"))
            .header("x-forwarded-for", HeaderValue::from_bytes(line).unwrap())
            .bearer_auth(token)
            .send()
    };
    let from_this_machine = || {
        app.http
            .get(app.url("/admin"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    for _ in 0..10 {
        let r = admin(b"\xff, 203.0.113.7", "wrong").await.unwrap();
        assert_eq!(r.status(), 303);
    }
    // Counted at the address the proxy wrote, not at this machine's.
    let r = admin(b"203.0.113.7", ADMIN_TOKEN).await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(from_this_machine().await.unwrap().status(), 200);
    // An entry of the proxy's that names no address: an allowance of its own, not this
    // machine's either.
    for _ in 0..10 {
        let r = admin(b"\xff", "wrong").await.unwrap();
        assert_eq!(r.status(), 303);
    }
    let r = admin(b"unknown", ADMIN_TOKEN).await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(from_this_machine().await.unwrap().status(), 200);
}

/// A client that reaches the shop's port without the proxy (its address is not one of
/// `TRUSTED_PROXIES`) writes what it likes in the header: it is counted at its own address.
#[sqlx::test(migrations = "./migrations")]
async fn the_header_of_a_client_that_is_not_the_proxy_is_ignored(pool: PgPool) {
    let mut cfg = offline_config();
    cfg.edge.client_ip_header = Some("x-forwarded-for".into());
    cfg.edge.trusted_proxies = vec!["192.0.2.1/32".parse().unwrap()];
    cfg.edge.checkout_per_minute = 6;
    let app = spawn(pool, cfg).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = app
            .http
            .post(app.url("/api/checkout"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({"sku": "unicorn", "email": "b@example.tn"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses[..5], [400; 5], "{statuses:?}");
    assert_eq!(statuses[5..], [429; 3], "{statuses:?}");
}

#[sqlx::test(migrations = "./migrations")]
async fn an_ipv6_client_is_limited_by_its_slash_64(pool: PgPool) {
    let app = behind_a_proxy(pool).await;
    let checkout = |from: String| {
        app.http
            .post(app.url("/api/checkout"))
            .header("x-forwarded-for", from)
            .json(&json!({"sku": "unicorn", "email": "b@example.tn"}))
            .send()
    };
    // A fresh address of one /64 each time; then one IPv4 client written both ways.
    for addresses in [
        (1..=8).map(|i| format!("2001:db8:0:1::{i:x}")).collect(),
        (1..=8)
            .map(|i| match i % 2 {
                0 => "198.51.100.9".to_owned(),
                _ => "::ffff:198.51.100.9".to_owned(),
            })
            .collect::<Vec<_>>(),
    ] {
        let mut statuses = Vec::new();
        for from in &addresses {
            statuses.push(checkout(from.clone()).await.unwrap().status().as_u16());
        }
        assert_eq!(statuses[..5], [400; 5], "{addresses:?}: {statuses:?}");
        assert_eq!(statuses[5..], [429; 3], "{addresses:?}: {statuses:?}");
    }
    // Another /64 has its own allowance.
    assert_eq!(
        checkout("2001:db8:0:2::1".into()).await.unwrap().status(),
        400
    );

    // The admin login throttle counts the same way.
    let admin = |from: String, token: &str| {
        app.http
            .get(app.url("/admin"))
            .header("x-forwarded-for", from)
            .bearer_auth(token)
            .send()
    };
    for i in 1..=10 {
        let r = admin(format!("2001:db8:0:3::{i:x}"), "wrong")
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
    }
    let r = admin("2001:db8:0:3::ffff".into(), ADMIN_TOKEN)
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let r = admin("2001:db8:0:4::1".into(), ADMIN_TOKEN).await.unwrap();
    assert_eq!(r.status(), 200);
}
