//! Instant escrows: wallet pay → deliver → completed; guest path with deposit proof.

use crate::checkout_page::{page, post_form};
use crate::common::*;
use dhmad::CheckoutAction;
use serde_json::{json, Value};

/// A guest (no DHMAD account) finishes the payment page with a proof of a payment by `method`.
async fn guest_pays(env: &Env, id: &str, method: &str) {
    env.act_with(
        id,
        CheckoutAction::AcceptPay,
        BUYER,
        json!({"payer": "guest", "method": method}),
    )
    .await;
}

#[tokio::test]
async fn wallet_pay_then_deliver_completes() {
    let env = Env::start().await;
    let id = env.instant(15).await;
    let v = env.act(&id, CheckoutAction::AcceptPay, BUYER).await;
    assert!(v["redirect_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{CALLBACK}?session_id=")));
    assert!(v["redirect_url"]
        .as_str()
        .unwrap()
        .ends_with("&status=completed"));
    assert_eq!(env.status(&id).await, "paid");
    let r = env.client.deliver_escrow(&id).await.unwrap();
    assert_eq!(r.escrow.status.as_str(), "completed");
    assert!(r.escrow.delivered_at.is_some() && r.escrow.completed_at.is_some());
    let got = env.hooks.wait(2).await;
    assert!(got
        .iter()
        .all(|d| d.verified && d.header_id == d.id && d.header_event == d.event_type));
    assert_eq!(
        env.hooks.types(),
        ["escrow.status.updated", "escrow.status.updated"]
    );
    assert_eq!(got[0].body["data"]["escrow"]["oldStatus"], "pending");
    assert_eq!(got[1].body["data"]["escrow"]["oldStatus"], "paid");
    assert_eq!(got[1].escrow_status(), "completed");
}

