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
        client: None,
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

/// What a snapshot leaves on the order: a signature, once given, stays (a read of DHMAD taken
/// before `contract.signed` and answered after it says "not signed", and took it back); a new
/// delivery makes the last rejection's reason history, so that a lost second rejection does
/// not bring the first one's reason back as news.
#[sqlx::test]
async fn signatures_stay_and_a_new_delivery_retires_the_last_rejection(pool: PgPool) {
    let id = new_order(&pool, "facts@example.tn").await.unwrap();
    let signed = |buyer: Option<bool>| db::orders::EscrowFacts {
        buyer_signed: buyer,
        ..Default::default()
    };
    let buyer_signed = || async {
        sqlx::query_scalar::<_, Option<bool>>(
            "SELECT contract_buyer_signed FROM orders WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    db::orders::set_escrow_facts(&pool, id, &signed(Some(false)))
        .await
        .unwrap();
    assert_eq!(buyer_signed().await, Some(false));
    db::orders::set_escrow_facts(&pool, id, &signed(Some(true)))
        .await
        .unwrap();
    db::orders::set_escrow_facts(&pool, id, &signed(Some(false)))
        .await
        .unwrap();
    db::orders::set_escrow_facts(&pool, id, &signed(None))
        .await
        .unwrap();
    assert_eq!(buyer_signed().await, Some(true));

    let reason = || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT delivery_rejection_reason FROM orders WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let snapshot = |status| db::orders::apply_snapshot(&pool, id, status, "x", None, None);
    snapshot(OrderStatus::Paid).await.unwrap();
    db::orders::set_delivery_rejection(&pool, id, Some("broken"))
        .await
        .unwrap();
    // Paid again after the rejection: the reason is the news.
    snapshot(OrderStatus::Paid).await.unwrap();
    assert_eq!(reason().await.as_deref(), Some("broken"));
    // Shipped again: it is history.
    snapshot(OrderStatus::Delivered).await.unwrap();
    assert_eq!(reason().await, None);
}

/// Settled is final and a digital code is never replaced, in the schema too (a trigger), as
/// in the state machine: a write that slipped past the code fails instead of undoing a
/// settlement or swapping the code a buyer paid for. Every move out of a settled status is
/// refused, and the state machine refuses the same moves.
#[sqlx::test]
async fn the_schema_keeps_settled_orders_and_issued_codes(pool: PgPool) {
    let id = new_order(&pool, "settled@example.tn").await.unwrap();
    let set_status = |status: OrderStatus| {
        sqlx::query("UPDATE orders SET status = $2 WHERE id = $1")
            .bind(id)
            .bind(status)
            .execute(&pool)
    };
    for settled in OrderStatus::SETTLED.iter().copied() {
        // Reaching it directly here: the test is about leaving it.
        sqlx::query("ALTER TABLE orders DISABLE TRIGGER orders_settled_is_final")
            .execute(&pool)
            .await
            .unwrap();
        set_status(settled).await.unwrap();
        sqlx::query("ALTER TABLE orders ENABLE TRIGGER orders_settled_is_final")
            .execute(&pool)
            .await
            .unwrap();
        for next in OrderStatus::ALL.into_iter().filter(|s| *s != settled) {
            assert!(!settled.can_become(next), "{settled:?} → {next:?}");
            let refused = set_status(next).await.unwrap_err();
            assert!(
                refused.to_string().contains("settled is final"),
                "{settled:?} → {next:?}: {refused}"
            );
        }
        // The same status again is no move.
        set_status(settled).await.unwrap();
    }

    let paid = new_order(&pool, "code@example.tn").await.unwrap();
    let set_code = |code: Option<&'static str>| {
        sqlx::query("UPDATE orders SET digital_code = $2 WHERE id = $1")
            .bind(paid)
            .bind(code)
            .execute(&pool)
    };
    set_code(Some("AI-FIRST")).await.unwrap();
    set_code(Some("AI-FIRST")).await.unwrap();
    for other in [Some("AI-SECOND"), None] {
        let refused = set_code(other).await.unwrap_err();
        assert!(refused.to_string().contains("never replaced"), "{refused}");
    }
}
