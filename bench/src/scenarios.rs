//! The figures, each measured side by side with its anchor: repetitions alternate which side
//! runs first, and every side's work is counted in the database before its figure counts.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{bail, Context};
use dhmad::{CheckoutAction, CreateEscrow, CreateSession, Currency, EscrowMode};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;

use crate::{
    env::{CpuTicks, RssSampler, Service},
    events::{self, Webhooks, SKU},
    load::{self, Run},
    mirror::Mirror,
    pgbench::PgBench,
    report::{list, median, percentile_ms, thousands, Rates, Results, Row},
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
    ) -> anyhow::Result<f64> {
        Ok(self
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
            .tps)
    }
}

/// Posts prepared deliveries `bodies[k]`; each answer must be 200 with `{"result": expected}`.
pub(crate) async fn post_webhooks(
    ctx: &Ctx,
    c: usize,
    bodies: Vec<dhmad::webhook::SignedDelivery>,
    expected: &'static str,
) -> Run {
    let bodies = Arc::new(bodies);
    let http = ctx.http.clone();
    let url = format!("{}/webhooks/dhmad", ctx.base);
    let n = bodies.len();
    load::run(c, n, ctx.plan.cap, move |k| {
        let d = &bodies[k];
        let mut req = http.post(&url).body(d.body.clone());
        for (name, value) in d.headers() {
            req = req.header(name, value);
        }
        let fut = req.send();
        async move {
            let (status, body) = load::read(fut.await).await?;
            let want = format!("\"result\":\"{expected}\"");
            if status == 200 && body.contains(&want) {
                Ok(())
            } else {
                Err(format!("{status} {body}"))
            }
        }
    })
    .await
}

/// Orders `lo..=hi` each had their payment applied exactly once: inbox row processed, order
/// paid with its code, one open deliver job, two new timeline lines.
pub(crate) async fn check_applied(ctx: &Ctx, lo: u64, hi: u64) -> anyhow::Result<String> {
    let n = (hi - lo + 1) as i64;
    let a = events::applied(&ctx.pool, lo, hi).await?;
    let want = events::Applied {
        inbox_processed: n,
        orders_paid_with_code: n,
        deliver_jobs: n,
        timeline_lines: 5 * n,
    };
    if a != want {
        bail!("orders {lo}..={hi}: expected {want:?}, found {a:?}");
    }
    Ok(format!(
        "{n} events applied: {n} inbox rows processed, {n} orders paid with a code, {n} deliver jobs, {} timeline lines",
        5 * n
    ))
}

/// `n` unique paid events at concurrency `c`, each checked applied; the rate and what was counted.
pub async fn unique_events(ctx: &mut Ctx, c: usize, n: usize) -> anyhow::Result<(f64, String)> {
    let (lo, hi) = ctx.take(n)?;
    let bodies = (lo..=hi).map(|i| ctx.webhooks.signed(i)).collect();
    let run = post_webhooks(ctx, c, bodies, "processed").await;
    run.check("webhooks", n)?;
    let checked = check_applied(ctx, lo, hi).await?;
    Ok((run.rate(), checked))
}

/// The storefront's CPU time (user + system) per request over `n` requests, in µs.
fn cpu_per_request(cpu: CpuTicks, n: usize) -> f64 {
    // Clock ticks are 10 ms.
    (cpu.user + cpu.system) as f64 * 10_000.0 / n.max(1) as f64
}

/// One line of the Profile list: the storefront's CPU per request of a figure.
fn cpu_line(results: &mut Results, what: &str, c: usize, us: &[f64]) {
    if !us.is_empty() {
        results.profile.push(format!(
            "- storefront CPU (user + system) per {what} at c = {c}: {} µs (per repetition: {})",
            thousands(median(us)),
            list(us, thousands)
        ));
    }
}

