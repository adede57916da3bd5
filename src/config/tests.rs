use super::*;
use std::collections::HashMap;
use std::net::IpAddr;

fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| m.get(k).cloned())
}

const MIN: &[(&str, &str)] = &[
    ("DATABASE_URL", "postgres://u:pw@h/db"),
    ("DHMAD_WEBHOOK_SECRETS", "a, b"),
];

#[test]
fn defaults_follow_the_design() {
    let c = cfg(MIN).unwrap();
    assert_eq!(c.listen_addr.to_string(), "127.0.0.1:3000");
    assert_eq!(c.callback_url(), "http://localhost:3000/checkout/callback");
    assert_eq!(c.dhmad_api_base.as_str(), "http://127.0.0.1:6002/api/v1");
    assert_eq!(c.webhook_secrets.len(), 2);
    assert_eq!(
        c.checkout_origins(),
        ["http://127.0.0.1:6002", "http://localhost:6002"]
    );
}

#[test]
fn the_pool_size_is_the_operators() {
    assert_eq!(cfg(MIN).unwrap().database_max_connections, 20);
    let with = |n: &'static str| cfg(&[MIN, &[("DATABASE_MAX_CONNECTIONS", n)]].concat());
    assert_eq!(with("35").unwrap().database_max_connections, 35);
    for bad in ["0", "1001", "many"] {
        let err = with(bad).unwrap_err().to_string();
        assert!(err.contains("DATABASE_MAX_CONNECTIONS"), "{bad}: {err}");
    }
}

/// An SMTP_URL the mailer cannot use was found only when the service built its mailer, after
/// the settings: one error at a time, with another exit code.
#[test]
fn an_smtp_url_the_mailer_cannot_use_is_listed_with_the_settings() {
    for bad in [
        "smtp://mail.example?tls=sometimes",
        "smtp://user:%FF@mail.example",
        "smtp:///no-host",
    ] {
        let err = cfg(&[MIN, &[("SMTP_URL", bad)]].concat())
            .unwrap_err()
            .to_string();
        assert!(err.contains("SMTP_URL"), "{bad}: {err}");
    }
    assert!(cfg(&[
        MIN,
        &[("SMTP_URL", "smtp://mail.example:2525?tls=opportunistic")]
    ]
    .concat())
    .is_ok());
}

#[test]
fn every_bad_variable_is_named() {
    let err = cfg(&[
        ("LISTEN_ADDR", "nope"),
        ("DHMAD_API_KEY", "sk_test_1"),
        ("PUBLIC_BASE_URL", "ftp:/x"),
        ("DHMAD_TIMEOUT_SECS", "-3"),
    ])
    .unwrap_err();
    let text = err.to_string();
    for name in [
        "DATABASE_URL",
        "LISTEN_ADDR",
        "DHMAD_API_KEY",
        "PUBLIC_BASE_URL",
        "DHMAD_WEBHOOK_SECRETS",
        "DHMAD_TIMEOUT_SECS",
    ] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
    assert_eq!(err.0.len(), 6);
}

#[test]
fn debug_redacts_secrets() {
    let mut pairs = MIN.to_vec();
    pairs.push(("ADMIN_TOKEN", "super-secret-admin-token"));
    pairs.push(("METRICS_TOKEN", "super-secret-metrics-token"));
    let dbg = format!("{:?}", cfg(&pairs).unwrap());
    assert!(!dbg.contains("pw@") && !dbg.contains("super-secret") && !dbg.contains("sk_sandbox"));
}

#[test]
fn a_short_metrics_token_is_refused() {
    let mut pairs = MIN.to_vec();
    pairs.push(("METRICS_TOKEN", "short"));
    let err = cfg(&pairs).unwrap_err().to_string();
    assert!(err.contains("METRICS_TOKEN"), "{err}");
    pairs.pop();
    pairs.push(("METRICS_TOKEN", "a-scrapers-own-token"));
    assert!(cfg(&pairs).unwrap().metrics_token.is_some());
    pairs.push(("ADMIN_TOKEN", "a-scrapers-own-token"));
    let err = cfg(&pairs).unwrap_err().to_string();
    assert!(err.contains("must not be ADMIN_TOKEN"), "{err}");
}

/// A live shop's settings, all of them right: each test takes away or changes what it checks.
fn live_shop() -> Vec<(&'static str, &'static str)> {
    vec![
        ("DATABASE_URL", "postgres://u:pw@h/db"),
        ("DHMAD_WEBHOOK_SECRETS", "a-private-secret"),
        ("ADMIN_TOKEN", "a-private-admin-token"),
        (
            "DHMAD_API_KEY",
            "sk_live_0000000000000000000000000000000000000000000000000000000000000000",
        ),
        ("DHMAD_API_BASE", "https://dhmad.example/api/v1"),
        ("SMTP_URL", "smtp://mail.example:587?tls=required"),
        ("MAIL_FROM", "Souk <orders@souk.tn>"),
    ]
}

