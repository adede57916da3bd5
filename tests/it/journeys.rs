//! Whole purchases against the in-process DHMAD sandbox: the instant and the quick product,
//! a spoofed callback, a webhook that never arrives, and a journey under webhook faults.

use crate::common::{sandbox::*, *};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrations = "./migrations")]
async fn instant_purchase_pays_issues_the_code_and_completes(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "Buyer@Example.tn").await;
    assert!(
        s.checkout_url
            .starts_with(&format!("{}/checkout/", w.sb.base_url())),
        "{}",
        s.checkout_url
    );

    // A repeated checkout continues the same order and session: no second escrow.
    let again = w.checkout("ai-credits-500", "buyer@example.tn").await;
    assert_eq!(
        (again.order_id, &again.session_id),
        (s.order_id, &s.session_id)
    );
    assert_eq!(w.count_calls("POST", "/api/v1/escrows").await, 1);

    let redirect = w.complete(&s.session_id).await;
    let done = w.wait_status(s.order_id, "completed").await;
    assert_eq!(done["escrow_status"], "completed");
    assert_eq!(done["amount"], "15.000");
    let code = done["digital_code"]
        .as_str()
        .expect("code issued")
        .to_owned();
    assert_eq!(
        w.count_calls("POST", "/deliver").await,
        1,
        "{:?}",
        w.dhmad_calls().await
    );

    // The buyer comes back: straight to the order page, which shows the code.
    assert_eq!(
        w.land_on_callback(&redirect).await,
        format!("/orders/{}", s.order_id)
    );
    let page = w.app.order_page(s.order_id).await;
    assert!(page.contains(&code) && page.contains("Completed"), "{page}");

    // DHMAD resending the last event changes nothing and calls deliver no more.
    let escrow_id = done["escrow_id"].as_str().unwrap();
    // The events so far, all delivered once the order is completed; then five more.
    let before = w.answered_deliveries(escrow_id).await;
    for _ in 0..5 {
        w.control(
            &format!("/sandbox/escrows/{escrow_id}/events/resend"),
            json!({}),
        )
        .await;
    }
    wait_for("the five resent events to be answered", 30, || async {
        (w.answered_deliveries(escrow_id).await >= before + 5).then_some(())
    })
    .await;
    assert_eq!(
        w.app.order_json(s.order_id).await["digital_code"],
        code.as_str()
    );
    assert_eq!(w.count_calls("POST", "/deliver").await, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn quick_purchase_is_shipped_then_confirmed_by_the_buyer(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    // The HTML form: 303 straight to DHMAD's hosted page.
    let r = w.checkout_form("chechia-red", "amira@example.tn").await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let session_id = location.rsplit('/').next().unwrap().to_owned();
    let order_id = storefront::db::sessions::get(&w.app.pool, &session_id)
        .await
        .unwrap()
        .expect("session stored")
        .order_id;

    w.complete(&session_id).await;
    let paid = w.wait_status(order_id, "paid").await;
    assert_eq!(
        paid["digital_code"],
        serde_json::Value::Null,
        "physical goods get no code"
    );
    // Nothing is delivered until the merchant ships.
    assert_eq!(w.count_calls("POST", "/deliver").await, 0);
    let confirm_early = w
        .app
        .post_form(&format!("/orders/{order_id}/confirm"), &[])
        .await;
    assert_eq!(confirm_early.status(), 409);

    assert_eq!(
        w.admin_post(&format!("/admin/orders/{order_id}/ship"))
            .await
            .status(),
        303
    );
    w.wait_status(order_id, "delivered").await;
    assert_eq!(w.count_calls("POST", "/deliver").await, 1);

    let r = w
        .app
        .post_form(&format!("/orders/{order_id}/confirm"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let complete_url = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(complete_url.starts_with(&w.sb.base_url()));
    let complete_session = complete_url.rsplit('/').next().unwrap();
    let redirect = w.complete(complete_session).await;
    w.land_on_callback(&redirect).await;
    let done = w.wait_status(order_id, "completed").await;
    assert_eq!(done["escrow_status"], "completed");
    let tl = timeline(&w.app.pool, order_id).await.join("\n");
    assert!(
        tl.contains("paid → delivered") && tl.contains("Marked as shipped"),
        "{tl}"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_callback_claiming_success_does_not_make_an_order_paid(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "mallory@example.tn").await;
    let spoof = format!(
        "/checkout/callback?session_id={}&status=completed",
        s.session_id
    );
    let r = w.app.get(&spoof).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/orders/{}", s.order_id).as_str()
    );
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(
        (o["status"].as_str(), o["escrow_status"].as_str()),
        (Some("awaiting_payment"), Some("pending"))
    );
    assert!(o["digital_code"].is_null());
    // An id we never issued is unknown, and nothing happens.
    let r = w
        .app
        .get("/checkout/callback?session_id=3b9f0000-0000-4000-8000-000000000000&status=completed")
        .await;
    assert_eq!(r.status(), 404);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_webhook_that_never_arrives_is_recovered_by_the_callback_and_the_reconciler(
    pool: PgPool,
) {
    let w = world(pool, |_| {}).await;
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;

    let a = w.checkout("ai-credits-500", "first@example.tn").await;
    let redirect = w.complete(&a.session_id).await;
    assert_eq!(
        w.app.order_json(a.order_id).await["status"],
        "awaiting_payment",
        "no webhook came"
    );
    w.land_on_callback(&redirect).await;
    // The callback read DHMAD, found it paid, issued the code; the outbox delivered.
    let done = w.wait_status(a.order_id, "completed").await;
    assert!(done["digital_code"].is_string());

    // Another buyer never comes back: the back office's "reconcile now" finds the payment.
    let b = w.checkout("chechia-red", "second@example.tn").await;
    w.complete(&b.session_id).await;
    assert_eq!(
        w.app.order_json(b.order_id).await["status"],
        "awaiting_payment"
    );
    assert_eq!(w.admin_post("/admin/reconcile").await.status(), 303);
    assert_eq!(w.app.order_json(b.order_id).await["status"], "paid");
}

#[sqlx::test(migrations = "./migrations")]
async fn duplicated_and_reordered_webhooks_still_end_in_the_right_state(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.faults(json!({"seed": 7, "webhooks": {"duplicate": 0.6, "reorder": 0.5}}))
        .await;

    let s = w.checkout("chechia-red", "faults@example.tn").await;
    let redirect = w.complete(&s.session_id).await;
    w.land_on_callback(&redirect).await;
    w.wait_status(s.order_id, "paid").await;
    w.admin_post(&format!("/admin/orders/{}/ship", s.order_id))
        .await;
    w.wait_status(s.order_id, "delivered").await;
    let r = w
        .app
        .post_form(&format!("/orders/{}/confirm", s.order_id), &[])
        .await;
    let complete_session = r.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let redirect = w.complete(&complete_session).await;
    w.land_on_callback(&redirect).await;
    w.wait_status(s.order_id, "completed").await;

    // Instant product under the same faults: one deliver call whatever the duplicates.
    let i = w.checkout("ai-credits-500", "faults@example.tn").await;
    w.complete(&i.session_id).await;
    w.wait_status(i.order_id, "completed").await;
    assert_eq!(w.count_calls("POST", "/deliver").await, 2, "one per order");
    assert_eq!(
        timeline_count(&w.app.pool, i.order_id, "pending → paid").await,
        1
    );
}
