//! Applying migrations, as `serve` and `migrate` do at start: beside another instance that is
//! migrating, and without the requests' bounded waits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::{migrate::Migrate, PgPool};

use crate::common::*;

/// A migration is never edited once it landed: a database that applied the earlier text
/// refuses a binary whose copy differs (sqlx compares checksums), and it missed what the edit
/// added. Several were edited all the same; `tests/migrations.sha384` now holds each one's.
#[test]
fn landed_migrations_are_never_edited() {
    let recorded = std::fs::read_to_string("tests/migrations.sha384").unwrap();
    let recorded: std::collections::HashMap<i64, &str> = recorded
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (version, sum) = l.split_once(' ').expect("`version sha384` per line");
            (version.parse().expect("a version"), sum.trim())
        })
        .collect();
    let migrator = sqlx::migrate!("./migrations");
    for m in migrator.iter() {
        let sum: String = m.checksum.iter().map(|b| format!("{b:02x}")).collect();
        match recorded.get(&m.version) {
            Some(landed) => assert_eq!(
                *landed, sum,
                "migration {} changed after it landed: undo the edit and write a new migration",
                m.version
            ),
            None => panic!(
                "a new migration: add `{} {sum}` to tests/migrations.sha384",
                m.version
            ),
        }
    }
    assert_eq!(
        recorded.len(),
        migrator.iter().count(),
        "a landed migration is gone"
    );
}

/// A configuration whose `DATABASE_URL` names `database`.
fn on_database(database: &str) -> storefront::config::Config {
    let mut cfg = offline_config();
    let mut url = url::Url::parse(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    url.set_path(database);
    cfg.database_url = url.to_string().into();
    cfg
}

/// An instance of the release before starts on a database a newer release migrated (an old
/// instance restarting during a rolling deploy, or a rollback): sqlx refused to, finding a
/// version it did not know, and the instance could not start until the new release was back.
#[sqlx::test(migrations = false)]
async fn an_older_release_migrates_a_database_a_newer_one_migrated(pool: PgPool) {
    let cfg = on_database(pool.connect_options().get_database().unwrap());
    storefront::app::migrate(&cfg).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99991231000000, 'a newer release', true, '\\x00'::bytea, 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    storefront::app::migrate(&cfg).await.unwrap();
}

/// An instance started while another is applying migrations waits for it, then applies what is
/// left. It used to give up after the requests' 2 s lock wait and fail to start.
#[sqlx::test(migrations = false)]
async fn an_instance_waits_for_another_instances_migrations(pool: PgPool) {
    let database = pool.connect_options().get_database().unwrap().to_owned();
    // Another instance holds sqlx's migration lock (a migration of its own under way).
    let mut other = pool.acquire().await.unwrap();
    other.lock().await.unwrap();
    // Longer than a migration's lock wait (5 s): it is tried again.
    let released = Arc::new(AtomicBool::new(false));
    let release = tokio::spawn({
        let released = released.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(7)).await;
            // Before the lock goes: a migration that waited cannot finish first.
            released.store(true, Ordering::SeqCst);
            other.unlock().await.unwrap();
        }
    });
    storefront::app::migrate(&on_database(&database))
        .await
        .unwrap();
    assert!(
        released.load(Ordering::SeqCst),
        "migrated while the other instance held the lock"
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
