use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::enums::Environment;
use crate::iso;

/// The API key in `GET /me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyInfo {
    /// Key id.
    pub id: String,
    /// Key name.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub name: String,
    /// Visible prefix, e.g. `sk_sandbox_ab12`.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub key_prefix: String,
    /// live or sandbox.
    pub environment: Environment,
    /// Active.
    pub is_active: bool,
    /// Last use.
    #[serde(default, with = "iso::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Expiry.
    #[serde(default, with = "iso::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Requests per minute.
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// App metadata (`appName`, `website`, …).
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// Created at.
    #[serde(default, with = "iso::option")]
    pub created_at: Option<OffsetDateTime>,
}

/// The developer account in `GET /me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Developer {
    /// Developer id.
    pub id: String,
    /// E-mail.
    pub email: String,
    /// Company.
    #[serde(default)]
    pub company_name: Option<String>,
}

/// Response of `GET /me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The key used.
    pub api_key: ApiKeyInfo,
    /// Its developer.
    pub developer: Developer,
}

/// Amounts of `GET /balance`, in TND.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalanceAmounts {
    /// Spendable.
    #[serde(with = "crate::money")]
    pub available: Decimal,
    /// Incoming.
    #[serde(with = "crate::money")]
    pub pending: Decimal,
    /// Held in escrows.
    #[serde(with = "crate::money")]
    pub escrow: Decimal,
}

/// Response of `GET /balance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Balance {
    /// The associated user's balance.
    pub balance: BalanceAmounts,
}
