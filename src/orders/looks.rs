//! How often one client may have the shop ask DHMAD about its pages. A look (on a return from
//! DHMAD, or before a step's stored page is handed out again) is two reads taken ahead of the
//! checkout line, since a user waits; the per-page interval alone let one address that rotated
//! the returns of a few orders of its own spend all of DHMAD's window, and every checkout
//! waited. Past its allowance a request looks at nothing: its page says what the shop knows,
//! and DHMAD's webhooks bring the rest. Counted by the request's client (`client`); work no
//! client asked for (the jobs, the CLI) is not counted.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::client;

/// Each client's allowance of looks.
pub struct Looks(DefaultKeyedRateLimiter<String>);

impl Looks {
    /// `per_minute` looks a minute per client, in bursts of up to half of that (at least 2).
    pub fn per_minute(per_minute: u32) -> Self {
        let rate = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(per_minute.div_ceil(2).max(2)).unwrap_or(NonZeroU32::MIN);
        Self(RateLimiter::keyed(
            Quota::per_minute(rate).allow_burst(burst),
        ))
    }

    /// Whether the current request's client may have one more look now (always, outside a
    /// request).
    pub fn allow(&self) -> bool {
        let allowed = client::current().is_none_or(|c| self.0.check_key(&c).is_ok());
        if !allowed {
            tracing::debug!("a client past its allowance of looks at DHMAD: not looking");
        }
        allowed
    }

    /// Forgets the clients back to a full allowance (the limiter keeps every client it saw).
    pub fn forget_idle(&self) {
        self.0.retain_recent();
        self.0.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_past_its_burst_is_refused_and_others_are_not() {
        let looks = Looks::per_minute(10);
        let ours = client::scope("192.0.2.1".into(), async {
            (0..8).filter(|_| looks.allow()).count()
        })
        .await;
        assert_eq!(ours, 5);
        assert!(client::scope("192.0.2.2".into(), async { looks.allow() }).await);
        // Outside a request: not counted.
        assert!((0..20).all(|_| looks.allow()));
    }
}
