//! What every request leaves behind: its span and access line (the logs) and its count and
//! time (the metrics), labelled by the matched route; and `GET /metrics`.

use std::time::{Duration, Instant};

use axum::{
    body::Body,
    extract::{MatchedPath, Request, State},
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use tracing::Span;

use super::{
    around::{Before, Hook},
    metrics_access::MetricsReader,
};
use crate::state::AppState;

/// The route label of metrics and logs: the matched route's template (`/orders/{id}`), never
/// the raw path, so an id or a scanner's guesses cannot make one series (or field) each.
fn route_of(req: &Request) -> &str {
    route_label(req.extensions().get::<MatchedPath>())
}

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

fn route_label(route: Option<&MatchedPath>) -> &str {
    route.map_or(UNMATCHED, MatchedPath::as_str)
}

/// A client may send its own `X-Request-Id` (to follow one request across services), but only
/// one that cannot forge a log field or flood a line: 1 to 64 of `A-Z a-z 0-9 . _ -`. Any
/// other is dropped here, before the request-id layer, which then makes one.
pub(super) fn keep_safe_request_id(mut req: Request<Body>) -> Request<Body> {
    let safe = req.headers().get("x-request-id").is_none_or(|v| {
        let id = v.as_bytes();
        (1..=64).contains(&id.len())
            && id
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
    });
    if !safe {
        req.headers_mut().remove("x-request-id");
    }
    req
}

/// The method label of metrics and logs: a method of HTTP's own, else `other`. Any token is a
/// method to hyper, up to its 400 KB header buffer: as a label, each made a series kept for
/// the process's life and a line in every scrape, so a client could grow both without end.
fn method_of(req: &Request) -> &'static str {
    use axum::http::Method;
    match *req.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

pub(super) fn request_span(req: &Request<Body>) -> Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    // A matched route's template, not its path: `/orders/{id}` holds the order's link, its only
    // key. The path of a request no route matched (what was asked for), never its query.
    let route = route_of(req);
    let path = (route == UNMATCHED).then(|| tracing::field::display(loggable(req.uri().path())));
    tracing::info_span!(
        "request",
        method = %method_of(req),
        route = %route,
        path,
        request_id = %id,
    )
}

/// Routes a scraper or an orchestrator calls every few seconds: answered well, they are logged
/// at DEBUG, so the INFO log shows what people and DHMAD did.
const POLLED_ROUTES: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// Set on the response by [`Track`], read by [`access_line`].
#[derive(Clone, Copy)]
struct Polled;

/// Why a request was refused or failed (internal detail, never sent), set on the response by
/// [`super::error_pages::RenderErrors`] for [`access_line`].
#[derive(Clone)]
pub(super) struct Failure(pub(super) String);

/// The access line, one per request: the span carries the method, route, path and request id;
/// a refusal or failure adds its internal detail (`error`), so an error is logged once, on
/// this line: ERROR for a 5xx, INFO otherwise.
pub(super) fn access_line(resp: &Response, latency: Duration, _: &Span) {
    let status = resp.status().as_u16();
    // Microseconds are noise in a log line.
    let latency_ms = (latency.as_secs_f64() * 100_000.0).round() / 100.0;
    let error = resp.extensions().get::<Failure>().map(|f| f.0.as_str());
    if resp.status().is_server_error() {
        tracing::error!(status, latency_ms, error, "answered");
    } else if resp.extensions().get::<Polled>().is_some() && resp.status().is_success() {
        tracing::debug!(status, latency_ms, "answered");
    } else {
        tracing::info!(status, latency_ms, error, "answered");
    }
}

/// Counts and times every request by method, matched route and status.
#[derive(Clone)]
pub(super) struct Track(pub(super) AppState);

