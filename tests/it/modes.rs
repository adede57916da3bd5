//! Every escrow mode the catalog sells: standard (a contract both sides sign before payment)
//! and quick with a purchase-proof gate (the shop shows a proof, the buyer reviews it, silence
//! accepts, no proof in time cancels and refunds). Through the sandbox, as DHMAD runs them.

use serde_json::json;
use sqlx::PgPool;

use crate::common::sandbox::*;

async fn phase(w: &World, id: uuid::Uuid, phase: &'static str) -> serde_json::Value {
    w.wait_json(id, phase, |o| o["proof_phase"] == phase).await
}

#[sqlx::test(migrations = "./migrations")]
async fn the_catalog_lists_every_mode(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let products: Vec<serde_json::Value> = w.app.get("/api/products").await.json().await.unwrap();
    let find = |sku: &str| products.iter().find(|p| p["sku"] == sku).cloned().unwrap();
    assert_eq!(find("logo-design")["mode"], "standard");
    assert_eq!(find("pottery-nabeul")["mode"], "quick");
    assert_eq!(find("pottery-nabeul")["proof_required"], true);
    assert_eq!(find("chechia-red")["proof_required"], false);
    assert_eq!(find("ai-credits-500")["mode"], "instant");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_standard_order_is_signed_paid_shipped_and_confirmed(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("logo-design", "studio-client@example.tn").await;
    // The shop signed at creation (autoSign); the first page for the buyer is the contract.
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["mode"], "standard");
    assert_eq!(
        o["contract"],
        json!({"buyer_signed": false, "seller_signed": true}),
        "{o}"
    );
    // The JSON's `checkout_url` is that contract page, as the checkout's answer said (a client
    // polling for it after a 202 got null for good).
    assert_eq!(o["checkout_url"], s.checkout_url.as_str(), "{o}");
    let calls = w.dhmad_calls().await;
    assert!(calls.iter().any(|c| c.ends_with("/sessions")));
    // Paying before signing leads to the contract first, never to a payment page.
    let early = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    assert_eq!(early.status(), 303);
    let actions: Vec<String> = sqlx::query_scalar!(
        "SELECT action FROM checkout_sessions WHERE order_id = $1",
        s.order_id
    )
    .fetch_all(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        ["sign_contract"],
        "the same contract page, no accept_pay"
    );

    let sign = w
        .app
        .post_form(&format!("/orders/{}/sign", s.order_id), &[])
        .await;
    w.finish_on_dhmad(sign, json!({})).await;
    let o = w
        .wait_json(s.order_id, "the buyer's signature", |o| {
            o["contract"]["buyer_signed"] == true
        })
        .await;
    assert_eq!(o["status"], "awaiting_payment");
    let page = w.app.order_page(s.order_id).await;
    assert!(
        page.contains("Read the terms") && page.contains("three logo proposals"),
        "{page}"
    );
    // The shop signed at creation: the first payment comes next, not a "new" one.
    assert!(
        page.contains("signed by both sides") && !page.contains("expired or was not used"),
        "{page}"
    );

    let pay = w
        .app
        .post_form(&format!("/orders/{}/pay", s.order_id), &[])
        .await;
    w.finish_on_dhmad(pay, json!({})).await;
    w.wait_status(s.order_id, "paid").await;
    assert_eq!(
        w.admin_post(&format!("/admin/orders/{}/ship", s.order_id))
            .await
            .status(),
        303
    );
    w.wait_status(s.order_id, "delivered").await;
    // Each side reads whose confirmation is awaited in its own words.
    let merchants =
        crate::back_office::admin_page(&w.app, &format!("/admin/orders/{}", s.order_id)).await;
    assert!(
        merchants.contains("awaiting the buyer&#39;s confirmation")
            || merchants.contains("awaiting the buyer's confirmation"),
        "{merchants}"
    );
    assert!(w
        .app
        .order_page(s.order_id)
        .await
        .contains("awaiting your confirmation"));
    let confirm = w
        .app
        .post_form(&format!("/orders/{}/confirm", s.order_id), &[])
        .await;
    w.finish_on_dhmad(confirm, json!({})).await;
    w.wait_status(s.order_id, "completed").await;
}

