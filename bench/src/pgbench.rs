//! The anchors' runner: pgbench with one thread (`-j 1`, like the load generator), the
//! extended protocol with prepared statements (`-M prepared`, like sqlx), the storefront's
//! connection options (`PGOPTIONS`), and scripts written by `mirror` from the storefront's own
//! statements.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context};
use tokio::process::Command;

/// Runs pgbench against one database.
pub struct PgBench {
    conninfo: String,
    dir: PathBuf,
}

/// What one pgbench run reported.
#[derive(Debug, Clone, Copy)]
pub struct PgRun {
    /// Transactions per second, without the initial connection time.
    pub tps: f64,
}

impl PgBench {
    pub fn new(conninfo: &str, dir: &Path) -> Self {
        Self {
            conninfo: conninfo.to_owned(),
            dir: dir.to_owned(),
        }
    }

    /// Writes a script file next to the run's logs (kept, to be read or rerun by hand).
    pub fn script(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(format!("{name}.pgbench.sql"));
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// `clients × per_client` transactions of `script`; fails unless every one completed.
    pub async fn run(
        &self,
        script: &Path,
        clients: usize,
        per_client: usize,
        defines: &[(String, String)],
        options: &str,
        cap: Duration,
    ) -> anyhow::Result<PgRun> {
        let mut cmd = Command::new("pgbench");
        cmd.args(["-n", "-M", "prepared", "-j", "1"])
            .arg("-c")
            .arg(clients.to_string())
            .arg("-t")
            .arg(per_client.to_string())
            .arg("-f")
            .arg(script);
        for (k, v) in defines {
            cmd.arg("-D").arg(format!("{k}={v}"));
        }
        cmd.arg(&self.conninfo)
            .env("PGOPTIONS", options)
            .kill_on_drop(true);
        let out = tokio::time::timeout(cap, cmd.output())
            .await
            .context("pgbench did not finish within the time cap")?
            .context("cannot run pgbench (is it installed? scripts/bench installs it)")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let expected = (clients * per_client) as u64;
        let processed = text
            .lines()
            .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
            .and_then(|v| v.split('/').next())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let failed = text
            .lines()
            .find_map(|l| l.strip_prefix("number of failed transactions: "))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let tps = text
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok());
        match (out.status.success(), processed, tps) {
            (true, Some(p), Some(tps)) if p == expected && failed == 0 => Ok(PgRun { tps }),
            _ => bail!(
                "pgbench {}: expected {expected} transactions; it said:\n{}",
                script.display(),
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .rev()
                    .take(12)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }
}
