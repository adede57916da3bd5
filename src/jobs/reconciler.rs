//! The reconciler: catches up on what webhooks missed. Open orders with no news for a while
//! are read from DHMAD and the snapshot applied; escrow creations with an unknown outcome are
//! looked up in DHMAD's list; paid instant orders whose `deliver` gave up get a new one.
//!
//! Fair and prompt: orders where something is happening (a live payment page, money that moved
//! within the hour) are looked at after `HOT_QUIET` without news, the rest after the configured
//! quiet time; an order DHMAD fails on backs off on its own (so a few bad ones cannot fill every
//! pass), one DHMAD no longer knows is flagged for the merchant instead of retried for ever. A
//! full batch runs again at once, while DHMAD's rate-limit window allows: checkout traffic comes
//! first, so a pass stops early when the window runs low.

use std::time::Duration;

use dhmad::RateLimit;
use time::OffsetDateTime;

use crate::db;
use crate::orders::{
    checkout::in_flight_limit, fulfilment, lost_escrow, payment_review, queue, sync, Applied,
    OrderError, OrderStatus,
};
use crate::state::AppState;

const BATCH: i64 = 20;
/// The background pass's turn in `job_turns`.
const TURN: &str = "reconciler";
/// Orders where something is happening are looked at after this long without news.
const HOT_QUIET: time::Duration = time::Duration::seconds(45);
/// A deliver that gave up is queued again after this long.
const DELIVER_AGAIN_AFTER: time::Duration = time::Duration::minutes(15);

/// Calls of DHMAD's rate-limit window kept for buyers: below this, background work waits
/// (what it would check is never urgent; a checkout is), unless checkouts wait in line.
const RESERVE_FOR_CHECKOUT: u32 = 25;

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Report {
    pub checked: usize,
    pub failed: usize,
    pub creations_resolved: usize,
    /// Orders flagged for the merchant (DHMAD no longer knows their escrow).
    pub flagged: usize,
    /// Second escrows of one order found pending and cancelled.
    pub duplicates_cancelled: usize,
    /// `deliver` jobs queued again for paid instant orders.
    pub delivers_requeued: usize,
    /// Checkouts cut short before their first DHMAD call, put back in line.
    pub checkouts_requeued: u64,
    /// The pass stopped early to leave the rate-limit window to checkouts.
    pub yielded: bool,
    /// The pass stopped at its caller's deadline (`run_once_until`), orders left due.
    pub cut_short: bool,
}

/// Whether the last `X-RateLimit-*` values DHMAD sent leave too few calls in the window, until
/// the window's reset. A reading that names no reset is not followed: nothing would end it on
/// an instance whose jobs all ask this before calling (only an answer with the headers
/// replaces it), so its background work stopped for good; the shared budget still holds.
fn must_yield(last: Option<RateLimit>, now: OffsetDateTime) -> bool {
    match last {
        Some(RateLimit {
            remaining: Some(left),
            reset,
            ..
        }) => left < RESERVE_FOR_CHECKOUT && reset.is_some_and(|r| r > now),
        _ => false,
    }
}

/// How long an order waits after its `failures`-th failed look: 30 s doubling to 1 h.
fn sync_backoff(failures: i32) -> time::Duration {
    let shift = u32::try_from(failures.clamp(0, 7)).unwrap_or(0);
    (time::Duration::seconds(30) * 2_i32.pow(shift)).min(time::Duration::HOUR)
}

/// Whether background work must leave DHMAD's current rate-limit window to checkouts, as
/// DHMAD's own headers tell it (few calls left: another user of the key may be spending them,
/// which the budget does not see). Not while checkouts wait in line with a budget kept: the
/// line is what keeps the window low then, and the budget's share for background work decides
/// (`db::budget::Claimant::Background`); the headers' rule held back every deliver and repair
/// for as long as a line lasted. The line unreadable, background work yields.
pub async fn must_leave_budget_to_checkouts(state: &AppState) -> bool {
    if !must_yield(state.dhmad.rate_limit(), OffsetDateTime::now_utc()) {
        return false;
    }
    state.config.dhmad_budget.calls == 0
        || db::checkout_queue::len(&state.pool)
            .await
            .map_or(true, |waiting| waiting == 0)
}

/// Whether to stop the pass here: the budget is the buyers' (`report.yielded`), or shutdown
/// has started.
async fn yield_now(state: &AppState, report: &mut Report) -> bool {
    report.yielded = must_leave_budget_to_checkouts(state).await;
    report.yielded || state.stopping()
}

