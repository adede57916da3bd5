//! [`Config::from_lookup`]: every variable read, checked and defaulted, each bad one reported
//! with its name.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::SecretString;
use url::Url;

use super::*;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        let var = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut check = |name: &str, r: Result<(), String>| {
            if let Err(e) = r {
                errors.push(format!("{name}: {e}"));
            }
        };

        let database_url = var("DATABASE_URL");
        // Parsed as the pool will, so that a malformed one is listed with the others (its
        // error names no part of it: it may hold a password).
        check(
            "DATABASE_URL",
            database_url
                .as_ref()
                .ok_or("is required".into())
                .and_then(|u| {
                    <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(u)
                        .map(|_| ())
                        .map_err(|_| {
                            "expected postgres://user[:password]@host[:port]/database".into()
                        })
                }),
        );
        let listen_addr = parse_or(&var("LISTEN_ADDR"), DEFAULT_LISTEN_ADDR, |s| {
            s.parse::<SocketAddr>()
                .map_err(|e| format!("{e} (expected host:port)"))
        });
        check(
            "LISTEN_ADDR",
            listen_addr.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let public_base_url = parse_or(&var("PUBLIC_BASE_URL"), DEFAULT_PUBLIC_BASE_URL, http_url);
        check(
            "PUBLIC_BASE_URL",
            public_base_url.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let dhmad_api_base = parse_or(&var("DHMAD_API_BASE"), DEFAULT_DHMAD_API_BASE, http_url);
        check(
            "DHMAD_API_BASE",
            dhmad_api_base.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let api_key = var("DHMAD_API_KEY").unwrap_or_else(|| SANDBOX_DEFAULT_API_KEY.into());
        check("DHMAD_API_KEY", valid_api_key(&api_key));
        let secrets: Vec<SecretString> = var("DHMAD_WEBHOOK_SECRETS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| SecretString::from(s.to_owned()))
            .collect();
        check(
            "DHMAD_WEBHOOK_SECRETS",
            (!secrets.is_empty())
                .then_some(())
                .ok_or("is required (comma-separated secrets)".into()),
        );
        let seller_email = var("DHMAD_SELLER_EMAIL");
        if let Some(e) = &seller_email {
            check(
                "DHMAD_SELLER_EMAIL",
                crate::email::normalise(e)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            );
        }
        let admin_token = var("ADMIN_TOKEN");
        if let Some(t) = &admin_token {
            check(
                "ADMIN_TOKEN",
                (t.len() >= 16)
                    .then_some(())
                    .ok_or("must be at least 16 characters".into()),
            );
        }
        let metrics_token = var("METRICS_TOKEN");
        if let Some(t) = &metrics_token {
            check(
                "METRICS_TOKEN",
                (t.len() >= 16)
                    .then_some(())
                    .ok_or("must be at least 16 characters".into()),
            );
            // A scraper's token sits in its configuration; the back office's would go with it,
            // and `/metrics` would try guesses of it without the login's throttle.
            check(
                "METRICS_TOKEN",
                (admin_token.as_ref() != Some(t))
                    .then_some(())
                    .ok_or("must not be ADMIN_TOKEN".into()),
            );
        }
        let checkout_origin = var("DHMAD_CHECKOUT_ORIGIN");
        if let Some(o) = &checkout_origin {
            check("DHMAD_CHECKOUT_ORIGIN", http_url(o).map(|_| ()));
        }
        // Bounded: a timer set past what `Instant` holds panics in the task that sets it.
        let mut secs = |name: &str, default: u64| -> Duration {
            match var(name).map(|v| v.parse::<u64>()) {
                None => Duration::from_secs(default),
                Some(Ok(n)) if n > 0 && n <= MAX_SECS => Duration::from_secs(n),
                Some(_) => {
                    errors.push(format!(
                        "{name}: expected a positive number of seconds, at most {MAX_SECS} (a year)"
                    ));
                    Duration::from_secs(default)
                }
            }
        };
        let dhmad_timeout = secs("DHMAD_TIMEOUT_SECS", DEFAULT_DHMAD_TIMEOUT_SECS);
        let smtp_timeout = secs("SMTP_TIMEOUT_SECS", DEFAULT_SMTP_TIMEOUT_SECS);
        let budget_default = crate::budget::Limits::DHMAD_DEFAULT;
        let budget_window = secs("DHMAD_RATE_WINDOW_SECS", budget_default.window.as_secs());
        let e = EdgeLimits::default();
        let header_read_timeout = secs("HEADER_READ_TIMEOUT_SECS", e.header_read_timeout.as_secs());
        let d = JobIntervals::default();
        let jobs = JobIntervals {
            outbox: secs("OUTBOX_INTERVAL_SECS", d.outbox.as_secs()),
            reconcile: secs("RECONCILE_INTERVAL_SECS", d.reconcile.as_secs()),
            reconcile_after: secs("RECONCILE_AFTER_SECS", d.reconcile_after.as_secs()),
            session_sweep: secs("SESSION_SWEEP_INTERVAL_SECS", d.session_sweep.as_secs()),
            abandoned_after: secs("ABANDONED_ORDER_GRACE_SECS", d.abandoned_after.as_secs()),
        };
        // Bounded too: a connection cap past what a semaphore holds panics at start.
        let mut count = |name: &str, default: u64| -> u64 {
            match var(name).map(|v| v.parse::<u64>()) {
                None => default,
                Some(Ok(n)) if n > 0 && n <= MAX_COUNT => n,
                Some(_) => {
                    errors.push(format!(
                        "{name}: expected a positive whole number, at most {MAX_COUNT}"
                    ));
                    default
                }
            }
        };
        let max_connections = count("MAX_CONNECTIONS", e.max_connections as u64);

        let per_client = count(
            "MAX_CONNECTIONS_PER_CLIENT",
            e.max_connections_per_client as u64,
        );
        let checkout_per_minute =
            count("RATE_LIMIT_CHECKOUT_PER_MIN", e.checkout_per_minute.into());
        let actions_per_minute = count("RATE_LIMIT_ACTIONS_PER_MIN", e.actions_per_minute.into());
        let database_max_connections = match var("DATABASE_MAX_CONNECTIONS").map(|v| v.parse()) {
            None => DEFAULT_DATABASE_MAX_CONNECTIONS,
            Some(Ok(n)) if n > 0 && n <= MAX_DATABASE_CONNECTIONS => n,
            Some(_) => {
                errors.push(format!(
                    "DATABASE_MAX_CONNECTIONS: expected a positive whole number, at most \
                     {MAX_DATABASE_CONNECTIONS} (the server's own limit comes far before)"
                ));
                DEFAULT_DATABASE_MAX_CONNECTIONS
            }
        };
        let budget_calls = match var("DHMAD_RATE_LIMIT").map(|v| v.parse::<u32>()) {
            None => budget_default.calls,
            // A checkout takes its two calls at once: a budget of one would queue every
            // checkout for ever.
            Some(Ok(n)) if n != 1 && n <= MAX_DHMAD_RATE_LIMIT => n,
            Some(_) => {
                errors.push(format!(
                    "DHMAD_RATE_LIMIT: expected 0 (no budget) or a whole number from 2 (a \
                     checkout's two calls) to {MAX_DHMAD_RATE_LIMIT}"
                ));
                budget_default.calls
            }
        };
        // Bounded: the request deadline is a multiple of it (`request_deadline`).
        if dhmad_timeout.as_secs() > MAX_DHMAD_TIMEOUT_SECS {
            errors.push(format!(
                "DHMAD_TIMEOUT_SECS: expected at most {MAX_DHMAD_TIMEOUT_SECS} seconds"
            ));
        }
        if smtp_timeout.as_secs() > MAX_SMTP_TIMEOUT_SECS {
            errors.push(format!(
                "SMTP_TIMEOUT_SECS: at most {MAX_SMTP_TIMEOUT_SECS} (an e-mail job must end within its lease)"
            ));
        }
        let mut check = |name: &str, r: Result<(), String>| {
            if let Err(e) = r {
                errors.push(format!("{name}: {e}"));
            }
        };
        let client_ip_header = var("CLIENT_IP_HEADER").map(|h| h.to_ascii_lowercase());
        if let Some(h) = &client_ip_header {
            check(
                "CLIENT_IP_HEADER",
                axum::http::HeaderName::from_bytes(h.as_bytes())
                    .map(|_| ())
                    .map_err(|_| "not a valid header name".into()),
            );
        }
        let trusted_proxies = match var("TRUSTED_PROXIES").map(|t| parse_proxies(&t)) {
            None => e.trusted_proxies.clone(),
            Some(Ok(nets)) => nets,
            Some(Err(why)) => {
                check("TRUSTED_PROXIES", Err(why));
                e.trusted_proxies.clone()
            }
        };
        let smtp_url = var("SMTP_URL");
        if let Some(u) = &smtp_url {
            let ok = Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "smtp" | "smtps"));
            check(
                "SMTP_URL",
                ok.then_some(())
                    .ok_or("expected smtp://host:port or smtps://user:password@host".into())
                    .and_then(|()| crate::mail::check_smtp_url(u)),
            );
        }
        let mail_from = var("MAIL_FROM").unwrap_or_else(|| DEFAULT_MAIL_FROM.into());
        let static_dir =
            PathBuf::from(var("STATIC_DIR").unwrap_or_else(|| DEFAULT_STATIC_DIR.into()));
        let mail_from_address = mail_from
            .parse::<lettre::message::Mailbox>()
            .map(|m| m.email.to_string());
        check(
            "MAIL_FROM",
            mail_from_address
                .as_ref()
                .map(|_| ())
                .map_err(|e| format!("{e} (expected Name <address>)")),
        );
        let mail_from_address = mail_from_address.ok();
        let local_only = match var("LOCAL_ONLY").as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(_) => {
                check("LOCAL_ONLY", Err("expected true or false".into()));
                false
            }
        };
        let exposure = exposure::Exposure {
            api_key: &api_key,
            dhmad_api_base: dhmad_api_base.as_ref().ok(),
            public_base_url: public_base_url.as_ref().ok(),
            listen_addr: listen_addr.as_ref().ok().copied(),
            local_only,
            smtp_url: smtp_url.as_deref(),
            secrets: &secrets,
            admin_token: admin_token.as_deref(),
            seller_email: seller_email.as_deref(),
            checkout_origin: checkout_origin.as_deref(),
            mail_from: mail_from_address.as_deref(),
        };
        for (name, why) in exposure.refusals() {
            check(name, Err(why));
        }

        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        Ok(Config {
            database_url: SecretString::from(database_url.expect("checked above")),
            database_max_connections,
            listen_addr: listen_addr.expect("checked above"),
            public_base_url: public_base_url.expect("checked above"),
            dhmad_api_base: dhmad_api_base.expect("checked above"),
            dhmad_api_key: SecretString::from(api_key),
            webhook_secrets: secrets,
            seller_email,
            admin_token: admin_token.map(SecretString::from),
            metrics_token: metrics_token.map(SecretString::from),
            dhmad_checkout_origin: checkout_origin
                .map(|o| origin_of(&http_url(&o).expect("checked above"))),
            dhmad_timeout,
            request_timeout: None,
            dhmad_budget: crate::budget::Limits {
                calls: budget_calls,
                window: budget_window,
            },
            jobs,
            smtp_url: smtp_url.map(SecretString::from),
            smtp_timeout,
            mail_from,
            edge: EdgeLimits {
                max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
                max_connections_per_client: usize::try_from(per_client).unwrap_or(usize::MAX),
                header_read_timeout,
                checkout_per_minute: u32::try_from(checkout_per_minute).unwrap_or(u32::MAX),
                actions_per_minute: u32::try_from(actions_per_minute).unwrap_or(u32::MAX),
                callback_recheck: e.callback_recheck,
                client_ip_header,
                trusted_proxies,
            },
            static_dir,
        })
    }
}

fn parse_or<T>(
    v: &Option<String>,
    default: &str,
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<T, String> {
    f(v.as_deref().unwrap_or(default))
}

fn http_url(s: &str) -> Result<Url, String> {
    let u = Url::parse(s).map_err(|e| format!("{e} (expected an http(s) URL)"))?;
    match (u.scheme(), u.host_str()) {
        ("http" | "https", Some(_)) => Ok(u),
        _ => Err("expected an http(s) URL with a host".into()),
    }
}

fn valid_api_key(k: &str) -> Result<(), String> {
    let hex = k
        .strip_prefix("sk_live_")
        .or_else(|| k.strip_prefix("sk_sandbox_"));
    match hex {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(()),
        _ => Err("expected sk_live_ or sk_sandbox_ followed by 64 hex characters".into()),
    }
}
