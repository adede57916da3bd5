//! The order's state machine: its statuses, the moves between them, and every "may this happen
//! now" question that handlers, templates and jobs ask. Adding a status is one variant here, one
//! `ALTER TYPE order_status ADD VALUE` migration, and the match arms the compiler asks for.
//! `docs/ARCHITECTURE.md` shows the same machine as a table.

use dhmad::{EscrowMode, EscrowStatus};
use rust_decimal::Decimal;
use time::OffsetDateTime;
use uuid::Uuid;

/// Our order status. The first four describe getting an escrow at all; the rest follow the
/// escrow's DHMAD status one to one. Stored as the Postgres enum `order_status`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize, utoipa::ToSchema,
)]
#[sqlx(type_name = "order_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Intent recorded; no escrow yet.
    New,
    /// `POST /escrows` in flight.
    CreatingEscrow,
    /// DHMAD refused or failed: no escrow exists, a retry is safe.
    EscrowFailed,
    /// The create call timed out: an escrow may exist; the reconciler looks before any retry.
    NeedsReconciliation,
    AwaitingPayment,
    Paid,
    Delivered,
    Completed,
    Cancelled,
    Disputed,
}

/// How the product is sold, i.e. the DHMAD escrow mode. Stored as the Postgres enum
/// `escrow_mode`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize, utoipa::ToSchema,
)]
#[sqlx(type_name = "escrow_mode", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A good the shop hands over itself the moment DHMAD holds the money (a digital code).
    Instant,
    /// A shipped good: the merchant ships, the buyer confirms receipt.
    Quick,
    /// Made to order under a contract both sides sign before the buyer pays.
    Standard,
}

/// Where the buyer's request to cancel a paid order stands (DHMAD's `cancellationRequest`).
/// Stored as the Postgres enum `cancellation_state`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize, utoipa::ToSchema,
)]
#[sqlx(type_name = "cancellation_state", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Cancellation {
    Requested,
    Rejected,
    Accepted,
}

/// What a buyer or the merchant may ask of an order. [`Order::allows`] says when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Buyer: open (or reopen) the payment on DHMAD's page.
    Pay,
    /// Buyer: confirm receipt of a shipped good (a DHMAD `complete` session).
    ConfirmReceipt,
    /// Buyer: cancel before paying (DHMAD cancels the escrow at once).
    Cancel,
    /// Buyer: ask to cancel after paying (a `request_cancellation` session); the shop decides.
    RequestCancellation,
    /// Buyer or merchant: open a dispute with DHMAD (a `dispute` session).
    Dispute,
    /// Merchant: mark a paid quick order shipped (DHMAD `deliver`).
    Ship,
    /// Merchant: retry a checkout whose escrow creation failed or is in doubt.
    RetryCheckout,
    /// Merchant: run the `deliver` DHMAD still waits for now (after failed attempts).
    RetryDeliver,
    /// Merchant: cancel before payment; not while a payment is under review at DHMAD.
    MerchantCancel,
    /// Merchant: cancel and refund after payment (a `cancel_escrow` session).
    CancelAndRefund,
    /// Merchant: accept or reject the buyer's pending cancellation request.
    AnswerCancellation,
    /// Buyer: sign the contract (standard mode, before paying).
    Sign,
    /// Merchant: sign the contract (when DHMAD could not auto-sign it).
    MerchantSign,
    /// Merchant: upload the proof of purchase (proof escrows, after payment).
    SubmitProof,
    /// Buyer: review the shop's proof (accept, or ask for a correction).
    ReviewProof,
}

impl Action {
    pub const ALL: [Action; 15] = [
        Action::Pay,
        Action::ConfirmReceipt,
        Action::Cancel,
        Action::RequestCancellation,
        Action::Dispute,
        Action::Ship,
        Action::RetryCheckout,
        Action::RetryDeliver,
        Action::MerchantCancel,
        Action::CancelAndRefund,
        Action::AnswerCancellation,
        Action::Sign,
        Action::MerchantSign,
        Action::SubmitProof,
        Action::ReviewProof,
    ];