/// One pass over orders with no news for `quiet_for`.
/// A job's call to DHMAD about an order failed: an escrow DHMAD no longer knows was flagged
/// for the merchant where it was found (`sync::refresh_order`; no job asks again until it is
/// cleared); anything else waits a growing backoff before the next try, so one order cannot
/// take every pass. Whether it was flagged. Writing the backoff may fail too, the order's row
/// being what failed (locked past the lock timeout): that is logged, not returned, so that one
/// order cannot end the pass for every order after it.
pub(crate) async fn set_aside(state: &AppState, order_id: uuid::Uuid, e: &OrderError) -> bool {
    let order_ref = crate::orders::log_ref(order_id);
    if let OrderError::EscrowUnknown(why) = e {
        tracing::warn!(order.ref = %order_ref, why, "escrow flagged for the merchant");
        return true;
    }
    let backoff = async {
        let wait = sync_backoff(db::orders::sync_failures(&state.pool, order_id).await?);
        db::orders::sync_failed(&state.pool, order_id, wait).await?;
        Ok::<_, sqlx::Error>(wait)
    };
    match backoff.await {
        Ok(wait) => {
            tracing::warn!(order.ref = %order_ref, error = %e, cause = e.cause(), retry_in = %wait, "a call to DHMAD about the order failed");
        }
        Err(db) => {
            tracing::warn!(order.ref = %order_ref, error = %e, cause = e.cause(), db_error = %db, "a call to DHMAD about the order failed, and its backoff could not be written");
        }
    }
    false
}

/// The background pass, one instance's at a time. Every instance runs the reconciler, and
/// passes made at once list the same orders: each was read from DHMAD once per instance (a
/// creation in doubt paged through DHMAD's list once per instance), spending the budget buyers
/// leave. A pass takes the turn unless another instance took it within most of an interval.
/// While a backlog lasts (a full batch), the instance that ran it goes on at once and keeps the
/// turn, if nobody took it since (a pass longer than the interval lets another start): `held`
/// is the turn this instance keeps between passes. `None`: another instance's turn. (The back
/// office's "Reconcile" calls [`run_once_until`] and `storefront reconcile` [`run_once`]: an
/// operator's pass runs when asked.)
pub async fn run_turn(
    state: &AppState,
    held: &mut Option<OffsetDateTime>,
) -> anyhow::Result<Option<Report>> {
    let jobs = &state.config.jobs;
    let taken = match held.take() {
        Some(at) => db::turns::keep(&state.pool, TURN, at).await?,
        None => db::turns::take_at(&state.pool, TURN, jobs.reconcile.mul_f64(0.9)).await?,
    };
    let Some(at) = taken else {
        // Not this instance's pass: the lag it would report is the other instance's.
        state.metrics.reconciler_lag(Duration::ZERO);
        return Ok(None);
    };
    let report = run_once(state, jobs.reconcile_after).await?;
    if report.more_pending() {
        *held = Some(at);
    }
    Ok(Some(report))
}

pub async fn run_once(state: &AppState, quiet_for: Duration) -> anyhow::Result<Report> {
    run_once_until(state, quiet_for, None).await
}

