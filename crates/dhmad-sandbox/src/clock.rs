//! The sandbox clock: real time plus an offset that `POST /sandbox/clock/advance` increases.
//!
//! Every DHMAD-visible timestamp (escrow dates, deadlines, session expiry, event time) reads
//! this clock. Webhook `X-Webhook-Timestamp` headers and rate-limit windows use real time, so
//! receivers' replay checks keep working after the clock was advanced.

use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// The furthest the clock goes (a year's margin below 9999 for dates computed from it, as
/// deadlines and expiries are).
const LATEST: OffsetDateTime = time::macros::datetime!(9998-01-01 0:00 UTC);

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
    /// Never past [`LATEST`]: a date beyond year 9999 does not exist for `time` (without its
    /// `large-dates`), and the next `now()` would panic in every handler. The control route
    /// refuses steps long before; this holds whatever number of them race to it.
    pub fn advance(&self, by: Duration) -> OffsetDateTime {
        let ms = by.whole_milliseconds().clamp(0, i64::MAX as i128) as i64;
        let room = (LATEST - OffsetDateTime::now_utc()).whole_milliseconds();
        let room = room.clamp(0, i64::MAX as i128) as i64;
        let _ = self
            .offset_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |offset| {
                Some(offset.saturating_add(ms).min(room.max(offset)))
            });
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

    /// However many steps pile up (as concurrent advances that each passed the control
    /// route's year check did), the clock stays a date `time` can add to.
    #[test]
    fn advance_stops_short_of_year_9999() {
        let c = Clock::default();
        for _ in 0..2_000 {
            c.advance(Duration::days(3_650));
        }
        assert!(c.now() <= LATEST + Duration::minutes(1), "{}", c.now());
        assert!(c.now() > LATEST - Duration::minutes(1));
        let _ = c.now() + Duration::days(365);
    }
}
