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
