//! What a reconciliation pass started from the back office changed.

use sqlx::PgExecutor;

/// The newest timeline line's id: what a reconciliation pass wrote comes after it.
pub async fn last_event_id(e: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    let id = sqlx::query_scalar!(r#"SELECT COALESCE(max(id), 0) AS "id!" FROM order_events"#)
        .fetch_one(e)
        .await?;
    Ok(id)
}

/// Orders whose status a read of DHMAD by `source` changed since timeline line `after`
/// (`apply_escrow_snapshot` writes "DHMAD escrow a → b (source)" on each transition).
pub async fn changed_since(e: impl PgExecutor<'_>, after: i64, source: &str) -> sqlx::Result<i64> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(DISTINCT order_id) AS "n!" FROM order_events
            WHERE id > $1 AND kind = 'escrow_status' AND detail LIKE '%(' || $2 || ')'"#,
        after,
        source
    )
    .fetch_one(e)
    .await?;
    Ok(n)
}
