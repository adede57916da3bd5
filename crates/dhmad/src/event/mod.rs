//! Webhook envelope and typed events (`docs/dhmad-api.md` §6.2–§6.4).
//!
//! [`WebhookEnvelope`] is the body exactly as sent, with `data` kept as raw JSON; [`Event`] is
//! its typed reading. An event type this crate does not know becomes [`Event::Unknown`] with the
//! raw `data`, so a new DHMAD event never fails a delivery.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use time::OffsetDateTime;

use crate::enums::EventType;
use crate::iso;
use crate::types::Escrow;

mod data;

pub use data::*;

/// The JSON body of a webhook delivery: `{id, type, timestamp, data}` in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEnvelope {
    /// Event id (UUID): the idempotency key.
    pub id: String,
    /// Event type, e.g. `escrow.status.updated`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event occurred; `None` when it is missing or does not read as a timestamp.
    /// Nothing about applying an event rests on it, so a malformed one must not make the whole
    /// delivery unreadable: refused with a 4xx, DHMAD never sends it again.
    #[serde(with = "iso::lenient_option", default)]
    pub timestamp: Option<OffsetDateTime>,
    /// Event-specific payload, as sent.
    pub data: serde_json::Value,
}

impl WebhookEnvelope {
    /// Parses a raw body. Verify its signature first (see [`crate::webhook`]).
    pub fn from_slice(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// Builds an envelope from a typed event (used by emulators and tests).
    pub fn new(id: impl Into<String>, timestamp: OffsetDateTime, event: &Event) -> Self {
        Self {
            id: id.into(),
            event_type: event.event_type().as_str().to_owned(),
            timestamp: Some(timestamp),
            data: event.data(),
        }
    }

    /// The typed event type.
    pub fn kind(&self) -> EventType {
        EventType::from(self.event_type.as_str())
    }

    /// Reads `data` according to `type`. Fails only when a known type carries a payload that
    /// does not have that type's shape; unknown types give [`Event::Unknown`].
    pub fn event(&self) -> Result<Event, serde_json::Error> {
        Event::from_parts(&self.event_type, self.data.clone())
    }

    /// Compact JSON, as DHMAD signs and sends it: the exact bytes for an envelope made with
    /// [`WebhookEnvelope::new`]. Not for one parsed from a delivery (its `timestamp` is written
    /// back with milliseconds it may not have had): verify a delivery's own bytes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serializes")
    }
}

/// A typed webhook event.
///
/// ```
/// let body = br#"{"id":"8d3c0a52-1f7e-4b8e-9d51-7c1d2e3f4a5b","type":"escrow.status.updated",
///   "timestamp":"2026-07-02T09:00:00Z","data":{"escrow":{"id":"66aa00000000000000000001",
///   "title":"Logo pack","amount":300,"escrowFee":15,"status":"paid","oldStatus":"pending",
///   "seller":null,"buyer":null,"createdAt":"2026-07-01T09:00:00Z","updatedAt":"2026-07-02T09:00:00Z"}}}"#;
/// let env = dhmad::WebhookEnvelope::from_slice(body).unwrap();
/// match env.event().unwrap() {
///     dhmad::Event::EscrowStatusUpdated(d) => assert_eq!(d.escrow.status, dhmad::EscrowStatus::Paid),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `escrow.status.updated`: any status change; `escrow.old_status` holds the previous one.
    EscrowStatusUpdated(EscrowData),
    /// `contract.signed`: one party signed (status unchanged).
    ContractSigned(ContractSignedData),
    /// `escrow.cancellation.requested`: the buyer asked to cancel (status unchanged).
    CancellationRequested(CancellationData),
    /// `escrow.cancellation.rejected`: the seller refused the request (status unchanged).
    CancellationRejected(CancellationData),
    /// `escrow.cancellation.accepted`: the seller accepted; refund and `cancelled` follow.
    CancellationAccepted(CancellationData),
    /// `escrow.updated`: a pending escrow was edited.
    EscrowUpdated(EscrowUpdatedData),
    /// `escrow.deposit_proof.rejected`: a guest payment proof was rejected.
    DepositProofRejected(DepositProofRejectedData),
    /// `escrow.delivery.rejected`: the buyer rejected a delivery (delivered → paid).
    DeliveryRejected(DeliveryRejectedData),
    /// `escrow.proof.required`: a proof escrow was funded; the seller must upload proof.
    ProofRequired(ProofData),
    /// `escrow.proof.submitted`: the seller uploaded proof.
    ProofSubmitted(ProofData),
    /// `escrow.proof.correction_requested`: the buyer asked for better proof.
    ProofCorrectionRequested(ProofData),
    /// `escrow.proof.accepted`: the buyer accepted; delivery unlocked.
    ProofAccepted(ProofData),
    /// `escrow.proof.accepted_by_timeout`: the review deadline passed; delivery unlocked.
    ProofAcceptedByTimeout(ProofData),
    /// `escrow.proof.needs_review`: escalated to DHMAD after too many corrections.
    ProofNeedsReview(ProofData),
    /// `escrow.proof.expired`: no proof in time; the escrow is cancelled and refunded.
    ProofExpired(ProofData),
    /// `identity.verification.updated`: a pre-account verification was decided.
    IdentityVerificationUpdated(IdentityVerificationUpdated),
    /// `identity.verification.linked`: the verified person registered on DHMAD.
    IdentityVerificationLinked(IdentityVerificationLinked),
    /// A type this crate does not know, with its raw `data`.
    Unknown {
        /// The `type` as sent.
        event_type: String,
        /// The `data` as sent.
        data: serde_json::Value,
    },
}

fn parse<T: DeserializeOwned>(data: serde_json::Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(data)
}

