//! `POST /escrows`: the validation rules of `dhmad-api.md` §3.3, fees and FX.

use dhmad::{CreateEscrow, Currency, EscrowMode, EscrowStatus, FulfillmentPolicyType};
use rust_decimal::Decimal;

use super::PENDING_LIFETIME;
use crate::error::Refusal;
use crate::state::{users, ContractRecord, Ctx, EscrowRecord, Store};

/// Platform fee: 5 % of `amountTnd`, rounded half-up to the millime.
pub const PLATFORM_FEE_PERCENT: Decimal = Decimal::from_parts(5, 0, 0, false, 0);
/// Fixed sandbox FX rates to TND.
pub const USD_TO_TND: Decimal = Decimal::from_parts(310, 0, 0, false, 2);
/// Fixed sandbox FX rates to TND.
pub const EUR_TO_TND: Decimal = Decimal::from_parts(340, 0, 0, false, 2);
/// Proof deadline bounds in hours.
pub const PROOF_HOURS_MIN: u32 = 6;
/// Proof deadline bounds in hours.
pub const PROOF_HOURS_MAX: u32 = 72;

/// Rounds to millimes (3 decimals), half away from zero.
pub fn millimes(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(3, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// Face amount → TND at the fixed sandbox rate.
pub fn to_tnd(amount: Decimal, currency: &Currency) -> Decimal {
    match currency {
        Currency::Usd => millimes(amount * USD_TO_TND),
        Currency::Eur => millimes(amount * EUR_TO_TND),
        _ => millimes(amount),
    }
}

/// `(escrowFee, developerFee)` for an `amountTnd`.
pub fn fees(amount_tnd: Decimal, developer_pct: Decimal) -> (Decimal, Decimal) {
    let hundred = Decimal::ONE_HUNDRED;
    (
        millimes(amount_tnd * PLATFORM_FEE_PERCENT / hundred),
        millimes(amount_tnd * developer_pct / hundred),
    )
}

/// Validates and stores a new pending escrow; returns its id.
pub fn create_escrow(store: &mut Store, ctx: &Ctx, req: CreateEscrow) -> Result<String, Refusal> {
    let mode = req.mode.clone().unwrap_or(EscrowMode::Standard);
    if !mode.is_known() {
        return Err(Refusal::field("mode", "must be standard, quick or instant"));
    }
    let currency = req.currency.clone().unwrap_or(Currency::Tnd);
    if !currency.is_known() {
        return Err(Refusal::field("currency", "must be TND, USD or EUR"));
    }
    let title = req.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(Refusal::field("title", "must be 1 to 200 characters"));
    }
    let buyer = req.buyer_email.trim().to_lowercase();
    if !users::is_email(&buyer) {
        return Err(Refusal::field(
            "buyerEmail",
            "must be a valid e-mail address",
        ));
    }
    let instant = mode == EscrowMode::Instant;
    if instant && req.seller_email.is_some() {
        return Err(Refusal::bad(
            "Instant escrows cannot have a sellerEmail: the seller is always your associated account",
        ));
    }
    if mode != EscrowMode::Standard && req.contract_terms.is_some() {
        return Err(Refusal::bad(
            "contractTerms is only allowed for standard escrows",
        ));
    }
    let seller = match &req.seller_email {
        Some(s) if !users::is_email(s) => {
            return Err(Refusal::field(
                "sellerEmail",
                "must be a valid e-mail address",
            ))
        }
        Some(s) => s.trim().to_lowercase(),
        None => ctx.assoc.clone(),
    };
    let self_seller = seller.eq_ignore_ascii_case(&ctx.assoc);
    if seller == buyer {
        return Err(Refusal::bad(
            "The buyer and the seller must be different users",
        ));
    }
    let days = match req.estimated_delivery_days {
        Some(0) => {
            return Err(Refusal::field(
                "estimatedDeliveryDays",
                "must be at least 1",
            ))
        }
        Some(d) => d,
        None if instant => 1,
        None => return Err(Refusal::field("estimatedDeliveryDays", "is required")),
    };
    let terms = match (&mode, req.contract_terms.as_deref().map(str::trim)) {
        (EscrowMode::Standard, None | Some("")) => {
            return Err(Refusal::field(
                "contractTerms",
                "is required for standard escrows",
            ))
        }
        (EscrowMode::Standard, Some(t)) if t.chars().count() > 10_000 => {
            return Err(Refusal::field(
                "contractTerms",
                "must be at most 10000 characters",
            ))
        }
        (_, t) => t.map(str::to_owned),
    };
    let auto_sign = req.auto_sign.unwrap_or(false);
    if auto_sign && (mode != EscrowMode::Standard || req.seller_email.is_some() || !self_seller) {
        return Err(Refusal::bad(
            "autoSign is only possible for standard escrows where you are the seller",
        ));
    }
    let pct = req.developer_fee_percentage.unwrap_or_default();
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
    if let Some(p) = &req.fulfillment_policy {
        if mode != EscrowMode::Quick {
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
                    format!("must be between {PROOF_HOURS_MIN} and {PROOF_HOURS_MAX} hours"),
                ));
            }
        }
    }
    if req.amount <= Decimal::ZERO {
        return Err(Refusal::field("amount", "must be greater than 0"));
    }
    let amount_tnd = to_tnd(req.amount, &currency);
    let minimum = if instant {
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
    let (escrow_fee, developer_fee) = fees(amount_tnd, pct);
    let now = ctx.now;
    let id = store.new_object_id(now);
    let contract = match terms {
        Some(terms) if mode == EscrowMode::Standard => Some(ContractRecord {
            id: store.new_object_id(now),
            terms,
            seller_signed_at: auto_sign.then_some(now),
            buyer_signed_at: None,
            created_at: now,
            updated_at: now,
        }),
        _ => None,
    };
    let rec = EscrowRecord {
        id: id.clone(),
        title,
        description: None,
        amount: req.amount.normalize(),
        currency,
        amount_tnd,
        escrow_fee,
        developer_fee,
        developer_fee_percentage: pct.normalize(),
        status: EscrowStatus::Pending,
        mode,
        seller_email: seller,
        seller_invited: req.seller_email.is_some(),
        buyer_email: buyer,
        estimated_delivery_days: days,
        expires_at: now + PENDING_LIFETIME,
        paid_at: None,
        delivered_at: None,
        completed_at: None,
        cancelled_at: None,
        completion_deadline: None,
        created_at: now,
        updated_at: now,
        delivery_rejections: Vec::new(),
        contract,
        fulfillment_policy: req.fulfillment_policy,
        proof: None,
        dispute: None,
        cancellation: None,
        deposit_proofs: Vec::new(),
        guest_payment: false,
        last_event: None,
    };
    store.escrows.insert(id.clone(), rec);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_round_to_millimes() {
        assert_eq!(
            fees(Decimal::from(1000), Decimal::ZERO).0,
            Decimal::from(50)
        );
        assert_eq!(
            fees(Decimal::from(420), Decimal::from(2)),
            (Decimal::from(21), Decimal::new(84, 1))
        );
        assert_eq!(
            fees(Decimal::new(1, 2), Decimal::ZERO).0,
            Decimal::new(1, 3)
        );
        assert_eq!(to_tnd(Decimal::from(10), &Currency::Usd), Decimal::from(31));
    }
}
