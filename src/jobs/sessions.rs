//! Marks checkout sessions past their `expiresAt` as expired locally (DHMAD sends no event for
//! it), so a repeated checkout never hands out a dead link.

use crate::state::AppState;

pub async fn run_once(state: &AppState) -> anyhow::Result<u64> {
    let n = crate::db::sessions::expire_due(&state.pool).await?;
    if n > 0 {
        tracing::info!(expired = n, "checkout sessions expired");
    }
    Ok(n)
}
