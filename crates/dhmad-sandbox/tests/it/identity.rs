//! Identity verifications (§3.14): approval at creation and its signed webhook, repeated calls,
//! the 409, reads scoped to the key, the list, validation, and the seller readiness they give.

use crate::common::*;
use dhmad::{
    CheckoutAction as A, ClaimStatus, CreateEscrow, CreateIdentityVerification, EscrowMode, Event,
    KycStatus, WebhookEnvelope,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// A raw `/api/v1` call with the sandbox key: (status, JSON body).
async fn api(env: &Env, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = env
        .http
        .request(method, format!("{}{path}", env.sandbox.api_base()))
        .bearer_auth(env.sandbox.api_key());
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(env: &Env, body: Value) -> (u16, Value) {
    api(
        env,
        reqwest::Method::POST,
        "/identity-verifications",
        Some(body),
    )
    .await
}

async fn get(env: &Env, path: &str) -> (u16, Value) {
    api(env, reqwest::Method::GET, path, None).await
}

fn is_object_id(id: &str) -> bool {
    id.len() == 24
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn creation_approves_at_once_and_sends_a_signed_webhook() {
    let env = Env::start().await;
    let req = CreateIdentityVerification::new("  New.Seller@Example.TN ")
        .external_user_id("seller-42")
        .redirect_url(CALLBACK)
        .metadata("shop", "nabeul");
    let created = env.client.create_identity_verification(&req).await.unwrap();
    let v = &created.verification;
    assert!(is_object_id(&v.id), "{}", v.id);
    assert_eq!(v.email, "new.seller@example.tn");
    assert_eq!(v.external_user_id.as_deref(), Some("seller-42"));
    assert_eq!(v.kyc_status, KycStatus::Approved);
    assert_eq!(v.claim_status, Some(ClaimStatus::Pending));
    assert!(!v.needs_admin_review && v.linked_user_id.is_none() && v.linked_at.is_none());
    assert!(v.verification_email_sent);
    assert_eq!(v.verification_email_sent_at, Some(v.created_at));
    assert_eq!(v.expires_at, Some(v.created_at + time::Duration::days(90)));
    assert!(created.message.is_some());

    let got = env.hooks.wait(1).await;
    let d = &got[0];
    assert!(d.verified, "signature must verify");
    assert_eq!(d.event_type, "identity.verification.updated");
    assert_eq!(d.header_event, d.event_type);
    assert_eq!(d.header_id, d.id);
    let env_body = WebhookEnvelope::from_slice(d.body.to_string().as_bytes()).unwrap();
    match env_body.event().unwrap() {
        Event::IdentityVerificationUpdated(u) => {
            assert_eq!(u.id, v.id);
            assert_eq!(u.email, "new.seller@example.tn");
            assert_eq!(u.external_user_id.as_deref(), Some("seller-42"));
            assert_eq!(u.kyc_status, KycStatus::Approved);
            assert_eq!(u.previous_kyc_status, Some(KycStatus::Pending));
            assert_eq!(u.status_source.as_deref(), Some("sandbox"));
            assert_eq!(u.claim_status, Some(ClaimStatus::Pending));
            assert!(!u.needs_admin_review && u.linked_user_id.is_none());
        }
        other => panic!("{other:?}"),
    }
    // Every documented key is sent, metadata is not (DHMAD keeps it out of webhooks).
    let data = d.body["data"].as_object().unwrap();
    assert_eq!(data.len(), 10, "{data:?}");
    assert!(!data.contains_key("metadata"));
    // The delivery log has the event, with no escrow.
    let log = env.deliveries(1).await;
    assert_eq!(log[0]["event_type"], "identity.verification.updated");
    assert_eq!(log[0]["escrow_id"], Value::Null);
}

#[tokio::test]
async fn reposting_an_email_answers_the_open_record_without_a_new_event() {
    let env = Env::start().await;
    let (st, first) = post(&env, json!({"email": "again@x.tn"})).await;
    assert_eq!(st, 201, "{first}");
    assert_eq!(first["kyc_status"], "approved");
    let (st, second) = post(
        &env,
        json!({"email": "AGAIN@x.tn", "external_user_id": "u2"}),
    )
    .await;
    assert_eq!(st, 200, "{second}");
    assert_eq!(second["id"], first["id"]);
    assert_eq!(
        second["external_user_id"],
        Value::Null,
        "the record is not changed"
    );
    assert!(second["message"].is_string());
    env.hooks.wait(1).await;
    assert_eq!(env.hooks.settle(300).await.len(), 1);
    // After its 90 days an unclaimed record is closed: the next call creates another.
    let (st, _) = env
        .control("/sandbox/clock/advance", json!({"seconds": 91 * 86_400}))
        .await;
    assert_eq!(st, 200);
    let (st, third) = post(&env, json!({"email": "again@x.tn"})).await;
    assert_eq!(st, 201, "{third}");
    assert_ne!(third["id"], first["id"]);
}

#[tokio::test]
async fn conflict_when_the_users_kyc_is_already_approved() {
    let env = Env::start().await;
    let conflict = json!({"error": "Conflict",
        "message": "A DHMAD user with this email already has approved identity verification",
        "kyc_status": "approved", "user_exists": true});
    // The associated user sells with a payout account: verified.
    let (st, body) = post(&env, json!({"email": env.seller().to_uppercase()})).await;
    assert_eq!((st, &body), (409, &conflict));

    // A person who registers on DHMAD gets the record linked; then the e-mail is a verified user.
    let v = env
        .client
        .create_identity_verification(&CreateIdentityVerification::new("joins@x.tn"))
        .await
        .unwrap()
        .verification;
    let (st, linked) = env
        .control(
            &format!("/sandbox/identity-verifications/{}/link", v.id),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{linked}");
    assert_eq!(linked["verification"]["claim_status"], "linked");
    let got = env.hooks.wait(2).await;
    assert!(got[1].verified);
    match WebhookEnvelope::from_slice(got[1].body.to_string().as_bytes())
        .unwrap()
        .event()
        .unwrap()
    {
        Event::IdentityVerificationLinked(l) => {
            assert_eq!(l.id, v.id);
            assert_eq!(l.kyc_status, KycStatus::Approved);
            assert_eq!(l.linked_user_id.len(), 24);
        }
        other => panic!("{other:?}"),
    }
    let err = env
        .client
        .create_identity_verification(&CreateIdentityVerification::new("joins@x.tn"))
        .await
        .unwrap_err();
    match err {
        dhmad::Error::Conflict(e) => assert_eq!(e.body, conflict),
        other => panic!("{other:?}"),
    }
    let (st, _) = env
        .control(
            &format!("/sandbox/identity-verifications/{}/link", v.id),
            json!({}),
        )
        .await;
    assert_eq!(st, 400, "linked once");
}

#[tokio::test]
async fn invalid_bodies_answer_400_with_the_field() {
    let env = Env::start().await;
    let long = "x".repeat(501);
    for (body, field) in [
        (json!({}), "email"),
        (json!({"email": "  "}), "email"),
        (json!({"email": "not-an-email"}), "email"),
        (
            json!({"email": "a@x.tn", "redirect_url": "https://evil.example/cb"}),
            "redirect_url",
        ),
        (
            json!({"email": "a@x.tn", "redirect_url": "http://shop.example/cb"}),
            "redirect_url",
        ),
        (
            json!({"email": "a@x.tn", "metadata": {"k": long}}),
            "metadata.k",
        ),
    ] {
        let (st, v) = post(&env, body.clone()).await;
        assert_eq!(st, 400, "{body}: {v}");
        assert_eq!(v["error"], "Bad Request");
        assert!(v["details"][field].is_string(), "{body}: {v}");
    }
    let (st, v) = post(&env, json!({"email": "a@x.tn", "metadata": {"k": 1}})).await;
    assert_eq!((st, &v["error"]), (400, &json!("Bad Request")), "{v}");
    assert!(env.hooks.settle(200).await.is_empty(), "nothing created");
}

#[tokio::test]
async fn get_shows_only_this_keys_records() {
    let env = Env::start().await;
    let own = env
        .client
        .create_identity_verification(&CreateIdentityVerification::new("own@x.tn"))
        .await
        .unwrap()
        .verification;
    assert_eq!(
        env.client.get_identity_verification(&own.id).await.unwrap(),
        own
    );

    // The same person verified through another developer's key: invisible here.
    let (st, other) = env
        .control(
            "/sandbox/identity-verifications",
            json!({"email": "own@x.tn"}),
        )
        .await;
    assert_eq!(st, 200, "{other}");
    let other_id = other["verification"]["id"].as_str().unwrap();
    assert_ne!(other_id, own.id);
    let not_found = json!({"error": "Not Found", "message": "Verification not found"});
    let (st, v) = get(&env, &format!("/identity-verifications/{other_id}")).await;
    assert_eq!((st, &v), (404, &not_found));
    let (st, v) = get(&env, "/identity-verifications/0123456789abcdef01234567").await;
    assert_eq!((st, &v), (404, &not_found));
    let (st, v) = get(&env, "/identity-verifications/not-an-id").await;
    assert_eq!((st, v), (400, json!({"error": "Invalid verification ID"})));
    assert!(matches!(
        env.client.get_identity_verification("not-an-id").await,
        Err(dhmad::Error::Validation(_))
    ));
    // Its approval sent nothing to this sandbox's webhook URLs.
    env.hooks.wait(1).await;
    assert_eq!(env.hooks.settle(200).await.len(), 1);
}

#[tokio::test]
async fn list_is_newest_first_at_most_20_and_needs_an_email() {
    let env = Env::start().await;
    let mut ids = Vec::new();
    for _ in 0..21 {
        let v = env
            .client
            .create_identity_verification(&CreateIdentityVerification::new("many@x.tn"))
            .await
            .unwrap()
            .verification;
        ids.push(v.id);
        // Close it, so the next call makes a new record.
        env.control("/sandbox/clock/advance", json!({"seconds": 91 * 86_400}))
            .await;
    }
    env.control(
        "/sandbox/identity-verifications",
        json!({"email": "many@x.tn"}),
    )
    .await;
    env.client
        .create_identity_verification(&CreateIdentityVerification::new("else@x.tn"))
        .await
        .unwrap();
    let list = env
        .client
        .list_identity_verifications("Many@X.tn")
        .await
        .unwrap()
        .verifications;
    let got: Vec<_> = list.iter().map(|v| v.id.clone()).collect();
    let want: Vec<_> = ids.iter().rev().take(20).cloned().collect();
    assert_eq!(got, want);
    assert!(list.windows(2).all(|w| w[0].created_at > w[1].created_at));
    assert!(env
        .client
        .list_identity_verifications("nobody@x.tn")
        .await
        .unwrap()
        .verifications
        .is_empty());
    for path in ["/identity-verifications", "/identity-verifications?email="] {
        let (st, v) = get(&env, path).await;
        assert_eq!(st, 400, "{path}: {v}");
        assert!(v["details"]["email"].is_string(), "{v}");
    }
}

#[tokio::test]
async fn an_approved_verification_makes_an_unverified_seller_ready() {
    let env = Env::start().await;
    let escrow_for = |seller: &'static str| {
        CreateEscrow::new("Chechia", Decimal::from(40), BUYER)
            .seller_email(seller)
            .mode(EscrowMode::Quick)
            .estimated_delivery_days(2)
    };
    let id = env.create(escrow_for("unverified.ali@x.tn")).await;
    let try_session = || async {
        env.client
            .create_session(
                &id,
                &dhmad::CreateSession::new(A::AcceptPay, BUYER, CALLBACK),
            )
            .await
    };
    assert_eq!(code(&try_session().await.unwrap_err()), "SELLER_NOT_READY");
    env.client
        .create_identity_verification(&CreateIdentityVerification::new("Unverified.Ali@x.tn"))
        .await
        .unwrap();
    try_session().await.expect("the seller is ready now");
    env.pay(&id).await;
    assert_eq!(env.status(&id).await, "paid");

    // Any developer's approval counts: KYC belongs to the person.
    let other = env.create(escrow_for("unverified.bea@x.tn")).await;
    let (st, _) = env
        .control(
            "/sandbox/identity-verifications",
            json!({"email": "unverified.bea@x.tn"}),
        )
        .await;
    assert_eq!(st, 200);
    env.pay(&other).await;
    assert_eq!(env.status(&other).await, "paid");
}
