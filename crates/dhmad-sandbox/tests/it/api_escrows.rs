//! /escrows endpoints: create validation, get, list, update, deliver, reject-delivery, cancel,
//! proof, contract, and their documented errors.

use crate::common::*;
use dhmad::{CheckoutAction, EscrowStatus, ListEscrows, RejectDelivery, Role, UpdateEscrow};
use rust_decimal::Decimal;
use serde_json::{json, Value};

#[tokio::test]
async fn get_and_list() {
    let env = Env::start().await;
    assert_eq!(
        env.client.get_escrow("nope").await.unwrap_err().status(),
        Some(400)
    );
    let r = env
        .client
        .get_escrow("66aa00000000000000000001")
        .await
        .unwrap_err();
    assert_eq!(
        (r.status(), r.api().unwrap().error.as_deref()),
        (Some(404), Some("Escrow not found"))
    );
    let a = env.instant(10).await;
    let b = env.quick().await;
    let c = env.instant(12).await;
    env.pay(&c).await;
    // A third-party escrow: not listed.
    let created = env
        .client
        .create_escrow(&req(10).seller_email("other@x.tn"))
        .await
        .unwrap()
        .escrow;
    // The parties' e-mail fields are the create answer's only (§2.1); later snapshots carry the
    // parties' objects.
    assert_eq!(created.seller_email.as_deref(), Some("other@x.tn"));
    assert!(created.buyer_email.is_some());
    let e = env.client.get_escrow(&a).await.unwrap();
    assert_eq!(e.underscore_id.as_deref(), Some(a.as_str()));
    assert_eq!(e.seller_email(), Some(env.seller().as_str()));
    assert_eq!(
        (e.seller_email.as_deref(), e.buyer_email.as_deref()),
        (None, None)
    );
    assert!(e.buyer_email().is_some());
    let all = env
        .client
        .list_escrows(&ListEscrows::default())
        .await
        .unwrap();
    let ids: Vec<_> = all.escrows.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, [c.clone(), b.clone(), a.clone()]);
    assert_eq!(
        (
            all.pagination.total,
            all.pagination.pages,
            all.pagination.limit
        ),
        (3, 1, 20)
    );
    let page = env
        .client
        .list_escrows(&ListEscrows {
            page: Some(2),
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((page.escrows.len(), page.pagination.pages), (1, 2));
    let paid = env
        .client
        .list_escrows(&ListEscrows {
            status: Some(EscrowStatus::Paid),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(paid.escrows.len(), 1);
    let buying = env
        .client
        .list_escrows(&ListEscrows {
            role: Some(Role::Buyer),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(buying.escrows.is_empty());
    let big = env
        .client
        .list_escrows(&ListEscrows {
            limit: Some(500),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(big.pagination.limit, 100);
    let bad = env
        .http
        .get(env.url("/api/v1/escrows?status=nope"))
        .bearer_auth(env.sandbox.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// Fields DHMAD does not take on a call are ignored, not refused (README choices): the create's
/// `description` (§3.3 has none; §2.1: "only settable via update") and the update's
/// `contractTerms` (§3.8 lists no such field; whether terms are updatable is UNSTATED).
#[tokio::test]
async fn fields_a_call_does_not_take_are_ignored() {
    let env = Env::start().await;
    let api = |method: reqwest::Method, path: String, body: Value| {
        env.http
            .request(method, format!("{}{path}", env.sandbox.api_base()))
            .bearer_auth(env.sandbox.api_key())
            .json(&body)
    };
    let r = api(
        reqwest::Method::POST,
        "/escrows".into(),
        json!({"title": "Logo", "amount": 300, "buyerEmail": BUYER, "estimatedDeliveryDays": 5,
               "contractTerms": "Three drafts.", "description": "kept?", "colour": "red"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["escrow"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = env.api_get(&format!("/escrows/{id}")).await;
    assert!(e["escrow"]["description"].is_null(), "{e}");
    assert!(e["escrow"].get("colour").is_none(), "{e}");

    let put = |body: Value| api(reqwest::Method::PUT, format!("/escrows/{id}"), body).send();
    let r = put(json!({"title": "Logo pack", "contractTerms": "Ten drafts."}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = env.hooks.wait(1).await;
    assert_eq!(got[0].body["data"]["updatedFields"], json!(["title"]));
    assert!(got[0].body["data"]["contract"].is_null(), "{}", got[0].body);
    let terms = env.client.get_contract(&id).await.unwrap().terms;
    assert_eq!(terms, "Three drafts.");
    // Terms alone change nothing: the update's own 400.
    let r = put(json!({"contractTerms": "Ten drafts."})).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"], "No valid fields to update");
}

#[tokio::test]
async fn update_only_while_pending_and_fires_escrow_updated() {
    let env = Env::start().await;
    let id = env.quick().await;
    let e = env
        .client
        .update_escrow(
            &id,
            &UpdateEscrow {
                amount: Some(Decimal::from(1000)),
                description: Some("d".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(e.escrow.escrow_fee, Some(Decimal::from(50)));
    let got = env.hooks.wait(1).await;
    assert_eq!(got[0].event_type, "escrow.updated");
    assert_eq!(
        got[0].body["data"]["updatedFields"],
        json!(["amount", "description"])
    );
    assert_eq!(
        env.client
            .update_escrow(&id, &UpdateEscrow::default())
            .await
            .unwrap_err()
            .status(),
        Some(400)
    );
    env.pay(&id).await;
    let e = env
        .client
        .update_escrow(
            &id,
            &UpdateEscrow {
                title: Some("t".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert_eq!(
        env.client
            .update_escrow(
                "66aa00000000000000000001",
                &UpdateEscrow {
                    title: Some("t".into()),
                    ..Default::default()
                }
            )
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
}

#[tokio::test]
async fn deliver_reject_cancel_errors() {
    let env = Env::start().await;
    let id = env.quick().await;
    assert_eq!(
        env.client.deliver_escrow(&id).await.unwrap_err().status(),
        Some(400)
    );
    assert_eq!(
        env.client
            .deliver_escrow("66aa00000000000000000001")
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    // The associated user is not the seller of a third-party escrow.
    let third = env.create(req(10).seller_email("s@x.tn")).await;
    env.pay(&third).await;
    assert_eq!(
        env.client
            .deliver_escrow(&third)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    // reject-delivery: only the buyer.
    env.pay(&id).await;
    env.client.deliver_escrow(&id).await.unwrap();
    assert_eq!(
        env.client
            .reject_delivery(&id, &RejectDelivery::default())
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    // cancel: pending only.
    let e = env.client.cancel_escrow(&id).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.api().unwrap().message.contains("request_cancellation"));
    let p = env.instant(5).await;
    let c = env.client.cancel_escrow(&p).await.unwrap();
    assert_eq!(c.escrow.status, EscrowStatus::Cancelled);
    assert!(c.escrow.cancelled_at.is_some());
    assert_eq!(
        env.client.cancel_escrow(&p).await.unwrap_err().status(),
        Some(400)
    );
    assert_eq!(
        env.client
            .create_session(
                &p,
                &dhmad::CreateSession::new(CheckoutAction::AcceptPay, BUYER, CALLBACK)
            )
            .await
            .unwrap_err()
            .status(),
        Some(400)
    );
}

#[tokio::test]
async fn out_of_range_inputs_are_400_and_the_sandbox_keeps_serving() {
    let env = Env::start().await;
    let key = format!("Bearer {}", env.sandbox.api_key());
    let api = |path: &str| format!("{}{path}", env.sandbox.api_base());
    // An amount whose fees would overflow, at create and at update.
    let huge = json!({"title": "x", "amount": 2e28, "buyerEmail": BUYER, "mode": "instant"});
    let r = env
        .http
        .post(api("/escrows"))
        .header("authorization", &key)
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let id = env.instant(10).await;
    let r = env
        .http
        .put(api(&format!("/escrows/{id}")))
        .header("authorization", &key)
        .json(&json!({"amount": 2e28}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A page far past the last.
    let list = env
        .client
        .list_escrows(&ListEscrows {
            page: Some(50_000_000),
            limit: Some(100),
            ..ListEscrows::default()
        })
        .await
        .unwrap();
    assert!(list.escrows.is_empty());
    // A step of the clock past any date.
    let (st, v) = env
        .control("/sandbox/clock/advance", json!({"seconds": 1e15}))
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, _) = env
        .control("/sandbox/clock/advance", json!({"seconds": 1e300}))
        .await;
    assert_eq!(st, 400);
    // Still serving.
    env.client.me().await.unwrap();
    assert_eq!(env.status(&id).await, "pending");
    env.instant(12).await;
}

/// The contract writes `signatures` (no contract), `disputeTicketId` and `disputeTicket` (no
/// dispute) as `null`, not leaving them out: a strict client sees the same keys as from DHMAD.
#[tokio::test]
async fn absent_contract_and_dispute_read_as_null() {
    let env = Env::start().await;
    let id = env.quick().await;
    let body: Value = env
        .http
        .get(env.url(&format!("/api/v1/escrows/{id}")))
        .bearer_auth(env.sandbox.api_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let escrow = body["escrow"].as_object().unwrap();
    for key in ["signatures", "disputeTicketId", "disputeTicket"] {
        assert_eq!(escrow.get(key), Some(&Value::Null), "{key}: {body}");
    }
}

/// An update's amount follows the creation minimum after FX (5 TND standard and quick, 0.01
/// TND instant): never an `amountTnd` that creation refuses, nor one rounded to 0.
#[tokio::test]
async fn update_refuses_an_amount_below_the_creation_minimum() {
    let env = Env::start().await;
    let update = |id: String, amount: Decimal| {
        let client = env.client.clone();
        async move {
            client
                .update_escrow(
                    &id,
                    &UpdateEscrow {
                        amount: Some(amount),
                        ..Default::default()
                    },
                )
                .await
        }
    };
    let quick = env.quick().await;
    let e = update(quick.clone(), Decimal::new(499, 2))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.api().unwrap().message.contains("at least 5 TND"), "{e}");
    let ok = update(quick, Decimal::from(5)).await.unwrap();
    assert_eq!(ok.escrow.amount_tnd, Some(Decimal::from(5)));

    // 0.0001 TND rounds to 0 millimes: below the instant minimum too.
    let instant = env.instant(10).await;
    let e = update(instant.clone(), Decimal::new(1, 4))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(
        e.api().unwrap().message.contains("at least 0.01 TND"),
        "{e}"
    );
    let ok = update(instant, Decimal::new(1, 2)).await.unwrap();
    assert_eq!(ok.escrow.amount_tnd, Some(Decimal::new(1, 2)));
}
