//! The burst (issue 13.3): `buyers` checkouts arrive at once against DHMAD's limit of `limit`
//! calls a window. A sandbox enforcing that limit and a storefront whose budget says the same
//! run for this alone. Every buyer is a browser of its own (cookies) that sends the catalog's
//! form once, then only follows redirects and the waiting page's `Refresh`, as a browser does.
//!
//! Reported: how many buyers reached DHMAD's page, how many saw an error, how many escrows
//! were created (one per buyer, none twice), how many 429s DHMAD answered, and how much of
//! DHMAD's budget was used while buyers waited: the calls made over the most a sliding window
//! allows from the first call to the last (`limit` at once, then `limit` more each window).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::{
    env::{self, Db, Service},
    override_env,
    report::{percentile_ms, thousands, Results, Row},
    Args, Launch,
};

pub struct BurstPlan {
    pub buyers: usize,
    pub limit: u32,
    pub window: Duration,
}

impl BurstPlan {
    /// The issue's figure: 200 checkouts against 100 calls a minute.
    pub fn full() -> Self {
        Self {
            buyers: 200,
            limit: 100,
            window: Duration::from_secs(60),
        }
    }

    /// The same shape with a 10 s window, for a smoke run.
    pub fn quick() -> Self {
        Self {
            buyers: 200,
            limit: 100,
            window: Duration::from_secs(10),
        }
    }
}

/// What one buyer saw.
struct Journey {
    reached: Option<Duration>,
    errors: Vec<String>,
    waiting_pages: usize,
    first_wait_shown: Option<u64>,
}

/// Runs on a database of its own (`bench_<pid>_burst`, dropped after): a new sandbox counts
/// escrow ids from scratch, and the run's other orders must not share them.
pub async fn run(
    launch: &Launch,
    args: &Args,
    plan: &BurstPlan,
    results: &mut Results,
) -> anyhow::Result<()> {
    let db = Db::create(&args.pg, args.sslmode.as_deref(), "_burst").await?;
    let outcome = measure_on(launch, &db, plan, results).await;
    let name = db.name.clone();
    if let Err(e) = db.drop_database().await {
        eprintln!("storefront-bench: could not drop database {name}: {e:#}");
    }
    outcome
}

async fn measure_on(
    launch: &Launch,
    db: &Db,
    plan: &BurstPlan,
    results: &mut Results,
) -> anyhow::Result<()> {
    let figure = format!(
        "burst: {} checkouts at once, DHMAD allowing {} calls / {} s",
        plan.buyers,
        plan.limit,
        plan.window.as_secs()
    );
    match measure(launch, db, plan).await {
        Ok((row, checks)) => {
            results.rows.push(Row { figure, ..row });
            results.checks.extend(checks);
        }
        Err(e) => results.fail(&figure, &plan.buyers.to_string(), &e),
    }
    Ok(())
}

