//! Reprocessing a stored webhook event from the back office: DHMAD retries a delivery for a few
//! seconds and has no redelivery API, so an event that matched no order (its order's escrow was
//! recorded after it arrived) or whose reprocessing failed can only be applied again from the
//! inbox. Same path as a live delivery (`webhook::store_and_apply`): the stored payload is parsed
//! as a `WebhookEnvelope`, its snapshot applied by `apply_escrow_snapshot` under the order's row
//! lock (and its amount by `snapshot::amount`), the event's news by `news::apply`, and the inbox
//! row updated, in one transaction.
//!
//! Idempotent: the inbox row is locked first and a `processed` event is left alone, so its news
//! (timeline lines, cancellation facts) is applied at most once however often, or however
//! concurrently, it is reprocessed; the snapshot itself would change nothing twice anyway (same
//! or older than what the order holds).

use dhmad::WebhookEnvelope;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    webhook::{apply_read, live_source, unread_line, Outcome, Read, UNREAD},
    Applied, OrderResult,
};
use crate::db::{self, admin_consoles::LockedEvent, Pool};

/// What reprocessing one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reprocessed {
    /// Applied to this order now.
    Processed(Uuid),
    /// Still no order has the event's escrow.
    Unmatched,
    /// Nothing to apply (no escrow in it, or a shape we do not know).
    Ignored,
    /// It had been applied already: nothing changed.
    AlreadyProcessed,
    /// No stored event has this id.
    NotFound,
}

/// Applies a stored event again. On a database error the transaction is rolled back and the
/// event kept as `failed`, with why (unless it was processed meanwhile).
#[tracing::instrument(skip_all, fields(event.id = event_id))]
pub async fn reprocess(pool: &Pool, event_id: &str) -> OrderResult<Reprocessed> {
    match apply_stored(pool, event_id).await {
        Ok(r) => Ok(r),
        Err(e) => {
            db::admin_consoles::mark_inbox_failed(pool, event_id, &e.to_string()).await?;
            Err(e.into())
        }
    }
}

/// One transaction; rolled back at once on an error, so that the row lock is gone when the
/// failure is recorded.
async fn apply_stored(pool: &Pool, event_id: &str) -> sqlx::Result<Reprocessed> {
    let mut conn = pool.acquire().await?;
    let mut tx = db::tx::begin(&mut conn).await?;
    match apply_in(&mut tx, event_id).await {
        Ok(r) => {
            tx.commit().await?;
            Ok(r)
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e)
        }
    }
}

async fn apply_in(tx: &mut PgConnection, event_id: &str) -> sqlx::Result<Reprocessed> {
    let Some(stored) = db::admin_consoles::lock_inbox(&mut *tx, event_id).await? else {
        return Ok(Reprocessed::NotFound);
    };
    if stored.outcome == Outcome::Processed.as_str() {
        return Ok(Reprocessed::AlreadyProcessed);
    }
    // The stored body passed `WebhookEnvelope::from_slice` when it arrived; it is read as on
    // arrival (`webhook::Read`).
    let raw = stored.payload.as_bytes();
    let read = match WebhookEnvelope::from_slice(raw) {
        Ok(env) => Read::new(&env.event_type, env.data, raw),
        Err(e) => Read::Unreadable(e),
    };
    let source = format!("webhook {}, reprocessed", stored.event_type);
    if already_applied_unread(&mut *tx, &stored, &read, &source).await? {
        return Ok(Reprocessed::Ignored);
    }
    let (outcome, applied) = apply_read(&mut *tx, &read, &source).await?;
    let order_id = applied.as_ref().and_then(Applied::order).map(|o| o.id);
    db::admin_consoles::set_inbox_outcome(&mut *tx, event_id, outcome.as_str(), order_id).await?;
    tracing::info!(outcome = outcome.as_str(), "webhook reprocessed");
    Ok(match (outcome, order_id) {
        (Outcome::Processed, Some(id)) => Reprocessed::Processed(id),
        (Outcome::Unmatched, _) => Reprocessed::Unmatched,
        _ => Reprocessed::Ignored,
    })
}

