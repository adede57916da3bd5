//! After the money is held (and just before): cancellations by either side, the buyer's
//! request and the merchant's answer, cancel-and-refund, disputes, a rejected delivery shipped
//! again, and where each DHMAD page sends its user back (abandoned orders: `abandoned.rs`;
//! guest payments under review: `guest_payments.rs`). Every step goes through the sandbox as
//! DHMAD would run it.

use serde_json::{json, Value};
use sqlx::PgPool;

use crate::back_office::admin_page;
use crate::common::{sandbox::*, *};

/// The order's escrow id, as its JSON gives it.
pub(super) async fn escrow_of(w: &World, id: uuid::Uuid) -> String {
    w.app.order_json(id).await["escrow_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(super) async fn paid_quick(w: &World, email: &str) -> Started {
    let s = w.checkout("chechia-red", email).await;
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "paid").await;
    s
}

/// The buyer of a paid order asks to cancel on DHMAD's page; the request is recorded.
async fn ask_to_cancel(w: &World, order_id: uuid::Uuid) {
    let ask = w
        .app
        .post_form(&format!("/orders/{order_id}/cancel"), &[])
        .await;
    w.finish_on_dhmad(ask, json!({})).await;
    w.wait_json(order_id, "the request", |o| {
        o["cancellation"] == "requested"
    })
    .await;
}

/// The merchant refuses the buyer's cancellation request on DHMAD's page.
async fn reject_the_request(w: &World, order_id: uuid::Uuid) {
    let reject = w
        .admin_form(
            &format!("/admin/orders/{order_id}/cancellation"),
            &[("decision", "reject")],
        )
        .await;
    w.finish_on_dhmad(reject, json!({})).await;
    w.wait_json(order_id, "the answer", |o| o["cancellation"] == "rejected")
        .await;
}

