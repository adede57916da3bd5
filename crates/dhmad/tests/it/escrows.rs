//! Escrow and session wire types against the examples of `docs/dhmad-api.md` §2 and §3.

use dhmad::{
    CheckoutAction, CreateEscrow, CreateSession, CreatedEscrow, Currency, Escrow, EscrowEnvelope,
    EscrowList, EscrowMode, EscrowStatus, PartyRef, SessionEnvelope, SessionStatus,
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::json;

/// §2.1, GET detail, standard mode, paid.
const GET_DETAIL: &str = r#"{"escrow":{"id":"66aa00000000000000000001","_id":"66aa00000000000000000001","title":"Logo pack","amount":300,
 "escrowFee":15,"status":"paid","mode":"standard",
 "seller":{"_id":"66aa0000000000000000000a","email":"s@x.tn","firstName":"Sami","lastName":"B"},
 "buyer":{"_id":"66aa0000000000000000000b","email":"b@x.tn","firstName":"Ines","lastName":"K"},
 "estimatedDeliveryDays":5,"expiresAt":"2026-08-01T09:00:00Z","paidAt":"2026-07-02T09:00:00Z",
 "deliveredAt":null,"completedAt":null,"cancelledAt":null,"createdAt":"2026-07-01T09:00:00Z",
 "updatedAt":"2026-07-02T09:00:00Z","createdViaThirdParty":true,"createdByApplicationName":"ShopX",
 "disputeTicketId":null,"disputeTicket":null,
 "signatures":{"sellerSigned":true,"sellerSignedAt":"2026-07-01T09:01:00Z","buyerSigned":true,
  "buyerSignedAt":"2026-07-01T12:00:00Z","isFullySigned":true,"signedAt":"2026-07-01T12:00:00Z"}}}"#;

/// §3.3, create response, quick mode, invited seller.
const CREATED: &str = r#"{"message":"Escrow created successfully",
 "escrow":{"id":"66aa00000000000000000002","title":"Used bike","amount":420,"currency":"TND","amountTnd":420,
  "escrowFee":21,"developerFee":8.4,"developerFeePercentage":2,"status":"pending","mode":"quick",
  "seller":null,"sellerEmail":"s@x.tn","buyer":null,"buyerEmail":"b@x.tn","estimatedDeliveryDays":4,
  "createdAt":"2026-07-01T09:00:00.000Z"},
 "contract":null}"#;

fn ts(s: &str) -> time::OffsetDateTime {
    dhmad::iso::parse(s).unwrap()
}

#[test]
fn get_detail_example() {
    let e = serde_json::from_str::<EscrowEnvelope>(GET_DETAIL)
        .unwrap()
        .escrow;
    assert_eq!(e.id, "66aa00000000000000000001");
    assert_eq!(e.underscore_id.as_deref(), Some("66aa00000000000000000001"));
    assert_eq!(e.status, EscrowStatus::Paid);
    assert_eq!(e.mode, Some(EscrowMode::Standard));
    assert!(
        matches!(&e.seller, Some(PartyRef::User(u)) if u.first_name.as_deref() == Some("Sami"))
    );
    assert_eq!(e.buyer().unwrap().id(), "66aa0000000000000000000b");
    assert!(!e.names_no_buyer());
    assert_eq!(e.paid_at, Some(ts("2026-07-02T09:00:00Z")));
    assert!(e.delivered_at.is_none() && e.completed_at.is_none() && e.cancelled_at.is_none());
    assert_eq!(e.created_via_third_party, Some(true));
    let sig = e.signatures.unwrap();
    assert!(sig.is_fully_signed && sig.seller_signed && sig.buyer_signed);
    assert_eq!(sig.signed_at, Some(ts("2026-07-01T12:00:00Z")));
    assert!(e.dispute_ticket.is_none());
}

