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

/// A form whose fields all have defaults: a POST with no body at all (a script's
/// `curl -X POST` with the admin token) is `T::default()`, where [`Form`] would refuse it for
/// its missing content type. A body that is sent is read as [`Form`] reads it.
pub struct FormOrDefault<T>(pub T);

impl<S, T> FromRequest<S> for FormOrDefault<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Default,
{
    type Rejection = AppError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        if !req.headers().contains_key(axum::http::header::CONTENT_TYPE) {
            return Ok(Self(T::default()));
        }
        let Form(t) = Form::<T>::from_request(req, state).await?;
        Ok(Self(t))
    }
}