#[sqlx::test(migrations = "./migrations")]
async fn either_side_cancels_before_payment(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "nevermind@example.tn").await;
    let r = w
        .app
        .post_form(&format!("/orders/{}/cancel", s.order_id), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/orders/{}", s.order_id).as_str()
    );
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["status"], "cancelled");
    let escrow = w
        .app
        .state
        .dhmad
        .get_escrow(o["escrow_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(escrow.status.as_str(), "cancelled");

    let t = w.checkout("chechia-red", "shopcancels@example.tn").await;
    let r = w
        .admin_post(&format!("/admin/orders/{}/cancel", t.order_id))
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/admin/orders/{}", t.order_id).as_str()
    );
    assert_eq!(w.app.order_json(t.order_id).await["status"], "cancelled");
    let audit = sqlx::query_scalar!(
        "SELECT action FROM admin_audit WHERE order_id = $1",
        t.order_id
    )
    .fetch_all(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(audit, ["cancel"]);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_buyers_request_is_accepted_by_the_merchant_and_the_buyer_is_refunded(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "changedmind@example.tn").await;
    let ask = w
        .app
        .post_form(&format!("/orders/{}/cancel", s.order_id), &[])
        .await;
    let back = w
        .finish_on_dhmad(ask, json!({"note": "ordered twice"}))
        .await;
    assert_eq!(back, format!("/orders/{}", s.order_id));
    let o = w
        .wait_json(s.order_id, "the request", |o| {
            o["cancellation"] == "requested"
        })
        .await;
    assert_eq!(o["status"], "paid");
    // While the request waits, the back office does not ship, and shows it.
    let ship = w
        .admin_post(&format!("/admin/orders/{}/ship", s.order_id))
        .await;
    assert_eq!(ship.status(), 409);
    let admin = admin_page(&w.app, &format!("/admin/orders/{}", s.order_id)).await;
    assert!(admin.contains("ordered twice") && admin.contains("Accept the cancellation"));

    let accept = w
        .admin_form(
            &format!("/admin/orders/{}/cancellation", s.order_id),
            &[("decision", "accept")],
        )
        .await;
    let back = w.finish_on_dhmad_as_merchant(accept, json!({})).await;
    assert_eq!(
        back,
        format!("/admin/orders/{}", s.order_id),
        "the merchant goes back to the back office"
    );
    // Someone else holding the merchant's session id (a shared screen, a history) is not given
    // the order's address, which is also the buyer's link.
    let merchant_session: String = sqlx::query_scalar(
        "SELECT session_id FROM checkout_sessions WHERE order_id = $1 AND for_merchant",
    )
    .bind(s.order_id)
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    let stranger = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = stranger
        .get(w.app.url(&format!(
            "/checkout/callback?session_id={merchant_session}&status=completed"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let via = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(!via.contains(&s.order_id.to_string()), "{via}");
    let r = stranger.get(w.app.url(&via)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/login");
    // Nor does a buyer's session id open the order there, even to the merchant.
    let buyer_session: String = sqlx::query_scalar(
        "SELECT session_id FROM checkout_sessions WHERE order_id = $1 AND NOT for_merchant
          LIMIT 1",
    )
    .bind(s.order_id)
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    let r = w
        .http
        .get(w.app.url(&format!("/admin/from-dhmad/{buyer_session}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The redirect may bring the merchant back before DHMAD's webhook: the callback's read
    // cancels the order, the webhook then records the accepted request.
    let o = w
        .wait_json(s.order_id, "the accepted cancellation", |o| {
            o["status"] == "cancelled" && o["cancellation"] == "accepted"
        })
        .await;
    assert_eq!(o["status"], "cancelled");
    let page = w.app.order_page(s.order_id).await;
    assert!(page.contains("refunds you"), "{page}");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_rejected_request_lets_the_merchant_ship(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "keepit@example.tn").await;
    ask_to_cancel(&w, s.order_id).await;
    reject_the_request(&w, s.order_id).await;
    let bad = w
        .admin_form(
            &format!("/admin/orders/{}/cancellation", s.order_id),
            &[("decision", "maybe")],
        )
        .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        w.admin_post(&format!("/admin/orders/{}/ship", s.order_id))
            .await
            .status(),
        303
    );
    w.wait_status(s.order_id, "delivered").await;
}

/// The shop accepted the buyer's cancellation on DHMAD's page, and DHMAD's cancellation of the
/// escrow is not known yet (its read at the callback failed, its webhook is on its way): the
/// order is still paid, but nothing is to be shipped.
#[sqlx::test(migrations = "./migrations")]
async fn an_accepted_cancellation_is_not_shipped_while_dhmad_cancels(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "accepted@example.tn").await;
    ask_to_cancel(&w, s.order_id).await;
    sqlx::query!(
        "UPDATE orders SET cancellation = 'accepted' WHERE id = $1",
        s.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    let r = w
        .admin_post(&format!("/admin/orders/{}/ship", s.order_id))
        .await;
    assert_eq!(r.status(), 409);
    let page = r.text().await.unwrap();
    assert!(page.contains("nothing is to be shipped"), "{page}");
    // Nor is the buyer offered what DHMAD would refuse of an escrow it is cancelling.
    let buyer = w.app.order_page(s.order_id).await;
    assert!(
        !buyer.contains(&format!("/orders/{}/dispute", s.order_id)),
        "{buyer}"
    );
    assert!(buyer.contains("DHMAD is cancelling the order"), "{buyer}");
    // Nor does a "ship" from before the request, still queued, go to DHMAD.
    let job = sqlx::query_scalar!(
        "INSERT INTO outbox_jobs (kind, order_id) VALUES ('deliver', $1) RETURNING id",
        s.order_id
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    let held = wait_for("the queued deliver to be held", 30, || async {
        sqlx::query_scalar!(
            "SELECT e.detail FROM outbox_jobs j JOIN order_events e ON e.order_id = j.order_id
              WHERE j.id = $1 AND j.done_at IS NOT NULL AND e.kind = 'ship_held'",
            job
        )
        .fetch_optional(&w.app.pool)
        .await
        .unwrap()
    })
    .await;
    assert!(held.contains("accepted the buyer's cancellation"), "{held}");
    assert_eq!(w.count_calls("POST", "/deliver").await, 0);
    assert_eq!(w.app.order_json(s.order_id).await["status"], "paid");
    // Delivered before the cancellation (DHMAD's news of it still on its way): nothing to
    // confirm or dispute either.
    sqlx::query(
        "UPDATE orders SET status = 'delivered', escrow_status = 'delivered' WHERE id = $1",
    )
    .bind(s.order_id)
    .execute(&w.app.pool)
    .await
    .unwrap();
    let buyer = w.app.order_page(s.order_id).await;
    for step in ["confirm", "dispute"] {
        let form = format!("/orders/{}/{step}", s.order_id);
        assert!(!buyer.contains(&form), "{step}: {buyer}");
    }
    assert!(!buyer.contains("confirm receipt"), "{buyer}");
}

/// DHMAD sends a lost event no more and no escrow snapshot carries the cancellation request:
/// the callback after a completed request or answer page records it, so an order whose
/// `escrow.cancellation.*` webhooks were all lost is not left waiting for an answer for ever.
#[sqlx::test(migrations = "./migrations")]
async fn a_cancellation_whose_webhooks_are_lost_is_known_from_the_callback(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "lost-answer@example.tn").await;
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    ask_to_cancel(&w, s.order_id).await;
    let ship = format!("/admin/orders/{}/ship", s.order_id);
    assert_eq!(
        w.admin_post(&ship).await.status(),
        409,
        "shipped while asked to cancel"
    );
    reject_the_request(&w, s.order_id).await;
    assert_eq!(w.admin_post(&ship).await.status(), 303);
    w.wait_status(s.order_id, "delivered").await;
}

/// A paid quick order whose buyer asked to cancel; the merchant refuses on DHMAD's page and
/// closes the tab, every webhook lost: the order, its answer route and the used page's session.
async fn rejected_without_coming_back(w: &World, buyer: &str) -> (Started, String, String) {
    let s = paid_quick(w, buyer).await;
    ask_to_cancel(w, s.order_id).await;
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    let answer = format!("/admin/orders/{}/cancellation", s.order_id);
    let first = w.admin_form(&answer, &[("decision", "reject")]).await;
    let session = finished_without_coming_back(w, &first).await;
    (s, answer, session)
}

/// The step's answer sent its user to DHMAD's page (303), which they finish there and leave
/// without coming back: the page's session id.
async fn finished_without_coming_back(w: &World, step: &reqwest::Response) -> String {
    finished_on_dhmads_page(w, step).await.0
}

/// The step's answer sent its user to DHMAD's page (303), which they finish there: the page's
/// session id, and where DHMAD sends them back.
async fn finished_on_dhmads_page(w: &World, step: &reqwest::Response) -> (String, String) {
    assert_eq!(step.status(), 303);
    let page = step.headers()["location"].to_str().unwrap();
    let session = page.rsplit('/').next().unwrap().to_owned();
    let done = w
        .control(&format!("/sandbox/sessions/{session}/complete"), json!({}))
        .await;
    let back = done["redirect_url"].as_str().unwrap().to_owned();
    (session, back)
}

/// The merchant refused the request on DHMAD's page and closed the tab: no callback, and the
/// event lost too. While that page has time left, "Reject" again handed out the same page,
/// which DHMAD answers "already used" (pages are single-use). DHMAD is now asked about a
/// stored page first: the answer it recorded is learned, and the step is not offered again.
#[sqlx::test(migrations = "./migrations")]
async fn a_page_used_on_dhmad_is_not_handed_out_again(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, answer, _) = rejected_without_coming_back(&w, "used-page@example.tn").await;
    rejecting_again_answers(&w, &s, &answer, 409, "not the used page again").await;
}

/// "Reject" once more answers `status`; the order has learned its request was refused, and
/// ships.
async fn rejecting_again_answers(w: &World, s: &Started, answer: &str, status: u16, why: &str) {
    let again = w.admin_form(answer, &[("decision", "reject")]).await;
    assert_eq!(again.status(), status, "{why}");
    refused_and_ships(w, s).await;
}

/// The order knows its cancellation request was refused, and the merchant may ship.
async fn refused_and_ships(w: &World, s: &Started) {
    assert_eq!(
        w.app.order_json(s.order_id).await["cancellation"],
        "rejected"
    );
    let ship = format!("/admin/orders/{}/ship", s.order_id);
    assert_eq!(w.admin_post(&ship).await.status(), 303);
}

/// The merchant refused the request on DHMAD's page, then closed the tab: no callback, and the
/// event lost too. Once that page has run out, answering again is refused by DHMAD (no pending
/// request), and that refusal is the news: the escrow still held, the request was refused.
#[sqlx::test(migrations = "./migrations")]
async fn an_answer_known_only_to_dhmad_is_learned_from_its_refusal(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, answer, session) = rejected_without_coming_back(&w, "tab-closed@example.tn").await;
    assert_eq!(
        w.app.order_json(s.order_id).await["cancellation"],
        "requested"
    );
    // The page's time runs out (the sweeper marks it expired).
    sqlx::query("UPDATE checkout_sessions SET status = 'expired' WHERE session_id = $1")
        .bind(&session)
        .execute(&w.app.pool)
        .await
        .unwrap();
    rejecting_again_answers(&w, &s, &answer, 422, "DHMAD's refusal is shown").await;
}

/// The page's time runs out here (by the shop's clock; DHMAD keeps how it ended) and the
/// session sweeper passes.
async fn page_ends_and_sweeper_passes(w: &World, session: &str) {
    sqlx::query(
        "UPDATE checkout_sessions SET expires_at = now() - interval '10 minutes', checked_at = NULL
          WHERE session_id = $1",
    )
    .bind(session)
    .execute(&w.app.pool)
    .await
    .unwrap();
    storefront::jobs::sessions::run_once(&w.app.state)
        .await
        .unwrap();
}

/// The buyer asked to cancel on DHMAD's page and closed the tab, the event lost: no escrow read
/// tells of a request, so the shop never saw it and the merchant could ship over it. Once the
/// page has ended, the sweeper asks DHMAD how it ended instead of marking it expired.
#[sqlx::test(migrations = "./migrations")]
async fn a_request_left_without_a_return_is_learned_once_its_page_ends(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, session) = request_left_without_a_return(&w, "left-request@example.tn").await;
    page_ends_and_sweeper_passes(&w, &session).await;
    the_request_holds_the_order(&w, &s, &session).await;
}

/// The sweeper read the left page, but could not record the request: the order's row was
/// locked past the lock timeout (a webhook, the back office). The page was marked completed
/// first, and only pending pages are asked about, so the request was lost for good and the
/// merchant could ship over it. The page now stays pending until the request is recorded.
#[sqlx::test(migrations = "./migrations")]
async fn a_left_request_the_sweeper_could_not_record_is_asked_about_again(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, session) = request_left_without_a_return(&w, "left-locked@example.tn").await;
    let holder = holding_the_order(&w.app.pool, s.order_id).await;
    page_ends_and_sweeper_passes(&w, &session).await;
    holder.rollback().await.unwrap();
    left_pending_then_learned(&w, &s, &session).await;
}

/// The buyer came back from asking to cancel (its event lost) while the order's row was
/// locked past the lock timeout: the return recorded the page completed before the request,
/// which then failed, and only a reload could learn it again. The page now stays pending, so
/// the sweeper asks once it has ended.
#[sqlx::test(migrations = "./migrations")]
async fn a_request_the_return_could_not_record_is_asked_about_once_its_page_ends(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, session, back) = request_made_on_dhmads_page(&w, "return-locked@example.tn").await;
    let holder = holding_the_order(&w.app.pool, s.order_id).await;
    w.land_on_callback(&back).await;
    holder.rollback().await.unwrap();
    left_pending_then_learned(&w, &s, &session).await;
}

/// The buyer asked to cancel on DHMAD's page (return and event lost) and clicks "cancel" again
/// while the order's row is locked: the look at the stored page finds it used, but cannot
/// record the request. The used page was handed out again (DHMAD answers "already used"); the
/// buyer is now asked to try again in a moment, and the page stays to be asked about.
#[sqlx::test(migrations = "./migrations")]
async fn a_used_page_whose_outcome_could_not_be_recorded_is_not_handed_out(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, session) = request_left_without_a_return(&w, "click-locked@example.tn").await;
    let holder = holding_the_order(&w.app.pool, s.order_id).await;
    let again = w
        .app
        .post_form(&format!("/orders/{}/cancel", s.order_id), &[])
        .await;
    holder.rollback().await.unwrap();
    let status = again.status();
    let page = again.text().await.unwrap();
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("could not be recorded just now"), "{page}");
    left_pending_then_learned(&w, &s, &session).await;
}

