//! Who may use the back office: scripts with `Authorization: Bearer $ADMIN_TOKEN`, browsers
//! with a server-side session opened by the login form. The browser's cookie holds a random
//! session id (the database only its HMAC under the admin token, so a new token ends every
//! session), expires, and is revoked on logout and by the next login; the admin token
//! itself never travels in a cookie. Failed logins (the form's or a wrong Bearer token) are
//! throttled per client address, and every back-office action is written to the audit trail
//! with who, when and from where.

use askama::Template;
use axum::{
    extract::{FromRequestParts, State},
    http::{request::Parts, Method},
    response::{Html, IntoResponse, Redirect, Response},
    Extension,
};
use axum_extra::extract::{cookie::SameSite, CookieJar};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::Sha256;
use uuid::Uuid;

use super::{
    bearer, client_addr::ClientAddr, cookies, csrf::CsrfToken, form::Form, metrics_access, render,
};
use crate::{
    db::{self, admin::AuditEntry},
    error::{AppError, AppResult},
    state::AppState,
};

/// How long a back-office session lasts.
const SESSION_LIFE: time::Duration = time::Duration::hours(8);
/// Failed logins from one address within `THROTTLE_WINDOW` before logins are refused.
const MAX_FAILURES: i64 = 10;
const THROTTLE_WINDOW: time::Duration = time::Duration::minutes(15);

/// Proof that the request comes from the merchant, with who and from where for the audit.
#[derive(Debug, Clone)]
pub struct Admin {
    pub actor: String,
    pub addr: String,
}

impl Admin {
    /// Appends one action to the audit trail.
    pub async fn record(
        &self,
        state: &AppState,
        action: &str,
        order_id: Option<Uuid>,
        detail: &str,
    ) -> AppResult<()> {
        let entry = AuditEntry {
            actor: &self.actor,
            action,
            order_id,
            detail,
            client_addr: &self.addr,
        };
        Ok(db::admin::audit(&state.pool, &entry).await?)
    }
}

/// What the database keeps of a session id: its HMAC under the admin token, never the id. A
/// stolen table opens nothing, and a new `ADMIN_TOKEN` (rotated after a leak) ends every
/// session opened under the old one, whose ids no longer hash to what is stored. `None` when
/// the back office is disabled.
fn session_key(state: &AppState, id: &str) -> Option<String> {
    let token = state.config.admin_token.as_ref()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(token.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    Some(hex::encode(mac.finalize().into_bytes()))
}

/// Whether the back office runs on the demo's well-known token (allowed only where nobody else
/// reaches the shop: `config::exposure`). A page of another site whose name an attacker points
/// at this machine (DNS rebinding) is same-origin with the shop in the browser, and may send
/// that token as a script would; it names the attacker's host, so such a request is refused.
/// (A private token it cannot know; the login form and every other form refuse such a page
/// anyway: `csrf`.)
fn runs_on_the_demo_token(state: &AppState) -> bool {
    state
        .config
        .admin_token
        .as_ref()
        .is_some_and(|t| crate::config::PUBLIC_DEMO_SECRETS.contains(&t.expose_secret()))
}

fn token_matches(state: &AppState, presented: &str) -> Option<bool> {
    let expected = state.config.admin_token.as_ref()?;
    Some(bearer::matches(presented, expected))
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Ok(ClientAddr { addr, key }) = ClientAddr::from_request_parts(parts, state).await;
        if state.config.admin_token.is_none() {
            return Err(AppError::NotFound.into_response()); // back office disabled
        }
        let jar = CookieJar::from_headers(&parts.headers);
        if let Some(token) = bearer::presented(&parts.headers) {
            if runs_on_the_demo_token(state) && !metrics_access::named_as_this_machine(parts, state)
            {
                return Err(AppError::Forbidden(
                    "with the demo's public ADMIN_TOKEN, the back office answers only requests \
                     addressed to this machine (localhost or an address)"
                        .into(),
                )
                .into_response());
            }
            // A token is a login: a throttled address is refused whatever it sends (it learns
            // nothing), and a wrong one counts, as on the form.
            let right = token_matches(state, token) == Some(true);
            attempt(state, &key, right)
                .await
                .map_err(IntoResponse::into_response)?;
            if right {
                return Ok(Admin {
                    actor: "token".into(),
                    addr,
                });
            }
        } else if let Some(id_hash) = jar
            .get(cookies::ADMIN.name(&state.config))
            .and_then(|id| session_key(state, id.value()))
        {
            let valid = db::admin::session_valid(&state.pool, &id_hash)
                .await
                .map_err(|e| AppError::from(e).into_response())?;
            if valid {
                return Ok(Admin {
                    actor: format!("session {}", &id_hash[..12]),
                    addr,
                });
            }
        }
        if parts.method == Method::GET {
            Err(Redirect::to("/admin/login").into_response())
        } else {
            Err(AppError::Unauthorized("admin login required".into()).into_response())
        }
    }
}

