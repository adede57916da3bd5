//! Starting and stopping a sandbox: [`Sandbox::start`] and [`SandboxHandle`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::SandboxConfig;
use crate::faults::Faults;
use crate::lifecycle::deadlines;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::state::{AppState, Settings, Shared, Store};
use crate::webhooks::{DeliverySettings, Dispatcher};

/// Entry point.
pub struct Sandbox;

/// A running sandbox. Dropping it leaves it running until the runtime ends; call
/// [`SandboxHandle::shutdown`] to stop it gracefully.
pub struct SandboxHandle {
    state: AppState,
    local_addr: SocketAddr,
    webhook_secret: String,
    cancel: CancellationToken,
    server: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

/// `SANDBOX_LISTEN_ADDR` could not be bound (typically: the port is taken).
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (SANDBOX_LISTEN_ADDR): {}", reason(.io))]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// What the OS said.
    pub io: std::io::Error,
}

fn reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "address already in use".to_owned(),
        _ => e.to_string(),
    }
}

/// The full router (API, hosted page, control API and dashboard, metrics, plain pages).
pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/api/v1", crate::api::router(state.clone()))
        .merge(crate::checkout_page::router())
        .merge(crate::control::router(state.clone()))
        .merge(crate::pages::router())
        .route("/metrics", axum::routing::get(crate::metrics::page))
        .fallback(crate::pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::security::host_guard,
        ))
        .with_state(state)
}

/// `scheme://host[:port]` of a URL, as browsers send it in `Origin`.
fn origin_of(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

/// The origins a page of this sandbox is shown under: the public URL's and the bound
/// address's. Bound to 0.0.0.0 or `::` (as in docker-compose), no browser shows that address:
/// it shows the loopback names the developer types, so those count too.
fn own_origins(base_url: &str, bound: SocketAddr) -> Vec<String> {
    let mut urls = vec![base_url.to_owned(), format!("http://{bound}")];
    if bound.ip().is_unspecified() {
        let port = bound.port();
        for host in ["127.0.0.1", "localhost", "[::1]"] {
            urls.push(format!("http://{host}:{port}"));
        }
    }
    urls.iter().filter_map(|u| origin_of(u)).collect()
}

impl Sandbox {
    /// Binds `config.listen_addr`, serves, and runs the webhook dispatcher and the deadline
    /// ticker until [`SandboxHandle::shutdown`].
    pub async fn start(config: SandboxConfig) -> anyhow::Result<SandboxHandle> {
        let listener = tokio::net::TcpListener::bind(config.listen_addr)
            .await
            .map_err(|io| BindError {
                addr: config.listen_addr,
                io,
            })?;
        let local_addr = listener.local_addr()?;
        let base_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local_addr}"))
            .trim_end_matches('/')
            .to_owned();
        let cancel = CancellationToken::new();
        let faults = Arc::new(Faults::new(config.faults.clone()));
        let metrics = Arc::new(Metrics::default());
        let own_origins = own_origins(&base_url, local_addr);
        let mut allowed_hosts = config.allowed_hosts.clone();
        if let Some(url::Host::Domain(d)) = url::Url::parse(&base_url)
            .ok()
            .as_ref()
            .and_then(url::Url::host)
        {
            allowed_hosts.push(d.to_owned());
        }
        let dispatcher = Dispatcher::new(
            config.webhook_urls.clone(),
            DeliverySettings {
                secret: config.webhook_secret.clone(),
                retry_delays: config.webhook_retry_delays.clone(),
                timeout: config.webhook_timeout,
            },
            faults.clone(),
            metrics.clone(),
            cancel.clone(),
        );
        let state = AppState(Arc::new(Shared {
            settings: Settings {
                api_key: config.api_key.clone(),
                seller_email: config.seller_email.trim().to_lowercase(),
                app_name: config.app_name.clone(),
                base_url,
                allowed_redirect_urls: Mutex::new(config.allowed_redirect_urls.clone()),
                own_origins,
                allowed_hosts,
            },
            clock: Clock::default(),
            store: Mutex::new(Store::default()),
            dispatcher,
            faults,
            metrics,
            rate: RateLimiter::with_window(config.rate_limit_per_minute, config.rate_window),
            requests: Mutex::default(),
            started_at: time::OffsetDateTime::now_utc(),
        }));
        let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let token = cancel.clone();
        let server = tokio::spawn(async move {
            let shutdown = async move { token.cancelled().await };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "sandbox server failed");
            }
        });
        let ticker = tokio::spawn(tick(state.clone(), config.tick_interval, cancel.clone()));
        tracing::info!(%local_addr, base_url = %state.settings.base_url, "DHMAD sandbox listening");
        Ok(SandboxHandle {
            state,
            local_addr,
            webhook_secret: config.webhook_secret,
            cancel,
            server,
            ticker,
        })
    }
}

async fn tick(state: AppState, every: std::time::Duration, cancel: CancellationToken) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = interval.tick() => {
                state.with_store(deadlines::fire_due);
                state.metrics.upkeep();
            }
        }
    }
}

impl SandboxHandle {
    /// Public URL without trailing slash.
    pub fn base_url(&self) -> String {
        self.state.settings.base_url.clone()
    }

    /// `base_url() + "/api/v1"`.
    pub fn api_base(&self) -> String {
        format!("{}/api/v1", self.base_url())
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The accepted API key.
    pub fn api_key(&self) -> &str {
        &self.state.settings.api_key
    }

    /// The webhook signing secret.
    pub fn webhook_secret(&self) -> &str {
        &self.webhook_secret
    }

    /// The associated user's e-mail.
    pub fn seller_email(&self) -> &str {
        &self.state.settings.seller_email
    }

    /// Replaces the webhook URLs.
    pub fn set_webhook_urls(&self, urls: Vec<String>) {
        self.state.dispatcher.set_urls(urls);
    }

    /// Replaces the redirect allow-list.
    pub fn set_allowed_redirect_urls(&self, urls: Vec<String>) {
        self.state.set_allowed_redirects(urls);
    }

    /// Stops serving (in-flight requests get up to 5 s to finish), the ticker and the webhook
    /// workers.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        let grace = std::time::Duration::from_secs(5);
        if tokio::time::timeout(grace, &mut self.server).await.is_err() {
            tracing::warn!("requests still running after 5 s; aborting them");
            self.server.abort();
        }
        let _ = self.ticker.await;
    }
}
