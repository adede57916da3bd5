//! The one-line notice the dashboard shows after a button worked. The form answers 303 to
//! `/sandbox?done={key}&escrow={id}` (a reload then does not post again), and the dashboard
//! turns the key into a fixed sentence: only known keys are shown, so a crafted link cannot
//! put words of its own on the page.

use axum::response::Redirect;
use serde::Deserialize;

use crate::lifecycle;
use crate::state::AppState;

/// What a dashboard button did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Delivered,
    DeliveryRejected,
    PaymentApproved,
    PaymentRejected,
    ProofAccepted,
    ProofRejected,
    Released,
    Refunded,
    EventResent,
    ClockAdvanced,
}

/// Every [`Done`], for reading a key back.
const ALL: [Done; 10] = [
    Done::Delivered,
    Done::DeliveryRejected,
    Done::PaymentApproved,
    Done::PaymentRejected,
    Done::ProofAccepted,
    Done::ProofRejected,
    Done::Released,
    Done::Refunded,
    Done::EventResent,
    Done::ClockAdvanced,
];

impl Done {
    fn key(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::DeliveryRejected => "delivery-rejected",
            Self::PaymentApproved => "payment-approved",
            Self::PaymentRejected => "payment-rejected",
            Self::ProofAccepted => "proof-accepted",
            Self::ProofRejected => "proof-rejected",
            Self::Released => "released",
            Self::Refunded => "refunded",
            Self::EventResent => "event-resent",
            Self::ClockAdvanced => "clock-advanced",
        }
    }

    /// The button's words, to name a refused action.
    pub fn button(self) -> &'static str {
        match self {
            Self::Delivered => "Deliver",
            Self::DeliveryRejected => "Reject delivery",
            Self::PaymentApproved => "Approve payment",
            Self::PaymentRejected => "Reject payment",
            Self::ProofAccepted => "Accept proof",
            Self::ProofRejected => "Reject proof",
            Self::Released => "Release to the seller",
            Self::Refunded => "Refund the buyer",
            Self::EventResent => "Resend last event",
            Self::ClockAdvanced => "Move the clock",
        }
    }

    fn sentence(self) -> &'static str {
        match self {
            Self::Delivered => "The seller delivered",
            Self::DeliveryRejected => "The buyer rejected the delivery",
            Self::PaymentApproved => "DHMAD approved the guest payment",
            Self::PaymentRejected => "DHMAD rejected the guest payment proof",
            Self::ProofAccepted => "DHMAD accepted the purchase proof",
            Self::ProofRejected => "DHMAD rejected the purchase proof",
            Self::Released => "DHMAD resolved the dispute: funds released to the seller",
            Self::Refunded => "DHMAD resolved the dispute: buyer refunded",
            Self::EventResent => "The last event was queued again (same id)",
            Self::ClockAdvanced => "The clock moved forward",
        }
    }

    /// Back to the dashboard, which will say what happened to escrow `id`.
    pub fn redirect(self, id: &str) -> Redirect {
        Redirect::to(&format!("/sandbox?done={}&escrow={id}", self.key()))
    }

    /// Back to the dashboard after the clock moved, saying how many deadlines fired.
    pub fn redirect_clock(fired: usize) -> Redirect {
        Redirect::to(&format!(
            "/sandbox?done={}&fired={fired}",
            Self::ClockAdvanced.key()
        ))
    }
}

/// The dashboard's query after a button.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FlashQuery {
    done: Option<String>,
    escrow: Option<String>,
    fired: Option<String>,
}

/// The notice for `q`, if it names a known action; the escrow's status is read now.
pub fn notice(state: &AppState, q: &FlashQuery) -> Option<String> {
    let done = ALL
        .into_iter()
        .find(|d| Some(d.key()) == q.done.as_deref())?;
    if done == Done::ClockAdvanced {
        let fired: usize = q.fired.as_deref()?.parse().ok()?;
        return Some(format!(
            "{}: {fired} due deadline(s) fired.",
            done.sentence()
        ));
    }
    let id = q.escrow.as_deref()?;
    let store = state.lock_store();
    let rec = lifecycle::escrow(&store, id).ok()?;
    Some(format!(
        "{} (escrow {id}, now {}).",
        done.sentence(),
        rec.status
    ))
}
