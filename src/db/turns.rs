//! Turns of periodic tasks shared by every instance (`job_turns`).

use sqlx::PgExecutor;

/// Takes the turn of `name` if nobody took it within `every`; `true` when taken. One statement,
/// so two instances asking at once cannot both get it.
pub async fn take(
    e: impl PgExecutor<'_>,
    name: &str,
    every: std::time::Duration,
) -> sqlx::Result<bool> {
    let taken = sqlx::query_scalar!(
        r#"INSERT INTO job_turns (name, at) VALUES ($1, now())
           ON CONFLICT (name) DO UPDATE SET at = now()
            WHERE job_turns.at <= now() - $2::bigint * interval '1 millisecond'
           RETURNING 1 AS "taken!""#,
        name,
        i64::try_from(every.as_millis()).unwrap_or(i64::MAX)
    )
    .fetch_optional(e)
    .await?;
    Ok(taken.is_some())
}
