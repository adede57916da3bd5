//! Reconciling one order from the back office: what changed, and what it says while DHMAD
//! is down.

use crate::common::{
    sandbox::{world, World},
    *,
};
use serde_json::json;
use sqlx::PgPool;

use super::*;

/// A flagged order whose escrow DHMAD answers about: the read lifts the flag, and the merchant
/// is told so. Before, the flash said "nothing new, the order is up to date" while the flag
/// (money held for an order closed here, say) left the list's "needs attention".
#[sqlx::test(migrations = "./migrations")]
async fn reconciling_a_flagged_order_says_the_flag_is_lifted(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "flagged@example.tn").await;
    sqlx::query("UPDATE orders SET attention = 'DHMAD does not know escrow x' WHERE id = $1")
        .bind(s.order_id)
        .execute(&w.app.pool)
        .await
        .unwrap();
    let path = format!("/admin/orders/{}/reconcile", s.order_id);
    let back = act(&w.app, &path).await;
    assert_eq!(
        back,
        format!("/admin/orders/{}?notice=flag_lifted", s.order_id)
    );
    let page = admin_page(&w.app, &back).await;
    assert!(page.contains("flag is lifted"), "{page}");
    let flag: Option<String> = sqlx::query_scalar("SELECT attention FROM orders WHERE id = $1")
        .bind(s.order_id)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(flag, None);
}

#[sqlx::test(migrations = "./migrations")]
async fn reconciling_one_order_reads_dhmad_and_says_what_changed(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "recon@example.tn").await;
    // The buyer pays; the news is lost.
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    w.complete(&s.session_id).await;
    assert_eq!(
        order_status(&w.app.pool, s.order_id).await,
        "awaiting_payment"
    );

    let path = format!("/admin/orders/{}/reconcile", s.order_id);
    let back = act(&w.app, &path).await;
    assert_eq!(
        back,
        format!("/admin/orders/{}?notice=order_changed", s.order_id)
    );
    assert_eq!(order_status(&w.app.pool, s.order_id).await, "paid");
    assert_eq!(
        timeline_count(&w.app.pool, s.order_id, "(back office)").await,
        1
    );
    let page = admin_page(&w.app, &back).await;
    assert!(
        page.contains("Read from DHMAD: the order changed"),
        "{page}"
    );
    // Again: nothing new.
    let back = act(&w.app, &path).await;
    assert!(back.ends_with("?notice=order_same"), "{back}");
    // From the list, the merchant comes back to the list, on the row.
    let r = w
        .http
        .post(w.app.url(&path))
        .bearer_auth(ADMIN_TOKEN)
        .header("referer", w.app.url("/admin/orders?status=paid&notice=old"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["location"],
        format!(
            "/admin/orders?status=paid&notice=order_same#o-{}",
            s.order_id
        )
    );

    // Ship from the list: the row says shipping is requested until DHMAD confirms.
    let back = act(&w.app, &format!("/admin/orders/{}/ship", s.order_id)).await;
    assert_eq!(back, format!("/admin?notice=shipped#o-{}", s.order_id));
    let page = admin_page(&w.app, "/admin?notice=shipped").await;
    assert!(page.contains("Shipping requested; DHMAD confirms in a few seconds."));
    w.wait_status(s.order_id, "delivered").await;

    let audit = audit_actions(&w.app.pool).await;
    let mine: Vec<_> = audit.iter().filter(|a| a.0 == "reconcile_order").collect();
    assert_eq!(mine.len(), 3);
    assert!(mine[0].2.contains("pending → paid"), "{:?}", mine[0]);
    assert!(mine.iter().all(|a| a.1 == Some(s.order_id)));
    assert!(audit
        .iter()
        .any(|a| a.0 == "ship" && a.1 == Some(s.order_id)));
}

