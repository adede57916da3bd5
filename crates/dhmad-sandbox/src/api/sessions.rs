//! `POST /escrows/:id/sessions` and `GET /sessions/:id`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use dhmad::{CreateSession, CreatedSession, SessionEnvelope};

use super::json::ApiJson;
use crate::error::{ApiError, Refusal};
use crate::lifecycle::sessions;
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<CreatedSession>), ApiError> {
    let allowed = state.allowed_redirects();
    let s = state.with_store(|st, ctx| sessions::create_session(st, ctx, &id, req, &allowed))?;
    state.metrics.session_created(s.action.to_string());
    Ok((
        StatusCode::CREATED,
        Json(CreatedSession {
            url: format!("{}/checkout/{}", state.settings.base_url, s.id),
            session_id: s.id,
            expires_at: s.expires_at,
        }),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SessionEnvelope>, ApiError> {
    // A session past its `expiresAt` reads `expired` now, not at the deadline ticker's next
    // round (as the hosted page does).
    let ctx = state.ctx();
    let mut store = state.lock_store();
    let s = store
        .sessions
        .get_mut(&id)
        .ok_or(Refusal::NotFound("Checkout session not found"))?;
    sessions::expire_if_due(s, ctx.now);
    Ok(Json(SessionEnvelope {
        session: s.to_wire(),
    }))
}
