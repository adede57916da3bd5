//! The back office's consoles: the webhook inbox (with reprocessing), the outbox (retry now,
//! abandon), the audit trail, and the inbox events of one order. Every action is recorded in
//! the audit trail and answers with a flash message (see `admin::Notice`).

use askama::Template;
use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::{Html, Redirect},
    Extension,
};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    admin::{answer, shown, Flash, FlashQuery, Notice},
    admin_auth::Admin,
    csrf::CsrfToken,
    id_path::IdPath,
    order_page::fmt_time,
    render,
};
use crate::{
    db::{
        self,
        admin_consoles::{InboxFilter, InboxRow, JobRow, JobState, INBOX_COUNT_CAP, OUTCOMES},
    },
    error::{AppError, AppResult},
    orders::reprocess::{self, Reprocessed},
    state::AppState,
};

const PAGE: i64 = 50;

fn micros(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos() / 1000
}

fn from_micros(s: &str) -> Option<OffsetDateTime> {
    let m: i128 = s.parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(m.checked_mul(1000)?).ok()
}

fn bad(what: &str) -> AppError {
    AppError::BadRequest(format!("invalid {what}"))
}

/// `?a=1&b=2` from the pairs that are set, for links.
fn query_of(pairs: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    q.finish()
}

struct Opt {
    value: String,
    selected: bool,
}

fn opts<'a>(values: impl IntoIterator<Item = &'a str>, chosen: &str) -> Vec<Opt> {
    values
        .into_iter()
        .map(|v| Opt {
            value: v.to_owned(),
            selected: v == chosen,
        })
        .collect()
}

// ---- the inbox ----

pub(super) struct EventView {
    pub(super) event_id: String,
    pub(super) event_type: String,
    pub(super) escrow_id: String,
    pub(super) order_id: Option<Uuid>,
    pub(super) outcome: String,
    pub(super) received: String,
    pub(super) reprocessed: String,
    pub(super) last_error: String,
    pub(super) payload: String,
    pub(super) can_reprocess: bool,
}

fn event_view(r: InboxRow) -> EventView {
    EventView {
        can_reprocess: r.outcome != "processed",
        event_id: r.event_id,
        event_type: r.event_type,
        escrow_id: r.escrow_id.unwrap_or_default(),
        order_id: r.order_id,
        outcome: r.outcome,
        received: fmt_time(r.received_at),
        reprocessed: r.reprocessed_at.map(fmt_time).unwrap_or_default(),
        last_error: r.last_error.unwrap_or_default(),
        payload: r.payload,
    }
}

struct OutcomeCount {
    outcome: &'static str,
    count: i64,
    shown: String,
}

