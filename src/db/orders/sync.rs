//! What the background jobs look for and leave: orders due for a DHMAD sync, creations in
//! doubt, missing deliver jobs, abandoned orders, and sync failures.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::orders::state_machine::{Cancellation, Mode, Order, OrderStatus};

/// Open orders with an escrow that are due a look at DHMAD, the longest due first: "hot" ones (a
/// buyer may be paying right now, on a page open, finished or closed within 10 minutes, which the session
/// sweeper marks expired five minutes after it closes; or the money moved within the hour) after
/// `hot_quiet` without news, the others after `cold_quiet`. Money that moved is looked at again
/// after as long as it has been quiet since it moved (45 s, 90 s, 3 min, … after the change), but
/// at least every `cold_quiet`, not every `hot_quiet` for the hour: most news of a sale comes by
/// webhook, and a look costs DHMAD's budget. (An operator's pass, both quiet times zero, takes
/// every open order.) Ordered by when each became due, not hot first: on a busy shop the hot
/// orders, due again and again, kept every pass, and an order whose webhook was lost an hour ago
/// was never looked at. Orders in backoff after a failed look, and orders flagged for the merchant,
/// wait. The settled list is `OrderStatus::SETTLED`, written out so the partial index
/// `orders_reconcile` serves it.
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
             SELECT o.*, COALESCE(o.last_synced_at, o.created_at) AS looked,
                    (o.status IN ('paid', 'delivered') AND o.updated_at > now() - interval '1 hour')
                      AS moved,
                    (o.status = 'awaiting_payment' AND EXISTS (
                          SELECT 1 FROM checkout_sessions s
                           WHERE s.order_id = o.id
                             AND s.status IN ('pending', 'expired', 'completed')
                             AND s.expires_at > now() - interval '10 minutes')) AS paying
               FROM orders o
              WHERE o.escrow_id IS NOT NULL AND o.status NOT IN ('completed', 'cancelled')
                AND o.attention IS NULL
                AND (o.next_sync_at IS NULL OR o.next_sync_at <= now())
                AND COALESCE(o.last_synced_at, o.created_at) <= now() - $1::bigint * interval '1 millisecond'
           ), due AS (
             SELECT *, looked + CASE
                 WHEN paying THEN $1::bigint * interval '1 millisecond'
                 WHEN moved THEN LEAST($2::bigint * interval '1 millisecond',
                      GREATEST($1::bigint * interval '1 millisecond', looked - updated_at))
                 ELSE $2::bigint * interval '1 millisecond' END AS due_at
               FROM candidates
           )
           SELECT id, sku, mode AS "mode: Mode", buyer_email, amount, currency,
                status AS "status: OrderStatus", escrow_id, escrow_status, escrow_updated_at,
                failure_reason, deposit_rejection_reason, digital_code, last_synced_at,
                escrow_attempted_at, created_at, updated_at, attention, payment_review_since,
                cancellation AS "cancellation: Cancellation", cancellation_reason,
                delivery_rejection_reason, proof_required, contract_buyer_signed,
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline,
                dispute_ticket_id
             FROM due
            WHERE due_at <= now()
            ORDER BY due_at
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

/// DHMAD spoke of the order's escrow again: the flag no longer holds. Whether there was one.
pub async fn clear_attention(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE orders SET attention = NULL, updated_at = now()
          WHERE id = $1 AND attention IS NOT NULL",
        id
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Lifts the order's flag if it is still `seen` (what the merchant was shown). Whether it was.
pub async fn clear_attention_if(
    e: impl PgExecutor<'_>,
    id: Uuid,
    seen: &str,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE orders SET attention = NULL, updated_at = now() WHERE id = $1 AND attention = $2",
        id,
        seen
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Flags the order for the merchant (DHMAD no longer knows its escrow, …): the reconciler stops
/// asking, the back office shows why. A flag starting with one of `kept` is not replaced: it
/// tells of money only the merchant can put right, and a later reason would hide it.
pub async fn flag_attention(
    e: impl PgExecutor<'_>,
    id: Uuid,
    why: &str,
    kept: &[&str],
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET attention = $2, updated_at = now()
          WHERE id = $1
            AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) AS k(prefix)
                             WHERE starts_with(orders.attention, k.prefix))",
        id,
        why,
        kept as &[&str]
    )
    .execute(e)
    .await?;
    Ok(())
}

