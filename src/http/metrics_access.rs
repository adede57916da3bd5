//! Who may read `GET /metrics`: its counters are the shop's sales and failures (orders paid,
//! webhooks refused, DHMAD's answers), and each scrape counts the outbox in the database, so
//! a stranger gets neither. With `METRICS_TOKEN`, the bearers of that token, from anywhere;
//! without it, this machine only (a scraper beside the storefront, or a sidecar), the client's
//! address being the one rate limits see (`client_addr`), so a proxy on this machine does not
//! open it to everyone it forwards.

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderValue},
    response::{IntoResponse, Response},
};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::client_addr::client_ip;
use crate::{error::AppError, state::AppState};

/// Proof that the request may read the metrics.
pub struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match &state.config.metrics_token {
            Some(expected) => {
                let presented = parts
                    .headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default();
                if bool::from(
                    presented
                        .trim()
                        .as_bytes()
                        .ct_eq(expected.expose_secret().as_bytes()),
                ) {
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
            // Without a token the route does not exist for others: nothing says it is there.
            None => match client_ip(&parts.headers, &parts.extensions, &state.config) {
                Some(ip) if ip.to_canonical().is_loopback() => Ok(Self),
                _ => Err(AppError::NotFound.into_response()),
            },
        }
    }
}
