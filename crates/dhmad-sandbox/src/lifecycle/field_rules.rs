//! The field rules of `POST /escrows` (`docs/dhmad-api.md` §3.3) and `PUT /escrows/:id` (§3.8),
//! one function per concern. [`new_escrow`] runs them in the order DHMAD reports errors: the
//! first rule broken is the one answered.

use dhmad::{CreateEscrow, Currency, EscrowMode, FulfillmentPolicy, FulfillmentPolicyType};
use rust_decimal::Decimal;

use super::money::to_tnd;
use super::proof_ops::{PROOF_HOURS_MAX, PROOF_HOURS_MIN};
use crate::error::Refusal;
use crate::state::{users, Ctx};

/// A create request that passed every rule, normalised.
pub struct NewEscrow {
    pub mode: EscrowMode,
    pub currency: Currency,
    pub title: String,
    pub buyer: String,
    pub seller: String,
    /// The seller was named by `sellerEmail` (not the associated user).
    pub seller_invited: bool,
    pub days: u32,
    pub terms: Option<String>,
    pub auto_sign: bool,
    pub developer_pct: Decimal,
    pub amount: Decimal,
    pub amount_tnd: Decimal,
    pub policy: Option<FulfillmentPolicy>,
}

/// Checks a create request against every rule.
pub fn new_escrow(req: &CreateEscrow, ctx: &Ctx) -> Result<NewEscrow, Refusal> {
    let (mode, currency) = mode_and_currency(req)?;
    let title = title(&req.title)?;
    let buyer = email("buyerEmail", &req.buyer_email)?;
    fields_of_other_modes(req, &mode)?;
    let seller = seller(req, ctx, &buyer)?;
    let self_seller = seller.eq_ignore_ascii_case(&ctx.assoc);
    let days = delivery_days(req.estimated_delivery_days, &mode)?;
    let terms = contract_terms(req.contract_terms.as_deref(), &mode)?;
    let auto_sign = auto_sign(req, &mode, self_seller)?;
    let developer_pct = developer_fee(req.developer_fee_percentage, self_seller)?;
    if let Some(p) = &req.fulfillment_policy {
        fulfillment_policy(p, &mode)?;
    }
    positive_amount(req.amount)?;
    let amount_tnd = minimum_amount(req.amount, &currency, &mode)?;
    Ok(NewEscrow {
        mode,
        currency,
        title,
        buyer,
        seller,
        seller_invited: req.seller_email.is_some(),
        days,
        terms,
        auto_sign,
        developer_pct,
        amount: req.amount,
        amount_tnd,
        policy: req.fulfillment_policy.clone(),
    })
}

fn mode_and_currency(req: &CreateEscrow) -> Result<(EscrowMode, Currency), Refusal> {
    let mode = req.mode.clone().unwrap_or(EscrowMode::Standard);
    if !mode.is_known() {
        return Err(Refusal::field("mode", "must be standard, quick or instant"));
    }
    let currency = req.currency.clone().unwrap_or(Currency::Tnd);
    if !currency.is_known() {
        return Err(Refusal::field("currency", "must be TND, USD or EUR"));
    }
    Ok((mode, currency))
}

/// 1 to 200 characters once trimmed (create and update); returns the trimmed title.
pub fn title(raw: &str) -> Result<String, Refusal> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > 200 {
        return Err(Refusal::field("title", "must be 1 to 200 characters"));
    }
    Ok(t.to_owned())
}

/// A valid address, trimmed and lower-cased.
fn email(field: &str, raw: &str) -> Result<String, Refusal> {
    let e = raw.trim().to_lowercase();
    if !users::is_email(&e) {
        return Err(Refusal::field(field, "must be a valid e-mail address"));
    }
    Ok(e)
}

/// `sellerEmail` and `contractTerms` sent for a mode that does not take them.
fn fields_of_other_modes(req: &CreateEscrow, mode: &EscrowMode) -> Result<(), Refusal> {
    if *mode == EscrowMode::Instant && req.seller_email.is_some() {
        return Err(Refusal::bad(
            "Instant escrows cannot have a sellerEmail: the seller is always your associated account",
        ));
    }
    if *mode != EscrowMode::Standard && req.contract_terms.is_some() {
        return Err(Refusal::bad(
            "contractTerms is only allowed for standard escrows",
        ));
    }
    Ok(())
}

