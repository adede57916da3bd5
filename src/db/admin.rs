//! Back-office sessions, login throttling and the audit trail.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// A session lasting `life` from now by the database's clock, which decides its validity
/// ([`session_valid`]): an instance whose clock is off neither shortens nor stretches it.
pub async fn create_session(
    e: impl PgExecutor<'_>,
    id_hash: &str,
    life: time::Duration,
    client_addr: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO admin_sessions (id_hash, expires_at, client_addr)
         VALUES ($1, now() + $2::bigint * interval '1 second', $3)",
        id_hash,
        life.whole_seconds(),
        client_addr
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Whether the session exists, has not expired and was not revoked.
pub async fn session_valid(e: impl PgExecutor<'_>, id_hash: &str) -> sqlx::Result<bool> {
    let found = sqlx::query_scalar!(
        "SELECT 1 AS one FROM admin_sessions
         WHERE id_hash = $1 AND revoked_at IS NULL AND expires_at > now()",
        id_hash
    )
    .fetch_optional(e)
    .await?;
    Ok(found.is_some())
}

pub async fn revoke_session(e: impl PgExecutor<'_>, id_hash: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE admin_sessions SET revoked_at = now() WHERE id_hash = $1 AND revoked_at IS NULL",
        id_hash
    )
    .execute(e)
    .await?;
    Ok(())
}

/// A login attempt from `client_addr` whose token was compared: refused (`false`, and not
/// counted) once `max` attempts failed within the last `window` (by the database's clock, as
/// the failures are dated: an instance whose clock ran ahead never throttled), whether this one is right or wrong, so a
/// throttled address learns nothing; else counted if `failed`. Attempts from one address are
/// judged one at a time (a lock per address, held to the commit, taken in a statement of its
/// own so that the count's snapshot comes after it): a thousand wrong ones sent at once cannot
/// all pass the check before any is counted, and right ones leave nothing behind (they used to
/// be counted until proven right, so a script's parallel requests could throttle itself).
pub async fn login_attempt(
    pool: &super::Pool,
    client_addr: &str,
    window: time::Duration,
    max: i64,
    failed: bool,
) -> sqlx::Result<bool> {
    let mut conn = pool.acquire().await?;
    let mut tx = super::tx::begin(&mut conn).await?;
    // 7401: this lock's namespace (the back office's logins).
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(7401, hashtext($1))",
        client_addr
    )
    .execute(&mut *tx)
    .await?;
    let admitted = sqlx::query_scalar!(
        r#"WITH admitted AS (
             SELECT (SELECT count(*) FROM admin_login_failures
                      WHERE client_addr = $1
                        AND at > now() - $2::bigint * interval '1 second') < $3 AS ok),
           counted AS (
             INSERT INTO admin_login_failures (client_addr)
             SELECT $1 FROM admitted WHERE ok AND $4)
           SELECT ok AS "ok!" FROM admitted"#,
        client_addr,
        window.whole_seconds(),
        max,
        failed
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(admitted)
}

/// Forgets what no longer decides anything, at most `limit` rows of each per call: failed
/// logins from before `before` (older than the throttle's window) and sessions that expired or
/// were revoked before it. Returns how many rows went.
pub async fn prune(pool: &super::Pool, before: OffsetDateTime, limit: i64) -> sqlx::Result<u64> {
    let failures = sqlx::query!(
        "DELETE FROM admin_login_failures WHERE id IN (
             SELECT id FROM admin_login_failures WHERE at < $1 ORDER BY at LIMIT $2)",
        before,
        limit
    )
    .execute(pool)
    .await?;
    let sessions = sqlx::query!(
        "DELETE FROM admin_sessions WHERE id_hash IN (
             SELECT id_hash FROM admin_sessions
             WHERE expires_at < $1 OR revoked_at < $1 LIMIT $2)",
        before,
        limit
    )
    .execute(pool)
    .await?;
    Ok(failures.rows_affected() + sessions.rows_affected())
}

/// One back-office action, appended to the audit trail.
pub struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub order_id: Option<Uuid>,
    pub detail: &'a str,
    pub client_addr: &'a str,
}

pub async fn audit(e: impl PgExecutor<'_>, a: &AuditEntry<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO admin_audit (actor, action, order_id, detail, client_addr)
         VALUES ($1, $2, $3, $4, $5)",
        a.actor,
        a.action,
        a.order_id,
        a.detail,
        a.client_addr
    )
    .execute(e)
    .await?;
    Ok(())
}

/// An audit row as the back office shows it.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub client_addr: String,
}

pub async fn audit_for_order(
    e: impl PgExecutor<'_>,
    order_id: Uuid,
) -> sqlx::Result<Vec<AuditRow>> {
    sqlx::query_as!(
        AuditRow,
        "SELECT at, actor, action, detail, client_addr FROM admin_audit
          WHERE order_id = $1 ORDER BY id",
        order_id
    )
    .fetch_all(e)
    .await
}
