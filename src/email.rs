//! E-mail addresses as the shop accepts them: trimmed, lower-cased and checked with the
//! `email_address` crate (RFC 5321/5322 syntax, the parser `lettre` builds on), with the shop's
//! own limits on top: a domain with a dot (a top-level domain), no domain literal
//! (`a@[127.0.0.1]`), no display name, no quoted local part (`"a;=1+1"@b.tn`: no mailbox
//! provider hands one out, and its `;` would split the back office's CSV export into cells in
//! a spreadsheet whose list separator is `;`, as in French locales, with a formula in one), no
//! whitespace or control character anywhere (NUL cannot be stored in Postgres) and at most 254
//! characters. DHMAD does the real verification.

use email_address::{EmailAddress, Options};

/// Why an address was refused; the text is safe to show (it echoes the input only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    #[error("an e-mail address is required")]
    Missing,
    /// Without the address: this text reaches the log, which holds no buyer's address (the
    /// form, or the caller, has what was typed).
    #[error("This is not a valid e-mail address.")]
    Malformed,
}

/// Normalises and checks an address.
pub fn normalise(raw: &str) -> Result<String, InvalidEmail> {
    let trimmed = raw.trim();
    let email = trimmed.to_lowercase();
    if email.is_empty() {
        return Err(InvalidEmail::Missing);
    }
    let options = Options::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    let ok = email.len() <= 254
        && !email.contains(|c: char| c.is_whitespace() || c.is_control() || c == '"')
        && EmailAddress::parse_with_options(&email, options).is_ok();
    if ok {
        Ok(email)
    } else {
        Err(InvalidEmail::Malformed)
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
        for good in [
            "a@b.tn",
            "first.last+tag@sub.example.tn",
            "o'brien@example.ie",
            "user_name-1@example-shop.co.uk",
        ] {
            assert_eq!(normalise(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [
            "",
            "nope",
            "a@b",
            "a@@b.tn",
            "a b@c.tn",
            "@x.tn",
            "a@.tn",
            "a\0@b.tn",
            // refused by the crate where the hand-written check let them through
            ".a@b.tn",
            "a.@b.tn",
            "a..b@c.tn",
            "a@b..tn",
            "a@-b.tn",
            "a(comment)@b.tn",
            "a@b.tn>",
            // the shop's own limits on top of the syntax
            "\"a b\"@c.tn",
            "\"a;=1+1;\"@b.tn",
            "\"ab\"@c.tn",
            "a\t@b.tn",
            "a@b.tn\u{7f}",
            "a@[127.0.0.1]",
            "Buyer <a@b.tn>",
        ] {
            assert!(normalise(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@{}.tn", "a".repeat(64), "b".repeat(187));
        assert_eq!(long.len(), 255);
        assert!(normalise(&long).is_err());
        assert_eq!(normalise(" \t "), Err(InvalidEmail::Missing));
    }
}
