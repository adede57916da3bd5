//! `storefront [serve|migrate|reconcile|healthcheck]` — `serve` (the default) applies pending
//! migrations, then serves until SIGTERM/Ctrl-C.
// The CLI's own output (usage, the reconcile report) is what it is for; the service logs
// through `tracing`.
#![allow(clippy::print_stdout)]

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use storefront::{app, jobs, telemetry, Application, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USAGE: &str = "usage: storefront [serve|migrate|reconcile|healthcheck]";

#[tokio::main]
async fn main() -> ExitCode {
    let cmd = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    if cmd == "healthcheck" {
        return healthcheck().await;
    }
    telemetry::init();
    let result = match cmd.as_str() {
        "serve" => serve().await,
        "migrate" => migrate().await.map(|_| ()),
        "reconcile" => reconcile().await,
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(anyhow::anyhow!("unknown command {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storefront: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate() -> anyhow::Result<(Config, sqlx::PgPool)> {
    let config = Config::from_env()?;
    let pool = app::connect(&config)?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .context("applying migrations")?;
    tracing::info!("migrations applied");
    Ok((config, pool))
}

async fn serve() -> anyhow::Result<()> {
    let (config, pool) = migrate().await?;
    tracing::info!(?config, "starting");
    Application::build_with_pool(config, pool)
        .await?
        .run_until_stopped()
        .await
}

/// One reconciliation pass over every open order, for operators and cron.
async fn reconcile() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let pool = app::connect(&config)?;
    let state = storefront::state::AppState::new(config, pool)?;
    let report = jobs::reconciler::run_once(&state, Duration::ZERO).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// For container health checks: `GET /readyz` on LISTEN_ADDR; exit 0 when it answers 200.
/// Needs no other configuration and no HTTP client library.
async fn healthcheck() -> ExitCode {
    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
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
