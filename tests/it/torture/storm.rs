//! The storm: a workload of first sends, duplicates, forgeries and stale replays built from the
//! captured events, sent at concurrency, and each answer checked.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    future::Future,
    sync::{Arc, Mutex},
};

use axum::body::Bytes;
use dhmad::webhook;
use rand::Rng;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;

/// Runs `f` over `items` with at most `width` at once; results in the order of `items`.
pub(super) async fn bounded<T, R, F, Fut>(items: Vec<T>, width: usize, f: F) -> Vec<R>
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
pub(super) enum Kind {
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
    pub(super) fn expected_status(self) -> u16 {
        match self {
            Kind::First | Kind::Duplicate => 200,
            Kind::Tampered | Kind::Forged => 401,
            Kind::StaleReplay | Kind::StaleNew => 400,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Delivery {
    pub(super) kind: Kind,
    pub(super) event_id: String,
    pub(super) event_type: String,
    pub(super) escrow_id: String,
    pub(super) updated_at: OffsetDateTime,
    pub(super) signature: String,
    pub(super) body: Bytes,
    /// Seconds the timestamp header lies in the past (0: sent now).
    pub(super) age_secs: i64,
}

impl Delivery {
    pub(super) fn genuine(kind: Kind, c: &Captured) -> Self {
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
pub(super) struct Wave {
    pub(super) label: String,
    pub(super) deliveries: Vec<Delivery>,
    pub(super) answers: Vec<(u16, String)>,
    /// Genuine deliveries sent after a later snapshot of the same escrow.
    pub(super) reordered: usize,
}

impl Wave {
    pub(super) fn summary(&self) -> String {
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

impl Torture {
    /// Builds a workload from `fresh` (never sent before; `pool` may be duplicated) and sends
    /// it, round-robin over the instances.
    pub(super) async fn storm(
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
    pub(super) fn workload(
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
    pub(super) fn check_answers(&self, wave: &Wave, fresh: &[Captured]) {
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
}

/// Sends one delivery with DHMAD's headers; the timestamp is taken at sending time.
pub(super) async fn send(web: &reqwest::Client, base: &str, d: &Delivery) -> (u16, String) {
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
pub(super) fn count_reordered(list: &[Delivery]) -> usize {
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
