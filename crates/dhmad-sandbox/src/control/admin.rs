//! DHMAD-admin decisions and event triggers.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use dhmad::{EscrowStatus, WebhookEnvelope};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{body, ControlError};
use crate::lifecycle::{self, proof_ops, triggers};
use crate::state::{AppState, EscrowRecord};

type Reply = Result<Json<Value>, ControlError>;

fn escrow_reply(state: &AppState, id: &str) -> Reply {
    let store = state.lock_store();
    let e = lifecycle::escrow(&store, id)?.to_wire(None, &state.settings.app_name);
    Ok(Json(json!({"escrow": e})))
}

/// The seller delivers from dhmad.tn (for escrows whose seller is not the associated user):
/// `escrow_ops::deliver` with the seller as the acting user. Shared by the JSON route and the
/// dashboard's form.
pub(super) fn deliver_by_seller(state: &AppState, id: &str) -> Result<(), ControlError> {
    state.with_store(|st, ctx| {
        let seller = lifecycle::escrow(st, id)?.seller_email.clone();
        let as_seller = crate::state::Ctx {
            assoc: seller,
            ..ctx.clone()
        };
        lifecycle::escrow_ops::deliver(st, &as_seller, id)
    })?;
    Ok(())
}

/// `POST /sandbox/escrows/{id}/deliver`.
pub async fn deliver_as_seller(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    deliver_by_seller(&state, &id)?;
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

/// DHMAD approves the pending guest payment proof: escrow → paid. Shared by the JSON route and
/// the dashboard's form, as are the decisions below.
pub(super) fn approve_guest_payment(state: &AppState, id: &str) -> Result<(), ControlError> {
    state.with_store(|st, ctx| proof_ops::approve_deposit(st, ctx, id))?;
    Ok(())
}

pub async fn approve_deposit(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    approve_guest_payment(&state, &id)?;
    escrow_reply(&state, &id)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReasonBody {
    reason: Option<String>,
}

/// DHMAD rejects the pending guest payment proof (`reason` defaults to a generic one).
pub(super) fn reject_guest_payment(
    state: &AppState,
    id: &str,
    reason: Option<String>,
) -> Result<(), ControlError> {
    let reason = reason.unwrap_or_else(|| "The payment proof could not be verified".into());
    state.with_store(|st, ctx| proof_ops::reject_deposit(st, ctx, id, reason))?;
    Ok(())
}

pub async fn reject_deposit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    raw: Bytes,
) -> Reply {
    let b: ReasonBody = body(&raw)?;
    reject_guest_payment(&state, &id, b.reason)?;
    escrow_reply(&state, &id)
}

/// DHMAD decides an escalated purchase proof (`needs_dhmad_review`).
pub(super) fn decide_proof(state: &AppState, id: &str, accept: bool) -> Result<(), ControlError> {
    state.with_store(|st, ctx| proof_ops::admin_decide(st, ctx, id, accept))?;
    Ok(())
}

pub async fn accept_proof(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    decide_proof(&state, &id, true)?;
    escrow_reply(&state, &id)
}

pub async fn reject_proof(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    decide_proof(&state, &id, false)?;
    escrow_reply(&state, &id)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResolveBody {
    outcome: Option<String>,
}

/// DHMAD resolves the open dispute: `outcome` is `release` (→ completed) or `refund`
/// (→ cancelled).
pub(super) fn resolve(
    state: &AppState,
    id: &str,
    outcome: Option<&str>,
) -> Result<(), ControlError> {
    let release = match outcome {
        Some("release") => true,
        Some("refund") => false,
        _ => return Err(ControlError::bad("outcome must be release or refund")),
    };
    state.with_store(|st, ctx| triggers::resolve_dispute(st, ctx, id, release))?;
    Ok(())
}

pub async fn resolve_dispute(
    State(state): State<AppState>,
    Path(id): Path<String>,
    raw: Bytes,
) -> Reply {
    let b: ResolveBody = body(&raw)?;
    resolve(&state, &id, b.outcome.as_deref())?;
    escrow_reply(&state, &id)
}

/// The event `events/resend` would send again, the escrow's last one, if it can be sent: the
/// rule of [`resend_last`], also asked by the dashboard. Refused when no webhook URL is set
/// (`has_urls`): it would be queued for nobody, and the dashboard would say it was.
pub(super) fn check_resend(
    rec: &EscrowRecord,
    has_urls: bool,
) -> Result<&WebhookEnvelope, ControlError> {
    if !has_urls {
        return Err(ControlError::bad(
            "No webhook URL is set (SANDBOX_WEBHOOK_URLS, or PUT /sandbox/webhooks): there is \
             nowhere to send the event again",
        ));
    }
    rec.last_event
        .as_ref()
        .ok_or_else(|| ControlError::bad("No event was sent for this escrow yet"))
}

/// Queues the escrow's last event again, same id; returns it.
pub(super) fn resend_last(state: &AppState, id: &str) -> Result<WebhookEnvelope, ControlError> {
    let has_urls = !state.dispatcher.urls().is_empty();
    let env = {
        let store = state.lock_store();
        check_resend(lifecycle::escrow(&store, id)?, has_urls)?.clone()
    };
    state.dispatcher.enqueue(env.clone(), Some(id.to_owned()));
    Ok(env)
}

pub async fn resend(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    let env = resend_last(&state, &id)?;
    Ok(Json(json!({"event_id": env.id, "type": env.event_type})))
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
