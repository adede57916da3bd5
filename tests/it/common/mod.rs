//! Test harness: a storefront on port 0 over the per-test database that `#[sqlx::test]`
//! provides, optionally with the DHMAD sandbox in-process, and helpers to sign webhooks and to
//! wait for asynchronous effects with a bounded poll instead of fixed sleeps.

pub mod sandbox;

use std::{future::Future, time::Duration};

use dhmad::{webhook::SignedDelivery, Escrow, Event, WebhookEnvelope};
use serde_json::{json, Value};
use sqlx::PgPool;
use storefront::{app::AppState, config::JobIntervals, db, Application, Config};
use time::OffsetDateTime;
use uuid::Uuid;

pub const SECRET: &str = "storefront-test-webhook-secret";
pub const ADMIN_TOKEN: &str = "storefront-test-admin-token";
/// Nothing listens here: DHMAD calls fail fast with a connection error.
pub const DEAD_DHMAD: &str = "http://127.0.0.1:9/api/v1";

pub struct TestApp {
    /// `http://127.0.0.1:{port}`
    pub base: String,
    pub port: u16,
    pub pool: PgPool,
    pub http: reqwest::Client,
    pub state: AppState,
    /// Stops the service (`stop`).
    shutdown: tokio_util::sync::CancellationToken,
    served: std::sync::Mutex<Option<tokio::task::JoinHandle<anyhow::Result<()>>>>,
}

pub fn config(api_base: &str, api_key: &str, secret: &str) -> Config {
    let mut cfg = Config::from_lookup(|k| {
        Some(match k {
            "DATABASE_URL" => "postgres://set-by-the-test/pool".into(),
            "LISTEN_ADDR" => "127.0.0.1:0".into(),
            "PUBLIC_BASE_URL" => "http://localhost:0".into(),
            "DHMAD_API_BASE" => api_base.into(),
            "DHMAD_API_KEY" => api_key.into(),
            "DHMAD_WEBHOOK_SECRETS" => format!("an-old-rotated-secret,{secret}"),
            "ADMIN_TOKEN" => ADMIN_TOKEN.into(),
            "DHMAD_SELLER_EMAIL" => dhmad_sandbox::DEFAULT_SELLER_EMAIL.into(),
            _ => return None,
        })
    })
    .expect("test config");
    cfg.dhmad_timeout = Duration::from_secs(3);
    // The sandbox of a test allows far more than DHMAD's 100 a minute; so does our budget
    // (the burst tests set their own).
    cfg.dhmad_budget.calls = 2_000;
    // The outbox runs fast; the reconciler and sweeper only when a test calls them.
    cfg.jobs = JobIntervals {
        outbox: Duration::from_millis(50),
        reconcile: Duration::from_secs(3600),
        reconcile_after: Duration::from_secs(3600),
        session_sweep: Duration::from_secs(3600),
        ..JobIntervals::default()
    };
    cfg
}

pub async fn spawn(pool: PgPool, cfg: Config) -> TestApp {
    let app = Application::build_with_pool(cfg, pool.clone())
        .await
        .expect("build storefront");
    let port = app.port();
    let state = app.state().clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    let served = tokio::spawn(app.run_until(async move { stop.cancelled().await }));
    // The service sizes DHMAD's call budget before it reads its first request, but a test that
    // calls the domain directly (a job's pass, a client call) could come first and find no
    // row free: sized here too (idempotent) before the test goes on.
    storefront::budget::prepare(&state)
        .await
        .expect("size DHMAD's call budget");
    // A cookie store, like a browser: the CSRF and checkout cookies come back on their own.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        port,
        pool,
        http,
        state,
        shutdown,
        served: std::sync::Mutex::new(Some(served)),
    }
}

/// The `application_name` of [`production_pool`]'s connections.
const UNDER_TEST: &str = "storefront-under-test";

/// A pool on `pool`'s database set as the service sets its own (`app::connect`): no test of a
/// connection before its use, so a connection that died meanwhile fails its next statement, as
/// in production (the pool `sqlx::test` hands out tests each one first, and hides that); and
/// the same bounded waits, so a statement on a locked row fails as it would in production
/// instead of waiting for ever.
pub fn production_pool(pool: &PgPool) -> PgPool {
    let options = (*pool.connect_options())
        .clone()
        .application_name(UNDER_TEST);
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .connect_lazy_with(storefront::app::with_bounded_waits(options))
}

/// Ends every connection of [`production_pool`]'s, as a restart of Postgres does (the server
/// tells each `57P01` and closes it); how many. The test's own connections stay.
pub async fn terminate_production_connections(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = $1) AS ended",
    )
    .bind(UNDER_TEST)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A storefront whose DHMAD is unreachable: enough for everything that must not call DHMAD.
