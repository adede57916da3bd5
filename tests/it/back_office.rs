//! The back office (issue 12): the order list's filters (each needs-action filter against the
//! order's state machine), search, keyset pages and CSV export; the inbox console's
//! reprocessing; the outbox console's retry and abandon; reconciliation reports; the audit
//! trail; the dashboard's counts. Queries here are unchecked (`sqlx::query`), so this module
//! needs no `.sqlx/` data of its own.

use std::collections::{BTreeSet, HashMap};

use crate::common::{sandbox::world, *};
use dhmad::{Event, WebhookEnvelope};
use serde_json::json;
use sqlx::{PgPool, Row};
use storefront::{
    db::admin_views::{self, NeedsAction, OrderFilter},
    orders::Order,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

fn t(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - Duration::hours(1) + Duration::minutes(minutes)
}

async fn admin_get(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

async fn admin_page(app: &TestApp, path: &str) -> String {
    let r = admin_get(app, path).await;
    assert_eq!(r.status(), 200, "GET {path}");
    assert_eq!(r.headers()["cache-control"], "no-store", "GET {path}");
    r.text().await.unwrap()
}

async fn admin_post(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

/// Posts an action; returns where it sent the merchant (a 303).
async fn act(app: &TestApp, path: &str) -> String {
    let r = admin_post(app, path).await;
    assert_eq!(r.status(), 303, "POST {path}: {}", r.text().await.unwrap());
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// The order ids of the list's rows, in page order.
fn row_ids(page: &str) -> Vec<Uuid> {
    page.split("<tr id=\"o-")
        .skip(1)
        .map(|s| s[..36].parse().unwrap())
        .collect()
}

async fn audit_actions(pool: &PgPool) -> Vec<(String, Option<Uuid>, String)> {
    sqlx::query("SELECT action, order_id, detail FROM admin_audit ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Every order, by the list's query with no filter.
async fn all_rows(pool: &PgPool) -> Vec<admin_views::OrderRow> {
    admin_views::list(pool, &OrderFilter::default(), None, 100_000)
        .await
        .unwrap()
}

async fn matching(pool: &PgPool, f: OrderFilter) -> BTreeSet<Uuid> {
    admin_views::list(pool, &f, None, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.order.id)
        .collect()
}

/// Every combination of the facts the needs-action filters read: mode × status × proof gate ×
/// proof phase × cancellation × payment review × attention (3,600 orders).
async fn seed_every_state(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO orders (id, sku, mode, buyer_email, amount, currency, status, owner_key,
                             proof_required, proof_phase, cancellation, payment_review_since,
                             attention, created_at)
         SELECT gen_random_uuid(), 'chechia-red', m, 'seed' || n || '@example.tn', 10, 'TND', s,
                'seed:' || n, pr, ph, c, prs, att, now() - n * interval '1 second'
           FROM (SELECT row_number() OVER () AS n, *
                   FROM unnest(enum_range(NULL::escrow_mode)) m
                  CROSS JOIN unnest(enum_range(NULL::order_status)) s
                  CROSS JOIN (VALUES (false), (true)) pr(pr)
                  CROSS JOIN (VALUES (NULL), ('waiting_seller_proof'), ('correction_requested'),
                                     ('accepted'), ('accepted_by_timeout'),
                                     ('submitted_waiting_buyer_review')) ph(ph)
                  CROSS JOIN (VALUES (NULL::cancellation_state), ('requested'), ('rejected'),
                                     ('accepted')) c(c)
                  CROSS JOIN (VALUES (NULL::timestamptz), (now())) prs(prs)
                  CROSS JOIN (VALUES (NULL), ('DHMAD does not know escrow x')) att(att)) x",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn add_job(pool: &PgPool, order: Uuid, kind: &str, state: &str) -> i64 {
    let sql = match state {
        "open" => "INSERT INTO outbox_jobs (kind, order_id, run_after) VALUES ($1, $2, now() + interval '1 hour') RETURNING id",
        "dead" => "INSERT INTO outbox_jobs (kind, order_id, attempts, done_at, gave_up_at, last_error)
                   VALUES ($1, $2, 12, now(), now(), 'deliver failed: 500') RETURNING id",
        "done" => "INSERT INTO outbox_jobs (kind, order_id, attempts, done_at) VALUES ($1, $2, 1, now()) RETURNING id",
        _ => unreachable!(),
    };
    sqlx::query_scalar(sql)
        .bind(kind)
        .bind(order)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn each_needs_action_filter_agrees_with_the_state_machine(pool: PgPool) {
    seed_every_state(&pool).await;
    let rows = all_rows(&pool).await;
    assert_eq!(rows.len(), 3 * 10 * 2 * 6 * 4 * 2 * 2);
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

/// Orders for the list tests: `n` chéchias by distinct buyers, one second apart (newest first
/// is the order they were made in, reversed), with an escrow each.
async fn seed_orders(pool: &PgPool, n: i64) -> Vec<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO orders (id, sku, mode, buyer_email, amount, currency, status, owner_key,
                             escrow_id, escrow_status, created_at)
         SELECT gen_random_uuid(), 'chechia-red', 'quick', 'buyer' || i || '@example.tn', 45,
                'TND', 'awaiting_payment', 'list:' || i, 'esc' || lpad(i::text, 21, '0'),
                'pending', now() - interval '1 day' + i * interval '1 second'
           FROM generate_series(1, $1) i
         RETURNING id",
    )
    .bind(n)
    .fetch_all(pool)
    .await
    .unwrap()
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

/// An event for `escrow_id` whose news is a timeline line: the buyer asks to cancel.
fn cancellation_requested(escrow_id: &str, at: OffsetDateTime) -> WebhookEnvelope {
    let data = json!({
        "escrow": escrow(escrow_id, "paid", "paid", "quick", at),
        "cancellationRequest": {"reason": "changed my mind", "status": "pending"}
    });
    let ev = Event::from_parts("escrow.cancellation.requested", data).unwrap();
    WebhookEnvelope::new(Uuid::new_v4().to_string(), OffsetDateTime::now_utc(), &ev)
}

async fn inbox_row(pool: &PgPool, event_id: &str) -> (String, Option<Uuid>) {
    let r = sqlx::query("SELECT outcome, order_id FROM webhook_inbox WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(pool)
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[sqlx::test(migrations = "./migrations")]
async fn an_unmatched_event_is_reprocessed_once_its_order_exists(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let escrow_id = "66bb000000000000000000e1";
    // DHMAD's news arrives before the shop recorded the escrow: nothing to apply it to.
    let paid = status_event(escrow(escrow_id, "paid", "pending", "quick", t(1)));
    let ask = cancellation_requested(escrow_id, t(2));
    for env in [&paid, &ask] {
        assert_eq!(app.deliver(&sign(env)).await.status(), 200);
        assert_eq!(inbox_row(&app.pool, &env.id).await.0, "unmatched");
    }
    let page = admin_page(&app, "/admin/inbox?outcome=unmatched").await;
    assert!(page.contains(&paid.id) && page.contains(&ask.id), "{page}");
    assert!(page.contains("reprocess-unmatched"));
    assert!(page.contains("name=\"csrf_token\""));
    let dashboard = admin_page(&app, "/admin").await;
    assert!(dashboard.contains("<strong class=\"count\">2</strong> unmatched"));
    // Reprocessing while there is still no order changes nothing but says so.
    let back = act(&app, &format!("/admin/inbox/{}/reprocess", paid.id)).await;
    assert_eq!(back, "/admin/inbox?notice=event_unmatched");

    // The order gets its escrow; the event is reprocessed through the webhook's path.
    let id = app
        .seed_order("chechia-red", "late@example.tn", escrow_id, t(0))
        .await;
    let back = act(&app, &format!("/admin/inbox/{}/reprocess", paid.id)).await;
    assert_eq!(back, "/admin/inbox?notice=event_processed");
    assert_eq!(order_status(&app.pool, id).await, "paid");
    assert_eq!(
        inbox_row(&app.pool, &paid.id).await,
        ("processed".into(), Some(id))
    );
    let timeline_after_once = timeline(&app.pool, id).await;
    // Twice: nothing changes, no timeline line is repeated.
    let back = act(&app, &format!("/admin/inbox/{}/reprocess", paid.id)).await;
    assert_eq!(back, "/admin/inbox?notice=event_already");
    assert_eq!(timeline(&app.pool, id).await, timeline_after_once);

    // "All unmatched": the cancellation request is applied once, however often it is asked.
    let back = act(&app, "/admin/inbox/reprocess-unmatched").await;
    assert!(
        back.starts_with("/admin/inbox?notice=unmatched_reprocessed&processed=1&unmatched=0"),
        "{back}"
    );
    let back = act(&app, "/admin/inbox/reprocess-unmatched").await;
    assert!(back.contains("processed=0"), "{back}");
    act(&app, &format!("/admin/inbox/{}/reprocess", ask.id)).await;
    assert_eq!(
        timeline_count(&app.pool, id, "The buyer asked to cancel").await,
        1
    );
    let o = app.order_json(id).await;
    assert_eq!(o["cancellation"], "requested");
    let page = admin_page(&app, "/admin?notice=unmatched_reprocessed&processed=1").await;
    assert!(
        page.contains("Unmatched events reprocessed: 1 applied"),
        "{page}"
    );

    // The order's page shows its events, raw.
    let page = admin_page(&app, &format!("/admin/orders/{id}/events")).await;
    assert!(page.contains(&paid.id) && page.contains("escrow.cancellation.requested"));
    assert!(page.contains("changed my mind"));
    let page = admin_page(&app, &format!("/admin/orders/{id}?notice=event_processed")).await;
    assert!(
        page.contains("Event reprocessed: applied to its order."),
        "{page}"
    );
    assert!(page.contains("id=\"inbox-events\"") && page.contains(&ask.id));

    // Audited, with the order when there was one.
    let audit = audit_actions(&app.pool).await;
    let reprocess: Vec<_> = audit.iter().filter(|a| a.0 == "reprocess_event").collect();
    assert_eq!(reprocess.len(), 5, "{audit:?}");
    assert_eq!(reprocess[1].1, Some(id));
    assert!(reprocess[2].2.contains("already processed"));
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.0 == "reprocess_unmatched")
            .count(),
        2
    );
    assert_eq!(
        admin_post(&app, "/admin/inbox/no-such-event/reprocess")
            .await
            .status(),
        404
    );
}

async fn job_row(pool: &PgPool, id: i64) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
    let r = sqlx::query("SELECT done_at, abandoned_at FROM outbox_jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[sqlx::test(migrations = "./migrations")]
async fn a_dead_job_is_retried_and_an_open_one_abandoned(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order(
            "chechia-red",
            "jobs@example.tn",
            "66bb000000000000000000e2",
            t(0),
        )
        .await;
    // Delivered since: the retried deliver finds nothing to do and is done at once.
    sqlx::query(
        "UPDATE orders SET status = 'delivered', escrow_status = 'delivered' WHERE id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let dead = add_job(&app.pool, id, "deliver", "dead").await;
    let open = add_job(&app.pool, id, "email_confirmation", "open").await;
    let page = admin_page(&app, "/admin/outbox").await;
    assert!(
        page.contains(&format!("id=\"job-{dead}\""))
            && page.contains(&format!("id=\"job-{open}\""))
    );
    assert!(page.contains("deliver failed: 500"));
    let page = admin_page(&app, "/admin/outbox?state=dead").await;
    assert!(
        page.contains(&format!("id=\"job-{dead}\""))
            && !page.contains(&format!("id=\"job-{open}\""))
    );
    let page = admin_page(&app, "/admin").await;
    assert!(page.contains("id=\"needs-failed_jobs\""));
    assert_eq!(
        row_ids(&admin_page(&app, "/admin/orders?needs=failed_jobs").await),
        [id]
    );

    // Run now: a fresh deliver job, the dead one superseded; out of "failed jobs".
    let back = act(&app, &format!("/admin/outbox/{dead}/retry")).await;
    assert_eq!(back, "/admin/outbox?notice=job_retried");
    let fresh: i64 = sqlx::query_scalar(
        "SELECT max(id) FROM outbox_jobs WHERE order_id = $1 AND kind = 'deliver'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(fresh > dead);
    assert!(row_ids(&admin_page(&app, "/admin/orders?needs=failed_jobs").await).is_empty());
    wait_for("the retried deliver to run", 15, || async {
        job_row(&app.pool, fresh).await.0.map(|_| ())
    })
    .await;
    assert_eq!(
        timeline_count(
            &app.pool,
            id,
            &format!("Outbox job #{dead} (deliver) set to run now")
        )
        .await,
        1
    );
    // A superseded job is closed: retrying it again does nothing.
    let back = act(&app, &format!("/admin/outbox/{dead}/retry")).await;
    assert_eq!(back, "/admin/outbox?notice=job_closed");

    // Abandon: closed for good, noted on the order; twice changes nothing.
    let back = act(&app, &format!("/admin/outbox/{open}/abandon")).await;
    assert_eq!(back, "/admin/outbox?notice=job_abandoned");
    let (done, abandoned) = job_row(&app.pool, open).await;
    assert!(done.is_some() && abandoned.is_some());
    assert_eq!(
        act(&app, &format!("/admin/outbox/{open}/abandon")).await,
        "/admin/outbox?notice=job_closed"
    );
    assert_eq!(
        act(&app, &format!("/admin/outbox/{open}/retry")).await,
        "/admin/outbox?notice=job_closed"
    );
    assert_eq!(
        timeline_count(&app.pool, id, "abandoned by the merchant").await,
        1
    );
    let page = admin_page(&app, "/admin/outbox?notice=job_abandoned&state=done").await;
    assert!(page.contains("Job abandoned"));
    assert!(page.contains(&format!("id=\"job-{open}\"")) && page.contains("abandoned"));
    assert_eq!(
        admin_post(&app, "/admin/outbox/999999/retry")
            .await
            .status(),
        404
    );

    // Audited: who, what, which order.
    let audit = audit_actions(&app.pool).await;
    let actions: Vec<&str> = audit.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(
        actions,
        [
            "retry_job",
            "retry_job",
            "abandon_job",
            "abandon_job",
            "retry_job"
        ]
    );
    assert!(audit.iter().all(|a| a.1 == Some(id)));
    let page = admin_page(&app, &format!("/admin/audit?order={id}")).await;
    assert!(page.contains("abandon_job") && page.contains("127.0.0.1"));
    let page = admin_page(&app, "/admin/audit?action=abandon_job").await;
    assert!(!page.contains("<span class=\"badge\">retry_job</span>"));
}

#[sqlx::test(migrations = "./migrations")]
async fn reconciling_one_order_reads_dhmad_and_says_what_changed(pool: PgPool) {
    let w = world(pool, |_| {}).await;
    let s = w.checkout("chechia-red", "recon@example.tn").await;
    // The buyer pays; the news is lost.
    w.faults(json!({"seed": 1, "webhooks": {"drop": 1.0}}))
        .await;
    w.complete(&s.session_id).await;
    assert_eq!(
        order_status(&w.app.pool, s.order_id).await,
        "awaiting_payment"
    );

    let path = format!("/admin/orders/{}/reconcile", s.order_id);
    let back = act(&w.app, &path).await;
    assert_eq!(
        back,
        format!("/admin/orders/{}?notice=order_changed", s.order_id)
    );
    assert_eq!(order_status(&w.app.pool, s.order_id).await, "paid");
    assert_eq!(
        timeline_count(&w.app.pool, s.order_id, "(back office)").await,
        1
    );
    let page = admin_page(&w.app, &back).await;
    assert!(
        page.contains("Read from DHMAD: the order changed"),
        "{page}"
    );
    // Again: nothing new.
    let back = act(&w.app, &path).await;
    assert!(back.ends_with("?notice=order_same"), "{back}");
    // From the list, the merchant comes back to the list, on the row.
    let r = w
        .http
        .post(w.app.url(&path))
        .bearer_auth(ADMIN_TOKEN)
        .header("referer", w.app.url("/admin/orders?status=paid&notice=old"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["location"],
        format!(
            "/admin/orders?status=paid&notice=order_same#o-{}",
            s.order_id
        )
    );

    // Ship from the list: the row says shipping is requested until DHMAD confirms.
    let back = act(&w.app, &format!("/admin/orders/{}/ship", s.order_id)).await;
    assert_eq!(back, format!("/admin?notice=shipped#o-{}", s.order_id));
    let page = admin_page(&w.app, "/admin?notice=shipped").await;
    assert!(page.contains("Shipping requested; DHMAD confirms in a few seconds."));
    w.wait_status(s.order_id, "delivered").await;

    let audit = audit_actions(&w.app.pool).await;
    let mine: Vec<_> = audit.iter().filter(|a| a.0 == "reconcile_order").collect();
    assert_eq!(mine.len(), 3);
    assert!(mine[0].2.contains("pending → paid"), "{:?}", mine[0]);
    assert!(mine.iter().all(|a| a.1 == Some(s.order_id)));
    assert!(audit
        .iter()
        .any(|a| a.0 == "ship" && a.1 == Some(s.order_id)));
}

#[sqlx::test(migrations = "./migrations")]
async fn reconciling_while_dhmad_is_down_says_so(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let id = app
        .seed_order(
            "chechia-red",
            "down@example.tn",
            "66bb000000000000000000e3",
            t(0),
        )
        .await;
    let back = act(&app, &format!("/admin/orders/{id}/reconcile")).await;
    assert_eq!(back, format!("/admin/orders/{id}?notice=order_failed"));
    let audit = audit_actions(&app.pool).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].0, "reconcile_order");
    assert!(audit[0].2.starts_with("failed"), "{:?}", audit[0]);

    // The whole pass reports its counts on the next page.
    let back = act(&app, "/admin/reconcile").await;
    assert!(
        back.starts_with("/admin?notice=reconciled&checked=1&changed=0&failed=1&flagged=0"),
        "{back}"
    );
    let page = admin_page(&app, &back).await;
    assert!(
        page.contains("Reconciliation done: 1 order(s) checked, 0 changed, 1 failed, 0 flagged"),
        "{page}"
    );
    // Only fixed texts: an unknown code shows nothing, counts are numbers.
    let page = admin_page(&app, "/admin?notice=%3Cscript%3E").await;
    assert!(!page.contains("<script>") && !page.contains("class=\"flash"));
}

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
    let page = b.wait_for_text("Reconcile now", 10).await;
    assert!(
        page.contains("1\nPaid, not shipped") || page.contains("1 Paid, not shipped"),
        "{page}"
    );
    b.click("#needs-ship").await;
    b.wait_for_text("Mark shipped", 10).await;
    assert!(b.url().await.ends_with("/admin/orders?needs=ship"));
    b.click(&format!("#o-{} form[action$='/ship'] button", s.order_id))
        .await;
    let page = b
        .wait_for_text("Shipping requested; DHMAD confirms in a few seconds.", 10)
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
    let rows = wait_for("the calls to be recorded", 10, || async {
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
