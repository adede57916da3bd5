//! The buyer's order: page, JSON, and the actions (pay, confirm receipt, cancel, dispute).
//! A step DHMAD refuses for a business reason is shown on the order page itself, with DHMAD's
//! message, rather than on an error page.

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    Extension, Json,
};
use rust_decimal::Decimal;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{csrf::CsrfToken, id_path::IdPath, order_page};
use crate::{
    db,
    error::{AppError, AppResult, ErrorBody, ErrorDetail},
    orders::{
        actions::{self, CancelOutcome},
        fulfilment, queue,
        sessions::Party,
        Action, Cancellation, Mode, Order, OrderError, OrderStatus,
    },
    state::AppState,
};

/// Order ids are UUIDs; anything else is simply not found.
async fn load(s: &AppState, id: &str) -> AppResult<Order> {
    load_on(&s.pool, id).await
}

async fn load_on(e: impl sqlx::PgExecutor<'_>, id: &str) -> AppResult<Order> {
    let id = Uuid::parse_str(id).map_err(|_| AppError::NotFound)?;
    db::orders::get(e, id).await?.ok_or(AppError::NotFound)
}

/// `GET /api/orders/{id}` (a fixed interface, see `docs/ARCHITECTURE.md`). `escrow_status`
/// is DHMAD's string exactly.
/// Every field is always present; one that has no value is `null`.
#[derive(Serialize, ToSchema)]
pub struct OrderJson {
    id: Uuid,
    sku: String,
    status: OrderStatus,
    #[schema(required)]
    escrow_id: Option<String>,
    #[schema(required)]
    escrow_status: Option<String>,
    #[schema(value_type = super::openapi::DecimalString)]
    amount: Decimal,
    currency: String,
    #[schema(format = Email)]
    buyer_email: String,
    mode: Mode,
    /// A guest's payment proof awaits DHMAD's approval: nothing more to pay.
    payment_review: bool,
    /// The buyer's cancellation request after payment: null, requested (only while DHMAD
    /// holds the money: a cancel, a dispute or the release makes a pending request moot),
    /// rejected, accepted.
    #[schema(required)]
    cancellation: Option<Cancellation>,
    dispute_open: bool,
    /// DHMAD's `proofInfo.phase` for proof escrows, else null.
    #[schema(required)]
    proof_phase: Option<String>,
    /// Standard mode: who has signed the contract; null for other modes.
    #[schema(required)]
    contract: Option<ContractJson>,
    /// What went wrong before payment, in a fixed text for the buyer (the back office shows
    /// the merchant DHMAD's own answer).
    #[schema(required)]
    failure_reason: Option<String>,
    /// Why DHMAD rejected the guest's payment proof, while the order awaits a new payment.
    #[schema(required)]
    deposit_rejection_reason: Option<String>,
    /// Why the buyer rejected the delivery, while the order waits to be shipped again.
    #[schema(required)]
    delivery_rejection_reason: Option<String>,
    #[schema(required)]
    digital_code: Option<String>,
    /// The buyer's open DHMAD page: the contract to sign first (standard mode), else the
    /// payment; null when none is open.
    #[schema(required)]
    checkout_url: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct ContractJson {
    buyer_signed: bool,
    seller_signed: bool,
}

#[utoipa::path(
    get,
    path = "/api/orders/{id}",
    operation_id = "get_order",
    tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id (its page is `/orders/{id}`)")),
    responses(
        (status = 200, description = "The order as the shop knows it", body = OrderJson),
        (status = 404, description = "No order has this id", body = ErrorBody),
        (status = 503, description = "The database is briefly unavailable", body = ErrorBody),
    ),
)]
pub async fn json(State(s): State<AppState>, IdPath(id): IdPath) -> AppResult<Json<OrderJson>> {
    // One connection for the order and its payment page (see `order_page::render_page`).
    let mut conn = s.pool.acquire().await?;
    let o = load_on(&mut conn, &id).await?;
    Ok(Json(OrderJson {
        contract: (o.mode == Mode::Standard).then(|| ContractJson {
            buyer_signed: o.contract_buyer_signed == Some(true),
            seller_signed: o.contract_seller_signed == Some(true),
        }),
        proof_phase: o.proof_phase.clone(),
        checkout_url: order_page::live_buyer_url(&mut conn, &o).await?,
        digital_code: o.visible_good().map(str::to_owned),
        payment_review: o.in_payment_review(),
        cancellation: o.cancellation_request(),
        failure_reason: o.public_failure().map(str::to_owned),
        dispute_open: o.dispute_open(),
        // As the order's page shows them: only while they are the news.
        deposit_rejection_reason: o.deposit_rejection().map(str::to_owned),
        delivery_rejection_reason: o.delivery_rejection().map(str::to_owned),
        id: o.id,
        status: o.status,
        sku: o.sku,
        escrow_id: o.escrow_id,
        escrow_status: o.escrow_status,
        amount: o.amount,
        currency: o.currency,
        buyer_email: o.buyer_email,
        mode: o.mode,

        created_at: o.created_at,
        updated_at: o.updated_at,
    }))
}

