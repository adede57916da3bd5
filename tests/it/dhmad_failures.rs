//! DHMAD failing at checkout (500, no answer), expired sessions, and 50 concurrent copies of a
//! genuine sandbox event: the order stays recoverable and DHMAD is never asked twice.

use std::time::Duration;

use crate::common::{config, idempotency_key, sandbox::*, spawn, timeline};
use dhmad::{webhook::SignedDelivery, Event, WebhookEnvelope};
use serde_json::{json, Value};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

#[sqlx::test(migrations = "./migrations")]
async fn a_dhmad_500_on_create_keeps_the_order_and_a_retry_recovers_it(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows", "fault": "error_500", "times": 1}]})).await;
    let r = w.checkout_form("chechia-red", "retry@example.tn").await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("Your order is saved"));
    let row = sqlx::query!(r#"SELECT id, status::text AS "status!", failure_reason FROM orders"#)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    // DHMAD may have created the escrow before failing: the order waits for a look.
    assert_eq!(row.status, "needs_reconciliation");
    let stored = row.failure_reason.unwrap();
    assert!(stored.contains("500"), "{stored}");
    // The merchant's text stays in the back office: the buyer's JSON, which anyone holding the
    // link reads, says what happened in a fixed text.
    let o = w.app.order_json(row.id).await;
    assert_eq!(
        o["failure_reason"],
        "DHMAD's answer did not reach us; we are checking with DHMAD before trying again"
    );
    assert!(!o.to_string().contains(&stored), "{o}");

    // The same checkout again: same order, now with an escrow and a session.
    let r = w.checkout_form("chechia-red", "retry@example.tn").await;
    assert_eq!(r.status(), 303);
    let o = w.app.order_json(row.id).await;
    assert_eq!(o["status"], "awaiting_payment");
    assert!(o["failure_reason"].is_null());
    let orders = sqlx::query_scalar!("SELECT count(*) FROM orders")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(orders, Some(1));
}

/// The order keeps what its product asked when it was placed: an escrow made on a retry, after
/// the merchant changed the product, still asks for the proof the order waits for before
/// shipping (else the paid order could never ship: no proof would ever come).
#[sqlx::test(migrations = "./migrations")]
async fn a_retried_escrow_asks_what_the_order_was_sold_with(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows", "fault": "error_500", "times": 1}]})).await;
    let r = w.checkout_form("pottery-nabeul", "proof@example.tn").await;
    assert_eq!(r.status(), 502);
    sqlx::query!("UPDATE products SET proof_required = false WHERE sku = 'pottery-nabeul'")
        .execute(&w.app.pool)
        .await
        .unwrap();
    let r = w.checkout_form("pottery-nabeul", "proof@example.tn").await;
    assert_eq!(r.status(), 303);
    let id = sqlx::query_scalar!("SELECT escrow_id FROM orders")
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
        .expect("the retry made the escrow");
    let e = w.app.state.dhmad.get_escrow(&id).await.unwrap();
    assert!(e.fulfillment_policy.is_some(), "{e:?}");
}

#[sqlx::test(migrations = "./migrations")]
async fn an_escrow_created_before_a_500_is_adopted_not_made_twice(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    // DHMAD creates the escrow, then fails to say so.
    w.faults(
        json!({"api": [{"method": "POST", "path": "/api/v1/escrows", "fault": "error_500_after"}]}),
    )
    .await;
    let r = w.checkout_form("chechia-red", "twice@example.tn").await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("Your order is saved"));

    let r = w.checkout_form("chechia-red", "twice@example.tn").await;
    assert_eq!(r.status(), 303);
    let order_id = sqlx::query_scalar!("SELECT id FROM orders")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    let o = w.app.order_json(order_id).await;
    assert_eq!(o["status"], "awaiting_payment");
    assert_eq!(
        w.count_calls("POST", "/api/v1/escrows").await,
        1,
        "the escrow made before the 500 is the order's: {:?}",
        w.dhmad_calls().await
    );
    let list = w
        .app
        .state
        .dhmad
        .list_escrows(&dhmad::ListEscrows::default())
        .await
        .unwrap();
    assert_eq!(list.escrows.len(), 1, "{:?}", list.escrows);
    assert_eq!(o["escrow_id"], list.escrows[0].id);
}

