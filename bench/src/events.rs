//! Seeded orders and the signed webhooks that pay them.
//!
//! Every seeded order is known by one number `i`: its id, its escrow id and the id of the event
//! that pays it derive from `i`, in Rust (for the HTTP side) and in SQL (for pgbench, which can
//! only compute numbers client-side). Ids have the lengths of the real ones (a UUID, DHMAD's
//! 24-character escrow ids, a 36-character event id).

use dhmad::{webhook::SignedDelivery, WebhookEnvelope};
use serde_json::{json, Value};
use sqlx::PgPool;
use time::OffsetDateTime;

/// The seeded product: the instant one, whose payment runs the whole fulfilment path.
pub const SKU: &str = "ai-credits-500";
pub const PRODUCT_NAME: &str = "AI credits — 500";
/// Its catalog code.
pub const PRODUCT_SKU: &str = "ai-credits-500";

pub fn order_id(i: u64) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

pub fn escrow_id(i: u64) -> String {
    format!("b{i:023}")
}

pub fn event_id(i: u64) -> String {
    format!("e{i:035}")
}

/// The same ids in SQL, from the pgbench variable `:i`.
pub const SQL_ORDER_ID: &str = "('00000000-0000-4000-8000-' || lpad(:i::text, 12, '0'))::uuid";
pub const SQL_ESCROW_ID: &str = "('b' || lpad(:i::text, 23, '0'))";
pub const SQL_EVENT_ID: &str = "('e' || lpad(:i::text, 35, '0'))";

/// Builds the `escrow.status.updated` (pending → paid) delivery of order `i`, as DHMAD sends it.
pub struct Webhooks {
    secret: String,
    /// An escrow as the sandbox returned it at creation, made paid; id and title are per order.
    escrow: Value,
    /// The escrow's `updatedAt`: newer than the seeded orders' clock.
    updated_at: OffsetDateTime,
}

impl Webhooks {
    pub fn new(secret: &str, created: &dhmad::Escrow, updated_at: OffsetDateTime) -> Self {
        let mut escrow = serde_json::to_value(created).unwrap_or_else(|_| json!({}));
        let at = dhmad::iso::format(updated_at);
        escrow["status"] = json!("paid");
        escrow["oldStatus"] = json!("pending");
        // Paid from a DHMAD wallet: the escrow names its buyer (a guest's names none, §2.1).
        escrow["buyer"] = json!({"_id": "66aa0000000000000000000b", "email": "buyer@example.tn"});
        escrow["updatedAt"] = json!(at);
        escrow["paidAt"] = json!(at);
        Self {
            secret: secret.to_owned(),
            escrow,
            updated_at,
        }
    }

    fn envelope(&self, i: u64) -> WebhookEnvelope {
        let mut escrow = self.escrow.clone();
        escrow["id"] = json!(escrow_id(i));
        escrow["title"] = json!(format!("{PRODUCT_NAME} · order {}", order_id(i)));
        WebhookEnvelope {
            id: event_id(i),
            event_type: "escrow.status.updated".into(),
            timestamp: Some(self.updated_at),
            data: json!({ "escrow": escrow }),
        }
    }

    /// The delivery of order `i`'s payment, signed now (the shop accepts ±5 minutes).
    pub fn signed(&self, i: u64) -> SignedDelivery {
        SignedDelivery::new(&self.secret, &self.envelope(i), OffsetDateTime::now_utc())
    }
}