/// [`flag_attention`], unless the order has a flag already (whose reason it would replace).
pub async fn flag_attention_unless_flagged(
    e: impl PgExecutor<'_>,
    id: Uuid,
    why: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET attention = $2, updated_at = now() WHERE id = $1 AND attention IS NULL",
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
/// `after` ago, or closed at least `after` ago without delivering before the escrow last
/// changed (it found the order disputed, and the dispute ended with the money still held), or
/// there never was one. The reconciler queues a new one. A last job the merchant abandoned is
/// their decision: never queued again until they queue one; nor is one for an order flagged for the merchant (DHMAD does
/// not know its escrow) until the flag is cleared, or one under a dispute ticket until a read
/// finds it over (`Order::dispute_open`).
pub async fn list_missing_deliver(
    e: impl PgExecutor<'_>,
    after: time::Duration,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    let after_ms = after.whole_milliseconds() as i64;
    sqlx::query_scalar!(
        "SELECT o.id FROM orders o
          WHERE o.status = 'paid' AND o.mode = 'instant' AND o.attention IS NULL
            AND o.dispute_ticket_id IS NULL
            AND NOT EXISTS (SELECT 1 FROM outbox_jobs j
                             WHERE j.order_id = o.id AND j.kind = 'deliver'
                               AND (j.done_at IS NULL
                                    -- The merchant abandoned the last one: theirs to queue.
                                    OR (j.abandoned_at IS NOT NULL
                                        AND j.id = (SELECT max(id) FROM outbox_jobs
                                                     WHERE order_id = o.id AND kind = 'deliver'))
                                    OR j.done_at > now() - $1::bigint * interval '1 millisecond'
                                    OR (j.gave_up_at IS NULL
                                        AND (o.escrow_updated_at IS NULL
                                             OR j.done_at >= o.escrow_updated_at))))
          ORDER BY o.updated_at LIMIT $2",
        after_ms,
        limit
    )
    .fetch_all(e)
    .await
}

/// Orders whose escrow creation has an unknown outcome: a failed or unanswered call, once DHMAD
/// can no longer be making its escrow (`creation_settles_at`), or a creation still marked in
/// flight although claimed over `in_flight` ago (the process died mid-call), by the database's
/// clock, which stamped the claim. One whose last look failed waits its backoff
/// (`next_sync_at`), so a DHMAD list that keeps failing does not take every pass from the
/// orders waiting for missed news.
pub async fn list_unknown_creation(
    e: impl PgExecutor<'_>,
    in_flight: time::Duration,
    limit: i64,
) -> sqlx::Result<Vec<Order>> {
    let in_flight_ms = in_flight.whole_milliseconds() as i64;
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
           FROM orders
          WHERE (status = 'needs_reconciliation'
                 AND (next_sync_at IS NULL OR next_sync_at <= now())
                 AND (creation_settles_at IS NULL OR creation_settles_at <= clock_timestamp()))
             OR (status = 'creating_escrow'
                 AND escrow_attempted_at <= clock_timestamp() - $1::bigint * interval '1 millisecond')
          ORDER BY created_at LIMIT $2"#,
        in_flight_ms,
        limit
    )
    .fetch_all(e)
    .await
}

