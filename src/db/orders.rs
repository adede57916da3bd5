//! `orders`. Status and mode are Postgres enums read into [`OrderStatus`] and [`Mode`] (the
//! `AS "status: OrderStatus"` overrides tell sqlx which Rust type decodes them).

use rust_decimal::Decimal;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use super::events::NewEvent;
use crate::orders::state_machine::{Cancellation, Mode, Order, OrderStatus};

/// The DHMAD calls a new order takes as it is written (0 when no budget is kept).
#[derive(Debug, Clone, Copy)]
pub struct ClaimCalls {
    pub calls: i32,
    pub reuse_after: std::time::Duration,
}

pub struct NewOrder<'a> {
    pub sku: &'a str,
    pub mode: Mode,
    pub buyer_email: &'a str,
    pub amount: Decimal,
    pub currency: &'a str,
    /// Who may continue it while it is open (see `orders::checkout::Owner`).
    pub owner_key: &'a str,
    /// Sold with DHMAD's purchase-proof gate.
    pub proof_required: bool,
    /// Its escrow is to be created right away if DHMAD's budget has the calls: taken in the
    /// same statement (as a new checkout: never ahead of the line), the order is written
    /// `creating_escrow` (the creation claimed, as [`claim_creation`] would); else `new`, and
    /// in line. `None`: written `new`, the caller continues it.
    pub claim: Option<ClaimCalls>,
    /// Its first timeline line, written with it.
    pub created: NewEvent<'a>,
    /// The job queued with it (the confirmation e-mail), if any.
    pub job: Option<&'a str>,
}

/// Inserts an open order with its first timeline line and job (and, with `claim`, its DHMAD
/// calls or its place in line), in one statement, or returns `None` when its owner already has
/// one for this product and buyer (the partial unique index decides, so two concurrent
/// checkouts cannot both insert).
pub async fn insert_open(e: impl PgExecutor<'_>, o: &NewOrder<'_>) -> sqlx::Result<Option<Order>> {
    let (claim, calls, reuse_after_ms) = match o.claim {
        Some(c) => (true, c.calls, super::budget::millis(c.reuse_after)),
        None => (false, 0, 0),
    };
    sqlx::query_as!(
        Order,
        r#"WITH go AS (
               SELECT $9 AND take_dhmad_budget($14, $15, false, 0) AS claimed),
           o AS (
               INSERT INTO orders (id, sku, mode, buyer_email, amount, currency, status, owner_key,
                                   proof_required, escrow_attempted_at)
               SELECT $1, $2, $3, $4, $5, $6,
                      CASE WHEN go.claimed THEN 'creating_escrow'::order_status ELSE 'new' END,
                      $7, $8, CASE WHEN go.claimed THEN now() END
               FROM go
               ON CONFLICT DO NOTHING
               RETURNING *),
           line AS (
               INSERT INTO order_events (order_id, kind, detail, public)
               SELECT id, $10, $11, $12 FROM o),
           job AS (
               INSERT INTO outbox_jobs (kind, order_id)
               SELECT $13::text, id FROM o WHERE $13::text IS NOT NULL),
           queued AS (
               INSERT INTO checkout_queue (order_id) SELECT id FROM o WHERE $9 AND status = 'new')
           SELECT id AS "id!", sku AS "sku!", mode AS "mode!: Mode", buyer_email AS "buyer_email!",
                amount AS "amount!", currency AS "currency!", status AS "status!: OrderStatus",
                escrow_id, escrow_status, escrow_updated_at,
                failure_reason, deposit_rejection_reason, digital_code, last_synced_at,
                escrow_attempted_at, created_at AS "created_at!", updated_at AS "updated_at!",
                attention, payment_review_since,
                cancellation AS "cancellation: Cancellation", cancellation_reason,
                delivery_rejection_reason, proof_required AS "proof_required!",
                contract_buyer_signed, contract_seller_signed, proof_phase, proof_upload_deadline,
                proof_review_deadline
           FROM o"#,
        Uuid::new_v4(),
        o.sku,
        o.mode as Mode,
        o.buyer_email,
        o.amount,
        o.currency,
        o.owner_key,
        o.proof_required,
        claim,
        o.created.kind,
        o.created.detail,
        o.created.public,
        o.job,
        calls,
        reuse_after_ms
    )
    .fetch_optional(e)
    .await
}

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
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline
           FROM orders WHERE owner_key = $1 AND sku = $2 AND buyer_email = $3
            AND status IN ('new', 'creating_escrow', 'escrow_failed', 'needs_reconciliation', 'awaiting_payment')"#,
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
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline
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
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline
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
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline
           FROM orders WHERE escrow_id = $1 FOR NO KEY UPDATE"#,
        escrow_id
    )
    .fetch_optional(e)
    .await
}

