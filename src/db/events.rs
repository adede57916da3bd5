use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// One line of an order's timeline.
#[derive(Debug, Clone)]
pub struct OrderEvent {
    pub kind: String,
    pub detail: String,
    pub created_at: OffsetDateTime,
}

pub async fn add(
    e: impl PgExecutor<'_>,
    order_id: Uuid,
    kind: &str,
    detail: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO order_events (order_id, kind, detail) VALUES ($1, $2, $3)",
        order_id,
        kind,
        detail
    )
    .execute(e)
    .await?;
    Ok(())
}

pub async fn list(e: impl PgExecutor<'_>, order_id: Uuid) -> sqlx::Result<Vec<OrderEvent>> {
    sqlx::query_as!(
        OrderEvent,
        "SELECT kind, detail, created_at FROM order_events WHERE order_id = $1 ORDER BY id",
        order_id
    )
    .fetch_all(e)
    .await
}
