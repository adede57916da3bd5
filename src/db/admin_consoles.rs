//! The back office's consoles: the webhook inbox, the outbox, the audit trail, and the few
//! writes their actions make. Lists with optional filters are built with `QueryBuilder` and
//! planned with their values (`persistent(false)`), like the order list (`admin_views`).

use sqlx::{PgExecutor, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use super::admin_views::DEAD_JOB;

// ---- the webhook inbox ----

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
    /// The stored JSON as text.
    pub payload: String,
}

pub async fn lock_inbox(
    e: impl PgExecutor<'_>,
    event_id: &str,
) -> sqlx::Result<Option<LockedEvent>> {
    sqlx::query_as!(
        LockedEvent,
        r#"SELECT event_type, outcome, payload::text AS "payload!"
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

/// Events no order took (unmatched, or a failed reprocessing), oldest first.
pub async fn unmatched_ids(e: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT event_id FROM webhook_inbox WHERE outcome IN ('unmatched', 'failed')
          ORDER BY received_at, event_id LIMIT $1",
        limit
    )
    .fetch_all(e)
    .await
}

// ---- the outbox ----

/// Where a job stands, as the console groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Not done, no failed attempt yet.
    Pending,
    /// Not done, at least one failed attempt: retried with backoff.
    Failing,
    /// Gave up after its attempts (`outbox::give_up`), not retried or abandoned since.
    Dead,
    /// Gave up, then a later job of its kind for the order took over.
    Superseded,
    Done,
    /// Closed by the merchant.
    Abandoned,
}

impl JobState {
    /// The console's `state` filters, with the SQL predicate of each over `outbox_jobs j`.
    pub const FILTERS: [JobState; 4] = [Self::Pending, Self::Failing, Self::Dead, Self::Done];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Failing => "failing",
            Self::Dead => "dead",
            Self::Superseded => "superseded",
            Self::Done => "done",
            Self::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::FILTERS.into_iter().find(|f| f.as_str() == s)
    }

    /// The filter's predicate; `Done` lists every closed job (done, superseded, abandoned).
    fn predicate(self) -> &'static str {
        match self {
            Self::Pending => "(j.done_at IS NULL AND j.last_error IS NULL AND j.attempts <= 1)",
            Self::Failing => "(j.done_at IS NULL AND (j.last_error IS NOT NULL OR j.attempts > 1))",
            Self::Dead => DEAD_JOB,
            Self::Superseded | Self::Done | Self::Abandoned => "(j.done_at IS NOT NULL)",
        }
    }
}

/// One job, as the console shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub order_id: Uuid,
    pub attempts: i32,
    pub run_after: OffsetDateTime,
    pub done_at: Option<OffsetDateTime>,
    pub gave_up_at: Option<OffsetDateTime>,
    pub abandoned_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    /// A later job of the same kind exists for the order.
    pub superseded: bool,
}

impl JobRow {
    pub fn state(&self) -> JobState {
        match (self.abandoned_at, self.gave_up_at, self.done_at) {
            (Some(_), _, _) => JobState::Abandoned,
            (None, Some(_), _) if self.superseded => JobState::Superseded,
            (None, Some(_), _) => JobState::Dead,
            (None, None, Some(_)) => JobState::Done,
            (None, None, None) if self.last_error.is_some() || self.attempts > 1 => {
                JobState::Failing
            }
            (None, None, None) => JobState::Pending,
        }
    }
}

const JOB_COLUMNS: &str = "SELECT j.id, j.kind, j.order_id, j.attempts, j.run_after, j.done_at,
        j.gave_up_at, j.abandoned_at, j.last_error, j.created_at,
        EXISTS (SELECT 1 FROM outbox_jobs later WHERE later.order_id = j.order_id
                 AND later.kind = j.kind AND later.id > j.id) AS superseded
   FROM outbox_jobs j";

