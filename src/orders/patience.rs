//! How long DHMAD calls made by background work can take at worst, as the client's retry loop
//! runs them (`RetryPolicy::default`): what a lease held across them must outlast. A lease that
//! ran out first let a second holder repeat the work: a deliver sent again (the outbox), an
//! escrow cancelled under the buyer's new payment page (the abandoned-order job).

use std::time::Duration;

use crate::db;

/// `reads` and `writes` made one after another. A read is tried up to `max_retries + 1` times,
/// each try up to `timeout`, with a backoff or a rate limit's reset between two tries (and the
/// 50 ms `RetryPolicy::delay` adds to a reset); a write is sent once (`Retry::No`, and the
/// storefront's client does not resend one after a 429). Every try first passes DHMAD's budget,
/// a statement that may wait for a pool connection (`db::ACQUIRE_TIMEOUT`).
pub fn background_calls(timeout: Duration, reads: u32, writes: u32) -> Duration {
    let policy = dhmad::RetryPolicy::default();
    let tries = policy.max_retries + 1;
    let between = policy
        .max_backoff
        .max(policy.max_rate_limit_wait + RATE_LIMIT_EXTRA);
    let try_ = timeout + db::ACQUIRE_TIMEOUT;
    let read = try_ * tries + between * policy.max_retries;
    read * reads + try_ * writes
}

/// A lease held across `reads` and `writes` ([`background_calls`]): half a minute more for
/// the holder's statements, and two minutes at least.
pub fn lease(timeout: Duration, reads: u32, writes: u32) -> Duration {
    (background_calls(timeout, reads, writes) + Duration::from_secs(30))
        .max(Duration::from_secs(120))
}

/// What `RetryPolicy::delay` adds to a rate limit's reset.
const RATE_LIMIT_EXTRA: Duration = Duration::from_millis(50);

/// The longest `reads` and `writes` can take, walked try by try as the client's loop runs them:
/// the figure a lease is checked against in its tests.
#[cfg(test)]
pub(crate) fn walked(timeout: Duration, reads: u32, writes: u32) -> Duration {
    let policy = dhmad::RetryPolicy::default();
    let one_try = timeout + db::ACQUIRE_TIMEOUT;
    let read = {
        let mut took = one_try;
        let mut backoff = policy.initial_backoff;
        for _ in 0..policy.max_retries {
            let rate_limited = policy.max_rate_limit_wait + Duration::from_millis(50);
            took += backoff.max(rate_limited) + one_try;
            backoff = (backoff * 2).min(policy.max_backoff);
        }
        took
    };
    read * reads + one_try * writes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_covers_every_try_and_wait_of_the_retry_loop() {
        for secs in [1, 10, 20, 60] {
            let t = Duration::from_secs(secs);
            for (reads, writes) in [(0, 1), (1, 0), (2, 1), (3, 1)] {
                let bound = background_calls(t, reads, writes);
                let walked = walked(t, reads, writes);
                assert!(
                    bound >= walked,
                    "{secs} s, {reads}+{writes}: {bound:?} < {walked:?}"
                );
            }
        }
    }
}
