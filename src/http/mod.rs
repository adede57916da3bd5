//! The HTTP edge: the whole route table on one screen, plus the middleware every request
//! passes (request id, tracing, timeout, body limit, security headers, error rendering).

mod admin;
mod admin_auth;
mod callback;
mod checkout;
mod client_addr;
mod cookies;
mod csrf;
mod health;
mod orders;
mod rate_limit;
mod shop;
mod webhooks;

use std::time::Duration;

use askama::Template;
use axum::{
    body::Body,
    extract::{DefaultBodyLimit, Request},
    http::{header, HeaderName, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    services::ServeDir,
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::{
    error::{AppError, ErrorBody, ErrorDetail},
    state::AppState,
};

/// A webhook is answered within this, 503 if it could not be applied: DHMAD gives up on a
/// delivery after 10 s, and an answer it gets in time makes it retry.
pub const WEBHOOK_DEADLINE: Duration = Duration::from_secs(8);
/// DHMAD webhooks larger than this are refused (413).
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;
/// Forms and JSON requests are small.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    // A checkout makes two DHMAD calls, each bounded by the client timeout.
    let timeout = state.config.dhmad_timeout * 3 + Duration::from_secs(5);
    let csp = content_security_policy(&state.config.checkout_origins());
    let x_request_id = HeaderName::from_static("x-request-id");
    let edge = &state.config.edge;
    let checkout_limit = rate_limit::per_minute(&state.config, edge.checkout_per_minute);
    let action_limit = rate_limit::per_minute(&state.config, edge.actions_per_minute);
    // Pages and JSON about one order, and the whole back office: never kept by a cache (a
    // shared computer's browser history, a proxy) once the visitor has moved on.
    let no_store = SetResponseHeaderLayer::overriding(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    let private = Router::new()
        .route("/orders/{id}", get(orders::page))
        .route("/api/orders/{id}", get(orders::json))
        .route("/admin", get(admin::index))
        .route(
            "/admin/login",
            get(admin_auth::login_form).post(admin_auth::login),
        )
        .route("/admin/logout", post(admin_auth::logout))
        .route("/admin/orders/{id}/ship", post(admin::ship))
        .route("/admin/orders/{id}/retry", post(admin::retry))
        .route("/admin/reconcile", post(admin::reconcile))
        .route_layer(no_store);
    let checkout = Router::new()
        .route("/checkout", post(checkout::form))
        .route("/api/checkout", post(checkout::json))
        .route_layer(checkout_limit);
    let actions = Router::new()
        .route("/checkout/callback", get(callback::callback))
        .route("/orders/{id}/pay", post(orders::pay_again))
        .route("/orders/{id}/confirm", post(orders::confirm_receipt))
        .route_layer(action_limit);
    let mut app = Router::new()
        .route("/", get(shop::catalog))
        .route("/api/products", get(shop::products))
        .route(
            "/webhooks/dhmad",
            post(webhooks::receive).layer((
                DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT),
                TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, WEBHOOK_DEADLINE),
            )),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(private)
        .merge(checkout)
        .merge(actions)
        .nest_service("/static", ServeDir::new(static_dir()))
        .fallback(|| async { AppError::NotFound })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), csrf::protect))
        .layer(middleware::from_fn(render_errors));
    if state.config.is_https() {
        app = app.layer(header_layer(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ));
    }
    app
        // Security headers, unless a handler chose its own.
        .layer(header_layer(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&csp).expect("ASCII origins"),
        ))
        .layer(header_layer(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(header_layer(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(header_layer(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        // A request that outlives its budget failed on our side: 503, never a 4xx (DHMAD
        // does not retry a 4xx, and a browser's retry may work).
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(CatchPanicLayer::new())
        // Outermost: every request gets an id first, and its span carries it.
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .with_state(state)
}

fn header_layer(name: HeaderName, value: HeaderValue) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, value)
}

fn request_span(req: &Request<Body>) -> tracing::Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    // The path only: query strings are not logged.
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
}

/// `STATIC_DIR`, else the crate's `static/` (fine for the demo; set it when deploying).
fn static_dir() -> String {
    std::env::var("STATIC_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/static").to_owned())
}

/// `form-action` must allow DHMAD's origin: the checkout form's 303 lands there, and browsers
/// apply `form-action` to redirects that follow a form submission.
pub fn content_security_policy(checkout_origins: &[String]) -> String {
    format!(
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; object-src 'none'; \
         base-uri 'none'; frame-ancestors 'none'; form-action 'self' {}",
        checkout_origins.join(" ")
    )
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// Machines (the JSON API, DHMAD's webhooks, probes) get JSON errors; browsers get a page.
fn wants_html(req: &Request) -> bool {
    let path = req.uri().path();
    let machine = ["/api/", "/webhooks/", "/healthz", "/readyz"]
        .iter()
        .any(|p| path.starts_with(p));
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json_only = accept.contains("application/json") && !accept.contains("text/html");
    !(machine || json_only)
}

/// Logs each error once, with its internal detail (the request span adds the request id), and
/// renders [`ErrorBody`] responses as HTML for browsers; JSON bodies stay as they are.
async fn render_errors(req: Request, next: Next) -> Response {
    let html = wants_html(&req);
    let mut resp = next.run(req).await;
    if let Some(ErrorDetail(detail)) = resp.extensions_mut().remove::<ErrorDetail>() {
        let status = resp.status().as_u16();
        if resp.status().is_server_error() {
            tracing::error!(status, error = %detail, "request failed");
        } else {
            tracing::info!(status, error = %detail, "request refused");
        }
    }
    let Some(body) = resp
        .extensions()
        .get::<ErrorBody>()
        .cloned()
        .filter(|_| html)
    else {
        return resp;
    };
    let page = ErrorPage {
        title: body.error,
        message: &body.message,
    };
    let text = page.render().unwrap_or_else(|_| body.message.clone());
    let (mut parts, _) = resp.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text)).into_response()
}

/// Renders a template or fails as an internal error.
pub(crate) fn render(t: &impl Template) -> Result<axum::response::Html<String>, AppError> {
    t.render()
        .map(axum::response::Html)
        .map_err(|e| AppError::Internal(e.into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn csp_allows_forms_to_dhmad_only() {
        let csp = super::content_security_policy(&["https://dhmad.tn".into()]);
        assert!(csp.contains("form-action 'self' https://dhmad.tn"));
        assert!(csp.contains("frame-ancestors 'none'"));
    }
}
