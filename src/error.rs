//! The one error type of the HTTP edge. Each variant maps to a status and a message that is safe
//! to show; the domain's [`OrderError`] maps here. Internal details ride along on the response
//! as [`ErrorDetail`] and are logged once, by the error-rendering hook (`RenderErrors` in
//! `crate::http::error_pages`, inside the request's span, so with its request id), and never
//! sent. Whether the client gets HTML or JSON is decided there too.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

use crate::orders::OrderError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The client sent something invalid; the text says what (it only echoes client input).
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    /// The path exists, not with this method (a refused step's page reloaded as a GET).
    #[error(
        "This address does not answer that kind of request. Go back to the catalog or your order."
    )]
    MethodNotAllowed,
    /// Missing or wrong credentials (admin token, webhook signature); the text says which.
    #[error("{0}")]
    Unauthorized(String),
    #[error("request body too large")]
    PayloadTooLarge,
    /// The client did not send the request's body in time.
    #[error("The request did not arrive in time. Please try again.")]
    RequestTimeout,
    /// The request is refused whoever sends it this way (cross-site form, expired token).
    #[error("{0}")]
    Forbidden(String),
    /// Too many requests from this client; `retry_after` in seconds.
    #[error("Too many requests. Please wait {retry_after} seconds and try again.")]
    TooManyRequests { retry_after: u64 },
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
    Internal(anyhow::Error),
    /// A domain operation refused or failed; its variant decides the status.
    #[error(transparent)]
    Order(#[from] OrderError),
}

/// A job's error, whatever it wraps: a database or domain error keeps its status (a lock
/// wait that timed out is a 503, not a 500), anything else is ours.
impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        let e = match e.downcast::<sqlx::Error>() {
            Ok(db) => return AppError::Database(db),
            Err(e) => e,
        };
        match e.downcast::<OrderError>() {
            Ok(order) => AppError::Order(order),
            Err(e) => AppError::Internal(e),
        }
    }
}

/// What the log gets about a failed request: the status and the internal detail. Attached to
/// the response by `into_response`, read and removed by the error-rendering middleware.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub String);

/// The public face of an error, attached to error responses.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Refused { status, .. } => *status,
            AppError::Upstream(_) => StatusCode::BAD_GATEWAY,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Database(e) if crate::db::is_transient(e) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Database(e) if is_bad_input(e) => StatusCode::BAD_REQUEST,
            AppError::Database(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Order(e) => order_status(e),
        }
    }

    /// Seconds a client should wait before trying again, when the error says.
    pub(crate) fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::TooManyRequests { retry_after } => Some(*retry_after),
            AppError::Order(OrderError::Busy { retry_after }) => Some(retry_after.as_secs().max(1)),
            _ => None,
        }
    }

    /// Everything worth logging, causes included.
    pub(crate) fn detail(&self) -> String {
        match self {
            AppError::Order(e) => match e.cause() {
                Some(cause) if cause != e.to_string() => format!("{e} ({cause})"),
                _ => e.to_string(),
            },
            AppError::Internal(e) => format!("{e:#}"),
            other => other.to_string(),
        }
    }

    pub(crate) fn public_message(&self) -> String {
        match self {
            AppError::Database(_)
            | AppError::Internal(_)
            | AppError::Order(OrderError::Database(_)) => match self.status() {
                StatusCode::SERVICE_UNAVAILABLE => {
                    "The service is briefly unavailable. Please try again.".into()
                }
                StatusCode::BAD_REQUEST => {
                    "The request contains characters or values we cannot store.".into()
                }
                _ => "Something went wrong on our side. Please try again.".into(),
            },
            // Its text names DHMAD's escrow and DHMAD's own words: for the shop's log and back
            // office, not for a buyer.
            AppError::Order(OrderError::EscrowUnknown(_)) => {
                "The payment provider no longer knows this order's payment. The shop has been \
                 told and will look into it."
                    .into()
            }
            other => other.to_string(),
        }
    }
}

fn order_status(e: &OrderError) -> StatusCode {
    match e {
        OrderError::NotFound => StatusCode::NOT_FOUND,
        OrderError::Invalid(_) => StatusCode::BAD_REQUEST,
        OrderError::NotAllowed(_) | OrderError::InProgress => StatusCode::CONFLICT,
        OrderError::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
        OrderError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        OrderError::DhmadUnavailable { .. } | OrderError::Busy { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        OrderError::DhmadFailed { .. } | OrderError::EscrowUnknown(_) => StatusCode::BAD_GATEWAY,
        OrderError::Database(e) if crate::db::is_transient(e) => StatusCode::SERVICE_UNAVAILABLE,
        OrderError::Database(e) if is_bad_input(e) => StatusCode::BAD_REQUEST,
        OrderError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Text Postgres cannot hold (a NUL byte, an invalid encoding) or a time outside its range
/// (22008: a client's cursor) that slipped past the handlers' own checks: the client's fault,
/// so a 400, never a 500.
fn is_bad_input(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| matches!(c.as_ref(), "22021" | "22P05" | "22008"))
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            status,
            error: status.canonical_reason().unwrap_or("Error"),
            message: self.public_message(),
        };
        let mut resp = (status, Json(body.clone())).into_response();
        if let Some(secs) = self.retry_after() {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp.extensions_mut().insert(body);
        resp.extensions_mut().insert(ErrorDetail(self.detail()));
        resp
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A job's error (the back office's "reconcile now" runs one) keeps its cause's status:
    /// a lock wait or a pool that timed out is worth a retry, not a 500.
    #[test]
    fn a_jobs_database_error_keeps_its_status() {
        let timed_out = AppError::from(anyhow::Error::from(sqlx::Error::PoolTimedOut));
        assert_eq!(timed_out.status(), StatusCode::SERVICE_UNAVAILABLE);
        let busy = AppError::from(anyhow::Error::from(OrderError::Busy {
            retry_after: std::time::Duration::from_secs(3),
        }));
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        let ours = AppError::from(anyhow::anyhow!("a bug"));
        assert_eq!(ours.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn internal_text_never_reaches_the_client() {
        let e = AppError::Internal(anyhow::anyhow!("password=hunter2 in connection string"));
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = resp.extensions().get::<ErrorBody>().unwrap();
        assert!(!body.message.contains("hunter2"));
    }

    #[test]
    fn dhmad_failures_map_to_503_when_transient_else_502() {
        let unavailable = OrderError::DhmadUnavailable {
            message: "later".into(),
            cause: "timeout".into(),
        };
        assert_eq!(AppError::from(unavailable).status(), 503);
        let failed = OrderError::DhmadFailed {
            message: "failed".into(),
            cause: "HTTP 500".into(),
        };
        assert_eq!(AppError::from(failed).status(), 502);
        let resp = AppError::from(OrderError::DhmadFailed {
            message: "failed".into(),
            cause: "http://internal:6002 refused".into(),
        })
        .into_response();
        let body = resp.extensions().get::<ErrorBody>().unwrap();
        assert!(!body.message.contains("internal:6002"), "{}", body.message);
        let detail = resp.extensions().get::<ErrorDetail>().unwrap();
        assert!(
            detail.0.contains("internal:6002"),
            "the log keeps the cause"
        );
    }

    #[test]
    fn pool_timeouts_are_unavailable() {
        assert_eq!(
            AppError::Database(sqlx::Error::PoolTimedOut).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
