//! The client against a real local HTTP server: one call per endpoint of `docs/dhmad-api.md`
//! §3.1–§3.14, auth, rate-limit headers, redirects and secrecy of the key.

use crate::common::{Reply, Seen, Server, KEY};
use dhmad::{
    CheckoutAction, CreateEscrow, CreateSession, EscrowMode, EscrowStatus, ListEscrows, ProofPhase,
    RejectDelivery, Role, SessionStatus, UpdateEscrow,
};
use rust_decimal_macros::dec;
use serde_json::{json, Value};

const ID: &str = "66aa00000000000000000001";

fn escrow(status: &str) -> Value {
    json!({"id":ID,"title":"Logo pack","amount":300,"escrowFee":15,"status":status,"mode":"quick",
        "createdAt":"2026-07-01T09:00:00Z","updatedAt":"2026-07-02T09:00:00.000Z"})
}

/// A tiny fake of the DHMAD API, enough to check each endpoint's method, path and decoding.
fn fake_dhmad(seen: &Seen, _: usize) -> Reply {
    let path = seen.path.strip_prefix("/api/v1").unwrap_or(&seen.path);
    let body = match (seen.method.as_str(), path) {
        ("GET", "/me") => {
            json!({"apiKey":{"id":"k1","name":"Shop","keyPrefix":"sk_sandbox_0011","environment":"sandbox",
            "isActive":true,"lastUsedAt":null,"expiresAt":null,"rateLimit":100,"metadata":{"appName":"ShopX"},
            "createdAt":"2026-06-01T09:00:00Z"},"developer":{"id":"d1","email":"dev@x.tn","companyName":"ShopX"}})
        }
        ("GET", "/balance") => json!({"balance":{"available":120.5,"pending":0,"escrow":300}}),
        ("POST", "/escrows") => {
            return Reply::json(
                201,
                json!({"message":"Escrow created successfully","escrow":escrow("pending"),"contract":null}),
            )
        }
        ("GET", "/escrows") => {
            json!({"escrows":[escrow("paid")],"pagination":{"page":2,"limit":5,"total":6,"pages":2}})
        }
        ("GET", p) if p == format!("/escrows/{ID}") => json!({"escrow":escrow("paid")}),
        ("PUT", p) if p == format!("/escrows/{ID}") => {
            json!({"message":"Escrow updated","escrow":escrow("pending")})
        }
        ("POST", p) if p.ends_with("/deliver") => {
            json!({"message":"Escrow marked as delivered","escrow":escrow("delivered")})
        }
        ("POST", p) if p.ends_with("/reject-delivery") => {
            json!({"message":"Delivery rejected","escrow":escrow("paid")})
        }
        ("POST", p) if p.ends_with("/cancel") => {
            json!({"message":"Escrow cancelled","escrow":escrow("cancelled")})
        }
        ("GET", p) if p.ends_with("/proof") => {
            json!({"proof":{"phase":"submitted_waiting_buyer_review","correctionRounds":0,
            "uploadDeadline":"2026-07-03T09:00:00Z","reviewDeadline":"2026-07-04T09:00:00Z","submissionCount":1,
            "submissions":[],"checkoutActions":[]}})
        }
        ("GET", p) if p.ends_with("/contract") => {
            json!({"contract":{"id":"c1","escrow":ID,"terms":"Logo in SVG","language":"en",
            "pdfUrl":null,"sellerSignature":{"signedAt":"2026-07-01T09:01:00Z","signatureImage":"data:image/png;base64,AA=="},
            "buyerSignature":null,"isFullySigned":false,"pdfVersions":[{"type":"seller-signed","url":"https://f/1.pdf",
            "mimeType":"application/pdf","createdAt":"2026-07-01T09:01:00Z"}],"createdAt":"2026-07-01T09:00:00Z",
            "updatedAt":"2026-07-01T09:01:00Z"}})
        }
        ("POST", p) if p.ends_with("/sessions") => {
            return Reply::json(
                201,
                json!({"sessionId":"0b6f5a52-1f7e-4b8e-9d51-7c1d2e3f4a5b",
                "url":"http://localhost:6002/checkout/0b6f5a52-1f7e-4b8e-9d51-7c1d2e3f4a5b","expiresAt":"2026-07-02T09:30:00.000Z"}),
            )
        }
        ("GET", p) if p.starts_with("/sessions/") => {
            json!({"session":{"sessionId":"0b6f5a52-1f7e-4b8e-9d51-7c1d2e3f4a5b",
            "escrowId":ID,"action":"accept_pay","targetUserEmail":"b@x.tn","status":"pending","metadata":{"order_id":"42"},
            "expiresAt":"2026-07-02T09:30:00Z","completedAt":null,"createdAt":"2026-07-02T09:00:00Z"}})
        }
        _ => return Reply::json(404, json!({"error":"Not Found"})),
    };
    Reply::json(200, body)
}

