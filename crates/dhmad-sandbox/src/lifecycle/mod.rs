//! The state machine (`dhmad-api.md` §2.3, §2.4, §4.1, §6.8), in one place. Every operation
//! takes the locked [`Store`] and a [`Ctx`], checks its preconditions, changes records and
//! emits the documented events in the documented order.

pub mod create;
pub mod deadlines;
pub mod escrow_ops;
pub mod events;
pub mod perform;
pub mod proof_ops;
pub mod redirect;
pub mod session_rules;
pub mod triggers;

use dhmad::{EscrowStatus, Event};

use crate::error::Refusal;
use crate::state::{Ctx, EscrowRecord, Store};

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

/// Moves an escrow to `to`, stamps the matching date and `updatedAt`, and emits
/// `escrow.status.updated`. Callers have checked that the move is allowed.
pub fn transition(store: &mut Store, id: &str, to: EscrowStatus, ctx: &Ctx) {
    let event = {
        let Some(rec) = store.escrows.get_mut(id) else {
            return;
        };
        let old = std::mem::replace(&mut rec.status, to.clone());
        let now = ctx.now;
        match to {
            EscrowStatus::Paid => {
                rec.paid_at.get_or_insert(now);
            }
            EscrowStatus::Delivered => {
                rec.delivered_at = Some(now);
                rec.completion_deadline = Some(now + COMPLETION_WINDOW);
            }
            EscrowStatus::Completed => rec.completed_at = Some(now),
            EscrowStatus::Cancelled => rec.cancelled_at = Some(now),
            _ => {}
        }
        rec.updated_at = now;
        events::status_updated(rec, old, ctx)
    };
    store.emit(event);
}

/// Emits an optional event.
pub fn emit_opt(store: &mut Store, event: Option<Event>) {
    if let Some(e) = event {
        store.emit(e);
    }
}