/// Marks the order as having an escrow creation in flight. Only one caller wins.
pub async fn claim_creation(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let row = sqlx::query_scalar!(
        "UPDATE orders SET status = 'creating_escrow', escrow_attempted_at = now(), updated_at = now()
         WHERE id = $1 AND status IN ('new', 'escrow_failed')
         RETURNING id",
        id
    )
    .fetch_optional(e)
    .await?;
    Ok(row.is_some())
}

/// Undoes [`claim_creation`] when the create call was never sent (DHMAD's budget was spent).
pub async fn unclaim_creation(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET status = 'new', escrow_attempted_at = NULL, updated_at = now()
         WHERE id = $1 AND status = 'creating_escrow'",
        id
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Attaches the escrow DHMAD created (or that reconciliation found) to an order whose creation
/// was in flight or in doubt, and returns the order as it now is; `None` if it had moved on.
pub async fn record_escrow(
    e: impl PgExecutor<'_>,
    id: Uuid,
    escrow_id: &str,
    escrow_status: &str,
    escrow_updated_at: Option<OffsetDateTime>,
    line: &NewEvent<'_>,
) -> sqlx::Result<Option<Order>> {
    // With its timeline line, in one statement.
    sqlx::query_as!(
        Order,
        r#"WITH o AS (
               UPDATE orders SET escrow_id = $2, escrow_status = $3, escrow_updated_at = $4,
                    status = 'awaiting_payment', failure_reason = NULL, last_synced_at = now(),
                    updated_at = now()
               WHERE id = $1 AND status IN ('creating_escrow', 'needs_reconciliation')
               RETURNING *),
           line AS (
               INSERT INTO order_events (order_id, kind, detail, public)
               SELECT id, $5, $6, $7 FROM o)
           SELECT id AS "id!", sku AS "sku!", mode AS "mode!: Mode", buyer_email AS "buyer_email!",
                amount AS "amount!", currency AS "currency!", status AS "status!: OrderStatus",
                escrow_id, escrow_status, escrow_updated_at,
                failure_reason, deposit_rejection_reason, digital_code, last_synced_at,
                escrow_attempted_at, created_at AS "created_at!", updated_at AS "updated_at!",
                attention, payment_review_since,
                cancellation AS "cancellation: Cancellation", cancellation_reason,
                delivery_rejection_reason, proof_required AS "proof_required!",
                contract_buyer_signed, contract_seller_signed, proof_phase, proof_upload_deadline,
                proof_review_deadline
           FROM o"#,
        id,
        escrow_id,
        escrow_status,
        escrow_updated_at,
        line.kind,
        line.detail,
        line.public
    )
    .fetch_optional(e)
    .await
}

