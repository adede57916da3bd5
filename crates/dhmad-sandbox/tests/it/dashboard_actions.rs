//! The dashboard's buttons: plain HTML forms that the control guard accepts only from the
//! sandbox's own origin, answering 303 back to the dashboard.

use crate::common::*;
use serde_json::Value;

/// What a browser sends when the dashboard's form is submitted: urlencoded, with `Origin`
/// and `Sec-Fetch-Site` unless told otherwise.
pub(crate) async fn submit(
    env: &Env,
    path: &str,
    body: &str,
    content_type: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = env
        .http
        .post(env.url(path))
        .header("content-type", content_type)
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

pub(crate) async fn dashboard(env: &Env) -> String {
    env.http
        .get(env.url("/sandbox"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn reject_delivery_button_acts_as_the_buyer() {
    let env = Env::start().await;
    let id = env.quick().await;
    let form_path = format!("/sandbox/dashboard/escrows/{id}/reject-delivery");
    let button = format!("action=\"{form_path}\"");
    env.pay(&id).await;
    assert!(
        !dashboard(&env).await.contains(&button),
        "only once delivered"
    );
    env.client.deliver_escrow(&id).await.unwrap();
    let html = dashboard(&env).await;
    assert!(
        html.contains(&button) && html.contains("Reject delivery"),
        "{html}"
    );

    let own = env.sandbox.base_url();
    let browser = [("origin", own.as_str()), ("sec-fetch-site", "same-origin")];
    let form = "application/x-www-form-urlencoded";
    // Refused: another origin, no proof of origin at all, and JSON (the JSON route is the other one).
    let foreign = [
        ("origin", "http://localhost:3000"),
        ("sec-fetch-site", "same-site"),
    ];
    assert_eq!(
        submit(&env, &form_path, "reason=x", form, &foreign)
            .await
            .status(),
        403
    );
    assert_eq!(
        submit(&env, &form_path, "reason=x", form, &[])
            .await
            .status(),
        403
    );
    let json = submit(&env, &form_path, "{}", "application/json", &browser).await;
    assert_eq!(json.status(), 415);
    let multipart = submit(
        &env,
        &form_path,
        "",
        "multipart/form-data; boundary=b",
        &browser,
    )
    .await;
    assert_eq!(multipart.status(), 415);
    assert_eq!(env.status(&id).await, "delivered");

    // The dashboard's own form: 303 back to the dashboard, the escrow is paid again.
    let r = submit(&env, &form_path, "reason=arrived+broken", form, &browser).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/sandbox?done=delivery-rejected&escrow={id}").as_str()
    );
    let e = env.client.get_escrow(&id).await.unwrap();
    assert_eq!(e.status.as_str(), "paid");
    assert_eq!(
        e.delivery_rejections.unwrap()[0].reason.as_deref(),
        Some("arrived broken")
    );
    env.hooks.wait(4).await;
    assert_eq!(
        env.hooks.types()[2..],
        ["escrow.delivery.rejected", "escrow.status.updated"]
    );
    assert!(!dashboard(&env).await.contains(&button));

    // A refusal shows the dashboard with the API's message (Sec-Fetch-Site alone suffices).
    let r = submit(
        &env,
        &form_path,
        "reason=",
        form,
        &[("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Only delivered escrows can have their delivery rejected"),
        "{html}"
    );
    let r = submit(
        &env,
        "/sandbox/dashboard/escrows/66aa00000000000000000001/reject-delivery",
        "",
        form,
        &browser,
    )
    .await;
    assert_eq!(r.status(), 404);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    // The escrow JSON route is unchanged: scripts, JSON, no Origin.
    let (st, v): (u16, Value) = env
        .control(
            &format!("/sandbox/escrows/{id}/reject-delivery"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
}

/// One escrow's sessions are listed newest first, each with when it was opened: kept by random
/// id, they came in hash order, and the session to click was hard to find.
#[tokio::test]
async fn an_escrows_sessions_are_listed_newest_first() {
    let env = Env::start().await;
    let id = env.instant(10).await;
    let mut opened = Vec::new();
    for _ in 0..4 {
        opened.push(
            env.session(&id, dhmad::CheckoutAction::AcceptPay, BUYER)
                .await,
        );
    }
    let page = dashboard(&env).await;
    assert!(page.contains("<th>Created</th>"), "{page}");
    let at = |s: &String| page.find(&format!("/checkout/{s}\"")).expect("listed");
    let shown: Vec<usize> = opened.iter().map(at).collect();
    assert!(shown.windows(2).all(|w| w[0] > w[1]), "{shown:?}");
}
