//! The sandbox clock: real time plus an offset that `POST /sandbox/clock/advance` increases.
//!
//! Every DHMAD-visible timestamp (escrow dates, deadlines, session expiry, event time) reads
//! this clock. Webhook `X-Webhook-Timestamp` headers and rate-limit windows use real time, so
//! receivers' replay checks keep working after the clock was advanced.

use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// Real time shifted by an offset that only grows.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// The sandbox's "now".
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves the clock forward by `by` (negative values are ignored) and returns the new now.
    pub fn advance(&self, by: Duration) -> OffsetDateTime {
        let ms = by.whole_milliseconds().clamp(0, i64::MAX as i128) as i64;
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
        self.now()
    }

    /// How far the clock runs ahead of real time.
    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_forward_only() {
        let c = Clock::default();
        let before = c.now();
        c.advance(Duration::hours(2));
        c.advance(Duration::hours(-5));
        assert!(c.now() - before >= Duration::hours(2));
        assert_eq!(c.offset(), Duration::hours(2));
    }
}
