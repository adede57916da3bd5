//! Asking DHMAD directly: after the buyer's redirect, for orders with no news (reconciler), and
//! for escrow creations whose answer was lost.

use dhmad::CheckoutAction;
use uuid::Uuid;

use super::{
    apply_escrow_snapshot, sessions::live_session, snapshot::Authority, Applied, Order, OrderError,
    OrderResult, OrderStatus,
};
use crate::db;
use crate::state::AppState;

/// Reads the escrow from DHMAD and applies it. DHMAD failures come back as errors for the
/// caller to decide (the callback shrugs them off; the reconciler tries again later).
#[tracing::instrument(skip_all, fields(order.id = %order.id, escrow.id = order.escrow_id.as_deref(), source))]
pub async fn refresh_order(state: &AppState, order: &Order, source: &str) -> OrderResult<Applied> {
    let Some(escrow_id) = order.escrow_id.as_deref() else {
        return Ok(Applied::Unchanged {
            order: Box::new(order.clone()),
        });
    };
    let escrow = state
        .dhmad
        .get_escrow(escrow_id)
        .await
        .map_err(|e| match e {
            dhmad::Error::NotFound(_) | dhmad::Error::Forbidden(_) => {
                OrderError::EscrowUnknown(format!("DHMAD does not know escrow {escrow_id} ({e})"))
            }
            e => upstream(e, "reading the escrow"),
        })?;
    apply_in_tx(state, &escrow, source).await
}

/// Applies what DHMAD's API answered (authoritative: it describes the escrow as it is now).
pub async fn apply_in_tx(
    state: &AppState,
    escrow: &dhmad::Escrow,
    source: &str,
) -> OrderResult<Applied> {
    let mut tx = db::tx::begin(&state.pool).await?;
    let applied = apply_escrow_snapshot(&mut tx, escrow, Authority::Api, source).await?;
    tx.commit().await?;
    Ok(applied)
}

/// A failed read: users are told only that DHMAD is not answering; the log gets the cause.
pub(super) fn upstream(e: dhmad::Error, what: &str) -> OrderError {
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
/// the buyer's checkout opens a fresh one instead of failing on it forever.
pub async fn recheck_before_reuse(state: &AppState, order: Order) -> OrderResult<Order> {
    let Some(escrow_id) = order.escrow_id.clone() else {
        return Ok(order);
    };
    if order.status != OrderStatus::AwaitingPayment {
        return Ok(order);
    }
    if live_session(&state.pool, &order, &CheckoutAction::AcceptPay)
        .await?
        .is_some()
    {
        return Ok(order);
    }
    match state.dhmad.get_escrow(&escrow_id).await {
        Ok(escrow) => {
            let applied = apply_in_tx(state, &escrow, "checkout, read from DHMAD").await?;
            if let Some(o) = applied.order() {
                return Ok(o.clone());
            }
        }
        Err(dhmad::Error::NotFound(_)) => {
            let reason =
                format!("DHMAD no longer knows escrow {escrow_id}; a new order was opened");
            tracing::warn!(order.id = %order.id, escrow.id = escrow_id, "escrow unknown to DHMAD; closing the order");
            let mut tx = db::tx::begin(&state.pool).await?;
            db::orders::record_failure(&mut *tx, order.id, OrderStatus::Cancelled, &reason).await?;
            db::events::add(&mut *tx, order.id, "escrow_missing", &reason).await?;
            tx.commit().await?;
            return Ok(Order {
                status: OrderStatus::Cancelled,
                failure_reason: Some(reason),
                ..order
            });
        }
        // DHMAD is not answering: carry on with what we know; opening the session will tell.
        Err(e) => tracing::warn!(order.id = %order.id, error = %e, "could not re-check the escrow"),
    }
    Ok(order)
}

/// The buyer came back from DHMAD's page with `session_id`. The `status` query parameter is a
/// hint we never act on: if the order is not settled we ask DHMAD (session, then escrow).
/// Returns the order id; unknown sessions are `NotFound` and change nothing.
#[tracing::instrument(skip_all, fields(session.id = session_id, order.id))]
pub async fn on_callback(state: &AppState, session_id: &str) -> OrderResult<Uuid> {
    let session = db::sessions::get(&state.pool, session_id)
        .await?
        .ok_or(OrderError::NotFound)?;
    let order = db::orders::get(&state.pool, session.order_id)
        .await?
        .ok_or(OrderError::NotFound)?;
    tracing::Span::current().record("order.id", tracing::field::display(order.id));
    if order.status.is_settled() {
        return Ok(order.id);
    }
    // At most one look at DHMAD per session per interval, however often the page is reloaded
    // (or a stranger replays the callback to burn the merchant's DHMAD quota).
    let recheck = time::Duration::try_from(state.config.edge.callback_recheck)
        .unwrap_or(time::Duration::SECOND);
    if !db::sessions::claim_check(&state.pool, session_id, recheck).await? {
        return Ok(order.id);
    }
    match state.dhmad.get_session(session_id).await {
        Ok(s) => db::sessions::set_status(&state.pool, session_id, s.status.as_str()).await?,
        Err(e) => tracing::warn!(error = %e, "could not read the session from DHMAD"),
    }
    if let Err(e) = refresh_order(state, &order, "callback, read from DHMAD").await {
        // The order page says we are confirming; the webhook or the reconciler will finish.
        tracing::warn!(error = %e, cause = e.cause(), "could not read the escrow from DHMAD after the redirect");
    }
    Ok(order.id)
}
