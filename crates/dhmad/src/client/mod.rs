//! The HTTP client (`docs/dhmad-api.md` §3.1–§3.14).
//!
//! Reads (`GET`) are retried on timeouts, transport errors, 5xx and 429, with bounded
//! exponential backoff and jitter, waiting for `X-RateLimit-Reset` on 429. Writes are resent
//! only after a 429, which DHMAD answers without acting: DHMAD has no idempotency keys, so a
//! resent `POST /escrows` after a timeout or a 5xx may create a second escrow. Persist your
//! intent first and reconcile with a read.

use std::sync::{Arc, Mutex};

use reqwest::Method;
use secrecy::SecretString;
use url::Url;

use crate::error::Error;
use crate::types::*;

mod builder;
mod gate;
mod identity;
mod observer;
mod retry;
mod transport;

pub use builder::{BuildError, ClientBuilder};
pub use gate::{Admission, Gate, Notice};
pub use observer::CallRecord;
pub use retry::{RateLimit, RetryPolicy};
use transport::Retry;

/// Where the local sandbox serves the API by default.
pub const SANDBOX_API_BASE: &str = "http://127.0.0.1:6002/api/v1";

/// The longest answer a call reads: DHMAD's largest (a page of `GET /escrows`) is tens of
/// kilobytes; beyond this the call fails with [`Error::TooLarge`](crate::Error::TooLarge).
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// A DHMAD API client. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Per handle, so [`Client::with_gate`] shares the connections under another gate.
    gate: gate::GateSlot,
    /// Per handle ([`Client::with_retry_policy`]); `None`: the builder's.
    retry: Option<RetryPolicy>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    api_key: SecretString,
    retry: RetryPolicy,
    /// A write answered 429 is sent again (`ClientBuilder::resend_writes_after_429`).
    resend_writes: bool,
    rate_limit: Mutex<Option<RateLimit>>,
    observer: observer::Observer,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .field("api_key", &"[redacted]")
            .field("retry", &self.retry_policy())
            .field("observer", &self.inner.observer)
            .field("gate", &self.gate)
            .finish()
    }
}

const NO_BODY: Option<&()> = None;

impl Client {
    /// Starts a builder with the API key (`sk_live_…` or `sk_sandbox_…`).
    ///
    /// The key is held as a secret: it is sent only in `Authorization: Bearer` and never
    /// printed by `Debug`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let client = dhmad::Client::builder(std::env::var("DHMAD_API_KEY").unwrap_or_default())
    ///     .base_url(dhmad::SANDBOX_API_BASE)
    ///     .timeout(Duration::from_secs(10))
    ///     .build()
    ///     .expect("a valid base URL");
    /// assert_eq!(client.base_url(), "http://127.0.0.1:6002/api/v1");
    /// ```
    pub fn builder(api_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(api_key.into())
    }

    /// The API base URL.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = dhmad::Client::builder("sk_sandbox_example")
    ///     .base_url("https://sandbox.example.tn/api/v1/")
    ///     .build()
    ///     .unwrap();
    /// // A trailing slash is dropped.
    /// assert_eq!(client.base_url(), "https://sandbox.example.tn/api/v1");
    /// ```
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// The last rate-limit headers seen, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = dhmad::Client::builder("sk_sandbox_example").build().unwrap();
    /// // Nothing is known before the first answer.
    /// assert_eq!(client.rate_limit(), None);
    ///
    /// // After a call, the `X-RateLimit-*` headers of its answer.
    /// async fn calls_left(client: &dhmad::Client) -> Result<Option<u32>, dhmad::Error> {
    ///     client.me().await?;
    ///     Ok(client.rate_limit().and_then(|rl| rl.remaining))
    /// }
    /// ```
    pub fn rate_limit(&self) -> Option<RateLimit> {
        *self.inner.rate_limit.lock().expect("rate-limit lock")
    }

    /// `GET /me`: key and developer info. Retried.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// let me = client.me().await?;
    /// println!(
    ///     "key {} ({}) of {}",
    ///     me.api_key.key_prefix, me.api_key.environment, me.developer.email
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub async fn me(&self) -> Result<Me, Error> {
        self.call(Method::GET, &["me"], NO_BODY, Retry::Yes).await
    }

