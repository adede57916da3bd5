//! Proof and identity event types of `docs/dhmad-api.md` §6.2; unknown types and values are
//! kept, not fatal.

use crate::event_support::{escrow, parse, with};
use dhmad::{
    CheckoutAction, ClaimStatus, EscrowMode, EscrowStatus, Event, EventType, KycStatus, ProofPhase,
    WebhookEnvelope,
};
use serde_json::json;

#[test]
fn every_proof_event() {
    let proof = |phase: &str| {
        json!({"phase":phase,"correctionRounds":1,
        "uploadDeadline":"2026-07-03T09:00:00Z","reviewDeadline":"2026-07-04T09:00:00.000Z",
        "latestSubmission":{"submittedAt":"2026-07-02T12:00:00Z","note":"Receipt attached",
            "attachments":[{"mimeType":"image/png","viewUrl":"https://files.dhmad.tn/p/1?sig=abc"}]},
        "submissions":[{"submittedAt":"2026-07-02T12:00:00Z","attachments":[]}],
        "checkoutActions":[{"action":"review_proof","targetUserEmail":"b@x.tn","description":"Review the proof"}]})
    };
    let cases = [
        ("escrow.proof.required", "waiting_seller_proof"),
        ("escrow.proof.submitted", "submitted_waiting_buyer_review"),
        ("escrow.proof.correction_requested", "correction_requested"),
        ("escrow.proof.accepted", "accepted"),
        ("escrow.proof.accepted_by_timeout", "accepted_by_timeout"),
        ("escrow.proof.needs_review", "needs_dhmad_review"),
        ("escrow.proof.expired", "expired_no_proof"),
    ];
    for (ty, phase) in cases {
        let e =
            json!({"id":"66aa00000000000000000004","title":"Phone","status":"paid","mode":"quick"});
        let ev = parse(ty, json!({"escrow":e,"proof":proof(phase)}));
        let d = match &ev {
            Event::ProofRequired(d)
            | Event::ProofSubmitted(d)
            | Event::ProofCorrectionRequested(d)
            | Event::ProofAccepted(d)
            | Event::ProofAcceptedByTimeout(d)
            | Event::ProofNeedsReview(d)
            | Event::ProofExpired(d) => d,
            other => panic!("{ty}: {other:?}"),
        };
        assert!(d.proof.phase.is_known(), "{phase}");
        assert_eq!(d.proof.phase.as_str(), phase);
        // The events carry no count of uploads (§6.4): none, not 0.
        assert_eq!(d.proof.submission_count, None, "{ty}");
        assert_eq!(
            d.proof.checkout_actions[0].action,
            CheckoutAction::ReviewProof
        );
        assert_eq!(d.escrow.mode, Some(EscrowMode::Quick));
    }
    // The minimal form: no submissions yet, nothing awaited.
    let ev = parse(
        "escrow.proof.required",
        json!({"escrow":{"id":"e","title":"t","status":"paid","mode":"quick"},
        "proof":{"phase":"waiting_seller_proof","correctionRounds":0,"uploadDeadline":"2026-07-03T09:00:00Z",
            "reviewDeadline":null,"checkoutActions":[]}}),
    );
    let Event::ProofRequired(d) = ev else {
        panic!()
    };
    assert_eq!(d.proof.phase, ProofPhase::WaitingSellerProof);
    assert!(d.proof.latest_submission.is_none() && d.proof.submissions.is_empty());
}

