//! Transactions with bounded waits. A few locked order rows must never hold the pool: a
//! statement waits at most `LOCK_TIMEOUT_MS` for a row lock (a webhook then answers 503 well inside
//! DHMAD's 10 s, and DHMAD's retry lands once the lock is gone) and runs at most
//! `STATEMENT_TIMEOUT_MS`, which also bounds a query whose request was dropped. Set with `SET LOCAL`
//! in the same round trip as `BEGIN`, so it costs nothing and holds whatever pool the service
//! was given.

use sqlx::{Postgres, Transaction};

use super::Conn;

pub const LOCK_TIMEOUT_MS: u32 = 2_000;
pub const STATEMENT_TIMEOUT_MS: u32 = 8_000;

const BEGIN: &str =
    "BEGIN; SET LOCAL lock_timeout = '2000ms'; SET LOCAL statement_timeout = '8000ms'";

/// Begins a transaction whose waits are bounded.
pub async fn begin(conn: &mut Conn) -> sqlx::Result<Transaction<'_, Postgres>> {
    conn.begin_with(BEGIN).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_statement_says_what_the_constants_say() {
        assert!(super::BEGIN.contains(&format!("lock_timeout = '{}ms'", super::LOCK_TIMEOUT_MS)));
        assert!(super::BEGIN.contains(&format!(
            "statement_timeout = '{}ms'",
            super::STATEMENT_TIMEOUT_MS
        )));
    }
}
