//! The service's connection pool: sqlx's, with one rule of ours in front of it (hand-written
//! for that rule; sqlx offers no switch for it).
//!
//! sqlx 0.8 makes a round trip to the server every time a connection goes back to its pool
//! (a ping in `sqlx-core`'s `pool/connection.rs`): it flushes a dropped transaction's `ROLLBACK`
//! and finds dead connections. On this service's short requests that was a round trip in three
//! (a JSON read: two for its one statement; BENCHMARKS.md). Here a connection that comes back
//! clean, with its last statement complete and nothing left to send, waits on a stack for the
//! next user, without the ping. Anything else goes back through sqlx, which flushes, tests and
//! keeps or closes it:
//! - a dropped or unfinished transaction (its `ROLLBACK` is queued, or a transaction is open);
//! - a statement that did not finish or failed (a cancelled request, a refused statement);
//! - every kept connection, once any statement failed on the connection level (the server went
//!   away): each is tested before it is used again;
//! - a connection that left sqlx more than [`RECHECK_AFTER`] ago, so that sqlx's own rules
//!   (its test, `max_lifetime`, `idle_timeout`) still apply to each at least that often.
//!
//! The stack holds at most half of sqlx's connections, so whoever uses the sqlx pool directly
//! (migrations, tests) always finds room, and it is emptied when the sqlx pool closes.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex, Weak,
};
use std::time::{Duration, Instant};

use futures_core::{future::BoxFuture, stream::BoxStream};
use futures_util::TryStreamExt;
use sqlx::{
    pool::PoolConnection,
    postgres::{PgQueryResult, PgRow, PgStatement, PgTypeInfo},
    Connection, Describe, Either, Execute, Executor, PgConnection, PgPool, Postgres, Transaction,
};

/// How long a connection may go from user to user without going back through sqlx.
pub const RECHECK_AFTER: Duration = Duration::from_secs(60);

/// Statements that failed on the connection level, process-wide: a kept connection taken out
/// before the latest of them is tested before reuse.
static BROKEN: AtomicU64 = AtomicU64::new(0);

/// Cheap to clone: one pool.
#[derive(Clone, Debug)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sqlx: PgPool,
    kept: Mutex<Vec<Kept>>,
    max_kept: usize,
    recheck_after: Duration,
}

#[derive(Debug)]
struct Kept {
    conn: PoolConnection<Postgres>,
    /// `BROKEN` when this connection was last taken out.
    broken: u64,
    /// When it was last taken from sqlx.
    since: Instant,
}

impl Pool {
    /// Wraps sqlx's pool. Must be called inside a Tokio runtime (a task empties the stack when
    /// the sqlx pool closes).
    pub fn new(sqlx: PgPool) -> Self {
        Self::with_recheck(sqlx, RECHECK_AFTER)
    }

    /// [`Pool::new`], with connections going back through sqlx after `recheck_after` (tests).
    pub fn with_recheck(sqlx: PgPool, recheck_after: Duration) -> Self {
        let max_kept = (sqlx.options().get_max_connections() / 2).max(1) as usize;
        let inner = Arc::new(Inner {
            sqlx,
            kept: Mutex::new(Vec::new()),
            max_kept,
            recheck_after,
        });
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let closed = inner.sqlx.close_event();
        tokio::spawn(async move {
            closed.await;
            if let Some(inner) = weak.upgrade() {
                let kept = std::mem::take(&mut *inner.lock());
                drop(kept);
            }
        });
        Self { inner }
    }

    /// sqlx's pool underneath, for what needs it itself (migrations, its connect options).
    pub fn sqlx(&self) -> &PgPool {
        &self.inner.sqlx
    }

    /// Connections kept for reuse right now (tests, diagnostics).
    pub fn kept(&self) -> usize {
        self.inner.lock().len()
    }

    /// A connection: the one kept last if it may be reused as it is, else one from sqlx.
    pub async fn acquire(&self) -> sqlx::Result<Conn> {
        let broken = BROKEN.load(Ordering::Acquire);
        loop {
            let kept = self.inner.lock().pop();
            match kept {
                Some(k) if k.broken == broken && self.inner.fresh(k.since) => {
                    return Ok(self.conn(k.conn, broken, k.since));
                }
                // Tested by sqlx on its way back (dropping it returns it there).
                Some(k) => drop(k.conn),
                None => break,
            }
        }
        let conn = self.inner.sqlx.acquire().await?;
        Ok(self.conn(conn, broken, Instant::now()))
    }

