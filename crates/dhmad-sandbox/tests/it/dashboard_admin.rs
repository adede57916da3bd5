//! The dashboard's buttons for what DHMAD's staff or another party would do (guest payment
//! proofs, disputes, deliveries by a third-party seller) and for the clock: shown only while
//! possible, acting like their JSON routes, guarded like every dashboard form.

use crate::checkout_page::{post_multipart, BOUNDARY};
use crate::common::*;
use crate::dashboard_actions::{dashboard, submit};
use dhmad::CheckoutAction as A;
use serde_json::{json, Value};

const FORM: &str = "application/x-www-form-urlencoded";

/// What a browser showing the dashboard sends with a form.
fn browser(env: &Env) -> [(&'static str, String); 2] {
    [
        ("origin", env.sandbox.base_url().clone()),
        ("sec-fetch-site", "same-origin".to_owned()),
    ]
}

async fn post_form(env: &Env, path: &str, body: &str) -> reqwest::Response {
    let h = browser(env);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    submit(env, path, body, FORM, &h).await
}

/// An instant escrow whose guest payment waits for DHMAD's approval.
async fn guest_paid(env: &Env) -> String {
    let id = env.instant(20).await;
    env.act_with(
        &id,
        A::AcceptPay,
        BUYER,
        json!({"payer": "guest", "method": "d17"}),
    )
    .await;
    assert_eq!(env.status(&id).await, "pending");
    id
}

/// Posts the dashboard's form `path` of escrow `id` as a browser would; it must redirect back
/// to the dashboard (303, to `/sandbox` with its notice).
async fn press(env: &Env, id: &str, path: &str, body: &str) -> reqwest::Response {
    let r = post_form(
        env,
        &format!("/sandbox/dashboard/escrows/{id}/{path}"),
        body,
    )
    .await;
    assert_eq!(r.status(), 303, "{path}");
    let to = r.headers()["location"].to_str().unwrap();
    assert!(to.starts_with("/sandbox?"), "{path}: {to}");
    r
}

/// `form action` of an escrow's button.
fn action(id: &str, path: &str) -> String {
    format!("action=\"/sandbox/dashboard/escrows/{id}/{path}\"")
}

#[tokio::test]
async fn payment_buttons_show_for_a_pending_guest_proof_and_approve_pays() {
    let env = Env::start().await;
    let waiting = guest_paid(&env).await;
    let other = env.instant(15).await;
    let html = dashboard(&env).await;
    for path in ["deposit-proof/approve", "deposit-proof/reject"] {
        assert!(html.contains(&action(&waiting, path)), "{path}: {html}");
        assert!(!html.contains(&action(&other, path)), "{path}: {html}");
    }
    assert!(html.contains("Approve payment") && html.contains("Reject payment"));
    // Nothing else is possible on a pending escrow without a proof.
    assert!(
        !html.contains(&format!("/sandbox/dashboard/escrows/{other}/")),
        "{html}"
    );

    let r = post_form(
        &env,
        &format!("/sandbox/dashboard/escrows/{waiting}/deposit-proof/approve"),
        "",
    )
    .await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!("/sandbox?done=payment-approved&escrow={waiting}")
    );
    // As the JSON route: paid through the guest path, one escrow.status.updated pending → paid.
    let e = env.client.get_escrow(&waiting).await.unwrap();
    assert_eq!(e.status.as_str(), "paid");
    let got = env.hooks.wait(1).await;
    assert_eq!(got[0].event_type, "escrow.status.updated");
    assert_eq!(got[0].escrow_status(), "paid");
    assert_eq!(got[0].body["data"]["escrow"]["oldStatus"], "pending");
    // The page the browser lands on says so and offers the paid escrow's next step instead.
    let html = env
        .http
        .get(env.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!(
            "DHMAD approved the guest payment (escrow {waiting}, now paid)."
        )),
        "{html}"
    );
    assert!(!html.contains(&action(&waiting, "deposit-proof/approve")));
    assert!(html.contains(&action(&waiting, "deliver")), "{html}");
    // The JSON route now refuses, as the form does (dashboard with the reason, 400).
    let (st, v): (u16, Value) = env
        .control(
            &format!("/sandbox/escrows/{waiting}/deposit-proof/approve"),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("No pending deposit proof for this escrow"))
    );
    let r = post_form(
        &env,
        &format!("/sandbox/dashboard/escrows/{waiting}/deposit-proof/approve"),
        "",
    )
    .await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!(
            "Approve payment ({waiting}): No pending deposit proof for this escrow"
        )),
        "{html}"
    );
}

