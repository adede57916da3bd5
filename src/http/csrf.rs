//! CSRF protection for every state-changing request from a browser: the fetch metadata and
//! `Origin` must say the request comes from the shop itself, and a form must echo the token of
//! its `sf_csrf` cookie (`__Host-sf_csrf` on https; double submit: another site can make the
//! browser send the cookie, but cannot read it to put it in the form). Hand-written because it carries our rule of which
//! routes a browser can reach and which callers are exempt:
//! - `POST /webhooks/dhmad`: machine to machine, authenticated by its signature;
//! - `/api/*`: JSON only (a browser cannot send it cross-site without a CORS preflight, which
//!   the shop never grants), still subject to the fetch-metadata check;
//! - back-office calls without the back-office session cookie (scripts with
//!   `Authorization: Bearer`, which browsers never add, or nobody): no ambient credential to
//!   abuse, and the route's authentication answers them.

use axum::{
    body::{to_bytes, Body},
    extract::Request,
    http::{header, HeaderMap, HeaderValue, Method},
    response::{IntoResponse, Response},
};
use axum_extra::extract::{cookie::SameSite, CookieJar};
use subtle::ConstantTimeEq;

use super::{
    around::{Before, Hook},
    cookies, BODY_LIMIT,
};
use crate::{config::Config, error::AppError, state::AppState};

/// The form field (or `X-CSRF-Token` header) carrying the token.
pub const FIELD: &str = "csrf_token";

/// This request's token, for the page to put in its forms.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Reads that change something, reached by a plain link: the CSV export writes the audit
/// trail, with the filter it was given, and hands over every buyer's address. Another site
/// could send the merchant's browser there (the back-office cookie is `Lax`, so it goes along
/// on a navigation), to put a line of its choosing on the trail under the merchant's name.
/// The origin check alone cannot refuse it: a link opened from a mail or chat program says
/// `Sec-Fetch-Site: none`, and older browsers send no fetch metadata and, on a navigation, no
/// `Origin`. So the link carries the token too, in its query.
const READS_WITH_EFFECTS: [&str; 1] = ["/admin/orders.csv"];

/// `Sec-Fetch-Site` (when the browser sends it) must be same-origin or a user's own
/// navigation; `Origin` (when sent) must be the shop's public origin or, for a shop reached by
/// an address or as `localhost` (the demo at `http://127.0.0.1:3000`), the origin the request
/// was addressed to.
fn same_origin(headers: &HeaderMap, config: &Config) -> bool {
    let text = |h| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    let Some(origin) = text(header::ORIGIN.as_str()) else {
        return true;
    };
    let scheme = config.public_base_url.scheme();
    let addressed = text(header::HOST.as_str())
        .filter(|h| no_other_sites_name(h))
        .map(|h| format!("{scheme}://{h}"));
    origin == config.public_origin() || Some(origin) == addressed.as_deref()
}

/// Whether a `Host` cannot be another site's name: an address, or `localhost` and its
/// subdomains, which browsers resolve to this machine themselves. Any other name may be a
/// site whose DNS an attacker points at the shop (DNS rebinding): its page is then same-origin
/// with the shop in the browser's eyes, reads the form's token and posts it back with its own
/// `Origin`, so the demo's well-known back-office token would log it in.
fn no_other_sites_name(host: &str) -> bool {
    let Ok(authority) = host.parse::<axum::http::uri::Authority>() else {
        return false;
    };
    let name = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name.parse::<std::net::IpAddr>().is_ok() || name == "localhost" || name.ends_with(".localhost")
}

fn renders_no_form(path: &str) -> bool {
    path.starts_with("/static/")
        || matches!(
            path,
            "/favicon.ico" | "/openapi.json" | "/healthz" | "/readyz" | "/metrics"
        )
}

fn form_token(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned())
}

fn refuse(why: &str) -> Response {
    tracing::info!(reason = why, "cross-site request refused");
    AppError::Forbidden(format!(
        "This form has expired or did not come from this shop ({why}). Go back, reload the page \
         and try again."
    ))
    .into_response()
}

/// The rule above, for every request.
#[derive(Clone)]
pub(super) struct Csrf(pub(super) AppState);

impl Hook for Csrf {
    /// A token new to this browser, which the answer sets as its cookie.
    type Memo = Option<String>;

