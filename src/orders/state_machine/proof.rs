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
            // A deadline while a correction is awaited is UNSTATED (§2.4); DHMAD may expire
            // the gate as it does before the first upload (the sandbox does).
            "correction_requested" => &[
                "submitted_waiting_buyer_review",
                "needs_dhmad_review",
                "expired_no_proof",
            ],
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

/// Whether a report of the gate (an event's or a read's) at `phase` after `rounds` corrections
/// is news over the stored `from` after `known`: its phase may follow the stored one, and it
/// counts no fewer rounds. A request for a correction counts its round, and the submission
/// answering it the same: a request counting the rounds of a stored submission is the one
/// that submission answered, late (a submission and a request may each follow the other, so
/// the phases alone cannot tell). A count missing on either side is not taken for 0: the
/// phases decide.
pub fn proof_report_is_news(
    from: Option<&str>,
    known: Option<i32>,
    phase: &str,
    rounds: Option<i32>,
) -> bool {
    if from.is_some_and(|from| !proof_phase_may_follow(from, phase)) {
        return false;
    }
    match (rounds, known) {
        (Some(r), Some(k)) if r < k => false,
        (Some(r), Some(k)) if r == k => {
            !(phase == "correction_requested" && from == Some("submitted_waiting_buyer_review"))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_report_counting_fewer_rounds_or_the_answered_request_is_late() {
        use super::proof_report_is_news as news;
        let (asked, submitted) = ("correction_requested", "submitted_waiting_buyer_review");
        // Round 1 asked, then answered: the request again is late, a new one is news.
        assert!(!news(Some(submitted), Some(1), asked, Some(1)));
        assert!(news(Some(submitted), Some(1), asked, Some(2)));
        // The answer to the request that is stored.
        assert!(news(Some(asked), Some(1), submitted, Some(1)));
        // The first submission again, after round 1 was asked.
        assert!(!news(Some(asked), Some(1), submitted, Some(0)));
        // Without counts, the phases decide.
        assert!(news(Some(submitted), None, asked, Some(1)));
        assert!(news(Some(submitted), Some(1), asked, None));
        assert!(!news(Some("accepted"), None, submitted, None));
        assert!(news(None, None, asked, Some(1)));
        // A correction awaited may expire.
        assert!(news(Some(asked), Some(1), "expired_no_proof", Some(1)));
    }

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
