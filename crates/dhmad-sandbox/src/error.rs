//! Errors: [`Refusal`] is what the state machine says no with; [`ApiError`] is the HTTP answer
//! in one of DHMAD's body shapes (`docs/dhmad-api.md` §5.1).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dhmad::ErrorCode;
use serde_json::{json, Value};

/// Why the state machine refused an operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// 400 shape A (`{"error":"Bad Request","message"}`), optional field details.
    BadRequest {
        message: String,
        details: Vec<(String, String)>,
    },
    /// 403 shape A.
    Forbidden(String),
    /// 404 with DHMAD's fixed text, e.g. `Escrow not found`.
    NotFound(&'static str),
    /// 400 `{"error":"Invalid escrow ID"}`.
    InvalidId,
    /// 400 `{"error": <text>}` for another kind of id, e.g. `Invalid verification ID`.
    BadId(&'static str),
    /// 404 shape A, `{"error":"Not Found","message": <text>}` (identity verifications).
    Missing(&'static str),
    /// 409 of `POST /identity-verifications`: the e-mail's user already has approved KYC.
    KycApproved(String),
    /// 400 shape B (checkout business rule).
    Rule { code: ErrorCode, message: String },
    /// 409 `{"error":"Conflict","code","message","user_message"}`.
    Conflict { code: ErrorCode, message: String },
}

impl Refusal {
    /// A 400 with a message.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// A 400 about one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::BadRequest {
            message: format!("Validation failed: {message}"),
            details: vec![(field.to_owned(), message)],
        }
    }

    /// A 400 business rule.
    pub fn rule(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Rule {
            code,
            message: message.into(),
        }
    }

    /// The human text (used by the control API and the hosted page).
    pub fn message(&self) -> String {
        match self {
            Self::BadRequest { message, .. } | Self::Forbidden(message) => message.clone(),
            Self::NotFound(m) | Self::BadId(m) | Self::Missing(m) => (*m).to_owned(),
            Self::KycApproved(m) => m.clone(),
            Self::InvalidId => "Invalid escrow ID".to_owned(),
            Self::Rule { code, message } | Self::Conflict { code, message } => {
                format!("{code}: {message}")
            }
        }
    }
}

impl Refusal {
    /// What a shopper may read: DHMAD's `user_message` for a coded refusal (§5.1: "safe to show
    /// end users"; its `message` is for developers), else the message, which the sandbox writes
    /// for anyone.
    pub fn user_text(&self) -> String {
        match self {
            Self::Rule { code, .. } | Self::Conflict { code, .. } => user_message(code).to_owned(),
            _ => self.message(),
        }
    }

    /// The code of a coded refusal.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Self::Rule { code, .. } | Self::Conflict { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// An HTTP error answer: status + JSON body.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: Value,
}

impl ApiError {
    /// Any status and body.
    pub fn new(status: StatusCode, body: Value) -> Self {
        Self { status, body }
    }

    /// 401 `{"error":"Unauthorized","message"}`.
    pub fn unauthorized(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            json!({"error": "Unauthorized", "message": message}),
        )
    }

    /// 400 shape A.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Refusal::bad(message).into()
    }

    /// 500 shape A.
    pub fn internal(message: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "Internal Server Error", "message": message}),
        )
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::BadRequest { message, details } => {
                let mut body = json!({"error": "Bad Request", "message": message});
                if !details.is_empty() {
                    let d: serde_json::Map<String, Value> = details
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect();
                    body["details"] = Value::Object(d);
                }
                Self::new(StatusCode::BAD_REQUEST, body)
            }
            Refusal::Forbidden(m) => Self::new(
                StatusCode::FORBIDDEN,
                json!({"error": "Forbidden", "message": m}),
            ),
            Refusal::NotFound(m) => Self::new(StatusCode::NOT_FOUND, json!({"error": m})),
            Refusal::InvalidId => Self::new(
                StatusCode::BAD_REQUEST,
                json!({"error": "Invalid escrow ID"}),
            ),
            Refusal::BadId(m) => Self::new(StatusCode::BAD_REQUEST, json!({"error": m})),
            Refusal::Missing(m) => Self::new(
                StatusCode::NOT_FOUND,
                json!({"error": "Not Found", "message": m}),
            ),
            Refusal::KycApproved(m) => Self::new(
                StatusCode::CONFLICT,
                json!({"error": "Conflict", "message": m, "kyc_status": "approved",
                       "user_exists": true}),
            ),
            Refusal::Rule { code, message } => Self::new(
                StatusCode::BAD_REQUEST,
                json!({"error": {
                    "code": code.as_str(),
                    "type": "business_rule_violation",
                    "message": message,
                    "user_message": user_message(&code),
                }}),
            ),
            Refusal::Conflict { code, message } => Self::new(
                StatusCode::CONFLICT,
                json!({"error": "Conflict", "code": code.as_str(), "message": message,
                       "user_message": user_message(&code)}),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Text safe to show to a shopper, per code.
fn user_message(code: &ErrorCode) -> &'static str {
    use ErrorCode as C;
    match code {
        C::PaymentAlreadyDone => "This order has already been paid.",
        C::EscrowAlreadyCompleted => "This order is already completed.",
        C::ContractAlreadySigned => "You have already signed this contract.",
        C::DisputeAlreadyOpened => "A dispute is already open for this order.",
        C::CancellationAlreadyRequested => "A cancellation was already requested for this order.",
        C::NoPendingCancellation => "There is no cancellation request to answer.",
        C::SellerNotReady => "The seller cannot accept payments yet. Please try again later.",
        C::ProofNotAccepted => "The seller's purchase proof has not been accepted yet.",
        C::RedirectUrlNotAllowed | C::RedirectUrlMustBeHttps | C::NoRedirectUrlsConfigured => {
            "This shop is not set up correctly for payments. Please contact the shop."
        }
        C::CancellationRequestInvalidStatus | C::CancelEscrowInvalidStatus | C::InvalidStatus => {
            "This action is not possible at this stage of the order."
        }
        _ => "This action is not possible for this order.",
    }
}