    fn before(&self, req: Request) -> Before<Option<String>> {
        let config = &self.0.config;
        let path = req.uri().path();
        let machine = path.starts_with("/webhooks/");
        let api = path.starts_with("/api/");
        // No token for what renders no form: files, and the favicon above all, which shared
        // caches keep for a week and would hand one visitor's cookie to every other; and the
        // machines' routes, which say nothing about caching.
        let formless = machine || api || renders_no_form(path);
        let reads_with_effects = READS_WITH_EFFECTS.contains(&path);
        let checked = unsafe_method(req.method()) && !machine;
        if formless && !checked && !reads_with_effects {
            // Nothing to check, nothing to issue: the cookies are not even read.
            return Before::Go(req, None);
        }
        // The back office's ambient credential is its session cookie: without one (a script
        // with a bearer token, or nobody) there is nothing to forge, and the route's own
        // authentication answers. The login form is always checked (login CSRF).
        let jar = CookieJar::from_headers(req.headers());
        let no_ambient = path.starts_with("/admin")
            && jar.get(cookies::ADMIN.name(config)).is_none()
            && path != "/admin/login";
        let cookie = jar
            .get(cookies::CSRF.name(config))
            .map(|c| c.value().to_owned());
        if reads_with_effects && !same_origin(req.headers(), config) {
            return Before::Answer(refuse("cross-site"));
        }
        if reads_with_effects && !no_ambient && !matches(cookie.as_deref(), query_token(&req)) {
            return Before::Answer(refuse("missing or wrong token"));
        }
        if checked {
            if !same_origin(req.headers(), config) {
                return Before::Answer(refuse("cross-site"));
            }
            if !(api || no_ambient) {
                return Before::Await(Box::pin(async move {
                    let mut req = echoed(req, cookie.as_deref()).await?;
                    let fresh = issue(&mut req, cookie, formless);
                    Ok((req, fresh))
                }));
            }
        }
        let mut req = req;
        let fresh = issue(&mut req, cookie, formless);
        Before::Go(req, fresh)
    }

    fn after(&self, fresh: Option<String>, mut resp: Response) -> Response {
        let Some(token) = fresh else {
            return resp;
        };
        // A shared cache must not hand this visitor's token to others: an answer outside the
        // private routes (a 404, a 405) says nothing about caching, and a 404 may be kept.
        resp.headers_mut()
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        (CookieJar::new().add(cookie(&self.0.config, token)), resp).into_response()
    }
}

/// The browser's CSRF cookie holding `token`. Lax: the token must survive the buyer's return
/// from DHMAD's page.
pub fn cookie(config: &Config, token: String) -> axum_extra::extract::cookie::Cookie<'static> {
    cookies::build(
        config,
        cookies::CSRF.name(config),
        token,
        "/",
        SameSite::Lax,
        time::Duration::days(30),
    )
}

/// The request, if it echoes its cookie's token in its form or `X-CSRF-Token` header; else the
/// refusal.
async fn echoed(req: Request, cookie: Option<&str>) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, BODY_LIMIT).await else {
        return Err(AppError::PayloadTooLarge.into_response());
    };
    let sent = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| form_token(&bytes));
    if !matches(cookie, sent.as_deref()) {
        return Err(refuse("missing or wrong token"));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Whether `sent` echoes the cookie. Only a token of the shape this shop issues: an empty or
/// short cookie planted beside a matching field proves nothing. (Nothing signs it: a sibling
/// subdomain could plant a well-formed one; the origin check is what stops its form.)
fn matches(cookie: Option<&str>, sent: Option<&str>) -> bool {
    match (cookie, sent) {
        (Some(c), Some(s)) if cookies::well_formed(c) => {
            bool::from(c.as_bytes().ct_eq(s.as_bytes()))
        }
        _ => false,
    }
}

/// The token a link carries in its query ([`READS_WITH_EFFECTS`]).
fn query_token(req: &Request) -> Option<&str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix(FIELD)?.strip_prefix('='))
}

/// Puts this request's token where its page finds it ([`CsrfToken`]), making one if the
/// browser has none; returns a token so made, to be set as the browser's cookie.
fn issue(req: &mut Request, cookie: Option<String>, formless: bool) -> Option<String> {
    if formless {
        return None;
    }
    let (token, fresh) = match cookie {
        Some(c) if cookies::well_formed(&c) => (c, false),
        _ => (cookies::random_token(), true),
    };
    req.extensions_mut().insert(CsrfToken(token.clone()));
    fresh.then_some(token)
}
