//! Requests and responses of the escrow endpoints (`docs/dhmad-api.md` §3.3–§3.11).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::escrow::{Escrow, FulfillmentPolicy};
use crate::enums::{Currency, EscrowMode, EscrowStatus, Role};

/// Body of `POST /escrows`.
///
/// ```
/// use dhmad::{CreateEscrow, EscrowMode};
/// let req = CreateEscrow::new("AI credits", rust_decimal::Decimal::new(1500, 2), "b@x.tn")
///     .mode(EscrowMode::Instant);
/// let json = serde_json::to_string(&req).unwrap();
/// assert_eq!(json, r#"{"title":"AI credits","amount":15,"buyerEmail":"b@x.tn","mode":"instant"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateEscrow {
    /// 1–200 chars.
    pub title: String,
    /// Face amount.
    #[serde(with = "crate::money::request")]
    pub amount: Decimal,
    /// Defaults to TND.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// The buyer (invited when unknown).
    pub buyer_email: String,
    /// A third-party seller; omit to sell as your associated user (required for instant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_email: Option<String>,
    /// Defaults to standard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<EscrowMode>,
    /// Required for standard and quick; ≥ 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_delivery_days: Option<u32>,
    /// Required for standard; forbidden otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_terms: Option<String>,
    /// Seller auto-signs with the portal signature (standard, self-seller only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_sign: Option<bool>,
    /// 0–25, third-party sellers only.
    #[serde(
        default,
        with = "crate::money::request::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub developer_fee_percentage: Option<Decimal>,
    /// Proof gate (quick only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfillment_policy: Option<FulfillmentPolicy>,
}

impl CreateEscrow {
    /// A request with the three required fields; add the rest with the builder methods.
    pub fn new(title: impl Into<String>, amount: Decimal, buyer_email: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            amount,
            currency: None,
            buyer_email: buyer_email.into(),
            seller_email: None,
            mode: None,
            estimated_delivery_days: None,
            contract_terms: None,
            auto_sign: None,
            developer_fee_percentage: None,
            fulfillment_policy: None,
        }
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: EscrowMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Sets the face currency.
    pub fn currency(mut self, currency: Currency) -> Self {
        self.currency = Some(currency);
        self
    }

    /// Sets a third-party seller.
    pub fn seller_email(mut self, email: impl Into<String>) -> Self {
        self.seller_email = Some(email.into());
        self
    }

    /// Sets the estimated delivery days.
    pub fn estimated_delivery_days(mut self, days: u32) -> Self {
        self.estimated_delivery_days = Some(days);
        self
    }

    /// Sets the contract terms (standard mode).
    pub fn contract_terms(mut self, terms: impl Into<String>) -> Self {
        self.contract_terms = Some(terms.into());
        self
    }

    /// Asks for the seller's automatic signature.
    pub fn auto_sign(mut self, auto_sign: bool) -> Self {
        self.auto_sign = Some(auto_sign);
        self
    }

    /// Sets the app fee percentage.
    pub fn developer_fee_percentage(mut self, pct: Decimal) -> Self {
        self.developer_fee_percentage = Some(pct);
        self
    }

    /// Sets the proof gate.
    pub fn fulfillment_policy(mut self, policy: FulfillmentPolicy) -> Self {
        self.fulfillment_policy = Some(policy);
        self
    }
}

/// The small contract object of the create response (standard mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractSummary {
    /// Contract id.
    pub id: String,
    /// PDF, may be null.
    #[serde(default)]
    pub pdf_url: Option<String>,
    /// True at creation when `autoSign` succeeded.
    pub seller_signed: bool,
    /// The buyer signed.
    pub buyer_signed: bool,
    /// Both signed.
    pub is_fully_signed: bool,
}

/// Response of `POST /escrows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedEscrow {
    /// Human message.
    #[serde(default)]
    pub message: Option<String>,
    /// The new escrow (status `pending`).
    pub escrow: Escrow,
    /// Standard mode only.
    #[serde(default)]
    pub contract: Option<ContractSummary>,
    /// Dashboard link (sent by some revisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Equals the escrow id (sent by some revisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
}

/// `{escrow}` wrapper of `GET /escrows/:id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscrowEnvelope {
    /// The escrow.
    pub escrow: Escrow,
}

/// Response of update, deliver, reject-delivery and cancel: `{message, escrow}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscrowActionResult {
    /// Human message.
    #[serde(default)]
    pub message: Option<String>,
    /// The escrow after the action.
    pub escrow: Escrow,
}

/// Body of `PUT /escrows/:id` (at least one field).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateEscrow {
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New amount (> 0); the fee is recomputed.
    #[serde(
        default,
        with = "crate::money::request::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub amount: Option<Decimal>,
    /// Description (≤ 2000 chars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// ≥ 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_delivery_days: Option<u32>,
}

/// Body of `POST /escrows/:id/reject-delivery`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RejectDelivery {
    /// Optional reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Query of `GET /escrows`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ListEscrows {
    /// Filter by status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<EscrowStatus>,
    /// Filter by the associated user's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Page, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// Page size, ≤ 100 (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Pagination block of `GET /escrows`. The contract gives no types: each is read as a whole
/// number in any JSON form (`2`, `2.0`, `"2"`: a server echoing its query string sends text),
/// 0 when unreadable, so that the list, which finds escrows whose creation answer was lost,
/// stays readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pagination {
    /// Page number.
    #[serde(default, deserialize_with = "crate::nullable::count_or_zero")]
    pub page: u32,
    /// Page size.
    #[serde(default, deserialize_with = "crate::nullable::count_or_zero")]
    pub limit: u32,
    /// Matching escrows.
    #[serde(default, deserialize_with = "crate::nullable::whole_or_zero")]
    pub total: u64,
    /// Number of pages.
    #[serde(default, deserialize_with = "crate::nullable::count_or_zero")]
    pub pages: u32,
}

/// Response of `GET /escrows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscrowList {
    /// Newest first.
    pub escrows: Vec<Escrow>,
    /// Where this page stands.
    pub pagination: Pagination,
}
