//! May this user perform this checkout action now? The action matrix of `docs/dhmad-api.md`
//! §4.1, one rule function per action. Checked when a session is created and again when it is
//! performed. Each rule checks in the order DHMAD answers, roughly mode, then target, then status:
//! the first rule broken is the one answered.

use dhmad::{
    CancellationRequestStatus, CheckoutAction, ErrorCode as C, EscrowMode, EscrowStatus as S,
    ProofPhase,
};

use super::identity;
use crate::error::Refusal;
use crate::state::{EscrowRecord, Store};

/// Code for proof actions on an escrow without a proof gate (DHMAD documents none).
pub const PROOF_NOT_REQUIRED: &str = "PROOF_NOT_REQUIRED";

type Check = Result<(), Refusal>;

/// How the session's target relates to the escrow.
#[derive(Debug, Clone, Copy)]
struct Target {
    buyer: bool,
    seller: bool,
}

impl Target {
    fn of(rec: &EscrowRecord, email: &str) -> Self {
        Self {
            buyer: rec.is_buyer(email),
            seller: rec.is_seller(email),
        }
    }

    fn is_party(self) -> bool {
        self.buyer || self.seller
    }
}

/// May `target` perform `action` on `rec` now? `store` answers what is not on the escrow (the
/// seller's identity verifications).
pub fn check_action(
    store: &Store,
    rec: &EscrowRecord,
    action: &CheckoutAction,
    target: &str,
) -> Check {
    use CheckoutAction as A;
    let who = Target::of(rec, target);
    match action {
        A::SignContract => sign_contract(rec, who),
        A::AcceptPay => accept_pay(
            rec,
            who,
            identity::is_identity_ready(store, &rec.seller_email),
        ),
        A::Complete => complete(rec, who),
        A::Dispute => dispute(rec, who),
        A::RequestCancellation => request_cancellation(rec, who),
        A::CancelEscrow => cancel_escrow(rec, who),
        A::AcceptCancellation | A::RejectCancellation => answer_cancellation(rec, who),
        A::SubmitProof => submit_proof(rec, who),
        A::ReviewProof => review_proof(rec, who),
        A::Unknown(a) => Err(Refusal::field("action", format!("unknown action {a}"))),
    }
}

/// May `target` perform `action` on `rec` now, on the hosted page? [`check_action`] plus what
/// only performing checks (a shop may create the session earlier): `accept_pay` needs a standard
/// escrow's contract signed by both parties, and no guest payment proof of the escrow under
/// review, which a second payment would double.
pub fn check_perform(
    store: &Store,
    rec: &EscrowRecord,
    action: &CheckoutAction,
    target: &str,
) -> Check {
    check_action(store, rec, action, target)?;
    if *action != CheckoutAction::AcceptPay {
        return Ok(());
    }
    if rec.contract.as_ref().is_some_and(|c| !c.is_fully_signed()) {
        return Err(Refusal::bad(
            "Both parties must sign the contract before payment.",
        ));
    }
    if rec.pending_deposit().is_some() {
        return Err(Refusal::bad(
            "A payment proof for this escrow is under review: DHMAD approves or rejects it \
             before the escrow can be paid again.",
        ));
    }
    Ok(())
}

fn rule(code: C, msg: &str) -> Check {
    Err(Refusal::rule(code, msg))
}

fn invalid_status(rec: &EscrowRecord, action: &CheckoutAction) -> Check {
    rule(
        C::InvalidStatus,
        &format!(
            "{action} is not possible while the escrow is {}",
            rec.status
        ),
    )
}

fn not_party() -> Check {
    Err(Refusal::Forbidden(
        "targetUserEmail is not a party to this escrow".into(),
    ))
}

/// The buyer's money is held: paid or delivered.
fn is_funded(rec: &EscrowRecord) -> bool {
    matches!(rec.status, S::Paid | S::Delivered)
}

/// Standard escrows, each party once, before payment.
fn sign_contract(rec: &EscrowRecord, who: Target) -> Check {
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
    if !who.is_party() {
        return not_party();
    }
    let Some(c) = &rec.contract else {
        return invalid_status(rec, &CheckoutAction::SignContract);
    };
    if (who.seller && c.seller_signed_at.is_some()) || (who.buyer && c.buyer_signed_at.is_some()) {
        return rule(
            C::ContractAlreadySigned,
            "This party has already signed the contract",
        );
    }
    if rec.status != S::Pending {
        return invalid_status(rec, &CheckoutAction::SignContract);
    }
    Ok(())
}

/// The buyer, once, while pending, to a seller who finished identity verification.
fn accept_pay(rec: &EscrowRecord, who: Target, seller_ready: bool) -> Check {
    if !who.buyer {
        return rule(
            C::CheckoutTargetNotBuyer,
            "accept_pay must target the buyer",
        );
    }
    match rec.status {
        S::Pending => {}
        S::Cancelled => return invalid_status(rec, &CheckoutAction::AcceptPay),
        _ => return rule(C::PaymentAlreadyDone, "This escrow has already been paid"),
    }
    if !seller_ready {
        return rule(
            C::SellerNotReady,
            "The seller has not completed identity verification",
        );
    }
    Ok(())
}

