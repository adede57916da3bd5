use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::enums::{CheckoutAction, ProofPhase};
use crate::iso;

/// A file attached to a proof submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofAttachment {
    /// MIME type.
    pub mime_type: String,
    /// Short-lived signed URL.
    pub view_url: String,
}

/// One upload by the seller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofSubmission {
    /// Uploaded at.
    #[serde(with = "iso")]
    pub submitted_at: OffsetDateTime,
    /// The seller's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Files.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub attachments: Vec<ProofAttachment>,
}

/// A checkout action the proof gate is waiting for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofCheckoutAction {
    /// `submit_proof` or `review_proof`.
    pub action: CheckoutAction,
    /// Who must act.
    pub target_user_email: String,
    /// What to do.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub description: String,
}

/// The proof object (`GET /escrows/:id/proof`, `data.proof` of `escrow.proof.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proof {
    /// Phase.
    pub phase: ProofPhase,
    /// Corrections asked so far; `None` when DHMAD leaves it out (or sends something else): a
    /// shop ordering proof events by it must then not take it for 0.
    #[serde(default, deserialize_with = "crate::nullable::count")]
    pub correction_rounds: Option<u32>,
    /// Seller's upload deadline; `None` also when it does not read as a timestamp.
    #[serde(default, with = "iso::lenient_option")]
    pub upload_deadline: Option<OffsetDateTime>,
    /// Buyer's review deadline; `None` also when it does not read as a timestamp.
    #[serde(default, with = "iso::lenient_option")]
    pub review_deadline: Option<OffsetDateTime>,
    /// Number of uploads; `None` when DHMAD leaves it out (the `escrow.proof.*` events do,
    /// §6.4), which is not 0.
    #[serde(default, deserialize_with = "crate::nullable::count")]
    pub submission_count: Option<u32>,
    /// All uploads.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub submissions: Vec<ProofSubmission>,
    /// The newest upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_submission: Option<ProofSubmission>,
    /// What is awaited, empty when nothing.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub checkout_actions: Vec<ProofCheckoutAction>,
}

/// `{proof}` wrapper of `GET /escrows/:id/proof`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProofEnvelope {
    /// The proof.
    pub proof: Proof,
}