/// One page of jobs, newest first, strictly older than `after`. No state: every job not done,
/// and the dead ones (what needs a look).
pub async fn list_jobs(
    e: impl PgExecutor<'_>,
    state: Option<JobState>,
    after: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<JobRow>> {
    let mut qb = QueryBuilder::<Postgres>::new(JOB_COLUMNS);
    match state {
        Some(s) => qb.push(" WHERE ").push(s.predicate()),
        None => qb
            .push(" WHERE (j.done_at IS NULL OR ")
            .push(DEAD_JOB)
            .push(")"),
    };
    if let Some(id) = after {
        qb.push(" AND j.id < ").push_bind(id);
    }
    qb.push(" ORDER BY j.id DESC LIMIT ").push_bind(limit);
    qb.build_query_as().persistent(false).fetch_all(e).await
}

/// How many jobs are pending, failing and dead.
pub async fn job_counts(e: impl PgExecutor<'_>) -> sqlx::Result<[i64; 3]> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT ARRAY[");
    for (i, s) in [JobState::Pending, JobState::Failing, JobState::Dead]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            qb.push(", ");
        }
        qb.push("(SELECT count(*) FROM outbox_jobs j WHERE ")
            .push(s.predicate())
            .push(")");
    }
    qb.push("]");
    let counts: Vec<i64> = qb
        .build_query_scalar()
        .persistent(false)
        .fetch_one(e)
        .await?;
    Ok([0, 1, 2].map(|i| counts.get(i).copied().unwrap_or(0)))
}

/// A job, row-locked until the transaction ends.
pub async fn lock_job(e: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT j.id, j.kind, j.order_id, j.attempts, j.run_after, j.done_at, j.gave_up_at,
                j.abandoned_at, j.last_error, j.created_at,
                EXISTS (SELECT 1 FROM outbox_jobs later WHERE later.order_id = j.order_id
                         AND later.kind = j.kind AND later.id > j.id) AS "superseded!"
           FROM outbox_jobs j WHERE j.id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(e)
    .await
}

/// Closes the job for good: it never runs again (done), and it is not a failure to look at.
pub async fn abandon_job(e: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE outbox_jobs SET abandoned_at = now(), done_at = COALESCE(done_at, now())
          WHERE id = $1",
        id
    )
    .execute(e)
    .await?;
    Ok(())
}

// ---- the audit trail ----

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub order_id: Option<Uuid>,
    pub detail: String,
    pub client_addr: String,
}

/// One page of the trail, newest first, strictly older than `after` (an id).
pub async fn list_audit(
    e: impl PgExecutor<'_>,
    action: Option<&str>,
    order_id: Option<Uuid>,
    after: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<AuditRow>> {
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT id, at, actor, action, order_id, detail, client_addr FROM admin_audit WHERE TRUE",
    );
    if let Some(a) = action {
        qb.push(" AND action = ").push_bind(a);
    }
    if let Some(o) = order_id {
        qb.push(" AND order_id = ").push_bind(o);
    }
    if let Some(id) = after {
        qb.push(" AND id < ").push_bind(id);
    }
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    qb.build_query_as().persistent(false).fetch_all(e).await
}

/// The actions the trail holds, each once (a loose index scan of `admin_audit_action`).
pub async fn audit_actions(e: impl PgExecutor<'_>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"WITH RECURSIVE t(action) AS (
             (SELECT action FROM admin_audit ORDER BY action LIMIT 1)
             UNION ALL
             SELECT (SELECT a.action FROM admin_audit a WHERE a.action > t.action
                      ORDER BY a.action LIMIT 1)
               FROM t WHERE t.action IS NOT NULL
           )
           SELECT action AS "action!" FROM t WHERE action IS NOT NULL"#
    )
    .fetch_all(e)
    .await
}

// ---- reconciliation ----

/// The newest timeline line's id: what a reconciliation pass wrote comes after it.
pub async fn last_event_id(e: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    let id = sqlx::query_scalar!(r#"SELECT COALESCE(max(id), 0) AS "id!" FROM order_events"#)
        .fetch_one(e)
        .await?;
    Ok(id)
}

/// Orders whose status a read of DHMAD by `source` changed since timeline line `after`
/// (`apply_escrow_snapshot` writes "DHMAD escrow a → b (source)" on each transition).
pub async fn changed_since(e: impl PgExecutor<'_>, after: i64, source: &str) -> sqlx::Result<i64> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(DISTINCT order_id) AS "n!" FROM order_events
            WHERE id > $1 AND kind = 'escrow_status' AND detail LIKE '%(' || $2 || ')'"#,
        after,
        source
    )
    .fetch_one(e)
    .await?;
    Ok(n)
}

/// DHMAD answered about the order's escrow again: the flag no longer holds.
pub async fn clear_attention(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE orders SET attention = NULL, updated_at = now()
          WHERE id = $1 AND attention IS NOT NULL",
        id
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}
