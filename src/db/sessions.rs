use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use super::events::NewEvent;

/// A DHMAD checkout session we opened (`accept_pay` or `complete`). Its `Debug` shows
/// references only: the session's id and URL open DHMAD's page, the order's id is its link.
#[derive(Clone)]
pub struct Session {
    pub session_id: String,
    pub order_id: Uuid,
    pub escrow_id: String,
    pub action: String,
    pub url: String,
    pub status: String,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub checked_at: Option<OffsetDateTime>,
    /// Opened for the merchant (DHMAD_SELLER_EMAIL), not the buyer.
    pub for_merchant: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("session", &crate::orders::log_ref_of(&self.session_id))
            .field("order", &crate::orders::log_ref(self.order_id))
            .field("action", &self.action)
            .field("status", &self.status)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

pub struct NewSession<'a> {
    pub session_id: &'a str,
    pub order_id: Uuid,
    pub escrow_id: &'a str,
    pub action: &'a str,
    pub url: &'a str,
    pub expires_at: OffsetDateTime,
    pub for_merchant: bool,
}

/// Records a session DHMAD opened, with its timeline line, and clears the order's last
/// failure (it could open a page again): one statement. Returns the session as stored.
pub async fn insert(
    e: impl PgExecutor<'_>,
    s: &NewSession<'_>,
    line: &NewEvent<'_>,
) -> sqlx::Result<Session> {
    sqlx::query_as!(
        Session,
        r#"WITH s AS (
               INSERT INTO checkout_sessions
                      (session_id, order_id, escrow_id, action, url, expires_at, for_merchant)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               RETURNING *),
           line AS (
               INSERT INTO order_events (order_id, kind, detail, public)
               SELECT order_id, $8, $9, $10 FROM s),
           cleared AS (
               UPDATE orders SET failure_reason = NULL
               WHERE id = $2 AND failure_reason IS NOT NULL)
           SELECT session_id AS "session_id!", order_id AS "order_id!", escrow_id AS "escrow_id!",
                  action AS "action!", url AS "url!", status AS "status!",
                  expires_at AS "expires_at!", created_at AS "created_at!", checked_at,
                  for_merchant AS "for_merchant!"
           FROM s"#,
        s.session_id,
        s.order_id,
        s.escrow_id,
        s.action,
        s.url,
        s.expires_at,
        s.for_merchant,
        line.kind,
        line.detail,
        line.public
    )
    .fetch_one(e)
    .await
}

/// Claims the opening of the order's session of `action` for one side for `lease`, unless a
/// live claim holds it: the claim's token (its expiry, which [`release_opening`] matches), or
/// `None`.
pub async fn claim_opening(
    e: impl PgExecutor<'_>,
    order_id: Uuid,
    action: &str,
    for_merchant: bool,
    lease: std::time::Duration,
) -> sqlx::Result<Option<OffsetDateTime>> {
    sqlx::query_scalar!(
        "INSERT INTO session_openings AS so (order_id, action, for_merchant, claimed_until)
         VALUES ($1, $2, $3, clock_timestamp() + $4::bigint * interval '1 millisecond')
         ON CONFLICT (order_id, action, for_merchant) DO UPDATE
            SET claimed_until = EXCLUDED.claimed_until
          WHERE so.claimed_until < clock_timestamp()
         RETURNING claimed_until",
        order_id,
        action,
        for_merchant,
        super::budget::millis(lease)
    )
    .fetch_optional(e)
    .await
}

/// Lets go of a claim taken by [`claim_opening`] (not one taken over since it ran out).
pub async fn release_opening(
    e: impl PgExecutor<'_>,
    order_id: Uuid,
    action: &str,
    for_merchant: bool,
    token: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM session_openings
          WHERE order_id = $1 AND action = $2 AND for_merchant = $3 AND claimed_until = $4",
        order_id,
        action,
        for_merchant,
        token
    )
    .execute(e)
    .await?;
    Ok(())
}

pub async fn get(e: impl PgExecutor<'_>, session_id: &str) -> sqlx::Result<Option<Session>> {
    sqlx::query_as!(
        Session,
        "SELECT * FROM checkout_sessions WHERE session_id = $1",
        session_id
    )
    .fetch_optional(e)
    .await
}

/// The newest session of `action` for the order (and the same side: buyer or merchant) that is
/// still pending and open until at least `open_until`: reusing it avoids a second hosted page
/// for the same step.
pub async fn live_for_order(
    e: impl PgExecutor<'_>,
    order_id: Uuid,
    action: &str,
    for_merchant: bool,
    open_until: OffsetDateTime,
) -> sqlx::Result<Option<Session>> {
    sqlx::query_as!(
        Session,
        "SELECT * FROM checkout_sessions
         WHERE order_id = $1 AND action = $2 AND for_merchant = $3 AND status = 'pending'
           AND expires_at > $4
         ORDER BY created_at DESC LIMIT 1",
        order_id,
        action,
        for_merchant,
        open_until
    )
    .fetch_optional(e)
    .await
}

