//! `/api/v1/*` (`docs/dhmad-api.md` §3.1–§3.14) and its middleware: request log, rate limit,
//! injected faults, authentication.

mod account;
pub mod auth;
mod escrows;
mod identity;
mod json;
mod sessions;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use tower::ServiceBuilder;

use crate::error::{ApiError, Refusal};
use crate::faults::{ApiFaultKind, MAX_RESET_MS};
use crate::state::{AppState, RequestLogEntry};

/// The `/api/v1` router (to be nested).
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/me", get(account::me))
        .route("/balance", get(account::balance))
        .route("/escrows", post(escrows::create).get(escrows::list))
        .route("/escrows/{id}", get(escrows::get).put(escrows::update))
        .route("/escrows/{id}/deliver", post(escrows::deliver))
        .route(
            "/escrows/{id}/reject-delivery",
            post(escrows::reject_delivery),
        )
        .route("/escrows/{id}/cancel", post(escrows::cancel))
        .route("/escrows/{id}/proof", get(escrows::proof))
        .route("/escrows/{id}/contract", get(escrows::contract))
        .route("/escrows/{id}/sessions", post(sessions::create))
        .route("/sessions/{id}", get(sessions::get))
        .route(
            "/identity-verifications",
            post(identity::create).get(identity::list),
        )
        .route("/identity-verifications/{id}", get(identity::get))
        .fallback(not_found)
        // Before the layers, so that it is logged, counted and authenticated like any call;
        // axum still adds `Allow`.
        .method_not_allowed_fallback(method_not_allowed)
        // Outermost first, in one `Router::layer` call: axum boxes each call's service and
        // clones the box, with everything inside, on every request.
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    crate::metrics::record,
                ))
                .layer(middleware::from_fn_with_state(state.clone(), log_request))
                .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
                .layer(middleware::from_fn_with_state(state.clone(), inject_faults))
                .layer(middleware::from_fn_with_state(state, auth::require_key)),
        )
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        json!({"error": "Not Found", "message": "Route not found"}),
    )
}

/// A known route called with a method it does not take: 405 in shape A, not axum's empty body.
async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"error": "Method Not Allowed",
               "message": format!("Method {method} is not allowed on this route")}),
    )
}

fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// The path as the client sent it (nesting strips the `/api/v1` prefix).
fn full_path(req: &Request) -> String {
    match req.extensions().get::<OriginalUri>() {
        Some(u) => u.path().to_owned(),
        None => format!("/api/v1{}", req.uri().path()),
    }
}

async fn log_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = full_path(&req);
    let resp = next.run(req).await;
    let entry = RequestLogEntry {
        method,
        path,
        status: resp.status().as_u16(),
        at: state.clock.now(),
    };
    state.log_request(entry);
    resp
}

async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let v = state.rate.check(client_ip(&req));
    let mut resp = if v.allowed {
        next.run(req).await
    } else {
        too_many_requests(v.reset)
    };
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(v.limit));
    // A 429 says its own remaining (0) and reset; the window's would contradict an injected one.
    if !h.contains_key("x-ratelimit-reset") {
        h.insert("x-ratelimit-remaining", HeaderValue::from(v.remaining));
        if let Ok(reset) = HeaderValue::from_str(&dhmad::iso::format(v.reset)) {
            h.insert("x-ratelimit-reset", reset);
        }
    }
    resp
}

fn too_many_requests(reset: time::OffsetDateTime) -> Response {
    let secs = retry_after_secs(reset - time::OffsetDateTime::now_utc());
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"error": "Too Many Requests",
               "message": "Rate limit exceeded. Please retry after the time in X-RateLimit-Reset.",
               "retryAfter": secs}),
    )
    .into_response();
    let h = resp.headers_mut();
    h.insert("retry-after", HeaderValue::from(secs));
    h.insert("x-ratelimit-remaining", HeaderValue::from(0));
    if let Ok(at) = HeaderValue::from_str(&dhmad::iso::format(reset)) {
        h.insert("x-ratelimit-reset", at);
    }
    resp
}

/// `Retry-After` for a window that frees in `wait`: whole seconds rounded up (a client waiting
/// exactly that long must find room), at least 1.
fn retry_after_secs(wait: time::Duration) -> i64 {
    let up = i64::from(wait.subsec_nanoseconds() > 0);
    (wait.whole_seconds() + up).max(1)
}

async fn inject_faults(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = full_path(&req);
    let Some(rule) = state.faults.take_api_fault(req.method().as_str(), &path) else {
        return next.run(req).await;
    };
    tracing::info!(%path, fault = ?rule.fault, "injecting API fault");
    match rule.fault {
        ApiFaultKind::Error500 => {
            ApiError::internal("Injected fault: internal server error").into_response()
        }
        ApiFaultKind::Error500After => {
            let done = next.run(req).await;
            tracing::info!(%path, status = %done.status(), "answered 500 in place of this");
            ApiError::internal("Injected fault: internal server error").into_response()
        }
        ApiFaultKind::RateLimit429 => {
            // At most a day: a reset past year 9999 would make the date overflow.
            let reset = rule.reset_ms.unwrap_or(1_000).min(MAX_RESET_MS);
            too_many_requests(time::OffsetDateTime::now_utc() + Duration::from_millis(reset))
        }
        ApiFaultKind::CreationCap429 => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": "Rate Limit Exceeded",
                   "message": "Daily escrow creation limit reached (10 per day)",
                   "limit": 10, "count": 10, "remaining": 0}),
        )
        .into_response(),
        ApiFaultKind::Slow => {
            let answer = next.run(req).await;
            tokio::time::sleep(Duration::from_millis(rule.hang_ms.unwrap_or(1_000))).await;
            answer
        }
        ApiFaultKind::Delay => {
            tokio::time::sleep(Duration::from_millis(rule.hang_ms.unwrap_or(1_000))).await;
            next.run(req).await
        }
        ApiFaultKind::NotFound => {
            ApiError::from(Refusal::NotFound("Injected fault: not found")).into_response()
        }
        ApiFaultKind::Refused400 => {
            ApiError::bad_request("Injected fault: refused").into_response()
        }
        ApiFaultKind::Hang => {
            tokio::time::sleep(Duration::from_millis(rule.hang_ms.unwrap_or(30_000))).await;
            ApiError::internal("Injected fault: hung request").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::retry_after_secs;
    use time::Duration;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::milliseconds(1700)), 2);
        assert_eq!(retry_after_secs(Duration::seconds(2)), 2);
        assert_eq!(retry_after_secs(Duration::milliseconds(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::milliseconds(-5)), 1);
    }
}
