//! `db::Pool` (`src/db/pool.rs`): a connection that comes back clean is kept for the next user
//! without sqlx's release round trip; one that may be unfinished goes back through sqlx, which
//! flushes and tests it.

use std::time::Duration;

use sqlx::PgPool;
use storefront::db::{self, Pool};

async fn backend_pid(conn: &mut db::Conn) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn a_clean_connection_is_kept_and_reused_as_it_is(pool: PgPool) {
    let pool = Pool::new(pool);
    let mut conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&mut conn).await;
    drop(conn);
    assert_eq!(pool.kept(), 1);
    assert_eq!(pool.sqlx().num_idle(), 0, "it never went back to sqlx");
    let mut again = pool.acquire().await.unwrap();
    assert_eq!(backend_pid(&mut again).await, pid, "the same connection");
    drop(again);
    // `&pool` as an executor takes and keeps a connection the same way.
    let pid_again: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(pid_again, pid);
    assert_eq!(pool.kept(), 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn sqlx_sees_every_connection_again_after_a_while(pool: PgPool) {
    // Past `RECHECK_AFTER` (a minute in service; none here) a connection goes back through sqlx,
    // whose test, lifetime and idle rules then apply to it.
    let pool = Pool::with_recheck(pool, Duration::ZERO);
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    assert_eq!(pool.kept(), 0, "went back through sqlx");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_dropped_transaction_goes_back_through_sqlx_and_frees_its_locks(pool: PgPool) {
    let pool = Pool::new(pool);
    sqlx::query("INSERT INTO dhmad_budget (slot) VALUES (999)")
        .execute(&pool)
        .await
        .unwrap();
    {
        let mut conn = pool.acquire().await.unwrap();
        let mut tx = db::tx::begin(&mut conn).await.unwrap();
        sqlx::query("SELECT 1 FROM dhmad_budget WHERE slot = 999 FOR UPDATE")
            .execute(&mut *tx)
            .await
            .unwrap();
        // Dropped without COMMIT or ROLLBACK (a request cancelled mid-transaction).
    }
    assert_eq!(
        pool.kept(),
        0,
        "its ROLLBACK is sent by sqlx, not left queued"
    );
    // Another connection, straight from sqlx, gets the row: the lock is gone.
    let mut other = pool.sqlx().begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '5s'")
        .execute(&mut *other)
        .await
        .unwrap();
    sqlx::query("SELECT 1 FROM dhmad_budget WHERE slot = 999 FOR UPDATE")
        .execute(&mut *other)
        .await
        .expect("the dropped transaction's lock was released");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_statement_cut_short_sends_its_connection_back_through_sqlx(pool: PgPool) {
    let pool = Pool::new(pool);
    let mut conn = pool.acquire().await.unwrap();
    let slow = sqlx::query("SELECT pg_sleep(5)").execute(&mut conn);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), slow)
            .await
            .is_err(),
        "the statement was cut short"
    );
    drop(conn);
    assert_eq!(pool.kept(), 0, "its answer is still due: not kept");
    // A refused statement is not kept either (its end of answer is still to be read), whether
    // its rows were streamed or fetched at once.
    let mut conn = pool.acquire().await.unwrap();
    assert!(sqlx::query("SELECT 1/0").execute(&mut conn).await.is_err());
    drop(conn);
    assert_eq!(pool.kept(), 0);
    let mut conn = pool.acquire().await.unwrap();
    let refused = sqlx::query_scalar::<_, i32>("SELECT 1/0")
        .fetch_optional(&mut conn)
        .await;
    assert!(refused.is_err());
    drop(conn);
    assert_eq!(pool.kept(), 0);
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn after_a_lost_connection_kept_ones_are_tested_before_reuse(pool: PgPool) {
    let pool = Pool::new(pool);
    let (mut a, mut b) = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
    let pids = [backend_pid(&mut a).await, backend_pid(&mut b).await];
    drop((a, b));
    assert_eq!(pool.kept(), 2);
    // The server ends both kept connections (a restart, an administrator).
    for pid in pids {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(pool.sqlx())
            .await
            .unwrap();
    }
    // The first statement may meet a dead connection (as with sqlx's pool without a test
    // before each use); once one has failed, the other kept one is tested before it is used.
    let _ = sqlx::query("SELECT 1").execute(&pool).await;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .expect("the second statement gets a live connection");
    assert_eq!(one, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn closing_the_pool_leaves_no_connection_of_the_service_open(pool: PgPool) {
    let w = crate::common::sandbox::world(pool.clone(), |_| {}).await;
    let started = w.checkout("ai-credits-500", "close@example.tn").await;
    // The DHMAD call log has its own connection: wait until it has written.
    let logged = pool.clone();
    crate::common::wait_for("the checkout's calls in the log", 30, || {
        let pool = logged.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM dhmad_calls WHERE order_id = $1")
                .bind(started.order_id)
                .fetch_one(&pool)
                .await
                .unwrap();
            (n == 2).then_some(())
        }
    })
    .await;
    let options = pool.connect_options().as_ref().clone();
    pool.close().await;
    // Whatever held a connection to this database lets go (else the database cannot be dropped).
    let watcher = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    crate::common::wait_for("every other connection to close", 30, || {
        let watcher = watcher.clone();
        async move {
            let others: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .fetch_one(&watcher)
            .await
            .unwrap();
            (others == 0).then_some(())
        }
    })
    .await;
    watcher.close().await;
}
