//! Who may name the client's address: the reverse proxies of `TRUSTED_PROXIES`.

use std::net::IpAddr;

use ipnet::IpNet;

use super::EdgeLimits;

/// Where a reverse proxy in front of the shop usually connects from: this machine, or a
/// private network (a container's, a data centre's). A client reaching the shop's port
/// straight from the internet has none of these addresses, so it cannot name its own.
pub const DEFAULT_TRUSTED_PROXIES: &str =
    "127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7";

/// `TRUSTED_PROXIES`: addresses or ranges, separated by commas.
pub(super) fn parse_proxies(text: &str) -> Result<Vec<IpNet>, String> {
    let nets = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            // A single address as peers are compared: an IPv4-mapped one as IPv4.
            t.parse::<IpNet>()
                .or_else(|_| t.parse::<IpAddr>().map(|ip| IpNet::from(ip.to_canonical())))
                .map_err(|_| format!("{t:?} is neither an address nor a range like 10.0.0.0/8"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if nets.is_empty() {
        return Err("expected addresses or ranges, separated by commas".into());
    }
    Ok(nets)
}

impl EdgeLimits {
    /// Whether a connection from `peer` may tell the client's address in `client_ip_header`.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}
