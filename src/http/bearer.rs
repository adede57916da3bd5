//! Bearer tokens (`Authorization: Bearer …`), for the back office's scripts and `/metrics`'
//! scraper: read from the header, compared in constant time.

use axum::http::{header, HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// The token the request presents, if it has a bearer `Authorization` header. The scheme's
/// name is case-insensitive (RFC 9110).
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    let (scheme, token) = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// Whether `presented` is `expected`, in time that does not depend on where they differ.
pub fn matches(presented: &str, expected: &SecretString) -> bool {
    presented
        .trim()
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into()
}