/// Records the session's status as DHMAD gave it, whatever it was: a completed page becomes
/// pending again when DHMAD rejects a guest's proof and reopens it for a new upload (§4.2).
pub async fn set_status(
    e: impl PgExecutor<'_>,
    session_id: &str,
    status: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE checkout_sessions SET status = $2 WHERE session_id = $1",
        session_id,
        status
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Marks pending sessions expired once `grace` past their expiry; returns how many. Pages of
/// the `to_ask` actions are left for `ask_for` longer: DHMAD is asked how they ended
/// ([`left_pages_to_ask`]).
pub async fn expire_due(
    e: impl PgExecutor<'_>,
    grace: time::Duration,
    to_ask: &[&str],
    ask_for: time::Duration,
) -> sqlx::Result<u64> {
    let grace_ms = grace.whole_milliseconds() as i64;
    let ask_ms = ask_for.whole_milliseconds() as i64;
    let r = sqlx::query!(
        "UPDATE checkout_sessions SET status = 'expired'
          WHERE status = 'pending' AND expires_at <= now() - $1::bigint * interval '1 millisecond'
            AND (action <> ALL($2::text[])
                 OR expires_at <= now() - ($1 + $3)::bigint * interval '1 millisecond')",
        grace_ms,
        to_ask as &[&str],
        ask_ms
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected())
}

/// Pages of `actions` still pending here though `grace` past their end: nobody came back from
/// them, so only DHMAD knows how they ended. Those not looked at within `again`; never asked
/// about, or asked longest ago, first.
pub async fn left_pages_to_ask(
    e: impl PgExecutor<'_>,
    actions: &[&str],
    grace: time::Duration,
    again: time::Duration,
    limit: i64,
) -> sqlx::Result<Vec<Session>> {
    let grace_ms = grace.whole_milliseconds() as i64;
    let again_ms = again.whole_milliseconds() as i64;
    sqlx::query_as!(
        Session,
        "SELECT * FROM checkout_sessions
          WHERE status = 'pending' AND action = ANY($1::text[])
            AND expires_at <= now() - $2::bigint * interval '1 millisecond'
            AND (checked_at IS NULL OR checked_at <= now() - $3::bigint * interval '1 millisecond')
          ORDER BY checked_at ASC NULLS FIRST, expires_at
          LIMIT $4",
        actions as &[&str],
        grace_ms,
        again_ms,
        limit
    )
    .fetch_all(e)
    .await
}

/// Marks a page expired here, unless something else (a return, a read) recorded how it ended
/// meanwhile.
pub async fn expire_if_pending(e: impl PgExecutor<'_>, session_id: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE checkout_sessions SET status = 'expired' WHERE session_id = $1 AND status = 'pending'",
        session_id
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Gives back a claim to ask about the page ([`claim_check`]) when nothing was asked.
pub async fn forget_check(e: impl PgExecutor<'_>, session_id: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE checkout_sessions SET checked_at = NULL WHERE session_id = $1",
        session_id
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Gives back a claim of [`claim_check`] whose look was not made: the session reads as looked
/// at `interval` ago, so another may look at once while a longer interval still holds.
pub async fn release_check(
    e: impl PgExecutor<'_>,
    session_id: &str,
    interval: time::Duration,
) -> sqlx::Result<()> {
    let interval_ms = interval.whole_milliseconds() as i64;
    sqlx::query!(
        "UPDATE checkout_sessions SET checked_at = now() - $2::bigint * interval '1 millisecond'
         WHERE session_id = $1",
        session_id,
        interval_ms
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Claims the right to ask DHMAD about the session now: true at most once per `interval`,
/// across every instance (the row decides).
pub async fn claim_check(
    e: impl PgExecutor<'_>,
    session_id: &str,
    interval: time::Duration,
) -> sqlx::Result<bool> {
    let interval_ms = interval.whole_milliseconds() as i64;
    let claimed = sqlx::query_scalar!(
        "UPDATE checkout_sessions SET checked_at = now()
         WHERE session_id = $1
           AND (checked_at IS NULL OR checked_at <= now() - $2::bigint * interval '1 millisecond')
         RETURNING session_id",
        session_id,
        interval_ms
    )
    .fetch_optional(e)
    .await?;
    Ok(claimed.is_some())
}

/// Every session opened for the order, newest first (the back office's order page, and the
/// payment pages a guest may have used).
pub async fn list_for_order(e: impl PgExecutor<'_>, order_id: Uuid) -> sqlx::Result<Vec<Session>> {
    sqlx::query_as!(
        Session,
        "SELECT * FROM checkout_sessions WHERE order_id = $1 ORDER BY created_at DESC",
        order_id
    )
    .fetch_all(e)
    .await
}
