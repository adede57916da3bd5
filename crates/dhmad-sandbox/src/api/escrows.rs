//! `/escrows` handlers: thin wrappers over [`crate::lifecycle`].

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use dhmad::{
    ContractEnvelope, CreateEscrow, CreatedEscrow, Escrow, EscrowActionResult, EscrowEnvelope,
    EscrowList, EscrowStatus, Pagination, ProofEnvelope, RejectDelivery, UpdateEscrow,
};

use super::json::ApiJson;
use crate::error::{ApiError, Refusal};
use crate::lifecycle::{self, create, escrow_ops, field_rules};
use crate::state::AppState;

type ApiResult<T> = Result<Json<T>, ApiError>;

fn snapshot(state: &AppState, id: &str) -> Result<Escrow, ApiError> {
    let store = state.lock_store();
    Ok(lifecycle::escrow(&store, id)?.to_wire(None, &state.settings.app_name))
}

fn action_result(state: &AppState, id: &str, message: &str) -> ApiResult<EscrowActionResult> {
    Ok(Json(EscrowActionResult {
        message: Some(message.to_owned()),
        escrow: snapshot(state, id)?,
    }))
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(mut raw): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<CreatedEscrow>), ApiError> {
    field_rules::read_counts(&mut raw)?;
    let mut req: CreateEscrow = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
    field_rules::keep_bad_hours(&raw, &mut req);
    let created = state.with_store(|st, ctx| {
        let id = create::create_escrow(st, ctx, req)?;
        let rec = &st.escrows[&id];
        Ok::<_, Refusal>(CreatedEscrow {
            message: Some("Escrow created successfully".into()),
            escrow: rec.created_view(&ctx.app_name),
            contract: rec.contract_summary(),
            url: Some(format!("{}/escrows/{id}", ctx.base_url)),
            tracking_id: Some(id.clone()),
        })
    })?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<EscrowList> {
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(s) if EscrowStatus::KNOWN.contains(&s) => Some(EscrowStatus::from(s)),
        Some(_) => return Err(Refusal::field("status", "unknown status").into()),
    };
    let role = q.get("role").map(String::as_str).filter(|r| !r.is_empty());
    if role.is_some_and(|r| r != "seller" && r != "buyer") {
        return Err(Refusal::field("role", "must be seller or buyer").into());
    }
    let number = |k: &str, default: u32| -> Result<u32, ApiError> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| Refusal::field(k, "must be a positive integer").into()),
        }
    };
    let page = number("page", 1)?;
    let limit = number("limit", 20)?.min(100);
    let assoc = state.settings.seller_email.clone();
    let store = state.lock_store();
    let mut matching: Vec<_> = store
        .escrows
        .values()
        .filter(|e| match role {
            Some("seller") => e.is_seller(&assoc),
            Some(_) => e.is_buyer(&assoc),
            None => e.is_seller(&assoc) || e.is_buyer(&assoc),
        })
        .filter(|e| status.is_none() || status.as_ref() == Some(&e.status))
        .collect();
    matching.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let total = matching.len() as u64;
    let escrows = matching
        .into_iter()
        .skip(usize::try_from((u64::from(page) - 1) * u64::from(limit)).unwrap_or(usize::MAX))
        .take(limit as usize)
        .map(|e| e.to_wire(None, &state.settings.app_name))
        .collect();
    let pages = total.div_ceil(u64::from(limit)) as u32;
    Ok(Json(EscrowList {
        escrows,
        pagination: Pagination {
            page,
            limit,
            total,
            pages,
        },
    }))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<EscrowEnvelope> {
    Ok(Json(EscrowEnvelope {
        escrow: snapshot(&state, &id)?,
    }))
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(mut raw): ApiJson<serde_json::Value>,
) -> ApiResult<EscrowActionResult> {
    field_rules::read_counts(&mut raw)?;
    let req: UpdateEscrow = serde_json::from_value(raw)
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
    state.with_store(|st, ctx| escrow_ops::update(st, ctx, &id, req))?;
    action_result(&state, &id, "Escrow updated successfully")
}

pub async fn deliver(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<EscrowActionResult> {
    state.with_store(|st, ctx| escrow_ops::deliver(st, ctx, &id))?;
    let e = snapshot(&state, &id)?;
    let message = if e.status == EscrowStatus::Completed {
        "Escrow marked as delivered and completed; funds released to the seller"
    } else {
        "Escrow marked as delivered"
    };
    Ok(Json(EscrowActionResult {
        message: Some(message.into()),
        escrow: e,
    }))
}

pub async fn reject_delivery(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RejectDelivery>,
) -> ApiResult<EscrowActionResult> {
    state.with_store(|st, ctx| escrow_ops::reject_delivery(st, ctx, &id, req.reason))?;
    action_result(&state, &id, "Delivery rejected; the escrow is back to paid")
}

pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<EscrowActionResult> {
    state.with_store(|st, ctx| escrow_ops::cancel(st, ctx, &id))?;
    action_result(&state, &id, "Escrow cancelled successfully")
}

pub async fn proof(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<ProofEnvelope> {
    let ctx = state.ctx();
    let store = state.lock_store();
    Ok(Json(ProofEnvelope {
        proof: escrow_ops::proof(&store, &ctx, &id)?,
    }))
}

pub async fn contract(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<ContractEnvelope> {
    let ctx = state.ctx();
    let store = state.lock_store();
    Ok(Json(ContractEnvelope {
        contract: escrow_ops::contract(&store, &ctx, &id)?,
    }))
}
