//! The contract of the JSON API (`/openapi.json`, generated from the code) and the errors a
//! buyer sees in a browser: a refused e-mail address next to its field, a 404 that says what
//! was not found and leads back.

use crate::common::*;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

async fn order_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn is_html(r: &reqwest::Response) -> bool {
    r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html")
}

/// The card of one product on the catalog page.
fn card<'a>(page: &'a str, sku: &str) -> &'a str {
    let start = page
        .find(&format!(r#"id="product-{sku}""#))
        .unwrap_or_else(|| panic!("no card for {sku}: {page}"));
    let rest = &page[start..];
    &rest[..rest.find("</section>").unwrap()]
}

#[sqlx::test(migrations = "./migrations")]
async fn the_openapi_document_describes_the_json_api(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let r = app.get("/openapi.json").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = r.json().await.unwrap();
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    let paths = doc["paths"].as_object().unwrap();
    for path in ["/api/products", "/api/checkout", "/api/orders/{id}"] {
        assert!(paths.contains_key(path), "{path} missing: {paths:?}");
    }

    let checkout = &doc["paths"]["/api/checkout"]["post"];
    let header = checkout["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .expect("the Idempotency-Key header is documented");
    assert_eq!(header["in"], "header");
    assert_ne!(header["required"], true);
    for status in ["201", "400", "409", "422", "429", "502", "503"] {
        assert!(
            checkout["responses"][status].is_object(),
            "POST /api/checkout {status}"
        );
    }
    // The order a checkout created can be followed (schemathesis' stateful phase does).
    let link = &checkout["responses"]["201"]["links"]["GetOrder"];
    assert_eq!(link["operationId"], "get_order", "{link}");
    let order = &doc["paths"]["/api/orders/{id}"]["get"]["responses"];
    assert!(order["200"].is_object() && order["404"].is_object());

    // Money is a decimal string, as the API writes it; a field that may be empty is nullable.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Decimal"]["type"], "string");
    assert!(schemas["Decimal"]["pattern"].is_string());
    let order = &schemas["OrderJson"]["properties"];
    assert_eq!(order["amount"]["$ref"], "#/components/schemas/Decimal");
    assert_eq!(order["created_at"]["format"], "date-time");
    assert_eq!(
        order["escrow_id"]["type"],
        serde_json::json!(["string", "null"])
    );
    assert_eq!(
        schemas["ProductJson"]["properties"]["price"]["$ref"],
        "#/components/schemas/Decimal"
    );
    let products: Value = app.get("/api/products").await.json().await.unwrap();
    assert!(products[0]["price"].is_string(), "{products}");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_bad_email_shows_the_catalog_again_with_the_message_and_the_input(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let typed = r#"buyer@@example.tn<b>"#;
    let r = app
        .post_form("/checkout", &[("sku", "chechia-red"), ("email", typed)])
        .await;
    assert_eq!(r.status(), 400);
    assert!(is_html(&r));
    let page = r.text().await.unwrap();
    assert!(
        page.contains("<h1>Catalog</h1>"),
        "the catalog again: {page}"
    );
    let chechia = card(&page, "chechia-red");
    assert!(chechia.contains("not a valid e-mail"), "{chechia}");
    assert!(
        chechia.contains(r#"value="buyer@@example.tn&#60;b&#62;""#)
            || chechia.contains(r#"value="buyer@@example.tn&lt;b&gt;""#),
        "the input is kept, escaped: {chechia}"
    );
    assert!(chechia.contains(r#"aria-invalid="true""#), "{chechia}");
    assert!(!page.contains("<b>"), "the input is never markup");
    // The other products' forms are untouched.
    let credits = card(&page, "ai-credits-500");
    assert!(!credits.contains("not a valid e-mail"), "{credits}");
    assert!(!credits.contains("aria-invalid"), "{credits}");
    assert_eq!(
        order_count(&app.pool).await,
        0,
        "no order for invalid input"
    );

    // A missing address says so, in the same place.
    let r = app
        .post_form("/checkout", &[("sku", "ai-credits-500"), ("email", " ")])
        .await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(card(&page, "ai-credits-500").contains("e-mail address is required"));

    // The page carries a working CSRF token: the corrected form goes through the CSRF check
    // (and on to DHMAD, unreachable here: 503 with the order saved).
    let (_, rest) = page
        .split_once(r#"name="csrf_token" value=""#)
        .expect("the catalog's forms carry the CSRF token");
    let token = rest.split('"').next().unwrap();
    let r = app
        .http
        .post(app.url("/checkout"))
        .form(&[
            ("sku", "ai-credits-500"),
            ("email", "buyer@example.tn"),
            ("csrf_token", token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(order_count(&app.pool).await, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn not_found_pages_say_what_and_link_back(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let unknown_order = format!("/orders/{}", Uuid::new_v4());
    for path in ["/nope", unknown_order.as_str(), "/orders/not-an-id"] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        assert!(is_html(&r), "{path}");
        let page = r.text().await.unwrap();
        assert!(page.contains("Page not found"), "{path}: {page}");
        assert!(page.contains("no page, order or payment"), "{path}: {page}");
        assert!(
            page.contains(r#"href="/">Back to the catalog"#),
            "{path}: {page}"
        );
    }
    // Machines still get JSON.
    let r = app.get(&format!("/api/orders/{}", Uuid::new_v4())).await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Not Found");
}
