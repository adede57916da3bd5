//! The order's state machine: its statuses, the moves between them, and every "may this happen
//! now" question that handlers, templates and jobs ask. Adding a status is one variant here, one
//! `ALTER TYPE order_status ADD VALUE` migration, and the match arms the compiler asks for.
//! `docs/ARCHITECTURE.md` shows the same machine as a table.

use dhmad::{EscrowMode, EscrowStatus};

mod order;
mod proof;

pub use order::Order;
pub use proof::{proof_phase_may_follow, proof_report_is_news};

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

    /// The merchant takes it on DHMAD's page, as the shop's DHMAD account
    /// (`DHMAD_SELLER_EMAIL`): without one, it cannot be taken from the back office.
    pub fn on_the_shops_dhmad_page(self) -> bool {
        matches!(
            self,
            Action::MerchantSign
                | Action::SubmitProof
                | Action::AnswerCancellation
                | Action::CancelAndRefund
                | Action::Dispute
        )
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

    /// DHMAD holds the buyer's money (or is deciding about it). A checkout refuses more than
    /// this: [`Self::is_funded`], which also counts money already released.
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
    /// status may come next, including the documented delivered→paid), but for a move back to
    /// pending once DHMAD holds the money; settled is final.
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
            // Once DHMAD holds the money, nothing leads back to pending (§2.3): a snapshot
            // saying so is older news than its clock claims (a guest proof's rejection).
            (S::Paid | S::Delivered | S::Disputed, S::AwaitingPayment) => false,
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

    /// What the merchant reads: the buyer's words, but about the buyer.
    pub fn merchant_label(self) -> &'static str {
        match self {
            Self::New | Self::CreatingEscrow => "Preparing the checkout",
            Self::Delivered => "Shipped — awaiting the buyer's confirmation",
            other => other.label(),
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
                if from.money_held() && to.is_open() {
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
            // From the status an order has once its escrow exists (pending: that one).
            let first = OrderStatus::AwaitingPayment;
            assert!(next == first || first.can_become(next), "{e}");
        }
    }
}
