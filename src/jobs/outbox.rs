//! The outbox worker: takes due jobs with `SKIP LOCKED` (any number of copies may run) and
//! performs them, with backoff on failure.

use std::time::Duration;

use crate::db::{self, outbox::Job};
use crate::orders::fulfilment::{self, JobOutcome};
use crate::orders::{notify, OrderError};

use super::reconciler;
use crate::state::AppState;

/// A claimed job becomes due again after this, should its worker die mid-call: at least two
/// minutes, and longer than a job's DHMAD calls can take (`orders::patience`), so a slow DHMAD
/// never lets a second worker take a job that is still running (and send its deliver again):
/// a deliver's attempt makes at most [`READS_PER_ATTEMPT`] reads and its write.
fn lease(config: &crate::config::Config) -> Duration {
    crate::orders::patience::lease(config.dhmad_timeout, READS_PER_ATTEMPT, 1)
}

/// A deliver's reads of its escrow in one attempt: before it, again with the job's new date,
/// and after DHMAD refused it.
const READS_PER_ATTEMPT: u32 = 3;

/// Jobs per drain, so one run cannot starve the other jobs.
const BATCH: usize = 20;

/// Runs due jobs; returns how many ran (not counting a deliver DHMAD's budget held back).
/// Takes none once shutdown has started.
pub async fn drain(state: &AppState) -> anyhow::Result<usize> {
    let (mut ran, mut claimed) = (0, 0);
    // Once the budget held a deliver back (checkouts come first), this drain takes no other:
    // due delivers are claimed before e-mails, and each refused one is due again a second
    // later, so a backlog of them was claimed, refused and postponed over and over while the
    // e-mails behind it never went. Nor is a drain of refusals a reason to run again at once.
    let mut budget_spent = false;
    while claimed < BATCH && !state.stopping() {
        // DHMAD's rate-limit window is shared with checkouts, which come first.
        let dhmad_calls = !budget_spent && !reconciler::must_leave_budget_to_checkouts(state).await;
        let Some(job) = db::outbox::claim(&state.pool, lease(&state.config), dhmad_calls).await?
        else {
            break;
        };
        claimed += 1;
        match run(state, &job).await? {
            Ran::HeldBack => budget_spent = true,
            Ran::Done => ran += 1,
        }
    }
    Ok(ran)
}

/// How an attempt went, for the drain.
enum Ran {
    Done,
    /// DHMAD's call budget held it back: postponed, nothing sent.
    HeldBack,
}

/// What a job that failed with `e` (not an answer it could judge: the database, DHMAD busy)
/// becomes: each kind keeps its own patience, an e-mail's a day, a deliver's twelve tries.
fn on_error(job: &Job, e: OrderError) -> JobOutcome {
    let error = format!("job error: {}", e.cause().unwrap_or_else(|| e.to_string()));
    match (e, job.kind.as_str()) {
        (OrderError::Busy { retry_after }, _) => JobOutcome::Postpone(retry_after),
        (_, notify::CONFIRMATION | notify::GOOD) => notify::failed(job, error),
        _ => fulfilment::backoff_give_up(job, error),
    }
}

async fn run(state: &AppState, job: &Job) -> anyhow::Result<Ran> {
    let outcome = match job.kind.as_str() {
        fulfilment::DELIVER => fulfilment::run_deliver(state, job).await,
        notify::CONFIRMATION | notify::GOOD => notify::run(state, job).await,
        other => Ok(JobOutcome::GiveUp(format!("unknown job kind {other}"))),
    };
    let outcome = outcome.unwrap_or_else(|e| on_error(job, e));
    // A deliver is postponed when DHMAD's budget (or DHMAD's own 429) holds its call back, or
    // at shutdown, when the drain takes nothing more anyway.
    let ran = match outcome {
        JobOutcome::Postpone(_) if job.kind == fulfilment::DELIVER => Ran::HeldBack,
        _ => Ran::Done,
    };
    // A server's refusal can repeat the buyer's address: the log gets its domain only.
    let said = crate::mail::without_addresses(&format!("{outcome:?}"));
    tracing::info!(job.id = job.id, job.kind = %job.kind, order.ref = %crate::orders::log_ref(job.order_id), job.attempt = job.attempts, outcome = %said, "outbox job ran");
    let label = match &outcome {
        JobOutcome::Done(_) => "done",
        JobOutcome::Retry(_) | JobOutcome::RetryIn(..) => "retry",
        JobOutcome::GiveUp(_) => "gave_up",
        JobOutcome::Postpone(_) => "postponed",
    };
    state.metrics.outbox_attempt(&job.kind, label);
    let written = write_outcome(state, job, &outcome).await?;
    if !written {
        tracing::warn!(
            job.id = job.id,
            job.attempt = job.attempts,
            "outbox job taken over or closed while it ran; its outcome is dropped"
        );
    }
    Ok(ran)
}

