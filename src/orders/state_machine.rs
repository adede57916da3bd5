use dhmad::EscrowStatus;

/// Our order status. The first four describe getting an escrow at all; the rest follow the
/// escrow's DHMAD status one to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

impl OrderStatus {
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

    /// Parses a stored value; the database's CHECK constraint guarantees it is one of ours.
    pub fn parse(s: &str) -> Self {
        match s {
            "new" => Self::New,
            "creating_escrow" => Self::CreatingEscrow,
            "escrow_failed" => Self::EscrowFailed,
            "needs_reconciliation" => Self::NeedsReconciliation,
            "awaiting_payment" => Self::AwaitingPayment,
            "paid" => Self::Paid,
            "delivered" => Self::Delivered,
            "completed" => Self::Completed,
            "cancelled" => Self::Cancelled,
            _ => Self::Disputed,
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

    /// Completed and cancelled never change again.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_follows_dhmad() {
        for s in [
            OrderStatus::New,
            OrderStatus::CreatingEscrow,
            OrderStatus::EscrowFailed,
            OrderStatus::NeedsReconciliation,
            OrderStatus::AwaitingPayment,
            OrderStatus::Paid,
            OrderStatus::Delivered,
            OrderStatus::Completed,
            OrderStatus::Cancelled,
            OrderStatus::Disputed,
        ] {
            assert_eq!(OrderStatus::parse(s.as_str()), s);
        }
        assert_eq!(
            OrderStatus::from_escrow(&EscrowStatus::Pending),
            Some(OrderStatus::AwaitingPayment)
        );
        assert_eq!(
            OrderStatus::from_escrow(&EscrowStatus::from("frozen")),
            None
        );
    }
}
