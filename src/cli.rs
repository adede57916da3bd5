//! The binary's command line (part of the binary, not of the library): one flag per variable,
//! each also read from its environment variable. A flag wins over its variable; the defaults
//! are `config.rs`'s, so `--help`, the README and `Config::from_lookup` agree. Values stay text
//! here: `Config::from_lookup` validates them all and reports every bad one at once.

use clap::{Args, Parser, Subcommand};
use storefront::config::{
    ConfigError, EdgeLimits, JobIntervals, DEFAULT_DHMAD_API_BASE, DEFAULT_DHMAD_TIMEOUT_SECS,
    DEFAULT_LISTEN_ADDR, DEFAULT_MAIL_FROM, DEFAULT_PUBLIC_BASE_URL, DEFAULT_SMTP_TIMEOUT_SECS,
    DEFAULT_STATIC_DIR, DEFAULT_TRUSTED_PROXIES,
};
use storefront::{telemetry, Config};

/// The DHMAD reference storefront: a shop that takes payment through DHMAD's escrow Checkout
/// Sessions, on PostgreSQL.
///
/// Without a command, `storefront` serves (as `storefront serve`). Every setting is a flag
/// or the environment variable shown with it (a flag wins); `.env.example` documents them all.
/// Prefer the environment for secrets: flags show in the process list.
#[derive(Debug, Parser)]
#[command(
    name = "storefront",
    version,
    propagate_version = true,
    args_conflicts_with_subcommands = true,
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

const AFTER_HELP: &str = "Metrics: GET /metrics (Prometheus). Probes: GET /healthz (the process \
answers), GET /readyz (the database too).";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Applies pending migrations, then serves the shop, its webhooks and its background jobs
    /// until SIGTERM or Ctrl-C (the default command).
    Serve(Settings),
    /// Applies pending database migrations, then exits.
    Migrate(Settings),
    /// Runs one reconciliation pass over open orders (asks DHMAD about those with no news),
    /// prints its report as JSON on stdout, then exits. For operators and cron.
    Reconcile(Settings),
    /// Exits 0 when the storefront running on LISTEN_ADDR answers GET /readyz with 200, 1
    /// otherwise (for container health checks; needs no other setting).
    Healthcheck(HealthcheckArgs),
}

/// What to run, with what it needs.
pub enum Run {
    /// A command of the service, its configuration validated.
    Service(Service, Box<Config>, Logs),
    /// `healthcheck`, with the address to probe.
    Healthcheck(String),
}

#[derive(Debug, Clone, Copy)]
pub enum Service {
    Serve,
    Migrate,
    Reconcile,
}

impl Cli {
    /// The command to run. Fails when a setting is invalid (each bad one is listed).
    pub fn into_run(self) -> Result<Run, ConfigError> {
        let (service, settings) = match self.command {
            None => (Service::Serve, self.settings),
            Some(Command::Serve(s)) => (Service::Serve, s),
            Some(Command::Migrate(s)) => (Service::Migrate, s),
            Some(Command::Reconcile(s)) => (Service::Reconcile, s),
            Some(Command::Healthcheck(h)) => return Ok(Run::Healthcheck(h.listen_addr)),
        };
        let config = Config::from_lookup(|k| settings.lookup(k))?;
        Ok(Run::Service(service, Box::new(config), settings.logs))
    }
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Address of the running storefront (0.0.0.0 is asked on 127.0.0.1).
    #[arg(long, env = "LISTEN_ADDR", hide_env_values = true, default_value = DEFAULT_LISTEN_ADDR)]
    listen_addr: String,
}

/// How the service logs.
#[derive(Debug, Args)]
#[command(next_help_heading = "Logs")]
pub struct Logs {
    /// Log filter, tracing-subscriber's EnvFilter syntax (e.g. `info,storefront=debug`).
    #[arg(long, env = "RUST_LOG", hide_env_values = true, default_value = telemetry::DEFAULT_FILTER)]
    log_filter: String,
    /// `text`, or `json` for one JSON object per line (log shippers).
    #[arg(
        long,
        env = "LOG_FORMAT",
        hide_env_values = true,
        default_value = "text"
    )]
    log_format: String,
}

