//! A JSON body extractor that answers DHMAD's 400 shape instead of axum's 422.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `Json<T>` with 400 `{"error":"Bad Request","message"}` on a bad body; an empty body reads
/// as `{}`. A body must say it is JSON (`Content-Type: application/json`, §1.2): DHMAD's
/// JSON parser reads no other, so `curl -d` without the header fails there, and must fail
/// here too rather than teach a client that works only against the sandbox.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let says_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("Could not read the body: {e}")))?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else if !says_json {
            return Err(ApiError::bad_request(
                "Request body must be JSON: send Content-Type: application/json",
            ));
        } else {
            &bytes
        };
        serde_json::from_slice(bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))
    }
}
