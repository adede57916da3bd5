//! `--profile`: where the storefront's CPU goes under ingest at c = 8, apart from the figures:
//! its user and system time per event, and a `perf record` profile when perf works here.
//! (Round trips and statements per request are counted in every run, see `mirror`.)

use std::{path::Path, time::Duration};

use tokio::process::Command;

use crate::{
    report::Results,
    scenarios::{self, Ctx},
};

/// Whether `perf` can sample here (it needs a kernel that allows it; no hardware counters
/// are needed, the software `cpu-clock` event is used).
pub async fn perf_works() -> bool {
    Command::new("perf")
        .args(["stat", "-e", "task-clock", "true"])
        .output()
        .await
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `perf record` of process `pid`, running until the returned child is stopped.
pub fn perf_record(pid: u32, out: &Path) -> anyhow::Result<tokio::process::Child> {
    Ok(Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-F", "999", "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

/// Stops a `perf record` with SIGINT (so it writes its file) and waits for it.
pub async fn perf_stop(mut child: tokio::process::Child) -> anyhow::Result<()> {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    Ok(())
}

/// `perf report` lines, flat (self time), sorted by `sort`, at most `limit` of them; only the
/// samples of `dso` when given (percentages then of those samples).
pub async fn perf_report(
    data: &Path,
    sort: &str,
    dso: Option<&str>,
    limit: usize,
) -> anyhow::Result<Vec<String>> {
    let mut cmd = Command::new("perf");
    cmd.args([
        "report",
        "--stdio",
        "--no-children",
        "--percent-limit",
        "0.3",
    ])
    .arg("--sort")
    .arg(sort)
    .arg("-i")
    .arg(data);
    if let Some(d) = dso {
        cmd.args(["--percentage", "relative", "--dsos", d]);
    }
    let out = cmd.output().await?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .take(limit)
        .map(|l| l.trim_end().to_owned())
        .collect())
}

/// A CPU profile of the storefront under ingest at c = 8.
pub async fn run(ctx: &mut Ctx, results: &mut Results) -> anyhow::Result<()> {
    cpu_profile(ctx, results).await
}

async fn cpu_profile(ctx: &mut Ctx, results: &mut Results) -> anyhow::Result<()> {
    let n = ctx.plan.profile_events;
    let pid = ctx.storefront.pid;
    let perf = perf_works().await;
    let data = std::path::PathBuf::from("target/bench/perf-ingest-c8.data");
    let recorder = if perf {
        Some(perf_record(pid, &data)?)
    } else {
        None
    };
    // perf needs a moment to attach.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu0 = ctx.storefront.cpu()?;
    let rate = scenarios::unique_events(ctx, 8, n).await;
    let cpu = ctx.storefront.cpu()?.since(cpu0);
    if let Some(r) = recorder {
        perf_stop(r).await?;
    }
    let rate = rate?.0.rate();
    let total = (cpu.user + cpu.system).max(1) as f64;
    results.profile.push(format!(
        "- ingest at c = 8 under the profiler: {n} events at {rate:.0}/s; storefront CPU {:.0} µs per event, {:.0} % of it in the kernel (system time)",
        total * 10_000.0 / n as f64,
        cpu.system as f64 * 100.0 / total
    ));
    if !perf {
        results
            .profile
            .push("- `perf` is not usable here: no CPU profile".into());
        return Ok(());
    }
    let dsos = perf_report(&data, "dso", None, 8).await?;
    let syms = perf_report(&data, "dso,sym", None, 60).await?;
    let ours = perf_report(&data, "sym", Some("storefront"), 60).await?;
    let report = Path::new("target/bench/perf-ingest-c8.txt");
    std::fs::write(
        report,
        format!(
            "# perf record -e cpu-clock -F 999 -p <storefront>, ingest at c = 8\n\n## by binary\n{}\n\n## by symbol\n{}\n\n## the storefront binary's own symbols (% of its samples)\n{}\n",
            dsos.join("\n"),
            syms.join("\n"),
            ours.join("\n")
        ),
    )?;
    results.profile.push(format!(
        "- perf (cpu-clock samples of the storefront during that ingest; full report in `{}`), by binary:\n\n```\n{}\n```\n\n  top symbols:\n\n```\n{}\n```\n\n  top symbols of the storefront binary itself (% of its own samples):\n\n```\n{}\n```",
        report.display(),
        dsos.join("\n"),
        syms.iter().take(20).cloned().collect::<Vec<_>>().join("\n"),
        ours.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    ));
    Ok(())
}
