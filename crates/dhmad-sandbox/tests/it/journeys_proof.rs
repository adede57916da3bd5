//! Quick escrows with a purchase-proof gate: submit, correction, accept, deliver, complete;
//! the upload deadline expiring; acceptance by timeout; escalation to DHMAD.

use crate::common::*;
use dhmad::{
    CheckoutAction as A, CreateEscrow, EscrowMode, FulfillmentPolicy, FulfillmentPolicyType,
};
use rust_decimal::Decimal;
use serde_json::json;

fn proof_escrow() -> CreateEscrow {
    CreateEscrow::new("Sneakers", Decimal::from(200), BUYER)
        .mode(EscrowMode::Quick)
        .estimated_delivery_days(3)
        .fulfillment_policy(FulfillmentPolicy {
            policy_type: FulfillmentPolicyType::PurchaseProofRequired,
            proof_upload_deadline_hours: Some(12),
            buyer_review_deadline_hours: Some(24),
            allowed_proof_types: None,
        })
}

#[tokio::test]
async fn quick_with_proof_submit_correct_accept_deliver_complete() {
    let env = Env::start().await;
    let seller = env.seller();
    let id = env.create(proof_escrow()).await;
    env.pay(&id).await;
    let e = env.client.deliver_escrow(&id).await.unwrap_err();
    assert_eq!(
        (e.status(), code(&e)),
        (Some(409), "PROOF_NOT_ACCEPTED".into())
    );
    let e = env
        .client
        .create_session(
            &id,
            &dhmad::CreateSession::new(A::Complete, BUYER, CALLBACK),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), code(&e)),
        (Some(409), "PROOF_NOT_ACCEPTED".into())
    );
    let p = env.client.get_proof(&id).await.unwrap();
    assert_eq!(p.phase.as_str(), "waiting_seller_proof");
    assert_eq!(p.checkout_actions[0].action, A::SubmitProof);
    env.act_with(&id, A::SubmitProof, &seller, json!({"note": "receipt"}))
        .await;
    env.act_with(&id, A::ReviewProof, BUYER, json!({"accept": false}))
        .await;
    let p = env.client.get_proof(&id).await.unwrap();
    assert_eq!(
        (p.phase.as_str(), p.correction_rounds),
        ("correction_requested", Some(1))
    );
    // Neither file nor note: accepted, an empty submission (a README choice; DHMAD states no
    // requirement).
    env.act(&id, A::SubmitProof, &seller).await;
    env.act(&id, A::ReviewProof, BUYER).await;
    let p = env.client.get_proof(&id).await.unwrap();
    assert_eq!(
        (p.phase.as_str(), p.submission_count),
        ("accepted", Some(2))
    );
    let latest = p.latest_submission.unwrap();
    assert_eq!((latest.note, latest.attachments.len()), (None, 0));
    assert_eq!(
        env.client
            .get_escrow(&id)
            .await
            .unwrap()
            .proof_info
            .and_then(|p| p.phase)
            .unwrap()
            .as_str(),
        "accepted"
    );
    env.client.deliver_escrow(&id).await.unwrap();
    env.act(&id, A::Complete, BUYER).await;
    env.hooks.wait(8).await;
    assert_eq!(
        env.hooks.types(),
        [
            "escrow.status.updated",
            "escrow.proof.required",
            "escrow.proof.submitted",
            "escrow.proof.correction_requested",
            "escrow.proof.submitted",
            "escrow.proof.accepted",
            "escrow.status.updated",
            "escrow.status.updated",
        ]
    );
    assert_eq!(
        env.hooks.all()[1].body["data"]["proof"]["phase"],
        "waiting_seller_proof"
    );
}

#[tokio::test]
async fn proof_deadlines_expire_and_accept_by_timeout() {
    let env = Env::start().await;
    let seller = env.seller();
    let lazy = env.create(proof_escrow()).await;
    let quiet = env.create(proof_escrow()).await;
    env.pay(&lazy).await;
    env.pay(&quiet).await;
    env.act(&quiet, A::SubmitProof, &seller).await;
    env.control("/sandbox/clock/advance", json!({"seconds": 12 * 3600 + 1}))
        .await;
    assert_eq!(env.status(&lazy).await, "cancelled");
    assert_eq!(
        env.client.get_proof(&lazy).await.unwrap().phase.as_str(),
        "expired_no_proof"
    );
    assert_eq!(
        env.client.get_proof(&quiet).await.unwrap().phase.as_str(),
        "submitted_waiting_buyer_review"
    );
    env.control("/sandbox/clock/advance", json!({"seconds": 12 * 3600}))
        .await;
    assert_eq!(
        env.client.get_proof(&quiet).await.unwrap().phase.as_str(),
        "accepted_by_timeout"
    );
    env.client.deliver_escrow(&quiet).await.unwrap();
    env.hooks.wait(9).await;
    let t = env.hooks.types();
    let expired = t.iter().position(|x| x == "escrow.proof.expired").unwrap();
    assert_eq!(t[expired + 1], "escrow.status.updated");
    assert!(t.contains(&"escrow.proof.accepted_by_timeout".to_owned()));
}

