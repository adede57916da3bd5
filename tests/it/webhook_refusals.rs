//! Every way a webhook delivery is refused, and that a refusal stores nothing.

use crate::common::*;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

const ESCROW: &str = "66bb00000000000000000001";

#[sqlx::test(migrations = "./migrations")]
async fn refuses_bad_signatures_stale_timestamps_bad_json_and_huge_bodies(pool: PgPool) {
    let app = spawn_offline(pool).await;
    let d = sign(&status_event(escrow(
        ESCROW,
        "paid",
        "pending",
        "instant",
        OffsetDateTime::now_utc(),
    )));
    let with = |sig: Option<String>, ts: String| {
        let mut h = vec![
            ("content-type", "application/json".to_owned()),
            ("x-webhook-timestamp", ts),
        ];
        if let Some(s) = sig {
            h.push(("x-webhook-signature", s));
        }
        h
    };
    let now = dhmad::iso::format(OffsetDateTime::now_utc());
    let wrong = dhmad::webhook::sign("not-our-secret", &d.body);
    for (name, sig) in [
        ("wrong secret", Some(wrong)),
        ("missing", None),
        ("truncated", Some(d.signature[..40].to_owned())),
        ("not hex", Some("z".repeat(64))),
    ] {
        let r = app
            .post_webhook(d.body.clone(), &with(sig, now.clone()))
            .await;
        assert_eq!(r.status(), 401, "{name}");
    }
    // A body changed after signing. (White space added is the same JSON, which verifies by its
    // compact form: `dhmad::webhook`.)
    let tampered = String::from_utf8(d.body.clone())
        .unwrap()
        .replacen("\"paid\"", "\"cancelled\"", 1)
        .into_bytes();
    assert_ne!(tampered, d.body);
    assert_eq!(
        app.post_webhook(tampered, &with(Some(d.signature.clone()), now.clone()))
            .await
            .status(),
        401
    );

    let stale = dhmad::iso::format(OffsetDateTime::now_utc() - Duration::minutes(6));
    let future = dhmad::iso::format(OffsetDateTime::now_utc() + Duration::minutes(6));
    assert_eq!(
        app.post_webhook(d.body.clone(), &with(Some(d.signature.clone()), stale))
            .await
            .status(),
        400
    );
    assert_eq!(
        app.post_webhook(d.body.clone(), &with(Some(d.signature.clone()), future))
            .await
            .status(),
        400
    );

    let garbage = b"{\"id\": \"x\", oops".to_vec();
    let r = app
        .post_webhook(
            garbage.clone(),
            &with(Some(dhmad::webhook::sign(SECRET, &garbage)), now.clone()),
        )
        .await;
    assert_eq!(r.status(), 400, "malformed JSON");
    let not_envelope = br#"{"hello":"world"}"#.to_vec();
    let r = app
        .post_webhook(
            not_envelope.clone(),
            &with(
                Some(dhmad::webhook::sign(SECRET, &not_envelope)),
                now.clone(),
            ),
        )
        .await;
    assert_eq!(r.status(), 400, "JSON but no envelope");

    // An id or a type too long for the inbox's indexes (a 500 on every retry before).
    for (id, kind) in [
        ("i".repeat(5000), "escrow.status.updated".to_owned()),
        (uuid::Uuid::new_v4().to_string(), "t".repeat(5000)),
    ] {
        let long = serde_json::to_vec(&serde_json::json!({
            "id": id, "type": kind, "timestamp": now, "data": {}
        }))
        .unwrap();
        let r = app
            .post_webhook(
                long.clone(),
                &with(Some(dhmad::webhook::sign(SECRET, &long)), now.clone()),
            )
            .await;
        assert_eq!(
            r.status(),
            400,
            "an id of {} and a type of {}",
            id.len(),
            kind.len()
        );
    }

    let huge = vec![b' '; 1024 * 1024 + 1];
    let r = app
        .post_webhook(
            huge.clone(),
            &with(Some(dhmad::webhook::sign(SECRET, &huge)), now),
        )
        .await;
    assert_eq!(r.status(), 413);

    // Nothing was stored by any refusal.
    let stored = sqlx::query_scalar!("SELECT count(*) FROM webhook_inbox")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, Some(0));
}
