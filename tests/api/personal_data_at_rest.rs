//! Phone numbers and email addresses at rest: sealed in every column that holds them, found by
//! their blind index, opened wherever they are shown, and sealed again under a new key while
//! the system serves registrations and status reads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drawbridge_domain::{Field, Role};
use drawbridge_platform::config::PersonalDataKeySetting;
use drawbridge_test_support::{
    eventually, registration, spawn_app, spawn_notifier, spawn_with, Components, TestApp,
};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const OLD_KEY: &str = "b2xkIHBlcnNvbmFsIGRhdGEga2V5LCB0ZXN0cyEhISE=";
const NEW_KEY: &str = "bmV3IHBlcnNvbmFsIGRhdGEga2V5LCB0ZXN0cyEhISE=";

fn key(id: &str, key: &str) -> PersonalDataKeySetting {
    PersonalDataKeySetting {
        id: id.into(),
        key: key.into(),
    }
}

/// Registers on the web and verifies with the texted code: the id and booking code.
async fn register_and_verify(app: &TestApp, body: &Value) -> (Uuid, String) {
    let response = app.post_json("/v1/regions/bw/registrations", body).await;
    assert_eq!(response.status(), 202);
    let id: Uuid = response.json::<Value>().await.unwrap()["registration_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let code: String = sqlx::query_scalar(
        "SELECT o.payload->>'code' FROM outbox o JOIN phone_verifications v ON v.id = o.subject_id
         WHERE v.registrant_id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    (id, app.verified_booking_code(id, &code).await)
}

/// Every column of every row of `table`, as Postgres prints it (bytea in hex).
async fn table_text(app: &TestApp, table: &str) -> String {
    let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
        .fetch_all(&app.pool)
        .await
        .unwrap();
    rows.join("\n")
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Neither as text nor as bytes anywhere in the registrants or the outbox.
async fn assert_nowhere(app: &TestApp, secrets: &[&str]) {
    for table in ["registrants", "outbox", "deliveries", "phone_verifications"] {
        let text = table_text(app, table).await;
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} in {table} as text");
            assert!(!text.contains(&hex(secret)), "{secret} in {table} as bytes");
        }
    }
}

async fn me(app: &TestApp, booking_code: &str) -> (u16, Value) {
    app.call(
        Method::GET,
        "/v1/me",
        &format!("BookingCode {booking_code}"),
        None,
    )
    .await
}