    /// What the back office calls it.
    pub fn label(self) -> &'static str {
        match self {
            Action::Pay => "Pay",
            Action::ConfirmReceipt => "Confirm receipt",
            Action::Cancel => "Cancel order",
            Action::RequestCancellation => "Ask to cancel",
            Action::Dispute => "Open a dispute",
            Action::Ship => "Mark shipped",
            Action::RetryCheckout => "Retry checkout",
            Action::RetryDeliver => "Retry deliver",
            Action::MerchantCancel => "Cancel order",
            Action::CancelAndRefund => "Cancel and refund",
            Action::AnswerCancellation => "Answer the cancellation request",
            Action::Sign => "Sign the contract",
            Action::MerchantSign => "Sign the contract",
            Action::SubmitProof => "Upload the proof of purchase",
            Action::ReviewProof => "Review the proof",
        }
    }
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 10] = [
        Self::New,
        Self::CreatingEscrow,
        Self::EscrowFailed,
        Self::NeedsReconciliation,
        Self::AwaitingPayment,
        Self::Paid,
        Self::Delivered,
        Self::Completed,
        Self::Cancelled,
        Self::Disputed,
    ];
    /// Not paid yet: a repeated checkout by the same buyer continues such an order. The partial
    /// unique index `orders_one_open_per_owner` lists the same statuses (a test checks it).
    pub const OPEN: &'static [OrderStatus] = &[
        Self::New,
        Self::CreatingEscrow,
        Self::EscrowFailed,
        Self::NeedsReconciliation,
        Self::AwaitingPayment,
    ];
    /// Completed and cancelled never change again.
    pub const SETTLED: &'static [OrderStatus] = &[Self::Completed, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::CreatingEscrow => "creating_escrow",
            Self::EscrowFailed => "escrow_failed",
            Self::NeedsReconciliation => "needs_reconciliation",
            Self::AwaitingPayment => "awaiting_payment",
            Self::Paid => "paid",
            Self::Delivered => "delivered",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Disputed => "disputed",
        }
    }

    /// The order status an escrow status implies; `None` for a status we do not know (the
    /// order keeps its status, the raw escrow status is still recorded).
    pub fn from_escrow(s: &EscrowStatus) -> Option<Self> {
        Some(match s {
            EscrowStatus::Pending => Self::AwaitingPayment,
            EscrowStatus::Paid => Self::Paid,
            EscrowStatus::Delivered => Self::Delivered,
            EscrowStatus::Completed => Self::Completed,
            EscrowStatus::Cancelled => Self::Cancelled,
            EscrowStatus::Disputed => Self::Disputed,
            EscrowStatus::Unknown(_) => return None,
        })
    }

    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }

    pub fn is_settled(self) -> bool {
        Self::SETTLED.contains(&self)
    }

    /// DHMAD holds the buyer's money (or is deciding about it): a new checkout must not take
    /// it a second time.
    pub fn money_held(self) -> bool {
        matches!(self, Self::Paid | Self::Delivered | Self::Disputed)
    }

    /// DHMAD holds the buyer's money or has released it to the shop: the good is owed.
    pub fn is_funded(self) -> bool {
        matches!(
            self,
            Self::Paid | Self::Delivered | Self::Disputed | Self::Completed
        )
    }

    /// A status that mirrors an existing escrow's DHMAD status.
    fn follows_escrow(self) -> bool {
        matches!(
            self,
            Self::AwaitingPayment
                | Self::Paid
                | Self::Delivered
                | Self::Completed
                | Self::Cancelled
                | Self::Disputed
        )
    }

    /// The allowed moves. Before an escrow exists the shop drives the order; once one exists
    /// the order follows whatever DHMAD says of it (webhooks can be missed, so any escrow
    /// status may come next, including the documented delivered→paid); settled is final.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus as S;
        match (self, next) {
            (a, b) if a == b => false,
            (S::Completed | S::Cancelled, _) => false,
            (S::New | S::EscrowFailed, S::CreatingEscrow) => true,
            // Cancelled by the buyer or the shop while no escrow exists.
            (S::New | S::EscrowFailed, S::Cancelled) => true,
            (S::CreatingEscrow, S::AwaitingPayment | S::EscrowFailed | S::NeedsReconciliation) => {
                true
            }
            // The create call was never sent (DHMAD's budget was spent): back in line.
            (S::CreatingEscrow, S::New) => true,
            (S::NeedsReconciliation, S::AwaitingPayment | S::EscrowFailed) => true,
            (S::AwaitingPayment | S::Paid | S::Delivered | S::Disputed, next) => {
                next.follows_escrow()
            }
            _ => false,
        }
    }

    /// What the buyer reads.
    pub fn label(self) -> &'static str {
        match self {
            Self::New | Self::CreatingEscrow => "Preparing your checkout",
            Self::EscrowFailed => "Checkout could not start",
            Self::NeedsReconciliation => "Checking with DHMAD",
            Self::AwaitingPayment => "Awaiting payment",
            Self::Paid => "Paid",
            Self::Delivered => "Shipped — awaiting your confirmation",
            Self::Completed => "Completed",
            Self::Cancelled => "Cancelled",
            Self::Disputed => "In dispute",
        }
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Instant => "instant",
            Self::Quick => "quick",
            Self::Standard => "standard",
        }
    }

    /// The wire value sent to DHMAD.
    pub fn to_dhmad(self) -> EscrowMode {
        match self {
            Self::Instant => EscrowMode::Instant,
            Self::Quick => EscrowMode::Quick,
            Self::Standard => EscrowMode::Standard,
        }
    }

    /// How the catalog describes it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Instant => "Digital: delivered the moment you pay",
            Self::Quick => "Shipped: you confirm receipt before the seller is paid",
            Self::Standard => "Made to order: you and the seller sign the terms, then you pay",
        }
    }
}

