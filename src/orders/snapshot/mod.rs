//! `apply_escrow_snapshot`: the one place where what DHMAD says about an escrow changes an
//! order. The webhook handler, the callback and the reconciler all call it, inside the
//! transaction that also records why (inbox row, timeline) and what follows (outbox).

use dhmad::{Escrow, EscrowStatus};
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{fulfilment, Order};
use crate::db;

mod plan;

pub use plan::Authority;
use plan::{Decision, Seen};

/// What applying a snapshot did. Every variant but `Unmatched` carries the order as it is now,
/// still row-locked by the caller's transaction.
#[derive(Debug, Clone)]
pub enum Applied {
    /// No order has this escrow.
    Unmatched,
    /// The escrow status changed.
    Transitioned {
        order: Box<Order>,
        from: Option<String>,
        to: String,
    },
    /// Same status (perhaps newer details): nothing to do but note we heard from DHMAD.
    Unchanged { order: Box<Order> },
    /// Older than what we already applied.
    Stale { order: Box<Order> },
    /// The order is completed or cancelled and stays so.
    Settled { order: Box<Order> },
}

impl Applied {
    pub fn order(&self) -> Option<&Order> {
        match self {
            Applied::Unmatched => None,
            Applied::Transitioned { order, .. }
            | Applied::Unchanged { order }
            | Applied::Stale { order }
            | Applied::Settled { order } => Some(order),
        }
    }
}

/// Applies `escrow` to the order that owns it, under the order's row lock. Idempotent: the same
/// snapshot twice transitions once. `source` says where the news came from, for the timeline.
#[tracing::instrument(skip_all, fields(escrow.id = %escrow.id, escrow.status = %escrow.status, source))]
pub async fn apply_escrow_snapshot(
    conn: &mut PgConnection,
    escrow: &Escrow,
    authority: Authority,
    source: &str,
) -> sqlx::Result<Applied> {
    let Some(order) = db::orders::lock_by_escrow(&mut *conn, &escrow.id).await? else {
        return Ok(Applied::Unmatched);
    };
    let order = Box::new(order);
    let seen = Seen {
        status: order.status,
        escrow_status: order.escrow_status.as_deref().map(EscrowStatus::from),
        clock: order.escrow_updated_at,
    };
    let plan = plan::plan(
        &seen,
        &escrow.status,
        escrow.updated_at,
        authority,
        OffsetDateTime::now_utc(),
    );
    if plan.clamped {
        tracing::warn!(order.id = %order.id, updated_at = ?escrow.updated_at, "escrow snapshot dated in the future; taken as now");
    }
    match plan.decision {
        Decision::Settled => return Ok(Applied::Settled { order }),
        Decision::Stale => {
            tracing::info!(order.id = %order.id, "stale escrow snapshot ignored");
            return Ok(Applied::Stale { order });
        }
        Decision::Same => {
            db::orders::touch_synced(&mut *conn, order.id, plan.clock, plan.reset_clock).await?;
            return Ok(Applied::Unchanged { order });
        }
        Decision::Apply => {}
    }
    let from = order.escrow_status.clone();
    let mut order = Box::new(
        db::orders::apply_snapshot(
            &mut *conn,
            order.id,
            plan.next,
            escrow.status.as_str(),
            plan.clock,
        )
        .await?,
    );
    let detail = format!(
        "DHMAD escrow {} → {} ({source})",
        from.as_deref().unwrap_or("unknown"),
        escrow.status
    );
    db::events::add(&mut *conn, order.id, "escrow_status", &detail).await?;
    tracing::info!(order.id = %order.id, from = ?from, "order transitioned");
    if plan.fulfil {
        clear_deposit_rejection(conn, &mut order).await?;
        fulfilment::on_funded(&mut *conn, &order).await?;
    }
    Ok(Applied::Transitioned {
        order,
        from,
        to: escrow.status.to_string(),
    })
}

// The deposit-proof rule, both halves here: DHMAD's rejection of a guest's payment proof is
// shown only while the order awaits payment, and a payment makes any earlier one history.

/// Records why DHMAD rejected the buyer's deposit proof, if the order still awaits payment.
pub async fn record_deposit_rejection(
    conn: &mut PgConnection,
    order: &Order,
    reason: &str,
) -> sqlx::Result<()> {
    if order.takes_deposit_rejection() {
        db::orders::set_deposit_rejection(&mut *conn, order.id, Some(reason)).await?;
    }
    Ok(())
}

async fn clear_deposit_rejection(conn: &mut PgConnection, order: &mut Order) -> sqlx::Result<()> {
    if order.deposit_rejection_reason.take().is_some() {
        db::orders::set_deposit_rejection(&mut *conn, order.id, None).await?;
    }
    Ok(())
}
