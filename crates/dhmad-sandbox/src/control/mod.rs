//! The control API (`/sandbox/*`): act as a user or as DHMAD's admin, move the clock, inspect
//! deliveries and requests, inject faults. No authentication: it is a local tool, but it
//! refuses cross-site writes (`security::control_guard`).

mod admin;
mod allowed;
mod contract_pdf;
pub mod flash;
mod forms;
mod identity;
mod inspect;
mod sessions;

pub use allowed::Allowed;

use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::error::Refusal;
use crate::state::AppState;

/// The `/sandbox` router.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/sandbox", get(crate::dashboard::page))
        .route("/sandbox/sessions/{id}/complete", post(sessions::complete))
        .route("/sandbox/sessions/{id}/cancel", post(sessions::cancel))
        .route("/sandbox/sessions/{id}/expire", post(sessions::expire))
        .route(
            "/sandbox/escrows/{id}/deliver",
            post(admin::deliver_as_seller),
        )
        .route(
            "/sandbox/escrows/{id}/reject-delivery",
            post(admin::reject_delivery),
        )
        .route(
            "/sandbox/escrows/{id}/deposit-proof/approve",
            post(admin::approve_deposit),
        )
        .route(
            "/sandbox/escrows/{id}/deposit-proof/reject",
            post(admin::reject_deposit),
        )
        .route(
            "/sandbox/escrows/{id}/proof/accept",
            post(admin::accept_proof),
        )
        .route(
            "/sandbox/escrows/{id}/proof/reject",
            post(admin::reject_proof),
        )
        .route(
            "/sandbox/escrows/{id}/dispute/resolve",
            post(admin::resolve_dispute),
        )
        .route("/sandbox/escrows/{id}/events/resend", post(admin::resend))
        .route("/sandbox/escrows/{id}/events", post(admin::emit))
        .route(
            "/sandbox/identity-verifications",
            post(identity::seed_other),
        )
        .route(
            "/sandbox/identity-verifications/{id}/link",
            post(identity::link),
        )
        .route("/sandbox/clock", get(inspect::clock))
        .route("/sandbox/clock/advance", post(inspect::advance))
        .route("/sandbox/deliveries", get(inspect::deliveries))
        .route("/sandbox/requests", get(inspect::requests))
        .route(
            "/sandbox/faults",
            get(inspect::get_faults)
                .post(inspect::set_faults)
                .delete(inspect::clear_faults),
        )
        .route(
            "/sandbox/webhooks",
            get(inspect::get_webhooks).put(inspect::set_webhooks),
        )
        .route(
            "/sandbox/redirect-urls",
            get(inspect::get_redirects).put(inspect::set_redirects),
        )
        .route("/sandbox/files/{id}", get(inspect::file))
        .route("/sandbox/contracts/{file}", get(contract_pdf::pdf))
        .merge(dashboard_forms())
        .layer(middleware::from_fn_with_state(
            state,
            crate::security::control_guard,
        ))
}

/// The dashboard's buttons (`forms`): each path is its JSON route's under `/sandbox/dashboard`.
fn dashboard_forms() -> Router<AppState> {
    let escrow = |action: &str| format!("/sandbox/dashboard/escrows/{{id}}/{action}");
    Router::new()
        .route(&escrow("deliver"), post(forms::deliver))
        .route(&escrow("reject-delivery"), post(forms::reject_delivery))
        .route(
            &escrow("deposit-proof/approve"),
            post(forms::approve_payment),
        )
        .route(&escrow("deposit-proof/reject"), post(forms::reject_payment))
        .route(&escrow("proof/accept"), post(forms::accept_proof))
        .route(&escrow("proof/reject"), post(forms::reject_proof))
        .route(&escrow("dispute/resolve"), post(forms::resolve_dispute))
        .route(&escrow("events/resend"), post(forms::resend_event))
        .route(
            "/sandbox/dashboard/clock/advance",
            post(forms::advance_clock),
        )
}

/// A control-API error: `{"error": "..."}` with 400, or 404 for unknown ids.
pub struct ControlError(StatusCode, String);

impl From<Refusal> for ControlError {
    fn from(r: Refusal) -> Self {
        let status = match r {
            Refusal::NotFound(_) | Refusal::Missing(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        Self(status, r.message())
    }
}

impl ControlError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0
    }

    /// The message (the body's `error`).
    pub fn message(&self) -> &str {
        &self.1
    }

    /// 400 with a message.
    pub fn bad(m: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, m.into())
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

/// Parses an optional JSON body (empty = default).
pub fn body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ControlError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ControlError::bad(format!("invalid JSON body: {e}")))
}
