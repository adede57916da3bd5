//! Shutting down (SIGTERM, a deploy) while a background job holds a DHMAD call: the answer is
//! waited for and recorded, so the call is not made a second time once the job's lease runs out.

use serde_json::json;
use sqlx::PgPool;

use crate::common::{sandbox::*, *};

#[sqlx::test(migrations = "./migrations")]
async fn a_deliver_in_flight_at_shutdown_finishes_and_is_not_sent_again(pool: PgPool) {
    let w = world(pool, |c| {
        c.dhmad_timeout = std::time::Duration::from_secs(10);
    })
    .await;
    // DHMAD acts on the deliver at once, and answers 3 s later (well inside the client's 10 s).
    w.faults(json!({"api": [{"method": "POST", "path": "/api/v1/escrows/{id}/deliver", "fault": "slow", "hang_ms": 3000}]}))
        .await;
    let s = w.checkout("ai-credits-500", "shutdown@example.tn").await;
    w.complete(&s.session_id).await;
    let escrow_id = sqlx::query_scalar!("SELECT escrow_id FROM orders WHERE id = $1", s.order_id)
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
        .expect("an escrow");
    // The outbox's deliver has reached DHMAD, whose answer is on its way.
    wait_for("DHMAD to take the deliver", 30, || async {
        let escrow = w.app.state.dhmad.get_escrow(&escrow_id).await.unwrap();
        (escrow.status.as_str() != "paid" && escrow.status.as_str() != "pending").then_some(())
    })
    .await;
    let (done, attempts) = job(&w, s.order_id).await;
    assert!(!done, "the deliver is still waiting for DHMAD's answer");
    assert_eq!(attempts, 1);

    w.app.stop().await;

    let (done, attempts) = job(&w, s.order_id).await;
    assert!(
        done,
        "the deliver in flight was finished and recorded before the service stopped"
    );
    assert_eq!(attempts, 1);
    let status = sqlx::query_scalar!(
        r#"SELECT status::text AS "status!" FROM orders WHERE id = $1"#,
        s.order_id
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_ne!(status, "paid", "DHMAD's answer was applied");
    assert_eq!(w.count_calls("POST", "/deliver").await, 1);
}

async fn job(w: &World, order_id: uuid::Uuid) -> (bool, i32) {
    let row = sqlx::query!(
        r#"SELECT done_at IS NOT NULL AS "done!", attempts FROM outbox_jobs
            WHERE order_id = $1 AND kind = 'deliver'"#,
        order_id
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    (row.done, row.attempts)
}
