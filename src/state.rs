//! What every handler and job shares. A leaf: it knows the configuration and the clients, and
//! nothing of HTTP routing or the domain, so every layer can take it without a cycle.

use std::ops::Deref;
use std::sync::Arc;

use anyhow::Context;
use dhmad::WebhookVerifier;
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::budget::{BudgetGate, Prepaid};
use crate::config::Config;
use crate::db::budget::Claimant;
use crate::mail::Mailer;
use crate::metrics::Metrics;

/// Cheap to clone: one `Arc`, since axum clones the state several times per request and each
/// reference count is a cache line both cores write (three `Arc`s cost 5 % of a `GET /healthz`).
/// The shared parts are read through `Deref` (`state.pool`); the DHMAD handle is per
/// [`AppState::spending_as`], so that background jobs and a checkout's prepaid calls spend the
/// call budget as what they are (`crate::budget`).
#[derive(Clone)]
pub struct AppState(Arc<Handle>);

/// One [`AppState`]: the shared parts and a DHMAD handle.
pub struct Handle {
    shared: Arc<Shared>,
    /// DHMAD, behind this handle's gate on the shared call budget.
    pub dhmad: dhmad::Client,
    /// The calls its gate took in advance and has not made yet.
    unspent: crate::budget::Unspent,
}

/// What every clone of an [`AppState`] shares.
pub struct Shared {
    pub pool: crate::db::Pool,
    pub config: Arc<Config>,
    pub verifier: WebhookVerifier,
    pub mailer: Mailer,
    /// This instance's Prometheus recorder (`GET /metrics`).
    pub metrics: Arc<Metrics>,
    /// Wakes this instance's checkout-queue worker when a checkout joins the line.
    pub checkout_queue: tokio::sync::Notify,
    /// Back-office login attempts judged at once ([`login_gate_size`]): each holds a database
    /// connection while it waits for its address's turn, so a stranger's flood of wrong tokens
    /// from one address would otherwise hold the whole pool, and the buyers' pages wait.
    pub login_gate: tokio::sync::Semaphore,
    /// Each client's allowance of looks at DHMAD's pages (`orders::looks`).
    pub looks: crate::orders::looks::Looks,
    /// Cancelled when the service starts shutting down: background jobs finish the unit of
    /// work in hand (a DHMAD call, an e-mail) and take no other.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The DHMAD call log's writer, flushed before the process ends ([`Shared::flush_call_log`]).
    call_log: CallLogWriter,
    /// Work the process waits for before it ends (`app::Application::run_until`): the
    /// background jobs, and the back office's actions, which outlive a request cut short.
    pub work: tokio_util::task::TaskTracker,
    /// DHMAD without a gate: handles with a gate are made from it.
    ungated: dhmad::Client,
}

impl Deref for AppState {
    type Target = Handle;

    fn deref(&self) -> &Handle {
        &self.0
    }
}