/// Records the escrow DHMAD created for an order whose creation was in flight, and the first
/// session opened on it, with their timeline lines (in order), in one statement. `false`
/// (nothing written) if the order had moved on.
pub async fn record_escrow_and_session(
    e: impl PgExecutor<'_>,
    id: Uuid,
    escrow_status: &str,
    escrow_updated_at: Option<OffsetDateTime>,
    s: &super::sessions::NewSession<'_>,
    lines: &[NewEvent<'_>],
) -> sqlx::Result<bool> {
    let kinds: Vec<&str> = lines.iter().map(|l| l.kind).collect();
    let details: Vec<&str> = lines.iter().map(|l| l.detail.as_str()).collect();
    let publics: Vec<Option<&str>> = lines.iter().map(|l| l.public).collect();
    let recorded = sqlx::query_scalar!(
        r#"WITH o AS (
               UPDATE orders SET escrow_id = $2, escrow_status = $3, escrow_updated_at = $4,
                    status = 'awaiting_payment', failure_reason = NULL, last_synced_at = now(),
                    updated_at = now()
               WHERE id = $1 AND status IN ('creating_escrow', 'needs_reconciliation')
               RETURNING id),
           s AS (
               INSERT INTO checkout_sessions
                      (session_id, order_id, escrow_id, action, url, expires_at, for_merchant)
               SELECT $5, id, $2, $6, $7, $8, $9 FROM o),
           lines AS (
               INSERT INTO order_events (order_id, kind, detail, public)
               SELECT o.id, l.kind, l.detail, l.public
               FROM o, unnest($10::text[], $11::text[], $12::text[]) WITH ORDINALITY
                       AS l (kind, detail, public, n)
               ORDER BY l.n)
           SELECT count(*) AS "recorded!" FROM o"#,
        id,
        s.escrow_id,
        escrow_status,
        escrow_updated_at,
        s.session_id,
        s.action,
        s.url,
        s.expires_at,
        s.for_merchant,
        &kinds as &[&str],
        &details as &[&str],
        &publics as &[Option<&str>]
    )
    .fetch_one(e)
    .await?;
    Ok(recorded == 1)
}

/// Records why the last attempt failed; `status` says whether it is safe to retry.
pub async fn record_failure(
    e: impl PgExecutor<'_>,
    id: Uuid,
    status: OrderStatus,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET status = $2, failure_reason = $3, updated_at = now() WHERE id = $1",
        id,
        status as OrderStatus,
        reason
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Stores a note without changing the status (e.g. a session could not be opened).
pub async fn set_failure_reason(
    e: impl PgExecutor<'_>,
    id: Uuid,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET failure_reason = $2, updated_at = now() WHERE id = $1",
        id,
        reason
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Moves the order to `status` as DHMAD's snapshot says, and returns it as it now is.
/// `digital_code`: the instant good issued with this change, kept only if the order has none
/// (one statement where the payment and the good are one step).
pub async fn apply_snapshot(
    e: impl PgExecutor<'_>,
    id: Uuid,
    status: OrderStatus,
    escrow_status: &str,
    escrow_updated_at: Option<OffsetDateTime>,
    digital_code: Option<&str>,
) -> sqlx::Result<Order> {
    sqlx::query_as!(
        Order,
        r#"UPDATE orders SET status = $2, escrow_status = $3,
                escrow_updated_at = COALESCE($4, escrow_updated_at),
                digital_code = COALESCE(digital_code, $5),
                last_synced_at = now(), updated_at = now(), sync_failures = 0, next_sync_at = NULL
           WHERE id = $1
           RETURNING id, sku, mode AS "mode: Mode", buyer_email, amount, currency,
                status AS "status: OrderStatus", escrow_id, escrow_status, escrow_updated_at,
                failure_reason, deposit_rejection_reason, digital_code, last_synced_at,
                escrow_attempted_at, created_at, updated_at, attention, payment_review_since,
                cancellation AS "cancellation: Cancellation", cancellation_reason,
                delivery_rejection_reason, proof_required, contract_buyer_signed,
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline"#,
        id,
        status as OrderStatus,
        escrow_status,
        escrow_updated_at,
        digital_code
    )
    .fetch_one(e)
    .await
}

/// Notes that DHMAD confirmed the status we have. A newer `updatedAt` still moves our clock
/// forward (never back), so an older snapshot arriving later cannot undo what DHMAD said since;
/// `reset_clock` replaces a clock that cannot be right (it was in the future).
pub async fn touch_synced(
    e: impl PgExecutor<'_>,
    id: Uuid,
    escrow_updated_at: Option<OffsetDateTime>,
    reset_clock: bool,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET last_synced_at = now(), sync_failures = 0, next_sync_at = NULL,
                escrow_updated_at = CASE WHEN $3 THEN COALESCE($2, escrow_updated_at)
                                         ELSE GREATEST(escrow_updated_at, $2) END
         WHERE id = $1",
        id,
        escrow_updated_at,
        reset_clock
    )
    .execute(e)
    .await?;
    Ok(())
}

pub async fn set_digital_code(e: impl PgExecutor<'_>, id: Uuid, code: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET digital_code = $2, updated_at = now() WHERE id = $1 AND digital_code IS NULL",
        id,
        code
    )
    .execute(e)
    .await?;
    Ok(())
}

