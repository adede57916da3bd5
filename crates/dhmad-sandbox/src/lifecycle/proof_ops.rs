//! The purchase-proof gate (`docs/dhmad-api.md` §2.4) and guest deposit proofs (§4.2).

use dhmad::{EscrowStatus, ProofPhase, SessionStatus};
use time::Duration;

use super::events::{self, ProofKind};
use super::sessions::set_status;
use super::{emit_opt, escrow, escrow_mut, transition, Paired};
use crate::error::Refusal;
use crate::state::{
    Ctx, DepositProofRecord, DepositStatus, EscrowRecord, ProofState, Store, StoredFile,
    SubmissionRecord,
};

/// Default upload and review deadlines, in hours.
pub const DEFAULT_PROOF_HOURS: u32 = 24;
/// Bounds of the upload and review deadlines, in hours.
pub const PROOF_HOURS_MIN: u32 = 6;
/// Bounds of the upload and review deadlines, in hours.
pub const PROOF_HOURS_MAX: u32 = 72;
/// Corrections the buyer may ask before DHMAD reviews (the 4th request escalates).
pub const MAX_CORRECTION_ROUNDS: u32 = 3;

/// An uploaded file.
#[derive(Debug, Clone)]
pub struct Upload {
    pub name: String,
    pub mime: String,
    pub bytes: Vec<u8>,
}

/// Keeps a file in memory; returns its id.
pub fn store_file(store: &mut Store, u: Upload) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    store.files.insert(
        id.clone(),
        StoredFile {
            name: u.name,
            mime: u.mime,
            bytes: u.bytes,
        },
    );
    id
}

fn hours(h: Option<u32>) -> Duration {
    Duration::hours(
        h.unwrap_or(DEFAULT_PROOF_HOURS)
            .clamp(PROOF_HOURS_MIN, PROOF_HOURS_MAX)
            .into(),
    )
}

/// On funding a proof escrow: phase `waiting_seller_proof`. Called before the move to paid, so
/// that the pending→paid snapshot carries the `proofInfo` the payment sets (§2.3); then
/// [`announce_gate`].
pub fn open_gate(store: &mut Store, ctx: &Ctx, id: &str) {
    let Some(rec) = store.escrows.get_mut(id) else {
        return;
    };
    let Some(policy) = &rec.fulfillment_policy else {
        return;
    };
    rec.proof = Some(ProofState {
        phase: ProofPhase::WaitingSellerProof,
        correction_rounds: 0,
        upload_deadline: Some(ctx.now + hours(policy.proof_upload_deadline_hours)),
        review_deadline: None,
        submissions: Vec::new(),
    });
}

/// `escrow.proof.required` for a gate [`open_gate`] opened (none without one): after
/// `escrow.status.updated`, as §6.8 lists them.
pub fn announce_gate(store: &mut Store, ctx: &Ctx, id: &str) {
    let ev = store
        .escrows
        .get(id)
        .and_then(|rec| events::proof(rec, ProofKind::Required, ctx));
    emit_opt(store, ctx.now, ev);
}

/// Seller uploads (`submit_proof`).
pub fn submit(
    store: &mut Store,
    ctx: &Ctx,
    id: &str,
    upload: Option<Upload>,
    note: Option<String>,
) -> Result<(), Refusal> {
    if escrow(store, id)?.proof.is_none() {
        return Err(Refusal::bad("The escrow is not funded"));
    }
    // Stored only once accepted: a refused upload leaves no file behind.
    let files = upload.map(|u| {
        let mime = u.mime.clone();
        (store_file(store, u), mime)
    });
    let rec = escrow_mut(store, id)?;
    let review = hours(
        rec.fulfillment_policy
            .as_ref()
            .and_then(|p| p.buyer_review_deadline_hours),
    );
    let p = rec
        .proof
        .as_mut()
        .ok_or(Refusal::bad("The escrow is not funded"))?;
    p.submissions.push(SubmissionRecord {
        submitted_at: ctx.now,
        note: note.filter(|n| !n.trim().is_empty()),
        files: files.into_iter().collect(),
    });
    p.phase = ProofPhase::SubmittedWaitingBuyerReview;
    p.upload_deadline = None;
    p.review_deadline = Some(ctx.now + review);
    rec.updated_at = ctx.now;
    let ev = events::proof(rec, ProofKind::Submitted, ctx);
    emit_opt(store, ctx.now, ev);
    Ok(())
}

