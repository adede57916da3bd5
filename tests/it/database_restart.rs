//! Postgres restarts under the shop (an upgrade, a failover, a crash): every connection the
//! service holds is ended by the server, and the service uses them again without a test first
//! (`app::connect`). What was sent out is recorded once, and requests get a 503, never a 500.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};
use std::time::Duration;

use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::*;
use storefront::{db, orders::notify};

/// A relay that takes a message and, before it says so, has the shop's connections to the
/// database ended; its URL and how many messages it took.
async fn relay_restarting_the_database(pool: PgPool) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let taken = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&taken);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (pool, count) = (pool.clone(), Arc::clone(&count));
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 fake.test ESMTP\r\n").await.ok();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.to_ascii_uppercase();
                    let answer: &[u8] = if verb.starts_with("DATA") {
                        w.write_all(b"354 go ahead\r\n").await.ok();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if line == "." {
                                break;
                            }
                        }
                        assert!(terminate_production_connections(&pool).await > 0);
                        count.fetch_add(1, Ordering::SeqCst);
                        b"250 2.0.0 queued\r\n"
                    } else if verb.starts_with("QUIT") {
                        b"221 2.0.0 bye\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    w.write_all(answer).await.ok();
                }
            });
        }
    });
    (url, taken)
}

/// The e-mail went out, then the write that closes its job met a connection the restart had
/// ended: the job stayed claimed, and once its lease was over (two minutes) another worker sent
/// the e-mail again. The write is tried again on a new connection.
#[sqlx::test(migrations = "./migrations")]
async fn an_email_sent_as_the_database_restarts_is_recorded_and_sent_once(pool: PgPool) {
    let (smtp_url, taken) = relay_restarting_the_database(pool.clone()).await;
    let mut cfg = offline_config();
    cfg.smtp_url = Some(smtp_url.into());
    cfg.smtp_timeout = Duration::from_secs(5);
    let app = spawn(production_pool(&pool), cfg).await;
    let order = app
        .insert_order("chechia-red", "restart@example.tn", None)
        .await;
    db::outbox::enqueue(&pool, notify::CONFIRMATION, order.id)
        .await
        .unwrap();
    wait_for("the e-mail's job closed", 15, || async {
        let done: Option<bool> =
            sqlx::query_scalar("SELECT done_at IS NOT NULL FROM outbox_jobs WHERE order_id = $1")
                .bind(order.id)
                .fetch_optional(&pool)
                .await
                .unwrap();
        (done == Some(true)).then_some(())
    })
    .await;
    assert_eq!(taken.load(Ordering::SeqCst), 1);
}

/// After the restart, each kept connection met `57P01` on its next statement, which was taken
/// for a lasting failure: a 500 and an error page. It is a 503 (try again), and the pool
/// replaces the connection.
#[sqlx::test(migrations = "./migrations")]
async fn requests_after_a_database_restart_get_a_503_not_a_500(pool: PgPool) {
    let mut cfg = offline_config();
    // No outbox pass to meet a dead connection before the requests do.
    cfg.jobs.outbox = Duration::from_secs(3600);
    let app = spawn(production_pool(&pool), cfg).await;
    let missing = app.url(&format!("/api/orders/{}", uuid::Uuid::new_v4()));
    let read = || app.http.get(&missing).send();
    let burst = || async {
        futures_util::future::join_all((0..5).map(|_| read()))
            .await
            .into_iter()
            .map(|r| r.unwrap().status().as_u16())
            .collect::<Vec<_>>()
    };
    // Five connections in use at once, then kept.
    assert_eq!(burst().await, [404; 5]);
    assert!(app.pool.size() >= 3, "{}", app.pool.size());
    assert!(terminate_production_connections(&pool).await >= 1);
    // At once, they take the kept connections before any failure is noticed.
    let after = burst().await;
    assert!(after.iter().all(|s| matches!(s, 404 | 503)), "{after:?}");
    assert!(after.contains(&503), "{after:?}");
    // Then the pool has replaced them.
    let mut again = Vec::new();
    for _ in 0..5 {
        again.push(read().await.unwrap().status().as_u16());
    }
    assert!(again.iter().all(|s| matches!(s, 404 | 503)), "{again:?}");
    assert_eq!(again.last(), Some(&404), "{again:?}");
}