#[sqlx::test(migrations = "./migrations")]
async fn no_answer_on_create_is_reconciled_before_any_new_escrow(pool: PgPool) {
    let w = world(pool, |c| c.dhmad_timeout = Duration::from_millis(500)).await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows", "fault": "hang", "hang_ms": 1500, "times": 1}]})).await;
    let body = json!({"sku": "ai-credits-500", "email": "slow@example.tn"});
    let checkout = || async {
        w.http
            .post(w.app.url("/api/checkout"))
            .header(
                "idempotency-key",
                idempotency_key("ai-credits-500", "slow@example.tn"),
            )
            .json(&body)
            .send()
            .await
            .unwrap()
    };
    let r = checkout().await;
    assert_eq!(r.status(), 503);
    let row = sqlx::query!(r#"SELECT id, status::text AS "status!", failure_reason FROM orders"#)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(row.status, "needs_reconciliation");
    assert!(row.failure_reason.unwrap().contains("outcome unknown"));

    // DHMAD may still be making the escrow it did not answer for: a retry right away, and the
    // reconciler, do not take "not in the list yet" for "not made" (a retry on its word made a
    // second escrow, and the first landed beside it).
    let r = checkout().await;
    assert_eq!(r.status(), 409);
    let said: Value = r.json().await.unwrap();
    assert!(
        said["message"].as_str().unwrap().contains("still checking"),
        "{said}"
    );
    storefront::jobs::reconciler::run_once(&w.app.state, Duration::ZERO)
        .await
        .unwrap();
    // The retry looked (an escrow there would have been taken at once), the reconciler did not
    // yet, and nothing was created (the sandbox logs the calls it answered: the hung create is
    // not among them).
    let calls = w.dhmad_calls().await;
    assert_eq!(calls, ["GET /api/v1/escrows"]);
    assert_eq!(
        w.app.order_json(row.id).await["status"],
        "needs_reconciliation"
    );
    slowest_creation_over(&w, row.id).await;

    // Then a retry first asks DHMAD's list whether the escrow exists (it does not), then
    // creates it.
    let s = w.checkout("ai-credits-500", "slow@example.tn").await;
    assert_eq!(s.order_id, row.id);
    let calls = w.dhmad_calls().await;
    let list_at = calls
        .iter()
        .position(|c| c == "GET /api/v1/escrows")
        .expect("list consulted");
    let last_create = calls
        .iter()
        .rposition(|c| c == "POST /api/v1/escrows")
        .unwrap();
    assert!(list_at < last_create, "{calls:?}");
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "completed").await;
}

