//! Statistics, the machine, and the results as a Markdown table.

use std::{fmt::Write as _, time::Duration};

/// Median of `v` (mean of the two middle values for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if !s.len().is_multiple_of(2) {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// The `p`-th percentile (nearest rank) of durations, in milliseconds.
pub fn percentile_ms(v: &[Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1].as_secs_f64() * 1000.0
}

/// `1234.5` → `1,235`.
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (k, ch) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

pub fn list(v: &[f64], f: impl Fn(f64) -> String) -> String {
    v.iter().map(|x| f(*x)).collect::<Vec<_>>().join(" / ")
}

/// One line of the results table.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub figure: String,
    pub c: String,
    pub ours: String,
    pub anchor: String,
    pub ratio: String,
    pub target: String,
    /// `met`, `not met`, `—` (no target), or why there is no figure.
    pub verdict: String,
    /// Each repetition's raw figures.
    pub raw: String,
}

/// The medians behind one paired row, for what is computed from several figures.
#[derive(Debug, Clone)]
pub struct Rates {
    pub figure: String,
    pub c: usize,
    pub ours: f64,
    pub anchor: f64,
    pub target: Option<f64>,
}

/// Everything a run found.
#[derive(Debug, Default)]
pub struct Results {
    pub rows: Vec<Row>,
    /// The medians of every paired row reported.
    pub rates: Vec<Rates>,
    /// What was counted to show that every request did what it should.
    pub checks: Vec<String>,
    /// Failures: figures that could not be reported.
    pub failures: Vec<String>,
    /// CPU of the storefront per request, round trips, perf.
    pub profile: Vec<String>,
}

impl Results {
    pub fn fail(&mut self, figure: &str, c: &str, e: &anyhow::Error) {
        self.failures.push(format!("{figure} (c = {c}): {e:#}"));
        self.rows.push(Row {
            figure: figure.into(),
            c: c.into(),
            verdict: "no figure: check failed (see below)".into(),
            ..Row::default()
        });
    }
}

/// Where the run happened.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub mem_total: String,
    pub kernel: String,
    pub postgres: String,
    pub db_tls: String,
    pub load_start: String,
    pub load_end: String,
    pub other_backends_start: i64,
    pub other_backends_end: i64,
    pub commit: String,
    pub date: String,
}

impl Machine {
    pub fn probe() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = read("/proc/meminfo");
        let mem_total = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        let commit = std::process::Command::new("git")
            .args(["describe", "--always", "--dirty", "--abbrev=10"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| format!("`{}`", String::from_utf8_lossy(&o.stdout).trim()))
            .unwrap_or_else(|| "unknown".into());
        let now = time::OffsetDateTime::now_utc();
        Self {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu,
            mem_total,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_start: loadavg(),
            commit,
            date: dhmad::iso::format(now),
            ..Self::default()
        }
    }
}

/// `/proc/loadavg`'s 1, 5 and 15-minute averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The results as Markdown: the table, the raw figures, the checks, the machine.
pub fn markdown(r: &Results, m: &Machine, mode: &str, took: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Run of {} ({mode}, {:.0} s), code: {}.\n",
        m.date,
        took.as_secs_f64(),
        m.commit
    );
    let _ = writeln!(
        s,
        "| figure | c | ours | anchor (same run) | ours / anchor | target | met? |\n|---|---|---|---|---|---|---|"
    );
    for row in &r.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.figure, row.c, row.ours, row.anchor, row.ratio, row.target, row.verdict
        );
    }
    let _ = writeln!(
        s,
        "\nRaw figures, one per repetition in run order (ours; anchor):\n"
    );
    for row in r.rows.iter().filter(|r| !r.raw.is_empty()) {
        let _ = writeln!(s, "- {} (c = {}): {}", row.figure, row.c, row.raw);
    }
    if !r.failures.is_empty() {
        let _ = writeln!(s, "\nFigures not reported (a check failed):\n");
        for f in &r.failures {
            let _ = writeln!(s, "- {f}");
        }
    }
    let _ = writeln!(s, "\nChecks made before each figure was reported:\n");
    for c in merge_repetitions(&r.checks) {
        let _ = writeln!(s, "- {c}");
    }
    if !r.profile.is_empty() {
        let _ = writeln!(s, "\nProfile:\n");
        for p in &r.profile {
            let _ = writeln!(s, "{p}");
        }
    }
    let _ = writeln!(
        s,
        "\nMachine: {} CPUs ({}), {} RAM, Linux {}; {}; connection to Postgres: {}.",
        m.nproc, m.cpu, m.mem_total, m.kernel, m.postgres, m.db_tls
    );
    let _ = writeln!(
        s,
        "Load: load average (1/5/15 min) {} at the start, {} at the end; other client \
         connections to the Postgres server: {} at the start, {} at the end.",
        m.load_start, m.load_end, m.other_backends_start, m.other_backends_end
    );
    s
}

/// Lines that differ only by their `rep N` become one line saying how many repetitions passed.
fn merge_repetitions(lines: &[String]) -> Vec<String> {
    let mut merged: Vec<(String, usize)> = Vec::new();
    for line in lines {
        let key = match line.find(", rep ") {
            Some(at) => {
                let rest = &line[at + 6..];
                let digits = rest.chars().take_while(char::is_ascii_digit).count();
                format!("{}, @REPS@{}", &line[..at], &rest[digits..])
            }
            None => line.clone(),
        };
        match merged.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => merged.push((key, 1)),
        }
    }
    merged
        .into_iter()
        .map(|(k, n)| {
            let reps = if n == 1 {
                "1 repetition".to_owned()
            } else {
                format!("{n} repetitions")
            };
            k.replace("@REPS@", &reps)
        })
        .collect()
}

/// Replaces what lies between the two markers of `doc` with `section`.
pub fn splice(doc: &str, section: &str) -> Option<String> {
    const START: &str = "<!-- bench:results:start -->";
    const END: &str = "<!-- bench:results:end -->";
    let a = doc.find(START)? + START.len();
    let b = doc[a..].find(END)? + a;
    Some(format!(
        "{}\n{}\n{}",
        &doc[..a],
        section.trim_end(),
        &doc[b..]
    ))
}
