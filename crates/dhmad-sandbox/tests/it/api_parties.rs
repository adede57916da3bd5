//! Party rules: the associated user as buyer (reject-delivery), contract and proof access.

use crate::common::*;
use dhmad::{CheckoutAction, CreateEscrow, EscrowMode, EscrowStatus, RejectDelivery};
use rust_decimal::Decimal;
use serde_json::json;

#[tokio::test]
async fn buyer_side_reject_delivery() {
    let env = Env::start().await;
    // The associated user buys from a third party.
    let id = env
        .create(
            CreateEscrow::new("Bike", Decimal::from(50), env.seller())
                .seller_email("s@x.tn")
                .mode(EscrowMode::Quick)
                .estimated_delivery_days(2),
        )
        .await;
    env.act(&id, CheckoutAction::AcceptPay, &env.seller()).await;
    assert_eq!(
        env.client
            .reject_delivery(&id, &RejectDelivery::default())
            .await
            .unwrap_err()
            .status(),
        Some(400)
    );
    // The third-party seller delivers on dhmad.tn: the control API acts as them.
    let (s, v) = env
        .control(&format!("/sandbox/escrows/{id}/deliver"), json!({}))
        .await;
    assert_eq!(
        (s, v["escrow"]["status"].as_str()),
        (200, Some("delivered"))
    );
    let r = env
        .client
        .reject_delivery(
            &id,
            &RejectDelivery {
                reason: Some("broken".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(r.escrow.status, EscrowStatus::Paid);
    assert!(r.escrow.delivered_at.is_none() && r.escrow.completion_deadline.is_none());
    assert_eq!(
        r.escrow.delivery_rejections.unwrap()[0].reason.as_deref(),
        Some("broken")
    );
    env.hooks.wait(4).await;
    let t = env.hooks.types();
    assert_eq!(
        t[2..],
        ["escrow.delivery.rejected", "escrow.status.updated"]
    );
    let got = env.hooks.all();
    assert_eq!(got[2].body["data"]["deliveryRejection"]["reason"], "broken");
    assert_eq!(got[3].body["data"]["escrow"]["oldStatus"], "delivered");
    // Buyer may complete from paid (sandbox choice).
    env.act(&id, CheckoutAction::Complete, &env.seller()).await;
    assert_eq!(env.status(&id).await, "completed");
}

#[tokio::test]
async fn proof_and_contract_access() {
    let env = Env::start().await;
    let quick = env.quick().await;
    assert_eq!(
        env.client.get_proof(&quick).await.unwrap_err().status(),
        Some(400)
    );
    let e = env.client.get_contract(&quick).await.unwrap_err();
    assert_eq!(
        (e.status(), e.api().unwrap().error.as_deref()),
        (Some(404), Some("Contract not found for this escrow"))
    );
    let std = env.standard().await;
    let c = env.client.get_contract(&std).await.unwrap();
    assert_eq!(
        (c.escrow.as_str(), c.is_fully_signed),
        (std.as_str(), false)
    );
    let third = env
        .create(
            CreateEscrow::new("x", Decimal::from(10), BUYER)
                .seller_email("s@x.tn")
                .estimated_delivery_days(1)
                .contract_terms("t"),
        )
        .await;
    assert_eq!(
        env.client.get_contract(&third).await.unwrap_err().status(),
        Some(403)
    );
    let gated = env.create(req(10).fulfillment_policy(policy(24))).await;
    let p = env.client.get_proof(&gated).await.unwrap();
    assert_eq!(
        (p.phase.as_str(), p.submission_count),
        ("waiting_seller_proof", Some(0))
    );
}

/// `pdfVersions[].url` opens in a browser: a placeholder PDF served by the sandbox.
#[tokio::test]
async fn the_contract_pdf_link_answers_a_pdf() {
    let env = Env::start().await;
    let id = env.standard().await;
    let c = env.client.get_contract(&id).await.unwrap();
    let url = &c.pdf_versions[0].url;
    assert!(
        url.starts_with(&format!("{}/", env.sandbox.base_url())),
        "{url}"
    );
    let r = env.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let pdf = r.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&pdf);
    assert!(text.starts_with("%PDF-") && text.trim_end().ends_with("%%EOF"));
    assert!(text.contains("placeholder"), "{text}");
    // A contract this sandbox does not have (say, from before a restart): a page saying so.
    let gone = url.replace(&c.id, &"0".repeat(24));
    let r = env.http.get(&gone).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("href=\"/sandbox\""));
}
