//! Checkouts cut short between their steps (a request dropped by its client, a process killed
//! by a deploy) or retried while a background job looks at them: whatever was written is taken
//! up again, so no buyer is left on a page that says "preparing your checkout" for ever, and no
//! job acts on what it read before the buyer moved on.

use std::time::Duration;

use sqlx::PgPool;
use storefront::{db, jobs::reconciler};
use uuid::Uuid;

use crate::common::{sandbox::*, *};
use serde_json::json;

/// An order written as a checkout writes it `ago`, then nothing more: no claim, no place in
/// line, no DHMAD call (the request was dropped right after `insert_open`). Backdated in one
/// statement, so that no pass of the app's own jobs sees it half-way.
async fn written_then_cut_short(w: &World, email: &str, ago: time::Duration) -> Uuid {
    let o = w.app.insert_order("ai-credits-500", email, None).await;
    sqlx::query!(
        "UPDATE orders SET created_at = now() - $2::bigint * interval '1 second',
                           updated_at = now() - $2::bigint * interval '1 second'
          WHERE id = $1",
        o.id,
        ago.whole_seconds()
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    o.id
}

#[sqlx::test(migrations = "./migrations")]
async fn a_checkout_cut_short_before_its_first_dhmad_call_is_put_back_in_line(pool: PgPool) {
    // A queue lease (3 × the DHMAD timeout + 5 s) longer than the test: the recent order stays
    // the business of its own request throughout.
    let w = world(pool, |c| {
        c.dhmad_timeout = Duration::from_secs(10);
    })
    .await;
    let stranded = written_then_cut_short(&w, "cut@example.tn", time::Duration::minutes(5)).await;
    // Written a moment ago: its own request may still be making its calls.
    let recent = written_then_cut_short(&w, "busy@example.tn", time::Duration::ZERO).await;
    // Written two days ago (past the abandoned-order grace): its buyer is long gone.
    let ancient = written_then_cut_short(&w, "gone@example.tn", time::Duration::days(2)).await;
    // A pass puts it back in line (this one, or the app's own first pass if it ran later).
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    // The line's worker makes its calls (the escrow, then the page): the buyer's page now leads
    // to DHMAD.
    w.wait_status(stranded, "awaiting_payment").await;
    wait_for("the payment page", 30, || async {
        let n = sqlx::query_scalar!(
            "SELECT count(*) FROM checkout_sessions WHERE order_id = $1 AND status = 'pending'",
            stranded
        )
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
        (n == Some(1)).then_some(())
    })
    .await;
    assert_eq!(w.app.order_json(recent).await["status"], "new");
    assert_eq!(w.app.order_json(ancient).await["status"], "new");
    // Once served it is not in line again.
    let report = reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(report.checkouts_requeued, 0, "{report:?}");
    assert_eq!(w.count_calls("POST", "/escrows").await, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn the_duplicate_sweep_keeps_the_escrow_a_retry_made_while_it_listed(pool: PgPool) {
    // DHMAD's calls may take 10 s here, so that the sweep's list can be held long enough.
    let w = world(pool, |c| c.dhmad_timeout = Duration::from_secs(10)).await;
    // The app's own pass at start, late on a busy machine, would sweep too.
    w.after_first_reconciler_pass().await;
    // An order whose creation was reconciled (nothing found at DHMAD): safe to retry.
    let order = w
        .app
        .seed_order(
            "chechia-red",
            "retry@example.tn",
            "66aa0000000000000000abcd",
            time::OffsetDateTime::now_utc(),
        )
        .await;
    sqlx::query!(
        "UPDATE orders SET escrow_id = NULL, escrow_status = NULL, status = 'escrow_failed'
          WHERE id = $1",
        order
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    db::events::add(
        &w.app.pool,
        order,
        "escrow_reconciled",
        "no escrow was created at DHMAD; safe to retry",
        None,
    )
    .await
    .unwrap();
    // The sweep reads the orders it watches, then DHMAD's list, which is slow to come (under
    // the client's timeout, and well past the retry's own way to DHMAD: about a second on a
    // quiet machine, and over 2.5 s once in CI, where a 2.8 s hold let the list be answered
    // first and the race not run: see the end)…
    w.faults(json!({"api": [{"method": "GET", "path": "/api/v1/escrows", "fault": "delay", "hang_ms": 8000}]}))
        .await;
    let state = w.app.state.clone();
    let sweep =
        tokio::spawn(
            async move { storefront::orders::lost_escrow::sweep_duplicates(&state).await },
        );
    w.after_the_faults().await;
    // …and meanwhile the buyer retries: a new escrow, recorded, and a payment page on it.
    let r = w.app.post_form(&format!("/orders/{order}/pay"), &[]).await;
    assert_eq!(r.status(), 303);
    sweep.await.unwrap().unwrap();
    let escrow = sqlx::query_scalar!("SELECT escrow_id FROM orders WHERE id = $1", order)
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
        .expect("the retry's escrow");
    let at_dhmad = w.app.state.dhmad.get_escrow(&escrow).await.unwrap();
    assert_eq!(
        at_dhmad.status.as_str(),
        "pending",
        "the order's own escrow is kept"
    );
    assert_eq!(w.count_calls("POST", "/cancel").await, 0);
    assert_eq!(w.app.order_json(order).await["status"], "awaiting_payment");
    // The race happened as staged: the sweep's list was answered after the retry's escrow was
    // created, so it listed that escrow (which it then had to leave alone).
    let log = w.dhmad_log().await;
    let at = |call: &str| log.iter().position(|(c, ..)| c == call);
    let created = at("POST /api/v1/escrows").expect("the retry's create");
    let listed = log
        .iter()
        .rposition(|(c, ..)| c == "GET /api/v1/escrows")
        .expect("the sweep's list");
    assert!(created < listed, "{log:?}");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_create_coming_back_late_leaves_a_newer_claim_alone(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let id = written_then_cut_short(&w, "late@example.tn", time::Duration::ZERO).await;
    let pool = &w.app.pool;
    let first = db::orders::claim_creation(pool, id).await.unwrap().unwrap();
    // The first attempt outlived the in-flight limit (waiting out DHMAD's 429s): another actor
    // found nothing at DHMAD, and the buyer's retry claimed the creation again.
    sqlx::query!(
        "UPDATE orders SET status = 'escrow_failed' WHERE id = $1",
        id
    )
    .execute(pool)
    .await
    .unwrap();
    let second = db::orders::claim_creation(pool, id).await.unwrap().unwrap();
    assert!(second > first);
    // The first attempt's call comes back never sent: it undoes its own claim, not the live one.
    db::orders::unclaim_creation(pool, id, Some(first))
        .await
        .unwrap();
    let o = db::orders::get(pool, id).await.unwrap().unwrap();
    assert_eq!(o.status.as_str(), "creating_escrow");
    assert_eq!(o.escrow_attempted_at, Some(second));
    // Nor, had it come back failed (a timeout, a 500), does it write its failure over the live
    // claim.
    let failed = storefront::orders::OrderStatus::NeedsReconciliation;
    let claimed = [storefront::orders::OrderStatus::CreatingEscrow];
    let written = db::orders::record_failure(pool, id, &claimed, failed, "late", Some(first))
        .await
        .unwrap();
    assert!(!written);
    let o = db::orders::get(pool, id).await.unwrap().unwrap();
    assert_eq!(o.status.as_str(), "creating_escrow");
    db::orders::unclaim_creation(pool, id, Some(second))
        .await
        .unwrap();
    let o = db::orders::get(pool, id).await.unwrap().unwrap();
    assert_eq!(o.status.as_str(), "new");
}

/// A retry of a failed checkout that found DHMAD's budget spent goes back to `new` to wait for
/// its turn; cut short before it is put in line (a crash), the reconciler still takes it up:
/// the earlier failure's reason does not make it look like a checkout that could not start.
#[sqlx::test(migrations = "./migrations")]
async fn a_retry_held_back_by_the_budget_then_cut_short_is_put_back_in_line(pool: PgPool) {
    let w = world(pool, |c| {
        c.dhmad_timeout = Duration::from_secs(10);
    })
    .await;
    let o = w
        .app
        .insert_order("ai-credits-500", "held@example.tn", None)
        .await;
    let pool = &w.app.pool;
    // The first attempt failed: DHMAD unreachable, safe to retry.
    let claimed = db::orders::claim_creation(pool, o.id).await.unwrap();
    let failed = storefront::orders::OrderStatus::EscrowFailed;
    let creating = [storefront::orders::OrderStatus::CreatingEscrow];
    assert!(db::orders::record_failure(
        pool,
        o.id,
        &creating,
        failed,
        "could not reach DHMAD",
        claimed
    )
    .await
    .unwrap());
    // The buyer's retry claims it, finds the budget spent, and gives the claim back.
    let claimed = db::orders::claim_creation(pool, o.id).await.unwrap();
    assert!(claimed.is_some());
    db::orders::unclaim_creation(pool, o.id, claimed)
        .await
        .unwrap();
    // ... and the process dies before the order is put in line. A while later:
    sqlx::query!(
        "UPDATE orders SET updated_at = now() - interval '5 minutes' WHERE id = $1",
        o.id
    )
    .execute(pool)
    .await
    .unwrap();
    reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    w.wait_status(o.id, "awaiting_payment").await;
}

/// A double click on "Buy": the browser drops its first request, whose answer it will not
/// show, and sends the form again while the first is still creating the escrow at DHMAD. The
/// first runs to its end all the same, and the second sends the buyer to the waiting page,
/// which forwards to DHMAD's page once it is open: one escrow, one page, no error. Before, the
/// second answered 409 on an order page with no way on, and the first, dropped with the
/// browser's connection in the middle of `POST /escrows`, left the order creating its escrow
/// until the reconciler looked, long after.
#[sqlx::test(migrations = "./migrations")]
async fn a_double_click_on_buy_leads_to_one_payment_page(pool: PgPool) {
    // DHMAD's calls may take 10 s here: the create held below is not timed out.
    let w = world(pool, |c| c.dhmad_timeout = Duration::from_secs(10)).await;
    w.after_first_reconciler_pass().await;
    // DHMAD holds the create long enough for the second click on a loaded machine.
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows",
                              "fault": "delay", "hang_ms": 5000}]}))
        .await;
    // The catalog sets the browser's checkout and CSRF cookies, so both clicks carry them.
    let token = w.app.csrf_token().await;
    let form = [
        ("sku", "ai-credits-500"),
        ("email", "double@example.tn"),
        ("csrf_token", token.as_str()),
    ];
    let first = w.app.http.post(w.app.url("/checkout")).form(&form).send();
    let first = tokio::spawn(first);
    // Its `POST /escrows` has reached DHMAD, which holds it: the browser drops the request.
    w.after_the_faults().await;
    first.abort();
    let r = w
        .app
        .http
        .post(w.app.url("/checkout"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let waiting = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        waiting.starts_with("/orders/") && waiting.ends_with("/checkout"),
        "{waiting}"
    );
    let dhmad_page = wait_for("the waiting page to forward to DHMAD", 30, || async {
        let r = w.app.get(&waiting).await;
        let to = r.headers().get("location")?.to_str().ok()?.to_owned();
        (r.status() == 303 && !to.starts_with("/orders/")).then_some(to)
    })
    .await;
    assert!(dhmad_page.contains("/checkout/"), "{dhmad_page}");
    assert_eq!(w.count_calls("POST", "/escrows").await, 1);
    assert_eq!(w.count_calls("POST", "/sessions").await, 1);
    let id: Uuid = waiting
        .trim_start_matches("/orders/")
        .trim_end_matches("/checkout")
        .parse()
        .unwrap();
    assert_eq!(w.app.order_json(id).await["status"], "awaiting_payment");
}
