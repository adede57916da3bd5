//! The catalog.

use askama::Template;
use axum::{extract::State, response::Html, Extension, Json};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use axum_extra::extract::CookieJar;

use super::{cookies, csrf::CsrfToken, render};
use crate::{
    db,
    error::{AppResult, ErrorBody},
    orders::Mode,
    state::AppState,
};

/// `GET /api/products` item (a fixed interface, see `docs/ARCHITECTURE.md`). `price` is a decimal string, never a float.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "sku": "ai-credits-500", "name": "AI credits — 500", "price": "15.000",
    "currency": "TND", "mode": "instant", "proof_required": false
}))]
pub struct ProductJson {
    /// The product code, to send as `sku` to `POST /api/checkout`.
    sku: String,
    name: String,
    #[schema(value_type = super::openapi::DecimalString)]
    price: Decimal,
    /// ISO 4217 code (`TND`).
    currency: String,
    mode: Mode,
    /// Quick mode with DHMAD's purchase-proof gate: the shop shows a proof before shipping.
    proof_required: bool,
}

/// The products on sale.
#[utoipa::path(
    get,
    path = "/api/products",
    operation_id = "list_products",
    tag = "catalog",
    responses(
        (status = 200, description = "The products on sale", body = [ProductJson],
            links(("BuyTheFirst" = (
                operation_id = "checkout",
                request_body = json!({"sku": "$response.body#/0/sku", "email": "buyer@example.tn"}),
                description = "Buying the first product listed"
            )))),
        (status = 503, description = "The database is briefly unavailable", body = ErrorBody),
    ),
)]
pub async fn products(State(s): State<AppState>) -> AppResult<Json<Vec<ProductJson>>> {
    let list = db::products::list_active(&s.pool).await?;
    Ok(Json(
        list.into_iter()
            .map(|p| ProductJson {
                sku: p.sku,
                name: p.name,
                price: p.price,
                currency: p.currency,
                mode: p.mode,
                proof_required: p.proof_required,
            })
            .collect(),
    ))
}

/// A checkout form the buyer must correct: which product's form, what was typed, and why it
/// was refused. The catalog is shown again with the message next to that form's field.
pub(super) struct FormError {
    pub sku: String,
    pub email: String,
    pub message: String,
}

struct ProductView {
    sku: String,
    name: String,
    description: String,
    price: String,
    mode_label: &'static str,
    /// What the buyer typed in this product's e-mail field, kept when the form comes back.
    email: String,
    /// Why this product's form was refused.
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "catalog.html")]
struct Catalog {
    products: Vec<ProductView>,
    csrf: String,
    /// A refusal that belongs to no product on show (the form named an unknown one).
    general_error: Option<String>,
}

/// The catalog, whose forms start checkouts. It gives the browser its checkout token
/// (`sf_buyer`) before any form is sent: a checkout whose answer never arrives (the request's
/// deadline struck, the connection dropped) has saved its order under that token, and the
/// buyer's retry continues that order instead of starting a second one.
pub async fn catalog(
    State(s): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    jar: CookieJar,
) -> (CookieJar, AppResult<Html<String>>) {
    let jar = match cookies::buyer_token(&s.config, &jar) {
        Some(_) => jar,
        None => jar.add(cookies::buyer(&s.config, cookies::random_token())),
    };
    (jar, catalog_page(&s, csrf, None).await)
}

/// The catalog, with a refused form's message and input next to its product when there is one.
pub(super) async fn catalog_page(
    s: &AppState,
    csrf: CsrfToken,
    form_error: Option<FormError>,
) -> AppResult<Html<String>> {
    let mut form_error = form_error;
    let products = db::products::list_active(&s.pool)
        .await?
        .into_iter()
        .map(|p| {
            let (email, error) = match form_error.take_if(|e| e.sku == p.sku) {
                Some(e) => (e.email, Some(e.message)),
                None => (String::new(), None),
            };
            ProductView {
                price: format!("{} {}", p.price, p.currency),
                mode_label: p.mode.label(),
                sku: p.sku,
                name: p.name,
                description: p.description,
                email,
                error,
            }
        })
        .collect();
    render(&Catalog {
        products,
        csrf: csrf.0,
        general_error: form_error.map(|e| e.message),
    })
}
