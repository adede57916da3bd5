//! Which orders the reconciler looks at, and in what order: the one due longest first, so that
//! orders due again and again (money that just moved) cannot keep an order whose webhook was
//! lost long ago out of every pass; and money that moved is looked at less often as it stays
//! quiet, not every 45 s for an hour; and an order flagged because DHMAD did not know its
//! escrow comes back once DHMAD speaks of it.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use storefront::{db, jobs::reconciler};
use uuid::Uuid;

use crate::common::{sandbox::*, *};

const HOT_QUIET: time::Duration = time::Duration::seconds(45);
const COLD_QUIET: time::Duration = time::Duration::minutes(10);
const ZERO: time::Duration = time::Duration::ZERO;

/// `n` orders with an escrow each (ids unique to `tag`), as checkout leaves them.
async fn orders(app: &TestApp, tag: u8, n: u8) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        let escrow = format!("{tag:02x}{i:02x}{}", "0".repeat(20));
        let email = format!("due{tag}-{i}@example.tn");
        let now = time::OffsetDateTime::now_utc();
        ids.push(app.seed_order("chechia-red", &email, &escrow, now).await);
    }
    ids
}

async fn set(app: &TestApp, ids: &[Uuid], sql: &str) {
    sqlx::query(&format!("UPDATE orders SET {sql} WHERE id = ANY($1)"))
        .bind(ids)
        .execute(&app.pool)
        .await
        .unwrap();
}

async fn due(app: &TestApp, limit: i64) -> Vec<Uuid> {
    db::orders::list_due_for_sync(&app.pool, HOT_QUIET, COLD_QUIET, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect()
}

/// A busy shop: 25 orders whose money moved a minute ago are due again (50 s without news),
/// and one order's paid webhook was lost 20 minutes ago. A pass's batch of 20 holds the one
/// due longest. Before, the hot orders came first and filled every batch, pass after pass.
#[sqlx::test(migrations = "./migrations")]
async fn an_order_due_long_ago_is_not_starved_by_hot_ones(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let hot = orders(&app, 1, 25).await;
    set(
        &app,
        &hot,
        "status = 'paid', updated_at = now() - interval '1 minute',
         last_synced_at = now() - interval '50 seconds'",
    )
    .await;
    let cold = orders(&app, 2, 1).await;
    set(
        &app,
        &cold,
        "last_synced_at = now() - interval '20 minutes'",
    )
    .await;

    let batch = due(&app, 20).await;
    assert_eq!(batch.len(), 20);
    assert_eq!(batch[0], cold[0], "the order due longest comes first");
}

/// Money that moved half an hour ago and was looked at a minute ago is not due again yet: it is
/// looked at after as long as it has been quiet since it moved. Money that moved a minute ago
/// is due after 45 s without news.
#[sqlx::test(migrations = "./migrations")]
async fn money_that_stays_quiet_is_looked_at_less_often(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let ids = orders(&app, 3, 2).await;
    let (settled_down, just_moved) = (&ids[..1], &ids[1..]);
    set(
        &app,
        settled_down,
        "status = 'paid', updated_at = now() - interval '30 minutes',
         last_synced_at = now() - interval '1 minute'",
    )
    .await;
    set(
        &app,
        just_moved,
        "status = 'paid', updated_at = now() - interval '1 minute',
         last_synced_at = now() - interval '50 seconds'",
    )
    .await;
    assert_eq!(due(&app, 20).await, just_moved);
    // An operator's pass (both quiet times zero) takes every open order.
    let mut every = db::orders::list_due_for_sync(&app.pool, ZERO, ZERO, 20)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect::<Vec<_>>();
    every.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(every, expected);
    // Never longer than the cold orders' 10 minutes: looked at 11 minutes ago, it is due.
    set(
        &app,
        settled_down,
        "last_synced_at = now() - interval '11 minutes'",
    )
    .await;
    assert!(due(&app, 20).await.contains(&settled_down[0]));
    // Looked at half an hour ago, 29 minutes after it moved: due again now.
    set(
        &app,
        settled_down,
        "updated_at = now() - interval '59 minutes', last_synced_at = now() - interval '30 minutes'",
    )
    .await;
    let mut both = due(&app, 20).await;
    both.sort();
    assert_eq!(both, expected);
}

/// Gives `order` a buyer's payment page in `status`, expiring and opened at those offsets from
/// now, and checks that the order, quiet for 50 s only, is due: hot.
async fn hot_with_a_page(app: &TestApp, order: Uuid, status: &str, expires: &str, opened: &str) {
    sqlx::query(
        "INSERT INTO checkout_sessions (session_id, order_id, escrow_id, action, url, status,
                                        expires_at, created_at)
         SELECT 'sess-' || $2, id, escrow_id, 'accept_pay', 'http://dhmad.invalid/x', $2,
                now() + $3::interval, now() + $4::interval
           FROM orders WHERE id = $1",
    )
    .bind(order)
    .bind(status)
    .bind(expires)
    .bind(opened)
    .execute(&app.pool)
    .await
    .unwrap();
    set(
        app,
        &[order],
        "last_synced_at = now() - interval '50 seconds'",
    )
    .await;
    assert_eq!(due(app, 20).await, [order]);
}

