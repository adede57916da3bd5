//! The real binary: `--help`, `--version`, settings errors, a taken port, `healthcheck`, and
//! its access log; `reconcile` after the buyers in line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{
    sandbox::{world, World},
    *,
};
use sqlx::PgPool;

const BIN: &str = env!("CARGO_BIN_EXE_storefront");

/// Runs the storefront binary with only `env` as its environment; fails the test if it has not
/// exited within `limit` (it would be serving).
fn run(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("storefront {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn utf8(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The storefront's variables as `.env.example` documents them (set or commented out).
fn documented_variables() -> Vec<String> {
    let example = include_str!("../../../.env.example");
    let storefront = example.split("# ---- dhmad-sandbox").next().unwrap();
    let mut vars: Vec<String> = storefront
        .lines()
        .map(|l| l.trim_start_matches('#').trim_start())
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_owned)
        .collect();
    vars.sort();
    vars.dedup();
    assert!(vars.len() > 20, "{vars:?}");
    vars
}

#[test]
fn help_and_version_answer_at_once_without_serving() {
    // A port nobody may take: were the binary to serve, it would bind here and not exit.
    let env = [("LISTEN_ADDR", "127.0.0.1:0"), ("PATH", "/usr/bin:/bin")];
    let limit = Duration::from_secs(10);
    let version = format!(" {}\n", env!("CARGO_PKG_VERSION"));
    for args in [
        &["--version"][..],
        &["-V"],
        &["serve", "--version"],
        &["migrate", "-V"],
    ] {
        let out = run(args, &env, limit);
        assert!(out.status.success(), "{args:?}: {}", utf8(&out.stderr));
        let said = utf8(&out.stdout);
        assert!(
            said.starts_with("storefront") && said.ends_with(&version),
            "{args:?}: {said}"
        );
    }
    let vars = documented_variables();
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["help", "reconcile"],
    ] {
        let out = run(args, &env, limit);
        assert!(out.status.success(), "{args:?}: {}", utf8(&out.stderr));
        let help = utf8(&out.stdout);
        for var in &vars {
            assert!(
                help.contains(&format!("[env: {var}]")),
                "{args:?} does not document {var}:\n{help}"
            );
        }
    }
    let out = run(&["--help"], &env, limit);
    let help = utf8(&out.stdout);
    for command in ["serve", "migrate", "reconcile", "healthcheck"] {
        assert!(help.contains(&format!("  {command} ")), "{help}");
    }
    assert!(help.contains("[default: 127.0.0.1:3000]"), "{help}");
    // Secrets set in the environment never show in the help.
    let secret = [
        ("DHMAD_WEBHOOK_SECRETS", "do-not-print-me"),
        ("PATH", "/usr/bin:/bin"),
    ];
    let out = run(&["--help"], &secret, limit);
    assert!(!utf8(&out.stdout).contains("do-not-print-me"));

    let out = run(&["healthcheck", "--help"], &env, limit);
    assert!(out.status.success());
    assert!(utf8(&out.stdout).contains("[env: LISTEN_ADDR]"));
    let out = run(&["frobnicate"], &env, limit);
    assert_eq!(out.status.code(), Some(2), "{}", utf8(&out.stderr));
}

