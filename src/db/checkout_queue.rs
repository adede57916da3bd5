//! Checkouts waiting for DHMAD's budget (`checkout_queue`), served in rounds, each round
//! first come first served (migration `20261209020000`): a checkout joins the round after its
//! client's last one still in line, and never one the line has left behind, so every client's
//! first checkout goes before anyone's second. A checkout no client sent is a client of its own.

use std::time::Duration;

use sqlx::PgExecutor;
use uuid::Uuid;

/// Queues the order's checkout for `client` (its rate-limit key); one already queued keeps
/// its place (and its worker).
pub async fn enqueue(
    e: impl PgExecutor<'_>,
    order_id: Uuid,
    client: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO checkout_queue (order_id, client_key, round)
         VALUES ($1, $2, greatest(
             coalesce((SELECT max(round) FROM checkout_queue WHERE client_key = $2), 0) + 1,
             coalesce((SELECT min(round) FROM checkout_queue), 1)))
         ON CONFLICT (order_id) DO NOTHING",
        order_id,
        client
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Puts back in line up to `limit` orders nothing serves any more: still `new` (no DHMAD call
/// made), unchanged for `idle`, younger than `max_age`, not in line, and not left by the line
/// with a failure. A checkout whose request was dropped, or whose process died, between writing
/// the order and its first call or its place in line leaves one; nothing else would ever take
/// it up. How many were put in line.
pub async fn requeue_stranded(
    e: impl PgExecutor<'_>,
    idle: Duration,
    max_age: Duration,
    limit: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "INSERT INTO checkout_queue (order_id, round)
         SELECT o.id, (SELECT coalesce(min(round), 1) FROM checkout_queue) FROM orders o
          WHERE o.status = 'new' AND o.failure_reason IS NULL
            AND o.updated_at < now() - $1::bigint * interval '1 millisecond'
            AND o.created_at > now() - $2::bigint * interval '1 millisecond'
            AND NOT EXISTS (SELECT 1 FROM checkout_queue q WHERE q.order_id = o.id)
          ORDER BY o.updated_at LIMIT $3
         ON CONFLICT (order_id) DO NOTHING",
        super::budget::millis(idle),
        super::budget::millis(max_age),
        limit
    )
    .execute(e)
    .await?;
    Ok(done.rows_affected())
}

/// The order's place: how many queued checkouts would be served before it and still wait for
/// their calls (those a worker is serving have them already); `None` if it is not queued. It
/// can grow: another client's first checkout comes before this client's second.
pub async fn ahead_of(e: impl PgExecutor<'_>, order_id: Uuid) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        r#"SELECT (SELECT count(*) FROM checkout_queue q
                   WHERE (q.round, q.queued_at, q.order_id) < (me.round, me.queued_at, me.order_id)
                     AND (q.claimed_until IS NULL OR q.claimed_until < now())) AS "ahead!"
           FROM checkout_queue me WHERE me.order_id = $1"#,
        order_id
    )
    .fetch_optional(e)
    .await
}

/// Claims the next queued checkout in turn (module doc) that no live worker holds, for
/// `lease` (a worker that dies leaves it to another once the lease runs out).
pub async fn claim_next(e: impl PgExecutor<'_>, lease: Duration) -> sqlx::Result<Option<Uuid>> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    sqlx::query_scalar!(
        "UPDATE checkout_queue SET claimed_until = now() + $1::bigint * interval '1 millisecond'
         WHERE order_id = (
             SELECT order_id FROM checkout_queue
             WHERE claimed_until IS NULL OR claimed_until < now()
             ORDER BY round, queued_at, order_id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING order_id",
        lease_ms
    )
    .fetch_optional(e)
    .await
}

/// Hands a claimed checkout back to the queue, in its place.
pub async fn release(e: impl PgExecutor<'_>, order_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE checkout_queue SET claimed_until = NULL WHERE order_id = $1",
        order_id
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Puts the order back in line, to be taken again no sooner than `after` from now: DHMAD
/// answered 429 and said how long to wait (see `orders::queue::serve`).
pub async fn release_after(
    e: impl PgExecutor<'_>,
    order_id: Uuid,
    after: Duration,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE checkout_queue SET claimed_until = now() + $2::bigint * interval '1 millisecond'
          WHERE order_id = $1",
        order_id,
        super::budget::millis(after)
    )
    .execute(e)
    .await?;
    Ok(())
}

/// The checkout left the queue: its calls were made (or it can no longer be made).
pub async fn remove(e: impl PgExecutor<'_>, order_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM checkout_queue WHERE order_id = $1", order_id)
        .execute(e)
        .await?;
    Ok(())
}

/// Checkouts waiting (claimed or not).
pub async fn len(e: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    let n = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM checkout_queue"#)
        .fetch_one(e)
        .await?;
    Ok(n)
}
