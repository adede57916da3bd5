//! The reconciler: catches up on what webhooks missed. Open orders with no news for a while
//! are read from DHMAD and the snapshot applied; escrow creations with an unknown outcome are
//! looked up in DHMAD's list. Small batches: DHMAD allows about 100 calls a minute per IP and
//! checkout traffic comes first, so a pass stops early when the rate-limit window runs low.

use std::time::Duration;

use dhmad::RateLimit;
use time::OffsetDateTime;

use crate::db;
use crate::orders::{checkout::in_flight_limit, sync};
use crate::state::AppState;

const BATCH: i64 = 20;

/// Calls of DHMAD's rate-limit window kept for buyers: below this, the reconciler waits for
/// its next pass (what it would check is never urgent; a checkout is).
const RESERVE_FOR_CHECKOUT: u32 = 25;

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Report {
    pub checked: usize,
    pub failed: usize,
    pub creations_resolved: usize,
    /// The pass stopped early to leave the rate-limit window to checkouts.
    pub yielded: bool,
}

/// Whether the last `X-RateLimit-*` values DHMAD sent leave too few calls in the window.
fn must_yield(last: Option<RateLimit>, now: OffsetDateTime) -> bool {
    match last {
        Some(RateLimit {
            remaining: Some(left),
            reset,
            ..
        }) => left < RESERVE_FOR_CHECKOUT && reset.is_none_or(|r| r > now),
        _ => false,
    }
}

/// Whether background work must leave DHMAD's current rate-limit window to checkouts.
pub fn must_leave_budget_to_checkouts(state: &AppState) -> bool {
    must_yield(state.dhmad.rate_limit(), OffsetDateTime::now_utc())
}

fn yield_now(state: &AppState, report: &mut Report) -> bool {
    report.yielded = must_leave_budget_to_checkouts(state);
    report.yielded
}

/// One pass over orders with no news for `quiet_for`.
pub async fn run_once(state: &AppState, quiet_for: Duration) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let now = OffsetDateTime::now_utc();
    let in_flight_before = now - in_flight_limit(state);
    for order in db::orders::list_unknown_creation(&state.pool, in_flight_before, BATCH).await? {
        if yield_now(state, &mut report) {
            break;
        }
        let reason = "escrow creation was interrupted; checking DHMAD";
        db::orders::mark_unknown_if_in_flight(&state.pool, order.id, reason).await?;
        match sync::reconcile_creation(state, &order).await {
            Ok(()) => report.creations_resolved += 1,
            Err(e) => {
                report.failed += 1;
                tracing::warn!(order.id = %order.id, error = %e, "could not reconcile an escrow creation");
            }
        }
    }
    let quiet = time::Duration::try_from(quiet_for).unwrap_or(time::Duration::ZERO);
    for order in db::orders::list_stale(&state.pool, now - quiet, BATCH).await? {
        if report.yielded || yield_now(state, &mut report) {
            break;
        }
        report.checked += 1;
        if let Err(e) = sync::refresh_order(state, &order, "reconciler").await {
            report.failed += 1;
            tracing::warn!(order.id = %order.id, error = %e, "could not reconcile an order");
        }
    }
    if report.checked + report.creations_resolved + report.failed > 0 || report.yielded {
        tracing::info!(?report, "reconciler pass");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rl(remaining: Option<u32>, reset_in_secs: Option<i64>, now: OffsetDateTime) -> RateLimit {
        RateLimit {
            limit: Some(100),
            remaining,
            reset: reset_in_secs.map(|s| now + time::Duration::seconds(s)),
        }
    }

    #[test]
    fn yields_only_when_the_window_is_low_and_not_yet_reset() {
        let now = OffsetDateTime::now_utc();
        assert!(!must_yield(None, now), "no call made yet");
        assert!(!must_yield(Some(rl(Some(80), Some(30), now)), now));
        assert!(!must_yield(
            Some(rl(Some(RESERVE_FOR_CHECKOUT), Some(30), now)),
            now
        ));
        assert!(must_yield(
            Some(rl(Some(RESERVE_FOR_CHECKOUT - 1), Some(30), now)),
            now
        ));
        assert!(
            must_yield(Some(rl(Some(0), None, now)), now),
            "no reset given: be careful"
        );
        assert!(
            !must_yield(Some(rl(Some(0), Some(-1), now)), now),
            "the window has reset since"
        );
        assert!(
            !must_yield(Some(rl(None, Some(30), now)), now),
            "no remaining count sent"
        );
    }
}
