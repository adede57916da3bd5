//! Errors as browsers see them: an [`ErrorBody`] rendered as a page, its internal detail handed
//! to the access line.

use askama::Template;
use axum::{
    body::{Body, HttpBody},
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use super::{
    around::{Before, Hook},
    observe::Failure,
};
use crate::error::{AppError, ErrorBody, ErrorDetail};

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

/// tower-http's timeout (the whole request's, and the webhook's) answers 503 with no body; this
/// is where error bodies are made, so it gets its page (or JSON) here. Any other 503 carries
/// one already.
fn timed_out(resp: &Response) -> bool {
    resp.status() == StatusCode::SERVICE_UNAVAILABLE
        && resp.extensions().get::<ErrorBody>().is_none()
        && HttpBody::size_hint(resp.body()).exact() == Some(0)
}

/// Hands each error's internal detail to the access line (logged once, with the request id),
/// and renders [`ErrorBody`] responses as HTML for browsers; JSON bodies stay as they are.
#[derive(Clone)]
pub(super) struct RenderErrors;

impl Hook for RenderErrors {
    /// Whether the client wants a page.
    type Memo = bool;

    fn before(&self, req: Request) -> Before<bool> {
        let html = wants_html(&req);
        Before::Go(req, html)
    }

    fn after(&self, html: bool, mut resp: Response) -> Response {
        if timed_out(&resp) {
            resp =
                AppError::Unavailable("The shop took too long to answer. Please try again.".into())
                    .into_response();
        }
        if let Some(ErrorDetail(detail)) = resp.extensions_mut().remove::<ErrorDetail>() {
            resp.extensions_mut()
                .insert(Failure(super::observe::loggable(&detail)));
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
        Response::from_parts(parts, Body::from(text))
    }
}