pub async fn set_deposit_rejection(
    e: impl PgExecutor<'_>,
    id: Uuid,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET deposit_rejection_reason = $2, updated_at = now() WHERE id = $1",
        id,
        reason
    )
    .execute(e)
    .await?;
    Ok(())
}

pub async fn list_recent(e: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<Order>> {
    sqlx::query_as!(
        Order,
        r#"SELECT id, sku, mode AS "mode: Mode", buyer_email, amount, currency,
                status AS "status: OrderStatus", escrow_id, escrow_status, escrow_updated_at,
                failure_reason, deposit_rejection_reason, digital_code, last_synced_at,
                escrow_attempted_at, created_at, updated_at, attention, payment_review_since,
                cancellation AS "cancellation: Cancellation", cancellation_reason,
                delivery_rejection_reason, proof_required, contract_buyer_signed,
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline
           FROM orders ORDER BY created_at DESC LIMIT $1"#,
        limit
    )
    .fetch_all(e)
    .await
}

/// Open orders with an escrow that are due a look at DHMAD, most urgent first: "hot" ones (a
/// buyer may be paying right now, or the money moved within the hour) after `hot_quiet` without
/// news, the others after `cold_quiet`. Orders in backoff after a failed look, and orders
/// flagged for the merchant, wait. The settled list is `OrderStatus::SETTLED`, written out so
/// the partial index `orders_reconcile` serves it.
pub async fn list_due_for_sync(
    e: impl PgExecutor<'_>,
    hot_quiet: time::Duration,
    cold_quiet: time::Duration,
    limit: i64,
) -> sqlx::Result<Vec<Order>> {
    let (hot_ms, cold_ms) = (
        hot_quiet.whole_milliseconds() as i64,
        cold_quiet.whole_milliseconds() as i64,
    );
    sqlx::query_as!(
        Order,
        r#"WITH candidates AS (
             SELECT o.*,
                    (o.status IN ('paid', 'delivered') AND o.updated_at > now() - interval '1 hour')
                    OR (o.status = 'awaiting_payment' AND EXISTS (
                          SELECT 1 FROM checkout_sessions s
                           WHERE s.order_id = o.id AND s.status = 'pending'
                             AND s.expires_at > now() - interval '10 minutes')) AS hot
               FROM orders o
              WHERE o.escrow_id IS NOT NULL AND o.status NOT IN ('completed', 'cancelled')
                AND o.attention IS NULL
                AND (o.next_sync_at IS NULL OR o.next_sync_at <= now())
                AND COALESCE(o.last_synced_at, o.created_at) <= now() - $1::bigint * interval '1 millisecond'
           )
           SELECT id, sku, mode AS "mode: Mode", buyer_email, amount, currency,
                status AS "status: OrderStatus", escrow_id, escrow_status, escrow_updated_at,
                failure_reason, deposit_rejection_reason, digital_code, last_synced_at,
                escrow_attempted_at, created_at, updated_at, attention, payment_review_since,
                cancellation AS "cancellation: Cancellation", cancellation_reason,
                delivery_rejection_reason, proof_required, contract_buyer_signed,
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline
             FROM candidates
            WHERE hot OR COALESCE(last_synced_at, created_at) <= now() - $2::bigint * interval '1 millisecond'
            ORDER BY hot DESC, COALESCE(last_synced_at, created_at)
            LIMIT $3"#,
        hot_ms,
        cold_ms,
        limit
    )
    .fetch_all(e)
    .await
}