/// The configuration of [`spawn_offline`], for a test that changes some of it first.
pub fn offline_config() -> Config {
    config(
        DEAD_DHMAD,
        storefront::config::SANDBOX_DEFAULT_API_KEY,
        SECRET,
    )
}

pub async fn spawn_offline(pool: PgPool) -> TestApp {
    spawn(pool, offline_config()).await
}

impl TestApp {
    /// Shuts the service down as SIGTERM would, and waits until it has stopped.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        let served = self.served.lock().unwrap().take().expect("stopped once");
        tokio::time::timeout(Duration::from_secs(60), served)
            .await
            .expect("the service stops within a minute")
            .expect("the service task")
            .expect("the service ends without an error");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// The CSRF token the shop's pages put in their forms (the client keeps its cookie).
    pub async fn csrf_token(&self) -> String {
        csrf_token_in(&self.get("/").await.text().await.unwrap())
    }

    /// Posts a form as the shop's own page would: with its CSRF token.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let token = self.csrf_token().await;
        let mut form = fields.to_vec();
        form.push(("csrf_token", &token));
        self.http
            .post(self.url(path))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// The buyer's order page, as its link opens it.
    pub async fn order_page(&self, id: Uuid) -> String {
        let r = self.get(&format!("/orders/{id}")).await;
        assert_eq!(r.status(), 200, "GET /orders/{id}");
        r.text().await.unwrap()
    }

