//! Ingesting a verified webhook: inbox row, snapshot, timeline and outbox in one transaction,
//! so an event is either fully applied or not at all (and DHMAD's retry applies it then).

use dhmad::{Escrow, Event, WebhookEnvelope};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use super::{
    apply_escrow_snapshot, news, snapshot, snapshot::Authority, Applied, OrderError, OrderResult,
};
use crate::db::{self, Pool};

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
/// once; the inbox keeps it as JSONB (Postgres parses the text itself: key order and spacing
/// are not kept), with the SHA-256 of the body as it came (the bytes DHMAD signed, or a
/// reformatting of them that verified by its compact form: `dhmad::webhook`).
#[tracing::instrument(skip_all, fields(event.id, event.type))]
pub async fn ingest(pool: &Pool, body: &[u8]) -> OrderResult<Ingested> {
    // A body that passed the signature check but is no envelope can never succeed: refused,
    // so DHMAD does not retry it.
    let not_json = || OrderError::Invalid("the body is not valid JSON".into());
    let sha256 = hex::encode(Sha256::digest(body));
    let raw = std::str::from_utf8(body).map_err(|_| not_json())?;
    let repaired = dhmad::lenient::repair(raw);
    let raw = repaired.as_deref().unwrap_or(raw);
    let WebhookEnvelope {
        id,
        event_type,
        data,
        ..
    } = WebhookEnvelope::from_slice(raw.as_bytes()).map_err(|e| {
        if e.is_data() {
            OrderError::Invalid("the body is not a DHMAD event envelope".into())
        } else {
            not_json()
        }
    })?;
    // DHMAD's ids are UUIDs and its types dotted names. The inbox indexes both, and an index
    // entry holds about 2.7 KB: a longer one failed its insert, a 500 on every retry.
    if id.len() > MAX_NAME || event_type.len() > MAX_NAME {
        return Err(OrderError::Invalid(format!(
            "the event's id or type is longer than {MAX_NAME} bytes"
        )));
    }
    let span = tracing::Span::current();
    span.record("event.id", id.as_str());
    span.record("event.type", event_type.as_str());
    let event = Read::new(&event_type, data, raw.as_bytes());
    let stored = db::inbox::Received {
        event_id: &id,
        event_type: &event_type,
        body: raw,
        body_sha256: &sha256,
    };
    Ok(store_and_apply(pool, &stored, event).await?)
}

/// The longest event id or type taken.
const MAX_NAME: usize = 200;

/// What an event says, as far as it reads. DHMAD documents its payloads loosely (§0: a
/// receiver must be defensive): a known type whose `data` does not read as the `dhmad` crate
/// knows it still carries the escrow's snapshot, which is applied rather than thrown away with
/// the rest (its status, a payment among them, waited for the reconciler; the inbox row named
/// no order, so no one saw it on the order).
pub(super) enum Read {
    /// Read in full.
    Event(Box<Event>),
    /// Only `data.escrow` read: its status and facts apply; the event stays `ignored` in the
    /// inbox, tied to its order, for a reprocess once it reads.
    SnapshotOnly {
        escrow: Box<Escrow>,
        error: serde_json::Error,
    },
    /// Nothing to apply.
    Unreadable(serde_json::Error),
}

impl Read {
    /// `raw`: the envelope's bytes, read again for the snapshot only when the event does not
    /// read (never on a well-formed delivery).
    pub(super) fn new(event_type: &str, data: serde_json::Value, raw: &[u8]) -> Self {
        match Event::from_parts(event_type, data) {
            // A type this client does not know (DHMAD adds events: a refund, funds added) that
            // carries the escrow: its snapshot applies, as for a known type that does not read.
            Ok(Event::Unknown { event_type, data }) => match snapshot_in(raw) {
                Some(escrow) => Self::SnapshotOnly {
                    escrow: Box::new(escrow),
                    error: serde::de::Error::custom(format!(
                        "the event type {event_type} is unknown to this client"
                    )),
                },
                None => Self::Event(Box::new(Event::Unknown { event_type, data })),
            },
            Ok(event) => Self::Event(Box::new(event)),
            Err(error) => match snapshot_in(raw) {
                Some(escrow) => Self::SnapshotOnly {
                    escrow: Box::new(escrow),
                    error,
                },
                None => Self::Unreadable(error),
            },
        }
    }

    fn escrow(&self) -> Option<&Escrow> {
        match self {
            Self::Event(event) => event.escrow(),
            Self::SnapshotOnly { escrow, .. } => Some(escrow),
            Self::Unreadable(_) => None,
        }
    }
}

fn snapshot_in(raw: &[u8]) -> Option<Escrow> {
    let mut envelope: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let escrow = envelope.get_mut("data")?.get_mut("escrow")?.take();
    serde_json::from_value(escrow).ok()
}

