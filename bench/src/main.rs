//! `storefront-bench`: the storefront's figures, each side by side with its anchor in the same
//! run (see `BENCHMARKS.md`). Run it with `scripts/bench`, which builds the release binaries
//! first; `--quick` is a smoke run, `--profile` adds a CPU profile of the storefront.
// The bench reports on stdout: that is what it is for.
#![allow(clippy::print_stdout)]

mod anchors;
mod burst;
mod cpu;
mod env;
mod events;
mod load;
mod mirror;
mod pgbench;
mod profile;
mod report;
mod scenarios;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use dhmad::{CreateEscrow, Currency, EscrowMode};
use rust_decimal::Decimal;

use crate::{
    env::{Db, Service},
    events::Webhooks,
    pgbench::PgBench,
    report::{list, median, Machine, Results, Row},
    scenarios::{Anchors, Ctx, Plan},
};

/// The sandbox's public demo key (`.env.example`), given to both sides.
const API_KEY: &str = "sk_sandbox_c67da261929eae4a6ac7727f8dc5c7fc6bb2bee688938bc6ae0dffba1bdd5f6d";

const USAGE: &str = "usage: storefront-bench [--quick] [--profile] [--no-write] [--bin-dir DIR] \
[--pg postgres://USER@HOST:PORT] [--sslmode MODE] [--out BENCHMARKS.md] [--code TEXT]

  --quick     each figure once, small counts (a smoke run of a minute or two)
  --profile   also a CPU profile of the storefront under ingest at c = 8 (perf)
  --no-write  print the results only (a full run otherwise updates --out between its markers)
  --bin-dir   where the release storefront and dhmad-sandbox are (default: next to this binary)
  --pg        the Postgres server (default postgres://postgres@127.0.0.1:5432; trust auth)
  --sslmode   sslmode of both the storefront's and pgbench's connections (default: disable,
              as for a database on the same host; prefer measures with TLS where the server has it)
  --code      what the binaries were built from, for the report (default: git describe)";

pub struct Args {
    quick: bool,
    profile: bool,
    write: bool,
    bin_dir: PathBuf,
    pub pg: String,
    pub sslmode: Option<String>,
    out: PathBuf,
    code: Option<String>,
}

fn args() -> anyhow::Result<Option<Args>> {
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut a = Args {
        quick: false,
        profile: false,
        write: true,
        bin_dir: exe_dir,
        pg: "postgres://postgres@127.0.0.1:5432".into(),
        sslmode: Some("disable".into()),
        out: "BENCHMARKS.md".into(),
        code: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--profile" => a.profile = true,
            "--no-write" => a.write = false,
            "--bin-dir" => a.bin_dir = value("--bin-dir")?.into(),
            "--pg" => a.pg = value("--pg")?,
            "--sslmode" => a.sslmode = Some(value("--sslmode")?),
            "--out" => a.out = value("--out")?.into(),
            "--code" => a.code = Some(value("--code")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(Some(a))
}

// One thread: the load generator and pgbench (`-j 1`) each use one, on a machine where every
// core the storefront does not get counts.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storefront-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let mut machine = Machine::probe();
    if let Some(code) = &args.code {
        machine.commit.clone_from(code);
    }
    let db = match Db::create(&args.pg, args.sslmode.as_deref(), "").await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("storefront-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("bench: database {} created", db.name);
    let outcome = tokio::select! {
        r = run(&args, &db, &mut machine) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    // The children are gone (stopped, or killed when the run was dropped): drop the database.
    let name = db.name.clone();
    match db.drop_database().await {
        Ok(()) => println!("bench: database {name} dropped"),
        Err(e) => eprintln!("storefront-bench: could not drop database {name}: {e:#}"),
    }
    if let Err(e) = Db::drop_leftover(&args.pg, "_burst").await {
        eprintln!("storefront-bench: could not drop the burst's database: {e:#}");
    }
    let results = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("storefront-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    machine.load_end = report::loadavg();
    let mode = if args.quick { "quick" } else { "full" };
    let text = report::markdown(&results, &machine, mode, started.elapsed());
    println!("\n{text}");
    if let Err(e) = save(&args, &text) {
        eprintln!("storefront-bench: {e:#}");
        return ExitCode::FAILURE;
    }
    if results.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "storefront-bench: {} figure(s) not reported, a check failed",
            results.failures.len()
        );
        ExitCode::FAILURE
    }
}

/// Every run's results go to `target/bench/last-<mode>.md`; a full run also updates `--out`.
fn save(args: &Args, text: &str) -> anyhow::Result<()> {
    let dir = Path::new("target/bench");
    std::fs::create_dir_all(dir)?;
    let mode = if args.quick { "quick" } else { "full" };
    let last = dir.join(format!("last-{mode}.md"));
    std::fs::write(&last, text)?;
    println!("bench: results written to {}", last.display());
    if args.quick || !args.write {
        return Ok(());
    }
    let doc = std::fs::read_to_string(&args.out)
        .with_context(|| format!("reading {}", args.out.display()))?;
    let doc = report::splice(&doc, text).with_context(|| {
        format!(
            "{} has no <!-- bench:results:start --> … <!-- bench:results:end --> markers",
            args.out.display()
        )
    })?;
    std::fs::write(&args.out, doc)?;
    println!("bench: results written to {}", args.out.display());
    Ok(())
}

/// How the storefront and the sandbox are started.
pub struct Launch {
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    pub secret: String,
    pub sandbox_port: u16,
    /// Where the second storefront, the one the anchors' statements are captured from, listens.
    pub capture_port: u16,
}

impl Launch {
    pub fn storefront_env(&self, db_url: &str, port: u16) -> Vec<(String, String)> {
        // `localhost`: DHMAD accepts plain-http redirect URLs for localhost only.
        let base = format!("http://localhost:{port}");
        [
            ("DATABASE_URL", db_url.to_owned()),
            ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
            ("PUBLIC_BASE_URL", base),
            (
                "DHMAD_API_BASE",
                format!("http://127.0.0.1:{}/api/v1", self.sandbox_port),
            ),
            ("DHMAD_API_KEY", API_KEY.into()),
            ("DHMAD_WEBHOOK_SECRETS", self.secret.clone()),
            ("DHMAD_SELLER_EMAIL", "merchant@shop.example".into()),
            ("RUST_LOG", "warn".into()),
            // Every request of the load comes from 127.0.0.1: the per-address limits would
            // measure the limiter. 60 000 a minute is far above what a run sends.
            ("RATE_LIMIT_CHECKOUT_PER_MIN", "60000".into()),
            ("RATE_LIMIT_ACTIONS_PER_MIN", "60000".into()),
            // DHMAD's call budget is kept (every checkout takes its calls from it, as in
            // production) but large enough for the run's checkouts: the burst scenario sets
            // its own.
            ("DHMAD_RATE_LIMIT", "20000".into()),
            // The background jobs (outbox, reconciler, sweeper) run once at start, then wait:
            // the figures are the request paths' own.
            ("OUTBOX_INTERVAL_SECS", "86400".into()),
            ("RECONCILE_INTERVAL_SECS", "86400".into()),
            ("SESSION_SWEEP_INTERVAL_SECS", "86400".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        // The runtime's worker count, when the bench is given one (an experiment's knob).
        .chain(
            std::env::var("TOKIO_WORKER_THREADS")
                .ok()
                .map(|v| ("TOKIO_WORKER_THREADS".to_owned(), v)),
        )
        .collect()
    }

    pub fn storefront(
        &self,
        name: &str,
        args: &[&str],
        db_url: &str,
        port: u16,
    ) -> anyhow::Result<Service> {
        Service::spawn(
            name,
            &self.bin_dir.join("storefront"),
            args,
            &self.storefront_env(db_url, port),
            &self.log_dir,
        )
    }

    /// The sandbox, accepting the callbacks of storefronts on `ports`.
    fn sandbox(&self, ports: &[u16]) -> anyhow::Result<Service> {
        self.sandbox_with("sandbox", ports, &[])
    }

    /// [`Launch::sandbox`] with some variables set otherwise (`extra` wins).
    pub fn sandbox_with(
        &self,
        name: &str,
        ports: &[u16],
        extra: &[(&str, String)],
    ) -> anyhow::Result<Service> {
        let mut env: Vec<(String, String)> = [
            (
                "SANDBOX_LISTEN_ADDR",
                format!("127.0.0.1:{}", self.sandbox_port),
            ),
            (
                "SANDBOX_PUBLIC_URL",
                format!("http://127.0.0.1:{}", self.sandbox_port),
            ),
            // No webhooks from the sandbox: the bench sends its own, counted.
            ("SANDBOX_WEBHOOK_URLS", String::new()),
            ("SANDBOX_API_KEY", API_KEY.into()),
            ("SANDBOX_WEBHOOK_SECRET", self.secret.clone()),
            (
                "SANDBOX_ALLOWED_REDIRECT_URLS",
                ports
                    .iter()
                    .map(|p| format!("http://localhost:{p}/checkout/callback"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("SANDBOX_SELLER_EMAIL", "merchant@shop.example".into()),
            ("SANDBOX_RATE_LIMIT", "100000000".into()),
            ("RUST_LOG", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        override_env(&mut env, extra);
        Service::spawn(
            name,
            &self.bin_dir.join("dhmad-sandbox"),
            &[],
            &env,
            &self.log_dir,
        )
    }
}

async fn run(args: &Args, db: &Db, machine: &mut Machine) -> anyhow::Result<Results> {
    let plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let log_dir = PathBuf::from("target/bench");
    std::fs::create_dir_all(&log_dir)?;
    for bin in ["storefront", "dhmad-sandbox"] {
        if !args.bin_dir.join(bin).is_file() {
            bail!(
                "{} not found: build it first (cargo build --release -p storefront -p dhmad-sandbox) or pass --bin-dir",
                args.bin_dir.join(bin).display()
            );
        }
    }
    let t0 = Instant::now();
    let mut results = Results::default();
    let http = load::client()?;
    let launch = Launch {
        bin_dir: args.bin_dir.clone(),
        log_dir: log_dir.clone(),
        secret: format!("bench-secret-{}-{}", std::process::id(), started_nanos()),
        sandbox_port: env::free_port()?,
        capture_port: env::free_port()?,
    };
    let port = env::free_port()?;
    let base = format!("http://127.0.0.1:{port}");

    let (version, settings, tls, others): (String, String, Option<bool>, i64) = sqlx::query_as(
        "SELECT split_part(version(), ' on ', 1),
                -- What changes the figures and is the server's, not the run's, to say.
                (SELECT string_agg(name || ' ' || current_setting(name), ', ' ORDER BY name) FROM pg_settings
                  WHERE name IN ('autovacuum', 'fsync', 'synchronous_commit', 'shared_buffers',
                                 'max_wal_size', 'wal_level')),
                (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()),
                (SELECT count(*) FROM pg_stat_activity
                  WHERE backend_type = 'client backend' AND datname IS DISTINCT FROM current_database())",
    )
    .fetch_one(&db.pool)
    .await?;
    machine.postgres = format!("{version} ({settings})");
    machine.db_tls = match (tls, args.sslmode.as_deref()) {
        (Some(true), m) => format!(
            "TLS (sslmode={}), the same for pgbench",
            m.unwrap_or("prefer")
        ),
        (_, m) => format!("plain TCP (sslmode={})", m.unwrap_or("prefer")),
    };
    machine.other_backends_start = others;

    let mut sandbox = launch.sandbox(&[port, launch.capture_port])?;
    let sandbox_base = format!("http://127.0.0.1:{}", launch.sandbox_port);
    sandbox
        .wait_ready(
            &http,
            &format!("{sandbox_base}/sandbox"),
            Duration::from_secs(20),
        )
        .await?;
    launch
        .storefront("storefront-migrate", &["migrate"], &db.url, port)?
        .wait_success()
        .await?;
    println!("bench: sandbox up, migrations applied");

    // Time from process start to /readyz 200 (migrations already applied), then the last
    // instance serves the load.
    let mut ready = Vec::new();
    let mut storefront = None;
    for k in 0..plan.ready_reps {
        let mut s = launch.storefront("storefront", &[], &db.url, port)?;
        let t = s
            .wait_ready(&http, &format!("{base}/readyz"), Duration::from_secs(30))
            .await?;
        ready.push(t.as_secs_f64() * 1000.0);
        if k + 1 == plan.ready_reps {
            storefront = Some(s);
        } else {
            s.stop().await?;
        }
    }
    let storefront = storefront.context("no storefront started")?;
    let idle = storefront.memory()?;

    // An escrow as the sandbox makes it: the shape of every webhook's snapshot.
    let dhmad = dhmad::Client::builder(API_KEY)
        .base_url(format!("{sandbox_base}/api/v1"))
        .timeout(Duration::from_secs(10))
        .build()?;
    let callback_url = format!("http://localhost:{port}/checkout/callback");
    let template = dhmad
        .create_escrow(
            &CreateEscrow::new(
                format!("{} · order {}", events::PRODUCT_NAME, events::order_id(0)),
                Decimal::new(15_000, 3),
                "buyer0@bench.example",
            )
            .mode(EscrowMode::Instant)
            .currency(Currency::from("TND")),
        )
        .await
        .context("creating the template escrow in the sandbox")?;
    let seeded_at = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let seeded_now = time::OffsetDateTime::now_utc();
    let webhooks = Arc::new(Webhooks::new(
        &launch.secret,
        &template.escrow,
        time::OffsetDateTime::now_utc() - time::Duration::seconds(5),
    ));

    let needed = plan.orders_needed(args.profile);
    let t = Instant::now();
    for lo in (1..=needed).step_by(20_000) {
        events::seed(
            &db.pool,
            lo,
            (lo + 19_999).min(needed),
            seeded_at,
            seeded_now,
        )
        .await?;
    }
    sqlx::raw_sql("VACUUM ANALYZE").execute(&db.pool).await?;
    println!(
        "bench: {needed} orders seeded in {:.1} s; measuring ({} run)",
        t.elapsed().as_secs_f64(),
        plan.mode
    );

    let pg = PgBench::new(&db.url, &log_dir);
    let mut ctx = Ctx {
        plan: plan.clone(),
        http: http.clone(),
        pool: db.pool.clone(),
        pg,
        anchors: Anchors::default(),
        storefront,
        base,
        webhooks,
        dhmad,
        callback_url,
        next: 1,
        seeded: needed,
        rss_peak_c32_kib: 0,
    };

    let step = |name: &str| println!("bench: {name} ({:.0} s so far)", t0.elapsed().as_secs_f64());
    step("capturing the storefront's statements for the anchors");
    anchors::capture(&mut ctx, &launch, db, &mut results).await?;
    step("webhook ingest");
    scenarios::ingest(&mut ctx, &mut results).await?;
    step("duplicate deliveries");
    scenarios::duplicates(&mut ctx, &mut results).await?;
    step("order reads");
    scenarios::reads(&mut ctx, &mut results).await?;
    step("checkout");
    scenarios::checkout(&mut ctx, &mut results).await?;

    let end = ctx.storefront.memory()?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let peak = mib(ctx.rss_peak_c32_kib);
    results.rows.push(Row {
        figure: "storefront RSS under load".into(),
        c: "32".into(),
        ours: format!("peak {peak:.1} MiB"),
        anchor: "—".into(),
        ratio: "—".into(),
        target: "< 32 MiB".into(),
        verdict: if peak > 0.0 && peak < 32.0 {
            "met"
        } else {
            "**not met**"
        }
        .into(),
        raw: format!(
            "VmRSS sampled every 20 ms during the c = 32 rounds; idle after start {:.1} MiB; \
             VmHWM (peak of the whole run) {:.1} MiB; VmRSS at the end {:.1} MiB",
            mib(idle.rss_kib),
            mib(end.hwm_kib),
            mib(end.rss_kib)
        ),
    });
    results.rows.push(Row {
        figure: "process start → `/readyz` 200".into(),
        c: "—".into(),
        ours: format!("{:.0} ms", median(&ready)),
        anchor: "—".into(),
        ratio: "—".into(),
        target: "—".into(),
        verdict: "—".into(),
        raw: format!("{} ms", list(&ready, |x| format!("{x:.0}"))),
    });

    if args.profile {
        step("profile");
        if let Err(e) = profile::run(&mut ctx, &mut results).await {
            results.profile.push(format!("- profile incomplete: {e:#}"));
        }
    }

    machine.other_backends_end = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE backend_type = 'client backend' AND datname IS DISTINCT FROM current_database()",
    )
    .fetch_one(&db.pool)
    .await?;
    let (tls, all): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*)
           FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
          WHERE a.datname = current_database()",
    )
    .fetch_one(&db.pool)
    .await?;
    machine.db_tls = format!(
        "{}; at the end, {tls} of the {all} connections to the bench database (the storefront's and the bench's) used TLS",
        machine.db_tls
    );
    ctx.storefront.stop().await?;
    sandbox.stop().await?;
    step("burst past DHMAD's rate limit");
    let burst = if args.quick {
        burst::BurstPlan::quick()
    } else {
        burst::BurstPlan::full()
    };
    burst::run(&launch, args, &burst, &mut results).await?;
    Ok(results)
}

/// Sets each of `extra` in `env`, replacing a variable already there.
pub fn override_env(env: &mut Vec<(String, String)>, extra: &[(&str, String)]) {
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push(((*k).to_owned(), v.clone()));
    }
}

fn started_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