/// A row of `orders`: `status` is ours, `escrow_status` is DHMAD's string exactly.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: Uuid,
    pub sku: String,
    pub mode: Mode,
    pub buyer_email: String,
    pub amount: Decimal,
    pub currency: String,
    pub status: OrderStatus,
    pub escrow_id: Option<String>,
    pub escrow_status: Option<String>,
    pub escrow_updated_at: Option<OffsetDateTime>,
    pub failure_reason: Option<String>,
    pub deposit_rejection_reason: Option<String>,
    pub digital_code: Option<String>,
    pub last_synced_at: Option<OffsetDateTime>,
    pub escrow_attempted_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Why the merchant must look at it (e.g. DHMAD no longer knows its escrow).
    pub attention: Option<String>,
    /// A guest's payment proof awaits DHMAD's approval since then.
    pub payment_review_since: Option<OffsetDateTime>,
    /// The buyer's cancellation request after payment, if any.
    pub cancellation: Option<Cancellation>,
    pub cancellation_reason: Option<String>,
    /// Why the buyer rejected the last delivery.
    pub delivery_rejection_reason: Option<String>,
    /// Sold with DHMAD's purchase-proof gate (quick mode).
    pub proof_required: bool,
    /// Standard mode: who has signed the contract, as DHMAD last said.
    pub contract_buyer_signed: Option<bool>,
    pub contract_seller_signed: Option<bool>,
    /// DHMAD's `proofInfo.phase` exactly, and its deadlines.
    pub proof_phase: Option<String>,
    pub proof_upload_deadline: Option<OffsetDateTime>,
    pub proof_review_deadline: Option<OffsetDateTime>,
}

impl Order {
    pub fn is_instant(&self) -> bool {
        self.mode == Mode::Instant
    }

    /// Whether `action` may happen now.
    pub fn allows(&self, action: Action) -> bool {
        use OrderStatus as S;
        let unpaid = self.status.is_open() && self.status != S::CreatingEscrow;
        let held = matches!(self.status, S::Paid | S::Delivered);
        let review = self.in_payment_review();
        let request_pending = self.cancellation_pending();
        let awaiting = self.status == S::AwaitingPayment;
        let standard = self.mode == Mode::Standard;
        let phase = self.proof_phase.as_deref();
        match action {
            Action::Pay => {
                matches!(
                    self.status,
                    S::AwaitingPayment | S::EscrowFailed | S::NeedsReconciliation
                ) && !review
                    && (!standard || !awaiting || self.contract_signed())
            }
            Action::Sign => standard && awaiting && self.contract_buyer_signed != Some(true),
            Action::MerchantSign => {
                standard && awaiting && self.contract_seller_signed != Some(true)
            }
            Action::SubmitProof => {
                self.status == S::Paid
                    && matches!(phase, Some("waiting_seller_proof" | "correction_requested"))
            }
            Action::ReviewProof => {
                self.status == S::Paid && phase == Some("submitted_waiting_buyer_review")
            }
            Action::ConfirmReceipt => self.status == S::Delivered && !request_pending,
            Action::Cancel => unpaid && !review,
            Action::RequestCancellation => held && self.cancellation.is_none(),
            Action::Dispute => held,
            Action::Ship => {
                matches!(self.mode, Mode::Quick | Mode::Standard)
                    && self.status == S::Paid
                    && !request_pending
                    && self.proof_gate_open()
            }
            Action::RetryCheckout => {
                matches!(self.status, S::EscrowFailed | S::NeedsReconciliation)
            }
            Action::RetryDeliver => self.is_instant() && self.deliver_due(),
            // Not under a guest's proof either: DHMAD would reject a proof of money sent, which
            // no one refunds a guest automatically (`actions::cancel_unpaid` refuses it).
            Action::MerchantCancel => unpaid && !review,
            Action::CancelAndRefund => held,
            Action::AnswerCancellation => held && request_pending,
        }
    }

