//! `POST /checkout` (form → 303 to DHMAD) and `POST /api/checkout` (JSON → 201).
//!
//! Who may continue an open order: the form's browser (its `sf_buyer` cookie, `__Host-` on
//! https) or the API's `Idempotency-Key`; never whoever knows the buyer's e-mail.

use axum::{
    extract::{rejection::FormRejection, rejection::JsonRejection, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Extension, Form, Json,
};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    cookies,
    csrf::CsrfToken,
    shop::{self, FormError},
};
use crate::{
    error::{AppError, AppResult, ErrorBody, ErrorDetail},
    orders::{
        checkout::{self, CheckoutRequest, Owner, Started},
        queue::Place,
        CheckoutStarted, OrderError,
    },
    state::AppState,
};

/// What to buy, and for whom. Both fields are required (a missing one is a 400 that says so).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"sku": "ai-credits-500", "email": "buyer@example.tn"}))]
pub struct CheckoutInput {
    /// The product's code, from `GET /api/products`.
    #[serde(default)]
    #[schema(required, example = "ai-credits-500")]
    sku: String,
    /// The buyer's e-mail address: DHMAD's payment page and the shop's e-mails go there.
    #[serde(default)]
    #[schema(required, format = Email, example = "buyer@example.tn")]
    email: String,
}

/// 303 See Other: the status HTTP defines for redirect-after-POST (DHMAD's guide shows 302;
/// browsers treat both alike). An e-mail address that cannot be right shows the catalog again
/// (400), with the message next to that product's field and what the buyer typed.
pub async fn form(
    State(s): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    jar: CookieJar,
    input: Result<Form<CheckoutInput>, FormRejection>,
) -> (CookieJar, AppResult<Response>) {
    let Form(input) = match input {
        Ok(i) => i,
        Err(e) => return (jar, Err(AppError::BadRequest(e.body_text()))),
    };
    // The domain checks the address too; checked here first so that the refusal can go
    // next to the field. Nothing is written for it.
    if let Err(e) = crate::email::normalise(&input.email) {
        let refused = FormError {
            sku: input.sku.trim().to_owned(),
            // Kept for the buyer to correct, less what no text field can show.
            email: input.email.replace(|c: char| c.is_control(), ""),
            message: e.to_string(),
        };
        return (jar, refused_form(&s, csrf, refused).await);
    }
    let token = cookies::buyer_token(&s.config, &jar).unwrap_or_else(cookies::random_token);
    let req = CheckoutRequest {
        sku: &input.sku,
        email: &input.email,
        owner: Owner::Browser(token.clone()),
    };
    let started = checkout::start(&s, req.clone()).await;
    // Set even when the checkout failed: the order is saved, and the buyer's retry from this
    // browser must continue it. (The catalog gave it already; see `shop::catalog`.)
    let cookie = cookies::buyer(&s.config, token);
    let answer = match started {
        Ok(st) => Ok(Redirect::to(&next_page(&st)).into_response()),
        // A double click: the first request is making the calls (and runs to its end, even
        // when the browser dropped it for this one). The waiting page forwards to DHMAD's page
        // once it is open.
        Err(e @ OrderError::InProgress) => match checkout::callers_open_order(&s, &req).await {
            Ok(Some(order_id)) => Ok(Redirect::to(&waiting_path(order_id)).into_response()),
            Ok(None) => Err(e.into()),
            Err(e) => Err(e.into()),
        },
        Err(e @ (OrderError::NotAllowed(_) | OrderError::Refused { .. })) => {
            refused_on_order(&s, &req, csrf, e).await
        }
        Err(e) => Err(e.into()),
    };
    (jar.add(cookie), answer)
}

/// A refused checkout of the browser's open order (under review, waiting for the shop's
/// signature, being opened by another tab…) shows that order's page with the reason, as a
/// refused step on it does: an error page would leave the buyer no way back to it.
async fn refused_on_order(
    s: &AppState,
    req: &CheckoutRequest<'_>,
    csrf: CsrfToken,
    e: OrderError,
) -> AppResult<Response> {
    match checkout::callers_open_order(s, req).await? {
        Some(order_id) => super::orders::on_page(s, order_id, csrf, Err(e)).await,
        None => Err(e.into()),
    }
}

/// Where the buyer goes next: DHMAD's page, or the waiting page of a queued checkout (which
/// sends them on to DHMAD's page by itself once it is open).
pub(super) fn next_page(started: &Started) -> String {
    match started {
        Started::Ready(st) => st.checkout_url.clone(),
        Started::Queued(place) => waiting_path(place.order_id),
    }
}

pub(super) fn waiting_path(order_id: uuid::Uuid) -> String {
    format!("/orders/{order_id}/checkout")
}

