//! The client's address: the TCP peer, or, behind a reverse proxy, the last value of the one
//! header the operator configured (`CLIENT_IP_HEADER`). Any other header is ignored, so a
//! client cannot pick its own address to dodge rate limits and login throttling.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{request::Parts, Extensions, HeaderMap},
};

use crate::{config::Config, state::AppState};

pub fn client_ip(headers: &HeaderMap, extensions: &Extensions, config: &Config) -> Option<IpAddr> {
    if let Some(name) = &config.edge.client_ip_header {
        return headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').collect::<Vec<_>>())
            .filter_map(|v| v.trim().parse::<IpAddr>().ok())
            .next_back();
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

/// The client's address as text, `unknown` when there is none (a misconfigured proxy).
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            client_ip(&parts.headers, &parts.extensions, &s.config)
                .map_or_else(|| "unknown".into(), |ip| ip.to_string()),
        ))
    }
}
