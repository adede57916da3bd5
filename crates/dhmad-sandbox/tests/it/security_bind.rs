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
