//! E-mails to buyers: the order link after checkout and, for instant goods, the good itself.
//! Sent through SMTP (`SMTP_URL`) by the outbox worker, so an e-mail is queued in the same
//! transaction as what it announces and retried until the server takes it. Without `SMTP_URL`
//! (the demo) each e-mail is written to the log at INFO, without its body: the body carries the
//! order link and the code, which are the buyer's secrets.
//!
//! Each e-mail is one SMTP connection, bounded as a whole by `SMTP_TIMEOUT_SECS`: lettre's own
//! timeout covers the connect only (0.11), so a server gone silent mid-conversation held the
//! outbox worker for ever, and a pooled connection abandoned mid-conversation would go back to
//! lettre's pool in that state. A timed-out e-mail is retried; it may then arrive twice, which
//! beats never.

use lettre::{
    message::Mailbox, transport::smtp::AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use secrecy::ExposeSecret;
use std::time::Duration;

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
    #[error("invalid address: {0}")]
    Address(String),
    #[error("could not build the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("SMTP: no answer within {0:?}")]
    Timeout(Duration),
}

/// Enhanced status codes (RFC 3463) by which a server refuses the recipient for good: bad
/// mailbox, bad system, bad address syntax, mailbox moved, no mail accepted (RFC 7505), mailbox
/// disabled, mailbox full for good. Other permanent refusals (authentication, relaying, policy)
/// are usually the shop's own configuration, which a fix brings through on a later try.
const RECIPIENT_REFUSED: [&str; 7] = [
    "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1", "5.2.2",
];

impl MailError {
    /// No try will ever send this e-mail: its address cannot be written, or the server
    /// refused its recipient with a permanent code naming the address or its mailbox.
    pub fn refused_for_good(&self) -> bool {
        match self {
            Self::Address(_) => true,
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
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
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
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?
                    // Connecting is bounded on its own, shorter: a server that cannot be
                    // reached is a plain failure, retried for a day; one that took the
                    // connection and then went silent may have taken the e-mail (notify.rs).
                    .timeout(Some((config.smtp_timeout / 3).min(Duration::from_secs(10))))
                    .build(),
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
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|_| MailError::Address(email.to.clone()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .body(email.body.clone())?;
        tokio::time::timeout(self.timeout, smtp.send(message))
            .await
            .map_err(|_| MailError::Timeout(self.timeout))??;
        tracing::info!(to = %email.to, subject = %email.subject, "e-mail sent");
        Ok(())
    }
}
