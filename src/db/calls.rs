//! `dhmad_calls`: the DHMAD calls made for an order.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// A call to record: when it was made, by what, and how it went.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub order_id: Uuid,
    pub method: String,
    pub endpoint: &'static str,
    pub status: Option<i32>,
    pub duration_ms: i32,
    pub at: OffsetDateTime,
}

/// Records calls at once, in one statement. The log is the back office's view of what
/// happened: its writer's connection does not wait for the disk on commit
/// (`synchronous_commit = off`, [`crate::state`]), so a crash may lose its last lines, never a
/// call.
pub async fn record_all(e: impl PgExecutor<'_>, calls: &[NewCall]) -> sqlx::Result<()> {
    let order_ids: Vec<Uuid> = calls.iter().map(|c| c.order_id).collect();
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    let endpoints: Vec<&str> = calls.iter().map(|c| c.endpoint).collect();
    let statuses: Vec<Option<i32>> = calls.iter().map(|c| c.status).collect();
    let durations: Vec<i32> = calls.iter().map(|c| c.duration_ms).collect();
    let ats: Vec<OffsetDateTime> = calls.iter().map(|c| c.at).collect();
    sqlx::query!(
        "INSERT INTO dhmad_calls (order_id, method, endpoint, status, duration_ms, at)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::int[],
                              $6::timestamptz[])",
        &order_ids,
        &methods as &[&str],
        &endpoints as &[&str],
        &statuses as &[Option<i32>],
        &durations,
        &ats
    )
    .execute(e)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub endpoint: String,
    pub status: Option<i32>,
    pub duration_ms: i32,
    pub at: OffsetDateTime,
}

/// The order's last 100 calls, newest first.
pub async fn for_order(e: impl PgExecutor<'_>, order_id: Uuid) -> sqlx::Result<Vec<Call>> {
    sqlx::query_as!(
        Call,
        "SELECT method, endpoint, status, duration_ms, at FROM dhmad_calls
          WHERE order_id = $1 ORDER BY id DESC LIMIT 100",
        order_id
    )
    .fetch_all(e)
    .await
}

/// Forgets, among the `limit` oldest calls, those made before `before`; how many. Ids follow
/// time closely enough that the oldest rows by key are the old ones: only they are read (a
/// filter on `at` over the whole log, which has no index on it, read every row each pass
/// while nothing was old yet).
pub async fn prune(
    e: impl PgExecutor<'_>,
    before: OffsetDateTime,
    limit: i64,
) -> sqlx::Result<u64> {
    let r = sqlx::query!(
        "DELETE FROM dhmad_calls WHERE id IN (
             SELECT id FROM (SELECT id, at FROM dhmad_calls ORDER BY id LIMIT $2) oldest
              WHERE at < $1)",
        before,
        limit
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected())
}
