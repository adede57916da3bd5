//! The parts of the HTTP surface that need no DHMAD: catalog, probes, headers, validation,
//! callback refusals, the back office's lock, and what happens when DHMAD cannot be reached.

use crate::common::*;
use serde_json::{json, Value};
use sqlx::PgPool;

#[sqlx::test(migrations = "./migrations")]
async fn catalog_products_and_probes(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let products: Value = app.get("/api/products").await.json().await.unwrap();
    let list = products.as_array().unwrap();
    assert!(list.iter().any(|p| p["mode"] == "instant"));
    assert!(list.iter().any(|p| p["mode"] == "quick"));
    let credits = list.iter().find(|p| p["sku"] == "ai-credits-500").unwrap();
    assert_eq!(
        credits,
        &json!({"sku": "ai-credits-500", "name": "AI credits — 500", "price": "15.000", "currency": "TND", "mode": "instant", "proof_required": false})
    );

    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9 http://localhost:9"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers.contains_key("x-request-id"));
    assert!(page.text().await.unwrap().contains("Chéchia"));

    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(app.get("/static/app.css").await.status(), 200);
    assert_eq!(app.get("/nope").await.status(), 404);
}

/// Files the static directory does not have are 404, including names the file system refuses
/// (tower-http's `ServeDir` answers 500 for a name longer than `NAME_MAX`).
#[sqlx::test(migrations = "./migrations")]
async fn a_static_file_we_do_not_have_is_404_whatever_its_name(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let long = "a".repeat(300);
    for path in [
        "/static/missing.css".to_owned(),
        format!("/static/{long}"),
        format!("/static/a/{long}"),
        "/static/app.css/x".to_owned(),
        "/static/%00".to_owned(),
        "/static/..%2F..%2Fetc%2Fpasswd".to_owned(),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status(), 404, "{path}");
        let page = r.text().await.unwrap();
        assert!(
            page.contains("Not found") || page.contains("not found"),
            "{path}: {page}"
        );
        let head = app.http.head(app.url(&path)).send().await.unwrap();
        assert_eq!(head.status(), 404, "HEAD {path}");
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn readyz_fails_when_the_database_is_gone(pool: PgPool) {
    let app = spawn_offline(pool.clone()).await;
    pool.close().await;
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[sqlx::test(migrations = "./migrations")]
async fn checkout_input_is_validated(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let cases = [
        (
            json!({"sku": "ai-credits-500", "email": "not-an-email"}),
            "not a valid e-mail",
        ),
        (
            json!({"sku": "ai-credits-500"}),
            "e-mail address is required",
        ),
        (
            json!({"sku": "unicorn", "email": "b@example.tn"}),
            "unknown product",
        ),
        (json!({"email": "b@example.tn"}), "sku"),
    ];
    for (body, expected) in cases {
        let r = app
            .http
            .post(app.url("/api/checkout"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let err: Value = r.json().await.unwrap();
        assert!(err["message"].as_str().unwrap().contains(expected), "{err}");
    }
    let r = app
        .http
        .post(app.url("/api/checkout"))
        .body("{oops")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The form answers with an HTML page.
    let r = app
        .post_form("/checkout", &[("sku", "ai-credits-500"), ("email", "x")])
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("not a valid e-mail"));
    let orders = sqlx::query_scalar!("SELECT count(*) FROM orders")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(orders, Some(0), "no order for invalid input");
}

#[sqlx::test(migrations = "./migrations")]
async fn an_oversized_checkout_is_413_as_json_and_as_a_form(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let email = format!("{}@example.tn", "a".repeat(70 * 1024));
    let r = app
        .http
        .post(app.url("/api/checkout"))
        .json(&json!({"sku": "ai-credits-500", "email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = app
        .post_form("/checkout", &[("sku", "ai-credits-500"), ("email", &email)])
        .await;
    assert_eq!(r.status(), 413);
}

#[sqlx::test(migrations = "./migrations")]
async fn dhmad_unreachable_keeps_the_order_with_its_reason(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let r = app
        .post_form(
            "/checkout",
            &[("sku", "chechia-red"), ("email", "b@example.tn")],
        )
        .await;
    assert_eq!(r.status(), 503);
    let page = r.text().await.unwrap();
    assert!(page.contains("Your order is saved"), "{page}");
    assert!(
        !page.contains("127.0.0.1:9"),
        "internal details stay internal"
    );
    let row = sqlx::query!(r#"SELECT id, status::text AS "status!", failure_reason FROM orders"#)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(row.status, "escrow_failed");
    let stored = row.failure_reason.unwrap();
    assert!(stored.contains("could not reach DHMAD"), "{stored}");
    // The reason is the merchant's; the order's JSON, which anyone holding the link reads,
    // says what happened in a fixed text.
    let o = app.order_json(row.id).await;
    assert_eq!(
        o["failure_reason"],
        "We could not start the payment with DHMAD; your order is saved"
    );
    assert!(!o.to_string().contains(&stored), "{o}");
}

#[sqlx::test(migrations = "./migrations")]
async fn callback_refuses_missing_params_and_unknown_sessions(pool: PgPool) {
    let app = spawn_offline(pool).await;
    assert_eq!(
        app.get("/checkout/callback?status=completed")
            .await
            .status(),
        400
    );
    assert_eq!(
        app.get("/checkout/callback?session_id=abc").await.status(),
        400
    );
    let r = app
        .get("/checkout/callback?session_id=6f1c8a52-0000-4000-8000-000000000000&status=completed")
        .await;
    assert_eq!(r.status(), 404);
    // An id that cannot be DHMAD's is unknown too (docs/ARCHITECTURE.md: 404), not malformed input.
    for odd in ["no%20such", "%00", &"x".repeat(300)] {
        let r = app
            .get(&format!(
                "/checkout/callback?session_id={odd}&status=completed"
            ))
            .await;
        assert_eq!(r.status(), 404, "{odd}");
    }
    assert_eq!(app.get("/orders/not-a-uuid").await.status(), 404);
    assert_eq!(
        app.get(&format!("/api/orders/{}", uuid::Uuid::new_v4()))
            .await
            .status(),
        404
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn the_back_office_needs_the_token(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let r = app.get("/admin").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/login");
    assert_eq!(
        app.http
            .post(app.url("/admin/reconcile"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let wrong = app
        .http
        .get(app.url("/admin"))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 303);
    let ok = app
        .http
        .get(app.url("/admin"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    // The login form sets an HttpOnly, SameSite=Lax session cookie that opens the back office
    // (Lax so that the merchant's return from DHMAD's page keeps it; posts need a CSRF token).
    let login = app
        .post_form("/admin/login", &[("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(login.status(), 303);
    // (A new CSRF token is set beside it, in either order.)
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("sf_admin="))
        .expect("the session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    let pair = cookie.split(';').next().unwrap();
    let r = app
        .http
        .get(app.url("/admin"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bad = app.post_form("/admin/login", &[("token", "nope")]).await;
    assert_eq!(bad.status(), 401);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_clients_request_id_is_kept_only_when_it_cannot_forge_a_log_field(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id_for = |sent: &'static str| {
        let app = &app;
        async move {
            let r = app
                .http
                .get(app.url("/healthz"))
                .header("x-request-id", sent)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.headers()["x-request-id"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(id_for("trace-42.a_b").await, "trace-42.a_b");
    for forged in [
        "x}: answered status=200 latency_ms=1",
        "a b",
        "id\"with=quotes",
        "0123456789012345678901234567890123456789012345678901234567890123456789",
    ] {
        let got = id_for(forged).await;
        assert_ne!(got, forged);
        assert!(
            uuid::Uuid::parse_str(&got).is_ok(),
            "a fresh id, not {got:?}"
        );
    }
}

/// A known address asked with another method answers 405 like any error: a page for a browser
/// (a refused step's address reloaded as a GET), JSON for a client. axum's own 405 had no
/// body at all.
#[sqlx::test(migrations = "./migrations")]
async fn a_wrong_method_gets_an_error_page_or_json(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = uuid::Uuid::new_v4();
    for path in [format!("/orders/{id}/confirm"), "/checkout".to_owned()] {
        let r = app.get(&path).await;
        assert_eq!(r.status(), 405, "{path}");
        assert!(r.headers().contains_key("allow"), "{path}");
        let page = r.text().await.unwrap();
        assert!(page.contains("Back to the catalog"), "{path}: {page}");
    }
    // A file asked with another method than GET or HEAD (the file service's own 405; a POST
    // meets the CSRF check first).
    let r = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/static/app.css"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET,HEAD");
    assert!(r.text().await.unwrap().contains("Back to the catalog"));
    for (method, path) in [
        (reqwest::Method::GET, "/api/checkout".to_owned()),
        (reqwest::Method::PUT, format!("/api/orders/{id}")),
        (reqwest::Method::POST, "/api/products".to_owned()),
    ] {
        let r = app
            .http
            .request(method.clone(), app.url(&path))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "Method Not Allowed", "{method} {path}");
    }
}
