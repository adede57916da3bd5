//! Escrow operations of the API: update, deliver, reject-delivery, cancel (§3.8–§3.11 of
//! `docs/dhmad-api.md`), and the contract and proof reads (§3.6, §3.7).

use dhmad::{
    Contract, DeliveryRejection, ErrorCode, EscrowMode, EscrowStatus, Proof, UpdateEscrow,
};

use super::field_rules::{self, days_at_least_one, minimum_amount, positive_amount};
use super::money::{fees, to_tnd};
use super::{escrow, escrow_mut, events, transition, Paired};
use crate::error::Refusal;
use crate::state::{users, Ctx, DepositStatus, EscrowRecord, Store};

/// `PUT /escrows/:id`. The creating developer may edit any of its pending escrows.
#[tracing::instrument(skip_all, fields(escrow.id = %id))]
pub fn update(store: &mut Store, ctx: &Ctx, id: &str, req: UpdateEscrow) -> Result<(), Refusal> {
    let rec = escrow_mut(store, id)?;
    if rec.status != EscrowStatus::Pending {
        return Err(Refusal::bad("Can only update escrows that are pending"));
    }
    check_update(rec, &req)?;
    let fields = apply_update(rec, req);
    if fields.is_empty() {
        return Err(Refusal::bad("No valid fields to update"));
    }
    rec.updated_at = ctx.now;
    let event = events::escrow_updated(rec, fields, ctx);
    store.emit(ctx.now, event);
    Ok(())
}

/// The create rules of the fields an update may change, in the same order, then the rule of a
/// guest payment under review.
fn check_update(rec: &EscrowRecord, req: &UpdateEscrow) -> Result<(), Refusal> {
    if let Some(t) = &req.title {
        field_rules::title(t)?;
    }
    if let Some(a) = req.amount {
        positive_amount(a)?;
        // The creation minimum after FX too: an update must not leave an escrow that creation
        // refuses, such as one whose `amountTnd` rounds to 0 (README).
        minimum_amount(a, &rec.currency, &rec.mode)?;
    }
    if req
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 2000)
    {
        return Err(Refusal::field(
            "description",
            "must be at most 2000 characters",
        ));
    }
    if req.estimated_delivery_days == Some(0) {
        return Err(days_at_least_one());
    }
    // The guest paid the amount the proof was sent for: approving it after a change would mark
    // the escrow paid at an amount nobody paid (README).
    if req.amount.is_some_and(|a| a != rec.amount) && rec.pending_deposit().is_some() {
        return Err(Refusal::bad(
            "A payment proof for this escrow is under review: its amount cannot change until \
             DHMAD approves or rejects the proof",
        ));
    }
    Ok(())
}

/// Applies a checked update; returns the wire names of the fields it changed.
fn apply_update(rec: &mut EscrowRecord, req: UpdateEscrow) -> Vec<String> {
    let mut fields = Vec::new();
    if let Some(t) = req.title {
        rec.title = t.trim().to_owned();
        fields.push("title".to_owned());
    }
    if let Some(a) = req.amount {
        rec.amount = a.normalize();
        rec.amount_tnd = to_tnd(a, &rec.currency);
        (rec.escrow_fee, rec.developer_fee) = fees(rec.amount_tnd, rec.developer_fee_percentage);
        fields.push("amount".to_owned());
    }
    if let Some(d) = req.description {
        rec.description = Some(d);
        fields.push("description".to_owned());
    }
    if let Some(d) = req.estimated_delivery_days {
        rec.estimated_delivery_days = d;
        fields.push("estimatedDeliveryDays".to_owned());
    }
    fields
}

/// `POST /escrows/:id/deliver`: standard/quick → delivered, instant → completed.
#[tracing::instrument(skip_all, fields(escrow.id = %id))]
pub fn deliver(store: &mut Store, ctx: &Ctx, id: &str) -> Result<(), Refusal> {
    let rec = escrow_mut(store, id)?;
    check_deliver(rec, &ctx.assoc)?;
    let to = if rec.mode == EscrowMode::Instant {
        // Delivery and completion are one step for instant escrows: both dates are set.
        rec.delivered_at = Some(ctx.now);
        EscrowStatus::Completed
    } else {
        EscrowStatus::Delivered
    };
    transition(store, ctx, id, to, Paired::Alone);
    Ok(())
}

/// May `acting` deliver `rec` now? The rule of [`deliver`], also asked by the dashboard.
pub fn check_deliver(rec: &EscrowRecord, acting: &str) -> Result<(), Refusal> {
    if !rec.is_seller(acting) {
        return Err(Refusal::Forbidden(
            "Only the seller can mark this escrow as delivered".into(),
        ));
    }
    if rec.status != EscrowStatus::Paid {
        return Err(Refusal::bad(format!(
            "Escrow must be paid to be delivered (current status: {})",
            rec.status
        )));
    }
    if rec.proof.as_ref().is_some_and(|p| !p.is_accepted()) {
        return Err(Refusal::Conflict {
            code: ErrorCode::ProofNotAccepted,
            message: "The purchase proof must be accepted before delivery".into(),
        });
    }
    Ok(())
}

