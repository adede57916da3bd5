use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// One line of an order's timeline: `detail` for the back office, `public` (when set) for the
/// buyer, who never sees internal text (event types, DHMAD's raw statuses, errors).
#[derive(Debug, Clone)]
pub struct OrderEvent {
    pub kind: String,
    pub detail: String,
    pub public: Option<String>,
    pub created_at: OffsetDateTime,
}

pub async fn add(
    e: impl PgExecutor<'_>,
    order_id: Uuid,
    kind: &str,
    detail: &str,
    public: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO order_events (order_id, kind, detail, public) VALUES ($1, $2, $3, $4)",
        order_id,
        kind,
        detail,
        public
    )
    .execute(e)
    .await?;
    Ok(())
}

/// A timeline line to write.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub detail: String,
    pub public: Option<&'a str>,
}

/// Adds a transition's timeline lines, in order, and queues its jobs (each kind unless one is
/// already open for the order): one statement, since a paid webhook's round trips are what its
/// throughput is made of.
pub async fn add_all_and_enqueue(
    e: impl PgExecutor<'_>,
    order_id: Uuid,
    lines: &[NewEvent<'_>],
    jobs: &[&str],
) -> sqlx::Result<()> {
    let kinds: Vec<&str> = lines.iter().map(|l| l.kind).collect();
    let details: Vec<&str> = lines.iter().map(|l| l.detail.as_str()).collect();
    let publics: Vec<Option<&str>> = lines.iter().map(|l| l.public).collect();
    sqlx::query!(
        "WITH jobs AS (
             INSERT INTO outbox_jobs (kind, order_id) SELECT k, $1 FROM unnest($5::text[]) AS k
             ON CONFLICT DO NOTHING)
         INSERT INTO order_events (order_id, kind, detail, public)
         SELECT $1, kind, detail, public
         FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS l(kind, detail, public, n)
         ORDER BY n",
        order_id,
        &kinds as &[&str],
        &details as &[&str],
        &publics as &[Option<&str>],
        jobs as &[&str]
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Whether the order's timeline has a line of `kind` saying `detail`.
pub async fn has_line(
    e: impl PgExecutor<'_>,
    order_id: Uuid,
    kind: &str,
    detail: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM order_events
                           WHERE order_id = $1 AND kind = $2 AND detail = $3) AS "has!""#,
        order_id,
        kind,
        detail
    )
    .fetch_one(e)
    .await
}

/// Whether the order's timeline has a line of `kind`.
pub async fn has(e: impl PgExecutor<'_>, order_id: Uuid, kind: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM order_events WHERE order_id = $1 AND kind = $2) AS "has!""#,
        order_id,
        kind
    )
    .fetch_one(e)
    .await
}

pub async fn list(e: impl PgExecutor<'_>, order_id: Uuid) -> sqlx::Result<Vec<OrderEvent>> {
    sqlx::query_as!(
        OrderEvent,
        "SELECT kind, detail, public, created_at FROM order_events WHERE order_id = $1 ORDER BY id",
        order_id
    )
    .fetch_all(e)
    .await
}
