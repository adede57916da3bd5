//! The proof-of-purchase gate's phases (`docs/dhmad-api.md` §2.4): which may follow which.

/// Whether the proof gate may go from phase `from` to phase `to`, in one step or several
/// (`docs/dhmad-api.md` §2.4). Proof events carry no clock, so this is what tells a retried,
/// older one from news: an event whose phase cannot follow the stored one is late. A decided
/// gate (accepted, expired, rejected) never reopens. A phase this table does not know is
/// taken as news.
pub fn proof_phase_may_follow(from: &str, to: &str) -> bool {
    fn next(phase: &str) -> &'static [&'static str] {
        match phase {
            "waiting_seller_proof" => &["submitted_waiting_buyer_review", "expired_no_proof"],
            "submitted_waiting_buyer_review" => {
                &["accepted", "accepted_by_timeout", "correction_requested"]
            }
            "correction_requested" => &["submitted_waiting_buyer_review", "needs_dhmad_review"],
            "needs_dhmad_review" => &["accepted", "rejected"],
            _ => &[],
        }
    }
    const KNOWN: [&str; 8] = [
        "waiting_seller_proof",
        "submitted_waiting_buyer_review",
        "correction_requested",
        "needs_dhmad_review",
        "accepted",
        "accepted_by_timeout",
        "expired_no_proof",
        "rejected",
    ];
    if from == to || !KNOWN.contains(&from) || !KNOWN.contains(&to) {
        return true;
    }
    let mut seen = vec![from];
    let mut i = 0;
    while let Some(&p) = seen.get(i) {
        for &n in next(p) {
            if n == to {
                return true;
            }
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_decided_proof_gate_never_reopens() {
        use super::proof_phase_may_follow as may;
        assert!(may("waiting_seller_proof", "accepted"));
        assert!(may(
            "correction_requested",
            "submitted_waiting_buyer_review"
        ));
        assert!(may(
            "submitted_waiting_buyer_review",
            "correction_requested"
        ));
        assert!(!may("accepted", "submitted_waiting_buyer_review"));
        assert!(!may(
            "submitted_waiting_buyer_review",
            "waiting_seller_proof"
        ));
        assert!(!may("expired_no_proof", "accepted"));
        assert!(may("accepted", "accepted"));
        assert!(may("accepted", "a_phase_from_a_later_api"));
    }
}
