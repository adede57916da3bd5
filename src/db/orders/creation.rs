//! Writing an order as a checkout makes it: the order with its first line, claiming its
//! escrow's creation, and what DHMAD answered (escrow, session, or why it failed).

use rust_decimal::Decimal;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::events::NewEvent;
use crate::orders::state_machine::{Cancellation, Mode, Order, OrderStatus};

/// The DHMAD calls a new order takes as it is written (0 when no budget is kept).
#[derive(Debug, Clone, Copy)]
pub struct ClaimCalls {
    pub calls: i32,
    pub reuse_after: std::time::Duration,
    /// The mark on the rows taken (see `db::budget::take`).
    pub taker: Uuid,
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
    /// The client whose checkout it is (its rate-limit key), for its turn in line.
    pub client: Option<&'a str>,
}

/// Inserts an open order with its first timeline line and job (and, with `claim`, its DHMAD
/// calls or its place in line), in one statement, or returns `None` when its owner already has
/// one for this product and buyer (the partial unique index decides, so two concurrent
/// checkouts cannot both insert).
pub async fn insert_open(e: impl PgExecutor<'_>, o: &NewOrder<'_>) -> sqlx::Result<Option<Order>> {
    let (claim, calls, reuse_after_ms, taker) = match o.claim {
        Some(c) => (
            true,
            c.calls,
            crate::db::budget::millis(c.reuse_after),
            Some(c.taker),
        ),
        None => (false, 0, 0, None),
    };
    sqlx::query_as!(
        Order,
        r#"WITH go AS (
               SELECT $9 AND take_dhmad_budget($14, $15, false, 0, $16, 0) AS claimed),
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
               INSERT INTO checkout_queue (order_id, client_key, round)
               SELECT id, $17, greatest(
                   coalesce((SELECT max(round) FROM checkout_queue WHERE client_key = $17), 0) + 1,
                   coalesce((SELECT min(round) FROM checkout_queue), 1))
                 FROM o WHERE $9 AND status = 'new')
           SELECT id AS "id!", sku AS "sku!", mode AS "mode!: Mode", buyer_email AS "buyer_email!",
                amount AS "amount!", currency AS "currency!", status AS "status!: OrderStatus",
                escrow_id, escrow_status, escrow_updated_at,
                failure_reason, deposit_rejection_reason, digital_code, last_synced_at,
                escrow_attempted_at, created_at AS "created_at!", updated_at AS "updated_at!",
                attention, payment_review_since,
                cancellation AS "cancellation: Cancellation", cancellation_reason,
                delivery_rejection_reason, proof_required AS "proof_required!",
                contract_buyer_signed, contract_seller_signed, proof_phase, proof_upload_deadline,
                proof_review_deadline, dispute_ticket_id
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
        reuse_after_ms,
        taker,
        o.client
    )
    .fetch_optional(e)
    .await
}

