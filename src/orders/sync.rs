//! Asking DHMAD directly: after the buyer's redirect, for orders with no news (reconciler), and
//! for escrow creations whose answer was lost.

use dhmad::CheckoutAction;
use uuid::Uuid;

use super::{
    apply_escrow_snapshot, payment_review,
    sessions::{live_session, next_buyer_action, Party},
    snapshot::Authority,
    Applied, Order, OrderError, OrderResult, OrderStatus,
};
use crate::db;
use crate::state::AppState;

/// Reads the escrow from DHMAD and applies it. DHMAD failures come back as errors for the
/// caller to decide (the callback shrugs them off; the reconciler tries again later); an
/// escrow DHMAD does not know also flags the order (`EscrowUnknown`).
#[tracing::instrument(skip_all, fields(order.ref = %crate::orders::log_ref(order.id), escrow.id = order.escrow_id.as_deref(), source))]
pub async fn refresh_order(state: &AppState, order: &Order, source: &str) -> OrderResult<Applied> {
    let call_order = order.id;
    super::call_log::for_order(
        call_order,
        Box::pin(async move {
            let Some(escrow_id) = order.escrow_id.as_deref() else {
                return Ok(Applied::Unchanged {
                    order: Box::new(order.clone()),
                });
            };
            let escrow = match state.dhmad.get_escrow(escrow_id).await {
                Ok(escrow) => escrow,
                // Asking again will not help: the order is flagged for the merchant here,
                // whoever asked (reconciler, callback, a refused cancel, the back office).
                Err(e @ (dhmad::Error::NotFound(_) | dhmad::Error::Forbidden(_))) => {
                    let why = format!("DHMAD does not know escrow {escrow_id} ({e})");
                    super::snapshot::flag(&state.pool, order.id, &why).await?;
                    return Err(OrderError::EscrowUnknown(why));
                }
                Err(e) => return Err(upstream(e, "reading the escrow")),
            };
            apply_in_tx(state, &escrow, source).await
        }),
    )
    .await
}

/// Applies what DHMAD's API answered (authoritative: it describes the escrow as it is now).
pub async fn apply_in_tx(
    state: &AppState,
    escrow: &dhmad::Escrow,
    source: &str,
) -> OrderResult<Applied> {
    let mut conn = state.pool.acquire().await?;
    let mut tx = db::tx::begin(&mut conn).await?;
    let applied = apply_escrow_snapshot(&mut tx, escrow, Authority::Api, source).await?;
    super::snapshot::amount::keep_from_snapshot(&mut tx, &applied, escrow).await?;
    tx.commit().await?;
    Ok(applied)
}

/// The merchant's "Reconcile" of `order` with its escrow: their acknowledgement of `seen`, the
/// flag about money their page showed them, which only this lifts
/// (`snapshot::lift_money_flag`), then [`refresh_order`]. Lifted first, and only while it is
/// still the order's flag: one raised since the page was drawn is news to the merchant and
/// stays, as does news the read brings (money for a closed order, now); a read that fails
/// (DHMAD no longer knows the escrow) may flag the order for that.
pub async fn reconcile_for_merchant(
    state: &AppState,
    order: &Order,
    seen: Option<&str>,
    source: &str,
) -> OrderResult<Applied> {
    if let Some(seen) = seen {
        let mut conn = state.pool.acquire().await?;
        let mut tx = db::tx::begin(&mut conn).await?;
        super::snapshot::lift_money_flag(&mut tx, order.id, seen).await?;
        tx.commit().await?;
    }
    refresh_order(state, order, source).await
}

/// A failed read: users are told only that DHMAD is not answering; the log gets the cause.
pub(crate) fn upstream(e: dhmad::Error, what: &str) -> OrderError {
    if let Some(retry_after) = super::error::busy_for(&e) {
        return OrderError::Busy { retry_after };
    }
    let cause = format!("{what}: {e}");
    if e.is_transient() {
        OrderError::DhmadUnavailable {
            message: "The payment provider is not answering. Please try again in a moment.".into(),
            cause,
        }
    } else {
        OrderError::DhmadFailed {
            message: "The payment provider reported an error. Please try again in a moment.".into(),
            cause,
        }
    }
}

