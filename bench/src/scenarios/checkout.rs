//! Checkout latency against DHMAD's own time for the same two calls.

use std::time::Duration;

use dhmad::{CheckoutAction, CreateEscrow, CreateSession, Currency, EscrowMode};
use rust_decimal::Decimal;
use serde_json::json;

use crate::{
    events::{self, SKU},
    load,
    report::{list, median, percentile_ms, Results, Row},
};

use super::*;

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
pub(super) async fn checkout_anchor(
    ctx: &Ctx,
    n: usize,
    tag: &str,
) -> anyhow::Result<Vec<Duration>> {
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
