//! Per-client rate limits (`tower_governor`) on what costs the merchant DHMAD calls or
//! database work: checkouts (each may create an escrow), callbacks and order actions. Keyed by
//! the client address of `client_addr` (the peer, or the configured proxy header only), an IPv6
//! client by its /64 (`limit_key`).

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    http::{Request, Response},
    response::IntoResponse,
};
use governor::middleware::NoOpMiddleware;
use tower_governor::{
    governor::GovernorConfigBuilder, key_extractor::KeyExtractor, GovernorError, GovernorLayer,
};

use super::client_addr::{client, Client};
use crate::{config::Config, error::AppError};

#[derive(Clone)]
pub struct ClientKey(Arc<Config>);

impl KeyExtractor for ClientKey {
    type Key = Client;

    fn extract<T>(&self, req: &Request<T>) -> Result<Client, GovernorError> {
        client(req.headers(), req.extensions(), &self.0)
            .map(Client::limit_key)
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

type Middleware = NoOpMiddleware<governor::clock::QuantaInstant>;
pub type Limit = GovernorLayer<ClientKey, Middleware, Body>;

/// `per_minute` requests a minute per client, in bursts of up to a third of that (at least 5).
pub fn per_minute(config: &Arc<Config>, per_minute: u32) -> Limit {
    let per_minute = per_minute.max(1);
    let gov = GovernorConfigBuilder::default()
        .key_extractor(ClientKey(Arc::clone(config)))
        .period(Duration::from_nanos(60_000_000_000 / u64::from(per_minute)))
        .burst_size(per_minute.div_ceil(3).max(5))
        .finish()
        .expect("a positive period and burst size");
    forget_idle_clients(&gov);
    GovernorLayer::new(gov).error_handler(refusal)
}

/// The limiter remembers every client it saw; once a minute it forgets those back to a full
/// allowance. The task ends when the router (and so the limiter) is dropped.
fn forget_idle_clients(gov: &tower_governor::governor::GovernorConfig<ClientKey, Middleware>) {
    let weak = Arc::downgrade(gov.limiter());
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(limiter) => limiter.retain_recent(),
                    None => break,
                }
            }
        });
    }
}

fn refusal(e: GovernorError) -> Response<Body> {
    match e {
        GovernorError::TooManyRequests { wait_time, .. } => AppError::TooManyRequests {
            retry_after: wait_time.max(1),
        }
        .into_response(),
        GovernorError::UnableToExtractKey => {
            AppError::BadRequest("the client address could not be determined".into())
                .into_response()
        }
        GovernorError::Other { code, msg, .. } => (code, msg.unwrap_or_default()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_positive_rate_builds_a_limiter() {
        let config = Arc::new(
            Config::from_lookup(|k| match k {
                "DATABASE_URL" => Some("postgres://u@h/db".into()),
                "DHMAD_WEBHOOK_SECRETS" => Some("s".into()),
                _ => None,
            })
            .unwrap(),
        );
        // Above 60,000 a minute the period is under a millisecond.
        for rate in [1, 60, 60_001, 1_000_000, u32::MAX] {
            let _ = per_minute(&config, rate);
        }
    }
}
