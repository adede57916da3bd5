//! `POST /webhooks/dhmad`: verify the raw bytes, then store and apply in one transaction.
//! 4xx tells DHMAD not to retry (the delivery can never succeed); 5xx only when a retry can help.
//! Every delivery is counted: by outcome once verified, by reason when refused.

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
    metrics::WebhookRefusal,
    orders::{webhook, OrderError},
    state::AppState,
};

pub async fn receive(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<Value>> {
    let refused = |reason, e: AppError| {
        s.metrics.webhook_refused(reason);
        e
    };
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            refused(WebhookRefusal::TooLarge, AppError::PayloadTooLarge)
        }
        _ => refused(
            WebhookRefusal::Malformed,
            AppError::BadRequest("could not read the body".into()),
        ),
    })?;
    s.verifier
        .verify_headers(&headers, &body)
        .map_err(|e| match e {
            e if e.is_authentication() => refused(
                WebhookRefusal::Signature,
                AppError::Unauthorized(e.to_string()),
            ),
            VerifyError::NoSecret => {
                s.metrics.webhook("failed");
                AppError::Internal(anyhow::anyhow!("no webhook secret configured"))
            }
            e @ (VerifyError::Stale { .. } | VerifyError::FromTheFuture { .. }) => {
                refused(WebhookRefusal::Stale, AppError::BadRequest(e.to_string()))
            }
            e => refused(
                WebhookRefusal::Malformed,
                AppError::BadRequest(e.to_string()),
            ),
        })?;
    match webhook::ingest(&s.pool, &body).await {
        Ok(ingested) => {
            let outcome = ingested.outcome;
            s.metrics.webhook(outcome.as_str());
            if let Some(took) = ingested.funded_after {
                s.metrics.checkout_to_paid(took);
            }
            Ok(Json(json!({ "result": outcome.as_str() })))
        }
        Err(e @ OrderError::Invalid(_)) => Err(refused(WebhookRefusal::Malformed, e.into())),
        Err(e) => {
            s.metrics.webhook("failed");
            Err(e.into())
        }
    }
}
