//! POST /escrows/:id/sessions: redirect rules, the action matrix of `docs/dhmad-api.md` §4.1
//! with every code, and GET /sessions/:id with expiry and single use.

use crate::common::*;
use dhmad::{CheckoutAction as A, CreateEscrow, CreateSession, EscrowMode};
use rust_decimal::Decimal;

async fn refusal(env: &Env, escrow: &str, action: A, target: &str) -> (u16, String) {
    let e = env
        .client
        .create_session(
            escrow,
            &CreateSession::new(action.clone(), target, CALLBACK),
        )
        .await
        .expect_err(&format!("{action} for {target} must be refused"));
    (e.status().unwrap(), code(&e))
}

async fn expect(env: &Env, escrow: &str, action: A, target: &str, want: &str) {
    assert_eq!(
        refusal(env, escrow, action.clone(), target).await,
        (400, want.to_owned()),
        "{action}"
    );
}

#[tokio::test]
async fn redirect_url_rules_and_body_shape() {
    let env = Env::start().await;
    let id = env.instant(10).await;
    let try_url = |url: &'static str| {
        let c = env.client.clone();
        let id = id.clone();
        async move {
            c.create_session(&id, &CreateSession::new(A::AcceptPay, BUYER, url))
                .await
        }
    };
    assert!(try_url("http://localhost:3000/checkout/callback")
        .await
        .is_ok());
    // Exact match: a query the allow-list does not have is refused.
    let e = try_url("http://localhost:3000/checkout/callback?order=1")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "REDIRECT_URL_NOT_ALLOWED");
    let e = try_url("http://127.0.0.1:3000/checkout/callback")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "REDIRECT_URL_MUST_BE_HTTPS");
    let e = try_url("https://evil.example/checkout/callback")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "REDIRECT_URL_NOT_ALLOWED");
    let e = try_url("http://localhost:3000/elsewhere")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "REDIRECT_URL_NOT_ALLOWED");
    // Shape B body.
    let body = &e.api().unwrap().body;
    assert_eq!(body["error"]["type"], "business_rule_violation");
    assert!(body["error"]["user_message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    env.sandbox.set_allowed_redirect_urls(vec![]);
    assert_eq!(
        code(&try_url(CALLBACK).await.unwrap_err()),
        "NO_REDIRECT_URLS_CONFIGURED"
    );
    env.sandbox
        .set_allowed_redirect_urls(vec!["https://shop.example/cb".into()]);
    assert!(try_url("https://shop.example/cb").await.is_ok());
}

#[tokio::test]
async fn contract_payment_and_completion_rules() {
    let env = Env::start().await;
    let seller = env.seller();
    let (quick, instant) = (env.quick().await, env.instant(10).await);
    expect(
        &env,
        &quick,
        A::SignContract,
        BUYER,
        "QUICK_ESCROW_NO_CONTRACT",
    )
    .await;
    expect(
        &env,
        &instant,
        A::SignContract,
        BUYER,
        "INSTANT_ESCROW_NO_CONTRACT",
    )
    .await;
    let signed = env
        .create(
            CreateEscrow::new("Logo", Decimal::from(300), BUYER)
                .estimated_delivery_days(5)
                .contract_terms("t")
                .auto_sign(true),
        )
        .await;
    expect(
        &env,
        &signed,
        A::SignContract,
        &seller,
        "CONTRACT_ALREADY_SIGNED",
    )
    .await;
    assert_eq!(
        refusal(&env, &signed, A::SignContract, "stranger@x.tn")
            .await
            .0,
        403
    );
    expect(
        &env,
        &instant,
        A::AcceptPay,
        &seller,
        "CHECKOUT_TARGET_NOT_BUYER",
    )
    .await;
    expect(
        &env,
        &instant,
        A::Complete,
        BUYER,
        "INSTANT_ESCROW_NO_COMPLETE_STEP",
    )
    .await;
    env.pay(&instant).await;
    expect(&env, &instant, A::AcceptPay, BUYER, "PAYMENT_ALREADY_DONE").await;
    let unready = env
        .create(
            CreateEscrow::new("x", Decimal::from(10), BUYER)
                .seller_email("unverified@x.tn")
                .mode(EscrowMode::Quick)
                .estimated_delivery_days(1),
        )
        .await;
    expect(&env, &unready, A::AcceptPay, BUYER, "SELLER_NOT_READY").await;
    env.pay(&quick).await;
    env.client.deliver_escrow(&quick).await.unwrap();
    expect(
        &env,
        &quick,
        A::Complete,
        &seller,
        "CHECKOUT_TARGET_NOT_BUYER",
    )
    .await;
    env.act(&quick, A::Complete, BUYER).await;
    expect(&env, &quick, A::Complete, BUYER, "ESCROW_ALREADY_COMPLETED").await;
}

#[tokio::test]
async fn cancellation_and_dispute_rules() {
    let env = Env::start().await;
    let seller = env.seller();
    let id = env.quick().await;
    expect(
        &env,
        &id,
        A::RequestCancellation,
        BUYER,
        "CANCELLATION_REQUEST_INVALID_STATUS",
    )
    .await;
    expect(
        &env,
        &id,
        A::CancelEscrow,
        &seller,
        "CANCEL_ESCROW_INVALID_STATUS",
    )
    .await;
    expect(
        &env,
        &id,
        A::AcceptCancellation,
        &seller,
        "NO_PENDING_CANCELLATION",
    )
    .await;
    env.pay(&id).await;
    expect(
        &env,
        &id,
        A::RequestCancellation,
        &seller,
        "CANCELLATION_REQUEST_BUYER_ONLY",
    )
    .await;
    expect(
        &env,
        &id,
        A::RequestCancellation,
        "stranger@x.tn",
        "CHECKOUT_TARGET_NOT_BUYER",
    )
    .await;
    expect(
        &env,
        &id,
        A::CancelEscrow,
        BUYER,
        "CANCEL_ESCROW_SELLER_ONLY",
    )
    .await;
    expect(
        &env,
        &id,
        A::CancelEscrow,
        "stranger@x.tn",
        "CHECKOUT_TARGET_NOT_SELLER",
    )
    .await;
    expect(
        &env,
        &id,
        A::RejectCancellation,
        &seller,
        "NO_PENDING_CANCELLATION",
    )
    .await;
    expect(
        &env,
        &id,
        A::RejectCancellation,
        BUYER,
        "CHECKOUT_TARGET_NOT_SELLER",
    )
    .await;
    env.act(&id, A::RequestCancellation, BUYER).await;
    expect(
        &env,
        &id,
        A::RequestCancellation,
        BUYER,
        "CANCELLATION_ALREADY_REQUESTED",
    )
    .await;
    env.act(&id, A::RejectCancellation, &seller).await;
    expect(
        &env,
        &id,
        A::RequestCancellation,
        BUYER,
        "CANCELLATION_ALREADY_REQUESTED",
    )
    .await;
    expect(
        &env,
        &id,
        A::AcceptCancellation,
        &seller,
        "NO_PENDING_CANCELLATION",
    )
    .await;
    assert_eq!(refusal(&env, &id, A::Dispute, "stranger@x.tn").await.0, 403);
    env.act(&id, A::Dispute, BUYER).await;
    expect(&env, &id, A::Dispute, &seller, "DISPUTE_ALREADY_OPENED").await;
    expect(&env, &id, A::SubmitProof, &seller, "PROOF_NOT_REQUIRED").await;
}

/// §2.2 CONFLICT: the escrows overview says instant escrows allow `accept_pay` only, the
/// create-session page lists dispute and the cancellation actions too. The sandbox follows the
/// create-session page (see the README's choices).
#[tokio::test]
async fn instant_escrows_allow_dispute_and_the_cancellation_actions() {
    let env = Env::start().await;
    let seller = env.seller();
    let paid_instant = || async {
        let id = env.instant(10).await;
        env.pay(&id).await;
        id
    };
    let id = paid_instant().await;
    env.act(&id, A::Dispute, BUYER).await;
    assert_eq!(env.status(&id).await, "disputed");
    let id = paid_instant().await;
    env.act(&id, A::CancelEscrow, &seller).await;
    assert_eq!(env.status(&id).await, "cancelled");
    let id = paid_instant().await;
    env.act(&id, A::RequestCancellation, BUYER).await;
    env.act(&id, A::AcceptCancellation, &seller).await;
    assert_eq!(env.status(&id).await, "cancelled");
    let id = paid_instant().await;
    env.act(&id, A::RequestCancellation, BUYER).await;
    env.act(&id, A::RejectCancellation, &seller).await;
    assert_eq!(env.status(&id).await, "paid");
    env.act(&id, A::Dispute, &seller).await;
    assert_eq!(env.status(&id).await, "disputed");
}

/// §4.1's dispute row: `DISPUTE_ALREADY_OPENED` while a dispute is open; once DHMAD resolved it,
/// the status rule answers (a settled escrow cannot be disputed: `INVALID_STATUS`).
#[tokio::test]
async fn a_resolved_dispute_no_longer_counts_as_opened() {
    let env = Env::start().await;
    let seller = env.seller();
    for (outcome, settled) in [("release", "completed"), ("refund", "cancelled")] {
        let id = env.quick().await;
        env.pay(&id).await;
        env.act(&id, A::Dispute, BUYER).await;
        expect(&env, &id, A::Dispute, BUYER, "DISPUTE_ALREADY_OPENED").await;
        let (st, v) = env
            .control(
                &format!("/sandbox/escrows/{id}/dispute/resolve"),
                serde_json::json!({ "outcome": outcome }),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(env.status(&id).await, settled);
        for target in [BUYER, seller.as_str()] {
            expect(&env, &id, A::Dispute, target, "INVALID_STATUS").await;
        }
    }
}
