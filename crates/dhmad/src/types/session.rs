use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::enums::{CheckoutAction, SessionStatus};
use crate::iso;

/// Body of `POST /escrows/:id/sessions`.
///
/// ```
/// use dhmad::{CheckoutAction, CreateSession};
/// let req = CreateSession::new(CheckoutAction::AcceptPay, "b@x.tn", "https://shop.tn/checkout/callback")
///     .metadata("order_id", "42");
/// assert_eq!(req.metadata.unwrap()["order_id"], "42");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSession {
    /// What the user will do.
    pub action: CheckoutAction,
    /// The only DHMAD user who can finish the session.
    pub target_user_email: String,
    /// Allow-listed; HTTPS except `http://localhost`.
    pub redirect_url: String,
    /// String values, ≤ 500 chars each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl CreateSession {
    /// A session request without metadata.
    pub fn new(
        action: CheckoutAction,
        target_user_email: impl Into<String>,
        redirect_url: impl Into<String>,
    ) -> Self {
        Self {
            action,
            target_user_email: target_user_email.into(),
            redirect_url: redirect_url.into(),
            metadata: None,
        }
    }

    /// Adds one metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
        self
    }
}

/// Response of `POST /escrows/:id/sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSession {
    /// UUID of the session.
    pub session_id: String,
    /// The hosted page to send the user to.
    pub url: String,
    /// Creation + 30 minutes.
    #[serde(with = "iso")]
    pub expires_at: OffsetDateTime,
}

/// A checkout session (`GET /sessions/:id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutSession {
    /// UUID.
    pub session_id: String,
    /// The escrow it acts on.
    pub escrow_id: String,
    /// The action.
    pub action: CheckoutAction,
    /// Who may finish it.
    pub target_user_email: String,
    /// Where it stands.
    pub status: SessionStatus,
    /// Your metadata.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub metadata: BTreeMap<String, String>,
    /// Expiry.
    #[serde(with = "iso")]
    pub expires_at: OffsetDateTime,
    /// Finished at.
    #[serde(default, with = "iso::option")]
    pub completed_at: Option<OffsetDateTime>,
    /// Created at.
    #[serde(with = "iso")]
    pub created_at: OffsetDateTime,
}

/// `{session}` wrapper of `GET /sessions/:id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEnvelope {
    /// The session.
    pub session: CheckoutSession,
}
