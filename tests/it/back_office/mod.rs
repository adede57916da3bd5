//! The back office (issue 12): the order list's filters (each needs-action filter against the
//! order's state machine), search, keyset pages and CSV export; the inbox console's
//! reprocessing; the outbox console's retry and abandon; reconciliation reports; the audit
//! trail; the dashboard's counts. Queries here are unchecked (`sqlx::query`), so this module
//! needs no `.sqlx/` data of its own.

mod consoles;
mod dashboard;
mod order_list;
mod reconciling;

use std::collections::BTreeSet;

use crate::common::*;
use sqlx::{PgPool, Row};
use storefront::db::admin_views::{self, OrderFilter};
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

pub(crate) async fn admin_page(app: &TestApp, path: &str) -> String {
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
                             attention, contract_seller_signed, created_at)
         SELECT gen_random_uuid(), 'chechia-red', m, 'seed' || n || '@example.tn', 10, 'TND', s,
                'seed:' || n, pr, ph, c, prs, att,
                (ARRAY[NULL, false, true]::boolean[])[1 + n % 3],
                now() - n * interval '1 second'
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
