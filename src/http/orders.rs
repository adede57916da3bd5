//! The buyer's order: page, JSON, "pay again", "confirm receipt".

use askama::Template;
use axum::{
    extract::{Path, State},
    response::{Html, Redirect},
    Extension, Json,
};
use dhmad::CheckoutAction;
use rust_decimal::Decimal;
use serde::Serialize;
use time::{macros::format_description, OffsetDateTime};
use uuid::Uuid;

use super::{csrf::CsrfToken, render};
use crate::{
    db,
    error::{AppError, AppResult},
    orders::{checkout, fulfilment, sessions, Action, Mode, Order, OrderStatus},
    state::AppState,
};

/// Order ids are UUIDs; anything else is simply not found.
async fn load(s: &AppState, id: &str) -> AppResult<Order> {
    let id = Uuid::parse_str(id).map_err(|_| AppError::NotFound)?;
    db::orders::get(&s.pool, id)
        .await?
        .ok_or(AppError::NotFound)
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
    ))
    .unwrap_or_default()
}

/// `GET /api/orders/{id}` (a fixed interface, see `docs/ARCHITECTURE.md`). `escrow_status`
/// is DHMAD's string exactly.
#[derive(Serialize)]
pub struct OrderJson {
    id: Uuid,
    sku: String,
    status: OrderStatus,
    escrow_id: Option<String>,
    escrow_status: Option<String>,
    amount: Decimal,
    currency: String,
    buyer_email: String,
    mode: Mode,
    failure_reason: Option<String>,
    deposit_rejection_reason: Option<String>,
    digital_code: Option<String>,
    checkout_url: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

/// The payment page the buyer can still use, if any.
async fn live_pay_url(s: &AppState, o: &Order) -> AppResult<Option<String>> {
    if o.status != OrderStatus::AwaitingPayment {
        return Ok(None);
    }
    let live = sessions::live_session(&s.pool, o, &CheckoutAction::AcceptPay).await?;
    Ok(live.map(|x| x.url))
}

pub async fn json(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Json<OrderJson>> {
    let o = load(&s, &id).await?;
    Ok(Json(OrderJson {
        checkout_url: live_pay_url(&s, &o).await?,
        digital_code: o.visible_good().map(str::to_owned),
        id: o.id,
        status: o.status,
        sku: o.sku,
        escrow_id: o.escrow_id,
        escrow_status: o.escrow_status,
        amount: o.amount,
        currency: o.currency,
        buyer_email: o.buyer_email,
        mode: o.mode,
        failure_reason: o.failure_reason,
        deposit_rejection_reason: o.deposit_rejection_reason,
        created_at: o.created_at,
        updated_at: o.updated_at,
    }))
}

struct EventView {
    at: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage {
    id: Uuid,
    product_name: String,
    status: &'static str,
    status_label: &'static str,
    amount: String,
    buyer_email: String,
    escrow_status: Option<String>,
    digital_code: Option<String>,
    deposit_rejection_reason: Option<String>,
    next_step: &'static str,
    pay_url: Option<String>,
    can_pay_again: bool,
    can_confirm: bool,
    refresh: bool,
    events: Vec<EventView>,
    csrf: String,
}

fn next_step(o: &Order, has_pay_url: bool) -> &'static str {
    match o.status {
        OrderStatus::New | OrderStatus::CreatingEscrow => "We are preparing your checkout.",
        OrderStatus::EscrowFailed => "We could not start the payment with DHMAD. Your order is saved: try again.",
        OrderStatus::NeedsReconciliation => {
            "DHMAD did not answer in time; we are checking whether your checkout was created. Try again in a minute."
        }
        OrderStatus::AwaitingPayment if has_pay_url => {
            "Pay on DHMAD's secure page. If you have just paid, we are confirming your payment with DHMAD; this page refreshes by itself."
        }
        OrderStatus::AwaitingPayment => "Your payment link has expired or was not used. Start a new payment below.",
        OrderStatus::Paid if o.is_instant() => "Payment confirmed. Your code is below.",
        OrderStatus::Paid => "Payment confirmed and held by DHMAD. We are preparing your parcel.",
        OrderStatus::Delivered => {
            "Your parcel is on its way. Once it has arrived, confirm receipt to release the payment to the seller."
        }
        OrderStatus::Completed => "All done. Thank you for your order!",
        OrderStatus::Cancelled => "This order was cancelled. DHMAD returns any payment to you.",
        OrderStatus::Disputed => "A dispute is open with DHMAD; they will contact you.",
    }
}

pub async fn page(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Html<String>> {
    let o = load(&s, &id).await?;
    let product_name = db::products::get(&s.pool, &o.sku)
        .await?
        .map(|p| p.name)
        .unwrap_or_else(|| o.sku.clone());
    let events = db::events::list(&s.pool, o.id)
        .await?
        .into_iter()
        .map(|e| EventView {
            at: fmt_time(e.created_at),
            detail: e.detail,
        })
        .collect();
    let pay_url = live_pay_url(&s, &o).await?;
    let status = o.status;
    render(&OrderPage {
        id: o.id,
        product_name,
        status: status.as_str(),
        status_label: status.label(),
        amount: format!("{} {}", o.amount, o.currency),
        next_step: next_step(&o, pay_url.is_some()),
        can_pay_again: o.allows(Action::Pay),
        can_confirm: o.allows(Action::ConfirmReceipt),
        refresh: o.expects_news(),
        digital_code: o.visible_good().map(str::to_owned),
        deposit_rejection_reason: o.deposit_rejection().map(str::to_owned),
        escrow_status: o.escrow_status,
        buyer_email: o.buyer_email,
        pay_url,
        events,
        csrf: csrf.0,
    })
}

/// "Pay again": the live session if there is one, else a new session (or a retried escrow).
pub async fn pay_again(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Redirect> {
    let o = load(&s, &id).await?;
    let started = checkout::resume(&s, o).await?;
    Ok(Redirect::to(&started.checkout_url))
}

/// "Confirm receipt": a DHMAD `complete` session for the buyer.
pub async fn confirm_receipt(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Redirect> {
    let o = load(&s, &id).await?;
    let url = fulfilment::confirm_receipt_url(&s, &o).await?;
    Ok(Redirect::to(&url))
}
