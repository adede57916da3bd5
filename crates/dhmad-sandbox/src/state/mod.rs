//! In-memory state. One mutex guards the store; a restart clears everything.

mod contract;
mod escrows;
mod proofs;
mod sessions;
pub mod users;
mod verifications;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use dhmad::{EscrowStatus, Event, WebhookEnvelope};
use time::OffsetDateTime;

pub use contract::ContractRecord;
pub use escrows::{CancellationRecord, DisputeRecord, EscrowRecord};
pub use proofs::{DepositProofRecord, DepositStatus, ProofState, StoredFile, SubmissionRecord};
pub use sessions::{merge_query, SessionRecord, SESSION_LIFETIME};
pub use verifications::{VerificationRecord, VERIFICATION_LIFETIME};

use crate::clock::Clock;
use crate::faults::Faults;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::webhooks::Dispatcher;

/// Escrows, sessions, files, identity verifications, and the events an operation emitted.
#[derive(Debug, Default)]
pub struct Store {
    pub escrows: HashMap<String, EscrowRecord>,
    pub sessions: HashMap<String, SessionRecord>,
    pub files: HashMap<String, StoredFile>,
    pub verifications: HashMap<String, VerificationRecord>,
    /// Events emitted by the running operation with when each happened (the envelope's
    /// `timestamp`), dispatched when the lock is released.
    pub outbox: Vec<(OffsetDateTime, Event)>,
    /// Status changes `(old, new)` made by the running operation, counted on release.
    pub transitions: Vec<(EscrowStatus, EscrowStatus)>,
    counter: u64,
}

impl Store {
    /// A fresh 24-hex id: creation second + counter (sorts like a MongoDB ObjectId).
    pub fn new_object_id(&mut self, now: OffsetDateTime) -> String {
        self.counter += 1;
        format!("{:08x}{:016x}", now.unix_timestamp() as u32, self.counter)
    }

    /// Queues an event that happened `at` (an operation's `ctx.now`; a deadline's own time).
    pub fn emit(&mut self, at: OffsetDateTime, event: Event) {
        self.outbox.push((at, event));
    }
}

/// What every state-machine operation needs besides the store.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The sandbox clock's now.
    pub now: OffsetDateTime,
    /// The associated user's e-mail.
    pub assoc: String,
    /// Application name.
    pub app_name: String,
    /// Public base URL (no trailing slash).
    pub base_url: String,
}

/// Entries the request log and the webhook delivery log each keep, the newest: a sandbox left
/// running for days must not grow without bound, and a look at them wants the recent ones.
pub const LOG_CAPACITY: usize = 1000;

/// Appends `entry` to a log, dropping its oldest entry once it holds [`LOG_CAPACITY`].
pub fn push_bounded<T>(log: &mut VecDeque<T>, entry: T) {
    if log.len() >= LOG_CAPACITY {
        log.pop_front();
    }
    log.push_back(entry);
}

/// One `/api/v1` call as seen by `GET /sandbox/requests`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestLogEntry {
    pub method: String,
    pub path: String,
    pub status: u16,
    #[serde(with = "dhmad::iso")]
    pub at: OffsetDateTime,
}

/// Settings that may change at run time.
#[derive(Debug)]
pub struct Settings {
    pub api_key: String,
    pub seller_email: String,
    pub app_name: String,
    pub base_url: String,
    pub allowed_redirect_urls: Mutex<Vec<String>>,
    /// Origins the control API accepts (`base_url`'s and the bound address's; with an
    /// unspecified bound address, the loopback ones on its port).
    pub own_origins: Vec<String>,
    /// Domain names requests may address the sandbox by, besides `localhost` and IP addresses
    /// (`base_url`'s host and `SANDBOX_ALLOWED_HOSTS`), lowercase.
    pub allowed_hosts: Vec<String>,
}

/// Shared application state.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

/// Everything behind [`AppState`].
pub struct Shared {
    pub settings: Settings,
    pub clock: Clock,
    pub store: Mutex<Store>,
    pub dispatcher: Dispatcher,
    pub faults: Arc<Faults>,
    pub metrics: Arc<Metrics>,
    pub rate: RateLimiter,
    /// The newest [`LOG_CAPACITY`] `/api/v1` calls, oldest first.
    pub requests: Mutex<VecDeque<RequestLogEntry>>,
    pub started_at: OffsetDateTime,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The context of an operation happening now.
    pub fn ctx(&self) -> Ctx {
        Ctx {
            now: self.clock.now(),
            assoc: self.settings.seller_email.clone(),
            app_name: self.settings.app_name.clone(),
            base_url: self.settings.base_url.clone(),
        }
    }

    /// The locked store, for reads (operations go through [`Self::with_store`]).
    pub fn lock_store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().expect("store lock poisoned")
    }

    /// Runs `f` on the locked store, then turns the events it emitted into envelopes and
    /// queues them, still under the lock, so events of successive operations keep their order.
    /// The time is read under the lock, so `updatedAt` never goes backwards between operations.
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store, &Ctx) -> R) -> R {
        self.run_locked(None, f)
    }

    /// [`Self::with_store`] after moving the clock forward by `by` under the same lock, so no
    /// other operation (nor the deadline ticker) sees the new time before `f` has run.
    pub fn advance_clock_with<R>(
        &self,
        by: time::Duration,
        f: impl FnOnce(&mut Store, &Ctx) -> R,
    ) -> R {
        self.run_locked(Some(by), f)
    }

    fn run_locked<R>(
        &self,
        advance: Option<time::Duration>,
        f: impl FnOnce(&mut Store, &Ctx) -> R,
    ) -> R {
        let mut store = self.lock_store();
        if let Some(by) = advance {
            self.clock.advance(by);
        }
        let ctx = self.ctx();
        let out = f(&mut store, &ctx);
        self.flush(&mut store);
        out
    }

    fn flush(&self, store: &mut Store) {
        for (from, to) in std::mem::take(&mut store.transitions) {
            self.metrics.transition(from.to_string(), to.to_string());
        }
        for (at, event) in std::mem::take(&mut store.outbox) {
            let envelope = WebhookEnvelope::new(uuid::Uuid::new_v4().to_string(), at, &event);
            let escrow_id = event.escrow().map(|e| e.id.clone());
            if let Some(rec) = escrow_id.as_ref().and_then(|id| store.escrows.get_mut(id)) {
                rec.last_event = Some(envelope.clone());
            }
            self.dispatcher.enqueue(envelope, escrow_id);
        }
    }

    /// Appends to the `/api/v1` request log (the newest [`LOG_CAPACITY`] are kept).
    pub fn log_request(&self, entry: RequestLogEntry) {
        push_bounded(
            &mut self.requests.lock().expect("requests lock poisoned"),
            entry,
        );
    }

    /// The `/api/v1` request log, oldest first.
    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        self.requests
            .lock()
            .expect("requests lock poisoned")
            .iter()
            .cloned()
            .collect()
    }

    /// Id of the configured API key (`GET /me`'s `apiKey.id`): owner of the identity
    /// verifications created through the API.
    pub fn api_key_id(&self) -> String {
        users::user_id(&format!("key:{}", self.settings.api_key))
    }

    /// The redirect allow-list.
    pub fn allowed_redirects(&self) -> Vec<String> {
        self.settings
            .allowed_redirect_urls
            .lock()
            .expect("settings lock poisoned")
            .clone()
    }

    /// Replaces the redirect allow-list.
    pub fn set_allowed_redirects(&self, urls: Vec<String>) {
        *self
            .settings
            .allowed_redirect_urls
            .lock()
            .expect("settings lock poisoned") = urls;
    }
}