/// A client of the gateway for a task of its own.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn of(app: &TestApp) -> Client {
        Client {
            http: app.http.clone(),
            base: app.url(""),
        }
    }

    async fn me(&self, booking_code: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/v1/me", self.base))
            .header("Authorization", format!("BookingCode {booking_code}"))
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn register(&self, body: &Value) -> u16 {
        let response = self
            .http
            .post(format!("{}/v1/regions/bw/registrations", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_and_email_are_stored_sealed_and_shown_opened() {
    let app = spawn_notifier().await;
    app.load_demo().await;
    let mut body = registration("0171 5559 0001");
    body["email"] = json!("Anna.Sealed@Example.de");
    let (id, booking_code) = register_and_verify(&app, &body).await;
    // The code and the booking code went out by SMS and email, through the relay.
    let delivered = eventually(Duration::from_secs(20), || async {
        (app.sent_count().await >= 3).then_some(())
    })
    .await;
    assert!(delivered.is_some(), "code, booking code by SMS and by email");
    assert!(app.twilio.accepted().iter().all(|sms| sms.to == "+4917155590001"));

    assert_nowhere(&app, &["+4917155590001", "17155590001", "Anna.Sealed@Example.de"]).await;
    // Under the configured key, bound to the row.
    let keys = app.personal_data_keys();
    let (phone, email): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT phone, email FROM registrants WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(keys.is_current(&phone) && keys.is_current(&email));

    let (status, status_body) = me(&app, &booking_code).await;
    assert_eq!(status, 200, "{status_body}");
    assert_eq!(status_body["choices"]["email"], "Anna.Sealed@Example.de");
    let (status, export) = app
        .call(
            Method::GET,
            "/v1/me/export",
            &format!("BookingCode {booking_code}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["registration"]["phone"], "+4917155590001");
    assert_eq!(export["registration"]["email"], "Anna.Sealed@Example.de");
    let recipients: Vec<&str> = export["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["recipient"].as_str().unwrap())
        .collect();
    assert!(recipients.contains(&"+4917155590001") && recipients.contains(&"Anna.Sealed@Example.de"));

    // A new address is sealed too.
    let (status, changed) = app
        .call(
            Method::PATCH,
            "/v1/me",
            &format!("BookingCode {booking_code}"),
            Some(&json!({ "email": "ben.sealed@example.de" })),
        )
        .await;
    assert_eq!(
        (status, &changed["choices"]["email"]),
        (200, &json!("ben.sealed@example.de"))
    );
    assert_nowhere(&app, &["ben.sealed@example.de"]).await;
    app.stop().await;
}

#[tokio::test]
async fn a_phone_is_found_by_its_index_for_every_limit_on_it() {
    let app = spawn_app().await;
    app.load_demo().await;
    let phone = "+4917155590002";
    let (_, _) = register_and_verify(&app, &registration(phone)).await;
    let token = app
        .staff_token("agent.sealed", Role::CallcentreAgent, "bw", None)
        .await;
    let agent = format!("Bearer {token}");
    // The same person again, typed another way: refused by the index of the same E.164 number.
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/callcentre/registrations",
            &agent,
            Some(&registration("0171 5559 0002")),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("phone_already_registered")),
        "{body}"
    );
    // Three more people on it, then the phone is full.
    for (year, initials) in [(1950, "A"), (1951, "B"), (1952, "C")] {
        let mut person = registration(phone);
        person["birth_year"] = json!(year);
        person["initials"] = json!(initials);
        let (status, body) = app
            .call(
                Method::POST,
                "/v1/callcentre/registrations",
                &agent,
                Some(&person),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut fifth = registration(phone);
    fifth["birth_year"] = json!(1960);
    let (status, body) = app
        .call(Method::POST, "/v1/callcentre/registrations", &agent, Some(&fifth))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("phone_full")),
        "{body}"
    );
    let people: i64 =
        sqlx::query_scalar("SELECT count(*) FROM registrants WHERE phone_index = $1 AND status = 'active'")
            .bind(app.phone_index(phone))
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(people, 4);
    app.stop().await;
}

#[tokio::test]
async fn a_contact_moved_to_another_row_does_not_open() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (anna, anna_code) = app.registrant_with_code("+4917155590003").await;
    let (ben, _) = app.registrant_with_code("+4917155590004").await;
    let (status, _) = me(&app, &anna_code.to_string()).await;
    assert_eq!(status, 200);
    sqlx::query("UPDATE registrants SET email = (SELECT email FROM registrants WHERE id = $2) WHERE id = $1")
        .bind(anna)
        .bind(ben)
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, body) = me(&app, &anna_code.to_string()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("internal")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_the_key_under_load_fails_no_request_and_leaves_everything_readable() {
    // Every process knows the old key and the new one, which seals.
    let app = spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        |settings| settings.secrets.personal_data_keys = vec![key("old", OLD_KEY), key("new", NEW_KEY)],
    )
    .await;
    app.load_demo().await;
    let mut before = app.settings.clone();
    before.secrets.personal_data_keys = vec![key("old", OLD_KEY)];
    let old = before.secrets.personal_data_keys().unwrap();
    // 300 people sealed under the old key (messages to them too), 2,000 stored before sealing.
    let mut people = Vec::new();
    for n in 0..300 {
        let phone = format!("+49171556{n:05}");
        let (id, code) = app.registrant_with_code_under(&old, &phone).await;
        let sealed = old.seal(Field::Phone, id, &phone);
        sqlx::query(
            "INSERT INTO outbox (id, kind, subject_id, channel, recipient, recipient_of, language, payload,
                                 published_at)
             VALUES (gen_random_uuid(), 'booking_code', $1, 'sms', $2, $1, 'de', '{}', now())",
        )
        .bind(id)
        .bind(&sealed)
        .execute(&app.pool)
        .await
        .unwrap();
        people.push(code.to_string());
    }
    app.insert_registrants(1, 2_000).await;
    let keys = app.personal_data_keys();
    let left = drawbridge::keys::count(&app.pool, &keys).await.unwrap();
    assert_eq!((left.registrants, left.messages), (2_300, 300));

    // Registrations and status reads from several clients while the rotation runs.
    let people = Arc::new(people);
    let (done, failed, served) = (
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
        Arc::new(std::sync::Mutex::new(Vec::<String>::new())),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut load = Vec::new();
    for client in 0..4 {
        let (app, people, done, failed, served) = (
            Client::of(&app),
            people.clone(),
            done.clone(),
            failed.clone(),
            served.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                let code = &people[(client * 71 + n * 13) % people.len()];
                let (status, body) = app.me(code).await;
                if status != 200 || body["choices"]["email"] != json!("person@example.de") {
                    failed.lock().unwrap().push(format!("status {status}: {body}"));
                }
                let response = app
                    .register(&registration(&format!("+49172{client}{n:07}")))
                    .await;
                if response != 202 {
                    failed
                        .lock()
                        .unwrap()
                        .push(format!("registration answered {response}"));
                }
                served.fetch_add(2, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let served_before = served.load(Ordering::Relaxed);
    let rotation = drawbridge::keys::rotate(&app.pool, &keys, 5, |_| {})
        .await
        .unwrap();
    let served_during = served.load(Ordering::Relaxed) - served_before;
    done.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} requests failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        served_during >= 20,
        "the load ran alongside: {served_during} requests"
    );
    assert!(
        rotation.registrants >= 2_300 && rotation.messages >= 300,
        "{rotation:?}"
    );
    assert_eq!(
        (
            rotation.registrants_left,
            rotation.messages_left,
            rotation.unreadable.len()
        ),
        (0, 0, 0),
        "{rotation:?}"
    );

    // Everything is under the new key, and every value still reads with it alone.
    let after = drawbridge::keys::count(&app.pool, &keys).await.unwrap();
    assert_eq!((after.registrants, after.messages), (0, 0));
    let mut new_only = app.settings.clone();
    new_only.secrets.personal_data_keys = vec![key("new", NEW_KEY)];
    let new_only = new_only.secrets.personal_data_keys().unwrap();
    type Sealed = Option<Vec<u8>>;
    let rows: Vec<(Uuid, Sealed, Sealed, Sealed)> =
        sqlx::query_as("SELECT id, phone, phone_index, email FROM registrants WHERE phone IS NOT NULL")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    for (id, phone, index, email) in rows {
        let phone = new_only.open(Field::Phone, id, &phone.unwrap()).unwrap();
        assert_eq!(
            index.unwrap(),
            new_only.index(Field::Phone, &phone),
            "its index was written"
        );
        if let Some(email) = email {
            new_only.open(Field::Email, id, &email).unwrap();
        }
    }
    let messages: Vec<(String, Vec<u8>, Uuid)> =
        sqlx::query_as("SELECT channel, recipient, recipient_of FROM outbox WHERE recipient <> ''")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    for (channel, recipient, of) in messages {
        let field = if channel == "email" {
            Field::Email
        } else {
            Field::Phone
        };
        new_only.open(field, of, &recipient).unwrap();
    }
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE last_error IS NOT NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(parked, 0, "the relay opened every message");
    let code = &people[0];
    let (status, body) = me(&app, code).await;
    assert_eq!(
        (status, &body["choices"]["email"]),
        (200, &json!("person@example.de"))
    );
    // Once done, a second run finds nothing.
    let again = drawbridge::keys::rotate(&app.pool, &keys, 20, |_| {})
        .await
        .unwrap();
    assert_eq!((again.registrants, again.messages), (0, 0));
    app.stop().await;
}

/// `drawbridge keys rotate` as an operator runs it after upgrading: values stored before
/// sealing are counted, sealed with their index, and a second run finds nothing.
#[tokio::test]
async fn keys_rotate_seals_what_was_stored_before_sealing() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.insert_registrants(1, 30).await;
    let env = drawbridge_test_support::settings_env(&app.settings);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let rotate = |args: &[&str]| {
        let output = crate::drawbridge(
            &[&["--config", "deploy/local.toml", "keys", "rotate"], args].concat(),
            &env,
        );
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let counted = rotate(&["--dry-run"]);
    assert_eq!(
        (&counted["registrants"], &counted["messages"]),
        (&json!(30), &json!(0)),
        "{counted}"
    );
    assert!(
        table_text(&app, "registrants")
            .await
            .contains(&hex("+4917100000001")),
        "stored as bytes of its text before the rotation"
    );

    let rotated = rotate(&["--batch", "7"]);
    assert_eq!(
        (
            &rotated["current_key"],
            &rotated["registrants"],
            &rotated["registrants_left"]
        ),
        (&json!("test-data"), &json!(30), &json!(0)),
        "{rotated}"
    );
    assert_nowhere(&app, &["+4917100000001", "person10@example.de"]).await;
    let indexed: i64 = sqlx::query_scalar("SELECT count(*) FROM registrants WHERE phone_index = $1")
        .bind(app.phone_index("+4917100000001"))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(indexed, 1, "found by its index now");
    assert_eq!(rotate(&[])["registrants"], json!(0), "nothing left");
    app.stop().await;
}
