//! The audit trail console: who did what in the back office.

use sqlx::{PgExecutor, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub order_id: Option<Uuid>,
    pub detail: String,
    pub client_addr: String,
}

/// One page of the trail, newest first, strictly older than `after` (an id).
pub async fn list_audit(
    e: impl PgExecutor<'_>,
    action: Option<&str>,
    order_id: Option<Uuid>,
    after: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<AuditRow>> {
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT id, at, actor, action, order_id, detail, client_addr FROM admin_audit WHERE TRUE",
    );
    if let Some(a) = action {
        qb.push(" AND action = ").push_bind(a);
    }
    if let Some(o) = order_id {
        qb.push(" AND order_id = ").push_bind(o);
    }
    if let Some(id) = after {
        qb.push(" AND id < ").push_bind(id);
    }
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    qb.build_query_as().persistent(false).fetch_all(e).await
}

/// The actions the trail holds, each once (a loose index scan of `admin_audit_action`).
pub async fn audit_actions(e: impl PgExecutor<'_>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"WITH RECURSIVE t(action) AS (
             (SELECT action FROM admin_audit ORDER BY action LIMIT 1)
             UNION ALL
             SELECT (SELECT a.action FROM admin_audit a WHERE a.action > t.action
                      ORDER BY a.action LIMIT 1)
               FROM t WHERE t.action IS NOT NULL
           )
           SELECT action AS "action!" FROM t WHERE action IS NOT NULL"#
    )
    .fetch_all(e)
    .await
}
