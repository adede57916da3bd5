//! `storefront [serve|migrate|reconcile|healthcheck]` — `serve` (the default) binds, applies
//! pending migrations, then serves until SIGTERM/Ctrl-C. Settings come from flags and the
//! environment (`storefront --help`). A failure is one line on stderr and a non-zero exit: 2
//! for invalid settings (as clap does for bad usage), 1 for anything else.
// The CLI's own output (the reconcile report) is what it is for; the service logs through
// `tracing`.
#![allow(clippy::print_stdout)]

mod cli;

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use storefront::{app, jobs, Application, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use cli::{Run, Service};

#[tokio::main]
async fn main() -> ExitCode {
    // `--help` and `--version` print and exit here, before anything is bound or read.
    let run = match cli::Cli::parse().into_run() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("storefront: {e}");
            return ExitCode::from(2);
        }
    };
    let (service, config, logs) = match run {
        Run::Healthcheck(addr) => return healthcheck(&addr).await,
        Run::Service(service, config, logs) => (service, *config, logs),
    };
    logs.init();
    let result = match service {
        Service::Serve => serve(config).await,
        Service::Migrate => app::migrate(&config).await,
        Service::Reconcile => reconcile(config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storefront: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // The default is the source tree's folder, where the binary was built: a binary copied
    // elsewhere served every page without its stylesheet, and said nothing.
    let stylesheet = config.static_dir.join("app.css");
    if !stylesheet.is_file() {
        anyhow::bail!(
            "STATIC_DIR: no app.css in {} (set it to the release's static/ folder)",
            config.static_dir.display()
        );
    }
    let mut config = config;
    storefront::server::open_files::fit(&mut config.edge, config.database_max_connections);
    let pool = app::connect(&config)?;
    // Bound first: a taken port fails at once, before any database work.
    let app = Application::build_with_pool(config, pool).await?;
    tracing::info!(config = ?app.state().config, "starting");
    // One listener from here to the end: a signal between the migrations and the server's
    // loop is kept for it (a second listener, made later, would not see it, and the handler
    // installed here has replaced the default that ended the process).
    let mut stop = Box::pin(app::shutdown_signal());
    tokio::select! {
        // Polled first, so its handler is in place before the migrations say anything.
        biased;
        // Waiting for the database, or for a lock the migrations need: a stop ends it (a
        // migration under way is rolled back with its connection). Without a handler the
        // kernel ignores SIGTERM for PID 1, the container's storefront, until SIGKILL.
        () = &mut stop => {
            tracing::info!("stopped before serving: the migrations did not run");
            return Ok(());
        }
        migrated = app::migrate(&app.state().config) => migrated?,
    }
    app.run_until(stop).await
}

/// One reconciliation pass (a batch of open orders, oldest news first), for operators and
/// cron. It spends DHMAD's budget as background work, after the buyers in line, as the back
/// office's "Reconcile" does.
async fn reconcile(config: Config) -> anyhow::Result<()> {
    let pool = app::connect(&config)?;
    let state = storefront::state::AppState::new(config, pool)?;
    storefront::budget::prepare_for_a_pass(&state).await?;
    let report = jobs::reconciler::run_once(&state.for_background(), Duration::ZERO).await;
    // Also when the pass failed: the calls it made before are the merchant's record.
    state.flush_call_log().await;
    println!("{}", serde_json::to_string(&report?)?);
    Ok(())
}

/// An error and its causes on one line, `outer: inner: …`, with operating-system errors in
/// words (`address already in use`) rather than as `Address in use (os error 98)`.
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|cause| match cause.downcast_ref::<std::io::Error>() {
            Some(io) => io_words(io),
            None => cause.to_string(),
        })
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

fn io_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse => "address already in use".into(),
        ErrorKind::AddrNotAvailable => "no such address on this machine".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_owned(),
                None => text,
            }
        }
    }
}

/// For container health checks: `GET /readyz` on `addr`; exit 0 when it answers 200.
/// Needs no other configuration and no HTTP client library.
async fn healthcheck(addr: &str) -> ExitCode {
    let addr = addr.replace("0.0.0.0", "127.0.0.1");
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        s.write_all(format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf).into_owned())
    };
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(resp)) if resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200") => {
            ExitCode::SUCCESS
        }
        Ok(Ok(resp)) => {
            eprintln!("not ready: {}", resp.lines().next().unwrap_or(""));
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("cannot reach {addr}: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("no answer from {addr}");
            ExitCode::FAILURE
        }
    }
}
