//! Performing a session's action as its target user (hosted page and control API).

use dhmad::{
    CancellationRequestStatus, CheckoutAction, EscrowMode, EscrowStatus, PaymentMethod,
    SessionStatus, Signer,
};

use tracing::field::Empty;

use super::action_rules::check_perform;
use super::events::{self, CancellationKind};
use super::proof_ops::{self, Upload};
use super::sessions::{finish, open_session};
use super::{emit_opt, escrow, escrow_mut, transition, Paired};
use crate::error::Refusal;
use crate::state::{
    CancellationRecord, Ctx, DepositProofRecord, DepositStatus, DisputeRecord, SessionRecord, Store,
};

/// What the user chose on the page.
#[derive(Debug, Default, Clone)]
pub struct PerformInput {
    /// `Some` = instant guest payment with this method (else wallet).
    pub guest_method: Option<PaymentMethod>,
    /// A proof file (guest deposit proof or seller purchase proof).
    pub upload: Option<Upload>,
    /// A note or reason.
    pub note: Option<String>,
    /// For `review_proof`: `true` accept, `false` ask for a correction.
    pub accept_proof: Option<bool>,
}

/// Performs the action; returns the redirect URL (`status=completed`). The action rules are
/// checked again (with the perform-only ones): the escrow may have moved since the session was
/// created.
#[tracing::instrument(
    skip_all,
    fields(session.id = %session_id, escrow.id = Empty, session.action = Empty)
)]
pub fn perform(
    store: &mut Store,
    ctx: &Ctx,
    session_id: &str,
    input: PerformInput,
) -> Result<String, Refusal> {
    let s = open_session(store, ctx, session_id)?.clone();
    let span = tracing::Span::current();
    span.record("escrow.id", s.escrow_id.as_str());
    span.record("session.action", s.action.as_str());
    check_perform(
        store,
        escrow(store, &s.escrow_id)?,
        &s.action,
        &s.target_email,
    )?;
    let id = s.escrow_id.as_str();
    use CheckoutAction as A;
    match &s.action {
        A::SignContract => sign_contract(store, ctx, &s)?,
        A::AcceptPay => match input.guest_method {
            Some(method) => guest_payment(store, ctx, &s, method, input.upload)?,
            None => wallet_payment(store, ctx, id)?,
        },
        A::Complete => transition(store, ctx, id, EscrowStatus::Completed, Paired::Alone),
        A::Dispute => open_dispute(store, ctx, &s, input.note)?,
        A::RequestCancellation => request_cancellation(store, ctx, &s, input.note)?,
        A::AcceptCancellation => answer_cancellation(store, ctx, &s, true)?,
        A::RejectCancellation => answer_cancellation(store, ctx, &s, false)?,
        A::CancelEscrow => transition(store, ctx, id, EscrowStatus::Cancelled, Paired::Alone),
        A::SubmitProof => proof_ops::submit(store, ctx, id, input.upload, input.note)?,
        A::ReviewProof => {
            let accept = input
                .accept_proof
                .ok_or(Refusal::bad("Choose accept or request a correction"))?;
            proof_ops::review(store, ctx, id, accept)?;
        }
        A::Unknown(a) => return Err(Refusal::bad(format!("unknown action {a}"))),
    }
    finish(store, ctx, session_id, SessionStatus::Completed)
}

fn sign_contract(store: &mut Store, ctx: &Ctx, s: &SessionRecord) -> Result<(), Refusal> {
    let now = ctx.now;
    let rec = escrow_mut(store, &s.escrow_id)?;
    let seller = rec.is_seller(&s.target_email);
    let c = rec.contract.as_mut().ok_or(Refusal::bad("No contract"))?;
    if seller {
        c.seller_signed_at = Some(now);
    } else {
        c.buyer_signed_at = Some(now);
    }
    c.updated_at = now;
    let by = if seller {
        Signer::Seller
    } else {
        Signer::Buyer
    };
    rec.updated_at = now;
    let ev = events::contract_signed(rec, by, ctx);
    emit_opt(store, ctx.now, ev);
    Ok(())
}

/// pending → paid from the buyer's wallet; opens the proof gate of proof escrows first, so
/// that both events' snapshots show it.
fn wallet_payment(store: &mut Store, ctx: &Ctx, id: &str) -> Result<(), Refusal> {
    proof_ops::open_gate(store, ctx, id);
    transition(store, ctx, id, EscrowStatus::Paid, Paired::Alone);
    proof_ops::announce_gate(store, ctx, id);
    Ok(())
}