/// Moves the order's unanswered creation past the slowest DHMAD could take over it (twice the
/// client's timeout and a margin), as if that time had passed.
async fn slowest_creation_over(w: &World, order: Uuid) {
    let moved = sqlx::query!(
        "UPDATE orders SET creation_settles_at = now() - interval '1 second'
          WHERE id = $1 AND creation_settles_at > now()",
        order
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(
        moved.rows_affected(),
        1,
        "an unanswered creation notes until when it may land"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_slow_look_at_dhmad_does_not_undo_the_escrow_a_retry_made_meanwhile(pool: PgPool) {
    let w = world(pool, |c| c.dhmad_timeout = Duration::from_millis(1500)).await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows", "fault": "hang", "hang_ms": 2500}]})).await;
    let r = w
        .http
        .post(w.app.url("/api/checkout"))
        .header(
            "idempotency-key",
            idempotency_key("chechia-red", "race@example.tn"),
        )
        .json(&json!({"sku": "chechia-red", "email": "race@example.tn"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let order_id = sqlx::query_scalar!("SELECT id FROM orders")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    slowest_creation_over(&w, order_id).await;
    // The reconciler lists DHMAD (nothing there yet) but hears back only 1 s later (within its timeout); meanwhile
    // the buyer's retry looks too, finds nothing, and creates the escrow.
    w.faults(json!({"api": [{"method": "GET", "path": "/api/v1/escrows", "fault": "slow", "hang_ms": 1000}]})).await;
    let state = w.app.state.clone();
    let reconciler = tokio::spawn(async move {
        storefront::jobs::reconciler::run_once(&state, Duration::ZERO).await
    });
    // The reconciler's list has arrived and hangs.
    w.after_the_faults().await;
    let s = w.checkout("chechia-red", "race@example.tn").await;
    assert_eq!(s.order_id, order_id);
    reconciler.await.unwrap().unwrap();

    let o = w.app.order_json(order_id).await;
    assert_eq!(o["status"], "awaiting_payment", "{o}");
    w.complete(&s.session_id).await;
    w.wait_status(order_id, "paid").await;
}

#[sqlx::test(migrations = "./migrations")]
async fn an_escrow_created_despite_the_timeout_is_found_not_duplicated(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "lost@example.tn").await;
    // Simulate a lost answer: the escrow exists at DHMAD but the order does not know it.
    sqlx::query!(
        "UPDATE orders SET status = 'needs_reconciliation', escrow_id = NULL WHERE id = $1",
        s.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(w.admin_post("/admin/reconcile").await.status(), 303);
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["status"], "awaiting_payment");
    assert!(o["escrow_id"].is_string());
    assert_eq!(
        w.count_calls("POST", "/api/v1/escrows").await,
        1,
        "no second escrow"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn an_expired_session_is_replaced_on_the_same_escrow(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "late@example.tn").await;
    let v = w
        .control(
            &format!("/sandbox/sessions/{}/expire", s.session_id),
            json!({}),
        )
        .await;
    w.land_on_callback(v["redirect_url"].as_str().unwrap())
        .await;
    let again = w.checkout("ai-credits-500", "late@example.tn").await;
    assert_eq!(again.order_id, s.order_id);
    assert_ne!(again.session_id, s.session_id);
    assert_eq!(w.count_calls("POST", "/api/v1/escrows").await, 1);
    assert_eq!(w.count_calls("POST", "/sessions").await, 2);
}

#[sqlx::test(migrations = "./migrations")]
async fn fifty_concurrent_copies_of_a_real_event_mean_one_deliver_call(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.faults(json!({"webhooks": {"drop": 1.0}})).await; // we deliver the event ourselves
    let s = w.checkout("ai-credits-500", "crowd@example.tn").await;
    w.complete(&s.session_id).await;
    let escrow_id = w.app.order_json(s.order_id).await["escrow_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = dhmad::Client::builder(w.sb.api_key())
        .base_url(w.sb.api_base())
        .build()
        .unwrap();
    let escrow = client.get_escrow(&escrow_id).await.unwrap();
    let ev = Event::EscrowStatusUpdated(dhmad::EscrowData { escrow });
    let env = WebhookEnvelope::new(Uuid::new_v4().to_string(), OffsetDateTime::now_utc(), &ev);
    let d = SignedDelivery::new(w.sb.webhook_secret(), &env, OffsetDateTime::now_utc());

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (http, url, d) = (w.http.clone(), w.app.url("/webhooks/dhmad"), d.clone());
        tasks.spawn(async move {
            let mut req = http.post(url).body(d.body.clone());
            for (k, v) in d.headers() {
                req = req.header(k, v);
            }
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap()["result"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        });
    }
    let results = tasks.join_all().await;
    assert!(results.iter().all(|r| r.0 == 200));
    assert_eq!(results.iter().filter(|r| r.1 == "processed").count(), 1);
    w.wait_status(s.order_id, "completed").await;
    assert_eq!(w.count_calls("POST", "/deliver").await, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_failed_deliver_is_retried_with_backoff_until_dhmad_accepts(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let fault = json!({"method": "POST", "path": "/api/v1/escrows/{id}/deliver", "fault": "error_500", "times": 1});
    w.faults(json!({ "api": [fault] })).await;
    let s = w.checkout("ai-credits-500", "patient@example.tn").await;
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "completed").await;
    let calls = w.dhmad_calls().await;
    let delivers: Vec<_> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.ends_with("/deliver"))
        .collect();
    assert_eq!(delivers.len(), 2, "{calls:?}");
    // Before resending, the worker read the escrow to make sure it was still unpaid-for.
    let between = &calls[delivers[0].0..delivers[1].0];
    assert!(
        between
            .iter()
            .any(|c| c.starts_with("GET /api/v1/escrows/")),
        "{calls:?}"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn pay_again_reuses_a_live_session_or_opens_a_new_one(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "again@example.tn").await;
    async fn pay(w: &World, order_id: Uuid) -> String {
        let r = w
            .app
            .post_form(&format!("/orders/{order_id}/pay"), &[])
            .await;
        assert_eq!(r.status(), 303);
        r.headers()["location"].to_str().unwrap().to_owned()
    }
    assert_eq!(
        pay(&w, s.order_id).await,
        s.checkout_url,
        "the live session"
    );
    // Past its expiry (by DHMAD's clock too) the local sweeper retires it; paying again opens a
    // fresh one.
    sqlx::query!(
        "UPDATE checkout_sessions SET expires_at = now() - interval '6 minutes' WHERE session_id = $1",
        s.session_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(
        storefront::jobs::sessions::run_once(&w.app.state)
            .await
            .unwrap(),
        1
    );
    let fresh = pay(&w, s.order_id).await;
    assert_ne!(fresh, s.checkout_url);
    assert_eq!(
        w.count_calls("POST", "/api/v1/escrows").await,
        1,
        "same escrow"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_request_past_its_deadline_gets_a_page_and_the_order_stays_recoverable(pool: PgPool) {
    // The whole-request deadline strikes while DHMAD is still silent.
    let w = world(pool, |c| {
        c.request_timeout = Some(Duration::from_millis(400));
        c.dhmad_timeout = Duration::from_millis(600);
    })
    .await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows", "fault": "hang", "hang_ms": 1000, "times": 2}]})).await;

    // A browser gets a page that says what happened, with the security headers of any page.
    let r = w.checkout_form("chechia-red", "late@example.tn").await;
    assert_eq!(r.status(), 503);
    let headers = r.headers().clone();
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(headers["x-frame-options"], "DENY");
    let page = r.text().await.unwrap();
    assert!(page.contains("took too long to answer"), "{page}");
    // The JSON API gets the same as JSON.
    let r = w
        .http
        .post(w.app.url("/api/checkout"))
        .json(&json!({"sku": "ai-credits-500", "email": "late-api@example.tn"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Service Unavailable");
    assert!(body["message"].as_str().unwrap().contains("took too long"));

    // The request cut short ran to its end all the same: its call timed out, and the order
    // says its creation went unanswered.
    let id: Uuid = sqlx::query_scalar("SELECT id FROM orders WHERE buyer_email = $1")
        .bind("late@example.tn")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    w.wait_status(id, "needs_reconciliation").await;
    // The buyer's retry continues the saved order (the catalog gave the browser its token
    // before the form was sent): DHMAD's list does not show the escrow yet, and the buyer is
    // told to wait, since the unanswered call may still land at DHMAD; once that cannot be
    // (the in-flight limit after its claim), the list is read again and the same order
    // reaches DHMAD's page, with one escrow.
    let r = w.checkout_form("chechia-red", "late@example.tn").await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("still checking"));
    // Told to wait, it made no escrow. (The sandbox logs only the calls it answered, not the
    // two it held until their clients gave up.)
    assert_eq!(w.count_calls("POST", "/api/v1/escrows").await, 0);
    slowest_creation_over(&w, id).await;
    let r = w.checkout_form("chechia-red", "late@example.tn").await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE buyer_email = $1")
        .bind("late@example.tn")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(orders, 1);
    let created = w
        .dhmad_log()
        .await
        .into_iter()
        .filter(|(call, status, _)| call == "POST /api/v1/escrows" && *status < 300)
        .count();
    assert_eq!(created, 1);
    let calls = w.dhmad_calls().await;
    assert!(
        calls.contains(&"GET /api/v1/escrows".to_owned()),
        "{calls:?}"
    );
}

/// DHMAD answers a create with 429s for a few seconds. The client does not wait them out in
/// flight (DHMAD's budget and the checkout line decide when to try again): a create that did
/// would outlive the in-flight limit, be taken for lost by the buyer's retry, and both would
/// make an escrow.
#[sqlx::test(migrations = "./migrations")]
async fn a_create_refused_with_429s_is_not_taken_for_lost_by_a_retry(pool: PgPool) {
    // The in-flight limit: twice the timeout and a pool's wait, and a margin.
    let w = world(pool, |c| c.dhmad_timeout = Duration::from_millis(500)).await;
    // Three 429s, about a second's wait each: a create that waits them out lasts over 3 s.
    w.faults(json!({"api": [
        {"method": "POST", "path": "/api/v1/escrows", "fault": "rate_limit_429", "times": 3}
    ]}))
    .await;
    let (sku, email) = ("ai-credits-500", "patient@example.tn");
    let send = || async {
        w.http
            .post(w.app.url("/api/checkout"))
            .header("idempotency-key", idempotency_key(sku, email))
            .json(&json!({"sku": sku, "email": email}))
            .send()
            .await
            .unwrap()
            .status()
    };
    // The retry comes once the limit is over for a create still in flight: the claim is
    // moved back past it (the limit is 16 s here; no test waits that long).
    let retry = async {
        tokio::time::sleep(Duration::from_millis(2000)).await;
        sqlx::query(
            "UPDATE orders SET escrow_attempted_at = now() - interval '1 minute'
              WHERE buyer_email = $1 AND status = 'creating_escrow'",
        )
        .bind(email)
        .execute(&w.app.pool)
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        send().await
    };
    let (first, retried) = tokio::join!(send(), retry);
    let id = sqlx::query_scalar!("SELECT id FROM orders WHERE buyer_email = $1", email)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    w.wait_status(id, "awaiting_payment").await;
    let created = w
        .dhmad_log()
        .await
        .into_iter()
        .filter(|(c, status, _)| c == "POST /api/v1/escrows" && *status == 201)
        .count();
    assert_eq!(created, 1, "one escrow for the order");
    assert!(
        first.as_u16() < 500 && retried.as_u16() < 500,
        "{first} {retried}"
    );
}

/// DHMAD's page for a session is followed only on DHMAD's checkout origins (those the shop's
/// CSP lets forms go to): a page elsewhere (a wrong `DHMAD_CHECKOUT_ORIGIN`, an answer altered
/// on its way) is not where a buyer is sent, and the order keeps its escrow for a retry.
#[sqlx::test(migrations = "./migrations")]
async fn a_payment_page_off_dhmads_origins_is_not_followed(pool: PgPool) {
    let sandbox = dhmad_sandbox::SandboxConfig {
        public_url: Some("http://pay.elsewhere.example".into()),
        ..dhmad_sandbox::SandboxConfig::for_tests()
    };
    let w = world_with(pool, sandbox, |_| {}).await;
    // A shop that calls DHMAD at its address, while DHMAD's pages are said to be elsewhere.
    let api = format!("http://127.0.0.1:{}/api/v1", w.sb.local_addr().port());
    let shop = spawn(
        w.app.pool.clone(),
        config(&api, w.sb.api_key(), w.sb.webhook_secret()),
    )
    .await;
    w.sb.set_allowed_redirect_urls(vec![format!(
        "http://localhost:{}/checkout/callback",
        shop.port
    )]);
    let form = [("sku", "chechia-red"), ("email", "elsewhere@example.tn")];
    let r = shop.post_form("/checkout", &form).await;
    assert_eq!(r.status(), 502);
    assert!(r.headers().get("location").is_none());
    let body = r.text().await.unwrap();
    assert!(!body.contains("pay.elsewhere.example"), "{body}");
    let row = sqlx::query!(r#"SELECT id, escrow_id, status::text AS "status!" FROM orders"#)
        .fetch_one(&shop.pool)
        .await
        .unwrap();
    assert!(row.escrow_id.is_some(), "the escrow DHMAD made is kept");
    let sessions = sqlx::query_scalar!("SELECT count(*) FROM checkout_sessions")
        .fetch_one(&shop.pool)
        .await
        .unwrap();
    assert_eq!(sessions, Some(0));
    let lines = timeline(&shop.pool, row.id).await;
    let line = lines
        .iter()
        .find(|l| l.contains("not on its checkout origins"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    // The session, which opens the order through the callback, is named by its first 8
    // characters only: the line is logged too.
    let named = line
        .split("for session ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default();
    assert_eq!(named.chars().count(), 9, "{line}");
    assert!(named.ends_with('…'), "{line}");
    // The buyer's "pay again" meets the same refusal.
    let r = shop
        .post_form(&format!("/orders/{}/pay", row.id), &[])
        .await;
    assert_eq!(r.status(), 502, "{}", row.status);
    assert!(r.headers().get("location").is_none());
}

/// A checkout takes its two calls ahead (the escrow, then the page). DHMAD refuses the first,
/// so the second is never made: its row goes back to the budget at once, and the first keeps
/// its own. Before, the second stayed taken for a whole window, and a line of such checkouts
/// during an outage left about half of DHMAD's budget unused.
#[sqlx::test(migrations = "./migrations")]
async fn a_call_taken_ahead_and_not_made_goes_back_to_the_budget(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.after_first_reconciler_pass().await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows", "fault": "error_500", "times": 1}]}))
        .await;
    let pool = &w.app.pool;
    let used = || async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM dhmad_budget WHERE used_at > now() - interval '1 minute'",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let (before, calls_before) = (used().await, w.dhmad_calls().await.len() as i64);
    let r = w
        .checkout_response("chechia-red", "refused@example.tn")
        .await;
    assert!(r.status().is_server_error(), "{}", r.status());
    let calls = w.dhmad_calls().await.len() as i64 - calls_before;
    assert!(calls >= 1, "the create was sent");
    assert_eq!(
        used().await - before,
        calls,
        "one row per call made, none more"
    );
}

/// DHMAD fails on a buyer's step after payment (its page for a dispute, 500, then a spent
/// budget): the buyer stays on the order's page, with the error page's status and words and
/// the step still offered, instead of an error page whose only link is the catalog. The
/// order's link is the buyer's only key to it.
#[sqlx::test(migrations = "./migrations")]
async fn a_step_dhmad_fails_on_keeps_the_buyer_on_the_order_page(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "step-fails@example.tn").await;
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "paid").await;
    let dispute = format!("/orders/{}/dispute", s.order_id);
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/sessions", "fault": "error_500", "times": 1}]}))
        .await;
    let r = w.app.post_form(&dispute, &[]).await;
    assert_eq!(r.status(), 503);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("The payment provider is not answering.")
            && page.contains(&format!("action=\"{dispute}\"")),
        "{page}"
    );
    // DHMAD's budget spent (a 429 without a wait it names: a few seconds).
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/sessions", "fault": "rate_limit_429", "times": 1}]}))
        .await;
    let r = w.app.post_form(&dispute, &[]).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let page = r.text().await.unwrap();
    assert!(
        page.contains("The payment provider is busy.")
            && page.contains(&format!("action=\"{dispute}\"")),
        "{page}"
    );
}

/// DHMAD's cap on new escrows (a 429 with the daily cap's body: older revisions documented 10
/// escrows a day): the checkout fails with a "try later", where it used to wait in line, a
/// minute at a time for the rest of the day, holding every new checkout behind it (and, with
/// a wait said, pausing every DHMAD call: delivers, the reconciler) meanwhile.
#[sqlx::test(migrations = "./migrations")]
async fn a_cap_on_new_escrows_fails_the_checkout_and_holds_nothing_else(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows", "fault": "creation_cap_429", "times": 1}]}))
        .await;
    let r = w
        .checkout_response("ai-credits-500", "capped@example.tn")
        .await;
    assert_eq!(r.status(), 503);
    let said: Value = r.json().await.unwrap();
    assert!(
        said["message"]
            .as_str()
            .unwrap()
            .contains("not accepting new payments for now"),
        "{said}"
    );
    let in_line: i64 = sqlx::query_scalar("SELECT count(*) FROM checkout_queue")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(in_line, 0);
    // Nothing waits behind it: the next buyer reaches DHMAD at once.
    w.checkout("ai-credits-500", "next@example.tn").await;
}

/// DHMAD's API hangs on the page's read as the buyer comes back: the return still reaches the
/// order page, within the request's deadline, having learned the payment from the escrow. The
/// page's read was tried four times, each up to the timeout, which outlasted the deadline: a
/// 503 without the order's link.
#[sqlx::test(migrations = "./migrations")]
async fn a_buyer_back_from_dhmad_sees_the_order_page_while_dhmad_hangs(pool: PgPool) {
    let w = world(pool, |c| {
        c.dhmad_timeout = Duration::from_secs(1);
        c.request_timeout = Some(Duration::from_millis(3500));
    })
    .await;
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    let s = w.checkout("ai-credits-500", "patient@example.tn").await;
    let redirect = w.complete(&s.session_id).await;
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}, "api": [
        {"method": "GET", "path": "/api/v1/sessions/{id}", "fault": "hang", "hang_ms": 1500, "times": 4}
    ]}))
    .await;
    assert_eq!(
        w.land_on_callback(&redirect).await,
        format!("/orders/{}", s.order_id)
    );
    assert_eq!(w.app.order_json(s.order_id).await["status"], "paid");
}

/// A buyer's step whose read of DHMAD gets no answer: the order's page says DHMAD is not
/// answering, within the request's deadline. Each read was tried four times, each up to the
/// timeout, which outlasted the deadline: the generic "took too long" page, without the order.
#[sqlx::test(migrations = "./migrations")]
async fn a_buyer_step_while_dhmad_hangs_gets_the_order_page_saying_so(pool: PgPool) {
    let w = world(pool, |c| {
        c.dhmad_timeout = Duration::from_secs(1);
        c.request_timeout = Some(Duration::from_millis(2500));
    })
    .await;
    let s = w.checkout("chechia-red", "hurried@example.tn").await;
    // Cancelling first asks DHMAD whether the payment page was used (a guest's proof).
    w.faults(json!({"api": [
        {"method": "GET", "path": "/api/v1/sessions/{id}", "fault": "hang", "hang_ms": 1500, "times": 4}
    ]}))
    .await;
    let r = w
        .app
        .post_form(&format!("/orders/{}/cancel", s.order_id), &[])
        .await;
    assert_eq!(r.status(), 503);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("not answering") && !page.contains("took too long"),
        "{page}"
    );
    assert_eq!(
        w.app.order_json(s.order_id).await["status"],
        "awaiting_payment"
    );
}