    /// Standard mode: both sides have signed, so the buyer may pay.
    pub fn contract_signed(&self) -> bool {
        self.contract_buyer_signed == Some(true) && self.contract_seller_signed == Some(true)
    }

    /// Shipping is unlocked: no proof gate, or DHMAD has the proof accepted (by the buyer, by
    /// the review deadline passing, or by DHMAD itself).
    pub fn proof_gate_open(&self) -> bool {
        !self.proof_required
            || matches!(
                self.proof_phase.as_deref(),
                Some("accepted" | "accepted_by_timeout")
            )
    }

    /// A payment is under review: a guest's proof awaits DHMAD's approval, or (another mode) a
    /// finished payment page's news has not come. No new payment may be offered.
    pub fn in_payment_review(&self) -> bool {
        self.payment_review_since.is_some() && self.status == OrderStatus::AwaitingPayment
    }

    /// Cancelled with a guest's payment proof under review: DHMAD rejects the proof, and a
    /// guest's money, never in a DHMAD wallet, is refunded by nobody automatically (§4.2).
    pub fn cancelled_over_guest_proof(&self) -> bool {
        self.payment_review_since.is_some()
            && self.status == OrderStatus::Cancelled
            && self.is_instant()
    }

    /// The buyer's cancellation request as it stands. A request waits for the shop only while
    /// DHMAD holds the money: once the escrow is cancelled, disputed or released, it is moot
    /// (DHMAD keeps no answer to give), and showing it would promise an outcome that can no
    /// longer come.
    pub fn cancellation_request(&self) -> Option<Cancellation> {
        let held = matches!(self.status, OrderStatus::Paid | OrderStatus::Delivered);
        self.cancellation
            .filter(|c| *c != Cancellation::Requested || held)
    }

    /// The buyer asked to cancel and the shop has not answered while DHMAD holds the money.
    pub fn cancellation_pending(&self) -> bool {
        self.cancellation_request() == Some(Cancellation::Requested)
    }

    /// A dispute is open with DHMAD.
    pub fn dispute_open(&self) -> bool {
        self.status == OrderStatus::Disputed
    }

    /// Every action valid now.
    pub fn actions(&self) -> impl Iterator<Item = Action> + '_ {
        Action::ALL.into_iter().filter(|a| self.allows(*a))
    }

    /// The digital good, shown only while the payment stands.
    pub fn visible_good(&self) -> Option<&str> {
        let stands = matches!(
            self.status,
            OrderStatus::Paid | OrderStatus::Delivered | OrderStatus::Completed
        );
        self.digital_code.as_deref().filter(|_| stands)
    }

    /// What a failure means for the buyer, in a fixed text. The stored `failure_reason` is for
    /// the merchant: it carries DHMAD's answers, database errors and escrow ids, which a page
    /// that anyone holding the order's link can read must not show.
    pub fn public_failure(&self) -> Option<&'static str> {
        self.failure_reason.as_ref()?;
        Some(match self.status {
            OrderStatus::New | OrderStatus::EscrowFailed => {
                "We could not start the payment with DHMAD; your order is saved"
            }
            OrderStatus::NeedsReconciliation => {
                "DHMAD's answer did not reach us; we are checking with DHMAD before trying again"
            }
            // Only cancels before payment record a failure (by the buyer, the shop, the
            // abandoned-order job, or an escrow DHMAD no longer knows).
            OrderStatus::Cancelled => "This order was cancelled before payment",
            _ => return None,
        })
    }

    /// The shop owes DHMAD a `deliver` call: an instant order whose money DHMAD holds.
    pub fn deliver_due(&self) -> bool {
        self.status == OrderStatus::Paid
    }

    /// Why DHMAD rejected the buyer's payment proof, while that still matters (a payment
    /// since makes it history).
    pub fn deposit_rejection(&self) -> Option<&str> {
        self.deposit_rejection_reason
            .as_deref()
            .filter(|_| self.status == OrderStatus::AwaitingPayment)
    }

    /// A rejected deposit proof is recorded only while the order still awaits payment: one
    /// arriving after the payment is history, not news.
    pub fn takes_deposit_rejection(&self) -> bool {
        self.status == OrderStatus::AwaitingPayment
    }

    /// Something is about to change without the buyer doing anything: the page refreshes.
    pub fn expects_news(&self) -> bool {
        matches!(
            self.status,
            OrderStatus::New | OrderStatus::CreatingEscrow | OrderStatus::AwaitingPayment
        ) && self.deposit_rejection_reason.is_none()
    }
}