/// The named seller, else the associated user; never the buyer.
fn seller(req: &CreateEscrow, ctx: &Ctx, buyer: &str) -> Result<String, Refusal> {
    let seller = match &req.seller_email {
        Some(s) => email("sellerEmail", s)?,
        None => ctx.assoc.clone(),
    };
    if seller == buyer {
        return Err(Refusal::bad(
            "The buyer and the seller must be different users",
        ));
    }
    Ok(seller)
}

/// Required and at least 1, except for instant escrows (default 1).
fn delivery_days(days: Option<u32>, mode: &EscrowMode) -> Result<u32, Refusal> {
    match days {
        Some(0) => Err(days_at_least_one()),
        Some(d) => Ok(d),
        None if *mode == EscrowMode::Instant => Ok(1),
        None => Err(Refusal::field("estimatedDeliveryDays", "is required")),
    }
}

/// `estimatedDeliveryDays` of 0 (create and update).
pub fn days_at_least_one() -> Refusal {
    Refusal::field("estimatedDeliveryDays", "must be at least 1")
}

/// Required for standard escrows, at most 10 000 characters.
fn contract_terms(terms: Option<&str>, mode: &EscrowMode) -> Result<Option<String>, Refusal> {
    match (mode, terms.map(str::trim)) {
        (EscrowMode::Standard, None | Some("")) => Err(Refusal::field(
            "contractTerms",
            "is required for standard escrows",
        )),
        (EscrowMode::Standard, Some(t)) if t.chars().count() > 10_000 => Err(Refusal::field(
            "contractTerms",
            "must be at most 10000 characters",
        )),
        (_, t) => Ok(t.map(str::to_owned)),
    }
}

/// `autoSign` signs with the associated user's portal signature, so it must be the seller.
fn auto_sign(req: &CreateEscrow, mode: &EscrowMode, self_seller: bool) -> Result<bool, Refusal> {
    let auto_sign = req.auto_sign.unwrap_or(false);
    if auto_sign && (*mode != EscrowMode::Standard || req.seller_email.is_some() || !self_seller) {
        return Err(Refusal::bad(
            "autoSign is only possible for standard escrows where you are the seller",
        ));
    }
    Ok(auto_sign)
}

/// 0 to 25 %, and only when the seller is a third party (the fee goes to the developer).
fn developer_fee(pct: Option<Decimal>, self_seller: bool) -> Result<Decimal, Refusal> {
    let pct = pct.unwrap_or_default();
    if pct < Decimal::ZERO || pct > Decimal::from(25) {
        return Err(Refusal::field(
            "developerFeePercentage",
            "must be between 0 and 25",
        ));
    }
    if pct > Decimal::ZERO && self_seller {
        return Err(Refusal::bad(
            "A developer fee can only be collected when the seller is a third party",
        ));
    }
    Ok(pct)
}

/// The counts a create or update body may carry, as JSON pointers.
const COUNTS: [&str; 3] = [
    "/estimatedDeliveryDays",
    "/fulfillmentPolicy/proofUploadDeadlineHours",
    "/fulfillmentPolicy/buyerReviewDeadlineHours",
];

/// Reads the counts of a create or update body as DHMAD does. A whole number written with a
/// decimal point (`3.0`) is that number: DHMAD runs on Node, where JSON has one number type,
/// so it is rewritten as an integer for the typed request. An `estimatedDeliveryDays` that is
/// still no count (a fraction, a string…) is refused here, since the typed request cannot
/// hold it; bad proof hours are refused later, in rule order ([`keep_bad_hours`]).
pub fn read_counts(raw: &mut serde_json::Value) -> Result<(), Refusal> {
    for pointer in COUNTS {
        if let Some(v) = raw.pointer_mut(pointer) {
            if let Some(n) = whole_count(v) {
                *v = n.into();
            }
        }
    }
    match raw.get("estimatedDeliveryDays") {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(v) if whole_count(v).is_some() => Ok(()),
        Some(v) => Err(bad_days(v)),
    }
}

/// A JSON number with a whole value that fits a count (`u32`), whatever its notation.
fn whole_count(v: &serde_json::Value) -> Option<u32> {
    let n = v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(f))
            .map(|f| f as u64)
    })?;
    u32::try_from(n).ok()
}