/// A binary run away from its source tree (a copied artefact) served every page without its
/// stylesheet, ready all the same: it now names `STATIC_DIR` and does not start.
#[test]
fn serve_refuses_a_static_dir_without_the_stylesheet() {
    let env = [
        ("DATABASE_URL", "postgres://127.0.0.1:9/never-reached"),
        ("DHMAD_WEBHOOK_SECRETS", "a-secret"),
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("STATIC_DIR", "/nonexistent/static"),
        ("PATH", "/usr/bin:/bin"),
    ];
    let out = run(&["serve"], &env, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    let err = utf8(&out.stderr);
    assert!(
        err.contains("STATIC_DIR") && err.contains("/nonexistent/static"),
        "{err}"
    );
}

#[test]
fn every_flag_reaches_the_configuration_and_all_bad_settings_are_listed() {
    let bad = [
        ("--listen-addr", "nowhere", "LISTEN_ADDR"),
        ("--public-base-url", "ftp://shop", "PUBLIC_BASE_URL"),
        ("--dhmad-api-base", "not a url", "DHMAD_API_BASE"),
        ("--dhmad-api-key", "sk_nope", "DHMAD_API_KEY"),
        ("--dhmad-seller-email", "merchant", "DHMAD_SELLER_EMAIL"),
        ("--dhmad-checkout-origin", "nope", "DHMAD_CHECKOUT_ORIGIN"),
        ("--dhmad-timeout-secs", "0", "DHMAD_TIMEOUT_SECS"),
        ("--admin-token", "short", "ADMIN_TOKEN"),
        ("--smtp-url", "http://mail", "SMTP_URL"),
        ("--mail-from", "@@", "MAIL_FROM"),
        ("--outbox-interval-secs", "x", "OUTBOX_INTERVAL_SECS"),
        ("--reconcile-interval-secs", "-1", "RECONCILE_INTERVAL_SECS"),
        ("--reconcile-after-secs", "0", "RECONCILE_AFTER_SECS"),
        (
            "--session-sweep-interval-secs",
            "0",
            "SESSION_SWEEP_INTERVAL_SECS",
        ),
        (
            "--abandoned-order-grace-secs",
            "0",
            "ABANDONED_ORDER_GRACE_SECS",
        ),
        ("--max-connections", "0", "MAX_CONNECTIONS"),
        (
            "--database-max-connections",
            "1001",
            "DATABASE_MAX_CONNECTIONS",
        ),
        (
            "--header-read-timeout-secs",
            "0",
            "HEADER_READ_TIMEOUT_SECS",
        ),
        (
            "--rate-limit-checkout-per-min",
            "0",
            "RATE_LIMIT_CHECKOUT_PER_MIN",
        ),
        (
            "--rate-limit-actions-per-min",
            "0",
            "RATE_LIMIT_ACTIONS_PER_MIN",
        ),
        ("--client-ip-header", "bad header", "CLIENT_IP_HEADER"),
    ];
    let mut args = vec!["migrate".to_owned()];
    for (flag, value, _) in &bad {
        args.push(format!("{flag}={value}"));
    }
    // The required ones, given as flags only.
    args.extend([
        "--database-url=postgres://127.0.0.1:9/never-reached".to_owned(),
        "--dhmad-webhook-secrets=a-secret-given-as-a-flag".to_owned(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // An environment value loses to its flag.
    let env = [("LISTEN_ADDR", "127.0.0.1:3000"), ("PATH", "/usr/bin:/bin")];
    let out = run(&args, &env, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    let err = utf8(&out.stderr);
    assert!(
        err.starts_with("storefront: invalid configuration:"),
        "{err}"
    );
    for (_, _, var) in &bad {
        assert!(
            err.contains(&format!("  - {var}: ")),
            "{var} not reported:\n{err}"
        );
    }
    for var in ["DATABASE_URL", "DHMAD_WEBHOOK_SECRETS"] {
        assert!(
            !err.contains(var),
            "{var} given as a flag was not seen:\n{err}"
        );
    }
}

#[test]
fn a_taken_port_is_one_line_and_a_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let env = [
        ("LISTEN_ADDR", addr.as_str()),
        // Never reached: the port is bound before the database is asked anything.
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:9/never"),
        ("DHMAD_WEBHOOK_SECRETS", "a-test-secret"),
        ("PATH", "/usr/bin:/bin"),
    ];
    for args in [&[][..], &["serve"]] {
        let out = run(args, &env, Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            utf8(&out.stderr),
            format!("storefront: cannot listen on {addr} (LISTEN_ADDR): address already in use\n"),
            "{args:?}"
        );
        assert_eq!(
            utf8(&out.stdout),
            "",
            "{args:?}: nothing logged before failing"
        );
    }
}

/// The URL of the per-test database `pool` uses, on the server of `DATABASE_URL`.
fn database_url(pool: &PgPool) -> String {
    let mut url = url::Url::parse(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    url.set_path(pool.connect_options().get_database().unwrap());
    url.to_string()
}

/// The binary serving on a port it chose, its stdout collected line by line.
struct Served {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    addr: String,
}

impl Served {
    fn start(pool: &PgPool) -> Self {
        Self::start_with(
            pool,
            &[
                ("LISTEN_ADDR", "127.0.0.1:0"),
                ("DHMAD_API_BASE", DEAD_DHMAD),
                ("DHMAD_WEBHOOK_SECRETS", SECRET),
            ],
        )
    }

    fn start_with(pool: &PgPool, env: &[(&str, &str)]) -> Self {
        Self::spawn(Command::new(BIN), pool, env)
    }

    /// [`Served::start`] after a shell's `setup` (a `ulimit`).
    fn start_after(pool: &PgPool, setup: &str) -> Self {
        let mut shell = Command::new("bash");
        shell.args(["-c", &format!("{setup} && exec \"$0\""), BIN]);
        Self::spawn(
            shell,
            pool,
            &[
                ("LISTEN_ADDR", "127.0.0.1:0"),
                ("DHMAD_API_BASE", DEAD_DHMAD),
                ("DHMAD_WEBHOOK_SECRETS", SECRET),
            ],
        )
    }

    fn spawn(mut command: Command, pool: &PgPool, env: &[(&str, &str)]) -> Self {
        let db = database_url(pool);
        let mut child = command
            .env_clear()
            .envs([("PATH", "/usr/bin:/bin"), ("DATABASE_URL", db.as_str())])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut served = Self {
            child,
            lines,
            addr: String::new(),
        };
        let listening = served.wait_line(|l| l.contains("storefront listening"));
        served.addr = listening
            .split("addr=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        served
    }

    fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| pred(l)) {
                return l.clone();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "storefront exited ({status}): {:?}",
                    self.lines.lock().unwrap()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no such line in {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Behind a proxy whose header is not named (`CLIENT_IP_HEADER` unset), every client counts as
/// the proxy's address: ten wrong admin tokens lock the merchant out, one bot spends the shop's
/// checkout allowance. Nothing showed it; the service now says so, once.
#[sqlx::test(migrations = "./migrations")]
async fn a_proxy_forwarding_to_a_service_that_does_not_read_it_is_named_in_the_log(pool: PgPool) {
    let mut served = Served::start(&pool);
    let http = reqwest::Client::new();
    // What counts clients (here the back office's login throttle; the rate limits too).
    for _ in 0..2 {
        let r = http
            .get(format!("http://{}/admin", served.addr))
            .header("x-forwarded-for", "203.0.113.9")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "no ADMIN_TOKEN: no back office");
    }
    served.wait_line(|l| l.contains("CLIENT_IP_HEADER is unset"));
    // Every line of the two requests is out once a third's access line is.
    let r = http
        .get(format!("http://{}/favicon.ico", served.addr))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    served.wait_line(|l| l.contains("route=/favicon.ico"));
    let said = served
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("CLIENT_IP_HEADER is unset"))
        .count();
    assert_eq!(said, 1);
}

/// A stop while the service waits for its database (or a migration's lock) ends it at once:
/// without a handler until then, the kernel ignored SIGTERM for PID 1 (the container's
/// storefront), and a `docker stop` waited for its grace period, then SIGKILL.
#[test]
fn a_stop_while_waiting_for_the_database_ends_the_service() {
    // The discard port, where nothing listens (as `DEAD_DHMAD`).
    let (mut child, mut lines) = serving_from("postgres://postgres@127.0.0.1:9/nowhere");
    let waiting = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("cannot be reached yet"));
    assert!(waiting.is_some(), "the service waits for its database");
    let status = stopped(&mut child);
    assert_eq!(status.code(), Some(0), "{status}");
    let said: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        said.iter().any(|l| l.contains("stopped before serving")),
        "{said:?}"
    );
}

/// The binary's `serve` on `db`, its stdout's lines.
fn serving_from(
    db: &str,
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = Command::new(BIN)
        .env_clear()
        .envs([
            ("PATH", "/usr/bin:/bin"),
            ("DATABASE_URL", db),
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("DHMAD_API_BASE", DEAD_DHMAD),
            ("DHMAD_WEBHOOK_SECRETS", SECRET),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Sends the child SIGTERM and waits for it to end (30 s at most).
fn stopped(child: &mut std::process::Child) -> std::process::ExitStatus {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("SIGTERM did not stop the service");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A stop between the migrations and the server's loop (here while DHMAD's call budget is
/// sized, its table locked) is kept for the loop, which ends at once: a second signal listener
/// made later did not see it, and the service went on serving.
#[sqlx::test(migrations = "./migrations")]
async fn a_stop_just_after_the_migrations_ends_the_service(pool: PgPool) {
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE dhmad_budget IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let (mut child, mut lines) = serving_from(&database_url(&pool));
    let migrated = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("migrations applied"));
    assert!(migrated.is_some(), "the service migrates");
    let status = stopped(&mut child);
    assert_eq!(status.code(), Some(0), "{status}");
    lock.rollback().await.unwrap();
}

/// The process's soft and hard open-file limits, as `/proc` shows them.
fn open_files(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut n = line["Max open files".len()..]
        .split_whitespace()
        .map(|v| v.parse().unwrap());
    (n.next().unwrap(), n.next().unwrap())
}

/// The default connection cap (1024) is the usual soft open-file limit (systemd's, Docker's):
/// at the cap, `accept`, the pool's reconnects and DHMAD's sockets would fail for want of a
/// descriptor first. The service raises its soft limit to the hard one, and where even that
/// leaves no room, lowers the cap and says so.
#[sqlx::test(migrations = "./migrations")]
async fn serve_fits_its_connection_cap_in_the_open_file_limit(pool: PgPool) {
    let served = Served::start_after(&pool, "ulimit -Sn 256");
    let (soft, hard) = open_files(served.child.id());
    assert_eq!(soft, hard);
    assert!(soft > 256, "{soft}");
    drop(served);

    let mut served = Served::start_after(&pool, "ulimit -n 200");
    let warned = served.wait_line(|l| l.contains("MAX_CONNECTIONS does not fit"));
    assert!(warned.contains("lowered_to"), "{warned}");
}

/// A database that comes up after the storefront (a host's boot, a compose or Kubernetes
/// deploy): `serve` exited at once on the failed connection, a crash loop until Postgres
/// was up. It waits, and serves once it can migrate.
#[sqlx::test(migrations = "./migrations")]
async fn serve_waits_for_a_database_that_comes_up_late(pool: PgPool) {
    // A port whose first two connections are closed at once (a server not up yet), then a
    // relay to the real one.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let real = url::Url::parse(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    let upstream = format!(
        "{}:{}",
        real.host_str().unwrap(),
        real.port().unwrap_or(5432)
    );
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { break };
            if n < 2 {
                drop(client);
                continue;
            }
            let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    let mut late = url::Url::parse(&database_url(&pool)).unwrap();
    late.set_host(Some("127.0.0.1")).unwrap();
    late.set_port(Some(port)).unwrap();
    let late = late.to_string();
    let mut served = Served::start_with(
        &pool,
        &[
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("DHMAD_API_BASE", DEAD_DHMAD),
            ("DHMAD_WEBHOOK_SECRETS", SECRET),
            ("DATABASE_URL", late.as_str()),
        ],
    );
    served.wait_line(|l| l.contains("cannot be reached yet"));
    served.wait_line(|l| l.contains("migrations applied"));
    let ready = reqwest::get(format!("http://{}/readyz", served.addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[sqlx::test(migrations = "./migrations")]
async fn the_binary_logs_one_plain_access_line_per_request_and_answers_its_healthcheck(
    pool: PgPool,
) {
    let mut served = Served::start(&pool);
    let base = format!("http://{}", served.addr);
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for path in ["/", "/favicon.ico", "/no-such-page", "/healthz"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        ids.push((path, r.status().as_u16(), id));
    }
    assert_eq!(ids[1].1, 200, "favicon");
    for (path, status, id) in &ids[..3] {
        let line = served.wait_line(|l| l.contains(id.as_str()) && l.contains("answered"));
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("method=GET"), "{line}");
        // The path of a request no route matched only (a matched route's may hold a link).
        assert_eq!(
            line.contains(&format!("path={path}")),
            *path == "/no-such-page",
            "{line}"
        );
        assert!(line.contains(&format!("status={status}")), "{line}");
        assert!(line.contains("latency_ms="), "{line}");
    }
    // A request after the probe, whose line is waited for: the probe's line, had it been
    // written, would be in by then (one ordered stdout).
    let after = http.get(format!("{base}/")).send().await.unwrap();
    let after = after.headers()["x-request-id"].to_str().unwrap().to_owned();
    served.wait_line(|l| l.contains(after.as_str()) && l.contains("answered"));
    // The matched route, not the raw path, and `unmatched` for a 404.
    let lines = served.lines.lock().unwrap().clone();
    let access = |id: &str| {
        lines
            .iter()
            .filter(|l| l.contains(id) && l.contains("answered"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(access(&ids[1].2)[0].contains("route=/favicon.ico"));
    assert!(access(&ids[2].2)[0].contains("route=unmatched"));
    for (_, _, id) in &ids[..3] {
        let all = lines.iter().filter(|l| l.contains(id.as_str())).count();
        assert_eq!(
            (access(id).len(), all),
            (1, 1),
            "one line per request: {lines:?}"
        );
    }
    // A refusal's detail is on its access line.
    assert!(
        access(&ids[2].2)[0].contains("error=\"not found\""),
        "{lines:?}"
    );
    // Probes answered well stay out of the INFO log.
    assert!(access(&ids[3].2).is_empty(), "{lines:?}");
    // Not a terminal: no colour codes.
    assert!(!lines.iter().any(|l| l.contains('\u{1b}')), "{lines:?}");

    // `storefront healthcheck` against it, then against nothing.
    let addr = served.addr.clone();
    let out = run(
        &["healthcheck"],
        &[("LISTEN_ADDR", addr.as_str()), ("PATH", "/usr/bin:/bin")],
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{}", utf8(&out.stderr));
    drop(served);
    let out = run(
        &["healthcheck", "--listen-addr", &addr],
        &[("PATH", "/usr/bin:/bin")],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        utf8(&out.stderr).starts_with("cannot reach"),
        "{}",
        utf8(&out.stderr)
    );
}

/// One `storefront reconcile` pass against `w`'s sandbox and `pool`'s database (with its own
/// `DHMAD_RATE_LIMIT` when given), which must succeed.
async fn reconcile_pass(w: &World, pool: &PgPool, rate_limit: Option<&'static str>) -> Output {
    let (db, api) = (database_url(pool), format!("{}/api/v1", w.sb.base_url()));
    // Off the test's runtime, which serves the sandbox meanwhile.
    let out = tokio::task::spawn_blocking(move || {
        let mut env = vec![
            ("DATABASE_URL", db.as_str()),
            ("DHMAD_API_BASE", api.as_str()),
            ("DHMAD_WEBHOOK_SECRETS", SECRET),
        ];
        env.extend(rate_limit.map(|n| ("DHMAD_RATE_LIMIT", n)));
        run(&["reconcile"], &env, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", utf8(&out.stderr));
    out
}

/// `storefront reconcile` (cron, an operator) spends DHMAD's budget as background work, as
/// the back office's "Reconcile" does: with a buyer waiting in line it asks DHMAD nothing. It
/// spent as a buyer's checkout, ahead of the line. And it leaves the budget the running
/// instances sized as it is, whatever its own `DHMAD_RATE_LIMIT`: it sized it again.
#[sqlx::test(migrations = "./migrations")]
async fn reconcile_on_the_command_line_leaves_dhmad_to_buyers_in_line(pool: PgPool) {
    let w = world(pool.clone(), |_| {}).await;
    let s = w.checkout("chechia-red", "cron@example.tn").await;
    let escrow = w.app.order_json(s.order_id).await["escrow_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiting = w
        .app
        .insert_order("chechia-red", "in-line@example.tn", None)
        .await;
    sqlx::query(
        "INSERT INTO checkout_queue (order_id, claimed_until) VALUES ($1, now() + interval '1 hour')",
    )
    .bind(waiting.id)
    .execute(&pool)
    .await
    .unwrap();
    let read = format!("/escrows/{escrow}");
    let reads = || w.count_calls("GET", &read);
    let before = reads().await;
    let budget =
        || sqlx::query_scalar!("SELECT count(*) AS \"n!\" FROM dhmad_budget").fetch_one(&pool);
    let sized = budget().await.unwrap();
    assert!(sized > 0);
    let out = reconcile_pass(&w, &pool, Some("7")).await;
    // Its report is the one JSON line among the log's.
    let stdout = utf8(&out.stdout);
    let report = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(report).unwrap();
    assert_eq!(report["yielded"], true, "{report}");
    assert_eq!(reads().await, before, "DHMAD asked ahead of the line");
    assert_eq!(budget().await.unwrap(), sized);
}

/// `storefront reconcile` ends right after its pass: the DHMAD calls it made were queued for
/// the orders' call logs, and went with the process. They are written before it exits.
#[sqlx::test(migrations = "./migrations")]
async fn reconcile_on_the_command_line_logs_the_calls_it_made(pool: PgPool) {
    let w = world(pool.clone(), |_| {}).await;
    w.after_first_reconciler_pass().await;
    let s = w.checkout("chechia-red", "cron-log@example.tn").await;
    let reads = || {
        sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM dhmad_calls WHERE order_id = $1 AND method = 'GET'"#,
            s.order_id
        )
        .fetch_one(&pool)
    };
    let before = reads().await.unwrap();
    let out = reconcile_pass(&w, &pool, None).await;
    let report = utf8(&out.stdout);
    assert!(report.contains("\"checked\":1"), "{report}");
    assert_eq!(reads().await.unwrap(), before + 1, "{report}");
}

/// An order's id is its link, its only key, and a DHMAD session id leads to it (the callback):
/// a whole purchase through the binary, its e-mails sent, writes neither to the log, only the
/// order's short reference; nor the buyer's address, only its domain.
#[sqlx::test(migrations = "./migrations")]
async fn the_log_of_a_whole_purchase_holds_no_order_link(pool: PgPool) {
    use dhmad_sandbox::{Sandbox, SandboxConfig};
    let sb = Sandbox::start(SandboxConfig::for_tests()).await.unwrap();
    let api = sb.api_base();
    // Port 0 both: the service binds one and names it in its URLs (a port picked here and
    // freed could be taken by another test's listener first).
    let mut served = Served::start_with(
        &pool,
        &[
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("PUBLIC_BASE_URL", "http://localhost:0"),
            ("DHMAD_API_BASE", api.as_str()),
            ("DHMAD_API_KEY", sb.api_key()),
            ("DHMAD_WEBHOOK_SECRETS", sb.webhook_secret()),
            ("DHMAD_SELLER_EMAIL", sb.seller_email()),
            ("SMTP_URL", smtp_sink().0.as_str()),
        ],
    );
    let base = format!("http://{}", served.addr);
    let port = served.addr.rsplit(':').next().unwrap().to_owned();
    sb.set_webhook_urls(vec![format!("{base}/webhooks/dhmad")]);
    sb.set_allowed_redirect_urls(vec![format!("http://localhost:{port}/checkout/callback")]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let started: serde_json::Value = http
        .post(format!("{base}/api/checkout"))
        .header(
            "idempotency-key",
            idempotency_key("ai-credits-500", "logs@example.tn"),
        )
        .json(&serde_json::json!({"sku": "ai-credits-500", "email": "logs@example.tn"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order: uuid::Uuid = started["order_id"].as_str().unwrap().parse().unwrap();
    let session = started["session_id"].as_str().unwrap().to_owned();
    let done: serde_json::Value = http
        .post(format!(
            "{}/sandbox/sessions/{session}/complete",
            sb.base_url()
        ))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let back = done["redirect_url"]
        .as_str()
        .unwrap()
        .replace(&format!("http://localhost:{port}"), &base);
    assert_eq!(http.get(back).send().await.unwrap().status(), 303);
    let json_url = format!("{base}/api/orders/{order}");
    wait_for("the order to complete", 30, || async {
        let o: serde_json::Value = http.get(&json_url).send().await.ok()?.json().await.ok()?;
        (o["status"] == "completed").then_some(())
    })
    .await;
    let page = http
        .get(format!("{base}/orders/{order}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    // A mistyped link matches no route: its path is logged, with the id cut.
    let typo = http
        .get(format!("{base}/orders/{order}/typo"))
        .send()
        .await
        .unwrap();
    assert_eq!(typo.status(), 404);
    // What a client chooses reaches the log bounded (a path, an error echoing input), and a
    // mistyped address not at all: before, 20 KB of path made a 20 KB line, and the refusal's
    // message named the address.
    let long = http
        .get(format!("{base}/{}", "x".repeat(20_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 404);
    let mistyped = http
        .post(format!("{base}/api/checkout"))
        .json(&serde_json::json!({"sku": "ai-credits-500", "email": "john.doe@gmail"}))
        .send()
        .await
        .unwrap();
    assert_eq!(mistyped.status(), 400);
    let short = storefront::orders::log_ref(order);
    served.wait_line(|l| l.contains("more bytes)") && l.contains("status=404"));
    served.wait_line(|l| l.contains("status=400") && l.contains("not a valid e-mail"));
    served.wait_line(|l| l.contains("e-mail sent") && l.contains(&short));
    served.wait_line(|l| l.contains("route=/orders/{id}") && l.contains("answered"));
    served.wait_line(|l| l.contains(&format!("path=/orders/{short}…/typo")));
    let lines = served.lines.lock().unwrap().clone();
    for secret in [
        order.to_string(),
        order.simple().to_string(),
        session.clone(),
        "logs@example.tn".to_owned(),
        "john.doe".to_owned(),
    ] {
        let leaked: Vec<_> = lines.iter().filter(|l| l.contains(&secret)).collect();
        assert!(leaked.is_empty(), "{secret} in the log: {leaked:#?}");
    }
    let long_lines: Vec<_> = lines.iter().filter(|l| l.len() > 2_000).collect();
    assert!(long_lines.is_empty(), "{long_lines:#?}");
    drop(served);
    sb.shutdown().await;
}