/// A payment page that closed five minutes ago, which the session sweeper has marked expired:
/// the buyer may have paid in its last minutes, so the order is still looked at after 45 s
/// without news, not after 10 minutes. Before, the sweeper's mark cut that tail to a minute.
#[sqlx::test(migrations = "./migrations")]
async fn a_page_closed_minutes_ago_keeps_its_order_hot(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let ids = orders(&app, 4, 1).await;
    hot_with_a_page(&app, ids[0], "expired", "-5 minutes", "-35 minutes").await;
}

/// A payment page the buyer finished, the order still awaiting payment (the callback's read of
/// the escrow failed, the webhook not in yet): the news is due any moment, so the order is hot
/// too. Before, only pending and expired pages counted, and it waited ten minutes.
#[sqlx::test(migrations = "./migrations")]
async fn a_page_finished_without_news_keeps_its_order_hot(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let ids = orders(&app, 5, 1).await;
    hot_with_a_page(&app, ids[0], "completed", "25 minutes", "-5 minutes").await;
}

/// DHMAD answered a read with 404 once (a glitch; a key briefly without its association gets
/// 403 alike), which flags the order for the merchant; then DHMAD's signed webhook speaks of
/// the escrow. The flag is lifted, and the reconciler looks after the order again. Before, the
/// flag stayed until the merchant's "Reconcile", and the order was out of every repair.
#[sqlx::test(migrations = "./migrations")]
async fn a_flag_is_lifted_when_dhmad_speaks_of_the_escrow_again(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "glitch@example.tn").await;
    w.after_first_reconciler_pass().await;
    let long_quiet = "last_synced_at = now() - interval '1 hour'";
    set(&w.app, &[s.order_id], long_quiet).await;
    w.faults(
        json!({"api": [{"method": "GET", "path": "/api/v1/escrows/{id}",
                             "fault": "not_found"}]}),
    )
    .await;
    let pass = reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(pass.flagged, 1, "{pass:?}");

    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "paid").await;
    assert_eq!(attention(&w.app.pool, s.order_id).await, None);
    set(&w.app, &[s.order_id], long_quiet).await;
    let pass = reconciler::run_once(&w.app.state, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(pass.checked, 1, "{pass:?}");
}

