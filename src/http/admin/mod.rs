//! The back office's dashboard and order list (filters, search, keyset pages, CSV export), and
//! the actions on one order from the list: ship, retry, reconcile. Who may use them is
//! `admin_auth::Admin`; every action is recorded in the audit trail and, done, answers with a
//! flash message on the page it came from (`?notice=<code>` plus counts, mapped to fixed texts in
//! `flash.rs`: nothing a URL carries is ever shown as text); refused, with the order's page and
//! the reason (`admin_order::refused`).

mod actions;
mod csv;
mod flash;
mod list;

pub use actions::{reconcile, reconcile_order, retry, ship};
pub use csv::csv;
pub(super) use flash::{answer, Flash, FlashQuery, Notice};
pub(super) use list::{cursor_time_ok, shown};
pub use list::{index, orders};
