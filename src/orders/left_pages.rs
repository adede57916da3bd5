//! DHMAD's pages that a user left without coming back (the tab closed, the return lost) while
//! the step's event was lost too. For a cancellation step nothing else tells the shop: no
//! escrow read carries a request or its answer, and DHMAD does not resend a lost event. Left
//! alone, a buyer's request went unseen (the merchant shipped over it), or a refusal left the
//! order held as "asked to cancel" until someone clicked again. Such a page is read from DHMAD
//! by the session sweeper once it has ended. (A click on the step meanwhile asks about the
//! stored page first, `actions::step_page`.)

use dhmad::SessionStatus;

use super::{sync, OrderError, OrderResult};
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

/// Asks DHMAD how a page the shop holds as pending ended, and learns what it did, as the
/// callback would have. `false` when nothing was learned: looked at too recently by anyone,
/// DHMAD did not answer, or the page was not completed (its status is recorded).
pub async fn ask(state: &AppState, page: &Session) -> OrderResult<bool> {
    if !sync::may_look_at_page(state, &page.session_id).await? {
        return Ok(false);
    }
    let Some(read) = sync::read_page(state, page.order_id, &page.session_id).await? else {
        return Ok(false);
    };
    if read.status != SessionStatus::Completed {
        return Ok(false);
    }
    let order = db::orders::get(&state.pool, page.order_id)
        .await?
        .ok_or(OrderError::NotFound)?;
    let source = "a page left without a return, read from DHMAD";
    sync::learn_from_page(state, &order, page, Some(read.completed_at), source).await?;
    Ok(true)
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