/// A paid order whose buyer asked to cancel on DHMAD's page, its return and its event lost.
async fn request_left_without_a_return(w: &World, email: &str) -> (Started, String) {
    let (s, session, _) = request_made_on_dhmads_page(w, email).await;
    (s, session)
}

/// A paid order whose buyer asked to cancel on DHMAD's page, its event lost: the page's
/// session id, and where DHMAD sends the buyer back.
async fn request_made_on_dhmads_page(w: &World, email: &str) -> (Started, String, String) {
    let s = paid_quick(w, email).await;
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    let ask = w
        .app
        .post_form(&format!("/orders/{}/cancel", s.order_id), &[])
        .await;
    let (session, back) = finished_on_dhmads_page(w, &ask).await;
    assert_eq!(
        w.app.order_json(s.order_id).await["cancellation"],
        Value::Null
    );
    (s, session, back)
}

/// The request is not the shop's yet, and its page stays pending: once the page has ended,
/// the sweeper asks DHMAD and learns it.
async fn left_pending_then_learned(w: &World, s: &Started, session: &str) {
    assert_eq!(
        w.app.order_json(s.order_id).await["cancellation"],
        Value::Null
    );
    assert_eq!(page_status(w, session).await, "pending");
    page_ends_and_sweeper_passes(w, session).await;
    the_request_holds_the_order(w, s, session).await;
}

