use sqlx::PgExecutor;
use uuid::Uuid;

/// A verified delivery as it is stored.
pub struct Received<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    /// The JSON body (with NUL replaced, the only change ever made to it).
    pub body: &'a str,
    /// SHA-256 of the bytes DHMAD signed, hex.
    pub body_sha256: &'a str,
}

/// Stores a verified event once, its body verbatim (Postgres parses it into JSONB). `false` when its id was already stored (a redelivery): the
/// primary key decides, so concurrent deliveries of one event cannot both get `true`.
pub async fn insert(
    e: impl PgExecutor<'_>,
    r: &Received<'_>,
    escrow_id: Option<&str>,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "INSERT INTO webhook_inbox (event_id, event_type, escrow_id, outcome, payload, body_sha256)
         VALUES ($1, $2, $3, 'ignored', $4::text::jsonb, $5)
         ON CONFLICT (event_id) DO NOTHING",
        r.event_id,
        r.event_type,
        escrow_id,
        r.body,
        r.body_sha256
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn finish(
    e: impl PgExecutor<'_>,
    event_id: &str,
    outcome: &str,
    order_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE webhook_inbox SET outcome = $2, order_id = $3 WHERE event_id = $1",
        event_id,
        outcome,
        order_id
    )
    .execute(e)
    .await?;
    Ok(())
}

pub async fn count_unmatched(e: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    let n = sqlx::query_scalar!("SELECT count(*) FROM webhook_inbox WHERE outcome = 'unmatched'")
        .fetch_one(e)
        .await?;
    Ok(n.unwrap_or(0))
}
