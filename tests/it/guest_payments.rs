//! A guest's payment (instant mode, no DHMAD account): a proof of money sent out of band that
//! DHMAD's admin approves or rejects. While it is under review no second payment is offered
//! and nothing cancels the order under it; a rejection says why and lets the buyer pay again,
//! on a new page or the one DHMAD reopened. Every step goes through the sandbox.

use serde_json::json;
use sqlx::PgPool;

use crate::common::{sandbox::*, *};

use super::after_payment::escrow_of;

/// A guest pays an instant order with a proof, comes back, and DHMAD rejects the proof.
async fn guest_proof_rejected(w: &World, email: &str) -> (Started, serde_json::Value) {
    let s = w.checkout("ai-credits-500", email).await;
    send_proof_and_return(w, &s).await;
    reject_proof(w, s.order_id, "unreadable receipt").await;
    let o = w
        .wait_json(s.order_id, "the rejection", |o| {
            o["deposit_rejection_reason"] == "unreadable receipt"
        })
        .await;
    (s, o)
}

/// DHMAD's admin rejects the guest's pending proof on the order's escrow.
async fn reject_proof(w: &World, order_id: uuid::Uuid, reason: &str) {
    let escrow = escrow_of(w, order_id).await;
    w.control(
        &format!("/sandbox/escrows/{escrow}/deposit-proof/reject"),
        json!({ "reason": reason }),
    )
    .await;
}

fn guest() -> serde_json::Value {
    json!({"payer": "guest", "method": "d17"})
}

/// The guest sends a proof on DHMAD's page `session`; DHMAD's answer (its redirect).
pub(crate) async fn send_proof(w: &World, session: &str) -> serde_json::Value {
    w.control(&format!("/sandbox/sessions/{session}/complete"), guest())
        .await
}

/// The guest sends a proof on the order's first page and comes back to the shop.
pub(crate) async fn send_proof_and_return(w: &World, s: &Started) {
    let v = send_proof(w, &s.session_id).await;
    w.land_on_callback(v["redirect_url"].as_str().unwrap())
        .await;
}

#[sqlx::test(migrations = "./migrations")]
async fn a_guest_payment_under_review_offers_no_second_payment_until_approved(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "guest@example.tn").await;
    let redirect = w
        .control(
            &format!("/sandbox/sessions/{}/complete", s.session_id),
            json!({"payer": "guest", "method": "d17"}),
        )
        .await["redirect_url"]
        .as_str()
        .unwrap()
        .to_owned();
    w.land_on_callback(&redirect).await;
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["status"], "awaiting_payment");
    assert_eq!(o["payment_review"], true, "{o}");
    assert!(o["checkout_url"].is_null());
    let page = w.app.order_page(s.order_id).await;
    assert!(page.contains("checking"), "{page}");
    assert!(!page.contains("Pay again"));

    let sessions_before = w.count_calls("POST", "/sessions").await;
    let again = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert_eq!(again.status(), 409);
    let repeat = w
        .checkout_response("ai-credits-500", "guest@example.tn")
        .await;
    assert_eq!(repeat.status(), 409);
    assert_eq!(
        w.count_calls("POST", "/sessions").await,
        sessions_before,
        "no new session"
    );

    let escrow = escrow_of(&w, s.order_id).await;
    w.control(
        &format!("/sandbox/escrows/{escrow}/deposit-proof/approve"),
        json!({}),
    )
    .await;
    let done = w.wait_status(s.order_id, "completed").await;
    assert!(done["digital_code"].as_str().is_some());
    assert_eq!(done["payment_review"], false);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_rejected_guest_proof_says_why_and_lets_the_buyer_pay_again(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, o) = guest_proof_rejected(&w, "guest2@example.tn").await;
    assert_eq!(o["payment_review"], false);
    let page = w.app.order_page(s.order_id).await;
    assert!(
        page.contains("unreadable receipt") && page.contains("Pay again"),
        "{page}"
    );
    // The link was used (DHMAD has the proof), and nothing refreshes the page.
    assert!(
        !page.contains("expired or was not used") && !page.contains("refreshes by itself"),
        "{page}"
    );
    let again = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    w.finish_on_dhmad(again, json!({})).await;
    w.wait_status(s.order_id, "completed").await;
}

