//! POST /escrows: the validation rules of `docs/dhmad-api.md` §3.3 and the response shape.

use crate::common::*;
use dhmad::{CreateEscrow, Currency, EscrowMode};
use rust_decimal::Decimal;
use serde_json::{json, Value};

#[tokio::test]
async fn create_validation_rules() {
    let env = Env::start().await;
    let d = Decimal::from;
    let bad: Vec<(CreateEscrow, u16)> = vec![
        (
            CreateEscrow::new("x", d(10), BUYER)
                .mode(EscrowMode::Instant)
                .seller_email("s@x.tn"),
            400,
        ),
        (req(10).contract_terms("no"), 400),
        (
            CreateEscrow::new("x", d(10), BUYER)
                .mode(EscrowMode::Instant)
                .contract_terms("no"),
            400,
        ),
        (req(10).developer_fee_percentage(d(5)), 400),
        (
            req(10)
                .seller_email("s@x.tn")
                .developer_fee_percentage(d(26)),
            400,
        ),
        (req(10).auto_sign(true), 400),
        (
            CreateEscrow::new("x", d(10), BUYER)
                .estimated_delivery_days(1)
                .contract_terms("t")
                .seller_email("s@x.tn")
                .auto_sign(true),
            400,
        ),
        (req(10).fulfillment_policy(policy(5)), 400),
        (req(10).fulfillment_policy(policy(73)), 400),
        (
            CreateEscrow::new("x", d(10), BUYER)
                .mode(EscrowMode::Instant)
                .fulfillment_policy(policy(24)),
            400,
        ),
        (req(4), 400),
        (
            CreateEscrow::new("x", Decimal::new(5, 3), BUYER).mode(EscrowMode::Instant),
            400,
        ),
        (
            CreateEscrow::new("", d(10), BUYER).mode(EscrowMode::Instant),
            400,
        ),
        (
            CreateEscrow::new("x".repeat(201), d(10), BUYER).mode(EscrowMode::Instant),
            400,
        ),
        (
            CreateEscrow::new("x", d(10), "not-an-email").mode(EscrowMode::Instant),
            400,
        ),
        (
            CreateEscrow::new("x", d(10), BUYER).mode(EscrowMode::Quick),
            400,
        ),
        (
            CreateEscrow::new("x", d(10), BUYER).estimated_delivery_days(2),
            400,
        ),
        (req(10).currency(Currency::Unknown("GBP".into())), 400),
    ];
    for (i, (r, status)) in bad.into_iter().enumerate() {
        let e = env
            .client
            .create_escrow(&r)
            .await
            .expect_err(&format!("case {i} must fail"));
        assert_eq!(e.status(), Some(status), "case {i}: {e}");
    }
    // Generic validation uses details {field: message}.
    let e = env.client.create_escrow(&req(1)).await.unwrap_err();
    assert!(e.api().unwrap().details.contains_key("amount"));
    // Instant minimum is 0.01 TND; USD converts at the fixed rate (2 USD = 6.2 TND ≥ 5).
    env.create(CreateEscrow::new("x", Decimal::new(1, 2), BUYER).mode(EscrowMode::Instant))
        .await;
    let r = env
        .client
        .create_escrow(&req(2).currency(Currency::Usd))
        .await
        .unwrap();
    assert_eq!(r.escrow.amount_tnd, Some(Decimal::new(62, 1)));
}

