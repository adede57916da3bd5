//! Typed configuration, read by the binary from the `SANDBOX_*` environment variables (the
//! table in this crate's README).

use std::net::SocketAddr;
use std::time::Duration;

use crate::faults::FaultConfig;

/// The sandbox API key accepted when `SANDBOX_API_KEY` is not set. Public on purpose.
pub const DEFAULT_API_KEY: &str =
    "sk_sandbox_c67da261929eae4a6ac7727f8dc5c7fc6bb2bee688938bc6ae0dffba1bdd5f6d";
/// The webhook secret used when `SANDBOX_WEBHOOK_SECRET` is not set. Public on purpose.
pub const DEFAULT_WEBHOOK_SECRET: &str =
    "40bb0abe71e54bb8ed88b9943beefcefc1bcd399892775c58975187d13a343bf";
/// The associated user's e-mail when `SANDBOX_SELLER_EMAIL` is not set.
pub const DEFAULT_SELLER_EMAIL: &str = "merchant@shop.example";
/// Default listen address (DHMAD's own sandbox backend listens on 6002).
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:6002";
/// Default public URL.
pub const DEFAULT_PUBLIC_URL: &str = "http://localhost:6002";
/// Default webhook target: the storefront running locally.
pub const DEFAULT_WEBHOOK_URL: &str = "http://localhost:3000/webhooks/dhmad";
/// Default redirect allow-list: the storefront's callback.
pub const DEFAULT_REDIRECT_URL: &str = "http://localhost:3000/checkout/callback";
/// Default `SANDBOX_RATE_LIMIT` (requests per minute per client IP).
pub const DEFAULT_RATE_LIMIT: &str = "100";
/// Default `SANDBOX_RATE_WINDOW_SECS`: DHMAD's sliding minute.
pub const DEFAULT_RATE_WINDOW_SECS: &str = "60";
/// Default `SANDBOX_WEBHOOK_RETRY_DELAYS_MS`.
pub const DEFAULT_WEBHOOK_RETRY_DELAYS_MS: &str = "1000,2000,4000";
/// Default `SANDBOX_WEBHOOK_TIMEOUT_MS`.
pub const DEFAULT_WEBHOOK_TIMEOUT_MS: &str = "10000";
/// Default `SANDBOX_APP_NAME`.
pub const DEFAULT_APP_NAME: &str = "Sandbox Shop";
/// Default `SANDBOX_TICK_MS`.
pub const DEFAULT_TICK_MS: &str = "1000";

/// Everything the sandbox needs to run.
#[derive(Clone)]
pub struct SandboxConfig {
    /// `SANDBOX_LISTEN_ADDR`.
    pub listen_addr: SocketAddr,
    /// `SANDBOX_PUBLIC_URL`; `None` means `http://{bound addr}`.
    pub public_url: Option<String>,
    /// `SANDBOX_API_KEY`.
    pub api_key: String,
    /// `SANDBOX_WEBHOOK_URLS` (comma-separated).
    pub webhook_urls: Vec<String>,
    /// `SANDBOX_WEBHOOK_SECRET`.
    pub webhook_secret: String,
    /// `SANDBOX_ALLOWED_REDIRECT_URLS` (comma-separated).
    pub allowed_redirect_urls: Vec<String>,
    /// `SANDBOX_ALLOWED_HOSTS` (comma-separated host names): names besides `localhost`, IP
    /// addresses and `SANDBOX_PUBLIC_URL`'s host that requests may address the sandbox by
    /// (docker-compose's storefront calls it `sandbox`).
    pub allowed_hosts: Vec<String>,
    /// `SANDBOX_SELLER_EMAIL`: the developer's associated user.
    pub seller_email: String,
    /// `SANDBOX_RATE_LIMIT`: requests per minute per client IP.
    pub rate_limit_per_minute: u32,
    /// `SANDBOX_RATE_WINDOW_SECS`: the rate limit's sliding window (DHMAD's is a minute;
    /// shorter only so that tests need not wait minutes).
    pub rate_window: Duration,
    /// `SANDBOX_WEBHOOK_RETRY_DELAYS_MS` (comma-separated), default 1000,2000,4000.
    pub webhook_retry_delays: Vec<Duration>,
    /// `SANDBOX_WEBHOOK_TIMEOUT_MS`, default 10000.
    pub webhook_timeout: Duration,
    /// `SANDBOX_FAULTS` (JSON).
    pub faults: FaultConfig,
    /// `SANDBOX_APP_NAME`: the developer application's name shown on the hosted page.
    pub app_name: String,
    /// `SANDBOX_TICK_MS`: how often deadlines are checked, default 1000.
    pub tick_interval: Duration,
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("listen_addr", &self.listen_addr)
            .field("public_url", &self.public_url)
            .field("api_key", &"[redacted]")
            .field("webhook_urls", &self.webhook_urls)
            .field("webhook_secret", &"[redacted]")
            .field("allowed_redirect_urls", &self.allowed_redirect_urls)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("seller_email", &self.seller_email)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("rate_window", &self.rate_window)
            .field("webhook_retry_delays", &self.webhook_retry_delays)
            .field("webhook_timeout", &self.webhook_timeout)
            .field("faults", &self.faults)
            .field("app_name", &self.app_name)
            .finish()
    }
}

