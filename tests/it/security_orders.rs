//! Nobody reaches an order by knowing the buyer's e-mail: an open order is continued only by
//! the browser (cookie) or API key that created it, and the buyer gets the order's link, and
//! an instant good, by e-mail.

use serde_json::json;
use sqlx::PgPool;

use storefront::{db, orders::notify};

use crate::common::{sandbox::*, *};

fn stranger() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

async fn api_checkout(w: &World, http: &reqwest::Client, sku: &str, email: &str) -> String {
    let r = http
        .post(w.app.url("/api/checkout"))
        .json(&json!({"sku": sku, "email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    v["order_id"].as_str().unwrap().to_owned()
}

/// The form's 303 goes to the checkout session of the caller's order.
fn session_of(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 303, "checkout form");
    let location = r.headers()["location"].to_str().unwrap();
    location.rsplit('/').next().unwrap().to_owned()
}

#[sqlx::test(migrations = "./migrations")]
async fn knowing_the_buyers_email_gives_a_stranger_nothing(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let victim = "victim@example.tn";
    // The victim's browser starts a checkout.
    let mine = session_of(&w.checkout_form("ai-credits-500", victim).await);
    let mine_again = session_of(&w.checkout_form("ai-credits-500", victim).await);
    assert_eq!(
        mine, mine_again,
        "the victim's own browser continues its order"
    );

    // A stranger asks for the same product and e-mail, by the API and by the form.
    let by_api = api_checkout(&w, &stranger(), "ai-credits-500", victim).await;
    let other_browser = stranger();
    let token = {
        let page = other_browser
            .get(w.app.url("/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (_, rest) = page.split_once(r#"name="csrf_token" value=""#).unwrap();
        rest.split('"').next().unwrap().to_owned()
    };
    let r = other_browser
        .post(w.app.url("/checkout"))
        .form(&[
            ("sku", "ai-credits-500"),
            ("email", victim),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    let theirs = session_of(&r);
    assert_ne!(theirs, mine, "the stranger's form gets its own session");

    let owners: Vec<String> = sqlx::query_scalar!(
        "SELECT o.id::text AS \"id!\" FROM orders o JOIN checkout_sessions s ON s.order_id = o.id
         WHERE s.session_id = $1",
        mine
    )
    .fetch_all(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(owners.len(), 1);
    assert_ne!(
        owners[0], by_api,
        "the API did not hand out the victim's order"
    );
    let orders = sqlx::query_scalar!("SELECT count(*) FROM orders WHERE buyer_email = $1", victim)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(orders, Some(3), "one order per caller");
}

#[sqlx::test(migrations = "./migrations")]
async fn an_order_a_stranger_opened_for_my_email_is_not_mine_and_shows_no_code(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let victim = "early@example.tn";
    let planted = api_checkout(&w, &stranger(), "ai-credits-500", victim).await;
    // Later the victim buys and pays from their own browser.
    let session = session_of(&w.checkout_form("ai-credits-500", victim).await);
    let redirect = w.complete(&session).await;
    let back = w.land_on_callback(&redirect).await;
    let mine: uuid::Uuid = back.trim_start_matches("/orders/").parse().unwrap();
    assert_ne!(mine.to_string(), planted);
    let paid = w.wait_status(mine, "completed").await;
    assert!(paid["digital_code"].as_str().is_some());
    let stranger_view = w.app.order_json(planted.parse().unwrap()).await;
    assert_eq!(stranger_view["status"], "awaiting_payment");
    assert!(stranger_view["digital_code"].is_null(), "{stranger_view}");
}

#[sqlx::test(migrations = "./migrations")]
async fn an_idempotency_key_continues_its_order_and_refuses_another_request(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let send = |key: Option<&'static str>, email: &'static str| {
        let http = w.http.clone();
        let url = w.app.url("/api/checkout");
        async move {
            let mut req = http
                .post(url)
                .json(&json!({"sku": "chechia-red", "email": email}));
            if let Some(k) = key {
                req = req.header("idempotency-key", k);
            }
            req.send().await.unwrap()
        }
    };
    let a: serde_json::Value = send(Some("k-1"), "key@example.tn")
        .await
        .json()
        .await
        .unwrap();
    let b: serde_json::Value = send(Some("k-1"), "key@example.tn")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["order_id"], b["order_id"]);
    assert_eq!(a["session_id"], b["session_id"]);
    let other = send(Some("k-1"), "someone-else@example.tn").await;
    assert_eq!(other.status(), 422, "same key, another body");
    let c: serde_json::Value = send(None, "key@example.tn").await.json().await.unwrap();
    let d: serde_json::Value = send(None, "key@example.tn").await.json().await.unwrap();
    assert_ne!(c["order_id"], a["order_id"]);
    assert_ne!(c["order_id"], d["order_id"], "no key: nothing to continue");
    let bad = w
        .http
        .post(w.app.url("/api/checkout"))
        .header("idempotency-key", "")
        .json(&json!({"sku": "chechia-red", "email": "key@example.tn"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[sqlx::test(migrations = "./migrations")]
async fn the_buyer_gets_the_order_link_and_the_code_by_email(pool: PgPool) {
    let (smtp_url, _) = smtp_sink();
    let w = world(pool, |c| c.smtp_url = Some(smtp_url.into())).await;
    let email = format!("mail-{}@example.tn", uuid::Uuid::new_v4().simple());
    let s = w.checkout("ai-credits-500", &email).await;
    let link = format!("/orders/{}", s.order_id);
    let confirmation = wait_for_mail(&email, &link).await;
    assert!(
        confirmation.contains("Subject: Your order"),
        "{confirmation}"
    );
    // An instant good has no receipt to confirm (DHMAD has no such step for it).
    assert!(
        confirmation.contains("your code appears there")
            && !confirmation.contains("confirm receipt"),
        "{confirmation}"
    );
    // Anyone may start an order for any address and holds its link too: the e-mail says not
    // to pay one you did not place (someone else would see its code).
    assert!(
        confirmation.contains("Did not place this order? Do not pay for it"),
        "{confirmation}"
    );

    w.complete(&s.session_id).await;
    let done = w.wait_status(s.order_id, "completed").await;
    let code = done["digital_code"].as_str().unwrap();
    let good = wait_for_mail(&email, code).await;
    assert!(good.contains(&link), "{good}");
}

/// An instant order whose first news of payment is a dispute (its `paid` webhook lost): the
/// code is issued with it, and its e-mail waits for the dispute instead of being dropped; once
/// DHMAD releases the money to the seller, the buyer gets the code by e-mail.
#[sqlx::test(migrations = "./migrations")]
async fn the_codes_email_waits_for_a_dispute_and_goes_once_it_ends_for_the_seller(pool: PgPool) {
    let app = offline_mailing_to_the_sink(pool).await;
    let email = format!("disputed-{}@example.tn", uuid::Uuid::new_v4().simple());
    let escrow_id = "66cc000000000000000000d1";
    let t0 = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let id = app
        .seed_order("ai-credits-500", &email, escrow_id, t0)
        .await;
    let post = |status: &'static str, old: &'static str, at: time::OffsetDateTime| {
        let env = status_event(escrow(escrow_id, status, old, "instant", at));
        let d = sign(&env);
        let app = &app;
        async move { app.deliver(&d).await }
    };
    assert_eq!(
        post("disputed", "pending", t0 + time::Duration::minutes(1))
            .await
            .status(),
        200
    );
    let job = wait_for("the code's e-mail tried once", 30, || async {
        sqlx::query_scalar!(
            "SELECT id FROM outbox_jobs WHERE order_id = $1 AND kind = 'email_good'
               AND done_at IS NULL AND run_after > now() + interval '1 minute'",
            id
        )
        .fetch_optional(&app.pool)
        .await
        .unwrap()
    })
    .await;

    assert_eq!(
        post("completed", "disputed", t0 + time::Duration::minutes(2))
            .await
            .status(),
        200
    );
    // Its next look, a quarter of an hour on, now.
    sqlx::query!(
        "UPDATE outbox_jobs SET run_after = now() WHERE id = $1",
        job
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let code = app.order_json(id).await["digital_code"]
        .as_str()
        .expect("the code stands once the money went to the seller")
        .to_owned();
    wait_for_mail(&email, &code).await;
}

/// A key names one request: replayed after its order was paid for (a client retrying a
/// checkout it thinks lost), it is refused with the order's address, and buys nothing again.
#[sqlx::test(migrations = "./migrations")]
async fn an_idempotency_key_replayed_after_payment_does_not_buy_again(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let (sku, email) = ("chechia-red", "paid-once@example.tn");
    let s = w.checkout(sku, email).await;
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "paid").await;

    let again = w
        .http
        .post(w.app.url("/api/checkout"))
        .header("idempotency-key", idempotency_key(sku, email))
        .json(&json!({"sku": sku, "email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let body: serde_json::Value = again.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&s.order_id.to_string()),
        "{body}"
    );
    let orders = sqlx::query_scalar!("SELECT count(*) FROM orders WHERE buyer_email = $1", email)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(orders, Some(1));
    assert_eq!(w.count_calls("POST", "/api/v1/escrows").await, 1);
}

/// A refused step is answered with the order page at the step's own address (a POST route):
/// that page must not reload itself there, which gave a blank 405 five seconds later.
#[sqlx::test(migrations = "./migrations")]
async fn a_refused_step_is_not_reloaded_at_its_post_address(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order(
            "chechia-red",
            "refused@example.tn",
            "66bb0000000000000000e001",
            time::OffsetDateTime::now_utc(),
        )
        .await;
    // Its payment page is open: news may come by itself, and the order page refreshes.
    sqlx::query(
        "INSERT INTO checkout_sessions (session_id, order_id, escrow_id, action, url, expires_at)
         SELECT 'cs_refused_step', id, escrow_id, 'accept_pay', 'http://127.0.0.1:6002/checkout/cs_refused_step',
                now() + interval '1 hour'
           FROM orders WHERE id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let refresh = r#"http-equiv="refresh""#;
    let page = app.order_page(id).await;
    assert!(
        page.contains(refresh),
        "awaiting payment, the page refreshes: {page}"
    );
    let r = app.post_form(&format!("/orders/{id}/confirm"), &[]).await;
    assert_eq!(r.status(), 409);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("role=\"alert\"") && !page.contains(refresh),
        "{page}"
    );
}

/// An order whose payment link expired unused waits for its buyer to start a new payment:
/// nothing comes by itself, so the page does not reload itself every 5 s (which moved a screen
/// reader's place and closed the contract's terms) for as long as it is open.
#[sqlx::test(migrations = "./migrations")]
async fn a_page_with_nothing_to_wait_for_does_not_reload_itself(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order(
            "chechia-red",
            "link-gone@example.tn",
            "66bb0000000000000000e002",
            time::OffsetDateTime::now_utc(),
        )
        .await;
    sqlx::query(
        "UPDATE checkout_sessions SET expires_at = now() - interval '1 minute' WHERE order_id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let page = app.order_page(id).await;
    assert!(page.contains("expired or was not used"), "{page}");
    assert!(!page.contains(r#"http-equiv="refresh""#), "{page}");
}

/// Anyone may start orders for any address, and each sent that address an e-mail from the
/// shop: a few client addresses, each under its checkout limit, could flood a stranger's inbox
/// from the shop's relay. Past five in an hour, an address's order e-mails are given up with
/// why, and the merchant's retry sends one.
#[sqlx::test(migrations = "./migrations")]
async fn a_flood_of_orders_for_one_address_sends_it_few_emails(pool: PgPool) {
    flood_for_one_address(pool, false).await;
}

/// The same flood when the relay was down for each e-mail's first try: the cap is still asked
/// on the tries that follow (it used to be asked on the first only, so a stranger's orders
/// placed during an outage were all sent once it ended).
#[sqlx::test(migrations = "./migrations")]
async fn a_flood_of_orders_sent_after_an_outage_sends_it_few_emails(pool: PgPool) {
    flood_for_one_address(pool, true).await;
}

async fn flood_for_one_address(pool: PgPool, after_a_failed_try: bool) {
    let app = offline_mailing_to_the_sink(pool).await;
    let victim = format!("flooded-{}", uuid::Uuid::new_v4().simple());
    // Sub-addresses reach the same inbox: the cap counts them with the address.
    let addresses: Vec<String> = (0..7)
        .map(|i| match i % 2 {
            0 => format!("{victim}@example.tn"),
            _ => format!("{victim}+{i}@example.tn"),
        })
        .collect();
    let product = db::products::get(&app.pool, "chechia-red")
        .await
        .unwrap()
        .unwrap();
    let mut orders = Vec::new();
    for (i, address) in addresses.iter().enumerate() {
        // Each started by another stranger.
        let order = open_order(&app, &product, address, &format!("stranger-{i}")).await;
        if after_a_failed_try {
            // As a first try during an outage leaves it.
            sqlx::query(
                "INSERT INTO outbox_jobs (kind, order_id, attempts, last_error)
                 VALUES ($1, $2, 1, 'e-mail not sent: SMTP: connection refused')",
            )
            .bind(notify::CONFIRMATION)
            .bind(order.id)
            .execute(&app.pool)
            .await
            .unwrap();
        } else {
            db::outbox::enqueue(&app.pool, notify::CONFIRMATION, order.id)
                .await
                .unwrap();
        }
        orders.push(order.id);
    }
    let closed = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM outbox_jobs WHERE order_id = ANY($1) AND done_at IS NOT NULL",
        )
        .bind(&orders)
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    wait_for("every e-mail job closed", 30, || async {
        (closed().await == 7).then_some(())
    })
    .await;
    let distinct: std::collections::BTreeSet<&String> = addresses.iter().collect();
    let mails_to_the_inbox = || distinct.iter().map(|a| mails_to(a)).sum::<usize>();
    assert_eq!(mails_to_the_inbox(), 5);
    let held: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT order_id, last_error FROM outbox_jobs WHERE order_id = ANY($1)
          AND gave_up_at IS NOT NULL",
    )
    .bind(&orders)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(
        held[0].1.contains("within the hour (a flood of orders"),
        "{held:?}"
    );

    // The merchant's retry sends it.
    let retried = held[0].0;
    assert!(
        db::outbox::run_now(&app.pool, notify::CONFIRMATION, retried)
            .await
            .unwrap()
    );
    let to = &addresses[orders.iter().position(|o| *o == retried).unwrap()];
    wait_for_mail(to, &format!("/orders/{retried}")).await;
    assert_eq!(mails_to_the_inbox(), 6);
}

/// How many messages the SMTP sink holds for `to`.
/// Confirmations the merchant abandoned were never sent: they do not count towards the cap
/// (they used to, as closed and not given up, and the next real order's e-mail was held as a
/// flood).
#[sqlx::test(migrations = "./migrations")]
async fn abandoned_emails_do_not_count_towards_the_flood_cap(pool: PgPool) {
    let app = offline_mailing_to_the_sink(pool).await;
    let address = format!("abandoned-{}@example.tn", uuid::Uuid::new_v4().simple());
    let product = db::products::get(&app.pool, "chechia-red")
        .await
        .unwrap()
        .unwrap();
    let mut last = None;
    for i in 0..6 {
        let order = open_order(&app, &product, &address, &format!("owner-{i}")).await;
        if i < 5 {
            // As the merchant's abandon leaves a confirmation never sent (the relay was down).
            sqlx::query(
                "INSERT INTO outbox_jobs (kind, order_id, attempts, done_at, abandoned_at,
                                          last_error)
                 VALUES ($1, $2, 3, now(), now(), 'e-mail not sent: SMTP: connection refused')",
            )
            .bind(notify::CONFIRMATION)
            .bind(order.id)
            .execute(&app.pool)
            .await
            .unwrap();
        } else {
            db::outbox::enqueue(&app.pool, notify::CONFIRMATION, order.id)
                .await
                .unwrap();
            last = Some(order.id);
        }
    }
    let last = last.unwrap();
    wait_for_mail(&address, &format!("/orders/{last}")).await;
    assert_eq!(mails_to(&address), 1);
}

/// An order for `product` to `address`, started by `owner`, as checkout opens one.
async fn open_order(
    app: &TestApp,
    product: &db::products::Product,
    address: &str,
    owner: &str,
) -> storefront::orders::Order {
    let new = db::orders::NewOrder {
        sku: &product.sku,
        mode: product.mode,
        buyer_email: address,
        amount: product.price,
        currency: &product.currency,
        owner_key: owner,
        proof_required: product.proof_required,
        claim: None,
        created: line("order_created"),
        job: None,
        client: None,
    };
    db::orders::insert_open(&app.pool, &new)
        .await
        .unwrap()
        .unwrap()
}

fn mails_to(to: &str) -> usize {
    let (_, dir) = smtp_sink();
    let rcpt = format!("X-Rcpt-To: {to}");
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|m| m.starts_with(&rcpt))
        .count()
}

/// A storefront with no DHMAD whose e-mails go to the SMTP sink.
async fn offline_mailing_to_the_sink(pool: PgPool) -> TestApp {
    let mut cfg = offline_config();
    cfg.smtp_url = Some(smtp_sink().0.into());
    spawn(pool, cfg).await
}

/// The order's id is the buyer's key to it (and to an instant order's code): DHMAD's records
/// of the shop's sessions carry its short reference, as the escrow's title does, not the id.
#[sqlx::test(migrations = "./migrations")]
async fn dhmad_sessions_do_not_carry_the_order_key(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("ai-credits-500", "key-kept@example.tn").await;
    let session = w.app.state.dhmad.get_session(&s.session_id).await.unwrap();
    let stored = serde_json::to_string(&session.metadata).unwrap();
    assert!(!stored.contains(&s.order_id.to_string()), "{stored}");
    assert_eq!(
        session.metadata.get("order_ref").map(String::as_str),
        Some(storefront::orders::checkout::short_ref(s.order_id).as_str())
    );
}
