//! Applies events stored before their order knew its escrow, once it does
//! (`orders::reprocess::reprocess_now_held`), and forgets rows that no longer decide anything:
//! failed logins a day old (the throttle looks back 15 minutes), sessions a day past their
//! end, buyers' looks for a lost escrow a day old (`job_turns`, one per order; 10 s apart),
//! and the DHMAD call log's lines after 30
//! days (the reconciler reads an open order every few minutes: a quick order awaiting its
//! shipment for weeks wrote thousands). Without it, wrong tokens sent from many addresses
//! would grow `admin_login_failures` for good, and the call log would grow with every pass.

use time::{Duration, OffsetDateTime};

use crate::{db, state::AppState};

/// How long what decides nothing is kept (for a look after an incident).
const KEEP: Duration = Duration::days(1);
/// How long the call log keeps a line: the back office shows an order's recent calls, for a
/// look at what went wrong; the totals are in `/metrics`.
const KEEP_CALLS: Duration = Duration::days(30);
/// Rows of each kind per pass: a flood is worked off over several passes, in short statements.
const BATCH: i64 = 5_000;

/// One pass; `true` when a batch was full (more may be waiting).
pub async fn run_once(state: &AppState) -> anyhow::Result<bool> {
    let now = OffsetDateTime::now_utc();
    state.looks.forget_idle();
    let gone = db::admin::prune(&state.pool, now - KEEP, BATCH).await?;
    if gone > 0 {
        tracing::info!(
            rows = gone,
            "old failed logins and ended sessions forgotten"
        );
    }
    let calls = db::calls::prune(&state.pool, now - KEEP_CALLS, BATCH).await?;
    if calls > 0 {
        tracing::info!(
            rows = calls,
            "DHMAD call log lines over 30 days old forgotten"
        );
    }
    let applied = crate::orders::reprocess::reprocess_now_held(&state.pool).await?;
    if applied > 0 {
        tracing::info!(
            events = applied,
            "events stored before their escrow was known applied to its order"
        );
    }
    let looks = db::turns::forget(
        &state.pool,
        crate::orders::lost_escrow::LOOK_TURN,
        now - KEEP,
        BATCH,
    )
    .await?;
    Ok([gone, calls, looks]
        .iter()
        .any(|n| *n >= BATCH.unsigned_abs()))
}
