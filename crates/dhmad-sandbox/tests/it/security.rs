//! Browser safety: uploaded files are downloads under a sandboxing policy, the control API
//! refuses cross-site and non-JSON writes, and the HTML pages carry security headers.

use crate::common::*;
use dhmad::{CheckoutAction as A, CreateEscrow, EscrowMode};
use reqwest::header::HeaderMap;
use rust_decimal::Decimal;
use serde_json::{json, Value};

const BOUNDARY: &str = "securityboundary";

/// The seller uploads `name` (`mime`) as purchase proof through the hosted page; returns the
/// file's `viewUrl` from `GET /proof`.
async fn upload_proof(env: &Env, name: &str, mime: &str, content: &str) -> String {
    let id = env
        .create(
            CreateEscrow::new("Shoes", Decimal::from(100), BUYER)
                .mode(EscrowMode::Quick)
                .estimated_delivery_days(2)
                .fulfillment_policy(policy(24)),
        )
        .await;
    env.pay(&id).await;
    let s = env.session(&id, A::SubmitProof, &env.seller()).await;
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"op\"\r\n\r\nperform\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: {mime}\r\n\r\n{content}\r\n--{BOUNDARY}--\r\n"
    );
    let r = env
        .http
        .post(env.url(&format!("/checkout/{s}")))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let proof = env.client.get_proof(&id).await.unwrap();
    proof.latest_submission.unwrap().attachments[0]
        .view_url
        .clone()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn an_uploaded_html_file_is_served_as_a_sandboxed_download() {
    let env = Env::start().await;
    let evil = "<form action=\"http://localhost:3000/admin\" method=post></form>";
    let url = upload_proof(&env, "../proof <x>.html", "text/html", evil).await;
    let r = env.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(
        header(&h, "content-disposition"),
        "attachment; filename=\"proof__x_.html\""
    );
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert_eq!(header(&h, "cache-control"), "no-store");
    assert_eq!(
        header(&h, "content-security-policy"),
        "sandbox; default-src 'none'"
    );
    assert_eq!(r.text().await.unwrap(), evil, "the bytes are unchanged");
}