async fn ingest_ours(ctx: &mut Ctx, c: usize, n: usize) -> anyhow::Result<(f64, String, f64)> {
    let cpu0 = ctx.storefront.cpu()?;
    let sampler = (c >= 32).then(|| RssSampler::start(ctx.storefront.pid));
    let run = unique_events(ctx, c, n).await;
    if let Some(s) = sampler {
        ctx.rss_peak_c32_kib = ctx.rss_peak_c32_kib.max(s.finish().await);
    }
    let cpu = ctx.storefront.cpu()?.since(cpu0);
    let (rate, checked) = run?;
    Ok((rate, checked, cpu_per_request(cpu, n)))
}

async fn ingest_anchor(ctx: &mut Ctx, c: usize, n: usize) -> anyhow::Result<(f64, String)> {
    let per = n / c;
    let (lo, hi) = ctx.take(per * c)?;
    let run = [
        ("base", lo.to_string()),
        ("per", per.to_string()),
        ("n", "0".to_owned()),
    ];
    let tps = ctx.pgbench(&ctx.anchors.ingest, c, per, &run).await?;
    let checked = check_applied(ctx, lo, hi).await?;
    Ok((tps, checked))
}

/// Results per concurrency of one paired figure.
#[derive(Default)]
struct Pair {
    ours: Vec<f64>,
    anchor: Vec<f64>,
    failed: Option<anyhow::Error>,
}

