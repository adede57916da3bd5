//! Deadlines that fire when the sandbox clock passes them (ticker and clock advance).

use dhmad::{EscrowStatus, ProofPhase, SessionStatus};

use super::escrow_ops::cancel_pending;
use super::events::{self, ProofKind};
use super::{emit_opt, transition};
use crate::state::{Ctx, Store};

/// Fires everything due at `ctx.now`; returns how many things changed.
pub fn fire_due(store: &mut Store, ctx: &Ctx) -> usize {
    let now = ctx.now;
    let mut fired = 0;
    for s in store.sessions.values_mut() {
        if s.status == SessionStatus::Pending && now >= s.expires_at {
            s.status = SessionStatus::Expired;
            fired += 1;
        }
    }
    let mut ids: Vec<(time::OffsetDateTime, String)> = store
        .escrows
        .values()
        .map(|e| (e.created_at, e.id.clone()))
        .collect();
    ids.sort();
    for (_, id) in ids {
        fired += fire_escrow(store, ctx, &id);
    }
    fired
}

fn fire_escrow(store: &mut Store, ctx: &Ctx, id: &str) -> usize {
    let now = ctx.now;
    let Some(rec) = store.escrows.get_mut(id) else {
        return 0;
    };
    match (&rec.status, rec.proof.as_mut()) {
        (EscrowStatus::Pending, _) if now >= rec.expires_at => {
            cancel_pending(
                store,
                ctx,
                id,
                "Escrow expired before the payment was approved",
            );
            1
        }
        (EscrowStatus::Paid, Some(p))
            if matches!(
                p.phase,
                ProofPhase::WaitingSellerProof | ProofPhase::CorrectionRequested
            ) && p.upload_deadline.is_some_and(|d| now >= d) =>
        {
            p.phase = ProofPhase::ExpiredNoProof;
            p.upload_deadline = None;
            // Cancel first so both events carry the cancelled snapshot.
            let old = std::mem::replace(&mut rec.status, EscrowStatus::Cancelled);
            rec.cancelled_at = Some(now);
            rec.updated_at = now;
            let first = events::proof(rec, ProofKind::Expired, ctx);
            let second = events::status_updated(rec, old, ctx);
            emit_opt(store, first);
            store.emit(second);
            1
        }
        (EscrowStatus::Paid, Some(p))
            if p.phase == ProofPhase::SubmittedWaitingBuyerReview
                && p.review_deadline.is_some_and(|d| now >= d) =>
        {
            p.phase = ProofPhase::AcceptedByTimeout;
            p.review_deadline = None;
            rec.updated_at = now;
            let ev = events::proof(rec, ProofKind::AcceptedByTimeout, ctx);
            emit_opt(store, ev);
            1
        }
        (EscrowStatus::Delivered, _) if rec.completion_deadline.is_some_and(|d| now >= d) => {
            transition(store, id, EscrowStatus::Completed, ctx);
            1
        }
        _ => 0,
    }
}
