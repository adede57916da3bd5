use super::*;
use proptest::prelude::*;
use time::macros::datetime;
use EscrowStatus::*;

const T1: OffsetDateTime = datetime!(2026-07-01 09:00 UTC);
const T2: OffsetDateTime = datetime!(2026-07-01 09:05 UTC);

#[test]
fn newer_wins_older_is_stale() {
    assert_eq!(
        decide(Some(&Pending), Some(T1), &Paid, Some(T2)),
        Decision::Apply
    );
    assert_eq!(
        decide(Some(&Paid), Some(T2), &Pending, Some(T1)),
        Decision::Stale
    );
    assert_eq!(
        decide(Some(&Paid), Some(T2), &Paid, Some(T2)),
        Decision::Same
    );
    assert_eq!(decide(None, None, &Pending, None), Decision::Apply);
}

#[test]
fn delivery_rejection_moves_back_because_it_is_newer() {
    assert_eq!(
        decide(Some(&Delivered), Some(T1), &Paid, Some(T2)),
        Decision::Apply
    );
}

#[test]
fn terminal_is_sticky() {
    assert_eq!(
        decide(Some(&Completed), Some(T1), &Paid, Some(T2)),
        Decision::Settled
    );
    assert_eq!(
        decide(Some(&Cancelled), None, &Pending, None),
        Decision::Settled
    );
}

#[test]
fn without_timestamps_only_forward() {
    assert_eq!(decide(Some(&Paid), None, &Completed, None), Decision::Apply);
    assert_eq!(decide(Some(&Paid), None, &Pending, None), Decision::Stale);
    assert_eq!(
        decide(Some(&Paid), Some(T1), &Delivered, Some(T1)),
        Decision::Apply
    );
}

#[test]
fn a_future_clock_counts_as_now() {
    let now = T1;
    let far = datetime!(2099-01-01 00:00 UTC);
    assert_eq!(sane_clock(Some(far), now), Some(now));
    assert_eq!(
        sane_clock(Some(now + time::Duration::minutes(6)), now),
        Some(now),
        "past the webhook verifier's five minutes is not sane either"
    );
    let skewed = now + time::Duration::minutes(4);
    assert_eq!(
        sane_clock(Some(skewed), now),
        Some(skewed),
        "within the skew"
    );
    assert_eq!(sane_clock(None, now), None);
}

#[test]
fn the_api_overrules_a_stored_clock_in_the_future() {
    let seen = Seen {
        status: OrderStatus::AwaitingPayment,
        escrow_status: Some(Pending),
        clock: Some(datetime!(2099-01-01 00:00 UTC)),
    };
    let webhook = plan(&seen, &Paid, Some(T1), Authority::Webhook, T2);
    assert_eq!(webhook.decision, Decision::Stale);
    let api = plan(&seen, &Paid, Some(T1), Authority::Api, T2);
    assert_eq!(api.decision, Decision::Apply);
    assert!(api.fulfil);
}

#[test]
fn fulfils_when_completed_comes_before_paid() {
    let seen = Seen {
        status: OrderStatus::AwaitingPayment,
        escrow_status: Some(Pending),
        clock: Some(T1),
    };
    let p = plan(&seen, &Completed, Some(T2), Authority::Webhook, T2);
    assert_eq!(
        (p.decision, p.next, p.fulfil),
        (Decision::Apply, OrderStatus::Completed, true)
    );
}

// ---- properties over any sequence and interleaving of snapshots ----

/// The escrow lifecycles DHMAD documents (`docs/dhmad-api.md` §2.3), each a path of statuses.
fn lifecycles() -> Vec<Vec<EscrowStatus>> {
    vec![
        vec![Pending],
        vec![Pending, Cancelled],
        vec![Pending, Paid],
        vec![Pending, Paid, Completed],
        vec![Pending, Paid, Cancelled],
        vec![Pending, Paid, Delivered, Completed],
        vec![Pending, Paid, Delivered, Paid, Delivered, Completed],
        vec![Pending, Paid, Disputed],
        vec![Pending, Paid, Delivered, Disputed],
    ]
}

/// What the order holds after a delivery, as `apply_escrow_snapshot` writes it.
struct Model {
    seen: Seen,
    fulfilled: u32,
    settled_at: Option<OrderStatus>,
}

impl Model {
    fn apply(&mut self, status: &EscrowStatus, at: OffsetDateTime) {
        let p = plan(&self.seen, status, Some(at), Authority::Webhook, at);
        match p.decision {
            Decision::Apply => {
                self.seen.status = p.next;
                self.seen.escrow_status = Some(status.clone());
                self.seen.clock = p.clock.or(self.seen.clock);
            }
            Decision::Same => {
                self.seen.clock = if p.reset_clock {
                    p.clock
                } else {
                    self.seen.clock.max(p.clock)
                };
            }
            Decision::Stale | Decision::Settled => {}
        }
        self.fulfilled += u32::from(p.fulfil);
        if let Some(settled) = self.settled_at {
            assert_eq!(self.seen.status, settled, "a settled order changed");
        } else if self.seen.status.is_settled() {
            self.settled_at = Some(self.seen.status);
        }
    }
}

fn arb_deliveries() -> impl Strategy<Value = (Vec<EscrowStatus>, Vec<usize>)> {
    (0..lifecycles().len())
        .prop_flat_map(|i| {
            let path = lifecycles()[i].clone();
            let n = path.len();
            // Each snapshot delivered 1–3 times, in any order.
            let picks = proptest::collection::vec(0..n, n..n * 3);
            (Just(path), picks)
        })
        .prop_flat_map(|(path, mut picks)| {
            let n = path.len();
            picks.extend(0..n); // every snapshot at least once
            (Just(path), Just(picks).prop_shuffle())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_interleaving_ends_in_the_newest_state_and_fulfils_at_most_once(
        (path, order) in arb_deliveries()
    ) {
        let at = |i: usize| T1 + time::Duration::seconds(i as i64 + 1);
        let mut m = Model {
            seen: Seen { status: OrderStatus::AwaitingPayment, escrow_status: Some(Pending), clock: Some(T1) },
            fulfilled: 0,
            settled_at: None,
        };
        for &i in &order {
            m.apply(&path[i], at(i));
        }
        let newest = path.last().unwrap();
        prop_assert_eq!(m.seen.escrow_status.as_ref(), Some(newest));
        prop_assert_eq!(Some(m.seen.status), OrderStatus::from_escrow(newest));
        // Never twice; and whenever the order ends with DHMAD holding or having released the
        // money, exactly once. (A refund that overtakes its payment's news hands over nothing.)
        prop_assert!(m.fulfilled <= 1);
        if m.seen.status.is_funded() {
            prop_assert_eq!(m.fulfilled, 1);
        }
    }
}
