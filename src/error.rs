//! The one error type of the HTTP edge. Each variant maps to a status and a message that is safe
//! to show; internal details are logged once (inside the request's span, so with its request id)
//! and never sent. Whether the client gets HTML or JSON is decided per request by
//! [`crate::http::render_errors`], from the [`ErrorBody`] this module attaches to the response.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The client sent something invalid; the text says what (it only echoes client input).
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    /// Missing or wrong credentials (admin token, webhook signature); the text says which.
    #[error("{0}")]
    Unauthorized(String),
    #[error("request body too large")]
    PayloadTooLarge,
    /// The action does not fit the order's state.
    #[error("{0}")]
    Conflict(String),
    /// DHMAD refused for a business reason; `message` is its `user_message`, meant for users.
    #[error("{message}")]
    Refused { status: StatusCode, message: String },
    /// DHMAD failed or answered unexpectedly (502). The text is ours, not DHMAD's.
    #[error("{0}")]
    Upstream(String),
    /// DHMAD or the database is unreachable for now (503).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The public face of an error, attached to error responses.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: &'static str,
    pub message: String,
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Refused { status, .. } => *status,
            AppError::Upstream(_) => StatusCode::BAD_GATEWAY,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Database(e) if is_transient_db(e) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Database(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn public_message(&self) -> String {
        match self {
            AppError::Database(_) | AppError::Internal(_) => match self.status() {
                StatusCode::SERVICE_UNAVAILABLE => {
                    "The service is briefly unavailable. Please try again.".into()
                }
                _ => "Something went wrong on our side. Please try again.".into(),
            },
            other => other.to_string(),
        }
    }
}

/// Connection-level failures that a retry may fix (the database is down or saturated).
pub fn is_transient_db(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
    )
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, ?status, "request failed");
        } else {
            tracing::info!(error = %self, ?status, "request refused");
        }
        let body = ErrorBody {
            status,
            error: status.canonical_reason().unwrap_or("Error"),
            message: self.public_message(),
        };
        let mut resp = (status, Json(body.clone())).into_response();
        resp.extensions_mut().insert(body);
        resp
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_text_never_reaches_the_client() {
        let e = AppError::Internal(anyhow::anyhow!("password=hunter2 in connection string"));
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = resp.extensions().get::<ErrorBody>().unwrap();
        assert!(!body.message.contains("hunter2"));
    }

    #[test]
    fn pool_timeouts_are_unavailable() {
        assert_eq!(
            AppError::Database(sqlx::Error::PoolTimedOut).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