/// A look at DHMAD failed: the order waits `backoff` before the next one, so a few orders
/// DHMAD keeps failing on cannot fill every pass.
pub async fn sync_failed(
    e: impl PgExecutor<'_>,
    id: Uuid,
    backoff: time::Duration,
) -> sqlx::Result<()> {
    let backoff_ms = backoff.whole_milliseconds() as i64;
    sqlx::query!(
        "UPDATE orders SET sync_failures = sync_failures + 1,
                next_sync_at = now() + $2::bigint * interval '1 millisecond'
         WHERE id = $1",
        id,
        backoff_ms
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Flags the order for the merchant (DHMAD no longer knows its escrow, …): the reconciler stops
/// asking, the back office shows why.
pub async fn flag_attention(e: impl PgExecutor<'_>, id: Uuid, why: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET attention = $2, updated_at = now() WHERE id = $1",
        id,
        why
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Failed looks before this one, for the backoff.
pub async fn sync_failures(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<i32> {
    sqlx::query_scalar!("SELECT sync_failures FROM orders WHERE id = $1", id)
        .fetch_one(e)
        .await
}

/// Paid instant orders owed a `deliver` with none queued: their last job gave up at least
/// `after` ago (or there never was one). The reconciler queues a new one. A job the merchant
/// abandoned is their decision: never queued again.
pub async fn list_missing_deliver(
    e: impl PgExecutor<'_>,
    after: time::Duration,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    let after_ms = after.whole_milliseconds() as i64;
    sqlx::query_scalar!(
        "SELECT o.id FROM orders o
          WHERE o.status = 'paid' AND o.mode = 'instant'
            AND NOT EXISTS (SELECT 1 FROM outbox_jobs j
                             WHERE j.order_id = o.id AND j.kind = 'deliver'
                               AND (j.done_at IS NULL
                                    OR j.gave_up_at IS NULL
                                    OR j.abandoned_at IS NOT NULL
                                    OR j.gave_up_at > now() - $1::bigint * interval '1 millisecond'))
          ORDER BY o.updated_at LIMIT $2",
        after_ms,
        limit
    )
    .fetch_all(e)
    .await
}

/// Orders whose escrow creation has an unknown outcome: a timeout, or a creation still marked
/// in flight long after any answer could have come (the process died mid-call).
pub async fn list_unknown_creation(
    e: impl PgExecutor<'_>,
    in_flight_before: OffsetDateTime,
    limit: i64,
) -> sqlx::Result<Vec<Order>> {
    sqlx::query_as!(
        Order,
        r#"SELECT id, sku, mode AS "mode: Mode", buyer_email, amount, currency,
                status AS "status: OrderStatus", escrow_id, escrow_status, escrow_updated_at,
                failure_reason, deposit_rejection_reason, digital_code, last_synced_at,
                escrow_attempted_at, created_at, updated_at, attention, payment_review_since,
                cancellation AS "cancellation: Cancellation", cancellation_reason,
                delivery_rejection_reason, proof_required, contract_buyer_signed,
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline
           FROM orders
          WHERE status = 'needs_reconciliation'
             OR (status = 'creating_escrow' AND escrow_attempted_at <= $1)
          ORDER BY created_at LIMIT $2"#,
        in_flight_before,
        limit
    )
    .fetch_all(e)
    .await
}

/// Turns an abandoned in-flight creation into one that needs reconciliation.
pub async fn mark_unknown_if_in_flight(
    e: impl PgExecutor<'_>,
    id: Uuid,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET status = 'needs_reconciliation', failure_reason = $2, updated_at = now()
         WHERE id = $1 AND status = 'creating_escrow'",
        id,
        reason
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Binds an `Idempotency-Key` (hashed) to a request fingerprint on first use and returns the
/// fingerprint it is bound to: the caller's own, or the one it was first used with.
pub async fn bind_checkout_key(
    e: impl PgExecutor<'_>,
    key_hash: &str,
    fingerprint: &str,
) -> sqlx::Result<String> {
    // The no-op update makes RETURNING yield the existing row on conflict, in one statement.
    sqlx::query_scalar!(
        "INSERT INTO checkout_keys (key_hash, fingerprint) VALUES ($1, $2)
         ON CONFLICT (key_hash) DO UPDATE SET key_hash = EXCLUDED.key_hash
         RETURNING fingerprint",
        key_hash,
        fingerprint
    )
    .fetch_one(e)
    .await
}

/// Orders whose escrow creation was reconciled since `since`, with the escrow they kept.
pub async fn reconciled_since(
    e: impl PgExecutor<'_>,
    since: OffsetDateTime,
) -> sqlx::Result<Vec<(Uuid, Option<String>)>> {
    let rows = sqlx::query!(
        "SELECT DISTINCT o.id, o.escrow_id FROM orders o
           JOIN order_events ev ON ev.order_id = o.id
          WHERE ev.kind = 'escrow_reconciled' AND ev.created_at > $1",
        since
    )
    .fetch_all(e)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.escrow_id)).collect())
}

pub async fn set_delivery_rejection(
    e: impl PgExecutor<'_>,
    id: Uuid,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET delivery_rejection_reason = COALESCE($2, 'no reason given'),
                updated_at = now()
         WHERE id = $1",
        id,
        reason
    )
    .execute(e)
    .await?;
    Ok(())
}

pub async fn set_cancellation(
    e: impl PgExecutor<'_>,
    id: Uuid,
    state: Cancellation,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET cancellation = $2, cancellation_reason = COALESCE($3, cancellation_reason),
                updated_at = now()
         WHERE id = $1",
        id,
        state as Cancellation,
        reason
    )
    .execute(e)
    .await?;
    Ok(())
}