/// A checkout that reuses an open order with an escrow but no live session first asks DHMAD
/// what became of the escrow, since our copy may be stale: paid with a lost webhook, cancelled
/// at its expiry, or unknown (deleted, or a sandbox that was restarted). Returns the order as
/// DHMAD sees it; an escrow DHMAD no longer knows closes the order, with the reason, so that
/// the buyer's checkout opens a fresh one instead of failing on it forever (unless a payment
/// may be under review there: then the order is flagged for the merchant and stays).
pub async fn recheck_before_reuse(state: &AppState, order: Order) -> OrderResult<Order> {
    let Some(escrow_id) = order.escrow_id.clone() else {
        return Ok(order);
    };
    if order.status != OrderStatus::AwaitingPayment {
        return Ok(order);
    }
    // The buyer's next page is open: it is what the checkout hands out, with no call.
    if let Some(action) = next_buyer_action(&order) {
        if live_session(&state.pool, &order, &action, Party::Buyer)
            .await?
            .is_some()
        {
            return Ok(order);
        }
    }
    match state.dhmad.get_escrow(&escrow_id).await {
        Ok(escrow) => {
            let applied = apply_in_tx(state, &escrow, "checkout, read from DHMAD").await?;
            if let Some(o) = applied.order() {
                return Ok(o.clone());
            }
        }
        // A payment may be on its way there (a guest's proof under review, a page finished
        // without coming back): one 404 (a key or host mixed up) must not open a new order for
        // the buyer to pay again. Flagged for the merchant, as any read's 404; the checkout
        // then answers that DHMAD is confirming the payment.
        Err(e @ dhmad::Error::NotFound(_)) if payment_review::known(state, &order).await? => {
            let why = format!("DHMAD does not know escrow {escrow_id} ({e})");
            tracing::warn!(order.ref = %crate::orders::log_ref(order.id), escrow.id = escrow_id, "escrow unknown to DHMAD under a payment in review; flagged, not closed");
            super::snapshot::flag(&state.pool, order.id, &why).await?;
            let now = db::orders::get(&state.pool, order.id).await?;
            return now.ok_or(OrderError::NotFound);
        }
        Err(dhmad::Error::NotFound(_)) => {
            let reason =
                format!("DHMAD no longer knows escrow {escrow_id}; a new order was opened");
            tracing::warn!(order.ref = %crate::orders::log_ref(order.id), escrow.id = escrow_id, "escrow unknown to DHMAD; closing the order");
            let mut conn = state.pool.acquire().await?;
            let mut tx = db::tx::begin(&mut conn).await?;
            let closed = db::orders::record_failure(
                &mut *tx,
                order.id,
                &[order.status],
                OrderStatus::Cancelled,
                &reason,
                None,
            )
            .await?;
            if !closed {
                // News landed meanwhile: the order as it now is.
                drop(tx);
                let now = db::orders::get(&state.pool, order.id).await?;
                return now.ok_or(OrderError::NotFound);
            }
            db::events::add(&mut *tx, order.id, "escrow_missing", &reason, None).await?;
            tx.commit().await?;
            return Ok(Order {
                status: OrderStatus::Cancelled,
                failure_reason: Some(reason),
                ..order
            });
        }
        // DHMAD is not answering: carry on with what we know; opening the session will tell.
        Err(e) => {
            tracing::warn!(order.ref = %crate::orders::log_ref(order.id), error = %e, "could not re-check the escrow");
        }
    }
    Ok(order)
}

/// Where a user came back to, after DHMAD's page.
#[derive(Debug, Clone, Copy)]
pub struct Returned {
    pub order_id: Uuid,
    /// The session was the merchant's (back office), not the buyer's.
    pub for_merchant: bool,
}

/// The user came back from DHMAD's page with `session_id`. The `status` query parameter is a
/// hint we never act on: if the order is not settled we ask DHMAD (session, then escrow).
/// Unknown sessions are `NotFound` and change nothing.
#[tracing::instrument(skip_all, fields(session.ref = crate::orders::log_ref_of(session_id), order.ref))]
pub async fn on_callback(state: &AppState, session_id: &str) -> OrderResult<Returned> {
    let session = db::sessions::get(&state.pool, session_id)
        .await?
        .ok_or(OrderError::NotFound)?;
    let order = db::orders::get(&state.pool, session.order_id)
        .await?
        .ok_or(OrderError::NotFound)?;
    tracing::Span::current().record(
        "order.ref",
        tracing::field::display(crate::orders::log_ref(order.id)),
    );
    let returned = Returned {
        order_id: order.id,
        for_merchant: session.for_merchant,
    };
    if order.status.is_settled() {
        return Ok(returned);
    }
    if !may_look_at_page(state, session_id).await? {
        return Ok(returned);
    }
    let finished = match read_page(state, order.id, session_id).await? {
        Some(s) => (s.status == dhmad::SessionStatus::Completed).then_some(s.completed_at),
        None => None,
    };
    learn_from_page(
        state,
        &order,
        &session,
        finished,
        "callback, read from DHMAD",
    )
    .await
    // Not recorded: the page stays pending, looked at again on a reload or once it ends.
    .map(|_| returned)
}