#[test]
fn create_response_example_keeps_decimals_exact() {
    let c: CreatedEscrow = serde_json::from_str(CREATED).unwrap();
    let e = &c.escrow;
    assert_eq!(e.developer_fee, Some(dec!(8.4)));
    assert_eq!(e.developer_fee.unwrap().to_string(), "8.4");
    assert_eq!(e.amount_tnd, Some(dec!(420)));
    assert_eq!(e.currency, Some(Currency::Tnd));
    assert!(e.seller.is_none());
    assert_eq!(e.seller_email(), Some("s@x.tn"));
    assert_eq!(e.buyer_email(), Some("b@x.tn"));
    assert!(c.contract.is_none() && c.url.is_none() && c.tracking_id.is_none());
    // Written back as the same JSON numbers.
    let out = serde_json::to_value(e).unwrap();
    assert_eq!(out["developerFee"], json!(8.4));
    assert_eq!(out["amount"], json!(420));
    assert_eq!(serde_json::to_string(&out["developerFee"]).unwrap(), "8.4");
}

#[test]
fn seller_as_id_object_or_null() {
    let base = json!({"id":"e","status":"pending"});
    let parse = |seller: serde_json::Value| {
        let mut v = base.clone();
        v["seller"] = seller;
        serde_json::from_value::<Escrow>(v).unwrap().seller
    };
    let id = parse(json!("66aa0000000000000000000a")).unwrap();
    assert_eq!(id, PartyRef::Id("66aa0000000000000000000a".into()));
    assert_eq!(id.email(), None);
    let obj = parse(json!({"_id":"66aa0000000000000000000a","email":"s@x.tn"})).unwrap();
    assert_eq!(obj.id(), "66aa0000000000000000000a");
    assert_eq!(obj.email(), Some("s@x.tn"));
    assert!(parse(serde_json::Value::Null).is_none());
    // Absent is the same as null.
    assert!(serde_json::from_value::<Escrow>(base)
        .unwrap()
        .seller
        .is_none());
}

