//! The dashboard's counts, shipping from the needs-action list in a browser, and the DHMAD
//! calls listed on an order's page.

use crate::common::{sandbox::world, *};
use sqlx::PgPool;
use uuid::Uuid;

use super::*;

/// The `<strong class="count">` of the tile with this id.
fn tile_count(page: &str, id: &str) -> i64 {
    let (_, rest) = page
        .split_once(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no tile {id}"));
    let (_, rest) = rest.split_once("<strong class=\"count\">").unwrap();
    rest.split('<').next().unwrap().parse().unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn the_dashboard_counts_what_needs_action(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let ids = seed_orders(&app.pool, 10).await;
    let set = |sql: &'static str, id: Uuid| {
        let pool = app.pool.clone();
        async move {
            sqlx::query(sql).bind(id).execute(&pool).await.unwrap();
        }
    };
    set("UPDATE orders SET status = 'paid' WHERE id = $1", ids[0]).await;
    set("UPDATE orders SET status = 'paid' WHERE id = $1", ids[1]).await;
    set(
        "UPDATE orders SET status = 'paid', cancellation = 'requested' WHERE id = $1",
        ids[2],
    )
    .await;
    set(
        "UPDATE orders SET status = 'disputed' WHERE id = $1",
        ids[3],
    )
    .await;
    set(
        "UPDATE orders SET status = 'paid', proof_required = true, proof_phase = 'waiting_seller_proof' WHERE id = $1",
        ids[4],
    )
    .await;
    set(
        "UPDATE orders SET payment_review_since = now() WHERE id = $1",
        ids[5],
    )
    .await;
    set(
        "UPDATE orders SET attention = 'DHMAD does not know escrow' WHERE id = $1",
        ids[6],
    )
    .await;
    add_job(&app.pool, ids[7], "deliver", "dead").await;
    add_job(&app.pool, ids[1], "deliver", "open").await; // shipping requested

    let page = admin_page(&app, "/admin").await;
    for (tile, n) in [
        ("needs-ship", 1),
        ("needs-cancellation", 1),
        ("needs-dispute", 1),
        ("needs-proof", 1),
        ("needs-payment_review", 1),
        ("needs-failed_jobs", 1),
        ("needs-attention", 1),
        ("inbox-trouble", 0),
        ("outbox-trouble", 1),
    ] {
        assert_eq!(tile_count(&page, tile), n, "{tile}");
    }
    assert!(
        page.contains("<strong id=\"needs-total\">7</strong>"),
        "{page}"
    );
    // Each tile links to its filter; the rows show what is pending.
    assert!(page.contains("href=\"/admin/orders?needs=ship\""));
    let list = admin_page(&app, "/admin/orders?status=paid").await;
    let row = list
        .split(&format!("<tr id=\"o-{}\"", ids[1]))
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        row.contains("shipping requested") && !row.contains("Mark shipped"),
        "{row}"
    );
    // Every page carries the CSRF token in its forms and is never cached.
    for path in [
        "/admin",
        "/admin/orders",
        "/admin/inbox",
        "/admin/outbox",
        "/admin/audit",
    ] {
        let page = admin_page(&app, path).await;
        assert!(page.contains("name=\"csrf_token\" value=\""), "{path}");
        assert!(page.contains("Reconcile now"), "{path}");
    }
}