#[sqlx::test(migrations = "./migrations")]
async fn reconciling_while_dhmad_is_down_says_so(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order(
            "chechia-red",
            "down@example.tn",
            "66bb000000000000000000e3",
            t(0),
        )
        .await;
    let back = act(&app, &format!("/admin/orders/{id}/reconcile")).await;
    assert_eq!(back, format!("/admin/orders/{id}?notice=order_failed"));
    let audit = audit_actions(&app.pool).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].0, "reconcile_order");
    assert!(audit[0].2.starts_with("failed"), "{:?}", audit[0]);

    // The whole pass reports its counts on the next page.
    let back = act(&app, "/admin/reconcile").await;
    assert!(
        back.starts_with("/admin?notice=reconciled&checked=1&changed=0&failed=1&flagged=0"),
        "{back}"
    );
    let page = admin_page(&app, &back).await;
    assert!(
        page.contains("Reconciliation done: 1 order(s) checked, 0 changed, 1 failed, 0 flagged"),
        "{page}"
    );
    // Only fixed texts: an unknown code shows nothing, counts are numbers.
    let page = admin_page(&app, "/admin?notice=%3Cscript%3E").await;
    assert!(!page.contains("<script>") && !page.contains("class=\"flash"));
}

/// "Reconcile now" on more orders than one pass takes (a batch of 20): it goes on, pass after
/// pass, reads each once, and counts them all. Before, it read one batch and said "done"; and
/// the first version of the passes read again what the last had just read.
#[sqlx::test(migrations = "./migrations")]
async fn reconciling_more_than_a_batch_reads_each_once(pool: PgPool) {
    // A 10 s budget for the passes: 25 reads on a loaded machine start well within it.
    let w = world(pool, |c| {
        c.edge.checkout_per_minute = 100;
        c.dhmad_timeout = std::time::Duration::from_secs(10);
    })
    .await;
    for i in 0..25 {
        w.checkout("chechia-red", &format!("batch-{i}@example.tn"))
            .await;
    }
    // Reads of one escrow: `GET /api/v1/escrows/<id>`, not the list nor a sub-resource.
    let escrow_reads = || async {
        w.dhmad_calls()
            .await
            .iter()
            .filter(|c| {
                c.strip_prefix("GET /api/v1/escrows/")
                    .is_some_and(|id| !id.is_empty() && !id.contains(['/', '?']))
            })
            .count()
    };
    let reads_before = escrow_reads().await;
    let back = act(&w.app, "/admin/reconcile").await;
    assert!(
        back.starts_with("/admin?notice=reconciled&checked=25&changed=0&failed=0&flagged=0"),
        "{back}"
    );
    assert_eq!(
        escrow_reads().await - reads_before,
        25,
        "each order read once"
    );
}

/// A pass that could not finish says so: one read failed, and the orders beyond the batch are
/// still due. Before, the flash said "Reconciliation done".
#[sqlx::test(migrations = "./migrations")]
async fn reconciling_that_leaves_orders_due_says_it_is_not_finished(pool: PgPool) {
    let w = world(pool, |c| {
        c.dhmad_timeout = std::time::Duration::from_secs(10);
    })
    .await;
    for i in 0..25 {
        w.app
            .seed_order(
                "chechia-red",
                &format!("left-{i}@example.tn"),
                &format!("66bb0000000000000001{i:04}"),
                t(0),
            )
            .await;
    }
    // The first reads fail (a quick failure is tried once more: two orders fail).
    w.faults(
        json!({"api": [{"method": "GET", "path": "/api/v1/escrows/{id}",
                             "fault": "error_500", "times": 4}]}),
    )
    .await;
    let back = act(&w.app, "/admin/reconcile").await;
    assert!(
        back.starts_with("/admin?notice=reconciled_in_part&checked=20&changed=0&failed="),
        "{back}"
    );
    let page = admin_page(&w.app, &back).await;
    assert!(
        page.contains("Reconciliation not finished: 20 order(s) checked")
            && page.contains("reconcile again"),
        "{page}"
    );
}

/// `orders` open orders, then DHMAD's reads of an escrow hang past the client's 1 s timeout (a
/// request's deadline is 3.5 s). Returns where "Reconcile now" sent the merchant.
async fn reconcile_while_dhmad_hangs(pool: PgPool, orders: usize) -> (World, String) {
    let w = world(pool, |c| {
        c.edge.checkout_per_minute = 100;
        c.dhmad_timeout = std::time::Duration::from_secs(1);
        c.request_timeout = Some(std::time::Duration::from_millis(3500));
    })
    .await;
    for i in 0..orders {
        w.checkout("chechia-red", &format!("hung-{i}@example.tn"))
            .await;
    }
    w.faults(
        json!({"api": [{"method": "GET", "path": "/api/v1/escrows/{id}",
                             "fault": "hang", "hang_ms": 1500, "times": 30}]}),
    )
    .await;
    let back = act(&w.app, "/admin/reconcile").await;
    (w, back)
}

