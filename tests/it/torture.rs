//! The torture test (issue 10): real orders through the sandbox, then thousands of DHMAD-style
//! webhook deliveries with duplicates, reordering, tampering and stale timestamps, sent at
//! concurrency to one and to three storefront instances on one database, and the result checked
//! against the sandbox's ground truth.
//!
//! Design, in three steps:
//!
//! 1. **Settle every order at the sandbox first, with the storefront blind.** Orders are checked
//!    out through the storefront (round-robin over the instances), then the sandbox's webhooks
//!    go to a capture server of this test instead of the storefront. Each order follows one of
//!    sixteen flows (unpaid, cancelled, paid, shipped, completed, disputed, refunded, released,
//!    cancelled on the buyer's request…), driven as the buyer (sessions completed through the
//!    control API), as the merchant (the `deliver` and `cancel` calls the shop's own DHMAD
//!    client makes, or DHMAD's site for one instant escrow in sixteen) and as DHMAD's admin
//!    (dispute resolution), one step per round, the sandbox clock moved one second between
//!    rounds so every step has a later `updatedAt`. After every step the sandbox also emits
//!    extra events for the escrow as it then is (`escrow.status.updated` and `escrow.updated`
//!    with fresh ids, like `stripe trigger`): that is what makes thousands of distinct, genuine
//!    events out of 64 orders. The capture keeps the sandbox's exact signed bytes; its FIFO
//!    order is each escrow's true history.
//! 2. **Replay (wave A).** The captured events become a workload in which 63 % are first sends,
//!    30 % duplicates (the same signed bytes again), 5 % forgeries (a real event whose body was
//!    changed after signing, or a fresh event signed with a wrong secret: 401) and 2 % stale
//!    (`X-Webhook-Timestamp` 6 to 60 minutes old, replays of real events or fresh ones correctly
//!    signed: 400); a fifth of the first sends swap places with an event up to 150 positions
//!    away, and for a quarter of the escrows (and each delivered on DHMAD's site, whose
//!    `completed` so comes before its `paid`) a copy of the newest event is sent first of all.
//!    Forged and stale events claim a status the escrow never reached, dated after its last
//!    one, so any that got through would show in the final state. Valid deliveries carry a fresh
//!    timestamp, as DHMAD's retries do. Meanwhile the storefronts call `deliver` for the paid
//!    instant orders on their own, as in production, so the sandbox moves on mid-storm.
//! 3. **Wave B, then check.** Once every `deliver` job is done, the events the sandbox sent
//!    meanwhile (instant escrows completed) plus extras for them are replayed the same way, with
//!    duplicates of everything older. Then every order must equal `GET /escrows/:id`; each paid
//!    instant order must have one code and, when the shop is the one to deliver it, one
//!    `deliver` job and one call at the sandbox; quick orders none; the timeline may only move
//!    forward along the true history; the inbox must hold exactly the valid event ids, each
//!    applied to its order; and every delivery must have been answered as expected (200
//!    `processed` once per event id, else `duplicate`; 401; 400).
//!
//! Sizes, per instance count: 64 orders (16 of them paid instant orders), 10 extra events per
//! escrow and stage, 1,833 distinct events and 2,931 deliveries in wave A, 276 in wave B, 24 in
//! flight. Both tests together take about 30 s in a debug build on two cores, under a minute on
//! a loaded machine.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    future::Future,
    sync::{Arc, Mutex},
    time::Duration as StdDuration,
};

