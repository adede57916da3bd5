//! The back office's dashboard and order list (filters, search, keyset pages, CSV export), and
//! the actions on one order from the list: ship, retry, reconcile. Who may use them is
//! `admin_auth::Admin`; every action is recorded in the audit trail and answers with a flash
//! message on the page it came from (`?notice=<code>` plus counts, mapped to fixed texts here:
//! nothing a URL carries is ever shown as text).

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use askama::Template;
use axum::{
    body::{Body, Bytes},
    extract::{Query, State},
    http::{header, HeaderMap, HeaderValue},
    response::{Html, IntoResponse, Redirect, Response},
    Extension,
};
use serde::Deserialize;
use tracing::Instrument;
use uuid::Uuid;

use super::{admin_auth::Admin, csrf::CsrfToken, id_path::IdPath, order_page::fmt_time, render};
use crate::{
    db::{
        self,
        admin_views::{Cursor, NeedsAction, OrderFilter, OrderRow},
    },
    error::{AppError, AppResult},
    jobs::reconciler,
    orders::{
        checkout, fulfilment, lost_escrow, sync, Action, Applied, Mode, OrderError, OrderStatus,
    },
    state::AppState,
};

/// Orders per page of the list.
const PAGE: i64 = 50;
/// Orders per query of the CSV export (keyset pages, streamed as they come).
const CSV_BATCH: i64 = 1000;
/// What reads of DHMAD from the back office write on the timeline ("… (back office)").
const SOURCE: &str = "back office";

// ---- flash messages ----

/// Every message an action may leave. The redirect carries its code and, for some, counts;
/// the text is always one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Notice {
    Shipped,
    DeliverRetried,
    CheckoutRetried,
    Reconciled,
    OrderChanged,
    OrderSame,
    OrderFlagged,
    OrderFailed,
    CreationChecked,
    EventProcessed,
    EventUnmatched,
    EventIgnored,
    EventAlready,
    EventFailed,
    UnmatchedReprocessed,
    JobRetried,
    JobAbandoned,
    JobClosed,
}

impl Notice {
    const ALL: [Notice; 18] = [
        Self::Shipped,
        Self::DeliverRetried,
        Self::CheckoutRetried,
        Self::Reconciled,
        Self::OrderChanged,
        Self::OrderSame,
        Self::OrderFlagged,
        Self::OrderFailed,
        Self::CreationChecked,
        Self::EventProcessed,
        Self::EventUnmatched,
        Self::EventIgnored,
        Self::EventAlready,
        Self::EventFailed,
        Self::UnmatchedReprocessed,
        Self::JobRetried,
        Self::JobAbandoned,
        Self::JobClosed,
    ];

