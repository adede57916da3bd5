//! `/metrics` counting requests, webhooks and DHMAD calls (each instance its own), and the
//! favicon; who may read it.

use std::time::Duration;

use crate::common::{sandbox::*, *};
use reqwest::header::HeaderValue;
use sqlx::PgPool;
use time::OffsetDateTime;

async fn scrape(app: &TestApp) -> String {
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    r.text().await.unwrap()
}

/// The sum of the samples of `name` whose labels include all of `labels`; `None` when there is
/// no such sample.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.strip_suffix('}').unwrap_or(rest)),
            None => (series, ""),
        };
        if metric != name {
            continue;
        }
        let have: Vec<(&str, &str)> = label_text
            .split("\",")
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once("=\""))
            .map(|(k, v)| (k, v.trim_end_matches('"')))
            .collect();
        if labels.iter().all(|l| have.contains(l)) {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap();
        }
    }
    found
}

#[sqlx::test(migrations = "./migrations")]
async fn metrics_count_requests_webhooks_and_dhmad_calls_of_a_purchase(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let before = scrape(&w.app).await;
    let processed = [("outcome", "processed")];
    assert_eq!(
        sample(&before, "storefront_webhooks_total", &processed),
        Some(0.0),
        "known series start at zero: {before}"
    );

    let s = w.checkout("ai-credits-500", "buyer@example.tn").await;
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "completed").await;
    // The order completes while its deliver job is still being closed: the job's counter
    // moves just after. Wait for it rather than racing it.
    let app = &w.app;
    let text = wait_for("the deliver job to be counted", 30, || async move {
        let text = scrape(app).await;
        let done = [("kind", "deliver"), ("outcome", "done")];
        sample(&text, "storefront_outbox_attempts_total", &done)
            .is_some()
            .then_some(text)
    })
    .await;

    // Requests, by the matched route's template.
    let checkout = [
        ("method", "POST"),
        ("route", "/api/checkout"),
        ("status", "201"),
    ];
    assert_eq!(
        sample(&text, "storefront_http_requests_total", &checkout),
        Some(1.0),
        "{text}"
    );
    let polls = [("route", "/api/orders/{id}"), ("status", "200")];
    assert!(sample(&text, "storefront_http_requests_total", &polls).unwrap() >= 1.0);
    let timed = [("method", "POST"), ("route", "/api/checkout")];
    assert_eq!(
        sample(
            &text,
            "storefront_http_request_duration_seconds_count",
            &timed
        ),
        Some(1.0)
    );
    assert!(
        !text.contains(&s.order_id.to_string()) && !text.contains(&s.session_id),
        "no id may become a label: {text}"
    );

    // Webhooks, by outcome: the payment and what followed.
    assert!(sample(&text, "storefront_webhooks_total", &processed).unwrap() >= 1.0);
    // The payment's news measured checkout to paid, once.
    assert_eq!(
        sample(&text, "storefront_checkout_to_paid_seconds_count", &[]),
        Some(1.0),
        "{text}"
    );
    let refused = sample(&text, "storefront_webhook_refusals_total", &[]);
    assert_eq!(refused, Some(0.0), "{text}");

    // DHMAD calls, by endpoint template: one create, one session, the deliver.
    let calls = |method, endpoint| {
        sample(
            &text,
            "storefront_dhmad_calls_total",
            &[("method", method), ("endpoint", endpoint)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(calls("POST", "/escrows"), 1.0, "{text}");
    assert_eq!(calls("POST", "/escrows/{id}/sessions"), 1.0);
    assert!(calls("POST", "/escrows/{id}/deliver") >= 1.0);
    let created = [("endpoint", "/escrows"), ("method", "POST")];
    assert_eq!(
        sample(
            &text,
            "storefront_dhmad_call_duration_seconds_count",
            &created
        ),
        Some(1.0)
    );
    let budget = sample(&text, "storefront_dhmad_rate_limit_remaining", &[]).unwrap();
    assert!(budget > 0.0, "{text}");

    // The outbox: the deliver ran, and the backlog is read at scrape time.
    let delivered = [("kind", "deliver"), ("outcome", "done")];
    assert_eq!(
        sample(&text, "storefront_outbox_attempts_total", &delivered),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, "storefront_outbox_backlog", &[]).is_some());

    // A reconciler pass is counted too (the background one ran once at start: once it is over,
    // the test's pass is the only one).
    w.after_first_reconciler_pass().await;
    let runs = [("yielded", "false")];
    let passes = |text: &str| sample(text, "storefront_reconciler_runs_total", &runs).unwrap();
    let before = passes(&scrape(&w.app).await);
    storefront::jobs::reconciler::run_once(&w.app.state, Duration::ZERO)
        .await
        .unwrap();
    let text = scrape(&w.app).await;
    assert_eq!(passes(&text), before + 1.0);
    assert!(sample(&text, "storefront_reconciler_lag_seconds", &[]).is_some());
}

#[sqlx::test(migrations = "./migrations")]
async fn refused_webhooks_are_counted_by_reason(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let now = OffsetDateTime::now_utc();
    let d = sign(&status_event(escrow(
        "66bb00000000000000000009",
        "paid",
        "pending",
        "instant",
        now,
    )));
    let headers = |sig: String, ts: OffsetDateTime| {
        vec![
            ("content-type", "application/json".to_owned()),
            ("x-webhook-signature", sig),
            ("x-webhook-timestamp", dhmad::iso::format(ts)),
        ]
    };
    let wrong = dhmad::webhook::sign("not-our-secret", &d.body);
    let garbage = b"{\"id\": oops".to_vec();
    let huge = vec![b' '; storefront::http::WEBHOOK_BODY_LIMIT + 1];
    let stale = now - time::Duration::minutes(6);
    for (body, h, status) in [
        (d.body.clone(), headers(wrong, now), 401),
        (d.body.clone(), headers(d.signature.clone(), stale), 400),
        (
            garbage.clone(),
            headers(dhmad::webhook::sign(SECRET, &garbage), now),
            400,
        ),
        (
            huge.clone(),
            headers(dhmad::webhook::sign(SECRET, &huge), now),
            413,
        ),
        // Verified, but no order has this escrow.
        (d.body.clone(), headers(d.signature.clone(), now), 200),
    ] {
        assert_eq!(app.post_webhook(body, &h).await.status(), status);
    }

    let text = scrape(&app).await;
    for reason in ["signature", "stale", "malformed", "too_large"] {
        let n = sample(
            &text,
            "storefront_webhook_refusals_total",
            &[("reason", reason)],
        );
        assert_eq!(n, Some(1.0), "{reason}: {text}");
    }
    let unmatched = [("outcome", "unmatched")];
    assert_eq!(
        sample(&text, "storefront_webhooks_total", &unmatched),
        Some(1.0)
    );
    let route = [("route", "/webhooks/dhmad")];
    assert_eq!(
        sample(&text, "storefront_http_requests_total", &route),
        Some(5.0)
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn the_favicon_is_served_and_unknown_paths_share_one_label(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let r = app.get("/favicon.ico").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/x-icon");
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let icon = r.bytes().await.unwrap();
    assert_eq!(&icon[..4], &[0, 0, 1, 0], "an ICO header");

    for n in 0..3 {
        let r = app.get(&format!("/wp-admin/guess-{n}.php")).await;
        assert_eq!(r.status(), 404);
    }
    let text = scrape(&app).await;
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_eq!(
        sample(&text, "storefront_http_requests_total", &unmatched),
        Some(3.0),
        "{text}"
    );
    assert!(!text.contains("wp-admin"), "{text}");
    let icon = [("route", "/favicon.ico"), ("status", "200")];
    assert_eq!(
        sample(&text, "storefront_http_requests_total", &icon),
        Some(1.0)
    );
}

/// Any token is a method to hyper: one a client makes up shares the `other` label, or each
/// would make a series for the life of the process, and every scrape longer.
#[sqlx::test(migrations = "./migrations")]
async fn made_up_methods_share_one_label(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let long = "Q".repeat(4_000);
    for (n, name) in ["PROPFIND", "BREW", long.as_str()].into_iter().enumerate() {
        let method = reqwest::Method::from_bytes(format!("{name}{n}").as_bytes()).unwrap();
        let r = app.http.request(method, app.url("/")).send().await.unwrap();
        assert!(r.status().is_client_error(), "{name}: {}", r.status());
    }
    let text = scrape(&app).await;
    let other = [("method", "other"), ("route", "/")];
    assert_eq!(
        sample(&text, "storefront_http_requests_total", &other),
        Some(3.0),
        "{text}"
    );
    assert!(!text.contains("PROPFIND") && !text.contains("BREW") && !text.contains("QQQQ"));
}

#[sqlx::test(migrations = "./migrations")]
async fn each_storefront_counts_its_own_requests(pool: PgPool) {
    // Two storefronts in one process (as in every test run) keep separate counters.
    let a = spawn_offline(pool.clone()).await;
    let b = spawn_offline(pool).await;
    a.get("/healthz").await;
    a.get("/healthz").await;
    b.get("/healthz").await;
    let healthz = [("route", "/healthz")];
    let count = |text: &str| sample(text, "storefront_http_requests_total", &healthz);
    assert_eq!(count(&scrape(&a).await), Some(2.0));
    assert_eq!(count(&scrape(&b).await), Some(1.0));
}

/// `/metrics` tells a stranger nothing (sales, refusals, DHMAD's answers): without
/// `METRICS_TOKEN` it answers this machine only, the client's address taken as rate limits
/// take it, so a proxy on this machine does not open it to the clients it forwards.
#[sqlx::test(migrations = "./migrations")]
async fn metrics_answer_this_machine_only_without_a_token(pool: PgPool) {
    let mut cfg = offline_config();
    cfg.edge.client_ip_header = Some("x-forwarded-for".into());
    let app = spawn(pool, cfg).await;
    let from = |ip: &'static str| {
        app.http
            .get(app.url("/metrics"))
            .header("x-forwarded-for", ip)
            .send()
    };
    for stranger in ["203.0.113.7", "2001:db8::7", "10.0.0.3"] {
        let r = from(stranger).await.unwrap();
        assert_eq!(r.status(), 404, "{stranger}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("storefront_"), "{stranger}: {body}");
    }
    for local in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
        assert_eq!(from(local).await.unwrap().status(), 200, "{local}");
    }
    // A proxy that appends to the client's line (nginx's `$proxy_add_x_forwarded_for`) passes
    // on a byte that is no text, written by the client: the line was then read as no address
    // at all, so as the proxy's, this machine's. And a proxy that names no address.
    for line in [&b"\xff, 203.0.113.7"[..], b"\xff", b"unknown"] {
        let r = app
            .http
            .get(app.url("/metrics"))
            .header("x-forwarded-for", HeaderValue::from_bytes(line).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{}", line.escape_ascii());
        let body = r.text().await.unwrap();
        assert!(!body.contains("storefront_"), "{body}");
    }
    // No header: the peer, this machine.
    scrape(&app).await;
    // A page of another site whose name now points at 127.0.0.1 (DNS rebinding), in a
    // browser on this machine: from loopback, but naming its own host.
    let port = app.port;
    let rebound = [
        "rebind.example",
        "127.0.0.1.nip.example",
        "localhost.example",
    ];
    let this_machine = [
        "localhost",
        "[::1]",
        "127.0.0.1",
        "LOCALHOST",
        "localhost.",
        "127.0.0.1.",
    ];
    let hosts = rebound
        .iter()
        .map(|h| (h, 404))
        .chain(this_machine.iter().map(|h| (h, 200)));
    for (host, status) in hosts {
        let r = app
            .http
            .get(app.url("/metrics"))
            .header("host", format!("{host}:{port}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{host}");
    }

    // Behind a proxy on this machine that nobody configured (no `CLIENT_IP_HEADER`), every
    // request comes from loopback: one the proxy forwarded is refused all the same.
    let direct = spawn_offline(app.pool.clone()).await;
    for header in ["x-forwarded-for", "x-real-ip", "forwarded"] {
        let r = direct
            .http
            .get(direct.url("/metrics"))
            .header(header, "203.0.113.7")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{header}");
    }
    scrape(&direct).await;
}

/// A storefront behind a proxy on this machine (`X-Forwarded-For`) whose metrics need `token`.
async fn behind_a_proxy_with_a_token(pool: PgPool, token: &str) -> TestApp {
    let mut cfg = offline_config();
    cfg.edge.client_ip_header = Some("x-forwarded-for".into());
    cfg.metrics_token = Some(token.to_owned().into());
    spawn(pool, cfg).await
}

/// With `METRICS_TOKEN`, its bearers read `/metrics` from anywhere, and nobody else, this
/// machine included.
#[sqlx::test(migrations = "./migrations")]
async fn metrics_need_the_token_when_one_is_set(pool: PgPool) {
    const TOKEN: &str = "a-scrapers-own-token-0123";
    let app = behind_a_proxy_with_a_token(pool, TOKEN).await;
    let scrape_with = |auth: Option<String>, ip: &'static str| {
        let mut r = app
            .http
            .get(app.url("/metrics"))
            .header("x-forwarded-for", ip);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    for (auth, ip) in [
        (None, "127.0.0.1"),
        (None, "203.0.113.7"),
        (
            Some("Bearer wrong-token-0123456789".to_owned()),
            "127.0.0.1",
        ),
        (Some(format!("Bearer {TOKEN}x")), "203.0.113.7"),
        (Some(format!("Basic {TOKEN}")), "203.0.113.7"),
        (Some(format!("Bearer {ADMIN_TOKEN}")), "203.0.113.7"),
    ] {
        let r = scrape_with(auth.clone(), ip).await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?} from {ip}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"metrics\"");
        let body = r.text().await.unwrap();
        assert!(!body.contains("storefront_"), "{body}");
    }
    let r = scrape_with(Some(format!("Bearer {TOKEN}")), "203.0.113.7")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = scrape_with(Some(format!("bearer {TOKEN}")), "203.0.113.7")
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the scheme's name in any case");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("storefront_webhooks_total"));
}

/// Guesses of `METRICS_TOKEN` are throttled as the back office's logins are: ten wrong ones
/// from an address, and it gets 429 whatever it sends, the right token included. Counted
/// apart from the logins, and per address.
#[sqlx::test(migrations = "./migrations")]
async fn guesses_of_the_metrics_token_are_throttled(pool: PgPool) {
    const TOKEN: &str = "a-scrapers-own-token-4567";
    let app = behind_a_proxy_with_a_token(pool, TOKEN).await;
    let scrape_with = |token: &str, ip: &'static str| {
        app.http
            .get(app.url("/metrics"))
            .header("x-forwarded-for", ip)
            .bearer_auth(token)
            .send()
    };
    let guesser = "198.51.100.9";
    for n in 0..10 {
        let r = scrape_with(&format!("guess-number-{n:04}-xyz"), guesser)
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "guess {n}");
    }
    for token in ["guess-number-0010-xyz", TOKEN] {
        let r = scrape_with(token, guesser).await.unwrap();
        assert_eq!(r.status(), 429, "{token}");
        assert!(r.headers().contains_key("retry-after"));
    }
    assert_eq!(
        scrape_with(TOKEN, "203.0.113.7").await.unwrap().status(),
        200
    );
    // The guesser's back-office logins are judged on a count of their own.
    let counted = |key: String| {
        sqlx::query_scalar!(
            "SELECT count(*) FROM admin_login_failures WHERE client_addr = $1",
            key
        )
        .fetch_one(&app.pool)
    };
    assert_eq!(
        counted(format!("metrics {guesser}")).await.unwrap(),
        Some(10)
    );
    assert_eq!(counted(guesser.to_owned()).await.unwrap(), Some(0));

    // The throttle's table out of reach (the database in trouble): the right token still reads
    // the metrics, which tell of it; a guess is not judged, so not answered.
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE admin_login_failures IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        scrape_with(TOKEN, "192.0.2.44").await.unwrap().status(),
        200
    );
    let r = scrape_with("a-guess-while-it-is-locked", "192.0.2.44")
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    tx.rollback().await.unwrap();
}
