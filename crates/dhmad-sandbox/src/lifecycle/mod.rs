//! The state machine (`docs/dhmad-api.md` §2.3, §2.4, §4.1, §6.8), in one place, plus the
//! identity verifications of §3.14. Every operation takes the locked [`Store`] and a [`Ctx`],
//! checks its preconditions, changes records and emits the documented events in the
//! documented order. An escrow's status changes only in
//! [`transition()`]; a session's only in [`sessions::set_status`].

pub mod action_rules;
pub mod create;
pub mod deadlines;
pub mod escrow_ops;
pub mod events;
pub mod field_rules;
pub mod identity;
pub mod money;
pub mod perform;
pub mod proof_ops;
pub mod redirect;
pub mod sessions;
mod transition;
pub mod triggers;

use dhmad::Event;
use time::OffsetDateTime;

use crate::error::Refusal;
use crate::state::{EscrowRecord, Store};

pub use transition::{transition, Paired};

/// After delivery, buyer silence completes the escrow at `deliveredAt` + 7 days.
pub const COMPLETION_WINDOW: time::Duration = time::Duration::days(7);
/// A pending escrow expires (and is cancelled) 31 days after creation.
pub const PENDING_LIFETIME: time::Duration = time::Duration::days(31);

/// `true` for a 24-char lowercase hex id.
pub fn is_object_id(id: &str) -> bool {
    id.len() == 24
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The escrow, or 400 `Invalid escrow ID` / 404 `Escrow not found`.
pub fn escrow<'a>(store: &'a Store, id: &str) -> Result<&'a EscrowRecord, Refusal> {
    if !is_object_id(id) {
        return Err(Refusal::InvalidId);
    }
    store
        .escrows
        .get(id)
        .ok_or(Refusal::NotFound("Escrow not found"))
}

/// Mutable [`escrow`].
pub fn escrow_mut<'a>(store: &'a mut Store, id: &str) -> Result<&'a mut EscrowRecord, Refusal> {
    if !is_object_id(id) {
        return Err(Refusal::InvalidId);
    }
    store
        .escrows
        .get_mut(id)
        .ok_or(Refusal::NotFound("Escrow not found"))
}

/// Emits an optional event that happened `at` (builders return `None` when the escrow lacks
/// the sub-object).
pub fn emit_opt(store: &mut Store, at: OffsetDateTime, event: Option<Event>) {
    if let Some(e) = event {
        store.emit(at, e);
    }
}
