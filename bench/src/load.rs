//! A small HTTP load generator: `concurrency` workers share a bounded number of requests and a
//! time cap, over keep-alive connections on loopback. Every response is checked by the caller's
//! closure; a figure is reported only when every request succeeded.
//!
//! The throughput figures use [`Http1`]: one connection per worker, the request built in
//! advance, no pool. Their anchor's client is pgbench, a lean C program on the same two cores,
//! so a client that costs more than it (reqwest: a pool, a URL parsed per request, a task per
//! connection) took its CPU from the storefront and Postgres and measured itself. Checkout
//! latency keeps reqwest: its anchor (the `dhmad` client) uses it too.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Full};
use hyper::{
    body::Bytes,
    client::conn::http1::{self, SendRequest},
    Request,
};
use hyper_util::rt::TokioIo;

use crate::cpu::{CpuTicks, Parties};

/// What one load run did.
#[derive(Debug, Default)]
pub struct Run {
    pub ok: usize,
    pub failed: usize,
    /// The first few failures, verbatim.
    pub errors: Vec<String>,
    pub elapsed: Duration,
    /// One per successful request, unsorted.
    pub latencies: Vec<Duration>,
    /// Requests left unsent when the time cap struck.
    pub unsent: usize,
    /// The CPU this process (the load generator) used while the load ran.
    pub cpu: CpuTicks,
    /// The CPU of the storefront, of Postgres (and of any child that ended) while it ran.
    pub parties: Parties,
}

impl Run {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Fails unless all `expected` requests were sent and succeeded.
    pub fn check(&self, what: &str, expected: usize) -> anyhow::Result<()> {
        if self.ok == expected && self.failed == 0 {
            return Ok(());
        }
        anyhow::bail!(
            "{what}: {} of {expected} requests succeeded, {} failed, {} unsent (time cap); first errors: {:?}",
            self.ok,
            self.failed,
            self.unsent,
            self.errors
        )
    }
}

/// An HTTP client for loopback: no proxy from the environment, keep-alive, no delay.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        // Below the storefront's keep-alive limit (HEADER_READ_TIMEOUT_SECS, 10 s): an idle
        // connection is dropped here before the server closes it under a request.
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Sends requests `0..total` with `concurrency` workers; `send(i)` makes and checks request `i`.
pub async fn run<F, Fut>(concurrency: usize, total: usize, cap: Duration, send: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    run_each(
        None,
        concurrency,
        total,
        cap,
        || async {},
        move |(), i| {
            let fut = send(i);
            async move { ((), fut.await) }
        },
    )
    .await
}

/// Sends `make(i)` (or fails request `i` with its error) for `i` in `0..total` over
/// `concurrency` connections to `addr`, one each; `check(i, status, body)` says whether the
/// answer to request `i` is the expected one. `pid` is the storefront's, whose CPU (and the
/// database's) the run notes.
#[allow(clippy::too_many_arguments)]
pub async fn http1<M, C>(
    addr: SocketAddr,
    pid: u32,
    concurrency: usize,
    total: usize,
    cap: Duration,
    make: M,
    check: C,
) -> Run
where
    M: Fn(usize) -> Result<Request<Full<Bytes>>, String> + Send + Sync + 'static,
    C: Fn(usize, u16, &[u8]) -> bool + Send + Sync + 'static,
{
    let check = Arc::new(check);
    run_each(
        Some(pid),
        concurrency,
        total,
        cap,
        move || async move { Http1::new(addr) },
        move |mut conn, i| {
            let (req, check) = (make(i), check.clone());
            async move {
                let answer = match req {
                    Ok(req) => conn.send(req).await,
                    Err(e) => Err(e),
                };
                let outcome = answer.and_then(|(status, body)| {
                    if check(i, status, &body) {
                        Ok(())
                    } else {
                        let body = String::from_utf8_lossy(&body);
                        Err(format!(
                            "{status} {}",
                            body.chars().take(300).collect::<String>()
                        ))
                    }
                });
                (conn, outcome)
            }
        },
    )
    .await
}

/// The workers' loop: each starts with `init()` and passes its state from one request to the
/// next (a connection of its own, or nothing).
async fn run_each<S, I, IFut, F, Fut>(
    watch: Option<u32>,
    concurrency: usize,
    total: usize,
    cap: Duration,
    init: I,
    send: F,
) -> Run
where
    S: Send + 'static,
    I: Fn() -> IFut,
    IFut: Future<Output = S> + Send + 'static,
    F: Fn(S, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (S, Result<(), String>)> + Send + 'static,
{
    let send = Arc::new(send);
    let next = Arc::new(AtomicUsize::new(0));
    let parties0 = watch.map(Parties::now);
    let cpu0 = CpuTicks::of_self();
    let start = Instant::now();
    let deadline = start + cap;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (send, next, state) = (send.clone(), next.clone(), init());
        workers.spawn(async move {
            let mut state = state.await;
            let mut mine = Run::default();
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t0 = Instant::now();
                let (back, outcome) = send(state, i).await;
                state = back;
                match outcome {
                    Ok(()) => {
                        mine.ok += 1;
                        mine.latencies.push(t0.elapsed());
                    }
                    Err(e) => {
                        mine.failed += 1;
                        if mine.errors.len() < 3 {
                            mine.errors.push(e);
                        }
                    }
                }
            }
            mine
        });
    }
    let mut all = Run::default();
    while let Some(done) = workers.join_next().await {
        match done {
            Ok(mine) => {
                all.ok += mine.ok;
                all.failed += mine.failed;
                all.latencies.extend(mine.latencies);
                for e in mine.errors {
                    if all.errors.len() < 5 {
                        all.errors.push(e);
                    }
                }
            }
            Err(e) => {
                all.failed += 1;
                all.errors.push(format!("worker panicked: {e}"));
            }
        }
    }
    all.elapsed = start.elapsed();
    all.cpu = CpuTicks::of_self().since(cpu0);
    if let (Some(pid), Some(before)) = (watch, parties0) {
        all.parties = Parties::now(pid).since(before);
    }
    all.unsent = total.saturating_sub(all.ok + all.failed);
    all
}

/// A request for [`Http1`]: `path` on the storefront, `Host` as a browser would send it.
pub fn request(method: http::Method, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "127.0.0.1")
}

/// Whether `needle` occurs in `body`.
pub fn contains(body: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(body, needle).is_some()
}

/// One keep-alive HTTP/1 connection, opened on first use and again after it failed.
pub struct Http1 {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Http1 {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    /// Sends `req` (its URI a path; it should carry `Host`) and reads the whole answer.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
        let answer = self.exchange(req).await;
        if answer.is_err() {
            self.sender = None;
        }
        answer
    }

    async fn exchange(&mut self, req: Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
        let sender = match &mut self.sender {
            Some(s) if !s.is_closed() => s,
            _ => self.sender.insert(self.connect().await?),
        };
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        Ok((status, body))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect to {}: {e}", self.addr))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        // Drives the connection; it ends when the sender is dropped or the server closes.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// A response's status and body, or why there is none.
pub async fn read(
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<(u16, String), String> {
    let resp = resp.map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .await
        .map_err(|e| format!("reading the body: {e}"))?;
    Ok((status, body))
}

/// A deterministic spread of `i` over `lo..=hi` (splitmix64), so both sides of a read figure
/// visit orders in the same way without a shared generator.
pub fn spread(i: u64, lo: u64, hi: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    lo + z % (hi - lo + 1)
}
