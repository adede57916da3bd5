//! Forgets back-office rows that no longer decide anything: failed logins a day old (the
//! throttle looks back 15 minutes) and sessions a day past their end. Without it, wrong tokens
//! sent from many addresses would grow `admin_login_failures` for good.

use time::{Duration, OffsetDateTime};

use crate::{db, state::AppState};

/// How long what decides nothing is kept (for a look after an incident).
const KEEP: Duration = Duration::days(1);
/// Rows of each kind per pass: a flood is worked off over several passes, in short statements.
const BATCH: i64 = 5_000;

/// One pass; `true` when a batch was full (more may be waiting).
pub async fn run_once(state: &AppState) -> anyhow::Result<bool> {
    let gone = db::admin::prune(&state.pool, OffsetDateTime::now_utc() - KEEP, BATCH).await?;
    if gone > 0 {
        tracing::info!(
            rows = gone,
            "old failed logins and ended sessions forgotten"
        );
    }
    Ok(gone >= BATCH.unsigned_abs())
}
