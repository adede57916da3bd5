//! Ingesting a verified webhook: inbox row, snapshot, timeline and outbox in one transaction,
//! so an event is either fully applied or not at all (and DHMAD's retry applies it then).

use dhmad::{Event, WebhookEnvelope};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{apply_escrow_snapshot, Applied, OrderStatus};
use crate::db;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied to an order.
    Processed,
    /// Already received (same event id).
    Duplicate,
    /// Stored, but nothing to apply (unknown type, no escrow).
    Ignored,
    /// Stored; no order has this escrow.
    Unmatched,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Unmatched => "unmatched",
        }
    }
}

/// Stores and applies one event. `payload` is the parsed body, kept verbatim in the inbox.
pub async fn ingest(
    pool: &PgPool,
    env: &WebhookEnvelope,
    payload: &serde_json::Value,
) -> sqlx::Result<Outcome> {
    let event = env.event();
    let escrow_id = event
        .as_ref()
        .ok()
        .and_then(|e| e.escrow())
        .map(|e| e.id.clone());
    let mut tx = pool.begin().await?;
    if !db::inbox::insert(
        &mut *tx,
        &env.id,
        &env.event_type,
        escrow_id.as_deref(),
        payload,
    )
    .await?
    {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    let (outcome, order_id) = match &event {
        Err(e) => {
            // Signed by DHMAD but not the shape we know: keep it for a human, do not make
            // DHMAD retry something that will never parse.
            tracing::warn!(event_id = %env.id, event_type = %env.event_type, error = %e, "webhook payload has an unexpected shape");
            (Outcome::Ignored, None)
        }
        Ok(ev) => match ev.escrow() {
            None => (Outcome::Ignored, None),
            Some(escrow) => {
                let source = format!("webhook {}", env.event_type);
                let applied = apply_escrow_snapshot(&mut tx, escrow, &source).await?;
                match applied.order_id() {
                    None => (Outcome::Unmatched, None),
                    Some(id) => {
                        note(&mut tx, id, ev, &applied).await?;
                        (Outcome::Processed, Some(id))
                    }
                }
            }
        },
    };
    db::inbox::finish(&mut *tx, &env.id, outcome.as_str(), order_id).await?;
    tx.commit().await?;
    tracing::info!(event_id = %env.id, event_type = %env.event_type, outcome = outcome.as_str(), "webhook ingested");
    Ok(outcome)
}

/// Timeline entries and side facts of events other than the status change itself. Runs under
/// the order's row lock taken by `apply_escrow_snapshot`.
async fn note(
    conn: &mut PgConnection,
    order_id: Uuid,
    ev: &Event,
    applied: &Applied,
) -> sqlx::Result<()> {
    let text = match ev {
        Event::EscrowStatusUpdated(_) => return Ok(()), // the transition is already on the timeline
        Event::DepositProofRejected(d) => {
            let reason = d
                .deposit_proof
                .reason
                .clone()
                .unwrap_or_else(|| "no reason given".into());
            let order = db::orders::get(&mut *conn, order_id).await?;
            // A rejection that arrives after the order got paid is history, not news.
            if order.is_some_and(|o| o.status() == OrderStatus::AwaitingPayment) {
                db::orders::set_deposit_rejection(&mut *conn, order_id, Some(&reason)).await?;
            }
            format!("Payment proof rejected by DHMAD: {reason}")
        }
        Event::DeliveryRejected(d) => format!(
            "The buyer rejected the delivery{}",
            d.delivery_rejection
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        Event::CancellationRequested(_) => "The buyer asked to cancel".into(),
        Event::CancellationRejected(_) => "The cancellation request was refused".into(),
        Event::CancellationAccepted(_) => "The cancellation was accepted".into(),
        Event::EscrowUpdated(d) => {
            format!("Escrow details updated ({})", d.updated_fields.join(", "))
        }
        other => format!("DHMAD event {}", other.event_type()),
    };
    let kind = if matches!(applied, Applied::Stale { .. }) {
        "late_event"
    } else {
        "event"
    };
    db::events::add(&mut *conn, order_id, kind, &text).await
}
