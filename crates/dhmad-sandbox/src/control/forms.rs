//! The dashboard's buttons: HTML forms (the dashboard runs no script, so it cannot send JSON)
//! posting under [`crate::security::DASHBOARD_FORMS`], which `security::control_guard` accepts
//! only urlencoded and only from the sandbox's own origin. Each one calls the same code as its
//! JSON route, then sends the browser back to the dashboard (303), or shows the dashboard with
//! the refusal.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::admin;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReasonForm {
    reason: String,
}

/// `POST /sandbox/dashboard/escrows/{id}/reject-delivery` (field `reason`, may be empty).
pub async fn reject_delivery(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    match admin::reject_delivery_as_buyer(&state, &id, Some(f.reason)) {
        Ok(()) => Redirect::to("/sandbox").into_response(),
        Err(e) => crate::dashboard::render(
            &state,
            Some(format!("Reject delivery of {id}: {}", e.message())),
            e.status(),
        ),
    }
}
