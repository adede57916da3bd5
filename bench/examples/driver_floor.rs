//! Is sqlx, the storefront's driver, a slower client than pgbench, the anchors' client?
//!
//! The same statements from a bare loop, with no HTTP and no logic around them: sqlx on the
//! storefront's runtime (Tokio, two workers, one connection per worker task) against pgbench
//! (`-M prepared -j 1`, as the bench runs it), alternating, at c = 8, on a throw-away database.
//! Two shapes: a paid event's (a read, then a transaction of an insert, a locking read, an
//! update and an insert) and the JSON read's (one `SELECT` by id). Each line gives the rate and
//! the client's CPU per unit (user + system, from `getrusage`). BENCHMARKS.md ("Left") quotes it.
//!
//! `cargo run --release -p storefront-bench --example driver_floor [-- ROUNDS SECONDS]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{Connection, Executor, PgConnection};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const CLIENTS: usize = 8;
const ORDERS: i64 = 100_000;

const SETUP: &str = "CREATE TABLE inbox (id bigserial PRIMARY KEY, k text UNIQUE, payload jsonb);
CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, n int NOT NULL);
INSERT INTO orders SELECT g, 'pending', 0 FROM generate_series(0, 99999) g;";

const PGBENCH_TX: &str = "\\set i random(1, 2000000000)
\\set oid :i % 100000
SELECT 1 FROM inbox WHERE k = 'pg-' || :i;
BEGIN;
INSERT INTO inbox (k, payload) VALUES ('pg-' || :i, '{\"a\": 1, \"b\": \"paid\"}') ON CONFLICT DO NOTHING;
SELECT n, status FROM orders WHERE id = :oid FOR NO KEY UPDATE;
UPDATE orders SET status = 'paid', n = n + 1 WHERE id = :oid;
INSERT INTO inbox (k, payload) VALUES ('pg-' || :i || 'x', '{\"a\": 1, \"b\": \"paid\"}') ON CONFLICT DO NOTHING;
COMMIT;
";

const PGBENCH_SELECT: &str = "\\set i random(0, 99999)
SELECT n, status FROM orders WHERE id = :i;
";

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Tx,
    Select,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let secs: u64 = args.next().map_or(Ok(5), |a| a.parse())?;
    let db = format!("driver_floor_{}", std::process::id());
    let mut admin = PgConnection::connect(&format!("{SERVER}/postgres")).await?;
    admin
        .execute(format!("CREATE DATABASE {db}").as_str())
        .await?;
    let url = format!("{SERVER}/{db}?sslmode=disable");
    let run = async {
        PgConnection::connect(&url)
            .await?
            .execute(SETUP)
            .await
            .context("setup")?;
        let dir = std::env::temp_dir().join(&db);
        std::fs::create_dir_all(&dir)?;
        for (shape, script, name) in [
            (Shape::Tx, PGBENCH_TX, "paid-event shape"),
            (Shape::Select, PGBENCH_SELECT, "SELECT by id"),
        ] {
            let file = dir.join(format!("{}.sql", name.replace(' ', "-")));
            std::fs::write(&file, script)?;
            for round in 0..rounds {
                // Alternate which side goes first, as the bench does.
                for sqlx_first in [round % 2 == 0, round % 2 != 0] {
                    if sqlx_first {
                        let (rate, cpu) = sqlx_loop(&url, shape, Duration::from_secs(secs)).await?;
                        eprintln!("{name}, c = {CLIENTS}: sqlx    {rate:>8.0} /s, client CPU {cpu:>5.1} µs each");
                    } else {
                        let (rate, cpu) = pgbench(&db, &file, secs).await?;
                        eprintln!("{name}, c = {CLIENTS}: pgbench {rate:>8.0} /s, client CPU {cpu:>5.1} µs each");
                    }
                }
            }
        }
        anyhow::Ok(())
    };
    let out = run.await;
    admin
        .execute(format!("DROP DATABASE {db} WITH (FORCE)").as_str())
        .await?;
    out
}

/// The statements from `CLIENTS` tasks, each on a connection of its own, for `dur`.
async fn sqlx_loop(url: &str, shape: Shape, dur: Duration) -> anyhow::Result<(f64, f64)> {
    let done = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(u64::from(std::process::id()) << 32));
    let mut conns = Vec::new();
    for _ in 0..CLIENTS {
        conns.push(PgConnection::connect(url).await?);
    }
    let cpu0 = own_cpu();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (done, next) = (Arc::clone(&done), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let payload = serde_json::json!({"a": 1, "b": "paid"});
            while start.elapsed() < dur {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let id = i64::try_from(i)? % ORDERS;
                let id = i32::try_from(id)?;
                if shape == Shape::Select {
                    let _: Option<(i32, String)> =
                        sqlx::query_as("SELECT n, status FROM orders WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut conn)
                            .await?;
                } else {
                    let k = format!("sx-{i}");
                    let _: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM inbox WHERE k = $1")
                        .bind(&k)
                        .fetch_optional(&mut conn)
                        .await?;
                    let mut tx = conn.begin().await?;
                    sqlx::query("INSERT INTO inbox (k, payload) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(&k)
                        .bind(&payload)
                        .execute(&mut *tx)
                        .await?;
                    let _: Option<(i32, String)> = sqlx::query_as(
                        "SELECT n, status FROM orders WHERE id = $1 FOR NO KEY UPDATE",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE orders SET status = 'paid', n = n + 1 WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("INSERT INTO inbox (k, payload) VALUES ($1 || 'x', $2) ON CONFLICT DO NOTHING")
                        .bind(&k)
                        .bind(&payload)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let wall = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed) as f64;
    Ok((n / wall, (own_cpu() - cpu0) * 1e6 / n))
}

/// pgbench as the bench runs its anchors; its rate and its CPU per transaction.
async fn pgbench(db: &str, script: &std::path::Path, secs: u64) -> anyhow::Result<(f64, f64)> {
    let cpu0 = children_cpu();
    let out = tokio::process::Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-n",
            "-M",
            "prepared",
            "-j",
            "1",
        ])
        .args(["-c", &CLIENTS.to_string(), "-T", &secs.to_string(), "-f"])
        .arg(script)
        .arg(db)
        .env("PGOPTIONS", "")
        .output()
        .await
        .context("pgbench (apt install postgresql-client)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| {
                v.split_whitespace()
                    .next()?
                    .split('/')
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
    };
    let (Some(tps), Some(n)) = (
        field("tps = "),
        field("number of transactions actually processed: "),
    ) else {
        anyhow::bail!(
            "pgbench said:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    Ok((tps, (children_cpu() - cpu0) * 1e6 / n))
}

fn own_cpu() -> f64 {
    cpu_seconds(11)
}

fn children_cpu() -> f64 {
    cpu_seconds(13)
}

/// Two CPU fields of `/proc/self/stat` from `at` on, counted after the command's closing
/// parenthesis (11: utime and stime, the process's own; 13: cutime and cstime, its reaped
/// children's), in seconds (USER_HZ is 100 on Linux).
fn cpu_seconds(at: usize) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(at)
        .take(2)
        .map(|x| x.parse::<f64>().unwrap_or(0.0))
        .sum();
    ticks / 100.0
}
