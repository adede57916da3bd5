//! Abandoned orders: unpaid, with an escrow, and no payment page opened (or still open) for
//! `ABANDONED_ORDER_GRACE_SECS`. They are cancelled at DHMAD, so the escrow does not linger and
//! nothing keeps polling the order for a month. A guest proof under review is never abandoned.

use crate::orders::{actions, OrderError};
use crate::state::AppState;
use crate::{db, jobs::reconciler};

const BATCH: i64 = 20;

pub async fn run_once(state: &AppState) -> anyhow::Result<usize> {
    // Never shorter than DHMAD's clock may lag: a page DHMAD still shows open is no walk-away.
    let grace = time::Duration::try_from(state.config.jobs.abandoned_after)?
        .max(crate::orders::sessions::CLOCK_LEEWAY);
    let mut cancelled = 0;
    for order_id in db::orders::list_abandoned(&state.pool, grace, BATCH, None).await? {
        // Cancelling calls DHMAD: checkouts come first. Nothing new once shutdown started.
        if reconciler::must_leave_budget_to_checkouts(state).await || state.stopping() {
            break;
        }
        match actions::cancel_abandoned(state, order_id, grace).await {
            Ok(None) => {
                tracing::info!(order.ref = %crate::orders::log_ref(order_id), "not abandoned after all: a payment is under review at DHMAD, or the buyer is back");
            }
            Ok(Some(_)) => {
                cancelled += 1;
                let hours = grace.whole_hours();
                let detail = format!("Abandoned: no payment page for {hours} h");
                // The cancel is done whatever: a line that cannot be written now is logged.
                if let Err(e) =
                    db::events::add(&state.pool, order_id, "abandoned", &detail, None).await
                {
                    tracing::warn!(order.ref = %crate::orders::log_ref(order_id), error = %e, "could not write the abandoned line");
                }
            }
            // DHMAD's budget is the buyers' for now: the next run goes on.
            Err(OrderError::Busy { .. }) => break,
            // Not picked again at once: a failing order must not hold up the others.
            Err(e) => {
                reconciler::set_aside(state, order_id, &e).await;
            }
        }
    }
    if cancelled > 0 {
        tracing::info!(cancelled, "abandoned orders cancelled");
    }
    Ok(cancelled)
}