async fn measure(launch: &Launch, db: &Db, plan: &BurstPlan) -> anyhow::Result<(Row, Vec<String>)> {
    let port = env::free_port()?;
    let sandbox_port = env::free_port()?;
    let sandbox_base = format!("http://127.0.0.1:{sandbox_port}");
    let window = plan.window.as_secs().to_string();
    let mut sandbox = launch.sandbox_with(
        "sandbox-burst",
        &[port],
        &[
            ("SANDBOX_LISTEN_ADDR", format!("127.0.0.1:{sandbox_port}")),
            ("SANDBOX_PUBLIC_URL", sandbox_base.clone()),
            ("SANDBOX_RATE_LIMIT", plan.limit.to_string()),
            ("SANDBOX_RATE_WINDOW_SECS", window.clone()),
        ],
    )?;
    let http = crate::load::client()?;
    sandbox
        .wait_ready(
            &http,
            &format!("{sandbox_base}/sandbox"),
            Duration::from_secs(20),
        )
        .await?;
    let mut env = launch.storefront_env(&db.url, port);
    override_env(
        &mut env,
        &[
            ("DHMAD_API_BASE", format!("{sandbox_base}/api/v1")),
            ("DHMAD_RATE_LIMIT", plan.limit.to_string()),
            ("DHMAD_RATE_WINDOW_SECS", window),
        ],
    );
    let bin = launch.bin_dir.join("storefront");
    Service::spawn(
        "storefront-burst-migrate",
        &bin,
        &["migrate"],
        &env,
        &launch.log_dir,
    )?
    .wait_success()
    .await?;
    let mut storefront = Service::spawn("storefront-burst", &bin, &[], &env, &launch.log_dir)?;
    let base = format!("http://127.0.0.1:{port}");
    storefront
        .wait_ready(&http, &format!("{base}/readyz"), Duration::from_secs(30))
        .await?;
    // The sandbox's /sandbox page is not an API call; its log starts empty.
    let started = Instant::now();
    let mut buyers = tokio::task::JoinSet::new();
    for i in 0..plan.buyers {
        let (base, sandbox_base) = (base.clone(), sandbox_base.clone());
        buyers.spawn(async move { buyer(&base, &sandbox_base, i, started).await });
    }
    let journeys: Vec<Journey> = buyers
        .join_all()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let log: Vec<Value> = http
        .get(format!("{sandbox_base}/sandbox/requests"))
        .send()
        .await?
        .json()
        .await?;
    storefront.stop().await?;
    sandbox.stop().await?;

    let reached: Vec<Duration> = journeys.iter().filter_map(|j| j.reached).collect();
    let errors: Vec<&String> = journeys.iter().flat_map(|j| &j.errors).collect();
    let waited = journeys.iter().filter(|j| j.waiting_pages > 0).count();
    let calls: Vec<time::OffsetDateTime> = log
        .iter()
        .filter_map(|r| r["at"].as_str().and_then(|t| dhmad::iso::parse(t).ok()))
        .collect();
    let status = |code: u64| log.iter().filter(|r| r["status"] == code).count();
    let creates = log
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/api/v1/escrows")
        .count();
    let refused = status(429);
    let (first, last) = match (calls.iter().min(), calls.iter().max()) {
        (Some(a), Some(b)) => (*a, *b),
        _ => bail!("the sandbox received no call"),
    };
    let span = Duration::try_from(last - first).unwrap_or_default();
    let windows = (span.as_secs_f64() / plan.window.as_secs_f64()).floor() + 1.0;
    let allowed = windows * f64::from(plan.limit);
    let usage = calls.len() as f64 / allowed;
    let checks = vec![format!(
        "burst: {} of {} buyers reached DHMAD's page, {} waited in line first, {} error answers; \
         DHMAD received {} calls ({} escrows created, {} answered 429) from the first to the last \
         {:.1} s apart",
        reached.len(),
        plan.buyers,
        waited,
        errors.len(),
        calls.len(),
        creates,
        refused,
        span.as_secs_f64()
    )];
    if reached.len() != plan.buyers || !errors.is_empty() {
        bail!(
            "{} of {} buyers reached DHMAD's page; errors: {:?}",
            reached.len(),
            plan.buyers,
            errors.iter().take(5).collect::<Vec<_>>()
        );
    }
    if creates != plan.buyers || refused > 0 {
        bail!(
            "{creates} escrows for {} buyers, {refused} answers 429",
            plan.buyers
        );
    }
    let shown: Vec<u64> = journeys.iter().filter_map(|j| j.first_wait_shown).collect();
    let last_s = reached.iter().max().copied().unwrap_or_default();
    let row = Row {
        figure: String::new(),
        c: plan.buyers.to_string(),
        ours: format!(
            "all {} on DHMAD's page, no error; budget used {:.1} %",
            plan.buyers,
            usage * 100.0
        ),
        anchor: format!(
            "DHMAD allows {} calls from the first to the last call ({:.0} windows)",
            thousands(allowed),
            windows
        ),
        ratio: format!("{usage:.2}"),
        target: "every buyer, no error page, ≥ 0.95 of the budget".into(),
        verdict: if usage >= 0.95 { "met" } else { "**not met**" }.into(),
        raw: format!(
            "time to DHMAD's page: p50 {:.1} s, p95 {:.1} s, last {:.1} s; {} buyers saw the \
             waiting page (expected wait first shown: median {} s, longest {} s)",
            percentile_ms(&reached, 50.0) / 1000.0,
            percentile_ms(&reached, 95.0) / 1000.0,
            last_s.as_secs_f64(),
            waited,
            crate::report::median(&shown.iter().map(|s| *s as f64).collect::<Vec<_>>()),
            shown.iter().max().copied().unwrap_or(0),
        ),
    };
    Ok((row, checks))
}

/// One buyer, from the catalog to DHMAD's page.
async fn buyer(
    base: &str,
    sandbox_base: &str,
    i: usize,
    started: Instant,
) -> anyhow::Result<Journey> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        // Below the storefront's keep-alive limit (HEADER_READ_TIMEOUT_SECS, 10 s), as the load's
        // client: a browser resends a GET the server closed under it, reqwest does not.
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut journey = Journey {
        reached: None,
        errors: Vec::new(),
        waiting_pages: 0,
        first_wait_shown: None,
    };
    let page = http.get(format!("{base}/")).send().await?.text().await?;
    let token = page
        .split_once(r#"name="csrf_token" value=""#)
        .and_then(|(_, rest)| rest.split('"').next())
        .context("no CSRF token on the catalog")?
        .to_owned();
    let email = format!("burst{i}@bench.example");
    let mut r = http
        .post(format!("{base}/checkout"))
        .form(&[
            ("sku", crate::events::PRODUCT_SKU),
            ("email", email.as_str()),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await?;
    // A browser would give up long before: a generous bound on the whole journey.
    let deadline = started + Duration::from_secs(900);
    while Instant::now() < deadline {
        let status = r.status();
        if status.is_client_error() || status.is_server_error() {
            journey
                .errors
                .push(format!("{status} at {}", r.url().path()));
            return Ok(journey);
        }
        if status.is_redirection() {
            let to = r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .context("a redirect without Location")?
                .to_owned();
            if to.starts_with(sandbox_base) {
                journey.reached = Some(started.elapsed());
                return Ok(journey);
            }
            r = http.get(format!("{base}{to}")).send().await?;
            continue;
        }
        // The waiting page: what a browser does with `Refresh`.
        let refresh: u64 = r
            .headers()
            .get("refresh")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .context("a 200 on the way to DHMAD that is not a waiting page")?;
        if journey.first_wait_shown.is_none() {
            journey.first_wait_shown = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
        }
        journey.waiting_pages += 1;
        let again = r.url().clone();
        tokio::time::sleep(Duration::from_secs(refresh)).await;
        r = http.get(again).send().await?;
    }
    journey.errors.push("still waiting after 15 minutes".into());
    Ok(journey)
}
