//! `/static/…`: tower-http's `ServeDir`, with one rule of ours on top: a file we do not have is
//! our 404 page, whatever its name. `ServeDir` answers 500 for a name the file system refuses
//! (longer than `NAME_MAX`, or one with a NUL for a `HEAD`), which anyone can send, and its own
//! 404 and 405 have no body.

use std::{convert::Infallible, io, path::Path};

use axum::{
    extract::Request,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use tower::{service_fn, Service};
use tower_http::services::ServeDir;

use crate::error::AppError;

pub(super) fn service(
    dir: &Path,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone {
    let serve = ServeDir::new(dir);
    service_fn(move |req: Request| {
        let mut serve = serve.clone();
        async move {
            Ok(match serve.try_call(req).await {
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                    AppError::NotFound.into_response()
                }
                // Another method than GET or HEAD: its own 405 has no body either (the
                // router's fallback does not reach a nested service). Its `Allow` is kept.
                Ok(resp) if resp.status() == StatusCode::METHOD_NOT_ALLOWED => {
                    let mut ours = AppError::MethodNotAllowed.into_response();
                    if let Some(allow) = resp.headers().get(header::ALLOW) {
                        ours.headers_mut().insert(header::ALLOW, allow.clone());
                    }
                    ours
                }
                Ok(resp) => resp.into_response(),
                // A name too long, or holding a NUL (which `ServeDir` maps to 404 for a GET
                // but not for a HEAD).
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::InvalidFilename | io::ErrorKind::InvalidInput
                    ) =>
                {
                    AppError::NotFound.into_response()
                }
                Err(e) => AppError::Internal(e.into()).into_response(),
            })
        }
    })
}