/// After a rejected proof the buyer opens a new payment page, sends a new proof and closes the
/// tab: that proof is under review like the first, so no other payment is offered (and the
/// abandoned-order job would not cancel the escrow).
#[sqlx::test(migrations = "./migrations")]
async fn a_second_proof_sent_after_a_rejection_is_known_to_be_under_review(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, _) = guest_proof_rejected(&w, "second-proof@example.tn").await;
    // "Pay again" offers the page (the first one, which DHMAD reopened for a new upload, not a
    // second payable page beside it); the new proof is sent there, and the buyer never comes
    // back.
    let pages = w.count_calls("POST", "/sessions").await;
    let again = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert_eq!(again.status(), 303);
    assert_eq!(
        w.count_calls("POST", "/sessions").await,
        pages,
        "a second page"
    );
    let url = again.headers()["location"].to_str().unwrap().to_owned();
    let page = url.rsplit('/').next().unwrap().to_owned();
    send_proof(&w, &page).await;

    let known = w.payment_review_known(s.order_id).await;
    assert!(known, "the second proof is under review");
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["payment_review"], true, "{o}");
}

/// DHMAD reopens the page a rejected proof came from, and the guest "may upload again through
/// the same session": a new proof sent there, the tab closed, is under review as one sent on a
/// new page, so "Pay again" opens no second page and nothing cancels the order under it.
#[sqlx::test(migrations = "./migrations")]
async fn a_second_proof_sent_on_the_same_page_is_known_to_be_under_review(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, _) = guest_proof_rejected(&w, "same-page@example.tn").await;
    send_proof(&w, &s.session_id).await;
    let again = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert_eq!(again.status(), 409, "a second payment page was opened");
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["payment_review"], true, "{o}");
    let cancel = w
        .app
        .post_form(&format!("/orders/{}/cancel", s.order_id), &[])
        .await;
    assert_eq!(
        cancel.status(),
        409,
        "cancelled under a proof of money sent"
    );
    assert_eq!(
        w.app.order_json(s.order_id).await["status"],
        "awaiting_payment"
    );
}

/// A guest's proof was rejected and the guest then cancelled (or the order was abandoned):
/// the money they sent is outside DHMAD's wallet, and nothing returns it by itself. The page
/// and the timeline said "DHMAD returns any payment to you".
#[sqlx::test(migrations = "./migrations")]
async fn a_cancel_after_a_rejected_proof_does_not_promise_a_refund(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, _) = guest_proof_rejected(&w, "rejected-then-cancelled@example.tn").await;
    let cancel = w
        .app
        .post_form(&format!("/orders/{}/cancel", s.order_id), &[])
        .await;
    assert!(cancel.status().is_redirection(), "{}", cancel.status());
    w.wait_status(s.order_id, "cancelled").await;
    let page = w.app.order_page(s.order_id).await;
    assert!(!page.contains("returns any payment"), "{page}");
    assert!(page.contains("not returned automatically"), "{page}");
}

/// A guest sent a proof and closed the tab, and the page has run out since; DHMAD then answers
/// one read of the escrow with 404 (a key or host mixed up). A repeated checkout closed the
/// order on that one answer and opened a new one, whose page took a second payment while the
/// first was still under review.
#[sqlx::test(migrations = "./migrations")]
async fn one_404_does_not_close_an_order_whose_payment_may_be_under_review(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "review-404@example.tn").await;
    send_proof(&w, &s.session_id).await;
    sqlx::query(
        "UPDATE checkout_sessions SET expires_at = now() - interval '1 minute' WHERE order_id = $1",
    )
    .bind(s.order_id)
    .execute(&w.app.pool)
    .await
    .unwrap();
    w.faults(
        json!({"api": [{"method": "GET", "path": "/api/v1/escrows/{id}",
                             "fault": "not_found", "times": 1}]}),
    )
    .await;
    let sessions_before = w.count_calls("POST", "/sessions").await;
    let repeat = w
        .checkout_response("ai-credits-500", "review-404@example.tn")
        .await;
    assert_eq!(repeat.status(), 409, "a second payment page was opened");
    w.after_the_faults().await;
    assert_eq!(w.count_calls("POST", "/sessions").await, sessions_before);
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["status"], "awaiting_payment", "{o}");
    assert_eq!(o["payment_review"], true, "{o}");
    let flagged = attention(&w.app.pool, s.order_id).await;
    assert!(flagged.is_some_and(|f| f.starts_with("DHMAD does not know escrow")));
}

