//! The HTTP client (`docs/dhmad-api.md` §3.1–§3.13).
//!
//! Reads (`GET`) are retried on timeouts, transport errors, 5xx and 429, with bounded
//! exponential backoff and jitter, waiting for `X-RateLimit-Reset` on 429. Writes are resent
//! only after a 429, which DHMAD answers without acting: DHMAD has no idempotency keys, so a
//! resent `POST /escrows` after a timeout or a 5xx may create a second escrow. Persist your
//! intent first and reconcile with a read.

use std::sync::{Arc, Mutex};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{de::DeserializeOwned, Serialize};
use url::Url;

use crate::error::Error;
use crate::types::*;

mod builder;
mod retry;

pub use builder::{BuildError, ClientBuilder};
pub use retry::{RateLimit, RetryPolicy};

/// Where the local sandbox serves the API by default.
pub const SANDBOX_API_BASE: &str = "http://127.0.0.1:6002/api/v1";

/// A DHMAD API client. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    api_key: SecretString,
    retry: RetryPolicy,
    rate_limit: Mutex<Option<RateLimit>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .field("api_key", &"[redacted]")
            .field("retry", &self.inner.retry)
            .finish()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Safe to resend: reads.
    Yes,
    /// Writes: resent only after a 429, which DHMAD answers without acting.
    No,
}

const NO_BODY: Option<&()> = None;

impl Client {
    /// Starts a builder with the API key (`sk_live_…` or `sk_sandbox_…`).
    ///
    /// The key is held as a secret: it is sent only in `Authorization: Bearer` and never
    /// printed by `Debug`.
    pub fn builder(api_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(api_key.into())
    }

    /// The API base URL.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// The last rate-limit headers seen, if any.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        *self.inner.rate_limit.lock().expect("rate-limit lock")
    }

    /// `GET /me`: key and developer info. Retried.
    pub async fn me(&self) -> Result<Me, Error> {
        self.call(Method::GET, &["me"], NO_BODY, Retry::Yes).await
    }

    /// `GET /balance` of the associated user. Retried.
    pub async fn balance(&self) -> Result<Balance, Error> {
        self.call(Method::GET, &["balance"], NO_BODY, Retry::Yes)
            .await
    }

    /// `POST /escrows`. Resent only after a 429: a resend after a timeout
    /// could create a duplicate.
    pub async fn create_escrow(&self, req: &CreateEscrow) -> Result<CreatedEscrow, Error> {
        self.call(Method::POST, &["escrows"], Some(req), Retry::No)
            .await
    }

    /// `GET /escrows` with filters and pagination. Retried.
    pub async fn list_escrows(&self, query: &ListEscrows) -> Result<EscrowList, Error> {
        let qs = list_query(query);
        self.request(Method::GET, &["escrows"], Some(&qs), NO_BODY, Retry::Yes)
            .await
    }

    /// `GET /escrows/:id`. Retried.
    pub async fn get_escrow(&self, id: &str) -> Result<Escrow, Error> {
        let env: EscrowEnvelope = self
            .call(Method::GET, &["escrows", id], NO_BODY, Retry::Yes)
            .await?;
        Ok(env.escrow)
    }

    /// `PUT /escrows/:id` (pending only). Resent only after a 429.
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
    pub async fn cancel_escrow(&self, id: &str) -> Result<EscrowActionResult, Error> {
        self.call(Method::POST, &["escrows", id, "cancel"], NO_BODY, Retry::No)
            .await
    }

    /// `GET /escrows/:id/proof` (proof escrows). Retried.
    pub async fn get_proof(&self, id: &str) -> Result<Proof, Error> {
        let env: ProofEnvelope = self
            .call(Method::GET, &["escrows", id, "proof"], NO_BODY, Retry::Yes)
            .await?;
        Ok(env.proof)
    }

    /// `GET /escrows/:id/contract` (standard mode). Retried.
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
    pub async fn get_session(&self, session_id: &str) -> Result<CheckoutSession, Error> {
        let env: SessionEnvelope = self
            .call(Method::GET, &["sessions", session_id], NO_BODY, Retry::Yes)
            .await?;
        Ok(env.session)
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&B>,
        retry: Retry,
    ) -> Result<T, Error> {
        self.request(method, path, None, body, retry).await
    }

    async fn request<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: Option<&str>,
        body: Option<&B>,
        retry: Retry,
    ) -> Result<T, Error> {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .expect("checked at build")
            .extend(path);
        url.set_query(query.filter(|q| !q.is_empty()));
        let mut attempt = 0;
        loop {
            let result = self.once(method.clone(), url.clone(), body).await;
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let delay = match retry {
                Retry::Yes => self.inner.retry.delay(attempt, &err),
                Retry::No if matches!(err, Error::RateLimited { .. }) => {
                    self.inner.retry.delay(attempt, &err)
                }
                Retry::No => None,
            };
            match delay {
                Some(d) => {
                    tracing::debug!(%method, path = url.path(), attempt, ?d, error = %err, "retrying DHMAD call");
                    tokio::time::sleep(d).await;
                    attempt += 1;
                }
                None => return Err(err),
            }
        }
    }

    async fn once<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let mut req = self
            .inner
            .http
            .request(method, url)
            .bearer_auth(self.inner.api_key.expose_secret())
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(map_reqwest)?;
        let status = resp.status();
        let rate = RateLimit::from_headers(resp.headers());
        if let Some(rl) = rate {
            *self.inner.rate_limit.lock().expect("rate-limit lock") = Some(rl);
        }
        let bytes = resp.bytes().await.map_err(map_reqwest)?;
        if status.is_success() {
            let bytes = if bytes.is_empty() {
                &b"null"[..]
            } else {
                &bytes[..]
            };
            return serde_json::from_slice(bytes).map_err(|source| Error::Decode {
                status: status.as_u16(),
                source,
            });
        }
        let reset = rate.and_then(|r| r.reset);
        Err(Error::from_response(status.as_u16(), &bytes, reset))
    }
}

fn map_reqwest(e: reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::Timeout
    } else {
        Error::Transport(e)
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
