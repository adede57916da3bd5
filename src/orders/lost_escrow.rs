//! Escrow creations whose answer was lost. DHMAD has no idempotency keys, so a `POST /escrows`
//! that timed out may still have created the escrow, at any moment until DHMAD gave up on it.
//! Every escrow's title carries its order's short reference (`short_ref`, matched with the
//! buyer's e-mail): before any retry the shop pages through DHMAD's list (newest first) back
//! past the attempt, takes the escrow it finds, and cancels any second one. A duplicate that
//! lands after that look is caught later by `sweep_duplicates`.

use dhmad::{Escrow, EscrowStatus, ListEscrows, Role};
use rust_decimal::Decimal;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    apply_escrow_snapshot,
    checkout::{short_ref, TITLE_MARKER},
    snapshot::Authority,
    snapshot::DUPLICATE_FUNDED,
    sync::upstream,
    Mode, Order, OrderError, OrderResult, OrderStatus,
};
use crate::db;
use crate::state::AppState;

/// The answer while a creation in doubt is too recent to be called not made.
const STILL_LOOKING: &str = "We are still checking with the payment provider whether this \
                             order's payment was set up. Please try again in a few seconds.";

/// How often a buyer's click may look while DHMAD may still be making the escrow (each look
/// then ends in [`STILL_LOOKING`] unless it finds it): a look reads DHMAD's list (a page or
/// more) from the budget's buyers' side, so a buyer refreshing the page, or several at once,
/// could otherwise spend most of DHMAD's window. Once it can no longer land, a look settles
/// the order, and a click looks at once.
const BUYER_LOOKS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// The name of an order's look in `job_turns` (forgotten a day later, `jobs::housekeeping`).
pub const LOOK_TURN: &str = "escrow-lookup:";

/// How far before the attempt the list is read (clock skew between us and DHMAD).
const MARGIN: time::Duration = time::Duration::minutes(5);
/// Pages of 100 at most, whatever happens: the look must end.
const MAX_PAGES: u32 = 50;
/// Escrows asked for per page (DHMAD's most).
const PAGE: usize = 100;

/// Whether `page` was the list's last. DHMAD's count of pages, when it gives one (the client
/// reads an unreadable one as 0); else a page that is not full. Stopping early would call a
/// lost escrow not created, and its retry would make a second one.
fn is_last_page(page: u32, pages: u32, got: usize, asked: usize) -> bool {
    if pages > 0 {
        page >= pages
    } else {
        got < asked
    }
}

/// The order id in an escrow's title, if it is one of ours.
/// Whether the escrow's title names the order: its short reference (or, for escrows created
/// before titles were shortened, its whole id).
fn names(e: &Escrow, order_id: Uuid) -> bool {
    title_names(&e.title, order_id)
}

/// Whether the escrow holds what the shop asked DHMAD for when it created the order's: its
/// amount, currency and mode (a mode DHMAD leaves out is not held against it). The title and
/// the buyer are not enough: any DHMAD user can create an escrow that names the merchant as
/// seller, with any title (an order's reference is on its page), and pay it. Taken up, a cheap
/// one paid an instant order, which then handed over its good. A currency left out is TND, as
/// DHMAD reads it: its list gives none (§2.2), so a USD or EUR order's own escrow is not found
/// there and the order is retried; the duplicate sweep, by title and buyer, then cancels the
/// first (a TND escrow of the same face amount would otherwise pay for a third of the price).
fn same_terms(e: &Escrow, amount: Decimal, currency: &str, mode: Mode) -> bool {
    e.amount == Some(amount)
        && e.currency.as_ref().map_or("TND", |c| c.as_str()) == currency
        && e.mode.as_ref().is_none_or(|m| *m == mode.to_dhmad())
}

fn title_names(title: &str, order_id: Uuid) -> bool {
    let Some((_, tail)) = title.rsplit_once(TITLE_MARKER) else {
        return false;
    };
    let tail = tail.trim();
    tail == short_ref(order_id) || Uuid::parse_str(tail).is_ok_and(|id| id == order_id)
}

