//! The hosted checkout page: rendering per action, perform → 303 to the shop with the merged
//! query, cancel, closed pages, guest payment and multipart proof upload.

use crate::common::*;
use dhmad::{CheckoutAction as A, CreateEscrow, EscrowMode};
use rust_decimal::Decimal;
use serde_json::json;

pub(crate) async fn page(env: &Env, session: &str) -> (u16, String) {
    let r = env
        .http
        .get(env.url(&format!("/checkout/{session}")))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

pub(crate) async fn post_form(env: &Env, session: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = env
        .http
        .post(env.url(&format!("/checkout/{session}")))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let loc = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, loc.unwrap_or(r.text().await.unwrap()))
}

pub(crate) const BOUNDARY: &str = "sandboxboundary";

/// Posts a hand-built `multipart/form-data` body (parts separated by [`BOUNDARY`]) to the
/// hosted page, as a browser uploading a file does; returns the status.
pub(crate) async fn post_multipart(env: &Env, session: &str, body: String) -> u16 {
    env.http
        .post(env.url(&format!("/checkout/{session}")))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn every_action_renders_its_ui() {
    let env = Env::start().await;
    let seller = env.seller();
    let third = env
        .create(
            CreateEscrow::new("Bike", Decimal::from(420), BUYER)
                .seller_email("s@x.tn")
                .mode(EscrowMode::Quick)
                .estimated_delivery_days(4)
                .developer_fee_percentage(Decimal::from(2)),
        )
        .await;
    let s = env.session(&third, A::AcceptPay, BUYER).await;
    let (st, html) = page(&env, &s).await;
    assert_eq!(st, 200);
    for needle in [
        "SANDBOX",
        "Signed in as <strong>buyer@example.com</strong> (sandbox)",
        "Bike",
        "420.000 TND",
        "platform fee",
        "paid by the seller",
        "21.000 TND",
        "app fee",
        "8.400 TND",
        "name=\"payer\" value=\"wallet\"",
        "name=\"op\" value=\"perform\"",
        "name=\"op\" value=\"cancel\"",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    assert!(
        !html.contains("value=\"guest\""),
        "guest path is for instant escrows only"
    );
    let instant = env.instant(15).await;
    let (_, html) = page(&env, &env.session(&instant, A::AcceptPay, BUYER).await).await;
    for m in [
        "value=\"guest\"",
        "bank_transfer",
        "d17",
        "flouci",
        "paypal",
        "type=\"file\"",
    ] {
        assert!(html.contains(m), "missing {m}");
    }
    let std = env.standard().await;
    let (_, html) = page(&env, &env.session(&std, A::SignContract, BUYER).await).await;
    assert!(html.contains("Deliver three logo drafts.") && html.contains("Sign contract"));
    let quick = env.quick().await;
    env.pay(&quick).await;
    let cases = [
        (A::Complete, BUYER, "Confirm receipt"),
        (A::Dispute, BUYER, "Open dispute"),
        (A::RequestCancellation, BUYER, "Send cancellation request"),
        (A::CancelEscrow, seller.as_str(), "Cancel escrow"),
    ];
    for (action, target, needle) in cases {
        let (st, html) = page(&env, &env.session(&quick, action.clone(), target).await).await;
        assert!(st == 200 && html.contains(needle), "{action}");
    }
    env.act(&quick, A::RequestCancellation, BUYER).await;
    for (action, needle) in [
        (A::AcceptCancellation, "Accept cancellation"),
        (A::RejectCancellation, "Reject cancellation"),
    ] {
        let (_, html) = page(&env, &env.session(&quick, action, &seller).await).await;
        assert!(html.contains(needle));
    }
}

#[tokio::test]
async fn perform_redirects_with_merged_query_and_closes_the_session() {
    let env = Env::start().await;
    let id = env.instant(15).await;
    // An allowed URL with a query of its own (the allow-list matches exactly).
    let url = format!("{CALLBACK}?order=9");
    env.sandbox.set_allowed_redirect_urls(vec![url.clone()]);
    let s = env.session_to(&id, A::AcceptPay, BUYER, &url).await;
    let (st, loc) = post_form(&env, &s, &[("op", "perform"), ("payer", "wallet")]).await;
    assert_eq!(st, 303);
    assert_eq!(
        loc,
        format!("{CALLBACK}?order=9&session_id={s}&status=completed")
    );
    assert_eq!(env.status(&id).await, "paid");
    let (st, html) = page(&env, &s).await;
    assert!(st == 410 && html.contains("already been used"), "{st}");
    assert!(html.contains(&format!("session_id={s}")));
    let (st, _) = post_form(&env, &s, &[("op", "perform")]).await;
    assert_eq!(st, 410);
    let (st, html) = page(&env, "no-such-session").await;
    assert!(st == 404 && html.contains("not found"));
}

#[tokio::test]
async fn cancel_and_expired_pages() {
    let env = Env::start().await;
    let id = env.instant(15).await;
    let s = env.session(&id, A::AcceptPay, BUYER).await;
    let (st, loc) = post_form(&env, &s, &[("op", "cancel")]).await;
    assert_eq!(
        (st, loc),
        (303, format!("{CALLBACK}?session_id={s}&status=cancelled"))
    );
    assert_eq!(
        env.client.get_session(&s).await.unwrap().status.as_str(),
        "cancelled"
    );
    assert_eq!(env.status(&id).await, "pending");
    let s = env.session(&id, A::AcceptPay, BUYER).await;
    env.control("/sandbox/clock/advance", json!({"seconds": 1900}))
        .await;
    let (st, html) = page(&env, &s).await;
    assert!(st == 410 && html.contains("expired") && html.contains("status=expired"));
}

#[tokio::test]
async fn errors_re_render_the_page() {
    let env = Env::start().await;
    let id = env.standard().await;
    let s = env.session(&id, A::AcceptPay, BUYER).await;
    let (st, html) = page(&env, &s).await;
    assert!(st == 200 && html.contains("must sign the contract") && html.contains("disabled"));
    let (st, html) = post_form(&env, &s, &[("op", "perform")]).await;
    assert!(st == 400 && html.contains("class=\"error\""), "{st}");
    assert_eq!(env.status(&id).await, "pending");
}

#[tokio::test]
async fn guest_payment_and_proof_upload_through_the_form() {
    let env = Env::start().await;
    let id = env.instant(15).await;
    let s = env.session(&id, A::AcceptPay, BUYER).await;
    let boundary = BOUNDARY;
    let part = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let mut body = part("op", "perform") + &part("payer", "guest") + &part("method", "flouci");
    body += &format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"receipt.png\"\r\nContent-Type: image/png\r\n\r\nPNGDATA\r\n--{boundary}--\r\n");
    // A proof attached with the page's default, the wallet, is refused: paid from the wallet,
    // the file would be dropped, the opposite of what was tried.
    let mut wallet = part("op", "perform") + &part("payer", "wallet") + &part("method", "d17");
    wallet += &format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"receipt.png\"\r\nContent-Type: image/png\r\n\r\nPNGDATA\r\n--{boundary}--\r\n");
    assert_eq!(post_multipart(&env, &s, wallet).await, 400);
    assert_eq!(env.status(&id).await, "pending");
    assert_eq!(post_multipart(&env, &s, body).await, 303);
    assert_eq!(env.status(&id).await, "pending");
    let (st, _) = env
        .control(
            &format!("/sandbox/escrows/{id}/deposit-proof/approve"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(env.status(&id).await, "paid");

    // Seller's purchase proof with an attachment, visible through GET /proof.
    let gated = env
        .create(
            CreateEscrow::new("Shoes", Decimal::from(100), BUYER)
                .mode(EscrowMode::Quick)
                .estimated_delivery_days(2)
                .fulfillment_policy(dhmad::FulfillmentPolicy {
                    policy_type: dhmad::FulfillmentPolicyType::PurchaseProofRequired,
                    proof_upload_deadline_hours: None,
                    buyer_review_deadline_hours: None,
                    allowed_proof_types: None,
                }),
        )
        .await;
    env.pay(&gated).await;
    let s = env.session(&gated, A::SubmitProof, &env.seller()).await;
    let body = part("op", "perform") + &part("note", "bought it")
        + &format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1\r\n--{boundary}--\r\n");
    assert_eq!(post_multipart(&env, &s, body).await, 303);
    let proof = env.client.get_proof(&gated).await.unwrap();
    let sub = proof.latest_submission.unwrap();
    assert_eq!(
        (sub.note.as_deref(), sub.attachments[0].mime_type.as_str()),
        (Some("bought it"), "application/pdf")
    );
    let file = env
        .http
        .get(&sub.attachments[0].view_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(file, "%PDF-1");
    // The buyer reviews on the page and asks for a correction.
    let s = env.session(&gated, A::ReviewProof, BUYER).await;
    let (_, html) = page(&env, &s).await;
    assert!(html.contains("bought it") && html.contains("/sandbox/files/"));
    let (st, _) = post_form(&env, &s, &[("op", "perform"), ("decision", "correction")]).await;
    assert_eq!(st, 303);
    assert_eq!(
        env.client.get_proof(&gated).await.unwrap().phase.as_str(),
        "correction_requested"
    );
}

#[tokio::test]
async fn dashboard_lists_deliveries() {
    let env = Env::start().await;
    let id = env.instant(15).await;
    env.pay(&id).await;
    env.hooks.wait(1).await;
    // The receiver has the delivery; the sandbox logs it once it has read the 200.
    for _ in 0..250 {
        let log = env.get_json("/sandbox/deliveries").await;
        if log.as_array().unwrap().iter().any(|d| d["status"] == 200) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let html = env
        .http
        .get(env.url("/sandbox"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("escrow.status.updated") && html.contains("HTTP 200") && html.contains(&id)
    );
}

/// The dispute form's "What went wrong?" becomes the ticket's `previewReason` (trimmed, at most
/// 1000 characters); a blank note keeps the generic text.
#[tokio::test]
async fn the_dispute_note_is_the_tickets_reason() {
    let env = Env::start().await;
    let preview = |e: dhmad::Escrow| {
        e.dispute_ticket
            .and_then(|t| t.preview_reason)
            .unwrap_or_default()
    };
    let noted = env.quick().await;
    env.pay(&noted).await;
    let s = env.session(&noted, A::Dispute, BUYER).await;
    let (st, _) = post_form(
        &env,
        &s,
        &[
            ("op", "perform"),
            ("note", "  The chechia arrived torn.\n "),
        ],
    )
    .await;
    assert_eq!(st, 303);
    let e = env.client.get_escrow(&noted).await.unwrap();
    assert_eq!(preview(e), "The chechia arrived torn.");

    let blank = env.quick().await;
    env.pay(&blank).await;
    let s = env.session(&blank, A::Dispute, BUYER).await;
    let (st, _) = post_form(&env, &s, &[("op", "perform"), ("note", "   ")]).await;
    assert_eq!(st, 303);
    let e = env.client.get_escrow(&blank).await.unwrap();
    assert_eq!(preview(e), "Opened from the sandbox checkout");

    let long = env.quick().await;
    env.pay(&long).await;
    env.act_with(&long, A::Dispute, BUYER, json!({"note": "é".repeat(1500)}))
        .await;
    let e = env.client.get_escrow(&long).await.unwrap();
    assert_eq!(preview(e), "é".repeat(1000));
}

/// The review form's radio buttons send `decision=accept` or `decision=correction`; a post with
/// neither (or anything else) is refused and re-renders the page, rather than accepting the
/// proof by default.
#[tokio::test]
async fn a_proof_review_needs_an_explicit_decision() {
    let env = Env::start().await;
    let id = env
        .create(
            CreateEscrow::new("Shoes", Decimal::from(100), BUYER)
                .mode(EscrowMode::Quick)
                .estimated_delivery_days(2)
                .fulfillment_policy(policy(24)),
        )
        .await;
    env.pay(&id).await;
    env.act(&id, A::SubmitProof, &env.seller()).await;
    let s = env.session(&id, A::ReviewProof, BUYER).await;
    let phase = || async {
        env.client
            .get_proof(&id)
            .await
            .unwrap()
            .phase
            .as_str()
            .to_owned()
    };
    for form in [
        &[("op", "perform")][..],
        &[("op", "perform"), ("decision", "")],
        &[("op", "perform"), ("decision", "yes")],
    ] {
        let (st, html) = post_form(&env, &s, form).await;
        assert_eq!(st, 400, "{form:?}");
        assert!(
            html.contains("Choose accept or request a correction"),
            "{html}"
        );
        assert_eq!(phase().await, "submitted_waiting_buyer_review");
    }
    assert_eq!(
        env.client.get_session(&s).await.unwrap().status.as_str(),
        "pending"
    );
    let (st, _) = post_form(&env, &s, &[("op", "perform"), ("decision", "accept")]).await;
    assert_eq!(st, 303);
    assert_eq!(phase().await, "accepted");
}

/// README choices: a rejected guest payment reopens the same session (`completed` → `pending`),
/// whose page offers the same form again, without the rejection; a cancel while a guest's
/// proof is under review leaves the session `completed`.
#[tokio::test]
async fn a_rejected_guest_payment_reopens_the_same_page() {
    let env = Env::start().await;
    let guest = [("op", "perform"), ("payer", "guest"), ("method", "d17")];
    let id = env.instant(15).await;
    let s = env.session(&id, A::AcceptPay, BUYER).await;
    let expires = env.client.get_session(&s).await.unwrap().expires_at;
    assert_eq!(post_form(&env, &s, &guest).await.0, 303);
    let (st, _) = env
        .control(
            &format!("/sandbox/escrows/{id}/deposit-proof/reject"),
            json!({"reason": "blurry receipt"}),
        )
        .await;
    assert_eq!(st, 200);
    let reopened = env.client.get_session(&s).await.unwrap();
    assert_eq!(reopened.status.as_str(), "pending");
    assert_eq!(
        (reopened.completed_at, reopened.expires_at),
        (None, expires)
    );
    let (st, html) = page(&env, &s).await;
    assert_eq!(st, 200);
    for needle in [
        "value=\"wallet\" checked",
        "value=\"guest\"",
        "type=\"file\"",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    assert!(
        !html.contains("blurry") && !html.contains("value=\"perform\" disabled"),
        "{html}"
    );
    // Again as a guest, then the shop cancels while the proof waits: the session stays done.
    assert_eq!(post_form(&env, &s, &guest).await.0, 303);
    env.client.cancel_escrow(&id).await.unwrap();
    assert_eq!(env.status(&id).await, "cancelled");
    assert_eq!(
        env.client.get_session(&s).await.unwrap().status.as_str(),
        "completed"
    );
}