/// The page of the rejected proof, not used again: it is history, and the buyer may pay anew.
#[sqlx::test(migrations = "./migrations")]
async fn after_a_rejection_the_buyer_may_pay_again(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, _) = guest_proof_rejected(&w, "pay-anew@example.tn").await;
    let known = w.payment_review_known(s.order_id).await;
    assert!(!known, "the rejected proof taken for a new one");
    let again = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert_eq!(again.status(), 303);
}

/// DHMAD rejects a guest's proof after its page closed, so the page stays completed, and the
/// buyer comes back through that page's return link again (a reload, the history): the
/// completion is the rejected proof's, not a new one. Before, the order went back under review
/// with the reason erased, and stayed there: no payment, no cancel, no abandoned-order job.
#[sqlx::test(migrations = "./migrations")]
async fn coming_back_from_the_rejected_proofs_page_keeps_the_order_payable(pool: PgPool) {
    let w = world(pool, |c| {
        c.edge.callback_recheck = std::time::Duration::ZERO;
    })
    .await;
    let s = w.checkout("ai-credits-500", "back-again@example.tn").await;
    let back = send_proof(&w, &s.session_id).await["redirect_url"]
        .as_str()
        .unwrap()
        .to_owned();
    w.land_on_callback(&back).await;
    assert_eq!(w.app.order_json(s.order_id).await["payment_review"], true);
    // Past the page's 30 minutes: DHMAD does not reopen it on the rejection.
    w.control("/sandbox/clock/advance", json!({"seconds": 1900}))
        .await;
    reject_proof(&w, s.order_id, "unreadable receipt").await;
    w.wait_json(s.order_id, "the rejection", |o| {
        o["deposit_rejection_reason"] == "unreadable receipt"
    })
    .await;

    w.land_on_callback(&back).await;
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["payment_review"], false, "{o}");
    assert_eq!(o["deposit_rejection_reason"], "unreadable receipt", "{o}");
    let again = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert_eq!(again.status(), 303, "the buyer cannot pay again");
}

/// A guest sends a proof on DHMAD's page and closes the tab (no callback): the shop does not
/// know DHMAD is checking it. The buyer's "Cancel order" asks DHMAD first: a cancel would make
/// DHMAD reject a proof of money already sent, with no automatic refund for a guest.
#[sqlx::test(migrations = "./migrations")]
async fn cancelling_asks_dhmad_about_a_proof_sent_without_coming_back(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "tab-closed@example.tn").await;
    send_proof(&w, &s.session_id).await;
    let cancel = w
        .app
        .post_form(&format!("/orders/{}/cancel", s.order_id), &[])
        .await;
    assert_eq!(cancel.status(), 409);
    let page = cancel.text().await.unwrap();
    assert!(page.contains("a proof of payment"), "{page}");
    assert_eq!(w.count_calls("POST", "/cancel").await, 0, "no cancel sent");
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["status"], "awaiting_payment", "{o}");
    assert_eq!(o["payment_review"], true, "{o}");
}

/// A rejection of a guest's proof that reaches an order paid meanwhile (by another payment) is
/// history: the buyer is not told to send a new proof, which would ask them to pay twice.
#[sqlx::test(migrations = "./migrations")]
async fn a_proof_rejected_after_the_payment_asks_the_buyer_for_nothing(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let escrow_id = "66bb0000000000000000d009".to_owned();
    let t0 = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let id = app
        .seed_order("ai-credits-500", "twice@example.tn", &escrow_id, t0)
        .await;
    let paid = escrow(
        &escrow_id,
        "paid",
        "pending",
        "instant",
        t0 + time::Duration::minutes(1),
    );
    assert_eq!(
        app.deliver(&sign(&status_event(paid.clone())))
            .await
            .status(),
        200
    );
    let rejected = dhmad::Event::DepositProofRejected(dhmad::DepositProofRejectedData {
        escrow: paid,
        deposit_proof: serde_json::from_value(
            json!({"id": "66cc00000000000000000001", "reason": "unreadable receipt"}),
        )
        .unwrap(),
    });
    let env = dhmad::WebhookEnvelope::new(
        uuid::Uuid::new_v4().to_string(),
        time::OffsetDateTime::now_utc(),
        &rejected,
    );
    assert_eq!(app.deliver(&sign(&env)).await.status(), 200);
    let o = app.order_json(id).await;
    assert_eq!(o["status"], "paid", "{o}");
    assert!(
        o["deposit_rejection_reason"].is_null() && o["payment_review"] == false,
        "{o}"
    );
    let page = app.order_page(id).await;
    assert!(!page.contains("send a new one"), "{page}");
    assert!(!page.contains("unreadable receipt"), "{page}");
    assert_eq!(timeline_count(&app.pool, id, "unreadable receipt").await, 1);
}