    pub async fn order_json(&self, id: Uuid) -> Value {
        let r = self.get(&format!("/api/orders/{id}")).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Posts a webhook body with the given headers.
    pub async fn post_webhook(
        &self,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        let mut req = self.http.post(self.url("/webhooks/dhmad")).body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.send().await.unwrap()
    }

    pub async fn deliver(&self, d: &SignedDelivery) -> reqwest::Response {
        let headers: Vec<(&str, String)> = d.headers().into_iter().collect();
        self.post_webhook(d.body.clone(), &headers).await
    }

    /// Delivers `d` and checks the storefront took it in: 200, `"processed"`. A check after a
    /// stale or late event that changed nothing means nothing unless the event was accepted.
    pub async fn deliver_processed(&self, d: &SignedDelivery) {
        let r = self.deliver(d).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or_default();
        assert_eq!(
            (status.as_u16(), body["result"].as_str()),
            (200, Some("processed")),
            "{body}"
        );
    }

    /// An order as a checkout would leave it: escrow `escrow_id` created, awaiting payment.
    /// An open order written as a checkout writes it: with its escrow creation claimed, or
    /// (`None`) as a `new` order, with no e-mail queued.
    pub async fn insert_order(
        &self,
        sku: &str,
        email: &str,
        claim: Option<db::orders::ClaimCalls>,
    ) -> storefront::orders::Order {
        let p = db::products::get(&self.pool, sku).await.unwrap().unwrap();
        let new = db::orders::NewOrder {
            sku,
            mode: p.mode,
            buyer_email: email,
            amount: p.price,
            currency: &p.currency,
            owner_key: &api_owner(sku, email),
            proof_required: p.proof_required,
            claim,
            created: line("order_created"),
            // Seeded orders have no e-mail queued: tests that need jobs add their own.
            job: None,
            client: None,
        };
        db::orders::insert_open(&self.pool, &new)
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn seed_order(
        &self,
        sku: &str,
        email: &str,
        escrow_id: &str,
        updated_at: OffsetDateTime,
    ) -> Uuid {
        let claim = db::orders::ClaimCalls {
            calls: 0,
            reuse_after: Duration::ZERO,
            taker: Uuid::nil(),
        };
        let o = self.insert_order(sku, email, Some(claim)).await;
        let created = line("escrow_created");
        db::orders::record_escrow(
            &self.pool,
            o.id,
            escrow_id,
            "pending",
            Some(updated_at),
            &created,
        )
        .await
        .unwrap()
        .unwrap();
        o.id
    }
}

/// The CSRF token of the first form on `page`.
pub fn csrf_token_in(page: &str) -> String {
    let (_, rest) = page
        .split_once(r#"name="csrf_token" value=""#)
        .expect("a form with a CSRF token");
    rest.split('"').next().unwrap().to_owned()
}

/// A timeline line as the storefront writes one of `kind`.
pub fn line(kind: &str) -> db::events::NewEvent<'_> {
    db::events::NewEvent {
        kind,
        detail: format!("{kind} (seeded by the test)"),
        public: None,
    }
}

/// The `Idempotency-Key` the test client sends for a checkout of `sku` by `email`: a repeated
/// checkout continues the same open order, as a browser's would.
pub fn idempotency_key(sku: &str, email: &str) -> String {
    format!("{sku}|{}", email.trim().to_lowercase())
}

/// The owner of orders checked out through the JSON API with [`idempotency_key`].
pub fn api_owner(sku: &str, email: &str) -> String {
    storefront::orders::checkout::Owner::Key(idempotency_key(sku, email)).stored_key()
}

/// An escrow snapshot as DHMAD's webhooks carry it.
pub fn escrow(id: &str, status: &str, old: &str, mode: &str, updated_at: OffsetDateTime) -> Escrow {
    serde_json::from_value(json!({
        "id": id, "title": "test", "amount": 15, "currency": "TND", "escrowFee": 0.75,
        "status": status, "oldStatus": old, "mode": mode,
        "seller": {"_id": "66aa0000000000000000000a", "email": "merchant@shop.example"},
        "buyer": {"_id": "66aa0000000000000000000b", "email": "buyer@example.tn"},
        "createdAt": "2026-07-01T09:00:00.000Z",
        "updatedAt": dhmad::iso::format(updated_at),
    }))
    .unwrap()
}

pub fn status_event(escrow: Escrow) -> WebhookEnvelope {
    let ev = Event::EscrowStatusUpdated(dhmad::EscrowData { escrow });
    WebhookEnvelope::new(Uuid::new_v4().to_string(), OffsetDateTime::now_utc(), &ev)
}

pub fn sign(env: &WebhookEnvelope) -> SignedDelivery {
    SignedDelivery::new(SECRET, env, OffsetDateTime::now_utc())
}

/// Waits until one of `apps` (instances on one database) has made the reconciler pass every
/// job makes at start: the instances share its turn, so the one that made it may be any.
pub async fn after_first_reconciler_pass(apps: &[&TestApp]) {
    wait_for("the first reconciler pass", 30, || async move {
        for app in apps {
            let text = app.get("/metrics").await.text().await.unwrap();
            if text.contains("storefront_reconciler_runs_total{") {
                return Some(());
            }
        }
        None
    })
    .await;
}

/// A transaction holding the order's row lock as the service takes it (`db::orders::lock`):
/// a webhook, the back office or a stuck request in the middle of its work. Rolled back (or
/// dropped) to let go.
pub async fn holding_the_order(
    pool: &PgPool,
    order: Uuid,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut held = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM orders WHERE id = $1 FOR NO KEY UPDATE")
        .bind(order)
        .execute(&mut *held)
        .await
        .unwrap();
    held
}

/// Polls `check` until it yields `Some`, for at most `secs` seconds.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub async fn order_status(pool: &PgPool, id: Uuid) -> String {
    db::orders::get(pool, id)
        .await
        .unwrap()
        .unwrap()
        .status
        .as_str()
        .to_owned()
}

/// The order's flag for the merchant, if any.
pub async fn attention(pool: &PgPool, id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT attention FROM orders WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Flags the order for the merchant with `text`, as the shop would.
pub async fn set_attention(pool: &PgPool, id: Uuid, text: &str) {
    sqlx::query("UPDATE orders SET attention = $2 WHERE id = $1")
        .bind(id)
        .bind(text)
        .execute(pool)
        .await
        .unwrap();
}

/// How many of the order's timeline entries mention `needle`.
pub async fn timeline_count(pool: &PgPool, id: Uuid, needle: &str) -> usize {
    timeline(pool, id)
        .await
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

pub async fn timeline(pool: &PgPool, id: Uuid) -> Vec<String> {
    db::events::list(pool, id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.detail)
        .collect()
}

/// The local SMTP sink `scripts/ensure-smtp-sink` starts: its address as an `SMTP_URL`, and
/// the folder it writes each message to.
pub fn smtp_sink() -> (String, std::path::PathBuf) {
    let addr = std::env::var("SMTP_SINK_ADDR").unwrap_or_else(|_| "127.0.0.1:2525".into());
    let dir = std::env::var("SMTP_SINK_DIR").unwrap_or_else(|_| "/tmp/storefront-smtp-sink".into());
    (format!("smtp://{addr}"), dir.into())
}

/// Waits for a message to `to` that contains `needle`; returns it whole.
pub async fn wait_for_mail(to: &str, needle: &str) -> String {
    let (_, dir) = smtp_sink();
    let rcpt = format!("X-Rcpt-To: {to}");
    wait_for(&format!("an e-mail to {to} with {needle:?}"), 30, || {
        let dir = dir.clone();
        let (rcpt, needle) = (rcpt.clone(), needle.to_owned());
        async move {
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (is scripts/ensure-smtp-sink running?)",
                    dir.display()
                )
            });
            entries
                .filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .find(|m| m.starts_with(&rcpt) && m.contains(&needle))
        }
    })
    .await
}
