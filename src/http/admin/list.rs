//! The dashboard and the order list: filters, search, keyset pages.

use askama::Template;
use axum::{extract::State, response::Html, Extension};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::http::query::Query;
use crate::http::{admin_auth::Admin, csrf::CsrfToken, order_page::fmt_time, render};
use crate::{
    db::{
        self,
        admin_views::{Cursor, NeedsAction, OrderFilter, OrderRow},
    },
    error::{AppError, AppResult},
    orders::{Action, Mode, OrderStatus},
    state::AppState,
};

use super::flash::{Flash, FlashQuery};

/// Orders per page of the list.
const PAGE: i64 = 50;

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
    pub(super) fn filter(&self) -> AppResult<OrderFilter> {
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
            .filter(|c| cursor_time_ok(c.created_at))
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

/// Whether a page cursor's time is one the shop could have given: Postgres refuses times
/// before 4713 BC (SQLSTATE 22008) that `time` decodes, and nothing the shop writes falls
/// outside years 1 to 9999.
pub(in crate::http) fn cursor_time_ok(t: OffsetDateTime) -> bool {
    (1..=9999).contains(&t.year())
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
pub(in crate::http) fn shown(count: i64, cap: i64) -> String {
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
    /// The flag the row shows, sent back by its "Reconcile" (which lifts only that one).
    flag: String,
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
        flag: o.attention.clone().unwrap_or_default(),
        note: o
            .attention
            .clone()
            .or_else(|| o.failure_reason.clone())
            .or_else(|| o.deposit_rejection().map(str::to_owned))
            .unwrap_or_default(),
        can_ship: o.allows(Action::Ship) && !deliver_queued,
        can_retry: o.allows(Action::RetryCheckout),
        can_retry_deliver: o.allows(Action::RetryDeliver) && !deliver_queued,
        can_reconcile: o.reconcilable(),
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
        // The export is a read with effects: its link carries the token (`csrf`).
        csv: format!(
            "/admin/orders.csv?{query}{sep}{}={csrf}",
            crate::http::csrf::FIELD
        ),
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