#[test]
fn identity_events() {
    let ev = parse(
        "identity.verification.updated",
        json!({"id":"66aa00000000000000000e01",
        "external_user_id":"user-42","email":"seller@x.tn","kyc_status":"approved","previous_kyc_status":"pending",
        "needs_admin_review":false,"linked_user_id":null,"status_source":"sandbox","claim_status":"pending",
        "updated_at":"2026-07-02T09:00:00.000Z"}),
    );
    let Event::IdentityVerificationUpdated(d) = &ev else {
        panic!()
    };
    assert_eq!(d.kyc_status, KycStatus::Approved);
    assert_eq!(d.claim_status, Some(ClaimStatus::Pending));
    assert!(ev.escrow().is_none());

    let ev = parse(
        "identity.verification.linked",
        json!({"id":"66aa00000000000000000e01",
        "external_user_id":null,"email":"seller@x.tn","kyc_status":"approved",
        "linked_user_id":"66aa0000000000000000000a","linked_at":"2026-07-09T09:00:00Z"}),
    );
    let Event::IdentityVerificationLinked(d) = ev else {
        panic!()
    };
    assert_eq!(d.linked_user_id, "66aa0000000000000000000a");
}

#[test]
fn every_known_event_type_is_covered() {
    assert_eq!(EventType::KNOWN.len(), 17);
    for ty in EventType::KNOWN {
        assert!(EventType::from(*ty).is_known());
    }
}

#[test]
fn unknown_event_type_keeps_raw_data() {
    let data =
        json!({"charge":{"id":"ch_1","status":"paid","amount":12.5,"nested":[1,{"a":null}]}});
    let ev = parse("charge.status.updated", data.clone());
    assert_eq!(
        ev.event_type(),
        EventType::Unknown("charge.status.updated".into())
    );
    let Event::Unknown {
        event_type,
        data: raw,
    } = &ev
    else {
        panic!()
    };
    assert_eq!(event_type, "charge.status.updated");
    assert_eq!(raw, &data);
    assert_eq!(ev.data(), data);
    assert!(ev.escrow().is_none());
}

#[test]
fn unknown_values_inside_known_events_do_not_fail() {
    let e = with(
        with(escrow("on_hold"), "oldStatus", json!("paid")),
        "mode",
        json!("progressive"),
    );
    let ev = parse(
        "escrow.status.updated",
        json!({"escrow":with(e, "currency", json!("GBP"))}),
    );
    let esc = ev.escrow().unwrap();
    assert_eq!(esc.status, EscrowStatus::Unknown("on_hold".into()));
    assert_eq!(esc.mode, Some(EscrowMode::Unknown("progressive".into())));
    assert_eq!(esc.currency.as_ref().unwrap().as_str(), "GBP");
    // Written back verbatim.
    assert_eq!(ev.data()["escrow"]["status"], "on_hold");
}

#[test]
fn known_type_with_a_broken_payload_is_an_error() {
    let env = WebhookEnvelope::from_slice(
        br#"{"id":"x","type":"escrow.status.updated","timestamp":"2026-07-02T09:00:00Z","data":{"nope":1}}"#,
    )
    .unwrap();
    assert!(env.event().is_err());
    // The envelope itself still parsed, so the raw data stays available.
    assert_eq!(env.data["nope"], 1);
}

/// The envelope's `timestamp` is read leniently: missing, `null` or in another form it is
/// `None`, and the event still reads (a 4xx for it would lose the event for good).
#[test]
fn an_envelope_timestamp_in_another_form_is_none() {
    let body = |timestamp: &str| {
        format!(
            r#"{{"id":"e1","type":"escrow.updated",{timestamp}"data":{{"escrow":{}}}}}"#,
            escrow("pending")
        )
    };
    for odd in [
        "",
        r#""timestamp":null,"#,
        r#""timestamp":"2026-07-02 09:00:00+0100","#,
        r#""timestamp":1751446800000,"#,
    ] {
        let env = WebhookEnvelope::from_slice(body(odd).as_bytes())
            .unwrap_or_else(|e| panic!("{odd}: {e}"));
        assert_eq!(env.timestamp, None, "{odd}");
        env.event().unwrap();
    }
    let env =
        WebhookEnvelope::from_slice(body(r#""timestamp":"2026-07-02T09:00:00.000Z","#).as_bytes())
            .unwrap();
    assert_eq!(
        env.timestamp,
        Some(dhmad::iso::parse("2026-07-02T09:00:00Z").unwrap())
    );
}
