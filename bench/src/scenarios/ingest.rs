//! Webhook ingest: unique paid events against pgbench running the handler's SQL.

use std::sync::Mutex;

use anyhow::{bail, Context};

use crate::{
    env::RssSampler,
    events,
    load::{self, Run},
    report::Results,
};

use super::*;

/// Posts prepared deliveries `bodies[k]`; each answer must be 200 with `{"result": expected}`.
pub(crate) async fn post_webhooks(
    ctx: &Ctx,
    c: usize,
    bodies: Vec<dhmad::webhook::SignedDelivery>,
    expected: &'static str,
) -> anyhow::Result<Run> {
    // Built before the load, as pgbench reads its script before it starts: each is sent once.
    let mut requests = Vec::with_capacity(bodies.len());
    for d in bodies {
        let mut req = load::request(http::Method::POST, "/webhooks/dhmad");
        for (name, value) in d.headers() {
            req = req.header(name, value);
        }
        requests.push(Mutex::new(Some(req.body(d.body.into())?)));
    }
    let want = format!("\"result\":\"{expected}\"");
    let run = load::http1(
        ctx.addr()?,
        ctx.storefront.pid,
        c,
        requests.len(),
        ctx.plan.cap,
        move |k| {
            let req = requests.get(k).and_then(|r| r.lock().ok()?.take());
            req.ok_or_else(|| format!("request {k} was sent already"))
        },
        move |_, status, body| status == 200 && load::contains(body, want.as_bytes()),
    )
    .await;
    Ok(run)
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

/// `n` unique paid events at concurrency `c`, each checked applied; the load and what was counted.
pub async fn unique_events(ctx: &mut Ctx, c: usize, n: usize) -> anyhow::Result<(Run, String)> {
    let (lo, hi) = ctx.take(n)?;
    let bodies = (lo..=hi).map(|i| ctx.webhooks.signed(i)).collect();
    let run = post_webhooks(ctx, c, bodies, "processed").await?;
    run.check("webhooks", n)?;
    let checked = check_applied(ctx, lo, hi).await?;
    Ok((run, checked))
}

pub(super) async fn ingest_ours(
    ctx: &mut Ctx,
    c: usize,
    n: usize,
) -> anyhow::Result<(f64, String, Cpu)> {
    let sampler = (c >= 32).then(|| RssSampler::start(ctx.storefront.pid));
    let run = unique_events(ctx, c, n).await;
    if let Some(s) = sampler {
        ctx.rss_peak_c32_kib = ctx.rss_peak_c32_kib.max(s.finish().await);
    }
    let (run, checked) = run?;
    Ok((run.rate(), checked, Cpu::of_run(&run)))
}

pub(super) async fn ingest_anchor(
    ctx: &mut Ctx,
    c: usize,
    n: usize,
) -> anyhow::Result<(f64, String, Cpu)> {
    let per = n / c;
    let (lo, hi) = ctx.take(per * c)?;
    let run = [
        ("base", lo.to_string()),
        ("per", per.to_string()),
        ("n", "0".to_owned()),
    ];
    let (tps, cpu) = ctx.pgbench(&ctx.anchors.ingest, c, per, &run).await?;
    let checked = check_applied(ctx, lo, hi).await?;
    Ok((tps, checked, cpu))
}

/// Warms the storefront's pool and statement caches, and pgbench's path, at concurrency `c`.
pub(super) async fn warm_ingest(ctx: &mut Ctx, c: usize) -> anyhow::Result<()> {
    let n = ctx.plan.warm.max(c);
    let (lo, hi) = ctx.take(n)?;
    let bodies = (lo..=hi).map(|i| ctx.webhooks.signed(i)).collect();
    post_webhooks(ctx, c, bodies, "processed")
        .await?
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
    for &(c, _) in &plan.ingest {
        warm_ingest(ctx, c)
            .await
            .with_context(|| format!("warming up ingest at c = {c}"))?;
    }
    for rep in 0..plan.reps {
        for (k, &(c, n)) in plan.ingest.iter().enumerate() {
            for side in sides(rep) {
                let r = match side {
                    Side::Ours => ingest_ours(ctx, c, n).await,
                    Side::Anchor => ingest_anchor(ctx, c, n).await,
                };
                let r = r.map(|(rate, checked, cpu)| {
                    let who = if side == Side::Ours {
                        "ours"
                    } else {
                        "pgbench"
                    };
                    results
                        .checks
                        .push(format!("ingest c = {c}, rep {}, {who}: {checked}", rep + 1));
                    (rate, cpu)
                });
                pairs[k].record(side, r);
            }
        }
    }
    for (k, &(c, _)) in plan.ingest.iter().enumerate() {
        let target = (c >= 8).then_some(0.9);
        pairs[k].row(
            results,
            "webhook ingest, unique paid events",
            "unique event",
            c,
            "/s",
            "pgbench, the handler's SQL",
            target,
        );
    }
    Ok(())
}