/// Escrows of the merchant created since `since`, newest first, whose title names an order
/// in `wanted` (and, when given, whose buyer matches); and whether the list was read back to
/// `since` (else [`MAX_PAGES`] cut it short: more escrows were made since than it reads).
async fn list_since(
    state: &AppState,
    since: OffsetDateTime,
    status: Option<EscrowStatus>,
    wanted: impl Fn(&Escrow) -> bool,
) -> OrderResult<(Vec<Escrow>, bool)> {
    let mut found = Vec::new();
    for page in 1..=MAX_PAGES {
        let q = ListEscrows {
            role: Some(Role::Seller),
            status: status.clone(),
            page: Some(page),
            limit: Some(PAGE as u32),
        };
        let list = state
            .dhmad
            .list_escrows(&q)
            .await
            .map_err(|e| upstream(e, "listing escrows"))?;
        let older = list
            .escrows
            .last()
            .and_then(|e| e.created_at)
            .is_some_and(|t| t < since);
        let last = is_last_page(page, list.pagination.pages, list.escrows.len(), PAGE);
        found.extend(list.escrows.into_iter().filter(|e| wanted(e)));
        if older || last {
            return Ok((found, true));
        }
    }
    Ok((found, false))
}

/// [`reconcile_creation`] for a buyer's click: while the escrow may still land, at most one
/// look per order every [`BUYER_LOOKS_EVERY`], across instances (the reconciler and the
/// merchant look when they come).
pub async fn reconcile_creation_for_buyer(state: &AppState, order: &Order) -> OrderResult<()> {
    let (claim, turn) = (
        order.escrow_attempted_at,
        format!("{LOOK_TURN}{}", order.id),
    );
    if db::orders::creation_may_still_land(&state.pool, order.id, claim).await?
        && !db::turns::take(&state.pool, &turn, BUYER_LOOKS_EVERY).await?
    {
        return Err(OrderError::not_allowed(STILL_LOOKING));
    }
    reconcile_creation(state, order).await
}

/// Resolves an escrow creation with an unknown outcome. Found: the order continues with the
/// escrow naming it that the buyer paid, else the oldest, and any other is cancelled (or,
/// paid, flagged). Not found: the order is safe to retry.
#[tracing::instrument(skip_all, fields(order.ref = %crate::orders::log_ref(order.id)))]
pub async fn reconcile_creation(state: &AppState, order: &Order) -> OrderResult<()> {
    let call_order = order.id;
    super::call_log::for_order(
        call_order,
        Box::pin(async move {
            let since = order.escrow_attempted_at.unwrap_or(order.created_at) - MARGIN;
            // Not a cancelled one: the order cannot continue with it, and it may be the
            // duplicate an earlier look's sweep cancelled, made by a create whose answer was
            // lost too, before this attempt's own escrow (adopting it would cancel the order,
            // and then this attempt's live escrow as its duplicate).
            // Nor one whose terms are not the order's: not the shop's, whatever it is named.
            let (mut found, complete) = list_since(state, since, None, |e| {
                names(e, order.id)
                    && e.status != EscrowStatus::Cancelled
                    && e.buyer_email()
                        .is_none_or(|b| b.eq_ignore_ascii_case(&order.buyer_email))
                    && same_terms(e, order.amount, &order.currency, order.mode)
            })
            .await?;
            // Not read back to the attempt: "not found" would let a retry make a second
            // escrow beside one the list did not reach, and the oldest found may not be the
            // oldest made. The order waits (its backoff) and is looked at again.
            if !complete {
                return Err(OrderError::DhmadFailed {
                    message: "The payment provider's list is too long to find this order's \
                              payment yet."
                        .into(),
                    cause: format!(
                        "DHMAD's escrow list, {MAX_PAGES} pages read, did not reach {since}: \
                         the lost escrow may be further down"
                    ),
                });
            }
            // One the buyer paid first (paid through DHMAD's own notice of a duplicate, while
            // this order's was still pending: the order is that payment's), then the oldest.
            found.sort_by_key(|e| (!e.status.is_funded(), e.created_at, e.id.clone()));
            // Not another order's (titles carry a 32-bit reference two orders can share).
            let mut mine = Vec::with_capacity(found.len());
            for e in found {
                match db::orders::holding_escrow(&state.pool, &e.id).await? {
                    Some(holder) if holder != order.id => {}
                    _ => mine.push(e),
                }
            }
            let mut found = mine.into_iter();
            let mut conn = state.pool.acquire().await?;
            let mut tx = db::tx::begin(&mut conn).await?;
            let adopted = match found.next() {
                Some(e) => {
                    // Recorded as DHMAD created it (pending, no clock yet), then the escrow as DHMAD
                    // lists it now is applied on top: if it was paid or cancelled since, the order
                    // moves on through the one path that also fulfils.
                    let line = db::events::NewEvent {
                        kind: "escrow_reconciled",
                        detail: format!("DHMAD escrow {} found after an unanswered request", e.id),
                        public: None,
                    };
                    db::orders::record_escrow(&mut *tx, order.id, &e.id, "pending", None, &line)
                        .await?;
                    let applied =
                        apply_escrow_snapshot(&mut tx, &e, Authority::Api, "reconciliation")
                            .await?;
                    super::snapshot::amount::keep_from_snapshot(&mut tx, &applied, &e).await?;
                    Some(e.id)
                }
                None => {
                    // DHMAD may still be making the escrow whose answer was lost (which is
                    // often why it was lost): not there yet is not "not made" until the
                    // creation could no longer be running there. Taken for "not made", a
                    // retry made a second escrow, and the first landed beside it.
                    let claim = order.escrow_attempted_at;
                    if db::orders::creation_may_still_land(&mut *tx, order.id, claim).await? {
                        return Err(OrderError::not_allowed(STILL_LOOKING));
                    }
                    // Unless the order moved on while DHMAD was listed: another look found the
                    // escrow, or resolved the order and a retry made one since, whose own
                    // create may be in doubt again (a newer claim: this list may predate it).
                    let reason = "no escrow was created at DHMAD; safe to retry";
                    let (doubtful, failed) =
                        (OrderStatus::NeedsReconciliation, OrderStatus::EscrowFailed);
                    if db::orders::record_failure(
                        &mut *tx,
                        order.id,
                        &[doubtful],
                        failed,
                        reason,
                        order.escrow_attempted_at,
                    )
                    .await?
                    {
                        db::events::add(&mut *tx, order.id, "escrow_reconciled", reason, None)
                            .await?;
                    }
                    None
                }
            };
            tx.commit().await?;
            drop(conn);
            if let Some(escrow_id) = adopted {
                super::reprocess::reprocess_escrow(&state.pool, &escrow_id).await;
            }
            for duplicate in found {
                cancel_duplicate(state, order.id, &duplicate).await;
            }
            Ok(())
        }),
    )
    .await
}