/// Writes what the attempt came to. The e-mail has gone out or DHMAD took the deliver by now:
/// a write lost to the connection (Postgres restarted meanwhile, and the kept connection met
/// it first) left the job claimed, and another worker ran it again once its lease was over,
/// a second e-mail. So a transient failure is tried again until the write is made, or finds
/// the job another worker's (the writes are fenced by the claim: `false`), or the process
/// stops: this worker takes nothing else meanwhile, and with the database away nothing could
/// be done anyway.
async fn write_outcome(state: &AppState, job: &Job, outcome: &JobOutcome) -> sqlx::Result<bool> {
    let mut pause = Duration::from_millis(100);
    loop {
        match write_once(state, job, outcome).await {
            Err(e) if db::is_transient(&e) && !state.stopping() => {
                tracing::warn!(job.id = job.id, error = %e, "could not record the job's outcome; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            written => return written,
        }
    }
}

async fn write_once(state: &AppState, job: &Job, outcome: &JobOutcome) -> sqlx::Result<bool> {
    let pool = &state.pool;
    Ok(match outcome {
        JobOutcome::Done(_) => db::outbox::finish(pool, job).await?,
        JobOutcome::Retry(err) => {
            db::outbox::retry_later(pool, job, fulfilment::backoff(job.attempts), err).await?
        }
        JobOutcome::RetryIn(wait, err) => {
            let delay = fulfilment::backoff(job.attempts).max(*wait);
            db::outbox::retry_later(pool, job, delay, err).await?
        }
        JobOutcome::Postpone(wait) => db::outbox::postpone(pool, job, *wait).await?,
        // With its line, in one transaction: written again after a failure, the give-up
        // finds the job closed and would not add it.
        JobOutcome::GiveUp(err) => {
            let mut conn = pool.acquire().await?;
            let mut tx = db::tx::begin(&mut conn).await?;
            let written = db::outbox::give_up(&mut *tx, job, err).await?;
            if written {
                let detail = format!("Automatic {} gave up: {err}", job.kind);
                db::events::add(&mut *tx, job.order_id, "job_failed", &detail, None).await?;
            }
            tx.commit().await?;
            written
        }
    })
}

/// Sets the backlog gauge (jobs not done yet, due or waiting for a retry). Called when
/// `/metrics` is scraped, so it costs nothing between scrapes and is exact when read.
pub async fn record_backlog(state: &AppState) -> sqlx::Result<()> {
    let open =
        sqlx::query_scalar!(r#"SELECT count(*) AS "open!" FROM outbox_jobs WHERE done_at IS NULL"#)
            .fetch_one(&state.pool)
            .await?;
    state.metrics.outbox_backlog(open);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slow DHMAD (a 20 s timeout) does not outlast the lease: a second worker would send
    /// the deliver again while the first still waits (the lease covered six timeouts).
    #[test]
    fn the_lease_outlasts_a_deliver_attempts_calls() {
        let mut config = crate::config::Config::from_lookup(|k| match k {
            "DATABASE_URL" => Some("postgres://u@h/db".into()),
            "DHMAD_WEBHOOK_SECRETS" => Some("s".into()),
            _ => None,
        })
        .unwrap();
        for secs in [1, 10, 20, 60] {
            config.dhmad_timeout = Duration::from_secs(secs);
            let worst = crate::orders::patience::walked(config.dhmad_timeout, READS_PER_ATTEMPT, 1);
            let lease = lease(&config);
            assert!(lease > worst, "{secs} s: {lease:?} against {worst:?}");
            assert!(lease >= Duration::from_secs(120));
        }
    }

    fn job(kind: &str, attempts: i32) -> Job {
        Job {
            id: 1,
            kind: kind.into(),
            order_id: uuid::Uuid::nil(),
            attempts,
            claim: attempts,
            queued_at: time::OffsetDateTime::now_utc(),
        }
    }

    /// An e-mail promised about a day of patience: a database hiccup at its thirteenth try
    /// (an SMTP outage of twenty minutes behind it) must not end it with a deliver's twelve.
    #[test]
    fn each_kind_keeps_its_own_patience_when_the_job_fails() {
        let db = || OrderError::Database(sqlx::Error::PoolTimedOut);
        for kind in [notify::CONFIRMATION, notify::GOOD] {
            assert!(matches!(
                on_error(&job(kind, 13), db()),
                JobOutcome::Retry(_)
            ));
            assert!(matches!(
                on_error(&job(kind, 400), db()),
                JobOutcome::GiveUp(_)
            ));
        }
        assert!(matches!(
            on_error(&job(fulfilment::DELIVER, 13), db()),
            JobOutcome::GiveUp(_)
        ));
        let busy = OrderError::Busy {
            retry_after: Duration::from_secs(3),
        };
        assert!(matches!(
            on_error(&job(notify::GOOD, 13), busy),
            JobOutcome::Postpone(_)
        ));
    }
}