/// Turns an abandoned in-flight creation into one that needs reconciliation: the one claimed
/// at `claimed_at`, as its caller saw it. A newer claim (the order resolved and claimed again
/// meanwhile) is live and left alone, or a look at DHMAD made before its create lands would
/// call it safe to retry and a third claim would make a second escrow. Whether it was marked.
pub async fn mark_unknown_if_in_flight(
    e: impl PgExecutor<'_>,
    id: Uuid,
    claimed_at: Option<OffsetDateTime>,
    reason: &str,
    in_flight: time::Duration,
) -> sqlx::Result<bool> {
    // Over by the database's clock, which stamped the claim, whatever the caller judged (a
    // buyer's retry judges by its instance's clock, which may run ahead: it took live
    // creations over, and a look made before their escrow landed called them not made).
    let in_flight_ms = in_flight.whole_milliseconds() as i64;
    let r = sqlx::query!(
        "UPDATE orders SET status = 'needs_reconciliation', failure_reason = $2, updated_at = now(),
                creation_settles_at = escrow_attempted_at + $4::bigint * interval '1 millisecond'
         WHERE id = $1 AND status = 'creating_escrow'
           AND escrow_attempted_at IS NOT DISTINCT FROM $3
           AND (escrow_attempted_at IS NULL
                OR escrow_attempted_at <= clock_timestamp() - $4::bigint * interval '1 millisecond')",
        id,
        reason,
        claimed_at,
        in_flight_ms
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// An order whose escrow creation was reconciled: the escrow it kept, when it was made (no
/// create call for it is older) and when it was last reconciled.
#[derive(Debug, Clone)]
pub struct Reconciled {
    pub id: Uuid,
    pub escrow_id: Option<String>,
    pub buyer_email: String,
    pub created_at: OffsetDateTime,
    pub reconciled_at: OffsetDateTime,
}

/// Orders whose escrow creation was reconciled since `since`.
pub async fn reconciled_since(
    e: impl PgExecutor<'_>,
    since: OffsetDateTime,
) -> sqlx::Result<Vec<Reconciled>> {
    sqlx::query_as!(
        Reconciled,
        r#"SELECT o.id, o.escrow_id, o.buyer_email, o.created_at,
                  max(ev.created_at) AS "reconciled_at!"
             FROM orders o
             JOIN order_events ev ON ev.order_id = o.id
            WHERE ev.kind = 'escrow_reconciled' AND ev.created_at > $1
            GROUP BY o.id"#,
        since
    )
    .fetch_all(e)
    .await
}

/// The order that holds the escrow, if any.
pub async fn holding_escrow(e: impl PgExecutor<'_>, escrow_id: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!("SELECT id FROM orders WHERE escrow_id = $1", escrow_id)
        .fetch_optional(e)
        .await
}

/// Unpaid orders with an escrow and no page of DHMAD's (payment or contract, either side's)
/// opened, or open, within `grace`: the buyer walked away. A guest proof under review is never
/// abandoned, nor a standard order the buyer signed that waits for the shop's signature. With
/// `only`, that order if it is one (asked again just before it is cancelled: the buyer may have
/// come back meanwhile).
pub async fn list_abandoned(
    e: impl PgExecutor<'_>,
    grace: time::Duration,
    limit: i64,
    only: Option<Uuid>,
) -> sqlx::Result<Vec<Uuid>> {
    let grace_ms = grace.whole_milliseconds() as i64;
    sqlx::query_scalar!(
        "SELECT o.id FROM orders o
          WHERE o.status = 'awaiting_payment' AND o.escrow_id IS NOT NULL
            AND ($3::uuid IS NULL OR o.id = $3)
            AND o.payment_review_since IS NULL
            AND o.attention IS NULL
            AND (o.next_sync_at IS NULL OR o.next_sync_at <= now())
            AND o.updated_at < now() - $1::bigint * interval '1 millisecond'
            AND NOT (o.mode = 'standard' AND o.contract_buyer_signed IS TRUE
                     AND o.contract_seller_signed IS NOT TRUE)
            AND NOT EXISTS (SELECT 1 FROM checkout_sessions s
                             WHERE s.order_id = o.id
                               AND (s.expires_at > now() - $1::bigint * interval '1 millisecond'
                                    OR (s.action = 'accept_pay' AND s.status = 'completed')))
          ORDER BY o.updated_at LIMIT $2",
        grace_ms,
        limit,
        only
    )
    .fetch_all(e)
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
