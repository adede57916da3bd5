//! Typed configuration from the environment (every variable is listed in `.env.example` and the
//! README). Every bad variable is reported, each with its name, so an operator fixes them all in
//! one go. Secrets never appear in `Debug`.
//!
//! The binary's command line (`src/cli.rs`) names and documents every variable, with these
//! defaults, and hands the values it parsed to [`Config::from_lookup`]: the validation is here.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// The sandbox's documented default API key (`dhmad-sandbox`'s `DEFAULT_API_KEY`), so the local
/// demo runs with no configuration. Copied rather than imported: the sandbox is a dev-dependency.
pub const SANDBOX_DEFAULT_API_KEY: &str =
    "sk_sandbox_c67da261929eae4a6ac7727f8dc5c7fc6bb2bee688938bc6ae0dffba1bdd5f6d";

pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:3000";
pub const DEFAULT_PUBLIC_BASE_URL: &str = "http://localhost:3000";
pub const DEFAULT_DHMAD_API_BASE: &str = "http://127.0.0.1:6002/api/v1";
pub const DEFAULT_DHMAD_TIMEOUT_SECS: u64 = 10;
/// The most `DHMAD_TIMEOUT_SECS` takes: the request deadline is three times it (an unbounded
/// value overflowed it), and no buyer waits longer than that for a page anyway (a request's
/// reads are not tried again after a timeout: `state::WHILE_A_USER_WAITS`).
pub const MAX_DHMAD_TIMEOUT_SECS: u64 = 300;
pub const DEFAULT_SMTP_TIMEOUT_SECS: u64 = 30;
/// Under the outbox's shortest lease (two minutes), so a job never outlives its claim.
pub const MAX_SMTP_TIMEOUT_SECS: u64 = 90;
/// The most any other `*_SECS` setting takes: a year.
pub const MAX_SECS: u64 = 366 * 24 * 3600;
/// The most `MAX_CONNECTIONS` and the per-minute rate limits take.
pub const MAX_COUNT: u64 = 1_000_000;
/// Connections to Postgres one instance keeps at most, by default.
pub const DEFAULT_DATABASE_MAX_CONNECTIONS: u32 = 20;
/// The most `DATABASE_MAX_CONNECTIONS` takes: past it, Postgres (whose own default is 100)
/// refuses long before.
pub const MAX_DATABASE_CONNECTIONS: u32 = 1_000;
/// The most `DHMAD_RATE_LIMIT` takes: the budget keeps one row per call of the window.
pub const MAX_DHMAD_RATE_LIMIT: u32 = 100_000;
pub const DEFAULT_MAIL_FROM: &str = "Souk Digital <shop@localhost>";
/// The source tree's `static/`: fine for the demo; set `STATIC_DIR` when deploying.
pub const DEFAULT_STATIC_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/static");

/// Public demo values (`.env.example`, `docker-compose.yml`, the sandbox's defaults). Fine on
/// this machine; with a live DHMAD key, or a `PUBLIC_BASE_URL` others can reach, they would let
/// anyone forge webhooks or enter the back office, so the service then refuses to start.
pub const PUBLIC_DEMO_SECRETS: &[&str] = &[
    "40bb0abe71e54bb8ed88b9943beefcefc1bcd399892775c58975187d13a343bf",
    "change-me-admin-token",
];

/// Whether `u` points at this machine (the demo, tests): `localhost` or a loopback address.
fn is_local(u: &Url) -> bool {
    match u.host() {
        // A URL of a scheme the `url` crate does not know (`smtp://`) keeps its host as text.
        Some(url::Host::Domain(d)) => {
            d == "localhost"
                || d.ends_with(".localhost")
                || d.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Everything the service reads from its environment.
#[derive(Clone)]
pub struct Config {
    pub database_url: SecretString,
    /// Connections to Postgres this instance keeps at most (its pool).
    pub database_max_connections: u32,
    pub listen_addr: SocketAddr,
    /// Where buyers reach us; the callback sent to DHMAD is `{public_base_url}/checkout/callback`.
    pub public_base_url: Url,
    pub dhmad_api_base: Url,
    pub dhmad_api_key: SecretString,
    /// Any one verifies a webhook (several during a secret rotation).
    pub webhook_secrets: Vec<SecretString>,
    /// The merchant's DHMAD account; informational (the API key acts as it).
    pub seller_email: Option<String>,
    /// `None` disables the back office.
    pub admin_token: Option<SecretString>,
    /// Who may read `/metrics`: bearers of this token, or, when `None`, this machine only.
    pub metrics_token: Option<SecretString>,
    /// Extra origin allowed as a form target, when DHMAD's hosted page is not on the API's origin.
    pub dhmad_checkout_origin: Option<String>,
    pub dhmad_timeout: Duration,
    /// The most a request may take before it is answered 503; `None` (what the environment
    /// gives) derives it from `dhmad_timeout`: see [`Config::request_deadline`].
    pub request_timeout: Option<Duration>,
    /// DHMAD's rate limit, kept as a budget shared by every instance (`crate::budget`).
    pub dhmad_budget: crate::budget::Limits,
    pub jobs: JobIntervals,
    /// `smtp://…` or `smtps://…` (credentials in the URL); `None` writes e-mails to the log.
    pub smtp_url: Option<SecretString>,
    /// The most one e-mail may take, connection and SMTP conversation together: a server that
    /// goes silent mid-conversation must not hold the outbox (`mail.rs`).
    pub smtp_timeout: Duration,
    /// The `From` of e-mails to buyers.
    pub mail_from: String,
    pub edge: EdgeLimits,
    /// Folder of the static assets served under `/static`.
    pub static_dir: PathBuf,
}

/// What protects the HTTP edge from one client taking more than its share.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    /// Open connections at most; past it the server stops accepting until one closes.
    pub max_connections: usize,
    /// Once over three quarters of `max_connections` are open, a client address (an IPv6
    /// client by its /64) holding this many gets a new one closed at once, so a few clients
    /// cannot hold them all (at any time an address holds at most a quarter of them); not
    /// applied behind a proxy (`client_ip_header`), whose address every connection shares.
    pub max_connections_per_client: usize,
    /// A client must send a request's headers within this time, including the next request
    /// on an idle keep-alive connection; otherwise the connection is closed. Its body gets
    /// the same time again (`http::body_deadline`).
    pub header_read_timeout: Duration,
    /// Checkouts per client address per minute (each may create an escrow at DHMAD).
    pub checkout_per_minute: u32,
    /// Callbacks and order actions per client address per minute.
    pub actions_per_minute: u32,
    /// The callback asks DHMAD about a session at most once per this interval.
    pub callback_recheck: Duration,
    /// Header holding the client address set by a trusted reverse proxy (the last value is
    /// taken, the one the proxy appended); unset = the TCP peer address.
    pub client_ip_header: Option<String>,
    /// The peers whose `client_ip_header` is believed; anyone else's address is their own.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_client: 64,
            header_read_timeout: Duration::from_secs(10),
            checkout_per_minute: 20,
            actions_per_minute: 60,
            callback_recheck: Duration::from_secs(5),
            client_ip_header: None,
            trusted_proxies: parse_proxies(DEFAULT_TRUSTED_PROXIES).expect("valid ranges"),
        }
    }
}