#[sqlx::test(migrations = "./migrations")]
async fn a_proof_goes_through_a_correction_and_is_accepted_by_silence(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("pottery-nabeul", "plate@example.tn").await;
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "paid").await;
    let o = phase(&w, s.order_id, "waiting_seller_proof").await;
    assert_eq!(o["status"], "paid", "{o}");
    // The merchant's page gives the upload deadline to the minute, in UTC.
    let page =
        crate::back_office::admin_page(&w.app, &format!("/admin/orders/{}", s.order_id)).await;
    let upload_by = page
        .split(" · upload by ")
        .nth(1)
        .and_then(|rest| rest.split(" UTC").next())
        .unwrap_or_default();
    assert!(
        time::PrimitiveDateTime::parse(
            upload_by,
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]")
        )
        .is_ok(),
        "{upload_by:?} in {page}"
    );

    // Shipping before the proof is accepted is refused cleanly.
    let ship = w
        .admin_post(&format!("/admin/orders/{}/ship", s.order_id))
        .await;
    assert_eq!(ship.status(), 409);

    let upload = w
        .admin_post(&format!("/admin/orders/{}/proof", s.order_id))
        .await;
    let back = w
        .finish_on_dhmad_as_merchant(upload, json!({"note": "receipt attached"}))
        .await;
    assert_eq!(back, format!("/admin/orders/{}", s.order_id));
    phase(&w, s.order_id, "submitted_waiting_buyer_review").await;
    let page = w.app.order_page(s.order_id).await;
    assert!(
        page.contains("Review the proof") && page.contains("counts as accepted"),
        "{page}"
    );

    // The buyer asks for a better one; the shop sends it again.
    let review = w
        .app
        .post_form(&format!("/orders/{}/review-proof", s.order_id), &[])
        .await;
    w.finish_on_dhmad(review, json!({"accept": false})).await;
    phase(&w, s.order_id, "correction_requested").await;
    let upload = w
        .admin_post(&format!("/admin/orders/{}/proof", s.order_id))
        .await;
    w.finish_on_dhmad(upload, json!({"note": "clearer photo"}))
        .await;
    phase(&w, s.order_id, "submitted_waiting_buyer_review").await;

    // The buyer says nothing; past the review deadline the proof counts as accepted.
    w.control("/sandbox/clock/advance", json!({"seconds": 25 * 3600}))
        .await;
    phase(&w, s.order_id, "accepted_by_timeout").await;
    assert_eq!(
        w.admin_post(&format!("/admin/orders/{}/ship", s.order_id))
            .await
            .status(),
        303
    );
    w.wait_status(s.order_id, "delivered").await;
}

/// DHMAD refuses a late review without naming why (§4.1 leaves that code UNSTATED), and its
/// news of the deadline was lost: the refusal is read back, so the page stops offering it.
#[sqlx::test(migrations = "./migrations")]
async fn a_review_refused_without_a_code_reads_the_escrow_back(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("pottery-nabeul", "late-review@example.tn").await;
    w.complete(&s.session_id).await;
    phase(&w, s.order_id, "waiting_seller_proof").await;
    let upload = w
        .admin_post(&format!("/admin/orders/{}/proof", s.order_id))
        .await;
    w.finish_on_dhmad_as_merchant(upload, json!({"note": "receipt attached"}))
        .await;
    phase(&w, s.order_id, "submitted_waiting_buyer_review").await;
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}, "api": [
        {"method": "POST", "path": "/api/v1/escrows/{id}/sessions", "fault": "refused_400"}
    ]}))
    .await;
    w.control("/sandbox/clock/advance", json!({"seconds": 25 * 3600}))
        .await;
    let r = w
        .app
        .post_form(&format!("/orders/{}/review-proof", s.order_id), &[])
        .await;
    assert_eq!(r.status(), 422, "refused for good, not \"try again\"");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("refused this step") && !page.contains("Review the proof"),
        "{page}"
    );
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["proof_phase"], "accepted_by_timeout", "{o}");
}

#[sqlx::test(migrations = "./migrations")]
async fn no_proof_in_time_cancels_and_refunds(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("pottery-nabeul", "late@example.tn").await;
    w.complete(&s.session_id).await;
    phase(&w, s.order_id, "waiting_seller_proof").await;
    w.control("/sandbox/clock/advance", json!({"seconds": 25 * 3600}))
        .await;
    let o = w.wait_status(s.order_id, "cancelled").await;
    assert_eq!(o["proof_phase"], "expired_no_proof");
    let page = w.app.order_page(s.order_id).await;
    assert!(page.contains("sent no proof in time"), "{page}");
}