#[test]
fn timestamps_with_and_without_millis() {
    let a: Escrow =
        serde_json::from_str(r#"{"id":"e","status":"paid","paidAt":"2026-07-02T09:00:00Z"}"#)
            .unwrap();
    let b: Escrow =
        serde_json::from_str(r#"{"id":"e","status":"paid","paidAt":"2026-07-02T09:00:00.000Z"}"#)
            .unwrap();
    let c: Escrow = serde_json::from_str(
        r#"{"id":"e","status":"paid","paidAt":"2026-07-02T09:00:00.123456Z"}"#,
    )
    .unwrap();
    assert_eq!(a.paid_at, b.paid_at);
    assert_eq!(c.paid_at.unwrap().millisecond(), 123);
    // Written in JavaScript's toISOString() form.
    assert_eq!(
        serde_json::to_value(&a).unwrap()["paidAt"],
        "2026-07-02T09:00:00.000Z"
    );
    assert!(
        serde_json::from_str::<Escrow>(r#"{"id":"e","status":"paid","paidAt":"yesterday"}"#)
            .is_err()
    );
}

#[test]
fn decimals_are_exact_both_ways() {
    for (text, expected) in [
        ("8.4", dec!(8.4)),
        ("0.1", dec!(0.1)),
        ("0.01", dec!(0.01)),
        ("1234567.891", dec!(1234567.891)),
        ("300", dec!(300)),
        ("300.0", dec!(300)),
        ("\"12.345\"", dec!(12.345)),
    ] {
        let e: Escrow =
            serde_json::from_str(&format!(r#"{{"id":"e","status":"paid","amount":{text}}}"#))
                .unwrap();
        assert_eq!(e.amount, Some(expected), "{text}");
    }
    let e: Escrow = serde_json::from_str(r#"{"id":"e","status":"paid","amount":null}"#).unwrap();
    assert_eq!(e.amount, None);
    let req = CreateEscrow::new("t", dec!(0.30), "b@x.tn");
    assert_eq!(serde_json::to_value(&req).unwrap()["amount"], json!(0.3));
    let req = CreateEscrow::new("t", Decimal::new(1500, 2), "b@x.tn");
    assert_eq!(
        serde_json::to_string(&req).unwrap(),
        r#"{"title":"t","amount":15,"buyerEmail":"b@x.tn"}"#
    );
}

#[test]
fn unknown_enum_values_are_kept() {
    let e: Escrow = serde_json::from_str(
        r#"{"id":"e","status":"refunding","mode":"charge","currency":"GBP","proofInfo":{"phase":"escalated_twice"}}"#,
    )
    .unwrap();
    assert_eq!(e.status, EscrowStatus::Unknown("refunding".into()));
    assert!(!e.status.is_known() && !e.status.is_terminal());
    assert_eq!(e.mode.as_ref().unwrap().to_string(), "charge");
    assert_eq!(e.currency, Some(Currency::Unknown("GBP".into())));
    assert_eq!(
        e.proof_info.unwrap().phase.unwrap().as_str(),
        "escalated_twice"
    );
    for s in EscrowStatus::KNOWN {
        assert_eq!(EscrowStatus::from(*s).as_str(), *s);
    }
}

#[test]
fn null_collections_read_as_empty() {
    let s: SessionEnvelope = serde_json::from_str(
        r#"{"session":{"sessionId":"0b6f5a52-1f7e-4b8e-9d51-7c1d2e3f4a5b","escrowId":"e","action":"accept_pay",
        "targetUserEmail":"b@x.tn","status":"pending","metadata":null,"expiresAt":"2026-07-02T09:30:00Z",
        "completedAt":null,"createdAt":"2026-07-02T09:00:00Z"}}"#,
    )
    .unwrap();
    assert!(s.session.metadata.is_empty());
    let e: Escrow = serde_json::from_str(r#"{"id":"e","status":"paid","title":null}"#).unwrap();
    assert_eq!(e.title, "");
}

#[test]
fn session_types() {
    let s: SessionEnvelope = serde_json::from_str(
        r#"{"session":{"sessionId":"0b6f5a52-1f7e-4b8e-9d51-7c1d2e3f4a5b","escrowId":"66aa00000000000000000001",
        "action":"accept_pay","targetUserEmail":"b@x.tn","status":"completed","metadata":{"order_id":"42"},
        "expiresAt":"2026-07-02T09:30:00.000Z","completedAt":"2026-07-02T09:10:00Z","createdAt":"2026-07-02T09:00:00Z"}}"#,
    )
    .unwrap();
    assert_eq!(s.session.action, CheckoutAction::AcceptPay);
    assert_eq!(s.session.status, SessionStatus::Completed);
    assert_eq!(s.session.metadata["order_id"], "42");

    let req = CreateSession::new(
        CheckoutAction::AcceptPay,
        "b@x.tn",
        "https://shop.tn/checkout/callback",
    )
    .metadata("order_id", "42");
    assert_eq!(
        serde_json::to_string(&req).unwrap(),
        r#"{"action":"accept_pay","targetUserEmail":"b@x.tn","redirectUrl":"https://shop.tn/checkout/callback","metadata":{"order_id":"42"}}"#
    );
    assert_eq!(CheckoutAction::KNOWN.len(), 10);
}

#[test]
fn list_response() {
    let list: EscrowList = serde_json::from_str(
        r#"{"escrows":[{"id":"e1","title":"A","amount":10.5,"escrowFee":0.53,"status":"completed","mode":"instant",
        "seller":{"_id":"s","email":"s@x.tn","firstName":"S","lastName":"B"},"buyer":null,"estimatedDeliveryDays":1,
        "paidAt":"2026-07-01T09:00:00Z","deliveredAt":"2026-07-01T10:00:00Z","completedAt":"2026-07-01T10:00:00Z",
        "cancelledAt":null,"createdAt":"2026-07-01T08:00:00Z","updatedAt":"2026-07-01T10:00:00Z"}],
        "pagination":{"page":1,"limit":20,"total":1,"pages":1}}"#,
    )
    .unwrap();
    assert_eq!(list.escrows[0].escrow_fee, Some(dec!(0.53)));
    assert!(list.escrows[0].status.is_terminal());
    assert_eq!(list.pagination.total, 1);

    // The contract gives the pagination no types: a server echoing its query string sends text.
    let list: EscrowList = serde_json::from_str(
        r#"{"escrows":[],"pagination":{"page":"2","limit":"100","total":250.0,"pages":"3"}}"#,
    )
    .unwrap();
    let p = &list.pagination;
    assert_eq!((p.page, p.limit, p.total, p.pages), (2, 100, 250, 3));
}