/// The shop cancels while a guest's proof is under review: DHMAD rejects the proof, and a
/// guest's money is refunded by nobody automatically (§4.2). The buyer is told to claim it
/// from DHMAD, not that DHMAD returns it.
#[sqlx::test(migrations = "./migrations")]
async fn a_cancel_over_a_guest_proof_does_not_promise_a_refund(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "no-refund@example.tn").await;
    send_proof_and_return(&w, &s).await;
    cancelled_at_dhmad_promises_no_refund(&w, &s).await;
}

/// The escrow is cancelled at DHMAD (the shop's cancel, DHMAD's dashboard, its expiry) over
/// the guest's proof: once the shop knows, the buyer reads that the money is not returned
/// automatically, and nothing says DHMAD returns it.
async fn cancelled_at_dhmad_promises_no_refund(w: &World, s: &Started) {
    let escrow = escrow_of(w, s.order_id).await;
    w.app.state.dhmad.cancel_escrow(&escrow).await.unwrap();
    w.wait_status(s.order_id, "cancelled").await;
    let page = w.app.order_page(s.order_id).await;
    assert!(
        page.contains("not returned automatically") && !page.contains("returns any payment"),
        "{page}"
    );
}

/// The same when the shop never knew of the proof (the guest closed DHMAD's page) and the
/// escrow is cancelled where the shop does not ask first (DHMAD's own dashboard, its expiry):
/// DHMAD's rejection of the proof, which comes with the cancellation, tells the shop a guest's
/// money was at stake.
#[sqlx::test(migrations = "./migrations")]
async fn a_cancel_over_a_proof_the_shop_never_saw_does_not_promise_a_refund(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w
        .checkout("ai-credits-500", "unseen-proof@example.tn")
        .await;
    send_proof(&w, &s.session_id).await;
    cancelled_at_dhmad_promises_no_refund(&w, &s).await;
}

/// The same when the cancellation reached the shop first (here a read, the events lost; or
/// an earlier try of the rejection failed): its line promised DHMAD returns the money. The
/// rejection, when it comes, tells the guest it does not.
#[sqlx::test(migrations = "./migrations")]
async fn a_proof_rejected_after_the_cancellation_came_corrects_the_promise(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w
        .checkout("ai-credits-500", "late-rejection@example.tn")
        .await;
    send_proof(&w, &s.session_id).await;
    let escrow = escrow_of(&w, s.order_id).await;
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    w.app.state.dhmad.cancel_escrow(&escrow).await.unwrap();
    let order = storefront::db::orders::get(&w.app.pool, s.order_id)
        .await
        .unwrap()
        .unwrap();
    storefront::orders::sync::refresh_order(&w.app.state, &order, "test read")
        .await
        .unwrap();
    assert_eq!(w.app.order_json(s.order_id).await["status"], "cancelled");
    let cancelled = w.app.state.dhmad.get_escrow(&escrow).await.unwrap();
    let rejected = dhmad::Event::DepositProofRejected(dhmad::DepositProofRejectedData {
        escrow: cancelled,
        deposit_proof: dhmad::DepositProof {
            id: "66aa000000000000000000d1".into(),
            buyer_email: None,
            reason: Some("escrow cancelled".into()),
            amount: None,
            method: None,
        },
    });
    let env = dhmad::WebhookEnvelope::new(
        uuid::Uuid::new_v4().to_string(),
        time::OffsetDateTime::now_utc(),
        &rejected,
    );
    let signed = dhmad::webhook::SignedDelivery::new(
        w.sb.webhook_secret(),
        &env,
        time::OffsetDateTime::now_utc(),
    );
    w.app.deliver_processed(&signed).await;
    let page = w.app.order_page(s.order_id).await;
    assert!(page.contains("not returned automatically"), "{page}");
}