/// `POST /escrows/:id/reject-delivery`: delivered → paid (buyer only).
#[tracing::instrument(skip_all, fields(escrow.id = %id))]
pub fn reject_delivery(
    store: &mut Store,
    ctx: &Ctx,
    id: &str,
    reason: Option<String>,
) -> Result<(), Refusal> {
    let rec = escrow_mut(store, id)?;
    check_reject_delivery(rec, &ctx.assoc)?;
    let rejection = DeliveryRejection {
        rejected_at: ctx.now,
        reason: reason.filter(|r| !r.trim().is_empty()),
        previous_delivered_at: rec.delivered_at,
        rejected_by: None,
    };
    rec.delivery_rejections.push(rejection.clone());
    // The event names the buyer; the stored rejection (the escrow's `deliveryRejections`) does not.
    let in_event = DeliveryRejection {
        rejected_by: Some(users::user_id(&rec.buyer_email)),
        ..rejection
    };
    transition(
        store,
        ctx,
        id,
        EscrowStatus::Paid,
        Paired::DeliveryRejected(in_event),
    );
    Ok(())
}

/// May `acting` reject `rec`'s delivery now? The rule of [`reject_delivery`], also asked by the
/// dashboard.
pub fn check_reject_delivery(rec: &EscrowRecord, acting: &str) -> Result<(), Refusal> {
    if !rec.is_buyer(acting) {
        return Err(Refusal::Forbidden(
            "Only the buyer can reject a delivery".into(),
        ));
    }
    if rec.mode == EscrowMode::Instant {
        return Err(Refusal::bad("Instant escrows have no delivery to reject"));
    }
    if rec.dispute.as_ref().is_some_and(|d| d.open) {
        return Err(Refusal::bad("A dispute is open for this escrow"));
    }
    if rec.status != EscrowStatus::Delivered {
        return Err(Refusal::bad(
            "Only delivered escrows can have their delivery rejected",
        ));
    }
    Ok(())
}

/// `POST /escrows/:id/cancel`: pending only. Pending guest deposit proofs are auto-rejected.
#[tracing::instrument(skip_all, fields(escrow.id = %id))]
pub fn cancel(store: &mut Store, ctx: &Ctx, id: &str) -> Result<(), Refusal> {
    let rec = escrow(store, id)?;
    if rec.status != EscrowStatus::Pending {
        return Err(Refusal::bad(
            "Only pending escrows can be cancelled. After payment, buyers use a \
             request_cancellation checkout session and sellers a cancel_escrow session.",
        ));
    }
    cancel_pending(
        store,
        ctx,
        id,
        "Escrow cancelled before the payment was approved",
    );
    Ok(())
}

/// pending → cancelled with auto-rejection of pending deposit proofs (also used at expiry).
pub fn cancel_pending(store: &mut Store, ctx: &Ctx, id: &str, reason: &str) {
    let before = store.outbox.len();
    transition(store, ctx, id, EscrowStatus::Cancelled, Paired::Alone);
    // The specific events go first, then `escrow.status.updated`, as for every paired event.
    let status_updated = (store.outbox.len() > before).then(|| store.outbox.pop());
    let Some(rec) = store.escrows.get_mut(id) else {
        return;
    };
    let mut rejected = Vec::new();
    for dp in rec
        .deposit_proofs
        .iter_mut()
        .filter(|d| d.status == DepositStatus::Pending)
    {
        dp.status = DepositStatus::Rejected;
        dp.reason = Some(reason.to_owned());
        rejected.push(dp.clone());
    }
    let evs: Vec<_> = rejected
        .iter()
        .map(|dp| events::deposit_rejected(rec, dp, ctx))
        .collect();
    for e in evs {
        store.emit(ctx.now, e);
    }
    if let Some(Some(queued)) = status_updated {
        store.outbox.push(queued);
    }
}

/// `GET /escrows/:id/contract`: standard only, parties only.
pub fn contract(store: &Store, ctx: &Ctx, id: &str) -> Result<Contract, Refusal> {
    let rec = escrow(store, id)?;
    let c = rec
        .contract
        .as_ref()
        .ok_or(Refusal::NotFound("Contract not found for this escrow"))?;
    if !rec.is_seller(&ctx.assoc) && !rec.is_buyer(&ctx.assoc) {
        return Err(Refusal::Forbidden(
            "You are not the seller or the buyer of this escrow".into(),
        ));
    }
    Ok(c.to_wire(&rec.id, &ctx.base_url))
}

/// `GET /escrows/:id/proof`: proof escrows only. Before funding the phase reads
/// `waiting_seller_proof` without deadlines.
pub fn proof(store: &Store, ctx: &Ctx, id: &str) -> Result<Proof, Refusal> {
    let rec = escrow(store, id)?;
    if !rec.has_proof_gate() {
        return Err(Refusal::bad("This escrow has no purchase-proof policy"));
    }
    let unfunded = crate::state::ProofState {
        phase: dhmad::ProofPhase::WaitingSellerProof,
        correction_rounds: 0,
        upload_deadline: None,
        review_deadline: None,
        submissions: Vec::new(),
    };
    let p = rec.proof.as_ref().unwrap_or(&unfunded);
    let mut wire = p.to_wire(&ctx.base_url, &rec.seller_email, &rec.buyer_email);
    // Nothing is awaited before funding, nor once the escrow left `paid` (cancelled,
    // disputed): a session for it would be refused.
    if rec.proof.is_none() || rec.status != EscrowStatus::Paid {
        wire.checkout_actions.clear();
    }
    Ok(wire)
}
