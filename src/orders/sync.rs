//! Asking DHMAD directly: after the buyer's redirect, for orders with no news (reconciler), and
//! for escrow creations whose answer was lost.

use dhmad::{CheckoutAction, ListEscrows, Role};
use uuid::Uuid;

use super::{
    apply_escrow_snapshot, checkout::escrow_title, sessions::live_session, Applied, OrderStatus,
};
use crate::app::AppState;
use crate::db::{self, orders::Order};
use crate::error::{AppError, AppResult};

/// Reads the escrow from DHMAD and applies it. DHMAD failures come back as errors for the
/// caller to decide (the callback shrugs them off; the reconciler tries again later).
pub async fn refresh_order(state: &AppState, order: &Order, source: &str) -> AppResult<Applied> {
    let Some(escrow_id) = order.escrow_id.as_deref() else {
        return Ok(Applied::Unchanged { order_id: order.id });
    };
    let escrow = state.dhmad.get_escrow(escrow_id).await.map_err(upstream)?;
    apply_in_tx(state, &escrow, source).await
}

pub async fn apply_in_tx(
    state: &AppState,
    escrow: &dhmad::Escrow,
    source: &str,
) -> AppResult<Applied> {
    let mut tx = state.pool.begin().await?;
    let applied = apply_escrow_snapshot(&mut tx, escrow, source).await?;
    tx.commit().await?;
    Ok(applied)
}

fn upstream(e: dhmad::Error) -> AppError {
    if e.is_transient() {
        AppError::Unavailable(format!("DHMAD unavailable: {e}"))
    } else {
        AppError::Upstream(format!("DHMAD error: {e}"))
    }
}

/// A checkout that reuses an open order with an escrow but no live session first asks DHMAD
/// what became of the escrow, since our copy may be stale: paid with a lost webhook, cancelled
/// at its expiry, or unknown (deleted, or a sandbox that was restarted). Returns the order as
/// DHMAD sees it; an escrow DHMAD no longer knows closes the order, with the reason, so that
/// the buyer's checkout opens a fresh one instead of failing on it forever.
pub async fn recheck_before_reuse(state: &AppState, order: Order) -> AppResult<Order> {
    let Some(escrow_id) = order.escrow_id.clone() else {
        return Ok(order);
    };
    if order.status() != OrderStatus::AwaitingPayment {
        return Ok(order);
    }
    if live_session(state, &order, &CheckoutAction::AcceptPay)
        .await?
        .is_some()
    {
        return Ok(order);
    }
    match state.dhmad.get_escrow(&escrow_id).await {
        Ok(escrow) => {
            apply_in_tx(state, &escrow, "checkout, read from DHMAD").await?;
        }
        Err(dhmad::Error::NotFound(_)) => {
            let reason =
                format!("DHMAD no longer knows escrow {escrow_id}; a new order was opened");
            tracing::warn!(order_id = %order.id, escrow_id, "escrow unknown to DHMAD; closing the order");
            let mut tx = state.pool.begin().await?;
            db::orders::record_failure(&mut *tx, order.id, OrderStatus::Cancelled, &reason).await?;
            db::events::add(&mut *tx, order.id, "escrow_missing", &reason).await?;
            tx.commit().await?;
        }
        // DHMAD is not answering: carry on with what we know; opening the session will tell.
        Err(e) => tracing::warn!(order_id = %order.id, error = %e, "could not re-check the escrow"),
    }
    db::orders::get(&state.pool, order.id)
        .await?
        .ok_or(AppError::NotFound)
}

/// The buyer came back from DHMAD's page with `session_id`. The `status` query parameter is a
/// hint we never act on: if the order is not settled we ask DHMAD (session, then escrow).
/// Returns the order id; unknown sessions are `NotFound` and change nothing.
pub async fn on_callback(state: &AppState, session_id: &str) -> AppResult<Uuid> {
    let session = db::sessions::get(&state.pool, session_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let order = db::orders::get(&state.pool, session.order_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if order.status().is_settled() {
        return Ok(order.id);
    }
    match state.dhmad.get_session(session_id).await {
        Ok(s) => db::sessions::set_status(&state.pool, session_id, s.status.as_str()).await?,
        Err(e) => {
            tracing::warn!(order_id = %order.id, error = %e, "could not read the session from DHMAD")
        }
    }
    if let Err(e) = refresh_order(state, &order, "callback, read from DHMAD").await {
        // The order page says we are confirming; the webhook or the reconciler will finish.
        tracing::warn!(order_id = %order.id, error = %e, "could not read the escrow from DHMAD after the redirect");
    }
    Ok(order.id)
}

/// Resolves an escrow creation with an unknown outcome by looking for the escrow in DHMAD's
/// list (its title carries the order id). Found: the order continues with it. Not found: the
/// order is marked safe to retry.
pub async fn reconcile_creation(state: &AppState, order: &Order) -> AppResult<()> {
    let marker = escrow_title("", order.id);
    let mut found = None;
    for page in 1..=3 {
        let q = ListEscrows {
            role: Some(Role::Seller),
            page: Some(page),
            limit: Some(100),
            ..Default::default()
        };
        let list = state.dhmad.list_escrows(&q).await.map_err(upstream)?;
        found = list.escrows.into_iter().find(|e| {
            e.title.ends_with(&marker)
                && e.buyer_email()
                    .is_none_or(|b| b.eq_ignore_ascii_case(&order.buyer_email))
        });
        if found.is_some() || page >= list.pagination.pages {
            break;
        }
    }
    match found {
        Some(e) => {
            let at = e.updated_at.or(e.created_at);
            db::orders::record_escrow(&state.pool, order.id, &e.id, e.status.as_str(), at).await?;
            let detail = format!("DHMAD escrow {} found after an unanswered request", e.id);
            db::events::add(&state.pool, order.id, "escrow_reconciled", &detail).await?;
            // The escrow may have moved on since (paid, cancelled…): apply its full state.
            if let Some(o) = db::orders::get(&state.pool, order.id).await? {
                refresh_order(state, &o, "reconciliation").await?;
            }
        }
        None => {
            let reason = "no escrow was created at DHMAD; safe to retry";
            db::orders::record_failure(&state.pool, order.id, OrderStatus::EscrowFailed, reason)
                .await?;
            db::events::add(&state.pool, order.id, "escrow_reconciled", reason).await?;
        }
    }
    Ok(())
}