/// The request is the shop's now: shipping waits for its answer, and the page is done.
async fn the_request_holds_the_order(w: &World, s: &Started, session: &str) {
    assert_eq!(
        w.app.order_json(s.order_id).await["cancellation"],
        "requested"
    );
    let ship = format!("/admin/orders/{}/ship", s.order_id);
    assert_eq!(
        w.admin_post(&ship).await.status(),
        409,
        "shipped over the request"
    );
    assert_eq!(page_status(w, session).await, "completed");
}

async fn page_status(w: &World, session: &str) -> String {
    sqlx::query_scalar("SELECT status FROM checkout_sessions WHERE session_id = $1")
        .bind(session)
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
}

/// The merchant refused the request on DHMAD's page and closed the tab, the event lost: the
/// order was held as "asked to cancel" (no shipping, no receipt) until someone clicked again.
/// Once the page has ended, the sweeper learns the answer.
#[sqlx::test(migrations = "./migrations")]
async fn an_answer_left_without_a_return_is_learned_once_its_page_ends(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, _, session) = rejected_without_coming_back(&w, "left-answer@example.tn").await;
    assert_eq!(
        w.app.order_json(s.order_id).await["cancellation"],
        "requested"
    );
    page_ends_and_sweeper_passes(&w, &session).await;
    refused_and_ships(&w, &s).await;
}

