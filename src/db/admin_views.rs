//! The back office's order list: filters, search, keyset pages and the needs-action counts.
//!
//! The WHERE clause depends on the filters, so these queries are built with `QueryBuilder`
//! (checked by `tests/it/back_office/order_list.rs`, not at compile time). Each needs-action
//! filter's SQL predicate is written once, in [`NeedsAction::predicate`], next to the Rust rule
//! it mirrors ([`NeedsAction::rule`], which asks `Order::allows`); a test compares the two on a
//! seeded set.
//! Statements are not kept prepared (`persistent(false)`): each is planned with its values, so
//! the planner sees the search prefix and picks the partial indexes of
//! `migrations/20261201060000_back_office.sql`.

use sqlx::{PgExecutor, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::orders::state_machine::{Action, Cancellation, Mode, Order, OrderStatus};

/// What the merchant must do something about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeedsAction {
    /// A paid quick or standard order to ship, with no shipping queued yet.
    PaidNotShipped,
    /// The buyer asked to cancel after paying; the shop must answer.
    CancellationRequested,
    /// A dispute is open with DHMAD.
    DisputeOpen,
    /// A proof escrow waits for the shop's proof of purchase.
    ProofToUpload,
    /// A payment is under review: a guest's proof waits for DHMAD's approval, or a finished
    /// payment page for its news (the buyer may ask the shop).
    PaymentReview,
    /// A standard order's contract waits for the shop's signature (DHMAD could not auto-sign).
    ContractToSign,
    /// An outbox job gave up and was neither retried nor abandoned.
    FailedJobs,
    /// Flagged for the merchant (e.g. DHMAD no longer knows the escrow).
    Attention,
}

/// A job that gave up (`outbox::give_up`), that the merchant did not abandon, and that no later
/// job of the same kind for the order superseded (a retry, or the reconciler's new deliver).
/// Over `outbox_jobs j`. A macro so that [`DEAD_JOB`] and the "failed jobs" filter share it.
macro_rules! dead_job {
    () => {
        "(j.gave_up_at IS NOT NULL AND j.abandoned_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM outbox_jobs later
                           WHERE later.order_id = j.order_id AND later.kind = j.kind
                             AND later.id > j.id))"
    };
}

/// A dead job, over `outbox_jobs j`: see `dead_job!`.
pub const DEAD_JOB: &str = dead_job!();

impl NeedsAction {
    pub const ALL: [NeedsAction; 8] = [
        Self::PaidNotShipped,
        Self::CancellationRequested,
        Self::DisputeOpen,
        Self::ProofToUpload,
        Self::PaymentReview,
        Self::ContractToSign,
        Self::FailedJobs,
        Self::Attention,
    ];

