//! Purchase proofs (quick escrows with a proof gate), guest deposit proofs and uploaded files.

use dhmad::{
    CheckoutAction, PaymentMethod, Proof, ProofAttachment, ProofCheckoutAction, ProofPhase,
    ProofSubmission,
};
use rust_decimal::Decimal;
use time::OffsetDateTime;

/// One seller upload.
#[derive(Debug, Clone)]
pub struct SubmissionRecord {
    pub submitted_at: OffsetDateTime,
    pub note: Option<String>,
    /// `(file id, mime type)`.
    pub files: Vec<(String, String)>,
}

/// The proof gate of one escrow.
#[derive(Debug, Clone)]
pub struct ProofState {
    pub phase: ProofPhase,
    pub correction_rounds: u32,
    pub upload_deadline: Option<OffsetDateTime>,
    pub review_deadline: Option<OffsetDateTime>,
    pub submissions: Vec<SubmissionRecord>,
}

impl ProofState {
    /// Delivery is unlocked.
    pub fn is_accepted(&self) -> bool {
        matches!(
            self.phase,
            ProofPhase::Accepted | ProofPhase::AcceptedByTimeout
        )
    }

    /// The wire object; `base_url` builds the attachments' `viewUrl`s.
    pub fn to_wire(&self, base_url: &str, seller: &str, buyer: &str) -> Proof {
        let sub = |s: &SubmissionRecord| ProofSubmission {
            submitted_at: s.submitted_at,
            note: s.note.clone(),
            attachments: s
                .files
                .iter()
                .map(|(id, mime)| ProofAttachment {
                    mime_type: mime.clone(),
                    view_url: format!("{base_url}/sandbox/files/{id}"),
                })
                .collect(),
        };
        let waiting = |action, email: &str, description: &str| ProofCheckoutAction {
            action,
            target_user_email: email.to_owned(),
            description: description.to_owned(),
        };
        let checkout_actions = match self.phase {
            ProofPhase::WaitingSellerProof | ProofPhase::CorrectionRequested => vec![waiting(
                CheckoutAction::SubmitProof,
                seller,
                "The seller must upload a purchase proof.",
            )],
            ProofPhase::SubmittedWaitingBuyerReview => vec![waiting(
                CheckoutAction::ReviewProof,
                buyer,
                "The buyer may review the purchase proof.",
            )],
            _ => Vec::new(),
        };
        Proof {
            phase: self.phase.clone(),
            correction_rounds: Some(self.correction_rounds),
            upload_deadline: self.upload_deadline,
            review_deadline: self.review_deadline,
            submission_count: Some(self.submissions.len() as u32),
            submissions: self.submissions.iter().map(sub).collect(),
            latest_submission: self.submissions.last().map(sub),
            checkout_actions,
        }
    }
}

/// Where a guest's deposit proof stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepositStatus {
    Pending,
    Approved,
    Rejected,
}

/// A guest payment waiting for an admin (instant escrows).
#[derive(Debug, Clone)]
pub struct DepositProofRecord {
    pub id: String,
    pub method: PaymentMethod,
    pub buyer_email: String,
    pub amount: Decimal,
    pub status: DepositStatus,
    pub reason: Option<String>,
    pub file: Option<String>,
    pub session_id: String,
    pub submitted_at: OffsetDateTime,
}

/// An uploaded file, kept in memory and served at `/sandbox/files/{id}`.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub name: String,
    pub mime: String,
    pub bytes: Vec<u8>,
}
