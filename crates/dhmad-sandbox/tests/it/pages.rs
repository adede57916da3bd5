//! Plain pages: the create response's `url` and `/` lead to the dashboard; other paths get an
//! HTML 404 linking to it, except under `/api/`, where programs get JSON.

use crate::common::*;
use crate::dashboard_actions::dashboard;
use serde_json::Value;

async fn get(env: &Env, path_or_url: &str) -> reqwest::Response {
    let url = if path_or_url.starts_with("http") {
        path_or_url.to_owned()
    } else {
        env.url(path_or_url)
    };
    env.http.get(url).send().await.unwrap()
}

fn location(r: &reqwest::Response) -> &str {
    r.headers()["location"].to_str().unwrap()
}

/// A 404 page for a browser: HTML with the pages' headers, a link to the dashboard, `words`.
async fn html_404(r: reqwest::Response, words: &str) {
    assert_eq!(r.status(), 404);
    let h = r.headers();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = r.text().await.unwrap();
    assert!(html.contains(words), "{html}");
    assert!(html.contains("href=\"/sandbox\""), "{html}");
}

#[tokio::test]
async fn the_escrow_url_opens_its_row_on_the_dashboard() {
    let env = Env::start().await;
    let created = env.client.create_escrow(&req(20)).await.unwrap();
    let id = created.escrow.id;
    let url = created.url.expect("the create response has a url");
    let r = get(&env, &url).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("/sandbox#escrow-{id}"));
    assert!(dashboard(&env)
        .await
        .contains(&format!("<tr id=\"escrow-{id}\">")));
    for unknown in ["66aa00000000000000000001", "nope"] {
        html_404(
            get(&env, &format!("/escrows/{unknown}")).await,
            "Escrow not found",
        )
        .await;
    }
}

#[tokio::test]
async fn the_root_leads_to_the_dashboard_and_unknown_paths_say_where_to_go() {
    let env = Env::start().await;
    let r = get(&env, "/").await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/sandbox"));
    html_404(get(&env, "/nowhere/at/all").await, "Page not found").await;
    // Programs keep DHMAD's JSON error shape, inside and outside /api/v1.
    for path in ["/api/nowhere", "/api/developer/webhooks"] {
        let r = get(&env, path).await;
        assert_eq!(r.status(), 404, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "Not Found", "{path}");
    }
    let r = env
        .http
        .get(env.url("/api/v1/nowhere"))
        .bearer_auth(env.sandbox.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "Route not found"
    );
}

/// A known `/api/v1` route called with a method it does not take: 405 in DHMAD's JSON error
/// shape, like the 404 fallback, with the `Allow` header listing what it does take.
#[tokio::test]
async fn a_wrong_method_on_an_api_route_is_a_json_405() {
    let env = Env::start().await;
    let id = env.quick().await;
    let key = env.sandbox.api_key().to_owned();
    for (method, path, allow) in [
        (
            reqwest::Method::DELETE,
            format!("/api/v1/escrows/{id}"),
            "PUT",
        ),
        (reqwest::Method::POST, "/api/v1/me".to_owned(), "GET"),
        (
            reqwest::Method::GET,
            format!("/api/v1/escrows/{id}/cancel"),
            "POST",
        ),
    ] {
        let r = env
            .http
            .request(method.clone(), env.url(&path))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        let allowed = r.headers()["allow"].to_str().unwrap().to_owned();
        assert!(allowed.contains(allow), "{method} {path}: {allowed}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "Method Not Allowed", "{v}");
        assert!(
            v["message"].as_str().unwrap().contains(method.as_str()),
            "{v}"
        );
    }
    // Authentication comes first, as on every call.
    let r = env.http.post(env.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Nothing was cancelled or deleted.
    assert_eq!(env.status(&id).await, "pending");
}
