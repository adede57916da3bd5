//! The escrow's amount. `escrow.updated` announces an edit (`news.rs`), but every snapshot,
//! from a webhook or from DHMAD's API, carries the amount: one whose announcement was lost is
//! learned from the next snapshot (the payment's, the callback's read, the reconciler's).

use dhmad::{Escrow, Event};
use rust_decimal::{Decimal, RoundingStrategy};
use sqlx::PgConnection;

use super::{sane_clock, Applied};
use crate::db;

/// The amount as the order would store it, or `None` when it cannot hold it. Judged as stored:
/// Postgres rounds to the millime (half away from zero), and 0.0004 would become 0. Not above
/// zero, or past `NUMERIC(12, 3)`: left out rather than allowed to fail the whole snapshot,
/// whose status and other facts still apply (DHMAD's retries would fail alike until lost).
/// With the stored scale, so it reads as the order page shows amounts (60.000).
pub fn storable(amount: Decimal) -> Option<Decimal> {
    let mut stored = amount.round_dp_with_strategy(3, RoundingStrategy::MidpointAwayFromZero);
    stored.rescale(3);
    (stored > Decimal::ZERO && stored < Decimal::from(1_000_000_000)).then_some(stored)
}

/// Keeps the snapshot's amount when it differs from the order's and the snapshot is dated
/// after the amount we hold (`db::orders::set_amount`'s clock: an older snapshot never brings
/// back an amount an edit replaced). An undated snapshot, a stale or settled one, changes
/// nothing. Costs no statement when the amount is the same (every payment).
pub async fn keep_from_snapshot(
    conn: &mut PgConnection,
    applied: &Applied,
    escrow: &Escrow,
) -> sqlx::Result<()> {
    let (Applied::Transitioned { order, .. } | Applied::Unchanged { order }) = applied else {
        return Ok(());
    };
    let Some(amount) = escrow.amount.and_then(storable) else {
        return Ok(());
    };
    let now = time::OffsetDateTime::now_utc();
    let Some(at) = sane_clock(escrow.updated_at, now) else {
        return Ok(());
    };
    if amount == order.amount
        || !db::orders::set_amount(&mut *conn, order.id, amount, Some(at)).await?
    {
        return Ok(());
    }
    let detail = format!(
        "Amount changed at DHMAD: {} → {amount} {} (learned from the escrow; its escrow.updated did not come)",
        order.amount, order.currency
    );
    let public = format!(
        "The order was updated: the amount is now {amount} {}",
        order.currency
    );
    db::events::add(&mut *conn, order.id, "event", &detail, Some(&public)).await
}

/// [`keep_from_snapshot`] for an event's snapshot, live or reprocessed: `escrow.updated` is the
/// edit itself, ordered by its own clock (`news`).
pub async fn keep_from_event(
    conn: &mut PgConnection,
    applied: &Applied,
    event: &Event,
    escrow: &Escrow,
) -> sqlx::Result<()> {
    if matches!(event, Event::EscrowUpdated(_)) {
        return Ok(());
    }
    keep_from_snapshot(conn, applied, escrow).await
}
