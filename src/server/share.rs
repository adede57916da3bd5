//! The connection share of one client address (see `server`): how many connections each
//! address holds, and the refusals logged without flooding the log.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::config::EdgeLimits;

/// Connections closed for their address's share: logged at most every 10 s, with how many, so
/// a flood of them is seen without flooding the log.
#[derive(Default)]
pub struct Refusals {
    since_logged: u64,
    /// The address of the last one.
    last: Option<SocketAddr>,
    logged_at: Option<Instant>,
}

impl Refusals {
    pub const EVERY: Duration = Duration::from_secs(10);

    /// One more connection from `peer` closed.
    pub fn note(&mut self, peer: SocketAddr) {
        self.since_logged += 1;
        self.last = Some(peer);
        self.flush();
    }

    /// Reports the refusals not logged yet, once their window has passed.
    pub fn flush(&mut self) {
        if self.since_logged > 0 && self.logged_at.is_none_or(|at| at.elapsed() >= Self::EVERY) {
            tracing::warn!(
                refused = self.since_logged,
                last = ?self.last,
                "server crowded: closed connections from addresses holding their share"
            );
            self.since_logged = 0;
            self.logged_at = Some(Instant::now());
        }
    }
}

/// Open connections per client address (IPv6 by its /64, as the rate limits count).
pub struct ClientSlots {
    /// The share of each address while the server is crowded.
    most: usize,
    /// The share of each address at any time.
    quiet_most: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection of a client; given back when dropped.
pub struct ClientSlot {
    key: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ClientSlots {
    /// The shares `limits` set: `max_connections_per_client` while crowded, and never more
    /// than a quarter of the server, however quiet it is (connections taken before it was
    /// crowded keep their slots).
    pub fn for_limits(limits: &EdgeLimits) -> Self {
        let quarter = (limits.max_connections / 4).max(1);
        Self::new(limits.max_connections_per_client.min(quarter), quarter)
    }

    fn new(most: usize, quiet_most: usize) -> Self {
        Self {
            most,
            quiet_most,
            open: Arc::default(),
        }
    }

    /// A slot for a connection from `ip`, unless its address holds its share already: `most`
    /// when the server is `crowded`, else `quiet_most`.
    pub fn take(&self, ip: IpAddr, crowded: bool) -> Option<ClientSlot> {
        let key = crate::http::limit_key(ip);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(key).or_insert(0);
        if *n >= if crowded { self.most } else { self.quiet_most } {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            key,
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// A small server (`MAX_CONNECTIONS=100`) with the default share of 64: an address still
    /// holds a quarter at most, crowded or not (it used to get 64, and two addresses held all).
    #[test]
    fn an_address_never_holds_more_than_a_quarter_of_the_server() {
        let limits = crate::config::EdgeLimits {
            max_connections: 100,
            ..Default::default()
        };
        let slots = super::ClientSlots::for_limits(&limits);
        let a = "203.0.113.7".parse().unwrap();
        for crowded in [false, true] {
            let held: Vec<_> = (0..100).map_while(|_| slots.take(a, crowded)).collect();
            assert_eq!(held.len(), 25, "crowded: {crowded}");
        }
    }

    #[test]
    fn a_client_gets_its_share_of_a_crowded_server_and_back_when_they_close() {
        let slots = super::ClientSlots::new(2, 3);
        let a = "203.0.113.7".parse().unwrap();
        let (first, second) = (slots.take(a, true).unwrap(), slots.take(a, true).unwrap());
        assert!(
            slots.take(a, true).is_none(),
            "a third from the same address"
        );
        let quiet = slots
            .take(a, false)
            .expect("a larger share while the server is quiet");
        assert!(slots.take(a, false).is_none(), "but a share all the same");
        // Another address, and another /64 for IPv6; the same /64 shares the share.
        assert!(slots.take("203.0.113.8".parse().unwrap(), true).is_some());
        let v6 = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let (x, y) = (
            slots.take(v6("2001:db8::1"), true).unwrap(),
            slots.take(v6("2001:db8::2"), true).unwrap(),
        );
        assert!(slots.take(v6("2001:db8::3"), true).is_none());
        assert!(slots.take(v6("2001:db8:0:1::1"), true).is_some());
        drop((first, quiet));
        let again = slots
            .take(a, true)
            .expect("a closed connection's slot is free again");
        drop((again, second, x, y));
        assert!(
            slots.open.lock().unwrap().is_empty(),
            "nothing kept once all closed"
        );
    }
}
