//! Escrow event types of `docs/dhmad-api.md` §6.2 parse from realistic payloads (§6.4).

use crate::event_support::{escrow, parse, with};
use dhmad::{
    CancellationRequestStatus, EscrowMode, EscrowStatus, Event, EventType, PaymentMethod, Signer,
    WebhookEnvelope,
};
use rust_decimal_macros::dec;
use serde_json::{json, Value};

#[test]
fn status_updated() {
    let body = r#"{"id":"8d3c0a52-1f7e-4b8e-9d51-7c1d2e3f4a5b","type":"escrow.status.updated","timestamp":"2026-07-02T09:00:00Z",
   "data":{"escrow":{"id":"66aa00000000000000000001","title":"Logo pack","amount":300,"escrowFee":15,
   "status":"paid","oldStatus":"pending","seller":{"_id":"66aa0000000000000000000a","email":"s@x.tn","firstName":"Sami","lastName":"B"},
   "buyer":{"_id":"66aa0000000000000000000b","email":"b@x.tn","firstName":"Ines","lastName":"K"},
   "estimatedDeliveryDays":5,"createdAt":"2026-07-01T09:00:00Z","updatedAt":"2026-07-02T09:00:00Z"}}}"#;
    let env = WebhookEnvelope::from_slice(body.as_bytes()).unwrap();
    assert_eq!(env.kind(), EventType::EscrowStatusUpdated);
    let Event::EscrowStatusUpdated(d) = env.event().unwrap() else {
        panic!()
    };
    assert_eq!(d.escrow.status, EscrowStatus::Paid);
    assert_eq!(d.escrow.old_status, Some(EscrowStatus::Pending));
    assert_eq!(d.escrow.amount, Some(dec!(300)));
    assert_eq!(d.escrow.seller_email(), Some("s@x.tn"));
    assert_eq!(d.escrow.buyer_email(), Some("b@x.tn"));
}

#[test]
fn contract_signed() {
    let ev = parse(
        "contract.signed",
        json!({
        "contract":{"id":"66aa00000000000000000c01","escrowId":"66aa00000000000000000001","signedBy":"buyer",
            "sellerSignature":{"signedAt":"2026-07-01T09:01:00Z"},
            "buyerSignature":{"signedAt":"2026-07-01T12:00:00.000Z"},
            "isFullySigned":true,"signedAt":"2026-07-01T12:00:00.000Z"},
        "escrow":escrow("pending")}),
    );
    let Event::ContractSigned(d) = &ev else {
        panic!("{ev:?}")
    };
    assert_eq!(d.contract.signed_by, Signer::Buyer);
    assert!(d.contract.is_fully_signed);
    assert!(d.contract.seller_signature.is_some());
    assert_eq!(ev.escrow().unwrap().status, EscrowStatus::Pending);

    let first = parse(
        "contract.signed",
        json!({
        "contract":{"id":"c1","escrowId":"e1","signedBy":"seller",
            "sellerSignature":{"signedAt":"2026-07-01T09:01:00Z"},"buyerSignature":null,
            "isFullySigned":false,"signedAt":null},
        "escrow":escrow("pending")}),
    );
    let Event::ContractSigned(d) = first else {
        panic!()
    };
    assert!(d.contract.buyer_signature.is_none() && d.contract.signed_at.is_none());
}

