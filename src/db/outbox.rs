use std::time::Duration;

use sqlx::PgExecutor;
use uuid::Uuid;

/// A claimed job. `attempts` counts this attempt.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub order_id: Uuid,
    pub attempts: i32,
    /// Which claim of the job this is: only its outcome may be written (`claims` never goes
    /// back, where a postponed attempt gives its number back).
    pub claim: i32,
    /// When it was queued: what it was asked to do predates anything DHMAD did after it.
    pub queued_at: time::OffsetDateTime,
}

/// Queues a job unless one of the same kind is already open for the order.
pub async fn enqueue(e: impl PgExecutor<'_>, kind: &str, order_id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "INSERT INTO outbox_jobs (kind, order_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        kind,
        order_id
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Dates the order's open job of `kind` now, if it was queued before `before`: what it is to
/// do was asked again (the merchant's "ship" after a rejection the job predates). One no
/// worker holds is due now, with the attempts of a retry that reads first; an attempt under
/// way reads the new date before it closes the job (`fulfilment::deliver::awaits_delivery_for`),
/// and one that read it too early does not close it ([`finish`]).
/// Whether it was dated anew.
pub async fn redate_open(
    e: impl PgExecutor<'_>,
    kind: &str,
    order_id: Uuid,
    before: time::OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE outbox_jobs SET created_at = now(),
                run_after = CASE WHEN claimed_until IS NULL OR claimed_until <= now()
                                 THEN now() ELSE run_after END,
                attempts = CASE WHEN claimed_until IS NULL OR claimed_until <= now()
                                THEN LEAST(attempts, 1) ELSE attempts END
          WHERE kind = $1 AND order_id = $2 AND done_at IS NULL AND created_at < $3",
        kind,
        order_id,
        before
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// When the job was queued, as it is dated now (`None`: no such job).
pub async fn queued_at(
    e: impl PgExecutor<'_>,
    id: i64,
) -> sqlx::Result<Option<time::OffsetDateTime>> {
    sqlx::query_scalar!("SELECT created_at FROM outbox_jobs WHERE id = $1", id)
        .fetch_optional(e)
        .await
}

/// A new job of `kind` for the order, dated now, unless one is open; whether it was queued.
/// After one that gave up, it counts as a retry (`attempts` 1), so that its first attempt reads
/// before it acts: an attempt of the one that gave up may have landed, its answer lost (a
/// deliver the merchant asks for again after DHMAD failed it twelve times). Dated now, not as
/// the one that gave up: it is a new request (a new "ship").
pub async fn enqueue_after(
    e: impl PgExecutor<'_>,
    kind: &str,
    order_id: Uuid,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "INSERT INTO outbox_jobs (kind, order_id, attempts)
         SELECT $1, $2, CASE WHEN last.gave_up_at IS NULL THEN 0 ELSE 1 END
           FROM (SELECT) AS one
           LEFT JOIN LATERAL (SELECT gave_up_at FROM outbox_jobs
                               WHERE kind = $1 AND order_id = $2
                               ORDER BY id DESC LIMIT 1) AS last ON true
         ON CONFLICT DO NOTHING",
        kind,
        order_id
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// [`enqueue`], unless the order's last job of this kind was abandoned: the merchant's
/// decision (`list_missing_deliver` keeps it too), until the merchant queues one again. After
/// a job that gave up, the new one carries it on as [`run_now`]'s does: its attempts may have
/// landed with their answers lost, so a deliver reads the escrow before it sends again.
pub async fn enqueue_unless_abandoned(
    e: impl PgExecutor<'_>,
    kind: &str,
    order_id: Uuid,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "INSERT INTO outbox_jobs (kind, order_id, attempts, created_at)
         SELECT $1, $2, CASE WHEN last.gave_up_at IS NULL THEN 0 ELSE 1 END,
                CASE WHEN last.gave_up_at IS NULL THEN now() ELSE last.created_at END
           FROM (SELECT) AS one
           LEFT JOIN LATERAL (SELECT abandoned_at, gave_up_at, created_at FROM outbox_jobs
                               WHERE kind = $1 AND order_id = $2
                               ORDER BY id DESC LIMIT 1) AS last ON true
          WHERE last.abandoned_at IS NULL
         ON CONFLICT DO NOTHING",
        kind,
        order_id
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Claims the next due job with `SKIP LOCKED` (several workers never take the same one) and
/// leases it: it becomes due again after `lease` if this worker dies before finishing it.
/// Without `dhmad_calls`, jobs that call DHMAD (`deliver`) wait: checkouts come first. Due
/// delivers go before due e-mails: DHMAD releases the money on a deliver, and e-mails to an
/// SMTP server gone silent take their whole timeout each, for a day of retries.
pub async fn claim(
    e: impl PgExecutor<'_>,
    lease: Duration,
    dhmad_calls: bool,
) -> sqlx::Result<Option<Job>> {
    let lease_ms = lease.as_millis() as i64;
    sqlx::query_as!(
        Job,
        "UPDATE outbox_jobs SET attempts = attempts + 1, claims = claims + 1,
                run_after = now() + $1::bigint * interval '1 millisecond',
                claimed_until = now() + $1::bigint * interval '1 millisecond'
         WHERE id = (SELECT id FROM outbox_jobs WHERE done_at IS NULL AND run_after <= now()
                       AND ($2 OR kind <> 'deliver')
                     ORDER BY kind <> 'deliver', run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id, kind, order_id, attempts, claims AS claim, created_at AS queued_at",
        lease_ms,
        dhmad_calls
    )
    .fetch_optional(e)
    .await
}

// The outcome of an attempt is written only by the worker whose claim it is (`claims` and
// `attempts` are still its numbers, and the job is open): a worker whose lease lapsed and
// whose job another worker took must not overwrite that one's result. `claims` never goes
// back, where a postponed attempt gives its number back; `attempts` as well, since a binary
// from before `claims` claims without counting it. Each clears the claim. `false` when the
// job had moved on.

/// Closes the job as done; unless what it is to do was asked again while the attempt ran (the
/// merchant's "ship" dated it anew, [`redate_open`], after the attempt had read its date): it
/// is then due again at once, and its next attempt reads the escrow with the new date (closed,
/// the new ship would be lost).
pub async fn finish(e: impl PgExecutor<'_>, job: &Job) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE outbox_jobs
            SET done_at = CASE WHEN created_at = $4 THEN now() END,
                last_error = CASE WHEN created_at = $4 THEN NULL ELSE last_error END,
                run_after = CASE WHEN created_at = $4 THEN run_after ELSE now() END,
                claimed_until = NULL
          WHERE id = $1 AND claims = $2 AND attempts = $3 AND done_at IS NULL",
        job.id,
        job.claim,
        job.attempts,
        job.queued_at
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Closes the job as given up, with why: visible in the back office, retryable from there.
pub async fn give_up(e: impl PgExecutor<'_>, job: &Job, error: &str) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE outbox_jobs SET done_at = now(), gave_up_at = now(), last_error = $4,
                claimed_until = NULL
          WHERE id = $1 AND claims = $2 AND attempts = $3 AND done_at IS NULL",
        job.id,
        job.claim,
        job.attempts,
        error
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Makes the order's open job of `kind` due now, or queues one: the merchant's "retry". A job
/// a worker is running now is left to it (`false`): a second worker would make its call again.
/// A job queued after one that gave up carries it on: its attempts may have landed with their
/// answers lost, so it keeps that job's queued time and starts as a retry (a deliver reads the
/// escrow first, and is not sent again over a rejection made since; `fulfilment::run_deliver`).
pub async fn run_now(e: impl PgExecutor<'_>, kind: &str, order_id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "INSERT INTO outbox_jobs (kind, order_id, attempts, created_at)
         SELECT $1, $2, CASE WHEN last.gave_up_at IS NULL THEN 0 ELSE 1 END,
                CASE WHEN last.gave_up_at IS NULL THEN now() ELSE last.created_at END
           FROM (SELECT) AS one
           LEFT JOIN LATERAL (SELECT gave_up_at, created_at FROM outbox_jobs
                               WHERE kind = $1 AND order_id = $2 AND done_at IS NOT NULL
                               ORDER BY id DESC LIMIT 1) AS last ON true
         ON CONFLICT (kind, order_id) WHERE done_at IS NULL DO UPDATE SET run_after = now()
           WHERE outbox_jobs.claimed_until IS NULL OR outbox_jobs.claimed_until <= now()",
        kind,
        order_id
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Jobs of `kind` sent (closed, neither given up nor abandoned) within `within` for orders to
/// `email`'s mailbox, its sub-addresses (`email+tag@…`) counted with it (`mailbox_of`, in the
/// migrations); and those a worker is sending now that were queued before job `job_id` (an
/// instance beside this one would otherwise count as this one does, and both send).
pub async fn sent_to_address(
    e: impl PgExecutor<'_>,
    kind: &str,
    email: &str,
    within: time::Duration,
    job_id: i64,
) -> sqlx::Result<i64> {
    let within_ms = within.whole_milliseconds() as i64;
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM outbox_jobs j JOIN orders o ON o.id = j.order_id
            WHERE mailbox_of(o.buyer_email) = mailbox_of(lower($2)) AND j.kind = $1
              AND ((j.done_at > now() - $3::bigint * interval '1 millisecond'
                    AND j.gave_up_at IS NULL AND j.abandoned_at IS NULL)
                   OR (j.done_at IS NULL AND j.claimed_until > now() AND j.id < $4))"#,
        kind,
        email,
        within_ms,
        job_id
    )
    .fetch_one(e)
    .await
}

/// Whether a job of `kind` for the order was given up before (the merchant's retry of it is
/// the open one).
pub async fn gave_up_before(
    e: impl PgExecutor<'_>,
    kind: &str,
    order_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM outbox_jobs
                           WHERE kind = $1 AND order_id = $2 AND gave_up_at IS NOT NULL) AS "x!""#,
        kind,
        order_id
    )
    .fetch_one(e)
    .await
}

/// Counts one more try of `job` that ended with the server silent; how many there have been
/// (`None`: the job is no longer this attempt's, as for every outcome written here).
pub async fn count_silent_try(e: impl PgExecutor<'_>, job: &Job) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar!(
        "UPDATE outbox_jobs SET silent_tries = silent_tries + 1
          WHERE id = $1 AND claims = $2 AND attempts = $3 AND done_at IS NULL
          RETURNING silent_tries",
        job.id,
        job.claim,
        job.attempts
    )
    .fetch_optional(e)
    .await
}

/// Runs the job again after `delay` without counting this attempt (it sent nothing).
pub async fn postpone(e: impl PgExecutor<'_>, job: &Job, delay: Duration) -> sqlx::Result<bool> {
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    let r = sqlx::query!(
        "UPDATE outbox_jobs SET run_after = now() + $4::bigint * interval '1 millisecond',
                attempts = greatest(attempts - 1, 0), claimed_until = NULL
         WHERE id = $1 AND claims = $2 AND attempts = $3 AND done_at IS NULL",
        job.id,
        job.claim,
        job.attempts,
        delay_ms
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn retry_later(
    e: impl PgExecutor<'_>,
    job: &Job,
    delay: Duration,
    error: &str,
) -> sqlx::Result<bool> {
    let delay_ms = delay.as_millis() as i64;
    let r = sqlx::query!(
        "UPDATE outbox_jobs SET run_after = now() + $4::bigint * interval '1 millisecond',
                last_error = $5, claimed_until = NULL
         WHERE id = $1 AND claims = $2 AND attempts = $3 AND done_at IS NULL",
        job.id,
        job.claim,
        job.attempts,
        delay_ms,
        error
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A job as the back office shows it.
#[derive(Debug, Clone)]
pub struct JobView {
    pub id: i64,
    pub kind: String,
    pub attempts: i32,
    pub run_after: time::OffsetDateTime,
    pub done_at: Option<time::OffsetDateTime>,
    pub gave_up_at: Option<time::OffsetDateTime>,
    pub last_error: Option<String>,
}

pub async fn list_for_order(e: impl PgExecutor<'_>, order_id: Uuid) -> sqlx::Result<Vec<JobView>> {
    sqlx::query_as!(
        JobView,
        "SELECT id, kind, attempts, run_after, done_at, gave_up_at, last_error
           FROM outbox_jobs WHERE order_id = $1 ORDER BY id DESC",
        order_id
    )
    .fetch_all(e)
    .await
}
