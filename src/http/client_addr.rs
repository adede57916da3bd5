//! The client's address: the TCP peer, or, behind a reverse proxy, the last value of the one
//! header the operator configured (`CLIENT_IP_HEADER`). Any other header, and any earlier value
//! of that one, is ignored, so a client cannot pick its own address to dodge rate limits and
//! login throttling.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{request::Parts, Extensions, HeaderMap},
};

use crate::{config::Config, state::AppState};

pub fn client_ip(headers: &HeaderMap, extensions: &Extensions, config: &Config) -> Option<IpAddr> {
    if let Some(name) = &config.edge.client_ip_header {
        // Only the last value is the proxy's own: everything before it came from the client.
        let last = headers
            .get_all(name.as_str())
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(parse_entry);
        if last.is_some() {
            return last;
        }
        // None, or one that names no address: the peer, which the client cannot choose
        // either (behind the proxy, the proxy: such requests share one allowance).
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

/// One value of the header: `ip`, or `ip:port` / `[v6]:port` as some proxies write it.
fn parse_entry(v: &str) -> Option<IpAddr> {
    let v = v.trim();
    v.parse::<IpAddr>()
        .or_else(|_| v.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
}

/// The client's address as text, `unknown` when there is none (no peer address).
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

#[cfg(test)]
mod tests {
    use super::parse_entry;

    #[test]
    fn an_entry_is_an_address_with_or_without_a_port() {
        for (v, ip) in [
            ("203.0.113.7", "203.0.113.7"),
            (" 203.0.113.7:4321", "203.0.113.7"),
            ("2001:db8::7", "2001:db8::7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
        ] {
            assert_eq!(parse_entry(v), Some(ip.parse().unwrap()), "{v}");
        }
        for v in ["unknown", "", "_hidden", "[2001:db8::7]"] {
            assert_eq!(parse_entry(v), None, "{v}");
        }
    }
}