/// The buyer of a standard or quick escrow, once funded (and its proof accepted).
fn complete(rec: &EscrowRecord, who: Target) -> Check {
    if rec.mode == EscrowMode::Instant {
        return rule(
            C::InstantEscrowNoCompleteStep,
            "Instant escrows complete on deliver",
        );
    }
    if !who.buyer {
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
        _ => return invalid_status(rec, &CheckoutAction::Complete),
    }
    if rec.proof.as_ref().is_some_and(|p| !p.is_accepted()) {
        return Err(Refusal::Conflict {
            code: C::ProofNotAccepted,
            message: "The purchase proof must be accepted first".into(),
        });
    }
    Ok(())
}

/// Either party, while funded. `DISPUTE_ALREADY_OPENED` only while a dispute is open (§4.1):
/// after its resolution the status rule answers.
fn dispute(rec: &EscrowRecord, who: Target) -> Check {
    if !who.is_party() {
        return not_party();
    }
    if rec.dispute.as_ref().is_some_and(|d| d.open) || rec.status == S::Disputed {
        return rule(C::DisputeAlreadyOpened, "A dispute is already open");
    }
    if !is_funded(rec) {
        return invalid_status(rec, &CheckoutAction::Dispute);
    }
    Ok(())
}

/// The buyer, once, while funded.
fn request_cancellation(rec: &EscrowRecord, who: Target) -> Check {
    if who.seller {
        return rule(
            C::CancellationRequestBuyerOnly,
            "Only the buyer can request a cancellation; sellers use cancel_escrow",
        );
    }
    if !who.buyer {
        return rule(
            C::CheckoutTargetNotBuyer,
            "request_cancellation must target the buyer",
        );
    }
    if !is_funded(rec) {
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
    Ok(())
}

/// The seller, while funded.
fn cancel_escrow(rec: &EscrowRecord, who: Target) -> Check {
    if who.buyer {
        return rule(
            C::CancelEscrowSellerOnly,
            "Only the seller can cancel directly; buyers use request_cancellation",
        );
    }
    if !who.seller {
        return rule(
            C::CheckoutTargetNotSeller,
            "cancel_escrow must target the seller",
        );
    }
    if !is_funded(rec) {
        return rule(
            C::CancelEscrowInvalidStatus,
            "cancel_escrow is only possible when paid or delivered",
        );
    }
    Ok(())
}

/// `accept_cancellation` / `reject_cancellation`: the seller, on a pending request.
fn answer_cancellation(rec: &EscrowRecord, who: Target) -> Check {
    if !who.seller {
        return rule(
            C::CheckoutTargetNotSeller,
            "This action must target the seller",
        );
    }
    let pending = rec
        .cancellation
        .as_ref()
        .is_some_and(|c| c.status == CancellationRequestStatus::Pending);
    if !pending || !is_funded(rec) {
        return rule(
            C::NoPendingCancellation,
            "There is no pending cancellation request",
        );
    }
    Ok(())
}

/// The seller, while a proof (or a corrected one) is awaited.
fn submit_proof(rec: &EscrowRecord, who: Target) -> Check {
    has_proof_gate(rec)?;
    if !who.seller {
        return rule(
            C::CheckoutTargetNotSeller,
            "submit_proof must target the seller",
        );
    }
    in_proof_phase(rec, &CheckoutAction::SubmitProof, |phase| {
        matches!(
            phase,
            ProofPhase::WaitingSellerProof | ProofPhase::CorrectionRequested
        )
    })
}

/// The buyer, while a submitted proof waits for review.
fn review_proof(rec: &EscrowRecord, who: Target) -> Check {
    has_proof_gate(rec)?;
    if !who.buyer {
        return rule(
            C::CheckoutTargetNotBuyer,
            "review_proof must target the buyer",
        );
    }
    in_proof_phase(rec, &CheckoutAction::ReviewProof, |phase| {
        *phase == ProofPhase::SubmittedWaitingBuyerReview
    })
}

fn has_proof_gate(rec: &EscrowRecord) -> Check {
    if rec.has_proof_gate() {
        return Ok(());
    }
    rule(
        C::Unknown(PROOF_NOT_REQUIRED.into()),
        "This escrow has no purchase-proof policy",
    )
}

/// Paid, with the proof in a phase `allowed` accepts.
fn in_proof_phase(
    rec: &EscrowRecord,
    action: &CheckoutAction,
    allowed: impl Fn(&ProofPhase) -> bool,
) -> Check {
    let ok = rec.status == S::Paid && rec.proof.as_ref().is_some_and(|p| allowed(&p.phase));
    if ok {
        Ok(())
    } else {
        invalid_status(rec, action)
    }
}
