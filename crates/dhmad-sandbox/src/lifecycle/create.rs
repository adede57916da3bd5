//! `POST /escrows`: a new pending escrow from a request that passed the field rules.

use dhmad::{CreateEscrow, EscrowStatus};
use time::OffsetDateTime;

use super::field_rules::{self, NewEscrow};
use super::money::fees;
use super::PENDING_LIFETIME;
use crate::error::Refusal;
use crate::state::{ContractRecord, Ctx, EscrowRecord, Store};

/// Validates and stores a new pending escrow; returns its id.
#[tracing::instrument(skip_all, fields(escrow.id = tracing::field::Empty))]
pub fn create_escrow(store: &mut Store, ctx: &Ctx, req: CreateEscrow) -> Result<String, Refusal> {
    let new = field_rules::new_escrow(&req, ctx)?;
    let id = store.new_object_id(ctx.now);
    tracing::Span::current().record("escrow.id", id.as_str());
    let contract = contract(store, &new, ctx.now);
    let rec = record(id.clone(), new, contract, ctx.now);
    store.escrows.insert(id.clone(), rec);
    Ok(id)
}

/// The contract of a standard escrow, signed by the seller at once under `autoSign`.
fn contract(store: &mut Store, new: &NewEscrow, now: OffsetDateTime) -> Option<ContractRecord> {
    let terms = new.terms.clone()?;
    (new.mode == dhmad::EscrowMode::Standard).then(|| ContractRecord {
        id: store.new_object_id(now),
        terms,
        seller_signed_at: new.auto_sign.then_some(now),
        buyer_signed_at: None,
        created_at: now,
        updated_at: now,
    })
}

fn record(
    id: String,
    new: NewEscrow,
    contract: Option<ContractRecord>,
    now: OffsetDateTime,
) -> EscrowRecord {
    let (escrow_fee, developer_fee) = fees(new.amount_tnd, new.developer_pct);
    EscrowRecord {
        id,
        title: new.title,
        description: None,
        amount: new.amount.normalize(),
        currency: new.currency,
        amount_tnd: new.amount_tnd,
        escrow_fee,
        developer_fee,
        developer_fee_percentage: new.developer_pct.normalize(),
        status: EscrowStatus::Pending,
        mode: new.mode,
        seller_email: new.seller,
        seller_invited: new.seller_invited,
        buyer_email: new.buyer,
        estimated_delivery_days: new.days,
        expires_at: now + PENDING_LIFETIME,
        paid_at: None,
        delivered_at: None,
        completed_at: None,
        cancelled_at: None,
        completion_deadline: None,
        created_at: now,
        updated_at: now,
        delivery_rejections: Vec::new(),
        contract,
        fulfillment_policy: new.policy,
        proof: None,
        dispute: None,
        cancellation: None,
        deposit_proofs: Vec::new(),
        last_event: None,
    }
}