    /// `GET /balance` of the associated user. Retried.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// let balance = client.balance().await?.balance;
    /// println!("available {} TND, {} TND held in escrow", balance.available, balance.escrow);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn balance(&self) -> Result<Balance, Error> {
        self.call(Method::GET, &["balance"], NO_BODY, Retry::Yes)
            .await
    }

    /// `POST /escrows`. Resent only after a 429: a resend after a timeout, a 5xx or an
    /// unreadable success ([`Error::Decode`]) could create a duplicate; find it with a read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// use dhmad::{CreateEscrow, EscrowMode};
    /// use rust_decimal::Decimal;
    ///
    /// // Record the order in your database first: if this call times out, look the escrow up
    /// // with `list_escrows` rather than creating it again.
    /// let created = client
    ///     .create_escrow(
    ///         &CreateEscrow::new("AI credits", Decimal::new(1500, 2), "buyer@example.tn")
    ///             .mode(EscrowMode::Instant),
    ///     )
    ///     .await?;
    /// println!("escrow {} is {}", created.escrow.id, created.escrow.status);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_escrow(&self, req: &CreateEscrow) -> Result<CreatedEscrow, Error> {
        self.call(Method::POST, &["escrows"], Some(req), Retry::No)
            .await
    }

    /// `GET /escrows` with filters and pagination. Retried.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// use dhmad::{EscrowStatus, ListEscrows, Role};
    ///
    /// let query = ListEscrows {
    ///     status: Some(EscrowStatus::Pending),
    ///     role: Some(Role::Seller),
    ///     limit: Some(50),
    ///     ..ListEscrows::default()
    /// };
    /// let page = client.list_escrows(&query).await?;
    /// for escrow in &page.escrows {
    ///     println!("{} {}", escrow.id, escrow.title);
    /// }
    /// println!("page {} of {}", page.pagination.page, page.pagination.pages);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_escrows(&self, query: &ListEscrows) -> Result<EscrowList, Error> {
        let qs = list_query(query);
        self.request(Method::GET, &["escrows"], Some(&qs), NO_BODY, Retry::Yes)
            .await
    }

    /// `GET /escrows/:id`. Retried.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// use dhmad::{Error, EscrowStatus};
    ///
    /// match client.get_escrow("66aa00000000000000000001").await {
    ///     Ok(escrow) if escrow.status == EscrowStatus::Paid => println!("paid at {:?}", escrow.paid_at),
    ///     Ok(escrow) => println!("still {}", escrow.status),
    ///     Err(Error::NotFound(_)) => println!("DHMAD does not know this escrow"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_escrow(&self, id: &str) -> Result<Escrow, Error> {
        let env: EscrowEnvelope = self
            .call(Method::GET, &["escrows", id], NO_BODY, Retry::Yes)
            .await?;
        Ok(env.escrow)
    }

    /// `PUT /escrows/:id` (pending only). Resent only after a 429.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// use dhmad::UpdateEscrow;
    /// use rust_decimal::Decimal;
    ///
    /// let change = UpdateEscrow {
    ///     amount: Some(Decimal::new(1800, 2)),
    ///     ..UpdateEscrow::default()
    /// };
    /// let updated = client.update_escrow("66aa00000000000000000001", &change).await?;
    /// println!("new fee {:?}", updated.escrow.escrow_fee);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update_escrow(
        &self,
        id: &str,
        req: &UpdateEscrow,
    ) -> Result<EscrowActionResult, Error> {
        self.call(Method::PUT, &["escrows", id], Some(req), Retry::No)
            .await
    }

    /// `POST /escrows/:id/deliver`. Resent only after a 429: on a timeout, read the escrow to learn
    /// whether it went through (a second deliver answers 400 once it is no longer `paid`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// use dhmad::Error;
    ///
    /// match client.deliver_escrow("66aa00000000000000000001").await {
    ///     Ok(done) => println!("now {}", done.escrow.status),
    ///     // The outcome is unknown: read the escrow before deciding anything.
    ///     Err(Error::Timeout | Error::Transport(_) | Error::Server(_)) => {
    ///         let escrow = client.get_escrow("66aa00000000000000000001").await?;
    ///         println!("after the failure the escrow is {}", escrow.status);
    ///     }
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn deliver_escrow(&self, id: &str) -> Result<EscrowActionResult, Error> {
        self.call(
            Method::POST,
            &["escrows", id, "deliver"],
            NO_BODY,
            Retry::No,
        )
        .await
    }

    /// `POST /escrows/:id/reject-delivery` (buyer). Resent only after a 429.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// use dhmad::RejectDelivery;
    ///
    /// let reason = RejectDelivery {
    ///     reason: Some("The files do not open".to_owned()),
    /// };
    /// let result = client.reject_delivery("66aa00000000000000000001", &reason).await?;
    /// println!("back to {}", result.escrow.status);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn reject_delivery(
        &self,
        id: &str,
        req: &RejectDelivery,
    ) -> Result<EscrowActionResult, Error> {
        self.call(
            Method::POST,
            &["escrows", id, "reject-delivery"],
            Some(req),
            Retry::No,
        )
        .await
    }

    /// `POST /escrows/:id/cancel` (pending only). Resent only after a 429.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// let result = client.cancel_escrow("66aa00000000000000000001").await?;
    /// println!("{}", result.escrow.status);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn cancel_escrow(&self, id: &str) -> Result<EscrowActionResult, Error> {
        self.call(Method::POST, &["escrows", id, "cancel"], NO_BODY, Retry::No)
            .await
    }

    /// `GET /escrows/:id/proof` (proof escrows). Retried.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// let proof = client.get_proof("66aa00000000000000000001").await?;
    /// println!("{:?}: {:?} submission(s)", proof.phase, proof.submission_count);
    /// if let Some(latest) = &proof.latest_submission {
    ///     println!("latest note: {:?}", latest.note);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_proof(&self, id: &str) -> Result<Proof, Error> {
        let env: ProofEnvelope = self
            .call(Method::GET, &["escrows", id, "proof"], NO_BODY, Retry::Yes)
            .await?;
        Ok(env.proof)
    }

    /// `GET /escrows/:id/contract` (standard mode). Retried.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// let contract = client.get_contract("66aa00000000000000000001").await?;
    /// if contract.is_fully_signed {
    ///     println!("signed; PDF at {:?}", contract.pdf_url);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_contract(&self, id: &str) -> Result<Contract, Error> {
        let env: ContractEnvelope = self
            .call(
                Method::GET,
                &["escrows", id, "contract"],
                NO_BODY,
                Retry::Yes,
            )
            .await?;
        Ok(env.contract)
    }

    /// `POST /escrows/:id/sessions`. Resent only after a 429: each call opens a new
    /// session.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// use dhmad::{CheckoutAction, CreateSession};
    ///
    /// let session = client
    ///     .create_session(
    ///         "66aa00000000000000000001",
    ///         &CreateSession::new(
    ///             CheckoutAction::AcceptPay,
    ///             "buyer@example.tn",
    ///             "https://shop.example.tn/checkout/callback",
    ///         )
    ///         .metadata("order_id", "42"),
    ///     )
    ///     .await?;
    /// // Answer the buyer with `303 See Other` and `Location: {session.url}`.
    /// println!("send the buyer to {} before {}", session.url, session.expires_at);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_session(
        &self,
        escrow_id: &str,
        req: &CreateSession,
    ) -> Result<CreatedSession, Error> {
        self.call(
            Method::POST,
            &["escrows", escrow_id, "sessions"],
            Some(req),
            Retry::No,
        )
        .await
    }

    /// `GET /sessions/:id`. Retried.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// use dhmad::SessionStatus;
    ///
    /// // On the redirect back, ask DHMAD: the `status` in the query string is not proof.
    /// let session = client.get_session("3f0c6d1e-8a4b-4c2d-9e7f-1a2b3c4d5e6f").await?;
    /// if session.status == SessionStatus::Completed {
    ///     println!("escrow {} went through checkout", session.escrow_id);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_session(&self, session_id: &str) -> Result<CheckoutSession, Error> {
        let env: SessionEnvelope = self
            .call(Method::GET, &["sessions", session_id], NO_BODY, Retry::Yes)
            .await?;
        Ok(env.session)
    }

    /// The same client (connections, key, retry policy, observer) under another [`Gate`]: each
    /// call of the returned handle asks `gate` first.
    ///
    /// # Examples
    ///
    /// ```
    /// struct Closed;
    /// impl dhmad::Gate for Closed {
    ///     fn admit(&self) -> dhmad::Admission<'_> {
    ///         Box::pin(async { Err(std::time::Duration::from_secs(30)) })
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client = dhmad::Client::builder("sk_sandbox_example").build().unwrap();
    /// let closed = client.with_gate(Closed);
    /// assert!(matches!(
    ///     closed.me().await,
    ///     Err(dhmad::Error::Throttled { retry_after }) if retry_after.as_secs() == 30
    /// ));
    /// # }
    /// ```
    pub fn with_gate(&self, gate: impl Gate) -> Client {
        Client {
            inner: Arc::clone(&self.inner),
            gate: gate::GateSlot(Some(Arc::new(gate))),
            retry: self.retry,
        }
    }

    /// This client, sharing its connections and gate, retrying by `policy`: one for the calls
    /// made while a user waits, say, beside the patient one of background work.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = dhmad::Client::builder("sk_sandbox_example").build().unwrap();
    /// let hurried = client.with_retry_policy(dhmad::RetryPolicy {
    ///     retry_timeouts: false,
    ///     ..dhmad::RetryPolicy::default()
    /// });
    /// assert!(!hurried.retry_policy().retry_timeouts);
    /// assert!(client.retry_policy().retry_timeouts);
    /// ```
    pub fn with_retry_policy(&self, policy: RetryPolicy) -> Client {
        Client {
            inner: Arc::clone(&self.inner),
            gate: self.gate.clone(),
            retry: Some(policy),
        }
    }

    /// How this handle retries a failed call.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry.unwrap_or(self.inner.retry)
    }
}

fn list_query(q: &ListEscrows) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    if let Some(v) = &q.status {
        s.append_pair("status", v.as_str());
    }
    if let Some(v) = &q.role {
        s.append_pair("role", v.as_str());
    }
    if let Some(v) = q.page {
        s.append_pair("page", &v.to_string());
    }
    if let Some(v) = q.limit {
        s.append_pair("limit", &v.to_string());
    }
    s.finish()
}
