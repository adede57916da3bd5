//! The DHMAD sandbox in-process, wired to a storefront, and its control API.

use dhmad_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::*;

pub struct World {
    pub app: TestApp,
    pub sb: SandboxHandle,
    pub http: reqwest::Client,
}

/// Sandbox first (the storefront needs its API base), then the storefront on port 0, then the
/// sandbox is pointed at the storefront's webhook and callback URLs.
pub async fn world(pool: PgPool, tweak: impl FnOnce(&mut Config)) -> World {
    world_with(pool, SandboxConfig::for_tests(), tweak).await
}

/// [`world`] with a sandbox configured by the test (a tight rate limit, say).
pub async fn world_with(
    pool: PgPool,
    sandbox: SandboxConfig,
    tweak: impl FnOnce(&mut Config),
) -> World {
    let sb = Sandbox::start(sandbox).await.expect("sandbox");
    let mut cfg = config(&sb.api_base(), sb.api_key(), sb.webhook_secret());
    tweak(&mut cfg);
    let app = spawn(pool, cfg).await;
    sb.set_webhook_urls(vec![format!(
        "http://127.0.0.1:{}/webhooks/dhmad",
        app.port
    )]);
    sb.set_allowed_redirect_urls(vec![format!(
        "http://localhost:{}/checkout/callback",
        app.port
    )]);
    let http = app.http.clone();
    World { app, sb, http }
}

pub struct Started {
    pub order_id: Uuid,
    pub session_id: String,
    pub checkout_url: String,
}

impl World {
    pub async fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.sb.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "sandbox {path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    pub async fn faults(&self, faults: Value) {
        self.control("/sandbox/faults", faults).await;
    }

    /// Waits until DHMAD has met every API fault set (each rule's `times` spent): the call a
    /// test stages a race around has arrived, whatever the machine's speed.
    pub async fn after_the_faults(&self) {
        wait_for("the staged faults to be met", 30, || async {
            let set: Value = self.sandbox_json("/sandbox/faults").await;
            let rules = set["api"].as_array().expect("the sandbox's API faults");
            rules.iter().all(|r| r["times"] == 0).then_some(())
        })
        .await;
    }

    /// What the sandbox's control API answers to `GET path`.
    async fn sandbox_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let url = format!("{}{path}", self.sb.base_url());
        let r = self.http.get(url).send().await.unwrap();
        r.json().await.unwrap()
    }

    /// How many webhook deliveries about `escrow` the storefront answered with a 2xx.
    pub async fn answered_deliveries(&self, escrow: &str) -> usize {
        let list: Vec<Value> = self.sandbox_json("/sandbox/deliveries").await;
        list.iter()
            .filter(|d| d["escrow_id"] == escrow)
            .filter(|d| {
                d["status"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))
            })
            .count()
    }

    /// Every /api/v1 call the sandbox received, as "METHOD path".
    pub async fn dhmad_calls(&self) -> Vec<String> {
        self.dhmad_log()
            .await
            .into_iter()
            .map(|(c, ..)| c)
            .collect()
    }

    /// Every /api/v1 call the sandbox answered: "METHOD path", its status and when.
    pub async fn dhmad_log(&self) -> Vec<(String, u16, OffsetDateTime)> {
        let list: Vec<Value> = self.sandbox_json("/sandbox/requests").await;
        list.iter()
            .map(|r| {
                let call = format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["path"].as_str().unwrap()
                );
                let at = dhmad::iso::parse(r["at"].as_str().unwrap()).unwrap();
                (call, r["status"].as_u64().unwrap() as u16, at)
            })
            .collect()
    }

    /// Waits until the app's own first reconciler pass (every job runs once at start) is over,
    /// so that a test's own pass is the only one looking.
    pub async fn after_first_reconciler_pass(&self) {
        after_first_reconciler_pass(&[&self.app]).await;
    }

    pub async fn count_calls(&self, method: &str, suffix: &str) -> usize {
        self.dhmad_calls()
            .await
            .iter()
            .filter(|c| c.starts_with(method) && c.ends_with(suffix))
            .count()
    }

    pub async fn checkout(&self, sku: &str, email: &str) -> Started {
        let r = self.checkout_response(sku, email).await;
        assert_eq!(r.status(), 201, "checkout: {}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        Started {
            order_id: v["order_id"].as_str().unwrap().parse().unwrap(),
            session_id: v["session_id"].as_str().unwrap().to_owned(),
            checkout_url: v["checkout_url"].as_str().unwrap().to_owned(),
        }
    }

    /// The API's checkout as [`Self::checkout`] sends it (one key per product and buyer, so a
    /// repeat continues the same order), answered as it comes.
    pub async fn checkout_response(&self, sku: &str, email: &str) -> reqwest::Response {
        self.http
            .post(self.app.url("/api/checkout"))
            .header("idempotency-key", idempotency_key(sku, email))
            .json(&json!({"sku": sku, "email": email}))
            .send()
            .await
            .unwrap()
    }

    /// Whether the shop, asked now (`payment_review::known`), finds a payment under review.
    pub async fn payment_review_known(&self, order_id: Uuid) -> bool {
        let order = db::orders::get(&self.app.pool, order_id)
            .await
            .unwrap()
            .unwrap();
        storefront::orders::payment_review::known(&self.app.state, &order)
            .await
            .unwrap()
    }

    /// The browser's checkout: the catalog form, answered with a redirect or an error page.
    pub async fn checkout_form(&self, sku: &str, email: &str) -> reqwest::Response {
        self.app
            .post_form("/checkout", &[("sku", sku), ("email", email)])
            .await
    }

    /// The buyer finishes the session on DHMAD's page; returns where DHMAD redirects them.
    pub async fn complete(&self, session_id: &str) -> String {
        let v = self
            .control(
                &format!("/sandbox/sessions/{session_id}/complete"),
                json!({}),
            )
            .await;
        v["redirect_url"].as_str().unwrap().to_owned()
    }

    /// Follows DHMAD's redirect to our callback, as the browser would; returns the Location.
    pub async fn land_on_callback(&self, redirect_url: &str) -> String {
        let url = redirect_url.replace("http://localhost:", "http://127.0.0.1:");
        let r = self.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 303);
        r.headers()["location"].to_str().unwrap().to_owned()
    }

    pub async fn wait_status(&self, id: Uuid, status: &str) -> Value {
        let app = &self.app;
        wait_for(&format!("order {id} to be {status}"), 30, || async move {
            let o = app.order_json(id).await;
            (o["status"] == status).then_some(o)
        })
        .await
    }

    pub async fn admin_post(&self, path: &str) -> reqwest::Response {
        self.http
            .post(self.app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }
}

