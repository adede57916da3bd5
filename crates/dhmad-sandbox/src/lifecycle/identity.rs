//! Pre-account identity verifications (`docs/dhmad-api.md` §3.14): creation (approved at once,
//! as DHMAD's sandbox does), reads scoped to the creating key, linking, and seller readiness.

use dhmad::{
    ClaimStatus, CreateIdentityVerification, Event, IdentityVerificationLinked,
    IdentityVerificationUpdated, KycStatus,
};

use super::redirect::check_redirect;
use super::sessions::metadata;
use crate::error::Refusal;
use crate::state::{users, Ctx, Store, VerificationRecord};

/// At most this many records in `GET /identity-verifications?email=…`.
pub const LIST_LIMIT: usize = 20;

/// What `create` did.
#[derive(Debug)]
pub struct Created {
    pub id: String,
    /// `false`: an open record of this key for the e-mail was answered instead.
    pub new: bool,
}

/// `POST /identity-verifications` by the key `key_id`. Order: fields, redirect URL, then the
/// 409 (the e-mail's user already has approved KYC), then this key's open record for the e-mail
/// (answered again, so a retried call creates nothing), else a new record, approved at once.
pub fn create(
    store: &mut Store,
    ctx: &Ctx,
    key_id: &str,
    req: CreateIdentityVerification,
    allowed: &[String],
) -> Result<Created, Refusal> {
    let email = req.email.trim().to_lowercase();
    if email.is_empty() {
        return Err(Refusal::field("email", "is required"));
    }
    if !users::is_email(&email) {
        return Err(Refusal::field("email", "must be a valid e-mail address"));
    }
    let metadata = metadata(req.metadata.unwrap_or_default())?;
    let redirect_url = req
        .redirect_url
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    if let Some(u) = &redirect_url {
        // The session allow-list and its rules; the refusal is a field error here, since the
        // coded body is documented for checkout sessions only.
        check_redirect(u, allowed).map_err(|r| match r {
            Refusal::Rule { message, .. } => Refusal::field(
                "redirect_url",
                message.replace("redirectUrl", "redirect_url"),
            ),
            other => other,
        })?;
    }
    if has_approved_kyc(store, ctx, &email) {
        return Err(Refusal::KycApproved(
            "A DHMAD user with this email already has approved identity verification".into(),
        ));
    }
    if let Some(open) = own(store, key_id, &email)
        .into_iter()
        .find(|v| v.is_open(ctx.now))
    {
        return Ok(Created {
            id: open.id.clone(),
            new: false,
        });
    }
    let id = store.new_object_id(ctx.now);
    let rec = VerificationRecord {
        id: id.clone(),
        email,
        external_user_id: req
            .external_user_id
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty()),
        redirect_url,
        metadata,
        owner_key_id: key_id.to_owned(),
        kyc_status: KycStatus::Approved,
        claim_status: ClaimStatus::Pending,
        linked_user_id: None,
        linked_at: None,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    store.emit(ctx.now, updated_event(&rec, KycStatus::Pending));
    store.verifications.insert(id.clone(), rec);
    Ok(Created { id, new: true })
}

/// The seeded record of another developer (control API): approved, no webhook to this one.
pub fn create_for_other_developer(
    store: &mut Store,
    ctx: &Ctx,
    email: &str,
    external_user_id: Option<String>,
) -> Result<String, Refusal> {
    let req = CreateIdentityVerification {
        external_user_id,
        ..CreateIdentityVerification::new(email)
    };
    let queued = store.outbox.len();
    let created = create(store, ctx, OTHER_DEVELOPER_KEY, req, &[])?;
    // Its webhook goes to the other developer's URLs, not to this sandbox's.
    store.outbox.truncate(queued);
    Ok(created.id)
}

/// Owner id of the records seeded as "another developer".
pub const OTHER_DEVELOPER_KEY: &str = "other-developer";

/// The person registered on DHMAD and verified the e-mail (control API): `claim_status`
/// linked, `identity.verification.linked` to the owner (only if it is this sandbox's key).
pub fn link(store: &mut Store, ctx: &Ctx, key_id: &str, id: &str) -> Result<(), Refusal> {
    let rec = any_mut(store, id)?;
    if rec.claim_status == ClaimStatus::Linked {
        return Err(Refusal::bad("This verification is already linked"));
    }
    rec.claim_status = ClaimStatus::Linked;
    rec.linked_user_id = Some(users::user_id(&rec.email));
    rec.linked_at = Some(ctx.now);
    rec.updated_at = ctx.now;
    let event = (rec.owner_key_id == key_id).then(|| linked_event(rec));
    super::emit_opt(store, ctx.now, event);
    Ok(())
}

