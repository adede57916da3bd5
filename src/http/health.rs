//! Probes: `/healthz` says the process answers; `/readyz` that the database does too.

use std::time::Duration;

use axum::{extract::State, http::StatusCode, Json};
use serde_json::{json, Value};

use crate::state::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let ping = sqlx::query_scalar!("SELECT 1 AS one").fetch_one(&s.pool);
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        other => {
            tracing::warn!(result = ?other.map(|r| r.map(|_| ())), "database not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "down" })),
            )
        }
    }
}
