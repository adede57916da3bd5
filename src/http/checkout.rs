//! `POST /checkout` (form → 303 to DHMAD) and `POST /api/checkout` (JSON → 201).
//!
//! Who may continue an open order: the form's browser (its `sf_buyer` cookie) or the API's
//! `Idempotency-Key`; never whoever knows the buyer's e-mail.

use axum::{
    extract::{rejection::FormRejection, rejection::JsonRejection, State},
    http::{HeaderMap, StatusCode},
    response::Redirect,
    Form, Json,
};
use axum_extra::extract::{cookie::SameSite, CookieJar};
use serde::Deserialize;

use super::cookies;
use crate::{
    error::{AppError, AppResult},
    orders::{
        checkout::{self, CheckoutRequest, Owner},
        CheckoutStarted,
    },
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
    jar: CookieJar,
    input: Result<Form<CheckoutInput>, FormRejection>,
) -> (CookieJar, AppResult<Redirect>) {
    let Form(input) = match input {
        Ok(i) => i,
        Err(e) => return (jar, Err(AppError::BadRequest(e.body_text()))),
    };
    let token = jar
        .get(cookies::BUYER)
        .map(|c| c.value().to_owned())
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(cookies::random_token);
    let req = CheckoutRequest {
        sku: &input.sku,
        email: &input.email,
        owner: Owner::Browser(token.clone()),
    };
    let started = checkout::start(&s, req).await;
    // Set even when the checkout failed: the order is saved, and the buyer's retry from this
    // browser must continue it. Lax: the buyer comes back from DHMAD's page by navigation.
    let cookie = cookies::build(
        &s.config,
        cookies::BUYER,
        token,
        "/",
        SameSite::Lax,
        time::Duration::days(30),
    );
    let redirect = started
        .map(|st| Redirect::to(&st.checkout_url))
        .map_err(AppError::from);
    (jar.add(cookie), redirect)
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

pub async fn json(
    State(s): State<AppState>,
    headers: HeaderMap,
    input: Result<Json<CheckoutInput>, JsonRejection>,
) -> AppResult<(StatusCode, Json<CheckoutStarted>)> {
    let Json(input) = input.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let owner = idempotency_key(&headers)?.map_or(Owner::Nobody, Owner::Key);
    let req = CheckoutRequest {
        sku: &input.sku,
        email: &input.email,
        owner,
    };
    let started = checkout::start(&s, req).await?;
    Ok((StatusCode::CREATED, Json(started)))
}