/// A bad environment variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {var}: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub var: &'static str,
    /// What is wrong.
    pub reason: String,
}

// The defaults are the texts above, parsed like a user's values: one source for the binary's
// `--help`, the README and the library.
impl Default for SandboxConfig {
    fn default() -> Self {
        Self::from_lookup(|_| None).expect("the default settings are valid")
    }
}

impl SandboxConfig {
    /// Reads the `SANDBOX_*` variables; unset ones take their defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Same as [`Self::from_env`] with an explicit lookup (testable). Unset or blank values take
    /// the default, except the two URL lists, where an empty string means none.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |k: &'static str, default: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let urls = |k: &'static str, default: &str| list(&get(k).unwrap_or_else(|| default.into()));
        let millis = |k: &'static str, default: &str| {
            var(k, default)
                .parse()
                .map(Duration::from_millis)
                .map_err(|e| bad(k, e))
        };
        let public_url = var("SANDBOX_PUBLIC_URL", DEFAULT_PUBLIC_URL);
        url::Url::parse(&public_url).map_err(|e| bad("SANDBOX_PUBLIC_URL", e))?;
        let api_key = var("SANDBOX_API_KEY", DEFAULT_API_KEY);
        if !crate::api::auth::is_well_formed(&api_key) || !api_key.starts_with("sk_sandbox_") {
            return Err(bad(
                "SANDBOX_API_KEY",
                "expected sk_sandbox_ + 64 lowercase hex",
            ));
        }
        let seller_email = var("SANDBOX_SELLER_EMAIL", DEFAULT_SELLER_EMAIL);
        if !seller_email.contains('@') {
            return Err(bad("SANDBOX_SELLER_EMAIL", "not an e-mail address"));
        }
        let faults = match get("SANDBOX_FAULTS").filter(|v| !v.trim().is_empty()) {
            Some(v) => serde_json::from_str(&v).map_err(|e| bad("SANDBOX_FAULTS", e))?,
            None => FaultConfig::default(),
        };
        let mut allowed_hosts = Vec::new();
        for h in list(&get("SANDBOX_ALLOWED_HOSTS").unwrap_or_default()) {
            match url::Host::parse(&h) {
                // An IP address is always accepted: nothing to add.
                Ok(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {}
                Ok(url::Host::Domain(d)) => allowed_hosts.push(d),
                Err(_) => {
                    return Err(bad(
                        "SANDBOX_ALLOWED_HOSTS",
                        format!("{h}: expected host names, without scheme or port"),
                    ))
                }
            }
        }
        let delays = var(
            "SANDBOX_WEBHOOK_RETRY_DELAYS_MS",
            DEFAULT_WEBHOOK_RETRY_DELAYS_MS,
        );
        let listen_addr: SocketAddr = var("SANDBOX_LISTEN_ADDR", DEFAULT_LISTEN_ADDR)
            .parse()
            .map_err(|e| bad("SANDBOX_LISTEN_ADDR", e))?;
        let local_only = match var("SANDBOX_LOCAL_ONLY", "false").as_str() {
            "false" | "0" => false,
            "true" | "1" => true,
            _ => return Err(bad("SANDBOX_LOCAL_ONLY", "expected true or false")),
        };
        // The control API (`/sandbox`) has no key, by design: anyone who reaches the port can
        // mark escrows paid, read every session and send the webhooks elsewhere. So it listens
        // where only this machine can reach it, or the operator says that is so.
        if !listen_addr.ip().to_canonical().is_loopback() && !local_only {
            return Err(bad(
                "SANDBOX_LISTEN_ADDR",
                format!(
                    "{listen_addr} may be reachable from other machines, and the control API \
                     (/sandbox) has no key: anyone reaching it could mark escrows paid. Listen \
                     on a loopback address, or, if only this machine can reach the port anyway \
                     (a container whose port is published on 127.0.0.1 only), set \
                     SANDBOX_LOCAL_ONLY=true"
                ),
            ));
        }
        Ok(Self {
            listen_addr,
            public_url: Some(public_url.trim_end_matches('/').to_owned()),
            api_key,
            webhook_urls: urls("SANDBOX_WEBHOOK_URLS", DEFAULT_WEBHOOK_URL),
            webhook_secret: var("SANDBOX_WEBHOOK_SECRET", DEFAULT_WEBHOOK_SECRET),
            allowed_redirect_urls: urls("SANDBOX_ALLOWED_REDIRECT_URLS", DEFAULT_REDIRECT_URL),
            allowed_hosts,
            seller_email: seller_email.to_lowercase(),
            rate_limit_per_minute: var("SANDBOX_RATE_LIMIT", DEFAULT_RATE_LIMIT)
                .parse()
                .map_err(|e| bad("SANDBOX_RATE_LIMIT", e))?,
            rate_window: match var("SANDBOX_RATE_WINDOW_SECS", DEFAULT_RATE_WINDOW_SECS).parse() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => {
                    return Err(bad(
                        "SANDBOX_RATE_WINDOW_SECS",
                        "expected a positive number of seconds",
                    ))
                }
            },
            webhook_retry_delays: list(&delays)
                .iter()
                .map(|s| s.parse().map(Duration::from_millis))
                .collect::<Result<_, _>>()
                .map_err(|e| bad("SANDBOX_WEBHOOK_RETRY_DELAYS_MS", e))?,
            webhook_timeout: millis("SANDBOX_WEBHOOK_TIMEOUT_MS", DEFAULT_WEBHOOK_TIMEOUT_MS)?,
            faults,
            app_name: var("SANDBOX_APP_NAME", DEFAULT_APP_NAME),
            tick_interval: millis("SANDBOX_TICK_MS", DEFAULT_TICK_MS)?
                .max(Duration::from_millis(10)),
        })
    }

    /// For in-process tests: port 0, fast retries, a generous rate limit.
    pub fn for_tests() -> Self {
        Self {
            listen_addr: "127.0.0.1:0".parse().expect("valid address"),
            public_url: None,
            webhook_urls: Vec::new(),
            rate_limit_per_minute: 10_000,
            rate_window: Duration::from_secs(60),
            webhook_retry_delays: vec![
                Duration::from_millis(50),
                Duration::from_millis(100),
                Duration::from_millis(200),
            ],
            webhook_timeout: Duration::from_secs(2),
            tick_interval: Duration::from_millis(200),
            ..Self::default()
        }
    }
}

