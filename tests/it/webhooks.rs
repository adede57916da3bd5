//! Webhook ingestion against real Postgres: refusals, idempotency under duplicates and
//! concurrency, ordering, unknown events. DHMAD itself is not needed: events are signed here.

use crate::common::*;
use dhmad::{webhook::SignedDelivery, Event, WebhookEnvelope};
use serde_json::{json, Value};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const ESCROW: &str = "66bb00000000000000000001";

fn t(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - Duration::hours(1) + Duration::minutes(minutes)
}

/// A signed `escrow.status.updated` for the test escrow.
fn snapshot(status: &str, old: &str, mode: &str, at: OffsetDateTime) -> SignedDelivery {
    sign(&status_event(escrow(ESCROW, status, old, mode, at)))
}

async fn result_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A delivery pretty-printed on the way (a proxy, a sender's library), whose signature covers
/// its compact form as DHMAD signs it: applied, not refused with a 401 DHMAD never retries.
#[sqlx::test(migrations = "./migrations")]
async fn a_body_reformatted_on_the_way_is_applied(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("chechia-red", "buyer@example.tn", ESCROW, t(0))
        .await;
    let mut d = snapshot("paid", "pending", "quick", t(1));
    let body: Value = serde_json::from_slice(&d.body).unwrap();
    d.body = serde_json::to_vec_pretty(&body).unwrap();
    assert_eq!(
        result_of(app.deliver(&d).await).await,
        (200, json!({"result": "processed"}))
    );
    assert_eq!(order_status(&app.pool, id).await, "paid");
}

/// The envelope's `timestamp` is not used to apply an event: one missing or not in the form
/// expected (a space for the `T`, an offset without a colon, `null`) still applies. The body was
/// refused as no envelope (400), and DHMAD never sends a 4xx again: the payment was lost.
#[sqlx::test(migrations = "./migrations")]
async fn an_envelope_timestamp_in_another_form_does_not_lose_the_event(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("chechia-red", "buyer@example.tn", ESCROW, t(0))
        .await;
    let mut d = snapshot("paid", "pending", "quick", t(1));
    let body = String::from_utf8(d.body.clone()).unwrap();
    let sent = body.split(r#""timestamp":""#).nth(1).unwrap();
    let sent = &sent[..sent.find('"').unwrap()];
    let odd = body.replacen(&format!(r#""{sent}""#), r#""2026-07-02 09:00:00+0100""#, 1);
    assert_ne!(odd, body);
    d.body = odd.into_bytes();
    d.signature = dhmad::webhook::sign(SECRET, &d.body);
    assert_eq!(
        result_of(app.deliver(&d).await).await,
        (200, json!({"result": "processed"}))
    );
    assert_eq!(order_status(&app.pool, id).await, "paid");
}

#[sqlx::test(migrations = "./migrations")]
async fn the_same_event_five_times_transitions_once(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("chechia-red", "buyer@example.tn", ESCROW, t(0))
        .await;
    let d = snapshot("paid", "pending", "quick", t(1));
    let mut results = Vec::new();
    for _ in 0..5 {
        results.push(result_of(app.deliver(&d).await).await);
    }
    assert_eq!(results[0], (200, json!({"result": "processed"})));
    for r in &results[1..] {
        assert_eq!(*r, (200, json!({"result": "duplicate"})));
    }
    assert_eq!(order_status(&app.pool, id).await, "paid");
    assert_eq!(timeline_count(&app.pool, id, "pending → paid").await, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn fifty_concurrent_deliveries_give_one_transition_and_one_deliver_job(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("ai-credits-500", "buyer@example.tn", ESCROW, t(0))
        .await;
    let d = snapshot("paid", "pending", "instant", t(1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (http, url, d) = (app.http.clone(), app.url("/webhooks/dhmad"), d.clone());
        tasks.spawn(async move {
            let mut req = http.post(url).body(d.body.clone());
            for (k, v) in d.headers() {
                req = req.header(k, v);
            }
            result_of(req.send().await.unwrap()).await
        });
    }
    let results = tasks.join_all().await;
    let processed = results
        .iter()
        .filter(|r| r.1["result"] == "processed")
        .count();
    let duplicates = results
        .iter()
        .filter(|r| r.1["result"] == "duplicate")
        .count();
    assert!(results.iter().all(|r| r.0 == 200), "{results:?}");
    assert_eq!((processed, duplicates), (1, 49));

    let order = app.order_json(id).await;
    assert_eq!(order["status"], "paid");
    assert_eq!(order["escrow_status"], "paid");
    assert!(order["digital_code"]
        .as_str()
        .is_some_and(|c| c.starts_with("AIC-")));
    let jobs = sqlx::query_scalar!(
        "SELECT count(*) FROM outbox_jobs WHERE order_id = $1 AND kind = 'deliver'",
        id
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(jobs, Some(1), "exactly one deliver job");
    assert_eq!(timeline_count(&app.pool, id, "pending → paid").await, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn an_older_snapshot_after_a_newer_one_changes_nothing(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("chechia-red", "buyer@example.tn", ESCROW, t(0))
        .await;
    let delivered = snapshot("delivered", "paid", "quick", t(2));
    let paid = snapshot("paid", "pending", "quick", t(1));
    assert_eq!(
        result_of(app.deliver(&delivered).await).await.1["result"],
        "processed"
    );
    assert_eq!(
        result_of(app.deliver(&paid).await).await.1["result"],
        "processed"
    );
    let o = app.order_json(id).await;
    assert_eq!(
        (o["status"].as_str(), o["escrow_status"].as_str()),
        (Some("delivered"), Some("delivered"))
    );

    // The documented backwards move (delivery rejected) is newer, so it applies.
    let rejected = snapshot("paid", "delivered", "quick", t(3));
    app.deliver_processed(&rejected).await;
    assert_eq!(app.order_json(id).await["status"], "paid");

    // Completed is final, even if an older or odd snapshot follows.
    app.deliver_processed(&snapshot("completed", "delivered", "quick", t(5)))
        .await;
    app.deliver_processed(&snapshot("delivered", "paid", "quick", t(9)))
        .await;
    assert_eq!(app.order_json(id).await["status"], "completed");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_same_status_snapshot_still_moves_the_clock_forward(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("chechia-red", "buyer@example.tn", ESCROW, t(0))
        .await;
    app.deliver_processed(&snapshot("paid", "pending", "quick", t(1)))
        .await;
    // The buyer rejected a delivery: DHMAD's newest word is `paid` (t3). The `delivered` of t2
    // it undid arrives last, and must not win just because it is newer than the first `paid`.
    app.deliver_processed(&snapshot("paid", "delivered", "quick", t(3)))
        .await;
    app.deliver_processed(&snapshot("delivered", "paid", "quick", t(2)))
        .await;
    let o = app.order_json(id).await;
    assert_eq!(
        (o["status"].as_str(), o["escrow_status"].as_str()),
        (Some("paid"), Some("paid"))
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn unknown_types_and_unknown_escrows_are_kept_and_acknowledged(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let ev = Event::Unknown {
        event_type: "escrow.teleported".into(),
        data: json!({"anything": [1, 2]}),
    };
    let env = WebhookEnvelope::new(Uuid::new_v4().to_string(), OffsetDateTime::now_utc(), &ev);
    assert_eq!(
        result_of(app.deliver(&sign(&env)).await).await,
        (200, json!({"result": "ignored"}))
    );

    let stranger = status_event(escrow(
        "66cc00000000000000000009",
        "paid",
        "pending",
        "quick",
        t(1),
    ));
    assert_eq!(
        result_of(app.deliver(&sign(&stranger)).await).await,
        (200, json!({"result": "unmatched"}))
    );

    let rows =
        sqlx::query!("SELECT event_id, outcome, payload FROM webhook_inbox ORDER BY received_at")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].event_id.as_str(), rows[0].outcome.as_str()),
        (env.id.as_str(), "ignored")
    );
    assert_eq!(rows[0].payload["data"]["anything"], json!([1, 2]));
    assert_eq!(rows[1].outcome, "unmatched");
}

/// A known type whose data does not read as documented (here `escrow.cancellation.requested`
/// without its `cancellationRequest`) still carries the escrow's snapshot: its status applies
/// (a payment whose own event was lost, here), the inbox row names the order and stays
/// `ignored` (to reprocess once it reads), and the merchant's timeline says what was not read.
/// Before, the snapshot was thrown away and the row tied to no order.
#[sqlx::test(migrations = "./migrations")]
async fn an_event_whose_data_does_not_read_still_applies_its_escrow(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = snapshot_only(&app, "escrow.cancellation.requested", "paid").await;
    let unread: Vec<String> = sqlx::query_scalar(
        "SELECT detail FROM order_events WHERE order_id = $1 AND kind = 'event_unread'",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(unread.len(), 1, "{unread:?}");
    assert!(unread[0].contains("cancellationRequest"), "{unread:?}");
    // Reprocessed while it still reads as it did, it has nothing new to apply: each click
    // added the same line again.
    let event_id: String =
        sqlx::query_scalar("SELECT event_id FROM webhook_inbox WHERE order_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    for _ in 0..2 {
        assert!(reprocess(&app, &event_id)
            .await
            .contains("notice=event_ignored"));
    }
    assert_eq!(
        timeline_count(&app.pool, id, "did not read as documented").await,
        1
    );
}

/// The merchant's "Reprocess" of one inbox event; where it sent them.
async fn reprocess(app: &TestApp, event_id: &str) -> String {
    let r = app
        .http
        .post(app.url(&format!("/admin/inbox/{event_id}/reprocess")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// An event an older build kept as `ignored` with nothing applied (its type unknown to it),
/// which carries its escrow: reprocessing it applies the snapshot, once.
#[sqlx::test(migrations = "./migrations")]
async fn an_unread_event_an_older_build_kept_applies_when_reprocessed(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("ai-credits-500", "older-build@example.tn", ESCROW, t(0))
        .await;
    let env = WebhookEnvelope {
        id: Uuid::new_v4().to_string(),
        event_type: "escrow.funds.refunded".into(),
        timestamp: Some(OffsetDateTime::now_utc()),
        data: json!({"escrow": escrow(ESCROW, "paid", "pending", "instant", t(1))}),
    };
    sqlx::query(
        "INSERT INTO webhook_inbox (event_id, event_type, escrow_id, outcome, payload)
         VALUES ($1, $2, $3, 'ignored', $4)",
    )
    .bind(&env.id)
    .bind(&env.event_type)
    .bind(ESCROW)
    .bind(serde_json::to_value(&env).unwrap())
    .execute(&app.pool)
    .await
    .unwrap();
    reprocess(&app, &env.id).await;
    assert_eq!(order_status(&app.pool, id).await, "paid");
    reprocess(&app, &env.id).await;
    assert_eq!(
        timeline_count(&app.pool, id, "did not read as documented").await,
        1
    );
}

/// An event type this client does not know that carries the escrow (DHMAD adds events; here
/// a refund that cancels): its snapshot applies, as for a known type that does not read, and
/// the row names the order. Before, it was `ignored` with no order, and the cancellation
/// waited for the reconciler.
#[sqlx::test(migrations = "./migrations")]
async fn an_unknown_event_type_still_applies_its_escrow(pool: PgPool) {
    let app = spawn_offline(pool).await;
    snapshot_only(&app, "escrow.funds.refunded", "cancelled").await;
}

/// Delivers an `event_type` whose data holds only the escrow, moving a seeded order's escrow
/// from pending to `status`, and checks what only its snapshot can do: answered `ignored`, the
/// order moved, the inbox row tied to it. The order's id.
async fn snapshot_only(app: &TestApp, event_type: &str, status: &str) -> Uuid {
    let email = format!("{}@example.tn", event_type.replace('.', "-"));
    let id = app.seed_order("ai-credits-500", &email, ESCROW, t(0)).await;
    let env = WebhookEnvelope {
        id: Uuid::new_v4().to_string(),
        event_type: event_type.into(),
        timestamp: Some(OffsetDateTime::now_utc()),
        data: json!({"escrow": escrow(ESCROW, status, "pending", "instant", t(1))}),
    };
    assert_eq!(
        result_of(app.deliver(&sign(&env)).await).await,
        (200, json!({"result": "ignored"}))
    );
    let o = app.order_json(id).await;
    assert_eq!(o["status"], status, "{o}");
    let row = sqlx::query!(
        "SELECT outcome, order_id FROM webhook_inbox WHERE event_id = $1",
        env.id
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((row.outcome.as_str(), row.order_id), ("ignored", Some(id)));
    id
}

#[sqlx::test(migrations = "./migrations")]
async fn a_rejected_deposit_proof_asks_the_buyer_to_pay_again(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("ai-credits-500", "guest@example.tn", ESCROW, t(0))
        .await;
    let data = json!({
        "escrow": escrow(ESCROW, "pending", "pending", "instant", t(1)),
        "depositProof": {"id": "p1", "buyerEmail": "guest@example.tn", "reason": "Blurry receipt", "amount": 15, "method": "d17"}
    });
    let ev = Event::from_parts("escrow.deposit_proof.rejected", data).unwrap();
    let env = WebhookEnvelope::new(Uuid::new_v4().to_string(), OffsetDateTime::now_utc(), &ev);
    let d: SignedDelivery = sign(&env);
    assert_eq!(
        result_of(app.deliver(&d).await).await.1["result"],
        "processed"
    );

    let o = app.order_json(id).await;
    assert_eq!(o["status"], "awaiting_payment");
    assert_eq!(o["deposit_rejection_reason"], "Blurry receipt");
    let page = app.order_page(id).await;
    assert!(page.contains("Blurry receipt"), "{page}");
    assert!(
        page.contains(&format!("/orders/{id}/pay")),
        "offers to pay again"
    );

    // Paying afterwards clears the rejection.
    app.deliver_processed(&snapshot("paid", "pending", "instant", t(2)))
        .await;
    assert_eq!(
        app.order_json(id).await["deposit_rejection_reason"],
        Value::Null
    );
}

/// How many of the order's timeline lines are events taken as late.
async fn late_events(app: &TestApp, id: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM order_events WHERE order_id = $1 AND kind = 'late_event'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// A signed event of `kind` for the test escrow with `data`.
fn event(kind: &str, data: Value) -> SignedDelivery {
    let ev = Event::from_parts(kind, data).unwrap();
    sign(&WebhookEnvelope::new(
        Uuid::new_v4().to_string(),
        OffsetDateTime::now_utc(),
        &ev,
    ))
}

/// The order's open deliver jobs.
async fn open_delivers(pool: &PgPool, id: Uuid) -> Option<i64> {
    sqlx::query_scalar!(
        "SELECT count(*) FROM outbox_jobs
          WHERE order_id = $1 AND kind = 'deliver' AND done_at IS NULL",
        id
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A dispute DHMAD closes with the money still held puts an instant order back to paid: the
/// deliver DHMAD waits for is due again, though the one queued with the payment was closed
/// while the dispute was open ("nothing to deliver"), and nothing else would queue it.
#[sqlx::test(migrations = "./migrations")]
async fn paid_again_after_a_dispute_queues_the_deliver_again(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("ai-credits-500", "disputed@example.tn", ESCROW, t(0))
        .await;
    let open_delivers = || open_delivers(&app.pool, id);
    app.deliver_processed(&snapshot("paid", "pending", "instant", t(1)))
        .await;
    assert_eq!(open_delivers().await, Some(1));
    app.deliver_processed(&snapshot("disputed", "paid", "instant", t(2)))
        .await;
    // The worker found the order disputed and closed the job.
    sqlx::query!(
        "UPDATE outbox_jobs SET done_at = now(), last_error = NULL
          WHERE order_id = $1 AND kind = 'deliver'",
        id
    )
    .execute(&app.pool)
    .await
    .unwrap();
    app.deliver_processed(&snapshot("paid", "disputed", "instant", t(3)))
        .await;
    assert_eq!(app.order_json(id).await["status"], "paid");
    assert_eq!(open_delivers().await, Some(1));
}

/// Once DHMAD holds the money, nothing leads back to pending (§2.3). A snapshot saying so with
/// a later clock (a guest proof's rejection, rejected after the escrow was paid another way)
/// is older news: the order stays paid. Before, it went back to awaiting payment, offered
/// "Pay" again, and its next `paid` fulfilled it a second time.
#[sqlx::test(migrations = "./migrations")]
async fn a_paid_order_does_not_go_back_to_awaiting_payment(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("ai-credits-500", "no-way-back@example.tn", ESCROW, t(0))
        .await;
    app.deliver_processed(&snapshot("paid", "pending", "instant", t(1)))
        .await;
    app.deliver_processed(&snapshot("pending", "paid", "instant", t(2)))
        .await;
    let o = app.order_json(id).await;
    assert_eq!(o["status"], "paid", "{o}");
    app.deliver_processed(&snapshot("paid", "pending", "instant", t(3)))
        .await;
    let funded = sqlx::query_scalar!(
        "SELECT count(*) FROM order_events WHERE order_id = $1 AND kind = 'escrow_status'
            AND detail LIKE '%→ paid%'",
        id
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(funded, Some(1), "paid once");
}

/// The same, when the merchant had abandoned the deliver (to refund the buyer, say): paid
/// again after the dispute, nothing sends it behind the merchant's back.
#[sqlx::test(migrations = "./migrations")]
async fn paid_again_after_a_dispute_keeps_an_abandoned_deliver_abandoned(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("ai-credits-500", "abandoned@example.tn", ESCROW, t(0))
        .await;
    app.deliver_processed(&snapshot("paid", "pending", "instant", t(1)))
        .await;
    let abandoned = sqlx::query!(
        "UPDATE outbox_jobs SET done_at = now(), abandoned_at = now()
          WHERE order_id = $1 AND kind = 'deliver' AND done_at IS NULL",
        id
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(abandoned.rows_affected(), 1);
    app.deliver_processed(&snapshot("disputed", "paid", "instant", t(2)))
        .await;
    app.deliver_processed(&snapshot("paid", "disputed", "instant", t(3)))
        .await;
    assert_eq!(app.order_json(id).await["status"], "paid");
    let open = || open_delivers(&app.pool, id);
    assert_eq!(open().await, Some(0));
    // The merchant queues one again; it closes while another dispute is open ("nothing to
    // deliver"); that dispute ends with the money held: the merchant's last word was to
    // deliver, so the deliver is queued again.
    assert!(storefront::db::outbox::run_now(&app.pool, "deliver", id)
        .await
        .unwrap());
    app.deliver_processed(&snapshot("disputed", "paid", "instant", t(4)))
        .await;
    sqlx::query!(
        "UPDATE outbox_jobs SET done_at = now()
          WHERE order_id = $1 AND kind = 'deliver' AND done_at IS NULL",
        id
    )
    .execute(&app.pool)
    .await
    .unwrap();
    app.deliver_processed(&snapshot("paid", "disputed", "instant", t(5)))
        .await;
    assert_eq!(open().await, Some(1));
}

/// A submission and a correction request may each follow the other, so the phase alone cannot
/// tell a submission delivered late from a new one: the correction rounds can. A late
/// submission does not hide the correction the buyer asked for (the shop's "upload the proof"
/// would disappear while DHMAD waits for it); the next one is news again.
#[sqlx::test(migrations = "./migrations")]
async fn a_submission_delivered_late_does_not_undo_a_correction_request(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("pottery-nabeul", "rounds@example.tn", ESCROW, t(0))
        .await;
    app.deliver_processed(&snapshot("paid", "pending", "quick", t(1)))
        .await;
    let proof = |kind: &str, phase: &str, rounds: Option<u32>| {
        event(
            kind,
            json!({
                "escrow": {"id": ESCROW, "title": "test", "status": "paid", "mode": "quick"},
                "proof": {"phase": phase, "correctionRounds": rounds}
            }),
        )
    };
    let submitted = "submitted_waiting_buyer_review";
    let phase_after = |kind: &'static str, phase: &'static str, rounds: Option<u32>| {
        let app = &app;
        let delivery = proof(kind, phase, rounds);
        async move {
            let (status, _) = result_of(app.deliver(&delivery).await).await;
            assert_eq!(status, 200);
            app.order_json(id).await["proof_phase"].clone()
        }
    };
    assert_eq!(
        phase_after("escrow.proof.submitted", submitted, Some(0)).await,
        submitted
    );
    let asked = "correction_requested";
    assert_eq!(
        phase_after("escrow.proof.correction_requested", asked, Some(1)).await,
        asked
    );
    // The first submission again, delivered late (a retry after a failed delivery).
    assert_eq!(
        phase_after("escrow.proof.submitted", submitted, Some(0)).await,
        asked
    );
    // The shop's new submission.
    assert_eq!(
        phase_after("escrow.proof.submitted", submitted, Some(1)).await,
        submitted
    );
    // DHMAD's retry of the round-1 request, which that submission answered (its first delivery
    // failed): the buyer's "Review the proof" stays (it used to go back to "asked").
    assert_eq!(
        phase_after("escrow.proof.correction_requested", asked, Some(1)).await,
        submitted
    );
    // So does a read DHMAD answered before the new submission.
    let mut read = escrow(ESCROW, "paid", "paid", "quick", t(1));
    read.proof_info =
        Some(serde_json::from_value(json!({"phase": asked, "correctionRounds": 1})).unwrap());
    storefront::orders::sync::apply_in_tx(&app.state, &read, "a slow read")
        .await
        .unwrap();
    assert_eq!(app.order_json(id).await["proof_phase"], submitted);
    // A new request (round 2) is news.
    assert_eq!(
        phase_after("escrow.proof.correction_requested", asked, Some(2)).await,
        asked
    );
    assert_eq!(
        phase_after("escrow.proof.submitted", submitted, Some(2)).await,
        submitted
    );
    // An event that does not count its rounds is not taken for round 0: ordered by its phase.
    assert_eq!(
        phase_after("escrow.proof.accepted", "accepted", None).await,
        "accepted"
    );
    let late = late_events(&app, id).await;
    assert_eq!(late, 2);
}

/// DHMAD leaves UNSTATED whether the upload deadline runs while a correction is awaited
/// (§2.4); the sandbox expires the gate then, as before the first upload. The expiry is news,
/// not a late event: the buyer is told why the order was cancelled.
#[sqlx::test(migrations = "./migrations")]
async fn a_correction_awaited_past_its_deadline_expires_the_proof(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("pottery-nabeul", "no-correction@example.tn", ESCROW, t(0))
        .await;
    app.deliver_processed(&snapshot("paid", "pending", "quick", t(1)))
        .await;
    for (kind, phase, rounds) in [
        (
            "escrow.proof.submitted",
            "submitted_waiting_buyer_review",
            0,
        ),
        (
            "escrow.proof.correction_requested",
            "correction_requested",
            1,
        ),
        ("escrow.proof.expired", "expired_no_proof", 1),
    ] {
        let delivery = event(
            kind,
            json!({
                "escrow": {"id": ESCROW, "title": "test", "status": "paid", "mode": "quick"},
                "proof": {"phase": phase, "correctionRounds": rounds}
            }),
        );
        assert_eq!(result_of(app.deliver(&delivery).await).await.0, 200);
    }
    assert_eq!(app.order_json(id).await["proof_phase"], "expired_no_proof");
    assert_eq!(late_events(&app, id).await, 0);
    let page = app.order_page(id).await;
    assert!(page.contains("The shop sent no proof in time"), "{page}");
}

/// DHMAD's proof events carry no clock (`data.escrow {id, title, status, mode}`), so a read of
/// the escrow that DHMAD answered before the buyer accepted the proof, applied after the
/// acceptance's event, looks as new as the order: it must not reopen the gate. Before, it put
/// the phase back to "submitted": the ship was refused and the buyer asked to review again.
#[sqlx::test(migrations = "./migrations")]
async fn a_read_answered_before_the_proof_was_accepted_does_not_undo_it(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("pottery-nabeul", "slow-read@example.tn", ESCROW, t(0))
        .await;
    app.deliver_processed(&snapshot("paid", "pending", "quick", t(1)))
        .await;
    let accepted = event(
        "escrow.proof.accepted",
        json!({
            "escrow": {"id": ESCROW, "title": "test", "status": "paid", "mode": "quick"},
            "proof": {"phase": "accepted", "correctionRounds": 0}
        }),
    );
    assert_eq!(result_of(app.deliver(&accepted).await).await.0, 200);
    assert_eq!(app.order_json(id).await["proof_phase"], "accepted");

    // The read, made while the proof waited for the buyer, dated as the payment.
    let mut read = escrow(ESCROW, "paid", "paid", "quick", t(1));
    read.proof_info =
        Some(serde_json::from_value(json!({"phase": "submitted_waiting_buyer_review"})).unwrap());
    storefront::orders::sync::apply_in_tx(&app.state, &read, "a slow read")
        .await
        .unwrap();
    assert_eq!(app.order_json(id).await["proof_phase"], "accepted");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_retried_older_event_does_not_undo_newer_facts(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("pottery-nabeul", "late@example.tn", ESCROW, t(0))
        .await;
    app.deliver_processed(&snapshot("paid", "pending", "quick", t(1)))
        .await;
    // Proof events carry no clock: the phase itself tells news from a retry.
    let proof = |kind: &str, phase: &str| {
        event(
            kind,
            json!({
                "escrow": {"id": ESCROW, "title": "test", "status": "paid", "mode": "quick"},
                "proof": {"phase": phase, "correctionRounds": 0, "submissionCount": 1}
            }),
        )
    };
    for (kind, phase) in [
        ("escrow.proof.submitted", "submitted_waiting_buyer_review"),
        ("escrow.proof.accepted", "accepted"),
        // DHMAD's retry of the submission, delivered after the acceptance.
        ("escrow.proof.submitted", "submitted_waiting_buyer_review"),
    ] {
        let (status, body) = result_of(app.deliver(&proof(kind, phase)).await).await;
        assert_eq!((status, body["result"].as_str()), (200, Some("processed")));
    }
    assert_eq!(app.order_json(id).await["proof_phase"], "accepted");
    let late = late_events(&app, id).await;
    assert_eq!(late, 1, "the retry is on the timeline as late");
    // The buyer is not asked again to review a proof accepted already: the timeline has the
    // first submission's line only.
    let page = app.order_page(id).await;
    assert_eq!(page.matches("review it below").count(), 1, "{page}");

    // Two edits of the amount, the newer one first.
    let updated = |amount: u32, at: OffsetDateTime| {
        let mut e = serde_json::to_value(escrow(ESCROW, "paid", "paid", "quick", at)).unwrap();
        e["amount"] = json!(amount);
        event(
            "escrow.updated",
            json!({"escrow": e, "updatedFields": ["amount"]}),
        )
    };
    app.deliver_processed(&updated(150, t(3))).await;
    app.deliver_processed(&updated(120, t(2))).await;
    assert_eq!(app.order_json(id).await["amount"], "150.000");
    // An edit delivered late, after other news moved the escrow's clock on, still counts: it
    // is newer than the amount kept. (That news says nothing of the amount here; one that
    // does is believed by its own date, `an_amount_edit_whose_event_is_lost_is_learned_…`.)
    let mut delivered = escrow(ESCROW, "delivered", "paid", "quick", t(6));
    delivered.amount = None;
    app.deliver_processed(&sign(&status_event(delivered))).await;
    app.deliver_processed(&updated(170, t(4))).await;
    assert_eq!(app.order_json(id).await["amount"], "170.000");
    // An edit back to the amount already kept still moves its clock: the edit it reverted,
    // arriving after it, changes nothing.
    app.deliver_processed(&updated(170, t(8))).await;
    app.deliver_processed(&updated(190, t(7))).await;
    assert_eq!(app.order_json(id).await["amount"], "170.000");
    // An edit DHMAD did not date may be older than any: it does not replace a dated one
    // (it used to, always).
    let mut undated = serde_json::to_value(escrow(ESCROW, "paid", "paid", "quick", t(9))).unwrap();
    undated["amount"] = json!(110);
    undated.as_object_mut().unwrap().remove("updatedAt");
    let ev = event(
        "escrow.updated",
        json!({"escrow": undated, "updatedFields": ["amount"]}),
    );
    app.deliver_processed(&ev).await;
    assert_eq!(app.order_json(id).await["amount"], "170.000");
    // An amount the order cannot hold does not fail the event (DHMAD's retries would fail
    // alike, and the event would be lost): it is applied without it.
    for odd in [
        json!(0),
        json!(-5),
        json!(1e12),
        json!(0.0004),
        json!(999_999_999.999_6),
    ] {
        let mut e =
            serde_json::to_value(escrow(ESCROW, "delivered", "delivered", "quick", t(9))).unwrap();
        e["amount"] = odd.clone();
        let ev = event(
            "escrow.updated",
            json!({"escrow": e, "updatedFields": ["amount"]}),
        );
        let (status, body) = result_of(app.deliver(&ev).await).await;
        assert_eq!(
            (status, body["result"].as_str()),
            (200, Some("processed")),
            "{odd}"
        );
    }
    assert_eq!(app.order_json(id).await["amount"], "170.000");
}

/// A cancellation event whose snapshot is older than one applied already (DHMAD does not order
/// events): the buyer asked to cancel a paid quick order, the shop's delivery landed first.
/// The request still counts; no escrow snapshot would ever bring it. A late request never
/// undoes a final answer.
#[sqlx::test(migrations = "./migrations")]
async fn a_late_cancellation_request_still_counts(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("chechia-red", "buyer@example.tn", ESCROW, t(0))
        .await;
    let cancellation = |kind: &str, status: &str, at: OffsetDateTime| {
        let mut data = json!({
            "escrow": escrow(ESCROW, "paid", "paid", "quick", at),
            "cancellationRequest": {
                "reason": "changed my mind",
                "status": status,
                "requestedAt": dhmad::iso::format(at),
            },
        });
        if status == "rejected" {
            data["escrow"]["status"] = json!("delivered");
        }
        let ev = Event::from_parts(kind, data).unwrap();
        sign(&WebhookEnvelope::new(
            Uuid::new_v4().to_string(),
            OffsetDateTime::now_utc(),
            &ev,
        ))
    };
    let cancellation_of = || async { app.order_json(id).await["cancellation"].clone() };
    app.deliver_processed(&snapshot("paid", "pending", "quick", t(1)))
        .await;
    app.deliver_processed(&snapshot("delivered", "paid", "quick", t(3)))
        .await;
    let late = app
        .deliver(&cancellation(
            "escrow.cancellation.requested",
            "pending",
            t(2),
        ))
        .await;
    assert_eq!(result_of(late).await, (200, json!({"result": "processed"})));
    assert_eq!(cancellation_of().await, "requested");

    // The shop's answer, then the request again (a retry): the answer stands.
    app.deliver_processed(&cancellation(
        "escrow.cancellation.rejected",
        "rejected",
        t(4),
    ))
    .await;
    assert_eq!(cancellation_of().await, "rejected");
    app.deliver_processed(&cancellation(
        "escrow.cancellation.requested",
        "pending",
        t(2),
    ))
    .await;
    assert_eq!(cancellation_of().await, "rejected");
}

/// DHMAD's clock three minutes ahead of ours (the verifier takes up to five): its snapshots are
/// still ordered by their own clock. A minute's allowance made each of them count as "now", so a
/// retried `paid` that arrived after `delivered` moved the order back to paid.
#[sqlx::test(migrations = "./migrations")]
async fn a_dhmad_clock_ahead_of_ours_still_orders_its_snapshots(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let ahead = |s: i64| OffsetDateTime::now_utc() + Duration::seconds(s);
    let id = app
        .seed_order("chechia-red", "buyer@example.tn", ESCROW, ahead(170))
        .await;
    app.deliver_processed(&snapshot("paid", "pending", "quick", ahead(175)))
        .await;
    app.deliver_processed(&snapshot("delivered", "paid", "quick", ahead(185)))
        .await;
    assert_eq!(order_status(&app.pool, id).await, "delivered");
    // A retry of the older `paid`, arriving last.
    let (status, body) = result_of(
        app.deliver(&snapshot("paid", "pending", "quick", ahead(180)))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(order_status(&app.pool, id).await, "delivered");
}

/// News that reaches an order already over (a retried rejection of a delivery, after the
/// buyer confirmed receipt) tells the buyer nothing: "the shop will ship again" would be false.
#[sqlx::test(migrations = "./migrations")]
async fn news_for_a_completed_order_adds_no_line_for_the_buyer(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("chechia-red", "over@example.tn", ESCROW, t(0))
        .await;
    app.deliver_processed(&snapshot("paid", "pending", "quick", t(1)))
        .await;
    app.deliver_processed(&snapshot("completed", "delivered", "quick", t(3)))
        .await;
    let rejected = event(
        "escrow.delivery.rejected",
        json!({
            "escrow": {"id": ESCROW, "title": "test", "status": "paid", "oldStatus": "delivered",
                       "mode": "quick", "updatedAt": dhmad::iso::format(t(2))},
            "deliveryRejection": {"rejectedAt": dhmad::iso::format(t(2)), "reason": "wrong size"}
        }),
    );
    let (status, _) = result_of(app.deliver(&rejected).await).await;
    assert_eq!(status, 200);
    assert_eq!(app.order_json(id).await["status"], "completed");
    let page = app.order_page(id).await;
    assert!(
        !page.contains("ship again") && !page.contains("wrong size"),
        "{page}"
    );
    assert_eq!(
        timeline_count(&app.pool, id, "rejected the delivery").await,
        1
    );
}

/// An event whose own snapshot ends the order says why it ended, whichever of it and its
/// status event came first (DHMAD does not order them): a cancellation accepted after the
/// escrow's `cancelled` still tells the buyer.
#[sqlx::test(migrations = "./migrations")]
async fn the_event_that_ends_an_order_keeps_its_line_when_it_comes_second(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("chechia-red", "ended@example.tn", ESCROW, t(0))
        .await;
    app.deliver_processed(&snapshot("paid", "pending", "quick", t(1)))
        .await;
    app.deliver_processed(&snapshot("cancelled", "paid", "quick", t(3)))
        .await;
    let accepted = event(
        "escrow.cancellation.accepted",
        json!({
            "escrow": {"id": ESCROW, "title": "test", "status": "cancelled", "oldStatus": "paid",
                       "mode": "quick", "updatedAt": dhmad::iso::format(t(3))},
            "cancellationRequest": {"status": "accepted", "reason": "changed my mind",
                                    "requestedAt": dhmad::iso::format(t(2))}
        }),
    );
    let (status, _) = result_of(app.deliver(&accepted).await).await;
    assert_eq!(status, 200);
    let told: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM order_events WHERE order_id = $1 AND public LIKE 'Cancellation accepted%'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(told, 1, "the buyer's timeline says why the order ended");
}

/// An `escrow.cancellation.rejected` whose request says `accepted` (the request is what was
/// decided, whatever the event's name) is recorded and told as an acceptance: the buyer's
/// timeline said "The shop declined your cancellation request" over an accepted one.
#[sqlx::test(migrations = "./migrations")]
async fn a_cancellation_event_is_told_as_its_request_says(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("chechia-red", "told@example.tn", ESCROW, t(0))
        .await;
    app.deliver_processed(&snapshot("paid", "pending", "quick", t(1)))
        .await;
    let answer = event(
        "escrow.cancellation.rejected",
        json!({
            "escrow": escrow(ESCROW, "paid", "paid", "quick", t(2)),
            "cancellationRequest": {"status": "accepted", "requestedAt": dhmad::iso::format(t(2))},
        }),
    );
    assert_eq!(result_of(app.deliver(&answer).await).await.0, 200);
    assert_eq!(app.order_json(id).await["cancellation"], "accepted");
    let page = app.order_page(id).await;
    assert!(!page.contains("declined"), "{page}");
}

/// The merchant accepts the buyer's cancellation on DHMAD's page and comes back before the
/// event: the return records the answer (a back-office line, `cancellation_done_on_page`),
/// and the event, when it comes, still writes the buyer's line. Before, it found the answer
/// recorded, was taken for late, and the buyer never read that DHMAD refunds them.
#[sqlx::test(migrations = "./migrations")]
async fn an_accepted_cancellation_told_first_by_the_page_still_tells_the_buyer(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order("chechia-red", "refund@example.tn", ESCROW, t(0))
        .await;
    app.deliver_processed(&snapshot("paid", "pending", "quick", t(1)))
        .await;
    // As the page's return leaves it.
    sqlx::query("UPDATE orders SET cancellation = 'accepted' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let accepted = event(
        "escrow.cancellation.accepted",
        json!({
            "escrow": escrow(ESCROW, "cancelled", "paid", "quick", t(2)),
            "cancellationRequest": {"status": "accepted", "requestedAt": dhmad::iso::format(t(2))},
        }),
    );
    assert_eq!(result_of(app.deliver(&accepted).await).await.0, 200);
    let told: i64 =
        sqlx::query_scalar("SELECT count(*) FROM order_events WHERE order_id = $1 AND public = $2")
            .bind(id)
            .bind("Cancellation accepted: DHMAD refunds you.")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(told, 1);
    assert_eq!(late_events(&app, id).await, 0);
}
