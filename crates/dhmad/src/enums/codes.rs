//! Event types and error codes: the string enums that grow most often.

string_enum! {
    /// Webhook event types (`type` of the envelope, `X-Webhook-Event`).
    EventType {
        /// Any escrow status change.
        EscrowStatusUpdated => "escrow.status.updated",
        /// One party signed the contract.
        ContractSigned => "contract.signed",
        /// The buyer asked for cancellation.
        EscrowCancellationRequested => "escrow.cancellation.requested",
        /// The seller refused the request.
        EscrowCancellationRejected => "escrow.cancellation.rejected",
        /// The seller accepted the request (refund, cancelled).
        EscrowCancellationAccepted => "escrow.cancellation.accepted",
        /// A pending escrow was edited.
        EscrowUpdated => "escrow.updated",
        /// A guest payment proof was rejected.
        EscrowDepositProofRejected => "escrow.deposit_proof.rejected",
        /// The buyer rejected a delivery (delivered → paid).
        EscrowDeliveryRejected => "escrow.delivery.rejected",
        /// A proof escrow was funded; the seller must upload.
        EscrowProofRequired => "escrow.proof.required",
        /// The seller uploaded proof.
        EscrowProofSubmitted => "escrow.proof.submitted",
        /// The buyer asked for better proof.
        EscrowProofCorrectionRequested => "escrow.proof.correction_requested",
        /// The buyer accepted the proof.
        EscrowProofAccepted => "escrow.proof.accepted",
        /// The review deadline passed.
        EscrowProofAcceptedByTimeout => "escrow.proof.accepted_by_timeout",
        /// Escalated to DHMAD.
        EscrowProofNeedsReview => "escrow.proof.needs_review",
        /// No proof before the deadline.
        EscrowProofExpired => "escrow.proof.expired",
        /// A pre-account identity verification was decided.
        IdentityVerificationUpdated => "identity.verification.updated",
        /// A verified person registered and the KYC was attached.
        IdentityVerificationLinked => "identity.verification.linked",
    }
}

