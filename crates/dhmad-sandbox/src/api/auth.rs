//! API-key authentication (`docs/dhmad-api.md` §1.2): `Authorization: Bearer` or `X-API-Key`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// `^sk_(live|sandbox)_[0-9a-f]{64}$`.
pub fn is_well_formed(key: &str) -> bool {
    let rest = key
        .strip_prefix("sk_live_")
        .or_else(|| key.strip_prefix("sk_sandbox_"));
    rest.is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn presented_key(req: &Request) -> Option<String> {
    let h = req.headers();
    let bearer = h
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.trim()
                .strip_prefix("Bearer ")
                .or_else(|| v.trim().strip_prefix("bearer "))
        })
        .map(|v| v.trim().to_owned());
    bearer.or_else(|| {
        h.get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
    })
}

/// Middleware: 401 unless the configured sandbox key is presented.
pub async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let err = match presented_key(&req) {
        None => ApiError::unauthorized(
            "API key is missing. Send it as 'Authorization: Bearer <key>' or in the X-API-Key header.",
        ),
        Some(k) if same_key(&k, &state.settings.api_key) => return next.run(req).await,
        Some(k) if !is_well_formed(&k) => ApiError::unauthorized(
            "Invalid API key format: expected sk_sandbox_ followed by 64 hexadecimal characters.",
        ),
        Some(k) if k.starts_with("sk_live_") => ApiError::unauthorized(
            "This is a live API key. The sandbox only accepts sandbox keys (sk_sandbox_...): use your sandbox key.",
        ),
        Some(_) => ApiError::unauthorized("Invalid or inactive API key."),
    };
    err.into_response()
}

/// Whether two keys are equal, in time that tells nothing of where they differ: a sandbox
/// run with a key of its own, on a port others reach, must not give it away byte by byte.
/// Their SHA-256 digests are compared, since `ct_eq` on slices of different lengths answers
/// at once.
fn same_key(presented: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    Sha256::digest(presented.as_bytes())
        .as_slice()
        .ct_eq(Sha256::digest(expected.as_bytes()).as_slice())
        .into()
}

#[cfg(test)]
mod tests {
    use super::{is_well_formed, same_key};

    #[test]
    fn keys_compare_whole() {
        let key = format!("sk_sandbox_{}", "ab".repeat(32));
        assert!(same_key(&key, &key.clone()));
        assert!(!same_key(&key[..key.len() - 1], &key));
        assert!(!same_key(&format!("{key}0"), &key));
        assert!(!same_key("", &key));
    }

    #[test]
    fn key_format() {
        let hex = "ab".repeat(32);
        assert!(is_well_formed(&format!("sk_sandbox_{hex}")));
        assert!(is_well_formed(&format!("sk_live_{hex}")));
        assert!(!is_well_formed(&format!("sk_test_{hex}")));
        assert!(!is_well_formed(&format!("sk_sandbox_{}", "AB".repeat(32))));
        assert!(!is_well_formed("sk_sandbox_abc"));
    }
}
