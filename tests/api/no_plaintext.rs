//! No code or token outlives its delivery in plaintext: a person registers, verifies, is drawn,
//! books and is checked in for both doses, the notifier delivers (and gives up on) every
//! message, and then no column of any table, no RabbitMQ queue (the dead-letter queue
//! included), no log line and no file of the notifier's sink holds the SMS code, the booking
//! code, the offer link's token, the check-in pass, the pass page's key, or the person's phone
//! number or email address (sealed at rest), neither while they are registered nor after they
//! withdrew. The fake SMS and mail servers, which stand in for the providers' own transport,
//! are the only places left.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use drawbridge_domain::Role;
use drawbridge_notifier::topology::Topology;
use drawbridge_test_support::{eventually, registration, spawn_notifier, TestApp};
use lapin::options::BasicGetOptions;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

/// Everything the processes of this test binary log from the first call on, as production
/// writes it (JSON, the default filter). Other tests' lines land here too; they cannot hold
/// this test's codes.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let filter = drawbridge_platform::config::TelemetrySettings::default().log_filter;
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(move || Appender(sink.clone()))
            .try_init()
            .expect("no other test installs a log subscriber");
        logs
    })
    .clone()
}

struct Appender(Arc<Mutex<Vec<u8>>>);

impl Write for Appender {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A value that must be found nowhere, and a name for the report.
struct Needle {
    name: &'static str,
    text: String,
}

impl Needle {
    fn new(name: &'static str, text: impl Into<String>) -> Needle {
        let text = text.into();
        assert!(text.len() >= 6, "{name} is too short to search for: {text:?}");
        Needle { name, text }
    }

    /// A Postgres regular expression for the needle; a 6-digit code is matched as a number on
    /// its own, not as six digits of a timestamp's microseconds or a longer number.
    fn pattern(&self) -> String {
        let escaped: String = self
            .text
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_string()
                } else {
                    format!("\\{c}")
                }
            })
            .collect();
        if self.text.chars().all(|c| c.is_ascii_digit()) {
            format!("(^|[^0-9.]){escaped}([^0-9]|$)")
        } else {
            escaped
        }
    }

    fn hex(&self) -> String {
        self.text.bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn in_text(&self, text: &str) -> bool {
        if self.text.chars().all(|c| c.is_ascii_digit()) {
            text.match_indices(&self.text).any(|(at, _)| {
                let before = text[..at].chars().next_back();
                let after = text[at + self.text.len()..].chars().next();
                !before.is_some_and(|c| c.is_ascii_digit() || c == '.')
                    && !after.is_some_and(|c| c.is_ascii_digit())
            })
        } else {
            text.contains(&self.text)
        }
    }
}

/// `table.column` of every column in the schema that holds the needle, as text (or, for
/// `bytea`, as bytes).
async fn columns_holding(app: &TestApp, needle: &Needle) -> Vec<String> {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text
         FROM information_schema.columns c
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
         ORDER BY 1, 2",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(columns.len() > 100, "the whole schema is searched: {columns:?}");
    let mut found = Vec::new();
    for (table, column, data_type) in columns {
        let (expression, pattern) = if data_type == "bytea" {
            (format!("encode(\"{column}\", 'hex')"), needle.hex())
        } else {
            (format!("\"{column}\"::text"), needle.pattern())
        };
        let holds: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM \"{table}\" WHERE {expression} ~ $1)"
        ))
        .bind(&pattern)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if holds {
            found.push(format!("{table}.{column}"));
        }
    }
    found
}

/// The body and headers of every message left in the test's queues (read and left there: the
/// copies go back when the connection closes unacknowledged).
async fn queued_messages(app: &TestApp) -> Vec<(String, String)> {
    let topology = Topology::new(&app.settings.amqp, &app.settings.notifier.retry_delays_seconds);
    let connection = drawbridge_platform::amqp::connect_once(&app.settings.amqp)
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut messages = Vec::new();
    for queue in topology.queues() {
        while let Some(message) = channel
            .basic_get(&queue, BasicGetOptions { no_ack: false })
            .await
            .unwrap()
        {
            let delivery = message.delivery;
            let text = format!(
                "{} {:?}",
                String::from_utf8_lossy(&delivery.data),
                delivery.properties.headers()
            );
            messages.push((queue.clone(), text));
        }
    }
    let _ = connection.close(200, "read").await;
    messages
}

