//! Marks checkout sessions past their `expiresAt` as expired locally (DHMAD sends no event for
//! it). Only once past it by DHMAD's clock too (`CLOCK_LEEWAY`): until then the page may be open
//! there, a guest paying on it, which the merchant's cancel asks about. (A repeated checkout
//! reuses only a page with minutes left, whatever its mark.)

use crate::state::AppState;

pub async fn run_once(state: &AppState) -> anyhow::Result<u64> {
    let grace = crate::orders::sessions::CLOCK_LEEWAY;
    let n = crate::db::sessions::expire_due(&state.pool, grace).await?;
    if n > 0 {
        tracing::info!(expired = n, "checkout sessions expired");
    }
    Ok(n)
}