    /// The value of the list's `needs` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaidNotShipped => "ship",
            Self::CancellationRequested => "cancellation",
            Self::DisputeOpen => "dispute",
            Self::ProofToUpload => "proof",
            Self::PaymentReview => "payment_review",
            Self::ContractToSign => "sign",
            Self::FailedJobs => "failed_jobs",
            Self::Attention => "attention",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::PaidNotShipped => "Paid, not shipped",
            Self::CancellationRequested => "Cancellation requested",
            Self::DisputeOpen => "Dispute open",
            Self::ProofToUpload => "Proof to upload",
            Self::PaymentReview => "Payment under review",
            Self::ContractToSign => "Contract to sign",
            Self::FailedJobs => "Failed jobs",
            Self::Attention => "Flagged",
        }
    }

    /// The filter's SQL predicate over `orders o`: the one place it is written. Where it
    /// overlaps the order's state machine (`src/orders/state_machine/`) it restates the rule
    /// named in its comment; `tests/it/back_office/order_list.rs` checks both agree. A partial
    /// index of `migrations/20261201060000_back_office.sql` repeats the predicate where named:
    /// change both together (a migration), or the planner stops using it.
    pub fn predicate(self) -> &'static str {
        match self {
            // `Order::allows(Action::Ship)`: quick or standard, paid, no dispute ticket, no
            // cancellation requested or accepted, the proof gate open (`Order::proof_gate_open`); minus orders whose
            // deliver is already queued (the merchant shipped, DHMAD has not confirmed yet).
            // Index: `orders_admin_status`.
            Self::PaidNotShipped => {
                "(o.status = 'paid' AND o.mode IN ('quick', 'standard')
                  AND o.dispute_ticket_id IS NULL
                  AND (o.cancellation IS NULL OR o.cancellation = 'rejected')
                  AND (NOT o.proof_required OR o.proof_phase IN ('accepted', 'accepted_by_timeout'))
                  AND NOT EXISTS (SELECT 1 FROM outbox_jobs q WHERE q.order_id = o.id
                                   AND q.kind = 'deliver' AND q.done_at IS NULL))"
            }
            // `Order::allows(Action::AnswerCancellation)`: paid or delivered, request pending, no
            // dispute ticket. Index: `orders_admin_cancellation` (its predicate, and one more).
            Self::CancellationRequested => {
                "(o.cancellation = 'requested' AND o.status IN ('paid', 'delivered')
                  AND o.dispute_ticket_id IS NULL)"
            }
            // `Order::dispute_open`: the status, or a ticket on held money. Indexes:
            // `orders_admin_status`, `orders_dispute_ticket`.
            Self::DisputeOpen => {
                "(o.status = 'disputed'
                  OR (o.dispute_ticket_id IS NOT NULL AND o.status IN ('paid', 'delivered')))"
            }
            // `Order::allows(Action::SubmitProof)`. Index: `orders_admin_proof` (same predicate).
            Self::ProofToUpload => {
                "(o.status = 'paid'
                  AND (o.proof_phase IN ('waiting_seller_proof', 'correction_requested')
                       OR (o.proof_phase IS NULL AND o.proof_required)))"
            }
            // `Order::in_payment_review`. Index: `orders_admin_review` (same predicate).
            Self::PaymentReview => {
                "(o.payment_review_since IS NOT NULL AND o.status = 'awaiting_payment')"
            }
            // `Order::allows(Action::MerchantSign)`. Index: `orders_admin_sign` (same predicate,
            // `migrations/20261205020000_admin_contract_to_sign.sql`).
            Self::ContractToSign => {
                "(o.mode = 'standard' AND o.status = 'awaiting_payment'
                  AND o.contract_seller_signed IS NOT TRUE)"
            }
            // A dead job (`dead_job!`). Index: `outbox_jobs_dead`.
            Self::FailedJobs => concat!(
                "EXISTS (SELECT 1 FROM outbox_jobs j WHERE j.order_id = o.id AND ",
                dead_job!(),
                ")"
            ),
            // Index: `orders_admin_attention`.
            Self::Attention => "(o.attention IS NOT NULL)",
        }
    }

    /// The Rust rule the predicate mirrors, given the order's jobs: whether an open `deliver`
    /// job exists, and whether a dead job does ([`DEAD_JOB`]).
    pub fn rule(self, o: &Order, deliver_queued: bool, dead_job: bool) -> bool {
        match self {
            Self::PaidNotShipped => o.allows(Action::Ship) && !deliver_queued,
            Self::CancellationRequested => o.allows(Action::AnswerCancellation),
            Self::DisputeOpen => o.dispute_open(),
            Self::ProofToUpload => o.allows(Action::SubmitProof),
            Self::PaymentReview => o.in_payment_review(),
            Self::ContractToSign => o.allows(Action::MerchantSign),
            Self::FailedJobs => dead_job,
            Self::Attention => o.attention.is_some(),
        }
    }
}

/// The list's filters; `None` is "any".
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub mode: Option<Mode>,
    pub needs: Option<NeedsAction>,
    /// An order id (or its first hex digits), an escrow id, or a buyer's e-mail (or its start).
    pub search: Option<String>,
}

/// Where a page starts: strictly older than this (created_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: OffsetDateTime,
    pub id: Uuid,
}

impl Cursor {
    /// `<unix microseconds>_<uuid>`, for the `after` parameter.
    pub fn encode(&self) -> String {
        let micros = self.created_at.unix_timestamp_nanos() / 1000;
        format!("{micros}_{}", self.id.simple())
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (micros, id) = s.split_once('_')?;
        let micros: i128 = micros.parse().ok()?;
        Some(Self {
            created_at: OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1000)?)
                .ok()?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// One row of the list: the order, its product's name and its outbox work.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub order: Order,
    pub product_name: String,
    /// Kinds of the order's jobs not done yet (queued, running or being retried).
    pub open_jobs: Vec<String>,
    /// The order has a dead job ([`DEAD_JOB`]).
    pub dead_jobs: bool,
}

impl OrderRow {
    pub fn deliver_queued(&self) -> bool {
        self.open_jobs.iter().any(|k| k == "deliver")
    }

