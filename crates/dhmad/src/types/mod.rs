//! Wire types of the DHMAD API (`docs/dhmad-api.md` §2–§3).
//!
//! Field names follow DHMAD's camelCase. Money is [`rust_decimal::Decimal`], written as a JSON
//! number as DHMAD does. Optional fields accept both `null` and absence, because DHMAD's
//! endpoints return different subsets of the same object.

mod account;
mod contract;
mod escrow;
mod escrow_calls;
mod identity;
mod proof;
mod session;

pub use account::*;
pub use contract::*;
pub use escrow::*;
pub use escrow_calls::*;
pub use identity::*;
pub use proof::*;
pub use session::*;