/// `live_shop()` with `name` set to `value` (or left out, for `None`).
fn live_shop_with(
    name: &'static str,
    value: Option<&'static str>,
) -> Vec<(&'static str, &'static str)> {
    let mut pairs = live_shop();
    pairs.retain(|(k, _)| *k != name);
    pairs.extend(value.map(|v| (name, v)));
    pairs
}

#[test]
fn a_live_key_with_a_public_demo_secret_refuses_to_start() {
    assert!(cfg(&live_shop()).is_ok());
    for (name, value) in [
        ("DHMAD_WEBHOOK_SECRETS", PUBLIC_DEMO_SECRETS[0]),
        ("ADMIN_TOKEN", PUBLIC_DEMO_SECRETS[1]),
    ] {
        let err = cfg(&live_shop_with(name, Some(value)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DHMAD_API_KEY") && err.contains("public demo"),
            "{err}"
        );
    }
    // With the sandbox's key the demo values are fine.
    assert!(cfg(&[
        ("DATABASE_URL", "postgres://u:pw@h/db"),
        ("DHMAD_WEBHOOK_SECRETS", PUBLIC_DEMO_SECRETS[0]),
        ("ADMIN_TOKEN", PUBLIC_DEMO_SECRETS[1]),
    ])
    .is_ok());
}

#[test]
fn a_shop_others_can_reach_refuses_the_public_demo_secrets() {
    let with = |base: &'static str, secret: &'static str, admin: &'static str| {
        cfg(&[
            ("DATABASE_URL", "postgres://u:pw@h/db"),
            ("PUBLIC_BASE_URL", base),
            ("DHMAD_WEBHOOK_SECRETS", secret),
            ("ADMIN_TOKEN", admin),
        ])
    };
    let (demo_secret, demo_admin) = (PUBLIC_DEMO_SECRETS[0], PUBLIC_DEMO_SECRETS[1]);
    // A staging shop on DHMAD's sandbox: a sandbox key, but strangers reach it.
    for (secret, admin) in [
        (demo_secret, "an-own-admin-token-of-ours"),
        ("own-secret", demo_admin),
    ] {
        let err = with("https://staging.shop.tn", secret, admin)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("PUBLIC_BASE_URL") && err.contains("public demo"),
            "{err}"
        );
    }
    let own = with(
        "https://staging.shop.tn",
        "own-secret",
        "an-own-admin-token-of-ours",
    );
    assert!(own.is_ok(), "{own:?}");
    // This machine: the demo's values are fine.
    for base in [
        "http://localhost:3000",
        "http://127.0.0.1:3000",
        "http://[::1]:3000",
        "http://shop.localhost:3000",
    ] {
        let c = with(base, demo_secret, demo_admin);
        assert!(c.is_ok(), "{base}: {c:?}");
    }
}

/// `docker run -p 3000:3000` publishes the image's 0.0.0.0 on every interface: with the demo's
/// public secrets, anyone could forge payments. Refused, unless LOCAL_ONLY says the port is
/// published on this machine only (compose).
#[test]
fn a_shop_listening_beyond_loopback_refuses_the_public_demo_secrets() {
    let with = |listen: &'static str, local_only: Option<&'static str>| {
        let mut pairs = vec![
            ("DATABASE_URL", "postgres://u:pw@h/db"),
            ("LISTEN_ADDR", listen),
            ("DHMAD_WEBHOOK_SECRETS", PUBLIC_DEMO_SECRETS[0]),
            ("ADMIN_TOKEN", PUBLIC_DEMO_SECRETS[1]),
        ];
        pairs.extend(local_only.map(|v| ("LOCAL_ONLY", v)));
        cfg(&pairs)
    };
    for listen in ["0.0.0.0:3000", "[::]:3000", "192.168.1.10:3000"] {
        let err = with(listen, None).unwrap_err().to_string();
        assert!(
            err.contains("LISTEN_ADDR") && err.contains("LOCAL_ONLY"),
            "{listen}: {err}"
        );
        assert!(with(listen, Some("true")).is_ok(), "{listen}");
    }
    assert!(with("127.0.0.1:3000", None).is_ok());
    assert!(with("[::1]:3000", None).is_ok());
    let err = with("0.0.0.0:3000", Some("maybe")).unwrap_err().to_string();
    assert!(err.contains("LOCAL_ONLY: expected true or false"), "{err}");
}

