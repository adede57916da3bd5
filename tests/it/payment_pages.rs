//! Which payment page a buyer is offered: never a second one while a proof sent on another
//! is under review (a guest pays outside DHMAD's wallet, so two pages could take the money
//! twice), and a refused checkout, or one the line gave up on, shows the order it was about.

use sqlx::PgPool;

use crate::common::sandbox::*;

use super::guest_payments::{send_proof, send_proof_and_return};

/// The first payment page has under two minutes left, so "Pay again" opens a second one while
/// the first is still open at DHMAD. Returns the second page's session.
async fn a_second_page_while_the_first_is_open(w: &World, s: &Started) -> String {
    sqlx::query("UPDATE checkout_sessions SET expires_at = now() + interval '90 seconds'")
        .execute(&w.app.pool)
        .await
        .unwrap();
    let again = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert_eq!(again.status(), 303);
    let second = World::session_in(again.headers()["location"].to_str().unwrap());
    assert_ne!(second, s.session_id, "a second page was opened");
    second
}

/// A guest sends a proof on the first of two open payment pages and comes back: the second
/// page, still open, is offered nowhere (the order page, "Pay again", a repeated checkout, the
/// waiting page), or the guest would send the money twice. Before, each handed it out.
#[sqlx::test(migrations = "./migrations")]
async fn a_proof_on_the_older_of_two_pages_closes_the_newer(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "two-pages@example.tn").await;
    a_second_page_while_the_first_is_open(&w, &s).await;
    send_proof_and_return(&w, &s).await;
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["payment_review"], true, "{o}");
    assert!(o["checkout_url"].is_null(), "{o}");

    let again = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert_eq!(again.status(), 409, "Pay again handed out the second page");
    let repeat = w
        .checkout_response("ai-credits-500", "two-pages@example.tn")
        .await;
    assert_eq!(repeat.status(), 409, "a repeated checkout handed it out");
    // The waiting page has nothing to wait for: it sends the buyer to the order, not to DHMAD.
    let waiting = w.app.get(&format!("/orders/{}/checkout", s.order_id)).await;
    assert_eq!(waiting.status(), 303);
    assert_eq!(
        waiting.headers()["location"],
        format!("/orders/{}", s.order_id).as_str()
    );
}

/// The same, but the guest closes the tab after the proof: the shop asks DHMAD about every page
/// that was open with the last one, not the last alone, before it cancels or opens another,
/// and hands out the newer page nowhere until DHMAD has said. Before, the order page, "Pay
/// again", a repeated checkout and the waiting page all handed out the newer page (only a
/// page with none live was asked about), and the guest was told to pay again.
#[sqlx::test(migrations = "./migrations")]
async fn a_proof_on_the_older_of_two_pages_is_found_without_coming_back(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w
        .checkout("ai-credits-500", "two-pages-gone@example.tn")
        .await;
    a_second_page_while_the_first_is_open(&w, &s).await;
    send_proof(&w, &s.session_id).await;
    let o = w.app.order_json(s.order_id).await;
    assert!(o["checkout_url"].is_null(), "{o}");
    let waiting = w.app.get(&format!("/orders/{}/checkout", s.order_id)).await;
    assert_eq!(waiting.status(), 303);
    assert_eq!(
        waiting.headers()["location"],
        format!("/orders/{}", s.order_id).as_str()
    );
    let repeat = w
        .checkout_response("ai-credits-500", "two-pages-gone@example.tn")
        .await;
    assert_eq!(
        repeat.status(),
        409,
        "a repeated checkout handed out the newer page"
    );
    assert_eq!(w.app.order_json(s.order_id).await["payment_review"], true);
    let again = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert_eq!(again.status(), 409, "Pay again handed out the newer page");
    let known = w.payment_review_known(s.order_id).await;
    assert!(known, "the proof on the older page was missed");
}

/// Two pages open with nothing sent on either: "Pay" still hands out the newer one (DHMAD,
/// asked about both, says neither was used).
#[sqlx::test(migrations = "./migrations")]
async fn two_open_pages_with_no_proof_still_lead_to_the_newer(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w
        .checkout("ai-credits-500", "two-pages-idle@example.tn")
        .await;
    let second = a_second_page_while_the_first_is_open(&w, &s).await;
    let again = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert_eq!(again.status(), 303);
    let to = again.headers()["location"].to_str().unwrap();
    assert_eq!(World::session_in(to), second);
}

/// The browser that started a checkout sends the form again while its guest proof is under
/// review: refused, on the order's page with the reason and where the order stands. Before, an
/// error page whose only link was the catalog.
#[sqlx::test(migrations = "./migrations")]
async fn a_refused_repeat_checkout_shows_the_order(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let first = w
        .checkout_form("ai-credits-500", "form-guest@example.tn")
        .await;
    assert_eq!(first.status(), 303);
    let session = World::session_in(first.headers()["location"].to_str().unwrap());
    let v = send_proof(&w, &session).await;
    w.land_on_callback(v["redirect_url"].as_str().unwrap())
        .await;

    let again = w
        .checkout_form("ai-credits-500", "form-guest@example.tn")
        .await;
    assert_eq!(again.status(), 409);
    let page = again.text().await.unwrap();
    assert!(page.contains("DHMAD is confirming your payment"), "{page}");
    assert!(
        page.contains("DHMAD received your payment proof and is checking it"),
        "not the order's page: {page}"
    );
}

/// The checkout line gave up on an order before its first DHMAD call (a lasting failure, its
/// reason kept): the order stays `new`, which only the line serves. Its page says so, stops
/// refreshing and offers "Pay again", which puts it back in line and on to DHMAD's page.
/// Before, it said "We are preparing your checkout" and refreshed for ever, with only Cancel.
#[sqlx::test(migrations = "./migrations")]
async fn an_order_the_line_gave_up_on_can_be_paid_again(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO orders (id, sku, mode, buyer_email, amount, currency, owner_key, status,
                             failure_reason)
         VALUES (gen_random_uuid(), 'ai-credits-500', 'instant', 'gave-up@example.tn', 15, 'TND',
                 'once:gave-up', 'new', 'the checkout could not start: a test')
         RETURNING id",
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    let page = w.app.order_page(id).await;
    assert!(page.contains("could not start the payment"), "{page}");
    assert!(page.contains("Pay again"), "{page}");
    assert!(!page.contains("http-equiv=\"refresh\""), "{page}");

    let again = w.app.post_form(&format!("/orders/{id}/pay"), &[]).await;
    assert_eq!(again.status(), 303);
    let o = w
        .wait_json(id, "the order back on DHMAD's page", |o| {
            o["checkout_url"].is_string()
        })
        .await;
    assert_eq!(o["status"], "awaiting_payment", "{o}");
    assert!(o["failure_reason"].is_null(), "{o}");
}
