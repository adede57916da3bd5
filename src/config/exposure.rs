//! The settings refused where they would expose a buyer or the shop: a live key's traffic in
//! clear text, the demo's values left in a live shop, and the demo's public secrets on a shop
//! others can reach. Each refusal names the variable to change.

use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{is_local, PUBLIC_DEMO_SECRETS};

/// What the checks read, parsed (a setting that did not parse is `None`: already refused).
pub(super) struct Exposure<'a> {
    pub api_key: &'a str,
    pub dhmad_api_base: Option<&'a Url>,
    pub public_base_url: Option<&'a Url>,
    pub listen_addr: Option<SocketAddr>,
    pub local_only: bool,
    pub smtp_url: Option<&'a str>,
    pub secrets: &'a [SecretString],
    pub admin_token: Option<&'a str>,
    pub seller_email: Option<&'a str>,
    pub checkout_origin: Option<&'a str>,
    /// `MAIL_FROM`'s address.
    pub mail_from: Option<&'a str>,
}

type Refusal = (&'static str, String);

impl Exposure<'_> {
    /// Every refusal, with the variable it names; none for a safe configuration.
    pub(super) fn refusals(&self) -> Vec<Refusal> {
        let mut out = Vec::new();
        if self.api_key.starts_with("sk_live_") {
            self.live(&mut out);
        }
        self.demo_secrets(&mut out);
        out
    }

    /// A live key moves real money: its secrets, the buyers' links and codes never travel in
    /// clear text, and no demo value stays.
    fn live(&self, out: &mut Vec<Refusal>) {
        // A sandbox key may travel in clear text, to the local emulator or a compose service.
        if self.dhmad_api_base.is_some_and(|u| u.scheme() == "http") {
            out.push((
                "DHMAD_API_BASE",
                "a live key (sk_live_) is only sent over https: use DHMAD's https address".into(),
            ));
        }
        // Without it every buyer e-mail is only logged: fine for the demo, not for a buyer who
        // paid (an API checkout's only copy of the order's link, a code).
        if self.smtp_url.is_none() {
            out.push((
                "SMTP_URL",
                "a live key without SMTP_URL would drop every buyer e-mail (the order's link, an \
                 instant good's code): set SMTP_URL"
                    .into(),
            ));
        }
        // Those e-mails carry the order's link (its only key) and codes, and the relay's
        // password: lettre's `smtp://` without `?tls=` is plain text, not even STARTTLS.
        let plain = self
            .smtp_url
            .and_then(|u| Url::parse(u).ok())
            .is_some_and(|u| u.scheme() == "smtp" && !is_local(&u) && !tls_required(&u));
        if plain {
            out.push((
                "SMTP_URL",
                "a live key's e-mails (order links, codes) are not sent in clear text: use \
                 smtps://… or smtp://…?tls=required (a relay on this machine may stay plain \
                 smtp://)"
                    .into(),
            ));
        }
        // The order's link is its only key, and DHMAD takes plain-http redirect URLs for
        // localhost only.
        if self
            .public_base_url
            .is_some_and(|u| u.scheme() == "http" && !is_local(u))
        {
            out.push((
                "PUBLIC_BASE_URL",
                "a live shop is served over https (order links are their only key, and DHMAD \
                 redirects buyers to plain http on localhost only): use your https address"
                    .into(),
            ));
        }
        // The demo's seller (`merchant@shop.example`): no DHMAD user has a reserved domain,
        // and every signing, proof and cancellation page would be opened for nobody.
        if self.seller_email.is_some_and(reserved_domain) {
            out.push((
                "DHMAD_SELLER_EMAIL",
                "a live shop's seller is your DHMAD user's e-mail, not a reserved example \
                 domain: set it, or leave it unset"
                    .into(),
            ));
        }
        // The demo's sender (`shop@localhost`, the default): relays refuse a sender at a
        // reserved domain, and every buyer e-mail (an order's link, a code) would be given up.
        if self.mail_from.is_some_and(reserved_domain) {
            out.push((
                "MAIL_FROM",
                "a live shop's e-mails come from your domain (relays refuse a sender at a \
                 reserved domain such as localhost): set MAIL_FROM=\"Your shop <orders@your.domain>\""
                    .into(),
            ));
        }
        // The demo's sandbox page (`http://localhost:6002`) would stay allowed in the CSP.
        let plain_origin = self
            .checkout_origin
            .is_some_and(|o| Url::parse(o).is_ok_and(|u| u.scheme() == "http"));
        if plain_origin {
            out.push((
                "DHMAD_CHECKOUT_ORIGIN",
                "a live shop sends buyers to DHMAD's https page only: use its https origin, or \
                 leave it unset (the origin of DHMAD_API_BASE)"
                    .into(),
            ));
        }
    }

    /// The demo's secrets are public: fine on this machine, not once strangers can reach the
    /// shop (a staging shop on DHMAD's sandbox included) or money is real. A shop that listens
    /// beyond loopback is reachable too (`docker run -p 3000:3000` publishes the image's
    /// 0.0.0.0 on every interface), unless LOCAL_ONLY says only this machine can reach the port
    /// (compose publishes it on 127.0.0.1).
    fn demo_secrets(&self, out: &mut Vec<Refusal>) {
        let live = self.api_key.starts_with("sk_live_");
        let open_listener =
            self.listen_addr.is_some_and(|a| !a.ip().is_loopback()) && !self.local_only;
        let reachable = self.public_base_url.is_some_and(|u| !is_local(u)) || open_listener;
        if !(live || reachable) {
            return;
        }
        let public = self
            .secrets
            .iter()
            .map(|s| s.expose_secret())
            .chain(self.admin_token)
            .any(|s| PUBLIC_DEMO_SECRETS.contains(&s));
        if !public {
            return;
        }
        let (name, why) = if live {
            (
                "DHMAD_API_KEY",
                "a live key with the public demo webhook secret or admin token: set your own \
                 DHMAD_WEBHOOK_SECRETS and ADMIN_TOKEN",
            )
        } else if open_listener {
            (
                "LISTEN_ADDR",
                "other machines can reach this address, and the public demo webhook secret or \
                 admin token would let anyone forge payments or enter the back office: set your \
                 own DHMAD_WEBHOOK_SECRETS and ADMIN_TOKEN, listen on 127.0.0.1, or set \
                 LOCAL_ONLY=true if only this machine can reach the port (a container published \
                 on 127.0.0.1)",
            )
        } else {
            (
                "PUBLIC_BASE_URL",
                "PUBLIC_BASE_URL is not this machine, and the public demo webhook secret or admin \
                 token would let anyone forge payments or enter the back office: set your own \
                 DHMAD_WEBHOOK_SECRETS and ADMIN_TOKEN",
            )
        };
        out.push((name, why.into()));
    }
}

/// `?tls=required`: lettre's STARTTLS that fails rather than go on in clear text.
fn tls_required(u: &Url) -> bool {
    u.query_pairs().any(|(k, v)| k == "tls" && v == "required")
}

/// An address under a domain reserved for examples and tests (RFC 2606, RFC 6761), which no
/// DHMAD user can have.
fn reserved_domain(email: &str) -> bool {
    let domain = email
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let tld = domain.rsplit('.').next().unwrap_or_default();
    matches!(tld, "example" | "test" | "invalid" | "localhost")
        || matches!(
            domain.as_str(),
            "example.com" | "example.net" | "example.org"
        )
        || ["example.com", "example.net", "example.org"]
            .iter()
            .any(|d| domain.ends_with(&format!(".{d}")))
}