    fn code(self) -> &'static str {
        match self {
            Self::Shipped => "shipped",
            Self::DeliverRetried => "deliver_retried",
            Self::CheckoutRetried => "checkout_retried",
            Self::Reconciled => "reconciled",
            Self::OrderChanged => "order_changed",
            Self::OrderSame => "order_same",
            Self::OrderFlagged => "order_flagged",
            Self::OrderFailed => "order_failed",
            Self::CreationChecked => "creation_checked",
            Self::EventProcessed => "event_processed",
            Self::EventUnmatched => "event_unmatched",
            Self::EventIgnored => "event_ignored",
            Self::EventAlready => "event_already",
            Self::EventFailed => "event_failed",
            Self::UnmatchedReprocessed => "unmatched_reprocessed",
            Self::JobRetried => "job_retried",
            Self::JobAbandoned => "job_abandoned",
            Self::JobClosed => "job_closed",
        }
    }

    fn warn(self) -> bool {
        matches!(
            self,
            Self::OrderFlagged
                | Self::OrderFailed
                | Self::EventUnmatched
                | Self::EventFailed
                | Self::JobClosed
        )
    }

    fn text(self, n: &FlashQuery) -> String {
        match self {
            Self::Shipped => "Shipping requested; DHMAD confirms in a few seconds.".into(),
            Self::DeliverRetried => {
                "Deliver queued to run now; DHMAD confirms in a few seconds.".into()
            }
            Self::CheckoutRetried => {
                "Checkout retried: the escrow and its payment page are ready.".into()
            }
            Self::Reconciled => format!(
                "Reconciliation done: {} order(s) checked, {} changed, {} failed, {} flagged \
                 for you, {} interrupted checkout(s) resolved.",
                n.count("checked"),
                n.count("changed"),
                n.count("failed"),
                n.count("flagged"),
                n.count("resolved"),
            ),
            Self::OrderChanged => "Read from DHMAD: the order changed (see its timeline).".into(),
            Self::OrderSame => "Read from DHMAD: nothing new, the order is up to date.".into(),
            Self::OrderFlagged => {
                "DHMAD does not know this order's escrow: the order is flagged for you.".into()
            }
            Self::OrderFailed => {
                "DHMAD did not answer; nothing changed. Try again in a moment.".into()
            }
            Self::CreationChecked => {
                "The interrupted checkout was looked up at DHMAD (see the timeline).".into()
            }
            Self::EventProcessed => "Event reprocessed: applied to its order.".into(),
            Self::EventUnmatched => "Event reprocessed: still no order has its escrow.".into(),
            Self::EventIgnored => "Event reprocessed: it has nothing to apply.".into(),
            Self::EventAlready => "This event was already processed: nothing changed.".into(),
            Self::EventFailed => {
                "Reprocessing failed; the event is kept as failed, with why. Try again.".into()
            }
            Self::UnmatchedReprocessed => format!(
                "Unmatched events reprocessed: {} applied, {} still unmatched, {} failed.",
                n.count("processed"),
                n.count("unmatched"),
                n.count("failed"),
            ),
            Self::JobRetried => "Job set to run now; the outbox picks it up within seconds.".into(),
            Self::JobAbandoned => {
                "Job abandoned: it will not run again (noted on the order's timeline).".into()
            }
            Self::JobClosed => "This job is closed already: nothing changed.".into(),
        }
    }
}

/// The query parameters a flash is made of: a code and counts (read as numbers only).
const FLASH_KEYS: [&str; 8] = [
    "notice",
    "checked",
    "changed",
    "failed",
    "flagged",
    "resolved",
    "processed",
    "unmatched",
];

#[derive(Debug, Default, Deserialize)]
pub(super) struct FlashQuery {
    #[serde(default)]
    notice: String,
    checked: Option<String>,
    changed: Option<String>,
    failed: Option<String>,
    flagged: Option<String>,
    resolved: Option<String>,
    processed: Option<String>,
    unmatched: Option<String>,
}