/// Marks the order as having an escrow creation in flight. Only one caller wins: it gets the
/// claim's time (`escrow_attempted_at`), which [`unclaim_creation`] matches. A backoff left by
/// failed looks at an earlier creation is over: this one starts afresh, and its escrow's
/// payment page is looked at within the minute.
pub async fn claim_creation(
    e: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<OffsetDateTime>> {
    sqlx::query_scalar!(
        r#"UPDATE orders SET status = 'creating_escrow', escrow_attempted_at = clock_timestamp(),
                  updated_at = now(), sync_failures = 0, next_sync_at = NULL,
                  creation_settles_at = NULL
            WHERE id = $1 AND status IN ('new', 'escrow_failed')
           RETURNING escrow_attempted_at AS "claimed_at!""#,
        id
    )
    .fetch_optional(e)
    .await
}

/// Undoes the claim made at `claimed_at` when the create call was never sent (DHMAD's budget
/// was spent). Not a later claim: a call held back past the in-flight limit may find that
/// another actor resolved the order and claimed it again, and that claim is live.
/// The order waits for its turn with nothing wrong: a reason left from an earlier failure is
/// cleared, or, should the step that puts it in line never run (a crash), the reconciler would
/// take it for a checkout that could not start and never put it back in line.
pub async fn unclaim_creation(
    e: impl PgExecutor<'_>,
    id: Uuid,
    claimed_at: Option<OffsetDateTime>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET status = 'new', escrow_attempted_at = NULL, failure_reason = NULL,
                           updated_at = now()
         WHERE id = $1 AND status = 'creating_escrow'
           AND escrow_attempted_at IS NOT DISTINCT FROM $2",
        id,
        claimed_at
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
                    amount_updated_at = $4,
                    status = 'awaiting_payment', failure_reason = NULL, last_synced_at = now(),
                    updated_at = now(), sync_failures = 0, next_sync_at = NULL
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
                proof_review_deadline, dispute_ticket_id
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
    s: &crate::db::sessions::NewSession<'_>,
    lines: &[NewEvent<'_>],
) -> sqlx::Result<bool> {
    let kinds: Vec<&str> = lines.iter().map(|l| l.kind).collect();
    let details: Vec<&str> = lines.iter().map(|l| l.detail.as_str()).collect();
    let publics: Vec<Option<&str>> = lines.iter().map(|l| l.public).collect();
    let recorded = sqlx::query_scalar!(
        r#"WITH o AS (
               UPDATE orders SET escrow_id = $2, escrow_status = $3, escrow_updated_at = $4,
                    amount_updated_at = $4,
                    status = 'awaiting_payment', failure_reason = NULL, last_synced_at = now(),
                    updated_at = now(), sync_failures = 0, next_sync_at = NULL
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

/// Moves the order from one of the statuses `from` (the ones its writer resolved) to `status`
/// (a creation that failed, safe to retry or not; a cancellation), with the reason; `false`
/// when the order has moved on meanwhile. A slower writer (a reconciliation that listed DHMAD
/// while the buyer's retry claimed the order and made the escrow) must not undo what landed
/// first, so `from` is what the writer saw, never a wider set. With `claimed_at`, only over the
/// creation claimed then: a create call that outlived the in-flight limit may come back after
/// another actor resolved the order and the buyer's retry claimed it again, a live claim.
pub async fn record_failure(
    e: impl PgExecutor<'_>,
    id: Uuid,
    from: &[OrderStatus],
    status: OrderStatus,
    reason: &str,
    claimed_at: Option<OffsetDateTime>,
) -> sqlx::Result<bool> {
    debug_assert!(
        from.iter().all(|s| s.can_become(status)),
        "{from:?} → {status:?}"
    );
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let r = sqlx::query!(
        "UPDATE orders SET status = $2, failure_reason = $3, updated_at = now()
          WHERE id = $1 AND status::text = ANY($4)
            AND ($5::timestamptz IS NULL OR escrow_attempted_at = $5)",
        id,
        status as OrderStatus,
        reason,
        &from as &[&str],
        claimed_at
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Notes that the creation claimed at `claimed_at` got no answer: DHMAD may still be making its
/// escrow for up to `window` after the claim (the slowest a creation can be), and `after` from
/// now at least (the last call may have been sent late in the window), by the database's
/// clock, which stamped the claim.
pub async fn creation_unanswered(
    e: impl PgExecutor<'_>,
    id: Uuid,
    claimed_at: Option<OffsetDateTime>,
    window: time::Duration,
    after: std::time::Duration,
) -> sqlx::Result<()> {
    let window_ms = window.whole_milliseconds() as i64;
    let after_ms = crate::db::budget::millis(after);
    sqlx::query!(
        "UPDATE orders
            SET creation_settles_at =
                GREATEST(escrow_attempted_at + $3::bigint * interval '1 millisecond',
                         clock_timestamp() + $4::bigint * interval '1 millisecond')
          WHERE id = $1 AND escrow_attempted_at IS NOT DISTINCT FROM $2",
        id,
        claimed_at,
        window_ms,
        after_ms
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Whether DHMAD may still be making the escrow of the creation claimed at `claimed_at`
/// ([`creation_unanswered`]), the order still waiting to know: not once another look found
/// the escrow, or a newer claim was made.
pub async fn creation_may_still_land(
    e: impl PgExecutor<'_>,
    id: Uuid,
    claimed_at: Option<OffsetDateTime>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM orders
                           WHERE id = $1 AND status = 'needs_reconciliation'
                             AND escrow_attempted_at IS NOT DISTINCT FROM $2
                             AND creation_settles_at > clock_timestamp()) AS "may!""#,
        id,
        claimed_at
    )
    .fetch_one(e)
    .await
}

/// Notes why the checkout queue gave up on an order still `new` (a lasting failure before its
/// first DHMAD call), so that it is not put back in line; `None` when the buyer sends it back.
pub async fn set_failure_reason_if_new(
    e: impl PgExecutor<'_>,
    id: Uuid,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET failure_reason = $2, updated_at = now() WHERE id = $1 AND status = 'new'",
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

/// DHMAD changed the escrow's amount (a pending escrow edited on its side).
/// Keeps the amount of a DHMAD edit made at `at`, unless an edit at least as new was kept;
/// an undated one lands only while no dated one was (it may be older than any); whether it
/// was kept.
pub async fn set_amount(
    e: impl PgExecutor<'_>,
    id: Uuid,
    amount: Decimal,
    at: Option<OffsetDateTime>,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE orders SET amount = $2, amount_updated_at = COALESCE($3, amount_updated_at),
                updated_at = now()
          WHERE id = $1 AND (amount_updated_at IS NULL OR amount_updated_at < $3)",
        id,
        amount,
        at
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}