/// Judges a login attempt of `key` (`ClientAddr::key`): 429 once it failed `MAX_FAILURES`
/// times within `THROTTLE_WINDOW`, whatever it sends; a wrong token counts.
pub(super) async fn attempt(s: &AppState, key: &str, right: bool) -> AppResult<()> {
    // Waits for a place without a database connection (`Shared::login_gate`).
    let _place = s
        .login_gate
        .acquire()
        .await
        .map_err(|_| AppError::Unavailable("the service is stopping".into()))?;
    if db::admin::login_attempt(&s.pool, key, THROTTLE_WINDOW, MAX_FAILURES, !right).await? {
        Ok(())
    } else {
        Err(AppError::TooManyRequests {
            retry_after: THROTTLE_WINDOW.whole_seconds().unsigned_abs(),
        })
    }
}

#[derive(Template)]
#[template(path = "admin_login.html")]
struct LoginPage {
    csrf: String,
}

/// `GET /admin/login`. Without `ADMIN_TOKEN` there is no back office: 404, as every other
/// page of it answers.
pub async fn login_form(
    State(s): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Html<String>> {
    if s.config.admin_token.is_none() {
        return Err(AppError::NotFound);
    }
    render(&LoginPage { csrf: csrf.0 })
}

#[derive(Deserialize)]
pub struct LoginInput {
    #[serde(default)]
    token: String,
}

pub async fn login(
    State(s): State<AppState>,
    ClientAddr { addr, key }: ClientAddr,
    jar: CookieJar,
    Form(input): Form<LoginInput>,
) -> AppResult<(CookieJar, Redirect)> {
    if s.config.admin_token.is_none() {
        return Err(AppError::NotFound);
    }
    let right = token_matches(&s, &input.token) == Some(true);
    attempt(&s, &key, right).await?;
    if !right {
        return Err(AppError::Unauthorized("wrong admin token".into()));
    }
    // The session this browser had (if any) ends with the new one: a copy of its cookie
    // taken meanwhile opens nothing.
    if let Some(old) = jar
        .get(cookies::ADMIN.name(&s.config))
        .and_then(|c| session_key(&s, c.value()))
    {
        db::admin::revoke_session(&s.pool, &old).await?;
    }
    let id = cookies::random_token();
    let id_hash = session_key(&s, &id).ok_or(AppError::NotFound)?;
    db::admin::create_session(&s.pool, &id_hash, SESSION_LIFE, &addr).await?;
    let admin = Admin {
        actor: format!("session {}", &id_hash[..12]),
        addr,
    };
    admin.record(&s, "login", None, "").await?;
    // Lax, not Strict: the merchant comes back from DHMAD's page (another site) through the
    // callback's redirect, a top-level GET that Strict would send without the session. Every
    // state change is a POST, which Lax never sends cross-site, and carries a CSRF token.
    let cookie = cookies::build(
        &s.config,
        cookies::ADMIN.name(&s.config),
        id,
        "/admin",
        SameSite::Lax,
        SESSION_LIFE,
    );
    // A new CSRF token with the new session: the one before may have been seen (the CSV
    // export's link carries it into the history and the logs), and now guards nothing.
    let csrf = super::csrf::cookie(&s.config, cookies::random_token());
    Ok((jar.add(cookie).add(csrf), Redirect::to("/admin")))
}

/// Revokes the session server-side (a copied cookie stops working too) and clears it.
pub async fn logout(
    State(s): State<AppState>,
    ClientAddr { addr, .. }: ClientAddr,
    jar: CookieJar,
) -> AppResult<(CookieJar, Redirect)> {
    if s.config.admin_token.is_none() {
        return Err(AppError::NotFound);
    }
    if let Some(id_hash) = jar
        .get(cookies::ADMIN.name(&s.config))
        .and_then(|id| session_key(&s, id.value()))
    {
        if db::admin::session_valid(&s.pool, &id_hash).await? {
            db::admin::revoke_session(&s.pool, &id_hash).await?;
            let admin = Admin {
                actor: format!("session {}", &id_hash[..12]),
                addr,
            };
            admin.record(&s, "logout", None, "").await?;
        }
    }
    let gone = cookies::build(
        &s.config,
        cookies::ADMIN.name(&s.config),
        String::new(),
        "/admin",
        SameSite::Lax,
        time::Duration::ZERO,
    );
    Ok((jar.remove(gone), Redirect::to("/admin/login")))
}
