//! A request's body arrives within `HEADER_READ_TIMEOUT_SECS` of its head, or the request is
//! refused with 408 and the connection closed. Without it, a client that announced a body and
//! sent it slowly or never held the connection until the request's own deadline, which answers
//! 503 (our failure, logged as an error) for what is the client's: read here, whole, before
//! the CSRF check and the handlers, which then find it in memory.
//!
//! Not DHMAD's webhooks: a 4xx tells DHMAD never to send the event again, so a delivery slowed
//! on its way keeps its route's own 8 s deadline and 503, which DHMAD retries.

use std::time::Duration;

use axum::{
    body::{Body, HttpBody},
    extract::Request,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use http_body_util::LengthLimitError;

use super::{
    around::{Before, Hook},
    BODY_LIMIT,
};
use crate::error::AppError;

/// The deadline: `HEADER_READ_TIMEOUT_SECS`.
#[derive(Clone)]
pub(super) struct BodyDeadline(pub(super) Duration);

impl Hook for BodyDeadline {
    type Memo = ();

    fn before(&self, req: Request) -> Before<()> {
        if req.body().is_end_stream() || req.uri().path().starts_with("/webhooks/") {
            return Before::Go(req, ());
        }
        Before::Await(Box::pin(read_within(self.0, req)))
    }

    fn after(&self, (): (), resp: Response) -> Response {
        resp
    }
}

async fn read_within(deadline: Duration, req: Request) -> Result<(Request, ()), Response> {
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => Ok((Request::from_parts(parts, Body::from(bytes)), ())),
        Ok(Err(e)) if is_too_large(&e) => Err(AppError::PayloadTooLarge.into_response()),
        // The connection broke mid-body: nobody reads this answer.
        Ok(Err(e)) => {
            Err(AppError::BadRequest(format!("could not read the body: {e}")).into_response())
        }
        Err(_) => {
            let mut refused = AppError::RequestTimeout.into_response();
            refused
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(refused)
        }
    }
}

fn is_too_large(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}