/// Seeds orders `lo..=hi` as the checkout leaves them once the buyer is on DHMAD's page: an
/// instant order awaiting payment with its escrow, its three timeline lines, its pending
/// session and its sent confirmation e-mail, created `at`. They were last synced and their
/// session ends after `now`: no background job of a storefront started later (the capture's)
/// has anything to do with them.
pub async fn seed(
    pool: &PgPool,
    lo: u64,
    hi: u64,
    at: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    let (lo, hi) = (lo as i64, hi as i64);
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO orders (id, sku, mode, buyer_email, amount, currency, status, owner_key,
                             escrow_id, escrow_status, escrow_updated_at, last_synced_at,
                             escrow_attempted_at, created_at, updated_at)
         SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, $3, 'instant',
                'buyer' || i || '@bench.example', 15.000, 'TND', 'awaiting_payment',
                'once:bench-' || i, 'b' || lpad(i::text, 23, '0'), 'pending', $4, $5, $4, $4, $4
           FROM generate_series($1::bigint, $2::bigint) i",
    )
    .bind(lo)
    .bind(hi)
    .bind(SKU)
    .bind(at)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO order_events (order_id, kind, detail, created_at)
         SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, k.kind,
                replace(k.detail, '@ESC@', 'b' || lpad(i::text, 23, '0')), $3
           FROM generate_series($1::bigint, $2::bigint) i,
                (VALUES (1, 'order_created', 'Order for AI credits — 500 created'),
                        (2, 'escrow_created', 'DHMAD escrow @ESC@ created'),
                        (3, 'session_opened', 'Checkout session opened (accept_pay)')) k(n, kind, detail)
          ORDER BY i, k.n",
    )
    .bind(lo)
    .bind(hi)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO checkout_sessions (session_id, order_id, escrow_id, action, url, status,
                                        expires_at, created_at)
         SELECT 's' || lpad(i::text, 35, '0'),
                ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
                'b' || lpad(i::text, 23, '0'), 'accept_pay',
                'http://127.0.0.1/checkout/s' || lpad(i::text, 35, '0'), 'pending',
                $4 + interval '2 hours', $3
           FROM generate_series($1::bigint, $2::bigint) i",
    )
    .bind(lo)
    .bind(hi)
    .bind(at)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO outbox_jobs (kind, order_id, attempts, run_after, done_at, created_at)
         SELECT 'email_confirmation',
                ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 1, $3, $3, $3
           FROM generate_series($1::bigint, $2::bigint) i",
    )
    .bind(lo)
    .bind(hi)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// What the database holds for orders `lo..=hi` once their payment events were applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub inbox_processed: i64,
    pub orders_paid_with_code: i64,
    pub deliver_jobs: i64,
    pub timeline_lines: i64,
}

pub async fn applied(pool: &PgPool, lo: u64, hi: u64) -> sqlx::Result<Applied> {
    let (lo_o, hi_o) = (order_id(lo), order_id(hi));
    let (lo_e, hi_e) = (event_id(lo), event_id(hi));
    let row: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT
           (SELECT count(*) FROM webhook_inbox
             WHERE event_id COLLATE \"C\" BETWEEN $3 AND $4 AND outcome = 'processed'
               AND order_id IS NOT NULL),
           (SELECT count(*) FROM orders WHERE id BETWEEN $1::uuid AND $2::uuid
               AND status = 'paid' AND digital_code IS NOT NULL),
           (SELECT count(*) FROM outbox_jobs WHERE order_id BETWEEN $1::uuid AND $2::uuid
               AND kind = 'deliver' AND done_at IS NULL),
           (SELECT count(*) FROM order_events WHERE order_id BETWEEN $1::uuid AND $2::uuid)",
    )
    .bind(lo_o)
    .bind(hi_o)
    .bind(lo_e)
    .bind(hi_e)
    .fetch_one(pool)
    .await?;
    Ok(Applied {
        inbox_processed: row.0,
        orders_paid_with_code: row.1,
        deliver_jobs: row.2,
        timeline_lines: row.3,
    })
}

/// Rows ever inserted into the inbox, rolled back or not, and transactions rolled back in this
/// database, as the statistics collector has them: what the backends have reported so far
/// (each reports at a transaction's end at most once a second, and as it exits).
pub async fn inbox_inserts_and_rollbacks(pool: &PgPool) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT (SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'webhook_inbox'),
                (SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database())",
    )
    .fetch_one(pool)
    .await
}

/// Rows that any write path adds: a duplicate delivery must change none of them.
pub async fn write_counts(pool: &PgPool) -> sqlx::Result<(i64, i64, i64)> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM webhook_inbox), (SELECT count(*) FROM order_events),
                (SELECT count(*) FROM outbox_jobs)",
    )
    .fetch_one(pool)
    .await
}
