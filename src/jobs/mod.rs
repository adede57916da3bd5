//! Background jobs, all stopped by one `CancellationToken` (`Shared::shutdown`), each after the
//! unit of work in hand: the outbox worker, the reconciler and the session-expiry sweeper (with
//! the back office's housekeeping), which spend DHMAD's call budget only as background work
//! (what buyers leave), and the checkout queue's worker, which serves buyers. Each is also
//! callable once (`run_once`) for the CLI, the back office and tests.

pub mod abandoned;
pub mod checkout_queue;
pub mod housekeeping;
pub mod outbox;
pub mod reconciler;
pub mod sessions;

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::state::AppState;

/// `budget_ready`: DHMAD's call budget was sized at start (else the queue worker does it).
pub fn spawn_all(state: AppState, token: CancellationToken, budget_ready: bool) -> TaskTracker {
    let tracker = state.work.clone();
    tracker.spawn(checkout_queue::run(
        state.clone(),
        token.clone(),
        budget_ready,
        tracker.clone(),
    ));
    let state = state.for_background();
    let j = state.config.jobs;
    let s = state.clone();
    tracker.spawn(every(token.clone(), j.outbox, "outbox", move || {
        let s = s.clone();
        async move { outbox::drain(&s).await.map(|n| n > 0) }
    }));
    let s = state.clone();
    // The turn this instance keeps between passes while a backlog lasts (`run_turn`).
    let held = Arc::new(Mutex::new(None));
    tracker.spawn(every(token.clone(), j.reconcile, "reconciler", move || {
        let (s, held) = (s.clone(), Arc::clone(&held));
        async move {
            let mut mine = held.lock().map(|mut h| h.take()).unwrap_or_default();
            let report = reconciler::run_turn(&s, &mut mine).await;
            let more = mine.is_some();
            if let Ok(mut h) = held.lock() {
                *h = mine;
            }
            report.map(|_| more)
        }
    }));
    let s = state;
    tracker.spawn(every(
        token,
        j.session_sweep,
        "session sweeper",
        move || {
            let s = s.clone();
            async move {
                // Neither a session nor forgetting old rows holds up the abandoned orders'
                // cancels: a lock timeout on one due session failed the whole pass.
                if let Err(e) = sessions::run_once(&s).await {
                    tracing::warn!(error = %e, "session sweep failed");
                }
                let more = housekeeping::run_once(&s).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "housekeeping pass failed");
                    false
                });
                abandoned::run_once(&s).await.map(|n| n > 0 || more)
            }
        },
    ));
    tracker
}

/// Runs `tick` every `interval` until cancelled. A tick that reports more work pending runs
/// again at once; a failing tick is logged and retried next interval. A tick that has started
/// is never dropped: cancelling it mid-call could leave a write DHMAD or the SMTP server had
/// already taken, then done again once its lease ran out (a second e-mail). Ticks stop taking
/// work once `AppState::stopping` says so; the caller bounds how long it waits for them.
async fn every<F, Fut>(
    token: CancellationToken,
    interval: Duration,
    name: &'static str,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    while !token.is_cancelled() {
        let more = match tick().await {
            Ok(more) => more,
            Err(e) => {
                tracing::warn!(job = name, error = %e, "job run failed");
                false
            }
        };
        if more {
            continue;
        }
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
    tracing::debug!(job = name, "job stopped");
}