#[derive(Template)]
#[template(path = "admin_inbox.html")]
struct InboxPage {
    counts: Vec<OutcomeCount>,
    outcomes: Vec<Opt>,
    types: Vec<Opt>,
    events: Vec<EventView>,
    reprocessable: i64,
    next: Option<String>,
    first: Option<String>,
    flash: Option<Flash>,
    csrf: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct InboxParams {
    #[serde(default)]
    outcome: String,
    #[serde(default, rename = "type")]
    event_type: String,
    #[serde(default)]
    after: String,
}

/// `GET /admin/inbox`: stored webhook events by outcome and type, newest first, with their
/// raw JSON and a reprocess button where one can help.
pub async fn inbox(
    _: Admin,
    State(s): State<AppState>,
    Query(p): Query<InboxParams>,
    Query(f): Query<FlashQuery>,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Html<String>> {
    let outcome = match p.outcome.as_str() {
        "" => None,
        o if OUTCOMES.contains(&o) => Some(o.to_owned()),
        _ => return Err(bad("outcome filter")),
    };
    let filter = InboxFilter {
        outcome,
        event_type: (!p.event_type.is_empty()).then(|| p.event_type.clone()),
    };
    let after = match p.after.split_once('_') {
        None if p.after.is_empty() => None,
        Some((at, id)) => Some((
            from_micros(at).ok_or_else(|| bad("page cursor"))?,
            id.to_owned(),
        )),
        None => return Err(bad("page cursor")),
    };
    let mut rows = db::admin_consoles::list_inbox(&s.pool, &filter, after, PAGE + 1).await?;
    let more = rows.len() > PAGE as usize;
    rows.truncate(PAGE as usize);
    let query = query_of(&[("outcome", &p.outcome), ("type", &p.event_type)]);
    let sep = if query.is_empty() { "" } else { "&" };
    let next = rows.last().filter(|_| more).map(|r| {
        let cursor = format!("{}_{}", micros(r.received_at), r.event_id);
        format!(
            "/admin/inbox?{query}{sep}{}",
            query_of(&[("after", &cursor)])
        )
    });
    let first = (!p.after.is_empty()).then(|| format!("/admin/inbox?{query}"));
    let stored = db::admin_consoles::inbox_counts(&s.pool).await?;
    let count = |o: &str| stored.iter().find(|(x, _)| *x == o).map_or(0, |(_, n)| *n);
    let counts = OUTCOMES
        .into_iter()
        .map(|outcome| OutcomeCount {
            outcome,
            count: count(outcome),
            shown: shown(count(outcome), INBOX_COUNT_CAP),
        })
        .collect();
    let types = db::admin_consoles::inbox_types(&s.pool).await?;
    render(&InboxPage {
        counts,
        reprocessable: count("unmatched") + count("failed"),
        outcomes: opts(OUTCOMES, &p.outcome),
        types: opts(types.iter().map(String::as_str), &p.event_type),
        events: rows.into_iter().map(event_view).collect(),
        next,
        first,
        flash: f.flash(),
        csrf: csrf.0,
    })
}

/// `POST /admin/inbox/{event_id}/reprocess`: applies a stored event again, through the same
/// path as a live delivery. A processed event is left alone.
pub async fn reprocess_one(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(event_id): IdPath,
    headers: HeaderMap,
) -> AppResult<Redirect> {
    let result = reprocess::reprocess(&s.pool, &event_id).await;
    let (notice, order, detail) = match &result {
        Ok(Reprocessed::NotFound) => return Err(AppError::NotFound),
        Ok(Reprocessed::Processed(order)) => (Notice::EventProcessed, Some(*order), "processed"),
        Ok(Reprocessed::Unmatched) => (Notice::EventUnmatched, None, "still unmatched"),
        Ok(Reprocessed::Ignored) => (Notice::EventIgnored, None, "ignored"),
        Ok(Reprocessed::AlreadyProcessed) => (Notice::EventAlready, None, "already processed"),
        Err(_) => (Notice::EventFailed, None, "failed"),
    };
    let detail = format!("event {event_id}: {detail}");
    admin.record(&s, "reprocess_event", order, &detail).await?;
    if let Err(e) = result {
        tracing::warn!(event.id = %event_id, error = %e, cause = e.cause(), "could not reprocess an event");
    }
    Ok(answer(&headers, "/admin/inbox", notice, &[], order))
}

/// `POST /admin/inbox/reprocess-unmatched`: reprocesses the oldest unmatched and failed events
/// (`reprocess::BATCH_LIMIT` per click).
pub async fn reprocess_unmatched(
    admin: Admin,
    State(s): State<AppState>,
    headers: HeaderMap,
) -> AppResult<Redirect> {
    let (batch, applied) = reprocess::reprocess_unmatched(&s.pool).await?;
    for (event_id, order) in &applied {
        let detail = format!("event {event_id}: processed (reprocess unmatched)");
        admin
            .record(&s, "reprocess_event", Some(*order), &detail)
            .await?;
    }
    let detail = format!(
        "processed {}, still unmatched {}, ignored {}, failed {}",
        batch.processed, batch.unmatched, batch.ignored, batch.failed
    );
    admin
        .record(&s, "reprocess_unmatched", None, &detail)
        .await?;
    let counts = [
        ("processed", batch.processed),
        ("unmatched", batch.unmatched),
        ("failed", batch.failed),
    ];
    let notice = Notice::UnmatchedReprocessed;
    Ok(answer(&headers, "/admin/inbox", notice, &counts, None))
}

// ---- the outbox ----

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
    JobView {
        state: state.as_str(),
        next_run: if open {
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
        can_retry: open || state == JobState::Dead,
        can_abandon: open || state == JobState::Dead,
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
    let job = db::admin_consoles::lock_job(&mut *tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let state = job.state();
    let acted = job.done_at.is_none() || state == JobState::Dead;
    if acted {
        let (kind, detail) = match action {
            JobAction::Retry => {
                db::outbox::run_now(&mut *tx, &job.kind, job.order_id).await?;
                let detail = format!(
                    "Outbox job #{id} ({}) set to run now by the merchant ({})",
                    job.kind,
                    state.as_str()
                );
                ("job_retried", detail)
            }
            JobAction::Abandon => {
                db::admin_consoles::abandon_job(&mut *tx, id).await?;
                let detail = format!(
                    "Outbox job #{id} ({}) abandoned by the merchant after {} attempt(s)",
                    job.kind, job.attempts
                );
                ("job_abandoned", detail)
            }
        };
        db::events::add(&mut *tx, job.order_id, kind, &detail, None).await?;
    }
    tx.commit().await?;
    let (audit, done, notice) = match action {
        JobAction::Retry => ("retry_job", "run now", Notice::JobRetried),
        JobAction::Abandon => ("abandon_job", "abandoned", Notice::JobAbandoned),
    };
    let (notice, outcome) = if acted {
        (notice, done)
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

// ---- the audit trail ----

struct AuditView {
    at: String,
    actor: String,
    action: String,
    order_id: Option<Uuid>,
    detail: String,
    client_addr: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    actions: Vec<Opt>,
    order: String,
    rows: Vec<AuditView>,
    next: Option<String>,
    first: Option<String>,
    flash: Option<Flash>,
    csrf: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditParams {
    #[serde(default)]
    action: String,
    #[serde(default)]
    order: String,
    #[serde(default)]
    after: String,
}

/// `GET /admin/audit`: every back-office action (who, when, what, from where), newest first,
/// by action or order.
pub async fn audit(
    _: Admin,
    State(s): State<AppState>,
    Query(p): Query<AuditParams>,
    Query(f): Query<FlashQuery>,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Html<String>> {
    let order = match p.order.trim() {
        "" => None,
        o => Some(Uuid::parse_str(o).map_err(|_| bad("order id"))?),
    };
    let after = match p.after.as_str() {
        "" => None,
        a => Some(a.parse::<i64>().map_err(|_| bad("page cursor"))?),
    };
    let action = (!p.action.is_empty()).then_some(p.action.as_str());
    let mut rows = db::admin_consoles::list_audit(&s.pool, action, order, after, PAGE + 1).await?;
    let more = rows.len() > PAGE as usize;
    rows.truncate(PAGE as usize);
    let query = query_of(&[("action", &p.action), ("order", p.order.trim())]);
    let sep = if query.is_empty() { "" } else { "&" };
    let next = rows
        .last()
        .filter(|_| more)
        .map(|r| format!("/admin/audit?{query}{sep}after={}", r.id));
    let first = (!p.after.is_empty()).then(|| format!("/admin/audit?{query}"));
    let actions = db::admin_consoles::audit_actions(&s.pool).await?;
    render(&AuditPage {
        actions: opts(actions.iter().map(String::as_str), &p.action),
        order: p.order.trim().to_owned(),
        rows: rows
            .into_iter()
            .map(|r| AuditView {
                at: fmt_time(r.at),
                actor: r.actor,
                action: r.action,
                order_id: r.order_id,
                detail: r.detail,
                client_addr: r.client_addr,
            })
            .collect(),
        next,
        first,
        flash: f.flash(),
        csrf: csrf.0,
    })
}

// ---- one order's inbox events ----

#[derive(Template)]
#[template(path = "admin_order_events.html")]
struct OrderEventsPage {
    order_id: Uuid,
    extras: OrderExtras,
    flash: Option<Flash>,
    csrf: String,
}

/// `GET /admin/orders/{id}/events`: every inbox event applied (or matched) to the order, with
/// its raw JSON as stored after the signature check.
pub async fn order_events(
    _: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Query(f): Query<FlashQuery>,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Html<String>> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    db::orders::get(&s.pool, id)
        .await?
        .ok_or(AppError::NotFound)?;
    render(&OrderEventsPage {
        order_id: id,
        extras: order_extras(&s, id, None).await?,
        flash: f.flash(),
        csrf: csrf.0,
    })
}

/// What the order page (`admin_order`) shows from the consoles: the flash an action left, and
/// the inbox events applied to the order (raw JSON).
pub(super) struct OrderExtras {
    pub(super) flash: Option<Flash>,
    pub(super) events: Vec<EventView>,
}

pub(super) async fn order_extras(
    s: &AppState,
    order_id: Uuid,
    flash: Option<Flash>,
) -> AppResult<OrderExtras> {
    let events = db::admin_consoles::inbox_for_order(&s.pool, order_id).await?;
    Ok(OrderExtras {
        flash,
        events: events.into_iter().map(event_view).collect(),
    })
}
