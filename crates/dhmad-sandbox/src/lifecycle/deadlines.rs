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

/// Fires everything due at `ctx.now`, sessions first, then escrows in the order their
/// deadlines fell due; returns how many things changed. Each deadline fires as of its own time
/// (a clock jump past it did not happen at the jump's end): the dates it stamps and its events'
/// time are the deadline's, but never before the escrow's last change, so `updatedAt` only
/// grows.
pub fn fire_due(store: &mut Store, ctx: &Ctx) -> usize {
    let mut fired = 0;
    for s in store.sessions.values_mut() {
        if expire_if_due(s, ctx.now) {
            fired += 1;
        }
    }
    let mut due: Vec<(OffsetDateTime, OffsetDateTime, String, Due)> = store
        .escrows
        .values()
        .filter_map(|e| {
            let (what, deadline) = passed_deadline(e, ctx.now)?;
            Some((deadline.max(e.updated_at), e.created_at, e.id.clone(), what))
        })
        .collect();
    due.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    for (at, _, id, what) in &due {
        let then = Ctx {
            now: *at,
            ..ctx.clone()
        };
        fire(store, &then, id, *what);
    }
    fired + due.len()
}

/// Which deadline of `rec` has passed at `now`, if any, and when it fell due.
fn passed_deadline(rec: &EscrowRecord, now: OffsetDateTime) -> Option<(Due, OffsetDateTime)> {
    let (what, deadline) = match (&rec.status, rec.proof.as_ref()) {
        (EscrowStatus::Pending, _) => (Due::PendingExpiry, Some(rec.expires_at)),
        (EscrowStatus::Paid, Some(p))
            if matches!(
                p.phase,
                ProofPhase::WaitingSellerProof | ProofPhase::CorrectionRequested
            ) =>
        {
            (Due::ProofUpload, p.upload_deadline)
        }
        (EscrowStatus::Paid, Some(p)) if p.phase == ProofPhase::SubmittedWaitingBuyerReview => {
            (Due::ProofReview, p.review_deadline)
        }
        (EscrowStatus::Delivered, _) => (Due::Completion, rec.completion_deadline),
        _ => return None,
    };
    Some((what, deadline.filter(|d| now >= *d)?))
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
    emit_opt(store, ctx.now, ev);
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhmad::{CreateEscrow, EscrowMode};
    use time::Duration;

    fn ctx(now: OffsetDateTime) -> Ctx {
        Ctx {
            now,
            assoc: "merchant@shop.example".into(),
            app_name: "Shop".into(),
            base_url: "http://localhost:6002".into(),
        }
    }

    /// A delivered quick escrow created at `t`, whose completion deadline is `deadline`.
    fn delivered(store: &mut Store, t: OffsetDateTime, deadline: OffsetDateTime) -> String {
        let req = CreateEscrow::new("Bike", 420.into(), "buyer@example.com")
            .mode(EscrowMode::Quick)
            .estimated_delivery_days(3);
        let id = super::super::create::create_escrow(store, &ctx(t), req).unwrap();
        let rec = store.escrows.get_mut(&id).unwrap();
        rec.status = EscrowStatus::Delivered;
        rec.completion_deadline = Some(deadline);
        id
    }

    #[test]
    fn a_deadline_is_dated_no_earlier_than_the_escrows_last_change() {
        let t = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
        let mut store = Store::default();
        let id = delivered(&mut store, t, t + Duration::days(7));
        // Touched (say, a cancellation request) after the deadline passed, before the ticker.
        let touched = t + Duration::days(7) + Duration::hours(1);
        store.escrows.get_mut(&id).unwrap().updated_at = touched;
        assert_eq!(fire_due(&mut store, &ctx(t + Duration::days(30))), 1);
        let rec = &store.escrows[&id];
        assert_eq!((rec.completed_at, rec.updated_at), (Some(touched), touched));
        let times: Vec<_> = store.outbox.iter().map(|(at, _)| *at).collect();
        assert_eq!(times, [touched]);
    }

    #[test]
    fn deadlines_fire_in_the_order_they_fell_due() {
        let t = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
        let mut store = Store::default();
        let older = delivered(&mut store, t, t + Duration::days(9));
        let newer = delivered(&mut store, t + Duration::hours(1), t + Duration::days(8));
        assert_eq!(fire_due(&mut store, &ctx(t + Duration::days(30))), 2);
        let fired: Vec<_> = store
            .outbox
            .iter()
            .map(|(at, e)| (*at, e.escrow().unwrap().id.clone()))
            .collect();
        assert_eq!(
            fired,
            [
                (t + Duration::days(8), newer),
                (t + Duration::days(9), older)
            ]
        );
    }
}