/// Whether `read` is an event that still does not read, whose snapshot already applied to its
/// order (its line is on the timeline, from its delivery or an earlier reprocess): applying it
/// again would only repeat that line. One stored by an older build, which applied nothing of
/// such an event, has no line: it is applied.
async fn already_applied_unread(
    tx: &mut PgConnection,
    stored: &LockedEvent,
    read: &Read,
    source: &str,
) -> sqlx::Result<bool> {
    let (Read::SnapshotOnly { error, .. }, Some(order_id)) = (read, stored.order_id) else {
        return Ok(false);
    };
    for applied_as in [live_source(&stored.event_type), source.to_owned()] {
        let line = unread_line(&applied_as, error);
        if db::events::has_line(&mut *tx, order_id, UNREAD, &line).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What reprocessing every unmatched (or failed) event did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Batch {
    pub processed: usize,
    pub unmatched: usize,
    pub ignored: usize,
    pub failed: usize,
}

/// Events reprocessed per click (see `db::admin_consoles::unmatched_ids` for which): a
/// bounded amount of work per request.
pub const BATCH_LIMIT: i64 = 500;

/// Reprocesses a batch of unmatched and failed events; returns what became of them and the
/// orders they were applied to.
pub async fn reprocess_unmatched(pool: &Pool) -> OrderResult<(Batch, Vec<(String, Uuid)>)> {
    let mut batch = Batch::default();
    let mut applied = Vec::new();
    for id in db::admin_consoles::unmatched_ids(pool, BATCH_LIMIT).await? {
        match reprocess(pool, &id).await {
            Ok(Reprocessed::Processed(order)) => {
                batch.processed += 1;
                applied.push((id, order));
            }
            Ok(Reprocessed::Unmatched) => batch.unmatched += 1,
            Ok(Reprocessed::Ignored) => batch.ignored += 1,
            Ok(Reprocessed::AlreadyProcessed | Reprocessed::NotFound) => {}
            Err(e) => {
                batch.failed += 1;
                tracing::warn!(event.id = %id, error = %e, cause = e.cause(), "could not reprocess an event");
            }
        }
    }
    Ok((batch, applied))
}

/// Applies the unmatched events of an escrow the order has just taken up (a creation whose
/// answer was lost, found in DHMAD's list): they came before the order knew its escrow, and
/// DHMAD, answered 200, does not send them again. Their news (a cancellation request, a proof's
/// phase, a rejected guest payment) was otherwise lost; the list's snapshot repaired only the
/// status. Failures are logged; [`reprocess_now_held`] tries again. How many applied.
pub async fn reprocess_escrow(pool: &Pool, escrow_id: &str) -> usize {
    match db::inbox::unmatched_for_escrow(pool, escrow_id).await {
        Ok(ids) => reprocess_all(pool, ids).await,
        Err(e) => {
            tracing::warn!(error = %e, "could not list the adopted escrow's unmatched events");
            0
        }
    }
}

/// How long an event whose reprocessing failed waits before the housekeeping pass tries it
/// again: a failure is mostly brief (the order's lock held past its timeout, the database
/// restarting), and one that is not is not tried at every pass.
pub const FAILED_RETRY_AFTER: time::Duration = time::Duration::minutes(5);

/// How far back the housekeeping pass looks for events to apply: an escrow is taken up within
/// minutes of its creation (the reconciler's look), and [`reprocess_escrow`] applies its
/// events then, whatever their age; the pass only catches what that missed. Older ones are the
/// merchant's to reprocess from the inbox.
pub const HELD_LOOK_BACK: time::Duration = time::Duration::DAY;

/// Unmatched events whose escrow an order holds now, received within [`HELD_LOOK_BACK`],
/// applied: those [`reprocess_escrow`] did not reach (one that came as the escrow was taken up,
/// a crash between the two), and those whose reprocessing failed [`FAILED_RETRY_AFTER`] ago
/// or more (else their news, a buyer's cancellation request say, waited for the merchant's
/// click). Run by the housekeeping pass. How many applied.
pub async fn reprocess_now_held(pool: &Pool) -> sqlx::Result<usize> {
    let ids = db::inbox::unmatched_now_held(pool, HELD_LOOK_BACK, FAILED_RETRY_AFTER, BATCH_LIMIT)
        .await?;
    Ok(reprocess_all(pool, ids).await)
}

async fn reprocess_all(pool: &Pool, ids: Vec<String>) -> usize {
    let mut applied = 0;
    for id in ids {
        match reprocess(pool, &id).await {
            Ok(Reprocessed::Processed(_)) => applied += 1,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(event.id = %id, error = %e, cause = e.cause(), "could not apply an event whose escrow an order holds now");
            }
        }
    }
    applied
}
