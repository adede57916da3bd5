//! DHMAD's call budget (`dhmad_budget`): one row per call its sliding window allows.

use std::time::Duration;

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// Who asks for calls, in order of priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimant {
    /// A buyer or the merchant waiting on a page, or a queued checkout's turn: any free row.
    Interactive,
    /// A new checkout: only when no checkout is queued (else it queues behind them).
    NewCheckout,
    /// Background jobs: when no checkout is queued and `reserve` rows stay free after the
    /// take, so the next buyers find the budget they need; while checkouts are queued, as
    /// long as fewer than `share` of the window's calls are background work's, so that a line
    /// that never empties does not hold back every deliver and repair.
    Background { reserve: i32, share: i32 },
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Sizes the budget to `limit` calls per window (run at start; every instance must agree).
pub async fn resize(e: impl PgExecutor<'_>, limit: i32) -> sqlx::Result<()> {
    sqlx::query!(
        "WITH added AS (
             INSERT INTO dhmad_budget (slot) SELECT generate_series(0, $1 - 1)
             ON CONFLICT (slot) DO NOTHING)
         DELETE FROM dhmad_budget WHERE slot >= $1",
        limit
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Sizes the budget to `limit` calls only if it has none (a database no instance has served
/// yet); the number of calls it holds, before this.
pub async fn ensure(e: impl PgExecutor<'_>, limit: i32) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"WITH had AS (SELECT count(*) AS n FROM dhmad_budget),
                added AS (
                    INSERT INTO dhmad_budget (slot)
                    SELECT generate_series(0, $1 - 1) WHERE (SELECT n FROM had) = 0
                    ON CONFLICT (slot) DO NOTHING)
           SELECT n AS "n!" FROM had"#,
        limit
    )
    .fetch_one(e)
    .await
}

/// Takes `n` calls of the budget (at most 2: a checkout's two), all or none
/// (`take_dhmad_budget` in the migration holds the rule): rows used a whole `window` ago,
/// locked with `SKIP LOCKED` so concurrent takers never share one. The rows bear `taker`, so
/// that a call sent late can date its own row again ([`redate`]). `true` when taken.
pub async fn take(
    e: impl PgExecutor<'_>,
    n: i32,
    window: Duration,
    who: Claimant,
    taker: Option<Uuid>,
) -> sqlx::Result<bool> {
    let (jump_queue, reserve, share) = who.rule();
    let taken = sqlx::query_scalar!(
        r#"SELECT take_dhmad_budget($1, $2, $3, $4, $5, $6) AS "taken!""#,
        n,
        millis(window),
        jump_queue,
        reserve,
        taker,
        share
    )
    .fetch_one(e)
    .await?;
    Ok(taken)
}

/// A call taken in advance by `taker` is sent now: its row (the oldest `taker` still holds)
/// is dated now, never earlier than it was. `false` when `taker` holds no row any more (each
/// was taken again after its window).
pub async fn redate(e: impl PgExecutor<'_>, taker: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE dhmad_budget SET used_at = greatest(used_at, clock_timestamp()), taken_by = NULL
          WHERE slot = (SELECT slot FROM dhmad_budget WHERE taken_by = $1
                         ORDER BY used_at LIMIT 1 FOR UPDATE)",
        taker
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The rows `taker` holds go back, free: it will make none of their calls (a checkout whose
/// order another request of the same buyer wrote first). A row is taken only once free, a
/// whole window after its last call, so freeing it again lets no window hold more calls.
pub async fn give_back(e: impl PgExecutor<'_>, taker: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE dhmad_budget SET used_at = 'epoch', taken_by = NULL WHERE taken_by = $1",
        taker
    )
    .execute(e)
    .await?;
    Ok(())
}

/// `calls` of the rows `taker` holds go back, free: calls it took and did not make. Rows are
/// alike, so which of its rows matters not; the others stay as the calls it made dated them.
/// A row locked meanwhile is skipped (fewer go back, never more): a `pause` locking the whole
/// table in its own order would otherwise deadlock with this one.
pub async fn give_back_some(e: impl PgExecutor<'_>, taker: Uuid, calls: u32) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE dhmad_budget SET used_at = 'epoch', taken_by = NULL
          WHERE slot IN (SELECT slot FROM dhmad_budget WHERE taken_by = $1
                          ORDER BY slot LIMIT $2 FOR UPDATE SKIP LOCKED)",
        taker,
        i64::from(calls)
    )
    .execute(e)
    .await?;
    Ok(())
}

impl Claimant {
    /// `(jump_queue, reserve, share)` of `take_dhmad_budget`.
    fn rule(self) -> (bool, i32, i32) {
        match self {
            Claimant::Interactive => (true, 0, 0),
            Claimant::NewCheckout => (false, 0, 0),
            Claimant::Background { reserve, share } => (false, reserve, share),
        }
    }
}

/// DHMAD answered 429: its window is fuller than ours (another user of the key). No row may
/// be taken, by any instance or claimant, before `wait` has passed: each row is dated as if
/// used `window` before then, unless its own use frees it later. The rows lose their takers:
/// a call taken ahead and not sent yet takes a row anew ([`redate`] finds none), and one given
/// back ([`give_back`]) is not freed before the pause ends.
pub async fn pause(e: impl PgExecutor<'_>, window: Duration, wait: Duration) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE dhmad_budget
            SET used_at = greatest(used_at,
                                   now() + ($2::bigint - $1::bigint) * interval '1 millisecond'),
                taken_by = NULL",
        millis(window),
        millis(wait)
    )
    .execute(e)
    .await?;
    Ok(())
}

