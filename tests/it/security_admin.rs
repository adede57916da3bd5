//! The back office: a server-side session that logout revokes, throttled logins, and every
//! action in the audit trail.

use sqlx::{Connection, PgPool};
use time::OffsetDateTime;

use crate::common::*;

fn admin_cookie(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("sf_admin="))
        .expect("the login sets the session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn the_session_cookie_is_not_the_token_and_dies_on_logout(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let login = app
        .post_form("/admin/login", &[("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(login.status(), 303);
    let cookie = admin_cookie(&login);
    assert!(!cookie.contains(ADMIN_TOKEN), "{cookie}");
    let copied = bare_client();
    let open = |c: &reqwest::Client, cookie: &str| {
        c.get(app.url("/admin")).header("cookie", cookie).send()
    };
    assert_eq!(open(&copied, &cookie).await.unwrap().status(), 200);

    assert_eq!(app.post_form("/admin/logout", &[]).await.status(), 303);
    // A copy of the cookie taken before logout no longer opens anything.
    let after = open(&copied, &cookie).await.unwrap();
    assert_eq!(after.status(), 303);
    assert_eq!(after.headers()["location"], "/admin/login");
    let actions: Vec<String> = sqlx::query_scalar!("SELECT action FROM admin_audit ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(actions, ["login", "logout"]);
}

/// A leaked token is rotated: every session opened with the old one ends with it, on the
/// instance started with the new token.
#[sqlx::test(migrations = "./migrations")]
async fn a_new_admin_token_ends_the_sessions_of_the_old_one(pool: PgPool) {
    let old = spawn_offline(pool.clone()).await;
    let login = old
        .post_form("/admin/login", &[("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(login.status(), 303);
    let cookie = admin_cookie(&login);
    let open = |app: &TestApp| {
        bare_client()
            .get(app.url("/admin"))
            .header("cookie", cookie.clone())
            .send()
    };
    assert_eq!(open(&old).await.unwrap().status(), 200);

    let mut cfg = offline_config();
    cfg.admin_token = Some("a-new-token-after-the-leak".to_owned().into());
    let rotated = spawn(pool, cfg).await;
    let refused = open(&rotated).await.unwrap();
    assert_eq!(refused.status(), 303);
    assert_eq!(refused.headers()["location"], "/admin/login");
    let again = rotated
        .post_form("/admin/login", &[("token", "a-new-token-after-the-leak")])
        .await;
    assert_eq!(again.status(), 303);
    assert_eq!(
        bare_client()
            .get(rotated.url("/admin"))
            .header("cookie", admin_cookie(&again))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Logging in again ends the browser's previous session: a copy of its cookie opens nothing.
#[sqlx::test(migrations = "./migrations")]
async fn a_new_login_ends_the_browsers_previous_session(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let first = app
        .post_form("/admin/login", &[("token", ADMIN_TOKEN)])
        .await;
    let copied = admin_cookie(&first);
    let second = app
        .post_form("/admin/login", &[("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(second.status(), 303);
    let open = |cookie: String| {
        bare_client()
            .get(app.url("/admin"))
            .header("cookie", cookie)
            .send()
    };
    assert_eq!(open(admin_cookie(&second)).await.unwrap().status(), 200);
    let old = open(copied).await.unwrap();
    assert_eq!(old.status(), 303);
    assert_eq!(old.headers()["location"], "/admin/login");
}

/// A login issues a new CSRF token: the one before may have been seen (the CSV export's link
/// carries it into the history and the logs), and it guards no form of the new session.
#[sqlx::test(migrations = "./migrations")]
async fn a_login_issues_a_new_csrf_token(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let before = app.csrf_token().await;
    let login = app
        .post_form("/admin/login", &[("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(login.status(), 303);
    let set: Vec<String> = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .collect();
    let fresh = set
        .iter()
        .find_map(|c| c.strip_prefix("sf_csrf="))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no new CSRF cookie: {set:?}"));
    assert_eq!(fresh.len(), 64);
    assert_ne!(fresh, before);
    // The browser's forms carry the new one, and the old one is refused.
    assert_eq!(app.csrf_token().await, fresh);
    let stale = app
        .http
        .post(app.url("/admin/logout"))
        .form(&[("csrf_token", before.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 403);
}

#[sqlx::test(migrations = "./migrations")]
async fn guessing_the_token_is_throttled(pool: PgPool) {
    let app = spawn_offline(pool).await;
    for _ in 0..10 {
        let r = app.post_form("/admin/login", &[("token", "guess")]).await;
        assert_eq!(r.status(), 401);
    }
    // Even the right token waits now.
    let r = app
        .post_form("/admin/login", &[("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

/// A login form the shop cannot read (a field sent twice) gets the shop's error page, as any
/// other refusal: it was axum's plain-text 422.
#[sqlx::test(migrations = "./migrations")]
async fn an_unreadable_login_form_gets_the_error_page(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let r = app
        .post_form("/admin/login", &[("token", "a"), ("token", "b")])
        .await;
    assert_eq!(r.status(), 400);
    let html = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(html.starts_with("text/html"), "{html}");
    assert!(r.text().await.unwrap().contains("Back to the catalog"));
}

#[sqlx::test(migrations = "./migrations")]
async fn guessing_the_bearer_token_is_counted_and_throttled_like_the_form(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let get = |token: String| app.http.get(app.url("/admin")).bearer_auth(token).send();
    let mut statuses = Vec::new();
    for i in 0..11 {
        statuses.push(get(format!("wrong-{i}")).await.unwrap().status().as_u16());
    }
    assert!(statuses[..10].iter().all(|s| *s == 303), "{statuses:?}");
    assert_eq!(statuses[10], 429, "{statuses:?}");
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_login_failures")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(failures, 10);
    // The address is throttled for the form and for the right token too.
    let r = app
        .post_form("/admin/login", &[("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(r.status(), 429);
    let r = get(ADMIN_TOKEN.into()).await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

#[sqlx::test(migrations = "./migrations")]
async fn guesses_sent_all_at_once_are_throttled_like_one_by_one(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let guesses = (0..40).map(|i| {
        let req = app
            .http
            .get(app.url("/admin"))
            .bearer_auth(format!("wrong-{i}"));
        async move { req.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let compared = statuses.iter().filter(|s| **s != 429).count();
    assert_eq!(compared, 10, "{statuses:?}");
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_login_failures")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(failures, 10);
}

/// Wrong tokens sent all at once from one address wait their turn (the throttle judges an
/// address's attempts one at a time), and each used to wait holding a database connection: a
/// stranger's flood held the whole pool, and the buyers' pages failed after the pool's wait.
/// Login attempts now hold a quarter of it at most.
#[sqlx::test(migrations = "./migrations")]
async fn a_flood_of_wrong_tokens_leaves_the_buyers_the_pool(pool: PgPool) {
    async fn waiting(c: &mut sqlx::PgConnection) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(c)
        .await
        .unwrap()
    }
    let app = spawn_offline(pool.clone()).await;
    let order = app
        .seed_order(
            "chechia-red",
            "pool-left@example.tn",
            "66bb0000000000000000f001",
            OffsetDateTime::now_utc(),
        )
        .await;
    let size = app.state.pool.sqlx().options().get_max_connections();
    let gate = storefront::state::login_gate_size(size) as i64;
    assert!(gate < i64::from(size));
    // The address's turn is held (as by an attempt that is slow to commit): every attempt
    // waits for it, up to its lock timeout (2 s). On connections of the test's own, beside the
    // service's pool.
    let options = (*pool.connect_options()).clone();
    let mut holder = sqlx::PgConnection::connect_with(&options).await.unwrap();
    let mut watcher = sqlx::PgConnection::connect_with(&options).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(7401, hashtext('127.0.0.1'))")
        .execute(&mut holder)
        .await
        .unwrap();
    let flood: Vec<_> = (0..size + 5)
        .map(|i| {
            let req = app
                .http
                .get(app.url("/admin"))
                .bearer_auth(format!("wrong-{i}"));
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while waiting(&mut watcher).await < gate {
        assert!(std::time::Instant::now() < deadline, "no attempt waits");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // However long the flood takes to arrive: never more than the gate at once.
    for _ in 0..50 {
        let n = waiting(&mut watcher).await;
        assert!(n <= gate, "{n} attempts hold a connection each");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A buyer's page is served meanwhile.
    let r = app.get(&format!("/api/orders/{order}")).await;
    assert_eq!(r.status(), 200);

    drop(holder);
    let mut answers = Vec::new();
    for answer in flood {
        answers.push(answer.await.unwrap());
    }
    // Each judged (counted, or throttled past ten), or told to come back (503) if its turn
    // came after its lock timeout.
    assert!(
        answers.iter().all(|s| [303, 429, 503].contains(s)),
        "{answers:?}"
    );
}

/// A script's parallel requests with the right token never throttle it, and leave no failure:
/// a right token used to be counted as a failure until proven right, so with nine failures on
/// record two right tokens in flight at once throttled the second, and one dropped mid-way
/// stayed a failure.
#[sqlx::test(migrations = "./migrations")]
async fn a_scripts_parallel_requests_with_the_right_token_are_not_throttled(pool: PgPool) {
    let app = spawn_offline(pool).await;
    // Nine wrong tokens from this address first (a typo, a stale script): one more failure
    // would throttle it, and a right token in flight must not count as one.
    for i in 0..9 {
        let r = app
            .http
            .get(app.url("/admin/orders"))
            .bearer_auth(format!("stale-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
    }
    let calls = (0..40).map(|_| {
        let req = app
            .http
            .get(app.url("/admin/orders"))
            .bearer_auth(ADMIN_TOKEN);
        async move { req.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_login_failures")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(failures, 9);
}

#[sqlx::test(migrations = "./migrations")]
async fn every_admin_action_is_audited_with_who_and_where(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order(
            "chechia-red",
            "audit@example.tn",
            "66bb000000000000000000c0",
            OffsetDateTime::now_utc(),
        )
        .await;
    // A retry of a failed checkout (DHMAD is unreachable here: it fails again) and a
    // reconcile, with the bearer token.
    sqlx::query("UPDATE orders SET status = 'escrow_failed', escrow_id = NULL WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let r = app
        .http
        .post(app.url(&format!("/admin/orders/{id}/retry")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let r = app
        .http
        .post(app.url("/admin/reconcile"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let rows = sqlx::query!(
        "SELECT actor, action, order_id, client_addr, detail FROM admin_audit ORDER BY id"
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].action, "retry_checkout");
    assert_eq!(rows[0].order_id, Some(id));
    assert!(rows[0].detail.contains("failed"), "{}", rows[0].detail);
    assert_eq!(rows[1].action, "reconcile");
    for r in &rows {
        assert_eq!(r.actor, "token");
        assert_eq!(r.client_addr, "127.0.0.1");
    }
    // Append-only: the trail cannot be rewritten.
    sqlx::query!("DELETE FROM admin_audit")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query!("UPDATE admin_audit SET actor = 'someone else'")
        .execute(&app.pool)
        .await
        .unwrap();
    let left = sqlx::query_scalar!("SELECT count(*) FROM admin_audit WHERE actor = 'token'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, Some(2));
}

/// A reconciliation pass that fails part-way may already have read, cancelled or queued
/// things: the trail says it ran. Before, the failure returned before its audit line.
#[sqlx::test(migrations = "./migrations")]
async fn a_reconcile_that_fails_part_way_is_still_audited(pool: PgPool) {
    let app = spawn_offline(pool).await;
    // The pass's last step puts stranded checkouts back in line: with its table gone, the pass
    // fails after the rest of it ran (in production, a lock held past the lock timeout).
    sqlx::query("ALTER TABLE checkout_queue RENAME TO checkout_queue_away")
        .execute(&app.pool)
        .await
        .unwrap();
    let r = app
        .http
        .post(app.url("/admin/reconcile"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    sqlx::query("ALTER TABLE checkout_queue_away RENAME TO checkout_queue")
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    let rows = sqlx::query!("SELECT action, detail FROM admin_audit ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].action, "reconcile");
    assert!(rows[0].detail.starts_with("failed: "), "{}", rows[0].detail);
}

/// Failed logins, ended sessions and buyers' looks for a lost escrow are forgotten a day on:
/// wrong tokens sent from many addresses do not grow the table for good, and what still
/// decides is kept.
#[sqlx::test(migrations = "./migrations")]
async fn old_failed_logins_ended_sessions_and_old_call_log_lines_are_forgotten(pool: PgPool) {
    let app = spawn_offline(pool).await;
    sqlx::query!(
        "INSERT INTO admin_login_failures (client_addr, at)
         SELECT '198.51.100.' || n, now() - interval '2 days' FROM generate_series(1, 30) n
         UNION ALL SELECT '203.0.113.9', now() - interval '1 minute'"
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query!(
        "INSERT INTO admin_sessions (id_hash, expires_at, revoked_at, client_addr) VALUES
           ('ended', now() - interval '2 days', NULL, 'a'),
           ('revoked', now() + interval '1 hour', now() - interval '2 days', 'b'),
           ('live', now() + interval '1 hour', NULL, 'c'),
           ('just-ended', now() - interval '1 hour', NULL, 'd')"
    )
    .execute(&app.pool)
    .await
    .unwrap();

    // The DHMAD call log: a line of 31 days ago and one of today.
    let order = app
        .seed_order(
            "chechia-red",
            "calls@example.tn",
            "66bb000000000000000000c2",
            OffsetDateTime::now_utc(),
        )
        .await;
    sqlx::query(
        "INSERT INTO dhmad_calls (order_id, method, endpoint, status, duration_ms, at) VALUES
           ($1, 'GET', '/escrows/:id', 200, 12, now() - interval '31 days'),
           ($1, 'GET', '/escrows/:id', 200, 9, now())",
    )
    .bind(order)
    .execute(&app.pool)
    .await
    .unwrap();

    // Buyers' looks for a lost escrow, one two days old and one of now; and another job's turn.
    sqlx::query(
        "INSERT INTO job_turns (name, at) VALUES
           ('escrow-lookup:old', now() - interval '2 days'),
           ('escrow-lookup:new', now()),
           ('another-job', now() - interval '2 days')",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    storefront::jobs::housekeeping::run_once(&app.state)
        .await
        .unwrap();

    let turns: Vec<String> = sqlx::query_scalar("SELECT name FROM job_turns ORDER BY name")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(
        turns.contains(&"escrow-lookup:new".to_owned())
            && turns.contains(&"another-job".to_owned())
            && !turns.contains(&"escrow-lookup:old".to_owned()),
        "{turns:?}"
    );

    let calls: Vec<i32> = sqlx::query_scalar(
        "SELECT duration_ms FROM dhmad_calls WHERE order_id = $1 AND method = 'GET'",
    )
    .bind(order)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(calls, [9]);
    let failures: Vec<String> = sqlx::query_scalar!("SELECT client_addr FROM admin_login_failures")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(failures, ["203.0.113.9"]);
    let sessions: Vec<String> =
        sqlx::query_scalar!("SELECT id_hash FROM admin_sessions ORDER BY id_hash")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(sessions, ["just-ended", "live"]);
}

/// "Retry deliver" that fails (the order's row is locked past the 2 s lock timeout) is in the
/// audit trail too, as ship and retry-checkout failures are: it used to leave nothing.
#[sqlx::test(migrations = "./migrations")]
async fn a_failed_retry_of_a_deliver_is_audited(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let escrow_id = "66bb000000000000000000c1";
    let t0 = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let id = app
        .seed_order("ai-credits-500", "retry@example.tn", escrow_id, t0)
        .await;
    let paid = sign(&status_event(escrow(
        escrow_id,
        "paid",
        "pending",
        "instant",
        t0 + time::Duration::minutes(1),
    )));
    assert_eq!(app.deliver(&paid).await.status(), 200);
    // Someone holds the order's row until the answer is in, past the service's lock timeout.
    // (As the service's own writers lock it: the audit row's reference to the order needs only
    // a key-share lock, which this leaves.)
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM orders WHERE id = $1 FOR NO KEY UPDATE")
        .bind(id)
        .execute(&mut *holder)
        .await
        .unwrap();
    let r = app
        .http
        .post(app.url(&format!("/admin/orders/{id}/retry")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    holder.rollback().await.unwrap();
    let audit: Vec<(String, String)> =
        sqlx::query_as("SELECT action, detail FROM admin_audit WHERE order_id = $1")
            .bind(id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].0, "retry_deliver");
    assert!(audit[0].1.starts_with("failed"), "{audit:?}");
}

/// The CSV export writes the audit trail: another site sending the merchant's browser there
/// (the session cookie goes along on a navigation) is refused, and leaves no line behind.
#[sqlx::test(migrations = "./migrations")]
async fn another_site_cannot_make_the_merchants_browser_export(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let login = app
        .post_form("/admin/login", &[("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(login.status(), 303);
    let export = |path: String, site: Option<&'static str>| {
        let r = app.http.get(app.url(&path));
        match site {
            Some(site) => r
                .header("sec-fetch-site", site)
                .header("sec-fetch-mode", "navigate"),
            None => r,
        }
        .send()
    };
    let forged = || "/admin/orders.csv?q=call+support+now".to_owned();
    // Another site's link; one opened from a mail or chat program (`none`); one followed by a
    // browser that sends no fetch metadata (and, on a navigation, no `Origin`).
    for site in [Some("cross-site"), Some("same-site"), Some("none"), None] {
        let r = export(forged(), site).await.unwrap();
        assert_eq!(r.status(), 403, "{site:?}");
    }
    let exports = || {
        sqlx::query_scalar!("SELECT count(*) FROM admin_audit WHERE action = 'export_csv'")
            .fetch_one(&app.pool)
    };
    assert_eq!(exports().await.unwrap(), Some(0));
    // The merchant's own click on the list's link, and a script's request without fetch
    // metadata, still export.
    let list = app.get("/admin/orders?q=call").await.text().await.unwrap();
    let link = list
        .split("href=\"")
        .map(|rest| rest.split('"').next().unwrap_or_default())
        .find(|href| href.starts_with("/admin/orders.csv"))
        .expect("the list links its export")
        .replace("&#38;", "&");
    assert!(link.contains("q=call&csrf_token="), "{link}");
    let own = export(link.clone(), Some("same-origin")).await.unwrap();
    assert_eq!(own.status(), 200);
    assert!(own
        .text()
        .await
        .unwrap()
        .starts_with("created_at,order_id,"));
    let script = bare_client()
        .get(app.url("/admin/orders.csv"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(exports().await.unwrap(), Some(2));
    // The trail keeps the filter, not the token.
    let detail = sqlx::query_scalar!(
        "SELECT detail FROM admin_audit WHERE action = 'export_csv' ORDER BY id LIMIT 1"
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(detail, "filter: q=call");
}

/// Without `ADMIN_TOKEN` there is no back office: its login page is a 404 like the rest of it
/// (it rendered a form that could never succeed, and told a prober the back office existed).
#[sqlx::test(migrations = "./migrations")]
async fn without_an_admin_token_the_back_office_is_not_there(pool: PgPool) {
    let mut cfg = offline_config();
    cfg.admin_token = None;
    let app = spawn(pool, cfg).await;
    for path in ["/admin", "/admin/login", "/admin/orders"] {
        let r = bare_client().get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = app
        .post_form("/admin/login", &[("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(app.post_form("/admin/logout", &[]).await.status(), 404);
}
