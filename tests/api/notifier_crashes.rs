//! The notifier under crashes, against real RabbitMQ and Postgres: a message whose send was
//! interrupted is reconciled with the provider instead of being sent twice; a notifier process
//! killed with SIGKILL mid-burst and restarted delivers everything exactly once; connections
//! closed by the broker mid-burst are re-established without losing anything; and a delay
//! queue keeps a message it cannot hand back yet.

use std::process::Stdio;
use std::time::Duration;

use drawbridge_domain::Language;
use drawbridge_notifier::render::Templates;
use drawbridge_platform::outbox::{Channel, Notification, Reference};
use drawbridge_test_support::twilio;
use drawbridge_test_support::{
    eventually, spawn_app, spawn_notifier, spawn_with, Components, Settled, TestApp,
};
use uuid::Uuid;

fn code(n: u32) -> Notification {
    Notification::VerificationCode {
        code: format!("{n:06}"),
        valid_minutes: 10,
    }
}

/// A message published and recorded in flight (`state`, one attempt made, its next attempt
/// due in `due_in_seconds`), as a notifier leaves it; the provider has it already if
/// `already_at_provider`. Returns the message and the provider's id of the earlier send.
async fn in_flight(
    app: &TestApp,
    phone: &str,
    state: &str,
    due_in_seconds: f64,
    already_at_provider: bool,
) -> (Reference, Option<String>) {
    let notification = code(424242);
    let mut tx = app.pool.begin().await.unwrap();
    let id = app
        .enqueue(
            &mut tx,
            Uuid::new_v4(),
            Channel::Sms,
            phone,
            Language::De,
            &notification,
        )
        .await;
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO deliveries (outbox_id, state, attempts, next_attempt_at)
         VALUES ($1, $2, 1, now() + make_interval(secs => $3))",
    )
    .bind(id)
    .bind(state)
    .bind(due_in_seconds)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let earlier_sid = if already_at_provider {
        Some(send_directly(app, phone, &notification).await)
    } else {
        None
    };
    let message = Reference {
        id,
        channel: Channel::Sms,
        kind: notification.kind().to_owned(),
    };
    (message, earlier_sid)
}