fn to_value<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("event data always serializes")
}

impl Event {
    /// Reads `data` for the given `type`.
    pub fn from_parts(
        event_type: &str,
        data: serde_json::Value,
    ) -> Result<Self, serde_json::Error> {
        use EventType as T;
        Ok(match EventType::from(event_type) {
            T::EscrowStatusUpdated => Self::EscrowStatusUpdated(parse(data)?),
            T::ContractSigned => Self::ContractSigned(parse(data)?),
            T::EscrowCancellationRequested => Self::CancellationRequested(parse(data)?),
            T::EscrowCancellationRejected => Self::CancellationRejected(parse(data)?),
            T::EscrowCancellationAccepted => Self::CancellationAccepted(parse(data)?),
            T::EscrowUpdated => Self::EscrowUpdated(parse(data)?),
            T::EscrowDepositProofRejected => Self::DepositProofRejected(parse(data)?),
            T::EscrowDeliveryRejected => Self::DeliveryRejected(parse(data)?),
            T::EscrowProofRequired => Self::ProofRequired(parse(data)?),
            T::EscrowProofSubmitted => Self::ProofSubmitted(parse(data)?),
            T::EscrowProofCorrectionRequested => Self::ProofCorrectionRequested(parse(data)?),
            T::EscrowProofAccepted => Self::ProofAccepted(parse(data)?),
            T::EscrowProofAcceptedByTimeout => Self::ProofAcceptedByTimeout(parse(data)?),
            T::EscrowProofNeedsReview => Self::ProofNeedsReview(parse(data)?),
            T::EscrowProofExpired => Self::ProofExpired(parse(data)?),
            T::IdentityVerificationUpdated => Self::IdentityVerificationUpdated(parse(data)?),
            T::IdentityVerificationLinked => Self::IdentityVerificationLinked(parse(data)?),
            T::Unknown(event_type) => Self::Unknown { event_type, data },
        })
    }

    /// The event's type.
    pub fn event_type(&self) -> EventType {
        use EventType as T;
        match self {
            Self::EscrowStatusUpdated(_) => T::EscrowStatusUpdated,
            Self::ContractSigned(_) => T::ContractSigned,
            Self::CancellationRequested(_) => T::EscrowCancellationRequested,
            Self::CancellationRejected(_) => T::EscrowCancellationRejected,
            Self::CancellationAccepted(_) => T::EscrowCancellationAccepted,
            Self::EscrowUpdated(_) => T::EscrowUpdated,
            Self::DepositProofRejected(_) => T::EscrowDepositProofRejected,
            Self::DeliveryRejected(_) => T::EscrowDeliveryRejected,
            Self::ProofRequired(_) => T::EscrowProofRequired,
            Self::ProofSubmitted(_) => T::EscrowProofSubmitted,
            Self::ProofCorrectionRequested(_) => T::EscrowProofCorrectionRequested,
            Self::ProofAccepted(_) => T::EscrowProofAccepted,
            Self::ProofAcceptedByTimeout(_) => T::EscrowProofAcceptedByTimeout,
            Self::ProofNeedsReview(_) => T::EscrowProofNeedsReview,
            Self::ProofExpired(_) => T::EscrowProofExpired,
            Self::IdentityVerificationUpdated(_) => T::IdentityVerificationUpdated,
            Self::IdentityVerificationLinked(_) => T::IdentityVerificationLinked,
            Self::Unknown { event_type, .. } => T::Unknown(event_type.clone()),
        }
    }

    /// The `data` object of this event.
    pub fn data(&self) -> serde_json::Value {
        match self {
            Self::EscrowStatusUpdated(d) => to_value(d),
            Self::ContractSigned(d) => to_value(d),
            Self::CancellationRequested(d)
            | Self::CancellationRejected(d)
            | Self::CancellationAccepted(d) => to_value(d),
            Self::EscrowUpdated(d) => to_value(d),
            Self::DepositProofRejected(d) => to_value(d),
            Self::DeliveryRejected(d) => to_value(d),
            Self::ProofRequired(d)
            | Self::ProofSubmitted(d)
            | Self::ProofCorrectionRequested(d)
            | Self::ProofAccepted(d)
            | Self::ProofAcceptedByTimeout(d)
            | Self::ProofNeedsReview(d)
            | Self::ProofExpired(d) => to_value(d),
            Self::IdentityVerificationUpdated(d) => to_value(d),
            Self::IdentityVerificationLinked(d) => to_value(d),
            Self::Unknown { data, .. } => data.clone(),
        }
    }

    /// The escrow snapshot the event carries, if any.
    pub fn escrow(&self) -> Option<&Escrow> {
        match self {
            Self::EscrowStatusUpdated(d) => Some(&d.escrow),
            Self::ContractSigned(d) => Some(&d.escrow),
            Self::CancellationRequested(d)
            | Self::CancellationRejected(d)
            | Self::CancellationAccepted(d) => Some(&d.escrow),
            Self::EscrowUpdated(d) => Some(&d.escrow),
            Self::DepositProofRejected(d) => Some(&d.escrow),
            Self::DeliveryRejected(d) => Some(&d.escrow),
            Self::ProofRequired(d)
            | Self::ProofSubmitted(d)
            | Self::ProofCorrectionRequested(d)
            | Self::ProofAccepted(d)
            | Self::ProofAcceptedByTimeout(d)
            | Self::ProofNeedsReview(d)
            | Self::ProofExpired(d) => Some(&d.escrow),
            Self::IdentityVerificationUpdated(_)
            | Self::IdentityVerificationLinked(_)
            | Self::Unknown { .. } => None,
        }
    }
}
