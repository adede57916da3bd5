//! Payloads (`data`) of the published event types (`docs/dhmad-api.md` §6.4).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::enums::{
    CancellationRequestStatus, ClaimStatus, ContractLanguage, KycStatus, PaymentMethod, Signer,
};
use crate::iso;
use crate::types::{DeliveryRejection, Escrow, PartyRef, Proof, User};

/// `data` of escrow events that carry only the escrow snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscrowData {
    /// The escrow after the change (`oldStatus` set on status events).
    pub escrow: Escrow,
}

/// `data.contract` of `contract.signed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedContract {
    /// Contract id.
    pub id: String,
    /// Escrow id.
    pub escrow_id: String,
    /// Who signed now.
    pub signed_by: Signer,
    /// Seller signature time.
    #[serde(default)]
    pub seller_signature: Option<SignedAt>,
    /// Buyer signature time.
    #[serde(default)]
    pub buyer_signature: Option<SignedAt>,
    /// Both signed.
    pub is_fully_signed: bool,
    /// When it became fully signed.
    #[serde(default, with = "iso::option")]
    pub signed_at: Option<OffsetDateTime>,
}

/// `{signedAt}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedAt {
    /// Signed at.
    #[serde(with = "iso")]
    pub signed_at: OffsetDateTime,
}

/// `data` of `contract.signed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractSignedData {
    /// The signature.
    pub contract: SignedContract,
    /// The escrow (no `oldStatus`).
    pub escrow: Escrow,
}

/// `data.cancellationRequest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancellationRequest {
    /// The buyer. Read leniently, like the two below: a party of an odd shape must not make
    /// the event, and the escrow it carries, unreadable.
    #[serde(default, deserialize_with = "crate::nullable::lenient")]
    pub requested_by: Option<User>,
    /// The buyer's reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// pending, rejected, accepted.
    pub status: CancellationRequestStatus,
    /// When requested.
    #[serde(default, with = "iso::option")]
    pub requested_at: Option<OffsetDateTime>,
    /// The seller who accepted. Its shape is not documented: a user object or a bare id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::nullable::lenient"
    )]
    pub accepted_by: Option<PartyRef>,
    /// The seller who rejected (user object or bare id, like `accepted_by`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::nullable::lenient"
    )]
    pub rejected_by: Option<PartyRef>,
}

/// `data` of `escrow.cancellation.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancellationData {
    /// The escrow.
    pub escrow: Escrow,
    /// The request.
    pub cancellation_request: CancellationRequest,
}

/// `data.contract` of `escrow.updated` when terms changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdatedContract {
    /// Contract id.
    pub id: String,
    /// New terms.
    pub terms: String,
    /// Language.
    #[serde(default)]
    pub language: Option<ContractLanguage>,
}

/// `data` of `escrow.updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EscrowUpdatedData {
    /// Request field names that changed.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub updated_fields: Vec<String>,
    /// The escrow after the edit.
    pub escrow: Escrow,
    /// Present when the terms changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<UpdatedContract>,
}

/// `data.depositProof` of `escrow.deposit_proof.rejected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DepositProof {
    /// Proof id.
    pub id: String,
    /// The guest's e-mail.
    #[serde(default)]
    pub buyer_email: Option<String>,
    /// Why it was rejected.
    #[serde(default)]
    pub reason: Option<String>,
    /// Amount declared.
    #[serde(default, with = "crate::money::option")]
    pub amount: Option<Decimal>,
    /// Payment method used.
    #[serde(default)]
    pub method: Option<PaymentMethod>,
}

/// `data` of `escrow.deposit_proof.rejected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DepositProofRejectedData {
    /// The escrow (`pending`, or `cancelled` when auto-rejected).
    pub escrow: Escrow,
    /// The rejected proof.
    pub deposit_proof: DepositProof,
}

/// `data` of `escrow.delivery.rejected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRejectedData {
    /// The escrow (status `paid`, `oldStatus` `delivered`).
    pub escrow: Escrow,
    /// The rejection.
    pub delivery_rejection: DeliveryRejection,
}

/// `data` of `escrow.proof.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProofData {
    /// `{id, title, status, mode}`.
    pub escrow: Escrow,
    /// The proof state.
    pub proof: Proof,
}

/// `data` of `identity.verification.updated` (snake_case on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityVerificationUpdated {
    /// Verification id.
    pub id: String,
    /// Your user id.
    #[serde(default)]
    pub external_user_id: Option<String>,
    /// E-mail.
    pub email: String,
    /// New status.
    pub kyc_status: KycStatus,
    /// Previous status.
    #[serde(default)]
    pub previous_kyc_status: Option<KycStatus>,
    /// Awaiting an admin.
    #[serde(default)]
    pub needs_admin_review: bool,
    /// DHMAD user once linked.
    #[serde(default)]
    pub linked_user_id: Option<String>,
    /// `didit`, `admin_review` or `sandbox`.
    #[serde(default)]
    pub status_source: Option<String>,
    /// pending or linked.
    #[serde(default)]
    pub claim_status: Option<ClaimStatus>,
    /// Updated at.
    #[serde(default, with = "iso::option")]
    pub updated_at: Option<OffsetDateTime>,
}

/// `data` of `identity.verification.linked`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityVerificationLinked {
    /// Verification id.
    pub id: String,
    /// Your user id.
    #[serde(default)]
    pub external_user_id: Option<String>,
    /// E-mail.
    pub email: String,
    /// KYC status.
    pub kyc_status: KycStatus,
    /// The DHMAD user.
    pub linked_user_id: String,
    /// Linked at.
    #[serde(with = "iso")]
    pub linked_at: OffsetDateTime,
}
