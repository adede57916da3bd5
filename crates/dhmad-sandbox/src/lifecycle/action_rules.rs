//! `POST /escrows/:id/sessions`: the redirect rules and the action matrix of §4.1.
//! Order of checks: redirect URL, then mode/action, then target, then status.

use std::collections::BTreeMap;

use dhmad::{CheckoutAction, CreateSession, ErrorCode, EscrowMode, EscrowStatus, ProofPhase};

use super::escrow;
use super::redirect::check_redirect;
use crate::error::Refusal;
use crate::state::{users, Ctx, EscrowRecord, SessionRecord, Store, SESSION_LIFETIME};

/// Code for proof actions on an escrow without a proof gate (UNSTATED by DHMAD).
pub const PROOF_NOT_REQUIRED: &str = "PROOF_NOT_REQUIRED";

fn rule(code: ErrorCode, msg: &str) -> Result<(), Refusal> {
    Err(Refusal::rule(code, msg))
}

fn invalid_status(rec: &EscrowRecord, action: &CheckoutAction) -> Result<(), Refusal> {
    rule(
        ErrorCode::InvalidStatus,
        &format!(
            "{action} is not possible while the escrow is {}",
            rec.status
        ),
    )
}

/// May `target` perform `action` on `rec` now? Used at creation and again when performing.
pub fn check_action(
    rec: &EscrowRecord,
    action: &CheckoutAction,
    target: &str,
) -> Result<(), Refusal> {
    use CheckoutAction as A;
    use ErrorCode as C;
    use EscrowStatus as S;
    let (buyer, seller) = (rec.is_buyer(target), rec.is_seller(target));
    let funded = matches!(rec.status, S::Paid | S::Delivered);
    let not_party = || {
        Err(Refusal::Forbidden(
            "targetUserEmail is not a party to this escrow".into(),
        ))
    };
    match action {
        A::SignContract => {
            match rec.mode {
                EscrowMode::Quick => {
                    return rule(C::QuickEscrowNoContract, "Quick escrows have no contract")
                }
                EscrowMode::Instant => {
                    return rule(
                        C::InstantEscrowNoContract,
                        "Instant escrows have no contract",
                    )
                }
                _ => {}
            }
            if !buyer && !seller {
                return not_party();
            }
            let Some(c) = &rec.contract else {
                return invalid_status(rec, action);
            };
            if (seller && c.seller_signed_at.is_some()) || (buyer && c.buyer_signed_at.is_some()) {
                return rule(
                    C::ContractAlreadySigned,
                    "This party has already signed the contract",
                );
            }
            if rec.status != S::Pending {
                return invalid_status(rec, action);
            }
        }
        A::AcceptPay => {
            if !buyer {
                return rule(
                    C::CheckoutTargetNotBuyer,
                    "accept_pay must target the buyer",
                );
            }
            match rec.status {
                S::Pending => {}
                S::Cancelled => return invalid_status(rec, action),
                _ => return rule(C::PaymentAlreadyDone, "This escrow has already been paid"),
            }
            if !users::is_identity_ready(&rec.seller_email) {
                return rule(
                    C::SellerNotReady,
                    "The seller has not completed identity verification",
                );
            }
        }
        A::Complete => {
            if rec.mode == EscrowMode::Instant {
                return rule(
                    C::InstantEscrowNoCompleteStep,
                    "Instant escrows complete on deliver",
                );
            }
            if !buyer {
                return rule(C::CheckoutTargetNotBuyer, "complete must target the buyer");
            }
            match rec.status {
                S::Completed => {
                    return rule(
                        C::EscrowAlreadyCompleted,
                        "This escrow is already completed",
                    )
                }
                S::Paid | S::Delivered => {}
                _ => return invalid_status(rec, action),
            }
            if rec.proof.as_ref().is_some_and(|p| !p.is_accepted()) {
                return Err(Refusal::Conflict {
                    code: C::ProofNotAccepted,
                    message: "The purchase proof must be accepted first".into(),
                });
            }
        }
        A::Dispute => {
            if !buyer && !seller {
                return not_party();
            }
            if rec.dispute.is_some() || rec.status == S::Disputed {
                return rule(C::DisputeAlreadyOpened, "A dispute is already open");
            }
            if !funded {
                return invalid_status(rec, action);
            }
        }
        A::RequestCancellation => {
            if seller {
                return rule(
                    C::CancellationRequestBuyerOnly,
                    "Only the buyer can request a cancellation; sellers use cancel_escrow",
                );
            }
            if !buyer {
                return rule(
                    C::CheckoutTargetNotBuyer,
                    "request_cancellation must target the buyer",
                );
            }
            if !funded {
                return rule(
                    C::CancellationRequestInvalidStatus,
                    "Cancellation can only be requested when paid or delivered",
                );
            }
            if rec.cancellation.is_some() {
                return rule(
                    C::CancellationAlreadyRequested,
                    "A cancellation was already requested",
                );
            }
        }
        A::CancelEscrow => {
            if buyer {
                return rule(
                    C::CancelEscrowSellerOnly,
                    "Only the seller can cancel directly; buyers use request_cancellation",
                );
            }
            if !seller {
                return rule(
                    C::CheckoutTargetNotSeller,
                    "cancel_escrow must target the seller",
                );
            }
            if !funded {
                return rule(
                    C::CancelEscrowInvalidStatus,
                    "cancel_escrow is only possible when paid or delivered",
                );
            }
        }
        A::AcceptCancellation | A::RejectCancellation => {
            if !seller {
                return rule(
                    C::CheckoutTargetNotSeller,
                    "This action must target the seller",
                );
            }
            let pending = rec
                .cancellation
                .as_ref()
                .is_some_and(|c| c.status == dhmad::CancellationRequestStatus::Pending);
            if !pending || !funded {
                return rule(
                    C::NoPendingCancellation,
                    "There is no pending cancellation request",
                );
            }
        }
        A::SubmitProof | A::ReviewProof => {
            if !rec.has_proof_gate() {
                return rule(
                    C::Unknown(PROOF_NOT_REQUIRED.into()),
                    "This escrow has no purchase-proof policy",
                );
            }
            let submit = *action == A::SubmitProof;
            if submit && !seller {
                return rule(
                    C::CheckoutTargetNotSeller,
                    "submit_proof must target the seller",
                );
            }
            if !submit && !buyer {
                return rule(
                    C::CheckoutTargetNotBuyer,
                    "review_proof must target the buyer",
                );
            }
            let phase = rec.proof.as_ref().map(|p| p.phase.clone());
            let ok = rec.status == S::Paid
                && match phase {
                    Some(ProofPhase::WaitingSellerProof | ProofPhase::CorrectionRequested) => {
                        submit
                    }
                    Some(ProofPhase::SubmittedWaitingBuyerReview) => !submit,
                    _ => false,
                };
            if !ok {
                return invalid_status(rec, action);
            }
        }
        A::Unknown(a) => return Err(Refusal::field("action", format!("unknown action {a}"))),
    }
    Ok(())
}