/// When each row frees up again (its last use plus the window), soonest first.
pub async fn frees_at(
    e: impl PgExecutor<'_>,
    window: Duration,
) -> sqlx::Result<Vec<OffsetDateTime>> {
    sqlx::query_scalar!(
        r#"SELECT used_at + $1::bigint * interval '1 millisecond' AS "at!"
           FROM dhmad_budget ORDER BY used_at"#,
        millis(window)
    )
    .fetch_all(e)
    .await
}

/// How long until `ahead + 1` rows are free (zero if they are now): `ahead` is 0 for a buyer
/// (background work asks [`background_next_in`]).
pub async fn next_free_in(
    e: impl PgExecutor<'_>,
    window: Duration,
    ahead: i32,
) -> sqlx::Result<Duration> {
    let ms = sqlx::query_scalar!(
        r#"SELECT greatest(0, extract(epoch FROM max(used_at) + $1::bigint * interval '1 millisecond' - now()) * 1000)::bigint AS "ms"
           FROM (SELECT used_at FROM dhmad_budget ORDER BY used_at LIMIT $2::int + 1) oldest"#,
        millis(window),
        ahead
    )
    .fetch_one(e)
    .await?;
    Ok(Duration::from_millis(ms.unwrap_or(0).unsigned_abs()))
}

/// How long until background work may take a row: when no checkout waits and a row beyond
/// the buyers' `reserve` is free, or, while checkouts wait, when a row is free and fewer than
/// `share` of the window's rows are background work's. Zero when it may now, or when only the
/// line's end would let it (which no one can tell).
pub async fn background_next_in(
    e: impl PgExecutor<'_>,
    window: Duration,
    reserve: i32,
    share: i32,
) -> sqlx::Result<Duration> {
    let ms = sqlx::query_scalar!(
        r#"WITH mine AS (
               SELECT used_at FROM dhmad_budget
                WHERE background AND used_at > now() - $1::bigint * interval '1 millisecond'),
           beyond_reserve AS (
               SELECT max(used_at) AS at
                 FROM (SELECT used_at FROM dhmad_budget ORDER BY used_at LIMIT $2::int + 1) o
                WHERE NOT EXISTS (SELECT 1 FROM checkout_queue)),
           first_free AS (SELECT min(used_at) AS at FROM dhmad_budget),
           in_share AS (
               SELECT CASE WHEN $3::int <= 0 OR NOT EXISTS (SELECT 1 FROM checkout_queue) THEN NULL
                           WHEN (SELECT count(*) FROM mine) < $3::int THEN (SELECT at FROM first_free)
                           ELSE greatest((SELECT at FROM first_free),
                                         (SELECT used_at FROM mine ORDER BY used_at
                                           OFFSET (SELECT count(*) FROM mine) - $3::int LIMIT 1))
                      END AS at)
           SELECT greatest(0, extract(epoch FROM least((SELECT at FROM beyond_reserve), (SELECT at FROM in_share))
                                     + $1::bigint * interval '1 millisecond' - now()) * 1000)::bigint AS "ms"
        "#,
        millis(window),
        reserve,
        share
    )
    .fetch_one(e)
    .await?;
    Ok(Duration::from_millis(ms.unwrap_or(0).unsigned_abs()))
}
