//! Builders for the webhook events of `docs/dhmad-api.md` §6.4, from records.

use dhmad::{
    CancellationData, CancellationRequest, ContractSignedData, DeliveryRejectedData,
    DeliveryRejection, DepositProof, DepositProofRejectedData, EscrowData, EscrowStatus,
    EscrowUpdatedData, Event, PartyRef, ProofData, Signer,
};

use crate::state::{users, CancellationRecord, Ctx, DepositProofRecord, EscrowRecord};

/// `escrow.status.updated` with `oldStatus`.
pub fn status_updated(rec: &EscrowRecord, old: EscrowStatus, ctx: &Ctx) -> Event {
    Event::EscrowStatusUpdated(EscrowData {
        escrow: rec.to_wire(Some(old), &ctx.app_name),
    })
}

/// `escrow.updated`.
pub fn escrow_updated(rec: &EscrowRecord, fields: Vec<String>, ctx: &Ctx) -> Event {
    Event::EscrowUpdated(EscrowUpdatedData {
        updated_fields: fields,
        escrow: rec.to_wire(None, &ctx.app_name),
        contract: None,
    })
}

/// `contract.signed`.
pub fn contract_signed(rec: &EscrowRecord, by: Signer, ctx: &Ctx) -> Option<Event> {
    let c = rec.contract.as_ref()?;
    Some(Event::ContractSigned(ContractSignedData {
        contract: c.signed_event(&rec.id, by),
        escrow: rec.to_wire(None, &ctx.app_name),
    }))
}

/// Which cancellation event.
#[derive(Debug, Clone, Copy)]
pub enum CancellationKind {
    Requested,
    Rejected,
    Accepted,
}

/// `escrow.cancellation.*`.
pub fn cancellation(rec: &EscrowRecord, kind: CancellationKind, ctx: &Ctx) -> Option<Event> {
    let c: &CancellationRecord = rec.cancellation.as_ref()?;
    let decided = c
        .decided_by
        .as_deref()
        .map(|e| PartyRef::User(users::user_ref(e)));
    let data = CancellationData {
        escrow: rec.to_wire(None, &ctx.app_name),
        cancellation_request: CancellationRequest {
            requested_by: Some(users::user_ref(&c.requested_by)),
            reason: c.reason.clone(),
            status: c.status.clone(),
            requested_at: Some(c.requested_at),
            accepted_by: matches!(kind, CancellationKind::Accepted)
                .then(|| decided.clone())
                .flatten(),
            rejected_by: matches!(kind, CancellationKind::Rejected)
                .then_some(decided)
                .flatten(),
        },
    };
    Some(match kind {
        CancellationKind::Requested => Event::CancellationRequested(data),
        CancellationKind::Rejected => Event::CancellationRejected(data),
        CancellationKind::Accepted => Event::CancellationAccepted(data),
    })
}

/// `escrow.deposit_proof.rejected`.
pub fn deposit_rejected(rec: &EscrowRecord, dp: &DepositProofRecord, ctx: &Ctx) -> Event {
    Event::DepositProofRejected(DepositProofRejectedData {
        escrow: rec.to_wire(None, &ctx.app_name),
        deposit_proof: DepositProof {
            id: dp.id.clone(),
            buyer_email: Some(dp.buyer_email.clone()),
            reason: dp.reason.clone(),
            amount: Some(dp.amount),
            method: Some(dp.method.clone()),
        },
    })
}

/// `escrow.delivery.rejected` (snapshot with `oldStatus` delivered).
pub fn delivery_rejected(rec: &EscrowRecord, r: &DeliveryRejection, ctx: &Ctx) -> Event {
    Event::DeliveryRejected(DeliveryRejectedData {
        escrow: rec.to_wire(Some(EscrowStatus::Delivered), &ctx.app_name),
        delivery_rejection: r.clone(),
    })
}

/// Which proof event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofKind {
    Required,
    Submitted,
    CorrectionRequested,
    Accepted,
    AcceptedByTimeout,
    NeedsReview,
    Expired,
}

/// `escrow.proof.*` (full escrow snapshot + proof object).
pub fn proof(rec: &EscrowRecord, kind: ProofKind, ctx: &Ctx) -> Option<Event> {
    let p = rec.proof.as_ref()?;
    let data = ProofData {
        escrow: rec.to_wire(None, &ctx.app_name),
        proof: p.to_wire(&ctx.base_url, &rec.seller_email, &rec.buyer_email),
    };
    Some(match kind {
        ProofKind::Required => Event::ProofRequired(data),
        ProofKind::Submitted => Event::ProofSubmitted(data),
        ProofKind::CorrectionRequested => Event::ProofCorrectionRequested(data),
        ProofKind::Accepted => Event::ProofAccepted(data),
        ProofKind::AcceptedByTimeout => Event::ProofAcceptedByTimeout(data),
        ProofKind::NeedsReview => Event::ProofNeedsReview(data),
        ProofKind::Expired => Event::ProofExpired(data),
    })
}
