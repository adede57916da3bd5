//! `GET /sandbox`: an HTML page listing webhook delivery attempts, escrows and sessions, with
//! buttons (plain forms, see `control::forms`) for what a developer clicks through: each
//! escrow's control actions possible now (`control::Allowed`) and moving the clock.

use askama::Template;

use crate::lifecycle::money;
use axum::extract::{rejection::QueryRejection, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::control::flash::{self, FlashQuery};
use crate::control::Allowed;
use crate::state::{AppState, EscrowRecord, Store};

pub struct DeliveryRow {
    pub at: String,
    pub event_type: String,
    pub event_id: String,
    pub escrow: String,
    pub url: String,
    pub attempt: u32,
    pub result: String,
    pub ok: bool,
}

pub struct EscrowRow {
    pub id: String,
    pub title: String,
    pub mode: String,
    pub status: String,
    pub amount: String,
    pub buyer: String,
    /// Which buttons to show: the control actions possible now.
    pub allowed: Allowed,
    /// The guest payment proof waiting for DHMAD, what Approve/Reject decide on.
    pub payment_proof: Option<PaymentProofView>,
}

/// A pending guest deposit proof: how the guest says they paid, and their file.
pub struct PaymentProofView {
    pub method: String,
    pub amount: String,
    /// `(download URL, file name)`; `None` when the guest uploaded nothing.
    pub file: Option<(String, String)>,
}

impl PaymentProofView {
    fn of(store: &Store, rec: &EscrowRecord) -> Option<Self> {
        let dp = rec.pending_deposit()?;
        Some(Self {
            method: dp.method.to_string(),
            amount: money::shown(dp.amount, &rec.currency),
            file: dp.file.as_ref().and_then(|id| {
                let f = store.files.get(id)?;
                Some((format!("/sandbox/files/{id}"), f.name.clone()))
            }),
        })
    }
}

/// The line above the tables after a button: what it did, or why it was refused.
pub struct Notice {
    pub text: String,
    pub ok: bool,
}

impl Notice {
    /// A refusal (shown as an error).
    pub fn refused(text: String) -> Self {
        Self { text, ok: false }
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    base_url: String,
    seller: String,
    now: String,
    offset: i64,
    webhook_urls: Vec<String>,
    /// What the last dashboard button did or was refused with.
    notice: Option<Notice>,
    deliveries: Vec<DeliveryRow>,
    escrows: Vec<EscrowRow>,
    sessions: Vec<SessionRow>,
}

/// One checkout session on the dashboard; an escrow's newest first.
pub struct SessionRow {
    pub id: String,
    pub action: String,
    pub target: String,
    pub status: String,
    pub escrow: String,
    pub created: String,
    created_at: time::OffsetDateTime,
}

pub async fn page(
    State(state): State<AppState>,
    q: Result<Query<FlashQuery>, QueryRejection>,
) -> Response {
    // A query that is not one of our notices (a hand-edited link) shows the page without one.
    let notice = q
        .ok()
        .and_then(|Query(q)| flash::notice(&state, &q))
        .map(|text| Notice { text, ok: true });
    render(&state, notice, StatusCode::OK)
}

/// The dashboard, with an optional notice shown above the tables.
pub fn render(state: &AppState, notice: Option<Notice>, status: StatusCode) -> Response {
    let deliveries = state
        .dispatcher
        .log
        .all()
        .into_iter()
        .rev()
        .map(|d| DeliveryRow {
            at: dhmad::iso::format(d.at),
            ok: d.status.is_some_and(|s| (200..300).contains(&s)),
            result: match (d.status, &d.error) {
                (Some(s), _) => format!("HTTP {s}"),
                (None, Some(e)) => e.clone(),
                (None, None) => "-".into(),
            },
            event_type: d.event_type,
            event_id: d.event_id,
            escrow: d.escrow_id.unwrap_or_default(),
            url: d.url,
            attempt: d.attempt,
        })
        .collect();
    let webhook_urls = state.dispatcher.urls();
    let (mut escrows, mut sessions) = {
        let store = state.lock_store();
        let e: Vec<_> = store
            .escrows
            .values()
            .map(|e| EscrowRow {
                id: e.id.clone(),
                title: e.title.clone(),
                mode: e.mode.to_string(),
                status: e.status.to_string(),
                amount: money::shown(e.amount, &e.currency),
                buyer: e.buyer_email.clone(),
                allowed: Allowed::of(e, !webhook_urls.is_empty()),
                payment_proof: PaymentProofView::of(&store, e),
            })
            .collect();
        let s: Vec<_> = store
            .sessions
            .values()
            .map(|s| SessionRow {
                id: s.id.clone(),
                action: s.action.to_string(),
                target: s.target_email.clone(),
                status: s.status.to_string(),
                escrow: s.escrow_id.clone(),
                created: dhmad::iso::format(s.created_at),
                created_at: s.created_at,
            })
            .collect();
        (e, s)
    };
    escrows.sort_by(|a, b| b.id.cmp(&a.id));
    // Sessions are kept by random id: without this, one escrow's came in hash order.
    sessions.sort_by(|a, b| (&b.escrow, b.created_at).cmp(&(&a.escrow, a.created_at)));
    let page = Dashboard {
        base_url: state.settings.base_url.clone(),
        seller: state.settings.seller_email.clone(),
        now: dhmad::iso::format(state.clock.now()),
        offset: state.clock.offset().whole_seconds(),
        webhook_urls,
        notice,
        deliveries,
        escrows,
        sessions,
    };
    match page.render() {
        Ok(body) => crate::security::dashboard_headers((status, Html(body)).into_response()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
