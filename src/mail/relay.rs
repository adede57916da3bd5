//! One e-mail's SMTP conversation, step by step, so that a failure says whether the message
//! may have reached the server. lettre's transport sends it in one call: a relay that never
//! greeted us and one that went silent after taking the message timed out alike, and the
//! transport's closing `QUIT` (awaited with no bound) made an accepted e-mail look lost. Built
//! on lettre's connection; hand-written only for that rule (see [`Relay::send`]).

use std::time::Duration;

use lettre::{
    address::{Address, Envelope},
    transport::smtp::{
        authentication::{Credentials, Mechanism},
        client::{AsyncSmtpConnection, TlsParameters},
        commands::{Data, Mail, Rcpt},
        extension::{ClientId, Extension, MailBodyParameter, MailParameter},
        Error as SmtpError, SMTP_PORT, SUBMISSIONS_PORT, SUBMISSION_PORT,
    },
};
use url::Url;

/// How long the closing `QUIT` may take: the e-mail is the server's already.
const QUIT_WAIT: Duration = Duration::from_secs(2);
// An e-mail job ends within its outbox lease (two minutes at least): the conversation, then
// the goodbye, and a few seconds of the database around them.
const _: () = assert!(crate::config::MAX_SMTP_TIMEOUT_SECS + QUIT_WAIT.as_secs() + 10 <= 120);

/// How the connection is encrypted (`SMTP_URL`'s scheme and `tls` parameter, as lettre's
/// `from_url` reads them).
#[derive(Clone)]
enum Encryption {
    None,
    /// `smtp://…?tls=opportunistic`: STARTTLS when the server offers it.
    Opportunistic(TlsParameters),
    /// `smtp://…?tls=required`: STARTTLS or nothing.
    Required(TlsParameters),
    /// `smtps://`: TLS from the first byte.
    Wrapper(TlsParameters),
}

/// The SMTP server of `SMTP_URL`.
#[derive(Clone)]
pub struct Relay {
    host: String,
    port: u16,
    encryption: Encryption,
    hello: ClientId,
    credentials: Option<Credentials>,
}

