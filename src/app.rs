//! Wiring: state, listener, HTTP server and background jobs, with graceful shutdown.

use std::{future::Future, net::SocketAddr, str::FromStr, time::Duration};

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    Connection, PgConnection, PgPool,
};
use tokio::net::TcpListener;

pub use crate::state::AppState;
use crate::{config::Config, db, http, jobs, server};

/// How long background jobs may take, once the server has drained, to finish the work they
/// hold (a DHMAD call with its retries, an e-mail): past it they are dropped, and their leases
/// make that work due again.
const JOBS_DRAIN: Duration = Duration::from_secs(30);

/// [`JOBS_DRAIN`], or longer when a timeout is raised past it, so that work under way at
/// shutdown ends with its outcome recorded: an e-mail's whole conversation (`SMTP_TIMEOUT_SECS`:
/// one cut after its message left, before the server's answer, is due again and may reach the
/// buyer twice), or two DHMAD calls (`DHMAD_TIMEOUT_SECS`: a deliver's read, then the deliver;
/// a checkout's two calls. One cut after DHMAD took it is read again after its lease, not sent
/// blind, but the merchant waits for that lease). A margin each for the database.
fn jobs_drain(config: &Config) -> Duration {
    let margin = Duration::from_secs(5);
    JOBS_DRAIN
        .max(config.smtp_timeout + margin)
        .max(config.dhmad_timeout * 2 + margin)
}

/// Connects to the database (lazily: the server starts even if Postgres is late; `/readyz`
/// tells the truth meanwhile). Every connection gets the bounded waits of `db::tx` as its
/// defaults, so single statements outside a transaction are bounded too.
pub fn connect(config: &Config) -> anyhow::Result<PgPool> {
    let options = with_bounded_waits(database(config)?);
    Ok(PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(db::ACQUIRE_TIMEOUT)
        // No ping before each use: it doubled the round trips of every request (and
        // `db::Pool` spares most of the one after each use). A connection
        // that died meanwhile fails its statement once (a 503), and the pool replaces it.
        .test_before_acquire(false)
        .connect_lazy_with(options))
}

/// `options` with the bounded waits of `db::tx` as the connection's defaults.
pub fn with_bounded_waits(options: PgConnectOptions) -> PgConnectOptions {
    options.options([
        ("lock_timeout", format!("{}ms", db::tx::LOCK_TIMEOUT_MS)),
        (
            "statement_timeout",
            format!("{}ms", db::tx::STATEMENT_TIMEOUT_MS),
        ),
    ])
}

fn database(config: &Config) -> anyhow::Result<PgConnectOptions> {
    PgConnectOptions::from_str(config.database_url.expose_secret())
        .context("DATABASE_URL is not a valid Postgres URL")
}

