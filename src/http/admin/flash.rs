//! Flash messages: every message an action may leave, as a code in the redirect mapped to a
//! fixed text here (nothing a URL carries is ever shown as text).

use axum::{
    http::{header, HeaderMap},
    response::Redirect,
};
use serde::Deserialize;
use uuid::Uuid;

/// Every message an action may leave. The redirect carries its code and, for some, counts;
/// the text is always one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::http) enum Notice {
    Shipped,
    ShippedAlready,
    DeliverRetried,
    CheckoutRetried,
    Reconciled,
    ReconciledInPart,
    ReconciledHeld,
    OrderChanged,
    OrderSame,
    FlagLifted,
    FlagUnseen,
    OrderFlagged,
    OrderFailed,
    OrderBusy,
    CreationChecked,
    CreationPending,
    EventProcessed,
    EventUnmatched,
    EventIgnored,
    EventAlready,
    EventFailed,
    UnmatchedReprocessed,
    JobRetried,
    JobAbandoned,
    JobClosed,
    JobRunning,
}

impl Notice {
    const ALL: [Notice; 26] = [
        Self::Shipped,
        Self::ShippedAlready,
        Self::DeliverRetried,
        Self::CheckoutRetried,
        Self::Reconciled,
        Self::ReconciledInPart,
        Self::ReconciledHeld,
        Self::OrderChanged,
        Self::OrderSame,
        Self::FlagLifted,
        Self::FlagUnseen,
        Self::OrderFlagged,
        Self::OrderFailed,
        Self::OrderBusy,
        Self::CreationChecked,
        Self::CreationPending,
        Self::EventProcessed,
        Self::EventUnmatched,
        Self::EventIgnored,
        Self::EventAlready,
        Self::EventFailed,
        Self::UnmatchedReprocessed,
        Self::JobRetried,
        Self::JobAbandoned,
        Self::JobClosed,
        Self::JobRunning,
    ];

    fn code(self) -> &'static str {
        match self {
            Self::Shipped => "shipped",
            Self::ShippedAlready => "shipped_already",
            Self::DeliverRetried => "deliver_retried",
            Self::CheckoutRetried => "checkout_retried",
            Self::Reconciled => "reconciled",
            Self::ReconciledInPart => "reconciled_in_part",
            Self::ReconciledHeld => "reconciled_held",
            Self::OrderChanged => "order_changed",
            Self::OrderSame => "order_same",
            Self::FlagLifted => "flag_lifted",
            Self::FlagUnseen => "flag_unseen",
            Self::OrderFlagged => "order_flagged",
            Self::OrderFailed => "order_failed",
            Self::OrderBusy => "order_busy",
            Self::CreationChecked => "creation_checked",
            Self::CreationPending => "creation_pending",
            Self::EventProcessed => "event_processed",
            Self::EventUnmatched => "event_unmatched",
            Self::EventIgnored => "event_ignored",
            Self::EventAlready => "event_already",
            Self::EventFailed => "event_failed",
            Self::UnmatchedReprocessed => "unmatched_reprocessed",
            Self::JobRetried => "job_retried",
            Self::JobAbandoned => "job_abandoned",
            Self::JobClosed => "job_closed",
            Self::JobRunning => "job_running",
        }
    }

    fn warn(self) -> bool {
        matches!(
            self,
            Self::ReconciledInPart
                | Self::ReconciledHeld
                | Self::OrderFlagged
                | Self::FlagUnseen
                | Self::OrderFailed
                | Self::OrderBusy
                | Self::CreationPending
                | Self::EventUnmatched
                | Self::EventFailed
                | Self::JobClosed
                | Self::JobRunning
        )
    }

    fn text(self, n: &FlashQuery) -> String {
        match self {
            Self::Shipped => "Shipping requested; DHMAD confirms in a few seconds.".into(),
            Self::ShippedAlready => {
                "Shipping was requested already: its deliver is queued (see its attempts).".into()
            }
            Self::DeliverRetried => {
                "Deliver queued to run now; DHMAD confirms in a few seconds.".into()
            }
            Self::CheckoutRetried => {
                "Checkout retried: the escrow and its payment page are ready.".into()
            }
            Self::Reconciled => format!("Reconciliation done: {}", reconciled(n)),
            Self::ReconciledInPart => format!(
                "Reconciliation not finished: {} More orders are due a look: reconcile again, \
                 or the background pass takes them in turn.",
                reconciled(n)
            ),
            Self::ReconciledHeld => format!(
                "Reconciliation stopped early, to leave DHMAD's rate limit to buyers: {} The \
                 background pass takes the rest once buyers leave calls to spare.",
                reconciled(n)
            ),
            Self::OrderChanged => "Read from DHMAD: the order changed (see its timeline).".into(),
            Self::OrderSame => "Read from DHMAD: nothing new, the order is up to date.".into(),
            Self::FlagLifted => {
                "Read from DHMAD: it answered about the escrow, so the order's flag \
                                 is lifted. The timeline says why it was raised, and what may be \
                                 left to settle."
                    .into()
            }
            Self::FlagUnseen => {
                "The order's flag is not the one your request named (your page showed another, or \
                 none), so it stays: read it here, then Reconcile again to lift it."
                    .into()
            }
            Self::OrderFlagged => {
                "DHMAD does not know this order's escrow: the order is flagged for you.".into()
            }
            Self::OrderFailed => {
                "DHMAD did not answer; nothing changed. Try again in a moment.".into()
            }
            Self::OrderBusy => {
                "DHMAD's call budget is spent for now (buyers come first), or DHMAD asked us \
                 to slow down: try again in a minute."
                    .into()
            }
            Self::CreationChecked => {
                "The interrupted checkout was looked up at DHMAD (see the timeline).".into()
            }
            Self::CreationPending => {
                "DHMAD's list does not show this order's escrow yet, and DHMAD may still be \
                 making it: look again in a minute."
                    .into()
            }
            Self::EventProcessed => "Event reprocessed: applied to its order.".into(),
            Self::EventUnmatched => "Event reprocessed: still no order has its escrow.".into(),
            Self::EventIgnored => "Event reprocessed: it has nothing to apply.".into(),
            Self::EventAlready => "This event was already processed: nothing changed.".into(),
            Self::EventFailed => {
                "Reprocessing failed; the event is kept as failed, with why. Try again.".into()
            }
            Self::UnmatchedReprocessed => format!(
                "Unmatched events reprocessed: {} applied, {} still unmatched, {} failed.",
                n.count("processed"),
                n.count("unmatched"),
                n.count("failed"),
            ),
            Self::JobRetried => "Job set to run now; the outbox picks it up within seconds.".into(),
            Self::JobAbandoned => {
                "Job abandoned: it will not run again (noted on the order's timeline).".into()
            }
            Self::JobClosed => "This job is closed already: nothing changed.".into(),
            Self::JobRunning => {
                "This job is running right now: it was left to finish (see its attempts).".into()
            }
        }
    }
}