impl Logs {
    pub fn init(&self) {
        // Anything but `json` is text, as before there was a command line: a typo in a
        // container's environment should not stop the shop.
        let json = self.log_format.trim().eq_ignore_ascii_case("json");
        telemetry::init(Some(&self.log_filter), json);
    }
}

/// The service's settings.
#[derive(Debug, Args)]
pub struct Settings {
    /// Postgres database of the shop, e.g. postgres://user:password@host:5432/storefront.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Connections to Postgres this instance keeps at most (instances × (this + 2) must stay
    /// under the server's max_connections).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", hide_env_values = true, default_value_t = storefront::config::DEFAULT_DATABASE_MAX_CONNECTIONS.to_string())]
    database_max_connections: String,
    /// Address the storefront listens on.
    #[arg(long, env = "LISTEN_ADDR", hide_env_values = true, default_value = DEFAULT_LISTEN_ADDR)]
    listen_addr: String,
    /// The shop as browsers see it; DHMAD sends buyers back to {this}/checkout/callback.
    #[arg(long, env = "PUBLIC_BASE_URL", hide_env_values = true, default_value = DEFAULT_PUBLIC_BASE_URL)]
    public_base_url: String,
    /// Only this machine can reach the shop, whatever LISTEN_ADDR says (a container whose
    /// port is published on 127.0.0.1): the public demo secrets are then allowed on an
    /// address beyond loopback.
    #[arg(
        long,
        env = "LOCAL_ONLY",
        hide_env_values = true,
        default_value = "false"
    )]
    local_only: String,
    /// Directory of the static assets served under /static.
    #[arg(long, env = "STATIC_DIR", hide_env_values = true, default_value = DEFAULT_STATIC_DIR)]
    static_dir: String,

    /// DHMAD API base, including /api/v1 (https://dhmad.tn/api/v1 in production).
    #[arg(long, env = "DHMAD_API_BASE", hide_env_values = true, default_value = DEFAULT_DHMAD_API_BASE, help_heading = "DHMAD")]
    dhmad_api_base: String,
    /// API key, sk_live_… or sk_sandbox_… [default: the local sandbox's public key].
    #[arg(
        long,
        env = "DHMAD_API_KEY",
        hide_env_values = true,
        help_heading = "DHMAD"
    )]
    dhmad_api_key: Option<String>,
    /// Webhook signing secrets, comma-separated; any one verifies (rotation). Required.
    #[arg(
        long,
        env = "DHMAD_WEBHOOK_SECRETS",
        hide_env_values = true,
        help_heading = "DHMAD"
    )]
    dhmad_webhook_secrets: Option<String>,
    /// The merchant's DHMAD account, seller of every escrow.
    #[arg(
        long,
        env = "DHMAD_SELLER_EMAIL",
        hide_env_values = true,
        help_heading = "DHMAD"
    )]
    dhmad_seller_email: Option<String>,
    /// Origin of DHMAD's hosted checkout page, allowed by the CSP [default: the origin of
    /// DHMAD_API_BASE].
    #[arg(
        long,
        env = "DHMAD_CHECKOUT_ORIGIN",
        hide_env_values = true,
        help_heading = "DHMAD"
    )]
    dhmad_checkout_origin: Option<String>,
    /// Timeout of each call to DHMAD, in seconds.
    #[arg(long, env = "DHMAD_TIMEOUT_SECS", hide_env_values = true, default_value_t = DEFAULT_DHMAD_TIMEOUT_SECS.to_string(), help_heading = "DHMAD")]
    dhmad_timeout_secs: String,
    /// DHMAD calls allowed per window for this API key (DHMAD's default is 100 a minute),
    /// kept as one budget by every instance on the database; 0 keeps none.
    #[arg(long, env = "DHMAD_RATE_LIMIT", hide_env_values = true, default_value_t = storefront::budget::Limits::DHMAD_DEFAULT.calls.to_string(), help_heading = "DHMAD")]
    dhmad_rate_limit: String,
    /// DHMAD's rate-limit window, in seconds (DHMAD's is a sliding minute; shorter only for a
    /// sandbox set alike, in tests).
    #[arg(long, env = "DHMAD_RATE_WINDOW_SECS", hide_env_values = true, default_value_t = storefront::budget::Limits::DHMAD_DEFAULT.window.as_secs().to_string(), help_heading = "DHMAD")]
    dhmad_rate_window_secs: String,

    /// Bearer token of the back office at /admin, 16 characters or more [default: none, no
    /// back office].
    #[arg(
        long,
        env = "ADMIN_TOKEN",
        hide_env_values = true,
        help_heading = "Back office and e-mail"
    )]
    admin_token: Option<String>,
    /// Bearer token a scraper sends to read /metrics, 16 characters or more [default: none,
    /// /metrics answers this machine only].
    #[arg(
        long,
        env = "METRICS_TOKEN",
        hide_env_values = true,
        help_heading = "Back office and e-mail"
    )]
    metrics_token: Option<String>,
    /// smtp://host:port or smtps://user:password@host for the e-mails to buyers [default:
    /// none, e-mails are written to the log].
    #[arg(
        long,
        env = "SMTP_URL",
        hide_env_values = true,
        help_heading = "Back office and e-mail"
    )]
    smtp_url: Option<String>,
    /// The most one e-mail may take, connection and conversation together, in seconds (at
    /// most 90); a silent server is given up on and the e-mail retried.
    #[arg(long, env = "SMTP_TIMEOUT_SECS", hide_env_values = true, default_value_t = DEFAULT_SMTP_TIMEOUT_SECS.to_string(), help_heading = "Back office and e-mail")]
    smtp_timeout_secs: String,
    /// Sender of the e-mails to buyers, `Name <address>`.
    #[arg(long, env = "MAIL_FROM", hide_env_values = true, default_value = DEFAULT_MAIL_FROM, help_heading = "Back office and e-mail")]
    mail_from: String,

    /// How often the outbox worker looks for due jobs, in seconds.
    #[arg(long, env = "OUTBOX_INTERVAL_SECS", hide_env_values = true, default_value_t = JobIntervals::default().outbox.as_secs().to_string(), help_heading = "Background jobs")]
    outbox_interval_secs: String,
    /// How often the reconciler runs, in seconds.
    #[arg(long, env = "RECONCILE_INTERVAL_SECS", hide_env_values = true, default_value_t = JobIntervals::default().reconcile.as_secs().to_string(), help_heading = "Background jobs")]
    reconcile_interval_secs: String,
    /// An open order with no news from DHMAD for this long is checked, in seconds.
    #[arg(long, env = "RECONCILE_AFTER_SECS", hide_env_values = true, default_value_t = JobIntervals::default().reconcile_after.as_secs().to_string(), help_heading = "Background jobs")]
    reconcile_after_secs: String,
    /// How often expired checkout sessions are marked so, in seconds.
    #[arg(long, env = "SESSION_SWEEP_INTERVAL_SECS", hide_env_values = true, default_value_t = JobIntervals::default().session_sweep.as_secs().to_string(), help_heading = "Background jobs")]
    session_sweep_interval_secs: String,
    /// An unpaid order whose last payment session expired this long ago is cancelled, in
    /// seconds.
    #[arg(long, env = "ABANDONED_ORDER_GRACE_SECS", hide_env_values = true, default_value_t = JobIntervals::default().abandoned_after.as_secs().to_string(), help_heading = "Background jobs")]
    abandoned_order_grace_secs: String,

    /// Open connections at most; past it the server stops accepting until one closes.
    #[arg(long, env = "MAX_CONNECTIONS", hide_env_values = true, default_value_t = EdgeLimits::default().max_connections.to_string(), help_heading = "Limits")]
    max_connections: String,
    /// Once over three quarters of MAX_CONNECTIONS are open, a client address (IPv6 by its
    /// /64) holding this many gets a new one closed; not a trusted proxy (CLIENT_IP_HEADER).
    #[arg(long, env = "MAX_CONNECTIONS_PER_CLIENT", hide_env_values = true, default_value_t = EdgeLimits::default().max_connections_per_client.to_string(), help_heading = "Limits")]
    max_connections_per_client: String,
    /// A client must send a request's headers within this time (idle keep-alive connections
    /// too), and its body within the same time again, in seconds.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", hide_env_values = true, default_value_t = EdgeLimits::default().header_read_timeout.as_secs().to_string(), help_heading = "Limits")]
    header_read_timeout_secs: String,
    /// Checkouts per client address per minute.
    #[arg(long, env = "RATE_LIMIT_CHECKOUT_PER_MIN", hide_env_values = true, default_value_t = EdgeLimits::default().checkout_per_minute.to_string(), help_heading = "Limits")]
    rate_limit_checkout_per_min: String,
    /// Callbacks and order actions per client address per minute.
    #[arg(long, env = "RATE_LIMIT_ACTIONS_PER_MIN", hide_env_values = true, default_value_t = EdgeLimits::default().actions_per_minute.to_string(), help_heading = "Limits")]
    rate_limit_actions_per_min: String,
    /// Behind a reverse proxy, the header it sets with the client address (its last value is
    /// used), e.g. x-forwarded-for or forwarded (RFC 7239) [default: none, the TCP peer].
    #[arg(
        long,
        env = "CLIENT_IP_HEADER",
        hide_env_values = true,
        help_heading = "Limits"
    )]
    client_ip_header: Option<String>,
    /// The reverse proxies whose CLIENT_IP_HEADER is believed: addresses or ranges, separated
    /// by commas; any other peer is taken at its own address.
    #[arg(long, env = "TRUSTED_PROXIES", hide_env_values = true, default_value = DEFAULT_TRUSTED_PROXIES, help_heading = "Limits")]
    trusted_proxies: String,

    #[command(flatten)]
    logs: Logs,
}

