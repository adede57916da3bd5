//! Per-client-IP sliding window (a minute unless `SANDBOX_RATE_WINDOW_SECS` says otherwise) (`docs/dhmad-api.md` §8), in real time.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// The answer for one request.
#[derive(Debug, Clone, Copy)]
pub struct Verdict {
    /// Allowed?
    pub allowed: bool,
    /// `X-RateLimit-Limit`.
    pub limit: u32,
    /// `X-RateLimit-Remaining`.
    pub remaining: u32,
    /// `X-RateLimit-Reset`: when the oldest counted request leaves the window.
    pub reset: OffsetDateTime,
}

/// Request times per IP.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    hits: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// `limit` requests per minute per IP.
    pub fn new(limit: u32) -> Self {
        Self::with_window(limit, Duration::from_secs(60))
    }

    /// `limit` requests per `window` per IP.
    pub fn with_window(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Requests allowed per minute.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts a request from `ip` (refused requests are not counted).
    pub fn check(&self, ip: IpAddr) -> Verdict {
        let now = Instant::now();
        let mut hits = self.hits.lock().expect("rate-limit lock poisoned");
        let q = hits.entry(ip).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        let allowed = (q.len() as u64) < u64::from(self.limit);
        if allowed {
            q.push_back(now);
        }
        let oldest = q.front().copied().unwrap_or(now);
        let until_reset = self.window.saturating_sub(now.duration_since(oldest));
        Verdict {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(q.len() as u32),
            reset: OffsetDateTime::now_utc() + until_reset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit() {
        let rl = RateLimiter::new(2);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(rl.check(ip).remaining, 1);
        assert!(rl.check(ip).allowed);
        let v = rl.check(ip);
        assert!(!v.allowed);
        assert_eq!(v.remaining, 0);
        assert!(rl.check("10.0.0.1".parse().unwrap()).allowed);
    }
}
