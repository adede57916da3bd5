//! The dashboard's buttons: HTML forms (the dashboard runs no script, so it cannot send JSON)
//! posting under [`crate::security::DASHBOARD_FORMS`], which `security::control_guard` accepts
//! only urlencoded and only from the sandbox's own origin. Each one calls the same function as
//! its JSON route, then sends the browser back to the dashboard (303) with a notice of what
//! happened (`flash`), or shows the dashboard with the refusal.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use super::flash::Done;
use super::{admin, inspect, ControlError};
use crate::dashboard::Notice;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReasonForm {
    reason: String,
}

impl ReasonForm {
    /// An empty field means no reason given.
    fn reason(self) -> Option<String> {
        Some(self.reason).filter(|r| !r.trim().is_empty())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OutcomeForm {
    outcome: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HoursForm {
    hours: String,
}

type Id = Path<String>;

/// 303 to the dashboard with `done`'s notice, or the dashboard with the refusal.
fn answer(state: &AppState, id: &str, done: Done, r: Result<(), ControlError>) -> Response {
    match r {
        Ok(()) => done.redirect(id).into_response(),
        Err(e) => refused(
            state,
            format!("{} ({id}): {}", done.button(), e.message()),
            &e,
        ),
    }
}

fn refused(state: &AppState, text: String, e: &ControlError) -> Response {
    crate::dashboard::render(state, Some(Notice::refused(text)), e.status())
}

/// `POST /sandbox/dashboard/escrows/{id}/deliver`: as the escrow's seller.
pub async fn deliver(State(state): State<AppState>, Path(id): Id) -> Response {
    let r = admin::deliver_by_seller(&state, &id);
    answer(&state, &id, Done::Delivered, r)
}

/// `POST /sandbox/dashboard/escrows/{id}/reject-delivery` (field `reason`, may be empty).
pub async fn reject_delivery(
    State(state): State<AppState>,
    Path(id): Id,
    Form(f): Form<ReasonForm>,
) -> Response {
    let r = admin::reject_delivery_as_buyer(&state, &id, f.reason());
    answer(&state, &id, Done::DeliveryRejected, r)
}

/// `POST /sandbox/dashboard/escrows/{id}/deposit-proof/approve`.
pub async fn approve_payment(State(state): State<AppState>, Path(id): Id) -> Response {
    let r = admin::approve_guest_payment(&state, &id);
    answer(&state, &id, Done::PaymentApproved, r)
}

/// `POST /sandbox/dashboard/escrows/{id}/deposit-proof/reject` (field `reason`, may be empty:
/// the JSON route's default reason then).
pub async fn reject_payment(
    State(state): State<AppState>,
    Path(id): Id,
    Form(f): Form<ReasonForm>,
) -> Response {
    let r = admin::reject_guest_payment(&state, &id, f.reason());
    answer(&state, &id, Done::PaymentRejected, r)
}

/// `POST /sandbox/dashboard/escrows/{id}/proof/accept`.
pub async fn accept_proof(State(state): State<AppState>, Path(id): Id) -> Response {
    let r = admin::decide_proof(&state, &id, true);
    answer(&state, &id, Done::ProofAccepted, r)
}

/// `POST /sandbox/dashboard/escrows/{id}/proof/reject`.
pub async fn reject_proof(State(state): State<AppState>, Path(id): Id) -> Response {
    let r = admin::decide_proof(&state, &id, false);
    answer(&state, &id, Done::ProofRejected, r)
}

/// `POST /sandbox/dashboard/escrows/{id}/dispute/resolve` (field `outcome`: `release` or
/// `refund`).
pub async fn resolve_dispute(
    State(state): State<AppState>,
    Path(id): Id,
    Form(f): Form<OutcomeForm>,
) -> Response {
    let done = if f.outcome == "refund" {
        Done::Refunded
    } else {
        Done::Released
    };
    let r = admin::resolve(&state, &id, Some(f.outcome.as_str()));
    answer(&state, &id, done, r)
}

/// `POST /sandbox/dashboard/escrows/{id}/events/resend`.
pub async fn resend_event(State(state): State<AppState>, Path(id): Id) -> Response {
    let r = admin::resend_last(&state, &id).map(|_| ());
    answer(&state, &id, Done::EventResent, r)
}

/// `POST /sandbox/dashboard/clock/advance` (field `hours`; the JSON route takes seconds).
pub async fn advance_clock(State(state): State<AppState>, Form(f): Form<HoursForm>) -> Response {
    let seconds = f.hours.trim().parse::<f64>().ok().map(|h| h * 3600.0);
    match inspect::advance_clock(&state, seconds) {
        Ok(fired) => Done::redirect_clock(fired).into_response(),
        Err(e) => {
            // The JSON route's rule on the amount is in seconds; the form speaks hours. Any
            // other refusal (the clock at its last year) keeps its own words.
            let hours_ok = seconds.is_some_and(inspect::is_valid_advance);
            let why = if hours_ok {
                e.message().to_owned()
            } else {
                format!(
                    "a number of hours from 0 to {} (ten years)",
                    inspect::MAX_ADVANCE_HOURS
                )
            };
            let text = format!("Move the clock by \"{}\" hours: {why}", f.hours);
            refused(&state, text, &e)
        }
    }
}