#[tokio::test]
async fn sends_bearer_auth_and_json_headers() {
    let server = Server::start(fake_dhmad).await;
    server.client().me().await.unwrap();
    let seen = &server.seen()[0];
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(seen.header("accept"), Some("application/json"));
    assert!(seen
        .header("user-agent")
        .unwrap()
        .starts_with("dhmad-rust/"));
    assert!(seen.header("x-api-key").is_none());
}

#[tokio::test]
async fn reads_decode() {
    let server = Server::start(fake_dhmad).await;
    let c = server.client();
    let me = c.me().await.unwrap();
    assert_eq!(me.api_key.rate_limit, Some(100));
    assert_eq!(me.developer.company_name.as_deref(), Some("ShopX"));
    let bal = c.balance().await.unwrap().balance;
    assert_eq!(bal.available, dec!(120.5));
    let e = c.get_escrow(ID).await.unwrap();
    assert_eq!(e.status, EscrowStatus::Paid);
    let proof = c.get_proof(ID).await.unwrap();
    assert_eq!(proof.phase, ProofPhase::SubmittedWaitingBuyerReview);
    let contract = c.get_contract(ID).await.unwrap();
    assert_eq!(contract.pdf_versions.len(), 1);
    let s = c
        .get_session("0b6f5a52-1f7e-4b8e-9d51-7c1d2e3f4a5b")
        .await
        .unwrap();
    assert_eq!(s.status, SessionStatus::Pending);
    let paths: Vec<_> = server
        .seen()
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        paths,
        [
            "GET /api/v1/me".to_owned(),
            "GET /api/v1/balance".into(),
            format!("GET /api/v1/escrows/{ID}"),
            format!("GET /api/v1/escrows/{ID}/proof"),
            format!("GET /api/v1/escrows/{ID}/contract"),
            "GET /api/v1/sessions/0b6f5a52-1f7e-4b8e-9d51-7c1d2e3f4a5b".into(),
        ]
    );
}

#[tokio::test]
async fn list_sends_filters_as_query() {
    let server = Server::start(fake_dhmad).await;
    let q = ListEscrows {
        status: Some(EscrowStatus::Paid),
        role: Some(Role::Seller),
        page: Some(2),
        limit: Some(5),
    };
    let list = server.client().list_escrows(&q).await.unwrap();
    assert_eq!(list.pagination.total, 6);
    assert_eq!(list.escrows.len(), 1);
    server
        .client()
        .list_escrows(&ListEscrows::default())
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(
        seen[0].query.as_deref(),
        Some("status=paid&role=seller&page=2&limit=5")
    );
    assert_eq!(seen[1].query, None);
}