/// How often the background jobs run.
#[derive(Debug, Clone, Copy)]
pub struct JobIntervals {
    pub outbox: Duration,
    pub reconcile: Duration,
    /// An open order with no news for this long is checked against DHMAD.
    pub reconcile_after: Duration,
    pub session_sweep: Duration,
    /// An unpaid order whose last payment session expired this long ago is cancelled at DHMAD
    /// (the buyer walked away; nothing should poll it for a month).
    pub abandoned_after: Duration,
}

impl Default for JobIntervals {
    fn default() -> Self {
        Self {
            outbox: Duration::from_secs(2),
            reconcile: Duration::from_secs(60),
            reconcile_after: Duration::from_secs(10 * 60),
            session_sweep: Duration::from_secs(60),
            abandoned_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// All the variables that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// The most a request may take before it is answered 503: a checkout makes two DHMAD
    /// calls, each bounded by `dhmad_timeout`, so `dhmad_timeout` × 3 + 5 s unless set.
    pub fn request_deadline(&self) -> Duration {
        self.request_timeout
            .unwrap_or(self.dhmad_timeout * 3 + Duration::from_secs(5))
    }

    /// `{PUBLIC_BASE_URL}/checkout/callback`, the redirect URL given to DHMAD.
    pub fn callback_url(&self) -> String {
        format!(
            "{}/checkout/callback",
            self.public_base_url.as_str().trim_end_matches('/')
        )
    }

    /// Origins DHMAD's hosted checkout may live on, for the CSP `form-action`: the API's origin,
    /// its `localhost`/`127.0.0.1` twin (the local sandbox serves pages on `localhost`), and
    /// `DHMAD_CHECKOUT_ORIGIN` when set.
    pub fn checkout_origins(&self) -> Vec<String> {
        let mut out = vec![origin_of(&self.dhmad_api_base)];
        let mut twin = self.dhmad_api_base.clone();
        let swapped = match twin.host_str() {
            Some("127.0.0.1") => Some("localhost"),
            Some("localhost") => Some("127.0.0.1"),
            _ => None,
        };
        if let Some(h) = swapped {
            if twin.set_host(Some(h)).is_ok() {
                out.push(origin_of(&twin));
            }
        }
        out.extend(self.dhmad_checkout_origin.clone());
        out
    }

    /// Browsers are told to use https only (HSTS) when the shop is served over https.
    pub fn is_https(&self) -> bool {
        self.public_base_url.scheme() == "https"
    }

    /// The origin browsers see the shop on, e.g. `http://localhost:3000`.
    pub fn public_origin(&self) -> String {
        origin_of(&self.public_base_url)
    }

    /// The webhook secrets' text, for the verifier.
    pub fn webhook_secret_strings(&self) -> Vec<String> {
        self.webhook_secrets
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect()
    }
}

fn origin_of(u: &Url) -> String {
    u.origin().ascii_serialization()
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &"[redacted]")
            .field("database_max_connections", &self.database_max_connections)
            .field("listen_addr", &self.listen_addr)
            .field("public_base_url", &self.public_base_url.as_str())
            .field("dhmad_api_base", &self.dhmad_api_base.as_str())
            .field("dhmad_api_key", &"[redacted]")
            .field(
                "webhook_secrets",
                &format_args!("[{} redacted]", self.webhook_secrets.len()),
            )
            .field("seller_email", &self.seller_email)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "[redacted]"),
            )
            .field("dhmad_checkout_origin", &self.dhmad_checkout_origin)
            .field("dhmad_timeout", &self.dhmad_timeout)
            .field("request_timeout", &self.request_deadline())
            .field("jobs", &self.jobs)
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "[redacted]"))
            .field("smtp_timeout", &self.smtp_timeout)
            .field("mail_from", &self.mail_from)
            .field("edge", &self.edge)
            .field("static_dir", &self.static_dir)
            .finish()
    }
}

mod exposure;
mod from_env;
mod proxies;
use proxies::parse_proxies;
pub use proxies::DEFAULT_TRUSTED_PROXIES;

#[cfg(test)]
mod tests;