/// Whether this request may ask DHMAD about the page now: at most one look per page per
/// interval (`callback_recheck`), however often the return is reloaded or a step clicked (a
/// stranger holding the link must not burn the merchant's DHMAD quota), and within its
/// client's allowance (`looks`: one client with many pages of its own must not either).
pub(super) async fn may_look_at_page(state: &AppState, session_id: &str) -> sqlx::Result<bool> {
    let recheck = time::Duration::try_from(state.config.edge.callback_recheck)
        .unwrap_or(time::Duration::SECOND);
    if !db::sessions::claim_check(&state.pool, session_id, recheck).await? {
        return Ok(false);
    }
    // Past its client's allowance, the page is marked as looked at one interval ago: the
    // page's own buyer looking next is not held back by whoever spent it (and the sweeper's
    // longer interval for left pages is not reset, as no mark would).
    if !state.looks.allow() {
        db::sessions::release_check(&state.pool, session_id, recheck).await?;
        return Ok(false);
    }
    Ok(true)
}

/// Reads the page's session from DHMAD and records its status, but `completed`, which
/// [`learn_from_page`] records once what the page did is (only a pending page is asked about
/// again); `None` when DHMAD could not say (logged).
pub(super) async fn read_page(
    state: &AppState,
    order_id: Uuid,
    session_id: &str,
) -> OrderResult<Option<dhmad::CheckoutSession>> {
    let read = super::call_log::for_order(order_id, state.dhmad.get_session(session_id)).await;
    match read {
        Ok(s) => {
            if s.status != dhmad::SessionStatus::Completed {
                db::sessions::set_status(&state.pool, session_id, s.status.as_str()).await?;
            }
            Ok(Some(s))
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the session from DHMAD");
            Ok(None)
        }
    }
}

/// What a page of DHMAD's did, learned once it is left: the escrow read again, and, when the
/// page was `finished` (with DHMAD's completion time), a payment to review or a cancellation
/// step. The escrow read failing is logged: the webhook or the reconciler will finish.
/// A `finished` page is then recorded `completed`. `false` when a cancellation step it
/// finished could not be recorded (logged): no escrow read tells it, so the page stays pending,
/// for another look (the sweeper's, once it has ended).
pub(super) async fn learn_from_page(
    state: &AppState,
    order: &Order,
    session: &db::sessions::Session,
    finished: Option<Option<time::OffsetDateTime>>,
    source: &str,
) -> OrderResult<bool> {
    if let Err(e) = refresh_order(state, order, source).await {
        // The order page says we are confirming; the webhook or the reconciler will finish.
        tracing::warn!(error = %e, cause = e.cause(), "could not read the escrow from DHMAD after its page");
    }
    let completed = dhmad::SessionStatus::Completed.as_str();
    let pay_page = session.action == CheckoutAction::AcceptPay.as_str();
    if let Some(completed_at) = finished.filter(|_| pay_page) {
        // A payment page is recorded completed first: the payment rules take a completed page
        // for a finished one (`payment_review::known`), so a review not noted below is caught
        // up there, and a pending one would be handed out again as the page to pay on.
        db::sessions::set_status(&state.pool, &session.session_id, completed).await?;
        let page = payment_review::FinishedPage {
            opened_at: session.created_at,
            expires_at: session.expires_at,
            completed_at,
        };
        payment_review::note(state, order.id, &page).await?;
    } else if let Some(step) =
        super::news::cancellation_step(&session.action).filter(|_| finished.is_some())
    {
        // Like the escrow read above: the page is shown whatever; the event may still come.
        if let Err(e) = cancellation_done(state, order.id, step).await {
            tracing::warn!(error = %e, cause = e.cause(), "could not record the cancellation step from DHMAD's page");
            return Ok(false);
        }
    }
    if finished.is_some() && !pay_page {
        db::sessions::set_status(&state.pool, &session.session_id, completed).await?;
    }
    Ok(true)
}

/// See [`super::news::cancellation_done_on_page`]; under the order's lock, as events apply.
pub(super) async fn cancellation_done(
    state: &AppState,
    order_id: Uuid,
    step: super::Cancellation,
) -> OrderResult<()> {
    let mut conn = state.pool.acquire().await?;
    let mut tx = db::tx::begin(&mut conn).await?;
    let Some(order) = db::orders::lock(&mut *tx, order_id).await? else {
        return Err(OrderError::NotFound);
    };
    super::news::cancellation_done_on_page(&mut tx, &order, step).await?;
    tx.commit().await?;
    Ok(())
}
