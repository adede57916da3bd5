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

mod capture;
mod checks;
mod orders;
mod storm;

use std::{collections::HashSet, time::Duration as StdDuration};

use rand::{rngs::StdRng, SeedableRng};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::common::{sandbox::*, *};

use capture::{start_capture, CaptureLog, Captured};
use storm::{bounded, Kind, Wave};

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
}
