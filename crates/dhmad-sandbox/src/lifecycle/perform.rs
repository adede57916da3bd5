//! Performing a session's action as its target user (hosted page and control API), and
//! backing out of or expiring a session.

use dhmad::{
    CancellationRequestStatus, CheckoutAction, EscrowMode, EscrowStatus, PaymentMethod,
    SessionStatus, Signer,
};

use super::events::{self, CancellationKind};
use super::proof_ops::{self, Upload};
use super::session_rules::check_action;
use super::{emit_opt, transition};
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

/// The open session, marking it expired if its time has passed.
pub fn open_session<'a>(
    store: &'a mut Store,
    ctx: &Ctx,
    id: &str,
) -> Result<&'a mut SessionRecord, Refusal> {
    let s = store
        .sessions
        .get_mut(id)
        .ok_or(Refusal::NotFound("Checkout session not found"))?;
    if s.status == SessionStatus::Pending && ctx.now >= s.expires_at {
        s.status = SessionStatus::Expired;
    }
    if s.status != SessionStatus::Pending {
        return Err(Refusal::bad(format!(
            "This checkout session is {}",
            s.status
        )));
    }
    Ok(s)
}

/// Performs the action; returns the redirect URL (`status=completed`).
pub fn perform(
    store: &mut Store,
    ctx: &Ctx,
    session_id: &str,
    input: PerformInput,
) -> Result<String, Refusal> {
    let s = open_session(store, ctx, session_id)?.clone();
    let rec = super::escrow(store, &s.escrow_id)?;
    check_action(rec, &s.action, &s.target_email)?;
    let id = s.escrow_id.as_str();
    let now = ctx.now;
    match &s.action {
        CheckoutAction::SignContract => {
            let rec = super::escrow_mut(store, id)?;
            let seller = rec.is_seller(&s.target_email);
            let c = rec.contract.as_mut().ok_or(Refusal::bad("No contract"))?;
            if seller {
                c.seller_signed_at = Some(now);
            } else {
                c.buyer_signed_at = Some(now);
            }
            c.updated_at = now;
            rec.updated_at = now;
            let by = if seller {
                Signer::Seller
            } else {
                Signer::Buyer
            };
            let ev = events::contract_signed(rec, by, ctx);
            emit_opt(store, ev);
        }
        CheckoutAction::AcceptPay => match input.guest_method {
            Some(method) => guest_payment(store, ctx, &s, method, input.upload)?,
            None => {
                if rec.contract.as_ref().is_some_and(|c| !c.is_fully_signed()) {
                    return Err(Refusal::bad(
                        "Both parties must sign the contract before payment",
                    ));
                }
                transition(store, id, EscrowStatus::Paid, ctx);
                proof_ops::open_gate(store, ctx, id);
            }
        },
        CheckoutAction::Complete => transition(store, id, EscrowStatus::Completed, ctx),
        CheckoutAction::Dispute => {
            let previous = rec.status.clone();
            let ticket_number = 1000
                + store
                    .escrows
                    .values()
                    .filter(|e| e.dispute.is_some())
                    .count() as u64;
            let ticket_id = store.new_object_id(now);
            let rec = super::escrow_mut(store, id)?;
            rec.dispute = Some(DisputeRecord {
                ticket_id,
                ticket_number,
                opened_by: s.target_email.clone(),
                opened_at: now,
                previous_status: previous,
                open: true,
            });
            transition(store, id, EscrowStatus::Disputed, ctx);
        }
        CheckoutAction::RequestCancellation => {
            let rec = super::escrow_mut(store, id)?;
            rec.cancellation = Some(CancellationRecord {
                requested_by: s.target_email.clone(),
                reason: input.note.filter(|n| !n.trim().is_empty()),
                status: CancellationRequestStatus::Pending,
                requested_at: now,
                decided_by: None,
            });
            rec.updated_at = now;
            let ev = events::cancellation(rec, CancellationKind::Requested, ctx);
            emit_opt(store, ev);
        }
        CheckoutAction::RejectCancellation | CheckoutAction::AcceptCancellation => {
            let accept = s.action == CheckoutAction::AcceptCancellation;
            let rec = super::escrow_mut(store, id)?;
            if let Some(c) = rec.cancellation.as_mut() {
                c.status = if accept {
                    CancellationRequestStatus::Accepted
                } else {
                    CancellationRequestStatus::Rejected
                };
                c.decided_by = Some(s.target_email.clone());
            }
            rec.updated_at = now;
            if accept {
                // Cancel first so both paired events carry the cancelled snapshot.
                let old = std::mem::replace(&mut rec.status, EscrowStatus::Cancelled);
                rec.cancelled_at = Some(now);
                let first = events::cancellation(rec, CancellationKind::Accepted, ctx);
                let second = events::status_updated(rec, old, ctx);
                emit_opt(store, first);
                store.emit(second);
            } else {
                let ev = events::cancellation(rec, CancellationKind::Rejected, ctx);
                emit_opt(store, ev);
            }
        }
        CheckoutAction::CancelEscrow => transition(store, id, EscrowStatus::Cancelled, ctx),
        CheckoutAction::SubmitProof => proof_ops::submit(store, ctx, id, input.upload, input.note)?,
        CheckoutAction::ReviewProof => {
            let accept = input
                .accept_proof
                .ok_or(Refusal::bad("Choose accept or request a correction"))?;
            proof_ops::review(store, ctx, id, accept)?;
        }
        CheckoutAction::Unknown(a) => return Err(Refusal::bad(format!("unknown action {a}"))),
    }
    finish(store, ctx, session_id, SessionStatus::Completed)
}

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
    let file = upload.map(|u| proof_ops::store_file(store, u));
    let id = store.new_object_id(ctx.now);
    let rec = super::escrow_mut(store, &s.escrow_id)?;
    if rec.mode != EscrowMode::Instant {
        return Err(Refusal::bad(
            "Guest payment is only available for instant escrows",
        ));
    }
    if rec
        .deposit_proofs
        .iter()
        .any(|d| d.status == DepositStatus::Pending)
    {
        return Err(Refusal::bad(
            "A guest payment is already waiting for approval",
        ));
    }
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

/// Sets the session's final status and returns the redirect URL.
pub fn finish(
    store: &mut Store,
    ctx: &Ctx,
    session_id: &str,
    status: SessionStatus,
) -> Result<String, Refusal> {
    let s = store
        .sessions
        .get_mut(session_id)
        .ok_or(Refusal::NotFound("Checkout session not found"))?;
    if status == SessionStatus::Completed {
        s.completed_at = Some(ctx.now);
    }
    s.status = status.clone();
    Ok(s.redirect_with(&status))
}

/// The user backed out (`status=cancelled`).
pub fn cancel_session(store: &mut Store, ctx: &Ctx, session_id: &str) -> Result<String, Refusal> {
    open_session(store, ctx, session_id)?;
    finish(store, ctx, session_id, SessionStatus::Cancelled)
}

/// Forces expiry now (`status=expired`).
pub fn expire_session(store: &mut Store, ctx: &Ctx, session_id: &str) -> Result<String, Refusal> {
    open_session(store, ctx, session_id)?;
    finish(store, ctx, session_id, SessionStatus::Expired)
}
