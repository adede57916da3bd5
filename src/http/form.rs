//! A form body that cannot be read (a field sent twice, another content type) is answered
//! with the shop's error page (or JSON), as every other refusal, not axum's plain-text 415
//! or 422.

use axum::extract::{rejection::FormRejection, FromRequest};

use crate::error::AppError;

#[derive(FromRequest)]
#[from_request(via(axum::Form), rejection(AppError))]
pub struct Form<T>(pub T);

impl From<FormRejection> for AppError {
    fn from(e: FormRejection) -> Self {
        AppError::BadRequest(e.body_text())
    }
}