/// A quick order's payment page finished while its news is not in (the webhook lost, DHMAD's
/// answer to the escrow read a 500): no second payment is offered, as under a guest's proof,
/// but the buyer is not told of a proof they never sent (guests pay instant orders only).
#[sqlx::test(migrations = "./migrations")]
async fn a_finished_wallet_payment_awaiting_its_news_mentions_no_proof(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "wallet@example.tn").await;
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0},
                    "api": [{"method": "GET", "path": "/api/v1/escrows/{id}", "fault": "error_500", "times": 100}]}))
        .await;
    let v = w
        .control(
            &format!("/sandbox/sessions/{}/complete", s.session_id),
            json!({}),
        )
        .await;
    w.land_on_callback(v["redirect_url"].as_str().unwrap())
        .await;
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(
        (o["status"].as_str(), o["payment_review"].as_bool()),
        (Some("awaiting_payment"), Some(true)),
        "{o}"
    );
    let page = w.app.order_page(s.order_id).await;
    assert!(
        page.contains("confirming your payment") && !page.contains("proof"),
        "{page}"
    );
}

/// The order's pages closed `secs` ago, by our clock.
async fn closed_ago(w: &World, order_id: uuid::Uuid, secs: f64) {
    sqlx::query!(
        "UPDATE checkout_sessions SET expires_at = now() - make_interval(secs => $2)
          WHERE order_id = $1",
        order_id,
        secs
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
}

/// While the buyer's payment page of an instant order is open, a guest may be paying outside
/// DHMAD's wallet and sending the proof: the merchant's cancel waits for the page to expire. A
/// quick order has no guest payment: its cancel goes at once.
#[sqlx::test(migrations = "./migrations")]
async fn the_merchant_does_not_cancel_under_an_open_payment_page(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let instant = w.checkout("ai-credits-500", "paying@example.tn").await;
    let cancel = format!("/admin/orders/{}/cancel", instant.order_id);
    // The back office offers no cancel meanwhile, and refuses one posted anyway.
    let offered = |w: &World, id: uuid::Uuid| {
        let (http, url) = (w.http.clone(), w.app.url(&format!("/admin/orders/{id}")));
        async move {
            let page = http.get(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
            page.text().await.unwrap().contains("Cancel order")
        }
    };
    assert!(!offered(&w, instant.order_id).await);
    let r = w.admin_form(&cancel, &[]).await;
    assert_eq!(r.status(), 409);
    let page = r.text().await.unwrap();
    assert!(page.contains("payment page is open"), "{page}");
    assert_eq!(w.count_calls("POST", "/cancel").await, 0);
    assert_eq!(
        w.app.order_json(instant.order_id).await["status"],
        "awaiting_payment"
    );

    // Expired by our clock, but maybe not yet by DHMAD's: the session sweep leaves it open
    // (it used to mark it expired, and the cancel went through under a guest paying).
    closed_ago(&w, instant.order_id, 30.0).await;
    storefront::jobs::sessions::run_once(&w.app.state)
        .await
        .unwrap();
    assert_eq!(w.admin_form(&cancel, &[]).await.status(), 409);

    // Three minutes past: a DHMAD whose clock lags by up to the five minutes its signed news
    // may (the webhook verifier's tolerance) still shows the page open.
    closed_ago(&w, instant.order_id, 180.0).await;
    assert!(!offered(&w, instant.order_id).await);
    assert_eq!(w.admin_form(&cancel, &[]).await.status(), 409);

    // Once the page has expired (beyond five minutes' leeway for DHMAD's clock), it goes.
    closed_ago(&w, instant.order_id, 330.0).await;
    assert!(offered(&w, instant.order_id).await);
    assert_eq!(w.admin_form(&cancel, &[]).await.status(), 303);
    assert_eq!(
        w.app.order_json(instant.order_id).await["status"],
        "cancelled"
    );
    assert_eq!(w.count_calls("POST", "/cancel").await, 1);

    let quick = w.checkout("chechia-red", "paying@example.tn").await;
    let cancel = format!("/admin/orders/{}/cancel", quick.order_id);
    assert_eq!(w.admin_form(&cancel, &[]).await.status(), 303);
    assert_eq!(w.count_calls("POST", "/cancel").await, 2);
}

/// DHMAD rejected the guest's proof and reopened the page for a new one (§4.2), which the
/// order's page invites: the merchant's cancel waits for that page as for any open one. Before,
/// the page counted as finished, and the cancel went through while the guest could be paying
/// again outside DHMAD's wallet.
#[sqlx::test(migrations = "./migrations")]
async fn the_merchant_does_not_cancel_under_a_page_a_rejection_reopened(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, _) = guest_proof_rejected(&w, "reopened@example.tn").await;
    let cancel = format!("/admin/orders/{}/cancel", s.order_id);
    let r = w.admin_form(&cancel, &[]).await;
    assert_eq!(r.status(), 409);
    assert_eq!(w.count_calls("POST", "/cancel").await, 0);
    let e = w
        .app
        .state
        .dhmad
        .get_escrow(&escrow_of(&w, s.order_id).await)
        .await
        .unwrap();
    assert_eq!(e.status.as_str(), "pending");
}

/// A guest's payment approved (the order paid), then cancelled while DHMAD still holds the
/// money (the code's deliver kept failing; the shop cancels and refunds): a guest gets no
/// automatic refund (§4.2), and the page, the timeline and the merchant's button say so.
/// Before, they promised that DHMAD returns the payment.
#[sqlx::test(migrations = "./migrations")]
async fn a_paid_guest_order_cancelled_promises_no_automatic_refund(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.faults(
        json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/deliver",
                             "fault": "error_500", "times": 1000}]}),
    )
    .await;
    let s = w.checkout("ai-credits-500", "paid-guest@example.tn").await;
    send_proof_and_return(&w, &s).await;
    let escrow = escrow_of(&w, s.order_id).await;
    w.control(
        &format!("/sandbox/escrows/{escrow}/deposit-proof/approve"),
        json!({}),
    )
    .await;
    w.wait_status(s.order_id, "paid").await;
    // The merchant's button does not promise the refund either.
    let admin =
        crate::back_office::admin_page(&w.app, &format!("/admin/orders/{}", s.order_id)).await;
    assert!(!admin.contains("Cancel and refund"), "{admin}");
    assert!(admin.contains("DHMAD refunds nothing"), "{admin}");

    let cancel = w
        .admin_post(&format!("/admin/orders/{}/cancel", s.order_id))
        .await;
    w.finish_on_dhmad(cancel, json!({})).await;
    w.wait_status(s.order_id, "cancelled").await;
    let page = w.app.order_page(s.order_id).await;
    assert!(!page.contains("returns any payment"), "{page}");
    assert!(page.contains("not returned automatically"), "{page}");
}