/// Buyer reviews (`review_proof`): accept, or ask for a correction (escalates past the max).
pub fn review(store: &mut Store, ctx: &Ctx, id: &str, accept: bool) -> Result<(), Refusal> {
    let rec = escrow_mut(store, id)?;
    let upload = hours(
        rec.fulfillment_policy
            .as_ref()
            .and_then(|p| p.proof_upload_deadline_hours),
    );
    let p = rec
        .proof
        .as_mut()
        .ok_or(Refusal::bad("The escrow is not funded"))?;
    p.review_deadline = None;
    let kind = if accept {
        p.phase = ProofPhase::Accepted;
        ProofKind::Accepted
    } else if p.correction_rounds >= MAX_CORRECTION_ROUNDS {
        p.phase = ProofPhase::NeedsDhmadReview;
        ProofKind::NeedsReview
    } else {
        p.correction_rounds += 1;
        p.phase = ProofPhase::CorrectionRequested;
        // A fresh upload window runs while a correction is awaited.
        p.upload_deadline = Some(ctx.now + upload);
        ProofKind::CorrectionRequested
    };
    rec.updated_at = ctx.now;
    let ev = events::proof(rec, kind, ctx);
    emit_opt(store, ctx.now, ev);
    Ok(())
}

/// DHMAD's decision on an escalated proof: accept (delivery unlocked) or reject (cancel +
/// refund: `escrow.status.updated` →cancelled; no specific event is documented).
#[tracing::instrument(skip_all, fields(escrow.id = %id))]
pub fn admin_decide(store: &mut Store, ctx: &Ctx, id: &str, accept: bool) -> Result<(), Refusal> {
    let rec = escrow_mut(store, id)?;
    check_admin_decide(rec)?;
    let Some(p) = rec.proof.as_mut() else {
        return Err(Refusal::bad("This escrow has no proof to review"));
    };
    if accept {
        p.phase = ProofPhase::Accepted;
        rec.updated_at = ctx.now;
        let ev = events::proof(rec, ProofKind::Accepted, ctx);
        emit_opt(store, ctx.now, ev);
    } else {
        p.phase = ProofPhase::Rejected;
        transition(store, ctx, id, EscrowStatus::Cancelled, Paired::Alone);
    }
    Ok(())
}

/// May DHMAD decide `rec`'s escalated proof now? The rule of [`admin_decide`], also asked by the
/// dashboard.
pub fn check_admin_decide(rec: &EscrowRecord) -> Result<(), Refusal> {
    // The proof gate is a paid escrow's: once disputed, cancelled or done, the decision is not
    // DHMAD's proof review's to make any more.
    if rec.status != EscrowStatus::Paid {
        return Err(Refusal::bad(format!(
            "The escrow is {}, not paid",
            rec.status
        )));
    }
    let p = rec
        .proof
        .as_ref()
        .ok_or(Refusal::bad("This escrow has no proof to review"))?;
    if p.phase != ProofPhase::NeedsDhmadReview {
        return Err(Refusal::bad(format!(
            "The proof is {}, not needs_dhmad_review",
            p.phase
        )));
    }
    Ok(())
}

/// The guest deposit proof waiting for DHMAD (at most one), if any.
fn pending_deposit(rec: &mut EscrowRecord) -> Result<&mut DepositProofRecord, Refusal> {
    rec.deposit_proofs
        .iter_mut()
        .find(|d| d.status == DepositStatus::Pending)
        .ok_or(Refusal::bad("No pending deposit proof for this escrow"))
}

