//! E-mail addresses as the shop accepts them: trimmed, lower-cased and sanity-checked. DHMAD
//! does the real verification; this only refuses what cannot be an address.

/// Why an address was refused; the text is safe to show (it echoes the input only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    #[error("an e-mail address is required")]
    Missing,
    #[error("{0:?} is not a valid e-mail address")]
    Malformed(String),
}

/// Normalises and checks an address.
pub fn normalise(raw: &str) -> Result<String, InvalidEmail> {
    let trimmed = raw.trim();
    let email = trimmed.to_lowercase();
    if email.is_empty() {
        return Err(InvalidEmail::Missing);
    }
    let bad = || InvalidEmail::Malformed(trimmed.to_owned());
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let ok = email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(|c: char| c.is_whitespace() || c.is_control())
        && !domain.contains('@');
    if ok {
        Ok(email)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalise("  Buyer@Example.TN ").unwrap(),
            "buyer@example.tn"
        );
        for bad in [
            "", "nope", "a@b", "a@@b.tn", "a b@c.tn", "@x.tn", "a@.tn", "a\0@b.tn",
        ] {
            assert!(normalise(bad).is_err(), "{bad}");
        }
    }
}
