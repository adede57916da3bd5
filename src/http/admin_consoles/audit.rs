//! The audit trail console.

use askama::Template;
use axum::{extract::State, response::Html, Extension};
use serde::Deserialize;
use uuid::Uuid;

use super::{bad, opts, query_of, Opt, PAGE};
use crate::http::query::Query;
use crate::http::{
    admin::{Flash, FlashQuery},
    admin_auth::Admin,
    csrf::CsrfToken,
    order_page::fmt_time,
    render,
};
use crate::{
    db::{self},
    error::AppResult,
    state::AppState,
};

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
