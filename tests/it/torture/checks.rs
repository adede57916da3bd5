//! The final checks: every order against DHMAD's ground truth, and the inbox against the
//! events sent.

use std::collections::{HashMap, HashSet};

use storefront::db;
use uuid::Uuid;

use crate::common::*;

use super::*;

impl Torture {
    /// Waits until every `deliver` job the storefronts owe exists and is done.
    pub(super) async fn wait_for_deliver_jobs(&self) {
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

    pub(super) async fn check_orders(&self, events: &[Captured], waves: &[&Wave]) {
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
    pub(super) async fn check_inbox(&self, events: &[Captured], waves: &[&Wave]) {
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
