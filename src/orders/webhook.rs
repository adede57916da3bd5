//! Ingesting a verified webhook: inbox row, snapshot, timeline and outbox in one transaction,
//! so an event is either fully applied or not at all (and DHMAD's retry applies it then).

use dhmad::{Event, WebhookEnvelope};
use sqlx::{PgConnection, PgPool};

use super::{apply_escrow_snapshot, snapshot, Applied, Order, OrderError, OrderResult};
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

/// Stores and applies one event whose signature over `body` was verified. The body is parsed
/// once; the inbox keeps it verbatim (Postgres parses it into JSONB itself).
#[tracing::instrument(skip_all, fields(event.id, event.type))]
pub async fn ingest(pool: &PgPool, body: &[u8]) -> OrderResult<Outcome> {
    // A body that passed the signature check but is no envelope can never succeed: refused,
    // so DHMAD does not retry it.
    let not_json = || OrderError::Invalid("the body is not valid JSON".into());
    let raw = std::str::from_utf8(body).map_err(|_| not_json())?;
    let WebhookEnvelope {
        id,
        event_type,
        data,
        ..
    } = WebhookEnvelope::from_slice(body).map_err(|e| {
        if e.is_data() {
            OrderError::Invalid("the body is not a DHMAD event envelope".into())
        } else {
            not_json()
        }
    })?;
    let span = tracing::Span::current();
    span.record("event.id", id.as_str());
    span.record("event.type", event_type.as_str());
    let event = Event::from_parts(&event_type, data);
    Ok(store_and_apply(pool, &id, &event_type, event, raw).await?)
}

async fn store_and_apply(
    pool: &PgPool,
    id: &str,
    event_type: &str,
    event: Result<Event, serde_json::Error>,
    raw: &str,
) -> sqlx::Result<Outcome> {
    let escrow = event.as_ref().ok().and_then(Event::escrow);
    let mut tx = pool.begin().await?;
    let escrow_id = escrow.map(|e| e.id.as_str());
    if !db::inbox::insert(&mut *tx, id, event_type, escrow_id, raw).await? {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    let (outcome, order_id) = match (&event, escrow) {
        (Err(e), _) => {
            // Signed by DHMAD but not the shape we know: keep it for a human, do not make
            // DHMAD retry something that will never parse.
            tracing::warn!(error = %e, "webhook payload has an unexpected shape");
            (Outcome::Ignored, None)
        }
        (Ok(_), None) => (Outcome::Ignored, None),
        (Ok(ev), Some(escrow)) => {
            let source = format!("webhook {event_type}");
            let applied = apply_escrow_snapshot(&mut tx, escrow, &source).await?;
            match applied.order() {
                None => (Outcome::Unmatched, None),
                Some(order) => {
                    note(&mut tx, order, ev, &applied).await?;
                    (Outcome::Processed, Some(order.id))
                }
            }
        }
    };
    db::inbox::finish(&mut *tx, id, outcome.as_str(), order_id).await?;
    tx.commit().await?;
    tracing::info!(outcome = outcome.as_str(), "webhook ingested");
    Ok(outcome)
}

/// Timeline entries and side facts of events other than the status change itself. `order` is
/// the order as `apply_escrow_snapshot` left it, still row-locked.
async fn note(
    conn: &mut PgConnection,
    order: &Order,
    ev: &Event,
    applied: &Applied,
) -> sqlx::Result<()> {
    let text = match ev {
        Event::EscrowStatusUpdated(_) => return Ok(()), // the transition is already on the timeline
        Event::DepositProofRejected(d) => {
            let reason = d
                .deposit_proof
                .reason
                .as_deref()
                .unwrap_or("no reason given");
            snapshot::record_deposit_rejection(conn, order, reason).await?;
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
    db::events::add(&mut *conn, order.id, kind, &text).await
}
