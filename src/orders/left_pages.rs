//! DHMAD's pages that a user left without coming back (the tab closed, the return lost) while
//! the step's event was lost too. For a cancellation step nothing else tells the shop: no
//! escrow read carries a request or its answer, and DHMAD does not resend a lost event. Left
//! alone, a buyer's request went unseen (the merchant shipped over it), or a refusal left the
//! order held as "asked to cancel" until someone clicked again. Such a page is read from DHMAD
//! by the session sweeper once it has ended. (A click on the step while the page is still
//! live asks about it first, `actions::step_page`.)

use dhmad::SessionStatus;

use super::{call_log, sync, OrderError, OrderResult};
use crate::db::{self, sessions::Session};
use crate::state::AppState;

/// The steps whose outcome only their page (or its lost event) tells, as DHMAD names them.
pub const CANCELLATION_ACTIONS: [&str; 3] = [
    "request_cancellation",
    "accept_cancellation",
    "reject_cancellation",
];

/// How long past its end a left page is asked about before it is taken as expired unasked
/// (DHMAD kept failing on it, or no longer knows it).
pub const ASK_FOR: time::Duration = time::Duration::DAY;

/// How long after a look at a left page the sweeper may look again (DHMAD failed, or its
/// clock still had the page open): a page DHMAD keeps failing on costs a call every ten
/// minutes for [`ASK_FOR`], not one a sweep.
pub const ASK_AGAIN_AFTER: time::Duration = time::Duration::minutes(10);

/// Asks DHMAD how a page the shop holds as pending ended, and learns what it did, as the
/// callback would have. `false` when nothing was learned: looked at within
/// [`ASK_AGAIN_AFTER`] by anyone, DHMAD did not answer, what the page did could not be
/// recorded (it is asked about again), or the page was not completed (its status is
/// recorded). A page DHMAD does not know (404), or of an order settled since (nothing a
/// cancellation step did matters then), is taken as expired without more looks.
pub async fn ask(state: &AppState, page: &Session) -> OrderResult<bool> {
    let id = &page.session_id;
    if !db::sessions::claim_check(&state.pool, id, ASK_AGAIN_AFTER).await? {
        return Ok(false);
    }
    let order = db::orders::get(&state.pool, page.order_id)
        .await?
        .ok_or(OrderError::NotFound)?;
    if order.status.is_settled() {
        db::sessions::expire_if_pending(&state.pool, id).await?;
        return Ok(false);
    }
    let read = match call_log::for_order(order.id, state.dhmad.get_session(id)).await {
        Ok(read) => read,
        // Not a 403: DHMAD answers every call so while the merchant's account link lapses,
        // and the request the page holds would be lost with it.
        Err(dhmad::Error::NotFound(_)) => {
            db::sessions::expire_if_pending(&state.pool, id).await?;
            return Ok(false);
        }
        Err(e) => {
            // Held back by the budget: nothing was asked, so it is asked at the next sweep,
            // and the sweep asks about no other page now (`Busy`).
            if let Some(retry_after) = super::error::busy_for(&e) {
                db::sessions::forget_check(&state.pool, id).await?;
                return Err(OrderError::Busy { retry_after });
            }
            tracing::warn!(error = %e, session = ?page, "could not read a left page from DHMAD");
            return Ok(false);
        }
    };
    if read.status != SessionStatus::Completed {
        db::sessions::set_status(&state.pool, id, read.status.as_str()).await?;
        return Ok(false);
    }
    // The page stays pending until what it did is recorded (`learn_from_page` then records it
    // completed): only a pending page is asked about again, and nothing else tells a
    // cancellation step whose event was lost.
    let source = "a page left without a return, read from DHMAD";
    sync::learn_from_page(state, &order, page, Some(read.completed_at), source).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cancellation_actions_are_the_cancellation_steps() {
        for action in CANCELLATION_ACTIONS {
            assert!(dhmad::CheckoutAction::from(action).is_known(), "{action}");
            assert!(
                super::super::news::cancellation_step(action).is_some(),
                "{action}"
            );
        }
    }
}