/// DHMAD's API hangs while the merchant reconciles many orders: the answer still comes within
/// the request's deadline, saying it is not finished. Each read was tried four times and the
/// pass went through its whole batch: the generic "took too long" page.
#[sqlx::test(migrations = "./migrations")]
async fn reconciling_while_dhmad_hangs_answers_in_time(pool: PgPool) {
    let (w, back) = reconcile_while_dhmad_hangs(pool, 5).await;
    assert!(
        back.starts_with("/admin?notice=reconciled_in_part&checked=1&changed=0&failed=1"),
        "{back}"
    );
    let audit = audit_actions(&w.app.pool).await;
    assert!(
        audit
            .iter()
            .any(|a| a.0 == "reconcile" && a.2.ends_with("(not finished: more orders are due)")),
        "{audit:?}"
    );
}

/// One order, DHMAD hanging: its read fails and nothing else is due, so the pass is done. The
/// first version said "not finished" whenever its last read ended past the deadline.
#[sqlx::test(migrations = "./migrations")]
async fn reconciling_one_order_while_dhmad_hangs_is_done(pool: PgPool) {
    let (_w, back) = reconcile_while_dhmad_hangs(pool, 1).await;
    assert!(
        back.starts_with("/admin?notice=reconciled&checked=1&changed=0&failed=1"),
        "{back}"
    );
}

/// DHMAD so slow that reading one escrow outlasts the request's deadline (set here below one
/// call's timeout): the merchant's "Reconcile" answers 503, but the read goes on to its end and the action is in the
/// audit trail, with what it found. Before, the deadline dropped the handler with its audit
/// line: an operator's action that called DHMAD left no trace. And the service, stopped at
/// once, waits for it: it stopped without it, dropping the action mid-call.
#[sqlx::test(migrations = "./migrations")]
async fn an_action_cut_short_by_the_deadline_still_ends_in_the_audit_trail(pool: PgPool) {
    let w = world(pool, |c| {
        c.request_timeout = Some(std::time::Duration::from_secs(1));
        c.dhmad_timeout = std::time::Duration::from_secs(2);
    })
    .await;
    let s = w.checkout("chechia-red", "slow-reconcile@example.tn").await;
    w.faults(
        json!({"api": [{"method": "GET", "path": "/api/v1/escrows/{id}",
                             "fault": "hang", "hang_ms": 3000, "times": 10}]}),
    )
    .await;
    let r = w
        .admin_post(&format!("/admin/orders/{}/reconcile", s.order_id))
        .await;
    assert_eq!(r.status(), 503);
    w.app.stop().await;
    let audit = audit_actions(&w.app.pool).await;
    let audit = audit
        .into_iter()
        .find(|a| a.0 == "reconcile_order")
        .expect("the action ended before the service did");
    assert_eq!(audit.1, Some(s.order_id));
    assert!(audit.2.starts_with("failed"), "{audit:?}");
}

/// An interrupted checkout (its create unanswered, no escrow id) can be looked up from its own
/// page, as from the list; while DHMAD may still be making the escrow, the merchant is told
/// to look again, not that DHMAD did not answer.
#[sqlx::test(migrations = "./migrations")]
async fn an_interrupted_checkout_is_looked_up_from_its_page(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let order = w
        .app
        .insert_order("chechia-red", "interrupted@example.tn", None)
        .await;
    sqlx::query(
        "UPDATE orders SET status = 'needs_reconciliation', escrow_attempted_at = now(),
                creation_settles_at = now() + interval '1 hour'
          WHERE id = $1",
    )
    .bind(order.id)
    .execute(&w.app.pool)
    .await
    .unwrap();
    let path = format!("/admin/orders/{}/reconcile", order.id);
    let page = admin_page(&w.app, &format!("/admin/orders/{}", order.id)).await;
    assert!(page.contains(&format!("action=\"{path}\"")), "{page}");
    let back = act(&w.app, &path).await;
    assert_eq!(
        back,
        format!("/admin/orders/{}?notice=creation_pending", order.id)
    );
    let page = admin_page(&w.app, &back).await;
    assert!(page.contains("DHMAD may still be making it"), "{page}");
}