string_enum! {
    /// Machine-readable error codes (`error.code`), published and later revisions.
    ErrorCode {
        /// No allowed redirect URLs configured.
        NoRedirectUrlsConfigured => "NO_REDIRECT_URLS_CONFIGURED",
        /// `redirectUrl` not in the allow-list.
        RedirectUrlNotAllowed => "REDIRECT_URL_NOT_ALLOWED",
        /// Plain HTTP other than localhost.
        RedirectUrlMustBeHttps => "REDIRECT_URL_MUST_BE_HTTPS",
        /// `sign_contract` on an instant escrow.
        InstantEscrowNoContract => "INSTANT_ESCROW_NO_CONTRACT",
        /// `complete` on an instant escrow.
        InstantEscrowNoCompleteStep => "INSTANT_ESCROW_NO_COMPLETE_STEP",
        /// `sign_contract` on a quick escrow.
        QuickEscrowNoContract => "QUICK_ESCROW_NO_CONTRACT",
        /// The target already signed.
        ContractAlreadySigned => "CONTRACT_ALREADY_SIGNED",
        /// `accept_pay` after payment.
        PaymentAlreadyDone => "PAYMENT_ALREADY_DONE",
        /// `complete` on a completed escrow.
        EscrowAlreadyCompleted => "ESCROW_ALREADY_COMPLETED",
        /// A second `dispute`.
        DisputeAlreadyOpened => "DISPUTE_ALREADY_OPENED",
        /// `request_cancellation` outside paid/delivered.
        CancellationRequestInvalidStatus => "CANCELLATION_REQUEST_INVALID_STATUS",
        /// `request_cancellation` targeted at the seller.
        CancellationRequestBuyerOnly => "CANCELLATION_REQUEST_BUYER_ONLY",
        /// `cancel_escrow` outside paid/delivered.
        CancelEscrowInvalidStatus => "CANCEL_ESCROW_INVALID_STATUS",
        /// `cancel_escrow` targeted at the buyer.
        CancelEscrowSellerOnly => "CANCEL_ESCROW_SELLER_ONLY",
        /// A buyer-only action targeted at someone else.
        CheckoutTargetNotBuyer => "CHECKOUT_TARGET_NOT_BUYER",
        /// A seller-only action targeted at someone else.
        CheckoutTargetNotSeller => "CHECKOUT_TARGET_NOT_SELLER",
        /// A cancellation was already requested or processed.
        CancellationAlreadyRequested => "CANCELLATION_ALREADY_REQUESTED",
        /// Accept/reject with no pending request.
        NoPendingCancellation => "NO_PENDING_CANCELLATION",
        /// The seller has not finished identity verification.
        SellerNotReady => "SELLER_NOT_READY",
        /// The proof gate is still closed (409).
        ProofNotAccepted => "PROOF_NOT_ACCEPTED",
        /// Later revision: deliver required before complete.
        DeliveryRequired => "DELIVERY_REQUIRED",
        /// Later revision: dispute window closed.
        DisputeWindowClosed => "DISPUTE_WINDOW_CLOSED",
        /// Later revision.
        FundsAdjustmentInvalidStatus => "FUNDS_ADJUSTMENT_INVALID_STATUS",
        /// Later revision.
        GuestEscrowAdjustmentsNotSupported => "GUEST_ESCROW_ADJUSTMENTS_NOT_SUPPORTED",
        /// Later revision.
        BuyerNotLinked => "BUYER_NOT_LINKED",
        /// Later revision.
        DisputeOpen => "DISPUTE_OPEN",
        /// Later revision.
        CancellationPending => "CANCELLATION_PENDING",
        /// Later revision.
        ProgressiveReleaseNotEnabled => "PROGRESSIVE_RELEASE_NOT_ENABLED",
        /// Later revision.
        ReleaseReviewInvalidStatus => "RELEASE_REVIEW_INVALID_STATUS",
        /// Later revision.
        ReleaseRequestIdRequired => "RELEASE_REQUEST_ID_REQUIRED",
        /// Later revision.
        ReleaseRequestNotFound => "RELEASE_REQUEST_NOT_FOUND",
        /// Later revision.
        ReleaseRequestNotPending => "RELEASE_REQUEST_NOT_PENDING",
        /// Later revision (409).
        ChargeNotAnEscrow => "CHARGE_NOT_AN_ESCROW",
        /// Later revision (409).
        ProgressiveDeliverNotAllowed => "PROGRESSIVE_DELIVER_NOT_ALLOWED",
        /// Later revision.
        SellerIdentityRequired => "SELLER_IDENTITY_REQUIRED",
        /// Later revision.
        AmountTooSmall => "AMOUNT_TOO_SMALL",
        /// Later revision (409).
        InsufficientAvailableBalance => "INSUFFICIENT_AVAILABLE_BALANCE",
        /// Later revision (409).
        ConsentRequired => "CONSENT_REQUIRED",
        /// Later revision (409).
        ReleaseRequestsOpen => "RELEASE_REQUESTS_OPEN",
        /// Later revision.
        InvalidStatus => "INVALID_STATUS",
    }
}

string_enum! {
    /// OAuth error codes (`error` of body shape C, or the `error` redirect parameter).
    OAuthErrorCode {
        /// A parameter is missing or malformed.
        InvalidRequest => "invalid_request",
        /// Unknown client or wrong secret.
        InvalidClient => "invalid_client",
        /// The user refused (redirect parameter).
        AccessDenied => "access_denied",
        /// `grant_type` other than `authorization_code`.
        UnsupportedGrantType => "unsupported_grant_type",
        /// Bad or expired code, redirect mismatch, or bad PKCE verifier.
        InvalidGrant => "invalid_grant",
        /// The access token is invalid or expired (401).
        InvalidToken => "invalid_token",
    }
}
