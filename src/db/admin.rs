//! Back-office sessions, login throttling and the audit trail.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

pub async fn create_session(
    e: impl PgExecutor<'_>,
    id_hash: &str,
    expires_at: OffsetDateTime,
    client_addr: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO admin_sessions (id_hash, expires_at, client_addr) VALUES ($1, $2, $3)",
        id_hash,
        expires_at,
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

pub async fn record_login_failure(e: impl PgExecutor<'_>, client_addr: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO admin_login_failures (client_addr) VALUES ($1)",
        client_addr
    )
    .execute(e)
    .await?;
    Ok(())
}

pub async fn login_failures_since(
    e: impl PgExecutor<'_>,
    client_addr: &str,
    since: OffsetDateTime,
) -> sqlx::Result<i64> {
    let n = sqlx::query_scalar!(
        "SELECT count(*) FROM admin_login_failures WHERE client_addr = $1 AND at > $2",
        client_addr,
        since
    )
    .fetch_one(e)
    .await?;
    Ok(n.unwrap_or(0))
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