#[tokio::test]
async fn guest_payment_approved_and_rejected() {
    let env = Env::start().await;
    let id = env.instant(20).await;
    let body = json!({"payer": "guest", "method": "d17"});
    let session = env.session(&id, CheckoutAction::AcceptPay, BUYER).await;
    let complete = format!("/sandbox/sessions/{session}/complete");
    let (s, v) = env.control(&complete, body.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(env.status(&id).await, "pending");
    let (s, v) = env
        .control(
            &format!("/sandbox/escrows/{id}/deposit-proof/reject"),
            json!({"reason": "blurry"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let got = env.hooks.wait(1).await;
    assert_eq!(got[0].event_type, "escrow.deposit_proof.rejected");
    assert_eq!(got[0].body["data"]["depositProof"]["reason"], "blurry");
    assert_eq!(got[0].body["data"]["depositProof"]["method"], "d17");
    assert_eq!(got[0].escrow_status(), "pending");
    // No pending proof any more.
    let (s, _) = env
        .control(
            &format!("/sandbox/escrows/{id}/deposit-proof/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 400);
    // The guest uploads again through the same session, which the rejection reopened.
    let session_now = env.client.get_session(&session).await.unwrap();
    assert_eq!(session_now.status, dhmad::SessionStatus::Pending);
    let (s, v) = env.control(&complete, body).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = env
        .control(
            &format!("/sandbox/escrows/{id}/deposit-proof/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(env.status(&id).await, "paid");
    let got = env.hooks.wait(2).await;
    assert_eq!(got[1].event_type, "escrow.status.updated");
    assert_eq!(got[1].escrow_status(), "paid");
}

/// §2.1: `buyer` is null "for guest payers", as in §6.4's guest-rejection example. The
/// snapshot then has no `buyerEmail` either (DHMAD shows it in the create answer only): the
/// guest's address stays where §6.4 puts it, `data.depositProof.buyerEmail`.
#[tokio::test]
async fn a_guest_payer_is_no_buyer_in_answers_and_events() {
    let env = Env::start().await;
    let id = env.instant(20).await;
    let no_buyer = |e: &Value, at: &str| {
        assert!(
            // `"buyer": null`, not left out (a shop tells a guest by it); no `buyerEmail` key at
            // all: DHMAD shows it in the create answer only.
            e.get("buyer") == Some(&Value::Null)
                && e.get("buyerEmail").is_none()
                && e["id"] == id.as_str(),
            "{at}: {e}"
        );
    };
    // Before anyone pays, the buyer is the sandbox user named at creation.
    let e = env.api_get(&format!("/escrows/{id}")).await;
    assert_eq!(e["escrow"]["buyer"]["email"], BUYER, "{e}");
    let guest = json!({"payer": "guest", "method": "flouci"});
    env.act_with(&id, CheckoutAction::AcceptPay, BUYER, guest.clone())
        .await;
    no_buyer(
        &env.api_get(&format!("/escrows/{id}")).await["escrow"],
        "being paid",
    );
    env.control(
        &format!("/sandbox/escrows/{id}/deposit-proof/reject"),
        json!({"reason": "blurry"}),
    )
    .await;
    let got = env.hooks.wait(1).await;
    no_buyer(&got[0].body["data"]["escrow"], "rejected event");
    assert_eq!(got[0].body["data"]["depositProof"]["buyerEmail"], BUYER);
    env.act_with(&id, CheckoutAction::AcceptPay, BUYER, guest)
        .await;
    let (st, v) = env
        .control(
            &format!("/sandbox/escrows/{id}/deposit-proof/approve"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    no_buyer(&v["escrow"], "approve answer");
    no_buyer(
        &env.hooks.wait(2).await[1].body["data"]["escrow"],
        "paid event",
    );
    let list = env.api_get("/escrows").await;
    no_buyer(&list["escrows"][0], "list");
    let delivered = env.client.deliver_escrow(&id).await.unwrap().escrow;
    assert!(delivered.names_no_buyer() && delivered.buyer_email.is_none());
    no_buyer(
        &env.hooks.wait(3).await[2].body["data"]["escrow"],
        "completed event",
    );
    no_buyer(
        &env.api_get(&format!("/escrows/{id}")).await["escrow"],
        "completed",
    );

    // A guest's refused proof, then the buyer pays from their wallet: a DHMAD user again.
    let other = env.instant(20).await;
    guest_pays(&env, &other, "d17").await;
    env.control(
        &format!("/sandbox/escrows/{other}/deposit-proof/reject"),
        json!({}),
    )
    .await;
    env.pay(&other).await;
    let e = env.api_get(&format!("/escrows/{other}")).await;
    assert_eq!(
        (
            e["escrow"]["status"].as_str(),
            e["escrow"]["buyer"]["email"].as_str()
        ),
        (Some("paid"), Some(BUYER)),
        "{e}"
    );
}

#[tokio::test]
async fn cancelling_with_a_pending_guest_proof_auto_rejects_it() {
    let env = Env::start().await;
    let id = env.instant(20).await;
    guest_pays(&env, &id, "paypal").await;
    env.client.cancel_escrow(&id).await.unwrap();
    env.hooks.wait(2).await;
    assert_eq!(
        env.hooks.types(),
        // The specific event first, as for every event paired with a status change.
        ["escrow.deposit_proof.rejected", "escrow.status.updated"]
    );
    assert!(env
        .hooks
        .all()
        .iter()
        .all(|d| d.escrow_status() == "cancelled"));
}

#[tokio::test]
async fn no_second_payment_while_a_guest_proof_is_under_review() {
    let env = Env::start().await;
    let id = env.instant(20).await;
    let guest = json!({"payer": "guest", "method": "d17"});
    env.act_with(&id, CheckoutAction::AcceptPay, BUYER, guest.clone())
        .await;
    // Creating another session stays possible (no new error code for the storefront)...
    let s2 = env.session(&id, CheckoutAction::AcceptPay, BUYER).await;
    // ...but its page says why it cannot pay, and refuses the wallet and the guest path alike.
    let (st, html) = page(&env, &s2).await;
    assert_eq!(st, 200);
    let why = "A payment proof for this escrow is under review";
    assert!(html.contains(why) && html.contains("disabled"), "{html}");
    let (st, html) = post_form(&env, &s2, &[("op", "perform")]).await;
    assert!(st == 400 && html.contains(why), "{st}: {html}");
    let complete = format!("/sandbox/sessions/{s2}/complete");
    for body in [json!({}), guest] {
        let (st, v) = env.control(&complete, body).await;
        assert_eq!(st, 400, "{v}");
        assert!(v["error"].as_str().unwrap().starts_with(why), "{v}");
    }
    assert_eq!(env.status(&id).await, "pending");
    assert!(env.hooks.settle(150).await.is_empty(), "nothing was paid");
    // DHMAD rejects the proof: the event says pending (§6.4), and the buyer may pay now.
    let (st, v) = env
        .control(
            &format!("/sandbox/escrows/{id}/deposit-proof/reject"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let got = env.hooks.wait(1).await;
    assert_eq!(got[0].event_type, "escrow.deposit_proof.rejected");
    assert_eq!(got[0].escrow_status(), "pending");
    let (st, v) = env.control(&complete, json!({})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(env.status(&id).await, "paid");
}

/// The guest paid the amount the proof was sent for: while DHMAD reviews it the amount cannot
/// change (else approving would mark the escrow paid at an amount nobody paid). The rest of
/// the escrow, and the same amount, still can; once decided, the amount is free again.
#[tokio::test]
async fn amount_cannot_change_while_a_guest_payment_proof_is_under_review() {
    let env = Env::start().await;
    let id = env.instant(20).await;
    guest_pays(&env, &id, "d17").await;
    let put = |body: Value| {
        env.http
            .put(format!("{}/escrows/{id}", env.sandbox.api_base()))
            .bearer_auth(env.sandbox.api_key())
            .json(&body)
            .send()
    };
    let r = put(json!({"amount": 25})).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "Bad Request", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("A payment proof for this escrow is under review"),
        "{v}"
    );
    let r = put(json!({"amount": 20.0, "title": "More credits"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (st, v) = env
        .control(
            &format!("/sandbox/escrows/{id}/deposit-proof/approve"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["escrow"]["amount"], json!(20), "{v}");

    // Rejected: the escrow waits for a payment again, at any amount.
    let other = env.instant(20).await;
    guest_pays(&env, &other, "d17").await;
    let (st, _) = env
        .control(
            &format!("/sandbox/escrows/{other}/deposit-proof/reject"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    let e = env
        .client
        .update_escrow(
            &other,
            &dhmad::UpdateEscrow {
                amount: Some(rust_decimal::Decimal::from(25)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(e.escrow.amount, Some(rust_decimal::Decimal::from(25)));
}

/// An upload refused stores nothing, not even its file: a guest payment of an escrow that is
/// not instant, a purchase proof of an escrow not yet funded.
#[tokio::test]
async fn refused_uploads_leave_no_file_behind() {
    use dhmad::{CreateSession, EscrowMode, PaymentMethod};
    use dhmad_sandbox::lifecycle::{create, perform, proof_ops, sessions};
    use dhmad_sandbox::state::{Ctx, Store};

    let mut store = Store::default();
    let ctx = Ctx {
        now: time::OffsetDateTime::now_utc(),
        assoc: dhmad_sandbox::DEFAULT_SELLER_EMAIL.into(),
        app_name: "Shop".into(),
        base_url: "http://localhost:6002".into(),
    };
    let upload = || proof_ops::Upload {
        name: "receipt.png".into(),
        mime: "image/png".into(),
        bytes: b"PNGDATA".to_vec(),
    };
    let quick = dhmad::CreateEscrow::new("Bike", rust_decimal::Decimal::from(420), BUYER)
        .mode(EscrowMode::Quick)
        .estimated_delivery_days(3)
        .fulfillment_policy(policy(24));
    let id = create::create_escrow(&mut store, &ctx, quick).unwrap();
    let s = sessions::create_session(
        &mut store,
        &ctx,
        &id,
        CreateSession::new(CheckoutAction::AcceptPay, BUYER, CALLBACK),
        &[CALLBACK.to_owned()],
    )
    .unwrap();
    let input = perform::PerformInput {
        guest_method: Some(PaymentMethod::from("d17")),
        upload: Some(upload()),
        ..Default::default()
    };
    let refused = perform::perform(&mut store, &ctx, &s.id, input).unwrap_err();
    assert!(refused.message().contains("instant"), "{refused:?}");
    assert!(
        store.files.is_empty(),
        "the refused payment's file was kept"
    );

    let refused = proof_ops::submit(&mut store, &ctx, &id, Some(upload()), None).unwrap_err();
    assert!(refused.message().contains("not funded"), "{refused:?}");
    assert!(store.files.is_empty(), "the refused proof's file was kept");
}
