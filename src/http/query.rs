//! A query string that cannot be read (a parameter sent twice, a number that is not one) is
//! answered with the shop's error page (or JSON), as every other refusal, not axum's plain-text
//! 400.

use axum::extract::{rejection::QueryRejection, FromRequestParts};

use crate::error::AppError;

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

impl From<QueryRejection> for AppError {
    fn from(e: QueryRejection) -> Self {
        AppError::BadRequest(e.body_text())
    }
}