/// Validates and stores a new session; returns it.
pub fn create_session(
    store: &mut Store,
    ctx: &Ctx,
    escrow_id: &str,
    req: CreateSession,
    allowed: &[String],
) -> Result<SessionRecord, Refusal> {
    let rec = escrow(store, escrow_id)?;
    let target = req.target_user_email.trim().to_lowercase();
    if !users::is_email(&target) {
        return Err(Refusal::field(
            "targetUserEmail",
            "must be a valid e-mail address",
        ));
    }
    if req.redirect_url.trim().is_empty() {
        return Err(Refusal::field("redirectUrl", "is required"));
    }
    let metadata: BTreeMap<String, String> = req.metadata.unwrap_or_default();
    if let Some((k, _)) = metadata.iter().find(|(_, v)| v.chars().count() > 500) {
        return Err(Refusal::field(
            &format!("metadata.{k}"),
            "values must be at most 500 characters",
        ));
    }
    if !req.action.is_known() {
        return Err(Refusal::field("action", "unknown action"));
    }
    check_redirect(&req.redirect_url, allowed)?;
    check_action(rec, &req.action, &target)?;
    let session = SessionRecord {
        id: uuid::Uuid::new_v4().to_string(),
        escrow_id: rec.id.clone(),
        action: req.action,
        target_email: target,
        redirect_url: req.redirect_url.trim().to_owned(),
        metadata,
        status: dhmad::SessionStatus::Pending,
        expires_at: ctx.now + SESSION_LIFETIME,
        completed_at: None,
        created_at: ctx.now,
    };
    store.sessions.insert(session.id.clone(), session.clone());
    Ok(session)
}
