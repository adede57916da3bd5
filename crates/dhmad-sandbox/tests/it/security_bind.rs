//! The dashboard's forms when the sandbox listens on every interface (docker-compose's
//! `SANDBOX_LISTEN_ADDR: 0.0.0.0:6002`): browsers show a loopback origin, never `0.0.0.0`.

use crate::common::*;
use crate::dashboard_actions::submit;
use dhmad_sandbox::SandboxConfig;

const FORM: &str = "application/x-www-form-urlencoded";

async fn on_all_interfaces() -> Env {
    let mut config = SandboxConfig::for_tests();
    config.listen_addr = "0.0.0.0:0".parse().unwrap();
    Env::with(config).await
}

#[tokio::test]
async fn a_dashboard_opened_on_a_loopback_name_may_post_its_forms() {
    let env = on_all_interfaces().await;
    let port = env.sandbox.local_addr().port();
    let clock = "/sandbox/dashboard/clock/advance";
    for host in ["127.0.0.1", "localhost", "[::1]"] {
        let origin = format!("http://{host}:{port}");
        let h = [
            ("origin", origin.as_str()),
            ("sec-fetch-site", "same-origin"),
        ];
        let r = submit(&env, clock, "hours=1", FORM, &h).await;
        assert_eq!(r.status(), 303, "{origin}");
    }
    let offset = env.get_json("/sandbox/clock").await["offset_seconds"].clone();
    assert_eq!(offset, 3 * 3600, "three forms moved the clock");
    // Still refused: another site, including another port of the same machine.
    for origin in ["http://evil.example", "http://localhost:3000"] {
        let h = [("origin", origin), ("sec-fetch-site", "cross-site")];
        let r = submit(&env, clock, "hours=1", FORM, &h).await;
        assert_eq!(r.status(), 403, "{origin}");
    }
    let offset = env.get_json("/sandbox/clock").await["offset_seconds"].clone();
    assert_eq!(offset, 3 * 3600, "the refused forms did nothing");
}

#[tokio::test]
async fn a_refused_form_is_a_page_for_browsers_and_json_for_programs() {
    let env = on_all_interfaces().await;
    let port = env.sandbox.local_addr().port();
    let clock = "/sandbox/dashboard/clock/advance";
    // A dashboard opened at the machine's LAN address (not its public URL): refused, and told.
    let lan = [
        ("origin", "http://192.168.1.20:6002"),
        ("sec-fetch-site", "same-origin"),
    ];
    let r = submit(&env, clock, "hours=1", FORM, &lan).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    for words in [
        "Cross-site requests to the sandbox control API are refused",
        "http://192.168.1.20:6002",
        &format!("http://127.0.0.1:{port}"),
        "SANDBOX_PUBLIC_URL",
        "href=\"/sandbox\"",
    ] {
        assert!(html.contains(words), "{words}: {html}");
    }
    // Neither header, and JSON sent to a form: pages too.
    let r = submit(&env, clock, "hours=1", FORM, &[]).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("own dashboard only"));
    let own = format!("http://localhost:{port}");
    let h = [("origin", own.as_str())];
    let r = submit(&env, clock, "{}", "application/json", &h).await;
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("<h1>"));
    // A program calling the JSON routes keeps its JSON.
    let evil = [("origin", "http://evil.example")];
    let r = submit(&env, "/sandbox/faults", "{}", "application/json", &evil).await;
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["error"],
        "Cross-site requests to the sandbox control API are refused"
    );
    // A browser's form (it asks for HTML) gets the page on any control route.
    let browser = [
        ("origin", "http://evil.example"),
        ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
    ];
    let r = submit(&env, "/sandbox/faults", "x=1", FORM, &browser).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("refused this form"));
    let offset = env.get_json("/sandbox/clock").await["offset_seconds"].clone();
    assert_eq!(offset, 0, "nothing was done");
}
