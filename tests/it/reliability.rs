//! Faults that used to lose a paid order or stall recovery, each reproduced: a locked row, a
//! reconciler batch DHMAD keeps failing on, a deliver that gave up, `completed` before `paid`,
//! and a missed webhook while the buyer is paying. (Escrow creations whose answer was lost:
//! `lost_escrows.rs`.) And the outbox claim, which finds its job by an index.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::common::{sandbox::*, *};
use storefront::{db, jobs::reconciler};

fn hex_id(n: usize) -> String {
    format!("66dd{n:020x}")
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
                // DHMAD gives up on a delivery after 10 s: an answer after that is none.
                let mut req = http
                    .post(url)
                    .body(d.body.clone())
                    .timeout(Duration::from_secs(10));
                for (k, v) in d.headers() {
                    req = req.header(k, v);
                }
                let answer = req.send().await.expect("an answer within DHMAD's 10 s");
                answer.status().as_u16()
            })
        })
        .collect();
    // The unrelated delivery goes out once the deliveries wait on the locked rows (each waits
    // 2 s at most: on a loaded machine the four may not all be waiting at one instant).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        .fetch_one(&mut *holder)
        .await
        .unwrap();
        if waiting >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} deliveries wait on the locks"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
    // Each answered in time (above), with a 5xx so that DHMAD retries.
    assert_eq!(answers, [503; 4]);
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
/// once its first attempt has failed (its outcome written: an attempt is counted when a worker
/// claims it, before its call, which could otherwise reach DHMAD after the faults are gone).
async fn paid_with_a_failing_deliver(pool: PgPool, email: &str) -> (World, Started) {
    let w = world(pool, |_| {}).await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/deliver", "fault": "error_500", "times": 1000}]}))
        .await;
    let s = w.checkout("ai-credits-500", email).await;
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "paid").await;
    wait_for("a failed deliver attempt", 30, || async {
        let n = sqlx::query_scalar!(
            "SELECT attempts FROM outbox_jobs
              WHERE order_id = $1 AND kind = 'deliver' AND claimed_until IS NULL",
            s.order_id
        )
        .fetch_optional(&w.app.pool)
        .await
        .unwrap();
        (n >= Some(1)).then_some(())
    })
    .await;
    (w, s)
}

/// Once no worker holds the order's open deliver (tried at least once), it is made due an
/// hour from now: the service's worker leaves it to the test.
async fn held_back(w: &World, order_id: Uuid) {
    wait_for("the deliver held back", 30, || async {
        sqlx::query!(
            "UPDATE outbox_jobs SET run_after = now() + interval '1 hour'
              WHERE order_id = $1 AND kind = 'deliver' AND done_at IS NULL AND attempts >= 1
                AND (claimed_until IS NULL OR claimed_until <= now())",
            order_id
        )
        .execute(&w.app.pool)
        .await
        .unwrap()
        .rows_affected()
        .eq(&1)
        .then_some(())
    })
    .await;
}

