//! The one function that changes an escrow's status.

use dhmad::{DeliveryRejection, EscrowStatus, Event};
use time::OffsetDateTime;

use super::events::{self, CancellationKind, ProofKind};
use super::{emit_opt, COMPLETION_WINDOW};
use crate::state::{Ctx, EscrowRecord, Store};

/// The specific event a status change sends just before `escrow.status.updated`
/// (`docs/dhmad-api.md` §6.8: specific first). Both events are built after the change, so both
/// snapshots show the new status.
#[derive(Debug, Clone)]
pub enum Paired {
    /// `escrow.status.updated` alone.
    Alone,
    /// `escrow.proof.expired`: the upload deadline passed (paid → cancelled).
    ProofExpired,
    /// `escrow.cancellation.accepted`: the seller accepted (→ cancelled).
    CancellationAccepted,
    /// `escrow.delivery.rejected` with this rejection (delivered → paid).
    DeliveryRejected(DeliveryRejection),
}

/// Moves escrow `id` to `to`: stamps the status's date and `updatedAt`, then emits the paired
/// event (if any) and `escrow.status.updated` with `oldStatus`. Callers have checked that the
/// move is allowed; an unknown id changes nothing.
#[tracing::instrument(skip_all, fields(escrow.id = %id, escrow.new_status = %to))]
pub fn transition(store: &mut Store, ctx: &Ctx, id: &str, to: EscrowStatus, paired: Paired) {
    let Some(rec) = store.escrows.get_mut(id) else {
        tracing::warn!("transition of an unknown escrow");
        return;
    };
    let old = rec.status.clone();
    // Callers check; this is the last word: completed and cancelled are final (§2.3).
    if old.is_terminal() {
        tracing::error!(from = %old, "a settled escrow cannot change; transition refused");
        return;
    }
    rec.status = to.clone();
    stamp(rec, ctx.now);
    let first = paired_event(rec, paired, ctx);
    let second = events::status_updated(rec, old.clone(), ctx);
    emit_opt(store, ctx.now, first);
    store.emit(ctx.now, second);
    store.transitions.push((old, to));
}

/// The dates that go with the status the record now has.
fn stamp(rec: &mut EscrowRecord, now: OffsetDateTime) {
    match rec.status {
        EscrowStatus::Paid => {
            // Paid again after a rejected delivery keeps the first payment date.
            rec.paid_at.get_or_insert(now);
            rec.delivered_at = None;
            rec.completion_deadline = None;
        }
        EscrowStatus::Delivered => {
            rec.delivered_at = Some(now);
            rec.completion_deadline = Some(now + COMPLETION_WINDOW);
        }
        EscrowStatus::Completed => rec.completed_at = Some(now),
        EscrowStatus::Cancelled => rec.cancelled_at = Some(now),
        _ => {}
    }
    if !matches!(
        rec.status,
        EscrowStatus::Paid | EscrowStatus::Delivered | EscrowStatus::Completed
    ) {
        clear_deadlines(rec);
    }
    rec.updated_at = now;
}

/// Off the paid → delivered → completed path (cancelled, disputed), nothing fires any more:
/// the completion and proof deadlines are cleared rather than shown as if they would. The proof
/// keeps the phase it reached. Completed keeps its `completionDeadline` (the auto-release's
/// `completedAt`); a dispute ends completed or cancelled, never back on that path (README).
fn clear_deadlines(rec: &mut EscrowRecord) {
    rec.completion_deadline = None;
    if let Some(p) = rec.proof.as_mut() {
        p.upload_deadline = None;
        p.review_deadline = None;
    }
}

fn paired_event(rec: &EscrowRecord, paired: Paired, ctx: &Ctx) -> Option<Event> {
    match paired {
        Paired::Alone => None,
        Paired::ProofExpired => events::proof(rec, ProofKind::Expired, ctx),
        Paired::CancellationAccepted => events::cancellation(rec, CancellationKind::Accepted, ctx),
        Paired::DeliveryRejected(r) => Some(events::delivery_rejected(rec, &r, ctx)),
    }
}
