//! The sandbox's plain pages outside the API, the hosted page and the dashboard: `GET /` and
//! `GET /escrows/{id}` (the create response's `url`) lead to the dashboard, and a path that
//! leads nowhere gets a small page linking to it instead of an empty 404.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::security::{self, PAGE_CSP};
use crate::state::AppState;

/// A heading, a sentence and a link to the dashboard.
#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    heading: &'a str,
    text: &'a str,
}

/// An HTML page with the sandbox's page headers.
pub fn message(status: StatusCode, heading: &str, text: &str) -> Response {
    match (MessagePage { heading, text }).render() {
        Ok(body) => security::page_headers((status, Html(body)).into_response(), PAGE_CSP),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `GET /` and `GET /escrows/{id}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { see_other("/sandbox") }))
        .route("/escrows/{id}", get(escrow))
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}

/// The create response's `url`: DHMAD's page of the escrow, here its row on the dashboard.
async fn escrow(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let known = state.lock_store().escrows.contains_key(&id);
    if known {
        // The id is a known key, 24 hex: safe in a URL fragment as is.
        return see_other(&format!("/sandbox#escrow-{id}"));
    }
    message(
        StatusCode::NOT_FOUND,
        "Escrow not found",
        "This sandbox has no escrow with that id. State lives in memory: a restart clears it.",
    )
}

/// Any other path. Under `/api/` the answer stays JSON in DHMAD's error shape, for programs.
pub async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return crate::api::not_found().await.into_response();
    }
    message(
        StatusCode::NOT_FOUND,
        "Page not found",
        "The sandbox has no page at this address.",
    )
}
