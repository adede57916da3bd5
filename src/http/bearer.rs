//! Bearer tokens (`Authorization: Bearer …`), for the back office's scripts and `/metrics`'
//! scraper: read from the header, compared in constant time.

use axum::http::{header, HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
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

/// Whether `presented` is `expected`, in time that depends neither on where they differ nor
/// on the token's length: their SHA-256 digests are compared, since `ct_eq` on two slices of
/// different lengths answers at once.
pub fn matches(presented: &str, expected: &SecretString) -> bool {
    let digest = |text: &str| Sha256::digest(text.as_bytes());
    digest(presented.trim())
        .as_slice()
        .ct_eq(digest(expected.expose_secret()).as_slice())
        .into()
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    #[test]
    fn only_the_token_itself_matches() {
        let token = SecretString::from("s3cret-token-of-the-shop");
        assert!(super::matches("s3cret-token-of-the-shop", &token));
        assert!(super::matches(" s3cret-token-of-the-shop\n", &token));
        for wrong in [
            "",
            "s3cret",
            "s3cret-token-of-the-shoq",
            "s3cret-token-of-the-shop2",
        ] {
            assert!(!super::matches(wrong, &token), "{wrong:?}");
        }
    }
}