/// A second escrow for one order is pending (the buyer is never sent to it): it is cancelled
/// at DHMAD, and the order's timeline says so; one the buyer paid all the same is flagged for
/// the merchant. A failure is logged; the next sweep tries again. Whether it was cancelled.
async fn cancel_duplicate(state: &AppState, order_id: Uuid, e: &Escrow) -> bool {
    // An escrow an order holds is that order's, whatever its title says (another order may
    // share the short reference), and may be being paid.
    match db::orders::holding_escrow(&state.pool, &e.id).await {
        Ok(None) => {}
        Ok(Some(holder)) => {
            tracing::info!(order.ref = %crate::orders::log_ref(order_id), escrow.id = %e.id, holder = %crate::orders::log_ref(holder), "the escrow is an order's own: kept");
            return false;
        }
        Err(err) => {
            tracing::warn!(order.ref = %crate::orders::log_ref(order_id), error = %err, "could not look for the escrow's order before cancelling a duplicate; the next sweep tries again");
            return false;
        }
    }
    // Asked again now: DHMAD's list was read a while ago, and the buyer's retry may be making
    // an escrow (whose answer may be this one, paid or not: the order's own payment).
    match db::orders::get(&state.pool, order_id).await {
        Ok(Some(o))
            if o.escrow_id.as_deref() == Some(e.id.as_str())
                || matches!(
                    o.status,
                    OrderStatus::CreatingEscrow | OrderStatus::NeedsReconciliation
                ) =>
        {
            tracing::info!(order.ref = %crate::orders::log_ref(order_id), escrow.id = %e.id, status = ?o.status, "not a duplicate after all, or a creation is under way: kept");
            return false;
        }
        Ok(_) => {}
        Err(err) => {
            tracing::warn!(order.ref = %crate::orders::log_ref(order_id), error = %err, "could not read the order before cancelling a duplicate; the next sweep tries again");
            return false;
        }
    }
    if e.status.is_funded() {
        if let Err(err) = flag_funded_duplicate(state, order_id, e).await {
            tracing::warn!(order.ref = %crate::orders::log_ref(order_id), error = %err, "could not flag a paid duplicate; the next sweep tries again");
        }
        return false;
    }
    if e.status != EscrowStatus::Pending {
        tracing::warn!(order.ref = %crate::orders::log_ref(order_id), escrow.id = %e.id, status = %e.status, "a second escrow for the order is not pending; left to the merchant");
        return false;
    }
    // Every instance sweeps in the first hour: one of them cancels (the others' lists show the
    // escrow pending until DHMAD has answered the first). Taken again after a while, should
    // that cancel have failed.
    let turn = format!("cancel_duplicate:{}", e.id);
    match db::turns::take(&state.pool, &turn, CANCEL_TURN).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(order.ref = %crate::orders::log_ref(order_id), escrow.id = %e.id, "another instance is cancelling this duplicate");
            return false;
        }
        Err(err) => {
            tracing::warn!(order.ref = %crate::orders::log_ref(order_id), error = %err, "could not take the duplicate's turn; the next sweep tries again");
            return false;
        }
    }
    match state.dhmad.cancel_escrow(&e.id).await {
        Ok(_) => {
            let detail = format!("Duplicate DHMAD escrow {} cancelled", e.id);
            if let Err(err) =
                db::events::add(&state.pool, order_id, "duplicate_cancelled", &detail, None).await
            {
                tracing::warn!(order.ref = %crate::orders::log_ref(order_id), error = %err, "could not note a cancelled duplicate");
            }
            tracing::warn!(order.ref = %crate::orders::log_ref(order_id), escrow.id = %e.id, "duplicate escrow cancelled");
            true
        }
        Err(err) => {
            tracing::warn!(order.ref = %crate::orders::log_ref(order_id), escrow.id = %e.id, error = %err, "could not cancel a duplicate escrow");
            false
        }
    }
}

