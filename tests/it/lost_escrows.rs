//! Escrow creations whose answer was lost (DHMAD has no idempotency keys): the look at DHMAD's
//! list before any retry, far back and without taking up a cancelled escrow or another order's;
//! the sweep for late duplicates, once per period and once across instances; and when a
//! creation in flight counts as over.

use std::time::Duration;

use dhmad::{CreateEscrow, EscrowMode};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::common::{sandbox::*, *};
use storefront::{db, jobs::reconciler, orders::checkout::escrow_title, orders::lost_escrow};

/// Creates at DHMAD, for `buyer`, an escrow whose title names `order` as its own create would
/// (a lost create's, or a late duplicate's); its id.
async fn escrow_naming(w: &World, order: Uuid, buyer: &str) -> String {
    let req = CreateEscrow::new(
        escrow_title("Chéchia, red wool (handmade)", order),
        Decimal::new(45, 0),
        buyer,
    )
    .mode(EscrowMode::Quick)
    .estimated_delivery_days(5);
    w.app
        .state
        .dhmad
        .create_escrow(&req)
        .await
        .unwrap()
        .escrow
        .id
}

/// Puts `order` in `status` with its escrow creation claimed `secs_ago` seconds ago (no escrow
/// recorded), and returns it as a reader sees it then.
async fn claimed(w: &World, order: Uuid, status: &str, secs_ago: i64) -> storefront::orders::Order {
    sqlx::query(
        "UPDATE orders SET status = $2::order_status, escrow_id = NULL,
                escrow_attempted_at = now() - $3::bigint * interval '1 second'
          WHERE id = $1",
    )
    .bind(order)
    .bind(status)
    .bind(secs_ago)
    .execute(&w.app.pool)
    .await
    .unwrap();
    db::orders::get(&w.app.pool, order).await.unwrap().unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn a_lost_create_is_found_far_back_and_a_late_duplicate_is_cancelled(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    // The service's own first pass is over: the test's passes are the only ones.
    w.after_first_reconciler_pass().await;
    let s = w.checkout("chechia-red", "far@example.tn").await;
    let first = w.app.order_json(s.order_id).await["escrow_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The create's answer was lost, and 310 escrows were created since.
    sqlx::query!(
        "UPDATE orders SET status = 'needs_reconciliation', escrow_id = NULL WHERE id = $1",
        s.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    let dhmad = &w.app.state.dhmad;
    for i in 0..310 {
        let req = CreateEscrow::new(format!("other {i}"), Decimal::new(10, 0), "x@example.tn")
            .mode(EscrowMode::Quick)
            .estimated_delivery_days(3);
        dhmad.create_escrow(&req).await.unwrap();
    }
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["escrow_id"], first.as_str(), "{o}");
    assert_eq!(o["status"], "awaiting_payment");

    // A second create for the order lands later: it is found and cancelled.
    let late = escrow_naming(&w, s.order_id, "far@example.tn").await;
    let report = reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(report.duplicates_cancelled, 1, "{report:?}");
    assert_eq!(
        dhmad.get_escrow(&late).await.unwrap().status.as_str(),
        "cancelled"
    );
    assert_eq!(
        dhmad.get_escrow(&first).await.unwrap().status.as_str(),
        "pending"
    );
    assert!(timeline(&w.app.pool, s.order_id)
        .await
        .iter()
        .any(|l| l.contains("Duplicate DHMAD escrow")));
}

/// Two creates of one order lost their answers, a few minutes apart: the first's escrow was
/// swept as a duplicate (cancelled) in between. The second look finds both: the order goes on
/// with the live one, not the cancelled one (which would cancel the order, then the live
/// escrow as its duplicate).
#[sqlx::test(migrations = "./migrations")]
async fn a_lost_create_does_not_take_up_an_escrow_already_cancelled(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    // The service's own first pass is over: the test's passes are the only ones.
    w.after_first_reconciler_pass().await;
    let s = w.checkout("chechia-red", "twice@example.tn").await;
    let o = w.app.order_json(s.order_id).await;
    let swept = o["escrow_id"].as_str().unwrap().to_owned();
    sqlx::query!(
        "UPDATE orders SET status = 'needs_reconciliation', escrow_id = NULL,
                escrow_attempted_at = now() WHERE id = $1",
        s.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    let dhmad = &w.app.state.dhmad;
    dhmad.cancel_escrow(&swept).await.unwrap();
    let live = escrow_naming(&w, s.order_id, "twice@example.tn").await;
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["escrow_id"], live.as_str(), "{o}");
    assert_eq!(o["status"], "awaiting_payment", "{o}");
    assert_eq!(
        dhmad.get_escrow(&live).await.unwrap().status.as_str(),
        "pending"
    );
}

/// Titles carry an order's short reference (32 bits), which another order can share. The
/// sweep for late duplicates of a reconciled order leaves alone another order's escrow, be it
/// recorded (same buyer, so only the record tells) or not yet (another buyer).
#[sqlx::test(migrations = "./migrations")]
async fn the_duplicate_sweep_spares_another_orders_escrow_with_the_same_reference(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    // The service's own first pass is over: the test's passes are the only ones.
    w.after_first_reconciler_pass().await;
    let s = w.checkout("chechia-red", "same@example.tn").await;
    sqlx::query!(
        "INSERT INTO order_events (order_id, kind, detail)
         VALUES ($1, 'escrow_reconciled', 'test: a create was reconciled')",
        s.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    let dhmad = &w.app.state.dhmad;
    // Escrows whose titles name the reconciled order's reference, as another order's would.
    let recorded = escrow_naming(&w, s.order_id, "same@example.tn").await;
    w.app
        .seed_order(
            "pottery-nabeul",
            "same@example.tn",
            &recorded,
            OffsetDateTime::now_utc(),
        )
        .await;
    let others = escrow_naming(&w, s.order_id, "other@example.tn").await;
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    for id in [&recorded, &others] {
        assert_eq!(
            dhmad.get_escrow(id).await.unwrap().status.as_str(),
            "pending",
            "{id}"
        );
    }
    assert!(!timeline(&w.app.pool, s.order_id)
        .await
        .iter()
        .any(|l| l.contains("Duplicate DHMAD escrow")));
}

/// A reconciliation lists DHMAD, finds nothing, and is slow to write it down: meanwhile another
/// look resolved the order, the buyer's retry claimed a new creation and its answer was lost
/// too. The slow look's "nothing found" is about the older attempt: it must not call the newer
/// one safe to retry, or the next retry makes a second live escrow.
#[sqlx::test(migrations = "./migrations")]
async fn a_slow_look_does_not_resolve_a_newer_creation(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    // The app's own first pass would be a third look, with what it reads then.
    w.after_first_reconciler_pass().await;
    // An order whose create went unanswered ten minutes ago; DHMAD has no escrow for it.
    let order = w
        .app
        .insert_order("chechia-red", "slow-look@example.tn", None)
        .await;
    // What the slow look read before it listed DHMAD.
    let seen = claimed(&w, order.id, "needs_reconciliation", 600).await;
    // Meanwhile: resolved by another look, claimed again by the buyer's retry, answer lost.
    claimed(&w, order.id, "needs_reconciliation", 0).await;
    lost_escrow::reconcile_creation(&w.app.state, &seen)
        .await
        .unwrap();
    let o = w.app.order_json(order.id).await;
    assert_eq!(o["status"], "needs_reconciliation", "{o}");

    // The newer attempt's own look, with what it read, resolves it.
    let now = db::orders::get(&w.app.pool, order.id)
        .await
        .unwrap()
        .unwrap();
    lost_escrow::reconcile_creation(&w.app.state, &now)
        .await
        .unwrap();
    assert_eq!(w.app.order_json(order.id).await["status"], "escrow_failed");
}

/// A creation reconciled two hours ago is still watched for a late duplicate, but DHMAD's list
/// is paged once per half hour for all instances, not on every pass of every instance (it was
/// every minute for a day after a single timeout, a whole day of pending escrows each time).
#[sqlx::test(migrations = "./migrations")]
async fn an_old_reconciliation_is_swept_once_per_period(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.after_first_reconciler_pass().await;
    let s = w
        .checkout("chechia-red", "old-reconciliation@example.tn")
        .await;
    sqlx::query(
        "WITH o AS (UPDATE orders SET created_at = now() - interval '2 hours' WHERE id = $1)
         INSERT INTO order_events (order_id, kind, detail, created_at)
         VALUES ($1, 'escrow_reconciled', 'found after an unanswered request',
                 now() - interval '2 hours')",
    )
    .bind(s.order_id)
    .execute(&w.app.pool)
    .await
    .unwrap();
    // A late second create for the order.
    let dhmad = &w.app.state.dhmad;
    let late = escrow_naming(&w, s.order_id, "old-reconciliation@example.tn").await;
    let lists = || async { w.count_calls("GET", "/escrows").await };
    let before = lists().await;
    let report = reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(report.duplicates_cancelled, 1, "{report:?}");
    assert_eq!(
        dhmad.get_escrow(&late).await.unwrap().status.as_str(),
        "cancelled"
    );
    let after_first = lists().await;
    assert!(after_first > before, "the first pass listed DHMAD");
    for _ in 0..3 {
        reconciler::run_once(&w.app.state, Duration::from_secs(600))
            .await
            .unwrap();
    }
    assert_eq!(lists().await, after_first, "no pass listed DHMAD again");
}

/// A creation in flight for too long is marked "in doubt" only if it is still the claim its
/// marker saw: a reconciler's list can be older than the buyer's new claim, and marking that
/// live claim let a look at DHMAD, made before its create landed, call it safe to retry (a
/// second escrow).
#[sqlx::test(migrations = "./migrations")]
async fn only_the_creation_seen_in_flight_is_marked_in_doubt(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    // The service's own first pass would mark the claims below too.
    w.after_first_reconciler_pass().await;
    let order = w
        .app
        .insert_order("chechia-red", "in-flight@example.tn", None)
        .await;
    let listed = claimed(&w, order.id, "creating_escrow", 3600).await;
    // Claimed again since it was listed (a minute ago: over too, by then).
    claimed(&w, order.id, "creating_escrow", 60).await;
    let reason = "escrow creation was interrupted; checking DHMAD";
    let marked = db::orders::mark_unknown_if_in_flight(
        &w.app.pool,
        order.id,
        listed.escrow_attempted_at,
        reason,
        time::Duration::seconds(10),
    )
    .await
    .unwrap();
    assert!(!marked);
    assert_eq!(
        w.app.order_json(order.id).await["status"],
        "creating_escrow"
    );
    // The claim it saw is marked.
    let now = db::orders::get(&w.app.pool, order.id)
        .await
        .unwrap()
        .unwrap();
    assert!(db::orders::mark_unknown_if_in_flight(
        &w.app.pool,
        order.id,
        now.escrow_attempted_at,
        reason,
        time::Duration::seconds(10),
    )
    .await
    .unwrap());
    assert_eq!(
        w.app.order_json(order.id).await["status"],
        "needs_reconciliation"
    );
}

/// A creation the database stamped less than the in-flight limit ago is not marked in doubt,
/// whatever its marker judged: a buyer's retry judges by its instance's clock, and one running
/// ahead of the database's took live creations over (a look before their escrow landed then
/// called them not made, and a retry made a second escrow).
#[sqlx::test(migrations = "./migrations")]
async fn a_live_creation_is_not_marked_in_doubt_by_a_clock_ahead(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    // The service's own first pass would mark the old claim below too.
    w.after_first_reconciler_pass().await;
    let order = w
        .app
        .insert_order("chechia-red", "skewed@example.tn", None)
        .await;
    // Claimed 8 s ago by the database's clock; an instance 10 s ahead sees 18 s, past 15.
    let live = claimed(&w, order.id, "creating_escrow", 8).await;
    let reason = "escrow creation was interrupted; checking DHMAD";
    let mark = |claim| {
        db::orders::mark_unknown_if_in_flight(
            &w.app.pool,
            order.id,
            claim,
            reason,
            time::Duration::seconds(15),
        )
    };
    assert!(!mark(live.escrow_attempted_at).await.unwrap());
    assert_eq!(
        w.app.order_json(order.id).await["status"],
        "creating_escrow"
    );
    // Over by the database's clock too: marked.
    let old = claimed(&w, order.id, "creating_escrow", 16).await;
    assert!(mark(old.escrow_attempted_at).await.unwrap());
    assert_eq!(
        w.app.order_json(order.id).await["status"],
        "needs_reconciliation"
    );
}

/// A creation is not taken for over while it may still be running: a standard escrow DHMAD
/// refuses `autoSign` for is asked twice, each call up to the client's timeout. Judged over
/// one second after two timeouts (the limit before), with no room for the work around the
/// calls on a loaded host or a clock a little ahead, such a creation was looked up at DHMAD
/// before its escrow existed, called safe to retry, and made twice.
#[sqlx::test(migrations = "./migrations")]
async fn a_creation_within_its_slowest_time_is_not_taken_for_over(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    // The service's own first pass is over: the test's passes are the only ones.
    w.after_first_reconciler_pass().await;
    let order = w
        .app
        .insert_order("logo-design", "slow-create@example.tn", None)
        .await;
    // Two timeouts and two seconds ago (the test's client timeout is 3 s): past the old limit,
    // three seconds inside the new one.
    let timeout = w.app.state.config.dhmad_timeout.as_secs() as i64;
    claimed(&w, order.id, "creating_escrow", 2 * timeout + 2).await;
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        w.app.order_json(order.id).await["status"],
        "creating_escrow"
    );
    assert_eq!(
        w.count_calls("GET", "/api/v1/escrows").await,
        0,
        "no look at DHMAD yet"
    );
}

/// A lost create's look at DHMAD does not take up an escrow another order holds (the same
/// buyer, a title whose 32-bit reference the two orders share): it would fail on the unique
/// escrow id at every pass, the order never resolved.
#[sqlx::test(migrations = "./migrations")]
async fn a_lost_create_does_not_take_up_another_orders_escrow(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    // The service's own first pass is over: the test's passes are the only ones.
    w.after_first_reconciler_pass().await;
    let order = w
        .app
        .insert_order("chechia-red", "namesake@example.tn", None)
        .await;
    let theirs = escrow_naming(&w, order.id, "namesake@example.tn").await;
    w.app
        .seed_order(
            "pottery-nabeul",
            "namesake@example.tn",
            &theirs,
            OffsetDateTime::now_utc(),
        )
        .await;
    claimed(&w, order.id, "needs_reconciliation", 0).await;
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    let o = w.app.order_json(order.id).await;
    assert_eq!(o["status"], "escrow_failed", "{o}");
    assert!(o["escrow_id"].is_null(), "{o}");
}

/// Every instance sweeps for late duplicates in the first hour after a reconciliation: one of
/// them cancels a duplicate, where each used to send its own `POST /cancel` (the others refused
/// by DHMAD, and logged as failures).
#[sqlx::test(migrations = "./migrations")]
async fn two_instances_cancel_a_late_duplicate_once(pool: PgPool) {
    // DHMAD's calls may take 10 s, so that a cancel can be held while the other instance lists.
    let w = world(pool.clone(), |c| c.dhmad_timeout = Duration::from_secs(10)).await;
    let mut cfg = config(&w.sb.api_base(), w.sb.api_key(), w.sb.webhook_secret());
    cfg.dhmad_timeout = Duration::from_secs(10);
    let second = spawn(pool, cfg).await;
    after_first_reconciler_pass(&[&w.app, &second]).await;
    let s = w.checkout("chechia-red", "twice-swept@example.tn").await;
    sqlx::query!(
        "INSERT INTO order_events (order_id, kind, detail)
         VALUES ($1, 'escrow_reconciled', 'test: a create was reconciled')",
        s.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    let late = escrow_naming(&w, s.order_id, "twice-swept@example.tn").await;
    // Both instances list DHMAD before either cancel is served (one instance may lag the
    // other by over a second on a busy machine).
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/cancel", "fault": "delay", "hang_ms": 6000}]}))
        .await;
    let (a, b) = tokio::join!(
        reconciler::run_once(&w.app.state, Duration::from_secs(600)),
        reconciler::run_once(&second.state, Duration::from_secs(600)),
    );
    // Both saw it; one cancelled it (the report counts cancels, not sightings).
    assert_eq!(
        a.unwrap().duplicates_cancelled + b.unwrap().duplicates_cancelled,
        1
    );
    assert_eq!(w.count_calls("POST", "/cancel").await, 1);
    let e = w.app.state.dhmad.get_escrow(&late).await.unwrap();
    assert_eq!(e.status.as_str(), "cancelled");
}

/// A creation in doubt whose look at DHMAD fails waits its backoff like any other order:
/// before, a list that kept failing was asked again at every pass, first, for every such order,
/// and the orders waiting for missed news came after it.
#[sqlx::test(migrations = "./migrations")]
async fn a_failing_look_at_a_creation_in_doubt_backs_off(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.after_first_reconciler_pass().await;
    let order = w
        .app
        .insert_order("chechia-red", "in-doubt@example.tn", None)
        .await;
    claimed(&w, order.id, "needs_reconciliation", 600).await;
    w.faults(json!({"api": [{"method": "GET", "path": "/api/v1/escrows", "fault": "error_500", "times": 1000}]}))
        .await;
    let first = reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(first.failed, 1, "{first:?}");
    let looks = w.count_calls("GET", "/api/v1/escrows").await;
    assert!(looks > 0, "the list was asked");

    let second = reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(second.failed, 0, "{second:?}");
    assert_eq!(
        w.count_calls("GET", "/api/v1/escrows").await,
        looks,
        "no second look within its backoff"
    );
    assert_eq!(
        w.app.order_json(order.id).await["status"],
        "needs_reconciliation"
    );

    // The buyer's retry resolves it once DHMAD answers again: the new escrow's order is looked
    // at like any other, not after the old backoff (its payment page within the minute).
    w.faults(json!({})).await;
    let order = db::orders::get(&w.app.pool, order.id)
        .await
        .unwrap()
        .unwrap();
    storefront::orders::checkout::resume(&w.app.state, order.clone())
        .await
        .unwrap();
    let row: (String, i32, Option<OffsetDateTime>) = sqlx::query_as(
        "SELECT status::text, sync_failures, next_sync_at FROM orders WHERE id = $1",
    )
    .bind(order.id)
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(row, ("awaiting_payment".to_owned(), 0, None));
}

/// Opens a payment page on `escrow` (DHMAD's own notice to the buyer of an escrow made for
/// them leads there too) and pays it.
async fn pay(w: &World, escrow: &str, buyer: &str) {
    on_dhmads_page(w, escrow, dhmad::CheckoutAction::AcceptPay, buyer).await;
}

/// The buyer takes `action` on a page of DHMAD's opened straight on `escrow`, not through the
/// shop.
async fn on_dhmads_page(w: &World, escrow: &str, action: dhmad::CheckoutAction, buyer: &str) {
    let callback = format!("http://localhost:{}/checkout/callback", w.app.port);
    let page = w
        .app
        .state
        .dhmad
        .create_session(
            escrow,
            &dhmad::CreateSession::new(action, buyer.to_owned(), callback),
        )
        .await
        .unwrap();
    w.complete(&page.session_id).await;
}

/// Two creates of one order both landed, and the buyer paid the newer (from DHMAD's notice of
/// it): the look took the oldest, whose payment never comes, and left the paid one alone, its
/// money belonging to no order. The order now follows the payment; a duplicate paid after the
/// look is flagged for the merchant, who alone can settle it.
#[sqlx::test(migrations = "./migrations")]
async fn a_duplicate_the_buyer_paid_is_followed_or_flagged(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.after_first_reconciler_pass().await;
    const BUYER: &str = "paid-twice@example.tn";
    let order = w.app.insert_order("chechia-red", BUYER, None).await;
    claimed(&w, order.id, "needs_reconciliation", 600).await;
    let older = escrow_naming(&w, order.id, BUYER).await;
    let paid = escrow_naming(&w, order.id, BUYER).await;
    pay(&w, &paid, BUYER).await;
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    let o = w.app.order_json(order.id).await;
    assert_eq!(o["escrow_id"], paid.as_str(), "{o}");
    assert_eq!(o["status"], "paid", "{o}");
    let dhmad = &w.app.state.dhmad;
    assert_eq!(
        dhmad.get_escrow(&older).await.unwrap().status.as_str(),
        "cancelled"
    );

    // A third create landed after the look, and was paid before a sweep came.
    let third = escrow_naming(&w, order.id, BUYER).await;
    pay(&w, &third, BUYER).await;
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    let attention = || async {
        sqlx::query_scalar!("SELECT attention FROM orders WHERE id = $1", order.id)
            .fetch_one(&w.app.pool)
            .await
            .unwrap()
            .unwrap_or_default()
    };
    assert!(attention().await.contains(&third), "{}", attention().await);
    let lines = timeline(&w.app.pool, order.id).await;
    let flagged = |l: &&String| l.contains("a second one for this order") && l.contains(&third);
    assert_eq!(lines.iter().filter(flagged).count(), 1, "{lines:?}");
    // The merchant's "Reconcile" lifts it: the next sweep that finds the duplicate still paid
    // raises it again, and says it once only.
    let reconcile = format!("/admin/orders/{}/reconcile", order.id);
    let shown = attention().await;
    let clicked = w.admin_form(&reconcile, &[("flag", &shown)]).await;
    assert_eq!(clicked.status(), 303);
    assert_eq!(attention().await, "");
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    assert!(attention().await.contains(&third), "{}", attention().await);
    let lines = timeline(&w.app.pool, order.id).await;
    assert_eq!(lines.iter().filter(flagged).count(), 1, "{lines:?}");
}

/// Any DHMAD user can create an escrow naming the merchant as seller, with any title: one
/// titled as a lost order's, for its buyer, but for 5 TND in quick mode and paid, was taken up
/// before the shop's own (paid ones first), and the instant order handed over its code for it.
/// Only an escrow with the order's amount, currency and mode is the order's; the duplicate
/// sweep, which fulfils nothing, flags the paid one for the merchant.
#[sqlx::test(migrations = "./migrations")]
async fn a_lost_create_does_not_take_up_a_paid_escrow_with_other_terms(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.after_first_reconciler_pass().await;
    const BUYER: &str = "lookalike@example.tn";
    let s = w.checkout("ai-credits-500", BUYER).await;
    let before = w.app.order_json(s.order_id).await;
    let own = before["escrow_id"].as_str().unwrap().to_owned();
    claimed(&w, s.order_id, "needs_reconciliation", 600).await;
    let req = CreateEscrow::new(
        escrow_title("AI credits — 500", s.order_id),
        Decimal::new(5, 0),
        BUYER,
    )
    .mode(EscrowMode::Quick)
    .estimated_delivery_days(1);
    let cheap = w
        .app
        .state
        .dhmad
        .create_escrow(&req)
        .await
        .unwrap()
        .escrow
        .id;
    pay(&w, &cheap, BUYER).await;
    // The look, then a pass whose sweep finds the paid lookalike again.
    for _ in 0..2 {
        reconciler::run_once(&w.app.state, Duration::from_secs(600))
            .await
            .unwrap();
    }
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["escrow_id"], own.as_str(), "{o}");
    assert_eq!(o["status"], "awaiting_payment", "{o}");
    assert_eq!(o["digital_code"], json!(null), "{o}");
    assert_eq!(o["amount"], before["amount"], "{o}");
    // The sweep flags it for the merchant: money paid into an escrow naming the order.
    let attention = sqlx::query_scalar!("SELECT attention FROM orders WHERE id = $1", s.order_id)
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(attention.contains(&cheap), "{attention}");
    let dhmad = &w.app.state.dhmad;
    assert_eq!(
        dhmad.get_escrow(&own).await.unwrap().status.as_str(),
        "pending"
    );
    assert_eq!(
        dhmad.get_escrow(&cheap).await.unwrap().status.as_str(),
        "paid"
    );
}

/// An escrow the buyer paid while the order's own creation is still in doubt may be the
/// order's own payment: the sweep leaves it to the order's look, not flags it "to refund".
#[sqlx::test(migrations = "./migrations")]
async fn a_paid_escrow_of_an_order_still_in_doubt_is_not_flagged(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.after_first_reconciler_pass().await;
    const BUYER: &str = "in-doubt@example.tn";
    let order = w.app.insert_order("chechia-red", BUYER, None).await;
    claimed(&w, order.id, "needs_reconciliation", 600).await;
    // A first look found nothing: the order is watched for late duplicates.
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(w.app.order_json(order.id).await["status"], "escrow_failed");
    // A retry's create lost its answer too, and its look waits out a backoff; DHMAD made the
    // escrow, and the buyer paid it from DHMAD's notice.
    claimed(&w, order.id, "needs_reconciliation", 600).await;
    sqlx::query!(
        "UPDATE orders SET next_sync_at = now() + interval '1 hour' WHERE id = $1",
        order.id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    let own = escrow_naming(&w, order.id, BUYER).await;
    pay(&w, &own, BUYER).await;
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    let attention = sqlx::query_scalar!("SELECT attention FROM orders WHERE id = $1", order.id)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(attention, None);
    let lines = timeline(&w.app.pool, order.id).await;
    assert!(!lines.iter().any(|l| l.contains(&own)), "{lines:?}");
}

/// Each look for a lost escrow reads DHMAD's list from the buyers' side of the budget: a
/// buyer clicking "pay" again and again on an order whose creation is in doubt looks once in
/// a while, not at every click (one buyer refreshing could spend most of DHMAD's window).
#[sqlx::test(migrations = "./migrations")]
async fn a_buyers_clicks_look_for_a_lost_escrow_once_in_a_while(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    // The service's own first pass is over: the test's passes are the only ones.
    w.after_first_reconciler_pass().await;
    let order = w
        .app
        .insert_order("chechia-red", "clicks@example.tn", None)
        .await;
    let order = claimed(&w, order.id, "needs_reconciliation", 1).await;
    // DHMAD may still be making it: not found is "still looking", not "safe to retry".
    sqlx::query("UPDATE orders SET creation_settles_at = now() + interval '1 hour' WHERE id = $1")
        .bind(order.id)
        .execute(&w.app.pool)
        .await
        .unwrap();
    for _ in 0..3 {
        let r = w
            .app
            .post_form(&format!("/orders/{}/pay", order.id), &[])
            .await;
        assert_eq!(r.status(), 409);
        let page = r.text().await.unwrap();
        assert!(
            page.contains("still checking with the payment provider"),
            "{page}"
        );
    }
    let lists = w
        .dhmad_calls()
        .await
        .iter()
        .filter(|c| *c == "GET /api/v1/escrows")
        .count();
    assert_eq!(lists, 1, "{:?}", w.dhmad_calls().await);
    // The reconciler looks when its turn comes, whatever the buyer's clicks.
    lost_escrow::reconcile_creation(&w.app.state, &order)
        .await
        .unwrap_err();
    assert_eq!(w.count_calls("GET", "/api/v1/escrows").await, 2);
}

/// The buyer paid the escrow of a creation whose answer was lost, then asked to cancel on
/// DHMAD's page: both events came while the order did not know its escrow, stored unmatched
/// and answered 200, so DHMAD will not send them again. Once the look takes the escrow up,
/// they are applied: the list's snapshot tells the payment, but only the event tells the
/// request, which was lost, and the merchant shipped over it.
#[sqlx::test(migrations = "./migrations")]
async fn events_that_came_before_a_lost_escrow_was_found_are_applied(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.after_first_reconciler_pass().await;
    const BUYER: &str = "early-news@example.tn";
    let order = w.app.insert_order("chechia-red", BUYER, None).await;
    let order = claimed(&w, order.id, "needs_reconciliation", 600).await;
    let escrow = escrow_naming(&w, order.id, BUYER).await;
    pay(&w, &escrow, BUYER).await;
    on_dhmads_page(
        &w,
        &escrow,
        dhmad::CheckoutAction::RequestCancellation,
        BUYER,
    )
    .await;
    let unmatched = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM webhook_inbox WHERE escrow_id = $1 AND outcome = 'unmatched'",
        )
        .bind(&escrow)
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
    };
    wait_for("the request's event stored unmatched", 30, || async {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT event_type FROM webhook_inbox WHERE escrow_id = $1 AND outcome = 'unmatched'",
        )
        .bind(&escrow)
        .fetch_all(&w.app.pool)
        .await
        .unwrap();
        rows.iter()
            .any(|t| t == "escrow.cancellation.requested")
            .then_some(())
    })
    .await;
    lost_escrow::reconcile_creation(&w.app.state, &order)
        .await
        .unwrap();
    let o = w.app.order_json(order.id).await;
    assert_eq!(o["escrow_id"], escrow.as_str(), "{o}");
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(o["cancellation"], "requested", "{o}");
    assert_eq!(unmatched().await, 0);
    let ship = format!("/admin/orders/{}/ship", order.id);
    assert_eq!(
        w.admin_post(&ship).await.status(),
        409,
        "shipped over the request"
    );
}

