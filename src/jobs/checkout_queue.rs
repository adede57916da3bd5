//! The checkout queue's worker (`orders::queue`): serves waiting checkouts as DHMAD's call
//! budget frees up. Every instance runs one; the queue's row locks keep them from serving the
//! same order.

use std::time::Duration;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::orders::queue::{self, Turn};
use crate::state::AppState;

/// How often an idle worker looks for checkouts queued by other instances (its own wake it).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Serves the line until `token` is cancelled; each checkout is served on a task of `tasks`, so
/// that shutdown waits for the DHMAD calls in flight.
pub async fn run(
    state: AppState,
    token: CancellationToken,
    mut budget_ready: bool,
    tasks: TaskTracker,
) {
    while !token.is_cancelled() {
        if !budget_ready {
            budget_ready = match crate::budget::prepare(&state).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "could not size DHMAD's call budget");
                    false
                }
            };
        }
        let pause = match queue::serve_next(&state, &tasks).await {
            Ok(Turn::Serving) => continue,
            Ok(Turn::Idle) => IDLE_POLL,
            Ok(Turn::Wait(until_free)) => until_free.min(IDLE_POLL),
            Err(e) => {
                tracing::warn!(error = %e, cause = e.cause(), "checkout queue turn failed");
                IDLE_POLL
            }
        };
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
            _ = state.checkout_queue.notified() => {}
        }
    }
    tracing::debug!("checkout queue worker stopped");
}