/// The needs-action flow as the merchant clicks it in a real headless Chromium: the login form
/// (a session cookie, so every form's CSRF token is checked), the dashboard's count, its
/// filter, "Mark shipped" on the row, the flash and the row's pending work, then DHMAD's answer.
#[sqlx::test(migrations = "./migrations")]
async fn the_merchant_ships_from_the_needs_action_list_in_a_browser(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "browser@example.tn").await;
    w.complete(&s.session_id).await;
    w.wait_status(s.order_id, "paid").await;

    let shop = format!("http://localhost:{}", w.app.port);
    let b = crate::webdriver::Browser::start().await;
    b.goto(&format!("{shop}/admin/login")).await;
    b.type_into("input[name=token]", ADMIN_TOKEN).await;
    b.click("form[action='/admin/login'] button").await;
    let page = b.wait_for_text("Reconcile now", 30).await;
    assert!(
        page.contains("1\nPaid, not shipped") || page.contains("1 Paid, not shipped"),
        "{page}"
    );
    b.click("#needs-ship").await;
    b.wait_for_text("Mark shipped", 30).await;
    assert!(b.url().await.ends_with("/admin/orders?needs=ship"));
    b.click(&format!("#o-{} form[action$='/ship'] button", s.order_id))
        .await;
    let page = b
        .wait_for_text("Shipping requested; DHMAD confirms in a few seconds.", 30)
        .await;
    let url = b.url().await;
    assert!(
        url.contains("/admin/orders?needs=ship&notice=shipped"),
        "back on the filtered list: {url}"
    );
    // Shipped orders leave "paid, not shipped" at once, before DHMAD confirms.
    assert!(page.contains("No orders match."), "{page}");
    w.wait_status(s.order_id, "delivered").await;
    let audit = audit_actions(&w.app.pool).await;
    assert!(
        audit
            .iter()
            .any(|a| a.0 == "ship" && a.1 == Some(s.order_id)),
        "{audit:?}"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn the_order_page_lists_the_dhmad_calls_made_for_the_order(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "calls@example.tn").await;
    let back = w.complete(&s.session_id).await;
    // The buyer comes back through the callback, which reads the session from DHMAD.
    w.land_on_callback(&back).await;
    w.wait_status(s.order_id, "paid").await;
    let rows = wait_for("the calls to be recorded", 30, || async {
        let rows = sqlx::query!(
            "SELECT method, endpoint, status FROM dhmad_calls WHERE order_id = $1 ORDER BY id",
            s.order_id
        )
        .fetch_all(&w.app.pool)
        .await
        .unwrap();
        let callback = rows.iter().any(|r| r.endpoint == "/sessions/{id}");
        (rows.len() >= 3 && callback).then_some(rows)
    })
    .await;
    let seen: Vec<(String, String, Option<i32>)> = rows
        .into_iter()
        .map(|r| (r.method, r.endpoint, r.status))
        .collect();
    assert!(
        seen.contains(&("POST".into(), "/escrows".into(), Some(201))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("POST".into(), "/escrows/{id}/sessions".into(), Some(201))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("GET".into(), "/sessions/{id}".into(), Some(200))),
        "the callback's read of the session is on the order too: {seen:?}"
    );
    let page = w
        .http
        .get(w.app.url(&format!("/admin/orders/{}", s.order_id)))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("DHMAD calls") && page.contains("POST /escrows"),
        "{page}"
    );
}

/// The order page offers only what can work now: no "Cancel order" under a guest's proof (the
/// cancel is refused: DHMAD would reject a proof of money sent), no second "Mark shipped" while
/// the first one's deliver is queued (it would queue nothing, yet was audited as queued), and
/// "Reconcile" on a flagged order even once it is settled (reconciling is what lifts the flag).
/// A refused ship says why.
#[sqlx::test(migrations = "./migrations")]
async fn the_order_page_offers_only_what_can_work_now(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let ids = seed_orders(&app.pool, 4).await;
    let set = |sql: &'static str, id: Uuid| {
        let pool = app.pool.clone();
        async move {
            sqlx::query(sql).bind(id).execute(&pool).await.unwrap();
        }
    };
    let form = |id: Uuid, path: &str| format!("action=\"/admin/orders/{id}/{path}\"");

    set(
        "UPDATE orders SET payment_review_since = now() WHERE id = $1",
        ids[0],
    )
    .await;
    let page = admin_page(&app, &format!("/admin/orders/{}", ids[0])).await;
    assert!(!page.contains(&form(ids[0], "cancel")), "{page}");

    set(
        "UPDATE orders SET status = 'paid', escrow_status = 'paid' WHERE id = $1",
        ids[1],
    )
    .await;
    assert!(admin_page(&app, &format!("/admin/orders/{}", ids[1]))
        .await
        .contains(&form(ids[1], "ship")));
    add_job(&app.pool, ids[1], "deliver", "open").await;
    let page = admin_page(&app, &format!("/admin/orders/{}", ids[1])).await;
    assert!(!page.contains(&form(ids[1], "ship")), "{page}");
    act(&app, &format!("/admin/orders/{}/ship", ids[1])).await;
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM admin_audit WHERE action = 'ship' AND order_id = $1",
    )
    .bind(ids[1])
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(detail.contains("nothing new"), "{detail}");

    set(
        "UPDATE orders SET status = 'completed', escrow_status = 'completed',
                attention = 'DHMAD does not know escrow' WHERE id = $1",
        ids[2],
    )
    .await;
    let page = admin_page(&app, &format!("/admin/orders/{}", ids[2])).await;
    assert!(page.contains(&form(ids[2], "reconcile")), "{page}");

    set(
        "UPDATE orders SET status = 'paid', escrow_status = 'paid', cancellation = 'requested'
          WHERE id = $1",
        ids[3],
    )
    .await;
    let r = admin_post(&app, &format!("/admin/orders/{}/ship", ids[3])).await;
    assert_eq!(r.status(), 409);
    let page = r.text().await.unwrap();
    // On the order's own page, where the merchant answers the request (not the shop's error
    // page, which leads back to the catalog).
    assert!(
        page.contains("asked to cancel") && page.contains(&form(ids[3], "cancellation")),
        "{page}"
    );
}
