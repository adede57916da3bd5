//! Clock-driven behaviour and remaining event paths: pending-escrow expiry, the clock endpoint,
//! cancellation rejected, contract signature events.

use crate::common::*;
use dhmad::CheckoutAction as A;
use serde_json::json;

#[tokio::test]
async fn pending_escrows_expire_after_31_days() {
    let env = Env::start().await;
    let id = env.instant(10).await;
    let e = env.client.get_escrow(&id).await.unwrap();
    assert_eq!(
        e.expires_at.unwrap() - e.created_at.unwrap(),
        time::Duration::days(31)
    );
    let before = env.get_json("/sandbox/clock").await;
    assert_eq!(before["offset_seconds"], 0);
    let (st, v) = env
        .control("/sandbox/clock/advance", json!({"seconds": 31 * 86400}))
        .await;
    assert_eq!((st, v["fired"].as_u64()), (200, Some(1)), "{v}");
    assert_eq!(env.status(&id).await, "cancelled");
    let got = env.hooks.wait(1).await;
    assert_eq!(got[0].body["data"]["escrow"]["oldStatus"], "pending");
    assert_eq!(got[0].escrow_status(), "cancelled");
    // The envelope time follows the sandbox clock; the header stays real time.
    let ts = dhmad::iso::parse(got[0].body["timestamp"].as_str().unwrap()).unwrap();
    assert!(ts - time::OffsetDateTime::now_utc() > time::Duration::days(30));
    let (st, _) = env
        .control("/sandbox/clock/advance", json!({"seconds": -5}))
        .await;
    assert_eq!(st, 400);
}

/// A clock jump past a deadline fires it as of the deadline, not of the jump's end: the dates
/// and the event's time are the deadline's.
#[tokio::test]
async fn a_deadline_passed_by_a_jump_is_dated_by_the_deadline() {
    let env = Env::start().await;
    let id = env.quick().await;
    env.pay(&id).await;
    let deadline = env
        .client
        .deliver_escrow(&id)
        .await
        .unwrap()
        .escrow
        .completion_deadline
        .unwrap();
    let (st, v) = env
        .control("/sandbox/clock/advance", json!({"seconds": 30 * 86400}))
        .await;
    assert_eq!((st, v["fired"].as_u64()), (200, Some(1)), "{v}");
    let e = env.client.get_escrow(&id).await.unwrap();
    assert_eq!(e.status.as_str(), "completed");
    assert_eq!(
        (e.completed_at, e.updated_at),
        (Some(deadline), Some(deadline))
    );
    let got = env.hooks.wait(3).await;
    assert_eq!(got[2].escrow_status(), "completed");
    let at = |v: &serde_json::Value| dhmad::iso::parse(v.as_str().unwrap()).unwrap();
    assert_eq!(at(&got[2].body["timestamp"]), deadline);
    assert_eq!(at(&got[2].body["data"]["escrow"]["completedAt"]), deadline);
}

#[tokio::test]
async fn rejected_cancellation_keeps_the_status() {
    let env = Env::start().await;
    let seller = env.seller();
    let id = env.quick().await;
    env.pay(&id).await;
    env.act(&id, A::RequestCancellation, BUYER).await;
    env.act(&id, A::RejectCancellation, &seller).await;
    assert_eq!(env.status(&id).await, "paid");
    let got = env.hooks.wait(3).await;
    assert_eq!(got[2].event_type, "escrow.cancellation.rejected");
    let req = &got[2].body["data"]["cancellationRequest"];
    assert_eq!(req["status"], "rejected");
    assert!(req["rejectedBy"]["_id"].is_string() && req["requestedBy"]["_id"].is_string());
    // The paid escrow can still be delivered and completed.
    env.client.deliver_escrow(&id).await.unwrap();
    env.act(&id, A::Complete, BUYER).await;
    assert_eq!(env.status(&id).await, "completed");
}

#[tokio::test]
async fn each_signature_fires_contract_signed_and_status_stays_pending() {
    let env = Env::start().await;
    let id = env.standard().await;
    env.act(&id, A::SignContract, BUYER).await;
    let got = env.hooks.wait(1).await;
    let c = &got[0].body["data"]["contract"];
    assert_eq!(
        (c["signedBy"].as_str(), c["isFullySigned"].as_bool()),
        (Some("buyer"), Some(false))
    );
    assert!(c["buyerSignature"]["signedAt"].is_string() && c["sellerSignature"].is_null());
    assert_eq!(got[0].escrow_status(), "pending");
    assert_eq!(
        got[0].body["data"]["escrow"]["signatures"]["buyerSigned"],
        true
    );
}

/// Off the paid → delivered → completed path nothing fires any more, so no deadline is shown:
/// a cancelled proof escrow has no proof deadlines (its phase stays the last one reached), a
/// disputed one no `completionDeadline`.
#[tokio::test]
async fn leaving_paid_or_delivered_clears_the_deadlines() {
    let env = Env::start().await;
    let gated = env.create(req(50).fulfillment_policy(policy(24))).await;
    env.pay(&gated).await;
    let info = env.api_get(&format!("/escrows/{gated}")).await["escrow"]["proofInfo"].clone();
    assert!(info["uploadDeadline"].is_string(), "{info}");
    env.act(&gated, A::CancelEscrow, &env.seller()).await;
    let e = env.api_get(&format!("/escrows/{gated}")).await["escrow"].clone();
    assert_eq!(e["status"], "cancelled");
    let info = &e["proofInfo"];
    assert_eq!(info["phase"], "waiting_seller_proof", "{e}");
    assert!(
        info["uploadDeadline"].is_null() && info["reviewDeadline"].is_null(),
        "{e}"
    );
    let proof = env.api_get(&format!("/escrows/{gated}/proof")).await["proof"].clone();
    assert!(proof["uploadDeadline"].is_null(), "{proof}");

    let id = env.quick().await;
    env.pay(&id).await;
    env.client.deliver_escrow(&id).await.unwrap();
    env.act(&id, A::Dispute, BUYER).await;
    let e = env.api_get(&format!("/escrows/{id}")).await["escrow"].clone();
    assert_eq!(e["status"], "disputed");
    assert!(e["completionDeadline"].is_null(), "{e}");
    // Released by DHMAD: completed, still without a deadline that never ran.
    let (st, v) = env
        .control(
            &format!("/sandbox/escrows/{id}/dispute/resolve"),
            json!({"outcome": "release"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["escrow"]["completionDeadline"].is_null(), "{v}");
}