impl Deref for Handle {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Shared {
    /// Whether shutdown has started: a job stops taking work.
    pub fn stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Writes the DHMAD calls still queued for the log, and stops its writer (a few seconds at
    /// most): the process is about to end, and its last calls' lines with it otherwise (a
    /// `storefront reconcile` pass's, the deliver a shutdown waited for). Calls made after it
    /// are not logged.
    pub async fn flush_call_log(&self) {
        self.call_log.stop.cancel();
        let writer = self.call_log.done.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer {
            if tokio::time::timeout(std::time::Duration::from_secs(5), writer)
                .await
                .is_err()
            {
                tracing::warn!("the DHMAD call log's last lines were not written in time");
            }
        }
    }
}

/// The call log's writer task, and what tells it to write what is queued and stop.
struct CallLogWriter {
    stop: tokio_util::sync::CancellationToken,
    done: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl AppState {
    /// The same state whose DHMAD calls spend the budget as `who`, `prepaid` of them taken
    /// already.
    pub fn spending_as(&self, who: Claimant, prepaid: Prepaid) -> AppState {
        let (dhmad, unspent) = gated(&self.shared.ungated, &self.pool, &self.config, who, prepaid);
        AppState(Arc::new(Handle {
            shared: Arc::clone(&self.shared),
            dhmad,
            unspent,
        }))
    }

    /// The calls this state's gate took in advance and did not make go back to the budget
    /// (`budget::Unspent::give_back`): call it once the work they were taken for is over.
    pub async fn give_back_unspent(&self) {
        self.unspent.give_back(&self.pool).await;
    }

    /// This state, its DHMAD reads retried as for a user waiting ([`WHILE_A_USER_WAITS`]):
    /// background work a merchant waits for ("Reconcile now").
    pub fn while_a_user_waits(&self) -> AppState {
        AppState(Arc::new(Handle {
            shared: Arc::clone(&self.shared),
            dhmad: self.dhmad.with_retry_policy(WHILE_A_USER_WAITS),
            unspent: self.unspent.clone(),
        }))
    }

    /// The state background jobs run with: DHMAD calls only from what buyers leave.
    pub fn for_background(&self) -> AppState {
        let calls = self.config.dhmad_budget.calls;
        let who = Claimant::Background {
            reserve: crate::budget::background_reserve(calls),
            share: crate::budget::background_share(calls),
        };
        self.spending_as(who, Prepaid::none())
    }

    /// Must be called inside a Tokio runtime.
    pub fn new(config: Config, pool: PgPool) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new());
        let observed = Arc::clone(&metrics);
        let (calls, queue) = tokio::sync::mpsc::channel(CALL_LOG_QUEUE);
        let stop = tokio_util::sync::CancellationToken::new();
        let writer = tokio::spawn(call_log_writer(pool.clone(), queue, stop.clone()));
        let call_log = CallLogWriter {
            stop,
            done: std::sync::Mutex::new(Some(writer)),
        };
        let login_gate =
            tokio::sync::Semaphore::new(login_gate_size(pool.options().get_max_connections()));
        let pool = crate::db::Pool::new(pool);
        let dhmad = dhmad::Client::builder(config.dhmad_api_key.expose_secret())
            .base_url(config.dhmad_api_base.as_str())
            .timeout(config.dhmad_timeout)
            // DHMAD's budget and the checkout line decide when a refused write goes again. A
            // create still waiting out 429s inside the client would outlive the in-flight
            // limit (`checkout::in_flight_limit`), be taken for lost, and a retry would make a second
            // escrow beside it.
            .resend_writes_after_429(false)
            .user_agent(concat!("dhmad-storefront/", env!("CARGO_PKG_VERSION")))
            .observer(move |call| {
                observed.dhmad_call(call);
                record_for_order(&calls, call);
            })
            .build()
            .context("building the DHMAD client")?;
        let verifier = WebhookVerifier::new(config.webhook_secret_strings());
        let mailer = Mailer::from_config(&config)?;
        let (gated, unspent) = gated(
            &dhmad,
            &pool,
            &config,
            Claimant::Interactive,
            Prepaid::none(),
        );
        let looks = crate::orders::looks::Looks::per_minute(looks_per_minute(&config));
        Ok(Self(Arc::new(Handle {
            shared: Arc::new(Shared {
                pool,
                config: Arc::new(config),
                verifier,
                mailer,
                metrics,
                checkout_queue: tokio::sync::Notify::new(),
                login_gate,
                looks,
                shutdown: tokio_util::sync::CancellationToken::new(),
                work: tokio_util::task::TaskTracker::new(),
                call_log,
                ungated: dhmad,
            }),
            dhmad: gated,
            unspent,
        })))
    }
}

/// A client's looks at DHMAD's pages a minute: a sixth of its order actions (each look is two
/// of DHMAD's calls; 10 by default, where a buyer makes one or two on a return).
fn looks_per_minute(config: &Config) -> u32 {
    (config.edge.actions_per_minute / 6).max(1)
}

fn gated(
    client: &dhmad::Client,
    pool: &crate::db::Pool,
    config: &Config,
    who: Claimant,
    prepaid: Prepaid,
) -> (dhmad::Client, crate::budget::Unspent) {
    let limits = config.dhmad_budget;
    let gate = BudgetGate::new(pool.clone(), limits, who, prepaid);
    let unspent = gate.unspent();
    let client = client.with_gate(gate);
    let client = match who {
        Claimant::Interactive | Claimant::NewCheckout => {
            client.with_retry_policy(WHILE_A_USER_WAITS)
        }
        Claimant::Background { .. } => client,
    };
    (client, unspent)
}

/// How the calls made while a user waits are retried (a request's, the checkout line's, the
/// back office's "Reconcile now": `AppState::while_a_user_waits`).
/// A request's deadline allows three calls (`Config::request_deadline`), and a read tried four
/// times, each up to the timeout, took more than all of it: the user got the generic "took too
/// long" page instead of the step's own ("the provider is not answering", on the order's
/// page). So a read that timed out is not tried again, a quick failure once, and a 429 is not
/// waited out (the budget's line does that). Background jobs keep the patient default.
const WHILE_A_USER_WAITS: dhmad::RetryPolicy = dhmad::RetryPolicy {
    max_retries: 1,
    initial_backoff: std::time::Duration::from_millis(200),
    max_backoff: std::time::Duration::from_millis(200),
    max_rate_limit_wait: std::time::Duration::ZERO,
    retry_timeouts: false,
};

/// Records a DHMAD call on the order it was made for (`orders::call_log`), off the caller's
/// path: handed to [`call_log_writer`], which writes whatever has queued up in one statement.
/// A full queue or a lost row costs a line in the back office, never the call.
fn record_for_order(calls: &CallLog, call: &dhmad::CallRecord) {
    let Some(order_id) = crate::orders::call_log::current() else {
        return;
    };
    let c = crate::db::calls::NewCall {
        order_id,
        method: call.method.to_string(),
        endpoint: call.endpoint,
        status: call.status.map(i32::from),
        duration_ms: i32::try_from(call.elapsed.as_millis()).unwrap_or(i32::MAX),
        at: time::OffsetDateTime::now_utc(),
    };
    if calls.try_send(c).is_err() {
        tracing::debug!("DHMAD call log queue full; a call is not recorded on its order");
    }
}

type CallLog = tokio::sync::mpsc::Sender<crate::db::calls::NewCall>;

/// Calls queued for the log at most; past it they are dropped (the log is not the call).
const CALL_LOG_QUEUE: usize = 4096;
/// Calls written by one statement at most.
const CALL_LOG_BATCH: usize = 512;
/// How long the first call of a batch waits for others. Writing each call as it came ran the
/// log's `INSERT` beside the checkout's own statements on a small machine: a checkout took
/// about 0.8 ms longer at the median (BENCHMARKS.md, item 34). The back office shows a call
/// this much later; a process that ends writes at once.
const CALL_LOG_GATHER: std::time::Duration = std::time::Duration::from_millis(100);

/// Writes the queued calls: the first that arrives and every other queued within
/// [`CALL_LOG_GATHER`] of it, in one statement. Ends when the last handle to the queue is
/// gone, when the pool closes, or, once it has written what is queued, when `stop` says the
/// process ends.
///
/// It has a connection of its own, outside the pool, opened with `synchronous_commit = off`:
/// a batch is one round trip that never waits for the disk, and never takes a pool connection
/// from a request. A batch that failed on a kept connection (Postgres restarted since its last
/// batch) is tried once more on a new one; a failed batch drops the connection. It is
/// closed with the pool (else the database could not be dropped, or its server stopped
/// cleanly, while it lingers).
async fn call_log_writer(
    pool: PgPool,
    mut queue: tokio::sync::mpsc::Receiver<crate::db::calls::NewCall>,
    stop: tokio_util::sync::CancellationToken,
) {
    use sqlx::Connection;
    let options = pool
        .connect_options()
        .as_ref()
        .clone()
        .options([("synchronous_commit", "off")]);
    let closed = pool.close_event();
    tokio::pin!(closed);
    let mut conn: Option<sqlx::PgConnection> = None;
    let mut batch = Vec::with_capacity(CALL_LOG_BATCH);
    loop {
        let (got, last) = tokio::select! {
            got = queue.recv_many(&mut batch, CALL_LOG_BATCH) => (got, false),
            () = &mut closed => (0, true),
            // The process ends: what is queued is written in one last batch.
            () = stop.cancelled() => {
                while let Ok(call) = queue.try_recv() {
                    batch.push(call);
                }
                (batch.len(), true)
            }
        };
        if got == 0 {
            break;
        }
        if !last {
            // A moment for the rest of a request's calls: a checkout's two go in one
            // statement, written after its own statements rather than beside them.
            tokio::select! {
                () = tokio::time::sleep(CALL_LOG_GATHER) => {}
                () = stop.cancelled() => {}
            }
            while batch.len() < CALL_LOG_BATCH {
                let Ok(call) = queue.try_recv() else { break };
                batch.push(call);
            }
        }
        for fresh_try in [false, true] {
            let kept = conn.is_some();
            let written = async {
                let c = match &mut conn {
                    Some(c) => c,
                    None => conn.insert(sqlx::PgConnection::connect_with(&options).await?),
                };
                crate::db::calls::record_all(&mut *c, &batch).await
            };
            match written.await {
                Ok(()) => break,
                Err(e) => {
                    conn = None;
                    if !fresh_try && kept && crate::db::connection_lost(&e) {
                        continue;
                    }
                    tracing::warn!(error = %e, calls = batch.len(), "could not record DHMAD calls on their orders");
                    break;
                }
            }
        }
        batch.clear();
        if last {
            break;
        }
    }
    if let Some(conn) = conn {
        let _ = conn.close().await;
    }
}

/// A quarter of the pool, at least one: what login attempts may hold of it at once.
pub fn login_gate_size(max_connections: u32) -> usize {
    (max_connections / 4).max(1) as usize
}