    /// Every needs-action the order is in, by the Rust rules.
    pub fn needs(&self) -> Vec<NeedsAction> {
        NeedsAction::ALL
            .into_iter()
            .filter(|n| n.rule(&self.order, self.deliver_queued(), self.dead_jobs))
            .collect()
    }

    pub fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.order.created_at,
            id: self.order.id,
        }
    }
}

#[derive(sqlx::FromRow)]
struct Raw {
    id: Uuid,
    sku: String,
    mode: Mode,
    buyer_email: String,
    amount: rust_decimal::Decimal,
    currency: String,
    status: OrderStatus,
    escrow_id: Option<String>,
    escrow_status: Option<String>,
    escrow_updated_at: Option<OffsetDateTime>,
    failure_reason: Option<String>,
    deposit_rejection_reason: Option<String>,
    digital_code: Option<String>,
    last_synced_at: Option<OffsetDateTime>,
    escrow_attempted_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    attention: Option<String>,
    payment_review_since: Option<OffsetDateTime>,
    cancellation: Option<Cancellation>,
    cancellation_reason: Option<String>,
    delivery_rejection_reason: Option<String>,
    proof_required: bool,
    contract_buyer_signed: Option<bool>,
    contract_seller_signed: Option<bool>,
    proof_phase: Option<String>,
    proof_upload_deadline: Option<OffsetDateTime>,
    proof_review_deadline: Option<OffsetDateTime>,
    dispute_ticket_id: Option<String>,
    product_name: String,
    open_jobs: Option<String>,
    dead_jobs: bool,
}

impl From<Raw> for OrderRow {
    fn from(r: Raw) -> Self {
        OrderRow {
            open_jobs: r
                .open_jobs
                .map(|s| s.split(' ').map(str::to_owned).collect())
                .unwrap_or_default(),
            dead_jobs: r.dead_jobs,
            product_name: r.product_name,
            order: Order {
                id: r.id,
                sku: r.sku,
                mode: r.mode,
                buyer_email: r.buyer_email,
                amount: r.amount,
                currency: r.currency,
                status: r.status,
                escrow_id: r.escrow_id,
                escrow_status: r.escrow_status,
                escrow_updated_at: r.escrow_updated_at,
                failure_reason: r.failure_reason,
                deposit_rejection_reason: r.deposit_rejection_reason,
                digital_code: r.digital_code,
                last_synced_at: r.last_synced_at,
                escrow_attempted_at: r.escrow_attempted_at,
                created_at: r.created_at,
                updated_at: r.updated_at,
                attention: r.attention,
                payment_review_since: r.payment_review_since,
                cancellation: r.cancellation,
                cancellation_reason: r.cancellation_reason,
                delivery_rejection_reason: r.delivery_rejection_reason,
                proof_required: r.proof_required,
                contract_buyer_signed: r.contract_buyer_signed,
                contract_seller_signed: r.contract_seller_signed,
                proof_phase: r.proof_phase,
                proof_upload_deadline: r.proof_upload_deadline,
                proof_review_deadline: r.proof_review_deadline,
                dispute_ticket_id: r.dispute_ticket_id,
            },
        }
    }
}

/// The range of UUIDs that start with these hex digits (dashes ignored), if `s` is one.
fn id_range(s: &str) -> Option<(Uuid, Uuid)> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.is_empty() || hex.len() > 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let pad = |c: char| format!("{hex}{}", c.to_string().repeat(32 - hex.len()));
    Some((
        Uuid::parse_str(&pad('0')).ok()?,
        Uuid::parse_str(&pad('f')).ok()?,
    ))
}

/// `s` as a LIKE pattern matching itself literally.
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn push_filters<'a>(qb: &mut QueryBuilder<'a, Postgres>, f: &'a OrderFilter) {
    if let Some(s) = f.status {
        qb.push(" AND o.status = ").push_bind(s);
    }
    if let Some(m) = f.mode {
        qb.push(" AND o.mode = ").push_bind(m);
    }
    if let Some(n) = f.needs {
        qb.push(" AND ").push(n.predicate());
    }
    if let Some(q) = f.search.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        qb.push(" AND (o.escrow_id = ").push_bind(q);
        qb.push(" OR lower(o.buyer_email) LIKE ")
            .push_bind(format!("{}%", like_literal(&q.to_lowercase())));
        if let Some((low, high)) = id_range(q) {
            qb.push(" OR o.id BETWEEN ")
                .push_bind(low)
                .push(" AND ")
                .push_bind(high);
        }
        qb.push(")");
    }
}