/// The hint fields of an escrow are "number" in DHMAD's contract and the keys of `proofInfo`
/// are UNSTATED: an odd value there must not make the whole escrow, and with it the webhook
/// that carries it, unreadable.
#[test]
fn odd_hint_fields_do_not_make_the_escrow_unreadable() {
    let cases = [
        (r#""estimatedDeliveryDays":5.0"#, "days 5.0"),
        (r#""estimatedDeliveryDays":2.5"#, "days 2.5"),
        (r#""estimatedDeliveryDays":"5""#, "days as text"),
        (
            r#""fulfillmentPolicy":{"type":"purchase_proof_required","proofUploadDeadlineHours":12.5,"buyerReviewDeadlineHours":48.0}"#,
            "hours",
        ),
        (
            r#""fulfillmentPolicy":{"proofUploadDeadlineHours":24}"#,
            "no type",
        ),
        (
            r#""fulfillmentPolicy":"purchase_proof_required""#,
            "policy as text",
        ),
        (
            r#""proofInfo":{"phase":null,"uploadDeadline":null,"correctionRounds":1.0}"#,
            "null phase",
        ),
        (r#""proofInfo":{"uploadDeadline":null}"#, "no phase"),
        (
            r#""proofInfo":{"phase":"accepted","uploadDeadline":1767225600000,"reviewDeadline":{"at":"x"}}"#,
            "deadlines not as timestamps",
        ),
    ];
    for (extra, what) in cases {
        let e: Escrow = serde_json::from_str(&format!(r#"{{"id":"e","status":"paid",{extra}}}"#))
            .unwrap_or_else(|err| panic!("{what}: {err}"));
        assert_eq!(e.status, EscrowStatus::Paid, "{what}");
    }
    let e: Escrow = serde_json::from_str(
        r#"{"id":"e","status":"paid","estimatedDeliveryDays":5.0,"fulfillmentPolicy":{"type":"purchase_proof_required","proofUploadDeadlineHours":12.5,"buyerReviewDeadlineHours":48.0},"proofInfo":{"phase":null,"correctionRounds":2.0}}"#,
    )
    .unwrap();
    assert_eq!(e.estimated_delivery_days, Some(5));
    let policy = e.fulfillment_policy.unwrap();
    assert_eq!(
        (
            policy.proof_upload_deadline_hours,
            policy.buyer_review_deadline_hours
        ),
        (None, Some(48))
    );
    let proof = e.proof_info.unwrap();
    assert_eq!((proof.phase, proof.correction_rounds), (None, Some(2)));
    // A deadline that does not read as a timestamp is no deadline; the phase still reads.
    let e: Escrow = serde_json::from_str(
        r#"{"id":"e","status":"paid","proofInfo":{"phase":"accepted","uploadDeadline":1767225600000,"reviewDeadline":"2026-07-03T09:00:00Z"}}"#,
    )
    .unwrap();
    let proof = e.proof_info.unwrap();
    assert_eq!(proof.phase.unwrap().as_str(), "accepted");
    assert_eq!(proof.upload_deadline, None);
    assert_eq!(
        proof.review_deadline,
        Some(dhmad::iso::parse("2026-07-03T09:00:00Z").unwrap())
    );
    // Left out, it is not taken for 0.
    let e: Escrow =
        serde_json::from_str(r#"{"id":"e","status":"paid","proofInfo":{"phase":null}}"#).unwrap();
    assert_eq!(e.proof_info.unwrap().correction_rounds, None);
}

/// `"buyer": null` says there is none (a guest paid, or nobody yet); a snapshot that leaves the
/// field out (webhook snapshots vary, §6.4) says nothing, and a shop must not take a wallet
/// payer for a guest on it. Both write back as they came.
#[test]
fn a_null_buyer_is_not_a_missing_one() {
    let null: Escrow = serde_json::from_str(r#"{"id":"a","status":"paid","buyer":null}"#).unwrap();
    let missing: Escrow = serde_json::from_str(r#"{"id":"a","status":"paid"}"#).unwrap();
    assert!(null.names_no_buyer() && null.buyer().is_none());
    assert!(!missing.names_no_buyer() && missing.buyer().is_none());
    assert_ne!(null, missing);
    assert_eq!(
        serde_json::to_value(&null).unwrap()["buyer"],
        serde_json::Value::Null
    );
    assert!(serde_json::to_value(&missing)
        .unwrap()
        .get("buyer")
        .is_none());
}