/// Applies what `read` says to its order, in the caller's transaction (under the order's row
/// lock, taken by the snapshot): the snapshot, the amount, the event's news. The same for a
/// live delivery and a reprocessed one. `source` names it on the timeline.
pub(super) async fn apply_read(
    conn: &mut PgConnection,
    read: &Read,
    source: &str,
) -> sqlx::Result<(Outcome, Option<Applied>)> {
    let Some(escrow) = read.escrow() else {
        if let Read::Unreadable(e) = read {
            // Signed by DHMAD but not the shape we know: kept for a human, not retried.
            tracing::warn!(error = %e, "webhook payload has an unexpected shape");
        }
        return Ok((Outcome::Ignored, None));
    };
    // A guest's proof DHMAD rejected as it cancelled the escrow (it rejects pending proofs then,
    // §4.2): a proof was under review, whether or not the shop knew it (the guest may have
    // closed DHMAD's page). Marked before the cancellation applies, so that it tells the guest
    // DHMAD refunds nothing by itself, not "DHMAD returns any payment to you".
    if let Read::Event(event) = read {
        if matches!(**event, Event::DepositProofRejected(_))
            && escrow.status == dhmad::EscrowStatus::Cancelled
        {
            db::orders::mark_guest_proof_rejected(&mut *conn, &escrow.id).await?;
        }
    }
    let applied = apply_escrow_snapshot(&mut *conn, escrow, Authority::Webhook, source).await?;
    let Some(order) = applied.order() else {
        return Ok((Outcome::Unmatched, None));
    };
    let outcome = match read {
        Read::Event(event) => {
            snapshot::amount::keep_from_event(&mut *conn, &applied, event, escrow).await?;
            news::apply(&mut *conn, order, event, &applied).await?;
            Outcome::Processed
        }
        Read::SnapshotOnly { error, .. } => {
            tracing::warn!(error = %error, "webhook data has an unexpected shape: its escrow snapshot applied");
            snapshot::amount::keep_from_snapshot(&mut *conn, &applied, escrow).await?;
            let detail = unread_line(source, error);
            db::events::add(&mut *conn, order.id, UNREAD, &detail, None).await?;
            // Not `processed`: what it says beyond the snapshot is still to apply.
            Outcome::Ignored
        }
        Read::Unreadable(_) => Outcome::Ignored,
    };
    Ok((outcome, Some(applied)))
}

/// The timeline line of an event whose data did not read: its snapshot applied, the rest kept.
pub(super) const UNREAD: &str = "event_unread";

/// [`UNREAD`]'s text, for an event applied as `source` (a live delivery: [`live_source`]).
pub(super) fn unread_line(source: &str, error: &serde_json::Error) -> String {
    format!(
        "{source}: its data did not read as documented ({error}); the escrow's status was \
         applied, the event is kept in the inbox (reprocess it once it reads)"
    )
}

/// How a delivered event of `event_type` is named on the timeline.
pub(super) fn live_source(event_type: &str) -> String {
    format!("webhook {event_type}")
}

/// What ingesting a delivery did.
#[derive(Debug, Clone, Copy)]
pub struct Ingested {
    pub outcome: Outcome,
    /// DHMAD now holds the money for an order created this long ago (checkout to paid).
    pub funded_after: Option<std::time::Duration>,
}

async fn store_and_apply(
    pool: &Pool,
    received: &db::inbox::Received<'_>,
    event: Read,
) -> sqlx::Result<Ingested> {
    let mut funded_after = None;
    let (id, event_type) = (received.event_id, received.event_type);
    let escrow = event.escrow();
    let duplicate = Ingested {
        outcome: Outcome::Duplicate,
        funded_after: None,
    };
    let mut conn = pool.acquire().await?;
    // A redelivery (DHMAD retries each event until it gets an answer in time, and retries
    // come in bursts after an outage) is known by one read, without a transaction to open,
    // a row to try and a rollback: a third of the round trips, and a far lighter one for the
    // database (BENCHMARKS.md). The insert below still decides between concurrent deliveries.
    if db::inbox::contains(&mut conn, id).await? {
        return Ok(duplicate);
    }
    let mut tx = db::tx::begin(&mut conn).await?;
    let escrow_id = escrow.map(|e| e.id.as_str());
    let Some(stored) = db::inbox::insert(&mut *tx, received, escrow_id).await? else {
        tx.rollback().await?;
        return Ok(duplicate);
    };
    let source = live_source(event_type);
    let (outcome, applied) = apply_read(&mut tx, &event, &source).await?;
    let order = applied.as_ref().and_then(Applied::order);
    if let Some(Applied::Transitioned {
        funded: true,
        order,
        ..
    }) = &applied
    {
        let took = time::OffsetDateTime::now_utc() - order.created_at;
        funded_after = std::time::Duration::try_from(took).ok();
    }
    let order_id = order.map(|o| o.id);
    let ended = db::inbox::Stored {
        outcome: outcome.as_str().to_owned(),
        order_id,
    };
    if ended != stored {
        db::inbox::finish(&mut *tx, id, outcome.as_str(), order_id).await?;
    }
    tx.commit().await?;
    tracing::info!(outcome = outcome.as_str(), "webhook ingested");
    Ok(Ingested {
        outcome,
        funded_after,
    })
}