/// May DHMAD approve or reject a guest payment of `rec` now? The rule of [`approve_deposit`] and
/// [`reject_deposit`], also asked by the dashboard: a deposit proof is pending and the escrow
/// still waits for its payment. Cancelling auto-rejects the proofs, and a rejection must leave
/// the escrow `pending` (§2.3; `escrow.deposit_proof.rejected` carries `pending` or
/// `cancelled`, §6.4), never tell a paid escrow's shop that its payment was refused.
pub fn check_decide_deposit(rec: &EscrowRecord) -> Result<(), Refusal> {
    if rec.pending_deposit().is_none() {
        return Err(Refusal::bad("No pending deposit proof for this escrow"));
    }
    if rec.status != EscrowStatus::Pending {
        return Err(Refusal::bad(format!(
            "The escrow is {}, not pending",
            rec.status
        )));
    }
    Ok(())
}

/// Admin approves the pending guest deposit proof: escrow → paid.
#[tracing::instrument(skip_all, fields(escrow.id = %id))]
pub fn approve_deposit(store: &mut Store, ctx: &Ctx, id: &str) -> Result<(), Refusal> {
    let rec = escrow_mut(store, id)?;
    check_decide_deposit(rec)?;
    pending_deposit(rec)?.status = DepositStatus::Approved;
    transition(store, ctx, id, EscrowStatus::Paid, Paired::Alone);
    Ok(())
}

/// Admin rejects it: `escrow.deposit_proof.rejected`, escrow stays pending.
#[tracing::instrument(skip_all, fields(escrow.id = %id))]
pub fn reject_deposit(
    store: &mut Store,
    ctx: &Ctx,
    id: &str,
    reason: String,
) -> Result<(), Refusal> {
    let rec = escrow_mut(store, id)?;
    check_decide_deposit(rec)?;
    let dp = pending_deposit(rec)?;
    dp.status = DepositStatus::Rejected;
    dp.reason = Some(reason);
    let dp = dp.clone();
    rec.updated_at = ctx.now;
    let ev = events::deposit_rejected(rec, &dp, ctx);
    store.emit(ctx.now, ev);
    // DHMAD: "the buyer may upload again through the same session" — reopen it while it lives.
    if let Some(s) = store.sessions.get_mut(&dp.session_id) {
        if s.status == SessionStatus::Completed && !s.is_past_expiry(ctx.now) {
            set_status(s, SessionStatus::Pending, ctx.now);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhmad::{CreateEscrow, EscrowMode, PaymentMethod};
    use rust_decimal::Decimal;

    /// An instant escrow with a guest proof waiting, as `guest_payment` leaves it.
    fn waiting() -> EscrowRecord {
        let mut store = Store::default();
        let ctx = Ctx {
            now: time::OffsetDateTime::UNIX_EPOCH,
            assoc: "merchant@shop.example".into(),
            app_name: "Shop".into(),
            base_url: "http://localhost:6002".into(),
        };
        let req = CreateEscrow::new("Credits", Decimal::from(20), "buyer@example.com")
            .mode(EscrowMode::Instant);
        let id = super::super::create::create_escrow(&mut store, &ctx, req).unwrap();
        let mut rec = store.escrows.remove(&id).unwrap();
        rec.deposit_proofs.push(DepositProofRecord {
            id: "0".repeat(24),
            method: PaymentMethod::from("d17"),
            buyer_email: "buyer@example.com".into(),
            amount: rec.amount,
            status: DepositStatus::Pending,
            reason: None,
            file: None,
            session_id: "s".into(),
            submitted_at: ctx.now,
        });
        rec
    }

    #[test]
    fn a_deposit_proof_is_decided_only_while_its_escrow_is_pending() {
        let mut rec = waiting();
        assert_eq!(check_decide_deposit(&rec), Ok(()));
        // Paid by another way meanwhile: rejecting would send a "rejected" event of a paid
        // escrow (§6.4 allows pending or cancelled only), approving would pay twice.
        rec.status = EscrowStatus::Paid;
        assert_eq!(
            check_decide_deposit(&rec).map_err(|r| r.message()),
            Err("The escrow is paid, not pending".to_owned())
        );
        rec.status = EscrowStatus::Pending;
        rec.deposit_proofs[0].status = DepositStatus::Rejected;
        assert!(check_decide_deposit(&rec).is_err());
    }
}
