//! The escrow object and its parts (`docs/dhmad-api.md` §2.1, §2.4).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::enums::{
    Currency, EscrowMode, EscrowStatus, FulfillmentPolicyType, ProofPhase, ProofType,
};
use crate::iso;

/// A DHMAD user as embedded in escrows (`{_id, email, firstName, lastName}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// User id (24 hex chars).
    #[serde(rename = "_id")]
    pub id: String,
    /// E-mail, absent in some payloads (e.g. `cancellationRequest.requestedBy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

/// `escrow.seller` / `escrow.buyer`: a bare user id (create response) or a user object
/// (get, list, webhooks). `null` is the surrounding `Option`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PartyRef {
    /// The user's id only.
    Id(String),
    /// The embedded user.
    User(User),
}

impl PartyRef {
    /// The user id, whichever shape was sent.
    pub fn id(&self) -> &str {
        match self {
            PartyRef::Id(id) => id,
            PartyRef::User(u) => &u.id,
        }
    }

    /// The e-mail, when the object form carried one.
    pub fn email(&self) -> Option<&str> {
        match self {
            PartyRef::Id(_) => None,
            PartyRef::User(u) => u.email.as_deref(),
        }
    }
}

/// One entry of `escrow.deliveryRejections`, also `data.deliveryRejection` of webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRejection {
    /// When the buyer rejected.
    #[serde(with = "iso")]
    pub rejected_at: OffsetDateTime,
    /// The buyer's reason; omitted when none was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The `deliveredAt` that was undone.
    #[serde(default, with = "iso::option")]
    pub previous_delivered_at: Option<OffsetDateTime>,
    /// The buyer's user id (webhook payload only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
}

/// `escrow.disputeTicket`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisputeTicket {
    /// Human ticket number (type not fixed by the docs, kept as JSON).
    #[serde(default)]
    pub ticket_number: serde_json::Value,
    /// Always `dispute`.
    #[serde(rename = "type", default)]
    pub ticket_type: Option<String>,
    /// Subject line.
    #[serde(default)]
    pub subject: Option<String>,
    /// Ticket status.
    #[serde(default)]
    pub status: Option<String>,
    /// Opened at.
    #[serde(default, with = "iso::option")]
    pub created_at: Option<OffsetDateTime>,
    /// Start of the reason.
    #[serde(default)]
    pub preview_reason: Option<String>,
}

/// `escrow.signatures` (standard mode).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signatures {
    /// The seller signed.
    pub seller_signed: bool,
    /// When the seller signed.
    #[serde(default, with = "iso::option", skip_serializing_if = "Option::is_none")]
    pub seller_signed_at: Option<OffsetDateTime>,
    /// The buyer signed.
    pub buyer_signed: bool,
    /// When the buyer signed.
    #[serde(default, with = "iso::option", skip_serializing_if = "Option::is_none")]
    pub buyer_signed_at: Option<OffsetDateTime>,
    /// Both signed.
    pub is_fully_signed: bool,
    /// When the second signature came.
    #[serde(default, with = "iso::option", skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<OffsetDateTime>,
}

/// `fulfillmentPolicy`: the purchase-proof gate of quick escrows (§2.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentPolicy {
    /// Must be `purchase_proof_required`.
    #[serde(rename = "type")]
    pub policy_type: FulfillmentPolicyType,
    /// Hours after funding for the seller to upload (default 24, bounds 6–72).
    #[serde(
        default,
        deserialize_with = "crate::nullable::count",
        skip_serializing_if = "Option::is_none"
    )]
    pub proof_upload_deadline_hours: Option<u32>,
    /// Hours the buyer has to review (silence accepts).
    #[serde(
        default,
        deserialize_with = "crate::nullable::count",
        skip_serializing_if = "Option::is_none"
    )]
    pub buyer_review_deadline_hours: Option<u32>,
    /// Hints only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_proof_types: Option<Vec<ProofType>>,
}

/// `escrow.proofInfo`: the sanitised proof state (no file URLs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofInfo {
    /// Where the gate stands; `None` when DHMAD leaves it out or sends `null` (the keys of
    /// `proofInfo` are UNSTATED in its contract).
    #[serde(default, deserialize_with = "crate::nullable::lenient")]
    pub phase: Option<ProofPhase>,
    /// Seller's upload deadline; `None` also when it does not read as a timestamp.
    #[serde(default, with = "iso::lenient_option")]
    pub upload_deadline: Option<OffsetDateTime>,
    /// Buyer's review deadline; `None` also when it does not read as a timestamp.
    #[serde(default, with = "iso::lenient_option")]
    pub review_deadline: Option<OffsetDateTime>,
    /// Corrections asked so far; `None` when DHMAD leaves it out (`proofInfo`'s keys are
    /// unstated, §2.1), which is not 0.
    #[serde(default, deserialize_with = "crate::nullable::count")]
    pub correction_rounds: Option<u32>,
}

