//! The catalog.

use askama::Template;
use axum::{extract::State, response::Html, Extension, Json};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{csrf::CsrfToken, render};
use crate::{db, error::AppResult, orders::Mode, state::AppState};

/// `GET /api/products` item (a fixed interface, see `docs/ARCHITECTURE.md`). `price` is a decimal string, never a float.
#[derive(Serialize)]
pub struct ProductJson {
    sku: String,
    name: String,
    price: Decimal,
    currency: String,
    mode: Mode,
}

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
            })
            .collect(),
    ))
}

struct ProductView {
    sku: String,
    name: String,
    description: String,
    price: String,
    mode_label: &'static str,
}

#[derive(Template)]
#[template(path = "catalog.html")]
struct Catalog {
    products: Vec<ProductView>,
    csrf: String,
}

pub async fn catalog(
    State(s): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Html<String>> {
    let products = db::products::list_active(&s.pool)
        .await?
        .into_iter()
        .map(|p| ProductView {
            price: format!("{} {}", p.price, p.currency),
            mode_label: p.mode.label(),
            sku: p.sku,
            name: p.name,
            description: p.description,
        })
        .collect();
    render(&Catalog {
        products,
        csrf: csrf.0,
    })
}
