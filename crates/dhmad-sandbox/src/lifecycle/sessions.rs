//! Checkout sessions: creation (`POST /escrows/:id/sessions`, `docs/dhmad-api.md` §3.12), the
//! only writer of a session's status, and backing out of or expiring one.

use std::collections::BTreeMap;

use dhmad::{CreateSession, SessionStatus};
use time::OffsetDateTime;

use super::action_rules::check_action;
use super::escrow;
use super::redirect::check_redirect;
use crate::error::Refusal;
use crate::state::{users, Ctx, SessionRecord, Store, SESSION_LIFETIME};

/// Validates and stores a new session; returns it. Order of checks: the request's fields, the
/// redirect URL, then the action rules.
#[tracing::instrument(skip_all, fields(escrow.id = %escrow_id, session.id = tracing::field::Empty))]
pub fn create_session(
    store: &mut Store,
    ctx: &Ctx,
    escrow_id: &str,
    req: CreateSession,
    allowed: &[String],
) -> Result<SessionRecord, Refusal> {
    let rec = escrow(store, escrow_id)?;
    let target = target_email(&req.target_user_email)?;
    if req.redirect_url.trim().is_empty() {
        return Err(Refusal::field("redirectUrl", "is required"));
    }
    let metadata = metadata(req.metadata.unwrap_or_default())?;
    if !req.action.is_known() {
        return Err(Refusal::field("action", "unknown action"));
    }
    check_redirect(&req.redirect_url, allowed)?;
    check_action(store, rec, &req.action, &target)?;
    let session = SessionRecord {
        id: uuid::Uuid::new_v4().to_string(),
        escrow_id: rec.id.clone(),
        action: req.action,
        target_email: target,
        redirect_url: req.redirect_url.trim().to_owned(),
        metadata,
        status: SessionStatus::Pending,
        expires_at: ctx.now + SESSION_LIFETIME,
        completed_at: None,
        created_at: ctx.now,
    };
    tracing::Span::current().record("session.id", session.id.as_str());
    store.sessions.insert(session.id.clone(), session.clone());
    Ok(session)
}

fn target_email(raw: &str) -> Result<String, Refusal> {
    let target = raw.trim().to_lowercase();
    if !users::is_email(&target) {
        return Err(Refusal::field(
            "targetUserEmail",
            "must be a valid e-mail address",
        ));
    }
    Ok(target)
}

/// Values of at most 500 characters (sessions and identity verifications).
pub(crate) fn metadata(m: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Refusal> {
    if let Some((k, _)) = m.iter().find(|(_, v)| v.chars().count() > 500) {
        return Err(Refusal::field(
            &format!("metadata.{k}"),
            "values must be at most 500 characters",
        ));
    }
    Ok(m)
}

/// Sets a session's status: the only writer of [`SessionRecord::status`]. `completedAt` is
/// set on completion and cleared otherwise (a reopened session is pending again).
pub fn set_status(s: &mut SessionRecord, to: SessionStatus, now: OffsetDateTime) {
    s.completed_at = (to == SessionStatus::Completed).then_some(now);
    s.status = to;
}

/// Marks a pending session `expired` once its time has run out; returns whether it did.
/// Expiry sends no webhook.
pub fn expire_if_due(s: &mut SessionRecord, now: OffsetDateTime) -> bool {
    let due = s.is_due_to_expire(now);
    if due {
        set_status(s, SessionStatus::Expired, now);
    }
    due
}

/// The open session, marking it expired first if its time has run out.
pub fn open_session<'a>(
    store: &'a mut Store,
    ctx: &Ctx,
    id: &str,
) -> Result<&'a mut SessionRecord, Refusal> {
    let s = store
        .sessions
        .get_mut(id)
        .ok_or(Refusal::NotFound("Checkout session not found"))?;
    expire_if_due(s, ctx.now);
    if s.status != SessionStatus::Pending {
        return Err(Refusal::bad(format!(
            "This checkout session is {}",
            s.status
        )));
    }
    Ok(s)
}

/// Sets the session's final status and returns the redirect URL.
pub fn finish(
    store: &mut Store,
    ctx: &Ctx,
    session_id: &str,
    status: SessionStatus,
) -> Result<String, Refusal> {
    let s = store
        .sessions
        .get_mut(session_id)
        .ok_or(Refusal::NotFound("Checkout session not found"))?;
    set_status(s, status, ctx.now);
    Ok(s.redirect_with(&s.status))
}

/// The user backed out (`status=cancelled`).
#[tracing::instrument(skip_all, fields(session.id = %session_id))]
pub fn cancel_session(store: &mut Store, ctx: &Ctx, session_id: &str) -> Result<String, Refusal> {
    open_session(store, ctx, session_id)?;
    finish(store, ctx, session_id, SessionStatus::Cancelled)
}

/// Forces expiry now (`status=expired`).
#[tracing::instrument(skip_all, fields(session.id = %session_id))]
pub fn expire_session(store: &mut Store, ctx: &Ctx, session_id: &str) -> Result<String, Refusal> {
    open_session(store, ctx, session_id)?;
    finish(store, ctx, session_id, SessionStatus::Expired)
}
