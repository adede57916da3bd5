//! View models of the hosted page, built from the records.

use askama::Template;
use dhmad::{CheckoutAction, Currency, EscrowMode, SessionStatus};

use crate::error::Refusal;
use crate::lifecycle::action_rules::check_perform;
use crate::lifecycle::money;
use crate::state::{Ctx, EscrowRecord, SessionRecord, Store};

pub struct EscrowView {
    pub title: String,
    pub amount: String,
    pub currency: String,
    pub amount_tnd: String,
    pub escrow_fee: String,
    pub developer_fee: Option<String>,
    pub mode: String,
    pub status: String,
    pub seller: String,
    pub buyer: String,
}

/// Why the page cannot do its action, as the shopper reads it: the text, and the refusal's
/// code (if any) in small print for the developer.
pub struct Notice {
    pub text: String,
    pub code: Option<String>,
}

impl Notice {
    /// A notice without a code.
    pub fn plain(text: String) -> Self {
        Self { text, code: None }
    }
}

impl From<&Refusal> for Notice {
    fn from(r: &Refusal) -> Self {
        Self {
            text: r.user_text(),
            code: r.code().map(ToString::to_string),
        }
    }
}

#[derive(Template)]
#[template(path = "checkout.html")]
pub struct CheckoutPage {
    pub session_id: String,
    pub action: String,
    pub heading: String,
    pub button: String,
    pub target: String,
    pub role: String,
    pub app_name: String,
    pub expires_at: String,
    pub e: EscrowView,
    pub error: Option<Notice>,
    pub blocked: Option<Notice>,
    /// The action cannot be performed now (its reason is `blocked`, or the error just shown).
    pub disabled: bool,
    pub guest_allowed: bool,
    pub contract_terms: String,
    pub cancellation_reason: Option<String>,
    pub proof_note: Option<String>,
    pub proof_files: Vec<String>,
}

#[derive(Template)]
#[template(path = "checkout_closed.html")]
pub struct ClosedPage {
    pub app_name: String,
    pub heading: String,
    pub text: String,
    pub return_url: String,
}

fn labels(action: &CheckoutAction) -> (&'static str, &'static str) {
    use CheckoutAction as A;
    match action {
        A::SignContract => ("Sign the contract", "Sign contract"),
        A::AcceptPay => ("Accept and pay", "Accept & pay"),
        A::Complete => ("Complete the order", "Confirm receipt & release funds"),
        A::Dispute => ("Open a dispute", "Open dispute"),
        A::RequestCancellation => ("Request a cancellation", "Send cancellation request"),
        A::AcceptCancellation => ("Accept the cancellation", "Accept cancellation"),
        A::RejectCancellation => ("Reject the cancellation", "Reject cancellation"),
        A::CancelEscrow => ("Cancel the escrow", "Cancel escrow & refund buyer"),
        A::SubmitProof => ("Submit a purchase proof", "Submit proof"),
        A::ReviewProof => ("Review the purchase proof", "Send review"),
        A::Unknown(_) => ("Unknown action", "Perform"),
    }
}

/// The page for an open session.
pub fn checkout(
    store: &Store,
    s: &SessionRecord,
    rec: &EscrowRecord,
    ctx: &Ctx,
    error: Option<Notice>,
) -> CheckoutPage {
    let (heading, button) = labels(&s.action);
    let refusal = check_perform(store, rec, &s.action, &s.target_email).err();
    let disabled = refusal.is_some();
    // A refusal the user just got is shown once, as the error.
    let blocked = refusal
        .map(|r| Notice::from(&r))
        .filter(|b| error.as_ref().is_none_or(|e| e.text != b.text));
    let latest = rec.proof.as_ref().and_then(|p| p.submissions.last());
    CheckoutPage {
        session_id: s.id.clone(),
        action: s.action.to_string(),
        heading: heading.into(),
        button: button.into(),
        target: s.target_email.clone(),
        role: if rec.is_seller(&s.target_email) {
            "seller"
        } else {
            "buyer"
        }
        .into(),
        app_name: ctx.app_name.clone(),
        expires_at: dhmad::iso::format(s.expires_at),
        e: EscrowView {
            title: rec.title.clone(),
            amount: money::shown(rec.amount, &rec.currency),
            currency: rec.currency.to_string(),
            amount_tnd: money::shown(rec.amount_tnd, &Currency::Tnd),
            escrow_fee: money::shown(rec.escrow_fee, &Currency::Tnd),
            developer_fee: (!rec.developer_fee.is_zero())
                .then(|| money::shown(rec.developer_fee, &Currency::Tnd)),
            mode: rec.mode.to_string(),
            status: rec.status.to_string(),
            seller: rec.seller_email.clone(),
            buyer: rec.buyer_email.clone(),
        },
        error,
        blocked,
        disabled,
        guest_allowed: rec.mode == EscrowMode::Instant,
        contract_terms: rec
            .contract
            .as_ref()
            .map(|c| c.terms.clone())
            .unwrap_or_default(),
        cancellation_reason: rec.cancellation.as_ref().and_then(|c| c.reason.clone()),
        proof_note: latest.and_then(|l| l.note.clone()),
        proof_files: latest
            .map(|l| {
                l.files
                    .iter()
                    .map(|(id, _)| format!("/sandbox/files/{id}"))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The page for a session that can no longer be used.
pub fn closed(s: &SessionRecord, app_name: &str) -> ClosedPage {
    let (heading, text) = match s.status {
        SessionStatus::Expired => (
            "This checkout session has expired",
            "Checkout sessions are valid for 30 minutes. Go back to the shop to start again.",
        ),
        SessionStatus::Cancelled => (
            "This checkout session was cancelled",
            "A checkout session can only be used once. Go back to the shop to start again.",
        ),
        _ => (
            "This checkout session has already been used",
            "A checkout session can only be used once.",
        ),
    };
    ClosedPage {
        app_name: app_name.to_owned(),
        heading: heading.into(),
        text: text.into(),
        return_url: s.redirect_with(&s.status),
    }
}