/// `GET /identity-verifications/:id`: 400 `Invalid verification ID`, 404 for unknown ids and
/// for records of another key (DHMAD shows no one else's records).
pub fn get<'a>(
    store: &'a Store,
    key_id: &str,
    id: &str,
) -> Result<&'a VerificationRecord, Refusal> {
    if !super::is_object_id(id) {
        return Err(Refusal::BadId("Invalid verification ID"));
    }
    store
        .verifications
        .get(id)
        .filter(|v| v.owner_key_id == key_id)
        .ok_or(Refusal::Missing("Verification not found"))
}

/// `GET /identity-verifications?email=…`: this key's records, newest first, at most 20.
pub fn list<'a>(
    store: &'a Store,
    key_id: &str,
    email: Option<&str>,
) -> Result<Vec<&'a VerificationRecord>, Refusal> {
    let email = email
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty())
        .ok_or_else(|| Refusal::field("email", "is required"))?;
    let mut records = own(store, key_id, &email);
    records.truncate(LIST_LIMIT);
    Ok(records)
}

/// A seller may be paid once identity-ready: by default (any e-mail not starting with
/// `unverified`), or once any developer's verification for the e-mail is approved, for good
/// (a lapsed record does not undo a KYC decision). Linking is not waited for: every sandbox
/// e-mail is already a registered user.
pub fn is_identity_ready(store: &Store, email: &str) -> bool {
    let email = email.trim().to_lowercase();
    users::is_identity_ready(&email)
        || store
            .verifications
            .values()
            .any(|v| v.email == email && v.kyc_status == KycStatus::Approved)
}

/// The 409 rule: the associated user (a seller with a payout account, so verified unless its
/// e-mail says `unverified`), or a user to whom an approved verification has been linked.
fn has_approved_kyc(store: &Store, ctx: &Ctx, email: &str) -> bool {
    (email == ctx.assoc.to_lowercase() && users::is_identity_ready(email))
        || store
            .verifications
            .values()
            .any(|v| v.email == email && v.is_linked_approval())
}

/// This key's records for `email`, newest first.
fn own<'a>(store: &'a Store, key_id: &str, email: &str) -> Vec<&'a VerificationRecord> {
    let mut v: Vec<_> = store
        .verifications
        .values()
        .filter(|v| v.owner_key_id == key_id && v.email == email)
        .collect();
    v.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    v
}

fn any_mut<'a>(store: &'a mut Store, id: &str) -> Result<&'a mut VerificationRecord, Refusal> {
    if !super::is_object_id(id) {
        return Err(Refusal::BadId("Invalid verification ID"));
    }
    store
        .verifications
        .get_mut(id)
        .ok_or(Refusal::Missing("Verification not found"))
}

/// `identity.verification.updated` (`status_source: "sandbox"`: nobody reviewed it).
fn updated_event(rec: &VerificationRecord, previous: KycStatus) -> Event {
    Event::IdentityVerificationUpdated(IdentityVerificationUpdated {
        id: rec.id.clone(),
        external_user_id: rec.external_user_id.clone(),
        email: rec.email.clone(),
        kyc_status: rec.kyc_status.clone(),
        previous_kyc_status: Some(previous),
        needs_admin_review: false,
        linked_user_id: rec.linked_user_id.clone(),
        status_source: Some("sandbox".into()),
        claim_status: Some(rec.claim_status.clone()),
        updated_at: Some(rec.updated_at),
    })
}

/// `identity.verification.linked`.
fn linked_event(rec: &VerificationRecord) -> Event {
    Event::IdentityVerificationLinked(IdentityVerificationLinked {
        id: rec.id.clone(),
        external_user_id: rec.external_user_id.clone(),
        email: rec.email.clone(),
        kyc_status: rec.kyc_status.clone(),
        linked_user_id: rec.linked_user_id.clone().unwrap_or_default(),
        linked_at: rec.linked_at.unwrap_or(rec.updated_at),
    })
}