impl Pair {
    fn record(&mut self, side: Side, r: anyhow::Result<f64>) {
        match r {
            Ok(v) if side == Side::Ours => self.ours.push(v),
            Ok(v) => self.anchor.push(v),
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

    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        results: &mut Results,
        figure: &str,
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
    }
}

/// Warms the storefront's pool and statement caches, and pgbench's path, at concurrency `c`.
async fn warm_ingest(ctx: &mut Ctx, c: usize) -> anyhow::Result<()> {
    let n = ctx.plan.warm.max(c);
    let (lo, hi) = ctx.take(n)?;
    let bodies = (lo..=hi).map(|i| ctx.webhooks.signed(i)).collect();
    post_webhooks(ctx, c, bodies, "processed")
        .await
        .check("warm-up webhooks", n)?;
    check_applied(ctx, lo, hi).await?;
    let (lo, hi) = ctx.take(c * 2)?;
    let run = [
        ("base", lo.to_string()),
        ("per", "2".to_owned()),
        ("n", "0".to_owned()),
    ];
    ctx.pgbench(&ctx.anchors.ingest, c, 2, &run).await?;
    check_applied(ctx, lo, hi).await?;
    Ok(())
}

/// Webhook ingest, unique paid events, against pgbench running the handler's SQL.
pub async fn ingest(ctx: &mut Ctx, results: &mut Results) -> anyhow::Result<()> {
    let plan = ctx.plan.clone();
    let mut pairs: Vec<Pair> = plan.ingest.iter().map(|_| Pair::default()).collect();
    let mut cpu: Vec<Vec<f64>> = plan.ingest.iter().map(|_| Vec::new()).collect();
    for &(c, _) in &plan.ingest {
        warm_ingest(ctx, c)
            .await
            .with_context(|| format!("warming up ingest at c = {c}"))?;
    }
    for rep in 0..plan.reps {
        for (k, &(c, n)) in plan.ingest.iter().enumerate() {
            for side in sides(rep) {
                let r = match side {
                    Side::Ours => ingest_ours(ctx, c, n).await.map(|(rate, checked, us)| {
                        cpu[k].push(us);
                        results
                            .checks
                            .push(format!("ingest c = {c}, rep {}, ours: {checked}", rep + 1));
                        rate
                    }),
                    Side::Anchor => ingest_anchor(ctx, c, n).await.map(|(rate, checked)| {
                        results.checks.push(format!(
                            "ingest c = {c}, rep {}, pgbench: {checked}",
                            rep + 1
                        ));
                        rate
                    }),
                };
                pairs[k].record(side, r);
            }
        }
    }
    for (k, &(c, _)) in plan.ingest.iter().enumerate() {
        let target = (c >= 8).then_some(0.9);
        pairs[k].row(
            results,
            "webhook ingest, unique paid events",
            c,
            "/s",
            "pgbench, the handler's SQL",
            target,
        );
        cpu_line(results, "unique event", c, &cpu[k]);
    }
    Ok(())
}

/// Deliveries of events already applied, spread over all of them; bodies signed now.
fn redeliveries(ctx: &Ctx, n: usize, salt: u64) -> Vec<dhmad::webhook::SignedDelivery> {
    let hi = ctx.paid_hi();
    (0..n as u64)
        .map(|k| ctx.webhooks.signed(load::spread(k + salt, 1, hi)))
        .collect()
}

/// `n` redeliveries of stored events at concurrency `c`; nothing may change.
pub async fn duplicate_events(ctx: &mut Ctx, c: usize, n: usize) -> anyhow::Result<f64> {
    duplicates_with(ctx, c, n, n as u64 * 31).await
}

async fn duplicates_with(ctx: &mut Ctx, c: usize, n: usize, salt: u64) -> anyhow::Result<f64> {
    let bodies = redeliveries(ctx, n, salt);
    let before = events::write_counts(&ctx.pool).await?;
    let run = post_webhooks(ctx, c, bodies, "duplicate").await;
    run.check("duplicate webhooks", n)?;
    let after = events::write_counts(&ctx.pool).await?;
    if before != after {
        bail!("duplicates changed the database: (inbox, timeline, outbox) {before:?} → {after:?}");
    }
    Ok(run.rate())
}

/// The rate, and the storefront's CPU per delivery in µs.
async fn duplicates_ours(
    ctx: &mut Ctx,
    c: usize,
    n: usize,
    salt: u64,
) -> anyhow::Result<(f64, f64)> {
    let cpu0 = ctx.storefront.cpu()?;
    let sampler = (c >= 32).then(|| RssSampler::start(ctx.storefront.pid));
    let r = duplicates_with(ctx, c, n, salt).await;
    if let Some(s) = sampler {
        ctx.rss_peak_c32_kib = ctx.rss_peak_c32_kib.max(s.finish().await);
    }
    let cpu = ctx.storefront.cpu()?.since(cpu0);
    Ok((r?, cpu_per_request(cpu, n)))
}

async fn duplicates_anchor(ctx: &mut Ctx, c: usize, n: usize, salt: u64) -> anyhow::Result<f64> {
    let per = n / c;
    let hi = ctx.paid_hi();
    let run = [
        ("base", "1".to_owned()),
        ("span", hi.to_string()),
        ("per", per.to_string()),
        // Each repetition starts elsewhere among the stored events.
        ("off", (salt % hi).to_string()),
        ("n", "0".to_owned()),
    ];
    let before = events::write_counts(&ctx.pool).await?;
    let tps = ctx.pgbench(&ctx.anchors.duplicate, c, per, &run).await?;
    let after = events::write_counts(&ctx.pool).await?;
    if before != after {
        bail!("pgbench duplicates changed the database: {before:?} → {after:?}");
    }
    Ok(tps)
}

/// Duplicate deliveries of stored events, against BEGIN; conflicting INSERT; ROLLBACK.
pub async fn duplicates(ctx: &mut Ctx, results: &mut Results) -> anyhow::Result<()> {
    let plan = ctx.plan.clone();
    let mut pairs: Vec<Pair> = plan.duplicates.iter().map(|_| Pair::default()).collect();
    let mut cpu: Vec<Vec<f64>> = plan.duplicates.iter().map(|_| Vec::new()).collect();
    for rep in 0..plan.reps {
        for (k, &(c, n)) in plan.duplicates.iter().enumerate() {
            let salt = (rep * 7919 + k * 104_729) as u64;
            for side in sides(rep) {
                let r = match side {
                    Side::Ours => duplicates_ours(ctx, c, n, salt).await.map(|(rate, us)| {
                        cpu[k].push(us);
                        rate
                    }),
                    Side::Anchor => duplicates_anchor(ctx, c, n, salt).await,
                };
                if r.is_ok() {
                    let what = if side == Side::Ours {
                        format!("ours: {n} deliveries of stored events, each answered `duplicate`")
                    } else {
                        format!("pgbench: {n} conflicting inserts, each rolled back")
                    };
                    results.checks.push(format!(
                        "duplicates c = {c}, rep {}, {what}; inbox, timeline and outbox row counts unchanged",
                        rep + 1
                    ));
                }
                pairs[k].record(side, r);
            }
        }
    }
    for (k, &(c, _)) in plan.duplicates.iter().enumerate() {
        pairs[k].row(
            results,
            "duplicate delivery (same event again)",
            c,
            "/s",
            "pgbench BEGIN; conflicting INSERT; ROLLBACK",
            Some(0.8),
        );
        cpu_line(results, "duplicate delivery", c, &cpu[k]);
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Page {
    Json,
    Html,
    /// `GET /healthz`: no database, the HTTP hop alone. A reference, measured against the
    /// JSON read's anchor: what any HTTP request costs here next to one statement.
    Hop,
}

/// `n` reads of paid orders' JSON (`html` false) or page at concurrency `c`.
pub async fn read_pages(ctx: &mut Ctx, html: bool, c: usize, n: usize) -> anyhow::Result<f64> {
    let page = if html { Page::Html } else { Page::Json };
    read_ours(ctx, page, c, n, n as u64 * 17).await
}

async fn read_ours(ctx: &Ctx, page: Page, c: usize, n: usize, salt: u64) -> anyhow::Result<f64> {
    let hi = ctx.paid_hi();
    let http = ctx.http.clone();
    let base = ctx.base.clone();
    let run = load::run(c, n, ctx.plan.cap, move |k| {
        let i = load::spread(k as u64 + salt, 1, hi);
        let id = events::order_id(i);
        let url = match page {
            Page::Json => format!("{base}/api/orders/{id}"),
            Page::Html => format!("{base}/orders/{id}"),
            Page::Hop => format!("{base}/healthz"),
        };
        let fut = http.get(url).send();
        async move {
            let (status, body) = load::read(fut.await).await?;
            let ok = match page {
                Page::Json => body.contains("\"status\":\"paid\"") && body.contains(&id),
                Page::Html => body.contains(&id) && body.contains("AIC-"),
                Page::Hop => body.contains("\"ok\""),
            };
            if status == 200 && ok {
                Ok(())
            } else {
                Err(format!(
                    "{status} {}",
                    body.chars().take(300).collect::<String>()
                ))
            }
        }
    })
    .await;
    run.check("order reads", n)?;
    Ok(run.rate())
}

async fn read_anchor(ctx: &Ctx, page: Page, c: usize, n: usize) -> anyhow::Result<f64> {
    let anchor = match page {
        Page::Json | Page::Hop => &ctx.anchors.order_json,
        Page::Html => &ctx.anchors.order_page,
    };
    let run = [("lo", "1".to_owned()), ("hi", ctx.paid_hi().to_string())];
    ctx.pgbench(anchor, c, n / c, &run).await
}

/// `GET /api/orders/{id}` and `GET /orders/{id}` of paid orders, against their queries; and
/// `GET /healthz` against the JSON read's query, as a reference.
pub async fn reads(ctx: &mut Ctx, results: &mut Results) -> anyhow::Result<()> {
    let plan = ctx.plan.clone();
    let c = plan.read_c;
    let figures = [
        (
            Page::Json,
            plan.json_n,
            "`GET /api/orders/{id}`",
            "pgbench, its SELECT by id",
            Some(0.6),
        ),
        (
            Page::Html,
            plan.page_n,
            "`GET /orders/{id}` (HTML)",
            "pgbench, the page's 3 queries",
            Some(0.5),
        ),
        (
            Page::Hop,
            plan.json_n,
            "`GET /healthz` (reference: no database, the HTTP hop alone)",
            "pgbench, the JSON read's SELECT by id",
            None,
        ),
    ];
    for (page, n, figure, anchor, target) in figures {
        let mut pair = Pair::default();
        let mut cpu = Vec::new();
        if let Err(e) = read_ours(ctx, page, c, plan.warm.max(c), 1).await {
            pair.failed = Some(e.context("warm-up"));
        }
        for rep in 0..plan.reps {
            if pair.failed.is_some() {
                break;
            }
            for side in sides(rep) {
                let r = match side {
                    Side::Ours => {
                        let cpu0 = ctx.storefront.cpu()?;
                        let r = read_ours(ctx, page, c, n, rep as u64 * 1_000_003).await;
                        cpu.push(cpu_per_request(ctx.storefront.cpu()?.since(cpu0), n));
                        r
                    }
                    Side::Anchor => read_anchor(ctx, page, c, n).await,
                };
                if r.is_ok() && side == Side::Ours {
                    results.checks.push(format!(
                        "{figure} c = {c}, rep {}: {n} answers, each 200 {}",
                        rep + 1,
                        match page {
                            Page::Json => "with the order (paid)",
                            Page::Html => "with the order (paid, its code shown)",
                            Page::Hop => "saying ok",
                        }
                    ));
                }
                pair.record(side, r);
            }
        }
        pair.row(results, figure, c, "/s", anchor, target);
        let request = match page {
            Page::Json => "`GET /api/orders/{id}`",
            Page::Html => "`GET /orders/{id}`",
            Page::Hop => "`GET /healthz`",
        };
        cpu_line(results, request, c, &cpu);
    }
    ceilings(results, c);
    Ok(())
}

/// What each target allows at concurrency `c` on this machine: with both cores saturated,
/// costs add up, so a request that were its HTTP hop (`GET /healthz`) plus its anchor's
/// statements and nothing else would reach 1 / (1 + anchor rate / hop rate) of the anchor.
fn ceilings(results: &mut Results, c: usize) {
    let Some(hop) = results
        .rates
        .iter()
        .find(|r| r.c == c && r.figure.starts_with("`GET /healthz`"))
        .map(|r| r.ours)
    else {
        return;
    };
    let each: Vec<String> = results
        .rates
        .iter()
        .filter(|r| r.c == c && r.target.is_some() && r.anchor > 0.0)
        .map(|r| {
            format!(
                "{} {:.2} (target {})",
                r.figure,
                hop / (hop + r.anchor),
                r.target.unwrap_or_default()
            )
        })
        .collect();
    if !each.is_empty() {
        results.profile.push(format!(
            "- ceiling at c = {c}, for a request that would cost its HTTP hop (`GET /healthz`, {} /s) and its anchor's statements and nothing else, 1 / (1 + anchor / hop): {}",
            thousands(hop),
            each.join("; ")
        ));
    }
}

pub(crate) async fn checkout_ours(ctx: &Ctx, n: usize, tag: &str) -> anyhow::Result<Vec<Duration>> {
    let http = ctx.http.clone();
    let url = format!("{}/api/checkout", ctx.base);
    let tag = tag.to_owned();
    let run = load::run(1, n, ctx.plan.cap, move |k| {
        // `chk-` orders are the figure's (counted after it), others the capture's.
        let email = format!("{tag}-{k}@bench.example");
        let fut = http
            .post(&url)
            .json(&json!({ "sku": SKU, "email": email }))
            .send();
        async move {
            let (status, body) = load::read(fut.await).await?;
            if status == 201 && body.contains("checkout_url") {
                Ok(())
            } else {
                Err(format!("{status} {body}"))
            }
        }
    })
    .await;
    run.check("checkouts", n)?;
    Ok(run.latencies)
}

/// The same two DHMAD calls the checkout makes, straight to the sandbox with the same client.
async fn checkout_anchor(ctx: &Ctx, n: usize, tag: &str) -> anyhow::Result<Vec<Duration>> {
    let client = ctx.dhmad.clone();
    let callback = ctx.callback_url.clone();
    let tag = tag.to_owned();
    let run = load::run(1, n, ctx.plan.cap, move |k| {
        let (client, callback) = (client.clone(), callback.clone());
        let email = format!("dhm-{tag}-{k}@bench.example");
        let order = format!("00000000-0000-4000-9000-{k:012}");
        async move {
            let req = CreateEscrow::new(
                format!("{} · order {order}", events::PRODUCT_NAME),
                Decimal::new(15_000, 3),
                &email,
            )
            .mode(EscrowMode::Instant)
            .currency(Currency::from("TND"));
            let created = client
                .create_escrow(&req)
                .await
                .map_err(|e| format!("create escrow: {e}"))?;
            let session = CreateSession::new(CheckoutAction::AcceptPay, &email, callback)
                .metadata("order_id", order);
            client
                .create_session(&created.escrow.id, &session)
                .await
                .map_err(|e| format!("create session: {e}"))?;
            Ok(())
        }
    })
    .await;
    run.check("DHMAD calls", n)?;
    Ok(run.latencies)
}

/// Checkout latency at c = 1 against the sandbox's own time for the same two calls.
pub async fn checkout(ctx: &mut Ctx, results: &mut Results) -> anyhow::Result<()> {
    let plan = ctx.plan.clone();
    let n = plan.checkout_n;
    let figure = "checkout (`POST /api/checkout`), latency";
    let mut ours: Vec<(f64, f64)> = Vec::new();
    let mut dhmad: Vec<(f64, f64)> = Vec::new();
    let mut failed = None;
    let warm = 5;
    let mut done = 0;
    let outcome = async {
        checkout_ours(ctx, warm, "chk-warm").await?;
        done += warm;
        checkout_anchor(ctx, warm, "warm").await?;
        for rep in 0..plan.reps {
            for side in sides(rep) {
                let tag = format!("chk-r{rep}");
                match side {
                    Side::Ours => {
                        let l = checkout_ours(ctx, n, &tag).await?;
                        done += n;
                        ours.push((percentile_ms(&l, 50.0), percentile_ms(&l, 95.0)));
                    }
                    Side::Anchor => {
                        let l = checkout_anchor(ctx, n, &tag).await?;
                        dhmad.push((percentile_ms(&l, 50.0), percentile_ms(&l, 95.0)));
                    }
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = outcome {
        failed = Some(e);
    }
    // Every checkout left an order awaiting payment with its escrow and its session.
    let (orders, sessions): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT s.order_id) FROM orders o
           LEFT JOIN checkout_sessions s ON s.order_id = o.id
          WHERE o.buyer_email LIKE 'chk-%' AND o.status = 'awaiting_payment'
            AND o.escrow_id IS NOT NULL",
    )
    .fetch_one(&ctx.pool)
    .await?;
    if failed.is_none() && (orders != done as i64 || sessions != done as i64) {
        failed = Some(anyhow::anyhow!(
            "{done} checkouts answered 201, but {orders} orders await payment with an escrow and {sessions} have a session"
        ));
    }
    if let Some(e) = failed {
        results.fail(figure, "1", &e);
        return Ok(());
    }
    results.checks.push(format!(
        "checkout: {done} answers 201 with a checkout URL; {orders} orders awaiting payment, each with its escrow and session"
    ));
    let p =
        |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    let own: Vec<f64> = ours.iter().zip(&dhmad).map(|(o, d)| o.0 - d.0).collect();
    let own_p50 = median(&own);
    results.rows.push(Row {
        figure: figure.into(),
        c: "1".into(),
        ours: format!(
            "p50 {:.1} ms, p95 {:.1} ms",
            p(&ours, |x| x.0),
            p(&ours, |x| x.1)
        ),
        anchor: format!(
            "DHMAD's 2 calls (sandbox): p50 {:.1} ms, p95 {:.1} ms",
            p(&dhmad, |x| x.0),
            p(&dhmad, |x| x.1)
        ),
        ratio: format!("own work p50 {own_p50:.1} ms"),
        target: "own work ≤ 3 ms p50".into(),
        verdict: if own_p50 <= 3.0 { "met" } else { "**not met**" }.into(),
        raw: format!(
            "p50 {} ms; {} ms",
            list(&ours.iter().map(|x| x.0).collect::<Vec<_>>(), |x| format!(
                "{x:.1}"
            )),
            list(&dhmad.iter().map(|x| x.0).collect::<Vec<_>>(), |x| format!(
                "{x:.1}"
            ))
        ),
    });
    Ok(())
}
