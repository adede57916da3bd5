//! The HTTP edge: the whole route table on one screen, plus the middleware every request
//! passes (request id, tracing and the access log, metrics, timeout, body limit, security
//! headers, error rendering); the logs and metrics are in `observe`, the error pages in
//! `error_pages`.

mod admin;
mod admin_auth;
mod admin_consoles;
mod admin_order;
mod around;
mod bearer;
mod body_deadline;
mod callback;
mod checkout;
mod checkout_wait;
mod client_addr;
mod cookies;
mod csrf;
mod error_pages;
mod form;
mod health;
mod id_path;
mod metrics_access;
mod observe;
mod openapi;
mod order_page;
mod orders;
mod query;
mod rate_limit;
mod shop;
mod static_files;
mod to_the_end;
mod webhooks;

pub(crate) use client_addr::limit_key;

use std::time::Duration;

use askama::Template;
use axum::{
    extract::{DefaultBodyLimit, Request},
    http::{header, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use tracing::Span;

use self::around::AroundLayer;
use crate::{error::AppError, state::AppState};

/// A webhook is answered within this, 503 if it could not be applied: DHMAD gives up on a
/// delivery after 10 s, and an answer it gets in time makes it retry.
pub const WEBHOOK_DEADLINE: Duration = Duration::from_secs(8);
/// DHMAD webhooks larger than this are refused (413).
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;
/// Forms and JSON requests are small.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    with_edge(routes(&state), &state).with_state(state)
}

/// The route table.
fn routes(state: &AppState) -> Router<AppState> {
    let limits = &state.config.edge;
    let checkout_limit = rate_limit::per_minute(&state.config, limits.checkout_per_minute);
    let action_limit = rate_limit::per_minute(&state.config, limits.actions_per_minute);
    // Pages and JSON about one order, and the whole back office: never kept by a cache (a
    // shared computer's browser history, a proxy) once the visitor has moved on. Checkouts and
    // order actions too: a refused one answers with the order page or the buyer's input. And
    // the catalog, which gives each browser its own checkout and CSRF tokens.
    let no_store = SetResponseHeaderLayer::overriding(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    let private = Router::new()
        .route("/", get(shop::catalog))
        .route("/orders/{id}", get(orders::page))
        .route("/orders/{id}/checkout", get(checkout_wait::page))
        .route("/api/orders/{id}", get(orders::json))
        .route("/admin", get(admin::index))
        .route(
            "/admin/login",
            get(admin_auth::login_form).post(admin_auth::login),
        )
        .route("/admin/logout", post(admin_auth::logout))
        .route("/admin/orders/{id}", get(admin_order::page))
        .route("/admin/from-dhmad/{id}", get(admin_order::from_dhmad))
        .route("/admin/orders", get(admin::orders))
        .route("/admin/orders.csv", get(admin::csv))
        .route(
            "/admin/orders/{id}/events",
            get(admin_consoles::order_events),
        )
        .route("/admin/inbox", get(admin_consoles::inbox))
        .route("/admin/outbox", get(admin_consoles::outbox))
        .route("/admin/audit", get(admin_consoles::audit))
        .route_layer(no_store.clone());
    // Run to their end even when the request is cut short (`to_the_end`).
    let admin_actions = Router::new()
        .route("/admin/orders/{id}/ship", post(admin::ship))
        .route("/admin/orders/{id}/retry", post(admin::retry))
        .route("/admin/orders/{id}/cancel", post(admin_order::cancel))
        .route(
            "/admin/orders/{id}/cancellation",
            post(admin_order::cancellation),
        )
        .route("/admin/orders/{id}/dispute", post(admin_order::dispute))
        .route("/admin/orders/{id}/sign", post(admin_order::sign))
        .route("/admin/orders/{id}/proof", post(admin_order::proof))
        .route("/admin/orders/{id}/reconcile", post(admin::reconcile_order))
        .route("/admin/reconcile", post(admin::reconcile))
        .route(
            "/admin/inbox/reprocess-unmatched",
            post(admin_consoles::reprocess_unmatched),
        )
        .route(
            "/admin/inbox/{event_id}/reprocess",
            post(admin_consoles::reprocess_one),
        )
        .route("/admin/outbox/{id}/retry", post(admin_consoles::retry_job))
        .route(
            "/admin/outbox/{id}/abandon",
            post(admin_consoles::abandon_job),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            to_the_end::run_to_the_end,
        ))
        .route_layer(no_store.clone());
    // The buyer's steps run to their end too: a browser drops a request it will not show (a
    // double click, a closed tab), and a checkout cut off during `POST /escrows` left its order
    // creating an escrow that only the reconciler, long after, would look for.
    let to_the_end =
        axum::middleware::from_fn_with_state(state.clone(), to_the_end::run_to_the_end);
    let for_its_client =
        axum::middleware::from_fn_with_state(state.clone(), client_addr::for_its_client);
    let checkout = Router::new()
        .route("/checkout", post(checkout::form))
        .route("/api/checkout", post(checkout::json))
        .route_layer(for_its_client.clone())
        .route_layer(to_the_end.clone())
        .route_layer(checkout_limit)
        .route_layer(no_store.clone());
    let actions = Router::new()
        .route("/checkout/callback", get(callback::callback))
        .route("/orders/{id}/pay", post(orders::pay_again))
        .route("/orders/{id}/confirm", post(orders::confirm_receipt))
        .route("/orders/{id}/cancel", post(orders::cancel))
        .route("/orders/{id}/dispute", post(orders::dispute))
        .route("/orders/{id}/sign", post(orders::sign))
        .route("/orders/{id}/review-proof", post(orders::review_proof))
        .route_layer(for_its_client)
        .route_layer(to_the_end)
        .route_layer(action_limit)
        .route_layer(no_store);
    Router::new()
        .route("/api/products", get(shop::products))
        .route("/openapi.json", get(openapi::document))
        .route(
            "/webhooks/dhmad",
            post(webhooks::receive).layer((
                DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT),
                TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, WEBHOOK_DEADLINE),
            )),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(observe::metrics_page))
        .route("/favicon.ico", get(favicon))
        .merge(private)
        .merge(admin_actions)
        .merge(checkout)
        .merge(actions)
        .nest_service("/static", static_files::service(&state.config.static_dir))
        .fallback(|| async { AppError::NotFound })
        // axum answers a known path asked with another method with a bare 405: an empty page
        // for a buyer who reloads a refused step's address, no JSON for a client.
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
}