/// A read DHMAD answered that the order cannot take (a paid order its API calls pending) is a
/// look all the same: the order is not due again at once. Before, it was never recorded, so
/// the order stayed due and was read again on every pass, at the head of every batch.
#[sqlx::test(migrations = "./migrations")]
async fn a_read_the_order_cannot_take_still_counts_as_a_look(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "behind@example.tn").await;
    w.after_first_reconciler_pass().await;
    // The order says paid; DHMAD, whose news would say otherwise, still says pending.
    set(
        &w.app,
        &[s.order_id],
        "status = 'paid', escrow_status = 'paid', last_synced_at = now() - interval '1 hour'",
    )
    .await;
    let escrow = crate::after_payment::escrow_of(&w, s.order_id).await;
    let reads = || w.count_calls("GET", &escrow);
    let before = reads().await;
    for _ in 0..2 {
        reconciler::run_once(&w.app.state, Duration::from_secs(600))
            .await
            .unwrap();
    }
    assert_eq!(reads().await - before, 1, "read on every pass");
    assert_eq!(w.app.order_json(s.order_id).await["status"], "paid");
}

/// One order's row is locked past the lock timeout (a stuck request, an operator's `psql`): its
/// read cannot be recorded, nor its backoff. Before, that ended every pass at that order, which
/// stayed first in every batch: no order after it was repaired, no missing deliver queued, no
/// stranded checkout put back in line, for as long as the lock lasted.
#[sqlx::test(migrations = "./migrations")]
async fn one_locked_order_does_not_stop_the_pass_for_the_others(pool: PgPool) {
    // The service's own bounded waits: with `sqlx::test`'s pool a statement on the locked row
    // would wait for ever.
    let w = world(production_pool(&pool), |_| {}).await;
    let locked = w.checkout("chechia-red", "locked@example.tn").await;
    let lost = w.checkout("chechia-red", "lost-news@example.tn").await;
    w.after_first_reconciler_pass().await;
    w.faults(json!({"webhooks": {"drop": 1.0}})).await;
    w.complete(&lost.session_id).await;
    set(
        &w.app,
        &[locked.order_id],
        "last_synced_at = now() - interval '2 hours'",
    )
    .await;
    set(
        &w.app,
        &[lost.order_id],
        "last_synced_at = now() - interval '1 hour'",
    )
    .await;

    let holder = holding_the_order(&w.app.pool, locked.order_id).await;
    let pass = reconciler::run_once(&w.app.state, Duration::from_secs(600)).await;
    holder.rollback().await.unwrap();
    let pass = pass.expect("the pass went on past the locked order");
    assert_eq!((pass.checked, pass.failed), (2, 1), "{pass:?}");
    assert_eq!(w.app.order_json(lost.order_id).await["status"], "paid");
}

/// An order flagged because its buyer paid a second escrow of it keeps the flag until the
/// merchant reconciles it. A read answered 404 (an API key mixed up, say) replaced it with
/// "DHMAD does not know escrow …", which the next webhook lifted; and any read DHMAD answered
/// lifted it once the duplicate sweep had stopped: the double payment left the merchant's
/// to-do list with nobody to refund it.
#[sqlx::test(migrations = "./migrations")]
async fn a_flag_about_money_stays_until_the_merchant_reconciles(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "money-flag@example.tn").await;
    let flag = "Money in a second escrow: the buyer also paid escrow 66aa00000000000000000009";
    set_attention(&w.app.pool, s.order_id, flag).await;
    let not_found = json!({"api": [{"method": "GET", "path": "/api/v1/escrows/{id}",
                                     "fault": "not_found"}]});
    w.faults(not_found.clone()).await;
    let order = db::orders::get(&w.app.pool, s.order_id)
        .await
        .unwrap()
        .unwrap();
    let read = storefront::orders::sync::refresh_order(&w.app.state, &order, "test read").await;
    assert!(read.is_err(), "{read:?}");
    let attention = || attention(&w.app.pool, s.order_id);
    assert_eq!(attention().await.as_deref(), Some(flag));
    // Nor does a read DHMAD answers lift it (a buyer's return, a job's read): the merchant's
    // "Reconcile" does, their acknowledgement.
    w.faults(json!({})).await;
    storefront::orders::sync::refresh_order(&w.app.state, &order, "test read")
        .await
        .unwrap();
    assert_eq!(attention().await.as_deref(), Some(flag));
    // Acknowledged even when the read then fails: the order is flagged for what it found,
    // not left with a flag no click could lift.
    w.faults(not_found).await;
    let reconcile = format!("/admin/orders/{}/reconcile", s.order_id);
    let shown = w.admin_form(&reconcile, &[("flag", flag)]).await;
    assert_eq!(shown.status(), 303);
    let now = attention().await.unwrap_or_default();
    assert!(now.starts_with("DHMAD does not know escrow"), "{now}");
    w.faults(json!({})).await;
    assert_eq!(w.admin_post(&reconcile).await.status(), 303);
    assert_eq!(attention().await, None);
}