/// A second escrow naming the order that the buyer paid (DHMAD tells a buyer of every escrow
/// made for them, so its own notice of a duplicate can be paid before the sweep cancels it):
/// its money belongs to no order, and only the merchant can settle it (refund one, or take it
/// as the payment). Said once on the timeline; the order is flagged by every sweep that finds
/// it still paid (unless it has another flag, whose reason it would replace), and the flag
/// stays until the merchant's "Reconcile" (`snapshot::lift_money_flag`): no other read lifts
/// it. The caller made sure the escrow is no order's and the order's creation is settled.
async fn flag_funded_duplicate(state: &AppState, order_id: Uuid, e: &Escrow) -> sqlx::Result<()> {
    let why = format!(
        "{DUPLICATE_FUNDED}DHMAD escrow {}, a second one for this order, is {}: the buyer's money \
         there belongs to no order. Refund it at DHMAD, or settle with the buyer; then \
         \"Reconcile\" this order to clear this flag",
        e.id, e.status
    );
    let mut conn = state.pool.acquire().await?;
    let mut tx = db::tx::begin(&mut conn).await?;
    db::orders::flag_attention_unless_flagged(&mut *tx, order_id, &why).await?;
    if !db::events::has_line(&mut *tx, order_id, "duplicate_funded", &why).await? {
        tracing::warn!(order.ref = %crate::orders::log_ref(order_id), escrow.id = %e.id, status = %e.status, "a duplicate escrow holds the buyer's money; flagged for the merchant");
        db::events::add(&mut *tx, order_id, "duplicate_funded", &why, None).await?;
    }
    tx.commit().await
}