/// The catalog again, 400, with the refused form's message and input next to its product.
async fn refused_form(s: &AppState, csrf: CsrfToken, refused: FormError) -> AppResult<Response> {
    let detail = ErrorDetail(refused.message.clone());
    let page = shop::catalog_page(s, csrf, Some(refused)).await?;
    let mut resp = (StatusCode::BAD_REQUEST, page).into_response();
    // For the access line, as an error response would carry it.
    resp.extensions_mut().insert(detail);
    Ok(resp)
}

/// `Idempotency-Key`: at most 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> AppResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k.to_owned()))
        }
        _ => Err(AppError::BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        )),
    }
}

/// Starts a checkout: records the order, creates its DHMAD escrow and opens the payment page,
/// whose URL the buyer must be sent to. With an `Idempotency-Key`, the same key and body
/// continue the same order and payment page.
///
/// When DHMAD's rate limit is reached, the order is saved and waits in line (202): its calls
/// are made as DHMAD's budget frees up. Poll `GET /api/orders/{id}` (its `checkout_url` appears
/// once the payment page is open) or send the buyer to `/orders/{id}/checkout`, a page that
/// waits and then forwards to DHMAD by itself. (While an older payment page of the order may
/// still be in use beside the new one, neither shows a link: a guest may have sent a proof on
/// the older one. Sending this request again asks DHMAD first and answers with the page.)
#[utoipa::path(
    post,
    path = "/api/checkout",
    operation_id = "checkout",
    tag = "checkout",
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "Makes the call safe to repeat: the same key with the same body \
                continues the same order and payment page; with another body it is refused \
                (422). 1 to 255 visible ASCII characters. A secret: whoever sends it with the \
                same body gets that order's id and payment page, so make it random (a UUID v4, \
                or 128 bits or more), never a cart or order number.",
            min_length = 1, max_length = 255, pattern = "^[!-~]+$"),
    ),
    request_body = CheckoutInput,
    responses(
        (status = 201, description = "The order is recorded and its payment page is open: \
            send the buyer to `checkout_url`", body = CheckoutStarted,
            links(("GetOrder" = (
                operation_id = "get_order",
                parameters(("id" = "$response.body#/order_id")),
                description = "The order this checkout recorded"
            )))),
        (status = 202, description = "DHMAD's rate limit is reached: the order is recorded and \
            waits in line for its turn; `wait_secs` says about how long", body = Place,
            headers(
                ("Retry-After" = u64, description = "Seconds until the payment page should be open"),
                ("Location" = String, description = "The order's JSON, which carries `checkout_url` once it is open"),
            )),
        (status = 400, description = "Invalid input: a missing or unknown product, an invalid \
            e-mail address, a body that is not the expected JSON, or a malformed \
            Idempotency-Key", body = ErrorBody),
        (status = 403, description = "A cross-site request from a browser", body = ErrorBody),
        (status = 405, description = "Another method than POST", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 409, description = "The order's state refuses this now: already paid (the \
            message names the order), still being prepared by a concurrent request with the same \
            key (try again in a few seconds), waiting for the shop's signature, or a payment \
            under DHMAD's review; `message` says which", body = ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was first used with another body, \
            or DHMAD refused the escrow (its message is meant for the buyer)", body = ErrorBody),
        (status = 429, description = "Too many checkouts from this client",
            headers(("Retry-After" = u64, description = "Seconds to wait")), body = ErrorBody),
        (status = 502, description = "DHMAD failed; the order is kept with the reason",
            body = ErrorBody),
        (status = 503, description = "DHMAD or the database is unreachable for now, or \
            DHMAD's call budget is spent; the order, if recorded, is kept", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait, when the budget is spent"))),
    ),
)]
pub async fn json(
    State(s): State<AppState>,
    headers: HeaderMap,
    input: Result<Json<CheckoutInput>, JsonRejection>,
) -> AppResult<Response> {
    let Json(input) = input.map_err(|e| match e.status() {
        // A body past the limit, as the form route answers it: not malformed, just too large.
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        _ => AppError::BadRequest(e.body_text()),
    })?;
    let owner = idempotency_key(&headers)?.map_or(Owner::Nobody, Owner::Key);
    let req = CheckoutRequest {
        sku: &input.sku,
        email: &input.email,
        owner,
    };
    Ok(match checkout::start(&s, req).await? {
        Started::Ready(started) => (StatusCode::CREATED, Json(started)).into_response(),
        Started::Queued(place) => queued(place),
    })
}

/// 202 with the order's place in line.
fn queued(place: Place) -> Response {
    let location = format!("/api/orders/{}", place.order_id);
    (
        StatusCode::ACCEPTED,
        [
            (header::RETRY_AFTER, place.wait_secs.to_string()),
            (header::LOCATION, location),
        ],
        Json(place),
    )
        .into_response()
}