/// A snapshot that says `"buyer": null` tells of a guest's payment, or one that leaves `buyer`
/// out of a payment made by a guest's proof: webhook snapshots carry some fields only (§6.4),
/// and one that left `buyer` out took a wallet payer for a guest, who was then told a
/// cancellation's refund would not be automatic.
#[sqlx::test(migrations = "./migrations")]
async fn a_paid_snapshot_without_its_buyer_is_no_guest_payment(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let t0 = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let mut guest_lines = Vec::new();
    // Left out, null, and left out of a payment made by a guest's proof under review.
    let cases = [(None, false), (Some(None), false), (None, true)];
    for (n, (buyer, reviewed)) in cases.into_iter().enumerate() {
        let escrow_id = format!("66ee{n:020x}");
        let id = app
            .seed_order(
                "ai-credits-500",
                &format!("buyer{n}@example.tn"),
                &escrow_id,
                t0,
            )
            .await;
        if reviewed {
            storefront::db::orders::set_payment_review(&app.pool, id, Some(t0))
                .await
                .unwrap();
        }
        let mut paid = escrow(
            &escrow_id,
            "paid",
            "pending",
            "instant",
            t0 + time::Duration::minutes(1),
        );
        paid.buyer = buyer;
        app.deliver_processed(&sign(&status_event(paid))).await;
        let lines: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM order_events WHERE order_id = $1 AND kind = 'paid_by_guest'",
        )
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        guest_lines.push(lines);
    }
    assert_eq!(guest_lines, [0, 1, 1]);
}

/// DHMAD's rejection of a guest's proof is lost (DHMAD retries for seconds only, and no escrow
/// read tells of it): the reconciler finds the proof's page reopened, ends the review, and the
/// buyer may pay again. Before, the order stayed under review for good: no new payment, no
/// cancel by either side, no abandoned-order job.
#[sqlx::test(migrations = "./migrations")]
async fn a_lost_rejection_of_a_guest_proof_is_found_by_the_reconciler(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, o) = rejection_lost_then_reconciled(&w, "lost-rejection@example.tn", 0).await;
    // Learned from the page, not from the lost event (which carried the reason).
    assert!(o["deposit_rejection_reason"].is_null(), "{o}");
    let page = w.app.order_page(s.order_id).await;
    assert!(
        page.contains("DHMAD did not accept your payment proof"),
        "{page}"
    );
    let again = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert_eq!(again.status(), 303);
    let to = again.headers()["location"].to_str().unwrap();
    assert!(to.starts_with(&w.sb.base_url()), "{to}");
}

