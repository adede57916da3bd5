//! A small HTTP load generator: `concurrency` workers share a bounded number of requests and a
//! time cap, over keep-alive connections on loopback. Every response is checked by the caller's
//! closure; a figure is reported only when every request succeeded.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

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
    let send = Arc::new(send);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + cap;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (send, next) = (send.clone(), next.clone());
        workers.spawn(async move {
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
                match send(i).await {
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
    all.unsent = total.saturating_sub(all.ok + all.failed);
    all
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
