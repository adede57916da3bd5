//! The storefront's cookies, built in one place so each carries the same protections: HttpOnly
//! (no script reads them), `Secure` when the shop is served over https, a narrow path.

use axum_extra::extract::{
    cookie::{Cookie, SameSite},
    CookieJar,
};
use rand::RngCore;

use crate::config::Config;

/// A token's cookie, whose name carries the `__Host-` prefix on an https shop: a browser
/// takes such a cookie only from this host itself (Secure, path `/`, no domain), so a sibling
/// subdomain cannot plant its own checkout token in a buyer's browser (and then read the order
/// that buyer pays for, whose id it knows) or its own CSRF token.
pub struct TokenCookie {
    plain: &'static str,
    https: &'static str,
}

impl TokenCookie {
    /// Its name on this shop.
    pub fn name(&self, config: &Config) -> &'static str {
        if config.is_https() {
            self.https
        } else {
            self.plain
        }
    }
}

/// The browser's checkout token: continuing an open order needs it (see `orders::checkout`).
pub const BUYER: TokenCookie = TokenCookie {
    plain: "sf_buyer",
    https: "__Host-sf_buyer",
};
/// The CSRF token every state-changing form echoes (see `http::csrf`).
pub const CSRF: TokenCookie = TokenCookie {
    plain: "sf_csrf",
    https: "__Host-sf_csrf",
};
/// The back-office session id (see `http::admin_auth`). Its path is `/admin`, so its https
/// name carries `__Secure-`, not `__Host-`: a browser then takes it only from a secure origin,
/// so a plain-http page of a sibling name cannot plant a cookie of that name (sent first, under
/// a longer path, it hid the real session: the merchant kept landing on the login page).
pub const ADMIN: TokenCookie = TokenCookie {
    plain: "sf_admin",
    https: "__Secure-sf_admin",
};

/// 32 random bytes, hex: unguessable, safe in a cookie and a form field.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether `t` is a token [`random_token`] could have made: 64 hex digits.
pub fn well_formed(t: &str) -> bool {
    t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The browser's checkout token, if its cookie holds a well-formed one.
pub fn buyer_token(config: &Config, jar: &CookieJar) -> Option<String> {
    jar.get(BUYER.name(config))
        .map(|c| c.value().to_owned())
        .filter(|t| well_formed(t))
}

/// The checkout token's cookie. Lax: the buyer comes back from DHMAD's page by navigation.
pub fn buyer(config: &Config, token: String) -> Cookie<'static> {
    build(
        config,
        BUYER.name(config),
        token,
        "/",
        SameSite::Lax,
        time::Duration::days(30),
    )
}

pub fn build(
    config: &Config,
    name: &'static str,
    value: String,
    path: &'static str,
    same_site: SameSite,
    max_age: time::Duration,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .secure(config.is_https())
        .same_site(same_site)
        .max_age(max_age)
        .build()
}