#[tokio::test]
async fn writes_send_their_bodies() {
    let server = Server::start(fake_dhmad).await;
    let c = server.client();
    let req = CreateEscrow::new("Logo pack", dec!(300), "b@x.tn")
        .mode(EscrowMode::Quick)
        .estimated_delivery_days(5)
        .developer_fee_percentage(dec!(2.5));
    let created = c.create_escrow(&req).await.unwrap();
    assert_eq!(created.escrow.status, EscrowStatus::Pending);
    let upd = UpdateEscrow {
        amount: Some(dec!(320.75)),
        ..Default::default()
    };
    c.update_escrow(ID, &upd).await.unwrap();
    assert_eq!(
        c.deliver_escrow(ID).await.unwrap().escrow.status,
        EscrowStatus::Delivered
    );
    let rej = RejectDelivery {
        reason: Some("Wrong colours".into()),
    };
    c.reject_delivery(ID, &rej).await.unwrap();
    assert_eq!(
        c.cancel_escrow(ID).await.unwrap().escrow.status,
        EscrowStatus::Cancelled
    );
    let sreq = CreateSession::new(
        CheckoutAction::AcceptPay,
        "b@x.tn",
        "http://localhost:3000/checkout/callback",
    )
    .metadata("order_id", "42");
    let session = c.create_session(ID, &sreq).await.unwrap();
    assert!(session.url.ends_with(&session.session_id));

    let seen = server.seen();
    let lines: Vec<_> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        lines,
        [
            "POST /api/v1/escrows".to_owned(),
            format!("PUT /api/v1/escrows/{ID}"),
            format!("POST /api/v1/escrows/{ID}/deliver"),
            format!("POST /api/v1/escrows/{ID}/reject-delivery"),
            format!("POST /api/v1/escrows/{ID}/cancel"),
            format!("POST /api/v1/escrows/{ID}/sessions"),
        ]
    );
    assert_eq!(
        seen[0].json(),
        json!({"title":"Logo pack","amount":300,"buyerEmail":"b@x.tn","mode":"quick",
            "estimatedDeliveryDays":5,"developerFeePercentage":2.5})
    );
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(seen[1].json(), json!({"amount":320.75}));
    assert!(seen[2].body.is_empty());
    assert_eq!(seen[3].json(), json!({"reason":"Wrong colours"}));
    assert_eq!(seen[5].json()["metadata"], json!({"order_id":"42"}));
}

#[tokio::test]
async fn ids_cannot_escape_their_path_segment() {
    let server = Server::start(fake_dhmad).await;
    let err = server.client().get_escrow("../me").await.unwrap_err();
    assert!(matches!(err, dhmad::Error::NotFound(_)), "{err:?}");
    assert_eq!(server.seen()[0].path, "/api/v1/escrows/..%2Fme");
}

#[tokio::test]
async fn an_id_that_is_no_segment_is_refused_before_sending() {
    let server = Server::start(fake_dhmad).await;
    let c = server.client();
    // Each would have reached another endpoint: the list, `/escrows/deliver`, `/sessions`.
    for id in ["..", ".", "", "..\t", ".\n.", "a\rb"] {
        let err = c.get_escrow(id).await.unwrap_err();
        assert!(matches!(err, dhmad::Error::InvalidId(_)), "{id:?}: {err:?}");
        let err = c.deliver_escrow(id).await.unwrap_err();
        assert!(matches!(err, dhmad::Error::InvalidId(_)), "{id:?}: {err:?}");
        let err = c.get_session(id).await.unwrap_err();
        assert!(matches!(err, dhmad::Error::InvalidId(_)), "{id:?}: {err:?}");
    }
    assert!(server.seen().is_empty(), "nothing was sent");
    // An ordinary id still goes out as one segment.
    let _ = c.get_escrow("66aa00000000000000000001").await;
    assert_eq!(
        server.seen()[0].path,
        "/api/v1/escrows/66aa00000000000000000001"
    );
}

