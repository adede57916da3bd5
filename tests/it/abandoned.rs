//! Orders nobody paid: cancelled at DHMAD after the grace period, unless a guest's payment is
//! under review or DHMAD cannot say (a payment page it lost is under review nowhere); one DHMAD
//! cannot cancel is set aside, and an escrow DHMAD lost is flagged for the merchant while its
//! buyer reads nothing internal.

use serde_json::json;
use sqlx::PgPool;

use super::after_payment::escrow_of;
use crate::common::{sandbox::*, wait_for};

/// A shop that calls an unpaid order abandoned an hour after its payment page closed.
async fn abandoned_after_an_hour(pool: PgPool) -> World {
    world(pool, |c| {
        c.jobs.abandoned_after = std::time::Duration::from_secs(3600);
    })
    .await
}

/// One pass of the abandoned-order job. The app's own first pass (every job runs once at
/// start) may run late on a loaded machine and take an order first: this pass then leaves it
/// (`Ok(None)` under the other's claim), so tests assert what became of the order.
async fn abandoned_pass(w: &World) {
    let n = storefront::jobs::abandoned::run_once(&w.app.state)
        .await
        .unwrap();
    assert!(n <= 1, "{n}");
}

/// The order was not cancelled: DHMAD was never asked to, and it still awaits payment.
async fn assert_kept(w: &World, order: uuid::Uuid) {
    assert_eq!(w.count_calls("POST", "/cancel").await, 0);
    assert_eq!(w.app.order_json(order).await["status"], "awaiting_payment");
}

