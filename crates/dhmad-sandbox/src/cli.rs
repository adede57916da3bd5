//! The binary's command line (part of the binary, not of the library): one flag per `SANDBOX_*`
//! variable. A flag wins over its variable; the defaults are `config.rs`'s, so `--help`, the
//! README and `SandboxConfig::default()` agree.

use clap::Parser;
use dhmad_sandbox::config::{self, ConfigError, SandboxConfig};

/// A stateful local emulator of the DHMAD escrow API: the `/api/v1` endpoints, the hosted
/// checkout page, signed webhooks, a control API (`/sandbox/...`), a movable clock and fault
/// injection. State lives in memory: a restart clears it.
#[derive(Debug, Parser)]
#[command(name = "dhmad-sandbox", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Address to bind.
    #[arg(long, env = "SANDBOX_LISTEN_ADDR", default_value = config::DEFAULT_LISTEN_ADDR)]
    listen_addr: String,
    /// Only this machine can reach the listen address, whatever it is (a container published
    /// on 127.0.0.1): required to listen on anything but loopback, since the control API has
    /// no key.
    #[arg(long, env = "SANDBOX_LOCAL_ONLY", default_value = "false")]
    local_only: String,
    /// Base of the checkout URLs handed out and of file links.
    #[arg(long, env = "SANDBOX_PUBLIC_URL", default_value = config::DEFAULT_PUBLIC_URL)]
    public_url: String,
    /// The one accepted API key (sk_sandbox_ + 64 lowercase hex) [default: the public test key].
    #[arg(long, env = "SANDBOX_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Comma-separated webhook URLs; an empty string means none.
    #[arg(long, env = "SANDBOX_WEBHOOK_URLS", default_value = config::DEFAULT_WEBHOOK_URL)]
    webhook_urls: String,
    /// HMAC key of the webhook signatures (used as text) [default: the public test secret].
    #[arg(long, env = "SANDBOX_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Comma-separated redirect allow-list; an empty string means none.
    #[arg(long, env = "SANDBOX_ALLOWED_REDIRECT_URLS", default_value = config::DEFAULT_REDIRECT_URL)]
    allowed_redirect_urls: String,
    /// Comma-separated host names the sandbox answers to, besides IP addresses, localhost and
    /// the public URL's host (any other is refused: DNS rebinding) [default: none].
    #[arg(long, env = "SANDBOX_ALLOWED_HOSTS")]
    allowed_hosts: Option<String>,
    /// E-mail of the developer's associated DHMAD user.
    #[arg(long, env = "SANDBOX_SELLER_EMAIL", default_value = config::DEFAULT_SELLER_EMAIL)]
    seller_email: String,
    /// Requests per minute per client IP.
    #[arg(long, env = "SANDBOX_RATE_LIMIT", default_value = config::DEFAULT_RATE_LIMIT)]
    rate_limit: String,
    /// The rate limit's sliding window in seconds (DHMAD's is a minute; shorten it only for
    /// tests that should not wait minutes).
    #[arg(long, env = "SANDBOX_RATE_WINDOW_SECS", default_value = config::DEFAULT_RATE_WINDOW_SECS)]
    rate_window_secs: String,
    /// Comma-separated delays (ms) of the webhook retries, one retry per delay.
    #[arg(long, env = "SANDBOX_WEBHOOK_RETRY_DELAYS_MS", default_value = config::DEFAULT_WEBHOOK_RETRY_DELAYS_MS)]
    webhook_retry_delays_ms: String,
    /// Timeout (ms) of one webhook attempt.
    #[arg(long, env = "SANDBOX_WEBHOOK_TIMEOUT_MS", default_value = config::DEFAULT_WEBHOOK_TIMEOUT_MS)]
    webhook_timeout_ms: String,
    /// Faults to inject, JSON of the same shape as `POST /sandbox/faults` [default: none].
    #[arg(long, env = "SANDBOX_FAULTS")]
    faults: Option<String>,
    /// Your application's name (hosted page, createdByApplicationName).
    #[arg(long, env = "SANDBOX_APP_NAME", default_value = config::DEFAULT_APP_NAME)]
    app_name: String,
    /// How often (ms) due deadlines are checked.
    #[arg(long, env = "SANDBOX_TICK_MS", default_value = config::DEFAULT_TICK_MS)]
    tick_ms: String,
}

const AFTER_HELP: &str = "Logs follow RUST_LOG (default: info). \
Dashboard: {public url}/sandbox; metrics: {public url}/metrics.";

impl Cli {
    /// The value given for one variable (flag, else environment, else default).
    fn lookup(&self, var: &str) -> Option<String> {
        let v = match var {
            "SANDBOX_LISTEN_ADDR" => &self.listen_addr,
            "SANDBOX_LOCAL_ONLY" => &self.local_only,
            "SANDBOX_PUBLIC_URL" => &self.public_url,
            "SANDBOX_API_KEY" => return self.api_key.clone(),
            "SANDBOX_WEBHOOK_URLS" => &self.webhook_urls,
            "SANDBOX_WEBHOOK_SECRET" => return self.webhook_secret.clone(),
            "SANDBOX_ALLOWED_REDIRECT_URLS" => &self.allowed_redirect_urls,
            "SANDBOX_ALLOWED_HOSTS" => return self.allowed_hosts.clone(),
            "SANDBOX_SELLER_EMAIL" => &self.seller_email,
            "SANDBOX_RATE_LIMIT" => &self.rate_limit,
            "SANDBOX_RATE_WINDOW_SECS" => &self.rate_window_secs,
            "SANDBOX_WEBHOOK_RETRY_DELAYS_MS" => &self.webhook_retry_delays_ms,
            "SANDBOX_WEBHOOK_TIMEOUT_MS" => &self.webhook_timeout_ms,
            "SANDBOX_FAULTS" => return self.faults.clone(),
            "SANDBOX_APP_NAME" => &self.app_name,
            "SANDBOX_TICK_MS" => &self.tick_ms,
            _ => return None,
        };
        Some(v.clone())
    }

    /// Validates everything through [`SandboxConfig::from_lookup`], the library's one parser.
    pub fn into_config(self) -> Result<SandboxConfig, ConfigError> {
        SandboxConfig::from_lookup(|k| self.lookup(k))
    }
}
