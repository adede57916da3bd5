//! The outbox console: jobs by state, and the retry and abandon actions.

use sqlx::{PgExecutor, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::admin_views::DEAD_JOB;

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
    /// A worker's attempt holds the job until then (`db::outbox::claim`).
    pub claimed_until: Option<OffsetDateTime>,
    /// A later job of the same kind exists for the order.
    pub superseded: bool,
}

impl JobRow {
    /// A worker is running it now (its claim has not lapsed).
    pub fn running(&self) -> bool {
        self.done_at.is_none()
            && self
                .claimed_until
                .is_some_and(|t| t > OffsetDateTime::now_utc())
    }

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
        j.gave_up_at, j.abandoned_at, j.last_error, j.created_at, j.claimed_until,
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

/// The order a job is for.
pub async fn job_order(e: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!("SELECT order_id FROM outbox_jobs WHERE id = $1", id)
        .fetch_optional(e)
        .await
}

/// A job, row-locked until the transaction ends.
pub async fn lock_job(e: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT j.id, j.kind, j.order_id, j.attempts, j.run_after, j.done_at, j.gave_up_at,
                j.abandoned_at, j.last_error, j.created_at, j.claimed_until,
                EXISTS (SELECT 1 FROM outbox_jobs later WHERE later.order_id = j.order_id
                         AND later.kind = j.kind AND later.id > j.id) AS "superseded!"
           FROM outbox_jobs j WHERE j.id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(e)
    .await
}

/// Closes the job for good: it never runs again (done), and it is not a failure to look at.
/// Not while a worker's claim on it lasts, by the database's clock (the one the claim was
/// taken by; an instance's own clock may run ahead of it): whether it was closed.
pub async fn abandon_job(e: impl PgExecutor<'_>, id: i64) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE outbox_jobs SET abandoned_at = now(), done_at = COALESCE(done_at, now())
          WHERE id = $1
            AND (done_at IS NOT NULL OR claimed_until IS NULL OR claimed_until <= now())",
        id
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}
