//! Pre-account identity verifications (`docs/dhmad-api.md` §2.8, §3.14). Unlike the escrow
//! endpoints, these bodies are snake_case on the wire.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::enums::{ClaimStatus, KycStatus};
use crate::iso;

/// Body of `POST /identity-verifications`.
///
/// ```
/// use dhmad::CreateIdentityVerification;
/// let req = CreateIdentityVerification::new("Seller@Example.tn")
///     .external_user_id("seller-42")
///     .metadata("shop", "nabeul");
/// assert_eq!(req.email, "Seller@Example.tn");
/// assert_eq!(req.metadata.unwrap()["shop"], "nabeul");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateIdentityVerification {
    /// The person's e-mail (DHMAD lower-cases it). Read as empty when absent, so that a server
    /// built on this type can answer a missing e-mail as a field error.
    #[serde(default)]
    pub email: String,
    /// Your id for that person, echoed in the record and its webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_user_id: Option<String>,
    /// Where DHMAD sends the person after verifying; allow-listed, HTTPS except localhost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    /// String values, ≤ 500 chars each; not echoed in webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl CreateIdentityVerification {
    /// A request for `email` only.
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            external_user_id: None,
            redirect_url: None,
            metadata: None,
        }
    }

    /// Sets `external_user_id`.
    pub fn external_user_id(mut self, id: impl Into<String>) -> Self {
        self.external_user_id = Some(id.into());
        self
    }

    /// Sets `redirect_url`.
    pub fn redirect_url(mut self, url: impl Into<String>) -> Self {
        self.redirect_url = Some(url.into());
        self
    }

    /// Adds one metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
        self
    }
}

/// An identity verification record. There is never a verification URL: DHMAD e-mails it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityVerification {
    /// 24-hex id.
    pub id: String,
    /// Lower-cased e-mail.
    pub email: String,
    /// Your id for the person.
    #[serde(default)]
    pub external_user_id: Option<String>,
    /// pending, approved or rejected.
    pub kyc_status: KycStatus,
    /// Didit's session status (`in_progress`, `completed`, …).
    #[serde(default)]
    pub didit_session_status: Option<String>,
    /// Awaiting a DHMAD admin (no webhook meanwhile).
    #[serde(default)]
    pub needs_admin_review: bool,
    /// pending until the person registers on DHMAD, then linked.
    #[serde(default)]
    pub claim_status: Option<ClaimStatus>,
    /// The DHMAD user once linked.
    #[serde(default)]
    pub linked_user_id: Option<String>,
    /// When it was linked.
    #[serde(default, with = "iso::option")]
    pub linked_at: Option<OffsetDateTime>,
    /// Created at.
    #[serde(with = "iso")]
    pub created_at: OffsetDateTime,
    /// Updated at.
    #[serde(default, with = "iso::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// About 90 days after creation.
    #[serde(default, with = "iso::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// `false`: the e-mail did not go out; send the same request again.
    #[serde(default)]
    pub verification_email_sent: bool,
    /// When the e-mail went out.
    #[serde(default, with = "iso::option")]
    pub verification_email_sent_at: Option<OffsetDateTime>,
}

/// Response of `POST /identity-verifications`: the record and a human `message`. Whether DHMAD
/// puts the record beside `message` or wraps it in `{"verification": …}` is not documented
/// (as for a read), so both are read: the record is made and its e-mail sent by then, and
/// failing to read the answer would only hide it. Written flat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreatedIdentityVerification {
    /// The record (new, or the existing one when the e-mail was already sent).
    #[serde(flatten)]
    pub verification: IdentityVerification,
    /// What happened, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl<'de> Deserialize<'de> for CreatedIdentityVerification {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Wrapped {
                verification: IdentityVerification,
                #[serde(default)]
                message: Option<String>,
            },
            Flat {
                #[serde(flatten)]
                verification: IdentityVerification,
                #[serde(default)]
                message: Option<String>,
            },
        }
        Ok(match Either::deserialize(d)? {
            Either::Wrapped {
                verification,
                message,
            }
            | Either::Flat {
                verification,
                message,
            } => Self {
                verification,
                message,
            },
        })
    }
}

/// Response of `GET /identity-verifications?email=…`: newest first, at most 20.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityVerificationList {
    /// The records.
    pub verifications: Vec<IdentityVerification>,
}

/// `GET /identity-verifications/:id` answers the record; whether DHMAD wraps it in
/// `{"verification": …}` is not documented, so both are read.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct IdentityVerificationEnvelope {
    /// The record.
    pub verification: IdentityVerification,
}

impl<'de> Deserialize<'de> for IdentityVerificationEnvelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Wrapped { verification: IdentityVerification },
            Bare(IdentityVerification),
        }
        Ok(match Either::deserialize(d)? {
            Either::Wrapped { verification } | Either::Bare(verification) => Self { verification },
        })
    }
}