fn bad(var: &'static str, reason: impl ToString) -> ConfigError {
    ConfigError {
        var,
        reason: reason.to_string(),
    }
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = SandboxConfig::from_lookup(|_| None).unwrap();
        assert_eq!(c.rate_limit_per_minute, 100);
        assert_eq!(c.listen_addr.to_string(), DEFAULT_LISTEN_ADDR);
        assert_eq!(c.webhook_urls, [DEFAULT_WEBHOOK_URL]);
        assert_eq!(
            c.webhook_retry_delays,
            [1000, 2000, 4000].map(Duration::from_millis)
        );
        assert_eq!(
            (c.webhook_timeout, c.tick_interval, c.app_name.as_str()),
            (
                Duration::from_secs(10),
                Duration::from_secs(1),
                "Sandbox Shop"
            )
        );
        let none = SandboxConfig::from_lookup(|k| (k == "SANDBOX_WEBHOOK_URLS").then(String::new));
        assert!(none.unwrap().webhook_urls.is_empty());
        assert!(crate::api::auth::is_well_formed(DEFAULT_API_KEY));
        let c = SandboxConfig::from_lookup(|k| match k {
            "SANDBOX_WEBHOOK_URLS" => Some("http://a/x, http://b/y".into()),
            "SANDBOX_RATE_LIMIT" => Some("5".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.webhook_urls, ["http://a/x", "http://b/y"]);
        assert_eq!(c.rate_limit_per_minute, 5);
        assert!(
            SandboxConfig::from_lookup(|k| (k == "SANDBOX_API_KEY").then(|| "x".into())).is_err()
        );
    }

    #[test]
    fn another_machines_reach_needs_saying_so() {
        let on = |addr: &'static str, local_only: Option<&'static str>| {
            SandboxConfig::from_lookup(move |k| match k {
                "SANDBOX_LISTEN_ADDR" => Some(addr.into()),
                "SANDBOX_LOCAL_ONLY" => local_only.map(Into::into),
                _ => None,
            })
        };
        for open in ["0.0.0.0:6002", "[::]:6002", "192.168.1.5:6002"] {
            let Err(e) = on(open, None) else {
                panic!("{open} accepted")
            };
            assert_eq!(e.var, "SANDBOX_LISTEN_ADDR");
            assert!(e.reason.contains("SANDBOX_LOCAL_ONLY=true"), "{}", e.reason);
            assert!(on(open, Some("false")).is_err(), "{open}");
            assert!(on(open, Some("true")).is_ok(), "{open}");
        }
        for local in ["127.0.0.1:6002", "[::1]:6002", "[::ffff:127.0.0.1]:6002"] {
            assert!(on(local, None).is_ok(), "{local}");
        }
        let Err(e) = on("127.0.0.1:6002", Some("yes")) else {
            panic!("yes accepted")
        };
        assert_eq!(e.var, "SANDBOX_LOCAL_ONLY");
    }
}
