//! Queries, one module per table. Every function takes `impl PgExecutor` so the caller decides
//! whether it runs on the pool or inside a transaction.

pub mod admin;
pub mod admin_consoles;
pub mod admin_views;
pub mod budget;
pub mod calls;
pub mod checkout_queue;
pub mod events;
pub mod inbox;
pub mod orders;
pub mod outbox;
pub mod pool;
pub mod products;
pub mod sessions;
pub mod turns;
pub mod tx;

pub use pool::{Conn, Pool};

/// Failures that a retry may fix: the database is down or saturated, or a statement gave up
/// waiting for a lock (55P03) or ran out of time (57014) — another request holds the order.
pub fn is_transient(e: &sqlx::Error) -> bool {
    let code = e.as_database_error().and_then(|d| d.code());
    matches!(
        e,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
    ) || code.is_some_and(|c| matches!(c.as_ref(), "55P03" | "57014"))
}
