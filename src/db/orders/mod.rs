//! `orders`. Status and mode are Postgres enums read into [`OrderStatus`] and [`Mode`] (the
//! `AS "status: OrderStatus"` overrides tell sqlx which Rust type decodes them).
//!
//! Reads here; writes by purpose in the submodules, re-exported so callers say
//! `db::orders::insert_open` wherever it lives.

mod creation;
mod facts;
mod sync;

pub use creation::*;
pub use facts::*;
pub use sync::*;

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::orders::state_machine::{Cancellation, Mode, Order, OrderStatus};

/// The owner's open order for this product and buyer. The status list is `OrderStatus::OPEN`,
/// written out so the partial unique index `orders_one_open_per_owner` serves the lookup.
pub async fn find_open(
    e: impl PgExecutor<'_>,
    owner_key: &str,
    sku: &str,
    email: &str,
) -> sqlx::Result<Option<Order>> {
    sqlx::query_as!(
        Order,
        r#"SELECT id, sku, mode AS "mode: Mode", buyer_email, amount, currency,
                status AS "status: OrderStatus", escrow_id, escrow_status, escrow_updated_at,
                failure_reason, deposit_rejection_reason, digital_code, last_synced_at,
                escrow_attempted_at, created_at, updated_at, attention, payment_review_since,
                cancellation AS "cancellation: Cancellation", cancellation_reason,
                delivery_rejection_reason, proof_required, contract_buyer_signed,
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline,
                dispute_ticket_id
           FROM orders WHERE owner_key = $1 AND sku = $2 AND buyer_email = $3
            AND status IN ('new', 'creating_escrow', 'escrow_failed', 'needs_reconciliation', 'awaiting_payment')"#,
        owner_key,
        sku,
        email
    )
    .fetch_optional(e)
    .await
}

/// The owner's latest order for this product and buyer that was paid for (`OrderStatus::
/// is_funded`, written out for the partial index `orders_funded_per_owner`).
pub async fn find_funded(
    e: impl PgExecutor<'_>,
    owner_key: &str,
    sku: &str,
    email: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM orders WHERE owner_key = $1 AND sku = $2 AND buyer_email = $3
            AND status IN ('paid', 'delivered', 'disputed', 'completed')
          ORDER BY created_at DESC LIMIT 1",
        owner_key,
        sku,
        email
    )
    .fetch_optional(e)
    .await
}

pub async fn get(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Order>> {
    sqlx::query_as!(
        Order,
        r#"SELECT id, sku, mode AS "mode: Mode", buyer_email, amount, currency,
                status AS "status: OrderStatus", escrow_id, escrow_status, escrow_updated_at,
                failure_reason, deposit_rejection_reason, digital_code, last_synced_at,
                escrow_attempted_at, created_at, updated_at, attention, payment_review_since,
                cancellation AS "cancellation: Cancellation", cancellation_reason,
                delivery_rejection_reason, proof_required, contract_buyer_signed,
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline,
                dispute_ticket_id
           FROM orders WHERE id = $1"#,
        id
    )
    .fetch_optional(e)
    .await
}

/// Reads and row-locks the order until the transaction ends: every change to an order's state
/// happens under this lock, so concurrent webhooks, callbacks and jobs serialize.
///
/// `FOR NO KEY UPDATE`, the lock an UPDATE of the row takes anyway: rows that reference the
/// order (timeline, inbox, jobs) take `KEY SHARE` on it, which it lets through. With
/// `FOR UPDATE`, two webhooks for one order, each having stored its inbox row (referencing
/// the order) first, would wait for each other: a deadlock.
pub async fn lock(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Order>> {
    sqlx::query_as!(
        Order,
        r#"SELECT id, sku, mode AS "mode: Mode", buyer_email, amount, currency,
                status AS "status: OrderStatus", escrow_id, escrow_status, escrow_updated_at,
                failure_reason, deposit_rejection_reason, digital_code, last_synced_at,
                escrow_attempted_at, created_at, updated_at, attention, payment_review_since,
                cancellation AS "cancellation: Cancellation", cancellation_reason,
                delivery_rejection_reason, proof_required, contract_buyer_signed,
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline,
                dispute_ticket_id
           FROM orders WHERE id = $1 FOR NO KEY UPDATE"#,
        id
    )
    .fetch_optional(e)
    .await
}

/// [`lock`] by the escrow's id.
pub async fn lock_by_escrow(
    e: impl PgExecutor<'_>,
    escrow_id: &str,
) -> sqlx::Result<Option<Order>> {
    sqlx::query_as!(
        Order,
        r#"SELECT id, sku, mode AS "mode: Mode", buyer_email, amount, currency,
                status AS "status: OrderStatus", escrow_id, escrow_status, escrow_updated_at,
                failure_reason, deposit_rejection_reason, digital_code, last_synced_at,
                escrow_attempted_at, created_at, updated_at, attention, payment_review_since,
                cancellation AS "cancellation: Cancellation", cancellation_reason,
                delivery_rejection_reason, proof_required, contract_buyer_signed,
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline,
                dispute_ticket_id
           FROM orders WHERE escrow_id = $1 FOR NO KEY UPDATE"#,
        escrow_id
    )
    .fetch_optional(e)
    .await
}