#[test]
fn a_live_key_needs_an_smtp_server() {
    let err = cfg(&live_shop_with("SMTP_URL", None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("SMTP_URL"), "{err}");
    // The demo logs its e-mails.
    assert!(cfg(&live_shop()[..3]).is_ok());
}

/// A malformed `DATABASE_URL` is listed with the other invalid settings (it used to fail later,
/// alone), without its text, which may hold a password.
#[test]
fn a_malformed_database_url_is_listed_with_the_other_settings() {
    let err = cfg(&[
        ("DATABASE_URL", "postgres://u:s3cret@h:notaport/db"),
        ("DHMAD_WEBHOOK_SECRETS", "s"),
        ("LISTEN_ADDR", "nowhere"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("DATABASE_URL") && err.contains("LISTEN_ADDR"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}

/// The default sender (`shop@localhost`) or a reserved domain's: relays refuse it, and a live
/// shop's every buyer e-mail would be given up. The demo keeps the default.
#[test]
fn a_live_key_needs_a_sender_of_its_own_domain() {
    for from in [None, Some("Shop <orders@shop.example>")] {
        let err = cfg(&live_shop_with("MAIL_FROM", from))
            .unwrap_err()
            .to_string();
        assert!(err.contains("MAIL_FROM"), "{from:?}: {err}");
    }
    assert!(cfg(&live_shop_with("MAIL_FROM", Some("orders@souk.tn"))).is_ok());
    assert!(cfg(&live_shop()[..3]).is_ok());
}

/// A live shop's e-mails carry the order's link and codes: never over a plain connection to a
/// relay elsewhere (lettre's `smtp://` without `?tls=` does no STARTTLS at all).
#[test]
fn a_live_shops_e_mails_are_not_sent_in_clear_text() {
    for plain in [
        "smtp://mail.example:587",
        "smtp://u:p@mail.example:25?tls=opportunistic",
    ] {
        let err = cfg(&live_shop_with("SMTP_URL", Some(plain)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SMTP_URL") && err.contains("clear text"),
            "{plain}: {err}"
        );
    }
    for ok in [
        "smtps://u:p@mail.example",
        "smtp://mail.example:587?tls=required",
        "smtp://127.0.0.1:2525",
        "smtp://[::1]:2525",
        "smtp://localhost:25",
    ] {
        let c = cfg(&live_shop_with("SMTP_URL", Some(ok)));
        assert!(c.is_ok(), "{ok}: {c:?}");
    }
    // The demo's local sink, with a sandbox key: as before.
    let mut demo = live_shop()[..3].to_vec();
    demo.push(("SMTP_URL", "smtp://mail.example:2525"));
    assert!(cfg(&demo).is_ok());
}

#[test]
fn a_live_key_is_only_sent_over_https() {
    // The default address is the local sandbox's, over http.
    let err = cfg(&live_shop_with("DHMAD_API_BASE", None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("DHMAD_API_BASE") && err.contains("https"),
        "{err}"
    );
    let clear = live_shop_with("DHMAD_API_BASE", Some("http://dhmad.example/api/v1"));
    assert!(cfg(&clear).is_err());
}

/// The demo's values, copied from `.env.example` into a live shop's settings, are refused by
/// name: the demo seller, the sandbox's checkout page, a shop served over plain http.
#[test]
fn a_live_shop_refuses_the_demos_seller_checkout_page_and_plain_http() {
    for (name, demo, ok) in [
        (
            "DHMAD_SELLER_EMAIL",
            "merchant@shop.example",
            "seller@souk.tn",
        ),
        ("DHMAD_SELLER_EMAIL", "me@example.com", "me@example.tn"),
        ("DHMAD_SELLER_EMAIL", "me@shop.test", "me@testshop.tn"),
        (
            "DHMAD_CHECKOUT_ORIGIN",
            "http://localhost:6002",
            "https://dhmad.example",
        ),
        (
            "PUBLIC_BASE_URL",
            "http://shop.example.tn",
            "https://shop.example.tn",
        ),
    ] {
        let err = cfg(&live_shop_with(name, Some(demo)))
            .unwrap_err()
            .to_string();
        assert!(err.contains(name), "{name}={demo}: {err}");
        let c = cfg(&live_shop_with(name, Some(ok)));
        assert!(c.is_ok(), "{name}={ok}: {c:?}");
    }
    // A live shop tried on this machine may stay on plain http.
    assert!(cfg(&live_shop_with(
        "PUBLIC_BASE_URL",
        Some("http://localhost:3000")
    ))
    .is_ok());
    // The demo, with the sandbox's key, keeps all three.
    let mut demo = MIN.to_vec();
    demo.extend([
        ("DHMAD_SELLER_EMAIL", "merchant@shop.example"),
        ("DHMAD_CHECKOUT_ORIGIN", "http://localhost:6002"),
    ]);
    assert!(cfg(&demo).is_ok());
}

#[test]
fn a_budget_of_one_call_is_refused() {
    // A checkout takes its two calls at once: with one, every checkout would wait for ever.
    let with = |n: &'static str| {
        let mut pairs = MIN.to_vec();
        pairs.push(("DHMAD_RATE_LIMIT", n));
        cfg(&pairs)
    };
    let err = with("1").unwrap_err().to_string();
    assert!(err.contains("DHMAD_RATE_LIMIT"), "{err}");
    assert_eq!(with("0").unwrap().dhmad_budget.calls, 0);
    assert_eq!(with("2").unwrap().dhmad_budget.calls, 2);
}

#[test]
fn the_smtp_timeout_stays_inside_the_outbox_lease() {
    assert_eq!(cfg(MIN).unwrap().smtp_timeout, Duration::from_secs(30));
    let mut pairs = MIN.to_vec();
    pairs.push(("SMTP_TIMEOUT_SECS", "91"));
    let err = cfg(&pairs).unwrap_err().to_string();
    assert!(err.contains("SMTP_TIMEOUT_SECS"), "{err}");
    let mut pairs = MIN.to_vec();
    pairs.push(("SMTP_TIMEOUT_SECS", "5"));
    assert_eq!(cfg(&pairs).unwrap().smtp_timeout, Duration::from_secs(5));
}

#[test]
fn a_dhmad_timeout_past_the_maximum_is_refused() {
    // Multiplied into the request deadline: an unbounded value overflowed at router build.
    let mut pairs = MIN.to_vec();
    pairs.push(("DHMAD_TIMEOUT_SECS", "10000000000000000000"));
    let err = cfg(&pairs).unwrap_err().to_string();
    assert!(err.contains("DHMAD_TIMEOUT_SECS"), "{err}");
    let mut pairs = MIN.to_vec();
    pairs.push(("DHMAD_TIMEOUT_SECS", "300"));
    let c = cfg(&pairs).unwrap();
    assert_eq!(c.request_deadline(), Duration::from_secs(905));
}

#[test]
fn durations_and_counts_past_their_maximum_are_refused() {
    // Each overflowed a timer or a semaphore once the service ran (a panic, not a message).
    let names = [
        "DHMAD_RATE_WINDOW_SECS",
        "HEADER_READ_TIMEOUT_SECS",
        "OUTBOX_INTERVAL_SECS",
        "RECONCILE_INTERVAL_SECS",
        "RECONCILE_AFTER_SECS",
        "SESSION_SWEEP_INTERVAL_SECS",
        "ABANDONED_ORDER_GRACE_SECS",
        "MAX_CONNECTIONS",
        "RATE_LIMIT_CHECKOUT_PER_MIN",
        "RATE_LIMIT_ACTIONS_PER_MIN",
    ];
    let mut pairs = MIN.to_vec();
    pairs.extend(names.iter().map(|n| (*n, "10000000000000000000")));
    let err = cfg(&pairs).unwrap_err();
    for name in names {
        assert!(err.to_string().contains(name), "{name} missing from {err}");
    }
    assert_eq!(err.0.len(), names.len());
    // A year and a million are still taken.
    let mut pairs = MIN.to_vec();
    pairs.push(("ABANDONED_ORDER_GRACE_SECS", "31622400"));
    pairs.push(("MAX_CONNECTIONS", "1000000"));
    let c = cfg(&pairs).unwrap();
    assert_eq!(c.jobs.abandoned_after.as_secs(), MAX_SECS);
    assert_eq!(c.edge.max_connections, 1_000_000);
}

#[test]
fn the_client_ip_header_is_believed_from_the_trusted_proxies_only() {
    let ip = |t: &str| t.parse::<IpAddr>().unwrap();
    let default = cfg(MIN).unwrap().edge;
    for near in [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "172.18.0.2",
        "192.168.1.1",
        "::ffff:10.0.0.9",
        "fd00::7",
    ] {
        assert!(default.trusts(ip(near)), "{near}");
    }
    for far in [
        "203.0.113.7",
        "172.32.0.1",
        "2001:db8::1",
        "::ffff:198.51.100.9",
    ] {
        assert!(!default.trusts(ip(far)), "{far}");
    }
    let mut pairs = MIN.to_vec();
    pairs.push(("TRUSTED_PROXIES", " ::ffff:198.51.100.9, 2001:db8:1::/48 "));
    let named = cfg(&pairs).unwrap().edge;
    assert!(named.trusts(ip("198.51.100.9")) && named.trusts(ip("2001:db8:1::5")));
    assert!(!named.trusts(ip("127.0.0.1")) && !named.trusts(ip("198.51.100.10")));
    for bad in ["10.0.0.0/33", "proxy.local", ","] {
        let mut pairs = MIN.to_vec();
        pairs.push(("TRUSTED_PROXIES", bad));
        let err = cfg(&pairs).unwrap_err().to_string();
        assert!(err.contains("TRUSTED_PROXIES"), "{bad}: {err}");
    }
}