/// The same, once the reopened page's 30 minutes are over: the page reads `expired`, which
/// it reaches only from `pending` (§2.7), so it was reopened; the escrow still pending, the
/// review ends.
#[sqlx::test(migrations = "./migrations")]
async fn a_lost_rejection_is_found_after_the_reopened_page_expired(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    rejection_lost_then_reconciled(&w, "expired-reopened@example.tn", 1900).await;
}

/// A guest's proof under review whose rejection is lost (DHMAD reopens the page), `later`
/// seconds passing at DHMAD, then a reconciler pass: the review is over, the order awaits a
/// new payment. The order as it then reads.
async fn rejection_lost_then_reconciled(
    w: &World,
    email: &str,
    later: u64,
) -> (Started, serde_json::Value) {
    let s = w.checkout("ai-credits-500", email).await;
    send_proof_and_return(w, &s).await;
    assert_eq!(w.app.order_json(s.order_id).await["payment_review"], true);
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    reject_proof(w, s.order_id, "unreadable receipt").await;
    if later > 0 {
        w.control("/sandbox/clock/advance", json!({"seconds": later}))
            .await;
    }
    w.after_first_reconciler_pass().await;
    storefront::jobs::reconciler::run_once(&w.app.state, std::time::Duration::ZERO)
        .await
        .unwrap();
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(
        (&o["status"], &o["payment_review"]),
        (&json!("awaiting_payment"), &json!(false)),
        "{o}"
    );
    (s, o)
}

/// A first proof rejected after its page closed (the page stays finished at DHMAD), then a
/// second proof on a new page whose rejection is lost: the reconciler goes by the new page,
/// reopened, not by the old one. Before, the old page kept the order under review for good.
#[sqlx::test(migrations = "./migrations")]
async fn a_lost_second_rejection_is_found_past_a_first_page_that_stays_finished(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "second-lost@example.tn").await;
    send_proof_and_return(&w, &s).await;
    // Past the first page's 30 minutes: DHMAD does not reopen it on the rejection.
    w.control("/sandbox/clock/advance", json!({"seconds": 1900}))
        .await;
    reject_proof(&w, s.order_id, "unreadable receipt").await;
    w.wait_json(s.order_id, "the first rejection", |o| {
        o["deposit_rejection_reason"] == "unreadable receipt"
    })
    .await;
    // A second proof, on a new page; its rejection is lost.
    let again = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    let second = World::session_in(again.headers()["location"].to_str().unwrap());
    let back = send_proof(&w, &second).await["redirect_url"]
        .as_str()
        .unwrap()
        .to_owned();
    w.land_on_callback(&back).await;
    assert_eq!(w.app.order_json(s.order_id).await["payment_review"], true);
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    reject_proof(&w, s.order_id, "wrong amount").await;
    w.after_first_reconciler_pass().await;
    storefront::jobs::reconciler::run_once(&w.app.state, std::time::Duration::ZERO)
        .await
        .unwrap();
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["payment_review"], false, "{o}");
}

/// A guest sent a proof and came back while the order's row was locked: the review could not
/// be noted. The page, left pending, was then offered again as the page to pay on (used, and
/// holding a proof under review). It is recorded completed first, and the payment rules take
/// it for a finished page.
#[sqlx::test(migrations = "./migrations")]
async fn a_proof_page_whose_review_could_not_be_noted_is_not_offered_again(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "note-locked@example.tn").await;
    let sent = send_proof(&w, &s.session_id).await;
    let back = sent["redirect_url"]
        .as_str()
        .unwrap()
        .replace("http://localhost:", "http://127.0.0.1:");
    let holder = holding_the_order(&w.app.pool, s.order_id).await;
    let returned = w.http.get(back).send().await.unwrap();
    holder.rollback().await.unwrap();
    assert!(returned.status().is_server_error(), "{}", returned.status());
    let o = w.app.order_json(s.order_id).await;
    let offered = o["checkout_url"].as_str().unwrap_or_default();
    assert!(!offered.contains(&s.session_id), "{o}");
}