/// [`run_once`], starting no read of DHMAD past `until` (nor the duplicate sweep, when there is
/// an `until`): a merchant waits for it.
pub async fn run_once_until(
    state: &AppState,
    quiet_for: Duration,
    until: Option<tokio::time::Instant>,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let now = OffsetDateTime::now_utc();
    let in_flight = in_flight_limit(state);
    let late = || until.is_some_and(|u| tokio::time::Instant::now() >= u);
    for order in db::orders::list_unknown_creation(&state.pool, in_flight, BATCH).await? {
        if yield_now(state, &mut report).await {
            break;
        }
        if late() {
            report.cut_short = true;
            break;
        }
        let reason = "escrow creation was interrupted; checking DHMAD";
        let claim = order.escrow_attempted_at;
        let marked = match db::orders::mark_unknown_if_in_flight(
            &state.pool,
            order.id,
            claim,
            reason,
            in_flight,
        )
        .await
        {
            Ok(marked) => marked,
            // Its row locked, say: the next pass tries again; the other orders go on.
            Err(e) => {
                tracing::warn!(order.ref = %crate::orders::log_ref(order.id), error = %e, "could not mark an interrupted creation");
                report.failed += 1;
                continue;
            }
        };
        // Claimed again since it was listed: that creation is live, its request resolves it.
        if order.status == OrderStatus::CreatingEscrow && !marked {
            continue;
        }
        match lost_escrow::reconcile_creation(state, &order).await {
            Ok(()) => report.creations_resolved += 1,
            Err(OrderError::Busy { .. }) => {
                report.yielded = true;
                break;
            }
            Err(e) => {
                if set_aside(state, order.id, &e).await {
                    report.flagged += 1;
                } else {
                    report.failed += 1;
                }
            }
        }
    }
    let quiet = time::Duration::try_from(quiet_for).unwrap_or(time::Duration::ZERO);
    let hot = HOT_QUIET.min(quiet);
    let due = db::orders::list_due_for_sync(&state.pool, hot, quiet, BATCH).await?;
    // The oldest news among the orders due a look (those due longest come first: an
    // approximation when more than a batch is due).
    let oldest_news = due
        .iter()
        .map(|o| o.last_synced_at.unwrap_or(o.created_at))
        .min();
    let lag = oldest_news.map_or(Duration::ZERO, |t| {
        Duration::try_from(now - t).unwrap_or(Duration::ZERO)
    });
    state.metrics.reconciler_lag(lag);
    let mut changed = 0;
    for order in due {
        if report.yielded || yield_now(state, &mut report).await {
            break;
        }
        if late() {
            report.cut_short = true;
            break;
        }
        report.checked += 1;
        let read = match sync::refresh_order(state, &order, "reconciler").await {
            Ok(Applied::Transitioned { .. }) => Ok(true),
            // Still under review: its rejection may have been lost (`payment_review::recheck`).
            Ok(Applied::Unchanged { order }) if order.in_payment_review() => {
                payment_review::recheck(state, &order).await
            }
            Ok(_) => Ok(false),
            Err(e) => Err(e),
        };
        match read {
            Ok(moved) => changed += usize::from(moved),
            // The call was not sent: the budget is the buyers' for now.
            Err(OrderError::Busy { .. }) => {
                report.checked -= 1;
                report.yielded = true;
                break;
            }
            Err(e) => {
                if set_aside(state, order.id, &e).await {
                    report.flagged += 1;
                } else {
                    report.failed += 1;
                }
            }
        }
    }
    // Not in a pass someone waits for: the sweep pages through DHMAD's list and may cancel,
    // past any deadline; the job's next pass sweeps.
    if until.is_none() && !report.yielded && !state.stopping() {
        match lost_escrow::sweep_duplicates(state).await {
            Ok(n) => report.duplicates_cancelled = n,
            Err(e) => {
                tracing::warn!(error = %e, cause = e.cause(), "could not look for duplicate escrows");
            }
        }
    }
    for order_id in
        db::orders::list_missing_deliver(&state.pool, DELIVER_AGAIN_AFTER, BATCH).await?
    {
        // Unless abandoned since the list was read: the merchant's decision.
        match fulfilment::requeue_deliver(state, order_id).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                report.failed += 1;
                tracing::warn!(order.ref = %crate::orders::log_ref(order_id), error = %e, cause = e.cause(), "could not queue a missing deliver");
                continue;
            }
        }
        report.delivers_requeued += 1;
        tracing::warn!(order.ref = %crate::orders::log_ref(order_id), "paid instant order had no deliver queued; queued one");
    }
    // No call to DHMAD here: the line's worker makes them, checkouts' budget first. One older
    // than the abandoned-order grace is left: its buyer is long gone.
    let (idle, max_age) = (queue::lease(state), state.config.jobs.abandoned_after);
    report.checkouts_requeued =
        db::checkout_queue::requeue_stranded(&state.pool, idle, max_age, BATCH).await?;
    if report.checkouts_requeued > 0 {
        state.checkout_queue.notify_one();
        tracing::warn!(
            n = report.checkouts_requeued,
            "checkouts cut short before their first DHMAD call put back in line"
        );
    }
    if report.checked + report.creations_resolved + report.failed > 0 || report.yielded {
        tracing::info!(?report, "reconciler pass");
    }
    let m = &state.metrics;
    m.reconciler_run(report.yielded);
    m.reconciler_orders("checked", report.checked);
    m.reconciler_orders("changed", changed);
    m.reconciler_orders("failed", report.failed);
    m.reconciler_orders("flagged", report.flagged);
    m.reconciler_orders("creation_resolved", report.creations_resolved);
    m.reconciler_orders("duplicate_cancelled", report.duplicates_cancelled);
    m.reconciler_orders("deliver_requeued", report.delivers_requeued);
    Ok(report)
}

impl Report {
    /// A full batch, or a pass cut short, means a backlog: the next pass should follow at once
    /// (budget allowing).
    pub fn more_pending(&self) -> bool {
        !self.yielded && (self.cut_short || self.checked >= BATCH.unsigned_abs() as usize)
    }

    /// `next`, a pass that followed this one, added to it.
    pub fn then(self, next: Report) -> Report {
        Report {
            checked: self.checked + next.checked,
            failed: self.failed + next.failed,
            creations_resolved: self.creations_resolved + next.creations_resolved,
            flagged: self.flagged + next.flagged,
            duplicates_cancelled: self.duplicates_cancelled + next.duplicates_cancelled,
            delivers_requeued: self.delivers_requeued + next.delivers_requeued,
            checkouts_requeued: self.checkouts_requeued + next.checkouts_requeued,
            yielded: next.yielded,
            cut_short: next.cut_short,
        }
    }
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
    fn backoff_doubles_and_is_capped() {
        assert_eq!(sync_backoff(0), time::Duration::seconds(30));
        assert_eq!(sync_backoff(1), time::Duration::minutes(1));
        assert_eq!(sync_backoff(50), time::Duration::HOUR);
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
            !must_yield(Some(rl(Some(0), None, now)), now),
            "no reset given: nothing would end the wait"
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
