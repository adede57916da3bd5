//! Bursts past DHMAD's rate limit (issue 13): checkouts wait in line on a page that moves on by
//! itself, DHMAD's budget is one for every instance on the database, nothing is created twice
//! and background work gets only what buyers leave. The sandbox runs with a tight limit and a
//! short window so that a test waits seconds, not minutes (how fast the line moves is measured
//! by `scripts/bench`, not here).

use std::collections::HashSet;
use std::time::Duration;

use dhmad_sandbox::SandboxConfig;
use reqwest::header::{LOCATION, REFRESH, RETRY_AFTER};
use serde_json::{json, Value};
use sqlx::PgPool;
use storefront::budget::{Limits, Prepaid};
use storefront::db::{self, budget::Claimant};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::common::{sandbox::*, *};

const SKU: &str = "ai-credits-500";

/// A sandbox allowing `calls` per `window_secs`, and a storefront whose budget says the same.
pub(crate) async fn tight_world(pool: PgPool, calls: u32, window_secs: u64) -> World {
    let mut sb = SandboxConfig::for_tests();
    sb.rate_limit_per_minute = calls;
    sb.rate_window = Duration::from_secs(window_secs);
    world_with(pool, sb, |c| {
        c.dhmad_budget = Limits {
            calls,
            window: Duration::from_secs(window_secs),
        };
        // Every buyer of the test comes from 127.0.0.1: the per-address limit is not tested here.
        c.edge.checkout_per_minute = 100_000;
        c.edge.actions_per_minute = 100_000;
    })
    .await
}

/// What one buyer saw, from the catalog's form to DHMAD's page.
struct Journey {
    order_id: Uuid,
    dhmad_page: String,
    waiting_pages: usize,
    statuses: Vec<u16>,
}

