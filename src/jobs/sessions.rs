//! Marks checkout sessions past their `expiresAt` as expired locally (DHMAD sends no event for
//! it). Only once past it by DHMAD's clock too (`CLOCK_LEEWAY`): until then the page may be open
//! there, a guest paying on it, which the merchant's cancel asks about. (A repeated checkout
//! reuses only a page with minutes left, whatever its mark.) A cancellation step's page left
//! without a return is first asked about (`orders::left_pages`): only DHMAD knows how it ended.

use crate::orders::left_pages::{self, ASK_AGAIN_AFTER, ASK_FOR, CANCELLATION_ACTIONS};
use crate::orders::sessions::CLOCK_LEEWAY;
use crate::orders::OrderError;
use crate::{db, jobs::reconciler, state::AppState};

/// Left pages asked about per pass.
const BATCH: i64 = 20;

pub async fn run_once(state: &AppState) -> anyhow::Result<u64> {
    ask_about_left_pages(state).await?;
    let n =
        db::sessions::expire_due(&state.pool, CLOCK_LEEWAY, &CANCELLATION_ACTIONS, ASK_FOR).await?;
    if n > 0 {
        tracing::info!(expired = n, "checkout sessions expired");
    }
    Ok(n)
}

/// Background work: DHMAD's budget goes to buyers first, so the pass stops when it runs low.
async fn ask_about_left_pages(state: &AppState) -> anyhow::Result<()> {
    let actions = &CANCELLATION_ACTIONS;
    let pages =
        db::sessions::left_pages_to_ask(&state.pool, actions, CLOCK_LEEWAY, ASK_AGAIN_AFTER, BATCH)
            .await?;
    let mut learned = 0;
    for page in &pages {
        if reconciler::must_leave_budget_to_checkouts(state).await || state.stopping() {
            break;
        }
        match left_pages::ask(state, page).await {
            Ok(true) => learned += 1,
            Ok(false) => {}
            // The budget holds DHMAD's calls back: the other pages would be held back too.
            Err(OrderError::Busy { .. }) => break,
            Err(e) => {
                tracing::warn!(error = %e, cause = e.cause(), session = ?page, "could not learn how a left page ended");
            }
        }
    }
    if learned > 0 {
        tracing::info!(
            learned,
            "cancellation steps learned from pages left without a return"
        );
    }
    Ok(())
}
