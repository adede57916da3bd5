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
