//! `apply_escrow_snapshot`: the one place where what DHMAD says about an escrow changes an
//! order. The webhook handler, the callback and the reconciler all call it, inside the
//! transaction that also records why (inbox row, timeline) and what follows (outbox).

use dhmad::{Escrow, EscrowStatus};
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{fulfilment, Order, OrderStatus};
use crate::db;

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

/// Where a snapshot comes from. An answer of DHMAD's API describes the escrow as it is now;
/// a webhook as it was when the event was sent, and webhooks arrive late and out of order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    Webhook,
    Api,
}

/// A clock more than this far ahead of ours is not believed (see `sane_clock`).
const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(1);

/// A snapshot's `updatedAt` in the future cannot be right; kept as is it would make every
/// later snapshot look older and freeze the order. It counts as "now".
fn sane_clock(at: Option<OffsetDateTime>, now: OffsetDateTime) -> Option<OffsetDateTime> {
    at.map(|t| if t > now + MAX_CLOCK_SKEW { now } else { t })
}

#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Apply,
    Same,
    Stale,
    Settled,
}

/// Forward position in the lifecycle, used only when timestamps cannot decide.
fn rank(s: &EscrowStatus) -> i8 {
    match s {
        EscrowStatus::Pending => 0,
        EscrowStatus::Paid => 1,
        EscrowStatus::Delivered | EscrowStatus::Disputed => 2,
        EscrowStatus::Completed | EscrowStatus::Cancelled => 3,
        EscrowStatus::Unknown(_) => -1,
    }
}

/// Monotonic by the escrow's `updatedAt`: a newer snapshot wins even when it moves backwards
/// (the documented delivered→paid of a rejected delivery); without timestamps only forward
/// moves are taken. Terminal statuses are sticky whatever the timestamps say.
fn decide(
    current: Option<&EscrowStatus>,
    current_at: Option<OffsetDateTime>,
    next: &EscrowStatus,
    next_at: Option<OffsetDateTime>,
) -> Decision {
    let Some(current) = current else {
        return Decision::Apply;
    };
    if current.is_terminal() {
        return Decision::Settled;
    }
    let newer = match (next_at, current_at) {
        (Some(n), Some(c)) if n != c => n > c,
        (Some(_), None) => true,
        // Same instant or no timestamp: trust only a forward move.
        _ => rank(next) > rank(current),
    };
    if newer && next != current {
        Decision::Apply
    } else if next == current {
        Decision::Same
    } else {
        Decision::Stale
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
    let current = order.escrow_status.as_deref().map(EscrowStatus::from);
    let now = OffsetDateTime::now_utc();
    let at = sane_clock(escrow.updated_at, now);
    if at != escrow.updated_at {
        tracing::warn!(order.id = %order.id, updated_at = ?escrow.updated_at, "escrow snapshot dated in the future; taken as now");
    }
    // Our clock for the escrow came from a snapshot dated in the future (before such dates
    // were clamped): DHMAD's API, describing the escrow as it is now, overrules it.
    let stored_at = order
        .escrow_updated_at
        .filter(|t| authority == Authority::Webhook || *t <= now + MAX_CLOCK_SKEW);
    let decision = if order.status.is_settled() {
        Decision::Settled
    } else {
        decide(current.as_ref(), stored_at, &escrow.status, at)
    };
    match decision {
        Decision::Settled => return Ok(Applied::Settled { order }),
        Decision::Stale => {
            tracing::info!(order.id = %order.id, "stale escrow snapshot ignored");
            return Ok(Applied::Stale { order });
        }
        Decision::Same => {
            let reset_clock = stored_at.is_none() && order.escrow_updated_at.is_some();
            db::orders::touch_synced(&mut *conn, order.id, at, reset_clock).await?;
            return Ok(Applied::Unchanged { order });
        }
        Decision::Apply => {}
    }
    let next = OrderStatus::from_escrow(&escrow.status).unwrap_or(order.status);
    if next != order.status && !order.status.can_become(next) {
        tracing::warn!(order.id = %order.id, from = ?order.status, to = ?next, "snapshot would make a move the order does not allow; ignored");
        return Ok(Applied::Stale { order });
    }
    let from = order.escrow_status.clone();
    let mut order = Box::new(
        db::orders::apply_snapshot(&mut *conn, order.id, next, escrow.status.as_str(), at).await?,
    );
    let detail = format!(
        "DHMAD escrow {} → {} ({source})",
        from.as_deref().unwrap_or("unknown"),
        escrow.status
    );
    db::events::add(&mut *conn, order.id, "escrow_status", &detail).await?;
    tracing::info!(order.id = %order.id, from = ?from, "order transitioned");
    if escrow.status == EscrowStatus::Paid {
        clear_deposit_rejection(conn, &mut order).await?;
        fulfilment::on_paid(&mut *conn, &order).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T1: OffsetDateTime = datetime!(2026-07-01 09:00 UTC);
    const T2: OffsetDateTime = datetime!(2026-07-01 09:05 UTC);
    use EscrowStatus::*;

    #[test]
    fn newer_wins_older_is_stale() {
        assert_eq!(
            decide(Some(&Pending), Some(T1), &Paid, Some(T2)),
            Decision::Apply
        );
        assert_eq!(
            decide(Some(&Paid), Some(T2), &Pending, Some(T1)),
            Decision::Stale
        );
        assert_eq!(
            decide(Some(&Paid), Some(T2), &Paid, Some(T2)),
            Decision::Same
        );
        assert_eq!(decide(None, None, &Pending, None), Decision::Apply);
    }

    #[test]
    fn delivery_rejection_moves_back_because_it_is_newer() {
        assert_eq!(
            decide(Some(&Delivered), Some(T1), &Paid, Some(T2)),
            Decision::Apply
        );
    }

    #[test]
    fn terminal_is_sticky() {
        assert_eq!(
            decide(Some(&Completed), Some(T1), &Paid, Some(T2)),
            Decision::Settled
        );
        assert_eq!(
            decide(Some(&Cancelled), None, &Pending, None),
            Decision::Settled
        );
    }

    #[test]
    fn a_future_clock_counts_as_now() {
        let now = T1;
        let far = datetime!(2099-01-01 00:00 UTC);
        assert_eq!(sane_clock(Some(far), now), Some(now));
        assert_eq!(
            sane_clock(Some(T2), now),
            Some(now),
            "5 minutes ahead is not sane either"
        );
        let skewed = now + time::Duration::seconds(30);
        assert_eq!(
            sane_clock(Some(skewed), now),
            Some(skewed),
            "within the skew"
        );
        assert_eq!(sane_clock(Some(T1), now), Some(T1));
        assert_eq!(sane_clock(None, now), None);
    }

    #[test]
    fn without_timestamps_only_forward() {
        assert_eq!(decide(Some(&Paid), None, &Completed, None), Decision::Apply);
        assert_eq!(decide(Some(&Paid), None, &Pending, None), Decision::Stale);
        assert_eq!(
            decide(Some(&Paid), Some(T1), &Delivered, Some(T1)),
            Decision::Apply
        );
    }
}
