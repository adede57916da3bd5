//! The domain: what an order is, how DHMAD's news changes it, and what we do in response. It
//! knows no HTTP: operations return [`OrderError`], which the HTTP edge maps to a status.

pub mod actions;
pub mod call_log;
pub mod checkout;
mod error;
pub mod fulfilment;
pub mod lost_escrow;
mod news;
pub mod notify;
pub mod payment_review;
pub mod queue;
pub mod reprocess;
pub mod sessions;
pub mod snapshot;
pub mod state_machine;
pub mod sync;
pub mod webhook;

pub use checkout::CheckoutStarted;
pub use error::{OrderError, OrderResult, SAVED};
pub use snapshot::{apply_escrow_snapshot, Applied};
pub use state_machine::{Action, Cancellation, Mode, Order, OrderStatus};

/// How logs name an order: its short reference, the first 8 hex digits of its id (as escrow
/// titles carry it; the back office's search finds an order by it). The full id is the order's
/// link, its only key, and logs are read by more people and services than the back office.
pub fn log_ref(id: uuid::Uuid) -> String {
    checkout::short_ref(id)
}

/// The same for a DHMAD session id, which opens its hosted page and, through the callback,
/// leads to the order: its first 8 characters.
pub fn log_ref_of(session_id: &str) -> &str {
    session_id.get(..8).unwrap_or(session_id)
}