#[tokio::test]
async fn reject_payment_form_reopens_the_guest_session() {
    let env = Env::start().await;
    let id = guest_paid(&env).await;
    press(&env, &id, "deposit-proof/reject", "reason=blurry+receipt").await;
    assert_eq!(env.status(&id).await, "pending");
    let got = env.hooks.wait(1).await;
    assert_eq!(got[0].event_type, "escrow.deposit_proof.rejected");
    assert_eq!(
        got[0].body["data"]["depositProof"]["reason"],
        "blurry receipt"
    );
    assert!(!dashboard(&env)
        .await
        .contains(&action(&id, "deposit-proof")));
}

#[tokio::test]
async fn new_forms_refuse_cross_site_posts() {
    let env = Env::start().await;
    let id = guest_paid(&env).await;
    let paths = [
        format!("/sandbox/dashboard/escrows/{id}/deposit-proof/approve"),
        "/sandbox/dashboard/clock/advance".to_owned(),
    ];
    let foreign = [
        ("origin", "http://localhost:3000"),
        ("sec-fetch-site", "same-site"),
    ];
    let own = browser(&env);
    let own: Vec<(&str, &str)> = own.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for path in &paths {
        let body = "hours=24";
        assert_eq!(
            submit(&env, path, body, FORM, &foreign).await.status(),
            403,
            "{path}"
        );
        // No proof of origin at all (what a script or an old browser sends): refused too.
        assert_eq!(
            submit(&env, path, body, FORM, &[]).await.status(),
            403,
            "{path}"
        );
        let json = submit(&env, path, "{}", "application/json", &own).await;
        assert_eq!(json.status(), 415, "{path}");
    }
    assert_eq!(env.status(&id).await, "pending");
    let clock = env.get_json("/sandbox/clock").await;
    assert_eq!(clock["offset_seconds"], 0, "{clock}");
}

#[tokio::test]
async fn resolve_dispute_buttons_release_or_refund() {
    let env = Env::start().await;
    let a = env.quick().await;
    let b = env.quick().await;
    for id in [&a, &b] {
        env.pay(id).await;
        env.act(id, A::Dispute, BUYER).await;
        assert_eq!(env.status(id).await, "disputed");
    }
    let html = dashboard(&env).await;
    assert!(html.contains(&action(&a, "dispute/resolve")), "{html}");
    assert!(html.contains("Release to the seller") && html.contains("Refund the buyer"));
    // Disputed: no delivery, no resolution of a paid escrow elsewhere.
    assert!(!html.contains(&action(&a, "deliver")));

    let path = |id: &str| format!("/sandbox/dashboard/escrows/{id}/dispute/resolve");
    let r = post_form(&env, &path(&a), "outcome=release").await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/sandbox?done=released&escrow={a}").as_str()
    );
    assert_eq!(env.status(&a).await, "completed");
    let r = post_form(&env, &path(&b), "outcome=refund").await;
    assert_eq!(r.status(), 303);
    assert_eq!(env.status(&b).await, "cancelled");
    let html = dashboard(&env).await;
    assert!(!html.contains(&action(&a, "dispute/resolve")), "{html}");

    // Refusals name the reason, as the JSON route's body does.
    let r = post_form(&env, &path(&a), "outcome=release").await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("The escrow is completed, not disputed"),
        "{html}"
    );
    let r = post_form(&env, &path(&a), "outcome=maybe").await;
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("outcome must be release or refund"));
}

#[tokio::test]
async fn deliver_as_seller_and_resend_buttons() {
    let env = Env::start().await;
    let id = env.quick().await;
    assert!(!dashboard(&env).await.contains(&action(&id, "deliver")));
    env.pay(&id).await;
    press(&env, &id, "deliver", "").await;
    assert_eq!(env.status(&id).await, "delivered");
    let html = dashboard(&env).await;
    assert!(html.contains(&action(&id, "reject-delivery")), "{html}");
    assert!(html.contains(&action(&id, "events/resend")), "{html}");
    env.hooks.wait(2).await;
    press(&env, &id, "events/resend", "").await;
    let got = env.hooks.wait(3).await;
    assert_eq!(got[2].id, got[1].id, "the same event, same id");
}

