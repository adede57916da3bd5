//! `dhmad_calls`: the DHMAD calls made for an order.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

pub struct NewCall<'a> {
    pub order_id: Uuid,
    pub method: &'a str,
    pub endpoint: &'a str,
    pub status: Option<i32>,
    pub duration_ms: i32,
}

pub async fn record(e: impl PgExecutor<'_>, c: &NewCall<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO dhmad_calls (order_id, method, endpoint, status, duration_ms)
         VALUES ($1, $2, $3, $4, $5)",
        c.order_id,
        c.method,
        c.endpoint,
        c.status,
        c.duration_ms
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
