//! The back office's actions, the checkout and the buyer's steps run to their end, whatever
//! becomes of the request. The edge's deadline (a slow DHMAD: one read retried three times
//! outlasts it, and a full reconciliation pass can take minutes), a merchant closing the tab or
//! a buyer's double click (the browser drops the first request) drops the handler's future, and
//! with it the rest of the work: a DHMAD call whose answer is never recorded, an audit line
//! never written. Each action therefore runs
//! as a task of its own, which the request awaits: cut short, the request answers 503 (the
//! edge's deadline) while the action finishes and records what it did. The process waits for
//! it before it ends, as for a background job (`AppState::work`).

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument;

use crate::state::AppState;

pub async fn run_to_the_end(State(s): State<AppState>, req: Request, next: Next) -> Response {
    // In the request's span: its logs keep the request id and route.
    match s.work.spawn(next.run(req).in_current_span()).await {
        Ok(answer) => answer,
        // The panic catcher outside answers it, as if it had happened here.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down.
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
