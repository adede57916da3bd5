//! `dhmad-sandbox`: reads `SANDBOX_*` from the environment and serves until Ctrl-C.

use dhmad_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,dhmad_sandbox=info")),
        )
        .init();
    let config = SandboxConfig::from_env()?;
    tracing::info!(
        ?config,
        "starting the DHMAD sandbox (state is in memory: a restart clears it)"
    );
    let sandbox = Sandbox::start(config).await?;
    print_banner(&sandbox);
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    sandbox.shutdown().await;
    Ok(())
}

// The banner goes to stdout on purpose: it is for the person who started the binary, whatever
// `RUST_LOG` filters out of the logs.
#[allow(clippy::print_stdout)]
fn print_banner(sandbox: &SandboxHandle) {
    println!(
        "DHMAD sandbox on {} (API {})",
        sandbox.base_url(),
        sandbox.api_base()
    );
}
