//! What applying an escrow snapshot to an order will do, decided without the database: a pure
//! function, so its rules (monotonic by `updatedAt`, settled is final, fulfil once) can be
//! checked over any sequence and interleaving of snapshots (the property tests below).

use dhmad::EscrowStatus;
use time::OffsetDateTime;

use crate::orders::OrderStatus;

/// Where a snapshot comes from. An answer of DHMAD's API describes the escrow as it is now;
/// a webhook as it was when the event was sent, and webhooks arrive late and out of order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    Webhook,
    Api,
}

/// A clock more than this far ahead of ours is not believed (see `sane_clock`): the skew the
/// webhook verifier accepts. Any less, and with DHMAD's clock ahead of ours by more (a minute
/// or two passes the verifier) every snapshot counted as "now", so they were ordered by
/// arrival and a retried `paid` undid a `delivered` that came first.
const MAX_CLOCK_SKEW: time::Duration = dhmad::webhook::DEFAULT_TOLERANCE;

/// What the order holds about its escrow.
#[derive(Debug, Clone)]
pub struct Seen {
    pub status: OrderStatus,
    pub escrow_status: Option<EscrowStatus>,
    pub clock: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Newer and different: the order moves to `Plan::next`.
    Apply,
    /// The status we have; only the clock may move.
    Same,
    /// Older than what was applied, or a move the order does not allow.
    Stale,
    /// The order is completed or cancelled and stays so.
    Settled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub decision: Decision,
    /// The order's status afterwards.
    pub next: OrderStatus,
    /// The clock to store (the snapshot's `updatedAt`, made sane).
    pub clock: Option<OffsetDateTime>,
    /// With `Same`: replace the stored clock instead of only moving it forward.
    pub reset_clock: bool,
    /// The shop must now hand over the good: DHMAD holds (or released) the money and did not
    /// before. Whatever transition got there (a `completed` may come before its `paid`).
    pub fulfil: bool,
    /// The snapshot's clock was in the future and was taken as now.
    pub clamped: bool,
    /// `Stale` though newer: the order cannot take the status it says (money held, then
    /// pending). A disagreement with DHMAD, not old news.
    pub refused: bool,
}

/// A snapshot's `updatedAt` in the future cannot be right; kept as is it would make every
/// later snapshot look older and freeze the order. It counts as "now".
pub fn sane_clock(at: Option<OffsetDateTime>, now: OffsetDateTime) -> Option<OffsetDateTime> {
    at.map(|t| if t > now + MAX_CLOCK_SKEW { now } else { t })
}

/// Forward position in the lifecycle, used only when timestamps cannot decide.
fn rank(s: &EscrowStatus) -> i8 {
    match s {
        EscrowStatus::Pending => 0,
        EscrowStatus::Paid => 1,
        EscrowStatus::Delivered | EscrowStatus::Disputed => 2,
        EscrowStatus::Completed | EscrowStatus::Cancelled => 3,
        EscrowStatus::Unknown(_) => -1,
    }
}

/// Monotonic by the escrow's `updatedAt`: a newer snapshot wins even when it moves backwards
/// (the documented delivered→paid of a rejected delivery); without timestamps only forward
/// moves are taken. Terminal statuses are sticky whatever the timestamps say.
fn decide(
    current: Option<&EscrowStatus>,
    current_at: Option<OffsetDateTime>,
    next: &EscrowStatus,
    next_at: Option<OffsetDateTime>,
) -> Decision {
    let Some(current) = current else {
        return Decision::Apply;
    };
    if current.is_terminal() {
        return Decision::Settled;
    }
    let newer = match (next_at, current_at) {
        (Some(n), Some(c)) if n != c => n > c,
        (Some(_), None) => true,
        // Same instant or no timestamp: trust only a forward move.
        _ => rank(next) > rank(current),
    };
    if newer && next != current {
        Decision::Apply
    } else if next == current {
        Decision::Same
    } else {
        Decision::Stale
    }
}

/// Decides what the snapshot (`status` at `updated_at`, from `authority`) does to the order.
pub fn plan(
    seen: &Seen,
    status: &EscrowStatus,
    updated_at: Option<OffsetDateTime>,
    authority: Authority,
    now: OffsetDateTime,
) -> Plan {
    let clock = sane_clock(updated_at, now);
    // A stored clock in the future (kept before such dates were clamped) cannot be right:
    // DHMAD's API, describing the escrow as it is now, overrules it.
    let stored = seen
        .clock
        .filter(|t| authority == Authority::Webhook || *t <= now + MAX_CLOCK_SKEW);
    let mut decision = if seen.status.is_settled() {
        Decision::Settled
    } else {
        decide(seen.escrow_status.as_ref(), stored, status, clock)
    };
    let mut next = seen.status;
    let mut refused = false;
    if decision == Decision::Apply {
        next = OrderStatus::from_escrow(status).unwrap_or(seen.status);
        if next != seen.status && !seen.status.can_become(next) {
            decision = Decision::Stale;
            next = seen.status;
            refused = true;
        }
    }
    Plan {
        decision,
        next,
        clock,
        reset_clock: decision == Decision::Same && stored.is_none() && seen.clock.is_some(),
        fulfil: decision == Decision::Apply && !seen.status.is_funded() && next.is_funded(),
        clamped: clock != updated_at,
        refused,
    }
}

#[cfg(test)]
mod tests;