/// The merchant's "Reconcile" lifts the flag about money their page showed them, and only that
/// one. The click lifted whatever flag the order carried when it arrived: a flag raised after
/// the page was drawn ("money for a closed order" is raised once per status DHMAD tells of) was
/// lifted unseen by a click meant for the page as it was, and nothing raised it again.
#[sqlx::test(migrations = "./migrations")]
async fn a_reconcile_lifts_only_the_flag_the_merchant_was_shown(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "unseen-flag@example.tn").await;
    let order_page = format!("/admin/orders/{}", s.order_id);
    let page = || crate::back_office::admin_page(&w.app, &order_page);
    // Drawn without a flag: its form says so.
    assert!(!page().await.contains(r#"name="flag""#));
    let flag = "Money for a closed order: DHMAD says escrow 66aa00000000000000000010 is paid";
    set_attention(&w.app.pool, s.order_id, flag).await;
    let attention = || attention(&w.app.pool, s.order_id);
    let reconcile = format!("/admin/orders/{}/reconcile", s.order_id);
    let location = |r: &reqwest::Response| r.headers()["location"].to_str().unwrap().to_owned();
    // The list's row drawn before the flag (`flag` empty), the order page's form (no field), a
    // script's bare POST, and a flag the page showed before this one: none lifts it.
    for fields in [
        &[("flag", "")][..],
        &[],
        &[("flag", "Money in a second escrow: …")],
    ] {
        let clicked = w.admin_form(&reconcile, fields).await;
        assert_eq!(clicked.status(), 303);
        assert!(
            location(&clicked).contains("notice=flag_unseen"),
            "{fields:?}"
        );
        assert_eq!(attention().await.as_deref(), Some(flag), "{fields:?}");
    }
    let bare = w.admin_post(&reconcile).await;
    assert!(location(&bare).contains("notice=flag_unseen"));
    assert_eq!(attention().await.as_deref(), Some(flag));
    // The page drawn now shows it, and its form sends it back: that click lifts it.
    let page = page().await;
    let field = format!(r#"<input type="hidden" name="flag" value="{flag}">"#);
    assert!(page.contains(&field), "{page}");
    let clicked = w.admin_form(&reconcile, &[("flag", flag)]).await;
    assert!(location(&clicked).contains("notice=flag_lifted"));
    assert_eq!(attention().await, None);
}

/// An order closed here when DHMAD said it did not know the escrow (and flagged for it), whose
/// escrow DHMAD now says is paid. The merchant's "Reconcile" read it, flagged the order "money
/// for a closed order", and then lifted that flag in the same click as their acknowledgement
/// of a flag they had never seen. Only the flag they were shown is theirs to lift.
#[sqlx::test(migrations = "./migrations")]
async fn a_reconcile_keeps_the_money_news_its_own_read_brings(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "closed-here@example.tn").await;
    w.faults(json!({"webhooks": {"drop": 1.0}})).await;
    w.complete(&s.session_id).await;
    set(
        &w.app,
        &[s.order_id],
        "status = 'cancelled', escrow_status = 'pending',
         attention = 'DHMAD does not know escrow ' || escrow_id || ' (a test)'",
    )
    .await;
    let reconcile = format!("/admin/orders/{}/reconcile", s.order_id);
    assert_eq!(w.admin_post(&reconcile).await.status(), 303);
    let attention = attention(&w.app.pool, s.order_id).await.unwrap_or_default();
    assert!(
        attention.starts_with("Money for a closed order") && attention.contains("is paid"),
        "{attention}"
    );
}
