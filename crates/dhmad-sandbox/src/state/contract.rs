//! Standard-mode contracts.

use dhmad::{
    Contract, ContractLanguage, ContractSignature, ContractSummary, PdfVersion, PdfVersionType,
    Signatures, SignedAt, SignedContract, Signer,
};
use time::OffsetDateTime;

/// A 1×1 transparent PNG standing in for a drawn signature.
const SIGNATURE_IMAGE: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// The contract of a standard escrow.
#[derive(Debug, Clone)]
pub struct ContractRecord {
    pub id: String,
    pub terms: String,
    pub seller_signed_at: Option<OffsetDateTime>,
    pub buyer_signed_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl ContractRecord {
    /// Both parties signed.
    pub fn is_fully_signed(&self) -> bool {
        self.seller_signed_at.is_some() && self.buyer_signed_at.is_some()
    }

    /// When the second signature came.
    pub fn signed_at(&self) -> Option<OffsetDateTime> {
        Some(self.seller_signed_at?.max(self.buyer_signed_at?))
    }

    /// `escrow.signatures`.
    pub fn signatures(&self) -> Signatures {
        Signatures {
            seller_signed: self.seller_signed_at.is_some(),
            seller_signed_at: self.seller_signed_at,
            buyer_signed: self.buyer_signed_at.is_some(),
            buyer_signed_at: self.buyer_signed_at,
            is_fully_signed: self.is_fully_signed(),
            signed_at: self.signed_at(),
        }
    }

    /// The create response's `contract`.
    pub fn summary(&self) -> ContractSummary {
        ContractSummary {
            id: self.id.clone(),
            pdf_url: None,
            seller_signed: self.seller_signed_at.is_some(),
            buyer_signed: self.buyer_signed_at.is_some(),
            is_fully_signed: self.is_fully_signed(),
        }
    }

    /// `GET /escrows/:id/contract`; `base_url` builds the PDF's URL, a placeholder the sandbox
    /// serves (`control::contract_pdf`).
    pub fn to_wire(&self, escrow_id: &str, base_url: &str) -> Contract {
        let sig = |at: Option<OffsetDateTime>| {
            at.map(|signed_at| ContractSignature {
                signed_at,
                signature_image: Some(SIGNATURE_IMAGE.to_owned()),
            })
        };
        let version = match (
            self.seller_signed_at.is_some(),
            self.buyer_signed_at.is_some(),
        ) {
            (true, true) => PdfVersionType::FullySigned,
            (true, false) => PdfVersionType::SellerSigned,
            (false, true) => PdfVersionType::BuyerSigned,
            (false, false) => PdfVersionType::Unsigned,
        };
        Contract {
            id: self.id.clone(),
            escrow: escrow_id.to_owned(),
            terms: self.terms.clone(),
            language: Some(ContractLanguage::En),
            pdf_url: None,
            seller_signature: sig(self.seller_signed_at),
            buyer_signature: sig(self.buyer_signed_at),
            is_fully_signed: self.is_fully_signed(),
            pdf_versions: vec![PdfVersion {
                version_type: version,
                url: format!("{base_url}/sandbox/contracts/{}.pdf", self.id),
                mime_type: "application/pdf".into(),
                created_at: self.updated_at,
            }],
            created_at: Some(self.created_at),
            updated_at: Some(self.updated_at),
        }
    }

    /// `data.contract` of `contract.signed`.
    pub fn signed_event(&self, escrow_id: &str, by: Signer) -> SignedContract {
        SignedContract {
            id: self.id.clone(),
            escrow_id: escrow_id.to_owned(),
            signed_by: by,
            seller_signature: self
                .seller_signed_at
                .map(|signed_at| SignedAt { signed_at }),
            buyer_signature: self.buyer_signed_at.map(|signed_at| SignedAt { signed_at }),
            is_fully_signed: self.is_fully_signed(),
            signed_at: self.signed_at(),
        }
    }
}
