//! Pre-account identity verifications (`docs/dhmad-api.md` §2.8) and their wire views.

use std::collections::BTreeMap;

use dhmad::{ClaimStatus, IdentityVerification, KycStatus};
use time::OffsetDateTime;

/// How long an unclaimed record stays open ("≈ +90 days").
pub const VERIFICATION_LIFETIME: time::Duration = time::Duration::days(90);

/// One verification, as DHMAD stores it.
#[derive(Debug, Clone)]
pub struct VerificationRecord {
    pub id: String,
    /// Lower-cased.
    pub email: String,
    pub external_user_id: Option<String>,
    pub redirect_url: Option<String>,
    /// Kept, never shown (DHMAD echoes it nowhere we know of).
    pub metadata: BTreeMap<String, String>,
    /// Id of the API key that created it: only that key can read it.
    pub owner_key_id: String,
    pub kyc_status: KycStatus,
    pub claim_status: ClaimStatus,
    pub linked_user_id: Option<String>,
    pub linked_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl VerificationRecord {
    /// The record as the API answers it. The sandbox sends no e-mail but reports it sent at
    /// creation: DHMAD tells clients to repeat the call while `verification_email_sent` is false.
    pub fn to_wire(&self) -> IdentityVerification {
        IdentityVerification {
            id: self.id.clone(),
            email: self.email.clone(),
            external_user_id: self.external_user_id.clone(),
            kyc_status: self.kyc_status.clone(),
            didit_session_status: None,
            needs_admin_review: false,
            claim_status: Some(self.claim_status.clone()),
            linked_user_id: self.linked_user_id.clone(),
            linked_at: self.linked_at,
            created_at: self.created_at,
            updated_at: Some(self.updated_at),
            expires_at: Some(self.created_at + VERIFICATION_LIFETIME),
            verification_email_sent: true,
            verification_email_sent_at: Some(self.created_at),
        }
    }

    /// Unclaimed and within its 90 days: a new request for the e-mail answers this record
    /// instead of creating one. A lapsed record stays listed.
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        self.claim_status == ClaimStatus::Pending && now < self.created_at + VERIFICATION_LIFETIME
    }

    /// Approved KYC attached to a DHMAD user: what makes a new request answer 409.
    pub fn is_linked_approval(&self) -> bool {
        self.kyc_status == KycStatus::Approved && self.claim_status == ClaimStatus::Linked
    }
}
