//! The orders: placed through the storefronts, then driven at the sandbox as the buyer, the
//! merchant and DHMAD's admin would.

use dhmad::{CheckoutAction, CreateSession};
use serde_json::{json, Value};
use storefront::db;
use uuid::Uuid;

use crate::common::*;

use super::*;

impl Torture {
    pub(super) async fn place_orders(&mut self) {
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
    pub(super) async fn drive_orders(&mut self) {
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

    pub(super) async fn perform(&self, o: &Placed, step: Step) {
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
    pub(super) async fn emit_extras(&self, escrow_ids: &[String]) {
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
}
