//! Who may read `GET /metrics`: its counters are the shop's sales and failures (orders paid,
//! webhooks refused, DHMAD's answers), and each scrape counts the outbox in the database, so
//! a stranger gets neither. With `METRICS_TOKEN`, the bearers of that token, from anywhere
//! (wrong ones throttled as the back office's logins are);
//! without it, this machine only (a scraper beside the storefront, or a sidecar), the client's
//! address being the one rate limits see (`client_addr`), so a proxy on this machine does not
//! open it to everyone it forwards, and the host it names this machine's (DNS rebinding).

use std::net::IpAddr;

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, uri::Authority, HeaderValue},
    response::{IntoResponse, Response},
};

use super::{
    admin_auth, bearer,
    client_addr::{client, Client, ClientAddr},
};
use crate::{error::AppError, state::AppState};

/// How long a scrape waits for the throttle's database (`/metrics` bounds its own reads alike).
const THROTTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Headers a reverse proxy adds to what it forwards.
pub(super) const FORWARDING: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// Proof that the request may read the metrics.
pub struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match &state.config.metrics_token {
            Some(expected) => {
                let presented = bearer::presented(&parts.headers).unwrap_or_default();
                let right = bearer::matches(presented, expected);
                // Guesses are throttled as the back office's logins are, counted apart. The
                // right token is judged too (else a throttled guesser would still learn which
                // guess is right), but a throttle the database cannot answer in time does not
                // hide the metrics, which tell of that outage.
                let Ok(ClientAddr { key, .. }) = ClientAddr::from_request_parts(parts, state).await;
                let judged = tokio::time::timeout(
                    THROTTLE_WAIT,
                    admin_auth::attempt(state, &format!("metrics {key}"), right),
                )
                .await;
                match judged {
                    Ok(Ok(())) => {}
                    Ok(Err(e @ AppError::TooManyRequests { .. })) => return Err(e.into_response()),
                    Ok(Err(_)) | Err(_) if right => {}
                    Ok(Err(e)) => return Err(e.into_response()),
                    Err(_) => {
                        return Err(AppError::Database(sqlx::Error::PoolTimedOut).into_response())
                    }
                }
                if right {
                    return Ok(Self);
                }
                let mut refused =
                    AppError::Unauthorized("send METRICS_TOKEN as a bearer token".into())
                        .into_response();
                refused.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"metrics\""),
                );
                Err(refused)
            }
            // Without a token the route does not exist for others: nothing says it is there. A
            // request a proxy forwarded, when none is configured (`CLIENT_IP_HEADER`), comes
            // from the proxy's address, this machine's when it runs here: refused too.
            None => {
                let unknown_proxy = state.config.edge.client_ip_header.is_none()
                    && FORWARDING.iter().any(|h| parts.headers.contains_key(*h));
                match client(&parts.headers, &parts.extensions, &state.config) {
                    Some(Client::At(ip))
                        if ip.to_canonical().is_loopback()
                            && !unknown_proxy
                            && named_as_this_machine(parts, state) =>
                    {
                        Ok(Self)
                    }
                    _ => Err(AppError::NotFound.into_response()),
                }
            }
        }
    }
}

/// Whether the request names this machine or the shop as its host: a loopback address,
/// `localhost` or `PUBLIC_BASE_URL`'s host. A page of another site whose name an attacker
/// points at 127.0.0.1 (DNS rebinding) comes from this machine's browser, so from loopback,
/// but names the attacker's host, which it may then read the answer of. A request naming no
/// host (HTTP/1.0) is no browser's.
pub(super) fn named_as_this_machine(parts: &Parts, state: &AppState) -> bool {
    let host = match parts.headers.get(header::HOST) {
        Some(v) => v.to_str().ok().and_then(|h| h.parse::<Authority>().ok()),
        None => match parts.uri.authority() {
            Some(a) => Some(a.clone()),
            None => return true,
        },
    };
    let Some(host) = host else { return false };
    // `localhost.` is `localhost` (a fully qualified name).
    let name = host.host().trim_start_matches('[').trim_end_matches(']');
    let name = name.strip_suffix('.').unwrap_or(name);
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => {
            name.eq_ignore_ascii_case("localhost")
                || state
                    .config
                    .public_base_url
                    .host_str()
                    .map(|public| public.strip_suffix('.').unwrap_or(public))
                    .is_some_and(|public| name.eq_ignore_ascii_case(public))
        }
    }
}
