//! The HTTP edge under attack: forged forms, floods, NUL bytes, a webhook dated in the
//! future, caching (client addresses behind a proxy: `security_client_addr`; slow clients:
//! `security_connections`). Each test reproduces a finding of the security review.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::common::{sandbox::*, *};

#[sqlx::test(migrations = "./migrations")]
async fn forms_need_the_shops_token_and_origin(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "csrf@example.tn").await;
    let token = w.app.csrf_token().await;
    let post = |path: String,
                fields: Vec<(&'static str, String)>,
                headers: Vec<(&'static str, &'static str)>| {
        let mut req = w.http.post(w.app.url(&path)).form(&fields);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let pay = format!("/orders/{}/pay", s.order_id);
    // No token, a wrong one, another site's origin, a cross-site fetch: all refused.
    assert_eq!(
        post(pay.clone(), vec![], vec![]).await.unwrap().status(),
        403
    );
    let wrong = vec![("csrf_token", "0".repeat(64))];
    assert_eq!(
        post(pay.clone(), wrong, vec![]).await.unwrap().status(),
        403
    );
    let good = vec![("csrf_token", token.clone())];
    let evil = vec![("origin", "http://evil.example")];
    assert_eq!(
        post(pay.clone(), good.clone(), evil)
            .await
            .unwrap()
            .status(),
        403
    );
    let sibling = vec![("sec-fetch-site", "same-site")];
    assert_eq!(
        post(pay.clone(), good.clone(), sibling)
            .await
            .unwrap()
            .status(),
        403
    );
    let checkout = vec![
        ("sku", "chechia-red".to_owned()),
        ("email", "x@example.tn".to_owned()),
    ];
    assert_eq!(
        post("/checkout".into(), checkout, vec![])
            .await
            .unwrap()
            .status(),
        403
    );
    // The shop's own form, from the shop's origin, goes through.
    let r = post(pay, good, vec![("sec-fetch-site", "same-origin")])
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // The back office: a logged-in browser's cookie alone does not ship an order.
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "paid").await;
    assert_eq!(
        w.app
            .post_form("/admin/login", &[("token", ADMIN_TOKEN)])
            .await
            .status(),
        303
    );
    let ship = format!("/admin/orders/{}/ship", s.order_id);
    let forged = w.http.post(w.app.url(&ship)).send().await.unwrap();
    assert_eq!(forged.status(), 403, "cookie without token");
    assert_eq!(order_status(&w.app.pool, s.order_id).await, "paid");
    assert_eq!(w.app.post_form(&ship, &[]).await.status(), 303);
    w.wait_status(s.order_id, "delivered").await;
}

/// DNS rebinding: another site's name pointed at the shop makes the attacker's page
/// same-origin with it in the browser, which then sends the attacker's name as `Host` and
/// `Origin` alike, and the page can read the form's token. Before the fix, that `Origin`
/// matched "the origin the request was addressed to", and the demo's well-known back-office
/// token logged the page in. An address or `localhost` still counts as the shop's own.
#[sqlx::test(migrations = "./migrations")]
async fn a_rebound_name_cannot_post_the_shops_forms(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = "a".repeat(64);
    let login = |host: String| {
        bare.post(app.url("/admin/login"))
            .header("host", &host)
            .header("origin", format!("http://{host}"))
            .header("sec-fetch-site", "same-origin")
            .header("cookie", format!("sf_csrf={token}"))
            .form(&[("csrf_token", token.as_str()), ("token", ADMIN_TOKEN)])
            .send()
    };
    let logged_in = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().contains("sf_admin="))
    };
    for rebound in ["rebind.example", "Evil.Example.", "localhost.evil.example"] {
        let r = login(format!("{rebound}:{port}")).await.unwrap();
        assert_eq!(r.status(), 403, "{rebound}");
        assert!(!logged_in(&r), "{rebound}");
    }
    for own in ["127.0.0.1", "localhost", "shop.localhost", "[::1]"] {
        let r = login(format!("{own}:{port}")).await.unwrap();
        assert_eq!(r.status(), 303, "{own}");
        assert!(logged_in(&r), "{own}");
    }
}

