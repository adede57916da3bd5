//! `POST /webhooks/dhmad`: verify the raw bytes, then store and apply in one transaction.
//! 4xx tells DHMAD not to retry (the delivery can never succeed); 5xx only when a retry can help.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, State},
    http::{HeaderMap, StatusCode},
    Json,
};
use dhmad::VerifyError;
use serde_json::{json, Value};

use crate::{
    error::{AppError, AppResult},
    orders::webhook,
    state::AppState,
};

pub async fn receive(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<Value>> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        _ => AppError::BadRequest("could not read the body".into()),
    })?;
    s.verifier
        .verify_headers(&headers, &body)
        .map_err(|e| match e {
            e if e.is_authentication() => AppError::Unauthorized(e.to_string()),
            VerifyError::NoSecret => {
                AppError::Internal(anyhow::anyhow!("no webhook secret configured"))
            }
            e => AppError::BadRequest(e.to_string()),
        })?;
    let outcome = webhook::ingest(&s.pool, &body).await?;
    Ok(Json(json!({ "result": outcome.as_str() })))
}
