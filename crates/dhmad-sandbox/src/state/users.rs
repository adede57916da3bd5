//! Sandbox users: every e-mail is a registered, verified user whose id is derived from it.

use dhmad::User;
use sha2::{Digest, Sha256};

/// 24 lowercase hex chars derived from the (lower-cased) e-mail, stable across restarts.
pub fn user_id(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    hex::encode(&digest[..12])
}

/// The user object DHMAD embeds in escrows: names come from the e-mail's local part.
pub fn user(email: &str) -> User {
    let email = email.trim().to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    let mut parts = local.split(['.', '_', '-', '+']).filter(|p| !p.is_empty());
    let first = parts
        .next()
        .map(capitalise)
        .unwrap_or_else(|| "Sandbox".into());
    let last = parts
        .next()
        .map(capitalise)
        .unwrap_or_else(|| "User".into());
    User {
        id: user_id(&email),
        email: Some(email),
        first_name: Some(first),
        last_name: Some(last),
    }
}

/// The same user without e-mail (as in `cancellationRequest.requestedBy`).
pub fn user_ref(email: &str) -> User {
    User {
        email: None,
        ..user(email)
    }
}

/// Sellers whose e-mail local part starts with `unverified` have not finished identity
/// verification: `accept_pay` sessions for their escrows fail with `SELLER_NOT_READY` until an
/// identity verification for the e-mail is approved (`lifecycle::identity::is_identity_ready`).
pub fn is_identity_ready(email: &str) -> bool {
    !email.trim().to_lowercase().starts_with("unverified")
}

/// A loose e-mail syntax check (`x@y.z`).
pub fn is_email(s: &str) -> bool {
    let s = s.trim();
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_names_derived() {
        assert_eq!(user_id("A@x.tn"), user_id("a@x.tn"));
        assert_eq!(user_id("a@x.tn").len(), 24);
        let u = user("ines.k@x.tn");
        assert_eq!(u.first_name.as_deref(), Some("Ines"));
        assert_eq!(u.last_name.as_deref(), Some("K"));
        assert!(is_email("b@x.tn") && !is_email("b@x") && !is_email("nope"));
    }
}
