//! The anchors: the storefront's own statements, captured through the relay
//! (`crate::mirror`) for one request of each kind, written as pgbench scripts; and the floor
//! of any commit here.

use std::{sync::Arc, time::Duration};

use anyhow::{bail, Context};

use crate::{
    events, load,
    mirror::{self, Capture, Key},
    report::{list, median, Results},
    scenarios::{
        check_applied, checkout_ours, duplicate_events, post_webhooks, read_pages, unique_events,
        Anchor, Anchors, Ctx,
    },
};

const INGEST_HEADER: &str = "\\set i :base + :client_id * :per + :n\n\\set n :n + 1";
const DUPLICATE_HEADER: &str =
    "\\set i :base + (:off + :client_id * :per + :n) % :span\n\\set n :n + 1";
const READ_HEADER: &str = "\\set i random(:lo, :hi)";

/// Order `i`'s ids, and how pgbench computes them from `:i`.
fn keys(i: u64) -> [Key; 3] {
    [
        Key {
            value: events::event_id(i),
            token: "@EVT@",
            text_sql: events::SQL_EVENT_ID.into(),
            typed_sql: events::SQL_EVENT_ID.into(),
        },
        Key {
            value: events::escrow_id(i),
            token: "@ESC@",
            text_sql: events::SQL_ESCROW_ID.into(),
            typed_sql: events::SQL_ESCROW_ID.into(),
        },
        Key {
            value: events::order_id(i),
            token: "@ORD@",
            text_sql: format!("{}::text", events::SQL_ORDER_ID),
            typed_sql: events::SQL_ORDER_ID.into(),
        },
    ]
}

/// `host:port` of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> anyhow::Result<String> {
    url.split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(hp, _)| hp.to_owned())
        .context("the database URL has no user@host:port/")
}

/// Captures, from a second storefront behind a relay that reads its protocol, the statements
/// and round trips of each kind of request, and writes the anchors' scripts from them.
pub async fn capture(
    ctx: &mut Ctx,
    launch: &crate::Launch,
    db: &crate::env::Db,
    results: &mut Results,
) -> anyhow::Result<()> {
    let upstream = host_port(&db.url)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let relay = listener.local_addr()?.to_string();
    let cap = Arc::new(Capture::default());
    mirror::spawn_relay(listener, upstream.clone(), cap.clone());
    // The relay reads the protocol: this instance only talks plain TCP.
    let url = db
        .url
        .split('?')
        .next()
        .unwrap_or_default()
        .replacen(&upstream, &relay, 1)
        + "?sslmode=disable";
    let port = launch.capture_port;
    let mut sf = launch.storefront("storefront-capture", &[], &url, port)?;
    let base = format!("http://127.0.0.1:{port}");
    sf.wait_ready(
        &ctx.http,
        &format!("{base}/readyz"),
        Duration::from_secs(30),
    )
    .await?;
    let main_base = std::mem::replace(&mut ctx.base, base);
    let r = capture_with(ctx, &cap, results).await;
    ctx.base = main_base;
    sf.stop().await?;
    let problems = cap.problems();
    if !problems.is_empty() {
        bail!("the relay could not read the storefront's protocol: {problems:?}");
    }
    r
}

async fn get_ok(ctx: &Ctx, path: &str, must_contain: &str) -> anyhow::Result<()> {
    let (status, body) = load::read(ctx.http.get(format!("{}{path}", ctx.base)).send().await)
        .await
        .map_err(anyhow::Error::msg)?;
    if status != 200 || !body.contains(must_contain) {
        bail!("GET {path}: {status}");
    }
    Ok(())
}

/// The statements of one request of each kind, on a fresh order.
struct Captured {
    i: u64,
    unique: Vec<mirror::Stmt>,
    duplicate: Vec<mirror::Stmt>,
    json: Vec<mirror::Stmt>,
    page: Vec<mirror::Stmt>,
    checkout: Vec<mirror::Stmt>,
}

/// Issue 13's anchor for a duplicate, whatever the storefront sends for one: `BEGIN`, the
/// unique event's inbox insert (which conflicts with the stored event) and `ROLLBACK`, as the
/// storefront once did and a handler without a first look would.
fn conflicting_insert(unique: &[mirror::Stmt]) -> anyhow::Result<Vec<mirror::Stmt>> {
    let starts = |s: &mirror::Stmt, with: &str| s.sql.trim_start().starts_with(with);
    let begin = unique
        .iter()
        .position(|s| s.simple && starts(s, "BEGIN"))
        .context("no BEGIN among a unique event's statements")?;
    let insert = begin
        + unique[begin..]
            .iter()
            .position(|s| starts(s, "INSERT INTO webhook_inbox"))
            .context("no inbox insert in a unique event's transaction")?;
    let mut stmts = vec![unique[begin].clone(), unique[insert].clone()];
    stmts.push(mirror::Stmt {
        sql: "ROLLBACK".into(),
        params: Vec::new(),
        simple: true,
        options: stmts[0].options.clone(),
    });
    Ok(stmts)
}

