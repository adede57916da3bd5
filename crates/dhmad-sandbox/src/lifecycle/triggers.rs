//! `stripe trigger`-style events and admin decisions of the control API.

use dhmad::{
    CancellationRequestStatus, DeliveryRejection, EscrowStatus, Event, EventType, PaymentMethod,
    ProofPhase, Signer,
};

use super::events::{self, CancellationKind, ProofKind};
use super::{escrow, escrow_mut, transition, Paired};
use crate::error::Refusal;
use crate::state::{
    users, CancellationRecord, Ctx, DepositProofRecord, DepositStatus, EscrowRecord, ProofState,
    Store,
};

/// Emits an event of `kind` for the escrow as it is now (fresh event id). Where the escrow has
/// no matching sub-object (no cancellation request, no proof…), a plausible one is made up for
/// the payload only; the escrow itself does not change.
pub fn emit_chosen(
    store: &mut Store,
    ctx: &Ctx,
    id: &str,
    kind: &str,
    old: Option<EscrowStatus>,
) -> Result<(), Refusal> {
    let rec: EscrowRecord = escrow(store, id)?.clone();
    use EventType as T;
    let ev = match EventType::from(kind) {
        T::EscrowStatusUpdated => {
            events::status_updated(&rec, old.unwrap_or_else(|| rec.status.clone()), ctx)
        }
        T::EscrowUpdated => events::escrow_updated(&rec, Vec::new(), ctx),
        T::ContractSigned => events::contract_signed(&rec, Signer::Seller, ctx)
            .ok_or_else(|| Refusal::bad("Only standard escrows have a contract"))?,
        T::EscrowCancellationRequested => cancellation_event(rec, CancellationKind::Requested, ctx),
        T::EscrowCancellationRejected => cancellation_event(rec, CancellationKind::Rejected, ctx),
        T::EscrowCancellationAccepted => cancellation_event(rec, CancellationKind::Accepted, ctx),
        T::EscrowDeliveryRejected => delivery_rejected_event(&rec, ctx),
        T::EscrowDepositProofRejected => deposit_rejected_event(&rec, id, ctx),
        other => proof_event(rec, &other, ctx)?,
    };
    store.emit(ctx.now, ev);
    Ok(())
}

/// `escrow.cancellation.*`, on the escrow's request or a made-up one from the buyer.
fn cancellation_event(mut rec: EscrowRecord, kind: CancellationKind, ctx: &Ctx) -> Event {
    let status = match kind {
        CancellationKind::Requested => CancellationRequestStatus::Pending,
        CancellationKind::Rejected => CancellationRequestStatus::Rejected,
        CancellationKind::Accepted => CancellationRequestStatus::Accepted,
    };
    let c = rec.cancellation.get_or_insert_with(|| CancellationRecord {
        requested_by: rec.buyer_email.clone(),
        reason: Some("Triggered from the sandbox".into()),
        status: status.clone(),
        requested_at: ctx.now,
        decided_by: None,
    });
    c.status = status;
    c.decided_by = Some(rec.seller_email.clone());
    events::cancellation(&rec, kind, ctx).expect("cancellation set above")
}

/// `escrow.delivery.rejected`, on the last rejection or a made-up one.
fn delivery_rejected_event(rec: &EscrowRecord, ctx: &Ctx) -> Event {
    let r = rec
        .delivery_rejections
        .last()
        .cloned()
        .unwrap_or(DeliveryRejection {
            rejected_at: ctx.now,
            reason: Some("Triggered from the sandbox".into()),
            previous_delivered_at: rec.delivered_at,
            rejected_by: None,
        });
    let r = DeliveryRejection {
        rejected_by: Some(users::user_id(&rec.buyer_email)),
        ..r
    };
    events::delivery_rejected(rec, &r, ctx)
}

/// `escrow.deposit_proof.rejected`, on the last deposit proof or a made-up one.
fn deposit_rejected_event(rec: &EscrowRecord, id: &str, ctx: &Ctx) -> Event {
    let dp = rec
        .deposit_proofs
        .last()
        .cloned()
        .unwrap_or(DepositProofRecord {
            id: users::user_id(&format!("deposit:{id}")),
            method: PaymentMethod::Flouci,
            buyer_email: rec.buyer_email.clone(),
            amount: rec.amount,
            status: DepositStatus::Rejected,
            reason: Some("Triggered from the sandbox".into()),
            file: None,
            session_id: String::new(),
            submitted_at: ctx.now,
        });
    events::deposit_rejected(rec, &dp, ctx)
}

/// `escrow.proof.*`, on the escrow's proof or a fresh one; any other type is refused.
fn proof_event(mut rec: EscrowRecord, kind: &EventType, ctx: &Ctx) -> Result<Event, Refusal> {
    use EventType as T;
    let pk = match kind {
        T::EscrowProofRequired => ProofKind::Required,
        T::EscrowProofSubmitted => ProofKind::Submitted,
        T::EscrowProofCorrectionRequested => ProofKind::CorrectionRequested,
        T::EscrowProofAccepted => ProofKind::Accepted,
        T::EscrowProofAcceptedByTimeout => ProofKind::AcceptedByTimeout,
        T::EscrowProofNeedsReview => ProofKind::NeedsReview,
        T::EscrowProofExpired => ProofKind::Expired,
        other => return Err(Refusal::bad(format!("Cannot emit {other} for an escrow"))),
    };
    rec.proof.get_or_insert_with(|| ProofState {
        phase: ProofPhase::WaitingSellerProof,
        correction_rounds: 0,
        upload_deadline: None,
        review_deadline: None,
        submissions: Vec::new(),
    });
    Ok(events::proof(&rec, pk, ctx).expect("proof set above"))
}

/// DHMAD resolves an open dispute: `release` → completed, `refund` → cancelled.
#[tracing::instrument(skip_all, fields(escrow.id = %id, release = release))]
pub fn resolve_dispute(
    store: &mut Store,
    ctx: &Ctx,
    id: &str,
    release: bool,
) -> Result<(), Refusal> {
    let rec = escrow_mut(store, id)?;
    check_resolve_dispute(rec)?;
    if let Some(d) = rec.dispute.as_mut() {
        d.open = false;
    }
    let to = if release {
        EscrowStatus::Completed
    } else {
        EscrowStatus::Cancelled
    };
    transition(store, ctx, id, to, Paired::Alone);
    Ok(())
}

/// May DHMAD resolve `rec`'s dispute now? The rule of [`resolve_dispute`], also asked by the
/// dashboard.
pub fn check_resolve_dispute(rec: &EscrowRecord) -> Result<(), Refusal> {
    if rec.status != EscrowStatus::Disputed {
        return Err(Refusal::bad(format!(
            "The escrow is {}, not disputed",
            rec.status
        )));
    }
    match &rec.dispute {
        Some(d) if d.open => Ok(()),
        _ => Err(Refusal::bad("This escrow has no open dispute")),
    }
}