/// Sends `notification` to the fake provider as the notifier would have; returns its sid.
async fn send_directly(app: &TestApp, phone: &str, notification: &Notification) -> String {
    let body = Templates::new().render(notification, Language::De).unwrap().sms;
    let created: serde_json::Value = app
        .http
        .post(format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            app.twilio.base_url,
            twilio::ACCOUNT_SID
        ))
        .basic_auth(twilio::ACCOUNT_SID, Some(twilio::AUTH_TOKEN))
        .form(&[("To", phone), ("From", "+4917100000000"), ("Body", &body)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["sid"].as_str().unwrap().to_owned()
}

/// A message whose first attempt died after calling the provider: its intent is recorded,
/// the relay already published it, and RabbitMQ redelivers it.
async fn in_doubt(app: &TestApp, phone: &str, already_at_provider: bool) -> (Uuid, Option<String>) {
    let (message, earlier_sid) = in_flight(app, phone, "sending", 0.0, already_at_provider).await;
    app.publish(&message, 1).await;
    (message.id, earlier_sid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_send_that_reached_the_provider_is_not_sent_again() {
    let app = spawn_notifier().await;
    let (id, earlier_sid) = in_doubt(&app, "+491710000101", true).await;
    let Settled {
        state, provider_id, ..
    } = eventually(Duration::from_secs(20), || app.settled(id))
        .await
        .expect("settled");
    assert_eq!(state, "sent");
    assert_eq!(
        provider_id, earlier_sid,
        "recorded with the provider's id from the interrupted attempt"
    );
    assert_eq!(app.twilio.accepted().len(), 1, "not sent a second time");
    let metrics = app.metrics(app.notifier_address.as_ref().unwrap()).await;
    assert!(metrics.contains(
        r#"drawbridge_notifier_messages_reconciled_total{channel="sms",kind="verification_code"} 1"#
    ));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_send_that_never_reached_the_provider_is_sent_once() {
    let app = spawn_notifier().await;
    let (id, _) = in_doubt(&app, "+491710000102", false).await;
    let Settled {
        state, provider_id, ..
    } = eventually(Duration::from_secs(20), || app.settled(id))
        .await
        .expect("settled");
    assert_eq!(state, "sent");
    let accepted = app.twilio.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(provider_id.as_deref(), Some(accepted[0].sid.as_str()));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_stranded_in_flight_are_published_again_and_each_sent_once() {
    let adjust = |s: &mut drawbridge_platform::Settings| {
        s.notifier.stranded_after_seconds = 1;
        s.notifier.sweep_every_seconds = 1;
    };
    let app = spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        adjust,
    )
    .await;
    // A second notifier, whose sweeper looks for the same rows.
    let second_shutdown = tokio_util::sync::CancellationToken::new();
    let mut second_settings = app.settings.clone();
    second_settings.notifier.listen = "127.0.0.1:0".parse().unwrap();
    let second = drawbridge_notifier::build(&second_settings, second_shutdown.clone())
        .await
        .unwrap();
    let second = tokio::spawn(second.run_until_stopped());

    // Published, recorded in flight an hour ago, and in no queue: the broker lost them.
    const STRANDED: usize = 30;
    let mut ids = Vec::new();
    let mut earlier = None;
    for n in 0..STRANDED {
        let state = if n % 2 == 0 { "sending" } else { "waiting" };
        let (message, sid) = in_flight(&app, &format!("+4917150{n:05}"), state, -3600.0, n == 0).await;
        ids.push(message.id);
        earlier = earlier.or(sid);
    }
    let all = eventually(Duration::from_secs(30), || async {
        (app.sent_count().await == STRANDED as i64).then_some(())
    })
    .await;
    assert!(
        all.is_some(),
        "all {STRANDED} delivered, {} so far",
        app.sent_count().await
    );
    assert_each_sent_once(&app, STRANDED);
    let first = app.settled(ids[0]).await.unwrap();
    assert_eq!(
        first.provider_id, earlier,
        "the one the provider had was found, not sent again"
    );
    for id in ids {
        assert_eq!(app.settled(id).await.unwrap().attempts, 2);
    }
    second_shutdown.cancel();
    second.await.unwrap().unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_message_is_not_looked_up_while_its_earlier_attempt_may_be_under_way() {
    let app = spawn_notifier().await;
    // A notifier died mid-call a moment ago: its intent is settled at the provider only once
    // the request's timeout and the grace for recording it have passed, 3 s from now.
    let phone = "+491710000104";
    let (message, _) = in_flight(&app, phone, "sending", 3.0, false).await;
    // RabbitMQ redelivers the dead notifier's message to another one at once.
    app.publish(&message, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        (app.twilio.lookups(), app.twilio.requests()),
        (0, 0),
        "neither looked up nor sent while the earlier attempt may be under way"
    );
    // The provider records the dead notifier's request only now.
    let earlier_sid = send_directly(&app, phone, &code(424242)).await;
    let Settled {
        state, provider_id, ..
    } = eventually(Duration::from_secs(20), || app.settled(message.id))
        .await
        .expect("settled");
    assert_eq!(state, "sent");
    assert_eq!(
        provider_id.as_deref(),
        Some(earlier_sid.as_str()),
        "found at the provider once the attempt was settled"
    );
    assert_eq!(app.twilio.accepted().len(), 1, "not sent again");
    let metrics = app.metrics(app.notifier_address.as_ref().unwrap()).await;
    assert!(metrics
        .contains(r#"drawbridge_notifier_messages_waited_total{channel="sms",kind="verification_code"}"#));
    app.stop().await;
}

/// Configuration of a notifier process for this test's database, queues and fake provider.
fn process_env(app: &TestApp, messages_per_second: u32) -> Vec<(String, String)> {
    let mut settings = app.settings.clone();
    settings.notifier.sms.messages_per_second = messages_per_second;
    drawbridge_test_support::settings_env(&settings)
}

/// Starts `drawbridge notifier`; its log goes beside the test's sink file, for post-mortems.
fn start_notifier(app: &TestApp, env: &[(String, String)]) -> tokio::process::Child {
    let log = app.settings.notifier.sink_file.with_file_name("notifier.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_drawbridge"))
        .arg("notifier")
        .envs(env.iter().cloned())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("the notifier process starts")
}

async fn enqueue_burst(app: &TestApp, count: u32) {
    let mut tx = app.pool.begin().await.unwrap();
    for n in 0..count {
        let phone = format!("+4917140{n:05}");
        app.enqueue(
            &mut tx,
            Uuid::new_v4(),
            Channel::Sms,
            &phone,
            Language::De,
            &code(n),
        )
        .await;
    }
    tx.commit().await.unwrap();
}

/// Every one of `count` recipients got exactly one SMS.
fn assert_each_sent_once(app: &TestApp, count: usize) {
    let mut recipients: Vec<String> = app.twilio.accepted().into_iter().map(|sms| sms.to).collect();
    assert_eq!(
        recipients.len(),
        count,
        "{} SMS for {count} messages",
        recipients.len()
    );
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), count, "somebody got two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notifier_killed_mid_burst_delivers_everything_exactly_once_after_restart() {
    const BURST: u32 = 600;
    let app = spawn_app().await;
    let env = process_env(&app, 300);
    enqueue_burst(&app, BURST).await;
    for kill_at in [100, 300] {
        let mut notifier = start_notifier(&app, &env);
        let reached = eventually(Duration::from_secs(60), || async {
            (app.sent_count().await >= kill_at).then_some(())
        })
        .await;
        assert!(reached.is_some(), "the notifier delivered {kill_at} messages");
        notifier.kill().await.expect("SIGKILL");
        assert!(app.sent_count().await < BURST as i64, "killed mid-burst");
    }
    let mut notifier = start_notifier(&app, &env);
    let all = eventually(Duration::from_secs(90), || async {
        (app.sent_count().await == BURST as i64).then_some(())
    })
    .await;
    assert!(
        all.is_some(),
        "all {BURST} delivered after restarts, {} so far",
        app.sent_count().await
    );
    assert_each_sent_once(&app, BURST as usize);
    notifier.kill().await.unwrap();
    app.stop().await;
}

/// Closes this test's broker connections, as a RabbitMQ restart or a network cut would.
async fn close_broker_connections(prefix: &str) -> usize {
    let listing = tokio::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "name",
            "client_properties",
            "--formatter",
            "json",
            "-q",
        ])
        .output()
        .await
        .expect("rabbitmqctl runs");
    let connections: Vec<serde_json::Value> = serde_json::from_slice(&listing.stdout).unwrap_or_default();
    let ours: Vec<String> = connections
        .iter()
        .filter(|c| {
            c["client_properties"]
                .to_string()
                .contains(&format!("drawbridge/{prefix}"))
        })
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    for name in &ours {
        let _ = tokio::process::Command::new("rabbitmqctl")
            .args(["close_connection", name, "test: connection cut mid-burst"])
            .output()
            .await;
    }
    ours.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_by_the_broker_mid_burst_reconnect_and_lose_nothing() {
    const BURST: u32 = 400;
    let app = spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        |s| {
            s.notifier.sms.messages_per_second = 300;
        },
    )
    .await;
    enqueue_burst(&app, BURST).await;
    let started = eventually(Duration::from_secs(30), || async {
        (app.sent_count().await >= 50).then_some(())
    })
    .await;
    assert!(started.is_some());
    let closed = close_broker_connections(&app.settings.amqp.prefix).await;
    assert!(
        closed >= 2,
        "closed the relay's and consumers' connections ({closed})"
    );
    let all = eventually(Duration::from_secs(90), || async {
        (app.sent_count().await == BURST as i64).then_some(())
    })
    .await;
    assert!(
        all.is_some(),
        "all delivered after reconnecting, {} so far",
        app.sent_count().await
    );
    assert_each_sent_once(&app, BURST as usize);
    let ready = eventually(Duration::from_secs(10), || async {
        let response = app
            .http
            .get(format!("{}/readyz", app.notifier_address.as_ref().unwrap()))
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "ready again once reconnected");
    app.stop().await;
}

/// The messages a queue holds, counted by the broker itself: for a quorum queue this includes
/// those it is dead-lettering, which `rabbitmqctl list_queues` leaves out while the broker
/// tries to hand them on.
async fn held_messages(queue: &str) -> u64 {
    let count = format!(
        "{{ok, Q}} = rabbit_amqqueue:lookup(rabbit_misc:r(<<\"/\">>, queue, <<\"{queue}\">>)),
         case amqqueue:get_type(Q) of
             rabbit_quorum_queue ->
                 {{ok, {{_, Overview}}, _}} = ra:local_query(amqqueue:get_pid(Q), fun rabbit_fifo:overview/1),
                 maps:get(num_messages, Overview);
             _ -> proplists:get_value(messages, rabbit_amqqueue:info(Q, [messages]))
         end."
    );
    let output = tokio::process::Command::new("rabbitmqctl")
        .args(["eval", &count])
        .output()
        .await
        .expect("rabbitmqctl runs");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no count for {queue}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_queue_keeps_a_message_it_cannot_hand_back_yet() {
    use drawbridge_notifier::topology::Topology;
    use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    use lapin::BasicProperties;

    let app = spawn_app().await;
    let topology = Topology::new(&app.settings.amqp, &app.settings.notifier.retry_delays_seconds);
    let connection = drawbridge_platform::amqp::connect_once(&app.settings.amqp)
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(Default::default()).await.unwrap();
    topology.declare(&channel).await.unwrap();
    // The kind queue cannot be reached, as while it is down or its node restarts.
    channel
        .queue_unbind(
            &topology.queue("verification_code"),
            &topology.exchange(),
            "*.verification_code",
            FieldTable::default(),
        )
        .await
        .unwrap();
    // A delay exchange and its queue share their name.
    let delay_queue = topology.retry_after(1).unwrap().exchange;
    let confirm = channel
        .basic_publish(
            &delay_queue,
            "sms.verification_code",
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_expiration("100".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let expired = eventually(Duration::from_secs(10), || async {
        let queue = channel
            .queue_declare(&delay_queue, passive, FieldTable::default())
            .await
            .unwrap();
        (queue.message_count() == 0).then_some(())
    })
    .await;
    assert!(expired.is_some(), "the message expired after 0.1 s");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        held_messages(&delay_queue).await,
        1,
        "expired and kept while it cannot be routed, not dropped"
    );
    let _ = connection.close(200, "done").await;
    app.stop().await;
}
