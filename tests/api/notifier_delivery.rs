//! Delivery through real RabbitMQ and Postgres to the Twilio-compatible server: temporary
//! failures are retried until the provider recovers, permanent ones are dead-lettered with
//! their reason, a message published twice reaches the person once, and a message whose
//! answer was lost is looked up, or follows the `in_doubt` policy where it cannot be.

use std::time::Duration;

use drawbridge_domain::Language;
use drawbridge_platform::config::InDoubt;
use drawbridge_platform::outbox::{Channel, Notification, Reference};
use drawbridge_test_support::{eventually, spawn_notifier, spawn_with, Components, Settled, TestApp};
use lapin::options::BasicGetOptions;
use uuid::Uuid;

async fn enqueue_code(app: &TestApp, phone: &str) -> Uuid {
    let mut tx = app.pool.begin().await.unwrap();
    let notification = Notification::VerificationCode {
        code: "123456".into(),
        valid_minutes: 10,
    };
    let id = app
        .enqueue(
            &mut tx,
            Uuid::new_v4(),
            Channel::Sms,
            phone,
            Language::En,
            &notification,
        )
        .await;
    tx.commit().await.unwrap();
    id
}

async fn enqueue_email(app: &TestApp, to: &str) -> Uuid {
    let notification = &drawbridge_notifier::render::examples()[1];
    let mut tx = app.pool.begin().await.unwrap();
    let id = app
        .enqueue(
            &mut tx,
            Uuid::new_v4(),
            Channel::Email,
            to,
            Language::De,
            notification,
        )
        .await;
    tx.commit().await.unwrap();
    id
}

