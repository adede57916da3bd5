//! The back office, behind `ADMIN_TOKEN`: sent as `Authorization: Bearer …` by scripts, or
//! kept by browsers in an HttpOnly, SameSite=Strict cookie set by the login form (Strict keeps
//! other sites from submitting the back office's forms with it).

use std::time::Duration;

use askama::Template;
use axum::{
    extract::{FromRequestParts, Path, State},
    http::{header, request::Parts, Method},
    response::{Html, IntoResponse, Redirect, Response},
    Form,
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::render;
use crate::{
    db,
    error::{AppError, AppResult},
    jobs::reconciler,
    orders::{checkout, fulfilment, Action},
    state::AppState,
};

const COOKIE: &str = "storefront_admin";

/// Proof that the request carries the admin token.
pub struct Admin;

fn cookie_value(token: &str) -> String {
    url::form_urlencoded::byte_serialize(token.as_bytes()).collect()
}

fn presented(parts: &Parts) -> Option<String> {
    let h = |n| {
        parts
            .headers
            .get_all(n)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
    };
    let bearer = h(header::AUTHORIZATION)
        .into_iter()
        .find_map(|v| v.strip_prefix("Bearer ").map(|t| cookie_value(t.trim())));
    bearer.or_else(|| {
        h(header::COOKIE)
            .into_iter()
            .flat_map(|v| v.split(';'))
            .find_map(|c| {
                let (k, v) = c.trim().split_once('=')?;
                (k == COOKIE).then(|| v.to_owned())
            })
    })
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(expected) = &state.config.admin_token else {
            return Err(AppError::NotFound.into_response()); // back office disabled
        };
        let expected = cookie_value(expected.expose_secret());
        match presented(parts) {
            Some(t) if bool::from(t.as_bytes().ct_eq(expected.as_bytes())) => Ok(Admin),
            _ if parts.method == Method::GET => Err(Redirect::to("/admin/login").into_response()),
            _ => Err(AppError::Unauthorized("admin token required".into()).into_response()),
        }
    }
}

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
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    orders: Vec<Row>,
    unmatched: i64,
}

pub async fn index(_: Admin, State(s): State<AppState>) -> AppResult<Html<String>> {
    let orders = db::orders::list_recent(&s.pool, 200)
        .await?
        .into_iter()
        .map(|o| {
            let st = o.status;
            Row {
                short_id: o.id.to_string()[..8].to_owned(),
                created_at: o.created_at.date().to_string(),
                amount: format!("{} {}", o.amount, o.currency),
                status: st.as_str(),
                escrow_status: o.escrow_status.clone().unwrap_or_default(),
                note: o
                    .failure_reason
                    .clone()
                    .or(o.deposit_rejection_reason.clone())
                    .unwrap_or_default(),
                can_ship: o.allows(Action::Ship),
                can_retry: o.allows(Action::RetryCheckout),
                id: o.id,
                sku: o.sku,
                buyer_email: o.buyer_email,
            }
        })
        .collect();
    let unmatched = db::inbox::count_unmatched(&s.pool).await?;
    render(&AdminPage { orders, unmatched })
}

#[derive(Template)]
#[template(path = "admin_login.html")]
struct LoginPage;

pub async fn login_form() -> AppResult<Html<String>> {
    render(&LoginPage)
}

#[derive(Deserialize)]
pub struct LoginInput {
    token: String,
}

pub async fn login(
    State(s): State<AppState>,
    Form(input): Form<LoginInput>,
) -> AppResult<Response> {
    let expected = s.config.admin_token.as_ref().ok_or(AppError::NotFound)?;
    if !bool::from(
        input
            .token
            .trim()
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes()),
    ) {
        return Err(AppError::Unauthorized("wrong admin token".into()));
    }
    let secure = if s.config.public_base_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=28800{secure}",
        cookie_value(input.token.trim())
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/admin")).into_response())
}

pub async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/admin/login")).into_response()
}

fn parse_id(id: &str) -> AppResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| AppError::NotFound)
}

pub async fn ship(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Redirect> {
    fulfilment::mark_shipped(&s, parse_id(&id)?).await?;
    Ok(Redirect::to("/admin"))
}

/// Retries the checkout of an order whose escrow creation failed (or is in doubt).
pub async fn retry(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Redirect> {
    let order = db::orders::get(&s.pool, parse_id(&id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    checkout::resume(&s, order).await?;
    Ok(Redirect::to("/admin"))
}

/// Reads every open order from DHMAD now, whatever its last news.
pub async fn reconcile(_: Admin, State(s): State<AppState>) -> AppResult<Redirect> {
    let report = reconciler::run_once(&s, Duration::ZERO)
        .await
        .map_err(AppError::Internal)?;
    tracing::info!(?report, "manual reconciliation");
    Ok(Redirect::to("/admin"))
}