use axum::{
    body::Bytes,
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use dhmad::{webhook, CheckoutAction, CreateSession};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use storefront::db;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::common::{sandbox::*, *};

const INSTANT: &str = "ai-credits-500";
const QUICK: &str = "chechia-red";
const ORDERS: usize = 64;
/// Extra events the sandbox emits for each escrow after each of its steps (and before any).
const EXTRA_PER_STAGE: usize = 10;
/// Deliveries in flight at once.
const IN_FLIGHT: usize = 24;
/// How far a reordered first send may move.
const REORDER_WINDOW: usize = 150;
/// A secret the storefront does not know.
const WRONG_SECRET: &str = "not-dhmad-webhook-secret";
/// Connections per storefront instance (each has its own pool, as separate processes would).
const POOL_SIZE: u32 = 8;

#[sqlx::test(migrations = "./migrations")]
async fn torture_one_instance(_opts: PgPoolOptions, db: PgConnectOptions) {
    Box::pin(torture(db, 1, 11)).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn torture_three_instances(_opts: PgPoolOptions, db: PgConnectOptions) {
    Box::pin(torture(db, 3, 33)).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The buyer pays on DHMAD's page (the checkout's `accept_pay` session).
    Pay,
    /// The merchant cancels the unpaid escrow.
    Cancel,
    /// The merchant delivers (what the back office's "shipped" queues).
    Ship,
    /// The merchant marks an instant escrow delivered on DHMAD's site, not through the shop
    /// (the sandbox's `POST /sandbox/escrows/:id/deliver`): its `completed` may reach the shop
    /// before its `paid`.
    DeliverOnDhmad,
    /// The buyer confirms receipt (`complete` session).
    Complete,
    /// The buyer opens a dispute (`dispute` session).
    Dispute,
    /// DHMAD's admin resolves the dispute for the buyer (→ cancelled) or the seller (→ completed).
    Refund,
    Release,
    /// The buyer asks to cancel, the seller accepts (→ cancelled).
    AskCancel,
    AcceptCancel,
}

use Step::*;

/// Product, steps at the sandbox, and the escrow's final status once the storefronts have done
/// their part (they deliver the paid instant escrows nobody else delivered).
const FLOWS: &[(&str, &[Step], &str)] = &[
    (INSTANT, &[], "pending"),
    (INSTANT, &[Cancel], "cancelled"),
    (INSTANT, &[Pay], "completed"),
    (INSTANT, &[Pay], "completed"),
    (INSTANT, &[Pay], "completed"),
    (INSTANT, &[Pay, DeliverOnDhmad], "completed"),
    (QUICK, &[], "pending"),
    (QUICK, &[Cancel], "cancelled"),
    (QUICK, &[Pay], "paid"),
    (QUICK, &[Pay, Ship], "delivered"),
    (QUICK, &[Pay, Ship, Complete], "completed"),
    (QUICK, &[Pay, Complete], "completed"),
    (QUICK, &[Pay, Dispute], "disputed"),
    (QUICK, &[Pay, Ship, Dispute, Refund], "cancelled"),
    (QUICK, &[Pay, Dispute, Release], "completed"),
    (QUICK, &[Pay, AskCancel, AcceptCancel], "cancelled"),
];

struct Placed {
    id: Uuid,
    escrow_id: String,
    sku: &'static str,
    email: String,
    session_id: String,
    steps: &'static [Step],
    expected: &'static str,
}

impl Placed {
    fn instant_paid(&self) -> bool {
        self.sku == INSTANT && self.steps.contains(&Pay)
    }

    /// A paid instant order only the storefront can deliver.
    fn shop_delivers(&self) -> bool {
        self.instant_paid() && !self.steps.contains(&DeliverOnDhmad)
    }
}

/// One webhook as the sandbox sent it.
#[derive(Debug, Clone)]
struct Captured {
    event_id: String,
    event_type: String,
    escrow_id: String,
    status: String,
    updated_at: OffsetDateTime,
    signature: String,
    body: Bytes,
}

type CaptureLog = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A webhook receiver that keeps every delivery and answers 200.
async fn start_capture() -> (String, CaptureLog) {
    let log: CaptureLog = Arc::default();
    let keep = log.clone();
    let app = Router::new().route(
        "/capture",
        post(move |headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push((headers, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/capture", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, log)
}

fn parse_captured(secret: &str, headers: &HeaderMap, body: &Bytes) -> Captured {
    let signature = headers[webhook::SIGNATURE_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        signature,
        webhook::sign(secret, body),
        "the sandbox signs the bytes it sends"
    );
    let v: Value = serde_json::from_slice(body).unwrap();
    let e = &v["data"]["escrow"];
    let text = |v: &Value| {
        v.as_str()
            .unwrap_or_else(|| {
                panic!(
                    "captured event without {v}: {}",
                    String::from_utf8_lossy(body)
                )
            })
            .to_owned()
    };
    Captured {
        event_id: text(&v["id"]),
        event_type: text(&v["type"]),
        escrow_id: text(&e["id"]),
        status: text(&e["status"]),
        updated_at: dhmad::iso::parse(e["updatedAt"].as_str().unwrap()).unwrap(),
        signature,
        body: body.clone(),
    }
}

/// Runs `f` over `items` with at most `width` at once; results in the order of `items`.
async fn bounded<T, R, F, Fut>(items: Vec<T>, width: usize, f: F) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(usize, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    let f = Arc::new(f);
    let queue = Arc::new(Mutex::new(
        items.into_iter().enumerate().collect::<VecDeque<_>>(),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..width {
        let (f, queue) = (f.clone(), queue.clone());
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = queue.lock().unwrap().pop_front();
                let Some((i, item)) = next else { break };
                done.push((i, f(i, item).await));
            }
            done
        });
    }
    let mut all: Vec<(usize, R)> = tasks.join_all().await.into_iter().flatten().collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The first send of a genuine event.
    First,
    /// The same signed bytes again.
    Duplicate,
    /// A genuine event whose body was changed after signing.
    Tampered,
    /// A fresh event signed with a wrong secret.
    Forged,
    /// A genuine event replayed with an old timestamp.
    StaleReplay,
    /// A fresh, correctly signed event with an old timestamp.
    StaleNew,
}

impl Kind {
    fn expected_status(self) -> u16 {
        match self {
            Kind::First | Kind::Duplicate => 200,
            Kind::Tampered | Kind::Forged => 401,
            Kind::StaleReplay | Kind::StaleNew => 400,
        }
    }
}

#[derive(Debug, Clone)]
struct Delivery {
    kind: Kind,
    event_id: String,
    event_type: String,
    escrow_id: String,
    updated_at: OffsetDateTime,
    signature: String,
    body: Bytes,
    /// Seconds the timestamp header lies in the past (0: sent now).
    age_secs: i64,
}

impl Delivery {
    fn genuine(kind: Kind, c: &Captured) -> Self {
        Self {
            kind,
            event_id: c.event_id.clone(),
            event_type: c.event_type.clone(),
            escrow_id: c.escrow_id.clone(),
            updated_at: c.updated_at,
            signature: c.signature.clone(),
            body: c.body.clone(),
            age_secs: 0,
        }
    }
}

/// What one wave sent and how it was answered.
struct Wave {
    label: String,
    deliveries: Vec<Delivery>,
    answers: Vec<(u16, String)>,
    /// Genuine deliveries sent after a later snapshot of the same escrow.
    reordered: usize,
}

impl Wave {
    fn summary(&self) -> String {
        let count = |k: Kind| self.deliveries.iter().filter(|d| d.kind == k).count();
        format!(
            "{}: {} deliveries ({} first, {} duplicate, {} tampered, {} forged, {} stale replays, \
             {} stale new; {} genuine ones after a later snapshot)",
            self.label,
            self.deliveries.len(),
            count(Kind::First),
            count(Kind::Duplicate),
            count(Kind::Tampered),
            count(Kind::Forged),
            count(Kind::StaleReplay),
            count(Kind::StaleNew),
            self.reordered
        )
    }
}

struct Torture {
    w: World,
    /// Every instance's base URL (`w.app` first).
    bases: Vec<String>,
    pools: Vec<PgPool>,
    _extra: Vec<TestApp>,
    capture: CaptureLog,
    /// A plain client (no cookies), for the sandbox's control API and the storm.
    web: reqwest::Client,
    orders: Vec<Placed>,
    rng: StdRng,
}

async fn torture(db: PgConnectOptions, instances: usize, seed: u64) {
    let mut pools = Vec::new();
    for _ in 0..instances {
        pools.push(
            PgPoolOptions::new()
                .max_connections(POOL_SIZE)
                .connect_with(db.clone())
                .await
                .unwrap(),
        );
    }
    let tweak = |cfg: &mut storefront::Config| {
        cfg.edge.checkout_per_minute = 6_000;
    };
    let w = world(pools[0].clone(), tweak).await;
    let mut extra = Vec::new();
    for pool in &pools[1..] {
        let mut cfg = config(&w.sb.api_base(), w.sb.api_key(), w.sb.webhook_secret());
        tweak(&mut cfg);
        extra.push(spawn(pool.clone(), cfg).await);
    }
    let bases: Vec<String> = std::iter::once(w.app.base.clone())
        .chain(extra.iter().map(|a| a.base.clone()))
        .collect();
    let ports: Vec<u16> = std::iter::once(w.app.port)
        .chain(extra.iter().map(|a| a.port))
        .collect();
    w.sb.set_allowed_redirect_urls(
        ports
            .iter()
            .map(|p| format!("http://localhost:{p}/checkout/callback"))
            .collect(),
    );
    // From now on DHMAD's webhooks reach this test, never the storefronts.
    let (capture_url, capture) = start_capture().await;
    w.sb.set_webhook_urls(vec![capture_url]);

    let mut t = Torture {
        w,
        bases,
        pools,
        _extra: extra,
        capture,
        web: reqwest::Client::builder()
            .timeout(StdDuration::from_secs(30))
            .build()
            .unwrap(),
        orders: Vec::new(),
        rng: StdRng::seed_from_u64(seed),
    };
    let label = format!("{instances} instance(s)");

    // 1. Orders settled at the sandbox; its webhooks captured.
    t.place_orders().await;
    t.drive_orders().await;
    let wave_a_events = t.flush_capture().await;

    // 2. Wave A, while the storefronts deliver their paid instant orders. For a quarter of the
    // escrows, and every one delivered on DHMAD's site, the newest news comes first of all.
    let newest_first: HashSet<String> = t
        .orders
        .iter()
        .enumerate()
        .filter(|(i, o)| i % 4 == 0 || o.steps.contains(&DeliverOnDhmad))
        .map(|(_, o)| o.escrow_id.clone())
        .collect();
    let wave_a = t
        .storm(
            format!("{label}, wave A"),
            &wave_a_events,
            &wave_a_events,
            &newest_first,
        )
        .await;
    t.check_answers(&wave_a, &wave_a_events);
    t.wait_for_deliver_jobs().await;

    // 3. Wave B: what the sandbox said meanwhile, plus everything older again.
    let instant_paid: Vec<String> = t
        .orders
        .iter()
        .filter(|o| o.instant_paid())
        .map(|o| o.escrow_id.clone())
        .collect();
    t.emit_extras(&instant_paid).await;
    let all_events = t.flush_capture().await;
    let wave_b_events = all_events[wave_a_events.len()..].to_vec();
    let wave_b = t
        .storm(
            format!("{label}, wave B"),
            &wave_b_events,
            &all_events,
            &HashSet::new(),
        )
        .await;
    t.check_answers(&wave_b, &wave_b_events);

    t.check_orders(&all_events, &[&wave_a, &wave_b]).await;
    t.check_inbox(&all_events, &[&wave_a, &wave_b]).await;

    for pool in &t.pools {
        let _ = tokio::time::timeout(StdDuration::from_secs(10), pool.close()).await;
    }
}

impl Torture {
    fn sandbox(&self, path: &str) -> String {
        format!("{}{path}", self.w.sb.base_url())
    }

    async fn place_orders(&mut self) {
        for (i, (sku, steps, expected)) in FLOWS.iter().cycle().take(ORDERS).enumerate() {
            let email = format!("torture{i}@example.tn");
            let base = &self.bases[i % self.bases.len()];
            let r = self
                .web
                .post(format!("{base}/api/checkout"))
                .header("idempotency-key", idempotency_key(sku, &email))
                .json(&json!({"sku": sku, "email": email}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "checkout: {}", r.text().await.unwrap());
            let v: Value = r.json().await.unwrap();
            let id: Uuid = v["order_id"].as_str().unwrap().parse().unwrap();
            let order = db::orders::get(&self.pools[0], id).await.unwrap().unwrap();
            self.orders.push(Placed {
                id,
                escrow_id: order.escrow_id.expect("checkout created the escrow"),
                sku,
                email,
                session_id: v["session_id"].as_str().unwrap().to_owned(),
                steps,
                expected,
            });
        }
        let all: Vec<String> = self.orders.iter().map(|o| o.escrow_id.clone()).collect();
        self.emit_extras(&all).await;
    }

    /// One step per round for every order that has one, the clock a second later each round.
    async fn drive_orders(&mut self) {
        let rounds = FLOWS.iter().map(|f| f.1.len()).max().unwrap();
        for round in 0..rounds {
            self.w
                .control("/sandbox/clock/advance", json!({"seconds": 1}))
                .await;
            let mut moved = Vec::new();
            for o in &self.orders {
                let Some(step) = o.steps.get(round) else {
                    continue;
                };
                self.perform(o, *step).await;
                moved.push(o.escrow_id.clone());
            }
            self.emit_extras(&moved).await;
        }
    }

    async fn perform(&self, o: &Placed, step: Step) {
        let dhmad = &self.w.app.state.dhmad;
        let session = |action: CheckoutAction, target: String| async move {
            let callback = format!("http://localhost:{}/checkout/callback", self.w.app.port);
            dhmad
                .create_session(&o.escrow_id, &CreateSession::new(action, target, callback))
                .await
                .unwrap_or_else(|e| panic!("{step:?} session for {}: {e}", o.escrow_id))
                .session_id
        };
        match step {
            Pay => {
                self.w.complete(&o.session_id).await;
            }
            Cancel => {
                dhmad.cancel_escrow(&o.escrow_id).await.unwrap();
            }
            Ship => {
                dhmad.deliver_escrow(&o.escrow_id).await.unwrap();
            }
            DeliverOnDhmad => {
                self.w
                    .control(
                        &format!("/sandbox/escrows/{}/deliver", o.escrow_id),
                        json!({}),
                    )
                    .await;
            }
            Complete => {
                let s = session(CheckoutAction::Complete, o.email.clone()).await;
                self.w.complete(&s).await;
            }
            Dispute => {
                let s = session(CheckoutAction::Dispute, o.email.clone()).await;
                self.w.complete(&s).await;
            }
            AskCancel => {
                let s = session(CheckoutAction::RequestCancellation, o.email.clone()).await;
                self.w
                    .control(
                        &format!("/sandbox/sessions/{s}/complete"),
                        json!({"note": "changed my mind"}),
                    )
                    .await;
            }
            AcceptCancel => {
                let seller = self.w.sb.seller_email().to_owned();
                let s = session(CheckoutAction::AcceptCancellation, seller).await;
                self.w.complete(&s).await;
            }
            Refund | Release => {
                let outcome = if step == Refund { "refund" } else { "release" };
                self.w
                    .control(
                        &format!("/sandbox/escrows/{}/dispute/resolve", o.escrow_id),
                        json!({ "outcome": outcome }),
                    )
                    .await;
            }
        }
    }

    /// Has the sandbox emit `EXTRA_PER_STAGE` events (fresh ids) for each escrow as it is now.
    async fn emit_extras(&self, escrow_ids: &[String]) {
        let items: Vec<(String, &'static str)> = escrow_ids
            .iter()
            .flat_map(|id| {
                (0..EXTRA_PER_STAGE).map(move |j| {
                    let kind = if j % 3 == 2 {
                        "escrow.updated"
                    } else {
                        "escrow.status.updated"
                    };
                    (id.clone(), kind)
                })
            })
            .collect();
        let (web, sandbox) = (self.web.clone(), self.w.sb.base_url());
        bounded(items, 8, move |_, (id, kind)| {
            let (web, sandbox) = (web.clone(), sandbox.clone());
            async move {
                let r = web
                    .post(format!("{sandbox}/sandbox/escrows/{id}/events"))
                    .json(&json!({ "type": kind }))
                    .send()
                    .await
                    .unwrap();
                assert!(
                    r.status().is_success(),
                    "emit {kind} for {id}: {}",
                    r.status()
                );
            }
        })
        .await;
    }

    /// Waits until everything the sandbox has queued so far reached the capture (its webhook
    /// queue is FIFO, so a last event seen means all before it were), and returns it all.
    async fn flush_capture(&self) -> Vec<Captured> {
        let marker: Value = self
            .web
            .post(self.sandbox(&format!(
                "/sandbox/escrows/{}/events",
                self.orders[0].escrow_id
            )))
            .json(&json!({"type": "escrow.updated"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let marker = marker["event_id"].as_str().unwrap().to_owned();
        let capture = &self.capture;
        wait_for("the sandbox's webhooks to reach the capture", 60, || {
            let marker = marker.clone();
            async move {
                let log = capture.lock().unwrap();
                log.iter()
                    .any(|(h, _)| h[webhook::ID_HEADER] == marker.as_str())
                    .then_some(())
            }
        })
        .await;
        let secret = self.w.sb.webhook_secret();
        let all: Vec<Captured> = self
            .capture
            .lock()
            .unwrap()
            .iter()
            .map(|(h, b)| parse_captured(secret, h, b))
            .collect();
        let ids: HashSet<&str> = all.iter().map(|c| c.event_id.as_str()).collect();
        assert_eq!(ids.len(), all.len(), "the sandbox sent each event once");
        all
    }

    /// Builds a workload from `fresh` (never sent before; `pool` may be duplicated) and sends
    /// it, round-robin over the instances.
    async fn storm(
        &mut self,
        label: String,
        fresh: &[Captured],
        pool: &[Captured],
        newest_first: &HashSet<String>,
    ) -> Wave {
        let deliveries = self.workload(fresh, pool, newest_first);
        let reordered = count_reordered(&deliveries);
        let (web, bases) = (self.web.clone(), self.bases.clone());
        let answers = bounded(deliveries.clone(), IN_FLIGHT, move |i, d| {
            let web = web.clone();
            let base = bases[i % bases.len()].clone();
            async move { send(&web, &base, &d).await }
        })
        .await;
        Wave {
            label,
            deliveries,
            answers,
            reordered,
        }
    }

    /// The escrows in `newest_first` get a copy of their newest event at the very front.
    fn workload(
        &mut self,
        fresh: &[Captured],
        pool: &[Captured],
        newest_first: &HashSet<String>,
    ) -> Vec<Delivery> {
        let rng = &mut self.rng;
        let mut list: Vec<Delivery> = fresh
            .iter()
            .map(|c| Delivery::genuine(Kind::First, c))
            .collect();
        // About a fifth of the first sends change places with one up to a window away.
        let n = list.len();
        for i in 0..n {
            if rng.gen_bool(0.2) {
                let lo = i.saturating_sub(REORDER_WINDOW);
                let hi = (i + REORDER_WINDOW).min(n - 1);
                list.swap(i, rng.gen_range(lo..=hi));
            }
        }
        // The latest snapshot of each escrow: forgeries claim something else, dated after it.
        let mut latest: HashMap<&str, &Captured> = HashMap::new();
        for c in pool {
            let e = latest.entry(c.escrow_id.as_str()).or_insert(c);
            if c.updated_at > e.updated_at {
                *e = c;
            }
        }
        let forged_body = |c: &Captured, id: &str| {
            let last = latest[c.escrow_id.as_str()];
            let claim = if last.status == "cancelled" {
                "completed"
            } else {
                "cancelled"
            };
            let mut v: Value = serde_json::from_slice(&c.body).unwrap();
            v["id"] = json!(id);
            v["data"]["escrow"]["status"] = json!(claim);
            v["data"]["escrow"]["updatedAt"] = json!(dhmad::iso::format(
                last.updated_at + time::Duration::seconds(30)
            ));
            Bytes::from(serde_json::to_vec(&v).unwrap())
        };
        // Shares of the whole workload: 63 % first sends, 30 % duplicates, 5 % forged, 2 % stale.
        let per = |share: usize| (fresh.len() * share).div_ceil(63);
        let mut extra = Vec::new();
        for _ in 0..per(30) {
            let c = &pool[rng.gen_range(0..pool.len())];
            extra.push(Delivery::genuine(Kind::Duplicate, c));
        }
        for k in 0..per(5) {
            let c = &pool[rng.gen_range(0..pool.len())];
            let mut d = Delivery::genuine(Kind::Tampered, c);
            if k % 2 == 0 {
                // The real event, its body changed after DHMAD signed it.
                d.body = forged_body(c, &c.event_id);
            } else {
                d.kind = Kind::Forged;
                d.event_id = Uuid::new_v4().to_string();
                d.body = forged_body(c, &d.event_id);
                d.signature = webhook::sign(WRONG_SECRET, &d.body);
            }
            extra.push(d);
        }
        for k in 0..per(2) {
            let c = &pool[rng.gen_range(0..pool.len())];
            let mut d = Delivery::genuine(Kind::StaleReplay, c);
            d.age_secs = rng.gen_range(360..3600);
            if k % 2 == 1 {
                d.kind = Kind::StaleNew;
                d.event_id = Uuid::new_v4().to_string();
                d.body = forged_body(c, &d.event_id);
                d.signature = webhook::sign(self.w.sb.webhook_secret(), &d.body);
            }
            extra.push(d);
        }
        for d in extra {
            let at = rng.gen_range(0..=list.len());
            list.insert(at, d);
        }
        let mut front: Vec<Delivery> = newest_first
            .iter()
            .filter_map(|e| {
                let newest = fresh.iter().filter(|c| c.escrow_id == *e).last()?;
                Some(Delivery::genuine(Kind::Duplicate, newest))
            })
            .collect();
        front.append(&mut list);
        front
    }

    /// Every delivery answered as its kind requires; each fresh event processed exactly once.
    fn check_answers(&self, wave: &Wave, fresh: &[Captured]) {
        let mut wrong = Vec::new();
        let mut processed: HashMap<&str, usize> = HashMap::new();
        for (d, (status, result)) in wave.deliveries.iter().zip(&wave.answers) {
            let ok = *status == d.kind.expected_status()
                && (*status != 200 || result == "processed" || result == "duplicate");
            if !ok {
                wrong.push(format!(
                    "{:?} {} {} of escrow {}: {status} {result:?}",
                    d.kind, d.event_type, d.event_id, d.escrow_id
                ));
            }
            if result == "processed" {
                *processed.entry(d.event_id.as_str()).or_default() += 1;
            }
        }
        let fresh_ids: HashSet<&str> = fresh.iter().map(|c| c.event_id.as_str()).collect();
        for (id, n) in &processed {
            if *n != 1 || !fresh_ids.contains(id) {
                wrong.push(format!("event {id} processed {n} time(s)"));
            }
        }
        for id in &fresh_ids {
            if !processed.contains_key(id) {
                wrong.push(format!("event {id} never processed"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{}\n{} unexpected answer(s), e.g.:\n{}",
            wave.summary(),
            wrong.len(),
            wrong[..wrong.len().min(15)].join("\n")
        );
        assert!(
            wave.reordered > 0,
            "{}: the workload did not reorder anything",
            wave.summary()
        );
    }

    /// Waits until every `deliver` job the storefronts owe exists and is done.
    async fn wait_for_deliver_jobs(&self) {
        let want = self.orders.iter().filter(|o| o.shop_delivers()).count() as i64;
        let pool = &self.pools[0];
        wait_for(
            "the storefronts to deliver every paid instant order",
            30,
            || async move {
                let (all, open): (i64, i64) = sqlx::query_as(
                    "SELECT count(*), count(*) FILTER (WHERE done_at IS NULL)
                 FROM outbox_jobs WHERE kind = 'deliver'",
                )
                .fetch_one(pool)
                .await
                .unwrap();
                (all >= want && open == 0).then_some(())
            },
        )
        .await;
    }

    async fn check_orders(&self, events: &[Captured], waves: &[&Wave]) {
        let pool = &self.pools[0];
        let calls = self.w.dhmad_calls().await;
        let summaries: Vec<String> = waves.iter().map(|w| w.summary()).collect();
        let mut diffs = Vec::new();
        for o in &self.orders {
            let what = format!(
                "order {} ({} {:?}, escrow {})",
                o.id, o.sku, o.steps, o.escrow_id
            );
            let escrow = self
                .w
                .app
                .state
                .dhmad
                .get_escrow(&o.escrow_id)
                .await
                .unwrap();
            let truth = escrow.status.as_str().to_owned();
            if truth != o.expected {
                diffs.push(format!(
                    "{what}: DHMAD ended {truth}, the flow leads to {}",
                    o.expected
                ));
            }
            let order = db::orders::get(pool, o.id).await.unwrap().unwrap();
            let want = storefront::orders::OrderStatus::from_escrow(&escrow.status)
                .unwrap()
                .as_str();
            if order.status.as_str() != want || order.escrow_status.as_deref() != Some(&*truth) {
                diffs.push(format!(
                    "{what}: storefront says {} (escrow {:?}), DHMAD says {truth}",
                    order.status.as_str(),
                    order.escrow_status
                ));
            }

            let (jobs, open): (i64, i64) = sqlx::query_as(
                "SELECT count(*), count(*) FILTER (WHERE done_at IS NULL)
                 FROM outbox_jobs WHERE kind = 'deliver' AND order_id = $1",
            )
            .bind(o.id)
            .fetch_one(pool)
            .await
            .unwrap();
            let codes = timeline_count(pool, o.id, "Digital code issued").await;
            let deliver_calls = calls
                .iter()
                .filter(|c| {
                    c.starts_with("POST ")
                        && c.ends_with(&format!("/escrows/{}/deliver", o.escrow_id))
                })
                .count();
            let ships = o.steps.iter().filter(|s| **s == Ship).count();
            let code = order.digital_code.is_some();
            // One code for every paid instant order. One `deliver` job and call when the shop
            // is the one to deliver; when DHMAD already had it delivered, a job only if `paid`
            // came first, and a call only if that job ran before `completed` was heard.
            let fine = if o.shop_delivers() {
                code && codes == 1 && jobs == 1 && open == 0 && deliver_calls == 1
            } else if o.instant_paid() {
                code && codes == 1 && jobs <= 1 && open == 0 && deliver_calls as i64 <= jobs
            } else {
                !code && codes == 0 && jobs == 0 && deliver_calls == ships
            };
            if !fine {
                diffs.push(format!(
                    "{what}: code {code}, codes issued {codes}, deliver jobs {jobs} ({open} \
                     unfinished), deliver calls {deliver_calls}"
                ));
            }

            // The timeline moves forward along the true history only, each status once.
            let mut history = vec!["pending"];
            for c in events.iter().filter(|c| c.escrow_id == o.escrow_id) {
                if history.last() != Some(&c.status.as_str()) {
                    history.push(&c.status);
                }
            }
            let moves: Vec<String> = timeline(pool, o.id)
                .await
                .iter()
                .filter_map(|l| {
                    let rest = l.strip_prefix("DHMAD escrow ")?;
                    let (_, to) = rest.split_once(" → ")?;
                    Some(to.split(" (").next().unwrap().to_owned())
                })
                .collect();
            let mut at = 0;
            let forward =
                moves
                    .iter()
                    .all(|m| match history[at + 1..].iter().position(|h| h == m) {
                        Some(p) => {
                            at += 1 + p;
                            true
                        }
                        None => false,
                    });
            if !forward || moves.last().map_or("pending", String::as_str) != truth {
                diffs.push(format!(
                    "{what}: timeline {moves:?} is not a forward path along {history:?} to {truth}"
                ));
            }
        }
        assert!(
            diffs.is_empty(),
            "{}\n{} difference(s) with DHMAD's ground truth:\n{}",
            summaries.join("\n"),
            diffs.len(),
            diffs.join("\n")
        );
    }

    /// One inbox row per valid event id, applied to its order; nothing forged or stale.
    async fn check_inbox(&self, events: &[Captured], waves: &[&Wave]) {
        let rows: Vec<(String, String, Option<Uuid>, Option<String>)> =
            sqlx::query_as("SELECT event_id, outcome, order_id, escrow_id FROM webhook_inbox")
                .fetch_all(&self.pools[0])
                .await
                .unwrap();
        let order_of: HashMap<&str, Uuid> = self
            .orders
            .iter()
            .map(|o| (o.escrow_id.as_str(), o.id))
            .collect();
        let valid: HashSet<&str> = events.iter().map(|c| c.event_id.as_str()).collect();
        let refused: HashSet<&str> = waves
            .iter()
            .flat_map(|w| &w.deliveries)
            .filter(|d| matches!(d.kind, Kind::Forged | Kind::StaleNew))
            .map(|d| d.event_id.as_str())
            .collect();
        let mut wrong = Vec::new();
        let mut stored = HashSet::new();
        for (id, outcome, order_id, escrow_id) in &rows {
            stored.insert(id.as_str());
            let want_order = escrow_id.as_deref().and_then(|e| order_of.get(e));
            if refused.contains(id.as_str()) || !valid.contains(id.as_str()) {
                wrong.push(format!(
                    "stored an event that was refused or never sent: {id}"
                ));
            } else if outcome != "processed" || order_id.as_ref() != want_order {
                wrong.push(format!(
                    "event {id}: outcome {outcome}, order {order_id:?}, escrow {escrow_id:?}"
                ));
            }
        }
        let missing: Vec<&&str> = valid.iter().filter(|id| !stored.contains(**id)).collect();
        if !missing.is_empty() {
            wrong.push(format!(
                "{} valid event(s) not in the inbox: {missing:?}",
                missing.len()
            ));
        }
        assert!(
            wrong.is_empty() && rows.len() == valid.len(),
            "inbox: {} rows for {} valid events\n{}",
            rows.len(),
            valid.len(),
            wrong[..wrong.len().min(15)].join("\n")
        );
    }
}

/// Sends one delivery with DHMAD's headers; the timestamp is taken at sending time.
async fn send(web: &reqwest::Client, base: &str, d: &Delivery) -> (u16, String) {
    let sent_at = OffsetDateTime::now_utc() - time::Duration::seconds(d.age_secs);
    let r = web
        .post(format!("{base}/webhooks/dhmad"))
        .header("content-type", "application/json")
        .header(webhook::SIGNATURE_HEADER, &d.signature)
        .header(webhook::EVENT_HEADER, &d.event_type)
        .header(webhook::ID_HEADER, &d.event_id)
        .header(webhook::TIMESTAMP_HEADER, dhmad::iso::format(sent_at))
        .body(d.body.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{:?} {}: {e}", d.kind, d.event_id));
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, v["result"].as_str().unwrap_or_default().to_owned())
}

/// Genuine deliveries that follow, in the workload, a later snapshot of the same escrow: news
/// that arrives late.
fn count_reordered(list: &[Delivery]) -> usize {
    let mut newest: HashMap<&str, OffsetDateTime> = HashMap::new();
    let mut n = 0;
    for d in list
        .iter()
        .filter(|d| matches!(d.kind, Kind::First | Kind::Duplicate))
    {
        let seen = newest.entry(d.escrow_id.as_str()).or_insert(d.updated_at);
        if d.updated_at < *seen {
            n += 1;
        } else {
            *seen = d.updated_at;
        }
    }
    n
}
