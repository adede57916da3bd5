//! The figures, each measured side by side with its anchor: repetitions alternate which side
//! runs first, and every side's work is counted in the database before its figure counts.
//!
//! Shared here: the plan, the context, and how a pair of sides becomes a row; each figure in
//! its own module.

mod checkout;
mod cpu;
mod duplicates;
mod ingest;
mod reads;

pub use checkout::checkout;
pub(crate) use checkout::checkout_ours;
pub(super) use cpu::Cpu;
pub use duplicates::{duplicate_events, duplicates};
pub(crate) use ingest::{check_applied, post_webhooks};
pub use ingest::{ingest, unique_events};
pub use reads::{read_pages, reads};

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{bail, Context};
use sqlx::PgPool;

use crate::{
    cpu::Parties,
    env::Service,
    events::Webhooks,
    mirror::Mirror,
    pgbench::PgBench,
    report::{list, median, thousands, Rates, Results, Row},
};

/// How much of everything a run does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: &'static str,
    pub reps: usize,
    /// (concurrency, events per side and repetition)
    pub ingest: Vec<(usize, usize)>,
    pub duplicates: Vec<(usize, usize)>,
    pub read_c: usize,
    pub json_n: usize,
    pub page_n: usize,
    pub checkout_n: usize,
    pub ready_reps: usize,
    /// Requests sent before the first measured round of a kind, per concurrency.
    pub warm: usize,
    /// No single round may take longer.
    pub cap: Duration,
    pub profile_events: usize,
}

impl Plan {
    pub fn full() -> Self {
        Self {
            mode: "full",
            reps: 3,
            ingest: vec![(1, 1200), (8, 6000), (32, 6400)],
            duplicates: vec![(8, 12_000), (32, 12_800)],
            read_c: 8,
            json_n: 24_000,
            page_n: 9600,
            checkout_n: 200,
            ready_reps: 3,
            warm: 300,
            cap: Duration::from_secs(90),
            profile_events: 4000,
        }
    }

    pub fn quick() -> Self {
        Self {
            mode: "quick",
            reps: 1,
            ingest: vec![(1, 200), (8, 800), (32, 960)],
            duplicates: vec![(8, 1600), (32, 1600)],
            read_c: 8,
            json_n: 3200,
            page_n: 1600,
            checkout_n: 30,
            ready_reps: 1,
            warm: 64,
            cap: Duration::from_secs(60),
            profile_events: 800,
        }
    }

    /// Orders the run consumes (each unique event pays one seeded order).
    pub fn orders_needed(&self, profile: bool) -> u64 {
        let rounds: usize = self.ingest.iter().map(|(_, n)| n).sum::<usize>() * 2 * self.reps;
        let warm: usize = self.ingest.iter().map(|(c, _)| self.warm + c * 2).sum();
        let prof = if profile { self.profile_events } else { 0 };
        // The capture of the anchors' statements: warm-up, one event, round-trip counts.
        let capture = 110;
        (rounds + warm + prof + capture) as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Anchor,
}

/// Alternate which side goes first, so a drift in the machine's load hits both alike.
fn sides(rep: usize) -> [Side; 2] {
    if rep.is_multiple_of(2) {
        [Side::Ours, Side::Anchor]
    } else {
        [Side::Anchor, Side::Ours]
    }
}

/// A pgbench script written from the storefront's statements for one kind of request.
#[derive(Debug, Clone, Default)]
pub struct Anchor {
    pub path: PathBuf,
    pub mirror: Mirror,
}

impl Anchor {
    /// The script's own variables, then the run's.
    fn defines(&self, run: &[(&str, String)]) -> Vec<(String, String)> {
        self.mirror
            .defines
            .iter()
            .cloned()
            .chain(run.iter().map(|(k, v)| ((*k).to_owned(), v.clone())))
            .collect()
    }

    pub(crate) fn options(&self) -> String {
        self.mirror.options.join(" ")
    }
}

/// The anchors of the paired figures, captured from the storefront at the start of the run.
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    pub ingest: Anchor,
    pub duplicate: Anchor,
    pub order_json: Anchor,
    pub order_page: Anchor,
}

/// The run's world, as the figures need it.
pub struct Ctx {
    pub plan: Plan,
    pub http: reqwest::Client,
    pub pool: PgPool,
    pub pg: PgBench,
    pub anchors: Anchors,
    pub storefront: Service,
    /// `http://127.0.0.1:port` of the storefront.
    pub base: String,
    pub webhooks: Arc<Webhooks>,
    pub dhmad: dhmad::Client,
    pub callback_url: String,
    /// Next seeded order not used yet, and the last one seeded.
    pub next: u64,
    pub seeded: u64,
    /// Highest `VmRSS` seen while a c = 32 load ran, KiB.
    pub rss_peak_c32_kib: u64,
}