/// How long a migration waits for a lock before it is tried again: short, since every request
/// touching a table queues behind a change of that table waiting for its lock.
const MIGRATION_LOCK_WAIT: &str = "5s";
/// A TLS setting or certificate that does not fit: no wait mends it.
fn tls_refused(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

/// How long one connection attempt of `migrate` may take (a host that drops packets never
/// refuses).
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// How long `migrate` tries again while a lock it needs is held (another instance applying the
/// migrations: sqlx's advisory lock; a long transaction on a table a migration changes), or
/// while the database cannot be reached.
const MIGRATION_PATIENCE: Duration = Duration::from_secs(120);

/// Applies pending migrations on a connection of their own, without the requests' bounded
/// waits: an index built on a big table takes longer than a request's 8 s, and an instance
/// started beside another that was migrating gave up after 2 s and failed to start. A lock
/// wait past [`MIGRATION_LOCK_WAIT`] rolls the migration back, and it is tried again.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let options = database(config)?.options([
        ("lock_timeout", MIGRATION_LOCK_WAIT),
        ("statement_timeout", "0"),
    ]);
    // A database a newer release migrated is served as it is: an instance of the release
    // before (one restarting during a rolling deploy, or a rollback) refused to start, sqlx
    // finding versions it did not know. The project keeps each migration usable by the
    // release before it (`take_dhmad_budget`'s older signature, statuses added a deploy ahead).
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    let started = std::time::Instant::now();
    loop {
        // The database may be starting with us (a host's boot, a compose or Kubernetes
        // deploy): refused, starting up or silent, it is tried again for as long as a held
        // lock is, where exiting made a crash loop of every start before it was up.
        let connected = tokio::time::timeout(CONNECT_WAIT, PgConnection::connect_with(&options));
        let patient = started.elapsed() < MIGRATION_PATIENCE;
        let mut conn = match connected.await {
            Ok(Ok(conn)) => conn,
            // Not a TLS failure: a certificate or `sslmode` that does not fit stays so (rustls'
            // handshake failures come as invalid data).
            Ok(Err(e)) if patient && db::connection_lost(&e) && !tls_refused(&e) => {
                tracing::warn!(error = %e, "the database cannot be reached yet; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Ok(Err(e)) => return Err(e).context("connecting to apply migrations"),
            Err(_) if patient => {
                tracing::warn!("the database does not answer yet; trying again");
                continue;
            }
            Err(_) => {
                anyhow::bail!("connecting to apply migrations: no answer within {CONNECT_WAIT:?}")
            }
        };
        let applied = match migrator.run(&mut conn).await {
            Ok(()) => newer_migrations(&mut conn, &migrator)
                .await
                .map_err(Into::into),
            Err(e) => Err(e),
        };
        let _ = conn.close().await;
        match applied {
            Ok(newer) => {
                if !newer.is_empty() {
                    tracing::warn!(
                        ?newer,
                        "the database holds migrations of a newer release; serving it as it is"
                    );
                }
                break;
            }
            Err(e) if lock_not_available(&e) && started.elapsed() < MIGRATION_PATIENCE => {
                tracing::warn!(error = %e, "a lock the migrations need is held; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).context("applying migrations"),
        }
    }
    tracing::info!("migrations applied");
    Ok(())
}

/// Versions applied to the database that this binary does not know.
async fn newer_migrations(
    conn: &mut PgConnection,
    migrator: &sqlx::migrate::Migrator,
) -> sqlx::Result<Vec<i64>> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(conn)
            .await?;
    Ok(applied
        .into_iter()
        .filter(|v| !migrator.iter().any(|m| m.version == *v))
        .collect())
}

/// A lock wait that ran out (SQLSTATE 55P03).
fn lock_not_available(e: &sqlx::migrate::MigrateError) -> bool {
    use sqlx::migrate::MigrateError as M;
    match e {
        M::Execute(e) | M::ExecuteMigration(e, _) => e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "55P03"),
        _ => false,
    }
}

/// A bound, not yet running service. Binding happens in `build`, so tests can use port 0 and
/// read the port before anything runs.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = connect(&config)?;
        Self::build_with_pool(config, pool).await
    }

    pub async fn build_with_pool(config: Config, pool: PgPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {} (LISTEN_ADDR)", config.listen_addr))?;
        let local_addr = listener.local_addr()?;
        let mut config = config;
        // Port 0 in PUBLIC_BASE_URL means "the port we bound" (tests bind port 0, and the
        // callback URL sent to DHMAD must name the real one).
        if config.public_base_url.port() == Some(0) {
            let _ = config.public_base_url.set_port(Some(local_addr.port()));
        }
        let state = AppState::new(config, pool)?;
        Ok(Self {
            listener,
            local_addr,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://host:port` of the bound listener.
    pub fn address(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish,
    /// and waits for the background jobs to finish the work in hand (they take no new work
    /// from the moment `shutdown` resolves), at most [`jobs_drain`].
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Before the first request is read. A database that is down must not keep the service
        // from starting (`/readyz` says it is not ready): the queue worker sizes it later.
        let budget_ready = match crate::budget::prepare(&self.state).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "could not size DHMAD's call budget yet; will retry");
                false
            }
        };
        let token = self.state.shutdown.clone();
        let tracker = jobs::spawn_all(self.state.clone(), token.clone(), budget_ready);
        let router = http::router(self.state.clone());
        tracing::info!(addr = %self.local_addr, "storefront listening");
        let stop = token.clone();
        let limits = self.state.config.edge.clone();
        server::serve(self.listener, router, &limits, async move {
            shutdown.await;
            tracing::info!("shutting down");
            stop.cancel();
        })
        .await;
        token.cancel();
        tracker.close();
        // The jobs stopped taking work when shutdown began; what they hold finishes here.
        let drain = jobs_drain(&self.state.config);
        if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
            tracing::warn!(
                "background jobs still running after the drain period; stopping them (their \
                 leases make the work due again)"
            );
        }
        self.state.flush_call_log().await;
        Ok(())
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// Ctrl-C, or SIGTERM (what container runtimes send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jobs_drain_outlasts_an_e_mails_conversation_and_two_dhmad_calls() {
        let mut config = Config::from_lookup(|k| match k {
            "DATABASE_URL" => Some("postgres://u@h/db".into()),
            "DHMAD_WEBHOOK_SECRETS" => Some("s".into()),
            _ => None,
        })
        .unwrap();
        config.smtp_timeout = Duration::from_secs(10);
        assert_eq!(jobs_drain(&config), JOBS_DRAIN);
        config.smtp_timeout = Duration::from_secs(90);
        assert_eq!(jobs_drain(&config), Duration::from_secs(95));
        config.dhmad_timeout = Duration::from_secs(60);
        assert_eq!(jobs_drain(&config), Duration::from_secs(125));
    }
}
