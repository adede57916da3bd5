//! After-payment journeys of a shop whose associated user is the seller and whose buyer is
//! another e-mail: reject-delivery as the buyer (control API), cancellation request / answer,
//! `cancel_escrow`, disputes, API cancel of a pending escrow and guest payments. Each test pins
//! the exact webhook sequence as `(type, data.escrow.status, data.escrow.oldStatus)`.

use crate::common::*;
use dhmad::CheckoutAction as A;
use serde_json::{json, Value};

/// `(type, status, oldStatus or "")` of every delivery so far, once `n` have arrived and
/// nothing more came for 150 ms.
async fn events(env: &Env, n: usize) -> Vec<(String, String, String)> {
    env.hooks.wait(n).await;
    let got = env.hooks.settle(150).await;
    got.iter()
        .map(|d| {
            let e = &d.body["data"]["escrow"];
            (
                d.event_type.clone(),
                e["status"].as_str().unwrap_or_default().to_owned(),
                e["oldStatus"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn ev(t: &str, status: &str, old: &str) -> (String, String, String) {
    (t.to_owned(), status.to_owned(), old.to_owned())
}

/// `escrow.status.updated` pending → paid.
fn paid() -> (String, String, String) {
    ev("escrow.status.updated", "paid", "pending")
}

async fn reject_delivery(env: &Env, id: &str, body: Value) -> (u16, Value) {
    env.control(&format!("/sandbox/escrows/{id}/reject-delivery"), body)
        .await
}

#[tokio::test]
async fn the_buyer_rejects_a_delivery_through_the_control_api() {
    let env = Env::start().await;
    let id = env.quick().await;
    env.pay(&id).await;
    // Not delivered yet: the API's 400.
    let (st, v) = reject_delivery(&env, &id, json!({})).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["error"],
        "Only delivered escrows can have their delivery rejected"
    );
    let delivered = env.client.deliver_escrow(&id).await.unwrap().escrow;
    let (st, v) = reject_delivery(&env, &id, json!({"reason": "wrong size"})).await;
    assert_eq!(st, 200, "{v}");
    let e = &v["escrow"];
    assert_eq!(e["status"], "paid");
    assert!(e["deliveredAt"].is_null() && e["completionDeadline"].is_null());
    assert_eq!(e["deliveryRejections"][0]["reason"], "wrong size");
    assert_eq!(
        e["deliveryRejections"][0]["previousDeliveredAt"],
        dhmad::iso::format(delivered.delivered_at.unwrap())
    );
    // Same record through the API.
    let got = env.client.get_escrow(&id).await.unwrap();
    assert_eq!(got.delivery_rejections.unwrap().len(), 1);
    assert_eq!(
        events(&env, 4).await,
        [
            paid(),
            ev("escrow.status.updated", "delivered", "paid"),
            ev("escrow.delivery.rejected", "paid", "delivered"),
            ev("escrow.status.updated", "paid", "delivered"),
        ]
    );
    let d = &env.hooks.all()[2].body["data"];
    assert_eq!(d["deliveryRejection"]["reason"], "wrong size");
    assert_eq!(
        d["deliveryRejection"]["rejectedBy"],
        d["escrow"]["buyer"]["_id"]
    );
    assert_ne!(d["escrow"]["buyer"]["email"], env.seller().as_str());

    // The seller delivers again; a body-less call (no reason) rejects again.
    env.client.deliver_escrow(&id).await.unwrap();
    let r = env
        .http
        .post(env.url(&format!("/sandbox/escrows/{id}/reject-delivery")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["escrow"]["deliveryRejections"].as_array().unwrap().len(),
        2
    );
    assert!(v["escrow"]["deliveryRejections"][1].get("reason").is_none());
    let sent = events(&env, 7).await;
    assert!(env.hooks.all()[5].body["data"]["deliveryRejection"]
        .get("reason")
        .is_none());
    assert_eq!(
        sent[5..],
        [
            ev("escrow.delivery.rejected", "paid", "delivered"),
            ev("escrow.status.updated", "paid", "delivered"),
        ]
    );
    assert_eq!(env.status(&id).await, "paid");
}

#[tokio::test]
async fn reject_delivery_refusals_match_the_api() {
    let env = Env::start().await;
    // Dispute open: the API's 400, nothing changes.
    let id = env.quick().await;
    env.pay(&id).await;
    env.client.deliver_escrow(&id).await.unwrap();
    env.act(&id, A::Dispute, BUYER).await;
    let (st, v) = reject_delivery(&env, &id, json!({"reason": "x"})).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("A dispute is open for this escrow"))
    );
    assert_eq!(env.status(&id).await, "disputed");
    // Instant escrows have no delivery step.
    let instant = env.instant(15).await;
    env.pay(&instant).await;
    let (st, v) = reject_delivery(&env, &instant, json!({})).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("Instant escrows have no delivery to reject"))
    );
    // Unknown and malformed ids.
    let (st, v) = reject_delivery(&env, "66aa00000000000000000001", json!({})).await;
    assert_eq!((st, v["error"].as_str()), (404, Some("Escrow not found")));
    let (st, v) = reject_delivery(&env, "nope", json!({})).await;
    assert_eq!((st, v["error"].as_str()), (400, Some("Invalid escrow ID")));
    let (st, _) = reject_delivery(&env, &id, json!({"reason": 5})).await;
    assert_eq!(st, 400);
    // Only the two payments and the dispute were sent.
    assert_eq!(
        events(&env, 4).await,
        [
            paid(),
            ev("escrow.status.updated", "delivered", "paid"),
            ev("escrow.status.updated", "disputed", "delivered"),
            paid(),
        ]
    );
}

#[tokio::test]
async fn cancellation_request_then_rejected_by_the_seller() {
    let env = Env::start().await;
    let id = env.quick().await;
    env.pay(&id).await;
    env.act_with(
        &id,
        A::RequestCancellation,
        BUYER,
        json!({"note": "too slow"}),
    )
    .await;
    assert_eq!(env.status(&id).await, "paid");
    env.act(&id, A::RejectCancellation, &env.seller()).await;
    assert_eq!(env.status(&id).await, "paid");
    assert_eq!(
        events(&env, 3).await,
        [
            paid(),
            ev("escrow.cancellation.requested", "paid", ""),
            ev("escrow.cancellation.rejected", "paid", ""),
        ]
    );
    let got = env.hooks.all();
    let req = &got[1].body["data"]["cancellationRequest"];
    assert_eq!(
        (req["status"].as_str(), req["reason"].as_str()),
        (Some("pending"), Some("too slow"))
    );
    assert_eq!(
        req["requestedBy"]["_id"],
        got[1].body["data"]["escrow"]["buyer"]["_id"]
    );
    assert_eq!(
        got[2].body["data"]["cancellationRequest"]["status"],
        "rejected"
    );
    // One request per escrow: a second one is refused once the first was answered.
    let e = env
        .client
        .create_session(
            &id,
            &dhmad::CreateSession::new(A::RequestCancellation, BUYER, CALLBACK),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CANCELLATION_ALREADY_REQUESTED");
}

#[tokio::test]
async fn cancellation_request_accepted_from_delivered() {
    let env = Env::start().await;
    let id = env.quick().await;
    env.pay(&id).await;
    env.client.deliver_escrow(&id).await.unwrap();
    env.act(&id, A::RequestCancellation, BUYER).await;
    assert_eq!(env.status(&id).await, "delivered");
    env.act(&id, A::AcceptCancellation, &env.seller()).await;
    let e = env.client.get_escrow(&id).await.unwrap();
    assert_eq!(e.status.as_str(), "cancelled");
    assert!(e.cancelled_at.is_some());
    assert_eq!(
        events(&env, 5).await,
        [
            paid(),
            ev("escrow.status.updated", "delivered", "paid"),
            ev("escrow.cancellation.requested", "delivered", ""),
            ev("escrow.cancellation.accepted", "cancelled", ""),
            ev("escrow.status.updated", "cancelled", "delivered"),
        ]
    );
    let req = &env.hooks.all()[3].body["data"]["cancellationRequest"];
    assert_eq!(req["status"], "accepted");
    assert!(req["reason"].is_null(), "no note given: {req}");
}

#[tokio::test]
async fn the_seller_cancels_a_paid_or_delivered_escrow() {
    let env = Env::start().await;
    let seller = env.seller();
    let paid_one = env.quick().await;
    env.pay(&paid_one).await;
    env.act(&paid_one, A::CancelEscrow, &seller).await;
    let delivered = env.quick().await;
    env.pay(&delivered).await;
    env.client.deliver_escrow(&delivered).await.unwrap();
    env.act(&delivered, A::CancelEscrow, &seller).await;
    for id in [&paid_one, &delivered] {
        let e = env.client.get_escrow(id).await.unwrap();
        assert_eq!(e.status.as_str(), "cancelled");
        assert!(e.cancelled_at.is_some());
    }
    // No cancellation event on this path (§6.2).
    assert_eq!(
        events(&env, 5).await,
        [
            paid(),
            ev("escrow.status.updated", "cancelled", "paid"),
            paid(),
            ev("escrow.status.updated", "delivered", "paid"),
            ev("escrow.status.updated", "cancelled", "delivered"),
        ]
    );
}

#[tokio::test]
async fn disputes_by_either_party_and_their_resolution() {
    let env = Env::start().await;
    let resolve = |id: &str, outcome: &str| {
        let path = format!("/sandbox/escrows/{id}/dispute/resolve");
        let body = json!({ "outcome": outcome });
        let env = &env;
        async move { env.control(&path, body).await }
    };
    // The buyer disputes a paid escrow; DHMAD releases the funds to the seller.
    let a = env.quick().await;
    env.pay(&a).await;
    env.act(&a, A::Dispute, BUYER).await;
    let e = env.client.get_escrow(&a).await.unwrap();
    assert_eq!(e.status.as_str(), "disputed");
    assert_eq!(
        e.dispute_ticket.as_ref().unwrap().status.as_deref(),
        Some("open")
    );
    let (st, v) = resolve(&a, "release").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["escrow"]["status"], "completed");
    assert_eq!(v["escrow"]["disputeTicket"]["status"], "resolved");
    // The seller (the shop) disputes a delivered escrow; DHMAD refunds the buyer.
    let b = env.quick().await;
    env.pay(&b).await;
    env.client.deliver_escrow(&b).await.unwrap();
    env.act(&b, A::Dispute, &env.seller()).await;
    let e = env.client.get_escrow(&b).await.unwrap();
    assert_eq!(e.status.as_str(), "disputed");
    assert!(e.dispute_ticket_id.is_some());
    let (st, v) = resolve(&b, "refund").await;
    assert_eq!(
        (st, v["escrow"]["status"].as_str()),
        (200, Some("cancelled"))
    );
    assert_eq!(
        events(&env, 7).await,
        [
            paid(),
            ev("escrow.status.updated", "disputed", "paid"),
            ev("escrow.status.updated", "completed", "disputed"),
            paid(),
            ev("escrow.status.updated", "delivered", "paid"),
            ev("escrow.status.updated", "disputed", "delivered"),
            ev("escrow.status.updated", "cancelled", "disputed"),
        ]
    );
}

#[tokio::test]
async fn the_seller_cancels_a_pending_escrow_through_the_api() {
    let env = Env::start().await;
    let id = env.quick().await;
    let r = env.client.cancel_escrow(&id).await.unwrap();
    assert_eq!(r.escrow.status.as_str(), "cancelled");
    assert!(r.escrow.cancelled_at.is_some());
    assert_eq!(
        events(&env, 1).await,
        [ev("escrow.status.updated", "cancelled", "pending")]
    );
}

#[tokio::test]
async fn guest_payment_waits_for_the_admin_and_a_rejection_reopens_the_session() {
    let env = Env::start().await;
    let id = env.instant(20).await;
    let guest = json!({"payer": "guest", "method": "d17"});
    let s1 = env.session(&id, A::AcceptPay, BUYER).await;
    let (st, v) = env
        .control(&format!("/sandbox/sessions/{s1}/complete"), guest.clone())
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["redirect_url"]
        .as_str()
        .unwrap()
        .ends_with("&status=completed"));
    let session = env.client.get_session(&s1).await.unwrap();
    assert_eq!(session.status, dhmad::SessionStatus::Completed);
    assert!(session.completed_at.is_some());
    assert_eq!(env.status(&id).await, "pending");
    // Nothing is sent while the proof waits, and GET /escrows/:id has no deposit-proof field
    // (DHMAD documents none).
    assert!(env.hooks.settle(150).await.is_empty());
    let raw: Value = env
        .http
        .get(format!("{}/escrows/{id}", env.sandbox.api_base()))
        .bearer_auth(env.sandbox.api_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["escrow"]["status"], "pending");
    assert!(!raw.to_string().to_lowercase().contains("deposit"), "{raw}");
    // A second guest payment while one waits is refused.
    let s2 = env.session(&id, A::AcceptPay, BUYER).await;
    let (st, v) = env
        .control(&format!("/sandbox/sessions/{s2}/complete"), guest.clone())
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"]
        .as_str()
        .unwrap()
        .starts_with("A payment proof for this escrow is under review"));

    // Rejected: the event, escrow still pending, the first session open again.
    let (st, _) = env
        .control(
            &format!("/sandbox/escrows/{id}/deposit-proof/reject"),
            json!({"reason": "unreadable"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        events(&env, 1).await,
        [ev("escrow.deposit_proof.rejected", "pending", "")]
    );
    let dp = &env.hooks.all()[0].body["data"]["depositProof"];
    assert_eq!(
        (dp["reason"].as_str(), dp["method"].as_str()),
        (Some("unreadable"), Some("d17"))
    );
    assert_eq!(dp["buyerEmail"], BUYER);
    assert_eq!(
        env.client.get_session(&s1).await.unwrap().status,
        dhmad::SessionStatus::Pending
    );
    // The buyer pays again through the new session (the reopened one works too, see
    // journeys_instant); the admin approves.
    let (st, v) = env
        .control(&format!("/sandbox/sessions/{s2}/complete"), guest)
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = env
        .control(
            &format!("/sandbox/escrows/{id}/deposit-proof/approve"),
            json!({}),
        )
        .await;
    assert_eq!((st, v["escrow"]["status"].as_str()), (200, Some("paid")));
    assert_eq!(
        events(&env, 2).await,
        [ev("escrow.deposit_proof.rejected", "pending", ""), paid(),]
    );
    // The reopened first session can no longer pay.
    let (st, _) = env
        .control(&format!("/sandbox/sessions/{s1}/complete"), json!({}))
        .await;
    assert_eq!(st, 400);
}
