//! DHMAD's facts about an order's escrow, written as a snapshot, a webhook or an action
//! brings them: status, digital code, rejections, cancellation, payment review.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::orders::state_machine::{Cancellation, Mode, Order, OrderStatus};

/// Moves the order to `status` as DHMAD's snapshot says, and returns it as it now is.
/// `digital_code`: the instant good issued with this change, kept only if the order has none
/// (one statement where the payment and the good are one step).
pub async fn apply_snapshot(
    e: impl PgExecutor<'_>,
    id: Uuid,
    status: OrderStatus,
    escrow_status: &str,
    escrow_updated_at: Option<OffsetDateTime>,
    digital_code: Option<&str>,
) -> sqlx::Result<Order> {
    sqlx::query_as!(
        Order,
        r#"UPDATE orders SET status = $2, escrow_status = $3,
                escrow_updated_at = COALESCE($4, escrow_updated_at),
                digital_code = COALESCE(digital_code, $5),
                -- Delivered again: the last rejection's reason is history (kept in the timeline),
                -- not the news a lost second rejection would leave it as.
                delivery_rejection_reason = CASE WHEN $2 = 'delivered'::order_status AND status <> 'delivered'
                                                 THEN NULL ELSE delivery_rejection_reason END,
                last_synced_at = now(), updated_at = now(), sync_failures = 0, next_sync_at = NULL
           WHERE id = $1
           RETURNING id, sku, mode AS "mode: Mode", buyer_email, amount, currency,
                status AS "status: OrderStatus", escrow_id, escrow_status, escrow_updated_at,
                failure_reason, deposit_rejection_reason, digital_code, last_synced_at,
                escrow_attempted_at, created_at, updated_at, attention, payment_review_since,
                cancellation AS "cancellation: Cancellation", cancellation_reason,
                delivery_rejection_reason, proof_required, contract_buyer_signed,
                contract_seller_signed, proof_phase, proof_upload_deadline, proof_review_deadline,
                dispute_ticket_id"#,
        id,
        status as OrderStatus,
        escrow_status,
        escrow_updated_at,
        digital_code
    )
    .fetch_one(e)
    .await
}

pub async fn set_deposit_rejection(
    e: impl PgExecutor<'_>,
    id: Uuid,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET deposit_rejection_reason = $2, updated_at = now() WHERE id = $1",
        id,
        reason
    )
    .execute(e)
    .await?;
    Ok(())
}

pub async fn set_delivery_rejection(
    e: impl PgExecutor<'_>,
    id: Uuid,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET delivery_rejection_reason = COALESCE($2, 'no reason given'),
                updated_at = now()
         WHERE id = $1",
        id,
        reason
    )
    .execute(e)
    .await?;
    Ok(())
}

pub async fn set_cancellation(
    e: impl PgExecutor<'_>,
    id: Uuid,
    state: Cancellation,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET cancellation = $2, cancellation_reason = COALESCE($3, cancellation_reason),
                updated_at = now()
         WHERE id = $1",
        id,
        state as Cancellation,
        reason
    )
    .execute(e)
    .await?;
    Ok(())
}

/// A guest's payment proof now awaits DHMAD's approval (`since`), or no longer does (`None`).
pub async fn set_payment_review(
    e: impl PgExecutor<'_>,
    id: Uuid,
    since: Option<OffsetDateTime>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET payment_review_since = $2, updated_at = now() WHERE id = $1",
        id,
        since
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Marks the order of `escrow_id` as having had a guest's proof under review (kept if it was
/// known already): DHMAD rejected one as it cancelled the escrow, which it does only to a
/// pending escrow. Before the cancellation applies (the order awaits payment) or after it (the
/// cancellation came first: an earlier try of this event failed, or a read).
pub async fn mark_guest_proof_rejected(
    e: impl PgExecutor<'_>,
    escrow_id: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET payment_review_since = COALESCE(payment_review_since, now())
          WHERE escrow_id = $1 AND status IN ('awaiting_payment', 'cancelled')",
        escrow_id
    )
    .execute(e)
    .await?;
    Ok(())
}

/// What DHMAD's snapshot says of the contract (standard) and the proof gate (proof escrows).
#[derive(Default)]
pub struct EscrowFacts<'a> {
    pub buyer_signed: Option<bool>,
    pub seller_signed: Option<bool>,
    pub proof_phase: Option<&'a str>,
    pub proof_upload_deadline: Option<OffsetDateTime>,
    pub proof_review_deadline: Option<OffsetDateTime>,
    /// The proof's `correctionRounds`: kept as the highest seen.
    pub proof_correction_rounds: Option<i32>,
    /// The open dispute ticket, when the snapshot says (a read: `Some(None)` for none).
    pub dispute_ticket: Option<Option<&'a str>>,
}

/// The proof's correction rounds as last kept (`None`: none known).
pub async fn proof_correction_rounds(
    e: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar!(
        "SELECT proof_correction_rounds FROM orders WHERE id = $1",
        id
    )
    .fetch_one(e)
    .await
}

/// Keeps the facts a snapshot carries; what it does not carry stays as it was. A signature,
/// once given, stays: a read of DHMAD taken before a `contract.signed` and answered after it
/// (the signature may not move the escrow's `updatedAt`, UNSTATED) says "not signed", and took
/// it back, offering the step again, which DHMAD refuses.
pub async fn set_escrow_facts(
    e: impl PgExecutor<'_>,
    id: Uuid,
    f: &EscrowFacts<'_>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET contract_buyer_signed = COALESCE(contract_buyer_signed OR $2, $2, contract_buyer_signed),
                contract_seller_signed = COALESCE(contract_seller_signed OR $3, $3, contract_seller_signed),
                proof_phase = COALESCE($4, proof_phase),
                proof_upload_deadline = COALESCE($5, proof_upload_deadline),
                proof_review_deadline = COALESCE($6, proof_review_deadline),
                proof_correction_rounds = GREATEST(proof_correction_rounds, $7),
                dispute_ticket_id = CASE WHEN $8 THEN $9 ELSE dispute_ticket_id END
         WHERE id = $1",
        id,
        f.buyer_signed,
        f.seller_signed,
        f.proof_phase,
        f.proof_upload_deadline,
        f.proof_review_deadline,
        f.proof_correction_rounds,
        f.dispute_ticket.is_some(),
        f.dispute_ticket.flatten()
    )
    .execute(e)
    .await?;
    Ok(())
}
