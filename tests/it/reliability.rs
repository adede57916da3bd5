//! Faults that used to lose a paid order or stall recovery, each reproduced: a locked row, a
//! reconciler batch DHMAD keeps failing on, a deliver that gave up, a lost create answer far
//! back in DHMAD's list and its late duplicate, `completed` before `paid`, and a missed webhook
//! while the buyer is paying.

use std::time::{Duration, Instant};

use dhmad::{CreateEscrow, EscrowMode};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::common::{sandbox::*, *};
use storefront::{db, jobs::reconciler, orders::checkout::escrow_title, orders::lost_escrow};

fn hex_id(n: usize) -> String {
    format!("66dd{n:020x}")
}

/// Waits until the app's own first reconciler pass (every job runs once at start) is over,
/// so that a test's own pass is the only one looking.
async fn after_first_reconciler_pass(w: &World) {
    let app = &w.app;
    wait_for("the first reconciler pass", 15, || async move {
        let text = app.get("/metrics").await.text().await.unwrap();
        text.contains("storefront_reconciler_runs_total{")
            .then_some(())
    })
    .await;
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
async fn locked_orders_get_a_fast_503_and_leave_the_rest_working(pool: PgPool) {
    let app = spawn_offline(pool.clone()).await;
    let t0 = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let mut locked = Vec::new();
    // The test's pool has 5 connections (the service's own has 20): four deliveries stuck on
    // locked rows at once leave one for everything else.
    for i in 0..4 {
        let escrow_id = hex_id(i);
        app.seed_order(
            "ai-credits-500",
            &format!("l{i}@example.tn"),
            &escrow_id,
            t0,
        )
        .await;
        locked.push(escrow_id);
    }
    let free = hex_id(99);
    let free_id = app
        .seed_order("ai-credits-500", "free@example.tn", &free, t0)
        .await;
    // Another transaction holds the four rows (a stuck request, an operator's psql…).
    let mut holder = pool.begin().await.unwrap();
    sqlx::query!(
        "SELECT id FROM orders WHERE escrow_id = ANY($1) FOR UPDATE",
        &locked[..]
    )
    .fetch_all(&mut *holder)
    .await
    .unwrap();

    let blocked: Vec<_> = locked
        .iter()
        .map(|id| {
            let d = sign(&status_event(escrow(
                id,
                "paid",
                "pending",
                "instant",
                OffsetDateTime::now_utc(),
            )));
            let (http, url) = (app.http.clone(), app.url("/webhooks/dhmad"));
            tokio::spawn(async move {
                let sent = Instant::now();
                let mut req = http.post(url).body(d.body.clone());
                for (k, v) in d.headers() {
                    req = req.header(k, v);
                }
                let status = req.send().await.unwrap().status().as_u16();
                (status, sent.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = sign(&status_event(escrow(
        &free,
        "paid",
        "pending",
        "instant",
        OffsetDateTime::now_utc(),
    )));
    let unrelated_status = app.deliver(&d).await.status().as_u16();
    let ready = app.get("/readyz").await.status().as_u16();
    let mut answers = Vec::new();
    for h in blocked {
        answers.push(h.await.unwrap());
    }
    // DHMAD gives up on a delivery after 10 s: each answer must come before, and be a 5xx so
    // that DHMAD retries.
    assert!(
        answers
            .iter()
            .all(|(s, took)| *s == 503 && *took < Duration::from_secs(10)),
        "{answers:?}"
    );
    assert_eq!((unrelated_status, ready), (200, 200));
    assert_eq!(order_status(&app.pool, free_id).await, "paid");
    holder.rollback().await.unwrap();
    // DHMAD's retry, once the lock is gone, applies.
    let d = sign(&status_event(escrow(
        &locked[0],
        "paid",
        "pending",
        "instant",
        OffsetDateTime::now_utc(),
    )));
    assert_eq!(app.deliver(&d).await.status(), 200);
}

#[sqlx::test(migrations = "./migrations")]
async fn escrows_dhmad_does_not_know_are_flagged_and_do_not_starve_the_others(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let old = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let mut unknown = Vec::new();
    for i in 0..25 {
        let id = w
            .app
            .seed_order(
                "chechia-red",
                &format!("gone{i}@example.tn"),
                &hex_id(i),
                old,
            )
            .await;
        unknown.push(id);
    }
    // Five real orders are paid while every webhook is lost.
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    let mut real = Vec::new();
    for i in 0..5 {
        let s = w
            .checkout("chechia-red", &format!("real{i}@example.tn"))
            .await;
        w.complete(&s.session_id).await;
        real.push(s.order_id);
    }
    sqlx::query!("UPDATE orders SET last_synced_at = now() - interval '1 hour'")
        .execute(&w.app.pool)
        .await
        .unwrap();
    for _ in 0..3 {
        reconciler::run_once(&w.app.state, Duration::from_secs(600))
            .await
            .unwrap();
    }
    for id in &real {
        assert_eq!(order_status(&w.app.pool, *id).await, "paid", "{id}");
    }
    let flagged = sqlx::query_scalar!(
        "SELECT count(*) FROM orders WHERE attention LIKE 'DHMAD does not know escrow%'"
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(flagged, Some(25));
    // Flagged orders are not asked about again: only the five real ones are looked at.
    let report = reconciler::run_once(&w.app.state, Duration::from_secs(0))
        .await
        .unwrap();
    assert_eq!((report.checked, report.flagged), (5, 0), "{report:?}");
}

#[sqlx::test(migrations = "./migrations")]
async fn an_order_dhmad_keeps_failing_on_backs_off(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "flaky@example.tn").await;
    sqlx::query!("UPDATE orders SET last_synced_at = now() - interval '1 hour'")
        .execute(&w.app.pool)
        .await
        .unwrap();
    w.faults(json!({"api": [{"method": "GET", "path": "/api/v1/escrows/{id}", "fault": "error_500", "times": 10}]}))
        .await;
    let report = reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(report.failed, 1);
    let row = sqlx::query!(
        "SELECT sync_failures, next_sync_at > now() AS \"waiting!\" FROM orders WHERE id = $1",
        s.order_id
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!((row.sync_failures, row.waiting), (1, true));
    // While it waits, the next pass does not ask again.
    let report = reconciler::run_once(&w.app.state, Duration::from_secs(0))
        .await
        .unwrap();
    assert_eq!(report.checked, 0);
}

/// A paid instant order whose deliver DHMAD answers with 500 (until the faults are cleared),
/// once its first attempt has failed.
async fn paid_with_a_failing_deliver(pool: PgPool, email: &str) -> (World, Started) {
    let w = world(pool, |_| {}).await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/deliver", "fault": "error_500", "times": 1000}]}))
        .await;
    let s = w.checkout("ai-credits-500", email).await;
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "paid").await;
    wait_for("a failed deliver attempt", 15, || async {
        let n = sqlx::query_scalar!(
            "SELECT attempts FROM outbox_jobs WHERE order_id = $1 AND kind = 'deliver'",
            s.order_id
        )
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
        (n >= 1).then_some(())
    })
    .await;
    (w, s)
}

/// The order's deliver gave up twenty minutes ago; how many delivers a reconciler pass then
/// queues again.
async fn requeued_after_giving_up(w: &World, order_id: Uuid) -> usize {
    sqlx::query!(
        "UPDATE outbox_jobs SET done_at = now() - interval '20 minutes',
                gave_up_at = now() - interval '20 minutes'
          WHERE order_id = $1 AND kind = 'deliver'",
        order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap()
        .delivers_requeued
}

#[sqlx::test(migrations = "./migrations")]
async fn a_deliver_that_gave_up_is_queued_again_and_retryable(pool: PgPool) {
    let (w, s) = paid_with_a_failing_deliver(pool, "giveup@example.tn").await;
    // It used up its attempts a while ago (the backoff would take 17 minutes to get there).
    assert_eq!(requeued_after_giving_up(&w, s.order_id).await, 1);
    // The merchant can also run it now; once DHMAD answers, it is delivered.
    w.control("/sandbox/faults", json!({})).await;
    assert_eq!(
        w.admin_post(&format!("/admin/orders/{}/retry", s.order_id))
            .await
            .status(),
        303
    );
    w.wait_status(s.order_id, "completed").await;
    let audit = sqlx::query_scalar!("SELECT action FROM admin_audit")
        .fetch_all(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(audit, ["retry_deliver"]);
}

/// A deliver DHMAD answers 404 for (it no longer knows the escrow) is not tried twelve times,
/// and once given up not queued again every quarter of an hour: the order is flagged for the
/// merchant, as a read's 404 flags it.
#[sqlx::test(migrations = "./migrations")]
async fn a_deliver_for_an_escrow_dhmad_does_not_know_is_flagged_not_retried(pool: PgPool) {
    let (w, s) = paid_with_a_failing_deliver(pool, "forgotten@example.tn").await;
    // DHMAD forgets the escrow (a sandbox restarted, a record removed at DHMAD), then answers.
    sqlx::query!(
        "UPDATE orders SET escrow_id = '66bb00000000000000ffffff' WHERE id = $1",
        s.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    w.control("/sandbox/faults", json!({})).await;
    sqlx::query!(
        "UPDATE outbox_jobs SET run_after = now() WHERE order_id = $1 AND kind = 'deliver'",
        s.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    wait_for("the deliver given up", 15, || async {
        sqlx::query_scalar!(
            "SELECT gave_up_at IS NOT NULL AS \"gave_up!\" FROM outbox_jobs
              WHERE order_id = $1 AND kind = 'deliver'",
            s.order_id
        )
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
        .then_some(())
    })
    .await;
    let attention = sqlx::query_scalar!("SELECT attention FROM orders WHERE id = $1", s.order_id)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert!(
        attention.is_some_and(|a| a.contains("does not know")),
        "not flagged"
    );
    // A quarter of an hour later, the reconciler does not queue it again.
    assert_eq!(requeued_after_giving_up(&w, s.order_id).await, 0);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_lost_create_is_found_far_back_and_a_late_duplicate_is_cancelled(pool: PgPool) {
    let w = world(pool, |_| {}).await;
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
    let late = CreateEscrow::new(
        escrow_title("Chéchia, red wool (handmade)", s.order_id),
        Decimal::new(45, 0),
        "far@example.tn",
    )
    .mode(EscrowMode::Quick)
    .estimated_delivery_days(5);
    let late = dhmad.create_escrow(&late).await.unwrap().escrow.id;
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
    let live = CreateEscrow::new(
        escrow_title("Chéchia, red wool (handmade)", s.order_id),
        Decimal::new(45, 0),
        "twice@example.tn",
    )
    .mode(EscrowMode::Quick)
    .estimated_delivery_days(5);
    let live = dhmad.create_escrow(&live).await.unwrap().escrow.id;
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
    let namesake = |buyer: &str| {
        CreateEscrow::new(
            escrow_title("Chéchia, red wool (handmade)", s.order_id),
            Decimal::new(45, 0),
            buyer,
        )
        .mode(EscrowMode::Quick)
        .estimated_delivery_days(5)
    };
    let recorded = dhmad
        .create_escrow(&namesake("same@example.tn"))
        .await
        .unwrap()
        .escrow
        .id;
    w.app
        .seed_order(
            "pottery-nabeul",
            "same@example.tn",
            &recorded,
            OffsetDateTime::now_utc(),
        )
        .await;
    let others = dhmad
        .create_escrow(&namesake("other@example.tn"))
        .await
        .unwrap()
        .escrow
        .id;
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

#[sqlx::test(migrations = "./migrations")]
async fn the_good_is_issued_when_completed_arrives_before_paid(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let escrow_id = hex_id(7);
    let t0 = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let id: Uuid = app
        .seed_order("ai-credits-500", "early@example.tn", &escrow_id, t0)
        .await;
    let d = sign(&status_event(escrow(
        &escrow_id,
        "completed",
        "delivered",
        "instant",
        OffsetDateTime::now_utc(),
    )));
    assert_eq!(app.deliver(&d).await.status(), 200);
    let o = app.order_json(id).await;
    assert_eq!(o["status"], "completed");
    assert!(
        o["digital_code"]
            .as_str()
            .is_some_and(|c| c.starts_with("AIC-")),
        "{o}"
    );
    // The paid event, late, changes nothing and issues nothing twice.
    let d = sign(&status_event(escrow(
        &escrow_id,
        "paid",
        "pending",
        "instant",
        t0 + time::Duration::minutes(1),
    )));
    assert_eq!(app.deliver(&d).await.status(), 200);
    assert_eq!(app.order_json(id).await["digital_code"], o["digital_code"]);
    assert_eq!(
        timeline_count(&app.pool, id, "Digital code issued").await,
        1
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_missed_webhook_while_paying_is_caught_within_a_minute(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    let s = w.checkout("chechia-red", "hot@example.tn").await;
    w.complete(&s.session_id).await;
    // The buyer never came back to the callback; 50 s without news.
    sqlx::query!(
        "UPDATE orders SET last_synced_at = now() - interval '50 seconds' WHERE id = $1",
        s.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    // The default quiet time is 10 minutes, but a live payment page makes the order hot.
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(order_status(&w.app.pool, s.order_id).await, "paid");
}

#[sqlx::test(migrations = "./migrations")]
async fn the_merchants_retry_is_refused_when_nothing_failed(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "fine@example.tn").await;
    let sessions = w.count_calls("POST", "/sessions").await;
    // Awaiting payment, with its page open: a retry would open a second page at DHMAD.
    let r = w
        .admin_post(&format!("/admin/orders/{}/retry", s.order_id))
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(w.count_calls("POST", "/sessions").await, sessions);
    assert_eq!(
        w.app.order_json(s.order_id).await["status"],
        "awaiting_payment"
    );
    // The refusal is on the audit trail like any action.
    let audit: Vec<String> = sqlx::query_scalar("SELECT detail FROM admin_audit")
        .fetch_all(&w.app.pool)
        .await
        .unwrap();
    assert!(audit[0].starts_with("refused:"), "{audit:?}");
}

/// A reconciliation lists DHMAD, finds nothing, and is slow to write it down: meanwhile another
/// look resolved the order, the buyer's retry claimed a new creation and its answer was lost
/// too. The slow look's "nothing found" is about the older attempt: it must not call the newer
/// one safe to retry, or the next retry makes a second live escrow.
#[sqlx::test(migrations = "./migrations")]
async fn a_slow_look_does_not_resolve_a_newer_creation(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    // The app's own first pass would be a third look, with what it reads then.
    after_first_reconciler_pass(&w).await;
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
    after_first_reconciler_pass(&w).await;
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
    let late = CreateEscrow::new(
        escrow_title("Chéchia, red wool (handmade)", s.order_id),
        Decimal::new(45, 0),
        "old-reconciliation@example.tn",
    )
    .mode(EscrowMode::Quick)
    .estimated_delivery_days(5);
    let dhmad = &w.app.state.dhmad;
    let late = dhmad.create_escrow(&late).await.unwrap().escrow.id;
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

/// A deliver that found the order disputed closed without delivering; the dispute then ended
/// with DHMAD still holding the money (the escrow `paid` again). The reconciler queues a new
/// deliver: the closed job used to block it for good, and the money was never released. An
/// order whose job closed after its escrow last changed is left alone.
#[sqlx::test(migrations = "./migrations")]
async fn a_deliver_closed_during_a_dispute_is_queued_again_once_paid_again(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/deliver", "fault": "error_500", "times": 1000}]}))
        .await;
    let mut orders = Vec::new();
    for email in ["dispute-ended@example.tn", "nothing-new@example.tn"] {
        let s = w.checkout("ai-credits-500", email).await;
        w.complete(&s.session_id).await;
        w.wait_status(s.order_id, "paid").await;
        orders.push(s.order_id);
    }
    // Both jobs closed 20 minutes ago, as a job that found the order disputed closes; the
    // first escrow changed since (back to paid), the second did not.
    for (order, changed) in [(orders[0], "10 minutes"), (orders[1], "30 minutes")] {
        sqlx::query(
            "WITH j AS (UPDATE outbox_jobs SET done_at = now() - interval '20 minutes',
                               last_error = 'nothing to deliver: order is disputed'
                         WHERE order_id = $1 AND kind = 'deliver')
             UPDATE orders SET escrow_updated_at = now() - $2::interval WHERE id = $1",
        )
        .bind(order)
        .bind(changed)
        .execute(&w.app.pool)
        .await
        .unwrap();
    }
    let report = reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(report.delivers_requeued, 1, "{report:?}");
    let open = |order| {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM outbox_jobs
              WHERE order_id = $1 AND kind = 'deliver' AND done_at IS NULL",
        )
        .bind(order)
        .fetch_one(&w.app.pool)
    };
    assert_eq!(open(orders[0]).await.unwrap(), 1);
    assert_eq!(open(orders[1]).await.unwrap(), 0);
}

/// A creation in flight for too long is marked "in doubt" only if it is still the claim its
/// marker saw: a reconciler's list can be older than the buyer's new claim, and marking that
/// live claim let a look at DHMAD, made before its create landed, call it safe to retry (a
/// second escrow).
#[sqlx::test(migrations = "./migrations")]
async fn only_the_creation_seen_in_flight_is_marked_in_doubt(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let order = w
        .app
        .insert_order("chechia-red", "in-flight@example.tn", None)
        .await;
    let listed = claimed(&w, order.id, "creating_escrow", 3600).await;
    // Claimed again since it was listed.
    claimed(&w, order.id, "creating_escrow", 0).await;
    let reason = "escrow creation was interrupted; checking DHMAD";
    let marked = db::orders::mark_unknown_if_in_flight(
        &w.app.pool,
        order.id,
        listed.escrow_attempted_at,
        reason,
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
        reason
    )
    .await
    .unwrap());
    assert_eq!(
        w.app.order_json(order.id).await["status"],
        "needs_reconciliation"
    );
}

/// Due delivers are taken before due e-mails, whatever their order: DHMAD releases the money
/// on a deliver, and e-mails to an SMTP server gone silent take their whole timeout each.
#[sqlx::test(migrations = "./migrations")]
async fn a_due_deliver_goes_before_due_emails(pool: PgPool) {
    let app = spawn_offline(pool).await;
    // The outbox of the app runs too: its jobs are made due only below, in one statement.
    let order = app
        .insert_order("ai-credits-500", "first@example.tn", None)
        .await;
    sqlx::query(
        "INSERT INTO outbox_jobs (kind, order_id, run_after) VALUES
           ('email_confirmation', $1, now() + interval '1 hour'),
           ('email_good', $1, now() + interval '1 hour'),
           ('deliver', $1, now() + interval '1 hour')",
    )
    .bind(order.id)
    .execute(&app.pool)
    .await
    .unwrap();
    // The e-mails became due first.
    let due = "UPDATE outbox_jobs SET run_after = now() - CASE kind WHEN 'deliver' THEN
                   interval '1 minute' ELSE interval '10 minutes' END WHERE order_id = $1";
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query(due)
        .bind(order.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let job = db::outbox::claim(&mut *tx, Duration::from_secs(120), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.kind, "deliver");
    tx.rollback().await.unwrap();
}

/// A creation is not taken for over while it may still be running: a standard escrow DHMAD
/// refuses `autoSign` for is asked twice, each call up to the client's timeout. Judged over
/// one second after two timeouts (the limit before), with no room for the work around the
/// calls on a loaded host or a clock a little ahead, such a creation was looked up at DHMAD
/// before its escrow existed, called safe to retry, and made twice.
#[sqlx::test(migrations = "./migrations")]
async fn a_creation_within_its_slowest_time_is_not_taken_for_over(pool: PgPool) {
    let w = world(pool, |_| {}).await;
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
    let order = w
        .app
        .insert_order("chechia-red", "namesake@example.tn", None)
        .await;
    let theirs = CreateEscrow::new(
        escrow_title("Chéchia, red wool (handmade)", order.id),
        Decimal::new(45, 0),
        "namesake@example.tn",
    )
    .mode(EscrowMode::Quick)
    .estimated_delivery_days(5);
    let dhmad = &w.app.state.dhmad;
    let theirs = dhmad.create_escrow(&theirs).await.unwrap().escrow.id;
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
    let w = world(pool.clone(), |_| {}).await;
    let second = spawn(
        pool,
        config(&w.sb.api_base(), w.sb.api_key(), w.sb.webhook_secret()),
    )
    .await;
    let s = w.checkout("chechia-red", "twice-swept@example.tn").await;
    sqlx::query!(
        "INSERT INTO order_events (order_id, kind, detail)
         VALUES ($1, 'escrow_reconciled', 'test: a create was reconciled')",
        s.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    let late = CreateEscrow::new(
        escrow_title("Chéchia, red wool (handmade)", s.order_id),
        Decimal::new(45, 0),
        "twice-swept@example.tn",
    )
    .mode(EscrowMode::Quick)
    .estimated_delivery_days(5);
    let late = w
        .app
        .state
        .dhmad
        .create_escrow(&late)
        .await
        .unwrap()
        .escrow
        .id;
    // Both instances list DHMAD before either cancel is served.
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/cancel", "fault": "delay", "hang_ms": 1000}]}))
        .await;
    let (a, b) = tokio::join!(
        reconciler::run_once(&w.app.state, Duration::from_secs(600)),
        reconciler::run_once(&second.state, Duration::from_secs(600)),
    );
    assert_eq!(
        a.unwrap().duplicates_cancelled + b.unwrap().duplicates_cancelled,
        2,
        "both saw it"
    );
    assert_eq!(w.count_calls("POST", "/cancel").await, 1);
    let e = w.app.state.dhmad.get_escrow(&late).await.unwrap();
    assert_eq!(e.status.as_str(), "cancelled");
}
