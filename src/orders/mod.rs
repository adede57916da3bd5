//! The domain: what an order is, how DHMAD's news changes it, and what we do in response.

pub mod checkout;
pub mod fulfilment;
pub mod sessions;
pub mod snapshot;
mod status;
pub mod sync;
pub mod webhook;

pub use checkout::{validate_email, CheckoutStarted};
pub use snapshot::{apply_escrow_snapshot, Applied};
pub use status::OrderStatus;