#[tokio::test]
async fn clock_form_moves_the_clock_in_hours() {
    let env = Env::start().await;
    let html = dashboard(&env).await;
    assert!(
        html.contains("action=\"/sandbox/dashboard/clock/advance\""),
        "{html}"
    );
    let r = post_form(&env, "/sandbox/dashboard/clock/advance", "hours=24").await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, "/sandbox?done=clock-advanced&fired=0");
    let clock = env.get_json("/sandbox/clock").await;
    assert!(
        clock["offset_seconds"].as_i64().unwrap() >= 86_400,
        "{clock}"
    );
    let r = post_form(&env, "/sandbox/dashboard/clock/advance", "hours=soon").await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("soon") && html.contains("a number of hours from 0 to 87840"),
        "{html}"
    );
    // A crafted notice key shows nothing.
    let html = env
        .http
        .get(env.url("/sandbox?done=pwned&escrow=x"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("class=\"done\""));
    // A query that is no notice at all (a hand-edited link) still shows the dashboard.
    let r = env
        .http
        .get(env.url("/sandbox?done=a&done=b&fired=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn escalated_proof_buttons_then_delivery() {
    let env = Env::start().await;
    let id = crate::journeys_proof::escalated(&env).await;
    let html = dashboard(&env).await;
    assert!(html.contains(&action(&id, "proof/accept")), "{html}");
    assert!(html.contains(&action(&id, "proof/reject")), "{html}");
    // Delivery waits for an accepted proof.
    assert!(!html.contains(&action(&id, "deliver")), "{html}");
    press(&env, &id, "proof/accept", "").await;
    let proof = env.client.get_proof(&id).await.unwrap();
    assert_eq!(proof.phase.as_str(), "accepted");
    let html = dashboard(&env).await;
    assert!(!html.contains(&action(&id, "proof/")), "{html}");
    assert!(html.contains(&action(&id, "deliver")), "{html}");
}

#[tokio::test]
async fn a_pending_guest_proof_shows_what_to_approve_and_its_file_downloads() {
    let env = Env::start().await;
    let id = env.instant(20).await;
    let s = env.session(&id, A::AcceptPay, BUYER).await;
    let part = |name: &str, value: &str| {
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let receipt = "%PDF-1.4 receipt of 20 TND";
    let body = part("op", "perform")
        + &part("payer", "guest")
        + &part("method", "flouci")
        + &format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"receipt <1>.pdf\"\r\nContent-Type: application/pdf\r\n\r\n{receipt}\r\n\
             --{BOUNDARY}--\r\n"
        );
    assert_eq!(post_multipart(&env, &s, body).await, 303);
    let html = dashboard(&env).await;
    assert!(
        html.contains("Guest payment proof: flouci, 20.000 TND"),
        "{html}"
    );
    // The file the guest uploaded, named as uploaded (escaped), as a download.
    let href = html
        .split("href=\"/sandbox/files/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to the proof file");
    assert!(html.contains("receipt &#60;1&#62;.pdf"), "{html}");
    let r = env
        .http
        .get(env.url(&format!("/sandbox/files/{href}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"receipt__1_.pdf\""
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(r.text().await.unwrap(), receipt);
    // Without a file the row says so; once decided, nothing is shown.
    let other = guest_paid(&env).await;
    let html = dashboard(&env).await;
    let row = html
        .split(&format!("id=\"escrow-{other}\""))
        .nth(1)
        .unwrap();
    let row = row.split("</tr>").next().unwrap();
    assert!(
        row.contains("Guest payment proof: d17, 20.000 TND"),
        "{row}"
    );
    assert!(row.contains("no file uploaded"), "{row}");
    press(&env, &id, "deposit-proof/approve", "").await;
    assert!(!dashboard(&env).await.contains("flouci"));
}

/// "Resend last event" shows exactly when its route would act: an event was sent and a
/// webhook URL is set (without one the route refuses: there is nowhere to send it).
#[tokio::test]
async fn resend_button_needs_a_webhook_url() {
    let env = Env::start().await;
    let id = env.quick().await;
    env.pay(&id).await;
    let resend = action(&id, "events/resend");
    assert!(dashboard(&env).await.contains(&resend));
    env.sandbox.set_webhook_urls(vec![]);
    let html = dashboard(&env).await;
    assert!(!html.contains(&resend), "{html}");
    let r = post_form(
        &env,
        &format!("/sandbox/dashboard/escrows/{id}/events/resend"),
        "",
    )
    .await;
    assert_eq!(r.status(), 400);
    env.sandbox.set_webhook_urls(vec![env.hooks.url()]);
    assert!(dashboard(&env).await.contains(&resend));
}
