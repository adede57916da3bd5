//! The order list: each needs-action filter against the order's state machine, search, keyset
//! pages, and the CSV export.

use std::collections::{BTreeSet, HashMap};

use crate::common::*;
use sqlx::PgPool;
use storefront::{
    db::admin_views::{self, NeedsAction, OrderFilter},
    orders::Order,
};
use uuid::Uuid;

use super::*;

#[sqlx::test(migrations = "./migrations")]
async fn each_needs_action_filter_agrees_with_the_state_machine(pool: PgPool) {
    seed_every_state(&pool).await;
    // A dispute ticket on about a fifth of them, whatever their state (`Order::dispute_open`).
    sqlx::query(
        "UPDATE orders SET dispute_ticket_id = '66aa00000000000000000d01' WHERE id::text < '3'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let rows = all_rows(&pool).await;
    assert_eq!(rows.len(), 3 * 10 * 2 * 6 * 4 * 2 * 2);
    let ticketed = |held: bool| {
        rows.iter()
            .filter(|r| r.order.dispute_ticket_id.is_some())
            .filter(|r| held == matches!(r.order.status.as_str(), "paid" | "delivered"))
            .count()
    };
    assert!(ticketed(true) > 0 && ticketed(false) > 0);
    // Jobs: a queued deliver takes a shippable order out of "paid, not shipped"; a dead job
    // puts its order in "failed jobs" unless a later job superseded it or it was abandoned.
    let shippable: Vec<&Order> = rows
        .iter()
        .map(|r| &r.order)
        .filter(|o| o.allows(storefront::orders::Action::Ship))
        .collect();
    assert!(shippable.len() > 3);
    add_job(&pool, shippable[0].id, "deliver", "open").await;
    add_job(&pool, shippable[1].id, "deliver", "dead").await;
    add_job(&pool, shippable[2].id, "deliver", "dead").await;
    add_job(&pool, shippable[2].id, "deliver", "done").await; // superseded
    let abandoned = add_job(&pool, shippable[3].id, "email_confirmation", "dead").await;
    sqlx::query("UPDATE outbox_jobs SET abandoned_at = now() WHERE id = $1")
        .bind(abandoned)
        .execute(&pool)
        .await
        .unwrap();
    let rows = all_rows(&pool).await;
    assert!(rows.iter().any(|r| r.deliver_queued()));
    assert_eq!(rows.iter().filter(|r| r.dead_jobs).count(), 1);

    let counts: HashMap<NeedsAction, i64> = admin_views::needs_action_counts(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for n in NeedsAction::ALL {
        let by_rust: BTreeSet<Uuid> = rows
            .iter()
            .filter(|r| n.rule(&r.order, r.deliver_queued(), r.dead_jobs))
            .map(|r| r.order.id)
            .collect();
        let by_sql = matching(
            &pool,
            OrderFilter {
                needs: Some(n),
                ..OrderFilter::default()
            },
        )
        .await;
        assert!(
            !by_sql.is_empty(),
            "{n:?} matches nothing in the seeded set"
        );
        assert_eq!(by_sql, by_rust, "{n:?}: SQL filter and Rust rule differ");
        let capped = (by_sql.len() as i64).min(admin_views::COUNT_CAP);
        assert_eq!(counts[&n], capped, "{n:?} count");
    }
    // The queued deliver and the dead job are where the list says.
    let ship = matching(
        &pool,
        OrderFilter {
            needs: Some(NeedsAction::PaidNotShipped),
            ..OrderFilter::default()
        },
    )
    .await;
    assert!(!ship.contains(&shippable[0].id));
    assert!(ship.contains(&shippable[1].id));
    let failed = matching(
        &pool,
        OrderFilter {
            needs: Some(NeedsAction::FailedJobs),
            ..OrderFilter::default()
        },
    )
    .await;
    assert_eq!(failed, BTreeSet::from([shippable[1].id]));
}

#[sqlx::test(migrations = "./migrations")]
async fn the_order_list_filters_searches_and_pages(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let ids = seed_orders(&app.pool, 120).await;
    let newest_first: Vec<Uuid> = ids.iter().rev().copied().collect();
    // Keyset pages: 50, 50, 20, in order, no overlap, with "Older" links until the end.
    let mut seen = Vec::new();
    let mut path = "/admin/orders".to_owned();
    let mut pages = 0;
    loop {
        let page = admin_page(&app, &path).await;
        seen.extend(row_ids(&page));
        pages += 1;
        let Some((_, rest)) = page.split_once("<nav class=\"pager\">") else {
            panic!("no pager")
        };
        let Some((_, next)) = rest
            .split_once("\">Older")
            .map(|(a, _)| a.rsplit_once("href=\"").unwrap())
        else {
            break;
        };
        path = next.replace("&amp;", "&");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, newest_first);

    // Status and mode filters, and product names instead of SKUs.
    sqlx::query("UPDATE orders SET status = 'paid', escrow_status = 'paid' WHERE id = ANY($1)")
        .bind(&ids[..3])
        .execute(&app.pool)
        .await
        .unwrap();
    let page = admin_page(&app, "/admin/orders?status=paid").await;
    assert_eq!(
        row_ids(&page).into_iter().collect::<BTreeSet<_>>(),
        ids[..3].iter().copied().collect()
    );
    assert!(page.contains("Chéchia, red wool (handmade)"), "{page}");
    assert!(page.contains("45.000 TND"));
    assert!(page.contains("Mark shipped"));
    let page = admin_page(&app, "/admin/orders?mode=instant").await;
    assert!(row_ids(&page).is_empty());
    let page = admin_page(&app, "/admin/orders?needs=ship").await;
    assert_eq!(row_ids(&page).len(), 3);
    // A standard order DHMAD could not sign for the shop waits for the merchant's signature.
    sqlx::query(
        "UPDATE orders SET mode = 'standard', contract_buyer_signed = true,
                contract_seller_signed = false WHERE id = $1",
    )
    .bind(ids[5])
    .execute(&app.pool)
    .await
    .unwrap();
    let page = admin_page(&app, "/admin/orders?needs=sign").await;
    assert_eq!(row_ids(&page), [ids[5]]);
    let dashboard = admin_page(&app, "/admin").await;
    assert!(dashboard.contains("Contract to sign"), "{dashboard}");
    // Unknown filter values are refused, not ignored.
    assert_eq!(
        admin_get(&app, "/admin/orders?status=lost").await.status(),
        400
    );
    assert_eq!(
        admin_get(&app, "/admin/orders?after=garbage")
            .await
            .status(),
        400
    );

    // Search: an order id prefix, a whole id, an escrow id, an e-mail (prefix, any case).
    let target = ids[41];
    let prefix = &target.to_string()[..8];
    let page = admin_page(&app, &format!("/admin/orders?q={prefix}")).await;
    assert!(row_ids(&page).contains(&target));
    let page = admin_page(&app, &format!("/admin/orders?q={target}")).await;
    assert_eq!(row_ids(&page), [target]);
    let page = admin_page(&app, &format!("/admin/orders?q=esc{:0>21}", 42)).await;
    assert_eq!(row_ids(&page), [target]);
    let page = admin_page(&app, "/admin/orders?q=BUYER42%40EXAMPLE").await;
    assert_eq!(row_ids(&page), [target]);
    let page = admin_page(&app, "/admin/orders?q=buyer4").await;
    assert_eq!(row_ids(&page).len(), 11, "buyer4 and buyer40..49");
    // LIKE wildcards in the search are literal.
    let page = admin_page(&app, "/admin/orders?q=buyer_").await;
    assert!(row_ids(&page).is_empty());
}

#[sqlx::test(migrations = "./migrations")]
async fn cursors_past_the_databases_dates_and_unstorable_searches_are_400(pool: PgPool) {
    let app = spawn_offline(pool).await;
    seed_orders(&app.pool, 2).await;
    // Valid for Rust, before 4713 BC for Postgres.
    let ancient = "-300000000000000000";
    for path in [
        format!("/admin/orders?after={ancient}_00000000-0000-0000-0000-000000000000"),
        format!("/admin?after={ancient}_00000000-0000-0000-0000-000000000000"),
        format!("/admin/inbox?after={ancient}_x"),
        "/admin/orders?q=%00".into(),
        "/admin/orders.csv?q=%00".into(),
    ] {
        let r = admin_get(&app, &path).await;
        assert_eq!(r.status(), 400, "GET {path}");
        // The whole answer arrives: an error, not a stream cut short.
        r.text().await.unwrap();
    }
}

/// A query string that does not read (a parameter twice, from a hand-edited or bookmarked
/// address) gets the shop's error page, as any other refusal: it was axum's plain text.
#[sqlx::test(migrations = "./migrations")]
async fn an_unreadable_query_string_gets_the_shops_error_page(pool: PgPool) {
    let app = spawn_offline(pool).await;
    for path in [
        "/admin/orders?status=paid&status=new",
        "/admin?notice=shipped&notice=reconciled",
        "/admin/inbox?outcome=failed&outcome=processed",
        "/admin/outbox?state=due&state=done",
        "/admin/audit?action=ship&action=ship",
        "/admin/orders.csv?status=paid&status=new",
    ] {
        let r = app
            .http
            .get(app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "GET {path}");
        let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/html"), "GET {path}: {kind}");
        let page = r.text().await.unwrap();
        assert!(page.contains("<!doctype html>"), "GET {path}: {page}");
    }
}

/// A minimal RFC 4180 reader, to check what a spreadsheet would read.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        cell.is_empty() && row.is_empty(),
        "the last line ends with CRLF"
    );
    rows
}

