//! How one call goes over the wire: the URL, the retries its kind allows, and each attempt
//! through the gate, timed and shown to the observer, then decoded.

use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::ExposeSecret;
use serde::{de::DeserializeOwned, Serialize};
use url::Url;

use super::{observer, CallRecord, Client, RateLimit};
use crate::error::{Error, TransportError};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Safe to resend: reads.
    Yes,
    /// Writes: resent only after a 429, which DHMAD answers without acting.
    No,
}

impl Client {
    pub(super) async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&B>,
        retry: Retry,
    ) -> Result<T, Error> {
        self.request(method, path, None, body, retry).await
    }

    pub(super) async fn request<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: Option<&str>,
        body: Option<&B>,
        retry: Retry,
    ) -> Result<T, Error> {
        // The URL parser drops `.` and `..` segments (and tabs and newlines inside one), so
        // such an id would address another endpoint: refused before anything is sent.
        if let Some(bad) = path.iter().find(|s| !is_one_segment(s)) {
            return Err(Error::InvalidId((*bad).to_owned()));
        }
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .expect("checked at build")
            .extend(path);
        url.set_query(query.filter(|q| !q.is_empty()));
        let endpoint = observer::endpoint(path);
        let mut attempt = 0;
        loop {
            let result = self
                .once(method.clone(), url.clone(), body, endpoint, attempt)
                .await;
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let delay = match retry {
                Retry::Yes => self.retry_policy().delay(attempt, &err),
                Retry::No
                    if self.inner.resend_writes && matches!(err, Error::RateLimited { .. }) =>
                {
                    self.retry_policy().delay(attempt, &err)
                }
                Retry::No => None,
            };
            match delay {
                Some(d) => {
                    tracing::debug!(%method, endpoint, attempt, ?d, error = %err, "retrying DHMAD call");
                    tokio::time::sleep(d).await;
                    attempt += 1;
                }
                None => return Err(err),
            }
        }
    }

    /// One attempt: sends the request, reads the whole answer, tells the observer, decodes.
    async fn once<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
        endpoint: &'static str,
        attempt: u32,
    ) -> Result<T, Error> {
        // Refused by the gate: nothing is sent, so the observer has no exchange to see.
        self.gate
            .admit()
            .await
            .map_err(|retry_after| Error::Throttled { retry_after })?;
        let mut req = self
            .inner
            .http
            .request(method.clone(), url)
            .bearer_auth(self.inner.api_key.expose_secret())
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let started = Instant::now();
        let mut record = CallRecord {
            method,
            endpoint,
            status: None,
            timed_out: false,
            elapsed: Duration::ZERO,
            attempt,
            rate_limit: None,
        };
        let answer = async {
            let resp = req.send().await.map_err(map_reqwest)?;
            record.status = Some(resp.status().as_u16());
            record.rate_limit = RateLimit::from_headers(resp.headers());
            let retry_after = super::retry::retry_after_header(resp.headers());
            let status = resp.status();
            let bytes = read_capped(resp).await?;
            Ok::<_, Error>((status, bytes, retry_after))
        }
        .await;
        record.elapsed = started.elapsed();
        record.timed_out = matches!(answer, Err(Error::Timeout));
        let rate = record.rate_limit;
        if let Some(rl) = rate {
            *self.inner.rate_limit.lock().expect("rate-limit lock") = Some(rl);
        }
        self.inner.observer.notify(&record);
        let (status, bytes, retry_after_header) = answer?;
        if status.is_success() {
            let repaired = std::str::from_utf8(&bytes)
                .ok()
                .and_then(crate::lenient::repair);
            let bytes = match &repaired {
                Some(text) => text.as_bytes(),
                None if bytes.is_empty() => &b"null"[..],
                None => &bytes[..],
            };
            return serde_json::from_slice(bytes).map_err(|source| Error::Decode {
                status: status.as_u16(),
                source,
            });
        }
        let reset = rate.and_then(|r| r.reset);
        let mut err = Error::from_response(status.as_u16(), &bytes, reset);
        // `Retry-After` (UNSTATED for DHMAD; gateways and proxies in front of it send one) when
        // the body said nothing.
        match &mut err {
            Error::RateLimited { retry_after, .. } => {
                *retry_after = retry_after.or(retry_after_header);
            }
            // A gateway's 503 during maintenance: the read waits as asked (`RetryPolicy`).
            Error::Server(api) => {
                let secs =
                    retry_after_header.map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
                api.retry_after = api.retry_after.or(secs);
            }
            _ => {}
        }
        // A cap on new escrows is about one kind of call, not the window every call shares.
        if let Some(wait) = err.rate_limit_wait().filter(|_| !err.is_creation_cap()) {
            self.gate.rate_limited(wait).await;
        }
        Err(err)
    }
}

/// The whole answer, unless it is longer than [`crate::MAX_ANSWER_BYTES`]: refused from its
/// `Content-Length` when it says so, else as soon as the bytes read pass the limit.
async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, Error> {
    let limit = crate::MAX_ANSWER_BYTES;
    let status = resp.status().as_u16();
    let too_large = || Error::TooLarge { status, limit };
    let announced = resp.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    while let Some(chunk) = resp.chunk().await.map_err(map_reqwest)? {
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A timeout is `Error::Timeout` (for a write, the outcome is unknown), except while
/// connecting: nothing was sent then, and a caller may safely send it again.
fn map_reqwest(e: reqwest::Error) -> Error {
    if e.is_timeout() && !e.is_connect() {
        Error::Timeout
    } else {
        Error::Transport(TransportError::new(e))
    }
}

/// Whether `s` stays one path segment, whatever it holds (`/`, `?`, `#` and `%` are
/// percent-encoded by the URL builder; these are not).
fn is_one_segment(s: &str) -> bool {
    !s.trim_matches('.').is_empty() && !s.chars().any(char::is_control)
}
