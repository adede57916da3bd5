//! DHMAD-admin decisions and event triggers.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use dhmad::EscrowStatus;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{body, ControlError};
use crate::lifecycle::{self, proof_ops, triggers};
use crate::state::AppState;

type Reply = Result<Json<Value>, ControlError>;

fn escrow_reply(state: &AppState, id: &str) -> Reply {
    let store = state.lock_store();
    let e = lifecycle::escrow(&store, id)?.to_wire(None, &state.settings.app_name);
    Ok(Json(json!({"escrow": e})))
}

/// The seller delivers from dhmad.tn (for escrows whose seller is not the associated user).
pub async fn deliver_as_seller(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    state.with_store(|st, ctx| {
        let seller = lifecycle::escrow(st, &id)?.seller_email.clone();
        let as_seller = crate::state::Ctx {
            assoc: seller,
            ..ctx.clone()
        };
        lifecycle::escrow_ops::deliver(st, &as_seller, &id)
    })?;
    escrow_reply(&state, &id)
}

/// The buyer rejects the delivery on dhmad.tn: `escrow_ops::reject_delivery` (the code of
/// `POST /api/v1/escrows/:id/reject-delivery`) with the buyer as the acting user. Shared by the
/// JSON route and the dashboard's form.
pub(super) fn reject_delivery_as_buyer(
    state: &AppState,
    id: &str,
    reason: Option<String>,
) -> Result<(), ControlError> {
    state.with_store(|st, ctx| {
        let buyer = lifecycle::escrow(st, id)?.buyer_email.clone();
        let as_buyer = crate::state::Ctx {
            assoc: buyer,
            ..ctx.clone()
        };
        lifecycle::escrow_ops::reject_delivery(st, &as_buyer, id, reason)
    })?;
    Ok(())
}

/// `POST /sandbox/escrows/{id}/reject-delivery`, optional `{"reason": "..."}`.
pub async fn reject_delivery(
    State(state): State<AppState>,
    Path(id): Path<String>,
    raw: Bytes,
) -> Reply {
    let b: ReasonBody = body(&raw)?;
    reject_delivery_as_buyer(&state, &id, b.reason)?;
    escrow_reply(&state, &id)
}

pub async fn approve_deposit(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    state.with_store(|st, ctx| proof_ops::approve_deposit(st, ctx, &id))?;
    escrow_reply(&state, &id)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReasonBody {
    reason: Option<String>,
}

pub async fn reject_deposit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    raw: Bytes,
) -> Reply {
    let b: ReasonBody = body(&raw)?;
    let reason = b
        .reason
        .unwrap_or_else(|| "The payment proof could not be verified".into());
    state.with_store(|st, ctx| proof_ops::reject_deposit(st, ctx, &id, reason))?;
    escrow_reply(&state, &id)
}

pub async fn accept_proof(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    state.with_store(|st, ctx| proof_ops::admin_decide(st, ctx, &id, true))?;
    escrow_reply(&state, &id)
}

pub async fn reject_proof(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    state.with_store(|st, ctx| proof_ops::admin_decide(st, ctx, &id, false))?;
    escrow_reply(&state, &id)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResolveBody {
    outcome: Option<String>,
}

pub async fn resolve_dispute(
    State(state): State<AppState>,
    Path(id): Path<String>,
    raw: Bytes,
) -> Reply {
    let b: ResolveBody = body(&raw)?;
    let release = match b.outcome.as_deref() {
        Some("release") => true,
        Some("refund") => false,
        _ => return Err(ControlError::bad("outcome must be release or refund")),
    };
    state.with_store(|st, ctx| triggers::resolve_dispute(st, ctx, &id, release))?;
    escrow_reply(&state, &id)
}

pub async fn resend(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    let last = {
        let store = state.lock_store();
        lifecycle::escrow(&store, &id)?.last_event.clone()
    };
    let env = last.ok_or_else(|| ControlError::bad("No event was sent for this escrow yet"))?;
    let reply = json!({"event_id": env.id, "type": env.event_type});
    state.dispatcher.enqueue(env, Some(id));
    Ok(Json(reply))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EmitBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "oldStatus")]
    old_status: Option<EscrowStatus>,
}

pub async fn emit(State(state): State<AppState>, Path(id): Path<String>, raw: Bytes) -> Reply {
    let b: EmitBody = body(&raw)?;
    let kind = b
        .kind
        .ok_or_else(|| ControlError::bad("type is required"))?;
    state.with_store(|st, ctx| triggers::emit_chosen(st, ctx, &id, &kind, b.old_status))?;
    let store = state.lock_store();
    let env = lifecycle::escrow(&store, &id)?.last_event.clone();
    Ok(Json(json!({"event_id": env.map(|e| e.id), "type": kind})))
}