/// DHMAD changed the escrow's amount (a pending escrow edited on its side).
pub async fn set_amount(e: impl PgExecutor<'_>, id: Uuid, amount: Decimal) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET amount = $2, updated_at = now() WHERE id = $1",
        id,
        amount
    )
    .execute(e)
    .await?;
    Ok(())
}

/// A guest's payment proof now awaits DHMAD's approval (`since`), or no longer does (`None`).
pub async fn set_payment_review(
    e: impl PgExecutor<'_>,
    id: Uuid,
    since: Option<OffsetDateTime>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET payment_review_since = $2, updated_at = now() WHERE id = $1",
        id,
        since
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Unpaid orders with an escrow and no payment page opened, or open, within `grace`: the buyer
/// walked away. A guest proof under review is never abandoned.
pub async fn list_abandoned(
    e: impl PgExecutor<'_>,
    grace: time::Duration,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    let grace_ms = grace.whole_milliseconds() as i64;
    sqlx::query_scalar!(
        "SELECT o.id FROM orders o
          WHERE o.status = 'awaiting_payment' AND o.escrow_id IS NOT NULL
            AND o.payment_review_since IS NULL
            AND o.updated_at < now() - $1::bigint * interval '1 millisecond'
            AND NOT EXISTS (SELECT 1 FROM checkout_sessions s
                             WHERE s.order_id = o.id AND s.action = 'accept_pay'
                               AND (s.expires_at > now() - $1::bigint * interval '1 millisecond'
                                    OR s.status = 'completed'))
          ORDER BY o.updated_at LIMIT $2",
        grace_ms,
        limit
    )
    .fetch_all(e)
    .await
}

/// What DHMAD's snapshot says of the contract (standard) and the proof gate (proof escrows).
pub struct EscrowFacts<'a> {
    pub buyer_signed: Option<bool>,
    pub seller_signed: Option<bool>,
    pub proof_phase: Option<&'a str>,
    pub proof_upload_deadline: Option<OffsetDateTime>,
    pub proof_review_deadline: Option<OffsetDateTime>,
}

/// Keeps the facts a snapshot carries; what it does not carry stays as it was.
pub async fn set_escrow_facts(
    e: impl PgExecutor<'_>,
    id: Uuid,
    f: &EscrowFacts<'_>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET contract_buyer_signed = COALESCE($2, contract_buyer_signed),
                contract_seller_signed = COALESCE($3, contract_seller_signed),
                proof_phase = COALESCE($4, proof_phase),
                proof_upload_deadline = COALESCE($5, proof_upload_deadline),
                proof_review_deadline = COALESCE($6, proof_review_deadline)
         WHERE id = $1",
        id,
        f.buyer_signed,
        f.seller_signed,
        f.proof_phase,
        f.proof_upload_deadline,
        f.proof_review_deadline
    )
    .execute(e)
    .await?;
    Ok(())
}
