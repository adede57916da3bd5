//! The escrow record and its wire views.

use dhmad::{
    CancellationRequestStatus, ContractSummary, Currency, DeliveryRejection, DisputeTicket, Escrow,
    EscrowMode, EscrowStatus, FulfillmentPolicy, PartyRef, ProofInfo, WebhookEnvelope,
};
use rust_decimal::Decimal;
use serde_json::json;
use time::OffsetDateTime;

use super::contract::ContractRecord;
use super::proofs::{DepositProofRecord, DepositStatus, ProofState};
use super::users;

/// An open or decided dispute.
#[derive(Debug, Clone)]
pub struct DisputeRecord {
    /// Ticket id (24 hex).
    pub ticket_id: String,
    /// Human number.
    pub ticket_number: u64,
    /// Who opened it.
    pub opened_by: String,
    /// When.
    pub opened_at: OffsetDateTime,
    /// Status before the dispute (restored is never needed: resolution ends the escrow).
    pub previous_status: EscrowStatus,
    /// `open` or `resolved`.
    pub open: bool,
    /// What the opener wrote ("What went wrong?"), trimmed and bounded; `None` when blank.
    pub reason: Option<String>,
}

/// A buyer's cancellation request.
#[derive(Debug, Clone)]
pub struct CancellationRecord {
    /// The buyer's e-mail.
    pub requested_by: String,
    /// Optional reason.
    pub reason: Option<String>,
    /// pending / accepted / rejected.
    pub status: CancellationRequestStatus,
    /// When.
    pub requested_at: OffsetDateTime,
    /// The seller who decided.
    pub decided_by: Option<String>,
}

/// Everything the sandbox knows about one escrow.
#[derive(Debug, Clone)]
pub struct EscrowRecord {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub amount: Decimal,
    pub currency: Currency,
    pub amount_tnd: Decimal,
    pub escrow_fee: Decimal,
    pub developer_fee: Decimal,
    pub developer_fee_percentage: Decimal,
    pub status: EscrowStatus,
    pub mode: EscrowMode,
    pub seller_email: String,
    /// The seller was named by `sellerEmail` (not the associated user).
    pub seller_invited: bool,
    pub buyer_email: String,
    pub estimated_delivery_days: u32,
    pub expires_at: OffsetDateTime,
    pub paid_at: Option<OffsetDateTime>,
    pub delivered_at: Option<OffsetDateTime>,
    pub completed_at: Option<OffsetDateTime>,
    pub cancelled_at: Option<OffsetDateTime>,
    pub completion_deadline: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub delivery_rejections: Vec<DeliveryRejection>,
    pub contract: Option<ContractRecord>,
    pub fulfillment_policy: Option<FulfillmentPolicy>,
    pub proof: Option<ProofState>,
    pub dispute: Option<DisputeRecord>,
    pub cancellation: Option<CancellationRecord>,
    pub deposit_proofs: Vec<DepositProofRecord>,
    /// The last webhook envelope emitted for this escrow (for `events/resend`).
    pub last_event: Option<WebhookEnvelope>,
}

impl EscrowRecord {
    /// Is `email` the seller?
    pub fn is_seller(&self, email: &str) -> bool {
        self.seller_email.eq_ignore_ascii_case(email.trim())
    }

    /// Is `email` the buyer?
    pub fn is_buyer(&self, email: &str) -> bool {
        self.buyer_email.eq_ignore_ascii_case(email.trim())
    }

    /// Has a proof gate?
    pub fn has_proof_gate(&self) -> bool {
        self.fulfillment_policy.is_some()
    }

    /// The guest deposit proof waiting for DHMAD's decision, if any (there is at most one).
    pub fn pending_deposit(&self) -> Option<&DepositProofRecord> {
        self.deposit_proofs
            .iter()
            .find(|d| d.status == DepositStatus::Pending)
    }