#[test]
fn cancellation_events() {
    let request = |status: &str, extra: Value| {
        let mut r = json!({"requestedBy":{"_id":"66aa0000000000000000000b","firstName":"Ines","lastName":"K"},
            "reason":"Ordered twice","status":status,"requestedAt":"2026-07-03T10:00:00Z"});
        if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(extra.clone());
        }
        r
    };
    let ev = parse(
        "escrow.cancellation.requested",
        json!({"escrow":escrow("paid"),"cancellationRequest":request("pending", json!({}))}),
    );
    let Event::CancellationRequested(d) = ev else {
        panic!()
    };
    assert_eq!(
        d.cancellation_request.status,
        CancellationRequestStatus::Pending
    );
    assert_eq!(
        d.cancellation_request
            .requested_by
            .unwrap()
            .first_name
            .as_deref(),
        Some("Ines")
    );

    let seller = json!({"_id":"66aa0000000000000000000a","firstName":"Sami","lastName":"B"});
    let ev = parse(
        "escrow.cancellation.rejected",
        json!({"escrow":escrow("paid"),
        "cancellationRequest":request("rejected", json!({"rejectedBy":seller}))}),
    );
    let Event::CancellationRejected(d) = ev else {
        panic!()
    };
    assert_eq!(
        d.cancellation_request.rejected_by.unwrap().id(),
        "66aa0000000000000000000a"
    );

    let ev = parse(
        "escrow.cancellation.accepted",
        json!({"escrow":escrow("cancelled"),
        "cancellationRequest":request("accepted", json!({"acceptedBy":seller}))}),
    );
    let Event::CancellationAccepted(d) = ev else {
        panic!()
    };
    assert_eq!(d.escrow.status, EscrowStatus::Cancelled);
    assert!(d.cancellation_request.accepted_by.is_some());

    // The shape of acceptedBy/rejectedBy is undocumented: a bare user id must parse too.
    let ev = parse(
        "escrow.cancellation.accepted",
        json!({"escrow":escrow("cancelled"),
        "cancellationRequest":request("accepted", json!({"acceptedBy":"66aa0000000000000000000a"}))}),
    );
    let Event::CancellationAccepted(d) = ev else {
        panic!()
    };
    let by = d.cancellation_request.accepted_by.unwrap();
    assert_eq!(by.id(), "66aa0000000000000000000a");
    assert_eq!(by.email(), None);

    // Another shape still is dropped, not the event (a rejection has no
    // `escrow.status.updated` beside it to tell the shop).
    for odd in [
        json!({"firstName":"Sami","lastName":"B"}),
        json!({"id":"66aa"}),
        json!(7),
    ] {
        let ev = parse(
            "escrow.cancellation.rejected",
            json!({"escrow":escrow("paid"),
            "cancellationRequest":request("rejected", json!({"rejectedBy":odd, "acceptedBy":odd, "requestedBy":odd}))}),
        );
        let Event::CancellationRejected(d) = ev else {
            panic!("{odd}")
        };
        assert!(d.cancellation_request.rejected_by.is_none(), "{odd}");
        assert_eq!(d.escrow.status, EscrowStatus::Paid);
    }
}

#[test]
fn escrow_updated() {
    let ev = parse(
        "escrow.updated",
        json!({"updatedFields":["amount","estimatedDeliveryDays"],
        "escrow":with(escrow("pending"), "amount", json!(320.5))}),
    );
    let Event::EscrowUpdated(d) = ev else {
        panic!()
    };
    assert_eq!(d.updated_fields, ["amount", "estimatedDeliveryDays"]);
    assert_eq!(d.escrow.amount, Some(dec!(320.5)));
    assert!(d.contract.is_none());

    let ev = parse(
        "escrow.updated",
        json!({"updatedFields":["contractTerms"],"escrow":escrow("pending"),
        "contract":{"id":"c1","terms":"Deliver the logo in SVG.","language":"fr"}}),
    );
    let Event::EscrowUpdated(d) = ev else {
        panic!()
    };
    assert_eq!(d.contract.unwrap().terms, "Deliver the logo in SVG.");
}

#[test]
fn deposit_proof_rejected() {
    // The guest-rejection example carries a reduced seller and no buyer.
    let e = json!({"id":"66aa00000000000000000003","title":"AI credits","amount":15,"escrowFee":0.75,
        "status":"pending","mode":"instant","seller":{"_id":"66aa0000000000000000000a","email":"s@x.tn"},"buyer":null});
    let ev = parse(
        "escrow.deposit_proof.rejected",
        json!({"escrow":e,
        "depositProof":{"id":"dp1","buyerEmail":"guest@x.tn","reason":"Receipt unreadable","amount":15,"method":"flouci"}}),
    );
    let Event::DepositProofRejected(d) = ev else {
        panic!()
    };
    assert_eq!(d.deposit_proof.method, Some(PaymentMethod::Flouci));
    assert_eq!(d.deposit_proof.amount, Some(dec!(15)));
    assert_eq!(d.escrow.escrow_fee, Some(dec!(0.75)));
    assert!(d.escrow.names_no_buyer() && d.escrow.buyer().is_none());
    assert_eq!(d.escrow.mode, Some(EscrowMode::Instant));
}

#[test]
fn delivery_rejected() {
    let e = with(
        with(escrow("paid"), "oldStatus", json!("delivered")),
        "deliveredAt",
        Value::Null,
    );
    let ev = parse(
        "escrow.delivery.rejected",
        json!({"escrow":e,
        "deliveryRejection":{"rejectedAt":"2026-07-05T10:00:00Z","previousDeliveredAt":"2026-07-04T10:00:00.000Z",
            "rejectedBy":"66aa0000000000000000000b"}}),
    );
    let Event::DeliveryRejected(d) = ev else {
        panic!()
    };
    assert_eq!(d.escrow.old_status, Some(EscrowStatus::Delivered));
    assert!(d.delivery_rejection.reason.is_none());
    assert_eq!(
        d.delivery_rejection.rejected_by.as_deref(),
        Some("66aa0000000000000000000b")
    );
}