/// An order awaiting the payment of `escrow_id`, and that payment's event stored as unmatched,
/// received at `received` (as one that came before the order knew its escrow): the order's id
/// and the event's.
async fn with_an_unmatched_payment(
    app: &TestApp,
    email: &str,
    escrow_id: &str,
    received: OffsetDateTime,
) -> (Uuid, String) {
    let order = app
        .seed_order(
            "ai-credits-500",
            email,
            escrow_id,
            received - time::Duration::minutes(5),
        )
        .await;
    let paid = status_event(escrow(escrow_id, "paid", "pending", "instant", received));
    sqlx::query(
        "INSERT INTO webhook_inbox (event_id, event_type, escrow_id, outcome, payload, received_at)
         VALUES ($1, 'escrow.status.updated', $2, 'unmatched', $3, $4)",
    )
    .bind(&paid.id)
    .bind(escrow_id)
    .bind(serde_json::to_value(&paid).unwrap())
    .bind(received)
    .execute(&app.pool)
    .await
    .unwrap();
    (order, paid.id)
}

/// An event stored as unmatched whose escrow an order holds by now, which the look did not
/// reach (it came as the escrow was taken up, or its reprocessing failed): the housekeeping
/// pass applies it.
#[sqlx::test(migrations = "./migrations")]
async fn an_unmatched_event_whose_escrow_is_held_now_is_applied_by_housekeeping(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let (order, paid) = with_an_unmatched_payment(
        &app,
        "held-later@example.tn",
        "66aa000000000000000000e7",
        OffsetDateTime::now_utc(),
    )
    .await;
    storefront::jobs::housekeeping::run_once(&app.state)
        .await
        .unwrap();
    let (outcome, order_id): (String, Option<Uuid>) =
        sqlx::query_as("SELECT outcome, order_id FROM webhook_inbox WHERE event_id = $1")
            .bind(&paid)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((outcome.as_str(), order_id), ("processed", Some(order)));
    assert_eq!(app.order_json(order).await["status"], "paid");
}

