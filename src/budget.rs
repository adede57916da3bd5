//! DHMAD's rate limit as one budget, shared in the database by every instance (`db::budget`),
//! and the client gate that spends it: each call takes a row first, or is not sent
//! (`dhmad::Error::Throttled`). New checkouts queue behind waiting ones, and background jobs
//! get what buyers leave (`Claimant`).

use std::sync::{
    atomic::{AtomicU32, Ordering},
    Arc,
};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{self, budget::Claimant, Pool};

/// The longest DHMAD's 429 holds anything back here (its wait may be an hour): past it the call
/// is simply tried again, so that one wild answer cannot stop every checkout and background
/// job for that long. (DHMAD's cap on new escrows pauses nothing: the client does not report it.)
pub const LONGEST_PAUSE: Duration = Duration::from_secs(60);

/// How much of DHMAD's budget background jobs leave for buyers: a fifth of the window.
pub fn background_reserve(limit: u32) -> i32 {
    i32::try_from(limit / 5).unwrap_or(i32::MAX)
}

/// How much of each window background jobs may take while buyers wait in line: about a tenth
/// (concurrent takers may each find it unspent; none of a budget under ten calls, where one
/// call is a checkout's half).
pub fn background_share(limit: u32) -> i32 {
    i32::try_from(limit / 10).unwrap_or(i32::MAX)
}

/// The budget's settings (`DHMAD_RATE_LIMIT`, `DHMAD_RATE_WINDOW_SECS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls per window; 0 = no budget kept (DHMAD's own 429s only).
    pub calls: u32,
    pub window: Duration,
}

impl Limits {
    /// DHMAD's documented default: 100 calls in a sliding minute.
    pub const DHMAD_DEFAULT: Limits = Limits {
        calls: 100,
        window: Duration::from_secs(60),
    };

    /// A row is reused a little after a whole window, so that a call sent just after its
    /// row was taken cannot reach DHMAD inside the window of the row's previous call.
    pub fn reuse_after(&self) -> Duration {
        self.window + REUSE_MARGIN
    }
}

/// How long after a whole window a row is reused: see [`Limits::reuse_after`].
const REUSE_MARGIN: Duration = Duration::from_millis(500);

/// A call taken in advance and sent later than this dates its row again: the rest of the
/// margin covers its way to DHMAD (a pool wait, a slow reply from the database).
const SENT_LATE: Duration = Duration::from_millis(100);

/// Calls taken in advance for one checkout (both of its calls at once): how many, when, and
/// the mark on their rows. Neither `Copy` nor `Clone`: one gate spends them.
#[derive(Debug)]
pub struct Prepaid {
    pub calls: u32,
    pub taker: Uuid,
    /// Just before the rows were taken (so a little early: a call is never thought on time
    /// when it is late).
    pub at: Instant,
}

impl Prepaid {
    /// Calls about to be taken: a fresh mark, dated now.
    pub fn new(calls: u32) -> Self {
        Self {
            calls,
            taker: Uuid::new_v4(),
            at: Instant::now(),
        }
    }

    /// Nothing taken in advance.
    pub fn none() -> Self {
        Self::new(0)
    }
}

/// The calls a handle took in advance and has not made yet, shared by its gate (which spends
/// them) and its state (which gives them back once the work they were taken for is over).
#[derive(Clone, Debug)]
pub struct Unspent {
    left: Arc<AtomicU32>,
    taker: Uuid,
}

impl Unspent {
    pub fn new(prepaid: &Prepaid) -> Self {
        Self {
            left: Arc::new(AtomicU32::new(prepaid.calls)),
            taker: prepaid.taker,
        }
    }

    /// The rows of the calls not made go back to the budget: the work needed fewer (the order
    /// was paid or cancelled meanwhile, or a call failed before the next). Left taken, each
    /// held its row for a whole window: during an outage with a long line, about half the
    /// budget went unused. As many rows as calls are left, not every row of the taker: a call
    /// made on time keeps its row, marked by the taker, dated when taken. A failure is only
    /// logged: the rows then free at the end of their window, as used ones do.
    pub async fn give_back(&self, pool: &Pool) {
        let left = self.left.swap(0, Ordering::AcqRel);
        if left == 0 {
            return;
        }
        if let Err(e) = db::budget::give_back_some(pool, self.taker, left).await {
            tracing::warn!(error = %e, "could not give back unused DHMAD calls");
        }
    }
}