impl FlashQuery {
    fn count(&self, key: &str) -> u32 {
        let v = match key {
            "checked" => &self.checked,
            "changed" => &self.changed,
            "failed" => &self.failed,
            "flagged" => &self.flagged,
            "resolved" => &self.resolved,
            "processed" => &self.processed,
            "unmatched" => &self.unmatched,
            _ => &None,
        };
        v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    pub(super) fn flash(&self) -> Option<Flash> {
        let notice = Notice::ALL.into_iter().find(|n| n.code() == self.notice)?;
        Some(Flash {
            warn: notice.warn(),
            text: notice.text(self),
        })
    }
}

/// A message shown once at the top of the page an action returns to.
#[derive(Debug, Clone)]
pub(super) struct Flash {
    pub warn: bool,
    pub text: String,
}

/// The page to return to: the back-office page the form was on (its path and filters, from
/// `Referer`, which the shop's `Referrer-Policy: same-origin` sends), else `default`.
fn return_to(headers: &HeaderMap, default: &str) -> (String, Vec<(String, String)>) {
    let from = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .filter(|u| {
            let p = u.path();
            (p == "/admin" || p.starts_with("/admin/"))
                && p != "/admin/login"
                && !p.ends_with(".csv")
        });
    match from {
        Some(u) => (
            u.path().to_owned(),
            u.query_pairs()
                .filter(|(k, _)| !FLASH_KEYS.contains(&k.as_ref()))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ),
        None => (default.to_owned(), Vec::new()),
    }
}

/// The answer to an action: back where it came from (or `default`), with its flash message.
/// On the order list, `order` is the row to scroll to.
pub(super) fn answer(
    headers: &HeaderMap,
    default: &str,
    notice: Notice,
    counts: &[(&'static str, usize)],
    order: Option<Uuid>,
) -> Redirect {
    let (path, kept) = return_to(headers, default);
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &kept {
        q.append_pair(k, v);
    }
    q.append_pair("notice", notice.code());
    for (k, n) in counts {
        q.append_pair(k, &n.to_string());
    }
    let fragment = match order {
        Some(id) if path == "/admin" || path == "/admin/orders" => format!("#o-{id}"),
        _ => String::new(),
    };
    Redirect::to(&format!("{path}?{}{fragment}", q.finish()))
}

// ---- the dashboard and the list ----

/// The list's query parameters, as the filter form sends them (empty = any).
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    status: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    needs: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: String,
}

impl ListParams {
    fn filter(&self) -> AppResult<OrderFilter> {
        let bad = |what: &str| AppError::BadRequest(format!("unknown {what} filter"));
        let status = match self.status.as_str() {
            "" => None,
            s => Some(
                OrderStatus::ALL
                    .into_iter()
                    .find(|x| x.as_str() == s)
                    .ok_or_else(|| bad("status"))?,
            ),
        };
        let mode = match self.mode.as_str() {
            "" => None,
            s => Some(
                MODES
                    .into_iter()
                    .find(|m| m.as_str() == s)
                    .ok_or_else(|| bad("mode"))?,
            ),
        };
        let needs = match self.needs.as_str() {
            "" => None,
            s => Some(NeedsAction::parse(s).ok_or_else(|| bad("needs-action"))?),
        };
        let q = self.q.trim();
        Ok(OrderFilter {
            status,
            mode,
            needs,
            search: (!q.is_empty()).then(|| q.to_owned()),
        })
    }

    fn cursor(&self) -> AppResult<Option<Cursor>> {
        if self.after.is_empty() {
            return Ok(None);
        }
        Cursor::decode(&self.after)
            .map(Some)
            .ok_or_else(|| AppError::BadRequest("invalid page cursor".into()))
    }

    /// The filters as a query string (no page, no flash), for links.
    fn query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &self.status),
            ("mode", &self.mode),
            ("needs", &self.needs),
            ("q", &self.q),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        q.finish()
    }

    fn filtered(&self) -> bool {
        !(self.status.is_empty()
            && self.mode.is_empty()
            && self.needs.is_empty()
            && self.q.trim().is_empty())
    }
}

const MODES: [Mode; 3] = [Mode::Instant, Mode::Quick, Mode::Standard];

struct Opt {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

struct CountView {
    param: &'static str,
    label: &'static str,
    count: i64,
    /// The count as shown: "1000+" past the cap.
    shown: String,
}

/// A count that stopped at `cap`, as shown.
pub(super) fn shown(count: i64, cap: i64) -> String {
    if count >= cap {
        format!("{cap}+")
    } else {
        count.to_string()
    }
}

struct RowView {
    id: Uuid,
    short_id: String,
    created: String,
    product: String,
    buyer: String,
    amount: String,
    status: &'static str,
    mode: &'static str,
    escrow: String,
    needs: Vec<&'static str>,
    work: Vec<&'static str>,
    dead_jobs: bool,
    note: String,
    can_ship: bool,
    can_retry: bool,
    can_retry_deliver: bool,
    can_reconcile: bool,
}

/// What an open job means for the merchant, on the row.
fn work_label(kind: &str, mode: Mode) -> &'static str {
    match (kind, mode) {
        ("deliver", Mode::Instant) => "deliver queued",
        ("deliver", _) => "shipping requested",
        ("email_confirmation", _) => "e-mail queued",
        ("email_good", _) => "code e-mail queued",
        _ => "job queued",
    }
}

