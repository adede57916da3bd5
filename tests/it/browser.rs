//! The click-through a person does in the demo, in a real headless Chromium driven over
//! WebDriver: catalog → Buy → DHMAD's hosted page (the sandbox) → Pay → back on the order page
//! → paid, then completed. Needs Debian's `chromium` and `chromium-driver`
//! (`scripts/ensure-chromium`, run by `scripts/test` and CI).

use crate::common::sandbox::world;
use crate::webdriver::Browser;
use sqlx::PgPool;

/// Fills the e-mail on the product's card and presses its Buy button.
async fn buy(b: &Browser, shop: &str, sku: &str, email: &str) {
    let submit = fill_in(b, shop, sku, email).await;
    b.click(&submit).await;
}

/// Opens the catalog and types the buyer's address into `sku`'s form; returns its button.
async fn fill_in(b: &Browser, shop: &str, sku: &str, email: &str) -> String {
    b.goto(&format!("{shop}/")).await;
    let form = format!("form:has(input[name=sku][value='{sku}'])");
    b.type_into(&format!("{form} input[name=email]"), email)
        .await;
    format!("{form} button[type=submit]")
}

#[sqlx::test(migrations = "./migrations")]
async fn a_buyer_clicks_through_an_instant_purchase(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let shop = format!("http://localhost:{}", w.app.port);
    let b = Browser::start().await;

    buy(&b, &shop, "ai-credits-500", "amira@example.tn").await;

    // The shop sent the browser to DHMAD's hosted page for this buyer and this amount.
    let page = b.wait_for_text("Signed in as", 30).await;
    assert!(b
        .url()
        .await
        .starts_with(&format!("{}/checkout/", w.sb.base_url())));
    assert!(page.contains("amira@example.tn"), "{page}");
    assert!(page.contains("AI credits"), "{page}");
    assert!(page.contains("15.000 TND"), "{page}");

    b.click("button[name=op][value=perform]").await;

    // DHMAD sends the buyer back through our callback to the order page, which turns paid
    // and then completed once the webhook arrives and the shop tells DHMAD it delivered.
    let page = b.wait_for_text("Completed", 20).await;
    assert!(
        b.url().await.starts_with(&format!("{shop}/orders/")),
        "{}",
        b.url().await
    );
    assert!(
        page.contains("Your code"),
        "the digital good is shown once paid:\n{page}"
    );
    let id = b.url().await.rsplit('/').next().unwrap().parse().unwrap();
    let order = w.app.order_json(id).await;
    assert_eq!(order["escrow_status"], "completed");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_buyer_pays_for_a_shipped_good_then_confirms_receipt(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let shop = format!("http://localhost:{}", w.app.port);
    let b = Browser::start().await;

    buy(&b, &shop, "chechia-red", "youssef@example.tn").await;
    b.wait_for_text("Signed in as", 30).await;
    b.click("button[name=op][value=perform]").await;
    b.wait_for_text("Paid", 20).await;
    let id: uuid::Uuid = b.url().await.rsplit('/').next().unwrap().parse().unwrap();

    // The merchant ships from the back office; the buyer's page then offers confirmation.
    let r = w.admin_post(&format!("/admin/orders/{id}/ship")).await;
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "ship: {}",
        r.status()
    );
    b.wait_for_text("Confirm receipt", 20).await;
    b.click("form[action$='/confirm'] button").await;

    // DHMAD's page for the `complete` action, then back to a completed order.
    let page = b.wait_for_text("Signed in as", 30).await;
    assert!(page.contains("youssef@example.tn"), "{page}");
    b.click("button[name=op][value=perform]").await;
    b.wait_for_text("Completed", 20).await;
    assert_eq!(w.app.order_json(id).await["escrow_status"], "completed");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_buyer_asks_to_cancel_and_the_merchant_accepts_in_the_back_office(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let shop = format!("http://localhost:{}", w.app.port);
    let b = Browser::start().await;

    buy(&b, &shop, "chechia-red", "hind@example.tn").await;
    b.wait_for_text("Signed in as", 30).await;
    b.click("button[name=op][value=perform]").await;
    b.wait_for_text("Paid", 20).await;
    let order_page = b.url().await;
    let id: uuid::Uuid = order_page.rsplit('/').next().unwrap().parse().unwrap();

    // The buyer asks to cancel: DHMAD's page for `request_cancellation`, then back.
    b.click("form[action$='/cancel'] button").await;
    let page = b.wait_for_text("Signed in as", 30).await;
    assert!(page.contains("hind@example.tn"), "{page}");
    b.click("button[name=op][value=perform]").await;
    b.wait_for_text("You asked to cancel", 20).await;
    assert_eq!(b.url().await, order_page);

    // The merchant logs in, sees the request, and accepts it on DHMAD's page.
    b.goto(&format!("{shop}/admin/login")).await;
    b.type_into("input[name=token]", crate::common::ADMIN_TOKEN)
        .await;
    b.click("form[action='/admin/login'] button").await;
    b.wait_for_text("Reconcile now", 30).await;
    b.goto(&format!("{shop}/admin/orders/{id}")).await;
    b.wait_for_text("Accept the cancellation", 30).await;
    b.click("input[name=decision][value=accept] ~ button").await;
    let page = b.wait_for_text("Signed in as", 30).await;
    assert!(
        page.contains(dhmad_sandbox::DEFAULT_SELLER_EMAIL),
        "the merchant acts on DHMAD's page:\n{page}"
    );
    b.click("button[name=op][value=perform]").await;
    // Back in the back office, on the order, now cancelled.
    b.wait_for_text("Cancelled", 20).await;
    assert!(b.url().await.ends_with(&format!("/admin/orders/{id}")));
    let o = w.app.order_json(id).await;
    assert_eq!(
        (o["status"].as_str(), o["cancellation"].as_str()),
        (Some("cancelled"), Some("accepted"))
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_buyer_signs_the_contract_then_pays_for_a_standard_order(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let shop = format!("http://localhost:{}", w.app.port);
    let b = Browser::start().await;

    buy(&b, &shop, "logo-design", "rania@example.tn").await;
    // DHMAD's first page is the contract.
    let page = b.wait_for_text("Signed in as", 30).await;
    assert!(page.contains("rania@example.tn"), "{page}");
    b.click("button[name=op][value=perform]").await;

    // Back on the order: both have signed (the shop at creation), so the buyer pays.
    b.wait_for_text("You: signed", 20).await;
    let page = b.wait_for_text("The shop: signed", 20).await;
    assert!(page.contains("Read the terms"), "{page}");
    b.click("form[action$='/pay'] button").await;
    b.wait_for_text("Signed in as", 30).await;
    b.click("button[name=op][value=perform]").await;
    b.wait_for_text("Paid", 20).await;
    let id: uuid::Uuid = b.url().await.rsplit('/').next().unwrap().parse().unwrap();
    let o = w.app.order_json(id).await;
    assert_eq!(o["contract"]["buyer_signed"], true);
    assert_eq!(o["status"], "paid");
}

#[sqlx::test(migrations = "./migrations")]
async fn the_merchant_works_through_what_needs_action(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let shop = format!("http://localhost:{}", w.app.port);
    // A paid quick order waits to be shipped.
    let s = w.checkout("chechia-red", "tarek@example.tn").await;
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "paid").await;

    let b = Browser::start().await;
    b.goto(&format!("{shop}/admin/login")).await;
    b.type_into("input[name=token]", crate::common::ADMIN_TOKEN)
        .await;
    b.click("form[action='/admin/login'] button").await;
    let page = b.wait_for_text("need you", 30).await;
    assert!(page.contains("1 thing(s) need you"), "{page}");
    // The tile of what needs action leads to the order, with its "Mark shipped".
    b.click(".tile-hot").await;
    b.wait_for_text("Mark shipped", 30).await;
    assert!(b.url().await.contains("/admin/orders?needs="));
    b.click(&format!("#o-{} form[action$='/ship'] button", s.order_id))
        .await;
    b.wait_for_text("Shipping requested", 30).await;
    w.wait_status(s.order_id, "delivered").await;
    let audit = sqlx::query_scalar!(
        "SELECT action FROM admin_audit WHERE order_id = $1",
        s.order_id
    )
    .fetch_all(&w.app.pool)
    .await
    .unwrap();
    assert!(audit.contains(&"ship".to_owned()), "{audit:?}");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_buyer_past_dhmads_rate_limit_waits_then_reaches_dhmad_by_itself(pool: PgPool) {
    // DHMAD allows two calls every 15 s: one checkout's worth, spent by another buyer just
    // before this one clicks (loading the catalog took seconds on a busy machine, and the
    // window once passed before the click, with no wait left to see).
    let w = crate::burst::tight_world(pool, 2, 15).await;
    let shop = format!("http://localhost:{}", w.app.port);
    let b = Browser::start().await;
    let submit = fill_in(&b, &shop, "ai-credits-500", "patient@example.tn").await;
    w.checkout("ai-credits-500", "first@example.tn").await;
    b.click(&submit).await;

    // The waiting page, saying so, and then, with no click, DHMAD's page for this buyer.
    let page = b
        .wait_untouched_for_text("your payment page is on its way", 15)
        .await;
    assert!(page.contains("Expected wait: about"), "{page}");
    assert!(b.url().await.ends_with("/checkout"), "{}", b.url().await);
    let page = b.wait_untouched_for_text("Signed in as", 60).await;
    assert!(
        b.url()
            .await
            .starts_with(&format!("{}/checkout/", w.sb.base_url())),
        "{}",
        b.url().await
    );
    assert!(page.contains("patient@example.tn"), "{page}");
}
