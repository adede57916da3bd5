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

/// How long a caller waits for a pool connection before giving up (a 503): the pool is full
/// under load. Also the longest a DHMAD call may wait before it goes out, for the row its
/// budget takes (`checkout::in_flight_limit` counts it).
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Failures that a retry may fix: the database is down, restarting or saturated, the
/// connection was lost, or a statement gave up waiting for a lock (55P03) or ran out of time
/// (57014) — another request holds the order.
pub fn is_transient(e: &sqlx::Error) -> bool {
    let code = e.as_database_error().and_then(|d| d.code());
    matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
        || connection_lost(e)
        || code.is_some_and(|c| matches!(c.as_ref(), "55P03" | "57014"))
}

/// A failure of the connection itself, not a refused statement: the socket, or what a server
/// says as it ends a connection. Class 08 is a connection exception; 57P01-57P05 are a server
/// shutting down or starting up, a backend terminated or idle too long (not 57P04, a database
/// dropped, which no retry mends). After a restart of Postgres a kept connection meets 57P01 on its next
/// statement: a 503 and a retry, not a 500.
pub fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || (c.starts_with("57P") && c != "57P04")),
        _ => false,
    }
}