fn row_view(r: OrderRow) -> RowView {
    let needs = r.needs().into_iter().map(NeedsAction::label).collect();
    let deliver_queued = r.deliver_queued();
    let o = &r.order;
    RowView {
        id: o.id,
        short_id: o.id.simple().to_string()[..8].to_owned(),
        created: fmt_time(o.created_at),
        product: r.product_name.clone(),
        buyer: o.buyer_email.clone(),
        amount: format!("{} {}", o.amount, o.currency),
        status: o.status.as_str(),
        mode: o.mode.as_str(),
        escrow: o.escrow_status.clone().unwrap_or_default(),
        needs,
        work: r.open_jobs.iter().map(|k| work_label(k, o.mode)).collect(),
        dead_jobs: r.dead_jobs,
        note: o
            .attention
            .clone()
            .or_else(|| o.failure_reason.clone())
            .or_else(|| o.deposit_rejection().map(str::to_owned))
            .unwrap_or_default(),
        can_ship: o.allows(Action::Ship) && !deliver_queued,
        can_retry: o.allows(Action::RetryCheckout),
        can_retry_deliver: o.allows(Action::RetryDeliver) && !deliver_queued,
        can_reconcile: (o.escrow_id.is_some() && !o.status.is_settled())
            || o.status == OrderStatus::NeedsReconciliation,
    }
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    dashboard: bool,
    counts: Vec<CountView>,
    to_do: String,
    unmatched: i64,
    failed_events: i64,
    failing_jobs: i64,
    dead_jobs: i64,
    rows: Vec<RowView>,
    statuses: Vec<Opt>,
    modes: Vec<Opt>,
    needs: Vec<Opt>,
    q: String,
    filtered: bool,
    next: Option<String>,
    first: Option<String>,
    csv: String,
    flash: Option<Flash>,
    csrf: String,
}

async fn list_page(
    s: &AppState,
    dashboard: bool,
    p: &ListParams,
    flash: Option<Flash>,
    csrf: String,
) -> AppResult<Html<String>> {
    let filter = p.filter()?;
    let mut rows = db::admin_views::list(&s.pool, &filter, p.cursor()?, PAGE + 1).await?;
    let more = rows.len() > PAGE as usize;
    rows.truncate(PAGE as usize);
    let base = if dashboard { "/admin" } else { "/admin/orders" };
    let query = p.query();
    let sep = if query.is_empty() { "" } else { "&" };
    let next = rows
        .last()
        .filter(|_| more)
        .map(|r| format!("{base}?{query}{sep}after={}", r.cursor().encode()));
    let first = (!p.after.is_empty()).then(|| format!("{base}?{query}"));
    let (mut counts, mut to_do, mut capped) = (Vec::new(), 0, false);
    let (mut unmatched, mut failed_events, mut failing_jobs, mut dead_jobs) = (0, 0, 0, 0);
    if dashboard {
        for (n, count) in db::admin_views::needs_action_counts(&s.pool).await? {
            to_do += count;
            capped |= count >= db::admin_views::COUNT_CAP;
            counts.push(CountView {
                param: n.as_str(),
                label: n.label(),
                count,
                shown: shown(count, db::admin_views::COUNT_CAP),
            });
        }
        (unmatched, failed_events) = db::admin_consoles::inbox_trouble(&s.pool).await?;
        let [_, failing, dead] = db::admin_consoles::job_counts(&s.pool).await?;
        (failing_jobs, dead_jobs) = (failing, dead);
    }
    let opts = |all: Vec<(&'static str, &'static str)>, chosen: &str| {
        all.into_iter()
            .map(|(value, label)| Opt {
                value,
                label,
                selected: value == chosen,
            })
            .collect()
    };
    render(&AdminPage {
        dashboard,
        counts,
        to_do: format!("{to_do}{}", if capped { "+" } else { "" }),
        unmatched,
        failed_events,
        failing_jobs,
        dead_jobs,
        rows: rows.into_iter().map(row_view).collect(),
        statuses: opts(
            OrderStatus::ALL
                .iter()
                .map(|x| (x.as_str(), x.as_str()))
                .collect(),
            &p.status,
        ),
        modes: opts(
            MODES.iter().map(|m| (m.as_str(), m.as_str())).collect(),
            &p.mode,
        ),
        needs: opts(
            NeedsAction::ALL
                .iter()
                .map(|n| (n.as_str(), n.label()))
                .collect(),
            &p.needs,
        ),
        q: p.q.clone(),
        filtered: p.filtered(),
        next,
        first,
        csv: format!("/admin/orders.csv?{query}"),
        flash,
        csrf,
    })
}

