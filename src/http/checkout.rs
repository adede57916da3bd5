//! `POST /checkout` (form → 303 to DHMAD) and `POST /api/checkout` (JSON → 201).

use axum::{
    extract::{rejection::FormRejection, rejection::JsonRejection, State},
    http::StatusCode,
    response::Redirect,
    Form, Json,
};
use serde::Deserialize;

use crate::{
    error::{AppError, AppResult},
    orders::{checkout, CheckoutStarted},
    state::AppState,
};

#[derive(Deserialize)]
pub struct CheckoutInput {
    #[serde(default)]
    sku: String,
    #[serde(default)]
    email: String,
}

/// 303 See Other: the status HTTP defines for redirect-after-POST (DHMAD's guide shows 302;
/// browsers treat both alike).
pub async fn form(
    State(s): State<AppState>,
    input: Result<Form<CheckoutInput>, FormRejection>,
) -> AppResult<Redirect> {
    let Form(input) = input.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let started = checkout::start(&s, &input.sku, &input.email).await?;
    Ok(Redirect::to(&started.checkout_url))
}

pub async fn json(
    State(s): State<AppState>,
    input: Result<Json<CheckoutInput>, JsonRejection>,
) -> AppResult<(StatusCode, Json<CheckoutStarted>)> {
    let Json(input) = input.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let started = checkout::start(&s, &input.sku, &input.email).await?;
    Ok((StatusCode::CREATED, Json(started)))
}
