//! Applying migrations, as `serve` and `migrate` do at start: beside another instance that is
//! migrating, and without the requests' bounded waits.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::common::*;

/// sqlx's migration lock for `database` (sqlx-postgres 0.8, `generate_lock_id`): what an
/// instance migrating that database holds.
fn migration_lock(database: &str) -> i64 {
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    0x3d32ad9e * i64::from(CRC.checksum(database.as_bytes()))
}

/// An instance started while another is applying migrations waits for it, then finds nothing
/// left to do. It used to give up after the requests' 2 s lock wait and fail to start.
#[sqlx::test(migrations = false)]
async fn an_instance_waits_for_another_instances_migrations(pool: PgPool) {
    let database = pool.connect_options().get_database().unwrap().to_owned();
    let lock = migration_lock(&database);
    let mut other = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(lock)
        .execute(&mut *other)
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(lock)
            .execute(&mut *other)
            .await
            .unwrap();
    });
    let mut cfg = config(
        DEAD_DHMAD,
        storefront::config::SANDBOX_DEFAULT_API_KEY,
        SECRET,
    );
    let mut url = url::Url::parse(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    url.set_path(&database);
    cfg.database_url = url.to_string().into();
    let started = Instant::now();
    storefront::app::migrate(&cfg).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "the lock was not waited for"
    );
    release.await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        applied as usize,
        std::fs::read_dir("migrations").unwrap().count()
    );
}