/// A left page DHMAD does not know (404: a reset sandbox, another key) is taken as expired
/// after one look, not asked about at every sweep for a day; one it fails on is asked again
/// only after a while.
#[sqlx::test(migrations = "./migrations")]
async fn a_left_page_dhmad_does_not_know_is_asked_about_once(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "unknown-page@example.tn").await;
    let ask = w
        .app
        .post_form(&format!("/orders/{}/cancel", s.order_id), &[])
        .await;
    assert_eq!(ask.status(), 303);
    let page = ask.headers()["location"].to_str().unwrap();
    let session = page.rsplit('/').next().unwrap().to_owned();
    let reads = || async {
        w.count_calls("GET", &format!("/api/v1/sessions/{session}"))
            .await
    };
    let before = reads().await;
    // DHMAD fails the read (each of the client's tries).
    w.faults(json!({"api": [{"method": "GET", "path": "/api/v1/sessions/{id}", "fault": "error_500", "times": 100}]}))
        .await;
    page_ends_and_sweeper_passes(&w, &session).await;
    let failed = reads().await;
    assert!(failed > before);
    // Asked again only after a while, not at the next sweep.
    storefront::jobs::sessions::run_once(&w.app.state)
        .await
        .unwrap();
    assert_eq!(reads().await, failed);
    // A while later, DHMAD does not know it (404, not retried): taken as expired.
    w.faults(json!({"api": [{"method": "GET", "path": "/api/v1/sessions/{id}", "fault": "not_found", "times": 1}]}))
        .await;
    page_ends_and_sweeper_passes(&w, &session).await;
    assert_eq!(reads().await, failed + 1);
    let status: String =
        sqlx::query_scalar("SELECT status FROM checkout_sessions WHERE session_id = $1")
            .bind(&session)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(status, "expired");
    assert_eq!(
        w.app.order_json(s.order_id).await["cancellation"],
        Value::Null
    );
}

/// A request the shop never answered is moot once the buyer opens a dispute: the page speaks
/// of the dispute, not of an answer that can no longer come.
#[sqlx::test(migrations = "./migrations")]
async fn a_request_overtaken_by_a_dispute_is_no_longer_shown_as_waiting(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "overtaken@example.tn").await;
    ask_to_cancel(&w, s.order_id).await;
    let r = w
        .app
        .post_form(&format!("/orders/{}/dispute", s.order_id), &[])
        .await;
    w.finish_on_dhmad(r, json!({"note": "no answer from the shop"}))
        .await;
    let o = w.wait_status(s.order_id, "disputed").await;
    assert_eq!(o["cancellation"], Value::Null, "{o}");
    let page = w.app.order_page(s.order_id).await;
    assert!(page.contains("dispute is open"), "{page}");
    assert!(
        !page.contains("The shop will accept") && !page.contains("has not answered yet"),
        "{page}"
    );
}

/// A deliver queued before the buyer asked to cancel (a retry in flight, or a dead job run
/// again from the outbox page) is not sent while the request waits: the shop answers first, as
/// the "ship" button does.
#[sqlx::test(migrations = "./migrations")]
async fn a_queued_ship_waits_for_the_answer_to_a_cancellation_request(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "asked-first@example.tn").await;
    ask_to_cancel(&w, s.order_id).await;
    // The merchant's "ship" from before the request, still queued.
    let job = sqlx::query_scalar!(
        "INSERT INTO outbox_jobs (kind, order_id) VALUES ('deliver', $1) RETURNING id",
        s.order_id
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    wait_for("the worker to run the job", 30, || async {
        sqlx::query_scalar!(
            "SELECT id FROM outbox_jobs WHERE id = $1 AND done_at IS NOT NULL",
            job
        )
        .fetch_optional(&w.app.pool)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(
        w.count_calls("POST", "/deliver").await,
        0,
        "nothing sent to DHMAD"
    );
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["status"], "paid");
    let held: Vec<String> = sqlx::query_scalar!(
        "SELECT detail FROM order_events WHERE order_id = $1 AND kind = 'ship_held'",
        s.order_id
    )
    .fetch_all(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(held[0].contains("cancellation request"), "{held:?}");
}

/// The buyer asked to cancel, then the shop cancelled and refunded outright: the back office
/// kept showing "Cancellation: Requested" on the cancelled order, a request nobody can answer.
#[sqlx::test(migrations = "./migrations")]
async fn a_request_overtaken_by_a_refund_is_not_shown_pending(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "overtaken@example.tn").await;
    ask_to_cancel(&w, s.order_id).await;
    let r = w
        .admin_post(&format!("/admin/orders/{}/cancel", s.order_id))
        .await;
    w.finish_on_dhmad(r, json!({})).await;
    w.wait_status(s.order_id, "cancelled").await;
    let page = admin_page(&w.app, &format!("/admin/orders/{}", s.order_id)).await;
    assert!(
        page.contains("Cancellation: Requested"),
        "the history stays"
    );
    assert!(page.contains("no longer pending"), "{page}");
}

#[sqlx::test(migrations = "./migrations")]
async fn the_merchant_cancels_and_refunds_a_paid_order(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "refund@example.tn").await;
    let r = w
        .admin_post(&format!("/admin/orders/{}/cancel", s.order_id))
        .await;
    w.finish_on_dhmad(r, json!({})).await;
    let o = w.wait_status(s.order_id, "cancelled").await;
    assert_eq!(
        o["cancellation"],
        Value::Null,
        "no request: a direct refund"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_dispute_is_shown_open_and_refused_actions_are_not_offered(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "dispute@example.tn").await;
    let r = w
        .app
        .post_form(&format!("/orders/{}/dispute", s.order_id), &[])
        .await;
    w.finish_on_dhmad(r, json!({"note": "never arrived"})).await;
    let o = w.wait_status(s.order_id, "disputed").await;
    assert_eq!(o["dispute_open"], true);
    let page = w.app.order_page(s.order_id).await;
    assert!(page.contains("dispute is open"));
    assert!(!page.contains("Ask to cancel") && !page.contains("Open a dispute with DHMAD"));
    assert_eq!(
        w.admin_post(&format!("/admin/orders/{}/ship", s.order_id))
            .await
            .status(),
        409
    );
    assert_eq!(
        w.admin_post(&format!("/admin/orders/{}/dispute", s.order_id))
            .await
            .status(),
        409
    );
    // DHMAD decides for the buyer.
    let escrow = escrow_of(&w, s.order_id).await;
    w.control(
        &format!("/sandbox/escrows/{escrow}/dispute/resolve"),
        json!({"outcome": "refund"}),
    )
    .await;
    w.wait_status(s.order_id, "cancelled").await;
}

#[sqlx::test(migrations = "./migrations")]
async fn a_rejected_delivery_is_explained_and_shipped_again(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "wrongsize@example.tn").await;
    w.admin_post(&format!("/admin/orders/{}/ship", s.order_id))
        .await;
    w.wait_status(s.order_id, "delivered").await;
    let escrow = escrow_of(&w, s.order_id).await;
    w.control(
        &format!("/sandbox/escrows/{escrow}/reject-delivery"),
        json!({"reason": "wrong size"}),
    )
    .await;
    let o = w.wait_status(s.order_id, "paid").await;
    assert_eq!(o["delivery_rejection_reason"], "wrong size");
    let page = w.app.order_page(s.order_id).await;
    assert!(page.contains("wrong size"));
    // Back to paid charges nothing again: the timeline says so, not "payment received" twice.
    assert_eq!(page.matches("Payment received").count(), 1, "{page}");
    assert!(page.contains("the delivery is to be made again"), "{page}");
    assert_eq!(
        w.admin_post(&format!("/admin/orders/{}/ship", s.order_id))
            .await
            .status(),
        303
    );
    let o = w.wait_status(s.order_id, "delivered").await;
    // Shipped again: the rejection is history, on the JSON as on the page.
    assert!(o["delivery_rejection_reason"].is_null(), "{o}");
}