/// An event whose reprocessing failed on something passing (the order's lock held past its
/// timeout) is tried again by the housekeeping pass once `FAILED_RETRY_AFTER` has passed, not
/// at every pass before: it used to stay `failed` until the merchant's click, its news (a
/// buyer's cancellation request) lost meanwhile.
#[sqlx::test(migrations = "./migrations")]
async fn an_event_whose_reprocessing_failed_is_tried_again_by_housekeeping(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let escrow_id = "66aa000000000000000000e8";
    let (order, paid) = with_an_unmatched_payment(
        &app,
        "failed-once@example.tn",
        escrow_id,
        OffsetDateTime::now_utc(),
    )
    .await;
    let outcome = || async {
        sqlx::query_as::<_, (String, Option<Uuid>)>(
            "SELECT outcome, order_id FROM webhook_inbox WHERE event_id = $1",
        )
        .bind(&paid)
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };

    // The escrow is taken up while a request holds the order: its lock times out.
    let held = holding_the_order(&app.pool, order).await;
    let applied = storefront::orders::reprocess::reprocess_escrow(&app.state.pool, escrow_id).await;
    assert_eq!(applied, 0);
    assert_eq!(outcome().await.0, "failed");
    drop(held);

    // Not tried again at once (a failure that lasts is not tried at every pass)...
    storefront::jobs::housekeeping::run_once(&app.state)
        .await
        .unwrap();
    assert_eq!(outcome().await.0, "failed");
    assert_eq!(app.order_json(order).await["status"], "awaiting_payment");

    // ...but once the wait is over.
    sqlx::query(
        "UPDATE webhook_inbox SET reprocessed_at = now() - $2::bigint * interval '1 second'
          WHERE event_id = $1",
    )
    .bind(&paid)
    .bind(storefront::orders::reprocess::FAILED_RETRY_AFTER.whole_seconds() + 1)
    .execute(&app.pool)
    .await
    .unwrap();
    storefront::jobs::housekeeping::run_once(&app.state)
        .await
        .unwrap();
    assert_eq!(outcome().await, ("processed".to_owned(), Some(order)));
    assert_eq!(app.order_json(order).await["status"], "paid");
}

/// The housekeeping pass looks back a day (`HELD_LOOK_BACK`): the inbox keeps every event, and
/// those of escrows sold outside the shop stay unmatched for good, so a pass over all of them
/// every minute would grow with the shop's age. An older one is the merchant's to reprocess.
#[sqlx::test(migrations = "./migrations")]
async fn housekeeping_leaves_events_older_than_its_look_back_to_the_merchant(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let received = OffsetDateTime::now_utc()
        - storefront::orders::reprocess::HELD_LOOK_BACK
        - time::Duration::minutes(1);
    let (order, paid) = with_an_unmatched_payment(
        &app,
        "long-ago@example.tn",
        "66aa000000000000000000ea",
        received,
    )
    .await;
    storefront::jobs::housekeeping::run_once(&app.state)
        .await
        .unwrap();
    let outcome = || async {
        sqlx::query_scalar::<_, String>("SELECT outcome FROM webhook_inbox WHERE event_id = $1")
            .bind(&paid)
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    assert_eq!(outcome().await, "unmatched");
    let (batch, _) = storefront::orders::reprocess::reprocess_unmatched(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(batch.processed, 1);
    assert_eq!(outcome().await, "processed");
    assert_eq!(app.order_json(order).await["status"], "paid");
}