/// A guest pays outside DHMAD and uploads a proof; the escrow stays pending until an admin
/// approves the deposit proof.
fn guest_payment(
    store: &mut Store,
    ctx: &Ctx,
    s: &SessionRecord,
    method: PaymentMethod,
    upload: Option<Upload>,
) -> Result<(), Refusal> {
    if !method.is_known() {
        return Err(Refusal::bad("Unknown payment method"));
    }
    if escrow(store, &s.escrow_id)?.mode != EscrowMode::Instant {
        return Err(Refusal::bad(
            "Guest payment is only available for instant escrows",
        ));
    }
    // Stored only once accepted: a refused payment leaves no file behind.
    let file = upload.map(|u| proof_ops::store_file(store, u));
    let id = store.new_object_id(ctx.now);
    let rec = escrow_mut(store, &s.escrow_id)?;
    rec.deposit_proofs.push(DepositProofRecord {
        id,
        method,
        buyer_email: s.target_email.clone(),
        amount: rec.amount,
        status: DepositStatus::Pending,
        reason: None,
        file,
        session_id: s.id.clone(),
        submitted_at: ctx.now,
    });
    Ok(())
}

/// Longest dispute reason kept, in characters: the ticket shows it as a preview, and a form
/// field should not grow the store without bound.
pub const DISPUTE_REASON_MAX: usize = 1000;

/// Opens a dispute ticket, with the opener's note as its reason, and moves the escrow to
/// `disputed`.
fn open_dispute(
    store: &mut Store,
    ctx: &Ctx,
    s: &SessionRecord,
    note: Option<String>,
) -> Result<(), Refusal> {
    let reason = note
        .map(|n| {
            n.trim()
                .chars()
                .take(DISPUTE_REASON_MAX)
                .collect::<String>()
        })
        .map(|n| n.trim_end().to_owned())
        .filter(|n| !n.is_empty());
    let ticket_number = 1000
        + store
            .escrows
            .values()
            .filter(|e| e.dispute.is_some())
            .count() as u64;
    let ticket_id = store.new_object_id(ctx.now);
    let rec = escrow_mut(store, &s.escrow_id)?;
    rec.dispute = Some(DisputeRecord {
        ticket_id,
        ticket_number,
        opened_by: s.target_email.clone(),
        opened_at: ctx.now,
        previous_status: rec.status.clone(),
        open: true,
        reason,
    });
    transition(
        store,
        ctx,
        &s.escrow_id,
        EscrowStatus::Disputed,
        Paired::Alone,
    );
    Ok(())
}

fn request_cancellation(
    store: &mut Store,
    ctx: &Ctx,
    s: &SessionRecord,
    note: Option<String>,
) -> Result<(), Refusal> {
    let rec = escrow_mut(store, &s.escrow_id)?;
    rec.cancellation = Some(CancellationRecord {
        requested_by: s.target_email.clone(),
        reason: note.filter(|n| !n.trim().is_empty()),
        status: CancellationRequestStatus::Pending,
        requested_at: ctx.now,
        decided_by: None,
    });
    rec.updated_at = ctx.now;
    let ev = events::cancellation(rec, CancellationKind::Requested, ctx);
    emit_opt(store, ctx.now, ev);
    Ok(())
}

/// The seller's answer: accepting cancels the escrow (and refunds), rejecting keeps it.
fn answer_cancellation(
    store: &mut Store,
    ctx: &Ctx,
    s: &SessionRecord,
    accept: bool,
) -> Result<(), Refusal> {
    let rec = escrow_mut(store, &s.escrow_id)?;
    if let Some(c) = rec.cancellation.as_mut() {
        c.status = if accept {
            CancellationRequestStatus::Accepted
        } else {
            CancellationRequestStatus::Rejected
        };
        c.decided_by = Some(s.target_email.clone());
    }
    rec.updated_at = ctx.now;
    if accept {
        let id = &s.escrow_id;
        transition(
            store,
            ctx,
            id,
            EscrowStatus::Cancelled,
            Paired::CancellationAccepted,
        );
    } else {
        let ev = events::cancellation(rec, CancellationKind::Rejected, ctx);
        emit_opt(store, ctx.now, ev);
    }
    Ok(())
}