#[sqlx::test(migrations = "./migrations")]
async fn the_csv_export_is_streamed_filtered_and_escaped(pool: PgPool) {
    let app = spawn_offline(pool).await;
    // More than one batch of the export.
    let ids = seed_orders(&app.pool, 2_300).await;
    let nasty = "=HYPERLINK(\"http://evil.example\",\"click\"),x\ny@example.tn";
    sqlx::query("UPDATE orders SET buyer_email = $2, status = 'paid' WHERE id = $1")
        .bind(ids[7])
        .bind(nasty)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE orders SET buyer_email = '+216 55 000 000', status = 'paid' WHERE id = $1")
        .bind(ids[8])
        .execute(&app.pool)
        .await
        .unwrap();

    let r = admin_get(&app, "/admin/orders.csv").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("orders.csv"));
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(
        r.headers().get("content-length").is_none(),
        "streamed, not buffered"
    );
    let all = parse_csv(&r.text().await.unwrap());
    assert_eq!(all[0][..3], ["created_at", "order_id", "product"]);
    assert_eq!(all.len(), 1 + 2_300);
    let ids_in_csv: BTreeSet<&str> = all[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(ids_in_csv.len(), 2_300, "every order once");

    let r = admin_get(&app, "/admin/orders.csv?status=paid").await;
    let text = r.text().await.unwrap();
    // Each export is on the audit trail, with its filter: it holds every buyer's address.
    let exports: Vec<String> = audit_actions(&app.pool)
        .await
        .into_iter()
        .filter(|(action, _, _)| action == "export_csv")
        .map(|(_, _, detail)| detail)
        .collect();
    assert_eq!(exports, ["every order", "filter: status=paid"]);
    let paid = parse_csv(&text);
    assert_eq!(paid.len(), 3);
    let row = |id: Uuid| {
        paid.iter()
            .find(|r| r[1] == id.to_string())
            .unwrap()
            .clone()
    };
    // The formula is neutralised, and quotes, commas and the line break survive.
    assert_eq!(row(ids[7])[4], format!("'{nasty}"));
    assert_eq!(row(ids[8])[4], "'+216 55 000 000");
    assert_eq!(row(ids[7])[2], "Chéchia, red wool (handmade)");
    assert_eq!(row(ids[7])[11], "ship");
    assert!(
        text.contains("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\"),x\ny@example.tn\""),
        "{text}"
    );
}