/// The query parameters a flash is made of: a code and counts (read as numbers only).
const FLASH_KEYS: [&str; 8] = [
    "notice",
    "checked",
    "changed",
    "failed",
    "flagged",
    "resolved",
    "processed",
    "unmatched",
];

#[derive(Debug, Default, Deserialize)]
pub(in crate::http) struct FlashQuery {
    #[serde(default)]
    notice: String,
    checked: Option<String>,
    changed: Option<String>,
    failed: Option<String>,
    flagged: Option<String>,
    resolved: Option<String>,
    processed: Option<String>,
    unmatched: Option<String>,
}

impl FlashQuery {
    fn count(&self, key: &str) -> u32 {
        let v = match key {
            "checked" => &self.checked,
            "changed" => &self.changed,
            "failed" => &self.failed,
            "flagged" => &self.flagged,
            "resolved" => &self.resolved,
            "processed" => &self.processed,
            "unmatched" => &self.unmatched,
            _ => &None,
        };
        v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    pub(in crate::http) fn flash(&self) -> Option<Flash> {
        let notice = Notice::ALL.into_iter().find(|n| n.code() == self.notice)?;
        Some(Flash {
            warn: notice.warn(),
            text: notice.text(self),
        })
    }
}

/// A message shown once at the top of the page an action returns to.
#[derive(Debug, Clone)]
pub(in crate::http) struct Flash {
    pub warn: bool,
    pub text: String,
}

/// The back-office page at `path` a browser can load (GET), if any. An order's page that an
/// action rendered in place (a refusal shows the order at the action's own address, which
/// answers POST only) is that order's page: returning there used to end on a bare 405.
fn admin_page(path: &str) -> Option<String> {
    const PAGES: [&str; 5] = [
        "/admin",
        "/admin/orders",
        "/admin/inbox",
        "/admin/outbox",
        "/admin/audit",
    ];
    if PAGES.contains(&path) {
        return Some(path.to_owned());
    }
    let id = path.strip_prefix("/admin/orders/")?.split('/').next()?;
    Uuid::parse_str(id)
        .ok()
        .map(|id| format!("/admin/orders/{id}"))
}

/// The page to return to: the back-office page the form was on (its path and filters, from
/// `Referer`, which the shop's `Referrer-Policy: same-origin` sends), else `default`.
fn return_to(headers: &HeaderMap, default: &str) -> (String, Vec<(String, String)>) {
    let from = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .and_then(|u| Some((admin_page(u.path())?, u)));
    match from {
        Some((path, u)) => (
            path,
            u.query_pairs()
                .filter(|(k, _)| !FLASH_KEYS.contains(&k.as_ref()))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ),
        None => (default.to_owned(), Vec::new()),
    }
}

/// The answer to an action: back where it came from (or `default`), with its flash message.
/// On the order list, `order` is the row to scroll to.
pub(in crate::http) fn answer(
    headers: &HeaderMap,
    default: &str,
    notice: Notice,
    counts: &[(&'static str, usize)],
    order: Option<Uuid>,
) -> Redirect {
    let (path, kept) = return_to(headers, default);
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &kept {
        q.append_pair(k, v);
    }
    q.append_pair("notice", notice.code());
    for (k, n) in counts {
        q.append_pair(k, &n.to_string());
    }
    let fragment = match order {
        Some(id) if path == "/admin" || path == "/admin/orders" => format!("#o-{id}"),
        _ => String::new(),
    };
    Redirect::to(&format!("{path}?{}{fragment}", q.finish()))
}

/// What a reconciliation did, from its counts.
fn reconciled(n: &FlashQuery) -> String {
    format!(
        "{} order(s) checked, {} changed, {} failed, {} flagged for you, {} interrupted \
         checkout(s) resolved.",
        n.count("checked"),
        n.count("changed"),
        n.count("failed"),
        n.count("flagged"),
        n.count("resolved"),
    )
}

#[cfg(test)]
mod tests {
    use axum::{http::HeaderValue, response::IntoResponse};

    use super::*;

    #[test]
    fn flash_texts_are_fixed_and_counts_are_numbers() {
        let q = FlashQuery {
            notice: "reconciled".into(),
            checked: Some("3".into()),
            changed: Some("<script>".into()),
            ..FlashQuery::default()
        };
        let f = q.flash().unwrap();
        assert!(f
            .text
            .starts_with("Reconciliation done: 3 order(s) checked, 0 changed"));
        assert!(FlashQuery {
            notice: "<b>hi</b>".into(),
            ..FlashQuery::default()
        }
        .flash()
        .is_none());
        for n in Notice::ALL {
            assert_eq!(
                Notice::ALL.iter().filter(|m| m.code() == n.code()).count(),
                1
            );
        }
    }

    #[test]
    fn actions_return_to_the_admin_page_they_came_from() {
        let mut h = HeaderMap::new();
        let go = |h: &HeaderMap| {
            answer(h, "/admin", Notice::Shipped, &[], None)
                .into_response()
                .headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(go(&h), "/admin?notice=shipped");
        h.insert(
            header::REFERER,
            HeaderValue::from_static(
                "http://shop.example/admin/orders?status=paid&notice=old&checked=1",
            ),
        );
        assert_eq!(go(&h), "/admin/orders?status=paid&notice=shipped");
        h.insert(
            header::REFERER,
            HeaderValue::from_static("https://evil.example/elsewhere"),
        );
        assert_eq!(go(&h), "/admin?notice=shipped");
        h.insert(
            header::REFERER,
            HeaderValue::from_static("http://shop.example/admin/..//evil.example/x"),
        );
        assert_eq!(go(&h), "/admin?notice=shipped");
        // An order's page shown at an action's address: back to the order's own page.
        let id = "0f0e0d0c-0b0a-4908-8706-050403020100";
        for from in ["sign", "cancel", "reconcile"] {
            let referer = format!("http://shop.example/admin/orders/{id}/{from}");
            h.insert(header::REFERER, HeaderValue::from_str(&referer).unwrap());
            assert_eq!(go(&h), format!("/admin/orders/{id}?notice=shipped"));
        }
        for elsewhere in ["/admin/login", "/admin/orders.csv", "/admin/orders/x/sign"] {
            let referer = format!("http://shop.example{elsewhere}");
            h.insert(header::REFERER, HeaderValue::from_str(&referer).unwrap());
            assert_eq!(go(&h), "/admin?notice=shipped", "{elsewhere}");
        }
    }
}
