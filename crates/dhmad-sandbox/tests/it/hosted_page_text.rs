//! The hosted page speaks to the buyer: it names the shop (`SANDBOX_APP_NAME`) and shows
//! amounts as the storefront does (three decimals for TND).

use crate::common::*;
use dhmad::{CheckoutAction as A, CreateEscrow, Currency, EscrowMode};
use dhmad_sandbox::SandboxConfig;
use rust_decimal::Decimal;
use serde_json::json;

async fn html(env: &Env, session: &str) -> String {
    let url = env.url(&format!("/checkout/{session}"));
    env.http
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_page_names_the_shop_and_shows_amounts_like_the_storefront() {
    let config = SandboxConfig {
        app_name: "Chechia Corner".into(),
        ..SandboxConfig::for_tests()
    };
    let env = Env::with(config).await;
    let id = env.instant(15).await;
    let s = env.session(&id, A::AcceptPay, BUYER).await;
    let page = html(&env, &s).await;
    for needle in [
        "<title>Accept and pay · Chechia Corner · DHMAD sandbox checkout</title>",
        "Chechia Corner <span",
        "Pay 15.000 TND",
        "0.750 TND",
        "Cancel and return to Chechia Corner",
    ] {
        assert!(page.contains(needle), "{needle} missing:\n{page}");
    }
    assert!(!page.contains("15 TND"), "{page}");

    let usd = env
        .create(
            CreateEscrow::new("Domain", Decimal::new(125, 1), BUYER)
                .currency(Currency::Usd)
                .mode(EscrowMode::Instant),
        )
        .await;
    let s = env.session(&usd, A::AcceptPay, BUYER).await;
    let page = html(&env, &s).await;
    assert!(
        page.contains("12.50 USD") && page.contains("38.750 TND"),
        "{page}"
    );

    env.control(&format!("/sandbox/sessions/{s}/cancel"), json!({}))
        .await;
    assert!(html(&env, &s).await.contains("Return to Chechia Corner"));
}

/// A refusal speaks to the shopper: DHMAD's `user_message` (§5.1: "safe to show end users"),
/// with the code in small print for the developer, not `CODE: developer message`.
#[tokio::test]
async fn a_refusal_shows_the_user_message_and_the_code_in_small_print() {
    let env = Env::start().await;
    let id = env.instant(15).await;
    let stale = env.session(&id, A::AcceptPay, BUYER).await;
    env.pay(&id).await;
    let shown = "This order has already been paid.";
    let small = "<small class=\"code\">PAYMENT_ALREADY_DONE</small>";
    let page = html(&env, &stale).await;
    assert!(page.contains(shown) && page.contains(small), "{page}");
    assert!(!page.contains("PAYMENT_ALREADY_DONE:"), "{page}");
    let r = env
        .http
        .post(env.url(&format!("/checkout/{stale}")))
        .form(&[("op", "perform")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    let error = page.split("class=\"error\">").nth(1).unwrap_or_default();
    assert!(error.starts_with(shown) && error.contains(small), "{page}");
    // Once: the refusal the user just got is not repeated as the page's note; the button
    // stays disabled.
    assert_eq!(page.matches(shown).count(), 1, "{page}");
    assert!(page.contains("value=\"perform\" disabled"), "{page}");
}

/// A tab left open across a restart (the state lives in memory) finds a way to the dashboard.
#[tokio::test]
async fn an_unknown_session_links_to_the_dashboard() {
    let env = Env::start().await;
    let r = env
        .http
        .get(env.url("/checkout/0b5a5d3e-0000-4000-8000-000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let page = r.text().await.unwrap();
    assert!(page.contains("Checkout session not found"), "{page}");
    assert!(page.contains("href=\"/sandbox\""), "{page}");
}
