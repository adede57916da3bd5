//! Clock, logs, faults and run-time settings.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{body, ControlError};
use crate::faults::FaultConfig;
use crate::lifecycle::deadlines;
use crate::state::{AppState, RequestLogEntry};
use crate::webhooks::DeliveryRecord;

type Reply = Result<Json<Value>, ControlError>;

pub async fn clock(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "now": dhmad::iso::format(state.clock.now()),
        "offset_seconds": state.clock.offset().whole_seconds(),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AdvanceBody {
    seconds: Option<f64>,
}

/// The longest step of `POST /sandbox/clock/advance`: ten years.
const MAX_ADVANCE_SECS: f64 = 10.0 * 366.0 * 86_400.0;
/// The same, in the dashboard form's unit.
pub(super) const MAX_ADVANCE_HOURS: u32 = 10 * 366 * 24;

/// Whether the clock may move forward by `seconds` (bounded, so the clock stays a date).
pub(super) fn is_valid_advance(seconds: f64) -> bool {
    seconds.is_finite() && (0.0..=MAX_ADVANCE_SECS).contains(&seconds)
}
/// The clock is not moved past this year (dates must stay four-digit years).
const LAST_YEAR: i32 = 9_000;

/// Moves the clock forward `seconds` and fires what fell due; returns how many fired. Shared by
/// the JSON route and the dashboard's form.
pub(super) fn advance_clock(state: &AppState, seconds: Option<f64>) -> Result<usize, ControlError> {
    // Bounded, so the clock stays a date (a step past year 9999 panicked with the store
    // locked, and every later call with it).
    let secs = seconds.filter(|s| is_valid_advance(*s)).ok_or_else(|| {
        ControlError::bad(format!(
            "seconds must be a number from 0 to {MAX_ADVANCE_SECS} (ten years)"
        ))
    })?;
    if state.clock.now().year() >= LAST_YEAR {
        return Err(ControlError::bad(format!(
            "the clock is as far ahead as it goes (year {LAST_YEAR})"
        )));
    }
    Ok(state.advance_clock_with(time::Duration::seconds_f64(secs), deadlines::fire_due))
}

pub async fn advance(State(state): State<AppState>, raw: Bytes) -> Reply {
    let b: AdvanceBody = body(&raw)?;
    let fired = advance_clock(&state, b.seconds)?;
    Ok(Json(
        json!({"now": dhmad::iso::format(state.clock.now()), "fired": fired}),
    ))
}

pub async fn deliveries(State(state): State<AppState>) -> Json<Vec<DeliveryRecord>> {
    Json(state.dispatcher.log.all())
}

pub async fn requests(State(state): State<AppState>) -> Json<Vec<RequestLogEntry>> {
    Json(state.request_log())
}

pub async fn get_faults(State(state): State<AppState>) -> Json<FaultConfig> {
    Json(state.faults.current())
}

pub async fn set_faults(
    State(state): State<AppState>,
    raw: Bytes,
) -> Result<Json<FaultConfig>, ControlError> {
    let cfg: FaultConfig = body(&raw)?;
    state.faults.replace(cfg);
    Ok(Json(state.faults.current()))
}

pub async fn clear_faults(State(state): State<AppState>) -> Json<FaultConfig> {
    state.faults.replace(FaultConfig::default());
    Json(state.faults.current())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UrlsBody {
    urls: Vec<String>,
}

pub async fn get_webhooks(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"urls": state.dispatcher.urls()}))
}

pub async fn set_webhooks(State(state): State<AppState>, raw: Bytes) -> Reply {
    let b: UrlsBody = body(&raw)?;
    state.dispatcher.set_urls(b.urls);
    Ok(Json(json!({"urls": state.dispatcher.urls()})))
}

pub async fn get_redirects(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"urls": state.allowed_redirects()}))
}

pub async fn set_redirects(State(state): State<AppState>, raw: Bytes) -> Reply {
    let b: UrlsBody = body(&raw)?;
    state.set_allowed_redirects(b.urls);
    Ok(Json(json!({"urls": state.allowed_redirects()})))
}

/// An uploaded proof file, as a download (`security::attachment`).
pub async fn file(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let store = state.lock_store();
    match store.files.get(&id) {
        Some(f) => crate::security::attachment(&f.name, &f.mime, f.bytes.clone()),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "File not found"})),
        )
            .into_response(),
    }
}