impl Ctx {
    /// The storefront's address, for the load's own connections (from `base`, which the
    /// capture points at a storefront of its own for a while).
    pub fn addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        let host_port = self.base.trim_start_matches("http://");
        host_port
            .parse()
            .with_context(|| format!("the storefront's address {host_port}"))
    }

    /// `n` fresh seeded orders, `lo..=hi`.
    pub fn take(&mut self, n: usize) -> anyhow::Result<(u64, u64)> {
        let lo = self.next;
        let hi = lo + n as u64 - 1;
        if hi > self.seeded {
            bail!(
                "the run needs more seeded orders than planned ({hi} > {})",
                self.seeded
            );
        }
        self.next = hi + 1;
        Ok((lo, hi))
    }

    /// Orders whose payment was applied so far: `1..=paid_hi()`.
    fn paid_hi(&self) -> u64 {
        self.next - 1
    }

    /// Runs anchor `a` with `clients × per` transactions.
    async fn pgbench(
        &self,
        a: &Anchor,
        clients: usize,
        per: usize,
        run: &[(&str, String)],
    ) -> anyhow::Result<(f64, Cpu)> {
        let before = Parties::now(self.storefront.pid);
        let tps = self
            .pg
            .run(
                &a.path,
                clients,
                per,
                &a.defines(run),
                &a.options(),
                self.plan.cap,
            )
            .await?
            .tps;
        let parties = Parties::now(self.storefront.pid).since(before);
        // The wall time pgbench's rate counts: without its connections' start, whose CPU
        // (a backend forked per client) is counted, a few µs per transaction.
        let n = clients * per;
        let wall = Duration::from_secs_f64(n as f64 / tps.max(1e-9));
        Ok((tps, Cpu::of_anchor(parties, n, wall)))
    }
}

/// Results per concurrency of one paired figure.
#[derive(Default)]
pub(super) struct Pair {
    ours: Vec<f64>,
    anchor: Vec<f64>,
    cpu_ours: Vec<Cpu>,
    cpu_anchor: Vec<Cpu>,
    failed: Option<anyhow::Error>,
}

impl Pair {
    fn record(&mut self, side: Side, r: anyhow::Result<(f64, Cpu)>) {
        match r {
            Ok((v, cpu)) if side == Side::Ours => {
                self.ours.push(v);
                self.cpu_ours.push(cpu);
            }
            Ok((v, cpu)) => {
                self.anchor.push(v);
                self.cpu_anchor.push(cpu);
            }
            Err(e) => {
                if self.failed.is_none() {
                    self.failed = Some(e);
                }
            }
        }
    }

    /// Median of the per-repetition ratios (each repetition's two sides ran back to back).
    fn ratio(&self) -> f64 {
        let r: Vec<f64> = self
            .ours
            .iter()
            .zip(&self.anchor)
            .map(|(o, a)| o / a)
            .collect();
        median(&r)
    }

    /// The figure's row, and its line of the Profile list: the CPU per `request` by party.
    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        results: &mut Results,
        figure: &str,
        request: &str,
        c: usize,
        unit: &str,
        anchor_name: &str,
        target: Option<f64>,
    ) {
        if let Some(e) = &self.failed {
            results.fail(figure, &c.to_string(), e);
            return;
        }
        let ratio = self.ratio();
        results.rates.push(Rates {
            figure: figure.into(),
            c,
            ours: median(&self.ours),
            anchor: median(&self.anchor),
            target,
        });
        let (target_text, verdict) = match target {
            Some(t) if ratio >= t => (format!("≥ {t}"), "met".to_owned()),
            Some(t) => (format!("≥ {t}"), "**not met**".to_owned()),
            None => ("—".into(), "—".into()),
        };
        results.rows.push(Row {
            figure: figure.into(),
            c: c.to_string(),
            ours: format!("{} {unit}", thousands(median(&self.ours))),
            anchor: format!("{anchor_name}: {} {unit}", thousands(median(&self.anchor))),
            ratio: format!("{ratio:.2}"),
            target: target_text,
            verdict,
            raw: format!(
                "{}; {}",
                list(&self.ours, thousands),
                list(&self.anchor, thousands)
            ),
        });
        if let Some(line) = cpu::line(request, c, target, &self.cpu_ours, &self.cpu_anchor) {
            results.profile.push(line);
        }
    }
}
