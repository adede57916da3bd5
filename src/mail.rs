//! E-mails to buyers: the order link after checkout and, for instant goods, the good itself.
//! Sent through SMTP (`SMTP_URL`) by the outbox worker, so an e-mail is queued in the same
//! transaction as what it announces and retried until the server takes it. Without `SMTP_URL`
//! (the demo) each e-mail is written to the log at INFO, without its body: the body carries the
//! order link and the code, which are the buyer's secrets.
//!
//! Each e-mail is one SMTP connection within `SMTP_TIMEOUT_SECS`, in two steps (`relay`): up
//! to the server's go-ahead for the message, then the message. A failure in the
//! first sent nothing, and the e-mail is simply retried; one in the second may have left the
//! message with the server, and such tries are few (`orders::notify`): a retry may then arrive
//! twice, which beats never.

mod relay;

use lettre::{message::Mailbox, Message};
use secrecy::ExposeSecret;
use std::time::Duration;

use self::relay::{Failure, Relay};
use crate::config::Config;

/// One e-mail. `body` is plain text; `Debug` leaves it out (the order's link, a code).
#[derive(Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Not said which: errors are logged.
    #[error("the recipient's address is not valid")]
    Address,
    #[error("could not build the message: {0}")]
    Build(#[from] lettre::error::Error),
    /// The server refused, or the conversation failed, before the message left.
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("SMTP: the server does not offer {0}, which the message needs")]
    Unsupported(&'static str),
    /// The server did not get as far as taking the message: nothing was sent.
    #[error("SMTP: the server did not ask for the message within {0:?}")]
    NotAnswering(Duration),
    /// The message was sent and no answer came: the server may have taken it.
    #[error("SMTP: no answer within {0:?}")]
    Timeout(Duration),
    /// The message was sent and the connection broke before its answer: it may have arrived.
    #[error("SMTP: the connection broke after the message was sent: {0}")]
    Cut(lettre::transport::smtp::Error),
}

/// Whether `SMTP_URL` names a relay this mailer can use (scheme, host, `tls=`, credentials):
/// checked with the other settings, so that a mistake is listed with theirs.
pub(crate) fn check_smtp_url(url: &str) -> Result<(), String> {
    Relay::from_url(url).map(|_| ())
}

/// The part of an address after its last `@` (all of it when there is none).
fn domain(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(_, d)| d)
}

/// `text` with every word that holds an `@` (an address a server's reply repeats: `550 5.1.1
/// <b@x.tn>: no such user`) cut to its domain, for the log. Hand-written: one rule, no crate
/// to bring for it.
pub fn without_addresses(text: &str) -> String {
    text.split(' ')
        .map(|word| match word.rsplit_once('@') {
            Some((_, domain)) => format!("…@{domain}"),
            None => word.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Enhanced status codes (RFC 3463) by which a server refuses the recipient for good: bad
/// mailbox, bad system, bad address syntax, mailbox moved, no mail accepted (RFC 7505), mailbox
/// disabled, mailbox full for good. Other permanent refusals (authentication, relaying, policy)
/// are usually the shop's own configuration, which a fix brings through on a later try.
const RECIPIENT_REFUSED: [&str; 7] = [
    "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1", "5.2.2",
];

impl MailError {
    /// The message left for the server and its fate is unknown: another try may deliver a
    /// second copy.
    pub fn may_have_arrived(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Cut(_))
    }

    /// No try will ever send this e-mail: its address cannot be written, the server lacks
    /// what the message needs, or it refused its recipient with a permanent code naming the
    /// address or its mailbox.
    pub fn refused_for_good(&self) -> bool {
        match self {
            // An address that cannot be written, or a message the server cannot take.
            Self::Address | Self::Unsupported(_) => true,
            Self::Smtp(e) if e.is_permanent() => {
                // The server's reply text, which starts with its enhanced status code.
                let reply = std::error::Error::source(e).map(ToString::to_string);
                reply.is_some_and(|r| {
                    let code = r.split_whitespace().next().unwrap_or_default();
                    RECIPIENT_REFUSED.contains(&code)
                })
            }
            _ => false,
        }
    }
}

/// Where e-mails go. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    smtp: Option<Relay>,
    timeout: Duration,
}

impl Mailer {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let from = config
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("MAIL_FROM: {e}"))?;
        let smtp = match &config.smtp_url {
            None => None,
            Some(url) => Some(
                Relay::from_url(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?,
            ),
        };
        Ok(Self {
            from,
            smtp,
            timeout: config.smtp_timeout,
        })
    }

    /// Sends, or logs when no SMTP server is configured.
    pub async fn send(&self, email: &Email) -> Result<(), MailError> {
        let Some(smtp) = &self.smtp else {
            tracing::info!(to = %email.to, subject = %email.subject, "e-mail not sent (SMTP_URL unset); body withheld from the log");
            return Ok(());
        };
        let to: Mailbox = email.to.parse().map_err(|_| MailError::Address)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .body(email.body.clone())?;
        smtp.send(message.envelope(), &message.formatted(), self.timeout)
            .await
            .map_err(|failure| match failure {
                Failure::NotSent(e) | Failure::Refused(e) => MailError::Smtp(e),
                Failure::Unsupported(what) => MailError::Unsupported(what),
                Failure::NotSentInTime => MailError::NotAnswering(self.timeout),
                Failure::Unanswered(None) => MailError::Timeout(self.timeout),
                Failure::Unanswered(Some(e)) => MailError::Cut(e),
            })?;
        // The recipient's domain only: logs travel further than the back office, which shows
        // the order's address to whoever may see it.
        tracing::info!(to.domain = %domain(&email.to), subject = %email.subject, "e-mail sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_reply_is_logged_without_the_address_it_repeats() {
        assert_eq!(
            without_addresses("Smtp(permanent: 550 5.1.1 <b.k@example.tn>: no such user)"),
            "Smtp(permanent: 550 5.1.1 …@example.tn>: no such user)"
        );
        assert_eq!(without_addresses("Done"), "Done");
        assert_eq!(domain("b@example.tn"), "example.tn");
        assert_eq!(domain("no-at-all"), "no-at-all");
    }
}
