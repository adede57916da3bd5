//! String enums of the DHMAD wire format.
//!
//! Every enum keeps values it does not know in an `Unknown(String)` variant, so that DHMAD adding
//! a status or a code never breaks the parsing of a whole payload.

#[macro_use]
mod macros;

mod codes;

pub use codes::*;

string_enum! {
    /// Status of an escrow (`escrow.status`).
    EscrowStatus {
        /// Created, not yet funded; the only editable state.
        Pending => "pending",
        /// Funded by the buyer; money held by DHMAD.
        Paid => "paid",
        /// The seller said it delivered (standard and quick modes).
        Delivered => "delivered",
        /// Funds released to the seller. Terminal.
        Completed => "completed",
        /// Cancelled, buyer refunded when it had paid. Terminal.
        Cancelled => "cancelled",
        /// A dispute is open (listed by the GET page only).
        Disputed => "disputed",
    }
}

impl EscrowStatus {
    /// `completed` and `cancelled` never change again.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }

    /// `true` once the buyer's money is held or released: paid, delivered, completed, disputed.
    pub fn is_funded(&self) -> bool {
        matches!(
            self,
            Self::Paid | Self::Delivered | Self::Completed | Self::Disputed
        )
    }
}

string_enum! {
    /// Escrow mode, chosen at creation.
    EscrowMode {
        /// Contract signed by both parties before payment.
        Standard => "standard",
        /// No contract; optional proof gate.
        Quick => "quick",
        /// Your own sale: `deliver` completes at once; guest payment allowed.
        Instant => "instant",
    }
}

string_enum! {
    /// Face currency of an escrow.
    Currency {
        /// Tunisian dinar (the ledger currency).
        Tnd => "TND",
        /// US dollar.
        Usd => "USD",
        /// Euro.
        Eur => "EUR",
    }
}

string_enum! {
    /// Status of a checkout session.
    SessionStatus {
        /// Open: the target user has not finished it.
        Pending => "pending",
        /// The user performed the action.
        Completed => "completed",
        /// 30 minutes passed.
        Expired => "expired",
        /// The user backed out.
        Cancelled => "cancelled",
    }
}

string_enum! {
    /// What a checkout session lets its target user do.
    CheckoutAction {
        /// Sign the contract (standard mode).
        SignContract => "sign_contract",
        /// Pay (buyer).
        AcceptPay => "accept_pay",
        /// Confirm receipt and release the funds (buyer; standard and quick).
        Complete => "complete",
        /// Open a dispute.
        Dispute => "dispute",
        /// Ask the seller to cancel (buyer).
        RequestCancellation => "request_cancellation",
        /// Refuse a buyer's cancellation request (seller).
        RejectCancellation => "reject_cancellation",
        /// Accept a buyer's cancellation request and refund (seller).
        AcceptCancellation => "accept_cancellation",
        /// Cancel and refund at once (seller).
        CancelEscrow => "cancel_escrow",
        /// Upload purchase proof (seller; quick with proof gate).
        SubmitProof => "submit_proof",
        /// Accept the proof or ask for a correction (buyer).
        ReviewProof => "review_proof",
    }
}

string_enum! {
    /// Phase of the purchase-proof gate (`proofInfo.phase`).
    ProofPhase {
        /// Funded; the seller must upload proof.
        WaitingSellerProof => "waiting_seller_proof",
        /// Proof uploaded; the buyer reviews.
        SubmittedWaitingBuyerReview => "submitted_waiting_buyer_review",
        /// The buyer asked for better proof.
        CorrectionRequested => "correction_requested",
        /// The buyer (or DHMAD) accepted; delivery unlocked.
        Accepted => "accepted",
        /// The review deadline passed; delivery unlocked.
        AcceptedByTimeout => "accepted_by_timeout",
        /// Escalated to DHMAD after too many corrections.
        NeedsDhmadReview => "needs_dhmad_review",
        /// No proof before the deadline: cancelled and refunded.
        ExpiredNoProof => "expired_no_proof",
        /// DHMAD rejected the proof: cancelled and refunded.
        Rejected => "rejected",
    }
}

impl ProofPhase {
    /// Whether the seller may now call `deliver`.
    pub fn unlocks_delivery(&self) -> bool {
        matches!(self, Self::Accepted | Self::AcceptedByTimeout)
    }
}

string_enum! {
    /// Proof types a fulfillment policy may hint at (not enforced by DHMAD).
    ProofType {
        /// A receipt.
        Receipt => "receipt",
        /// An order confirmation.
        OrderConfirmation => "order_confirmation",
        /// A photo of the product.
        ProductPhoto => "product_photo",
        /// A tracking proof.
        TrackingProof => "tracking_proof",
        /// Anything else.
        Other => "other",
    }
}

string_enum! {
    /// `fulfillmentPolicy.type`.
    FulfillmentPolicyType {
        /// The only published policy.
        PurchaseProofRequired => "purchase_proof_required",
    }
}

string_enum! {
    /// Guest payment methods of instant escrows.
    PaymentMethod {
        /// Bank transfer.
        BankTransfer => "bank_transfer",
        /// D17 (La Poste).
        D17 => "d17",
        /// Flouci.
        Flouci => "flouci",
        /// PayPal.
        Paypal => "paypal",
    }
}

string_enum! {
    /// Who signed, in `contract.signed`.
    Signer {
        /// The seller.
        Seller => "seller",
        /// The buyer.
        Buyer => "buyer",
    }
}

string_enum! {
    /// Filter of `GET /escrows`.
    Role {
        /// Escrows where the associated user sells.
        Seller => "seller",
        /// Escrows where the associated user buys.
        Buyer => "buyer",
    }
}

string_enum! {
    /// State of a buyer's cancellation request.
    CancellationRequestStatus {
        /// Awaiting the seller.
        Pending => "pending",
        /// The seller refused.
        Rejected => "rejected",
        /// The seller accepted; refunded.
        Accepted => "accepted",
    }
}

string_enum! {
    /// Environment of an API key.
    Environment {
        /// Production.
        Live => "live",
        /// Sandbox.
        Sandbox => "sandbox",
    }
}

string_enum! {
    /// `kyc_status` of an identity verification.
    KycStatus {
        /// Not decided yet.
        Pending => "pending",
        /// Approved.
        Approved => "approved",
        /// Rejected.
        Rejected => "rejected",
    }
}

string_enum! {
    /// `claim_status` of an identity verification.
    ClaimStatus {
        /// No DHMAD user has claimed it yet.
        Pending => "pending",
        /// Attached to a DHMAD user.
        Linked => "linked",
    }
}

string_enum! {
    /// Language of a contract.
    ContractLanguage {
        /// English.
        En => "en",
        /// French.
        Fr => "fr",
        /// Arabic.
        Ar => "ar",
    }
}

string_enum! {
    /// Type of a contract PDF version.
    PdfVersionType {
        /// Before any signature.
        Unsigned => "unsigned",
        /// Signed by the buyer only.
        BuyerSigned => "buyer-signed",
        /// Signed by the seller only.
        SellerSigned => "seller-signed",
        /// Signed by both.
        FullySigned => "fully-signed",
    }
}