/// One page of the list, newest first, strictly after `after`.
pub async fn list(
    e: impl PgExecutor<'_>,
    f: &OrderFilter,
    after: Option<Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<OrderRow>> {
    let mut qb = QueryBuilder::new(
        "SELECT o.id, o.sku, o.mode, o.buyer_email, o.amount, o.currency, o.status, o.escrow_id,
                o.escrow_status, o.escrow_updated_at, o.failure_reason, o.deposit_rejection_reason,
                o.digital_code, o.last_synced_at, o.escrow_attempted_at, o.created_at, o.updated_at,
                o.attention, o.payment_review_since, o.cancellation, o.cancellation_reason,
                o.delivery_rejection_reason, o.proof_required, o.contract_buyer_signed,
                o.contract_seller_signed, o.proof_phase, o.proof_upload_deadline,
                o.proof_review_deadline, o.dispute_ticket_id,
                COALESCE(p.name, o.sku) AS product_name,
                (SELECT string_agg(j.kind, ' ' ORDER BY j.id) FROM outbox_jobs j
                  WHERE j.order_id = o.id AND j.done_at IS NULL) AS open_jobs,
                EXISTS (SELECT 1 FROM outbox_jobs j WHERE j.order_id = o.id AND ",
    );
    qb.push(DEAD_JOB);
    qb.push(
        ") AS dead_jobs
           FROM orders o LEFT JOIN products p ON p.sku = o.sku
          WHERE TRUE",
    );
    push_filters(&mut qb, f);
    if let Some(c) = after {
        qb.push(" AND (o.created_at, o.id) < (")
            .push_bind(c.created_at)
            .push(", ")
            .push_bind(c.id)
            .push(")");
    }
    qb.push(" ORDER BY o.created_at DESC, o.id DESC LIMIT ")
        .push_bind(limit);
    let rows: Vec<Raw> = qb.build_query_as().persistent(false).fetch_all(e).await?;
    Ok(rows.into_iter().map(OrderRow::from).collect())
}

/// Counts stop here (the dashboard shows "1000+"): a dashboard's cost stays bounded however
/// large a backlog grows.
pub const COUNT_CAP: i64 = 1000;

/// How many orders are in each needs-action filter, up to [`COUNT_CAP`] (one index-served
/// count each).
pub async fn needs_action_counts(e: impl PgExecutor<'_>) -> sqlx::Result<Vec<(NeedsAction, i64)>> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT ARRAY[");
    for (i, n) in NeedsAction::ALL.into_iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        qb.push("(SELECT count(*) FROM (SELECT 1 FROM orders o WHERE ")
            .push(n.predicate())
            .push(" LIMIT ")
            .push_bind(COUNT_CAP)
            .push(") c)");
    }
    qb.push("]");
    let counts: Vec<i64> = qb
        .build_query_scalar()
        .persistent(false)
        .fetch_one(e)
        .await?;
    Ok(NeedsAction::ALL.into_iter().zip(counts).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_prefix_is_a_range_of_uuids() {
        let (low, high) = id_range("1a2B-3").unwrap();
        assert_eq!(low.to_string(), "1a2b3000-0000-0000-0000-000000000000");
        assert_eq!(high.to_string(), "1a2b3fff-ffff-ffff-ffff-ffffffffffff");
        let id = Uuid::new_v4();
        assert_eq!(id_range(&id.to_string()), Some((id, id)));
        assert_eq!(id_range("hind@example.tn"), None);
        assert_eq!(id_range(""), None);
    }

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(like_literal(r"a_b%c\d"), r"a\_b\%c\\d");
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            created_at: OffsetDateTime::from_unix_timestamp_nanos(1_790_000_000_123_456_000)
                .unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("x_y"), None);
        assert_eq!(Cursor::decode("99999999999999999999999999_0"), None);
    }

    #[test]
    fn every_filter_has_its_own_parameter() {
        for n in NeedsAction::ALL {
            assert_eq!(NeedsAction::parse(n.as_str()), Some(n));
        }
    }
}
