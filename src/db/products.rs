use rust_decimal::Decimal;
use sqlx::PgExecutor;

use crate::orders::state_machine::Mode;

#[derive(Debug, Clone)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: Decimal,
    pub currency: String,
    pub mode: Mode,
    pub estimated_delivery_days: Option<i32>,
    /// Standard mode: the contract both sides sign.
    pub contract_terms: Option<String>,
    /// Quick mode with DHMAD's purchase-proof gate, and its deadlines in hours.
    pub proof_required: bool,
    pub proof_upload_hours: Option<i32>,
    pub proof_review_hours: Option<i32>,
}

pub async fn list_active(e: impl PgExecutor<'_>) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as!(
        Product,
        r#"SELECT sku, name, description, price, currency, mode AS "mode: Mode", estimated_delivery_days,
                  contract_terms, proof_required, proof_upload_hours, proof_review_hours
         FROM products WHERE active ORDER BY price, sku"#
    )
    .fetch_all(e)
    .await
}

pub async fn get_active(e: impl PgExecutor<'_>, sku: &str) -> sqlx::Result<Option<Product>> {
    sqlx::query_as!(
        Product,
        r#"SELECT sku, name, description, price, currency, mode AS "mode: Mode", estimated_delivery_days,
                  contract_terms, proof_required, proof_upload_hours, proof_review_hours
         FROM products WHERE active AND sku = $1"#,
        sku
    )
    .fetch_optional(e)
    .await
}

/// Any product, active or not (an order keeps pointing at a product taken off sale).
pub async fn get(e: impl PgExecutor<'_>, sku: &str) -> sqlx::Result<Option<Product>> {
    sqlx::query_as!(
        Product,
        r#"SELECT sku, name, description, price, currency, mode AS "mode: Mode", estimated_delivery_days,
                  contract_terms, proof_required, proof_upload_hours, proof_review_hours
         FROM products WHERE sku = $1"#,
        sku
    )
    .fetch_optional(e)
    .await
}