/// The value of `name=` in a URL found in `text`.
fn after<'a>(text: &'a str, marker: &str) -> &'a str {
    let start = text.find(marker).unwrap_or_else(|| panic!("{marker} in {text}")) + marker.len();
    let rest = &text[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .unwrap_or(rest.len());
    &rest[..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_code_or_token_is_kept_in_plaintext_through_a_whole_life() {
    let logs = captured_logs();
    let app = spawn_notifier().await;
    app.load_demo().await;
    let phone = "+4917155594001";
    let email = format!("life-{}@example.de", Uuid::new_v4().simple());

    // Registered and verified with the code the SMS brings.
    let code_sms = app.twilio.next_message_to(phone);
    let mut form = registration(phone);
    form["email"] = json!(email);
    let id = app.register(&form).await;
    let code_sms = tokio::time::timeout(Duration::from_secs(20), code_sms)
        .await
        .expect("the code's SMS arrives");
    let sms_code = code_sms
        .body
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| part.len() == 6)
        .expect("a 6-digit code")
        .to_owned();
    // The booking code's SMS is refused for good (a permanent provider error), so a message
    // waits in the dead-letter queue; the code still reaches the person by email.
    app.twilio.fail_next(&[400]);
    let booking_code = app.verified_booking_code(id, &sms_code).await;
    let holder = format!("BookingCode {booking_code}");

    // Drawn, with the offer's link in the SMS.
    let offer_sms = app.twilio.next_message_to(phone);
    app.draw().await;
    let offer_sms = tokio::time::timeout(Duration::from_secs(20), offer_sms)
        .await
        .expect("the offer's SMS arrives");
    let offer_token = after(&offer_sms.body, "token=").to_owned();
    let offer = app.pending_offer(id).await.expect("the draw offered a pair");
    // The first appointment is now, so the door is open for it.
    sqlx::query("UPDATE slot_pairs p SET first_slot_at = now() FROM offers o WHERE o.id = $1 AND p.id = o.slot_pair_id")
        .bind(offer)
        .execute(&app.pool)
        .await
        .unwrap();

    // Booked, with the pass in the answer and the pass page's link in the SMS.
    let confirmation_sms = app.twilio.next_message_to(phone);
    let (status, answer) = app.call(Method::POST, "/v1/me/offer/accept", &holder, None).await;
    assert_eq!(status, 200, "{answer}");
    let booking = &answer["booking"];
    let pass = booking["checkin_pass"].as_str().unwrap().to_owned();
    let centre = booking["centre_id"].as_str().unwrap().to_owned();
    let confirmation_sms = tokio::time::timeout(Duration::from_secs(20), confirmation_sms)
        .await
        .expect("the confirmation's SMS arrives");
    let pass_key = after(&confirmation_sms.body, "/pass/")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();

    // Checked in for both doses.
    let door = format!(
        "Bearer {}",
        app.staff_token("door.life", Role::CentreStaff, "bw", Some(&centre))
            .await
    );
    let (checkins, scanned) = (format!("/v1/centres/{centre}/checkins"), json!({ "pass": pass }));
    let check_in = || app.call(Method::POST, &checkins, &door, Some(&scanned));
    let (status, body) = check_in().await;
    assert_eq!((status, &body["dose"]), (200, &json!("first")), "{body}");
    sqlx::query("UPDATE slot_pairs p SET second_slot_at = now() + interval '1 hour' FROM offers o WHERE o.id = $1 AND p.id = o.slot_pair_id")
        .bind(offer)
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, body) = check_in().await;
    assert_eq!(
        (status, &body["booking_state"]),
        (200, &json!("completed")),
        "{body}"
    );

    // Once every message is delivered or given up, no code or token is kept, and the person's
    // phone and email only sealed.
    let secrets = [
        Needle::new("SMS code", sms_code),
        Needle::new("booking code", booking_code.clone()),
        Needle::new("booking code", booking_code.replace('-', "")),
        Needle::new("offer link token", offer_token),
        Needle::new("check-in pass", pass),
        Needle::new("pass page key", pass_key),
        Needle::new("phone", phone),
        Needle::new("phone", phone.trim_start_matches('+')),
        Needle::new("email", email.clone()),
    ];
    settle(&app).await;
    let found = places_holding(&app, &secrets, &logs).await;
    assert!(found.is_empty(), "kept in plaintext while registered: {found:#?}");

    // Withdrawn: still nothing.
    let (status, body) = app.call(Method::DELETE, "/v1/me", &holder, None).await;
    assert!((200..300).contains(&status), "{status} {body}");
    settle(&app).await;
    let needles: Vec<&Needle> = secrets.iter().collect();
    let logs_text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        logs_text.contains("registration withdrawn and erased"),
        "the logs are captured"
    );
    let found = places_holding(&app, needles, &logs).await;
    assert!(found.is_empty(), "kept in plaintext after withdrawal: {found:#?}");
    app.stop().await;
}

/// Waits until every message is delivered or given up (or, erased on withdrawal before it was
/// published, never will be), and checks that the refused SMS was given up.
async fn settle(app: &TestApp) {
    let settled = eventually(Duration::from_secs(30), || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox o LEFT JOIN deliveries d ON d.outbox_id = o.id
             WHERE d.finished_at IS NULL AND (d.outbox_id IS NOT NULL OR o.payload->>'erased' IS NULL)",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        (open == 0).then_some(())
    })
    .await;
    assert!(settled.is_some(), "every message settled");
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'dead'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(dead >= 1, "the booking code's SMS was given up");
}

/// Where any of `needles` is found: a column, a queued message (the refused SMS must wait in
/// the dead-letter queue), the logs or the sink file.
async fn places_holding<'a>(
    app: &TestApp,
    needles: impl IntoIterator<Item = &'a Needle>,
    logs: &Mutex<Vec<u8>>,
) -> Vec<String> {
    let queued = queued_messages(app).await;
    let dead_letter_queue = format!("{}.dead", app.settings.amqp.prefix);
    assert!(
        queued.iter().any(|(queue, _)| *queue == dead_letter_queue),
        "the refused SMS waits in the dead-letter queue: {queued:?}"
    );
    let sink = std::fs::read_to_string(&app.settings.notifier.sink_file).unwrap_or_default();
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let mut found = Vec::new();
    for needle in needles {
        for column in columns_holding(app, needle).await {
            found.push(format!("{} in {column}", needle.name));
        }
        for (queue, message) in &queued {
            if needle.in_text(message) {
                found.push(format!("{} in queue {queue}: {message}", needle.name));
            }
        }
        if needle.in_text(&logs) {
            found.push(format!("{} in the logs", needle.name));
        }
        if needle.in_text(&sink) {
            found.push(format!("{} in the sink file", needle.name));
        }
    }
    found
}