#[tokio::test]
async fn create_response_shape() {
    let env = Env::start().await;
    let r = env
        .http
        .post(env.url("/api/v1/escrows"))
        .bearer_auth(env.sandbox.api_key())
        .json(
            &json!({"title":"Used bike","amount":420,"buyerEmail":BUYER,"sellerEmail":"s@x.tn",
                      "mode":"quick","estimatedDeliveryDays":4,"developerFeePercentage":2}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"], "Escrow created successfully");
    assert_eq!(v["escrow"]["escrowFee"], json!(21));
    assert_eq!(v["escrow"]["developerFee"], json!(8.4));
    assert_eq!(
        (v["escrow"]["seller"].clone(), v["escrow"]["status"].clone()),
        (Value::Null, json!("pending"))
    );
    assert_eq!(v["contract"], Value::Null);
    assert_eq!(v["trackingId"], v["escrow"]["id"]);
    let s = env
        .client
        .create_escrow(
            &CreateEscrow::new("Logo", Decimal::from(300), BUYER)
                .estimated_delivery_days(5)
                .contract_terms("Terms")
                .auto_sign(true),
        )
        .await
        .unwrap();
    assert_eq!(s.escrow.seller.unwrap().id().len(), 24);
    let c = s.contract.unwrap();
    assert!(c.seller_signed && !c.buyer_signed && !c.is_fully_signed);
}

/// DHMAD documents money as JSON numbers: an amount sent as a string (how `rust_decimal`
/// writes itself by default) is a 400 that names it, on create and on update, so an
/// integration that sends one learns it here rather than from DHMAD.
#[tokio::test]
async fn amounts_sent_as_strings_are_refused() {
    let env = Env::start().await;
    let send = |method: reqwest::Method, path: String, body: Value| {
        env.http
            .request(method, env.url(&path))
            .bearer_auth(env.sandbox.api_key())
            .json(&body)
            .send()
    };
    let create =
        |amount: Value| json!({"title":"Tea","amount":amount,"buyerEmail":BUYER,"mode":"instant"});
    let r = send(
        reqwest::Method::POST,
        "/api/v1/escrows".into(),
        create(json!("49.900")),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("JSON number"),
        "{v}"
    );
    let r = send(
        reqwest::Method::POST,
        "/api/v1/escrows".into(),
        create(json!(49.9)),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["escrow"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/escrows/{id}");
    let r = send(reqwest::Method::PUT, path.clone(), json!({"amount": "50"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = send(reqwest::Method::PUT, path, json!({"amount": 50}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A proof deadline that is not a whole number of hours (negative, a fraction, beyond any
/// count, a string) is out of bounds and refused, naming the field (§2.4, §3.3); `null` is the
/// default. Before, the typed request read such a value as absent: 201 with the 24 h default.
#[tokio::test]
async fn proof_deadlines_that_are_not_whole_hours_are_refused() {
    let env = Env::start().await;
    let create = |field: &str, hours: Value| {
        let body = json!({"title": "Plate", "amount": 50, "buyerEmail": BUYER, "mode": "quick",
            "estimatedDeliveryDays": 3,
            "fulfillmentPolicy": {"type": "purchase_proof_required", field: hours}});
        env.http
            .post(env.url("/api/v1/escrows"))
            .bearer_auth(env.sandbox.api_key())
            .json(&body)
            .send()
    };
    for field in ["proofUploadDeadlineHours", "buyerReviewDeadlineHours"] {
        for hours in [
            json!(-5),
            json!(12.5),
            json!(4_294_967_296_u64),
            json!("48"),
            json!(true),
        ] {
            let r = create(field, hours.clone()).await.unwrap();
            assert_eq!(r.status(), 400, "{field} = {hours}");
            let v: Value = r.json().await.unwrap();
            let named = format!("fulfillmentPolicy.{field}");
            assert!(v["details"][&named].is_string(), "{field} = {hours}: {v}");
        }
        let r = create(field, Value::Null).await.unwrap();
        assert_eq!(r.status(), 201, "{field} = null");
        let r = create(field, json!(48)).await.unwrap();
        assert_eq!(r.status(), 201, "{field} = 48");
    }
}

/// DHMAD runs on Node, where JSON has one number type: a whole number written with a decimal
/// point is that number, for the delivery days (create and update) as for the proof hours.
/// A value that is not whole is still refused, told why.
#[tokio::test]
async fn whole_numbers_written_with_a_decimal_point_are_accepted() {
    let env = Env::start().await;
    let send = |method: reqwest::Method, path: String, body: Value| {
        env.http
            .request(method, format!("{}{path}", env.sandbox.api_base()))
            .bearer_auth(env.sandbox.api_key())
            .json(&body)
            .send()
    };
    let create = |days: Value, hours: Value| {
        json!({"title": "Plate", "amount": 50, "buyerEmail": BUYER, "mode": "quick",
            "estimatedDeliveryDays": days,
            "fulfillmentPolicy": {"type": "purchase_proof_required",
                "proofUploadDeadlineHours": hours, "buyerReviewDeadlineHours": hours}})
    };
    let r = send(
        reqwest::Method::POST,
        "/escrows".into(),
        create(json!(3.0), json!(24.0)),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let e = &v["escrow"];
    assert_eq!(e["estimatedDeliveryDays"], json!(3), "{v}");
    let id = e["id"].as_str().unwrap().to_owned();
    let r = send(
        reqwest::Method::PUT,
        format!("/escrows/{id}"),
        json!({"estimatedDeliveryDays": 4.0}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["escrow"]["estimatedDeliveryDays"], json!(4), "{v}");

    // Not whole: refused, naming the field, with a message that fits.
    let refused = |v: &Value, field: &str, says: &str| {
        let m = v["details"][field].as_str().unwrap_or_default();
        assert!(m.contains(says), "{field}: {v}");
    };
    for (path, method, body) in [
        (
            "/escrows".to_owned(),
            reqwest::Method::POST,
            create(json!(3.5), json!(24)),
        ),
        (
            format!("/escrows/{id}"),
            reqwest::Method::PUT,
            json!({"estimatedDeliveryDays": 3.5}),
        ),
        (
            format!("/escrows/{id}"),
            reqwest::Method::PUT,
            json!({"estimatedDeliveryDays": "3"}),
        ),
    ] {
        let r = send(method, path, body).await.unwrap();
        assert_eq!(r.status(), 400);
        refused(
            &r.json().await.unwrap(),
            "estimatedDeliveryDays",
            "whole number",
        );
    }
    let r = send(
        reqwest::Method::PUT,
        format!("/escrows/{id}"),
        json!({"estimatedDeliveryDays": 0.0}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    refused(
        &r.json().await.unwrap(),
        "estimatedDeliveryDays",
        "at least 1",
    );
    let r = send(
        reqwest::Method::POST,
        "/escrows".into(),
        create(json!(3), json!(24.5)),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    refused(
        &r.json().await.unwrap(),
        "fulfillmentPolicy.proofUploadDeadlineHours",
        "whole number of hours",
    );
}

/// §1.2: bodies are JSON, sent as such. DHMAD's parser reads no other type, so a client that
/// forgets the header (`curl -d`) must fail here as it would there, with a message that says why.
#[tokio::test]
async fn a_body_not_sent_as_json_is_refused() {
    let env = Env::start().await;
    let body = json!({"title":"x","amount":10,"buyerEmail":BUYER,"mode":"instant"}).to_string();
    let send = |content_type: Option<&'static str>| {
        let mut r = env
            .http
            .post(env.url("/api/v1/escrows"))
            .bearer_auth(env.sandbox.api_key())
            .body(body.clone());
        if let Some(t) = content_type {
            r = r.header("content-type", t);
        }
        r.send()
    };
    for refused in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
    ] {
        let r = send(refused).await.unwrap();
        assert_eq!(r.status(), 400, "{refused:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "Bad Request", "{refused:?}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("Content-Type: application/json"),
            "{v}"
        );
    }
    for taken in ["application/json", "Application/JSON; charset=utf-8"] {
        let r = send(Some(taken)).await.unwrap();
        assert_eq!(r.status(), 201, "{taken}");
    }
    // A body-less call needs no header: DHMAD reads it as `{}` (here, a validation error).
    let r = env
        .http
        .post(env.url("/api/v1/escrows"))
        .bearer_auth(env.sandbox.api_key())
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_ne!(
        v["message"], "Request body must be JSON: send Content-Type: application/json",
        "{v}"
    );
}
