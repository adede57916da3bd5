//! What a browser needs to be safe around the sandbox: security headers on its HTML pages and
//! on uploaded files, and the cross-site guards of the control API and of the hosted page's
//! form. Any page on the developer's machine (another localhost port is "same site") could
//! otherwise drive the sandbox.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// Pages with no form: inline styles only, nothing else loads, no framing.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
     form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard: may post to the control API, from its own origin only.
pub const DASHBOARD_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
     form-action 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Where the dashboard's buttons post: HTML forms, the only non-JSON writes the control API takes.
pub const DASHBOARD_FORMS: &str = "/sandbox/dashboard/";

/// Served uploads: never rendered as a document of the sandbox's origin.
const FILE_CSP: &str = "sandbox; default-src 'none'";

/// The hosted page's policy: its form posts back to the page, and browsers also check the
/// 303 that follows against `form-action`, so the shop's callback origin is allowed too.
pub fn checkout_csp(redirect_url: &str) -> String {
    let shop = url::Url::parse(redirect_url)
        .ok()
        .map(|u| u.origin())
        .filter(|o| o.is_tuple())
        .map(|o| format!(" {}", o.ascii_serialization()))
        .unwrap_or_default();
    PAGE_CSP.replace("form-action 'none'", &format!("form-action 'self'{shop}"))
}

