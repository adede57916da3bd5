//! Which of the control API's escrow actions are possible now, for the dashboard's buttons.
//! Each flag asks the rule that the action's own code checks first, so a button shows exactly
//! when its JSON route would act (no state rule is restated here or in the template).

use super::admin;
use crate::lifecycle::{escrow_ops, proof_ops, triggers};
use crate::state::EscrowRecord;

/// One flag per dashboard button (or pair of buttons) of an escrow.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allowed {
    /// `deliver`, acting as the escrow's seller.
    pub deliver: bool,
    /// `reject-delivery`, acting as the escrow's buyer.
    pub reject_delivery: bool,
    /// `deposit-proof/approve` and `deposit-proof/reject` (one rule for both).
    pub decide_payment: bool,
    /// `proof/accept` and `proof/reject` (one rule for both).
    pub decide_proof: bool,
    /// `dispute/resolve` with `release` or `refund` (one rule for both).
    pub resolve_dispute: bool,
    /// `events/resend`.
    pub resend: bool,
}

impl Allowed {
    /// What `rec` allows now; `has_urls`: a webhook URL is set (resending needs one).
    pub fn of(rec: &EscrowRecord, has_urls: bool) -> Self {
        Self {
            deliver: escrow_ops::check_deliver(rec, &rec.seller_email).is_ok(),
            reject_delivery: escrow_ops::check_reject_delivery(rec, &rec.buyer_email).is_ok(),
            decide_payment: proof_ops::check_decide_deposit(rec).is_ok(),
            decide_proof: proof_ops::check_admin_decide(rec).is_ok(),
            resolve_dispute: triggers::check_resolve_dispute(rec).is_ok(),
            resend: admin::check_resend(rec, has_urls).is_ok(),
        }
    }
}