/// A quick order's "ship": DHMAD takes the deliver but its answer is lost (500), and the
/// buyer rejects that delivery while the retry waits (paid again). The retry is then due now,
/// with DHMAD answering as `then` says (sandbox faults).
async fn deliver_taken_then_rejected(w: &World, email: &str, then: Value) -> (Started, String) {
    let (s, escrow) = deliver_taken_then_rejected_parked(w, email).await;
    w.faults(then).await;
    sqlx::query(
        "UPDATE outbox_jobs SET run_after = now() WHERE order_id = $1 AND kind = 'deliver'",
    )
    .bind(s.order_id)
    .execute(&w.app.pool)
    .await
    .unwrap();
    (s, escrow)
}

/// [`deliver_taken_then_rejected`], its retry left parked for an hour.
async fn deliver_taken_then_rejected_parked(w: &World, email: &str) -> (Started, String) {
    let s = paid_quick(w, email).await;
    let escrow = escrow_of(w, s.order_id).await;
    let fault = json!({"method": "POST", "path": "/api/v1/escrows/{id}/deliver", "fault": "error_500_after", "times": 1});
    w.faults(json!({ "api": [fault] })).await;
    // Parked once the first attempt's outcome is written (`claimed_until` cleared): parked
    // while it ran, its retry's own time would replace the hour.
    let park = "UPDATE outbox_jobs SET run_after = now() + interval '1 hour'
                 WHERE order_id = $1 AND kind = 'deliver' AND done_at IS NULL AND attempts >= 1
                   AND claimed_until IS NULL
                 RETURNING attempts";
    let ship = format!("/admin/orders/{}/ship", s.order_id);
    assert_eq!(w.admin_post(&ship).await.status(), 303);
    // The first attempt was applied at DHMAD and answered 500: its retry waits (backoff, or
    // DHMAD's budget) while the buyer rejects the delivery.
    let attempts: i32 = wait_for("the first deliver attempt", 30, || async {
        sqlx::query_scalar(park)
            .bind(s.order_id)
            .fetch_optional(&w.app.pool)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(attempts, 1);
    w.wait_status(s.order_id, "delivered").await;
    w.control(
        &format!("/sandbox/escrows/{escrow}/reject-delivery"),
        json!({"reason": "not what I ordered"}),
    )
    .await;
    w.wait_status(s.order_id, "paid").await;
    (s, escrow)
}

/// A deliver DHMAD took whose answer was lost is retried only after a read: when the buyer
/// has rejected that delivery meanwhile (paid again), it is not sent again, which would mark
/// the goods delivered once more against the rejection, with nothing shipped.
#[sqlx::test(migrations = "./migrations")]
async fn a_retried_deliver_does_not_override_the_buyers_rejection(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, escrow) = deliver_taken_then_rejected(&w, "rejected@example.tn", json!({})).await;
    the_rejection_held(&w, s.order_id, &escrow).await;
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["status"], "paid", "{o}");
    // The merchant can still ship again.
    let ship = format!("/admin/orders/{}/ship", s.order_id);
    assert_eq!(w.admin_post(&ship).await.status(), 303);
    w.wait_status(s.order_id, "delivered").await;
}

