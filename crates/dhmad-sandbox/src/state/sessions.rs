//! Checkout sessions.

use std::collections::BTreeMap;

use dhmad::{CheckoutAction, CheckoutSession, SessionStatus};
use time::OffsetDateTime;
use url::Url;

/// Sessions live 30 minutes.
pub const SESSION_LIFETIME: time::Duration = time::Duration::minutes(30);

/// One checkout session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: String,
    pub escrow_id: String,
    pub action: CheckoutAction,
    pub target_email: String,
    pub redirect_url: String,
    pub metadata: BTreeMap<String, String>,
    pub status: SessionStatus,
    pub expires_at: OffsetDateTime,
    pub completed_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

impl SessionRecord {
    /// The one expiry rule: a session can be used until (not including) `expiresAt`.
    pub fn is_past_expiry(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at
    }

    /// Still pending but past `expiresAt`: due to be marked `expired` (by the ticker or on the
    /// next access, whichever comes first).
    pub fn is_due_to_expire(&self, now: OffsetDateTime) -> bool {
        self.status == SessionStatus::Pending && self.is_past_expiry(now)
    }

    /// Still usable at `now`?
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        self.status == SessionStatus::Pending && !self.is_past_expiry(now)
    }

    /// `GET /sessions/:id`.
    pub fn to_wire(&self) -> CheckoutSession {
        CheckoutSession {
            session_id: self.id.clone(),
            escrow_id: self.escrow_id.clone(),
            action: self.action.clone(),
            target_user_email: self.target_email.clone(),
            status: self.status.clone(),
            metadata: self.metadata.clone(),
            expires_at: self.expires_at,
            completed_at: self.completed_at,
            created_at: self.created_at,
        }
    }

    /// `redirectUrl` with `session_id` and `status` set (replacing any same-named parameters,
    /// keeping every other parameter and the fragment).
    pub fn redirect_with(&self, status: &SessionStatus) -> String {
        merge_query(&self.redirect_url, &self.id, status.as_str())
    }
}

/// Sets `session_id` and `status` on `url`'s query, keeping other parameters in order.
pub fn merge_query(url: &str, session_id: &str, status: &str) -> String {
    let Ok(mut u) = Url::parse(url) else {
        let sep = if url.contains('?') { '&' } else { '?' };
        return format!("{url}{sep}session_id={session_id}&status={status}");
    };
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "session_id" && k != "status")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair("session_id", session_id);
        q.append_pair("status", status);
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::merge_query;

    #[test]
    fn merges_into_existing_query() {
        assert_eq!(
            merge_query("http://localhost:3000/cb", "s1", "completed"),
            "http://localhost:3000/cb?session_id=s1&status=completed"
        );
        assert_eq!(
            merge_query(
                "https://shop.tn/cb?order=42&status=x#top",
                "s1",
                "cancelled"
            ),
            "https://shop.tn/cb?order=42&session_id=s1&status=cancelled#top"
        );
    }
}
