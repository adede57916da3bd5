//! What every handler and job shares. A leaf: it knows the configuration and the clients, and
//! nothing of HTTP routing or the domain, so every layer can take it without a cycle.

use std::sync::Arc;

use anyhow::Context;
use dhmad::WebhookVerifier;
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::config::Config;
use crate::mail::Mailer;
use crate::metrics::Metrics;

/// Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub dhmad: dhmad::Client,
    pub config: Arc<Config>,
    pub verifier: WebhookVerifier,
    pub mailer: Mailer,
    /// This instance's Prometheus recorder (`GET /metrics`).
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(config: Config, pool: PgPool) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new());
        let observed = Arc::clone(&metrics);
        let log_pool = pool.clone();
        let dhmad = dhmad::Client::builder(config.dhmad_api_key.expose_secret())
            .base_url(config.dhmad_api_base.as_str())
            .timeout(config.dhmad_timeout)
            .user_agent(concat!("dhmad-storefront/", env!("CARGO_PKG_VERSION")))
            .observer(move |call| {
                observed.dhmad_call(call);
                record_for_order(&log_pool, call);
            })
            .build()
            .context("building the DHMAD client")?;
        let verifier = WebhookVerifier::new(config.webhook_secret_strings());
        let mailer = Mailer::from_config(&config)?;
        Ok(Self {
            pool,
            dhmad,
            config: Arc::new(config),
            verifier,
            mailer,
            metrics,
        })
    }
}

/// Records a DHMAD call on the order it was made for (`orders::call_log`), off the caller's
/// path: a lost row costs a line in the back office, never the call.
fn record_for_order(pool: &PgPool, call: &dhmad::CallRecord) {
    let Some(order_id) = crate::orders::call_log::current() else {
        return;
    };
    let (pool, method, endpoint) = (pool.clone(), call.method.to_string(), call.endpoint);
    let status = call.status.map(i32::from);
    let duration_ms = i32::try_from(call.elapsed.as_millis()).unwrap_or(i32::MAX);
    tokio::spawn(async move {
        let c = crate::db::calls::NewCall {
            order_id,
            method: &method,
            endpoint,
            status,
            duration_ms,
        };
        if let Err(e) = crate::db::calls::record(&pool, &c).await {
            tracing::debug!(error = %e, "could not record a DHMAD call on its order");
        }
    });
}
