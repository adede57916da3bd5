//! The webhook inbox console (with reprocessing) and one order's inbox events.

use askama::Template;
use axum::{
    extract::State,
    http::HeaderMap,
    response::{Html, Redirect},
    Extension,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{bad, from_micros, micros, opts, query_of, Opt, PAGE};
use crate::http::query::Query;
use crate::http::{
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
        admin_consoles::{InboxFilter, InboxRow, INBOX_COUNT_CAP, OUTCOMES},
    },
    error::{AppError, AppResult},
    orders::reprocess::{self, Reprocessed},
    state::AppState,
};

pub(in crate::http) struct EventView {
    pub(in crate::http) event_id: String,
    pub(in crate::http) event_type: String,
    pub(in crate::http) escrow_id: String,
    pub(in crate::http) order_id: Option<Uuid>,
    pub(in crate::http) outcome: String,
    pub(in crate::http) received: String,
    pub(in crate::http) reprocessed: String,
    pub(in crate::http) last_error: String,
    pub(in crate::http) payload: String,
    pub(in crate::http) can_reprocess: bool,
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
pub(in crate::http) struct OrderExtras {
    pub(in crate::http) flash: Option<Flash>,
    pub(in crate::http) events: Vec<EventView>,
}

pub(in crate::http) async fn order_extras(
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
