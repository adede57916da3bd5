//! The order's statuses as Postgres stores them: every Rust status round-trips through the
//! `order_status` enum, and the partial unique index that keeps one open order per buyer and
//! product covers exactly `OrderStatus::OPEN`.

use sqlx::PgPool;
use storefront::{
    db,
    orders::{Mode, OrderStatus},
};

async fn new_order(pool: &PgPool, email: &str) -> Option<uuid::Uuid> {
    let new = db::orders::NewOrder {
        sku: "ai-credits-500",
        mode: Mode::Instant,
        buyer_email: email,
        amount: rust_decimal::Decimal::new(15, 0),
        currency: "TND",
        owner_key: "browser:test",
        proof_required: false,
        claim: None,
        created: crate::common::line("order_created"),
        job: None,
    };
    db::orders::insert_open(pool, &new)
        .await
        .unwrap()
        .map(|o| o.id)
}

#[sqlx::test]
async fn every_status_round_trips_and_only_open_ones_block_a_second_order(pool: PgPool) {
    for (i, status) in OrderStatus::ALL.into_iter().enumerate() {
        let email = format!("buyer{i}@example.tn");
        let id = new_order(&pool, &email).await.unwrap();
        // Set directly: the writes of the code only make the moves the state machine allows.
        sqlx::query!(
            "UPDATE orders SET status = $2 WHERE id = $1",
            id,
            status as OrderStatus
        )
        .execute(&pool)
        .await
        .unwrap();
        let read = db::orders::get(&pool, id).await.unwrap().unwrap();
        assert_eq!(read.status, status);
        assert_eq!(read.mode, Mode::Instant);
        let second = new_order(&pool, &email).await;
        assert_eq!(
            second.is_none(),
            status.is_open(),
            "{status:?}: the unique index and OrderStatus::OPEN disagree"
        );
        // A repeated checkout continues the open order: the first one while it is open, else
        // the one just opened.
        let found = db::orders::find_open(&pool, "browser:test", "ai-credits-500", &email)
            .await
            .unwrap()
            .map(|o| o.id);
        assert_eq!(found, Some(second.unwrap_or(id)), "{status:?}");
    }
}

#[sqlx::test]
async fn a_status_the_code_does_not_know_is_an_error_not_another_status(pool: PgPool) {
    let id = new_order(&pool, "stranger@example.tn").await.unwrap();
    // The database refuses values outside the enum…
    let bad = sqlx::query("UPDATE orders SET status = 'frozen' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await;
    assert!(bad.is_err(), "the enum refuses an unknown status");
    // …and a value the database has but the code does not (a migration ahead of the binary)
    // fails to decode instead of turning into some other status.
    sqlx::query("ALTER TYPE order_status ADD VALUE 'frozen'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE orders SET status = 'frozen' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let read = db::orders::get(&pool, id).await;
    assert!(read.is_err(), "decoded an unknown status as {read:?}");
}
