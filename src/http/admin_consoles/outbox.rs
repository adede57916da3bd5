//! The outbox console: jobs by state, retry now, abandon.

use askama::Template;
use axum::{
    extract::State,
    http::HeaderMap,
    response::{Html, Redirect},
    Extension,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{bad, opts, query_of, Opt, PAGE};
use crate::http::query::Query;
use crate::http::{
    admin::{answer, Flash, FlashQuery, Notice},
    admin_auth::Admin,
    csrf::CsrfToken,
    id_path::IdPath,
    order_page::fmt_time,
    render,
};
use crate::{
    db::{
        self,
        admin_consoles::{JobRow, JobState},
    },
    error::{AppError, AppResult},
    state::AppState,
};

struct JobView {
    id: i64,
    kind: String,
    order_id: Uuid,
    state: &'static str,
    attempts: i32,
    next_run: String,
    created: String,
    closed: String,
    last_error: String,
    can_retry: bool,
    can_abandon: bool,
}

fn job_view(j: JobRow) -> JobView {
    let state = j.state();
    let open = j.done_at.is_none();
    // A job a worker runs now offers nothing to do: it is left to finish.
    let running = j.running();
    let actionable = !running && (open || state == JobState::Dead);
    JobView {
        state: state.as_str(),
        next_run: if running {
            "running now".into()
        } else if open {
            fmt_time(j.run_after)
        } else {
            String::new()
        },
        created: fmt_time(j.created_at),
        closed: j
            .abandoned_at
            .or(j.gave_up_at)
            .or(j.done_at)
            .map(fmt_time)
            .unwrap_or_default(),
        can_retry: actionable,
        can_abandon: actionable,
        id: j.id,
        kind: j.kind,
        order_id: j.order_id,
        attempts: j.attempts,
        last_error: j.last_error.unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "admin_outbox.html")]
struct OutboxPage {
    pending: i64,
    failing: i64,
    dead: i64,
    states: Vec<Opt>,
    jobs: Vec<JobView>,
    next: Option<String>,
    first: Option<String>,
    flash: Option<Flash>,
    csrf: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct OutboxParams {
    #[serde(default)]
    state: String,
    #[serde(default)]
    after: String,
}

/// `GET /admin/outbox`: jobs not done (pending, failing) and dead ones by default, or one state;
/// attempts, next run and last error, with retry-now and abandon buttons.
pub async fn outbox(
    _: Admin,
    State(s): State<AppState>,
    Query(p): Query<OutboxParams>,
    Query(f): Query<FlashQuery>,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Html<String>> {
    let state = match p.state.as_str() {
        "" => None,
        x => Some(JobState::parse(x).ok_or_else(|| bad("state filter"))?),
    };
    let after = match p.after.as_str() {
        "" => None,
        a => Some(a.parse::<i64>().map_err(|_| bad("page cursor"))?),
    };
    let mut jobs = db::admin_consoles::list_jobs(&s.pool, state, after, PAGE + 1).await?;
    let more = jobs.len() > PAGE as usize;
    jobs.truncate(PAGE as usize);
    let query = query_of(&[("state", &p.state)]);
    let sep = if query.is_empty() { "" } else { "&" };
    let next = jobs
        .last()
        .filter(|_| more)
        .map(|j| format!("/admin/outbox?{query}{sep}after={}", j.id));
    let first = (!p.after.is_empty()).then(|| format!("/admin/outbox?{query}"));
    let [pending, failing, dead] = db::admin_consoles::job_counts(&s.pool).await?;
    render(&OutboxPage {
        pending,
        failing,
        dead,
        states: opts(JobState::FILTERS.map(JobState::as_str), &p.state),
        jobs: jobs.into_iter().map(job_view).collect(),
        next,
        first,
        flash: f.flash(),
        csrf: csrf.0,
    })
}

fn job_id(id: &str) -> AppResult<i64> {
    id.parse().map_err(|_| AppError::NotFound)
}

/// What the merchant does to one outbox job.
#[derive(Clone, Copy)]
enum JobAction {
    /// Runs now (`outbox::run_now`): an open job becomes due, a dead one gets a fresh job of
    /// its kind.
    Retry,
    /// Closed for good: it never runs again and no longer counts as failed.
    Abandon,
}

/// `POST /admin/outbox/{id}/retry`: the job runs now. Closed jobs are left alone.
pub async fn retry_job(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> AppResult<Redirect> {
    on_job(admin, &s, &id, &headers, JobAction::Retry).await
}

/// `POST /admin/outbox/{id}/abandon`: closes an open or dead job for good. Noted on the
/// order's timeline and in the audit trail.
pub async fn abandon_job(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> AppResult<Redirect> {
    on_job(admin, &s, &id, &headers, JobAction::Abandon).await
}

/// Acts on an open or dead job under its row lock (a closed one is left alone), with a line on
/// the order's timeline, a row in the audit trail and the answer on the outbox page.
async fn on_job(
    admin: Admin,
    s: &AppState,
    id: &str,
    headers: &HeaderMap,
    action: JobAction,
) -> AppResult<Redirect> {
    let id = job_id(id)?;
    let mut conn = s.pool.acquire().await?;
    let mut tx = db::tx::begin(&mut conn).await?;
    // The order's lock first, as everywhere else: a deliver is re-queued under it, so an
    // abandon and a re-queue cannot cross (the re-queue reading the job before the abandon
    // committed, and queuing a deliver the merchant had just called off).
    let order_id = db::admin_consoles::job_order(&mut *tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    db::orders::lock(&mut *tx, order_id).await?;
    let job = db::admin_consoles::lock_job(&mut *tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let state = job.state();
    // A job a worker runs right now is left to it: a second run would repeat its call or
    // e-mail, and abandoning it would not stop what is under way. (Retrying a dead job whose
    // newer job of its kind is running finds that one running too.)
    let mut running = job.running();
    let mut acted = !running && (job.done_at.is_none() || state == JobState::Dead);
    if acted {
        let line = match action {
            JobAction::Retry => db::outbox::run_now(&mut *tx, &job.kind, job.order_id)
                .await?
                .then(|| {
                    let detail = format!(
                        "Outbox job #{id} ({}) set to run now by the merchant ({})",
                        job.kind,
                        state.as_str()
                    );
                    ("job_retried", detail)
                }),
            JobAction::Abandon => db::admin_consoles::abandon_job(&mut *tx, id)
                .await?
                .then(|| {
                    let detail = format!(
                        "Outbox job #{id} ({}) abandoned by the merchant after {} attempt(s)",
                        job.kind, job.attempts
                    );
                    ("job_abandoned", detail)
                }),
        };
        match line {
            Some((kind, detail)) => {
                db::events::add(&mut *tx, job.order_id, kind, &detail, None).await?;
            }
            None => (acted, running) = (false, true),
        }
    }
    tx.commit().await?;
    let (audit, done, notice) = match action {
        JobAction::Retry => ("retry_job", "run now", Notice::JobRetried),
        JobAction::Abandon => ("abandon_job", "abandoned", Notice::JobAbandoned),
    };
    let (notice, outcome) = if acted {
        (notice, done)
    } else if running {
        (Notice::JobRunning, "running now, left to its worker")
    } else {
        (Notice::JobClosed, "closed already, nothing done")
    };
    let detail = format!("job #{id} ({}, {}): {outcome}", job.kind, state.as_str());
    admin.record(s, audit, Some(job.order_id), &detail).await?;
    Ok(answer(
        headers,
        "/admin/outbox",
        notice,
        &[],
        Some(job.order_id),
    ))
}
