//! Deadlines that fire when the sandbox clock passes them (the ticker and `clock/advance`).

use dhmad::{EscrowStatus, ProofPhase};
use time::OffsetDateTime;

use super::escrow_ops::cancel_pending;
use super::events::{self, ProofKind};
use super::sessions::expire_if_due;
use super::{emit_opt, transition, Paired};
use crate::state::{Ctx, EscrowRecord, Store};

/// A deadline of an escrow that has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    /// Pending for 31 days: cancelled.
    PendingExpiry,
    /// No (corrected) proof uploaded in time: cancelled.
    ProofUpload,
    /// The buyer did not review the proof in time: accepted.
    ProofReview,
    /// Delivered and the buyer stayed silent for 7 days: completed.
    Completion,
}

/// Fires everything due at `ctx.now`, sessions first, then escrows oldest first; returns how
/// many things changed.
pub fn fire_due(store: &mut Store, ctx: &Ctx) -> usize {
    let mut fired = 0;
    for s in store.sessions.values_mut() {
        if expire_if_due(s, ctx.now) {
            fired += 1;
        }
    }
    let mut due: Vec<(OffsetDateTime, String, Due)> = store
        .escrows
        .values()
        .filter_map(|e| Some((e.created_at, e.id.clone(), passed_deadline(e, ctx.now)?)))
        .collect();
    due.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    for (_, id, what) in &due {
        fire(store, ctx, id, *what);
    }
    fired + due.len()
}

/// Which deadline of `rec` has passed at `now`, if any.
fn passed_deadline(rec: &EscrowRecord, now: OffsetDateTime) -> Option<Due> {
    let passed = |d: Option<OffsetDateTime>| d.is_some_and(|d| now >= d);
    match (&rec.status, rec.proof.as_ref()) {
        (EscrowStatus::Pending, _) if now >= rec.expires_at => Some(Due::PendingExpiry),
        (EscrowStatus::Paid, Some(p))
            if matches!(
                p.phase,
                ProofPhase::WaitingSellerProof | ProofPhase::CorrectionRequested
            ) && passed(p.upload_deadline) =>
        {
            Some(Due::ProofUpload)
        }
        (EscrowStatus::Paid, Some(p))
            if p.phase == ProofPhase::SubmittedWaitingBuyerReview && passed(p.review_deadline) =>
        {
            Some(Due::ProofReview)
        }
        (EscrowStatus::Delivered, _) if passed(rec.completion_deadline) => Some(Due::Completion),
        _ => None,
    }
}

fn fire(store: &mut Store, ctx: &Ctx, id: &str, what: Due) {
    match what {
        Due::PendingExpiry => cancel_pending(
            store,
            ctx,
            id,
            "Escrow expired before the payment was approved",
        ),
        Due::ProofUpload => expire_proof(store, ctx, id),
        Due::ProofReview => accept_proof_by_timeout(store, ctx, id),
        Due::Completion => transition(store, ctx, id, EscrowStatus::Completed, Paired::Alone),
    }
}

fn expire_proof(store: &mut Store, ctx: &Ctx, id: &str) {
    let Some(p) = store.escrows.get_mut(id).and_then(|r| r.proof.as_mut()) else {
        return;
    };
    p.phase = ProofPhase::ExpiredNoProof;
    p.upload_deadline = None;
    transition(
        store,
        ctx,
        id,
        EscrowStatus::Cancelled,
        Paired::ProofExpired,
    );
}

fn accept_proof_by_timeout(store: &mut Store, ctx: &Ctx, id: &str) {
    let Some(rec) = store.escrows.get_mut(id) else {
        return;
    };
    if let Some(p) = rec.proof.as_mut() {
        p.phase = ProofPhase::AcceptedByTimeout;
        p.review_deadline = None;
    }
    rec.updated_at = ctx.now;
    let ev = events::proof(rec, ProofKind::AcceptedByTimeout, ctx);
    emit_opt(store, ev);
}
