//! Phones and the people on them, against real Postgres: a phone holds the registrations of a
//! household (each person told apart by birth year and initials, each with a booking code of
//! their own, up to `registrations_per_phone`); nobody can hold a phone with an unverified
//! registration (it is answered again, given up when an agent registers the caller, and expires
//! erased); and the answer to a web registration never tells whether a number is registered:
//! the phone's owner gets a notice instead of a code.

use std::time::Duration;

use drawbridge_domain::Role;
use drawbridge_test_support::{registration, spawn_app, spawn_with, Components, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// A registration of the person born in `birth_year` with `initials`, on `phone`.
fn person(phone: &str, birth_year: i32, initials: &str) -> Value {
    let mut body = registration(phone);
    body["birth_year"] = json!(birth_year);
    body["initials"] = json!(initials);
    body
}

async fn register(app: &TestApp, body: &Value) -> (u16, Value) {
    let response = app.post_json("/v1/regions/bw/registrations", body).await;
    (response.status().as_u16(), response.json().await.unwrap())
}

fn id_of(body: &Value) -> Uuid {
    body["registration_id"].as_str().unwrap().parse().unwrap()
}

/// The kinds of the SMS queued for a registration's codes, oldest first, with the code if the
/// message carries one.
async fn texts(app: &TestApp, id: Uuid) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        "SELECT o.kind, o.payload->>'code' FROM outbox o JOIN phone_verifications v ON v.id = o.subject_id
         WHERE v.registrant_id = $1 ORDER BY v.created_at",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

/// Registers and verifies; the booking code.
async fn register_and_verify(app: &TestApp, body: &Value) -> String {
    let (status, answer) = register(app, body).await;
    assert_eq!(status, 202, "{answer}");
    let id = id_of(&answer);
    let code = texts(app, id).await.pop().unwrap().1.expect("a code was texted");
    app.verified_booking_code(id, &code).await
}

/// The authorization of a new call-centre agent of region `bw`.
async fn agent(app: &TestApp) -> String {
    let token = app
        .staff_token("agent.ben", Role::CallcentreAgent, "bw", None)
        .await;
    format!("Bearer {token}")
}

/// `agent` registers `body`: the status and answer.
async fn agent_registers(app: &TestApp, agent: &str, body: &Value) -> (u16, Value) {
    app.call(Method::POST, "/v1/callcentre/registrations", agent, Some(body))
        .await
}

/// The shape of an answer: its keys, recursively, without the values that differ anyway.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        _ => Value::Null,
    }
}

