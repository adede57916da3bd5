use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::enums::{ContractLanguage, PdfVersionType};
use crate::iso;

/// A party's signature on a contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractSignature {
    /// Signed at.
    #[serde(with = "iso")]
    pub signed_at: OffsetDateTime,
    /// `data:` URL of the image (GET contract only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_image: Option<String>,
}

/// One rendered PDF of the contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PdfVersion {
    /// Which signatures it carries.
    #[serde(rename = "type")]
    pub version_type: PdfVersionType,
    /// Presigned URL.
    pub url: String,
    /// MIME type.
    pub mime_type: String,
    /// Rendered at.
    #[serde(with = "iso")]
    pub created_at: OffsetDateTime,
}

/// `GET /escrows/:id/contract` (standard mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    /// Contract id.
    pub id: String,
    /// Escrow id.
    pub escrow: String,
    /// Terms.
    pub terms: String,
    /// Language.
    #[serde(default)]
    pub language: Option<ContractLanguage>,
    /// Presigned PDF URL.
    #[serde(default)]
    pub pdf_url: Option<String>,
    /// Seller signature.
    #[serde(default)]
    pub seller_signature: Option<ContractSignature>,
    /// Buyer signature.
    #[serde(default)]
    pub buyer_signature: Option<ContractSignature>,
    /// Both signed.
    pub is_fully_signed: bool,
    /// PDF history.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub pdf_versions: Vec<PdfVersion>,
    /// Created at.
    #[serde(default, with = "iso::option")]
    pub created_at: Option<OffsetDateTime>,
    /// Updated at.
    #[serde(default, with = "iso::option")]
    pub updated_at: Option<OffsetDateTime>,
}

/// `{contract}` wrapper of `GET /escrows/:id/contract`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractEnvelope {
    /// The contract.
    pub contract: Contract,
}