/// How a send failed: before the message left (nothing can have arrived) or after.
#[derive(Debug)]
pub enum Failure {
    /// The server refused, or the conversation failed, before the message was sent.
    NotSent(SmtpError),
    /// The server lacks what the message needs (SMTPUTF8, 8BITMIME).
    Unsupported(&'static str),
    /// The server did not get as far as taking the message within the time allowed.
    NotSentInTime,
    /// The message was sent and its answer never came, or the connection broke meanwhile:
    /// the server may have taken it.
    Unanswered(Option<SmtpError>),
    /// The server answered the message with a refusal.
    Refused(SmtpError),
}

impl From<SmtpError> for Failure {
    fn from(e: SmtpError) -> Self {
        Failure::NotSent(e)
    }
}

impl Relay {
    /// Reads `SMTP_URL`: `smtp://[user:password@]host[:port][/hello-name][?tls=required|opportunistic]`
    /// or `smtps://…`, the forms lettre's `from_url` takes, with its default ports.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let url = Url::parse(url).map_err(|e| e.to_string())?;
        let host = url.host_str().ok_or("no host")?.to_owned();
        let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v);
        let params = || TlsParameters::new(host.clone()).map_err(|e| e.to_string());
        let (default_port, encryption) = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => (SMTP_PORT, Encryption::None),
            ("smtp", Some("required")) => (SUBMISSION_PORT, Encryption::Required(params()?)),
            ("smtp", Some("opportunistic")) => {
                (SUBMISSION_PORT, Encryption::Opportunistic(params()?))
            }
            ("smtps", _) => (SUBMISSIONS_PORT, Encryption::Wrapper(params()?)),
            (scheme, tls) => return Err(format!("unknown scheme {scheme} or tls={tls:?}")),
        };
        let hello = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|e| e.to_string())
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(decode(url.username())?, decode(password)?)),
            None => None,
        };
        Ok(Self {
            port: url.port().unwrap_or(default_port),
            host,
            encryption,
            hello,
            credentials,
        })
    }

    /// Sends `message` to `envelope`'s recipients within `timeout` in all: up to the server's
    /// go-ahead for the message (connect, greeting, TLS, login, sender, recipients), then the
    /// message and its answer. A failure in the first step sent nothing; in the second, the
    /// server may have the message. The closing `QUIT` is not waited for long
    /// ([`QUIT_WAIT`]), and its outcome changes nothing. One deadline for both steps: the
    /// outbox's lease allows for `SMTP_TIMEOUT_SECS` once (`config::MAX_SMTP_TIMEOUT_SECS`).
    pub async fn send(
        &self,
        envelope: &Envelope,
        message: &[u8],
        timeout: Duration,
    ) -> Result<(), Failure> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut conn = tokio::time::timeout_at(deadline, self.open(envelope, message, timeout))
            .await
            .map_err(|_| Failure::NotSentInTime)??;
        // A server slow to get this far (a tarpit) would leave the message little time, and
        // its answer, timed out, counts as one that may have arrived: with less than half the
        // time left the message is not sent, and the try sent nothing.
        if deadline.saturating_duration_since(tokio::time::Instant::now()) < timeout / 2 {
            let _ = tokio::time::timeout(QUIT_WAIT, conn.quit()).await;
            return Err(Failure::NotSentInTime);
        }
        let answer = tokio::time::timeout_at(deadline, conn.message(message)).await;
        match answer {
            Ok(Ok(_)) => {
                let _ = tokio::time::timeout(QUIT_WAIT, conn.quit()).await;
                Ok(())
            }
            Ok(Err(e)) if e.is_transient() || e.is_permanent() => Err(Failure::Refused(e)),
            Ok(Err(e)) => Err(Failure::Unanswered(Some(e))),
            Err(_) => Err(Failure::Unanswered(None)),
        }
    }

    /// Everything before the message: the connection, up to the server's `354`.
    async fn open(
        &self,
        envelope: &Envelope,
        message: &[u8],
        timeout: Duration,
    ) -> Result<AsyncSmtpConnection, Failure> {
        let wrapper = match &self.encryption {
            Encryption::Wrapper(p) => Some(p.clone()),
            _ => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(timeout),
            &self.hello,
            wrapper,
            None,
        )
        .await?;
        match &self.encryption {
            Encryption::Opportunistic(p) if conn.can_starttls() => {
                conn.starttls(p.clone(), &self.hello).await?;
            }
            Encryption::Required(p) => conn.starttls(p.clone(), &self.hello).await?,
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await?;
        }
        // What the message needs of the server, as lettre's own `send` asks.
        let mut options = Vec::new();
        let mut addresses = envelope.from().into_iter().chain(envelope.to());
        if addresses.any(|a: &Address| !AsRef::<str>::as_ref(a).is_ascii()) {
            options.push(MailParameter::SmtpUtfEight);
        }
        if !message.is_ascii() {
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        for needed in &options {
            let (extension, name) = match needed {
                MailParameter::SmtpUtfEight => (Extension::SmtpUtfEight, "SMTPUTF8"),
                _ => (Extension::EightBitMime, "8BITMIME"),
            };
            if !conn.server_info().supports_feature(extension) {
                return Err(Failure::Unsupported(name));
            }
        }
        conn.command(Mail::new(envelope.from().cloned(), options))
            .await?;
        for to in envelope.to() {
            conn.command(Rcpt::new(to.clone(), vec![])).await?;
        }
        conn.command(Data).await?;
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forms lettre's `from_url` takes, with its default ports: a shop's `SMTP_URL` means
    /// what it meant when lettre read it.
    #[test]
    fn smtp_url_reads_as_lettre_reads_it() {
        let cases = [
            ("smtp://mail.example.tn", 25, "none"),
            ("smtp://mail.example.tn:2525", 2525, "none"),
            ("smtp://mail.example.tn?tls=required", 587, "required"),
            (
                "smtp://mail.example.tn?tls=opportunistic",
                587,
                "opportunistic",
            ),
            ("smtps://mail.example.tn", 465, "wrapper"),
        ];
        for (url, port, tls) in cases {
            let r = Relay::from_url(url).unwrap();
            let kind = match r.encryption {
                Encryption::None => "none",
                Encryption::Opportunistic(_) => "opportunistic",
                Encryption::Required(_) => "required",
                Encryption::Wrapper(_) => "wrapper",
            };
            assert_eq!(
                (r.host.as_str(), r.port, kind),
                ("mail.example.tn", port, tls)
            );
            assert!(r.credentials.is_none());
        }
        let r =
            Relay::from_url("smtps://shop%40x.tn:p%3Ass@mail.example.tn/shop.example.tn").unwrap();
        let expected = Credentials::new("shop@x.tn".into(), "p:ss".into());
        assert_eq!(r.credentials, Some(expected));
        assert_eq!(r.hello, ClientId::Domain("shop.example.tn".into()));
        for bad in [
            "http://mail.example.tn",
            "smtp://mail.example.tn?tls=maybe",
            "smtp:nohost",
        ] {
            assert!(Relay::from_url(bad).is_err(), "{bad}");
        }
    }
}
