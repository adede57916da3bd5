//! The order row, and the answers to "may this happen now" that depend on more than its status.

use rust_decimal::Decimal;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Action, Cancellation, Mode, OrderStatus};

/// A row of `orders`: `status` is ours, `escrow_status` is DHMAD's string exactly. Its `Debug`
/// names it by its short reference and leaves out the buyer and the code: the id is the
/// order's link.
#[derive(Clone)]
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
    /// The open dispute ticket DHMAD's last read named (`disputeTicketId`).
    pub dispute_ticket_id: Option<String>,
}

impl std::fmt::Debug for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Order")
            .field("ref", &crate::orders::log_ref(self.id))
            .field("sku", &self.sku)
            .field("mode", &self.mode)
            .field("status", &self.status)
            .field("escrow_id", &self.escrow_id)
            .field("escrow_status", &self.escrow_status)
            .finish_non_exhaustive()
    }
}

impl Order {
    pub fn is_instant(&self) -> bool {
        self.mode == Mode::Instant
    }

    /// Whether `action` may happen now.
    pub fn allows(&self, action: Action) -> bool {
        use OrderStatus as S;
        let unpaid = self.status.is_open() && self.status != S::CreatingEscrow;
        let held = self.money_held();
        let review = self.in_payment_review();
        let request_pending = self.cancellation_pending();
        let cancel_accepted = self.cancellation_request() == Some(Cancellation::Accepted);
        let awaiting = self.status == S::AwaitingPayment;
        let standard = self.mode == Mode::Standard;
        let phase = self.proof_phase.as_deref();
        match action {
            Action::Pay => {
                (matches!(
                    self.status,
                    S::AwaitingPayment | S::EscrowFailed | S::NeedsReconciliation
                ) || self.checkout_gave_up())
                    && !review
                    && (!standard || !awaiting || self.contract_signed())
            }
            Action::Sign => standard && awaiting && self.contract_buyer_signed != Some(true),
            Action::MerchantSign => {
                standard && awaiting && self.contract_seller_signed != Some(true)
            }
            // Not held back by a dispute: DHMAD's proof deadlines run on (a missed upload
            // cancels the escrow); DHMAD refuses what it will not take. Nor by a phase the shop
            // never learned (`proofInfo`'s keys are UNSTATED, and proof events may not reach
            // it): without the upload, DHMAD would cancel the order at the deadline.
            Action::SubmitProof => {
                self.status == S::Paid
                    && match phase {
                        Some(p) => matches!(p, "waiting_seller_proof" | "correction_requested"),
                        None => self.proof_required,
                    }
            }
            Action::ReviewProof => {
                self.status == S::Paid && phase == Some("submitted_waiting_buyer_review")
            }
            // Neither once the shop accepted the buyer's cancellation: DHMAD is cancelling the
            // escrow (its news may take a reconciler pass) and would refuse both.
            Action::ConfirmReceipt => {
                held && self.status == S::Delivered && !request_pending && !cancel_accepted
            }
            Action::Cancel => unpaid && !review,
            Action::RequestCancellation => held && self.cancellation.is_none(),
            Action::Dispute => held && !cancel_accepted,
            // Not once the shop accepted the buyer's cancellation either: DHMAD is cancelling
            // the escrow (its news may take a reconciler pass), so nothing is to go out.
            Action::Ship => {
                matches!(self.mode, Mode::Quick | Mode::Standard)
                    && held
                    && self.status == S::Paid
                    && !request_pending
                    && !cancel_accepted
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

    /// Cancelled after DHMAD rejected a guest's payment proof, with no payment since (a payment
    /// clears the rejection): the money the guest sent, outside DHMAD's wallet, is refunded by
    /// nobody automatically either (§4.2).
    pub fn cancelled_after_rejected_proof(&self) -> bool {
        self.deposit_rejection_reason.is_some()
            && self.status == OrderStatus::Cancelled
            && self.is_instant()
    }

    /// The buyer's cancellation request as it stands. A request waits for the shop only while
    /// DHMAD holds the money: once the escrow is cancelled, disputed or released, it is moot
    /// (DHMAD keeps no answer to give), and showing it would promise an outcome that can no
    /// longer come.
    pub fn cancellation_request(&self) -> Option<Cancellation> {
        let held = self.money_held();
        self.cancellation
            .filter(|c| *c != Cancellation::Requested || held)
    }

    /// The buyer asked to cancel and the shop has not answered while DHMAD holds the money.
    pub fn cancellation_pending(&self) -> bool {
        self.cancellation_request() == Some(Cancellation::Requested)
    }

    /// DHMAD holds the money for the shop to act on: paid or delivered, no dispute open (under
    /// one the money is DHMAD's to move, as with the `disputed` status).
    pub fn money_held(&self) -> bool {
        matches!(self.status, OrderStatus::Paid | OrderStatus::Delivered) && !self.dispute_open()
    }

    /// A dispute is open with DHMAD: the escrow's status says so, or (its status still `paid`
    /// or `delivered`, which DHMAD may keep: §2.3) its last read named an open ticket. Held
    /// money under a dispute moves only by DHMAD's decision: nothing ships, nothing completes.
    pub fn dispute_open(&self) -> bool {
        self.status == OrderStatus::Disputed
            || (self.dispute_ticket_id.is_some()
                && matches!(self.status, OrderStatus::Paid | OrderStatus::Delivered))
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
        // Not under a dispute: an instant `deliver` completes the escrow, releasing the money
        // DHMAD is judging (`db::orders::list_missing_deliver` queues it again once it ends).
        self.status == OrderStatus::Paid && !self.dispute_open()
    }

    /// Why DHMAD rejected the buyer's payment proof, while that still matters (a payment
    /// since makes it history).
    pub fn deposit_rejection(&self) -> Option<&str> {
        self.deposit_rejection_reason
            .as_deref()
            .filter(|_| self.status == OrderStatus::AwaitingPayment)
    }

    /// Why the buyer rejected the last delivery, while it is the news: the order is paid again
    /// and waits to be shipped again. Kept after, for the back office.
    pub fn delivery_rejection(&self) -> Option<&str> {
        self.delivery_rejection_reason
            .as_deref()
            .filter(|_| self.status == OrderStatus::Paid)
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
            && !self.checkout_gave_up()
    }

    /// Whether the merchant's "Reconcile" has something to ask DHMAD: the escrow of an order
    /// not settled, or of a flagged one (the merchant's Reconcile is what clears the flag), or a creation
    /// whose outcome is unknown (looked up in DHMAD's list). The list and the order's page
    /// both offer it by this.
    pub fn reconcilable(&self) -> bool {
        (self.escrow_id.is_some() && (!self.status.is_settled() || self.attention.is_some()))
            || self.status == OrderStatus::NeedsReconciliation
    }

    /// A checkout the line gave up on before its first DHMAD call (the order keeps why): it
    /// stays `new`, which nothing but the line serves, so only the buyer's "pay" brings it
    /// back.
    pub fn checkout_gave_up(&self) -> bool {
        self.status == OrderStatus::New && self.failure_reason.is_some()
    }
}