/// The merchant ships again after the buyer's rejection while the earlier ship's retry still
/// waits: the shop answers that a deliver is queued already, so that retry must carry the new
/// ship. It found the rejection made since it was queued and closed unsent, and the merchant's
/// second ship was lost, with the buyer told the shop ships again.
#[sqlx::test(migrations = "./migrations")]
async fn shipping_again_while_the_earlier_retry_waits_is_not_lost(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, _) = deliver_taken_then_rejected_parked(&w, "again@example.tn").await;
    let ship = format!("/admin/orders/{}/ship", s.order_id);
    assert_eq!(w.admin_post(&ship).await.status(), 303);
    // Due at once (it was parked an hour), and said as a new ship.
    w.wait_status(s.order_id, "delivered").await;
    assert_eq!(w.count_calls("POST", "/deliver").await, 2);
    let shipped = "Marked as shipped by the merchant";
    assert_eq!(timeline_count(&w.app.pool, s.order_id, shipped).await, 2);
    // The back office's trail says it too.
    let audit =
        sqlx::query_scalar!("SELECT detail FROM admin_audit WHERE action = 'ship' ORDER BY id")
            .fetch_all(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(audit, ["deliver queued", "deliver queued"]);
}

/// The same deliver given up after its answers were lost, then retried by the merchant from
/// the outbox console: the fresh job carries the dead one on, so it reads first too.
#[sqlx::test(migrations = "./migrations")]
async fn a_dead_deliver_retried_from_the_console_does_not_override_the_rejection(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (s, escrow) = deliver_taken_then_rejected_parked(&w, "console@example.tn").await;
    let dead: i64 = sqlx::query_scalar(
        "UPDATE outbox_jobs SET done_at = now(), gave_up_at = now(), attempts = 12,
                last_error = 'deliver failed: 500'
          WHERE order_id = $1 AND kind = 'deliver' AND done_at IS NULL RETURNING id",
    )
    .bind(s.order_id)
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    let retry = w.admin_post(&format!("/admin/outbox/{dead}/retry")).await;
    assert_eq!(retry.status(), 303);
    the_rejection_held(&w, s.order_id, &escrow).await;
    assert_eq!(w.count_calls("POST", "/deliver").await, 1, "sent once");
}

/// Waits until the order has no open job, then checks that the buyer's rejection held: the
/// escrow still paid at DHMAD, and the timeline tells the merchant to ship again once it is
/// settled.
async fn the_rejection_held(w: &World, order_id: uuid::Uuid, escrow: &str) {
    wait_for("the deliver's retry to end", 30, || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox_jobs WHERE order_id = $1 AND done_at IS NULL",
        )
        .bind(order_id)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
        (open == 0).then_some(())
    })
    .await;
    let e = w.app.state.dhmad.get_escrow(escrow).await.unwrap();
    assert_eq!(e.status.as_str(), "paid", "{e:?}");
    let lines = timeline(&w.app.pool, order_id).await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Ship again once it is settled")),
        "{lines:?}"
    );
}

