//! The inbox console's reprocessing and the outbox console's retry and abandon, each in the
//! audit trail.

use crate::common::*;
use dhmad::{Event, WebhookEnvelope};
use serde_json::json;
use sqlx::{PgPool, Row};
use storefront::db;
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;

/// An event for `escrow_id` whose news is a timeline line: the buyer asks to cancel.
fn cancellation_requested(escrow_id: &str, at: OffsetDateTime) -> WebhookEnvelope {
    let data = json!({
        "escrow": escrow(escrow_id, "paid", "paid", "quick", at),
        "cancellationRequest": {"reason": "changed my mind", "status": "pending"}
    });
    let ev = Event::from_parts("escrow.cancellation.requested", data).unwrap();
    WebhookEnvelope::new(Uuid::new_v4().to_string(), OffsetDateTime::now_utc(), &ev)
}

async fn inbox_row(pool: &PgPool, event_id: &str) -> (String, Option<Uuid>) {
    let r = sqlx::query("SELECT outcome, order_id FROM webhook_inbox WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(pool)
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

/// Events that will never match (an escrow sold outside the shop, a cancelled duplicate) must
/// not keep the head of the line: each click takes those reprocessed longest ago last, so a
/// newer event whose order now exists is reached.
#[sqlx::test(migrations = "./migrations")]
async fn reprocessing_all_reaches_past_events_that_never_match(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let stranger = status_event(escrow(
        "66bb0000000000000000ffff",
        "paid",
        "pending",
        "quick",
        t(1),
    ));
    assert_eq!(app.deliver(&sign(&stranger)).await.status(), 200);
    // A full batch of older events for escrows the shop never sold.
    sqlx::query(
        "INSERT INTO webhook_inbox (event_id, event_type, escrow_id, outcome, payload, received_at)
         SELECT 'old-' || g, event_type, escrow_id, 'unmatched', payload,
                now() - interval '1 day' + g * interval '1 second'
           FROM webhook_inbox, generate_series(1, $2) g WHERE event_id = $1",
    )
    .bind(&stranger.id)
    .bind(i32::try_from(storefront::orders::reprocess::BATCH_LIMIT).unwrap())
    .execute(&app.pool)
    .await
    .unwrap();
    let escrow_id = "66bb000000000000000000e2";
    let paid = status_event(escrow(escrow_id, "paid", "pending", "quick", t(1)));
    assert_eq!(app.deliver(&sign(&paid)).await.status(), 200);
    let id = app
        .seed_order("chechia-red", "late-batch@example.tn", escrow_id, t(0))
        .await;
    for _ in 0..2 {
        act(&app, "/admin/inbox/reprocess-unmatched").await;
    }
    assert_eq!(
        inbox_row(&app.pool, &paid.id).await,
        ("processed".into(), Some(id))
    );
    assert_eq!(order_status(&app.pool, id).await, "paid");
}

/// A reprocessed event applies what a live one would, the amount its snapshot carries too.
#[sqlx::test(migrations = "./migrations")]
async fn a_reprocessed_payment_brings_its_amount(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let escrow_id = "66bb000000000000000000e4";
    let paid = status_event(escrow(escrow_id, "paid", "pending", "quick", t(1)));
    assert_eq!(app.deliver(&sign(&paid)).await.status(), 200);
    let id = app
        .seed_order("chechia-red", "amount@example.tn", escrow_id, t(0))
        .await;
    assert_eq!(app.order_json(id).await["amount"], "45.000");
    let back = act(&app, &format!("/admin/inbox/{}/reprocess", paid.id)).await;
    assert_eq!(back, "/admin/inbox?notice=event_processed");
    let o = app.order_json(id).await;
    assert_eq!(
        (&o["status"], &o["amount"]),
        (&json!("paid"), &json!("15.000"))
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn an_unmatched_event_is_reprocessed_once_its_order_exists(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let escrow_id = "66bb000000000000000000e1";
    // DHMAD's news arrives before the shop recorded the escrow: nothing to apply it to.
    let paid = status_event(escrow(escrow_id, "paid", "pending", "quick", t(1)));
    let ask = cancellation_requested(escrow_id, t(2));
    for env in [&paid, &ask] {
        assert_eq!(app.deliver(&sign(env)).await.status(), 200);
        assert_eq!(inbox_row(&app.pool, &env.id).await.0, "unmatched");
    }
    let page = admin_page(&app, "/admin/inbox?outcome=unmatched").await;
    assert!(page.contains(&paid.id) && page.contains(&ask.id), "{page}");
    assert!(page.contains("reprocess-unmatched"));
    assert!(page.contains("name=\"csrf_token\""));
    let dashboard = admin_page(&app, "/admin").await;
    assert!(dashboard.contains("<strong class=\"count\">2</strong> unmatched"));
    // Reprocessing while there is still no order changes nothing but says so.
    let back = act(&app, &format!("/admin/inbox/{}/reprocess", paid.id)).await;
    assert_eq!(back, "/admin/inbox?notice=event_unmatched");

    // The order gets its escrow; the event is reprocessed through the webhook's path.
    let id = app
        .seed_order("chechia-red", "late@example.tn", escrow_id, t(0))
        .await;
    let back = act(&app, &format!("/admin/inbox/{}/reprocess", paid.id)).await;
    assert_eq!(back, "/admin/inbox?notice=event_processed");
    assert_eq!(order_status(&app.pool, id).await, "paid");
    assert_eq!(
        inbox_row(&app.pool, &paid.id).await,
        ("processed".into(), Some(id))
    );
    let timeline_after_once = timeline(&app.pool, id).await;
    // Twice: nothing changes, no timeline line is repeated.
    let back = act(&app, &format!("/admin/inbox/{}/reprocess", paid.id)).await;
    assert_eq!(back, "/admin/inbox?notice=event_already");
    assert_eq!(timeline(&app.pool, id).await, timeline_after_once);

    // "All unmatched": the cancellation request is applied once, however often it is asked.
    let back = act(&app, "/admin/inbox/reprocess-unmatched").await;
    assert!(
        back.starts_with("/admin/inbox?notice=unmatched_reprocessed&processed=1&unmatched=0"),
        "{back}"
    );
    let back = act(&app, "/admin/inbox/reprocess-unmatched").await;
    assert!(back.contains("processed=0"), "{back}");
    act(&app, &format!("/admin/inbox/{}/reprocess", ask.id)).await;
    assert_eq!(
        timeline_count(&app.pool, id, "The buyer asked to cancel").await,
        1
    );
    let o = app.order_json(id).await;
    assert_eq!(o["cancellation"], "requested");
    let page = admin_page(&app, "/admin?notice=unmatched_reprocessed&processed=1").await;
    assert!(
        page.contains("Unmatched events reprocessed: 1 applied"),
        "{page}"
    );

    // The order's page shows its events, raw.
    let page = admin_page(&app, &format!("/admin/orders/{id}/events")).await;
    assert!(page.contains(&paid.id) && page.contains("escrow.cancellation.requested"));
    assert!(page.contains("changed my mind"));
    let page = admin_page(&app, &format!("/admin/orders/{id}?notice=event_processed")).await;
    assert!(
        page.contains("Event reprocessed: applied to its order."),
        "{page}"
    );
    assert!(page.contains("id=\"inbox-events\"") && page.contains(&ask.id));

    // Audited, with the order when there was one.
    let audit = audit_actions(&app.pool).await;
    let reprocess: Vec<_> = audit.iter().filter(|a| a.0 == "reprocess_event").collect();
    assert_eq!(reprocess.len(), 5, "{audit:?}");
    assert_eq!(reprocess[1].1, Some(id));
    assert!(reprocess[2].2.contains("already processed"));
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.0 == "reprocess_unmatched")
            .count(),
        2
    );
    assert_eq!(
        admin_post(&app, "/admin/inbox/no-such-event/reprocess")
            .await
            .status(),
        404
    );
}

async fn job_row(pool: &PgPool, id: i64) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
    let r = sqlx::query("SELECT done_at, abandoned_at FROM outbox_jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[sqlx::test(migrations = "./migrations")]
async fn a_dead_job_is_retried_and_an_open_one_abandoned(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order(
            "chechia-red",
            "jobs@example.tn",
            "66bb000000000000000000e2",
            t(0),
        )
        .await;
    // Delivered since: the retried deliver finds nothing to do and is done at once.
    sqlx::query(
        "UPDATE orders SET status = 'delivered', escrow_status = 'delivered' WHERE id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let dead = add_job(&app.pool, id, "deliver", "dead").await;
    let open = add_job(&app.pool, id, "email_confirmation", "open").await;
    let page = admin_page(&app, "/admin/outbox").await;
    assert!(
        page.contains(&format!("id=\"job-{dead}\""))
            && page.contains(&format!("id=\"job-{open}\""))
    );
    assert!(page.contains("deliver failed: 500"));
    let page = admin_page(&app, "/admin/outbox?state=dead").await;
    assert!(
        page.contains(&format!("id=\"job-{dead}\""))
            && !page.contains(&format!("id=\"job-{open}\""))
    );
    let page = admin_page(&app, "/admin").await;
    assert!(page.contains("id=\"needs-failed_jobs\""));
    assert_eq!(
        row_ids(&admin_page(&app, "/admin/orders?needs=failed_jobs").await),
        [id]
    );

    // Run now: a fresh deliver job, the dead one superseded; out of "failed jobs".
    let back = act(&app, &format!("/admin/outbox/{dead}/retry")).await;
    assert_eq!(back, "/admin/outbox?notice=job_retried");
    let fresh: i64 = sqlx::query_scalar(
        "SELECT max(id) FROM outbox_jobs WHERE order_id = $1 AND kind = 'deliver'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(fresh > dead);
    assert!(row_ids(&admin_page(&app, "/admin/orders?needs=failed_jobs").await).is_empty());
    wait_for("the retried deliver to run", 30, || async {
        job_row(&app.pool, fresh).await.0.map(|_| ())
    })
    .await;
    assert_eq!(
        timeline_count(
            &app.pool,
            id,
            &format!("Outbox job #{dead} (deliver) set to run now")
        )
        .await,
        1
    );
    // A superseded job is closed: retrying it again does nothing.
    let back = act(&app, &format!("/admin/outbox/{dead}/retry")).await;
    assert_eq!(back, "/admin/outbox?notice=job_closed");

    // Abandon: closed for good, noted on the order; twice changes nothing.
    let back = act(&app, &format!("/admin/outbox/{open}/abandon")).await;
    assert_eq!(back, "/admin/outbox?notice=job_abandoned");
    let (done, abandoned) = job_row(&app.pool, open).await;
    assert!(done.is_some() && abandoned.is_some());
    assert_eq!(
        act(&app, &format!("/admin/outbox/{open}/abandon")).await,
        "/admin/outbox?notice=job_closed"
    );
    assert_eq!(
        act(&app, &format!("/admin/outbox/{open}/retry")).await,
        "/admin/outbox?notice=job_closed"
    );
    assert_eq!(
        timeline_count(&app.pool, id, "abandoned by the merchant").await,
        1
    );
    let page = admin_page(&app, "/admin/outbox?notice=job_abandoned&state=done").await;
    assert!(page.contains("Job abandoned"));
    assert!(page.contains(&format!("id=\"job-{open}\"")) && page.contains("abandoned"));
    assert_eq!(
        admin_post(&app, "/admin/outbox/999999/retry")
            .await
            .status(),
        404
    );

    // Audited: who, what, which order.
    let audit = audit_actions(&app.pool).await;
    let actions: Vec<&str> = audit.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(
        actions,
        [
            "retry_job",
            "retry_job",
            "abandon_job",
            "abandon_job",
            "retry_job"
        ]
    );
    assert!(audit.iter().all(|a| a.1 == Some(id)));
    let page = admin_page(&app, &format!("/admin/audit?order={id}")).await;
    assert!(page.contains("abandon_job") && page.contains("127.0.0.1"));
    let page = admin_page(&app, "/admin/audit?action=abandon_job").await;
    assert!(!page.contains("<span class=\"badge\">retry_job</span>"));
}

#[sqlx::test(migrations = "./migrations")]
async fn a_job_a_worker_is_running_is_left_to_it(pool: PgPool) {
    // The service's own worker stays out of this test's claims (it drains once at start).
    let mut cfg = offline_config();
    cfg.jobs.outbox = std::time::Duration::from_secs(3600);
    let app = spawn(pool, cfg).await;
    let id = app
        .seed_order(
            "chechia-red",
            "running@example.tn",
            "66bb000000000000000000e3",
            t(0),
        )
        .await;
    let job = add_job(&app.pool, id, "email_confirmation", "open").await;
    // Worker A claims it (as `db::outbox::claim` does) and is sending the e-mail.
    let claim = "UPDATE outbox_jobs SET attempts = attempts + 1, claims = claims + 1,
                        run_after = now() + interval '2 minutes',
                        claimed_until = now() + interval '2 minutes' WHERE id = $1";
    sqlx::query(claim)
        .bind(job)
        .execute(&app.pool)
        .await
        .unwrap();
    // The merchant's "run now" would hand it to a second worker: refused, nothing moves.
    let page = admin_page(&app, "/admin/outbox").await;
    assert!(page.contains("running now"), "{page}");
    assert!(
        !page.contains(&format!("/admin/outbox/{job}/retry")),
        "{page}"
    );
    let back = act(&app, &format!("/admin/outbox/{job}/retry")).await;
    assert_eq!(back, "/admin/outbox?notice=job_running");
    let due_later: bool = sqlx::query_scalar(
        "SELECT run_after > now() + interval '1 minute' FROM outbox_jobs WHERE id = $1",
    )
    .bind(job)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(due_later, "still not due while it runs");
    let back = act(&app, &format!("/admin/outbox/{job}/abandon")).await;
    assert_eq!(back, "/admin/outbox?notice=job_running");
    assert_eq!(job_row(&app.pool, job).await, (None, None));
    // Judged by the database's clock, by which the claim was taken, not only by this
    // instance's (which may run ahead of it): the abandon itself leaves a claimed job alone.
    let closed = db::admin_consoles::abandon_job(&app.pool, job)
        .await
        .unwrap();
    assert!(!closed);
    assert_eq!(job_row(&app.pool, job).await, (None, None));

    // A's lease lapses and worker B takes the job: A's late outcome is not written over B's.
    sqlx::query(claim)
        .bind(job)
        .execute(&app.pool)
        .await
        .unwrap();
    let queued_at = db::outbox::queued_at(&app.pool, job)
        .await
        .unwrap()
        .unwrap();
    let as_claimed = |attempts, claim| db::outbox::Job {
        id: job,
        kind: "email_confirmation".into(),
        order_id: id,
        attempts,
        claim,
        queued_at,
    };
    assert!(!db::outbox::finish(&app.pool, &as_claimed(1, 1))
        .await
        .unwrap());
    assert_eq!(job_row(&app.pool, job).await.0, None);
    // B's attempt is postponed (DHMAD's budget spent): it gives its attempt's number back,
    // and A's number is the job's again. A's outcome is still not B's to lose, nor may a
    // third worker take the job while A runs on.
    let b = as_claimed(2, 2);
    assert!(
        db::outbox::postpone(&app.pool, &b, std::time::Duration::from_secs(3600))
            .await
            .unwrap()
    );
    assert!(!db::outbox::finish(&app.pool, &as_claimed(1, 1))
        .await
        .unwrap());
    assert_eq!(job_row(&app.pool, job).await.0, None);
    sqlx::query(claim)
        .bind(job)
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(db::outbox::finish(&app.pool, &as_claimed(2, 3))
        .await
        .unwrap());
    assert!(job_row(&app.pool, job).await.0.is_some());
    // Once it is done, "run now" queues a fresh job, as for any closed one.
    assert!(db::outbox::run_now(&app.pool, "email_confirmation", id)
        .await
        .unwrap());

    // During a rolling deploy, a binary from before `claims` takes the fresh job once its
    // lease lapsed: it counts the attempt only. The first claim's outcome is still refused.
    let fresh: i64 =
        sqlx::query_scalar("SELECT id FROM outbox_jobs WHERE order_id = $1 AND done_at IS NULL")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    sqlx::query(claim)
        .bind(fresh)
        .execute(&app.pool)
        .await
        .unwrap();
    let old_binary = "UPDATE outbox_jobs SET attempts = attempts + 1,
                             run_after = now() + interval '2 minutes',
                             claimed_until = now() + interval '2 minutes' WHERE id = $1";
    sqlx::query(old_binary)
        .bind(fresh)
        .execute(&app.pool)
        .await
        .unwrap();
    let first = db::outbox::Job {
        id: fresh,
        ..as_claimed(1, 1)
    };
    assert!(!db::outbox::finish(&app.pool, &first).await.unwrap());
    assert_eq!(job_row(&app.pool, fresh).await.0, None);
}

/// A paid instant order whose deliver gave up an hour ago: the reconciler's to queue again.
async fn owed_a_deliver(app: &TestApp, email: &str, escrow: &str) -> (Uuid, i64) {
    let id = app.seed_order("ai-credits-500", email, escrow, t(0)).await;
    sqlx::query("UPDATE orders SET status = 'paid', escrow_status = 'paid' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let dead = add_job(&app.pool, id, "deliver", "dead").await;
    sqlx::query(
        "UPDATE outbox_jobs SET done_at = now() - interval '1 hour',
                gave_up_at = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(dead)
    .execute(&app.pool)
    .await
    .unwrap();
    (id, dead)
}

/// Until a statement of the database waits on a row lock (the one a test holds).
async fn waiting_on_a_lock(pool: &PgPool) {
    wait_for("a statement waiting on the order's lock", 10, || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
}

async fn open_delivers(pool: &PgPool, order: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM outbox_jobs WHERE order_id = $1 AND kind = 'deliver'
          AND done_at IS NULL",
    )
    .bind(order)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The merchant abandons a dead deliver (a refund made outside DHMAD, say) while the
/// reconciler queues it again. The re-queue read the job before the abandon committed, and
/// queued the deliver the merchant had just called off: DHMAD would release the money. Both
/// now take the order's lock, so one waits for the other.
#[sqlx::test(migrations = "./migrations")]
async fn an_abandon_and_the_reconcilers_requeue_do_not_cross(pool: PgPool) {
    // The service's bounded waits: a statement that waits on the lock below gives up in time.
    let app = std::sync::Arc::new(spawn_offline(production_pool(&pool)).await);
    // The service's own pass at start is over: it would queue the deliver itself.
    after_first_reconciler_pass(&[&app]).await;

    // The merchant's abandon waits for the order's lock (held here as a re-queue holds it).
    let (first, dead) =
        owed_a_deliver(&app, "abandon-1@example.tn", "66bb000000000000000000f1").await;
    let held = holding_the_order(&app.pool, first).await;
    let abandon = tokio::spawn({
        let app = std::sync::Arc::clone(&app);
        async move { act(&app, &format!("/admin/outbox/{dead}/abandon")).await }
    });
    waiting_on_a_lock(&pool).await;
    assert_eq!(
        job_row(&app.pool, dead).await.1,
        None,
        "abandoned past the lock"
    );
    held.commit().await.unwrap();
    assert_eq!(abandon.await.unwrap(), "/admin/outbox?notice=job_abandoned");

    // The reconciler's re-queue waits for it too (held here as the merchant's abandon holds
    // it), and then sees the abandon.
    let (second, dead) =
        owed_a_deliver(&app, "abandon-2@example.tn", "66bb000000000000000000f2").await;
    let mut merchant = holding_the_order(&app.pool, second).await;
    let pass = tokio::spawn({
        let app = std::sync::Arc::clone(&app);
        async move {
            storefront::jobs::reconciler::run_once(&app.state, std::time::Duration::from_secs(3600))
                .await
                .unwrap()
        }
    });
    waiting_on_a_lock(&pool).await;
    db::admin_consoles::abandon_job(&mut *merchant, dead)
        .await
        .unwrap();
    merchant.commit().await.unwrap();
    let pass = pass.await.unwrap();
    // It waited and decided (a lock timeout would leave nothing queued without deciding).
    assert_eq!(pass.failed, 0, "{pass:?}");
    assert_eq!(pass.delivers_requeued, 0, "{pass:?}");
    assert_eq!(open_delivers(&app.pool, second).await, 0);
}

/// The reconciler's list said a deliver was owed; by the time the order's lock is taken a
/// webhook may have moved it on (delivered, say). Nothing is queued then: the re-queue looks
/// again under the lock.
#[sqlx::test(migrations = "./migrations")]
async fn a_deliver_is_queued_again_only_while_still_owed(pool: PgPool) {
    let app = spawn_offline(pool).await;
    after_first_reconciler_pass(&[&app]).await;
    let (id, _) = owed_a_deliver(&app, "moved-on@example.tn", "66bb000000000000000000f3").await;
    let set = |status: &'static str| {
        sqlx::query("UPDATE orders SET status = $2::order_status, escrow_status = $2 WHERE id = $1")
            .bind(id)
            .bind(status)
            .execute(&app.pool)
    };
    set("delivered").await.unwrap();
    let requeue = || storefront::orders::fulfilment::requeue_deliver(&app.state, id);
    assert!(!requeue().await.unwrap());
    assert_eq!(open_delivers(&app.pool, id).await, 0);
    set("paid").await.unwrap();
    assert!(requeue().await.unwrap());
    assert_eq!(open_delivers(&app.pool, id).await, 1);
}