/// Why an `estimatedDeliveryDays` that is no count is refused.
fn bad_days(v: &serde_json::Value) -> Refusal {
    match v.as_f64() {
        Some(d) if d.fract() == 0.0 && d < 1.0 => days_at_least_one(),
        Some(d) if d.fract() == 0.0 => Refusal::field(
            "estimatedDeliveryDays",
            format!("must be at most {}", u32::MAX),
        ),
        _ => Refusal::field(
            "estimatedDeliveryDays",
            "must be a whole number, sent as a JSON number",
        ),
    }
}

/// The proof deadlines as sent. The typed request reads a value that is not a whole number of
/// hours as absent, as a client must read DHMAD's answers; DHMAD refuses it in a request
/// (§2.4, §3.3). Such a value (a string, a fraction, a negative or a huge number) is kept as
/// out of bounds, so that [`new_escrow`] refuses it in its turn, naming the field. Run after
/// [`read_counts`], which writes `24.0` as `24`.
pub fn keep_bad_hours(raw: &serde_json::Value, req: &mut CreateEscrow) {
    let Some(policy) = req.fulfillment_policy.as_mut() else {
        return;
    };
    let sent = &raw["fulfillmentPolicy"];
    for (name, hours) in [
        (
            "proofUploadDeadlineHours",
            &mut policy.proof_upload_deadline_hours,
        ),
        (
            "buyerReviewDeadlineHours",
            &mut policy.buyer_review_deadline_hours,
        ),
    ] {
        let v = &sent[name];
        let whole = v.as_u64().and_then(|h| u32::try_from(h).ok());
        if !v.is_null() && whole.is_none() {
            *hours = Some(u32::MAX);
        }
    }
}

/// Quick escrows only, purchase proof only, deadlines within the bounds.
fn fulfillment_policy(p: &FulfillmentPolicy, mode: &EscrowMode) -> Result<(), Refusal> {
    if *mode != EscrowMode::Quick {
        return Err(Refusal::bad(
            "fulfillmentPolicy is only allowed for quick escrows",
        ));
    }
    if p.policy_type != FulfillmentPolicyType::PurchaseProofRequired {
        return Err(Refusal::field(
            "fulfillmentPolicy.type",
            "must be purchase_proof_required",
        ));
    }
    for (name, v) in [
        ("proofUploadDeadlineHours", p.proof_upload_deadline_hours),
        ("buyerReviewDeadlineHours", p.buyer_review_deadline_hours),
    ] {
        if v.is_some_and(|h| !(PROOF_HOURS_MIN..=PROOF_HOURS_MAX).contains(&h)) {
            return Err(Refusal::field(
                &format!("fulfillmentPolicy.{name}"),
                // Also what a fraction or a string is told (see `keep_bad_hours`).
                format!(
                    "must be a whole number of hours from {PROOF_HOURS_MIN} to {PROOF_HOURS_MAX}"
                ),
            ));
        }
    }
    Ok(())
}

/// `amount` above 0 (create and update).
pub fn positive_amount(amount: Decimal) -> Result<(), Refusal> {
    if amount <= Decimal::ZERO {
        return Err(Refusal::field("amount", "must be greater than 0"));
    }
    // DHMAD states no maximum; the sandbox takes one, so that fees and conversions cannot
    // overflow (README).
    if amount > Decimal::from(MAX_AMOUNT) {
        return Err(Refusal::field(
            "amount",
            format!("must be at most {MAX_AMOUNT}"),
        ));
    }
    Ok(())
}

/// The largest `amount` the sandbox takes (in the escrow's currency).
pub const MAX_AMOUNT: u64 = 1_000_000_000;

/// At least 0.01 TND for instant escrows, 5 TND otherwise (create and update); returns
/// `amountTnd`.
pub fn minimum_amount(
    amount: Decimal,
    currency: &Currency,
    mode: &EscrowMode,
) -> Result<Decimal, Refusal> {
    let amount_tnd = to_tnd(amount, currency);
    let minimum = if *mode == EscrowMode::Instant {
        Decimal::new(1, 2)
    } else {
        Decimal::from(5)
    };
    if amount_tnd < minimum {
        return Err(Refusal::field(
            "amount",
            format!("amountTnd must be at least {minimum} TND"),
        ));
    }
    Ok(amount_tnd)
}