/// The gate of one client handle: whom it takes calls for, and calls already taken for it.
pub struct BudgetGate {
    pool: Pool,
    limits: Limits,
    who: Claimant,
    /// Calls taken in advance for this handle (a checkout takes both of its calls at once):
    /// how many are left, and their rows' mark and time.
    prepaid: Unspent,
    taken: Prepaid,
}

impl BudgetGate {
    pub fn new(pool: Pool, limits: Limits, who: Claimant, prepaid: Prepaid) -> Self {
        let unspent = Unspent::new(&prepaid);
        if limits.calls == 0 {
            // No budget kept: no row was taken, none is to give back.
            unspent.left.store(0, Ordering::Release);
        }
        Self {
            pool,
            limits,
            who,
            prepaid: unspent,
            taken: prepaid,
        }
    }

    /// Its calls taken in advance and not made yet, to give back once the work is over.
    pub fn unspent(&self) -> Unspent {
        self.prepaid.clone()
    }

    async fn admit_one(&self) -> Result<(), Duration> {
        if self.limits.calls == 0 {
            return Ok(());
        }
        let prepaid = self
            .prepaid
            .left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if prepaid.is_ok() && self.prepaid_row_dated().await {
            return Ok(());
        }
        let window = self.limits.reuse_after();
        match db::budget::take(&self.pool, 1, window, self.who, None).await {
            Ok(true) => Ok(()),
            // Background work waits until a row beyond the buyers' reserve frees, and at least
            // a second: refused because checkouts are queued, it found "free now" and retried
            // every 100 ms, a claim, a read and a postpone each time, on every instance.
            Ok(false) => {
                let (next, floor) = match self.who {
                    Claimant::Background { reserve, share } => (
                        db::budget::background_next_in(&self.pool, window, reserve, share).await,
                        Duration::from_secs(1),
                    ),
                    _ => (
                        db::budget::next_free_in(&self.pool, window, 0).await,
                        Duration::from_millis(100),
                    ),
                };
                Err(next.unwrap_or(Duration::from_secs(1)).max(floor))
            }
            // The budget cannot be read (a lock held too long, the pool exhausted under load,
            // the database failing over): the call waits, as for a spent budget. Sent anyway,
            // every instance in that state called outside the budget while the others spent
            // all of it, and DHMAD's window held more than its limit.
            Err(e) => {
                tracing::warn!(error = %e, "DHMAD call budget unreadable; the call waits");
                Err(Duration::from_secs(1))
            }
        }
    }

    /// A call taken in advance goes now. Sent late (the first call waited on a slow DHMAD), it
    /// dates its row now, or the row would be reused while the call is still inside DHMAD's
    /// window. `false` when none of its rows is left (each taken again after its window): it
    /// then takes one as any call does.
    async fn prepaid_row_dated(&self) -> bool {
        if self.taken.at.elapsed() <= SENT_LATE {
            return true;
        }
        match db::budget::redate(&self.pool, self.taken.taker).await {
            Ok(dated) => {
                if !dated {
                    self.prepaid.left.store(0, Ordering::Release);
                }
                dated
            }
            // Not dated anew, its row could be taken again while this call is still in DHMAD's
            // window: the call takes a row as any call does, or waits as any call does while
            // the budget cannot be read (a checkout then waits in line: `Busy`). The prepaid
            // row stays dated at its take, used: one call's budget spent, none crossed.
            Err(e) => {
                tracing::warn!(error = %e, "DHMAD call budget unreadable; the prepaid call takes a row anew");
                false
            }
        }
    }
}

impl dhmad::Gate for BudgetGate {
    fn admit(&self) -> dhmad::Admission<'_> {
        Box::pin(self.admit_one())
    }

    /// DHMAD's limit is the key's: after its 429 (another user of the key spent the window)
    /// no call is made before the time it gave, by any instance or claimant, where each
    /// caller used to come back on its own (the checkout line about once a second, two calls
    /// of the budget each time). Bounded, so a wild answer cannot stop everything.
    fn rate_limited(&self, wait: Duration) -> dhmad::Notice<'_> {
        Box::pin(async move {
            if self.limits.calls == 0 {
                return;
            }
            let wait = wait.min(LONGEST_PAUSE);
            let window = self.limits.reuse_after();
            if let Err(e) = db::budget::pause(&self.pool, window, wait).await {
                tracing::warn!(error = %e, "could not pause DHMAD's call budget after a 429");
            }
        })
    }
}

