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

/// What the inbox row says of an event when it is stored: the outcome expected from its escrow
/// (`ignored` without one, `unmatched` when no order has it, else `processed`) and that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub outcome: String,
    pub order_id: Option<Uuid>,
}

/// Stores a verified event once, its body verbatim (Postgres parses it into JSONB), with the
/// outcome its escrow leads to expect, so that applying it usually needs no second write.
/// `None` when its id was already stored (a redelivery): the primary key decides, so
/// concurrent deliveries of one event cannot both store it.
pub async fn insert(
    e: impl PgExecutor<'_>,
    r: &Received<'_>,
    escrow_id: Option<&str>,
) -> sqlx::Result<Option<Stored>> {
    sqlx::query_as!(
        Stored,
        r#"INSERT INTO webhook_inbox (event_id, event_type, escrow_id, outcome, order_id, payload, body_sha256)
           SELECT $1, $2, $3,
                  CASE WHEN $3::text IS NULL THEN 'ignored'
                       WHEN o.id IS NULL THEN 'unmatched' ELSE 'processed' END,
                  o.id, $4::text::jsonb, $5
           FROM (VALUES (1)) AS one (x) LEFT JOIN orders o ON o.escrow_id = $3
           ON CONFLICT (event_id) DO NOTHING
           RETURNING outcome, order_id"#,
        r.event_id,
        r.event_type,
        escrow_id,
        r.body,
        r.body_sha256
    )
    .fetch_optional(e)
    .await
}

/// Whether an event with this id is stored (so applied, or set aside for good).
pub async fn contains(e: impl PgExecutor<'_>, event_id: &str) -> sqlx::Result<bool> {
    let found = sqlx::query_scalar!(
        "SELECT 1 AS \"found!\" FROM webhook_inbox WHERE event_id = $1",
        event_id
    )
    .fetch_optional(e)
    .await?;
    Ok(found.is_some())
}

/// The last event of a type for an order: when we received it, and when DHMAD says it
/// happened (its envelope's `timestamp`, by DHMAD's clock).
pub struct LastEvent {
    pub received_at: time::OffsetDateTime,
    pub timestamp: Option<String>,
}

/// The last event of `event_type` received for the order, if any.
pub async fn last_received(
    e: impl PgExecutor<'_>,
    order_id: Uuid,
    event_type: &str,
) -> sqlx::Result<Option<LastEvent>> {
    sqlx::query_as!(
        LastEvent,
        "SELECT received_at, payload->>'timestamp' AS timestamp FROM webhook_inbox
          WHERE order_id = $1 AND event_type = $2 ORDER BY received_at DESC LIMIT 1",
        order_id,
        event_type
    )
    .fetch_optional(e)
    .await
}

/// Corrects the stored outcome when applying the event ended otherwise than expected.
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

/// The events stored as unmatched for `escrow_id`, or whose reprocessing failed, in the order
/// they came.
pub async fn unmatched_for_escrow(
    e: impl PgExecutor<'_>,
    escrow_id: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT event_id FROM webhook_inbox
          WHERE outcome IN ('unmatched', 'failed') AND escrow_id = $1
          ORDER BY received_at, event_id",
        escrow_id
    )
    .fetch_all(e)
    .await
}

/// Events received within `received_within` whose escrow an order holds now, stored as
/// unmatched or whose reprocessing failed more than `failed_before` ago (a lock timeout, the
/// database away: tried again, but not at every pass), up to `limit`: the unmatched first, each
/// oldest first. Bounded in time: the inbox keeps every event, and those of escrows sold
/// outside the shop stay unmatched for good.
pub async fn unmatched_now_held(
    e: impl PgExecutor<'_>,
    received_within: time::Duration,
    failed_before: time::Duration,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT i.event_id FROM webhook_inbox i
          WHERE i.received_at > now() - $1::bigint * interval '1 second'
            AND (i.outcome = 'unmatched'
                 OR (i.outcome = 'failed'
                     AND i.reprocessed_at < now() - $2::bigint * interval '1 second'))
            AND EXISTS (SELECT 1 FROM orders o WHERE o.escrow_id = i.escrow_id)
          ORDER BY i.outcome = 'failed', i.received_at, i.event_id
          LIMIT $3",
        received_within.whole_seconds(),
        failed_before.whole_seconds(),
        limit
    )
    .fetch_all(e)
    .await
}
