//! `dhmad-sandbox`: parses the command line and `SANDBOX_*` (see `--help`) and serves until
//! Ctrl-C. Failures print one line on stderr and exit non-zero.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use dhmad_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    // `--help` and `--version` exit here, before anything is bound.
    let config = match cli::Cli::parse().into_config() {
        Ok(c) => c,
        Err(e) => return fail(e, 2),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,dhmad_sandbox=info")),
        )
        // Colours on a terminal only: piped into a file or a log shipper they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, 1),
    }
}

async fn run(config: SandboxConfig) -> anyhow::Result<()> {
    tracing::info!(
        ?config,
        "starting the DHMAD sandbox (state is in memory: a restart clears it)"
    );
    let sandbox = Sandbox::start(config).await?;
    // Listening for the signals before the banner says the sandbox serves: a SIGTERM sent as
    // soon as it appears found no handler yet and killed the process.
    let stop = stop_signal()?;
    print_banner(&sandbox);
    stop.await;
    tracing::info!("shutting down");
    sandbox.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM: what `docker compose stop` sends, and a container's first process that
/// does not handle it ignores it (the runtime then kills it after its grace period). The
/// handlers are installed here, at once; the future resolves on the first signal.
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut int, mut term) = (
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
    );
    Ok(async move {
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// One line for the person at the terminal, not a backtrace.
fn fail(e: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("dhmad-sandbox: {e}");
    ExitCode::from(code)
}

// The banner goes to stdout on purpose: it is for the person who started the binary, whatever
// `RUST_LOG` filters out of the logs.
#[allow(clippy::print_stdout)]
fn print_banner(sandbox: &SandboxHandle) {
    // The bound address too: with port 0 (or a public URL naming another host) the URL alone
    // does not say where to connect.
    println!(
        "DHMAD sandbox on {} (API {}; listening on {})",
        sandbox.base_url(),
        sandbox.api_base(),
        sandbox.local_addr()
    );
}
