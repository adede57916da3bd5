//! Complete, cancel or expire a session as its target user.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use dhmad::PaymentMethod;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{body, ControlError};
use crate::lifecycle::perform::{self, PerformInput};
use crate::lifecycle::sessions;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CompleteBody {
    /// `wallet` (default) or `guest`.
    payer: Option<String>,
    /// Guest payment method (default `bank_transfer`).
    method: Option<PaymentMethod>,
    /// Note / reason (submit_proof, request_cancellation, dispute).
    note: Option<String>,
    /// review_proof: accept (default) or ask for a correction (`false`).
    accept: Option<bool>,
}

pub async fn complete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Json<Value>, ControlError> {
    let b: CompleteBody = body(&raw)?;
    let guest = match b.payer.as_deref() {
        None | Some("wallet") => None,
        Some("guest") => Some(b.method.unwrap_or(PaymentMethod::BankTransfer)),
        Some(other) => {
            return Err(ControlError::bad(format!(
                "payer must be wallet or guest, not {other}"
            )))
        }
    };
    let input = PerformInput {
        guest_method: guest,
        upload: None,
        note: b.note,
        accept_proof: Some(b.accept.unwrap_or(true)),
    };
    let url = state.with_store(|st, ctx| perform::perform(st, ctx, &id, input))?;
    Ok(Json(json!({"redirect_url": url})))
}

pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ControlError> {
    let url = state.with_store(|st, ctx| sessions::cancel_session(st, ctx, &id))?;
    Ok(Json(json!({"redirect_url": url})))
}

pub async fn expire(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ControlError> {
    let url = state.with_store(|st, ctx| sessions::expire_session(st, ctx, &id))?;
    Ok(Json(json!({"redirect_url": url})))
}