/// Waits until the storefront sends no statement for 300 ms (its jobs are idle), at most 10 s.
async fn settle(cap: &Capture) {
    for _ in 0..33 {
        cap.take();
        tokio::time::sleep(Duration::from_millis(300)).await;
        if cap.take().is_empty() {
            return;
        }
    }
}

fn same_statements(a: &Captured, b: &Captured) -> bool {
    let sql = |v: &[mirror::Stmt]| v.iter().map(|s| s.sql.clone()).collect::<Vec<_>>();
    sql(&a.unique) == sql(&b.unique)
        && sql(&a.duplicate) == sql(&b.duplicate)
        && sql(&a.json) == sql(&b.json)
        && sql(&a.page) == sql(&b.page)
}

async fn capture_once(ctx: &mut Ctx, cap: &Capture) -> anyhow::Result<Captured> {
    let (i, _) = ctx.take(1)?;
    let id = events::order_id(i);
    settle(cap).await;
    post_webhooks(ctx, 1, vec![ctx.webhooks.signed(i)], "processed")
        .await?
        .check("captured event", 1)?;
    let unique = cap.take();
    check_applied(ctx, i, i).await?;
    settle(cap).await;
    post_webhooks(ctx, 1, vec![ctx.webhooks.signed(i)], "duplicate")
        .await?
        .check("captured duplicate", 1)?;
    let duplicate = cap.take();
    settle(cap).await;
    get_ok(ctx, &format!("/api/orders/{id}"), &id).await?;
    let json = cap.take();
    settle(cap).await;
    get_ok(ctx, &format!("/orders/{id}"), &id).await?;
    let page = cap.take();
    settle(cap).await;
    checkout_ours(ctx, 1, "cap-one").await?;
    let checkout = cap.take();
    Ok(Captured {
        i,
        unique,
        duplicate,
        json,
        page,
        checkout,
    })
}

