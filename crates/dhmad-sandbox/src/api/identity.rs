//! `/identity-verifications` (`docs/dhmad-api.md` §3.14): thin wrappers over
//! [`crate::lifecycle::identity`]. No association needed; records are scoped to the API key.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use dhmad::{
    CreateIdentityVerification, CreatedIdentityVerification, IdentityVerification,
    IdentityVerificationList,
};

use super::json::ApiJson;
use crate::error::{ApiError, Refusal};
use crate::lifecycle::identity;
use crate::state::AppState;

/// 201 with a new record (approved at once), or 200 with this key's open record for the
/// e-mail, as DHMAD answers a repeated call.
pub async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateIdentityVerification>,
) -> Result<(StatusCode, Json<CreatedIdentityVerification>), ApiError> {
    let allowed = state.allowed_redirects();
    let key_id = state.api_key_id();
    let (status, answer) = state.with_store(|st, ctx| {
        let created = identity::create(st, ctx, &key_id, req, &allowed)?;
        let (status, message) = if created.new {
            (
                StatusCode::CREATED,
                "Identity verification approved (sandbox: no e-mail is sent)",
            )
        } else {
            (
                StatusCode::OK,
                "An identity verification already exists for this email",
            )
        };
        Ok::<_, Refusal>((
            status,
            CreatedIdentityVerification {
                verification: st.verifications[&created.id].to_wire(),
                message: Some(message.into()),
            },
        ))
    })?;
    Ok((status, Json(answer)))
}

/// The record itself, unwrapped (DHMAD documents no wrapper).
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<IdentityVerification>, ApiError> {
    let key_id = state.api_key_id();
    let store = state.lock_store();
    Ok(Json(identity::get(&store, &key_id, &id)?.to_wire()))
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<IdentityVerificationList>, ApiError> {
    let key_id = state.api_key_id();
    let store = state.lock_store();
    let verifications = identity::list(&store, &key_id, q.get("email").map(String::as_str))?
        .into_iter()
        .map(|v| v.to_wire())
        .collect();
    Ok(Json(IdentityVerificationList { verifications }))
}
