//! Duplicate deliveries: events already applied, against the conflicting insert rolled back.

use anyhow::bail;

use crate::{env::RssSampler, events, load, report::Results};

use super::*;

/// Deliveries of events already applied, spread over all of them; bodies signed now.
pub(super) fn redeliveries(ctx: &Ctx, n: usize, salt: u64) -> Vec<dhmad::webhook::SignedDelivery> {
    let hi = ctx.paid_hi();
    (0..n as u64)
        .map(|k| ctx.webhooks.signed(load::spread(k + salt, 1, hi)))
        .collect()
}

/// `n` redeliveries of stored events at concurrency `c`; nothing may change.
pub async fn duplicate_events(ctx: &mut Ctx, c: usize, n: usize) -> anyhow::Result<f64> {
    Ok(duplicates_with(ctx, c, n, n as u64 * 31).await?.rate())
}

pub(super) async fn duplicates_with(
    ctx: &mut Ctx,
    c: usize,
    n: usize,
    salt: u64,
) -> anyhow::Result<load::Run> {
    let bodies = redeliveries(ctx, n, salt);
    let before = events::write_counts(&ctx.pool).await?;
    let run = post_webhooks(ctx, c, bodies, "duplicate").await?;
    run.check("duplicate webhooks", n)?;
    let after = events::write_counts(&ctx.pool).await?;
    if before != after {
        bail!("duplicates changed the database: (inbox, timeline, outbox) {before:?} → {after:?}");
    }
    Ok(run)
}

/// The rate, and the CPU per delivery.
pub(super) async fn duplicates_ours(
    ctx: &mut Ctx,
    c: usize,
    n: usize,
    salt: u64,
) -> anyhow::Result<(f64, Cpu)> {
    let sampler = (c >= 32).then(|| RssSampler::start(ctx.storefront.pid));
    let r = duplicates_with(ctx, c, n, salt).await;
    if let Some(s) = sampler {
        ctx.rss_peak_c32_kib = ctx.rss_peak_c32_kib.max(s.finish().await);
    }
    let run = r?;
    Ok((run.rate(), Cpu::of_run(&run)))
}

pub(super) async fn duplicates_anchor(
    ctx: &mut Ctx,
    c: usize,
    n: usize,
    salt: u64,
) -> anyhow::Result<(f64, Cpu)> {
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
    let (inserted, rolled_back) = events::inbox_inserts_and_rollbacks(&ctx.pool).await?;
    let measured = ctx.pgbench(&ctx.anchors.duplicate, c, per, &run).await?;
    let after = events::write_counts(&ctx.pool).await?;
    if before != after {
        bail!("pgbench duplicates changed the database: {before:?} → {after:?}");
    }
    // The rollback leaves the counts as they were whatever the insert did: the statistics tell
    // whether it conflicted (an insert that did not is counted though rolled back). Read once
    // pgbench's backends have reported all of its rollbacks.
    let transactions = i64::try_from(per * c)?;
    let mut now = events::inbox_inserts_and_rollbacks(&ctx.pool).await?;
    for _ in 0..50 {
        if now.1 >= rolled_back + transactions {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = events::inbox_inserts_and_rollbacks(&ctx.pool).await?;
    }
    if now.1 < rolled_back + transactions {
        bail!(
            "pgbench duplicates: {} of {transactions} rollbacks reported after 5 s; cannot tell whether its inserts conflicted",
            now.1 - rolled_back
        );
    }
    if now.0 != inserted {
        bail!(
            "pgbench duplicates: {} of its inbox inserts did not conflict (inserted, then rolled back): \
             the anchor did not time duplicates",
            now.0 - inserted
        );
    }
    Ok(measured)
}

/// Duplicate deliveries of stored events, against BEGIN; conflicting INSERT; ROLLBACK.
pub async fn duplicates(ctx: &mut Ctx, results: &mut Results) -> anyhow::Result<()> {
    let plan = ctx.plan.clone();
    let mut pairs: Vec<Pair> = plan.duplicates.iter().map(|_| Pair::default()).collect();
    for rep in 0..plan.reps {
        for (k, &(c, n)) in plan.duplicates.iter().enumerate() {
            let salt = (rep * 7919 + k * 104_729) as u64;
            for side in sides(rep) {
                let r = match side {
                    Side::Ours => duplicates_ours(ctx, c, n, salt).await,
                    Side::Anchor => duplicates_anchor(ctx, c, n, salt).await,
                };
                if r.is_ok() {
                    let what = if side == Side::Ours {
                        format!("ours: {n} deliveries of stored events, each answered `duplicate`")
                    } else {
                        format!(
                            "pgbench: {n} inserts, each rolled back, none inserting a row \
                             (the inbox's insert count in pg_stat_user_tables unchanged)"
                        )
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
            "duplicate delivery",
            c,
            "/s",
            "pgbench BEGIN; conflicting INSERT; ROLLBACK",
            Some(0.8),
        );
    }
    Ok(())
}