/// `routes` behind the middleware every request passes.
fn with_edge(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    let timeout = state.config.request_deadline();
    let csp = content_security_policy(&state.config.checkout_origins());
    let x_request_id = HeaderName::from_static("x-request-id");
    let hsts = state.config.is_https().then(|| {
        header_layer(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        )
    });
    // The middleware every request passes, outermost first, in one `ServiceBuilder` and so one
    // `Router::layer` call: axum wraps each call's service in a box of its own, and calling a
    // box clones it with everything inside, so fourteen calls cloned the stack below each of
    // them on every request (a third of the user CPU of a `GET /healthz`; BENCHMARKS.md).
    let edge = ServiceBuilder::new()
        // Outermost: every request gets an id first (the client's own only if it is a safe
        // token), and its span carries it. One access line per request when the answer leaves
        // (`on_response`), with the error's detail if any, so `on_failure` would only repeat it.
        .map_request(observe::keep_safe_request_id as fn(Request) -> Request)
        .layer(SetRequestIdLayer::new(
            x_request_id.clone(),
            MakeRequestUuid,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(observe::request_span as fn(&Request) -> Span)
                .on_response(observe::access_line as fn(&Response, Duration, &Span))
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(x_request_id))
        // Outside the timeout and the panic catcher: counts the status the client got.
        .layer(AroundLayer(observe::Track(state.clone())))
        // Security headers, unless a handler chose its own.
        .layer(header_layer(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(header_layer(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(header_layer(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(header_layer(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&csp).expect("ASCII origins"),
        ))
        .option_layer(hsts)
        // Outside the timeout, so that its answer gets a body and a page too.
        .layer(AroundLayer(error_pages::RenderErrors))
        // Inside the headers and the error pages: a panic's 500 is a page like any other.
        .layer(CatchPanicLayer::custom(panicked as fn(_) -> Response))
        // The body within its own deadline, a 408 past it: a slow client is not our failure.
        .layer(AroundLayer(body_deadline::BodyDeadline(
            state.config.edge.header_read_timeout,
        )))
        // A request that outlives its budget failed on our side: 503, never a 4xx (DHMAD
        // does not retry a 4xx, and a browser's retry may work).
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(AroundLayer(csrf::Csrf(state.clone())))
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    routes.layer(edge)
}

/// A handler's panic: a 500 like any internal error, kept by no cache, its message for the
/// log only.
fn panicked(panic: Box<dyn std::any::Any + Send>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    let mut resp = AppError::Internal(anyhow::anyhow!("handler panicked: {what}")).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn header_layer(name: HeaderName, value: HeaderValue) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, value)
}

/// `GET /favicon.ico`: browsers ask for it on every first page view.
async fn favicon() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/x-icon"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=604800"),
            ),
        ],
        &include_bytes!("../../static/favicon.ico")[..],
    )
        .into_response()
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

/// Renders a template or fails as an internal error.
pub(crate) fn render(t: &impl Template) -> Result<axum::response::Html<String>, AppError> {
    t.render()
        .map(axum::response::Html)
        .map_err(|e| AppError::Internal(e.into()))
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, extract::Request, routing::get, Router};
    use tower::ServiceExt;

    /// A handler that panics answers as any failure does: the error page, the security
    /// headers, kept by no cache, and nothing of the panic's message. The panic catcher sat
    /// outside the header and error-page layers, so its 500 had none of them.
    #[tokio::test]
    async fn a_panic_is_answered_as_any_failure() {
        let config = crate::Config::from_lookup(|k| {
            Some(match k {
                "DATABASE_URL" => "postgres://nobody@127.0.0.1:1/none".into(),
                "DHMAD_WEBHOOK_SECRETS" => "a-test-secret".into(),
                _ => return None,
            })
        })
        .unwrap();
        let pool = sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
        let state = crate::state::AppState::new(config, pool).unwrap();
        let boom = Router::new().route(
            "/boom",
            get(|| async {
                panic!("secret internals");
                #[allow(unreachable_code)]
                ""
            }),
        );
        let app = super::with_edge(boom, &state).with_state(state);
        let req = Request::get("/boom")
            .header("accept", "text/html")
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 500);
        let h = resp.headers();
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(h.contains_key("content-security-policy"));
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(!body.contains("secret internals"), "{body}");
    }

    #[test]
    fn csp_allows_forms_to_dhmad_only() {
        let csp = super::content_security_policy(&["https://dhmad.tn".into()]);
        assert!(csp.contains("form-action 'self' https://dhmad.tn"));
        assert!(csp.contains("frame-ancestors 'none'"));
    }
}