/// `GET /admin`: what needs the merchant (counts by kind, inbox and outbox trouble), then the
/// newest orders.
pub async fn index(
    _: Admin,
    State(s): State<AppState>,
    Query(p): Query<ListParams>,
    Query(f): Query<FlashQuery>,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Html<String>> {
    list_page(&s, true, &p, f.flash(), csrf.0).await
}

/// `GET /admin/orders`: the order list, filtered, searched and paged.
pub async fn orders(
    _: Admin,
    State(s): State<AppState>,
    Query(p): Query<ListParams>,
    Query(f): Query<FlashQuery>,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Html<String>> {
    list_page(&s, false, &p, f.flash(), csrf.0).await
}

// ---- CSV export ----

/// Appends one CSV cell (RFC 4180): quoted when it holds a quote, comma or line break, quotes
/// doubled; a cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, or a tab or
/// carriage return first) is prefixed with `'` so that it stays text.
pub(super) fn csv_cell(out: &mut String, value: &str) {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = value.contains(['"', ',', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

fn csv_line(out: &mut String, cells: &[&str]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_cell(out, c);
    }
    out.push_str("\r\n");
}

const CSV_HEADER: [&str; 13] = [
    "created_at",
    "order_id",
    "product",
    "sku",
    "buyer_email",
    "amount",
    "currency",
    "status",
    "mode",
    "escrow_id",
    "escrow_status",
    "needs_action",
    "pending_jobs",
];

fn csv_row(out: &mut String, r: &OrderRow) {
    let o = &r.order;
    let created = o
        .created_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let needs: Vec<&str> = r.needs().into_iter().map(NeedsAction::as_str).collect();
    csv_line(
        out,
        &[
            &created,
            &o.id.to_string(),
            &r.product_name,
            &o.sku,
            &o.buyer_email,
            &o.amount.to_string(),
            &o.currency,
            o.status.as_str(),
            o.mode.as_str(),
            o.escrow_id.as_deref().unwrap_or(""),
            o.escrow_status.as_deref().unwrap_or(""),
            &needs.join(" "),
            &r.open_jobs.join(" "),
        ],
    );
}

/// The export's body: chunks handed over by the task that reads the pages.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(hyper::body::Frame::data)))
    }
}

/// `GET /admin/orders.csv`: the filtered list, every page, as CSV. Streamed: a task reads it
/// in keyset pages of `CSV_BATCH` and sends each as it comes, so neither side holds the whole
/// export; it stops when the client goes away.
pub async fn csv(
    _: Admin,
    State(s): State<AppState>,
    Query(p): Query<ListParams>,
) -> AppResult<Response> {
    let filter = p.filter()?;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let pool = s.pool.clone();
    let export = async move {
        let mut out = String::new();
        csv_line(&mut out, &CSV_HEADER);
        if tx.send(Ok(out.into())).await.is_err() {
            return;
        }
        let mut after = None;
        loop {
            let rows = match db::admin_views::list(&pool, &filter, after, CSV_BATCH).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "the CSV export failed");
                    let _ = tx.send(Err(std::io::Error::other(e))).await;
                    return;
                }
            };
            let mut out = String::new();
            for r in &rows {
                csv_row(&mut out, r);
            }
            after = rows.last().map(OrderRow::cursor);
            if tx.send(Ok(out.into())).await.is_err() || rows.len() < CSV_BATCH as usize {
                return;
            }
        }
    };
    tokio::spawn(export.instrument(tracing::Span::current()));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"orders.csv\""),
            ),
        ],
        Body::new(ChannelBody(rx)),
    )
        .into_response())
}

