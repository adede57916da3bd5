//! The order's JSON and page against their queries, `GET /healthz` as the hop, and the
//! ceilings those give.

use http_body_util::Full;

use crate::{
    events, load,
    report::{thousands, Results},
};

use super::*;

#[derive(Clone, Copy)]
pub(super) enum Page {
    Json,
    Html,
    /// `GET /healthz`: no database, the HTTP hop alone. A reference, measured against the
    /// JSON read's anchor: what any HTTP request costs here next to one statement.
    Hop,
}

/// `n` reads of paid orders' JSON (`html` false) or page at concurrency `c`.
pub async fn read_pages(ctx: &mut Ctx, html: bool, c: usize, n: usize) -> anyhow::Result<f64> {
    let page = if html { Page::Html } else { Page::Json };
    Ok(read_ours(ctx, page, c, n, n as u64 * 17).await?.rate())
}

pub(super) async fn read_ours(
    ctx: &Ctx,
    page: Page,
    c: usize,
    n: usize,
    salt: u64,
) -> anyhow::Result<load::Run> {
    let hi = ctx.paid_hi();
    // The orders' ids, made before the round (as pgbench reads its script before it starts).
    let ids: Vec<String> = match page {
        Page::Hop => Vec::new(),
        Page::Json | Page::Html => (0..n as u64)
            .map(|k| events::order_id(load::spread(k + salt, 1, hi)))
            .collect(),
    };
    let ids = Arc::new(ids);
    let paths = ids.clone();
    let run = load::http1(
        ctx.addr()?,
        ctx.storefront.pid,
        c,
        n,
        ctx.plan.cap,
        move |k| {
            let path = match page {
                Page::Json => format!("/api/orders/{}", paths[k]),
                Page::Html => format!("/orders/{}", paths[k]),
                Page::Hop => "/healthz".to_owned(),
            };
            load::request(http::Method::GET, &path)
                .body(Full::default())
                .map_err(|e| e.to_string())
        },
        move |k, status, body| {
            status == 200
                && match page {
                    Page::Json => {
                        load::contains(body, b"\"status\":\"paid\"")
                            && load::contains(body, ids[k].as_bytes())
                    }
                    Page::Html => {
                        load::contains(body, ids[k].as_bytes()) && load::contains(body, b"AIC-")
                    }
                    Page::Hop => load::contains(body, b"\"ok\""),
                }
        },
    )
    .await;
    run.check("order reads", n)?;
    Ok(run)
}

pub(super) async fn read_anchor(
    ctx: &Ctx,
    page: Page,
    c: usize,
    n: usize,
) -> anyhow::Result<(f64, Cpu)> {
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
        if let Err(e) = read_ours(ctx, page, c, plan.warm.max(c), 1).await {
            pair.failed = Some(e.context("warm-up"));
        }
        for rep in 0..plan.reps {
            if pair.failed.is_some() {
                break;
            }
            for side in sides(rep) {
                let r = match side {
                    Side::Ours => read_ours(ctx, page, c, n, rep as u64 * 1_000_003)
                        .await
                        .map(|run| (run.rate(), Cpu::of_run(&run))),
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
        let request = match page {
            Page::Json => "`GET /api/orders/{id}`",
            Page::Html => "`GET /orders/{id}`",
            Page::Hop => "`GET /healthz`",
        };
        pair.row(results, figure, request, c, "/s", anchor, target);
    }
    ceilings(results, c);
    Ok(())
}

/// What each target allows at concurrency `c` on this machine: with both cores saturated,
/// costs add up, so a request that were its HTTP hop (`GET /healthz`) plus its anchor's
/// statements and nothing else would reach 1 / (1 + anchor rate / hop rate) of the anchor.
pub(super) fn ceilings(results: &mut Results, c: usize) {
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
