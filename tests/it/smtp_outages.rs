//! SMTP trouble. A server that goes silent mid-conversation (a stalled relay, a connection a
//! firewall dropped): the e-mail times out and is retried, and the outbox goes on to the jobs
//! behind it (before `SMTP_TIMEOUT_SECS` covered the conversation, the worker waited for ever
//! and the instant order's deliver never ran: DHMAD never released the money). A long outage:
//! the e-mail waits it out. A relay that never greets: the next try waits. An address refused
//! for good: given up at once.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};
use std::time::Duration;

use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::{sandbox::*, timeline};

/// How a fake relay misbehaves.
#[derive(Clone, Copy)]
enum Relay {
    /// Answers every command up to `DATA`, then reads on and never answers.
    SilentAfterData,
    /// Takes the message (`250`), then never answers `QUIT`.
    SilentOnQuit,
    /// Reads the message, then closes the connection without a word.
    HangsUpAfterData,
    /// Greets after 70 % of the e-mail's time (a tarpit), then takes the message.
    SlowToGreet,
    /// Takes the connection and never says a word (a relay at its process limit).
    NeverGreets,
    /// Refuses every recipient for good: no such user.
    RefusesRecipients,
}

/// A fake SMTP relay behaving as `relay` says; its URL, and the `RCPT` and `DATA` commands it
/// received.
async fn fake_relay(relay: Relay) -> (String, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let counts = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let seen = Arc::clone(&counts);
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                if let Relay::NeverGreets = relay {
                    // Read on, answer nothing, keep the connection open.
                    while let Ok(Some(_)) = lines.next_line().await {}
                    return;
                }
                if let Relay::SlowToGreet = relay {
                    tokio::time::sleep(time_for(relay).mul_f64(0.7)).await;
                }
                w.write_all(b"220 fake.test ESMTP\r\n").await.ok();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.to_ascii_uppercase();
                    let answer: &[u8] = if verb.starts_with("EHLO") {
                        b"250 fake.test\r\n"
                    } else if verb.starts_with("RCPT") {
                        seen.rcpt.fetch_add(1, Ordering::SeqCst);
                        match relay {
                            Relay::RefusesRecipients => {
                                b"550 5.1.1 <nobody@example.tn>: Recipient address rejected: User unknown\r\n"
                            }
                            _ => b"250 ok\r\n",
                        }
                    } else if verb.starts_with("DATA") {
                        seen.data.fetch_add(1, Ordering::SeqCst);
                        w.write_all(b"354 go ahead\r\n").await.ok();
                        if let Relay::SilentAfterData = relay {
                            while let Ok(Some(_)) = lines.next_line().await {}
                            return;
                        }
                        while let Ok(Some(line)) = lines.next_line().await {
                            if line == "." {
                                break;
                            }
                        }
                        if let Relay::HangsUpAfterData = relay {
                            return;
                        }
                        b"250 2.0.0 queued\r\n"
                    } else if verb.starts_with("QUIT") {
                        if let Relay::SilentOnQuit = relay {
                            // The e-mail is taken; the goodbye never comes.
                            while let Ok(Some(_)) = lines.next_line().await {}
                            return;
                        }
                        b"221 2.0.0 bye\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    w.write_all(answer).await.ok();
                }
            });
        }
    });
    (url, seen)
}

/// The time each e-mail is given (`SMTP_TIMEOUT_SECS`): a second, or three for the slow
/// greeter, whose remaining 30 % must hold four exchanges on a loaded machine.
fn time_for(relay: Relay) -> Duration {
    match relay {
        Relay::SlowToGreet => Duration::from_secs(3),
        _ => Duration::from_secs(1),
    }
}

/// A world whose e-mails go to a fake relay behaving as `relay` says, each given
/// [`time_for`] it.
async fn world_relaying_to(pool: PgPool, relay: Relay) -> (World, Arc<Seen>) {
    let (smtp_url, seen) = fake_relay(relay).await;
    let w = world(pool, |c| {
        c.smtp_url = Some(smtp_url.into());
        c.smtp_timeout = time_for(relay);
    })
    .await;
    (w, seen)
}