#[sqlx::test(migrations = "./migrations")]
async fn dhmads_409_before_acceptance_is_handled(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("pottery-nabeul", "ahead@example.tn").await;
    w.complete(&s.session_id).await;
    phase(&w, s.order_id, "waiting_seller_proof").await;
    // Our copy says accepted while DHMAD does not (a lost or forged view): DHMAD's 409
    // PROOF_NOT_ACCEPTED must end the deliver job, not retry it for ever or crash.
    sqlx::query!(
        "UPDATE orders SET proof_phase = 'accepted' WHERE id = $1",
        s.order_id
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(
        w.admin_post(&format!("/admin/orders/{}/ship", s.order_id))
            .await
            .status(),
        303
    );
    crate::common::wait_for("the deliver job to close", 30, || async {
        let open = sqlx::query_scalar!(
            "SELECT count(*) FROM outbox_jobs WHERE order_id = $1 AND done_at IS NULL",
            s.order_id
        )
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
        (open == Some(0)).then_some(())
    })
    .await;
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["status"], "paid");
    assert_eq!(
        o["proof_phase"], "waiting_seller_proof",
        "DHMAD's view is back"
    );
    assert!(crate::common::timeline(&w.app.pool, s.order_id)
        .await
        .iter()
        .any(|l| l.contains("proof of purchase is not accepted yet")));
}

/// The buyer signed on DHMAD's page and closed the tab, and the signature's event was lost;
/// the page ran out. "Sign the contract" again: DHMAD refuses (it has the signature), and the
/// refusal is the news: the escrow, read at once, records the signature, so the order offers
/// the next step. Before, it kept offering to sign until the reconciler's next look.
#[sqlx::test(migrations = "./migrations")]
async fn a_signature_dhmad_already_has_is_learned_from_its_refusal(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("logo-design", "signed-gone@example.tn").await;
    w.after_first_reconciler_pass().await;
    w.faults(json!({"webhooks": {"drop": 1.0}})).await;
    w.complete(&s.session_id).await;
    sqlx::query("UPDATE checkout_sessions SET expires_at = now() - interval '1 minute'")
        .execute(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(
        w.app.order_json(s.order_id).await["contract"]["buyer_signed"],
        false
    );

    let sign = w
        .app
        .post_form(&format!("/orders/{}/sign", s.order_id), &[])
        .await;
    assert_eq!(sign.status(), 422, "DHMAD's refusal, on the order's page");
    let o = w.app.order_json(s.order_id).await;
    assert_eq!(o["contract"]["buyer_signed"], true, "{o}");
    let page = w.app.order_page(s.order_id).await;
    assert!(!page.contains("Sign the contract"), "{page}");
}

/// A proof order cancelled while the shop still had to show its proof (the buyer asked, the
/// shop accepted): DHMAD leaves the gate's phase as it was, but the page no longer promises a
/// proof by a deadline "or DHMAD refunds you": the order is cancelled, and says so.
#[sqlx::test(migrations = "./migrations")]
async fn a_cancelled_proof_order_promises_no_proof(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w
        .checkout("pottery-nabeul", "changed-mind@example.tn")
        .await;
    w.complete(&s.session_id).await;
    phase(&w, s.order_id, "waiting_seller_proof").await;
    assert!(w
        .app
        .order_page(s.order_id)
        .await
        .contains("must show a proof of purchase"));
    let ask = w
        .app
        .post_form(&format!("/orders/{}/cancel", s.order_id), &[])
        .await;
    w.finish_on_dhmad(ask, json!({})).await;
    w.wait_json(s.order_id, "the request", |o| {
        o["cancellation"] == "requested"
    })
    .await;
    let accept = w
        .admin_form(
            &format!("/admin/orders/{}/cancellation", s.order_id),
            &[("decision", "accept")],
        )
        .await;
    w.finish_on_dhmad(accept, json!({})).await;
    w.wait_status(s.order_id, "cancelled").await;
    let page = w.app.order_page(s.order_id).await;
    assert!(!page.contains("must show a proof"), "{page}");
}

/// `proofInfo`'s keys are UNSTATED (§2.1) and the proof events may not reach the shop (§3.15):
/// a paid proof order whose phase the shop never learned offered the merchant no upload, and
/// DHMAD cancels an escrow whose upload deadline passes. The upload is offered then; DHMAD
/// refuses what it will not take.
#[sqlx::test(migrations = "./migrations")]
async fn a_proof_order_whose_phase_is_unknown_still_offers_the_upload(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w
        .checkout("pottery-nabeul", "phase-unknown@example.tn")
        .await;
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "paid").await;
    phase(&w, s.order_id, "waiting_seller_proof").await;
    sqlx::query("UPDATE orders SET proof_phase = NULL WHERE id = $1")
        .bind(s.order_id)
        .execute(&w.app.pool)
        .await
        .unwrap();
    let upload = format!("/admin/orders/{}/proof", s.order_id);
    let page =
        crate::back_office::admin_page(&w.app, &format!("/admin/orders/{}", s.order_id)).await;
    assert!(page.contains(&upload), "{page}");
    let sent = w.admin_post(&upload).await;
    assert_eq!(sent.status(), 303);
    let back = w
        .finish_on_dhmad_as_merchant(sent, json!({"note": "receipt attached"}))
        .await;
    assert_eq!(back, format!("/admin/orders/{}", s.order_id));
}
