//! The back office's consoles: the webhook inbox, the outbox, the audit trail, and the few
//! writes their actions make, a file each. Lists with optional filters are built with
//! `QueryBuilder` and planned with their values (`persistent(false)`), like the order list
//! (`admin_views`).

mod audit;
mod inbox;
mod jobs;
mod reconciliation;

pub use audit::*;
pub use inbox::*;
pub use jobs::*;
pub use reconciliation::*;
