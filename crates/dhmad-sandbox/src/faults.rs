//! Fault injection (`SANDBOX_FAULTS`, `POST /sandbox/faults`), deterministic under a seed.

use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The whole fault configuration (the JSON of `POST /sandbox/faults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the RNG the probabilities are drawn from.
    pub seed: u64,
    /// Webhook delivery faults.
    pub webhooks: WebhookFaults,
    /// API faults, matched in order.
    pub api: Vec<ApiFaultRule>,
}

/// Probabilities (0.0–1.0) per event and a fixed delay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookFaults {
    /// Deliver the event twice (same id).
    pub duplicate: f64,
    /// Never deliver it (logged as dropped).
    pub drop: f64,
    /// Hold it back until the next event to the same URL has been delivered.
    pub reorder: f64,
    /// Send a wrong `X-Webhook-Signature`.
    pub corrupt_signature: f64,
    /// Wait this long before the first attempt.
    pub delay_ms: u64,
}

/// "The next `times` calls to `method path` answer `fault`".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFaultRule {
    /// HTTP method, e.g. `POST` (`*` for any).
    pub method: String,
    /// Path, with `{id}`-style placeholders matching one segment.
    pub path: String,
    /// What to answer.
    pub fault: ApiFaultKind,
    /// How many calls are affected (default 1); decreases as calls match.
    #[serde(default = "one")]
    pub times: u32,
    /// For `hang`: how long to sleep before answering 500 (default 30000); for `slow`, how long
    /// the answer is held, for `delay` the call (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang_ms: Option<u64>,
    /// For `rate_limit_429`: when the window resets, from now (default 1000, at most a day:
    /// [`MAX_RESET_MS`]), as its `X-RateLimit-Reset` and `retryAfter` say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

/// The longest `reset_ms` a 429 fault announces; a longer one is cut to it.
pub const MAX_RESET_MS: u64 = 24 * 60 * 60 * 1000;

/// An API fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiFaultKind {
    /// 500 at once.
    #[serde(rename = "error_500")]
    Error500,
    /// The call takes effect, then 500: a server failing after it committed. The client cannot
    /// tell it from `error_500`, which is why a write answered 5xx must be reconciled.
    #[serde(rename = "error_500_after")]
    Error500After,
    /// 429 with the rate-limit body.
    #[serde(rename = "rate_limit_429")]
    RateLimit429,
    /// 429 with the body of the daily cap on new escrows that older revisions of DHMAD's docs
    /// described (`{"error":"Rate Limit Exceeded","message","limit":10,"count":10,"remaining":0}`),
    /// no rate-limit headers of its own: the rate window is not what is spent.
    #[serde(rename = "creation_cap_429")]
    CreationCap429,
    /// Sleep `hang_ms`, then 500.
    Hang,
    /// Serve the call, then hold the answer `hang_ms` (default 1000) before sending it: a slow
    /// network on the way back, so the answer describes DHMAD as it was when the call ran.
    Slow,
    /// Hold the call `hang_ms` (default 1000) before serving it: a slow network on the way in,
    /// so the answer describes DHMAD as it is once that time has passed.
    Delay,
    /// 404 without acting: DHMAD no longer knows the escrow or session (lost, or created in
    /// another environment), while the rest of its state stays.
    NotFound,
    /// 400 without acting and without a code (body shape A): a refusal whose reason DHMAD's
    /// contract leaves UNSTATED ("other cases → 400, code UNSTATED", §4.1).
    #[serde(rename = "refused_400")]
    Refused400,
}

/// What happens to one webhook event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookFate {
    /// Deliver twice.
    pub duplicate: bool,
    /// Do not deliver.
    pub drop: bool,
    /// Hold back behind the next event.
    pub reorder: bool,
    /// Wrong signature.
    pub corrupt_signature: bool,
    /// Delay before the first attempt, in ms.
    pub delay_ms: u64,
}

/// The live fault state: config + seeded RNG.
pub struct Faults {
    inner: Mutex<(FaultConfig, StdRng)>,
}

impl Faults {
    /// Starts with `config`.
    pub fn new(config: FaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Self {
            inner: Mutex::new((config, rng)),
        }
    }

    /// Replaces the config and reseeds.
    pub fn replace(&self, config: FaultConfig) {
        let mut g = self.inner.lock().expect("faults lock poisoned");
        g.1 = StdRng::seed_from_u64(config.seed);
        g.0 = config;
    }

    /// The current config (API rules show their remaining `times`).
    pub fn current(&self) -> FaultConfig {
        self.inner.lock().expect("faults lock poisoned").0.clone()
    }

    /// Draws the fate of one event. Always draws four numbers, so the sequence depends only on
    /// the seed and the number of events.
    pub fn webhook_fate(&self) -> WebhookFate {
        let mut g = self.inner.lock().expect("faults lock poisoned");
        let (cfg, rng) = &mut *g;
        let w = cfg.webhooks.clone();
        let mut hit = |p: f64| rng.gen::<f64>() < p;
        WebhookFate {
            drop: hit(w.drop),
            duplicate: hit(w.duplicate),
            reorder: hit(w.reorder),
            corrupt_signature: hit(w.corrupt_signature),
            delay_ms: w.delay_ms,
        }
    }

    /// Consumes one use of the first API rule matching `method path`.
    pub fn take_api_fault(&self, method: &str, path: &str) -> Option<ApiFaultRule> {
        let mut g = self.inner.lock().expect("faults lock poisoned");
        let rule = g.0.api.iter_mut().find(|r| {
            r.times > 0
                && (r.method == "*" || r.method.eq_ignore_ascii_case(method))
                && path_matches(&r.path, path)
        })?;
        rule.times -= 1;
        Some(rule.clone())
    }
}

/// `{anything}` in `pattern` matches one non-empty segment; the rest must be equal.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let a: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    p.len() == a.len()
        && p.iter()
            .zip(&a)
            .all(|(p, a)| (p.starts_with('{') && p.ends_with('}') && !a.is_empty()) || p == a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_match_one_segment() {
        assert!(path_matches(
            "/api/v1/escrows/{id}/sessions",
            "/api/v1/escrows/abc/sessions"
        ));
        assert!(!path_matches(
            "/api/v1/escrows/{id}",
            "/api/v1/escrows/abc/sessions"
        ));
        assert!(path_matches("/api/v1/escrows", "/api/v1/escrows/"));
    }

    #[test]
    fn same_seed_same_fates() {
        let cfg: FaultConfig =
            serde_json::from_str(r#"{"seed":7,"webhooks":{"drop":0.5,"duplicate":0.5}}"#).unwrap();
        let a = Faults::new(cfg.clone());
        let b = Faults::new(cfg);
        for _ in 0..20 {
            assert_eq!(a.webhook_fate(), b.webhook_fate());
        }
    }

    #[test]
    fn api_rule_is_consumed() {
        let cfg: FaultConfig = serde_json::from_str(
            r#"{"api":[{"method":"POST","path":"/api/v1/escrows","fault":"error_500","times":2}]}"#,
        )
        .unwrap();
        let f = Faults::new(cfg);
        assert!(f.take_api_fault("GET", "/api/v1/escrows").is_none());
        assert!(f.take_api_fault("POST", "/api/v1/escrows").is_some());
        assert!(f.take_api_fault("post", "/api/v1/escrows").is_some());
        assert!(f.take_api_fault("POST", "/api/v1/escrows").is_none());
    }
}