// ---- actions ----

fn parse_id(id: &str) -> AppResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| AppError::NotFound)
}

/// The merchant shipped a quick (or standard) order: the deliver call is queued.
pub async fn ship(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> AppResult<Redirect> {
    let id = parse_id(&id)?;
    let result = fulfilment::mark_shipped(&s, id).await;
    let outcome = match &result {
        Ok(()) => "deliver queued".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    if !matches!(result, Err(OrderError::NotFound)) {
        admin.record(&s, "ship", Some(id), &outcome).await?;
    }
    result?;
    Ok(answer(&headers, "/admin", Notice::Shipped, &[], Some(id)))
}

/// Retries what is stuck: the checkout of an order whose escrow creation failed (or is in
/// doubt), or the `deliver` of a paid instant order.
pub async fn retry(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> AppResult<Redirect> {
    let order = db::orders::get(&s.pool, parse_id(&id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    let order_id = order.id;
    if order.allows(Action::RetryDeliver) {
        fulfilment::retry_deliver(&s, order_id).await?;
        admin
            .record(
                &s,
                "retry_deliver",
                Some(order_id),
                "deliver set to run now",
            )
            .await?;
        let notice = Notice::DeliverRetried;
        return Ok(answer(&headers, "/admin", notice, &[], Some(order_id)));
    }
    let result = checkout::resume(&s, order).await;
    let outcome = match &result {
        Ok(_) => "escrow and session ready".to_owned(),
        Err(e) => format!("failed: {e}"),
    };
    admin
        .record(&s, "retry_checkout", Some(order_id), &outcome)
        .await?;
    result?;
    let notice = Notice::CheckoutRetried;
    Ok(answer(&headers, "/admin", notice, &[], Some(order_id)))
}

/// Reads every open order from DHMAD now, whatever its last news, and says what it did.
pub async fn reconcile(
    admin: Admin,
    State(s): State<AppState>,
    headers: HeaderMap,
) -> AppResult<Redirect> {
    let before = db::admin_consoles::last_event_id(&s.pool).await?;
    let report = reconciler::run_once(&s, Duration::ZERO)
        .await
        .map_err(AppError::Internal)?;
    let changed = db::admin_consoles::changed_since(&s.pool, before, "reconciler").await?;
    let changed = usize::try_from(changed).unwrap_or(0);
    tracing::info!(?report, changed, "manual reconciliation");
    let detail = format!(
        "checked {}, changed {changed}, failed {}, flagged {}, creations resolved {}, \
         duplicates cancelled {}, delivers requeued {}{}",
        report.checked,
        report.failed,
        report.flagged,
        report.creations_resolved,
        report.duplicates_cancelled,
        report.delivers_requeued,
        if report.yielded {
            " (stopped early: DHMAD's rate limit)"
        } else {
            ""
        }
    );
    admin.record(&s, "reconcile", None, &detail).await?;
    let counts = [
        ("checked", report.checked),
        ("changed", changed),
        ("failed", report.failed),
        ("flagged", report.flagged),
        ("resolved", report.creations_resolved),
    ];
    Ok(answer(
        &headers,
        "/admin",
        Notice::Reconciled,
        &counts,
        None,
    ))
}

/// `POST /admin/orders/{id}/reconcile`: reads this order's escrow from DHMAD now and applies
/// it (an interrupted checkout is looked up in DHMAD's list instead). A flag for the merchant
/// is lifted once DHMAD answers about the escrow again, and set when DHMAD no longer knows it.
pub async fn reconcile_order(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> AppResult<Redirect> {
    let order = db::orders::get(&s.pool, parse_id(&id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    let order_id = order.id;
    let back = format!("/admin/orders/{order_id}");
    let (notice, detail) = if order.status == OrderStatus::NeedsReconciliation {
        match lost_escrow::reconcile_creation(&s, &order).await {
            Ok(()) => (Notice::CreationChecked, "creation looked up".to_owned()),
            Err(e) => (Notice::OrderFailed, format!("failed: {e}")),
        }
    } else {
        match sync::refresh_order(&s, &order, SOURCE).await {
            Ok(applied) => {
                if db::admin_consoles::clear_attention(&s.pool, order_id).await? {
                    let why = "DHMAD answered about the escrow again: flag lifted";
                    db::events::add(&s.pool, order_id, "attention_cleared", why, None).await?;
                }
                match applied {
                    Applied::Transitioned { from, to, .. } => (
                        Notice::OrderChanged,
                        format!("{} → {to}", from.as_deref().unwrap_or("unknown")),
                    ),
                    _ => (Notice::OrderSame, "unchanged".to_owned()),
                }
            }
            Err(OrderError::EscrowUnknown(why)) => {
                db::orders::flag_attention(&s.pool, order_id, &why).await?;
                (Notice::OrderFlagged, format!("flagged: {why}"))
            }
            Err(e) => (Notice::OrderFailed, format!("failed: {e}")),
        }
    };
    admin
        .record(&s, "reconcile_order", Some(order_id), &detail)
        .await?;
    Ok(answer(&headers, &back, notice, &[], Some(order_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(v: &str) -> String {
        let mut out = String::new();
        csv_cell(&mut out, v);
        out
    }

    #[test]
    fn csv_cells_are_quoted_only_when_needed() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell(""), "");
    }

    #[test]
    fn formulas_stay_text() {
        assert_eq!(cell("=1+1"), "'=1+1");
        assert_eq!(cell("+33"), "'+33");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(
            cell("=HYPERLINK(\"x\",\"y\")"),
            "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\""
        );
        assert_eq!(cell("a=b"), "a=b");
    }

    #[test]
    fn flash_texts_are_fixed_and_counts_are_numbers() {
        let q = FlashQuery {
            notice: "reconciled".into(),
            checked: Some("3".into()),
            changed: Some("<script>".into()),
            ..FlashQuery::default()
        };
        let f = q.flash().unwrap();
        assert!(f
            .text
            .starts_with("Reconciliation done: 3 order(s) checked, 0 changed"));
        assert!(FlashQuery {
            notice: "<b>hi</b>".into(),
            ..FlashQuery::default()
        }
        .flash()
        .is_none());
        for n in Notice::ALL {
            assert_eq!(
                Notice::ALL.iter().filter(|m| m.code() == n.code()).count(),
                1
            );
        }
    }

    #[test]
    fn actions_return_to_the_admin_page_they_came_from() {
        let mut h = HeaderMap::new();
        let go = |h: &HeaderMap| {
            answer(h, "/admin", Notice::Shipped, &[], None)
                .into_response()
                .headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(go(&h), "/admin?notice=shipped");
        h.insert(
            header::REFERER,
            HeaderValue::from_static(
                "http://shop.example/admin/orders?status=paid&notice=old&checked=1",
            ),
        );
        assert_eq!(go(&h), "/admin/orders?status=paid&notice=shipped");
        h.insert(
            header::REFERER,
            HeaderValue::from_static("https://evil.example/elsewhere"),
        );
        assert_eq!(go(&h), "/admin?notice=shipped");
        h.insert(
            header::REFERER,
            HeaderValue::from_static("http://shop.example/admin/..//evil.example/x"),
        );
        assert_eq!(go(&h), "/admin?notice=shipped");
    }
}