fn verification(id: &str) -> Value {
    json!({"id":id,"email":"s@x.tn","external_user_id":"u7","kyc_status":"approved",
        "didit_session_status":null,"needs_admin_review":false,"claim_status":"pending",
        "linked_user_id":null,"linked_at":null,"created_at":"2026-07-01T09:00:00Z",
        "updated_at":"2026-07-01T09:00:00.000Z","expires_at":"2026-09-29T09:00:00Z",
        "verification_email_sent":true,"verification_email_sent_at":"2026-07-01T09:00:00Z"})
}

/// Identity verifications: the record flat beside `message` on create (or wrapped, for
/// `w@x.tn`), bare or wrapped in `{"verification"}` on get (DHMAD documents neither),
/// `{"verifications"}` on list.
fn fake_identity(seen: &Seen, _: usize) -> Reply {
    let path = seen.path.strip_prefix("/api/v1").unwrap_or(&seen.path);
    match (seen.method.as_str(), path) {
        ("POST", "/identity-verifications") if seen.json()["email"] == "w@x.tn" => Reply::json(
            201,
            json!({"verification": verification("66aa000000000000000000a3"),
                "message": "Verification e-mail sent"}),
        ),
        ("POST", "/identity-verifications") => {
            let mut v = verification("66aa000000000000000000a1");
            v["message"] = json!("Verification e-mail sent");
            Reply::json(201, v)
        }
        ("GET", "/identity-verifications") => Reply::json(
            200,
            json!({"verifications":[verification("66aa000000000000000000a2"),
                verification("66aa000000000000000000a1")]}),
        ),
        ("GET", "/identity-verifications/66aa000000000000000000a1") => {
            Reply::json(200, verification("66aa000000000000000000a1"))
        }
        ("GET", "/identity-verifications/66aa000000000000000000a2") => Reply::json(
            200,
            json!({"verification": verification("66aa000000000000000000a2")}),
        ),
        _ => Reply::json(
            404,
            json!({"error":"Not Found","message":"Verification not found"}),
        ),
    }
}

#[tokio::test]
async fn identity_verifications_call_and_decode() {
    let server = Server::start(fake_identity).await;
    let c = server.client();
    let req = dhmad::CreateIdentityVerification::new("s@x.tn")
        .external_user_id("u7")
        .metadata("shop", "42");
    let created = c.create_identity_verification(&req).await.unwrap();
    assert_eq!(created.message.as_deref(), Some("Verification e-mail sent"));
    assert_eq!(created.verification.kyc_status, dhmad::KycStatus::Approved);
    assert!(created.verification.verification_email_sent);
    let bare = c
        .get_identity_verification("66aa000000000000000000a1")
        .await
        .unwrap();
    let wrapped = c
        .get_identity_verification("66aa000000000000000000a2")
        .await
        .unwrap();
    assert_eq!(bare, created.verification);
    assert_eq!(wrapped.id, "66aa000000000000000000a2");
    let list = c.list_identity_verifications("s+1@x.tn").await.unwrap();
    assert_eq!(list.verifications.len(), 2);
    let err = c
        .get_identity_verification("66aa000000000000000000ff")
        .await
        .unwrap_err();
    assert!(matches!(err, dhmad::Error::NotFound(_)), "{err:?}");

    let seen = server.seen();
    assert_eq!(
        seen[0].json(),
        json!({"email":"s@x.tn","external_user_id":"u7","metadata":{"shop":"42"}})
    );
    assert_eq!(seen[3].path, "/api/v1/identity-verifications");
    assert_eq!(seen[3].query.as_deref(), Some("email=s%2B1%40x.tn"));

    // A created record wrapped in `{"verification"}` is read too: it exists by then.
    let wrapped = c
        .create_identity_verification(&dhmad::CreateIdentityVerification::new("w@x.tn"))
        .await
        .unwrap();
    assert_eq!(wrapped.verification.id, "66aa000000000000000000a3");
    assert_eq!(wrapped.message.as_deref(), Some("Verification e-mail sent"));
}