/// POSTs `body` (sent as is, with `content_type` if any) and `extra` headers to `path`.
async fn post(
    env: &Env,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = env.http.post(env.url(path)).body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_control_api_refuses_cross_site_and_form_posts() {
    let env = Env::start().await;
    let id = env.instant(15).await;
    let s = env.session(&id, A::AcceptPay, BUYER).await;
    let complete = format!("/sandbox/sessions/{s}/complete");
    let json_ct = Some("application/json");
    let evil = [("origin", "http://evil.example")];
    // Another port on localhost is "same site" for a browser, but not the same origin.
    let shop = [
        ("origin", "http://localhost:3000"),
        ("sec-fetch-site", "same-site"),
    ];
    let cross = [("sec-fetch-site", "cross-site")];
    for headers in [&evil[..], &shop[..], &cross[..]] {
        let (st, v) = post(&env, &complete, json_ct, "{}", headers).await;
        assert_eq!(st, 403, "{headers:?}");
        assert!(v["error"].as_str().unwrap().contains("Cross-site"), "{v}");
    }
    let r = env
        .http
        .delete(env.url("/sandbox/faults"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // What a plain HTML form can send, even without Origin: refused.
    let form = Some("application/x-www-form-urlencoded");
    assert_eq!(
        post(&env, &complete, form, "payer=wallet", &[]).await.0,
        415
    );
    assert_eq!(
        post(&env, &complete, Some("text/plain"), "{}", &[]).await.0,
        415
    );
    assert_eq!(post(&env, &complete, None, "{}", &[]).await.0, 415);
    // Nothing happened.
    assert_eq!(env.status(&id).await, "pending");
    let session = env.client.get_session(&s).await.unwrap();
    assert_eq!(session.status.to_string(), "pending");

    // The sandbox's own pages (same origin) and scripts (no Origin) still work.
    let own = env.sandbox.base_url();
    let same = [("origin", own.as_str()), ("sec-fetch-site", "same-origin")];
    let (st, v) = post(&env, &complete, json_ct, "{}", &same).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(env.status(&id).await, "paid");
    let s2 = env.session(&id, A::CancelEscrow, &env.seller()).await;
    let (st, v) = post(
        &env,
        &format!("/sandbox/sessions/{s2}/cancel"),
        None,
        "",
        &[],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = env
        .control("/sandbox/clock/advance", json!({"seconds": 1}))
        .await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn html_pages_carry_security_headers() {
    let env = Env::start().await;
    let id = env.instant(15).await;
    let s = env.session(&id, A::AcceptPay, BUYER).await;
    let get = |path: String| {
        let http = env.http.clone();
        let url = env.url(&path);
        async move { http.get(url).send().await.unwrap().headers().clone() }
    };
    let checkout = get(format!("/checkout/{s}")).await;
    let csp = header(&checkout, "content-security-policy");
    // The form posts to the page, whose 303 goes to the shop's callback.
    assert!(
        csp.contains("form-action 'self' http://localhost:3000;"),
        "{csp}"
    );
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("script-src"), "{csp}");
    env.control(&format!("/sandbox/sessions/{s}/cancel"), json!({}))
        .await;
    let closed = get(format!("/checkout/{s}")).await;
    let dashboard = get("/sandbox".into()).await;
    for h in [&checkout, &closed, &dashboard] {
        assert_eq!(header(h, "x-content-type-options"), "nosniff");
        assert_eq!(header(h, "cache-control"), "no-store");
        assert_eq!(header(h, "x-frame-options"), "DENY");
        assert!(header(h, "content-security-policy").contains("default-src 'none'"));
    }
    // The checkout URL never leaks to another origin; the pages with forms must carry their
    // Origin (browsers send `Origin: null` with a form POST under `no-referrer`).
    assert_eq!(header(&checkout, "referrer-policy"), "same-origin");
    assert_eq!(header(&closed, "referrer-policy"), "no-referrer");
    assert_eq!(header(&dashboard, "referrer-policy"), "same-origin");
    assert!(header(&closed, "content-security-policy").contains("form-action 'none'"));
    assert!(header(&dashboard, "content-security-policy").contains("form-action 'self'"));
}

/// DNS rebinding: a page of another site whose name now resolves to this machine is
/// same-origin with the sandbox, and its requests carry that site's name in `Host`. They are
/// refused on every route, the API included (its default key is public); IP addresses,
/// `localhost`, the public URL's host and `SANDBOX_ALLOWED_HOSTS` pass.
#[tokio::test]
async fn a_request_addressed_to_another_sites_name_is_refused_on_every_route() {
    let mut config = dhmad_sandbox::SandboxConfig::for_tests();
    config.public_url = Some("http://sandbox.dev.test".into());
    config.allowed_hosts = vec!["sandbox".into()];
    let env = Env::with(config).await;
    let at = |path: &str| format!("http://{}{path}", env.sandbox.local_addr());
    let key = env.sandbox.api_key().to_owned();
    // The public URL's name does not resolve here: the API is called at the bound address.
    let client = dhmad::Client::builder(&key)
        .base_url(at("/api/v1"))
        .build()
        .unwrap();
    let escrow = client.create_escrow(&req(100)).await.unwrap().escrow.id;
    let get = |path: &str, host: &str| {
        env.http
            .get(at(path))
            .header("host", host)
            .bearer_auth(&key)
    };
    let escrow_path = format!("/api/v1/escrows/{escrow}");
    for (host, path) in [
        ("evil.example", "/sandbox"),
        ("evil.example:6002", escrow_path.as_str()),
        ("Rebind.Attacker.TEST.", "/sandbox/requests"),
        ("sandbox.evil.example", "/checkout/cs_whatever"),
        ("not a host", "/sandbox"),
    ] {
        let r = get(path, host).send().await.unwrap();
        assert_eq!(r.status(), 403, "{host} {path}");
        let body: Value = r.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("SANDBOX_ALLOWED_HOSTS"), "{error}");
    }
    // A write through the API under a foreign name changes nothing.
    let r = env
        .http
        .post(at(&format!("/api/v1/escrows/{escrow}/cancel")))
        .header("host", "evil.example:6002")
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let still = client.get_escrow(&escrow).await.unwrap();
    assert_eq!(still.status.to_string(), "pending");
    // A browser is told why, on a page.
    let r = get("/sandbox", "evil.example")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(header(r.headers(), "content-type").starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("SANDBOX_ALLOWED_HOSTS") && html.contains("evil.example"));
    // Names that cannot be re-pointed, or that the developer chose, pass.
    for host in [
        "127.0.0.1",
        "[::1]:6002",
        "localhost:3000",
        "LOCALHOST",
        "shop.localhost",
        "sandbox:6002",
        "sandbox.dev.test",
    ] {
        let r = get("/sandbox", host).send().await.unwrap();
        assert_eq!(r.status(), 200, "{host}");
        let r = get(&escrow_path, host).send().await.unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
}

/// The hosted page's form changes escrows, so a page of another site (another localhost port
/// is "same site") must not be able to post it: a foreign `Origin`, a cross-site
/// `Sec-Fetch-Site`, or an opaque `Origin: null` the browser does not vouch for is refused with
/// 403. Scripts (no Origin), the sandbox's own origins, and the page's own form under whichever
/// name the browser used (`Origin` = `Host`) pass.
#[tokio::test]
async fn the_checkout_page_refuses_cross_site_posts() {
    let env = Env::start().await;
    let port = env.sandbox.local_addr().port();
    let post_page =
        |s: String, form: &'static [(&'static str, &'static str)], h: Vec<(&str, String)>| {
            let mut req = env.http.post(env.url(&format!("/checkout/{s}"))).form(form);
            for (k, v) in h {
                req = req.header(k, v);
            }
            async move {
                let r = req.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
    const PAY: &[(&str, &str)] = &[("op", "perform"), ("payer", "wallet")];
    const CANCEL: &[(&str, &str)] = &[("op", "cancel")];
    let id = env.instant(15).await;
    let s = env.session(&id, A::AcceptPay, BUYER).await;
    let h = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    };
    let other_port = format!("http://localhost:{}", port.wrapping_add(1));
    let by_name = format!("http://localhost:{port}");
    let host = format!("localhost:{port}");
    let refused = [
        h(&[("origin", "http://evil.example")]),
        h(&[
            ("origin", "http://localhost:3000"),
            ("sec-fetch-site", "same-site"),
        ]),
        h(&[("origin", other_port.as_str()), ("host", host.as_str())]),
        h(&[("sec-fetch-site", "cross-site")]),
        h(&[("sec-fetch-site", "same-site")]),
        // An attacker's page under `Referrer-Policy: no-referrer` sends an opaque origin.
        h(&[("origin", "null"), ("sec-fetch-site", "cross-site")]),
        h(&[("origin", "null")]),
        // Another name of this machine is another origin than the one the request addressed.
        h(&[("origin", by_name.as_str())]),
    ];
    for headers in refused {
        for form in [PAY, CANCEL] {
            let (st, html) = post_page(s.clone(), form, headers.clone()).await;
            assert_eq!(st, 403, "{headers:?} {form:?}");
            assert!(html.contains("Cross-site"), "{html}");
        }
    }
    assert_eq!(env.status(&id).await, "pending");
    let session = env.client.get_session(&s).await.unwrap();
    assert_eq!(session.status.to_string(), "pending");

    // The page's own form: its origin (under the name the browser used; its `same-origin`
    // referrer policy lets browsers send it), or `Origin: null` the browser vouches for with
    // `Sec-Fetch-Site: same-origin`; scripts send neither header.
    let own = env.sandbox.base_url();
    let allowed = [
        h(&[("origin", own.as_str()), ("sec-fetch-site", "same-origin")]),
        h(&[
            ("origin", by_name.as_str()),
            ("host", host.as_str()),
            ("sec-fetch-site", "same-origin"),
        ]),
        h(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
        h(&[]),
    ];
    for headers in allowed {
        let id = env.instant(15).await;
        let s = env.session(&id, A::AcceptPay, BUYER).await;
        let (st, body) = post_page(s, PAY, headers.clone()).await;
        assert_eq!(st, 303, "{headers:?} {body}");
        assert_eq!(env.status(&id).await, "paid", "{headers:?}");
    }
}