/// The payment page of `order` closed two hours ago, and `orders` had no news since.
async fn two_hours_quiet(w: &World, order: uuid::Uuid, orders: &[uuid::Uuid]) {
    sqlx::query!(
        "UPDATE checkout_sessions SET expires_at = now() - interval '2 hours' WHERE order_id = $1",
        order
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    sqlx::query!(
        "UPDATE orders SET updated_at = now() - interval '2 hours' WHERE id = ANY($1)",
        orders
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = "./migrations")]
async fn a_guest_who_paid_and_never_came_back_is_not_abandoned(pool: PgPool) {
    let w = abandoned_after_an_hour(pool).await;
    let s = w.checkout("ai-credits-500", "tabclosed@example.tn").await;
    // The guest pays out of band and closes the tab: no redirect reaches the shop.
    w.control(
        &format!("/sandbox/sessions/{}/complete", s.session_id),
        json!({"payer": "guest", "method": "d17"}),
    )
    .await;
    two_hours_quiet(&w, s.order_id, &[s.order_id]).await;
    // The sweeper marks the page expired without asking DHMAD; the abandoned-order job asks.
    storefront::jobs::sessions::run_once(&w.app.state)
        .await
        .unwrap();
    let n = storefront::jobs::abandoned::run_once(&w.app.state)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["status"], "awaiting_payment", "{o}");
    assert_eq!(o["payment_review"], true, "{o}");
    let escrow = escrow_of(&w, s.order_id).await;
    let at_dhmad = w.app.state.dhmad.get_escrow(&escrow).await.unwrap();
    assert_eq!(at_dhmad.status, dhmad::EscrowStatus::Pending);
    assert_eq!(
        w.count_calls("POST", "/cancel").await,
        0,
        "{:?}",
        w.dhmad_calls().await
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn an_abandoned_order_dhmad_cannot_cancel_is_set_aside_not_retried_every_pass(pool: PgPool) {
    let w = abandoned_after_an_hour(pool).await;
    // An escrow DHMAD does not know (a sandbox restarted since, say).
    let lost = w
        .app
        .seed_order(
            "chechia-red",
            "gone@example.tn",
            "66aa00000000000000000fff",
            time::OffsetDateTime::now_utc(),
        )
        .await;
    two_hours_quiet(&w, lost, &[lost]).await;
    let n = storefront::jobs::abandoned::run_once(&w.app.state)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // Flagged by this pass, or by the world's own first pass if it ran late and held the
    // order's payment claim meanwhile: counted once that pass is over.
    wait_for("the lost escrow flagged", 30, || async {
        let attention: Option<String> =
            sqlx::query_scalar("SELECT attention FROM orders WHERE id = $1")
                .bind(lost)
                .fetch_one(&w.app.pool)
                .await
                .unwrap();
        attention.map(|_| ())
    })
    .await;
    // Only the calls about this escrow: the world's own jobs may call DHMAD meanwhile.
    let about_it = || async {
        let all = w.dhmad_calls().await;
        all.into_iter()
            .filter(|c| c.contains("66aa00000000000000000fff"))
            .count()
    };
    let calls = about_it().await;
    assert!(calls > 0, "DHMAD was asked once");
    // The next passes leave it to the merchant (flagged) instead of asking again each minute.
    for _ in 0..2 {
        storefront::jobs::abandoned::run_once(&w.app.state)
            .await
            .unwrap();
    }
    assert_eq!(about_it().await, calls, "{:?}", w.dhmad_calls().await);
}

#[sqlx::test(migrations = "./migrations")]
async fn an_abandoned_order_is_not_cancelled_when_dhmad_cannot_say_it_was_paid(pool: PgPool) {
    let w = abandoned_after_an_hour(pool).await;
    let s = w.checkout("ai-credits-500", "unsure@example.tn").await;
    two_hours_quiet(&w, s.order_id, &[s.order_id]).await;
    // DHMAD fails the look at the last payment page: not knowing is not "nobody paid".
    w.faults(json!({"api": [{"method": "GET", "path": "/api/v1/sessions/{id}", "fault": "error_500", "times": 20}]}))
        .await;
    let n = storefront::jobs::abandoned::run_once(&w.app.state)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // It did ask, and DHMAD failed: kept for that reason, not for never being looked at.
    let failed_looks = w
        .dhmad_log()
        .await
        .into_iter()
        .filter(|(call, status, _)| call.starts_with("GET /api/v1/sessions/") && *status == 500)
        .count();
    assert!(failed_looks > 0, "{:?}", w.dhmad_calls().await);
    assert_kept(&w, s.order_id).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn a_buyer_whose_escrow_dhmad_lost_reads_no_internal_detail(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let escrow = "66aa00000000000000000ffe";
    let lost = w
        .app
        .seed_order(
            "chechia-red",
            "lostbuyer@example.tn",
            escrow,
            time::OffsetDateTime::now_utc(),
        )
        .await;
    let r = w
        .app
        .post_form(&format!("/orders/{lost}/cancel"), &[])
        .await;
    assert_eq!(r.status(), 502);
    let page = r.text().await.unwrap();
    assert!(page.contains("no longer knows"), "{page}");
    assert!(!page.contains(escrow), "{page}");
    // The merchant is told: the order is flagged, and their own page shows DHMAD's answer.
    let attention: Option<String> =
        sqlx::query_scalar("SELECT attention FROM orders WHERE id = $1")
            .bind(lost)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert!(attention.is_some_and(|a| a.contains(escrow)));
    let r = w
        .admin_form(&format!("/admin/orders/{lost}/cancel"), &[])
        .await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains(escrow));
}

#[sqlx::test(migrations = "./migrations")]
async fn an_abandoned_order_is_cancelled_at_dhmad_after_the_grace_period(pool: PgPool) {
    let w = abandoned_after_an_hour(pool).await;
    let s = w.checkout("chechia-red", "walkedaway@example.tn").await;
    let fresh = w.checkout("chechia-red", "stillthere@example.tn").await;
    two_hours_quiet(&w, s.order_id, &[s.order_id, fresh.order_id]).await;
    abandoned_pass(&w).await;
    w.wait_status(s.order_id, "cancelled").await;
    assert_eq!(w.count_calls("POST", "/cancel").await, 1);
    assert_eq!(
        w.app.order_json(fresh.order_id).await["status"],
        "awaiting_payment"
    );
    let escrow = escrow_of(&w, s.order_id).await;
    assert_eq!(
        w.app
            .state
            .dhmad
            .get_escrow(&escrow)
            .await
            .unwrap()
            .status
            .as_str(),
        "cancelled"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn an_abandoned_order_whose_payment_page_dhmad_lost_is_cancelled(pool: PgPool) {
    let w = abandoned_after_an_hour(pool).await;
    let s = w.checkout("chechia-red", "pagelost@example.tn").await;
    two_hours_quiet(&w, s.order_id, &[s.order_id]).await;
    // DHMAD no longer knows the last payment page, while it keeps the escrow: nothing can be
    // under review on a page that does not exist, so the order is abandoned as any other.
    w.faults(
        json!({"api": [{"method": "GET", "path": "/api/v1/sessions/{id}", "fault": "not_found"}]}),
    )
    .await;
    abandoned_pass(&w).await;
    w.wait_status(s.order_id, "cancelled").await;
    assert_eq!(w.count_calls("POST", "/cancel").await, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_buyer_who_comes_back_while_dhmad_is_asked_keeps_the_order(pool: PgPool) {
    let w = world(pool, |c| {
        c.jobs.abandoned_after = std::time::Duration::from_secs(3600);
        c.dhmad_timeout = std::time::Duration::from_secs(10);
    })
    .await;
    let s = w.checkout("chechia-red", "back@example.tn").await;
    two_hours_quiet(&w, s.order_id, &[s.order_id]).await;
    // DHMAD takes a while to say what became of the last payment page (8 s, under the
    // client's timeout: the buyer's way back to a payment page takes over a second when the
    // machine is busy)…
    w.faults(json!({"api": [{"method": "GET", "path": "/api/v1/sessions/{id}", "fault": "slow", "hang_ms": 8000}]}))
        .await;
    let state = w.app.state.clone();
    let job =
        tokio::spawn(async move { storefront::jobs::abandoned::run_once(&state).await.unwrap() });
    // …and meanwhile the buyer comes back and pays from the order page: a new payment page.
    w.after_the_faults().await;
    let r = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(job.await.unwrap(), 0, "the order is not abandoned any more");
    assert_kept(&w, s.order_id).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn an_order_whose_payment_page_is_being_opened_is_not_cancelled(pool: PgPool) {
    let w = abandoned_after_an_hour(pool).await;
    let s = w.checkout("chechia-red", "opening@example.tn").await;
    two_hours_quiet(&w, s.order_id, &[s.order_id]).await;
    // The buyer is back and pays; DHMAD is slow to open the new page…
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/sessions", "fault": "slow", "hang_ms": 2000}]}))
        .await;
    let (app, path) = (&w.app, format!("/orders/{}/pay", s.order_id));
    let pay = app.post_form(&path, &[]);
    // …and the job runs while it is being opened: the page is not stored yet, but its opening
    // is claimed, so the escrow is not cancelled under it. (Run once the claim is there, not
    // after a guess of how long the pay takes to reach it.)
    let job = async {
        wait_for("the new page's opening to be claimed", 30, || async {
            sqlx::query_scalar::<_, bool>(
                "SELECT true FROM session_openings WHERE order_id = $1 AND claimed_until > now()",
            )
            .bind(s.order_id)
            .fetch_optional(&w.app.pool)
            .await
            .unwrap()
        })
        .await;
        storefront::jobs::abandoned::run_once(&w.app.state)
            .await
            .unwrap()
    };
    let (r, n) = tokio::join!(pay, job);
    assert_eq!(r.status(), 303);
    assert_eq!(n, 0);
    assert_kept(&w, s.order_id).await;
}

/// A standard order is not abandoned while its buyer is on DHMAD's contract page, nor once the
/// buyer signed and the shop's signature is what it waits for.
#[sqlx::test(migrations = "./migrations")]
async fn a_standard_order_in_its_contract_phase_is_not_abandoned(pool: PgPool) {
    let w = abandoned_after_an_hour(pool).await;
    // The contract page is open (its first page is `sign_contract`, no payment page yet).
    let on_page = w.checkout("logo-design", "reading@example.tn").await;
    sqlx::query!(
        "UPDATE orders SET updated_at = now() - interval '2 hours' WHERE id = $1",
        on_page.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    abandoned_pass(&w).await;
    assert_kept(&w, on_page.order_id).await;

    // The buyer signed long ago; the shop has not. (No webhook from the sandbox: its news of
    // the shop's automatic signature would overtake what the test sets.)
    w.faults(json!({"webhooks": {"drop": 1.0}})).await;
    let signed = w.checkout("logo-design", "signed@example.tn").await;
    sqlx::query!(
        "UPDATE orders SET contract_buyer_signed = true, contract_seller_signed = false
          WHERE id = $1",
        signed.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    two_hours_quiet(&w, signed.order_id, &[signed.order_id]).await;
    abandoned_pass(&w).await;
    assert_kept(&w, signed.order_id).await;
}