/// Whether the proof gate may go from phase `from` to phase `to`, in one step or several
/// (`docs/dhmad-api.md` §2.4). Proof events carry no clock, so this is what tells a retried,
/// older one from news: an event whose phase cannot follow the stored one is late. A decided
/// gate (accepted, expired, rejected) never reopens. A phase this table does not know is
/// taken as news.
pub fn proof_phase_may_follow(from: &str, to: &str) -> bool {
    fn next(phase: &str) -> &'static [&'static str] {
        match phase {
            "waiting_seller_proof" => &["submitted_waiting_buyer_review", "expired_no_proof"],
            "submitted_waiting_buyer_review" => {
                &["accepted", "accepted_by_timeout", "correction_requested"]
            }
            "correction_requested" => &["submitted_waiting_buyer_review", "needs_dhmad_review"],
            "needs_dhmad_review" => &["accepted", "rejected"],
            _ => &[],
        }
    }
    const KNOWN: [&str; 8] = [
        "waiting_seller_proof",
        "submitted_waiting_buyer_review",
        "correction_requested",
        "needs_dhmad_review",
        "accepted",
        "accepted_by_timeout",
        "expired_no_proof",
        "rejected",
    ];
    if from == to || !KNOWN.contains(&from) || !KNOWN.contains(&to) {
        return true;
    }
    let mut seen = vec![from];
    let mut i = 0;
    while let Some(&p) = seen.get(i) {
        for &n in next(p) {
            if n == to {
                return true;
            }
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_dhmad() {
        assert_eq!(
            OrderStatus::from_escrow(&EscrowStatus::Pending),
            Some(OrderStatus::AwaitingPayment)
        );
        assert_eq!(
            OrderStatus::from_escrow(&EscrowStatus::from("frozen")),
            None
        );
        for s in OrderStatus::ALL {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::from(s.as_str())
            );
        }
    }

    #[test]
    fn settled_is_final_and_open_is_before_payment() {
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                if from.is_settled() {
                    assert!(!from.can_become(to), "{from:?} → {to:?}");
                }
                // No move leads back into "open" once DHMAD holds the money.
                if from.money_held() && to.is_open() && to != OrderStatus::AwaitingPayment {
                    assert!(!from.can_become(to), "{from:?} → {to:?}");
                }
            }
            assert!(!(from.is_open() && from.money_held()), "{from:?}");
        }
        assert!(OrderStatus::Delivered.can_become(OrderStatus::Paid));
        // Only an order with no escrow is cancelled without DHMAD.
        assert!(OrderStatus::New.can_become(OrderStatus::Cancelled));
        assert!(OrderStatus::EscrowFailed.can_become(OrderStatus::Cancelled));
        assert!(!OrderStatus::CreatingEscrow.can_become(OrderStatus::Cancelled));
        assert!(!OrderStatus::New.can_become(OrderStatus::Paid));
    }

    #[test]
    fn a_decided_proof_gate_never_reopens() {
        use super::proof_phase_may_follow as may;
        assert!(may("waiting_seller_proof", "accepted"));
        assert!(may(
            "correction_requested",
            "submitted_waiting_buyer_review"
        ));
        assert!(may(
            "submitted_waiting_buyer_review",
            "correction_requested"
        ));
        assert!(!may("accepted", "submitted_waiting_buyer_review"));
        assert!(!may(
            "submitted_waiting_buyer_review",
            "waiting_seller_proof"
        ));
        assert!(!may("expired_no_proof", "accepted"));
        assert!(may("accepted", "accepted"));
        assert!(may("accepted", "a_phase_from_a_later_api"));
    }

    #[test]
    fn every_escrow_status_is_reachable_from_an_escrow_backed_order() {
        for e in [
            "pending",
            "paid",
            "delivered",
            "completed",
            "cancelled",
            "disputed",
        ] {
            let next = OrderStatus::from_escrow(&EscrowStatus::from(e)).unwrap();
            assert!(
                OrderStatus::ALL
                    .iter()
                    .any(|s| s.can_become(next) && s.follows_escrow()),
                "{e}"
            );
        }
    }
}
