//! What happens to identity verifications outside the API: another developer verifies the same
//! person, and the person registers on DHMAD (the record is linked).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{body, ControlError};
use crate::lifecycle::identity;
use crate::state::AppState;

type Reply = Result<Json<Value>, ControlError>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SeedBody {
    email: String,
    external_user_id: Option<String>,
}

fn reply(state: &AppState, id: &str) -> Reply {
    let store = state.lock_store();
    let v = store
        .verifications
        .get(id)
        .ok_or(crate::error::Refusal::Missing("Verification not found"))?;
    Ok(Json(json!({"verification": v.to_wire()})))
}

/// `POST /sandbox/identity-verifications` `{"email", "external_user_id"?}`: an approved
/// verification created by another developer's key (invisible to this key, no webhook here).
pub async fn seed_other(State(state): State<AppState>, raw: Bytes) -> Reply {
    let b: SeedBody = body(&raw)?;
    let id = state.with_store(|st, ctx| {
        identity::create_for_other_developer(st, ctx, &b.email, b.external_user_id)
    })?;
    reply(&state, &id)
}

/// `POST /sandbox/identity-verifications/{id}/link`: the person registered on DHMAD with that
/// e-mail; `identity.verification.linked` goes out if the record is this key's.
pub async fn link(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    let key_id = state.api_key_id();
    state.with_store(|st, ctx| identity::link(st, ctx, &key_id, &id))?;
    reply(&state, &id)
}
