//! The throw-away world of one run: a database `bench_<pid>`, the sandbox and the storefront as
//! child processes on free ports, and what `/proc` says about them.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use sqlx::{postgres::PgPoolOptions, Executor, PgPool};
use tokio::process::{Child, Command};

use crate::cpu::CpuTicks;

/// The run's database, dropped at the end whatever happened.
pub struct Db {
    admin_url: String,
    pub name: String,
    /// What the storefront and pgbench connect with.
    pub url: String,
    pub pool: PgPool,
}

impl Db {
    /// Creates `bench_<pid><suffix>` on the server of `base` (`postgres://user@host:port`).
    pub async fn create(base: &str, sslmode: Option<&str>, suffix: &str) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/');
        let admin_url = format!("{base}/postgres");
        let name = format!("bench_{}{suffix}", std::process::id());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .with_context(|| format!("cannot connect to {admin_url}"))?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .with_context(|| format!("creating database {name}"))?;
        admin.close().await;
        let url = match sslmode {
            Some(m) => format!("{base}/{name}?sslmode={m}"),
            None => format!("{base}/{name}"),
        };
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .with_context(|| format!("cannot connect to {name}"))?;
        Ok(Self {
            admin_url,
            name,
            url,
            pool,
        })
    }

    /// Drops `bench_<pid><suffix>` if a run left it (interrupted before dropping it itself).
    pub async fn drop_leftover(base: &str, suffix: &str) -> anyhow::Result<()> {
        let admin_url = format!("{}/postgres", base.trim_end_matches('/'));
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await?;
        let name = format!("bench_{}{suffix}", std::process::id());
        admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await?;
        admin.close().await;
        Ok(())
    }

    pub async fn drop_database(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.admin_url)
            .await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await?;
        admin.close().await;
        Ok(())
    }
}

/// A free TCP port on loopback (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A child process with its log file. Killed if dropped while running (an interrupted run).
pub struct Service {
    pub name: String,
    child: Child,
    pub pid: u32,
    pub log: PathBuf,
    pub started: Instant,
}

impl Service {
    pub fn spawn(
        name: &str,
        bin: &Path,
        args: &[&str],
        env: &[(String, String)],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env_clear()
            .envs(std::env::var("PATH").map(|p| ("PATH".to_owned(), p)))
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("child has no pid")?;
        Ok(Self {
            name: name.to_owned(),
            child,
            pid,
            log,
            started,
        })
    }

    /// Polls `url` until it answers 200; returns the time since the process was started.
    pub async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        url: &str,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = http.get(url).send().await {
                if r.status() == reqwest::StatusCode::OK {
                    return Ok(self.started.elapsed());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before {url} answered; see {}",
                    self.name,
                    self.log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer {url} within {timeout:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Runs to completion (a one-shot command such as `storefront migrate`).
    pub async fn wait_success(mut self) -> anyhow::Result<()> {
        let status = self.child.wait().await?;
        if !status.success() {
            bail!(
                "{} failed ({status}); see {}",
                self.name,
                self.log.display()
            );
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(r) => {
                r?;
            }
            Err(_) => {
                self.child.start_kill()?;
                self.child.wait().await?;
            }
        }
        Ok(())
    }

    pub fn memory(&self) -> anyhow::Result<Memory> {
        Memory::of(self.pid)
    }

    pub fn cpu(&self) -> anyhow::Result<CpuTicks> {
        CpuTicks::of(self.pid)
    }
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(Self {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        })
    }
}

/// Samples a process's `VmRSS` every 20 ms while a load runs; the peak seen.
pub struct RssSampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut peak = 0;
            loop {
                if let Ok(m) = Memory::of(pid) {
                    peak = peak.max(m.rss_kib);
                }
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
            peak
        });
        Self { stop, task }
    }

    pub async fn finish(self) -> u64 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(0)
    }
}