/// The same retry when DHMAD cannot be read: it waits for a read, where it used to be sent
/// blind and override the rejection.
#[sqlx::test(migrations = "./migrations")]
async fn a_retried_deliver_is_not_sent_while_the_escrow_cannot_be_read(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let unreadable = json!({"api": [{"method": "GET", "path": "/api/v1/escrows/{id}", "fault": "error_500", "times": 1000}]});
    let (s, escrow) = deliver_taken_then_rejected(&w, "unreadable@example.tn", unreadable).await;
    let attempts: i32 = wait_for("the retry's attempt", 30, || async {
        sqlx::query_scalar(
            "SELECT attempts FROM outbox_jobs
              WHERE order_id = $1 AND kind = 'deliver' AND attempts >= 2 AND claimed_until IS NULL",
        )
        .bind(s.order_id)
        .fetch_optional(&w.app.pool)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(attempts, 2);
    assert_eq!(w.count_calls("POST", "/deliver").await, 1, "sent once");
    w.faults(json!({})).await;
    let e = w.app.state.dhmad.get_escrow(&escrow).await.unwrap();
    assert_eq!(e.status.as_str(), "paid", "{e:?}");
}

#[sqlx::test(migrations = "./migrations")]
async fn dhmads_refusal_is_shown_on_the_page_that_offered_the_step(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "stale@example.tn").await;
    // A dispute opened on DHMAD while its news was lost: the shop still thinks "paid".
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    let r = w
        .app
        .post_form(&format!("/orders/{}/dispute", s.order_id), &[])
        .await;
    let url = r.headers()["location"].to_str().unwrap().to_owned();
    w.control(
        &format!("/sandbox/sessions/{}/complete", World::session_in(&url)),
        json!({}),
    )
    .await;
    let ask = w
        .app
        .post_form(&format!("/orders/{}/cancel", s.order_id), &[])
        .await;
    assert_eq!(ask.status(), 422);
    let page = ask.text().await.unwrap();
    assert!(
        page.contains("Timeline") && page.contains("role=\"alert\""),
        "the order page: {page}"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn the_buyers_page_shows_nothing_internal(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let r = app
        .post_form(
            "/checkout",
            &[("sku", "chechia-red"), ("email", "quiet@example.tn")],
        )
        .await;
    assert_eq!(r.status(), 503);
    let id: uuid::Uuid = sqlx::query_scalar!("SELECT id FROM orders")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let page = app.order_page(id).await;
    for internal in [
        "127.0.0.1:9",
        "error sending request",
        "escrow.status",
        "http://",
    ] {
        assert!(
            !page.contains(internal),
            "{internal:?} on the buyer's page: {page}"
        );
    }
    let json = app.order_json(id).await.to_string();
    assert!(
        !json.contains("127.0.0.1:9") && !json.contains("error sending"),
        "{json}"
    );
}

/// DHMAD refuses the buyer's cancel because the escrow was cancelled already (a second click,
/// or the other party) and its news is late: the buyer lands on the cancelled order, not on a
/// 502 saying "try again". A wallet payment whose news is late is said to be paid.
#[sqlx::test(migrations = "./migrations")]
async fn a_cancel_dhmad_refuses_shows_the_order_as_it_now_is(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    let s = w.checkout("ai-credits-500", "twice@example.tn").await;
    let escrow = escrow_of(&w, s.order_id).await;
    let cancelled = w
        .http
        .post(format!("{}/escrows/{escrow}/cancel", w.sb.api_base()))
        .bearer_auth(w.sb.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let cancel = w
        .app
        .post_form(&format!("/orders/{}/cancel", s.order_id), &[])
        .await;
    assert_eq!(cancel.status(), 303);
    assert_eq!(w.app.order_json(s.order_id).await["status"], "cancelled");

    let s = w.checkout("ai-credits-500", "late-news@example.tn").await;
    w.complete(&s.session_id).await;
    let cancel = w
        .app
        .post_form(&format!("/orders/{}/cancel", s.order_id), &[])
        .await;
    assert_eq!(cancel.status(), 409);
    let page = cancel.text().await.unwrap();
    assert!(page.contains("the order is paid"), "{page}");
    let o = w.app.order_json(s.order_id).await;
    assert!(o["status"] == "paid" || o["status"] == "completed", "{o}");
}

/// DHMAD failing on a back-office step (its page for a dispute answers 500) leaves the merchant
/// on the order's page with what DHMAD said, not on the shop's error page leading to the
/// catalog.
#[sqlx::test(migrations = "./migrations")]
async fn a_dhmad_failure_on_a_back_office_step_stays_on_the_orders_page(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "failing-step@example.tn").await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/sessions", "fault": "error_500", "times": 5}]}))
        .await;
    let r = w
        .admin_post(&format!("/admin/orders/{}/dispute", s.order_id))
        .await;
    assert!(r.status().is_server_error(), "{}", r.status());
    let page = r.text().await.unwrap();
    assert!(
        page.contains(&format!("action=\"/admin/orders/{}/", s.order_id))
            && page.contains("(DHMAD: "),
        "{page}"
    );
}

/// Without `DHMAD_SELLER_EMAIL` the shop has no DHMAD account to act on DHMAD's pages: the
/// back office offered "Cancel and refund" and the like all the same, each refused on click.
/// They are left out, and the page says why; steps through DHMAD's API (shipping) stay.
#[sqlx::test(migrations = "./migrations")]
async fn without_the_shops_dhmad_account_its_page_steps_are_not_offered(pool: PgPool) {
    let w = world(pool, |c| c.seller_email = None).await;
    let s = paid_quick(&w, "no-seller@example.tn").await;
    let page = admin_page(&w.app, &format!("/admin/orders/{}", s.order_id)).await;
    assert!(!page.contains("Cancel and refund"), "{page}");
    assert!(!page.contains("Open a dispute"), "{page}");
    assert!(page.contains("id=\"no-seller-account\""), "{page}");
    assert!(page.contains("Mark shipped"), "{page}");
}

/// A delivered order whose buyer asked to cancel: confirming receipt waits for the shop's
/// answer (DHMAD refuses a `complete` while a cancellation is pending), and the refusal says
/// so. It said "nothing to confirm yet (the order is Shipped — awaiting your confirmation)".
#[sqlx::test(migrations = "./migrations")]
async fn confirming_while_a_cancellation_waits_says_why_not(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = paid_quick(&w, "changed-mind@example.tn").await;
    w.admin_post(&format!("/admin/orders/{}/ship", s.order_id))
        .await;
    w.wait_status(s.order_id, "delivered").await;
    ask_to_cancel(&w, s.order_id).await;
    let r = w
        .app
        .post_form(&format!("/orders/{}/confirm", s.order_id), &[])
        .await;
    assert_eq!(r.status(), 409);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("confirm receipt once it has") && !page.contains("nothing to confirm"),
        "{page}"
    );
    assert_eq!(
        w.app.order_json(s.order_id).await["status"],
        "delivered",
        "nothing was sent to DHMAD"
    );
}