impl Hook for Track {
    type Memo = (&'static str, Option<MatchedPath>, Instant);

    fn before(&self, req: Request) -> Before<Self::Memo> {
        let memo = (
            method_of(&req),
            req.extensions().get::<MatchedPath>().cloned(),
            Instant::now(),
        );
        Before::Go(req, memo)
    }

    fn after(&self, (method, route, started): Self::Memo, mut resp: Response) -> Response {
        let route = route_label(route.as_ref());
        self.0
            .metrics
            .http_request(method, route, resp.status().as_u16(), started.elapsed());
        if POLLED_ROUTES.contains(&route) {
            resp.extensions_mut().insert(Polled);
        }
        resp
    }
}

/// `GET /metrics`: this instance's metrics in Prometheus' text format. Gauges read from the
/// database are refreshed first; if the database is slow, the scrape still answers, with
/// their last values.
pub(super) async fn metrics_page(State(state): State<AppState>, _: MetricsReader) -> Response {
    let backlog = crate::jobs::outbox::record_backlog(&state);
    match tokio::time::timeout(Duration::from_secs(2), backlog).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not count the outbox backlog"),
        Err(_) => tracing::warn!("counting the outbox backlog took over 2 s"),
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// At most this much of a text a client chose (a path, an error's detail echoing input) goes
/// into a log line: anyone could otherwise write 64 KB of log per request.
const LOGGED_TEXT_MAX: usize = 256;

/// `text` as a log line may hold it: ids cut ([`without_full_ids`]), and at most
/// [`LOGGED_TEXT_MAX`] bytes, with how much was left out.
pub(super) fn loggable(text: &str) -> String {
    let mut out = without_full_ids(text);
    if out.len() > LOGGED_TEXT_MAX {
        let mut end = LOGGED_TEXT_MAX;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        let left_out = out.len() - end;
        out.truncate(end);
        out.push_str(&format!("… ({left_out} more bytes)"));
    }
    out
}

/// `text` with every UUID cut to its first 8 hex digits, for the log: a refusal's detail may
/// quote an order's link ("see your order at /orders/{id}"), an unmatched path hold one.
pub(super) fn without_full_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        let rest = &text[at..];
        let after_hex = text[..at].ends_with(|p: char| p.is_ascii_hexdigit());
        // Hyphenated (8-4-4-4-12: unmistakable, wherever it starts), or simple: 32 hex digits
        // standing alone (which the routes take too).
        let id = [36, 32].into_iter().find_map(|len| {
            let candidate = rest.get(..len)?;
            let alone = !after_hex && !rest[len..].starts_with(|n: char| n.is_ascii_hexdigit());
            let shaped = if len == 36 {
                candidate.as_bytes()[8] == b'-'
            } else {
                alone
            };
            let id = uuid::Uuid::try_parse(candidate).ok().filter(|_| shaped)?;
            Some((id, len))
        });
        if let Some((id, len)) = id {
            out.push_str(&crate::orders::log_ref(id));
            out.push('…');
            at += len;
        } else {
            out.push(c);
            at += c.len_utf8();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn full_ids_are_cut_to_their_reference() {
        let text = "already paid: see /orders/5e1f2a3b-0000-4000-8000-00000000abcd, or 5e1f2a3b";
        assert_eq!(
            super::without_full_ids(text),
            "already paid: see /orders/5e1f2a3b…, or 5e1f2a3b"
        );
        assert_eq!(super::without_full_ids("café 42"), "café 42");
        assert_eq!(
            super::without_full_ids("/orders/5e1f2a3b00004000800000000000abcd/x"),
            "/orders/5e1f2a3b…/x"
        );
        // Longer runs of hex are not ids; a hyphenated one is, glued to anything.
        let long = "5e1f2a3b00004000800000000000abcd00";
        assert_eq!(super::without_full_ids(long), long);
        assert_eq!(
            super::without_full_ids("/orders%2F5e1f2a3b-0000-4000-8000-00000000abcd"),
            "/orders%2F5e1f2a3b…"
        );
    }

    #[test]
    fn a_long_text_is_cut_on_a_character_boundary() {
        let text = format!("a{}", "é".repeat(200));
        let logged = super::loggable(&text);
        assert_eq!(logged, format!("a{}… (146 more bytes)", "é".repeat(127)));
        assert_eq!(super::loggable("short"), "short");
    }
}