async fn capture_with(ctx: &mut Ctx, cap: &Capture, results: &mut Results) -> anyhow::Result<()> {
    // Steady state first: a warm pool, every statement prepared on its connections. After the
    // jobs' first runs at start: an outbox run that began late found the warm-up's deliver
    // jobs, ran them (each run with work runs again at once), and the warm-up's check failed.
    const WARM: usize = 20;
    const COUNT: usize = 50;
    settle(cap).await;
    unique_events(ctx, 1, WARM).await?;
    duplicate_events(ctx, 1, WARM).await?;
    read_pages(ctx, false, 1, WARM).await?;
    read_pages(ctx, true, 1, WARM).await?;
    checkout_ours(ctx, 3, "cap-warm").await?;

    // Twice, on two orders: both captures must agree, statement for statement, or a
    // background job slipped in and the capture is made again.
    let mut captured = None;
    for attempt in 0..4 {
        let first = capture_once(ctx, cap).await?;
        let second = capture_once(ctx, cap).await?;
        if same_statements(&first, &second) {
            captured = Some(second);
            break;
        }
        results.checks.push(format!(
            "anchors: capture {} disagreed with itself (a background job ran meanwhile); made again",
            attempt + 1
        ));
    }
    let Captured {
        i,
        unique,
        duplicate,
        json,
        page,
        checkout,
    } = captured.context("the storefront's statements differed from one request to the next")?;

    let trips = |before: u64, n: usize| {
        (cap.flights.load(std::sync::atomic::Ordering::Relaxed) - before) as f64 / n as f64
    };
    let mut flights = Vec::new();
    settle(cap).await;
    let f = cap.flights.load(std::sync::atomic::Ordering::Relaxed);
    unique_events(ctx, 1, COUNT).await?;
    flights.push(("unique paid event", trips(f, COUNT), unique.len()));
    settle(cap).await;
    let f = cap.flights.load(std::sync::atomic::Ordering::Relaxed);
    duplicate_events(ctx, 1, COUNT).await?;
    flights.push(("duplicate event", trips(f, COUNT), duplicate.len()));
    settle(cap).await;
    let f = cap.flights.load(std::sync::atomic::Ordering::Relaxed);
    read_pages(ctx, false, 1, COUNT).await?;
    flights.push(("`GET /api/orders/{id}`", trips(f, COUNT), json.len()));
    settle(cap).await;
    let f = cap.flights.load(std::sync::atomic::Ordering::Relaxed);
    read_pages(ctx, true, 1, COUNT).await?;
    flights.push(("`GET /orders/{id}`", trips(f, COUNT), page.len()));
    settle(cap).await;
    let f = cap.flights.load(std::sync::atomic::Ordering::Relaxed);
    checkout_ours(ctx, 10, "cap").await?;
    flights.push(("checkout", trips(f, 10), checkout.len()));
    cap.take();

    let keys = keys(i);
    let write = |name: &str, stmts: &[mirror::Stmt], header: &str| -> anyhow::Result<Anchor> {
        // pgbench runs the statements with the options of the connection that sent them.
        let options = stmts.first().and_then(|s| s.options.clone());
        if stmts.iter().any(|s| s.options != options) {
            anyhow::bail!("the {name} statements came from connections with different options");
        }
        let m = mirror::script(stmts, header, &keys, options.as_deref())
            .with_context(|| format!("writing the {name} anchor"))?;
        Ok(Anchor {
            path: ctx.pg.script(name, &m.script)?,
            mirror: m,
        })
    };
    ctx.anchors = Anchors {
        ingest: write("ingest", &unique, INGEST_HEADER)?,
        duplicate: write("duplicate", &conflicting_insert(&unique)?, DUPLICATE_HEADER)?,
        order_json: write("order-json", &json, READ_HEADER)?,
        order_page: write("order-page", &page, READ_HEADER)?,
    };
    results.profile.push(format!(
        "- database round trips per request at c = 1 (counted by the relay; statements executed in brackets): {}",
        flights
            .iter()
            .map(|(what, trips, stmts)| format!("{what} {trips:.1} ({stmts})"))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    let numbered = |lines: Vec<String>| {
        lines
            .iter()
            .enumerate()
            .map(|(k, s)| format!("  {}. `{}`", k + 1, s.replace('`', "'")))
            .collect::<Vec<_>>()
            .join("\n")
    };
    results.profile.push(format!(
        "- statements of one duplicate event, captured:\n{}",
        numbered(mirror::summarize(&duplicate))
    ));
    for (what, a) in [
        ("unique paid event, captured", &ctx.anchors.ingest),
        (
            "duplicate's anchor, issue 13's (`BEGIN`, the unique event's inbox insert, `ROLLBACK`)",
            &ctx.anchors.duplicate,
        ),
        ("`GET /api/orders/{id}`, captured", &ctx.anchors.order_json),
        ("`GET /orders/{id}`, captured", &ctx.anchors.order_page),
    ] {
        results.profile.push(format!(
            "- statements of one {what} (anchor script `{}`, `PGOPTIONS={}`):\n{}",
            a.path.display(),
            a.options(),
            numbered(a.mirror.summary.clone())
        ));
    }
    results.profile.push(format!(
        "- statements of one checkout (`POST /api/checkout`, a new order), captured:\n{}",
        numbered(mirror::summarize(&checkout))
    ));
    commit_latency(ctx, results).await?;
    results.checks.push(format!(
        "anchors: statements captured from the storefront (event, duplicate, JSON, page: {}, {}, {}, {} statements); checkout statements: {}",
        unique.len(),
        duplicate.len(),
        json.len(),
        page.len(),
        checkout.len()
    ));
    Ok(())
}

/// What one commit costs here: pgbench, one client, a one-row INSERT per transaction. Every
/// transaction the storefront commits waits about this long for the WAL to reach the disk.
async fn commit_latency(ctx: &Ctx, results: &mut Results) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TABLE bench_commit (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())",
    )
    .execute(&ctx.pool)
    .await?;
    let path = ctx
        .pg
        .script("commit", "INSERT INTO bench_commit DEFAULT VALUES;\n")?;
    let mut samples = Vec::new();
    for _ in 0..3 {
        let r = ctx.pg.run(&path, 1, 300, &[], "", ctx.plan.cap).await?;
        samples.push(1000.0 / r.tps);
    }
    results.profile.push(format!(
        "- one committed one-row INSERT (pgbench, c = 1): {:.2} ms (runs: {}): the floor of any transaction the storefront commits here",
        median(&samples),
        list(&samples, |x| format!("{x:.2}"))
    ));
    Ok(())
}
