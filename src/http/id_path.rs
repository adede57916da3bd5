//! The `{id}` of a route as text. A path that cannot even be decoded (invalid UTF-8 such as
//! `%FF`) names nothing we have: 404 like any unknown id, not axum's plain-text 400.

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};

use crate::error::AppError;

pub struct IdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| IdPath(id))
            .map_err(|_| AppError::NotFound)
    }
}