    /// Paid, or being paid, by a guest: a guest deposit proof was approved, or one was sent
    /// and no wallet payment came since. The guest has no DHMAD account linked to the escrow.
    pub fn paid_by_guest(&self) -> bool {
        let approved = self
            .deposit_proofs
            .iter()
            .any(|d| d.status == DepositStatus::Approved);
        approved || (self.paid_at.is_none() && !self.deposit_proofs.is_empty())
    }

    /// The full snapshot sent by GET, list, action responses and webhooks. A guest payer is no
    /// buyer (`buyer: null`, `docs/dhmad-api.md` §2.1 and §6.4's guest example). `buyerEmail`
    /// and `sellerEmail` are not sent: DHMAD shows them in the create answer only (§2.1), so a
    /// shop must not learn to rely on them here.
    pub fn to_wire(&self, old_status: Option<EscrowStatus>, app_name: &str) -> Escrow {
        let buyer = (!self.paid_by_guest()).then_some(&self.buyer_email);
        Escrow {
            id: self.id.clone(),
            underscore_id: Some(self.id.clone()),
            title: self.title.clone(),
            amount: Some(self.amount),
            currency: Some(self.currency.clone()),
            amount_tnd: Some(self.amount_tnd),
            escrow_fee: Some(self.escrow_fee),
            developer_fee: Some(self.developer_fee),
            developer_fee_percentage: Some(self.developer_fee_percentage),
            status: self.status.clone(),
            old_status,
            mode: Some(self.mode.clone()),
            seller: Some(PartyRef::User(users::user(&self.seller_email))),
            seller_email: None,
            buyer: Some(buyer.map(|b| PartyRef::User(users::user(b)))),
            buyer_email: None,
            estimated_delivery_days: Some(self.estimated_delivery_days),
            description: self.description.clone(),
            expires_at: Some(self.expires_at),
            paid_at: self.paid_at,
            delivered_at: self.delivered_at,
            completed_at: self.completed_at,
            cancelled_at: self.cancelled_at,
            completion_deadline: self.completion_deadline,
            delivery_rejections: Some(self.delivery_rejections.clone()),
            created_at: Some(self.created_at),
            updated_at: Some(self.updated_at),
            created_via_third_party: Some(true),
            created_by_application_name: Some(app_name.to_owned()),
            dispute_ticket_id: self.dispute.as_ref().map(|d| d.ticket_id.clone()),
            dispute_ticket: self.dispute.as_ref().map(|d| DisputeTicket {
                ticket_number: json!(d.ticket_number),
                ticket_type: Some("dispute".into()),
                subject: Some(format!("Dispute on {}", self.title)),
                status: Some(if d.open { "open" } else { "resolved" }.into()),
                created_at: Some(d.opened_at),
                preview_reason: Some(
                    d.reason
                        .clone()
                        .unwrap_or_else(|| "Opened from the sandbox checkout".into()),
                ),
            }),
            signatures: self.contract.as_ref().map(ContractRecord::signatures),
            fulfillment_policy: self.fulfillment_policy.clone(),
            proof_info: self.proof.as_ref().map(|p| ProofInfo {
                phase: Some(p.phase.clone()),
                upload_deadline: p.upload_deadline,
                review_deadline: p.review_deadline,
                correction_rounds: Some(p.correction_rounds),
            }),
        }
    }

    /// The create response's view: `seller` is the associated user's id, or `null` for a
    /// seller named by e-mail; no `buyer` object yet.
    pub fn created_view(&self, app_name: &str) -> Escrow {
        let mut e = self.to_wire(None, app_name);
        e.seller = (!self.seller_invited).then(|| PartyRef::Id(users::user_id(&self.seller_email)));
        e.seller_email = Some(self.seller_email.clone());
        e.buyer = Some(None);
        e.buyer_email = Some(self.buyer_email.clone());
        e.underscore_id = None;
        e.signatures = None;
        e
    }

    /// The small contract object of the create response.
    pub fn contract_summary(&self) -> Option<ContractSummary> {
        self.contract.as_ref().map(|c| c.summary())
    }
}