/// `count` codes to distinct phones (or email addresses), committed together.
async fn enqueue_burst(app: &TestApp, count: usize, channel: Channel) {
    let mut tx = app.pool.begin().await.unwrap();
    for n in 0..count {
        let notification = Notification::VerificationCode {
            code: format!("{n:06}"),
            valid_minutes: 10,
        };
        let recipient = match channel {
            Channel::Sms => format!("+4917120{n:05}"),
            Channel::Email => format!("person{n}@example.de"),
        };
        app.enqueue(
            &mut tx,
            Uuid::new_v4(),
            channel,
            &recipient,
            Language::De,
            &notification,
        )
        .await;
    }
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_provider_failures_are_retried_until_it_recovers() {
    let app = spawn_notifier().await;
    app.twilio.fail_next(&[500, 429]);
    let id = enqueue_code(&app, "+491710000001").await;
    let done = eventually(Duration::from_secs(20), || app.settled(id))
        .await
        .expect("delivered after retries");
    assert_eq!((done.state.as_str(), done.attempts), ("sent", 3));
    assert_eq!(app.twilio.requests(), 3);
    assert_eq!(app.twilio.accepted().len(), 1, "delivered once");
    assert!(app.twilio.accepted()[0].body.contains("123456"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_send_is_retried_without_asking_the_provider() {
    let app = spawn_notifier().await;
    // As in the fault run: a provider without the optional message list.
    app.twilio.list_answers(405);
    app.twilio.fail_next(&[429]);
    let id = enqueue_code(&app, "+491710000006").await;
    let Settled { state, attempts, .. } = eventually(Duration::from_secs(20), || app.settled(id))
        .await
        .expect("settled");
    assert_eq!((state.as_str(), attempts), ("sent", 2));
    assert_eq!(app.twilio.lookups(), 0, "a 429 means not sent: nothing to ask");
    assert_eq!(app.twilio.accepted().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_found_in_the_message_list_and_not_sent_again() {
    let app = spawn_notifier().await;
    app.twilio.accept_then_fail_next(&[500]);
    let id = enqueue_code(&app, "+491710000007").await;
    let Settled {
        state,
        attempts,
        provider_id,
        ..
    } = eventually(Duration::from_secs(20), || app.settled(id))
        .await
        .expect("settled");
    assert_eq!((state.as_str(), attempts), ("sent", 2));
    let accepted = app.twilio.accepted();
    assert_eq!(accepted.len(), 1, "sent once");
    assert_eq!(provider_id.as_deref(), Some(accepted[0].sid.as_str()));
    assert_eq!((app.twilio.requests(), app.twilio.lookups()), (1, 1));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_from_a_provider_without_a_message_list_is_sent_again_and_recorded_so() {
    let app = spawn_notifier().await;
    app.twilio.list_answers(405);
    app.twilio.fail_next(&[500]);
    let id = enqueue_code(&app, "+491710000008").await;
    let Settled {
        state,
        attempts,
        detail,
        ..
    } = eventually(Duration::from_secs(20), || app.settled(id))
        .await
        .expect("settled, not dead-lettered");
    assert_eq!((state.as_str(), attempts), ("sent", 2));
    // The record says the person may have it twice, for whoever asks why.
    let detail = detail.unwrap_or_default();
    assert!(
        detail.starts_with(drawbridge_notifier::RESENT_IN_DOUBT),
        "{detail}"
    );
    assert_eq!((app.twilio.requests(), app.twilio.lookups()), (2, 1));
    assert_eq!(app.twilio.accepted().len(), 1);
    let metrics = app.metrics(app.notifier_address.as_ref().unwrap()).await;
    assert!(metrics.contains(
        r#"drawbridge_notifier_messages_resent_in_doubt_total{channel="sms",kind="verification_code"} 1"#
    ));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_without_a_message_list_is_dead_lettered_if_the_policy_says_so() {
    let app = spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        |s| s.notifier.sms.in_doubt = InDoubt::DeadLetter,
    )
    .await;
    app.twilio.list_answers(405);
    app.twilio.fail_next(&[500]);
    let id = enqueue_code(&app, "+491710000009").await;
    let Settled {
        state,
        attempts,
        detail,
        ..
    } = eventually(Duration::from_secs(20), || app.settled(id))
        .await
        .expect("settled");
    assert_eq!((state.as_str(), attempts), ("dead", 2));
    let detail = detail.unwrap();
    assert!(detail.contains("in doubt") && detail.contains("405"), "{detail}");
    assert_eq!(app.twilio.requests(), 1, "not sent again");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_whose_reply_was_lost_is_sent_again_unless_the_policy_says_dead_letter() {
    let app = spawn_notifier().await;
    app.smtp.drop_reply_next(1);
    let id = enqueue_email(&app, "clara@example.de").await;
    let Settled {
        state,
        attempts,
        provider_id,
        ..
    } = eventually(Duration::from_secs(20), || app.settled(id))
        .await
        .expect("settled");
    assert_eq!((state.as_str(), attempts), ("sent", 2));
    let accepted = app.smtp.accepted();
    assert_eq!(
        accepted.len(),
        2,
        "SMTP cannot be asked: the person may get it twice"
    );
    assert_eq!(
        provider_id.as_deref(),
        accepted[1].message_id(),
        "recorded with the Message-ID of the copy that was answered"
    );
    assert_ne!(accepted[0].message_id(), accepted[1].message_id());
    app.stop().await;

    let app = spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        |s| s.notifier.email.in_doubt = InDoubt::DeadLetter,
    )
    .await;
    app.smtp.drop_reply_next(1);
    let id = enqueue_email(&app, "dora@example.de").await;
    let Settled {
        state,
        attempts,
        detail,
        ..
    } = eventually(Duration::from_secs(20), || app.settled(id))
        .await
        .expect("settled");
    assert_eq!((state.as_str(), attempts), ("dead", 2));
    assert!(detail.unwrap().contains("SMTP"));
    assert_eq!(app.smtp.accepted().len(), 1, "not sent again");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_hangs_times_out_and_the_retry_asks_before_sending() {
    let app = spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        |s| {
            s.notifier.sms.timeout_seconds = 1;
        },
    )
    .await;
    app.twilio.hang_next(1);
    let id = enqueue_code(&app, "+491710000005").await;
    let Settled { state, attempts, .. } = eventually(Duration::from_secs(20), || app.settled(id))
        .await
        .expect("settled");
    assert_eq!((state.as_str(), attempts), ("sent", 2));
    assert_eq!(app.twilio.accepted().len(), 1, "sent once");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_send_does_not_hold_back_the_messages_behind_it() {
    let app = spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        |s| {
            // Two batches of two in flight and four unacknowledged messages at most: were the
            // later batches' acknowledgements held back behind the hanging one, the broker
            // would stop delivering until the hang ends.
            s.notifier.concurrency = 4;
            s.amqp.prefetch = 4;
        },
    )
    .await;
    app.twilio.hang_next(1);
    enqueue_burst(&app, 40, Channel::Sms).await;
    // The hang lasts 3 s.
    let others = eventually(Duration::from_secs(2), || async {
        (app.twilio.accepted_count() >= 39).then_some(())
    })
    .await;
    assert!(
        others.is_some(),
        "only {} of the other 39 sent while one send hung",
        app.twilio.accepted_count()
    );
    let all = eventually(Duration::from_secs(20), || async {
        (app.sent_count().await == 40).then_some(())
    })
    .await;
    assert!(all.is_some(), "the hung message is retried and sent");
    assert_eq!(app.twilio.accepted_count(), 40, "each sent once");
    app.stop().await;
}

/// A redelivered message in doubt is looked up once its attempt's timeout and grace have passed
/// since the attempt was claimed, so no request of that attempt may reach the provider later:
/// a send still waiting for its turn at the send rate when too little of the timeout is left
/// waits for the next attempt instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_is_sent_within_its_attempts_timeout_however_long_its_turn_at_the_rate() {
    let app = spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        |s| {
            s.notifier.sms.messages_per_second = 1;
            s.notifier.sms.timeout_seconds = 2;
        },
    )
    .await;
    let queued = std::time::Instant::now();
    // Claimed together, they would go out 0, 1, 2 and 3 s after the claim at one a second.
    enqueue_burst(&app, 4, Channel::Sms).await;
    let all = eventually(Duration::from_secs(30), || async {
        (app.sent_count().await == 4).then_some(())
    })
    .await;
    assert!(all.is_some(), "{} of 4 sent", app.sent_count().await);
    let accepted = app.twilio.accepted();
    assert_eq!(accepted.len(), 4, "each sent once");
    for sms in accepted {
        let attempts: i32 =
            sqlx::query_scalar("SELECT attempts FROM deliveries WHERE provider_message_id = $1")
                .bind(&sms.sid)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        let taken = sms.accepted_at - queued;
        assert!(
            attempts > 1 || taken < Duration::from_secs(2),
            "{} taken {taken:?} after it was queued, in its first attempt: past the attempt's 2 s",
            sms.to
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_is_dead_lettered_with_its_reason_and_not_retried() {
    let app = spawn_notifier().await;
    app.twilio.fail_next(&[400]);
    let id = enqueue_code(&app, "+491710000002").await;
    let Settled {
        state,
        attempts,
        detail,
        ..
    } = eventually(Duration::from_secs(20), || app.settled(id))
        .await
        .expect("settled");
    assert_eq!((state.as_str(), attempts), ("dead", 1));
    let detail = detail.unwrap();
    assert!(
        detail.contains("21211") && detail.contains("not a valid phone number"),
        "{detail}"
    );

    let connection = drawbridge_platform::amqp::connect_once(&app.settings.amqp)
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let dead_queue = format!("{}.dead", app.settings.amqp.prefix);
    let dead = eventually(Duration::from_secs(5), || async {
        channel
            .basic_get(&dead_queue, BasicGetOptions { no_ack: true })
            .await
            .unwrap()
    })
    .await
    .expect("the message waits in the dead-letter queue");
    let message: Reference = serde_json::from_slice(&dead.delivery.data).unwrap();
    assert_eq!(message.id, id);
    let headers = dead.delivery.properties.headers().clone().unwrap();
    let reason = match headers.inner().get("x-drawbridge-reason") {
        Some(lapin::types::AMQPValue::LongString(reason)) => {
            String::from_utf8_lossy(reason.as_bytes()).into_owned()
        }
        other => panic!("no reason header: {other:?}"),
    };
    assert!(reason.contains("21211"), "{reason}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.twilio.requests(), 1, "a permanent failure is never retried");
    let _ = connection.close(200, "done").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_end_in_the_dead_letter_queue_when_the_provider_never_recovers() {
    let app = spawn_notifier().await;
    app.twilio.fail_next(&[503; 10]);
    let id = enqueue_code(&app, "+491710000003").await;
    let Settled {
        state,
        attempts,
        detail,
        ..
    } = eventually(Duration::from_secs(30), || app.settled(id))
        .await
        .expect("settled");
    // Three retry delays configured: the fourth failure gives up.
    assert_eq!((state.as_str(), attempts), ("dead", 4));
    assert!(detail.unwrap().contains("gave up after 4 attempts"));
    assert!(app.twilio.accepted().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_twice_reaches_the_person_once() {
    let app = spawn_notifier().await;
    let id = enqueue_code(&app, "+491710000004").await;
    eventually(Duration::from_secs(20), || app.settled(id))
        .await
        .expect("delivered");

    // Simulate a relay that crashed after the broker's confirm but before marking the row.
    let message = Reference {
        id,
        channel: Channel::Sms,
        kind: "verification_code".into(),
    };
    app.publish(&message, 2).await;
    let notifier = app.notifier_address.clone().unwrap();
    let duplicates = eventually(Duration::from_secs(10), || async {
        let metrics = app.metrics(&notifier).await;
        metrics
            .contains(
                r#"drawbridge_notifier_messages_duplicate_total{channel="sms",kind="verification_code"} 2"#,
            )
            .then_some(())
    })
    .await;
    assert!(
        duplicates.is_some(),
        "both copies were recognised as already sent"
    );
    assert_eq!(app.twilio.accepted().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_notifiers_share_a_burst_and_send_each_message_once() {
    let app = spawn_notifier().await;
    let second_shutdown = tokio_util::sync::CancellationToken::new();
    let mut second_settings = app.settings.clone();
    second_settings.notifier.listen = "127.0.0.1:0".parse().unwrap();
    let second = drawbridge_notifier::build(&second_settings, second_shutdown.clone())
        .await
        .unwrap();
    let second = tokio::spawn(second.run_until_stopped());

    enqueue_burst(&app, 300, Channel::Sms).await;
    let all = eventually(Duration::from_secs(60), || async {
        (app.sent_count().await == 300).then_some(())
    })
    .await;
    assert!(all.is_some(), "all 300 delivered");
    let mut recipients: Vec<String> = app.twilio.accepted().into_iter().map(|sms| sms.to).collect();
    assert_eq!(recipients.len(), 300, "no message sent twice");
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 300);
    second_shutdown.cancel();
    second.await.unwrap().unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_kind_reaches_the_person_by_sms_and_email() {
    let app = spawn_notifier().await;
    let examples = drawbridge_notifier::render::examples();
    let mut tx = app.pool.begin().await.unwrap();
    for (n, notification) in examples.iter().enumerate() {
        let subject = Uuid::new_v4();
        let phone = format!("+4917130000{n:02}");
        app.enqueue(&mut tx, subject, Channel::Sms, &phone, Language::De, notification)
            .await;
        let email = format!("person{n}@example.de");
        app.enqueue(
            &mut tx,
            subject,
            Channel::Email,
            &email,
            Language::En,
            notification,
        )
        .await;
    }
    tx.commit().await.unwrap();
    let all = eventually(Duration::from_secs(30), || async {
        (app.sent_count().await == 2 * examples.len() as i64).then_some(())
    })
    .await;
    assert!(all.is_some(), "every kind delivered on both channels");

    let sms = app.twilio.accepted();
    let emails = app.smtp.accepted();
    assert_eq!((sms.len(), emails.len()), (examples.len(), examples.len()));
    for (n, notification) in examples.iter().enumerate() {
        let text = sms
            .iter()
            .find(|s| s.to == format!("+4917130000{n:02}"))
            .expect("SMS arrived");
        assert!(
            text.body.starts_with("Drawbridge"),
            "{}: {}",
            notification.kind(),
            text.body
        );
        let email = emails
            .iter()
            .find(|e| e.to == [format!("<person{n}@example.de>")])
            .expect("email arrived");
        assert!(
            email.data.contains("From: Drawbridge <no-reply@drawbridge.test>"),
            "{}",
            email.data
        );
        assert!(email.data.contains("multipart/alternative") && email.data.contains("text/html"));
    }
    let confirmation = emails
        .iter()
        .find(|e| e.data.contains("Subject: Booked"))
        .expect("confirmation email");
    assert!(
        confirmation.data.contains("Content-Type: image/png"),
        "QR code embedded"
    );
    assert!(
        confirmation.data.contains("Content-ID: <checkin-qr>"),
        "{}",
        confirmation.data
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_server_that_defers_is_retried_and_one_that_refuses_is_not() {
    let app = spawn_notifier().await;
    app.smtp.refuse_next(&[451]);
    let notification = &drawbridge_notifier::render::examples()[1];
    let mut tx = app.pool.begin().await.unwrap();
    let deferred = app
        .enqueue(
            &mut tx,
            Uuid::new_v4(),
            Channel::Email,
            "anna@example.de",
            Language::De,
            notification,
        )
        .await;
    tx.commit().await.unwrap();
    let Settled { state, attempts, .. } = eventually(Duration::from_secs(20), || app.settled(deferred))
        .await
        .unwrap();
    assert_eq!((state.as_str(), attempts), ("sent", 2));

    app.smtp.refuse_next(&[550]);
    let mut tx = app.pool.begin().await.unwrap();
    let refused = app
        .enqueue(
            &mut tx,
            Uuid::new_v4(),
            Channel::Email,
            "ben@example.de",
            Language::De,
            notification,
        )
        .await;
    tx.commit().await.unwrap();
    let Settled {
        state,
        attempts,
        detail,
        ..
    } = eventually(Duration::from_secs(20), || app.settled(refused))
        .await
        .unwrap();
    assert_eq!((state.as_str(), attempts), ("dead", 1));
    assert!(detail.unwrap().contains("Mailbox unavailable"));
    assert_eq!(app.smtp.accepted().len(), 1);
    app.stop().await;
}

/// lettre's connection pool keeps ten idle connections unless told otherwise, and ends every
/// other one with QUIT as soon as its email is sent: under a burst each email beyond the tenth
/// would pay for a connection and its greeting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_emails_keeps_its_mail_server_connections_open() {
    let app = spawn_notifier().await;
    // Slow enough that the burst's sends overlap, each on a connection of its own.
    app.smtp.delay_each(Duration::from_millis(300));
    enqueue_burst(&app, 40, Channel::Email).await;
    let all = eventually(Duration::from_secs(30), || async {
        (app.sent_count().await == 40).then_some(())
    })
    .await;
    assert!(all.is_some(), "all 40 emails sent");
    // A connection is handed back (and, past the pool's limit, closed) just after its send.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (opened, quit) = app.smtp.connections();
    assert!(opened > 10, "the sends overlapped: {opened} connections");
    assert_eq!(
        quit, 0,
        "of {opened} connections, {quit} were closed while the burst went out"
    );
    assert_eq!(app.smtp.accepted().len(), 40);
    app.stop().await;
}