#[derive(Default)]
struct Seen {
    rcpt: AtomicUsize,
    data: AtomicUsize,
}

/// The `last_error` of the order's confirmation e-mail once it has one and its row matches
/// `state` (SQL over `outbox_jobs`).
async fn confirmation_error(pool: &PgPool, order: uuid::Uuid, state: &'static str) -> String {
    let sql = format!(
        "SELECT last_error FROM outbox_jobs
          WHERE order_id = $1 AND kind = 'email_confirmation' AND {state}"
    );
    let sql = &sql;
    crate::common::wait_for(state, 30, || async move {
        sqlx::query_scalar::<_, Option<String>>(sql)
            .bind(order)
            .fetch_optional(pool)
            .await
            .unwrap()
            .flatten()
    })
    .await
}

/// The confirmation e-mail's tries that may have left a copy.
async fn silent_tries(pool: &PgPool, order: uuid::Uuid) -> i32 {
    sqlx::query_scalar(
        "SELECT silent_tries FROM outbox_jobs
          WHERE order_id = $1 AND kind = 'email_confirmation'",
    )
    .bind(order)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn a_silent_smtp_server_delays_the_email_not_the_deliver(pool: PgPool) {
    let (w, seen) = world_relaying_to(pool.clone(), Relay::SilentAfterData).await;
    let s = w.checkout("ai-credits-500", "silent-smtp@example.tn").await;
    w.complete(&s.session_id).await;
    // The deliver runs although the confirmation e-mail, queued first, never gets an answer.
    let done = w.wait_status(s.order_id, "completed").await;
    assert!(done["digital_code"].is_string(), "{done}");
    // The e-mail's try ends on its own, after its timeout (delivers go first, so it may end
    // after the order completed).
    let error = confirmation_error(&pool, s.order_id, "attempts >= 1").await;
    assert!(error.contains("no answer within"), "{error}");
    assert!(
        seen.data.load(Ordering::SeqCst) >= 1,
        "the e-mail reached DATA"
    );

    // A server that goes silent after DATA may have taken the e-mail (a relay slower than our
    // timeout takes every copy): the third such try is the last, where each used to be
    // retried for a day, a copy to the buyer each time.
    sqlx::query(
        "UPDATE outbox_jobs SET attempts = 2, silent_tries = 2, run_after = now()
          WHERE order_id = $1 AND kind = 'email_confirmation' AND done_at IS NULL",
    )
    .bind(s.order_id)
    .execute(&pool)
    .await
    .unwrap();
    let error = confirmation_error(&pool, s.order_id, "gave_up_at IS NOT NULL").await;
    assert!(error.contains("may have arrived"), "{error}");
}

/// Tries an outage refused are not silent ones: an e-mail that waited out a refusing server is
/// not given up at the first try the relay, back but slow, leaves unanswered.
#[sqlx::test(migrations = "./migrations")]
async fn refused_tries_do_not_count_as_silent_ones(pool: PgPool) {
    let (w, _) = world_relaying_to(pool.clone(), Relay::SilentAfterData).await;
    let s = w.checkout("chechia-red", "after-outage@example.tn").await;
    let error =
        confirmation_error(&pool, s.order_id, "attempts >= 1 AND claimed_until IS NULL").await;
    assert!(error.contains("may have arrived"), "{error}");
    // Five refused tries behind it (the relay was down), then a silent one.
    sqlx::query(
        "UPDATE outbox_jobs SET attempts = 5, run_after = now()
          WHERE order_id = $1 AND kind = 'email_confirmation' AND done_at IS NULL",
    )
    .bind(s.order_id)
    .execute(&pool)
    .await
    .unwrap();
    confirmation_error(&pool, s.order_id, "attempts >= 6 AND claimed_until IS NULL").await;
    let gave_up: bool = sqlx::query_scalar(
        "SELECT gave_up_at IS NOT NULL FROM outbox_jobs
          WHERE order_id = $1 AND kind = 'email_confirmation'",
    )
    .bind(s.order_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!gave_up, "given up at its second silent try");
}

/// An SMTP server down for longer than a deliver's patience (twelve tries, 12-24 minutes):
/// the e-mail keeps being retried, where it used to be given up with nothing to queue it
/// again, and the confirmation is the only way an API buyer learns the order's link.
#[sqlx::test(migrations = "./migrations")]
async fn an_email_outlives_an_smtp_outage_longer_than_a_delivers_patience(pool: PgPool) {
    // A port nobody listens on (discard, 9: a port freed by another test could be handed to a
    // parallel one): every attempt is refused at once.
    let url = "smtp://127.0.0.1:9".to_owned();
    let w = world(pool.clone(), |c| c.smtp_url = Some(url.into())).await;
    let s = w.checkout("chechia-red", "outage@example.tn").await;
    // Twenty minutes of outage behind it: its thirteenth try is due now.
    sqlx::query(
        "UPDATE outbox_jobs SET attempts = 12, run_after = now()
          WHERE order_id = $1 AND kind = 'email_confirmation'",
    )
    .bind(s.order_id)
    .execute(&pool)
    .await
    .unwrap();
    let pool = &pool;
    let order = s.order_id;
    let (attempts, gave_up): (i32, bool) =
        crate::common::wait_for("the thirteenth try", 30, || async move {
            let row: (i32, bool) = sqlx::query_as(
                "SELECT attempts, gave_up_at IS NOT NULL FROM outbox_jobs
                  WHERE order_id = $1 AND kind = 'email_confirmation'
                    AND claimed_until IS NULL",
            )
            .bind(order)
            .fetch_optional(pool)
            .await
            .unwrap()?;
            // The thirteenth try's outcome is written (its claim cleared).
            (row.0 > 12).then_some(row)
        })
        .await;
    assert_eq!(attempts, 13);
    assert!(!gave_up, "given up after {attempts} tries");
}

/// An address its server refuses for good (550 5.1.1, no such user) is given up at the first
/// try, where it was tried for a day and the back office heard of it only then.
#[sqlx::test(migrations = "./migrations")]
async fn an_address_refused_for_good_is_given_up_at_once(pool: PgPool) {
    let (w, seen) = world_relaying_to(pool.clone(), Relay::RefusesRecipients).await;
    let s = w.checkout("chechia-red", "nobody@example.tn").await;
    let error = confirmation_error(&pool, s.order_id, "gave_up_at IS NOT NULL").await;
    assert!(error.contains("refused for good"), "{error}");
    let attempts: i32 = sqlx::query_scalar(
        "SELECT attempts FROM outbox_jobs WHERE order_id = $1 AND kind = 'email_confirmation'",
    )
    .bind(s.order_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(attempts, 1);
    assert_eq!(seen.rcpt.load(Ordering::SeqCst), 1);
    assert!(timeline(&pool, s.order_id)
        .await
        .iter()
        .any(|l| l.contains("gave up")));
}

/// A relay that takes the connection and says nothing may be stalled for a minute or two: the
/// next try waits ten minutes, where three tries a few seconds apart gave the e-mail up within
/// two minutes of a stall. Such a try sent nothing, so it is not one of the three that may
/// have left a copy: a relay overloaded for an hour used to lose every e-mail queued meanwhile.
#[sqlx::test(migrations = "./migrations")]
async fn a_relay_that_never_greets_is_tried_again_later_and_the_email_kept(pool: PgPool) {
    let (w, seen) = world_relaying_to(pool.clone(), Relay::NeverGreets).await;
    let s = w.checkout("chechia-red", "stalled@example.tn").await;
    let error =
        confirmation_error(&pool, s.order_id, "attempts >= 1 AND claimed_until IS NULL").await;
    assert!(error.contains("not sent"), "{error}");
    let row = || {
        sqlx::query_as::<_, (bool, f64, i32)>(
            "SELECT gave_up_at IS NOT NULL, extract(epoch FROM run_after - now())::float8,
                    silent_tries
               FROM outbox_jobs WHERE order_id = $1 AND kind = 'email_confirmation'",
        )
        .bind(s.order_id)
        .fetch_one(&pool)
    };
    let (gave_up, wait_secs, silent) = row().await.unwrap();
    assert!(!gave_up);
    assert!(wait_secs > 9.0 * 60.0, "next try in {wait_secs} s");
    assert_eq!(silent, 0, "nothing was sent");
    assert_eq!(
        seen.rcpt.load(Ordering::SeqCst),
        0,
        "never got past the greeting"
    );
    // Two tries that may have left a copy behind it: this one still is not the last.
    sqlx::query(
        "UPDATE outbox_jobs SET silent_tries = 2, run_after = now()
          WHERE order_id = $1 AND kind = 'email_confirmation' AND done_at IS NULL",
    )
    .bind(s.order_id)
    .execute(&pool)
    .await
    .unwrap();
    confirmation_error(&pool, s.order_id, "attempts >= 2 AND claimed_until IS NULL").await;
    let (gave_up, _, silent) = row().await.unwrap();
    assert!(!gave_up, "given up though nothing was ever sent");
    assert_eq!(silent, 2);
}

/// The server took the e-mail (`250`) and then never answered `QUIT`: the e-mail is sent, once.
/// The goodbye used to be awaited within the e-mail's timeout, so a sent e-mail counted as
/// unanswered and went out again, a code sent twice.
#[sqlx::test(migrations = "./migrations")]
async fn an_email_the_server_took_is_sent_though_its_goodbye_gets_no_answer(pool: PgPool) {
    let (w, seen) = world_relaying_to(pool.clone(), Relay::SilentOnQuit).await;
    let s = w.checkout("chechia-red", "no-goodbye@example.tn").await;
    let order = s.order_id;
    let pool = &pool;
    let (error, silent): (Option<String>, i32) =
        crate::common::wait_for("the e-mail sent", 30, || async move {
            sqlx::query_as(
                "SELECT last_error, silent_tries FROM outbox_jobs
                  WHERE order_id = $1 AND kind = 'email_confirmation' AND done_at IS NOT NULL",
            )
            .bind(order)
            .fetch_optional(pool)
            .await
            .unwrap()
        })
        .await;
    assert_eq!(error, None);
    assert_eq!(silent, 0);
    assert_eq!(seen.data.load(Ordering::SeqCst), 1, "sent once");
}

/// A connection that breaks after the message left, before its answer, may have delivered it:
/// one of the three tries that may leave a copy, not a refusal retried for a day.
#[sqlx::test(migrations = "./migrations")]
async fn a_connection_cut_after_the_message_counts_as_a_try_that_may_have_arrived(pool: PgPool) {
    let (w, seen) = world_relaying_to(pool.clone(), Relay::HangsUpAfterData).await;
    let s = w.checkout("chechia-red", "cut@example.tn").await;
    let error =
        confirmation_error(&pool, s.order_id, "attempts >= 1 AND claimed_until IS NULL").await;
    assert!(error.contains("may have arrived"), "{error}");
    let silent = silent_tries(&pool, s.order_id).await;
    assert_eq!(silent, 1);
    assert_eq!(seen.data.load(Ordering::SeqCst), 1);
}

/// A server that took most of the e-mail's time to get to the message (a tarpit's slow
/// greeting): the message is not sent into the little time left, where a timed-out answer
/// would count as a copy that may have arrived. The try sent nothing and is retried.
#[sqlx::test(migrations = "./migrations")]
async fn a_slow_greeting_leaves_the_message_unsent_not_maybe_sent(pool: PgPool) {
    let (w, seen) = world_relaying_to(pool.clone(), Relay::SlowToGreet).await;
    let s = w.checkout("chechia-red", "tarpit@example.tn").await;
    let error =
        confirmation_error(&pool, s.order_id, "attempts >= 1 AND claimed_until IS NULL").await;
    assert!(error.contains("not sent"), "{error}");
    let silent = silent_tries(&pool, s.order_id).await;
    assert_eq!(silent, 0);
    // It got as far as DATA (the go-ahead) and stopped there: sent, the message would have
    // been taken at once, and the e-mail done.
    assert_eq!(seen.data.load(Ordering::SeqCst), 1);
}