/// A registration's status and its phone number as stored (sealed).
async fn status_of(app: &TestApp, id: Uuid) -> (String, Option<Vec<u8>>) {
    sqlx::query_as("SELECT status, phone FROM registrants WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn registering_a_registered_person_answers_like_anyone_and_texts_the_owner_a_notice() {
    let app = spawn_app().await;
    app.load_demo().await;
    let phone = "+49 171 5551 0001";
    register_and_verify(&app, &person(phone, 1950, "EM")).await;

    let (status, again) = register(&app, &person(phone, 1950, "e.m.")).await;
    let (fresh_status, fresh) = register(&app, &person("+49 171 5551 0002", 1950, "EM")).await;
    assert_eq!((status, fresh_status), (202, 202), "{again} {fresh}");
    assert_eq!(shape(&again), shape(&fresh), "the answers cannot be told apart");
    assert_eq!(
        again["verification"]["attempts_left"],
        fresh["verification"]["attempts_left"]
    );

    // The owner is told, and no code went out, so the registration cannot be verified...
    let id = id_of(&again);
    let sent = texts(&app, id).await;
    assert_eq!(sent, [("already_registered".to_owned(), None)]);
    let notice: Value = sqlx::query_scalar(
        "SELECT o.payload FROM outbox o JOIN phone_verifications v ON v.id = o.subject_id WHERE v.registrant_id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (notice["birth_year"].clone(), notice["initials"].clone()),
        (json!(1950), json!("EM"))
    );
    // Its link leads to the status page, where the owner signs in with their booking code.
    let link = notice["status_url"].as_str().unwrap();
    let path = &link[link.find("/me").expect("a link to the status page")..];
    let page = app.get(path).await;
    assert_eq!(page.status(), 200, "{link}");
    assert!(page.text().await.unwrap().contains("name=\"booking_code\""));
    // ...yet a guess at it is answered as a wrong code, as for anyone.
    let response = app
        .post_json(
            &format!("/v1/registrations/{id}/verify"),
            &json!({ "code": "123456" }),
        )
        .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wrong_code", "{body}");

    // Registering once more answers the same registration, with the notice again after the pace.
    sqlx::query("UPDATE phone_verifications SET created_at = created_at - interval '2 minutes' WHERE registrant_id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, once_more) = register(&app, &person(phone, 1950, "EM")).await;
    assert_eq!((status, id_of(&once_more)), (202, id));
    assert_eq!(texts(&app, id).await.len(), 2);
    assert!(texts(&app, id)
        .await
        .iter()
        .all(|(kind, code)| kind == "already_registered" && code.is_none()));
    app.stop().await;
}

#[tokio::test]
async fn a_phone_holds_a_household_each_with_their_own_booking_code_and_no_more() {
    let app = spawn_app().await;
    app.load_demo().await;
    let phone = "+49 171 5552 0001";
    let household = [(1941, "HM"), (1943, "GM"), (1943, "WM"), (1975, "")];
    let mut codes = Vec::new();
    for (birth_year, initials) in household {
        codes.push(register_and_verify(&app, &person(phone, birth_year, initials)).await);
    }
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 4, "each person has a booking code of their own");
    for code in &codes {
        let response = app
            .http
            .get(app.url("/v1/me"))
            .header("Authorization", format!("BookingCode {code}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    // A fifth person on the web: the same answer as anyone, and a notice instead of a code.
    let (status, fifth) = register(&app, &person(phone, 2001, "LM")).await;
    assert_eq!(status, 202, "{fifth}");
    assert_eq!(
        texts(&app, id_of(&fifth)).await,
        [("phone_full".to_owned(), None)]
    );

    // An agent is told why.
    let agent = agent(&app).await;
    let (status, body) = agent_registers(&app, &agent, &person(phone, 2001, "LM")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("phone_full")),
        "{body}"
    );
    let (status, body) = agent_registers(&app, &agent, &person(phone, 1941, "HM")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("phone_already_registered")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_agent_registers_a_caller_whose_phone_holds_only_an_unverified_registration() {
    let app = spawn_app().await;
    app.load_demo().await;
    let phone = "+49 171 5553 0001";
    // A stranger squats the caller's phone with the caller's own birth year.
    let (status, squatted) = register(&app, &person(phone, 1938, "")).await;
    assert_eq!(status, 202, "{squatted}");
    let squatter = id_of(&squatted);

    let agent = agent(&app).await;
    let (status, body) = agent_registers(&app, &agent, &person(phone, 1938, "")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "active");
    assert_eq!(
        status_of(&app, squatter).await,
        ("expired".into(), None),
        "the squat is given up, erased"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unverified_registration_expires_erased_and_frees_its_place() {
    let app = spawn_with(Components::default(), |settings| {
        settings.gateway.expiry_sweep_seconds = 1;
        settings.gateway.unverified_hours = 1;
    })
    .await;
    app.load_demo().await;
    let phone = "+49 171 5554 0001";
    let (status, first) = register(&app, &person(phone, 1960, "")).await;
    assert_eq!(status, 202, "{first}");
    let id = id_of(&first);
    let (kept, _) = register(&app, &person("+49 171 5554 0002", 1960, "")).await;
    assert_eq!(kept, 202);

    // Its code died two hours ago.
    sqlx::query(
        "UPDATE phone_verifications SET created_at = now() - interval '3 hours', expires_at = now() - interval '2 hours'
         WHERE registrant_id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE registrants SET created_at = now() - interval '3 hours' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let mut waited = 0;
    while status_of(&app, id).await.0 != "expired" {
        assert!(waited < 100, "the registration did not expire");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let (birth_year, recipients): (Option<i32>, Vec<Vec<u8>>) = sqlx::query_as(
        "SELECT r.birth_year, array_agg(o.recipient) FROM registrants r
         JOIN phone_verifications v ON v.registrant_id = r.id JOIN outbox o ON o.subject_id = v.id
         WHERE r.id = $1 GROUP BY r.birth_year",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((status_of(&app, id).await.1, birth_year), (None, None));
    assert_eq!(recipients, [Vec::<u8>::new()], "its SMS keeps no phone number");
    let live: i64 =
        sqlx::query_scalar("SELECT count(*) FROM registrants WHERE status = 'pending_verification'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(live, 1, "a registration whose code is alive stays");

    // Its code no longer works, and the same person registers afresh.
    let response = app
        .post_json(
            &format!("/v1/registrations/{id}/verify"),
            &json!({ "code": "123456" }),
        )
        .await;
    assert_eq!(response.status(), 404);
    let (status, again) = register(&app, &person(phone, 1960, "")).await;
    assert_eq!(status, 202);
    assert_ne!(id_of(&again), id);
    assert_eq!(texts(&app, id_of(&again)).await[0].0, "verification_code");
    app.stop().await;
}

#[tokio::test]
async fn a_phone_is_sent_a_limited_number_of_codes_a_day_whoever_registers_on_it() {
    let app = spawn_with(Components::default(), |settings| {
        settings.gateway.codes_per_phone_per_day = 4;
    })
    .await;
    app.load_demo().await;
    let phone = "+49 171 5555 0001";
    for initials in ["A", "B", "C", "D"] {
        let (status, body) = register(&app, &person(phone, 1970, initials)).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = register(&app, &person(phone, 1970, "E")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_requests")),
        "{body}"
    );
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE kind = 'verification_code'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sent, 4);
    // Another phone is not affected.
    let (status, _) = register(&app, &person("+49 171 5555 0002", 1970, "E")).await;
    assert_eq!(status, 202);
    app.stop().await;
}

#[tokio::test]
async fn initials_that_are_not_letters_are_refused_naming_the_field() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (status, body) = register(&app, &person("+49 171 5556 0001", 1970, "A1")).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("initials")),
        "{body}"
    );
    app.stop().await;
}