pub async fn page(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Html<String>> {
    let mut conn = s.pool.acquire().await?;
    let o = load_on(&mut conn, &id).await?;
    order_page::render_page(&mut conn, o, csrf.0, None).await
}

/// A refused step goes back to the order page with the reason, and so does one DHMAD failed
/// on (with the error page's status and words): the page's link is the buyer's only key to
/// the order, which a generic error page would not carry. Anything else is an error.
pub(super) async fn on_page(
    s: &AppState,
    order_id: Uuid,
    csrf: CsrfToken,
    result: Result<Response, OrderError>,
) -> AppResult<Response> {
    match result {
        Ok(r) => Ok(r),
        Err(
            e @ (OrderError::Refused { .. } | OrderError::NotAllowed(_) | OrderError::InProgress),
        ) => {
            let status = match e {
                OrderError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::CONFLICT,
            };
            tracing::info!(order.ref = %crate::orders::log_ref(order_id), error = %e, cause = e.cause(), "step refused");
            let mut conn = s.pool.acquire().await?;
            let o = db::orders::get(&mut conn, order_id)
                .await?
                .ok_or(AppError::NotFound)?;
            let page = order_page::render_page(&mut conn, o, csrf.0, Some(e.to_string())).await?;
            Ok((status, page).into_response())
        }
        Err(
            e @ (OrderError::DhmadUnavailable { .. }
            | OrderError::DhmadFailed { .. }
            | OrderError::Busy { .. }
            | OrderError::EscrowUnknown(_)),
        ) => {
            let e = AppError::Order(e);
            let mut conn = s.pool.acquire().await?;
            let o = db::orders::get(&mut conn, order_id)
                .await?
                .ok_or(AppError::NotFound)?;
            let notice = e.public_message();
            let page = order_page::render_page(&mut conn, o, csrf.0, Some(notice)).await?;
            let mut resp = (e.status(), page).into_response();
            if let Some(secs) = e.retry_after() {
                resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
            }
            // For the access line, as an error response carries it (order ids cut there: the
            // cause may name the order, whose id is the buyer's link).
            resp.extensions_mut().insert(ErrorDetail(e.detail()));
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}

fn to_dhmad(url: String) -> Response {
    Redirect::to(&url).into_response()
}

/// "Pay again": the live session if there is one, else a new session (or a retried escrow).
pub async fn pay_again(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Response> {
    let o = load(&s, &id).await?;
    let order_id = o.id;
    let result = match queue::resume_or_queue(&s, o).await {
        Ok(started) => Ok(super::checkout::next_page(&started)),
        // Another click of this buyer's is making the calls: the waiting page follows them.
        Err(OrderError::InProgress) => Ok(super::checkout::waiting_path(order_id)),
        Err(e) => Err(e),
    };
    let result = result.map(|to| Redirect::to(&to).into_response());
    on_page(&s, order_id, csrf, result).await
}

/// "Confirm receipt": a DHMAD `complete` session for the buyer.
pub async fn confirm_receipt(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Response> {
    let o = load(&s, &id).await?;
    let result = fulfilment::confirm_receipt_url(&s, &o).await.map(to_dhmad);
    on_page(&s, o.id, csrf, result).await
}

/// "Cancel": before payment the order is cancelled (back to its page); after, the buyer asks
/// the shop on DHMAD's page (`request_cancellation`).
pub async fn cancel(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Response> {
    let o = load(&s, &id).await?;
    let result = actions::buyer_cancel(&s, o.id).await.map(|out| match out {
        CancelOutcome::Cancelled => Redirect::to(&format!("/orders/{}", o.id)).into_response(),
        CancelOutcome::OnDhmad(url) => to_dhmad(url),
    });
    on_page(&s, o.id, csrf, result).await
}

/// "Sign the contract" (standard mode): a DHMAD `sign_contract` session for the buyer.
pub async fn sign(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Response> {
    let o = load(&s, &id).await?;
    let result = actions::hosted_step(&s, o.id, Action::Sign)
        .await
        .map(to_dhmad);
    on_page(&s, o.id, csrf, result).await
}

/// "Review the proof": a DHMAD `review_proof` session for the buyer (accept, or ask for a
/// correction).
pub async fn review_proof(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Response> {
    let o = load(&s, &id).await?;
    let result = actions::hosted_step(&s, o.id, Action::ReviewProof)
        .await
        .map(to_dhmad);
    on_page(&s, o.id, csrf, result).await
}

/// "Open a dispute": a DHMAD `dispute` session for the buyer.
pub async fn dispute(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Response> {
    let o = load(&s, &id).await?;
    let result = actions::dispute(&s, o.id, Party::Buyer).await.map(to_dhmad);
    on_page(&s, o.id, csrf, result).await
}
