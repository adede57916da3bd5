//! The HTTP server loop. `axum::serve` has no header-read timeout and no connection cap, so a
//! few thousand idle or slow clients could hold every file descriptor; this loop serves the same
//! router through hyper's HTTP/1 builder with both:
//! - a header-read timeout (hyper's timer), which also closes idle keep-alive connections,
//!   since the timer runs whenever the connection waits for a request's head;
//! - a write-stall timeout: a connection whose answer cannot be written for
//!   [`WRITE_STALL_FACTOR`] × the header-read timeout is closed. A client that sends requests
//!   and never reads the answers stops hyper reading the next head, so the header timer never
//!   runs and the connection, with its slot, was held for ever;
//! - answers sent as they are written (`TCP_NODELAY`), which `axum::serve` leaves off;
//! - at most `max_connections` open at once: past it the loop stops accepting (the kernel's
//!   backlog holds newcomers) until a connection closes;
//! - once over three quarters of them are open, a new connection from an address that holds
//!   `max_connections_per_client` already is closed at once, so a few clients cannot hold them
//!   all (except a trusted proxy's, whose address every connection shares); on a quiet server an
//!   address may hold up to a quarter of them, so an office behind one NAT address is not
//!   capped at the crowded share on a quiet day.
//!
//! Each request carries the peer address (`ConnectInfo`) for rate limits and the audit trail.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{extract::ConnectInfo, Router};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tower::ServiceExt;

use crate::config::EdgeLimits;

pub mod open_files;
mod share;
use share::{ClientSlots, Refusals};

/// How many header-read timeouts an answer may wait to be written (its client not reading)
/// before its connection is closed: 30 s by default, room for a slow link to resume.
pub const WRITE_STALL_FACTOR: u32 = 3;

/// How long in-flight requests may take to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(30);

pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &EdgeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = ClientSlots::for_limits(limits);
    let mut refused = Refusals::default();
    let mut tick = tokio::time::interval(Refusals::EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let write_stall = limits.header_read_timeout * WRITE_STALL_FACTOR;
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // the semaphore is never closed
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
            // A flood of refusals that stopped is still reported, with its count.
            _ = tick.tick() => {
                refused.flush();
                continue;
            }
        };
        let crowded = permits.available_permits() * 4 < limits.max_connections;
        // A proxy's connections all share its address: they take no share. Any other peer
        // does, behind a proxy too (one that reaches the port directly is counted at its own
        // address, as the rate limits count it).
        let behind_proxy = limits.client_ip_header.is_some() && limits.trusts(peer.ip());
        let slot = if behind_proxy {
            None
        } else {
            match per_client.take(peer.ip(), crowded) {
                Some(slot) => Some(slot),
                None => {
                    // Closed at once: this address holds its share of a crowded server.
                    refused.note(peer);
                    continue;
                }
            }
        };
        let service = router
            .clone()
            .map_request(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            });
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(write_stall));
        let io = TokioIo::new(Box::pin(stream));
        let conn = http.serve_connection(io, TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop((permit, slot));
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; closing");
    }
}

/// The next connection, set to send answers as they are written. With Nagle's algorithm a
/// response written in parts (a file from `/static`, streamed after its head) held its second
/// part until the client acknowledged the first, which a client delays by up to 40 ms: the
/// shop's stylesheet took 25 ms on average over a keep-alive connection instead of 0.4.
async fn accept(listener: &TcpListener) -> std::io::Result<(TcpStream, SocketAddr)> {
    let (stream, peer) = listener.accept().await?;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, %peer, "could not set TCP_NODELAY");
    }
    Ok((stream, peer))
}

#[cfg(test)]
mod tests {
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = super::accept(&listener).await.unwrap();
        assert!(stream.nodelay().unwrap());
    }
}