/// Sizes the shared budget to `DHMAD_RATE_LIMIT` (at start; instances must agree on it).
pub async fn prepare(state: &crate::state::AppState) -> sqlx::Result<()> {
    match budget_size(state) {
        Some(limit) => db::budget::resize(&state.pool, limit).await,
        None => Ok(()),
    }
}

/// The budget's size in calls, `None` when none is kept (`DHMAD_RATE_LIMIT=0`).
fn budget_size(state: &crate::state::AppState) -> Option<i32> {
    let calls = state.config.dhmad_budget.calls;
    (calls != 0).then(|| i32::try_from(calls).unwrap_or(i32::MAX))
}

/// [`prepare`] for a one-off pass (`storefront reconcile`): the running instances sized the
/// budget, and their size stands. Sizing it again here, from a cron's environment whose
/// `DHMAD_RATE_LIMIT` differed (or was left at its default), changed every instance's spending
/// until one restarted, up to DHMAD's 429s.
pub async fn prepare_for_a_pass(state: &crate::state::AppState) -> sqlx::Result<()> {
    let Some(limit) = budget_size(state) else {
        return Ok(());
    };
    let held = db::budget::ensure(&state.pool, limit).await?;
    if held != 0 && held != i64::from(limit) {
        tracing::warn!(
            held,
            configured = limit,
            "DHMAD_RATE_LIMIT differs from the budget the running instances keep; this pass spends theirs"
        );
    }
    Ok(())
}

/// Takes `n` calls at once for `who`, to be spent through [`crate::state::AppState::spending_as`];
/// `None` when they are not free (never, with no budget kept).
pub async fn take(
    pool: &Pool,
    limits: Limits,
    n: u32,
    who: Claimant,
) -> sqlx::Result<Option<Prepaid>> {
    let prepaid = Prepaid::new(n);
    if limits.calls == 0 || n == 0 {
        return Ok(Some(prepaid));
    }
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    let taken = db::budget::take(pool, n, limits.reuse_after(), who, Some(prepaid.taker)).await?;
    Ok(taken.then_some(prepaid))
}

/// About how long until `calls` more calls fit in the budget, given when each row frees up
/// (`frees_at`, soonest first) and the rows other claimants will take first (`ahead`).
/// Rows free now count at once; the rest free up as their window ends, and a row is used
/// again one window after that.
pub fn expected_wait(
    frees_at: &[OffsetDateTime],
    ahead: usize,
    calls: usize,
    window: Duration,
    now: OffsetDateTime,
) -> Duration {
    let rows = frees_at.len();
    if rows == 0 || calls == 0 {
        return Duration::ZERO;
    }
    // The row that serves the last of our calls, counting the uses of every row in turn.
    let k = ahead + calls - 1;
    let (round, row) = (k / rows, k % rows);
    let at = frees_at[row].max(now) + window * u32::try_from(round).unwrap_or(u32::MAX);
    Duration::try_from(at - now).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_counts_free_rows_then_each_row_s_next_window() {
        let now = OffsetDateTime::now_utc();
        let w = Duration::from_secs(60);
        let s = |secs: i64| now + time::Duration::seconds(secs);
        // Two rows free now, two freeing in 10 s and 30 s.
        let rows = [s(-5), s(-1), s(10), s(30)];
        assert_eq!(expected_wait(&rows, 0, 2, w, now), Duration::ZERO);
        assert_eq!(expected_wait(&rows, 1, 2, w, now), Duration::from_secs(10));
        assert_eq!(expected_wait(&rows, 2, 2, w, now), Duration::from_secs(30));
        // Past every row: the free ones come back a window after now.
        assert_eq!(expected_wait(&rows, 3, 2, w, now), Duration::from_secs(60));
        assert_eq!(expected_wait(&rows, 6, 2, w, now), Duration::from_secs(90));
        assert_eq!(expected_wait(&[], 6, 2, w, now), Duration::ZERO);
    }

    #[test]
    fn background_leaves_a_fifth_and_keeps_a_tenth() {
        assert_eq!(background_reserve(100), 20);
        assert_eq!(background_reserve(3), 0);
        assert_eq!(background_share(100), 10);
        assert_eq!(background_share(9), 0);
    }
}
