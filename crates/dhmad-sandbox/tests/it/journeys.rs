//! Full journeys: standard, quick, quick with proof, cancellation and dispute paths, with the
//! webhook events in the documented order.

use crate::common::*;
use dhmad::CheckoutAction as A;
use serde_json::json;

#[tokio::test]
async fn standard_both_sign_pay_deliver_complete() {
    let env = Env::start().await;
    let seller = env.seller();
    let id = env.standard().await;
    // Paying before both signatures is refused on the page / control API.
    let s = env.session(&id, A::AcceptPay, BUYER).await;
    let (st, v) = env
        .control(&format!("/sandbox/sessions/{s}/complete"), json!({}))
        .await;
    assert_eq!(st, 400, "{v}");
    env.act(&id, A::SignContract, &seller).await;
    env.act(&id, A::SignContract, BUYER).await;
    let c = env.client.get_contract(&id).await.unwrap();
    assert!(c.is_fully_signed && c.seller_signature.is_some() && c.buyer_signature.is_some());
    let sigs = env
        .client
        .get_escrow(&id)
        .await
        .unwrap()
        .signatures
        .unwrap();
    assert!(sigs.is_fully_signed && sigs.signed_at.is_some());
    env.pay(&id).await;
    let d = env.client.deliver_escrow(&id).await.unwrap().escrow;
    assert_eq!(d.status.as_str(), "delivered");
    assert_eq!(
        d.completion_deadline.unwrap() - d.delivered_at.unwrap(),
        time::Duration::days(7)
    );
    env.act(&id, A::Complete, BUYER).await;
    assert_eq!(env.status(&id).await, "completed");
    let got = env.hooks.wait(5).await;
    assert_eq!(
        env.hooks.types(),
        [
            "contract.signed",
            "contract.signed",
            "escrow.status.updated",
            "escrow.status.updated",
            "escrow.status.updated"
        ]
    );
    assert_eq!(got[0].body["data"]["contract"]["signedBy"], "seller");
    assert_eq!(got[1].body["data"]["contract"]["isFullySigned"], true);
    let statuses: Vec<_> = got[2..]
        .iter()
        .map(|d| {
            (
                d.body["data"]["escrow"]["oldStatus"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                d.escrow_status(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("pending".into(), "paid".into()),
            ("paid".into(), "delivered".into()),
            ("delivered".into(), "completed".into())
        ]
    );
    // Snapshots carry what the storefront relies on.
    let e = &got[4].body["data"]["escrow"];
    for k in ["updatedAt", "mode", "seller", "buyer", "amount", "currency"] {
        assert!(!e[k].is_null(), "{k}");
    }
}

#[tokio::test]
async fn quick_pay_deliver_complete_and_auto_release() {
    let env = Env::start().await;
    let id = env.quick().await;
    env.pay(&id).await;
    env.client.deliver_escrow(&id).await.unwrap();
    env.act(&id, A::Complete, BUYER).await;
    assert_eq!(env.status(&id).await, "completed");
    // Another one completes by itself when the completion deadline passes.
    let id2 = env.quick().await;
    env.pay(&id2).await;
    env.client.deliver_escrow(&id2).await.unwrap();
    env.control("/sandbox/clock/advance", json!({"seconds": 7 * 86400 + 1}))
        .await;
    assert_eq!(env.status(&id2).await, "completed");
}

#[tokio::test]
async fn cancellation_request_accepted_and_cancel_escrow() {
    let env = Env::start().await;
    let seller = env.seller();
    let id = env.quick().await;
    env.pay(&id).await;
    env.act_with(
        &id,
        A::RequestCancellation,
        BUYER,
        json!({"note": "changed my mind"}),
    )
    .await;
    assert_eq!(env.status(&id).await, "paid");
    env.act(&id, A::AcceptCancellation, &seller).await;
    assert_eq!(env.status(&id).await, "cancelled");
    let other = env.instant(10).await;
    env.pay(&other).await;
    env.act(&other, A::CancelEscrow, &seller).await;
    assert_eq!(env.status(&other).await, "cancelled");
    let got = env.hooks.wait(6).await;
    assert_eq!(
        env.hooks.types()[1..],
        [
            "escrow.cancellation.requested",
            "escrow.cancellation.accepted",
            "escrow.status.updated",
            "escrow.status.updated",
            "escrow.status.updated"
        ]
    );
    assert_eq!(
        got[1].body["data"]["cancellationRequest"]["reason"],
        "changed my mind"
    );
    assert_eq!(
        got[2].body["data"]["cancellationRequest"]["status"],
        "accepted"
    );
    assert_eq!(got[2].escrow_status(), "cancelled");
}

#[tokio::test]
async fn dispute_opens_and_is_resolved() {
    let env = Env::start().await;
    // The associated user buys from a third party, so the API may reject a delivery for it
    // (buyer only) and only the open dispute can refuse one.
    let me = env.seller();
    let id = env
        .create(
            dhmad::CreateEscrow::new("Bike", 50.into(), &me)
                .seller_email("s@x.tn")
                .mode(dhmad::EscrowMode::Quick)
                .estimated_delivery_days(2),
        )
        .await;
    env.act(&id, A::AcceptPay, &me).await;
    let (st, v) = env
        .control(&format!("/sandbox/escrows/{id}/deliver"), json!({}))
        .await;
    assert_eq!(st, 200, "{v}");
    env.act(&id, A::Dispute, &me).await;
    let e = env.client.get_escrow(&id).await.unwrap();
    assert_eq!(e.status.as_str(), "disputed");
    assert!(e.dispute_ticket_id.is_some() && e.dispute_ticket.is_some());
    let rd = env
        .client
        .reject_delivery(&id, &Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        (rd.status(), rd.api().map(|a| a.message.as_str())),
        (Some(400), Some("A dispute is open for this escrow"))
    );
    let (st, _) = env
        .control(
            &format!("/sandbox/escrows/{id}/dispute/resolve"),
            json!({"outcome": "refund"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(env.status(&id).await, "cancelled");
    let (st, _) = env
        .control(
            &format!("/sandbox/escrows/{id}/dispute/resolve"),
            json!({"outcome": "refund"}),
        )
        .await;
    assert_eq!(st, 400);
}
