//! Turns of periodic tasks shared by every instance (`job_turns`).

use sqlx::PgExecutor;
use time::OffsetDateTime;

/// Takes the turn of `name` if nobody took it within `every`; `true` when taken. One statement,
/// so two instances asking at once cannot both get it.
pub async fn take(
    e: impl PgExecutor<'_>,
    name: &str,
    every: std::time::Duration,
) -> sqlx::Result<bool> {
    Ok(take_at(e, name, every).await?.is_some())
}

/// [`take`], giving the turn's time when taken: what [`keep`] asks for.
pub async fn take_at(
    e: impl PgExecutor<'_>,
    name: &str,
    every: std::time::Duration,
) -> sqlx::Result<Option<OffsetDateTime>> {
    sqlx::query_scalar!(
        r#"INSERT INTO job_turns (name, at) VALUES ($1, now())
           ON CONFLICT (name) DO UPDATE SET at = now()
            WHERE job_turns.at <= now() - $2::bigint * interval '1 millisecond'
           RETURNING at"#,
        name,
        i64::try_from(every.as_millis()).unwrap_or(i64::MAX)
    )
    .fetch_optional(e)
    .await
}

/// Takes the turn of `name` again at once, if nobody took it since this caller did at `at`;
/// its new time when kept.
pub async fn keep(
    e: impl PgExecutor<'_>,
    name: &str,
    at: OffsetDateTime,
) -> sqlx::Result<Option<OffsetDateTime>> {
    sqlx::query_scalar!(
        "UPDATE job_turns SET at = now() WHERE name = $1 AND at = $2 RETURNING at",
        name,
        at
    )
    .fetch_optional(e)
    .await
}

/// Forgets up to `limit` turns named `prefix…` last taken before `before`: turns of one thing
/// each (an order's look), which would otherwise stay for good. How many were forgotten.
pub async fn forget(
    e: impl PgExecutor<'_>,
    prefix: &str,
    before: OffsetDateTime,
    limit: i64,
) -> sqlx::Result<u64> {
    let r = sqlx::query!(
        "DELETE FROM job_turns WHERE name IN (
             SELECT name FROM job_turns WHERE starts_with(name, $1) AND at < $2 LIMIT $3)",
        prefix,
        before,
        limit
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected())
}
