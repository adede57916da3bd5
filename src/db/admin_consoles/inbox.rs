//! The webhook inbox console: stored events, their counts and filters, and the writes a
//! reprocessing makes.

use sqlx::{PgExecutor, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

/// Outcomes stored in `webhook_inbox.outcome`. A duplicate (a redelivery of a stored event) is
/// answered and dropped, never stored; `failed` is a reprocessing that failed.
pub const OUTCOMES: [&str; 4] = ["processed", "ignored", "unmatched", "failed"];

/// One stored event, as the console shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxRow {
    pub event_id: String,
    pub event_type: String,
    pub escrow_id: Option<String>,
    pub order_id: Option<Uuid>,
    pub outcome: String,
    pub received_at: OffsetDateTime,
    pub reprocessed_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    /// The stored JSON, indented.
    pub payload: String,
}

#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    pub outcome: Option<String>,
    pub event_type: Option<String>,
}

const INBOX_COLUMNS: &str =
    "SELECT event_id, event_type, escrow_id, order_id, outcome, received_at,
        reprocessed_at, last_error, jsonb_pretty(payload) AS payload FROM webhook_inbox";

/// One page of stored events, newest first, strictly older than `after` (received_at, id).
pub async fn list_inbox(
    e: impl PgExecutor<'_>,
    f: &InboxFilter,
    after: Option<(OffsetDateTime, String)>,
    limit: i64,
) -> sqlx::Result<Vec<InboxRow>> {
    let mut qb = QueryBuilder::<Postgres>::new(INBOX_COLUMNS);
    qb.push(" WHERE TRUE");
    if let Some(o) = &f.outcome {
        qb.push(" AND outcome = ").push_bind(o);
    }
    if let Some(t) = &f.event_type {
        qb.push(" AND event_type = ").push_bind(t);
    }
    if let Some((at, id)) = after {
        qb.push(" AND (received_at, event_id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY received_at DESC, event_id DESC LIMIT ")
        .push_bind(limit);
    qb.build_query_as().persistent(false).fetch_all(e).await
}

/// The events applied to an order (or matched to it), oldest first.
pub async fn inbox_for_order(
    e: impl PgExecutor<'_>,
    order_id: Uuid,
) -> sqlx::Result<Vec<InboxRow>> {
    sqlx::query_as!(
        InboxRow,
        r#"SELECT event_id, event_type, escrow_id, order_id, outcome, received_at, reprocessed_at,
                last_error, jsonb_pretty(payload) AS "payload!"
           FROM webhook_inbox WHERE order_id = $1 ORDER BY received_at, event_id"#,
        order_id
    )
    .fetch_all(e)
    .await
}

/// Counts of events stop here: the console's cost stays bounded however many are stored.
pub const INBOX_COUNT_CAP: i64 = 10_000;

/// How many stored events have each outcome of [`OUTCOMES`], up to [`INBOX_COUNT_CAP`].
pub async fn inbox_counts(e: impl PgExecutor<'_>) -> sqlx::Result<Vec<(&'static str, i64)>> {
    let r = sqlx::query!(
        r#"SELECT
             (SELECT count(*) FROM (SELECT 1 FROM webhook_inbox WHERE outcome = 'processed' LIMIT $1) c) AS "processed!",
             (SELECT count(*) FROM (SELECT 1 FROM webhook_inbox WHERE outcome = 'ignored' LIMIT $1) c) AS "ignored!",
             (SELECT count(*) FROM (SELECT 1 FROM webhook_inbox WHERE outcome = 'unmatched' LIMIT $1) c) AS "unmatched!",
             (SELECT count(*) FROM (SELECT 1 FROM webhook_inbox WHERE outcome = 'failed' LIMIT $1) c) AS "failed!""#,
        INBOX_COUNT_CAP
    )
    .fetch_one(e)
    .await?;
    Ok(OUTCOMES
        .into_iter()
        .zip([r.processed, r.ignored, r.unmatched, r.failed])
        .collect())
}

/// Events no order took and failed reprocessings, up to [`INBOX_COUNT_CAP`] each: the
/// dashboard's share of [`inbox_counts`].
pub async fn inbox_trouble(e: impl PgExecutor<'_>) -> sqlx::Result<(i64, i64)> {
    let r = sqlx::query!(
        r#"SELECT
             (SELECT count(*) FROM (SELECT 1 FROM webhook_inbox WHERE outcome = 'unmatched' LIMIT $1) c) AS "unmatched!",
             (SELECT count(*) FROM (SELECT 1 FROM webhook_inbox WHERE outcome = 'failed' LIMIT $1) c) AS "failed!""#,
        INBOX_COUNT_CAP
    )
    .fetch_one(e)
    .await?;
    Ok((r.unmatched, r.failed))
}

/// The event types stored, each once (a loose index scan of `webhook_inbox_type`).
pub async fn inbox_types(e: impl PgExecutor<'_>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"WITH RECURSIVE t(event_type) AS (
             (SELECT event_type FROM webhook_inbox ORDER BY event_type LIMIT 1)
             UNION ALL
             SELECT (SELECT w.event_type FROM webhook_inbox w WHERE w.event_type > t.event_type
                      ORDER BY w.event_type LIMIT 1)
               FROM t WHERE t.event_type IS NOT NULL
           )
           SELECT event_type AS "event_type!" FROM t WHERE event_type IS NOT NULL"#
    )
    .fetch_all(e)
    .await
}

/// A stored event, row-locked until the transaction ends.
pub struct LockedEvent {
    pub event_type: String,
    pub outcome: String,
    /// The order it was applied to, if any.
    pub order_id: Option<Uuid>,
    /// The stored JSON as text.
    pub payload: String,
}

pub async fn lock_inbox(
    e: impl PgExecutor<'_>,
    event_id: &str,
) -> sqlx::Result<Option<LockedEvent>> {
    sqlx::query_as!(
        LockedEvent,
        r#"SELECT event_type, outcome, order_id, payload::text AS "payload!"
             FROM webhook_inbox WHERE event_id = $1 FOR UPDATE"#,
        event_id
    )
    .fetch_optional(e)
    .await
}

/// Records what reprocessing the event did.
pub async fn set_inbox_outcome(
    e: impl PgExecutor<'_>,
    event_id: &str,
    outcome: &str,
    order_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE webhook_inbox SET outcome = $2, order_id = $3, last_error = NULL,
                reprocessed_at = now()
          WHERE event_id = $1",
        event_id,
        outcome,
        order_id
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Reprocessing the event failed: kept as `failed`, with why (never over `processed`).
pub async fn mark_inbox_failed(
    e: impl PgExecutor<'_>,
    event_id: &str,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE webhook_inbox SET outcome = 'failed', last_error = $2, reprocessed_at = now()
          WHERE event_id = $1 AND outcome <> 'processed'",
        event_id,
        error
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Events no order took (unmatched, or a failed reprocessing): those never reprocessed first,
/// then those reprocessed longest ago, each oldest first. Events that will never match (an
/// escrow sold outside the shop) so go round instead of holding the head of every batch.
pub async fn unmatched_ids(e: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT event_id FROM webhook_inbox WHERE outcome IN ('unmatched', 'failed')
          ORDER BY reprocessed_at NULLS FIRST, received_at, event_id LIMIT $1",
        limit
    )
    .fetch_all(e)
    .await
}