/// Adds the headers every sandbox HTML page carries.
pub fn page_headers(mut resp: Response, csp: &str) -> Response {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    common(h);
    // The checkout URL is a capability: never leak it in `Referer`.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// The dashboard's headers: [`form_page_headers`] with [`DASHBOARD_CSP`]. The dashboard's own
/// URL is no capability and it links only to the sandbox.
pub fn dashboard_headers(resp: Response) -> Response {
    form_page_headers(resp, DASHBOARD_CSP)
}

/// A page whose forms post to the sandbox: [`page_headers`], except `Referrer-Policy:
/// same-origin`. Under `no-referrer` browsers send `Origin: null` with a form POST, even to the
/// page's own origin, and the forms must show their origin to the guards (`Sec-Fetch-Site`,
/// which could vouch for `null`, is sent to localhost and HTTPS only). Its URL still never
/// leaves the sandbox: other origins get no `Referer`.
pub fn form_page_headers(resp: Response, csp: &str) -> Response {
    let mut resp = page_headers(resp, csp);
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

fn common(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A hosted page shows the parties' e-mails, the contract and the notes, a file may be a
    // guest's bank receipt: nothing a shared computer's browser or a proxy keeps.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// An uploaded file: downloaded, never rendered inline, under a safe name.
pub fn attachment(name: &str, mime: &str, bytes: Vec<u8>) -> Response {
    let mime = if is_plain_mime(mime) {
        mime
    } else {
        "application/octet-stream"
    };
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    let disposition = format!("attachment; filename=\"{}\"", safe_filename(name));
    for (k, v) in [
        (header::CONTENT_TYPE, mime.to_owned()),
        (header::CONTENT_DISPOSITION, disposition),
        (header::CONTENT_SECURITY_POLICY, FILE_CSP.to_owned()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    common(h);
    resp
}

/// ASCII letters, digits, `.`, `-` and `_` only; no leading dot; at most 100 characters.
pub fn safe_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        "file".to_owned()
    } else {
        cleaned.to_owned()
    }
}

/// `type/subtype` made of token characters, without parameters.
fn is_plain_mime(m: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    m.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
}

/// Middleware of the control API: state-changing requests must come from a script or from
/// the sandbox's own pages, and carry JSON. 403 when `Origin` is another origin or
/// `Sec-Fetch-Site` is not `same-origin`/`none`; 415 for a body that is not JSON (a plain HTML
/// form can send urlencoded, multipart or text without any preflight).
///
/// The exception is the dashboard's own forms ([`DASHBOARD_FORMS`]): urlencoded only, and only
/// when the browser proves the sandbox's origin (`Origin` present and own, or `Sec-Fetch-Site:
/// same-origin`); a request with neither header is refused (403) there.
///
/// A refusal is `{"error"}` JSON, or a page saying why for a browser: a dashboard form, or a
/// request that accepts `text/html`.
pub async fn control_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let h = req.headers();
    let text = |name: header::HeaderName| h.get(name).map(|v| v.to_str().unwrap_or("?"));
    let fetch_site = text(header::HeaderName::from_static("sec-fetch-site"));
    let origin = text(header::ORIGIN);
    let dashboard_form = req.uri().path().starts_with(DASHBOARD_FORMS);
    // A person pressed a button: answer with a page they can read, not JSON.
    let refused = Refused {
        html: dashboard_form || text(header::ACCEPT).is_some_and(|a| a.contains("text/html")),
    };
    let fetch_site_ok = fetch_site.is_none_or(|v| v == "same-origin" || v == "none");
    let origin_ok = origin.is_none_or(|o| is_own_origin(&state, o, None));
    if !fetch_site_ok || !origin_ok {
        let own = state.settings.own_origins.join(", ");
        let help = format!(
            "It was sent from {}, not from a page of the sandbox ({own}): the sandbox takes \
             forms only from its own pages, so that no other site can press its buttons. Open \
             the dashboard at one of those addresses, or set SANDBOX_PUBLIC_URL to the one you \
             use.",
            origin.unwrap_or("another site")
        );
        return refused.answer(
            StatusCode::FORBIDDEN,
            "Cross-site requests to the sandbox control API are refused",
            &help,
        );
    }
    let essence = text(header::CONTENT_TYPE)
        .map(|ct| ct.split(';').next().unwrap_or_default().trim().to_owned());
    if dashboard_form {
        // Both checks above passed, so a present Origin is the sandbox's own.
        if origin.is_none() && fetch_site != Some("same-origin") {
            return refused.answer(
                StatusCode::FORBIDDEN,
                "Dashboard forms are accepted from the sandbox's own dashboard only",
                "The browser did not say which page sent the form (no Origin, no \
                 Sec-Fetch-Site), so the sandbox cannot tell it came from its dashboard. Press \
                 the button on the dashboard in an up-to-date browser.",
            );
        }
        let urlencoded = essence
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if !urlencoded {
            return refused.answer(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Dashboard forms are application/x-www-form-urlencoded",
                "Press the button on the dashboard itself; scripts use the JSON routes.",
            );
        }
        return next.run(req).await;
    }
    let json = essence
        .as_deref()
        .map(|e| e.eq_ignore_ascii_case("application/json"));
    let empty = text(header::CONTENT_LENGTH).is_none_or(|l| l.trim() == "0")
        && !h.contains_key(header::TRANSFER_ENCODING);
    match json {
        Some(true) => next.run(req).await,
        None if empty => next.run(req).await,
        _ => refused.answer(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The control API takes JSON: send Content-Type: application/json",
            "The sandbox's control API is for scripts; its dashboard has the buttons.",
        ),
    }
}

/// Is `origin` (an `Origin` header) the sandbox's own: one of `own_origins`, or, given the
/// request's `Host`, that host's origin. [`host_guard`] has vetted `Host`, and a page served
/// under it is a sandbox page, whichever of its names (`localhost`, `127.0.0.1`) the browser
/// used. `null` (an opaque origin) is never own.
fn is_own_origin(state: &AppState, origin: &str, host: Option<&str>) -> bool {
    let Ok(u) = url::Url::parse(origin) else {
        return false;
    };
    let o = u.origin().ascii_serialization();
    if state.settings.own_origins.contains(&o) {
        return true;
    }
    let Some(host) = host.filter(|_| matches!(u.scheme(), "http" | "https")) else {
        return false;
    };
    // Read under the origin's scheme: `Host` omits the port when it is that scheme's default.
    url::Url::parse(&format!("{}://{host}/", u.scheme()))
        .is_ok_and(|h| h.origin().is_tuple() && h.origin().ascii_serialization() == o)
}

/// The hosted page's `POST /checkout/{id}` pays, disputes, cancels: a page of another site (any
/// other localhost port is "same site") must not be able to submit it. `None` lets the form
/// through; else the 403 page. Refused: an `Origin` that is not the sandbox's own (see
/// [`is_own_origin`]), a `Sec-Fetch-Site` other than `same-origin`/`none`, and `Origin: null`
/// unless `Sec-Fetch-Site: same-origin` vouches for it (a foreign page gets `null` by choosing
/// `no-referrer`). Scripts send neither header and pass: the session id is their capability.
pub fn checkout_post_guard(state: &AppState, req: &Request) -> Option<Response> {
    let h = req.headers();
    let text = |name: header::HeaderName| h.get(name).map(|v| v.to_str().unwrap_or("?"));
    let fetch_site = text(header::HeaderName::from_static("sec-fetch-site"));
    let origin = text(header::ORIGIN);
    let host = request_host(req);
    let fetch_site_ok = fetch_site.is_none_or(|v| v == "same-origin" || v == "none");
    let origin_ok = match origin {
        None => true,
        Some("null") => fetch_site == Some("same-origin"),
        Some(o) => is_own_origin(state, o, host.as_deref()),
    };
    if fetch_site_ok && origin_ok {
        return None;
    }
    let help = format!(
        "It was sent from {}, not from this page of the sandbox: its checkout page takes forms \
         only from itself, so that no other site can pay or cancel for you. Open the checkout \
         link from the shop and press the button on that page.",
        origin.unwrap_or("another site")
    );
    Some(Refused { html: true }.answer(
        StatusCode::FORBIDDEN,
        "Cross-site posts to the hosted checkout page are refused",
        &help,
    ))
}

/// Middleware of every route: a request must address the sandbox by a name it answers to.
/// Otherwise a page of another site, its name re-pointed at this machine (DNS rebinding), would
/// be same-origin with the sandbox: it could read the dashboard, and call the API with the
/// public default key. Its requests carry that site's name in `Host`. IP addresses and
/// `localhost` cannot be re-pointed, so they always pass, as does a request without `Host`
/// (browsers always send one). Hand-written: the rule is ours, and small.
pub async fn host_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(host) = request_host(&req) else {
        return next.run(req).await;
    };
    // Parsed as a URL's authority: drops the port, lowercases, reads `[::1]` and IDNA names.
    let name =
        match url::Url::parse(&format!("http://{host}/")).map(|u| u.host().map(|h| h.to_owned())) {
            Ok(Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) => return next.run(req).await,
            Ok(Some(url::Host::Domain(d))) => d,
            _ => String::new(),
        };
    let name = name.trim_end_matches('.');
    let known = name == "localhost"
        || name.ends_with(".localhost")
        || state.settings.allowed_hosts.iter().any(|h| h == name);
    if known {
        return next.run(req).await;
    }
    let refused = Refused {
        html: req
            .headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html")),
    };
    let message = format!(
        "The sandbox does not answer to the host name {:?}: add it to SANDBOX_ALLOWED_HOSTS \
         to use it",
        if name.is_empty() { &host } else { name }
    );
    let help = format!(
        "It answers to IP addresses, localhost and the host of SANDBOX_PUBLIC_URL ({}), so that \
         a page of another site cannot reach it by pointing its own name at this machine",
        state.settings.base_url
    );
    refused.answer(StatusCode::FORBIDDEN, &message, &help)
}

/// The authority the request addressed: the URI's (HTTP/2, absolute form), else `Host`.
fn request_host(req: &Request) -> Option<String> {
    req.uri().authority().map(ToString::to_string).or_else(|| {
        req.headers()
            .get(header::HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    })
}

/// How the guards say no: `{"error": message}` for programs, a small page with the
/// message and what to do (`help`) for a browser.
struct Refused {
    html: bool,
}

impl Refused {
    fn answer(&self, status: StatusCode, message: &str, help: &str) -> Response {
        if self.html {
            let text = format!("{message}. {help}");
            return crate::pages::message(status, "The sandbox refused this form", &text);
        }
        (status, Json(json!({ "error": message }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_and_policies() {
        assert_eq!(safe_filename("../a b\"<x>.html"), "a_b__x_.html");
        assert_eq!(safe_filename("..."), "file");
        assert!(!is_plain_mime("text/html\r\nX: y") && is_plain_mime("image/svg+xml"));
        assert!(checkout_csp("http://localhost:3000/cb?x=1")
            .contains("form-action 'self' http://localhost:3000;"));
        assert!(checkout_csp("not a url").contains("form-action 'self';"));
    }
}