    fn conn(&self, conn: PoolConnection<Postgres>, broken: u64, since: Instant) -> Conn {
        Conn {
            conn: Some(conn),
            home: Arc::clone(&self.inner),
            broken,
            since,
            busy: false,
        }
    }
}

impl Inner {
    /// Whether a connection taken from sqlx at `since` may still skip it.
    fn fresh(&self, since: Instant) -> bool {
        since.elapsed() < self.recheck_after
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        // A panic while holding the lock leaves a valid Vec: keep using it.
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection out of the [`Pool`]. Use `&mut conn` as an executor; statements run through it
/// are tracked, so one that did not finish sends the connection back through sqlx.
#[derive(Debug)]
pub struct Conn {
    conn: Option<PoolConnection<Postgres>>,
    home: Arc<Inner>,
    broken: u64,
    since: Instant,
    /// A statement was started and has not finished well.
    busy: bool,
}

impl Conn {
    /// Begins a transaction with `statement` (`BEGIN` and its settings, `db::tx`). A
    /// transaction that is dropped queues its `ROLLBACK`, which sends the connection back
    /// through sqlx.
    pub async fn begin_with(
        &mut self,
        statement: &'static str,
    ) -> sqlx::Result<Transaction<'_, Postgres>> {
        self.tracked(move |c| c.begin_with(statement)).await
    }

    /// Runs `run` on the connection, which counts as busy until it has finished well.
    fn tracked<'e, T>(
        &'e mut self,
        run: impl FnOnce(&'e mut PgConnection) -> BoxFuture<'e, sqlx::Result<T>>,
    ) -> BoxFuture<'e, sqlx::Result<T>>
    where
        T: Send + 'e,
    {
        let Conn { conn, busy, .. } = self;
        *busy = true;
        let running = run(raw(conn));
        Box::pin(async move {
            let out = running.await.inspect_err(noted)?;
            *busy = false;
            Ok(out)
        })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let clean = !self.busy && !conn.should_flush() && !conn.is_in_transaction();
        if !clean || !self.home.fresh(self.since) || self.home.sqlx.is_closed() {
            return; // `conn` goes back through sqlx.
        }
        let mut kept = self.home.lock();
        if kept.len() < self.home.max_kept {
            kept.push(Kept {
                conn,
                broken: self.broken,
                since: self.since,
            });
        }
    }
}

fn raw(conn: &mut Option<PoolConnection<Postgres>>) -> &mut PgConnection {
    conn.as_mut()
        .expect("a Conn holds its connection until dropped")
}

/// Counts a failure of the connection itself (not a refused statement), so kept connections
/// are tested before reuse.
fn noted(e: &sqlx::Error) {
    if super::connection_lost(e) {
        BROKEN.fetch_add(1, Ordering::AcqRel);
    }
}

type Step = Either<PgQueryResult, PgRow>;

impl<'c> Executor<'c> for &'c mut Conn {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, sqlx::Result<Step>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let Conn { conn, busy, .. } = self;
        *busy = true;
        let mut steps = raw(conn).fetch_many(query);
        Box::pin(async_stream::try_stream! {
            while let Some(step) = steps.try_next().await.inspect_err(noted)? {
                yield step;
            }
            *busy = false;
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, sqlx::Result<Option<PgRow>>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        self.tracked(move |c| c.fetch_optional(query))
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, sqlx::Result<PgStatement<'q>>>
    where
        'c: 'e,
    {
        self.tracked(move |c| c.prepare_with(sql, parameters))
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, sqlx::Result<Describe<Postgres>>>
    where
        'c: 'e,
    {
        self.tracked(move |c| c.describe(sql))
    }
}

/// `&pool` as an executor: each statement on a connection of its own, as with sqlx's pool.
impl<'p> Executor<'p> for &'_ Pool {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, sqlx::Result<Step>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.clone();
        Box::pin(async_stream::try_stream! {
            let mut conn = pool.acquire().await?;
            let mut steps = (&mut conn).fetch_many(query);
            while let Some(step) = steps.try_next().await? {
                yield step;
            }
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, sqlx::Result<Option<PgRow>>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.clone();
        Box::pin(async move { (&mut pool.acquire().await?).fetch_optional(query).await })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, sqlx::Result<PgStatement<'q>>>
    where
        'p: 'e,
    {
        let pool = self.clone();
        Box::pin(async move {
            (&mut pool.acquire().await?)
                .prepare_with(sql, parameters)
                .await
        })
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, sqlx::Result<Describe<Postgres>>>
    where
        'p: 'e,
    {
        let pool = self.clone();
        Box::pin(async move { (&mut pool.acquire().await?).describe(sql).await })
    }
}