/// An escrow: the union of the fields DHMAD sends in create, get, list, action responses and
/// webhooks. Only `id` and `status` are always present; everything else is optional because
/// each endpoint sends its own subset.
///
/// ```
/// let json = r#"{"id":"66aa00000000000000000001","title":"Logo pack","amount":300,
///   "escrowFee":15,"status":"paid","seller":"66aa0000000000000000000a","buyer":null,
///   "createdAt":"2026-07-01T09:00:00Z","updatedAt":"2026-07-02T09:00:00.000Z"}"#;
/// let e: dhmad::Escrow = serde_json::from_str(json).unwrap();
/// assert_eq!(e.status, dhmad::EscrowStatus::Paid);
/// assert_eq!(e.amount, Some(rust_decimal::Decimal::from(300)));
/// assert_eq!(e.seller.unwrap().id(), "66aa0000000000000000000a");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Escrow {
    /// Escrow id (24 hex chars).
    pub id: String,
    /// Duplicate of `id` sent by GET detail.
    #[serde(rename = "_id", default, skip_serializing_if = "Option::is_none")]
    pub underscore_id: Option<String>,
    /// 1–200 chars.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub title: String,
    /// Face amount in `currency`.
    #[serde(default, with = "crate::money::option")]
    pub amount: Option<Decimal>,
    /// Face currency (TND when absent).
    #[serde(default)]
    pub currency: Option<Currency>,
    /// Ledger value in TND, locked at creation.
    #[serde(default, with = "crate::money::option")]
    pub amount_tnd: Option<Decimal>,
    /// Platform fee in TND, paid by the seller.
    #[serde(default, with = "crate::money::option")]
    pub escrow_fee: Option<Decimal>,
    /// App fee in TND.
    #[serde(default, with = "crate::money::option")]
    pub developer_fee: Option<Decimal>,
    /// App fee percentage (0–25).
    #[serde(default, with = "crate::money::option")]
    pub developer_fee_percentage: Option<Decimal>,
    /// Current status.
    pub status: EscrowStatus,
    /// Previous status; only in `escrow.status.updated` and `escrow.delivery.rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_status: Option<EscrowStatus>,
    /// Mode.
    #[serde(default)]
    pub mode: Option<EscrowMode>,
    /// Seller: id string, user object, or null (invited seller).
    #[serde(default)]
    pub seller: Option<PartyRef>,
    /// Seller e-mail (create response; absent elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_email: Option<String>,
    /// Buyer object: `Some(None)` when DHMAD writes `null` (no buyer linked yet, or a guest
    /// paid), `None` when the field is left out (a snapshot of some fields only, §6.4). Only
    /// `null` says "no buyer": see [`Escrow::names_no_buyer`].
    #[serde(
        default,
        deserialize_with = "crate::nullable::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub buyer: Option<Option<PartyRef>>,
    /// Buyer e-mail (create response; absent elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_email: Option<String>,
    /// Estimated delivery in days.
    #[serde(default, deserialize_with = "crate::nullable::count")]
    pub estimated_delivery_days: Option<u32>,
    /// Free text, settable by update only.
    #[serde(default)]
    pub description: Option<String>,
    /// Expiry of a still-pending escrow.
    #[serde(default, with = "iso::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Funded at.
    #[serde(default, with = "iso::option")]
    pub paid_at: Option<OffsetDateTime>,
    /// Delivered at.
    #[serde(default, with = "iso::option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// Released at.
    #[serde(default, with = "iso::option")]
    pub completed_at: Option<OffsetDateTime>,
    /// Cancelled at.
    #[serde(default, with = "iso::option")]
    pub cancelled_at: Option<OffsetDateTime>,
    /// After delivery: when silence completes (later revisions).
    #[serde(default, with = "iso::option")]
    pub completion_deadline: Option<OffsetDateTime>,
    /// Past delivery rejections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_rejections: Option<Vec<DeliveryRejection>>,
    /// Created at.
    #[serde(default, with = "iso::option")]
    pub created_at: Option<OffsetDateTime>,
    /// Last change; orders snapshots of the same escrow.
    #[serde(default, with = "iso::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// Created through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_via_third_party: Option<bool>,
    /// Your app's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_application_name: Option<String>,
    /// Dispute ticket id. `null` when there is none, as DHMAD writes it (not left out).
    #[serde(default)]
    pub dispute_ticket_id: Option<String>,
    /// Dispute ticket. `null` when there is none, as DHMAD writes it (not left out).
    #[serde(default)]
    pub dispute_ticket: Option<DisputeTicket>,
    /// Contract signatures (standard mode). `null` when there is none, as DHMAD writes it (not left out).
    #[serde(default)]
    pub signatures: Option<Signatures>,
    /// Proof policy (proof escrows): an echo of the create request, `None` also when it is
    /// of a shape this crate cannot read.
    #[serde(
        default,
        deserialize_with = "crate::nullable::lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub fulfillment_policy: Option<FulfillmentPolicy>,
    /// Sanitised proof state (proof escrows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_info: Option<ProofInfo>,
}

impl Escrow {
    /// The seller's e-mail from whichever field carries it.
    pub fn seller_email(&self) -> Option<&str> {
        self.seller
            .as_ref()
            .and_then(PartyRef::email)
            .or(self.seller_email.as_deref())
    }

    /// The buyer's e-mail from whichever field carries it.
    pub fn buyer_email(&self) -> Option<&str> {
        self.buyer()
            .and_then(PartyRef::email)
            .or(self.buyer_email.as_deref())
    }

    /// The buyer, when the snapshot names one.
    pub fn buyer(&self) -> Option<&PartyRef> {
        self.buyer.as_ref().and_then(Option::as_ref)
    }

    /// Whether the snapshot says there is no buyer (`"buyer": null`: a guest paid, or nobody
    /// yet), rather than leaving the field out, which says nothing.
    pub fn names_no_buyer(&self) -> bool {
        matches!(self.buyer, Some(None))
    }
}
