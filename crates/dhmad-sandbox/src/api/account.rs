//! `GET /me` and `GET /balance`.

use axum::extract::State;
use axum::Json;
use dhmad::{ApiKeyInfo, Balance, BalanceAmounts, Developer, Environment, EscrowStatus, Me};
use rust_decimal::Decimal;
use serde_json::json;

use crate::state::{users, AppState};

pub async fn me(State(state): State<AppState>) -> Json<Me> {
    let s = &state.settings;
    Json(Me {
        api_key: ApiKeyInfo {
            id: state.api_key_id(),
            name: "Sandbox key".into(),
            key_prefix: s.api_key.chars().take(15).collect(),
            environment: Environment::Sandbox,
            is_active: true,
            last_used_at: Some(state.clock.now()),
            expires_at: None,
            rate_limit: Some(state.rate.limit()),
            metadata: json!({"appName": s.app_name, "website": s.base_url}),
            created_at: Some(state.started_at),
        },
        developer: Developer {
            id: users::user_id(&format!("developer:{}", s.seller_email)),
            email: s.seller_email.clone(),
            company_name: Some(s.app_name.clone()),
        },
    })
}

/// The associated user's balance, derived from the escrows: `escrow` = money held in paid,
/// delivered or disputed escrows where the user is a party; `available` = payouts of completed
/// escrows it sold plus app fees it earned; `pending` = always 0 (no payout delay).
pub async fn balance(State(state): State<AppState>) -> Json<Balance> {
    let assoc = state.settings.seller_email.clone();
    let store = state.lock_store();
    let (mut available, mut held) = (Decimal::ZERO, Decimal::ZERO);
    for e in store.escrows.values() {
        let party = e.is_seller(&assoc) || e.is_buyer(&assoc);
        match e.status {
            EscrowStatus::Paid | EscrowStatus::Delivered | EscrowStatus::Disputed if party => {
                held += e.amount_tnd;
            }
            EscrowStatus::Completed if e.is_seller(&assoc) => {
                available += e.amount_tnd - e.escrow_fee - e.developer_fee;
            }
            EscrowStatus::Completed => available += e.developer_fee,
            _ => {}
        }
    }
    Json(Balance {
        balance: BalanceAmounts {
            available,
            pending: Decimal::ZERO,
            escrow: held,
        },
    })
}