/// A browser of its own (cookies), submitting the catalog's form once and then doing only what
/// a browser does by itself: follow redirects and the waiting page's `Refresh`.
async fn buyer(base: String, pool: PgPool, sandbox_base: String, i: usize) -> Journey {
    let url = |path: &str| format!("{base}{path}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let page = http
        .get(url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_token_in(&page);
    let email = format!("burst{i}@example.tn");
    let r = http
        .post(url("/checkout"))
        .form(&[
            ("sku", SKU),
            ("email", email.as_str()),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let mut statuses = vec![r.status().as_u16()];
    let mut next = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let mut waiting_pages = 0;
    let mut order_id = None;
    for _ in 0..200 {
        if next.starts_with(&sandbox_base) {
            break;
        }
        let id = next
            .strip_prefix("/orders/")
            .and_then(|p| p.strip_suffix("/checkout"))
            .unwrap_or_else(|| panic!("buyer {i} sent to {next}"));
        order_id = Some(id.parse().unwrap());
        let r = http.get(url(&next)).send().await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 303 {
            next = r.headers()[LOCATION].to_str().unwrap().to_owned();
            continue;
        }
        assert_eq!(r.status(), 200, "buyer {i}: waiting page");
        let refresh: u64 = r.headers()[REFRESH].to_str().unwrap().parse().unwrap();
        assert!((2..=10).contains(&refresh), "refresh every {refresh} s");
        assert!(r.headers().contains_key(RETRY_AFTER));
        let body = r.text().await.unwrap();
        assert!(body.contains(&format!(
            r#"<meta http-equiv="refresh" content="{refresh}">"#
        )));
        assert!(body.contains("Expected wait: about"), "{body}");
        waiting_pages += 1;
        tokio::time::sleep(Duration::from_secs(refresh)).await;
    }
    assert!(
        next.starts_with(&sandbox_base),
        "buyer {i} never reached DHMAD"
    );
    let order_id = match order_id {
        Some(id) => id,
        None => order_of_session(&pool, &next).await,
    };
    Journey {
        order_id,
        dhmad_page: next,
        waiting_pages,
        statuses,
    }
}

async fn order_of_session(pool: &PgPool, url: &str) -> Uuid {
    sqlx::query_scalar("SELECT order_id FROM checkout_sessions WHERE url = $1")
        .bind(url)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_burst_past_dhmads_limit_reaches_dhmad_with_no_error_page_and_nothing_twice(
    pool: PgPool,
) {
    const BUYERS: usize = 24;
    const CALLS: u32 = 12;
    const WINDOW: u64 = 3;
    let w = tight_world(pool, CALLS, WINDOW).await;
    let mut buyers = tokio::task::JoinSet::new();
    for i in 0..BUYERS {
        let (base, pool) = (w.app.base.clone(), w.app.pool.clone());
        buyers.spawn(buyer(base, pool, w.sb.base_url(), i));
    }
    let journeys = buyers.join_all().await;

    // Every buyer is on DHMAD's page, having sent the form once and seen no error.
    for j in &journeys {
        assert!(j.statuses.iter().all(|s| *s < 400), "{:?}", j.statuses);
        let page = w.http.get(&j.dhmad_page).send().await.unwrap();
        assert_eq!(page.status(), 200, "DHMAD's page {}", j.dhmad_page);
    }
    // 48 calls against 12 a window: buyers wait in line (how many depends on how fast they
    // arrive; the first window serves six).
    let waited = journeys.iter().filter(|j| j.waiting_pages > 0).count();
    assert!(waited > 0, "nobody waited: the line was not used");
    let orders: HashSet<Uuid> = journeys.iter().map(|j| j.order_id).collect();
    assert_eq!(orders.len(), BUYERS, "one order per buyer");
    let pages: HashSet<&str> = journeys.iter().map(|j| j.dhmad_page.as_str()).collect();
    assert_eq!(pages.len(), BUYERS, "one payment page per buyer");

    // Nothing created twice, nothing refused by DHMAD, and no window ever over the limit.
    let log = w.dhmad_log().await;
    assert!(log.iter().all(|(_, status, _)| *status != 429), "{log:?}");
    let creates = log
        .iter()
        .filter(|(c, ..)| c == "POST /api/v1/escrows")
        .count();
    let sessions = log
        .iter()
        .filter(|(c, ..)| c.ends_with("/sessions"))
        .count();
    assert_eq!((creates, sessions), (BUYERS, BUYERS), "{log:?}");
    let window = time::Duration::seconds(WINDOW as i64);
    for (_, _, at) in &log {
        let inside = log
            .iter()
            .filter(|(_, _, t)| *t > *at - window && t <= at)
            .count();
        assert!(
            inside <= CALLS as usize,
            "{inside} calls within a window ending {at}"
        );
    }
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status::text FROM orders ORDER BY created_at")
            .fetch_all(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(statuses, vec!["awaiting_payment"; BUYERS]);
    assert_eq!(db::checkout_queue::len(&w.app.pool).await.unwrap(), 0);
}

/// A checkout takes both of its calls at once, but sends the second only after DHMAD has
/// answered the first. With a slow DHMAD that is well after the rows were taken: the second
/// call dates its row when it goes, so the next checkout does not reach DHMAD while it is still
/// inside DHMAD's window (where DHMAD answered 429, and paused every checkout).
#[sqlx::test]
async fn a_call_sent_late_keeps_its_row_until_its_window_is_over(pool: PgPool) {
    // One checkout's worth a window of 5 s (the next buyer must come before it is over), and
    // DHMAD takes 2 s over the first create.
    const WINDOW: i64 = 5;
    let w = tight_world(pool, 2, WINDOW as u64).await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows", "fault": "delay", "hang_ms": 2000}]}))
        .await;
    w.checkout(SKU, "slow@example.tn").await;
    // The next buyer waits in line for both of its calls.
    let id = checkout_in_line(&w, "next@example.tn").await;
    wait_for("the queued checkout to be served", 25, || async {
        let o = w.app.order_json(id).await;
        o["checkout_url"].is_string().then_some(())
    })
    .await;
    // DHMAD refused nothing: the second checkout's calls came a window after the first one's
    // session call (less the time that call took to be answered, under a second), not after
    // its rows were taken (3.5 s before the second create).
    let log = w.dhmad_log().await;
    assert!(log.iter().all(|(_, status, _)| *status != 429), "{log:?}");
    let answered = |is: fn(&str) -> bool, nth: usize| {
        log.iter()
            .filter(|(c, ..)| is(c))
            .nth(nth)
            .map(|(.., t)| *t)
            .unwrap_or_else(|| panic!("call #{nth}: {log:?}"))
    };
    let first_session = answered(|c| c.ends_with("/sessions"), 0);
    let second_create = answered(|c| c == "POST /api/v1/escrows", 1);
    assert!(
        second_create - first_session >= time::Duration::seconds(WINDOW - 1),
        "{log:?}"
    );
}

#[sqlx::test]
async fn the_api_answers_202_in_line_and_every_instance_shares_one_budget(pool: PgPool) {
    // Two calls a window: one checkout's worth (a long window: starting the second instance
    // may take seconds on a busy machine).
    let w = tight_world(pool.clone(), 2, 10).await;
    let first = w.checkout(SKU, "first@example.tn").await;

    // A second instance on the same database finds the budget spent by the first.
    let mut cfg = w.app.state.config.as_ref().clone();
    cfg.listen_addr = "127.0.0.1:0".parse().unwrap();
    let other = spawn(pool, cfg).await;
    let key = idempotency_key(SKU, "second@example.tn");
    let queued = |app: &TestApp| {
        app.http
            .post(app.url("/api/checkout"))
            .header("idempotency-key", key.clone())
            .json(&json!({"sku": SKU, "email": "second@example.tn"}))
            .send()
    };
    let r = queued(&other).await.unwrap();
    assert_eq!(r.status(), 202);
    let wait: u64 = r.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=11).contains(&wait), "Retry-After {wait}");
    let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let place: Value = r.json().await.unwrap();
    let id: Uuid = place["order_id"].as_str().unwrap().parse().unwrap();
    assert_ne!(id, first.order_id);
    assert_eq!(location, format!("/api/orders/{id}"));
    assert_eq!(place["ahead"], 0);
    let client: Option<String> =
        sqlx::query_scalar("SELECT client_key FROM checkout_queue WHERE order_id = $1")
            .bind(id)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(
        client.as_deref(),
        Some("127.0.0.1"),
        "waits as its client's"
    );
    // Sent again with its key while waiting: the same order keeps its place.
    let again: Value = queued(&w.app).await.unwrap().json().await.unwrap();
    assert_eq!(again["order_id"], place["order_id"]);

    // The line moves on by itself: the order's JSON carries the payment page once it is open.
    let o = wait_for("the queued checkout to be served", 25, || async {
        let o = other.order_json(id).await;
        o["checkout_url"].is_string().then_some(o)
    })
    .await;
    assert_eq!(o["status"], "awaiting_payment");
    // The same key now answers 201 with that page, and no second escrow was made.
    let r = queued(&w.app).await.unwrap();
    assert_eq!(r.status(), 201);
    let started: Value = r.json().await.unwrap();
    assert_eq!(started["checkout_url"], o["checkout_url"]);
    let log = w.dhmad_log().await;
    let creates = log
        .iter()
        .filter(|(c, ..)| c == "POST /api/v1/escrows")
        .count();
    assert_eq!(creates, 2, "{log:?}");
    assert!(log.iter().all(|(_, status, _)| *status != 429), "{log:?}");
}

#[sqlx::test]
async fn checkouts_come_before_background_work_in_one_budget(pool: PgPool) {
    let window = Duration::from_secs(60);
    db::budget::resize(&pool, 10).await.unwrap();
    // Rows never used read as long free (a time every client can decode).
    let frees_at = db::budget::frees_at(&pool, window).await.unwrap();
    assert_eq!(frees_at.len(), 10);
    assert!(frees_at.iter().all(|t| *t < OffsetDateTime::now_utc()));
    let take = |n: i32, who: Claimant| db::budget::take(&pool, n, window, who, None);
    let background = Claimant::Background {
        reserve: 2,
        share: 0,
    };

    // All or nothing, at most two at once (a checkout's calls).
    assert!(!take(3, Claimant::Interactive).await.unwrap());
    for _ in 0..3 {
        assert!(
            take(2, background).await.unwrap(),
            "rows to spare beyond the reserve"
        );
    }
    assert!(
        take(2, background).await.unwrap(),
        "leaves exactly the reserve"
    );
    // 2 left: background must leave the reserve to buyers; a checkout takes it.
    assert!(!take(1, background).await.unwrap());
    assert!(take(2, Claimant::NewCheckout).await.unwrap());
    assert!(
        !take(1, Claimant::Interactive).await.unwrap(),
        "all ten used"
    );

    // A checkout waiting in line: new checkouts queue behind it and background work waits;
    // the line's own turn (interactive) may take the last call.
    db::budget::resize(&pool, 20).await.unwrap();
    let order = seed_awaiting(&pool).await;
    db::checkout_queue::enqueue(&pool, order, None)
        .await
        .unwrap();
    assert!(!take(1, Claimant::NewCheckout).await.unwrap());
    assert!(!take(1, background).await.unwrap());
    assert!(take(1, Claimant::Interactive).await.unwrap());
    db::checkout_queue::remove(&pool, order).await.unwrap();
    assert!(take(1, Claimant::NewCheckout).await.unwrap());
    assert!(take(1, background).await.unwrap());

    // Shrinking the budget drops its rows; a whole window later every row is free again.
    db::budget::resize(&pool, 3).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM dhmad_budget")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 3);
    for _ in 0..3 {
        let taken = db::budget::take(&pool, 1, Duration::ZERO, Claimant::Interactive, None).await;
        assert!(taken.unwrap());
    }
    let taken = db::budget::take(
        &pool,
        1,
        Duration::from_secs(60),
        Claimant::Interactive,
        None,
    )
    .await;
    assert!(!taken.unwrap(), "the three rows were just used");
}

/// A line that never empties (a flash sale that lasts, or a stranger sending checkouts from a
/// few addresses) held back every background call: background work now keeps a share of each
/// window whatever waits, and only that share.
#[sqlx::test]
async fn background_work_keeps_a_share_of_each_window_while_buyers_wait(pool: PgPool) {
    let window = Duration::from_secs(60);
    db::budget::resize(&pool, 20).await.unwrap();
    let take = |n: i32, who: Claimant| db::budget::take(&pool, n, window, who, None);
    let background = Claimant::Background {
        reserve: 4,
        share: 2,
    };
    let order = seed_awaiting(&pool).await;
    db::checkout_queue::enqueue(&pool, order, None)
        .await
        .unwrap();
    assert!(!take(1, Claimant::NewCheckout).await.unwrap(), "queues");
    let no_share = Claimant::Background {
        reserve: 4,
        share: 0,
    };
    assert!(!take(1, no_share).await.unwrap(), "the line comes first");
    assert!(take(1, background).await.unwrap());
    assert!(take(1, background).await.unwrap());
    assert!(!take(1, background).await.unwrap(), "the share is spent");
    // Free now again, but not for background work until its rows leave the window.
    let wait = db::budget::background_next_in(&pool, window, 4, 2)
        .await
        .unwrap();
    assert!(wait > Duration::from_secs(55), "waits {wait:?}");
    assert!(
        take(1, Claimant::Interactive).await.unwrap(),
        "buyers take the rest"
    );

    // Its rows a window old: the share is back.
    sqlx::query("UPDATE dhmad_budget SET used_at = now() - interval '61 seconds' WHERE background")
        .execute(&pool)
        .await
        .unwrap();
    let wait = db::budget::background_next_in(&pool, window, 4, 2)
        .await
        .unwrap();
    assert_eq!(wait, Duration::ZERO);
    assert!(take(2, background).await.unwrap());
    // A buyer's row is not background work's, whoever held it before.
    sqlx::query("UPDATE dhmad_budget SET used_at = 'epoch'")
        .execute(&pool)
        .await
        .unwrap();
    while take(1, Claimant::Interactive).await.unwrap() {}
    sqlx::query("UPDATE dhmad_budget SET used_at = 'epoch' WHERE slot < 3")
        .execute(&pool)
        .await
        .unwrap();
    assert!(
        take(2, background).await.unwrap(),
        "no background row in the window"
    );
    assert!(!take(1, background).await.unwrap());

    // With no one in line, the share is no way around the buyers' reserve.
    db::checkout_queue::remove(&pool, order).await.unwrap();
    sqlx::query(
        "UPDATE dhmad_budget SET background = false,
                used_at = CASE WHEN slot < 4 THEN 'epoch'::timestamptz ELSE now() END",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert!(
        !take(1, background).await.unwrap(),
        "the reserve is the buyers'"
    );
    let wait = db::budget::background_next_in(&pool, window, 4, 2)
        .await
        .unwrap();
    assert!(wait > Duration::from_secs(55), "waits {wait:?}");
}

/// A few addresses, each within its rate limit, kept the line full of their own checkouts, and
/// a buyer waited behind all of them: the line now serves its clients in rounds, each round
/// first come first served, a checkout no client sent being a client of its own. Served, a
/// checkout leaves the line: the rounds are fixed as checkouts join, or a client's second would
/// become its first, older than the buyer's, as soon as the first was served.
#[sqlx::test(migrations = "./migrations")]
async fn the_line_serves_its_clients_in_turn(pool: PgPool) {
    let join = |id, client: Option<&'static str>| {
        let pool = pool.clone();
        async move {
            db::checkout_queue::enqueue(&pool, id, client)
                .await
                .unwrap();
        }
    };
    let mut flood = Vec::new();
    for i in 0..4 {
        let order = seed_new(&pool, &format!("flood{i}@example.tn")).await;
        join(order, Some("198.51.100.7")).await;
        flood.push(order);
    }
    let buyer = seed_new(&pool, "buyer@example.tn").await;
    join(buyer, Some("203.0.113.9")).await;
    let put_back = seed_new(&pool, "put-back@example.tn").await;
    join(put_back, None).await;
    let ahead = |id| db::checkout_queue::ahead_of(&pool, id);
    assert_eq!(
        ahead(buyer).await.unwrap(),
        Some(1),
        "behind the flood's first only"
    );
    assert_eq!(ahead(put_back).await.unwrap(), Some(2));
    assert_eq!(ahead(flood[1]).await.unwrap(), Some(3));
    // Each served checkout leaves the line before the next is taken, as the worker does.
    let serve_next = || async {
        let id = db::checkout_queue::claim_next(&pool, Duration::from_secs(60))
            .await
            .unwrap()?;
        db::checkout_queue::remove(&pool, id).await.unwrap();
        Some(id)
    };
    assert_eq!(serve_next().await, Some(flood[0]));
    assert_eq!(ahead(buyer).await.unwrap(), Some(0));
    // A client arriving now joins the round still being served.
    let late = seed_new(&pool, "late@example.tn").await;
    join(late, Some("192.0.2.50")).await;
    let mut served = Vec::new();
    while let Some(id) = serve_next().await {
        served.push(id);
    }
    assert_eq!(
        served,
        [buyer, put_back, late, flood[1], flood[2], flood[3]]
    );
    // Its checkouts all served, a client starts again in the line's round, not behind itself.
    let again = seed_new(&pool, "again@example.tn").await;
    join(again, Some("198.51.100.7")).await;
    let round: i32 = sqlx::query_scalar("SELECT round FROM checkout_queue WHERE order_id = $1")
        .bind(again)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(round, 1);
}

/// Background work's share, end to end: a paid order's deliver reaches DHMAD while a checkout
/// waits in line
/// the whole time. It waited for the line to empty, and for DHMAD's headers to show more than
/// a few calls left in its window (here 18 of 20 after the checkout), which a lasting line
/// keeps them from showing.
#[sqlx::test(migrations = "./migrations")]
async fn a_paid_orders_deliver_goes_while_the_line_never_empties(pool: PgPool) {
    let w = tight_world(pool.clone(), 20, 60).await;
    let started = w.checkout(SKU, "paid@example.tn").await;
    // A buyer in line whose turn a worker holds: the line does not empty during the test.
    let waiting = w.app.insert_order(SKU, "in-line@example.tn", None).await;
    sqlx::query(
        "INSERT INTO checkout_queue (order_id, claimed_until) VALUES ($1, now() + interval '1 hour')",
    )
    .bind(waiting.id)
    .execute(&pool)
    .await
    .unwrap();
    w.complete(&started.session_id).await;
    w.wait_status(started.order_id, "paid").await;
    wait_for("the deliver to reach DHMAD", 30, || async {
        (w.count_calls("POST", "/deliver").await == 1).then_some(())
    })
    .await;
    let background: i64 = sqlx::query_scalar("SELECT count(*) FROM dhmad_budget WHERE background")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        (1..=storefront::budget::background_share(20).into()).contains(&background),
        "taken from background work's share: {background}"
    );
}

/// The merchant's "Reconcile now" is background work too: with the window the buyers', it reads
/// nothing and says it stopped for them, not "done".
#[sqlx::test(migrations = "./migrations")]
async fn reconcile_now_says_it_left_the_budget_to_buyers(pool: PgPool) {
    let window = Duration::from_secs(60);
    let w = tight_world(pool.clone(), 40, window.as_secs()).await;
    w.checkout(SKU, "held@example.tn").await;
    while db::budget::take(&pool, 1, window, Claimant::Interactive, None)
        .await
        .unwrap()
    {}
    let r = w.admin_post("/admin/reconcile").await;
    assert_eq!(r.status(), 303);
    let back = r.headers()[LOCATION].to_str().unwrap();
    assert!(
        back.starts_with("/admin?notice=reconciled_held&checked=0&"),
        "{back}"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn background_work_waits_for_the_budget_and_spends_no_attempt(pool: PgPool) {
    let window = Duration::from_secs(60);
    // 40 calls a minute: DHMAD's own headers still show plenty left after the checkout (the
    // jobs' older rule, yielding when they run low, stays out of the way); our budget is spent.
    let w = tight_world(pool.clone(), 40, window.as_secs()).await;
    let started = w.checkout(SKU, "yield@example.tn").await;
    // Buyers take everything left of DHMAD's window.
    while db::budget::take(&pool, 1, window, Claimant::Interactive, None)
        .await
        .unwrap()
    {}
    let calls_before = w.dhmad_calls().await.len();
    // The buyer pays: DHMAD's webhook makes the order paid and queues its deliver job.
    w.complete(&started.session_id).await;
    w.wait_status(started.order_id, "paid").await;
    let job = |pool: PgPool| async move {
        sqlx::query_as::<_, (i32, bool, OffsetDateTime)>(
            "SELECT attempts, done_at IS NOT NULL, run_after FROM outbox_jobs
              WHERE order_id = $1 AND kind = 'deliver'",
        )
        .bind(started.order_id)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    // The outbox runs every 50 ms in tests: its call is held back, the job postponed until the
    // window frees up, not retried at once. (Waited for: postponed, and no worker holds it.)
    wait_for("the deliver to be postponed", 30, || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT true FROM outbox_jobs WHERE order_id = $1 AND kind = 'deliver'
                AND run_after > now() + interval '30 seconds' AND claimed_until IS NULL",
        )
        .bind(started.order_id)
        .fetch_optional(&pool)
        .await
        .unwrap()
    })
    .await;
    let (attempts, done, run_after) = job(pool.clone()).await;
    assert!(!done);
    assert_eq!(attempts, 0, "a call held back spends no attempt");
    assert!(
        run_after > OffsetDateTime::now_utc() + time::Duration::seconds(30),
        "postponed until the window frees up: {run_after}"
    );
    // The reconciler stops its pass rather than spend the buyers' calls.
    let background = w.app.state.for_background();
    let report = storefront::jobs::reconciler::run_once(&background, Duration::ZERO)
        .await
        .unwrap();
    assert!(report.yielded, "{report:?}");
    assert_eq!(report.checked, 0, "{report:?}");
    assert_eq!(
        w.dhmad_calls().await.len(),
        calls_before,
        "no call went to DHMAD while buyers held the window"
    );

    // A minute later (every row last used long ago) the job runs, once.
    sqlx::query("UPDATE dhmad_budget SET used_at = 'epoch'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE outbox_jobs SET run_after = now() WHERE order_id = $1")
        .bind(started.order_id)
        .execute(&pool)
        .await
        .unwrap();
    let pool2 = pool.clone();
    let (attempts, ..) = wait_for("the deliver job to be done", 30, || {
        let pool = pool2.clone();
        async move { Some(job(pool).await).filter(|(_, done, _)| *done) }
    })
    .await;
    assert_eq!(attempts, 1);
    assert_eq!(w.count_calls("POST", "/deliver").await, 1);
}

/// The budget cannot be taken from (here every take fails, as a constraint refuses it; in
/// production, a lock held past `lock_timeout`, a pool that gives no connection in time, a
/// failover): a call waits as for a spent budget. It used to go to DHMAD anyway, outside the
/// budget, while the other instances spent all of it.
#[sqlx::test(migrations = "./migrations")]
async fn a_call_waits_while_the_budget_cannot_be_taken_from(pool: PgPool) {
    let w = world(pool.clone(), |_| {}).await;
    let s = w.checkout(SKU, "unreadable@example.tn").await;
    let reads = || async {
        w.dhmad_calls()
            .await
            .iter()
            .filter(|c| c.starts_with("GET "))
            .count()
    };
    let before = reads().await;
    let broken =
        "ALTER TABLE dhmad_budget ADD CONSTRAINT broken CHECK (used_at < 'epoch') NOT VALID";
    sqlx::query(broken).execute(&pool).await.unwrap();
    // The buyer comes back: the callback would read the page and the escrow from DHMAD.
    let back = w
        .app
        .get(&format!(
            "/checkout/callback?session_id={}&status=completed",
            s.session_id
        ))
        .await;
    assert_eq!(back.status(), 303, "the page is shown whatever DHMAD says");
    assert_eq!(reads().await, before, "read outside the budget");
    sqlx::query("ALTER TABLE dhmad_budget DROP CONSTRAINT broken")
        .execute(&pool)
        .await
        .unwrap();
}

/// An order row to queue (the queue references orders).
async fn seed_awaiting(pool: &PgPool) -> Uuid {
    seed_new(pool, "q@example.tn").await
}

/// A new order of `buyer`'s, no DHMAD call made yet.
async fn seed_new(pool: &PgPool, buyer: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO orders (id, sku, mode, buyer_email, amount, currency, status, owner_key)
         VALUES ($1, $2, 'instant', $3, 10, 'TND', 'new', 'once:test')",
    )
    .bind(id)
    .bind(SKU)
    .bind(buyer)
    .execute(pool)
    .await
    .unwrap();
    id
}

#[sqlx::test]
async fn a_queued_checkout_keeps_its_place_when_the_database_fails_its_turn(pool: PgPool) {
    // A long window: the budget frees only when the test says so.
    let w = tight_world(pool.clone(), 2, 600).await;
    // Spent by buyers before this one (sized here: the service sizes it when its worker starts).
    db::budget::resize(&pool, 2).await.unwrap();
    while db::budget::take(
        &pool,
        1,
        Duration::from_secs(600),
        Claimant::Interactive,
        None,
    )
    .await
    .unwrap()
    {}
    let id = checkout_in_line(&w, "held@example.tn").await;

    // Its turn comes while the order's row is locked past the lock timeout (the service's
    // connections wait 2 s, then fail with 55P03; the test's pool has no such setting, so a
    // trigger fails the claim as the timeout would).
    for statement in [
        // Each failed turn counted (a sequence is not rolled back with the failed statement).
        "CREATE SEQUENCE locked_tries",
        "CREATE FUNCTION locked_out() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM nextval('locked_tries');
                    RAISE EXCEPTION 'injected lock timeout' USING ERRCODE = 'lock_not_available'; END $$",
        "CREATE TRIGGER locked_out BEFORE UPDATE ON orders FOR EACH ROW
           WHEN (NEW.status = 'creating_escrow') EXECUTE FUNCTION locked_out()",
        "UPDATE dhmad_budget SET used_at = 'epoch'",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    w.app.state.checkout_queue.notify_one();
    wait_for("a failed turn", 30, || async {
        let tried: bool = sqlx::query_scalar("SELECT is_called FROM locked_tries")
            .fetch_one(&pool)
            .await
            .unwrap();
        tried.then_some(())
    })
    .await;
    assert!(w.dhmad_calls().await.is_empty());
    // No call was sent: the turn's budget rows go back (they were burned, two a turn, for as
    // long as the row stayed locked).
    wait_for("the turn's calls back in the budget", 10, || async {
        let used: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dhmad_budget WHERE used_at > now() - interval '1 minute'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (used == 0).then_some(())
    })
    .await;
    let in_line: i64 =
        sqlx::query_scalar("SELECT count(*) FROM checkout_queue WHERE order_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(in_line, 1, "the order kept its place in line");
    assert_eq!(w.app.order_json(id).await["status"], "new");

    // Once the row is free, the next turn serves it.
    for statement in [
        "DROP TRIGGER locked_out ON orders",
        "UPDATE dhmad_budget SET used_at = 'epoch'",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    w.app.state.checkout_queue.notify_one();
    let o = wait_for("the held checkout to be served", 20, || async {
        let o = w.app.order_json(id).await;
        o["checkout_url"].is_string().then_some(o)
    })
    .await;
    assert_eq!(o["status"], "awaiting_payment");
}

/// Background work the budget refuses waits until a row beyond the buyers' reserve frees, not
/// 100 ms: it found "a row is free now" (a reserved one) and came back ten times a second, a
/// claim, a read and a postpone each time, on every instance, while buyers needed the database.
#[sqlx::test(migrations = "./migrations")]
async fn refused_background_work_waits_for_a_row_beyond_the_reserve(pool: PgPool) {
    use dhmad::Gate;
    use storefront::budget::BudgetGate;
    let limits = Limits {
        calls: 10,
        window: Duration::from_secs(60),
    };
    db::budget::resize(&pool, 10).await.unwrap();
    // Eight of ten calls spent just now: two rows free, both the buyers' reserve.
    sqlx::query("UPDATE dhmad_budget SET used_at = now() WHERE slot < 8")
        .execute(&pool)
        .await
        .unwrap();
    let shared = db::Pool::new(pool.clone());
    let background = BudgetGate::new(
        shared.clone(),
        limits,
        Claimant::Background {
            reserve: storefront::budget::background_reserve(10),
            share: storefront::budget::background_share(10),
        },
        Prepaid::none(),
    );
    let wait = background.admit().await.unwrap_err();
    assert!(wait > Duration::from_secs(55), "waits {wait:?}");
    // A buyer takes a reserved row at once.
    let buyer = BudgetGate::new(shared, limits, Claimant::Interactive, Prepaid::none());
    assert_eq!(buyer.admit().await, Ok(()));
}

/// A queued checkout needs both of its calls: with one row free now and the other in a minute,
/// the line's worker waits for the minute, where it came back every 50 ms.
#[sqlx::test(migrations = "./migrations")]
async fn the_line_waits_until_a_checkouts_calls_are_all_free(pool: PgPool) {
    let w = tight_world(pool, 2, 60).await;
    sqlx::query("UPDATE dhmad_budget SET used_at = CASE slot WHEN 0 THEN 'epoch' ELSE now() END")
        .execute(&w.app.pool)
        .await
        .unwrap();
    checkout_in_line(&w, "both@example.tn").await;
    let tasks = tokio_util::task::TaskTracker::new();
    let turn = wait_for("the line's turn", 30, || async {
        match storefront::orders::queue::serve_next(&w.app.state, &tasks).await {
            // The app's own worker held the order for its look.
            Ok(storefront::orders::queue::Turn::Idle) => None,
            other => Some(other),
        }
    })
    .await;
    match turn {
        Ok(storefront::orders::queue::Turn::Wait(wait)) => {
            assert!(wait > Duration::from_secs(30), "waits {wait:?}");
        }
        other => panic!("{other:?}"),
    }
}

/// A queued checkout whose worker's lease ran out while its escrow creation was in flight (the
/// worker stopped, or DHMAD was slow): the next worker finds the creation still in flight. The
/// order was taken out of the line, and its buyer's waiting page sent them to click "Pay"
/// again; it keeps its place until the creation's answer is in or its time is up.
#[sqlx::test(migrations = "./migrations")]
async fn a_creation_in_flight_past_its_workers_lease_keeps_its_place(pool: PgPool) {
    let w = tight_world(pool, 2, 60).await;
    sqlx::query("UPDATE dhmad_budget SET used_at = now()")
        .execute(&w.app.pool)
        .await
        .unwrap();
    let order = checkout_in_line(&w, "lease-ran-out@example.tn").await;
    // The first worker claimed the creation 20 s ago and its lease is over.
    sqlx::query(
        "UPDATE orders SET status = 'creating_escrow', escrow_attempted_at = now() - interval '20 seconds'
          WHERE id = $1",
    )
    .bind(order)
    .execute(&w.app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE checkout_queue SET claimed_until = now() - interval '1 second'")
        .execute(&w.app.pool)
        .await
        .unwrap();
    // Served by this worker or the app's own, whichever comes first: the row leaves the line,
    // or is put back to be looked at again in a moment (not a worker's lease, held while it
    // serves).
    let tasks = tokio_util::task::TaskTracker::new();
    // `Some(None)`: in line and free to take. The app's worker may have taken the order
    // before the lease was made to run out above, found the budget spent for its two calls
    // (the order was still `new` when it read it) and handed it back: the next turn serves it.
    let claim_in = || async {
        sqlx::query_scalar::<_, Option<f64>>(
            "SELECT extract(epoch FROM claimed_until - now())::float8 FROM checkout_queue
              WHERE order_id = $1",
        )
        .bind(order)
        .fetch_optional(&w.app.pool)
        .await
        .unwrap()
    };
    let put_back = wait_for("the line's turn", 30, || async {
        let _ = storefront::orders::queue::serve_next(&w.app.state, &tasks).await;
        tasks.close();
        tasks.wait().await;
        tasks.reopen();
        match claim_in().await {
            None => Some(false),
            Some(Some(secs)) if secs > 0.0 && secs < 10.0 => Some(true),
            Some(_) => None,
        }
    })
    .await;
    assert!(put_back, "taken out of the line");
}

/// A call taken in advance and sent late dates its own row, not another's; once every row it
/// took has been taken again (its checkout outlived the window), it takes a free one as any
/// call does.
#[sqlx::test(migrations = "./migrations")]
async fn a_late_prepaid_call_dates_its_own_row_or_takes_one(pool: PgPool) {
    use dhmad::Gate;
    use storefront::budget::BudgetGate;
    let limits = Limits {
        calls: 4,
        window: Duration::from_secs(60),
    };
    db::budget::resize(&pool, 4).await.unwrap();
    let late = |taker| Prepaid {
        calls: 1,
        taker,
        at: std::time::Instant::now()
            .checked_sub(Duration::from_secs(2))
            .unwrap(),
    };
    // Dated by this test's calls: at or after this instant (a window of wall time would close
    // under a stall of the machine).
    let t0: OffsetDateTime = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let rows = || async {
        sqlx::query_as::<_, (i32, bool)>(
            "SELECT slot, coalesce(used_at >= $1, false) FROM dhmad_budget ORDER BY slot",
        )
        .bind(t0)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    // Row 2 was taken two seconds ago by this checkout, row 1 by another.
    let (mine, theirs) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        "UPDATE dhmad_budget SET used_at = now() - interval '2 seconds',
                taken_by = CASE slot WHEN 2 THEN $1 ELSE $2 END
          WHERE slot IN (1, 2)",
    )
    .bind(mine)
    .bind(theirs)
    .execute(&pool)
    .await
    .unwrap();
    let shared = db::Pool::new(pool.clone());
    let gate = BudgetGate::new(shared.clone(), limits, Claimant::Interactive, late(mine));
    assert_eq!(gate.admit().await, Ok(()));
    assert_eq!(
        rows().await,
        [(0, false), (1, false), (2, true), (3, false)]
    );
    // A checkout whose rows are all gone takes the row used longest ago.
    let gone = BudgetGate::new(shared, limits, Claimant::Interactive, late(Uuid::new_v4()));
    assert_eq!(gone.admit().await, Ok(()));
    let now: Vec<i32> = rows().await.iter().filter(|r| r.1).map(|r| r.0).collect();
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(now.contains(&2), "{now:?}");
}

/// A late prepaid call whose row cannot be dated anew (locked past the lock timeout) was sent
/// all the same, its row dated at the take: reused a window after that, while the call was
/// still inside DHMAD's window, one call too many. It takes a row now, as any call does.
#[sqlx::test(migrations = "./migrations")]
async fn a_late_prepaid_call_whose_row_cannot_be_dated_takes_one(pool: PgPool) {
    use dhmad::Gate;
    use storefront::budget::BudgetGate;
    let limits = Limits {
        calls: 4,
        window: Duration::from_secs(60),
    };
    db::budget::resize(&pool, 4).await.unwrap();
    let mine = Uuid::new_v4();
    sqlx::query(
        "UPDATE dhmad_budget SET used_at = now() - interval '2 seconds', taken_by = $1 WHERE slot = 2",
    )
    .bind(mine)
    .execute(&pool)
    .await
    .unwrap();
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM dhmad_budget WHERE slot = 2 FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let late = Prepaid {
        calls: 1,
        taker: mine,
        at: std::time::Instant::now()
            .checked_sub(Duration::from_secs(2))
            .unwrap(),
    };
    let shared = db::Pool::new(production_pool(&pool));
    let gate = BudgetGate::new(shared, limits, Claimant::Interactive, late);
    let sent = gate.admit().await;
    holder.rollback().await.unwrap();
    let dated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dhmad_budget WHERE used_at > now() - interval '1 minute' AND slot <> 2",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    match sent {
        Ok(()) => assert_eq!(dated, 1, "sent on a row nobody dated"),
        Err(wait) => assert!(wait > Duration::ZERO),
    }
}

/// A storefront that keeps no budget (`DHMAD_RATE_LIMIT=0`: DHMAD's own 429s only).
async fn without_a_budget(pool: PgPool) -> World {
    world(pool, |c| {
        c.dhmad_budget = Limits {
            calls: 0,
            window: Duration::from_secs(60),
        };
        c.edge.checkout_per_minute = 100_000;
    })
    .await
}

/// DHMAD answers `POST /escrows` with 429, saying to come back in `reset_ms`.
async fn dhmad_refuses_creates(w: &World, times: u32, reset_ms: u64) {
    w.faults(
        json!({"api": [{"method": "POST", "path": "/api/v1/escrows", "fault": "rate_limit_429",
                             "times": times, "reset_ms": reset_ms}]}),
    )
    .await;
}

/// Waits until `n` checkouts in line are parked by DHMAD's 429: their turn put off by more
/// than a worker's lease.
async fn parked(w: &World, n: i64) {
    wait_for("the line to park the refused checkouts", 30, || async {
        let parked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM checkout_queue WHERE claimed_until > now() + interval '15 seconds'",
        )
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
        (parked >= n).then_some(())
    })
    .await;
}

/// A checkout through the API that is put in line (202: DHMAD's budget is spent, or DHMAD
/// answered 429): its order.
async fn checkout_in_line(w: &World, email: &str) -> Uuid {
    let r = w
        .http
        .post(w.app.url("/api/checkout"))
        .header("idempotency-key", idempotency_key(SKU, email))
        .json(&json!({"sku": SKU, "email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let place: Value = r.json().await.unwrap();
    place["order_id"].as_str().unwrap().parse().unwrap()
}

/// DHMAD answers 429 for a queued checkout (another user of the key spent its window): the
/// order keeps its place and waits as long as DHMAD said, where the line tried it again about
/// once a second, spending two calls of the budget on each refusal.
#[sqlx::test(migrations = "./migrations")]
async fn a_queued_checkout_dhmad_refuses_with_429_waits_as_told(pool: PgPool) {
    let w = world(pool, |c| {
        c.edge.checkout_per_minute = 100_000;
    })
    .await;
    dhmad_refuses_creates(&w, 100, 20_000).await;
    checkout_in_line(&w, "refused@example.tn").await;
    // The line tried it, was refused, and parked it for DHMAD's 20 s.
    parked(&w, 1).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let creates = w.count_calls("POST", "/escrows").await;
    // The checkout's own call, and at most one try of the line within DHMAD's wait.
    assert!((1..=2).contains(&creates), "{creates} creates in 6 s");
}

/// A `new` order has made no DHMAD call: the line serves it in its turn. Its "Pay" form (which
/// its page does not show, but anyone holding the link and a token can post) joins the line,
/// rather than taking the budget ahead of the checkouts waiting.
#[sqlx::test(migrations = "./migrations")]
async fn paying_for_an_order_still_in_line_keeps_its_turn(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let o = w.app.insert_order(SKU, "line@example.tn", None).await;
    assert_eq!(o.status.as_str(), "new");
    let r = w.app.post_form(&format!("/orders/{}/pay", o.id), &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()[LOCATION],
        format!("/orders/{}/checkout", o.id),
        "the waiting page, not DHMAD's"
    );
    // The line serves it.
    w.wait_status(o.id, "awaiting_payment").await;
}

/// "Reconcile now" in the back office is background work like the reconciler's own passes:
/// while buyers wait in the checkout line, the click takes only background work's share of
/// DHMAD's calls ahead of them.
#[sqlx::test(migrations = "./migrations")]
async fn a_manual_reconciliation_does_not_jump_the_checkout_line(pool: PgPool) {
    let w = tight_world(pool, 100, 60).await;
    for i in 0..12 {
        w.app
            .seed_order(
                "chechia-red",
                &format!("due{i}@example.tn"),
                &format!("66bb00000000000000000{i:03x}"),
                OffsetDateTime::now_utc() - time::Duration::hours(1),
            )
            .await;
    }
    // A buyer in line, whose turn a worker is taking (so no worker here spends for it).
    let waiting = w.app.insert_order(SKU, "in-line@example.tn", None).await;
    sqlx::query(
        "INSERT INTO checkout_queue (order_id, claimed_until) VALUES ($1, now() + interval '1 hour')",
    )
    .bind(waiting.id)
    .execute(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(w.admin_post("/admin/reconcile").await.status(), 303);
    let used: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dhmad_budget WHERE used_at > now() - interval '1 minute'",
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    let share = storefront::budget::background_share(100);
    assert!(used <= share.into(), "{used} calls taken ahead of the line");
    // It ran, and stopped for the line (not for want of anything to do: twelve orders are due).
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM admin_audit WHERE action = 'reconcile' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert!(detail.contains("stopped early"), "{detail}");
}

/// With no budget kept (`DHMAD_RATE_LIMIT=0`, DHMAD's own 429s only), a queued checkout DHMAD
/// refuses with 429 waits as long as DHMAD said, where the line sent it again every turn (about
/// once a second per buyer), each a write DHMAD counts against the spent window.
#[sqlx::test(migrations = "./migrations")]
async fn without_a_budget_a_refused_checkout_waits_as_told(pool: PgPool) {
    let w = without_a_budget(pool).await;
    dhmad_refuses_creates(&w, 1000, 30_000).await;
    for i in 0..3 {
        checkout_in_line(&w, &format!("no-budget{i}@example.tn")).await;
    }
    parked(&w, 3).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let sent = w.count_calls("POST", "/api/v1/escrows").await;
    assert!(sent <= 6, "{sent} creations sent inside DHMAD's 30 s wait");
}

/// Due delivers the budget holds back (a checkout waits in line, and checkouts come first) are
/// claimed before e-mails, and each refused one was due again a second later: a backlog of them
/// was claimed, refused and postponed over and over, and the e-mails behind it never went.
/// Once the budget holds a deliver back, the drain takes no other.
#[sqlx::test(migrations = "./migrations")]
async fn delivers_the_budget_holds_back_do_not_hold_back_emails(pool: PgPool) {
    let mut cfg = offline_config();
    // This test's drain is the only one.
    cfg.jobs.outbox = Duration::from_secs(3600);
    let app = spawn(pool, cfg).await;
    let now = OffsetDateTime::now_utc();
    let waiting = app
        .seed_order(
            "chechia-red",
            "in-line@example.tn",
            "66bb00000000000000000fa0",
            now,
        )
        .await;
    sqlx::query(
        "INSERT INTO checkout_queue (order_id, claimed_until) VALUES ($1, now() + interval '1 hour')",
    )
    .bind(waiting)
    .execute(&app.pool)
    .await
    .unwrap();
    // Background work's share of the window spent (by the delivers before these).
    let share = storefront::budget::background_share(app.state.config.dhmad_budget.calls);
    sqlx::query("UPDATE dhmad_budget SET used_at = now(), background = true WHERE slot < $1")
        .bind(share)
        .execute(&app.pool)
        .await
        .unwrap();
    // More due delivers than one drain takes, then one e-mail.
    for i in 0..25 {
        let escrow = format!("66bb0000000000000000f{i:03x}");
        let id = app
            .seed_order(
                "ai-credits-500",
                &format!("paid-{i}@example.tn"),
                &escrow,
                now,
            )
            .await;
        sqlx::query("UPDATE orders SET status = 'paid', escrow_status = 'paid' WHERE id = $1")
            .bind(id)
            .execute(&app.pool)
            .await
            .unwrap();
        db::outbox::enqueue(&app.pool, "deliver", id).await.unwrap();
    }
    let mailed = app
        .seed_order(
            "chechia-red",
            "mailed@example.tn",
            "66bb00000000000000000fa1",
            now,
        )
        .await;
    db::outbox::enqueue(&app.pool, storefront::orders::notify::CONFIRMATION, mailed)
        .await
        .unwrap();
    sqlx::query("UPDATE outbox_jobs SET run_after = now() - interval '1 minute'")
        .execute(&app.pool)
        .await
        .unwrap();
    // As the jobs run it: DHMAD calls only from what buyers leave.
    let background = app.state.for_background();
    let ran = storefront::jobs::outbox::drain(&background).await.unwrap();
    let mail_done: Option<OffsetDateTime> = sqlx::query_scalar(
        "SELECT done_at FROM outbox_jobs WHERE order_id = $1 AND kind = 'email_confirmation'",
    )
    .bind(mailed)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        mail_done.is_some(),
        "the e-mail waited behind refused delivers"
    );
    assert_eq!(ran, 1, "only the e-mail ran");
}