/// A paid proof escrow whose proof was sent back four times: DHMAD's to decide.
pub(crate) async fn escalated(env: &Env) -> String {
    let seller = env.seller();
    let id = env.create(proof_escrow()).await;
    env.pay(&id).await;
    for _ in 0..4 {
        env.act(&id, A::SubmitProof, &seller).await;
        env.act_with(&id, A::ReviewProof, BUYER, json!({"accept": false}))
            .await;
    }
    id
}

#[tokio::test]
async fn escalated_proof_is_decided_by_dhmad() {
    let env = Env::start().await;
    let id = escalated(&env).await;
    assert_eq!(
        env.client.get_proof(&id).await.unwrap().phase.as_str(),
        "needs_dhmad_review"
    );
    let (st, _) = env
        .control(&format!("/sandbox/escrows/{id}/proof/reject"), json!({}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(env.status(&id).await, "cancelled");
}

#[tokio::test]
async fn a_proof_decision_never_moves_an_escrow_that_left_paid() {
    let env = Env::start().await;
    let id = escalated(&env).await;
    env.act(&id, A::Dispute, BUYER).await;
    assert_eq!(env.status(&id).await, "disputed");
    // The dispute, not the proof review, decides now.
    let (st, v) = env
        .control(&format!("/sandbox/escrows/{id}/proof/reject"), json!({}))
        .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(env.status(&id).await, "disputed");
    let proof = env.client.get_proof(&id).await.unwrap();
    assert!(proof.checkout_actions.is_empty(), "{proof:?}");
    let resolve = format!("/sandbox/escrows/{id}/dispute/resolve");
    let (st, _) = env.control(&resolve, json!({"outcome": "refund"})).await;
    assert_eq!(st, 200);
    assert_eq!(env.status(&id).await, "cancelled");
    // Settled: neither a second resolution nor DHMAD's proof decision moves it again.
    let (st, _) = env.control(&resolve, json!({"outcome": "release"})).await;
    assert_eq!(st, 400);
    let (st, _) = env
        .control(&format!("/sandbox/escrows/{id}/proof/accept"), json!({}))
        .await;
    assert_eq!(st, 400);
    assert_eq!(env.status(&id).await, "cancelled");
}

#[tokio::test]
async fn a_cancelled_proof_escrow_awaits_no_proof() {
    let env = Env::start().await;
    let seller = env.seller();
    let id = env.create(proof_escrow()).await;
    env.pay(&id).await;
    assert_eq!(
        env.client
            .get_proof(&id)
            .await
            .unwrap()
            .checkout_actions
            .len(),
        1
    );
    env.act(&id, A::CancelEscrow, &seller).await;
    assert_eq!(env.status(&id).await, "cancelled");
    let proof = env.client.get_proof(&id).await.unwrap();
    assert!(proof.checkout_actions.is_empty(), "{proof:?}");
}

/// §2.3: the payment itself puts the proof in `waiting_seller_proof`, so the pending→paid
/// snapshot is what `GET /escrows/:id` answers right after (`proofInfo` included), as is the
/// `escrow.proof.required` that follows it.
#[tokio::test]
async fn the_paid_webhook_shows_the_proof_info_get_shows() {
    let env = Env::start().await;
    let id = env.create(proof_escrow()).await;
    env.pay(&id).await;
    let got = env.api_get(&format!("/escrows/{id}")).await["escrow"].clone();
    assert_eq!(got["proofInfo"]["phase"], "waiting_seller_proof", "{got}");
    let hooks = env.hooks.wait(2).await;
    assert_eq!(
        (hooks[0].event_type.as_str(), hooks[1].event_type.as_str()),
        ("escrow.status.updated", "escrow.proof.required")
    );
    let mut paid = hooks[0].body["data"]["escrow"].clone();
    assert_eq!(paid["oldStatus"], "pending");
    paid.as_object_mut().unwrap().remove("oldStatus");
    assert_eq!(paid, got);
    assert_eq!(hooks[1].body["data"]["escrow"], got);
}