impl Settings {
    /// The value given for one variable (flag, else environment, else default).
    fn lookup(&self, var: &str) -> Option<String> {
        let v = match var {
            "DATABASE_URL" => return self.database_url.clone(),
            "DATABASE_MAX_CONNECTIONS" => &self.database_max_connections,
            "LISTEN_ADDR" => &self.listen_addr,
            "PUBLIC_BASE_URL" => &self.public_base_url,
            "LOCAL_ONLY" => &self.local_only,
            "STATIC_DIR" => &self.static_dir,
            "DHMAD_API_BASE" => &self.dhmad_api_base,
            "DHMAD_API_KEY" => return self.dhmad_api_key.clone(),
            "DHMAD_WEBHOOK_SECRETS" => return self.dhmad_webhook_secrets.clone(),
            "DHMAD_SELLER_EMAIL" => return self.dhmad_seller_email.clone(),
            "DHMAD_CHECKOUT_ORIGIN" => return self.dhmad_checkout_origin.clone(),
            "DHMAD_TIMEOUT_SECS" => &self.dhmad_timeout_secs,
            "DHMAD_RATE_LIMIT" => &self.dhmad_rate_limit,
            "DHMAD_RATE_WINDOW_SECS" => &self.dhmad_rate_window_secs,
            "ADMIN_TOKEN" => return self.admin_token.clone(),
            "METRICS_TOKEN" => return self.metrics_token.clone(),
            "SMTP_URL" => return self.smtp_url.clone(),
            "SMTP_TIMEOUT_SECS" => &self.smtp_timeout_secs,
            "MAIL_FROM" => &self.mail_from,
            "OUTBOX_INTERVAL_SECS" => &self.outbox_interval_secs,
            "RECONCILE_INTERVAL_SECS" => &self.reconcile_interval_secs,
            "RECONCILE_AFTER_SECS" => &self.reconcile_after_secs,
            "SESSION_SWEEP_INTERVAL_SECS" => &self.session_sweep_interval_secs,
            "ABANDONED_ORDER_GRACE_SECS" => &self.abandoned_order_grace_secs,
            "MAX_CONNECTIONS" => &self.max_connections,
            "MAX_CONNECTIONS_PER_CLIENT" => &self.max_connections_per_client,
            "HEADER_READ_TIMEOUT_SECS" => &self.header_read_timeout_secs,
            "RATE_LIMIT_CHECKOUT_PER_MIN" => &self.rate_limit_checkout_per_min,
            "RATE_LIMIT_ACTIONS_PER_MIN" => &self.rate_limit_actions_per_min,
            "CLIENT_IP_HEADER" => return self.client_ip_header.clone(),
            "TRUSTED_PROXIES" => &self.trusted_proxies,
            _ => return None,
        };
        Some(v.clone())
    }
}