/// The order's open deliver, if no worker holds it, made due and claimed by this test as a
/// worker claims it.
async fn claimed_now(w: &World, order_id: Uuid) -> Option<db::outbox::Job> {
    let mut tx = w.app.pool.begin().await.unwrap();
    sqlx::query!(
        "UPDATE outbox_jobs SET run_after = now()
          WHERE order_id = $1 AND kind = 'deliver' AND done_at IS NULL
            AND claimed_until IS NULL",
        order_id
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let job = db::outbox::claim(&mut *tx, Duration::from_secs(120), true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    job
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
    // The merchant can also run it now, when it would wait for its backoff (held here an hour
    // ahead: run at once, the worker's attempt once delivered it before the merchant's click,
    // which was then refused); once DHMAD answers, it is delivered.
    // A job a worker holds is left to it: its failure would set its own time again.
    held_back(&w, s.order_id).await;
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

/// Once shutdown has begun, a deliver job sends nothing new to DHMAD: the process may end
/// before the answer is recorded (the jobs' drain is sized for a call in flight). It is put
/// back, due at once and its attempt not counted, for the next instance.
#[sqlx::test(migrations = "./migrations")]
async fn a_deliver_is_not_sent_once_shutdown_has_begun(pool: PgPool) {
    let (w, s) = paid_with_a_failing_deliver(pool, "stopping@example.tn").await;
    w.control("/sandbox/faults", json!({})).await;
    // The jobs stop as they would on SIGTERM; the job is then made due and run by hand.
    w.app.state.shutdown.cancel();
    let delivers = || async {
        w.dhmad_calls()
            .await
            .iter()
            .filter(|c| c.starts_with("POST") && c.ends_with("/deliver"))
            .count()
    };
    let sent = delivers().await;
    let job = wait_for("the deliver job let go", 30, || claimed_now(&w, s.order_id)).await;
    assert_eq!(job.kind, "deliver");
    let attempts = job.attempts;
    let outcome = storefront::orders::fulfilment::run_deliver(&w.app.state, &job)
        .await
        .unwrap();
    assert!(
        matches!(outcome, storefront::orders::fulfilment::JobOutcome::Postpone(d) if d.is_zero()),
        "{outcome:?}"
    );
    assert_eq!(delivers().await, sent, "no deliver sent during shutdown");
    assert!(db::outbox::postpone(&w.app.pool, &job, Duration::ZERO)
        .await
        .unwrap());
    let (left, open) = sqlx::query!(
        "SELECT attempts, claimed_until IS NULL AS \"free!\" FROM outbox_jobs
          WHERE order_id = $1 AND kind = 'deliver' AND done_at IS NULL",
        s.order_id
    )
    .fetch_one(&w.app.pool)
    .await
    .map(|r| (r.attempts, r.free))
    .unwrap();
    assert_eq!((left, open), (attempts - 1, true));
}

/// A deliver tried again reads the escrow first; a read older than what the order knows (DHMAD's
/// API behind its signed events: here `delivered` from before the buyer's rejection, whose
/// `paid` the shop already applied) says nothing of now. The job waits for a read that does,
/// where it used to close as "escrow already moved on", and the merchant was never paid.
#[sqlx::test(migrations = "./migrations")]
async fn a_deliver_does_not_close_on_a_read_older_than_the_order(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = crate::after_payment::paid_quick(&w, "read-behind@example.tn").await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/deliver", "fault": "error_500", "times": 1000}]}))
        .await;
    assert_eq!(
        w.admin_post(&format!("/admin/orders/{}/ship", s.order_id))
            .await
            .status(),
        303
    );
    // Its first attempt failed; the worker leaves the job alone from here.
    held_back(&w, s.order_id).await;
    // One attempt's deliver landed, its answer lost.
    w.control("/sandbox/faults", json!({})).await;
    let escrow_id = w.app.order_json(s.order_id).await["escrow_id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.app.state.dhmad.deliver_escrow(&escrow_id).await.unwrap();
    w.wait_status(s.order_id, "delivered").await;
    // Then the buyer rejected it: its `paid` event is applied, and DHMAD's API still answers
    // `delivered`, dated before it.
    sqlx::query!(
        "UPDATE orders SET status = 'paid', escrow_status = 'paid', escrow_updated_at = now()
          WHERE id = $1",
        s.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    let job = claimed_now(&w, s.order_id).await.expect("the deliver job");
    assert_eq!((job.kind.as_str(), job.order_id), ("deliver", s.order_id));
    assert!(job.attempts > 1);
    let outcome = storefront::orders::fulfilment::run_deliver(&w.app.state, &job)
        .await
        .unwrap();
    assert!(
        matches!(&outcome, storefront::orders::fulfilment::JobOutcome::Retry(e) if e.contains("older than")),
        "{outcome:?}"
    );
    assert_eq!(w.app.order_json(s.order_id).await["status"], "paid");
}

/// An instant order's deliver that failed waits out its backoff (up to five minutes): its
/// page offers "Retry deliver", which runs it now, where the button was hidden while any
/// deliver was open (only the outbox page could do it).
#[sqlx::test(migrations = "./migrations")]
async fn a_failing_deliver_can_be_run_now_from_its_orders_page(pool: PgPool) {
    let (w, s) = paid_with_a_failing_deliver(pool, "retry-now@example.tn").await;
    let retry = format!("/admin/orders/{}/retry", s.order_id);
    let page =
        crate::back_office::admin_page(&w.app, &format!("/admin/orders/{}", s.order_id)).await;
    assert!(page.contains(&format!("action=\"{retry}\"")), "{page}");
    // Held an hour ahead, as a long backoff would: the click makes it due now.
    sqlx::query(
        "UPDATE outbox_jobs SET run_after = now() + interval '1 hour'
          WHERE order_id = $1 AND kind = 'deliver' AND done_at IS NULL",
    )
    .bind(s.order_id)
    .execute(&w.app.pool)
    .await
    .unwrap();
    w.control("/sandbox/faults", json!({})).await;
    assert_eq!(w.admin_post(&retry).await.status(), 303);
    w.wait_status(s.order_id, "completed").await;
}

/// A quick order's deliver gave up (DHMAD failed it again and again; one attempt may have
/// landed, its answer lost): the merchant's next "ship" reads the escrow before it sends, as a
/// retry does. It was queued as new, whose first attempt sent blind, and could mark the goods
/// delivered again over a delivery the buyer had rejected since.
#[sqlx::test(migrations = "./migrations")]
async fn a_ship_after_a_deliver_gave_up_reads_first(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = crate::after_payment::paid_quick(&w, "ship-again@example.tn").await;
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/deliver", "fault": "error_500", "times": 1000}]}))
        .await;
    let ship = format!("/admin/orders/{}/ship", s.order_id);
    assert_eq!(w.admin_post(&ship).await.status(), 303);
    // Its first attempt failed; then it gave up (its attempts spent).
    wait_for("the failed deliver given up", 30, || async {
        sqlx::query(
            "UPDATE outbox_jobs SET done_at = now(), gave_up_at = now()
              WHERE order_id = $1 AND kind = 'deliver' AND attempts >= 1
                AND claimed_until IS NULL AND done_at IS NULL",
        )
        .bind(s.order_id)
        .execute(&w.app.pool)
        .await
        .unwrap()
        .rows_affected()
        .eq(&1)
        .then_some(())
    })
    .await;
    w.control("/sandbox/faults", json!({})).await;
    let before = w.dhmad_calls().await.len();
    assert_eq!(w.admin_post(&ship).await.status(), 303);
    w.wait_status(s.order_id, "delivered").await;
    let calls = w.dhmad_calls().await[before..].to_vec();
    let read = calls
        .iter()
        .position(|c| c.starts_with("GET /api/v1/escrows/"));
    let sent = calls.iter().position(|c| c.ends_with("/deliver"));
    assert!(read.is_some() && read < sent, "{calls:?}");
}

/// A deliver that gave up may have landed, its answer lost: the reconciler queues it again
/// as a retry, which reads the escrow before it sends (as the merchant's "retry" does). It was
/// queued as new, whose first attempt sent blind.
#[sqlx::test(migrations = "./migrations")]
async fn a_deliver_queued_again_after_giving_up_reads_first(pool: PgPool) {
    let (w, s) = paid_with_a_failing_deliver(pool, "reads-first@example.tn").await;
    let escrow_id = w.app.order_json(s.order_id).await["escrow_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Its retries parked, so that none of its calls comes after the count below.
    let first_queued = wait_for("the failed deliver parked", 30, || async {
        sqlx::query_scalar!(
            "UPDATE outbox_jobs SET run_after = now() + interval '1 hour'
              WHERE order_id = $1 AND kind = 'deliver'
                AND (claimed_until IS NULL OR claimed_until <= now())
              RETURNING created_at",
            s.order_id
        )
        .fetch_optional(&w.app.pool)
        .await
        .unwrap()
    })
    .await;
    let before = w.dhmad_calls().await.len();
    assert_eq!(requeued_after_giving_up(&w, s.order_id).await, 1);
    // It carries the job it follows: queued when that one was.
    let queued = sqlx::query_scalar!(
        "SELECT created_at FROM outbox_jobs
          WHERE order_id = $1 AND kind = 'deliver' AND done_at IS NULL",
        s.order_id
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(queued, first_queued);
    let deliver = format!("POST /api/v1/escrows/{escrow_id}/deliver");
    let read = format!("GET /api/v1/escrows/{escrow_id}");
    let since = wait_for("the requeued deliver's attempt", 30, || async {
        let since: Vec<String> = w.dhmad_calls().await.split_off(before);
        since.contains(&deliver).then_some(since)
    })
    .await;
    let first = since.iter().find(|c| **c == deliver || **c == read);
    assert_eq!(first, Some(&read), "{since:?}");
}

/// DHMAD's signed `paid` can run ahead of its own API (the snapshot keeps a paid order paid
/// over a read that still says `pending`). The instant order's deliver, refused meanwhile,
/// was closed as "no longer paid" on that read, and nothing queued it again: the buyer had the
/// code, the merchant was never paid. It is tried again, and goes once DHMAD agrees.
#[sqlx::test(migrations = "./migrations")]
async fn a_deliver_refused_while_dhmad_still_reads_pending_is_tried_again(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "ahead@example.tn").await;
    let escrow_id = w.app.order_json(s.order_id).await["escrow_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut escrow = w.app.state.dhmad.get_escrow(&escrow_id).await.unwrap();
    assert_eq!(escrow.status, dhmad::EscrowStatus::Pending);
    escrow.old_status = Some(dhmad::EscrowStatus::Pending);
    escrow.status = dhmad::EscrowStatus::Paid;
    escrow.updated_at = Some(OffsetDateTime::now_utc());
    let now = OffsetDateTime::now_utc();
    let event = status_event(escrow);
    let d = dhmad::webhook::SignedDelivery::new(w.sb.webhook_secret(), &event, now);
    w.app.deliver_processed(&d).await;
    w.wait_status(s.order_id, "paid").await;
    // The first attempt: DHMAD refuses (its escrow is pending), and its read says pending.
    let outcome = wait_for("the refused deliver's outcome", 30, || async {
        sqlx::query!(
            "SELECT done_at IS NOT NULL AS \"closed!\", last_error FROM outbox_jobs
              WHERE order_id = $1 AND kind = 'deliver' AND claimed_until IS NULL
                AND (done_at IS NOT NULL OR last_error IS NOT NULL)",
            s.order_id
        )
        .fetch_optional(&w.app.pool)
        .await
        .unwrap()
    })
    .await;
    assert!(!outcome.closed, "closed: {:?}", outcome.last_error);
    // The buyer pays at DHMAD: the next attempt reads `paid` and delivers.
    w.complete(&s.session_id).await;
    sqlx::query!(
        "UPDATE outbox_jobs SET run_after = now() WHERE order_id = $1 AND done_at IS NULL",
        s.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    w.wait_status(s.order_id, "completed").await;
    assert_eq!(
        w.count_calls("POST", &format!("/escrows/{escrow_id}/deliver"))
            .await,
        2
    );
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
    wait_for("the deliver given up", 30, || async {
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

/// The next job is found by an index in the claim's own order, not by sorting every due job:
/// after an SMTP outage thousands of e-mails are due at once, and each claim (every worker,
/// every instance, all day) sorted them all.
#[sqlx::test(migrations = "./migrations")]
async fn the_next_job_is_found_without_sorting_the_due_ones(pool: PgPool) {
    sqlx::query(
        "INSERT INTO orders (id, sku, mode, buyer_email, amount, currency, status, owner_key)
         SELECT gen_random_uuid(), 'chechia-red', 'quick', 'b' || g || '@example.tn', 45, 'TND',
                'paid', 'k' || g
           FROM generate_series(1, 3000) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO outbox_jobs (kind, order_id, run_after)
         SELECT 'email_confirmation', id, now() - random() * interval '10 minutes' FROM orders",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE outbox_jobs")
        .execute(&pool)
        .await
        .unwrap();
    // The statement `db::outbox::claim` sends, as its compile-time check recorded it in
    // `.sqlx/` (which CI holds to the code), planned and not run.
    let claim =
        offline_query("UPDATE outbox_jobs SET attempts = attempts + 1, claims = claims + 1");
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql(&format!("PREPARE claim(bigint, boolean) AS {claim}"))
        .execute(&mut *conn)
        .await
        .unwrap();
    for dhmad_calls in [true, false] {
        let plan: serde_json::Value = sqlx::query_scalar(&format!(
            "EXPLAIN (FORMAT JSON) EXECUTE claim(120000, {dhmad_calls})"
        ))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        let text = plan.to_string();
        assert!(!text.contains("\"Sort\""), "{plan}");
        assert!(text.contains("outbox_jobs_claim"), "{plan}");
    }
}

/// The one query in `.sqlx/` whose text starts with `start`.
fn offline_query(start: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/.sqlx");
    let found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f.unwrap().path()).ok()?;
            let q: serde_json::Value = serde_json::from_str(&text).ok()?;
            let query = q["query"].as_str()?.to_owned();
            query.starts_with(start).then_some(query)
        })
        .collect();
    assert_eq!(found.len(), 1, "queries starting with {start:?}: {found:?}");
    found.into_iter().next().unwrap()
}

/// Two instances' background passes at once read each due order from DHMAD once, not once per
/// instance: the second finds the first's turn. (An operator's "Reconcile" runs when asked.)
#[sqlx::test(migrations = "./migrations")]
async fn two_instances_pass_over_the_due_orders_once(pool: PgPool) {
    // Every open order is due a look.
    let w = world(pool.clone(), |c| c.jobs.reconcile_after = Duration::ZERO).await;
    let mut cfg = config(&w.sb.api_base(), w.sb.api_key(), w.sb.webhook_secret());
    cfg.jobs.reconcile_after = Duration::ZERO;
    let second = spawn(pool, cfg).await;
    after_first_reconciler_pass(&[&w.app, &second]).await;
    let mut escrows = Vec::new();
    for i in 0..3 {
        let s = w
            .checkout("chechia-red", &format!("due-{i}@example.tn"))
            .await;
        let o = w.app.order_json(s.order_id).await;
        escrows.push(o["escrow_id"].as_str().unwrap().to_owned());
    }
    let reads = || async {
        let calls = w.dhmad_calls().await;
        escrows
            .iter()
            .map(|e| {
                let read = format!("GET /api/v1/escrows/{e}");
                calls.iter().filter(|c| **c == read).count()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(reads().await, [0, 0, 0]);
    // The apps' passes at start took the turn: as if an interval had passed.
    sqlx::query("DELETE FROM job_turns WHERE name = 'reconciler'")
        .execute(&w.app.pool)
        .await
        .unwrap();
    let (mut held_a, mut held_b) = (None, None);
    let (a, b) = tokio::join!(
        reconciler::run_turn(&w.app.state, &mut held_a),
        reconciler::run_turn(&second.state, &mut held_b),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.is_some() != b.is_some(), "{a:?} {b:?}");
    assert_eq!(reads().await, [1, 1, 1]);

    // An instance going on with a backlog keeps the turn only if nobody took it since: its pass
    // outlived the interval and another instance's started, which now goes on alone.
    let pool = &w.app.pool;
    let turn = |every| db::turns::take_at(pool, "reconciler", every);
    let mut held = turn(Duration::ZERO).await.unwrap();
    assert!(held.is_some());
    assert!(
        turn(Duration::ZERO).await.unwrap().is_some(),
        "the other instance's"
    );
    let report = reconciler::run_turn(&w.app.state, &mut held).await.unwrap();
    assert!(report.is_none(), "{report:?}");
    assert_eq!(reads().await, [1, 1, 1]);
}

/// A quick order whose escrow was made ten minutes ago, its only open job a deliver of
/// `attempts` tries queued `minutes_ago`, with the service's workers stopped (as on SIGTERM):
/// the test is the only actor.
async fn open_deliver(
    app: &TestApp,
    buyer: &str,
    escrow_id: &str,
    attempts: i32,
    minutes_ago: i64,
) -> Uuid {
    let order = app
        .seed_order(
            "chechia-red",
            &format!("{buyer}@example.tn"),
            escrow_id,
            OffsetDateTime::now_utc() - time::Duration::minutes(10),
        )
        .await;
    app.state.shutdown.cancel();
    sqlx::query!(
        "UPDATE outbox_jobs SET done_at = now() WHERE done_at IS NULL AND order_id = $1",
        order
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query!(
        "INSERT INTO outbox_jobs (kind, order_id, attempts, created_at)
         VALUES ('deliver', $1, $2, now() - $3::bigint * interval '1 minute')",
        order,
        attempts,
        minutes_ago
    )
    .execute(&app.pool)
    .await
    .unwrap();
    order
}

/// The buyer rejected a delivery while an earlier ship's deliver was still open (its answer
/// lost, its retries held back), and the rejection's event was lost too: the order came back to
/// `paid` by a read, which records no reason. The merchant's new ship was "nothing new", and
/// the open deliver, finding a rejection made since it was queued, closed unsent.
#[sqlx::test(migrations = "./migrations")]
async fn a_ship_after_a_rejection_known_only_by_a_read_carries_the_open_deliver(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let order = open_deliver(&app, "rejected-unsaid", "66aa000000000000000000ea", 2, 5).await;
    sqlx::query!(
        "UPDATE orders SET status = 'paid', escrow_status = 'paid', escrow_updated_at = now(),
                delivery_rejection_reason = NULL
          WHERE id = $1",
        order
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let queued = storefront::orders::fulfilment::mark_shipped(&app.state, order)
        .await
        .unwrap();
    assert!(queued, "the ship is new: it came after the escrow changed");
    let carried = sqlx::query_scalar!(
        r#"SELECT created_at > now() - interval '1 minute' AS "carried!"
             FROM outbox_jobs WHERE order_id = $1 AND kind = 'deliver' AND done_at IS NULL"#,
        order
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(carried, "the open deliver now carries this ship");
    // A second click changes nothing.
    let again = storefront::orders::fulfilment::mark_shipped(&app.state, order)
        .await
        .unwrap();
    assert!(!again);
}

/// The merchant ships again while an attempt of the order's open deliver is under way, after it
/// read the job's date: the attempt's "done" does not close the job (the new ship would be
/// lost), which is due again at once, its next attempt reading the escrow with the new date.
#[sqlx::test(migrations = "./migrations")]
async fn a_deliver_asked_again_during_its_attempt_is_not_closed_by_it(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let order = open_deliver(&app, "reshipped", "66aa000000000000000000e9", 1, 1).await;
    let mut tx = app.pool.begin().await.unwrap();
    let job = db::outbox::claim(&mut *tx, Duration::from_secs(120), true)
        .await
        .unwrap()
        .expect("the deliver job");
    tx.commit().await.unwrap();
    assert_eq!((job.kind.as_str(), job.order_id), ("deliver", order));

    // The merchant's ship dates it anew (as `mark_shipped` does after a rejection).
    assert!(
        db::outbox::redate_open(&app.pool, "deliver", order, OffsetDateTime::now_utc())
            .await
            .unwrap()
    );
    // The attempt, which read the old date, ends.
    assert!(db::outbox::finish(&app.pool, &job).await.unwrap());
    let (open, free, due) = sqlx::query!(
        r#"SELECT done_at IS NULL AS "open!", claimed_until IS NULL AS "free!",
                  run_after <= now() AS "due!"
             FROM outbox_jobs WHERE id = $1"#,
        job.id
    )
    .fetch_one(&app.pool)
    .await
    .map(|r| (r.open, r.free, r.due))
    .unwrap();
    assert_eq!((open, free, due), (true, true, true));

    // An attempt that read the date it has closes it.
    let mut tx = app.pool.begin().await.unwrap();
    let again = db::outbox::claim(&mut *tx, Duration::from_secs(120), true)
        .await
        .unwrap()
        .expect("due again");
    tx.commit().await.unwrap();
    assert_eq!(again.id, job.id);
    assert!(db::outbox::finish(&app.pool, &again).await.unwrap());
    let closed = sqlx::query_scalar!(
        r#"SELECT done_at IS NOT NULL AS "closed!" FROM outbox_jobs WHERE id = $1"#,
        job.id
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(closed);
}
