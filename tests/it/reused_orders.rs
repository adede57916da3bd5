//! A repeated checkout reuses the buyer's open order, but DHMAD may have moved on since: the
//! escrow was paid or cancelled while its webhook was lost, or DHMAD no longer knows it (a
//! restarted sandbox). Before opening a new session on it, the storefront asks.

use crate::common::{idempotency_key, order_status, sandbox::*};
use dhmad::webhook::SignedDelivery;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::after_payment::escrow_of;

/// The buyer closed DHMAD's tab and the session's 30 minutes ran out.
async fn session_ran_out(w: &World, order_id: Uuid) {
    sqlx::query!(
        "UPDATE checkout_sessions SET expires_at = now() WHERE order_id = $1",
        order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
}

async fn drop_all_webhooks(w: &World) {
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
}

/// The API checkout of a chéchia sent again with its key: refused (409), naming the order paid.
async fn refused_as_paid(w: &World, email: &str, paid: Uuid) {
    let r = w
        .http
        .post(w.app.url("/api/checkout"))
        .header("idempotency-key", idempotency_key("chechia-red", email))
        .json(&json!({"sku": "chechia-red", "email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains(&paid.to_string()));
}

#[sqlx::test(migrations = "./migrations")]
async fn an_order_whose_escrow_dhmad_forgot_gives_way_to_a_fresh_one(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let stale = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let old = w
        .app
        .seed_order(
            "chechia-red",
            "ines@example.tn",
            "66cc00000000000000000099",
            stale,
        )
        .await;

    let s = w.checkout("chechia-red", "ines@example.tn").await;

    assert_ne!(
        s.order_id, old,
        "a fresh order, not the one stuck on a missing escrow"
    );
    let o = w.app.order_json(old).await;
    assert_eq!(o["status"], "cancelled");
    assert_eq!(
        o["failure_reason"],
        "This order was cancelled before payment"
    );
    let stored = sqlx::query_scalar!("SELECT failure_reason FROM orders WHERE id = $1", old)
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.contains("no longer knows"), "{stored}");
    assert_eq!(
        w.app.order_json(s.order_id).await["status"],
        "awaiting_payment"
    );
    assert_eq!(w.count_calls("POST", "/api/v1/escrows").await, 1);

    // DHMAD's "no such escrow" was wrong (a transient answer; the reconciler had flagged the
    // order for it): news comes that it holds the buyer's money. The closed order takes no
    // news, so the merchant is told, once for each status, whatever the flag said.
    sqlx::query!(
        "UPDATE orders SET attention = 'DHMAD does not know escrow 66cc00000000000000000099'
          WHERE id = $1",
        old
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    let news = |status: &str| {
        let e = crate::common::escrow(
            "66cc00000000000000000099",
            status,
            "pending",
            "quick",
            time::OffsetDateTime::now_utc(),
        );
        let env = crate::common::status_event(e);
        SignedDelivery::new(w.sb.webhook_secret(), &env, time::OffsetDateTime::now_utc())
    };
    let attention = || async {
        sqlx::query_scalar!("SELECT attention FROM orders WHERE id = $1", old)
            .fetch_one(&w.app.pool)
            .await
            .unwrap()
            .expect("the merchant is told")
    };
    let told = || crate::common::timeline_count(&w.app.pool, old, "money is held or released");
    for _ in 0..2 {
        w.app.deliver_processed(&news("paid")).await;
    }
    let flag = attention().await;
    assert!(flag.contains("is paid"), "{flag}");
    assert_eq!(told().await, 1);
    w.app.deliver_processed(&news("completed")).await;
    let flag = attention().await;
    assert!(flag.contains("is completed"), "{flag}");
    assert_eq!(told().await, 2);
    assert_eq!(order_status(&w.app.pool, old).await, "cancelled");
}

#[sqlx::test(migrations = "./migrations")]
async fn an_escrow_cancelled_while_its_webhook_was_lost_gives_way_to_a_fresh_order(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let first = w.checkout("chechia-red", "sami@example.tn").await;
    let escrow = escrow_of(&w, first.order_id).await;
    drop_all_webhooks(&w).await;
    w.app.state.dhmad.cancel_escrow(&escrow).await.unwrap();
    session_ran_out(&w, first.order_id).await;
    assert_eq!(
        w.app.order_json(first.order_id).await["status"],
        "awaiting_payment"
    );

    let again = w.checkout("chechia-red", "sami@example.tn").await;

    assert_ne!(again.order_id, first.order_id);
    let o = w.app.order_json(first.order_id).await;
    assert_eq!(
        (o["status"].as_str(), o["escrow_status"].as_str()),
        (Some("cancelled"), Some("cancelled"))
    );
    assert_eq!(w.count_calls("POST", "/api/v1/escrows").await, 2);
}

/// The same escrow cancelled at DHMAD, its news lost, and the buyer presses "Pay" on the
/// order's page: DHMAD refuses the page, and the refusal is news: the escrow is read and the
/// order shows cancelled at once. Before, it kept offering "Pay" and "Cancel" until the
/// reconciler's next look.
#[sqlx::test(migrations = "./migrations")]
async fn pay_on_an_escrow_cancelled_at_dhmad_learns_the_cancel(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let first = w.checkout("chechia-red", "lost-cancel@example.tn").await;
    let escrow = escrow_of(&w, first.order_id).await;
    drop_all_webhooks(&w).await;
    w.app.state.dhmad.cancel_escrow(&escrow).await.unwrap();
    session_ran_out(&w, first.order_id).await;
    let r = w
        .app
        .post_form(&format!("/orders/{}/pay", first.order_id), &[])
        .await;
    assert_ne!(r.status(), 303);
    assert_eq!(
        w.app.order_json(first.order_id).await["status"],
        "cancelled"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_paid_order_whose_webhook_was_lost_is_not_sold_twice(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let first = w.checkout("chechia-red", "amel@example.tn").await;
    drop_all_webhooks(&w).await;
    w.complete(&first.session_id).await; // paid at DHMAD; the buyer never lands on the callback
    session_ran_out(&w, first.order_id).await;

    refused_as_paid(&w, "amel@example.tn", first.order_id).await;
    assert_eq!(w.app.order_json(first.order_id).await["status"], "paid");
    assert_eq!(w.count_calls("POST", "/api/v1/escrows").await, 1);
    assert_eq!(w.count_calls("POST", "/sessions").await, 1);
}

/// Paid and then completed at DHMAD (the buyer confirmed receipt there) with every webhook
/// lost: a checkout sent again finds it completed, and does not open a new order to pay.
#[sqlx::test(migrations = "./migrations")]
async fn a_completed_order_whose_webhooks_were_lost_is_not_sold_twice(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let first = w.checkout("chechia-red", "nour@example.tn").await;
    let escrow = escrow_of(&w, first.order_id).await;
    drop_all_webhooks(&w).await;
    w.complete(&first.session_id).await;
    let callback = format!("http://localhost:{}/checkout/callback", w.app.port);
    let done = w
        .app
        .state
        .dhmad
        .create_session(
            &escrow,
            &dhmad::CreateSession::new(
                dhmad::CheckoutAction::Complete,
                "nour@example.tn".to_owned(),
                callback,
            ),
        )
        .await
        .unwrap();
    w.complete(&done.session_id).await;
    session_ran_out(&w, first.order_id).await;
    assert_eq!(
        w.app.order_json(first.order_id).await["status"],
        "awaiting_payment"
    );

    refused_as_paid(&w, "nour@example.tn", first.order_id).await;
    assert_eq!(
        w.app.order_json(first.order_id).await["status"],
        "completed"
    );
    assert_eq!(w.count_calls("POST", "/api/v1/escrows").await, 1);
    let orders = sqlx::query_scalar!("SELECT count(*) FROM orders")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(orders, Some(1));
}

#[sqlx::test(migrations = "./migrations")]
async fn two_pay_clicks_at_once_open_one_payment_page(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "twice@example.tn").await;
    session_ran_out(&w, s.order_id).await;
    // DHMAD is slow to open a page, so the second click lands while the first is being opened
    // (DHMAD would open a second page of the same pending escrow, and a guest could pay twice).
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/sessions", "fault": "slow", "hang_ms": 800, "times": 2}]}))
        .await;
    let path = format!("/orders/{}/pay", s.order_id);
    let (a, b) = tokio::join!(w.app.post_form(&path, &[]), w.app.post_form(&path, &[]));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (303, 303));
    let to = |r: &reqwest::Response| r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(to(&a), to(&b), "both clicks lead to the same page");
    // The checkout's own page, then one more.
    assert_eq!(w.count_calls("POST", "/sessions").await, 2);
    let pending = sqlx::query_scalar!(
        "SELECT count(*) FROM checkout_sessions WHERE order_id = $1 AND expires_at > now()",
        s.order_id
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(pending, Some(1));
}

#[sqlx::test(migrations = "./migrations")]
async fn a_guest_who_paid_without_coming_back_gets_no_second_page_while_dhmad_is_silent(
    pool: PgPool,
) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "silent@example.tn").await;
    // The guest pays out of band and closes the tab; DHMAD reviews the proof.
    w.control(
        &format!("/sandbox/sessions/{}/complete", s.session_id),
        json!({"payer": "guest", "method": "d17"}),
    )
    .await;
    session_ran_out(&w, s.order_id).await;
    assert_eq!(w.app.order_json(s.order_id).await["payment_review"], false);
    // Back on the order page, "pay" asks DHMAD about the last page, and DHMAD fails to answer:
    // not knowing is not "nothing under review" (the escrow is pending, a new page would take
    // a second payment).
    w.faults(json!({"api": [{"method": "GET", "path": "/api/v1/sessions/{id}", "fault": "error_500", "times": 10}]}))
        .await;
    let sessions_before = w.count_calls("POST", "/sessions").await;
    let r = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert!(r.status().is_server_error(), "{}", r.status());
    assert_eq!(w.count_calls("POST", "/sessions").await, sessions_before);
    // Once DHMAD answers, the review is found and no page is offered.
    w.faults(json!({})).await;
    let r = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(w.count_calls("POST", "/sessions").await, sessions_before);
}

/// The buyer gives up on "pay" while DHMAD is slow to open the page, and clicks again: the
/// dropped request runs to its end (`http::to_the_end`), and the second click gets the page it
/// opened, not a second page, nor "being opened" for minutes.
#[sqlx::test(migrations = "./migrations")]
async fn a_pay_request_cut_short_does_not_hold_up_the_next(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "hasty@example.tn").await;
    session_ran_out(&w, s.order_id).await;
    let sessions_before = w.count_calls("POST", "/sessions").await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/sessions", "fault": "slow", "hang_ms": 2000}]}))
        .await;
    let path = format!("/orders/{}/pay", s.order_id);
    let token = w.app.csrf_token().await;
    // The buyer gives up while DHMAD opens the page: the request is dropped mid-call.
    let cut = w
        .app
        .http
        .post(w.app.url(&path))
        .form(&[("csrf_token", token.as_str())])
        .timeout(std::time::Duration::from_millis(500))
        .send()
        .await;
    assert!(cut.is_err(), "{cut:?}");
    // A moment later the buyer clicks again: a page at once, not "being opened" for minutes.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let again = w.app.post_form(&path, &[]).await;
    assert_eq!(again.status(), 303);
    assert_eq!(
        w.count_calls("POST", "/sessions").await,
        sessions_before + 1
    );
    let page = again.headers()["location"].to_str().unwrap();
    let opened: String = sqlx::query_scalar(
        "SELECT url FROM checkout_sessions WHERE order_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(s.order_id)
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(page, opened, "the page the dropped request opened");
}

/// `escrow.updated` announces an amount edit, but every snapshot carries the amount: when the
/// announcement is lost, the payment's snapshot, and the callback's read after it, correct it
/// (else the order, the buyer's page and the merchant's export keep the old amount for good:
/// a paid escrow's amount never changes again).
#[sqlx::test(migrations = "./migrations")]
async fn an_amount_edit_whose_event_is_lost_is_learned_from_the_escrow(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "edited@example.tn").await;
    let escrow = w.app.order_json(s.order_id).await["escrow_id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    let edit = dhmad::UpdateEscrow {
        amount: Some(rust_decimal::Decimal::from(60)),
        ..Default::default()
    };
    w.app
        .state
        .dhmad
        .update_escrow(&escrow, &edit)
        .await
        .unwrap();
    w.faults(json!({})).await;
    assert_eq!(w.app.order_json(s.order_id).await["amount"], "45.000");
    w.complete(&s.session_id).await;
    let o = w.wait_status(s.order_id, "paid").await;
    assert_eq!(o["amount"], "60.000", "{o}");
    let page = w.app.order_page(s.order_id).await;
    assert!(page.contains("the amount is now 60.000 TND"), "{page}");
}

/// A standard order's contract page is open, and DHMAD's budget has one call left for the
/// minute: the buyer's repeated checkout goes to that page at once, calling nothing. Before,
/// it counted the two calls of a payment page it was not going to open, found too few and put
/// the buyer in line; and its look at DHMAD before reusing the order, made since the payment
/// page was not open, took the last call ahead of the line.
#[sqlx::test(migrations = "./migrations")]
async fn a_repeat_checkout_of_an_open_contract_page_calls_nothing(pool: PgPool) {
    let w = super::burst::tight_world(pool, 3, 60).await;
    w.after_first_reconciler_pass().await;
    let first = w.checkout("logo-design", "contract-open@example.tn").await;
    let calls = w.dhmad_calls().await.len();
    let again = w
        .checkout_response("logo-design", "contract-open@example.tn")
        .await;
    assert_eq!(again.status(), 201, "sent to wait in line");
    let v: serde_json::Value = again.json().await.unwrap();
    assert_eq!(v["checkout_url"], first.checkout_url.as_str(), "{v}");
    assert_eq!(w.dhmad_calls().await.len(), calls, "a DHMAD call was made");
}

/// A buyer's checkout sent five times at once (a double click, a client's retry): one order,
/// and DHMAD's budget holds as many calls as DHMAD got. Before, each copy took its order's two
/// calls as it tried to write it, and those that found the order written first kept them: a
/// double click spent four rows of the budget for two calls.
#[sqlx::test(migrations = "./migrations")]
async fn a_checkout_sent_at_once_many_times_spends_only_its_calls(pool: PgPool) {
    let w = super::burst::tight_world(pool, 100, 60).await;
    w.after_first_reconciler_pass().await;
    let before = w.dhmad_calls().await.len() as i64;
    let used_before: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dhmad_budget WHERE used_at > now() - interval '1 minute'",
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (http, url) = (w.http.clone(), w.app.url("/api/checkout"));
        sends.spawn(async move {
            http.post(url)
                .header(
                    "idempotency-key",
                    idempotency_key("chechia-red", "clicks@example.tn"),
                )
                .json(&json!({"sku": "chechia-red", "email": "clicks@example.tn"}))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let answers = sends.join_all().await;
    // The first opens the page; the others, while it does, are told it is being prepared.
    assert!(
        answers.iter().all(|s| [201, 409].contains(&s.as_u16()))
            && answers.iter().any(|s| s.as_u16() == 201),
        "{answers:?}"
    );
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(orders, 1);
    let calls = w.dhmad_calls().await.len() as i64 - before;
    let used: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dhmad_budget WHERE used_at > now() - interval '1 minute'",
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(
        used - used_before,
        calls,
        "rows of the budget taken for no call"
    );
}