impl World {
    /// A back-office form post as a script sends it (bearer token, no CSRF cookie needed).
    pub async fn admin_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    /// The session id at the end of a DHMAD page URL.
    pub fn session_in(url: &str) -> String {
        url.rsplit('/').next().unwrap().to_owned()
    }

    /// Follows a 303 to DHMAD's page, finishes the session there (with `body`), and comes back
    /// through the callback; returns where the callback sent the user.
    pub async fn finish_on_dhmad(&self, r: reqwest::Response, body: Value) -> String {
        let back = self.finish_at_dhmad(r, body).await;
        self.land_on_callback(&back).await
    }

    /// [`Self::finish_on_dhmad`] for a step of the merchant's, who comes back in a browser
    /// signed in to the back office.
    pub async fn finish_on_dhmad_as_merchant(&self, r: reqwest::Response, body: Value) -> String {
        let back = self.finish_at_dhmad(r, body).await;
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        let catalog = browser.get(self.app.url("/")).send().await.unwrap();
        let token = csrf_token_in(&catalog.text().await.unwrap());
        let login = browser
            .post(self.app.url("/admin/login"))
            .form(&[("token", ADMIN_TOKEN), ("csrf_token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 303);
        let url = back.replace("http://localhost:", "http://127.0.0.1:");
        let r = browser.get(url).send().await.unwrap();
        assert_eq!(r.status(), 303);
        // Through the back office's own address, which only a signed-in merchant passes.
        let via = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(via.starts_with("/admin/from-dhmad/"), "{via}");
        let r = browser.get(self.app.url(&via)).send().await.unwrap();
        assert_eq!(r.status(), 303);
        r.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Follows a 303 to DHMAD's page and finishes the session there; returns where DHMAD
    /// redirects the user.
    async fn finish_at_dhmad(&self, r: reqwest::Response, body: Value) -> String {
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        let url = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(url.starts_with(&self.sb.base_url()), "{url}");
        let session = Self::session_in(&url);
        let v = self
            .control(&format!("/sandbox/sessions/{session}/complete"), body)
            .await;
        v["redirect_url"].as_str().unwrap().to_owned()
    }

    pub async fn wait_json(&self, id: Uuid, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let app = &self.app;
        let check = &check;
        wait_for(what, 30, || async move {
            let o = app.order_json(id).await;
            check(&o).then_some(o)
        })
        .await
    }
}