/// How long one instance's cancel of a duplicate keeps the others from sending theirs.
const CANCEL_TURN: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Orders whose creation was reconciled within this window can still get a late duplicate.
const DUPLICATE_WINDOW: time::Duration = time::Duration::hours(24);
/// A late duplicate comes from a create call in flight when the order was reconciled, so it
/// lands soon after: every pass looks for an hour, then every half hour for the window's rest.
const LOOK_EVERY_PASS_FOR: time::Duration = time::Duration::hours(1);
const LOOK_LATER_EVERY: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Cancels pending escrows that name an order which has another escrow: creations that landed
/// after `reconcile_creation` looked (and flags the order of one paid before it was cancelled).
/// How many it cancelled. Reads DHMAD only when such an order exists, and only as
/// far back as the oldest such order (a pass after a single timeout used to page through a
/// whole day of pending escrows, every minute for a day, on every instance).
pub async fn sweep_duplicates(state: &AppState) -> OrderResult<usize> {
    let now = OffsetDateTime::now_utc();
    let watched = db::orders::reconciled_since(&state.pool, now - DUPLICATE_WINDOW).await?;
    let Some(oldest) = watched.iter().map(|o| o.created_at).min() else {
        return Ok(0);
    };
    let recent = watched
        .iter()
        .any(|o| o.reconciled_at > now - LOOK_EVERY_PASS_FOR);
    // Older ones: one instance's turn per period, whichever asks first.
    if !recent && !db::turns::take(&state.pool, "duplicate_sweep", LOOK_LATER_EVERY).await? {
        return Ok(0);
    }
    let since = (oldest - MARGIN).max(now - DUPLICATE_WINDOW);
    // A title carries the order's short reference (32 bits), which two orders can share: the
    // buyer must match too, as for `reconcile_creation`, and `cancel_duplicate` keeps an
    // escrow any order holds. Not the terms: the order's amount follows edits of its escrow,
    // which a duplicate does not share, and nothing here fulfils (a paid one is flagged for
    // the merchant, whoever made it).
    let named = |e: &Escrow| {
        watched
            .iter()
            .find(|o| {
                names(e, o.id)
                    && o.escrow_id.as_deref() != Some(e.id.as_str())
                    && e.buyer_email()
                        .is_none_or(|b| b.eq_ignore_ascii_case(&o.buyer_email))
            })
            .map(|o| o.id)
    };
    // A list cut short still holds duplicates to cancel: those it reached. Pending ones are
    // cancelled; paid ones (paid before a sweep came) are the merchant's to settle.
    let mut duplicates = Vec::new();
    for status in [EscrowStatus::Pending, EscrowStatus::Paid] {
        let (found, _) = list_since(state, since, Some(status), |e| named(e).is_some()).await?;
        duplicates.extend(found);
    }
    let mut cancelled = 0;
    for e in duplicates {
        if let Some(order_id) = named(&e) {
            cancelled += usize::from(cancel_duplicate(state, order_id, &e).await);
        }
    }
    Ok(cancelled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::checkout::escrow_title;

    #[test]
    fn the_list_ends_by_its_page_count_or_else_a_page_not_full() {
        assert!(!is_last_page(1, 3, 100, 100));
        assert!(is_last_page(3, 3, 100, 100));
        // No readable count: a full page may have more behind it.
        assert!(!is_last_page(1, 0, 100, 100));
        assert!(is_last_page(2, 0, 40, 100));
    }

    #[test]
    fn an_escrow_is_the_orders_only_on_its_terms() {
        let listed = |extra: serde_json::Value| -> Escrow {
            let mut e = serde_json::json!({
                "id": "66aa00000000000000000001", "title": "t", "amount": 120,
                "status": "pending", "mode": "quick"
            });
            e.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::from_value(e).unwrap()
        };
        let usd = Decimal::new(120_000, 3);
        // A currency left out is TND: a TND escrow of the same face amount is no USD order's.
        assert!(!same_terms(
            &listed(serde_json::json!({})),
            usd,
            "USD",
            Mode::Quick
        ));
        assert!(same_terms(
            &listed(serde_json::json!({})),
            usd,
            "TND",
            Mode::Quick
        ));
        assert!(same_terms(
            &listed(serde_json::json!({"currency": "USD"})),
            usd,
            "USD",
            Mode::Quick
        ));
        assert!(!same_terms(
            &listed(serde_json::json!({"currency": "EUR"})),
            usd,
            "USD",
            Mode::Quick
        ));
        assert!(!same_terms(
            &listed(serde_json::json!({"amount": 5})),
            usd,
            "USD",
            Mode::Quick
        ));
        assert!(!same_terms(
            &listed(serde_json::json!({"mode": "instant"})),
            usd,
            "USD",
            Mode::Quick
        ));
    }

    #[test]
    fn the_title_names_the_order() {
        let id = Uuid::new_v4();
        let title = escrow_title("AI credits — 500", id);
        assert!(title.len() < 40, "readable: {title}");
        assert!(title_names(&title, id));
        assert!(!title_names(&title, Uuid::new_v4()));
        assert!(!title_names("Chéchia · order nope", id));
        // Escrows from before titles were shortened carry the whole id.
        assert!(title_names(&format!("Chéchia · order {id}"), id));
        let e: Escrow = serde_json::from_value(serde_json::json!({
            "id": "66aa00000000000000000001", "title": title,
            "amount": 15, "currency": "TND", "status": "pending", "mode": "instant"
        }))
        .unwrap();
        assert!(names(&e, id));
    }
}
