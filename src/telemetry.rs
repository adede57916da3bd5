//! Logging setup: a filter in `RUST_LOG` syntax (default [`DEFAULT_FILTER`]), text or JSON
//! lines (`LOG_FORMAT=json`, for log shippers) on stdout. Colours only when stdout is a
//! terminal, so files, pipes and container logs get plain text.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

/// What is logged when `RUST_LOG` is unset: one access line per request, the service's own
/// events, and SQLx only when something is wrong.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=info";

/// Installs the global subscriber once; later calls are no-ops. An invalid `filter` falls back
/// to [`DEFAULT_FILTER`], with a warning once logging works.
pub fn init(filter: Option<&str>, json: bool) {
    let (filter, bad) = match filter.map(str::trim).filter(|f| !f.is_empty()) {
        None => (EnvFilter::new(DEFAULT_FILTER), None),
        Some(f) => match EnvFilter::try_new(f) {
            Ok(parsed) => (parsed, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some(format!("{f:?}: {e}"))),
        },
    };
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(fmt::layer().json().with_current_span(true))
            .try_init()
    } else {
        let layer = fmt::layer().with_target(false);
        // Left as is on a terminal, where tracing-subscriber still honours NO_COLOR.
        let layer = if std::io::stdout().is_terminal() {
            layer
        } else {
            layer.with_ansi(false)
        };
        registry.with(layer).try_init()
    };
    if let (Ok(()), Some(bad)) = (installed, bad) {
        tracing::warn!("RUST_LOG {bad}; logging with the default filter {DEFAULT_FILTER:?}");
    }
}
