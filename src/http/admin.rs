//! The back office's pages and actions. Who may use them is `admin_auth::Admin`; every action
//! is recorded in the audit trail.

use std::time::Duration;

use askama::Template;
use axum::{
    extract::{Path, State},
    response::{Html, Redirect},
    Extension,
};
use uuid::Uuid;

use super::{admin_auth::Admin, csrf::CsrfToken, render};
use crate::{
    db,
    error::{AppError, AppResult},
    jobs::reconciler,
    orders::{checkout, fulfilment, Action},
    state::AppState,
};

struct Row {
    id: Uuid,
    short_id: String,
    created_at: String,
    sku: String,
    buyer_email: String,
    amount: String,
    status: &'static str,
    escrow_status: String,
    note: String,
    can_ship: bool,
    can_retry: bool,
    can_retry_deliver: bool,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    orders: Vec<Row>,
    unmatched: i64,
    csrf: String,
}

pub async fn index(
    _: Admin,
    State(s): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Html<String>> {
    let orders = db::orders::list_recent(&s.pool, 200)
        .await?
        .into_iter()
        .map(|o| Row {
            short_id: o.id.to_string()[..8].to_owned(),
            created_at: o.created_at.date().to_string(),
            amount: format!("{} {}", o.amount, o.currency),
            status: o.status.as_str(),
            escrow_status: o.escrow_status.clone().unwrap_or_default(),
            note: o
                .attention
                .clone()
                .or(o.failure_reason.clone())
                .or(o.deposit_rejection_reason.clone())
                .unwrap_or_default(),
            can_ship: o.allows(Action::Ship),
            can_retry: o.allows(Action::RetryCheckout),
            can_retry_deliver: o.allows(Action::RetryDeliver),
            id: o.id,
            sku: o.sku,
            buyer_email: o.buyer_email,
        })
        .collect();
    let unmatched = db::inbox::count_unmatched(&s.pool).await?;
    render(&AdminPage {
        orders,
        unmatched,
        csrf: csrf.0,
    })
}

fn parse_id(id: &str) -> AppResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| AppError::NotFound)
}

pub async fn ship(
    admin: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Redirect> {
    let id = parse_id(&id)?;
    fulfilment::mark_shipped(&s, id).await?;
    admin.record(&s, "ship", Some(id), "").await?;
    Ok(Redirect::to("/admin"))
}

/// Retries what is stuck: the checkout of an order whose escrow creation failed (or is in
/// doubt), or the `deliver` of a paid instant order.
pub async fn retry(
    admin: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Redirect> {
    let order = db::orders::get(&s.pool, parse_id(&id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    let order_id = order.id;
    if order.allows(Action::RetryDeliver) {
        fulfilment::retry_deliver(&s, order_id).await?;
        admin
            .record(&s, "retry_deliver", Some(order_id), "")
            .await?;
        return Ok(Redirect::to("/admin"));
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
    Ok(Redirect::to("/admin"))
}

/// Reads every open order from DHMAD now, whatever its last news.
pub async fn reconcile(admin: Admin, State(s): State<AppState>) -> AppResult<Redirect> {
    let report = reconciler::run_once(&s, Duration::ZERO)
        .await
        .map_err(AppError::Internal)?;
    tracing::info!(?report, "manual reconciliation");
    let detail = format!(
        "checked {}, failed {}, creations resolved {}",
        report.checked, report.failed, report.creations_resolved
    );
    admin.record(&s, "reconcile", None, &detail).await?;
    Ok(Redirect::to("/admin"))
}
