//! `GET /sandbox/contracts/{id}.pdf`: what a contract's `pdfVersions[].url` opens. DHMAD serves
//! the rendered contract; the sandbox answers one fixed placeholder page (`assets/`), pointing
//! at the terms and signatures, so the link a shop shows works when clicked.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

const PLACEHOLDER: &[u8] = include_bytes!("../../assets/contract-placeholder.pdf");

pub async fn pdf(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let known = file.strip_suffix(".pdf").is_some_and(|id| {
        let store = state.lock_store();
        store
            .escrows
            .values()
            .any(|e| e.contract.as_ref().is_some_and(|c| c.id == id))
    });
    if !known {
        return crate::pages::message(
            StatusCode::NOT_FOUND,
            "Contract not found",
            "This sandbox has no contract with that id. State lives in memory: a restart clears it.",
        );
    }
    // Shown inline by the browser's viewer (not `security::attachment`'s download: this file is
    // the sandbox's own, not an upload).
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        PLACEHOLDER,
    )
        .into_response()
}