/// The same page could send the demo's well-known back-office token as a script does, and
/// read every order: while the shop runs on that token, a request naming another site is
/// refused. A private token is unknown to such a page, and scripts may name the shop as they
/// like.
#[sqlx::test(migrations = "./migrations")]
async fn a_rebound_name_cannot_use_the_demo_token(pool: PgPool) {
    let demo = storefront::config::PUBLIC_DEMO_SECRETS[1];
    let mut cfg = offline_config();
    cfg.admin_token = Some(demo.to_owned().into());
    let demo_app = spawn(pool.clone(), cfg).await;
    let own_app = spawn(pool, offline_config()).await;
    let orders = |app: &TestApp, host: &str, token: &str| {
        let port = app.base.rsplit(':').next().unwrap();
        app.http
            .get(app.url("/admin/orders"))
            .header("host", format!("{host}:{port}"))
            .bearer_auth(token)
            .send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    let rebound = orders(&demo_app, "rebind.example", demo).await.unwrap();
    assert_eq!(status(rebound), 403);
    for own in ["127.0.0.1", "localhost"] {
        let r = orders(&demo_app, own, demo).await.unwrap();
        assert_eq!(status(r), 200, "{own}");
    }
    let private = orders(&own_app, "shop.internal", ADMIN_TOKEN)
        .await
        .unwrap();
    assert_eq!(status(private), 200);
}

/// A CSRF cookie someone planted (a sibling subdomain can set one) beside a matching field
/// proves nothing: only a token of the shape this shop issues counts. And the favicon, which
/// shared caches keep for a week, never carries one, nor do the machines' routes.
#[sqlx::test(migrations = "./migrations")]
async fn a_planted_csrf_cookie_opens_nothing_and_the_favicon_sets_none(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let pay = app.url(&format!("/orders/{}/pay", uuid::Uuid::new_v4()));
    for planted in ["", "abc", &"g".repeat(64)] {
        let r = bare
            .post(&pay)
            .header("cookie", format!("sf_csrf={planted}"))
            .form(&[("csrf_token", planted)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{planted:?}");
    }
    // A well-formed token of the browser's own still passes the check (then: no such order).
    let token = "a".repeat(64);
    let r = bare
        .post(&pay)
        .header("cookie", format!("sf_csrf={token}"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Nor do the machines' routes, which say nothing about caching.
    for path in ["/favicon.ico", "/openapi.json", "/healthz", "/readyz"] {
        let r = bare.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers().get("set-cookie").is_none(),
            "{path}: {:?}",
            r.headers()
        );
    }
    let page = bare.get(app.url("/")).send().await.unwrap();
    assert!(
        page.headers().get("set-cookie").is_some(),
        "the catalog gives one"
    );
    // An answer that gives one is never kept by a shared cache, or it would hand that token
    // to every visitor: a 404 (heuristically cacheable) or a 405 no route marks no-store.
    let post_only = app.url("/checkout");
    let mut given = 0;
    for r in [
        bare.get(app.url("/robots.txt")).send().await.unwrap(),
        bare.get(app.url("/admin/no-such-page"))
            .send()
            .await
            .unwrap(),
        bare.get(post_only).send().await.unwrap(),
    ] {
        let h = r.headers();
        if h.get("set-cookie").is_some() {
            given += 1;
            assert_eq!(h["cache-control"], "no-store", "{}: {h:?}", r.url());
        }
    }
    assert!(
        given > 0,
        "no such answer gave a token: the check above checked nothing"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn floods_are_refused_before_they_reach_dhmad(pool: PgPool) {
    let w = world(pool, |c| {
        c.edge.checkout_per_minute = 6; // bursts of 5
        c.edge.actions_per_minute = 30; // bursts of 10
                                        // One read of DHMAD for the callbacks below however long they take on a busy machine.
        c.edge.callback_recheck = std::time::Duration::from_secs(600);
    })
    .await;
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for i in 0..12 {
        let r = w
            .http
            .post(w.app.url("/api/checkout"))
            .json(&json!({"sku": "ai-credits-500", "email": format!("flood{i}@example.tn")}))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
        statuses.push(r.status().as_u16());
    }
    // A burst of 5, and one more for each 10 s (one token's return) the twelve took on a
    // loaded machine.
    let refilled = usize::try_from(started.elapsed().as_secs() / 10).unwrap_or(usize::MAX);
    let created = statuses.iter().filter(|s| **s == 201).count();
    assert!((5..=5 + refilled).contains(&created), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        12 - created,
        "{statuses:?}"
    );
    assert_eq!(w.count_calls("POST", "/api/v1/escrows").await, created);

    // 60 callbacks for one unpaid session: DHMAD is asked about it once.
    let s = w.dhmad_calls().await.len();
    let session: String = sqlx::query_scalar!("SELECT session_id FROM checkout_sessions LIMIT 1")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    let mut refused = 0;
    for _ in 0..60 {
        let r = w
            .app
            .get(&format!(
                "/checkout/callback?session_id={session}&status=completed"
            ))
            .await;
        match r.status().as_u16() {
            303 => {}
            429 => refused += 1,
            other => panic!("callback answered {other}"),
        }
    }
    assert!(refused >= 40, "{refused} of 60 refused");
    let calls = w.dhmad_calls().await;
    let session_reads = calls[s..]
        .iter()
        .filter(|c| c.starts_with("GET /api/v1/sessions/"))
        .count();
    assert_eq!(session_reads, 1, "{:?}", &calls[s..]);
}

/// One address returning from DHMAD on the pages of many orders of its own: each page is
/// looked at once per interval, but each return was a look, two of DHMAD's calls taken ahead
/// of the checkout line, and rotating a few pages spent all of DHMAD's window. A client now has
/// an allowance of looks (a sixth of its actions: here 10 a minute, in bursts of 5); past it,
/// the return still reaches the order page, which says what the shop knows.
#[sqlx::test(migrations = "./migrations")]
async fn one_client_returning_on_many_pages_gets_a_few_looks_at_dhmad(pool: PgPool) {
    let w = world(pool, |c| {
        c.edge.checkout_per_minute = 1_000;
        c.edge.actions_per_minute = 60;
        // A page looked at is not looked at again during the test, however slow the machine.
        c.edge.callback_recheck = std::time::Duration::from_secs(600);
    })
    .await;
    let mut sessions = Vec::new();
    for i in 0..8 {
        sessions.push(
            w.checkout("ai-credits-500", &format!("many{i}@example.tn"))
                .await,
        );
    }
    let started = std::time::Instant::now();
    let before = w.dhmad_calls().await.len();
    for s in &sessions {
        let r = w
            .app
            .get(&format!(
                "/checkout/callback?session_id={}&status=completed",
                s.session_id
            ))
            .await;
        assert_eq!(r.status(), 303);
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(to, format!("/orders/{}", s.order_id));
    }
    let calls = w.dhmad_calls().await;
    let looks = calls[before..]
        .iter()
        .filter(|c| c.starts_with("GET /api/v1/sessions/"))
        .count();
    // A burst of 5, and one more for each 6 s the returns took on a loaded machine.
    let refilled = usize::try_from(started.elapsed().as_secs() / 6).unwrap_or(usize::MAX);
    assert!(
        (5..=5 + refilled).contains(&looks),
        "{:?}",
        &calls[before..]
    );
    // The pages not looked at read as looked at an interval ago: their own buyer's next return
    // may look.
    let ids: Vec<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
    let unclaimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM checkout_sessions
          WHERE session_id = ANY($1) AND checked_at <= now() - interval '300 seconds'",
    )
    .bind(&ids)
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(unclaimed, i64::try_from(sessions.len() - looks).unwrap());
}

/// An instant order awaiting payment with escrow `escrow_id`, and DHMAD's signed `paid` for it
/// whose escrow title is `title` as written in the JSON (escapes included), signed as sent.
async fn paid_with_title(
    app: &TestApp,
    escrow_id: &str,
    title: &str,
) -> (uuid::Uuid, dhmad::webhook::SignedDelivery) {
    let id = app
        .seed_order(
            "ai-credits-500",
            &format!("{escrow_id}@example.tn"),
            escrow_id,
            OffsetDateTime::now_utc() - time::Duration::minutes(1),
        )
        .await;
    let mut d = sign(&status_event(escrow(
        escrow_id,
        "paid",
        "pending",
        "instant",
        OffsetDateTime::now_utc(),
    )));
    let text = String::from_utf8(d.body.clone()).unwrap();
    assert!(text.contains(r#""title":"test""#));
    d.body = text
        .replace(r#""title":"test""#, &format!(r#""title":"{title}""#))
        .into_bytes();
    d.signature = dhmad::webhook::sign(SECRET, &d.body);
    (id, d)
}

#[sqlx::test(migrations = "./migrations")]
async fn nul_bytes_get_400_and_a_signed_webhook_holding_one_is_applied(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let r = app
        .http
        .post(app.url("/api/checkout"))
        .json(&json!({"sku": "ai-credits-500", "email": "a\u{0}@example.tn"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .http
        .post(app.url("/api/checkout"))
        .json(&json!({"sku": "ai-\u{0}credits", "email": "a@example.tn"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A session id holding one cannot be DHMAD's: unknown, as the team's design says (docs/ARCHITECTURE.md) (404).
    let r = app
        .get("/checkout/callback?session_id=%00&status=completed")
        .await;
    assert_eq!(r.status(), 404);
    let r = app.get("/orders/%00").await;
    assert_eq!(r.status(), 404);
    // Not even UTF-8: unknown like any other id, with the usual JSON error.
    let r = app.get("/api/orders/%FF").await;
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));

    let (id, d) = paid_with_title(&app, "66bb000000000000000000a0", r#"te\u0000st"#).await;
    let r = app.deliver(&d).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(order_status(&app.pool, id).await, "paid");
    let row = sqlx::query!(
        "SELECT payload->'data'->'escrow'->>'title' AS title, body_sha256 FROM webhook_inbox"
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(row.title.as_deref(), Some("te\u{fffd}st"));
    use sha2::Digest;
    assert_eq!(
        row.body_sha256,
        Some(hex::encode(sha2::Sha256::digest(&d.body)))
    );
}

/// A signed event holding a string cut inside a surrogate pair (`"\ud83d"` alone, as
/// JavaScript writes a truncated emoji): applied, the lone half stored as U+FFFD. It was
/// refused with a 400, so DHMAD stopped retrying and the payment was lost.
#[sqlx::test(migrations = "./migrations")]
async fn a_signed_webhook_with_a_lone_surrogate_is_applied(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let (id, d) = paid_with_title(&app, "66bb000000000000000000a1", r#"test \ud83d"#).await;
    let r = app.deliver(&d).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(order_status(&app.pool, id).await, "paid");
    let title: Option<String> =
        sqlx::query_scalar("SELECT payload->'data'->'escrow'->>'title' FROM webhook_inbox")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(title.as_deref(), Some("test \u{fffd}"));
}

#[sqlx::test(migrations = "./migrations")]
async fn a_snapshot_dated_in_the_future_does_not_freeze_the_order(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let far = time::macros::datetime!(2099-01-01 00:00 UTC);
    let secret = w.sb.webhook_secret().to_owned();

    // A signed webhook says "pending" with a clock of 2099; then the buyer pays.
    let s = w.checkout("ai-credits-500", "future@example.tn").await;
    let escrow_id = w.app.order_json(s.order_id).await["escrow_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let env = status_event(escrow(&escrow_id, "pending", "pending", "instant", far));
    let d = dhmad::webhook::SignedDelivery::new(&secret, &env, OffsetDateTime::now_utc());
    assert_eq!(w.app.deliver(&d).await.status(), 200);
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "completed").await;

    // An order whose stored clock is already in the future (applied before the fix) and whose
    // webhooks are lost: the callback's read of DHMAD's API still moves it.
    let t = w.checkout("chechia-red", "future2@example.tn").await;
    sqlx::query!(
        "UPDATE orders SET escrow_updated_at = $2 WHERE id = $1",
        t.order_id,
        far
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    let redirect = w.complete(&t.session_id).await;
    w.land_on_callback(&redirect).await;
    assert_eq!(w.app.order_json(t.order_id).await["status"], "paid");
}

#[sqlx::test(migrations = "./migrations")]
async fn private_pages_are_not_cached_and_https_gets_hsts(pool: PgPool) {
    let mut cfg = offline_config();
    cfg.public_base_url = "https://shop.example".parse().unwrap();
    let app = spawn(pool, cfg).await;
    let id = app
        .seed_order(
            "chechia-red",
            "cache@example.tn",
            "66bb000000000000000000b0",
            OffsetDateTime::now_utc(),
        )
        .await;
    // The catalog too: it gives each browser its own checkout token and CSRF token, which a
    // shared cache would hand to every visitor.
    for path in [
        "/".into(),
        format!("/orders/{id}"),
        format!("/api/orders/{id}"),
        "/admin/login".into(),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        assert!(r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age="));
    }
    // Cookies on an https shop are Secure, and the two tokens are `__Host-` cookies (path `/`,
    // no domain), which a browser takes from this host only: a sibling subdomain cannot plant
    // its own checkout or CSRF token.
    // The catalog gives two: the CSRF token and the browser's checkout token.
    let r = reqwest::get(app.url("/")).await.unwrap();
    let cookies: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("__Host-sf_csrf=")),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-sf_buyer=") && c.contains("SameSite=Lax")),
        "{cookies:?}"
    );
    for cookie in &cookies {
        assert!(
            cookie.contains("Secure")
                && cookie.contains("HttpOnly")
                && cookie.contains("Path=/;")
                && !cookie.contains("Domain"),
            "{cookie}"
        );
    }
    // Only the `__Host-` token counts: one under the plain name, which any subdomain may set,
    // opens nothing.
    let token = "b".repeat(64);
    let pay = app.url(&format!("/orders/{}/pay", uuid::Uuid::new_v4()));
    for (name, status) in [("sf_csrf", 403), ("__Host-sf_csrf", 404)] {
        let r = reqwest::Client::new()
            .post(&pay)
            .header("cookie", format!("{name}={token}"))
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{name}");
    }
    // The back office's session (path `/admin`) is a `__Secure-` cookie, which a browser takes
    // from a secure origin only: a plain-http page of a sibling name cannot plant one of that
    // name to hide the real session. Only that name opens the back office.
    let csrf = cookies
        .iter()
        .find_map(|c| c.strip_prefix("__Host-sf_csrf="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/admin/login"))
        .header("cookie", format!("__Host-sf_csrf={csrf}"))
        .form(&[("token", ADMIN_TOKEN), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let session = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Secure-sf_admin="))
        .expect("the session's cookie");
    assert!(
        session.contains("Secure")
            && session.contains("HttpOnly")
            && session.contains("Path=/admin"),
        "{session}"
    );
    let id = session["__Secure-sf_admin=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for (name, status) in [("sf_admin", 303), ("__Secure-sf_admin", 200)] {
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(app.url("/admin"))
            .header("cookie", format!("{name}={id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{name}");
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn refused_order_actions_and_checkouts_are_not_cached(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order(
            "chechia-red",
            "refused@example.tn",
            "66bb000000000000000000d0",
            OffsetDateTime::now_utc(),
        )
        .await;
    // Not paid yet: confirming receipt is refused with the whole private order page.
    let r = app.post_form(&format!("/orders/{id}/confirm"), &[]).await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.text().await.unwrap().contains("refused@example.tn"));
    // A refused checkout form shows the address typed.
    let r = app
        .post_form("/checkout", &[("sku", "chechia-red"), ("email", "x")])
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["cache-control"], "no-store");
}
