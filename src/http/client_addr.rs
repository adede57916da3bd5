//! The client's address: the TCP peer, or, behind a reverse proxy, the last value of the one
//! header the operator configured (`CLIENT_IP_HEADER`), believed only from the proxies'
//! addresses (`TRUSTED_PROXIES`). Any other header, any earlier value of that one, and that
//! one from anyone else are ignored, so a client cannot pick its own address to dodge rate
//! limits and login throttling, even by reaching the shop's port without the proxy.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{request::Parts, Extensions, HeaderMap},
};

use crate::{config::Config, state::AppState};

/// Who sent a request, as rate limits, throttles and the `/metrics` rule count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// The TCP peer, or the address a trusted proxy wrote.
    At(IpAddr),
    /// A trusted proxy sent the header, but its last entry named no address (`unknown`, an
    /// obfuscated node, bytes that are no address). Such requests share one allowance of
    /// their own: taking the proxy's address instead would count them against, and let them
    /// pass as, whatever else connects from there (this machine's tools, when the proxy runs
    /// here).
    Unresolved,
}

impl Client {
    /// Its allowance's key: an address's [`limit_key`].
    pub fn limit_key(self) -> Self {
        match self {
            Client::At(ip) => Client::At(limit_key(ip)),
            Client::Unresolved => Client::Unresolved,
        }
    }
}

/// Says once that a proxy forwards requests while `CLIENT_IP_HEADER` is unset: every client then
/// shares the proxy's address, its checkout allowance, its login throttle (ten wrong tokens
/// lock the merchant out) and its connection share, which nothing else would show.
fn warn_of_an_unnamed_proxy(headers: &HeaderMap) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    // Said once: no header is looked at after that.
    if !WARNED.is_completed()
        && super::metrics_access::FORWARDING
            .iter()
            .any(|h| headers.contains_key(*h))
    {
        WARNED.call_once(|| {
            tracing::warn!(
                "a proxy forwards requests (Forwarded, X-Forwarded-For or X-Real-IP) but \
                 CLIENT_IP_HEADER is unset: every client counts as the proxy's address for the \
                 rate limits and the login throttle; set CLIENT_IP_HEADER"
            );
        });
    }
}

/// The request's [`Client`]; `None` only without a peer address (a request not from a socket).
pub fn client(headers: &HeaderMap, extensions: &Extensions, config: &Config) -> Option<Client> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let header = config.edge.client_ip_header.as_ref();
    let from_proxy = || peer.is_some_and(|p| config.edge.trusts(p));
    if header.is_none() && from_proxy() {
        warn_of_an_unnamed_proxy(headers);
    }
    let Some(name) = header.filter(|_| from_proxy()) else {
        return peer.map(Client::At);
    };
    let Some(line) = headers.get_all(name.as_str()).iter().next_back() else {
        // Not sent: a request from the proxy's host that did not pass through it.
        return peer.map(Client::At);
    };
    // Only the last entry is the proxy's own: everything before it came from the client, so
    // it is cut off as bytes, before anything the client wrote (a byte that is no text) can
    // spoil the whole line.
    let last = line.as_bytes().rsplit(|b| *b == b',').next().unwrap_or(&[]);
    let ip = std::str::from_utf8(last)
        .ok()
        .and_then(|v| match name.as_str() {
            "forwarded" => forwarded_for(v),
            _ => parse_entry(v),
        });
    Some(ip.map_or(Client::Unresolved, Client::At))
}

/// One value of the header: `ip`, or `ip:port` / `[v6]:port` as some proxies write it.
fn parse_entry(v: &str) -> Option<IpAddr> {
    let v = v.trim();
    v.parse::<IpAddr>()
        .or_else(|_| v.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
}

/// One element of RFC 7239's `Forwarded` (`for=192.0.2.60;proto=https`,
/// `for="[2001:db8::17]:4711"`): its `for` node. Hand-written: no maintained crate parses
/// it, and only this parameter matters here. `unknown` and obfuscated nodes name no address.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let node = element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.eq_ignore_ascii_case("for").then_some(value)
    })?;
    let node = node.trim().trim_matches('"');
    let bare = node
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(node);
    parse_entry(bare).or_else(|| parse_entry(node))
}

/// What rate limits and the login throttle count against: an IPv6 client by its /64 (a
/// subscriber's usual share, whose addresses it may rotate through at will), an IPv4-mapped
/// IPv6 address by its IPv4 address, any other IPv4 address as it is.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// The client's address as text, `unknown` when there is none (no peer address).
#[derive(Debug, Clone)]
pub struct ClientAddr {
    /// The address itself, for the audit trail and sessions.
    pub addr: String,
    /// Its [`limit_key`] (`2001:db8::/64` for IPv6), for the login throttle.
    pub key: String,
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let client = client(&parts.headers, &parts.extensions, &s.config);
        let text = |c: Option<Client>| match c {
            Some(Client::At(ip)) => ip.to_string(),
            Some(Client::Unresolved) => "unresolved behind the proxy".into(),
            None => "unknown".into(),
        };
        let key = match client.map(Client::limit_key) {
            Some(Client::At(v6 @ IpAddr::V6(_))) => format!("{v6}/64"),
            other => text(other),
        };
        Ok(ClientAddr {
            addr: text(client),
            key,
        })
    }
}

/// Runs a buyer's request as work for its client (`orders::client`): what it may cost others
/// (its looks at DHMAD's pages, its turns in the checkout line) is counted by it. Inside
/// `to_the_end`'s task, so that the work it goes on with is counted too.
pub async fn for_its_client(
    client: ClientAddr,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    crate::orders::client::scope(client.key, next.run(req)).await
}

#[cfg(test)]
mod tests {
    use super::{forwarded_for, limit_key, parse_entry};

    #[test]
    fn ipv6_clients_are_keyed_by_their_slash_64() {
        for (ip, key) in [
            ("198.51.100.9", "198.51.100.9"),
            ("::ffff:198.51.100.9", "198.51.100.9"),
            ("2001:db8:0:1::7", "2001:db8:0:1::"),
            ("2001:db8:0:1:ffff:ffff:ffff:ffff", "2001:db8:0:1::"),
            ("::1", "::"),
        ] {
            let key: std::net::IpAddr = key.parse().unwrap();
            assert_eq!(limit_key(ip.parse().unwrap()), key, "{ip}");
        }
    }

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

    #[test]
    fn a_forwarded_element_gives_its_for_node() {
        for (v, ip) in [
            ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
            (" proto=https; For=203.0.113.7", "203.0.113.7"),
            ("for=\"203.0.113.7:4711\"", "203.0.113.7"),
            ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            ("for=\"[2001:db8:cafe::17]\"", "2001:db8:cafe::17"),
        ] {
            assert_eq!(forwarded_for(v), Some(ip.parse().unwrap()), "{v}");
        }
        for v in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "",
            "192.0.2.60",
        ] {
            assert_eq!(forwarded_for(v), None, "{v}");
        }
    }
}
