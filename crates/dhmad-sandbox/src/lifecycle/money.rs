//! Fees and the fixed sandbox FX rates (`docs/dhmad-api.md` §2.5).

use dhmad::Currency;
use rust_decimal::Decimal;

/// Platform fee: 5 % of `amountTnd`, rounded half-up to the millime.
pub const PLATFORM_FEE_PERCENT: Decimal = Decimal::from_parts(5, 0, 0, false, 0);
/// Fixed sandbox FX rates to TND.
pub const USD_TO_TND: Decimal = Decimal::from_parts(310, 0, 0, false, 2);
/// Fixed sandbox FX rates to TND.
pub const EUR_TO_TND: Decimal = Decimal::from_parts(340, 0, 0, false, 2);

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

/// An amount as the storefront shows it: `15.000 TND` (millimes), `12.50 USD`.
pub fn shown(amount: Decimal, currency: &Currency) -> String {
    let dp = match currency {
        Currency::Usd | Currency::Eur => 2,
        _ => 3,
    };
    let rounded =
        amount.round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    format!("{rounded:.prec$} {currency}", prec = dp as usize)
}

/// `(escrowFee, developerFee)` for an `amountTnd`.
pub fn fees(amount_tnd: Decimal, developer_pct: Decimal) -> (Decimal, Decimal) {
    let hundred = Decimal::ONE_HUNDRED;
    (
        millimes(amount_tnd * PLATFORM_FEE_PERCENT / hundred),
        millimes(amount_tnd * developer_pct / hundred),
    )
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
        assert_eq!(shown(Decimal::from(15), &Currency::Tnd), "15.000 TND");
        assert_eq!(shown(Decimal::new(84, 1), &Currency::Tnd), "8.400 TND");
        assert_eq!(shown(Decimal::new(125, 1), &Currency::Usd), "12.50 USD");
    }
}
