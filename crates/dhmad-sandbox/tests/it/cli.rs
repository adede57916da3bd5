//! The `dhmad-sandbox` binary: `--help` and `--version` answer without serving, and a taken
//! port is one clear line and a non-zero exit; SIGTERM (`docker compose stop`) stops it cleanly.

use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

const VARS: [&str; 16] = [
    "SANDBOX_LISTEN_ADDR",
    "SANDBOX_LOCAL_ONLY",
    "SANDBOX_PUBLIC_URL",
    "SANDBOX_API_KEY",
    "SANDBOX_WEBHOOK_URLS",
    "SANDBOX_WEBHOOK_SECRET",
    "SANDBOX_ALLOWED_REDIRECT_URLS",
    "SANDBOX_ALLOWED_HOSTS",
    "SANDBOX_SELLER_EMAIL",
    "SANDBOX_RATE_LIMIT",
    "SANDBOX_RATE_WINDOW_SECS",
    "SANDBOX_WEBHOOK_RETRY_DELAYS_MS",
    "SANDBOX_WEBHOOK_TIMEOUT_MS",
    "SANDBOX_FAULTS",
    "SANDBOX_APP_NAME",
    "SANDBOX_TICK_MS",
];

/// Runs the binary with `args` and `env` (and no other `SANDBOX_*`); a binary still running
/// after 10 s (serving when it should not) fails the test and is killed.
async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dhmad-sandbox"));
    cmd.args(args).kill_on_drop(true).env("RUST_LOG", "off");
    for v in VARS {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    tokio::time::timeout(Duration::from_secs(10), cmd.output())
        .await
        .expect("the binary exits by itself")
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn help_documents_every_variable_and_serves_nothing() {
    let out = run(&["--help"], &[]).await;
    assert!(out.status.success());
    let help = text(&out.stdout);
    for v in VARS {
        assert!(help.contains(v), "{v} missing from --help:\n{help}");
    }
    assert!(help.contains("127.0.0.1:6002") && help.contains("RUST_LOG"));
    let out = run(&["--version"], &[]).await;
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        concat!("dhmad-sandbox ", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn a_taken_port_is_one_line_and_a_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&[], &[("SANDBOX_LISTEN_ADDR", &addr)]).await;
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        format!(
            "dhmad-sandbox: cannot listen on {addr} (SANDBOX_LISTEN_ADDR): address already in use\n"
        )
    );
    // A flag wins over the variable; a bad value is one line too.
    let out = run(&["--rate-limit", "many"], &[("SANDBOX_LISTEN_ADDR", &addr)]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "dhmad-sandbox: invalid SANDBOX_RATE_LIMIT: invalid digit found in string\n"
    );
}

/// Also: the binary reads `SANDBOX_ALLOWED_HOSTS` (docker-compose's storefront calls the
/// sandbox `sandbox`).
#[tokio::test]
async fn it_answers_to_the_names_it_is_given_and_sigterm_stops_it_cleanly() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dhmad-sandbox"));
    cmd.kill_on_drop(true)
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped());
    for v in VARS {
        cmd.env_remove(v);
    }
    // Port 0: the binary binds one and names it in its banner (a port picked here and freed
    // could be taken by another test first).
    cmd.env("SANDBOX_LISTEN_ADDR", "127.0.0.1:0")
        .env("SANDBOX_ALLOWED_HOSTS", "sandbox, shop-sandbox.internal");
    let mut child = cmd.spawn().unwrap();
    // Serving once its banner is out.
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line),
    )
    .await
    .expect("the banner within 10 s")
    .unwrap();
    let addr = line
        .trim_end()
        .rsplit_once("listening on ")
        .and_then(|(_, a)| a.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let http = reqwest::Client::new();
    for (host, status) in [
        ("sandbox:6002", 200),
        ("shop-sandbox.internal", 200),
        ("evil.example", 403),
    ] {
        let r = http
            .get(format!("http://{addr}/sandbox/clock"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{host}");
    }
    let pid = child.id().unwrap().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("stopped within 10 s of SIGTERM")
        .unwrap();
    // Exit code 0: it handled the signal, where it used to be killed by it (or, as a
    // container's first process, to ignore it until the runtime's grace ran out).
    assert!(status.success(), "{status:?}");
}
