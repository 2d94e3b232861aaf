//! Registration, step two, against real Postgres: the SMS code proves the phone; wrong codes
//! count down; dead codes must be replaced; new codes come at a limited pace; success issues a
//! booking code, stored only as a keyed hash and sent by SMS and email through the outbox. A
//! registration sent again (its answer lost) gets the same registration and a new code, and
//! with an Idempotency-Key the first answer again.

use drawbridge_domain::BookingCode;
use drawbridge_test_support::{registration, spawn_app, TestApp};
use serde_json::{json, Value};
use uuid::Uuid;

async fn register(app: &TestApp, phone: &str) -> Uuid {
    let response = app
        .post_json("/v1/regions/bw/registrations", &registration(phone))
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["registration_id"].as_str().unwrap().parse().unwrap()
}

/// The newest code queued for the registration's phone, read from the outbox.
async fn texted_code(app: &TestApp, id: Uuid) -> String {
    let (code,): (String,) = sqlx::query_as(
        "SELECT o.payload->>'code' FROM outbox o JOIN phone_verifications v ON v.id = o.subject_id
         WHERE v.registrant_id = $1 ORDER BY v.created_at DESC LIMIT 1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    code
}

async fn verify(app: &TestApp, id: Uuid, code: &str) -> (u16, Value) {
    let response = app
        .post_json(
            &format!("/v1/registrations/{id}/verify"),
            &json!({ "code": code }),
        )
        .await;
    (response.status().as_u16(), response.json().await.unwrap())
}

/// `POST /v1/regions/bw/registrations` with `body` and, if given, an `Idempotency-Key`: the
/// status, the `Retry-After` header and the body.
async fn register_with(app: &TestApp, body: &Value, key: Option<&str>) -> (u16, Option<u64>, Value) {
    let mut request = app.http.post(app.url("/v1/regions/bw/registrations")).json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().parse().unwrap());
    (status, retry_after, response.json().await.unwrap())
}

/// Moves every code of the registration two minutes into the past, past the pace of new codes.
async fn age_codes(app: &TestApp, id: Uuid) {
    sqlx::query("UPDATE phone_verifications SET created_at = created_at - interval '2 minutes' WHERE registrant_id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
}

/// SMS codes queued in all.
async fn codes_queued(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE kind = 'verification_code'")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[tokio::test]
async fn the_right_code_issues_a_booking_code_sent_by_sms_and_email() {
    let app = spawn_app().await;
    app.load_demo().await;
    let id = register(&app, "0171 5550001").await;
    let code = texted_code(&app, id).await;
    let (status, body) = verify(&app, id, &format!(" {} {} ", &code[..3], &code[3..])).await;
    assert_eq!(status, 200, "{body}");
    let booking_code =
        BookingCode::parse(body["booking_code"].as_str().unwrap()).expect("a valid booking code");
    let (state, stored): (String, Vec<u8>) =
        sqlx::query_as("SELECT status, booking_code_hash FROM registrants WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(state, "active");
    assert_eq!(
        stored,
        booking_code.keyed_hash(&app.hash_key()).to_vec(),
        "stored only as its keyed hash"
    );
    let sent: Vec<(String, String)> = sqlx::query_as(
        "SELECT channel, payload->>'booking_code' FROM outbox WHERE subject_id = $1 AND kind = 'booking_code' ORDER BY channel",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let code_text = booking_code.to_string();
    assert_eq!(
        sent,
        [
            ("email".to_owned(), code_text.clone()),
            ("sms".to_owned(), code_text)
        ]
    );
    let (again, error) = verify(&app, id, &code).await;
    assert_eq!(
        (again, error["error"]["code"].as_str()),
        (409, Some("already_verified"))
    );
    app.stop().await;
}

#[tokio::test]
async fn wrong_codes_count_down_and_the_fifth_kills_the_code() {
    let app = spawn_app().await;
    app.load_demo().await;
    let id = register(&app, "0171 5550002").await;
    let code = texted_code(&app, id).await;
    for left in (0..5).rev() {
        let (status, error) = verify(&app, id, &wrong(&code)).await;
        assert_eq!(status, 422);
        assert_eq!(error["error"]["code"], "wrong_code");
        assert_eq!(error["error"]["attempts_left"], left);
    }
    let (status, error) = verify(&app, id, &code).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("code_no_longer_valid")),
        "{error}"
    );
    let (status, error) = verify(&app, id, "12ab56").await;
    assert_eq!((status, error["error"]["field"].as_str()), (422, Some("code")));
    app.stop().await;
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let app = spawn_app().await;
    app.load_demo().await;
    let id = register(&app, "0171 5550003").await;
    let code = texted_code(&app, id).await;
    sqlx::query(
        "UPDATE phone_verifications SET created_at = now() - interval '11 minutes', expires_at = now() - interval '1 minute'
         WHERE registrant_id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let (status, error) = verify(&app, id, &code).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("code_no_longer_valid"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_new_code_comes_at_a_limited_pace_and_replaces_the_old_one() {
    let app = spawn_app().await;
    app.load_demo().await;
    let id = register(&app, "0171 5550004").await;
    let old = texted_code(&app, id).await;
    let resend = |app: &TestApp| {
        app.http
            .post(app.url(&format!("/v1/registrations/{id}/resend")))
            .send()
    };
    let too_soon = resend(&app).await.unwrap();
    assert_eq!(too_soon.status(), 429);
    let wait: u64 = too_soon.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let age_codes = || {
        sqlx::query("UPDATE phone_verifications SET created_at = created_at - interval '2 minutes' WHERE registrant_id = $1")
            .bind(id)
            .execute(&app.pool)
    };
    age_codes().await.unwrap();
    assert_eq!(resend(&app).await.unwrap().status(), 202);
    let new = texted_code(&app, id).await;
    if new != old {
        let (status, _) = verify(&app, id, &old).await;
        assert_eq!(status, 422, "the old code died");
    }
    // At most five codes per registration.
    for _ in 0..3 {
        age_codes().await.unwrap();
        assert_eq!(resend(&app).await.unwrap().status(), 202);
    }
    age_codes().await.unwrap();
    let capped = resend(&app).await.unwrap();
    assert_eq!(capped.status(), 429);
    let latest = texted_code(&app, id).await;
    let (status, body) = verify(&app, id, &latest).await;
    assert_eq!(status, 200, "{body}");
    let unknown = app
        .http
        .post(app.url(&format!("/v1/registrations/{}/resend", Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_sent_at_once_get_five_tries_in_all_and_no_more() {
    let app = spawn_app().await;
    app.load_demo().await;
    let id = register(&app, "0171 5550009").await;
    let code = texted_code(&app, id).await;
    // Thirty wrong guesses at the same moment, then the right code: the guesses queue on the
    // registration's lock, and each must see the tries the ones before it used up.
    let guesses = (1..=30).map(|n| {
        let guess = format!("{:06}", (code.parse::<u32>().unwrap() + n) % 1_000_000);
        let app = &app;
        async move { verify(app, id, &guess).await }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let mut kinds: Vec<String> = answers
        .iter()
        .map(|(status, body)| format!("{status} {}", body["error"]["code"].as_str().unwrap_or("-")))
        .collect();
    kinds.sort();
    let counted = kinds.iter().filter(|k| *k == "422 wrong_code").count();
    assert_eq!(counted, 5, "exactly five tries counted: {kinds:?}");
    assert!(
        kinds
            .iter()
            .all(|k| k == "422 wrong_code" || k == "422 code_no_longer_valid"),
        "the rest are told the code is dead: {kinds:?}"
    );
    let (status, error) = verify(&app, id, &code).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("code_no_longer_valid")),
        "the right code after five wrong tries is dead: {error}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_and_verifications_sent_at_once_share_statements_and_each_gets_its_own_answer() {
    let app = spawn_app().await;
    app.load_demo().await;
    // Forty people register at once, and three more requests send the first person's again.
    let phones: Vec<String> = (0..40).map(|n| format!("0171 66{n:05}")).collect();
    let requests = phones
        .iter()
        .chain([&phones[0], &phones[0], &phones[0]])
        .map(|phone| {
            let app = &app;
            async move {
                let response = app
                    .post_json("/v1/regions/bw/registrations", &registration(phone))
                    .await;
                let status = response.status().as_u16();
                (phone.clone(), status, response.json::<Value>().await.unwrap())
            }
        });
    let answers = futures_util::future::join_all(requests).await;
    let mut ids = Vec::new();
    for (phone, status, body) in &answers {
        match status {
            202 => ids.push(body["registration_id"].as_str().unwrap().parse::<Uuid>().unwrap()),
            // The same phone again within the pace of codes.
            429 => assert_eq!(
                (phone, body["error"]["code"].as_str()),
                (&phones[0], Some("too_many_requests"))
            ),
            _ => panic!("{phone}: {status} {body}"),
        }
    }
    assert_eq!(ids.len(), 40, "one registration per phone");
    assert!(
        app.largest_batch("register").await > 1.0,
        "registrations shared a statement"
    );
    let (codes_sent,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM outbox WHERE kind = 'verification_code' AND channel = 'sms'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(codes_sent, 40, "one SMS code per registration");

    // All verify at once: even ones with the right code, odd ones with a wrong one, and a guess
    // for a registration that does not exist.
    let mut guesses = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let code = texted_code(&app, *id).await;
        guesses.push((*id, if n % 2 == 0 { code } else { wrong(&code) }));
    }
    let unknown = Uuid::new_v4();
    guesses.push((unknown, "123456".into()));
    let answers = futures_util::future::join_all(guesses.iter().map(|(id, code)| {
        let app = &app;
        async move { verify(app, *id, code).await }
    }))
    .await;
    for (n, (status, body)) in answers.iter().enumerate() {
        let expected = match n {
            40 => (404, Some("not_found")),
            n if n % 2 == 0 => (200, None),
            _ => (422, Some("wrong_code")),
        };
        assert_eq!(
            (*status, body["error"]["code"].as_str()),
            expected,
            "guess {n}: {body}"
        );
        if expected.0 == 200 {
            BookingCode::parse(body["booking_code"].as_str().unwrap()).expect("a booking code");
        }
        if expected.0 == 422 {
            assert_eq!(body["error"]["attempts_left"], 4, "{body}");
        }
    }
    assert!(
        app.largest_batch("verify").await > 1.0,
        "verifications shared a statement"
    );
    let (active, booking_codes): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM registrants WHERE status = 'active'),
                (SELECT count(*) FROM outbox WHERE kind = 'booking_code' AND channel = 'sms')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (active, booking_codes),
        (20, 20),
        "the right codes, and only they, activated"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_registration_sent_again_after_its_answer_was_lost_gets_the_same_id_and_a_new_code() {
    let app = spawn_app().await;
    app.load_demo().await;
    let phone = "0171 5550010";
    // The answer to this one is lost on its way: the client knows no id.
    let id = register(&app, phone).await;
    let first = texted_code(&app, id).await;

    // Sent again at once: the code went out moments ago, so it waits as a resend would.
    let (status, retry_after, body) = register_with(&app, &registration(phone), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_requests")),
        "{body}"
    );
    assert!(matches!(retry_after, Some(1..=60)), "Retry-After {retry_after:?}");
    assert_eq!(codes_queued(&app).await, 1, "no second code within the pace");

    // After the wait: the same registration, with the details entered now, and a new code.
    age_codes(&app, id).await;
    let mut corrected = registration(phone);
    corrected["email"] = json!("anna.b@example.de");
    let (status, _, body) = register_with(&app, &corrected, None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["registration_id"], id.to_string());
    assert_eq!(body["verification"]["attempts_left"], 5);
    assert_eq!(codes_queued(&app).await, 2);
    let (_, email) = app.contact(id).await;
    assert_eq!(email.as_deref(), Some("anna.b@example.de"));
    let latest = texted_code(&app, id).await;
    if latest != first {
        let (status, _) = verify(&app, id, &first).await;
        assert_eq!(status, 422, "the earlier code died");
    }

    // Within the count of codes: three more, then the registration stays, without another.
    for _ in 0..3 {
        age_codes(&app, id).await;
        let (status, _, body) = register_with(&app, &registration(phone), None).await;
        assert_eq!(
            (status, body["registration_id"].as_str()),
            (202, Some(id.to_string().as_str()))
        );
    }
    age_codes(&app, id).await;
    let (status, retry_after, body) = register_with(&app, &registration(phone), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_requests")),
        "{body}"
    );
    assert!(retry_after.is_some());
    assert_eq!(codes_queued(&app).await, 5);
    let latest = texted_code(&app, id).await;
    let (status, body) = verify(&app, id, &latest).await;
    assert_eq!(status, 200, "the registration was kept: {body}");

    // The verified person again: answered like anyone (a registration that cannot be
    // verified), with a notice to the phone instead of a code.
    let (status, _, body) = register_with(&app, &registration(phone), None).await;
    assert_eq!(status, 202, "{body}");
    assert_ne!(body["registration_id"], id.to_string());
    let active: i64 = sqlx::query_scalar("SELECT count(*) FROM registrants WHERE status = 'active'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(active, 1);
    assert_eq!(codes_queued(&app).await, 5, "no code for it");
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_request() {
    let app = spawn_app().await;
    app.load_demo().await;
    let phone = "0171 5550011";
    let key = "9b2f4d8e-registration-1";
    let (status, _, first) = register_with(&app, &registration(phone), Some(key)).await;
    assert_eq!(status, 202, "{first}");
    let id: Uuid = first["registration_id"].as_str().unwrap().parse().unwrap();

    // The same request again, at once: the first answer, and no second SMS.
    let (status, _, again) = register_with(&app, &registration(phone), Some(key)).await;
    assert_eq!((status, &again), (202, &first));
    assert_eq!(codes_queued(&app).await, 1);

    // The key with another request: refused, nothing written.
    let mut other = registration(phone);
    other["birth_year"] = json!(1957);
    for body in [other, registration("0171 5550012")] {
        let (status, _, refused) = register_with(&app, &body, Some(key)).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (409, Some("idempotency_key_reused")),
            "{refused}"
        );
    }
    let registrations: i64 = sqlx::query_scalar("SELECT count(*) FROM registrants")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!((registrations, codes_queued(&app).await), (1, 1));

    // A new key for the same phone later is a registration sent again: a new code, and that
    // answer is what its key replays.
    age_codes(&app, id).await;
    let (status, _, second) =
        register_with(&app, &registration(phone), Some("9b2f4d8e-registration-2")).await;
    assert_eq!(
        (status, second["registration_id"].as_str()),
        (202, Some(id.to_string().as_str()))
    );
    assert_ne!(
        second["verification"]["expires_at"],
        first["verification"]["expires_at"]
    );
    let (_, _, replayed) = register_with(&app, &registration(phone), Some("9b2f4d8e-registration-2")).await;
    assert_eq!(replayed, second);
    let (_, _, replayed) = register_with(&app, &registration(phone), Some(key)).await;
    assert_eq!(replayed, first);
    assert_eq!(codes_queued(&app).await, 2);

    let (status, _, body) = register_with(&app, &registration(phone), Some(&"k".repeat(129))).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("Idempotency-Key"))
    );
    app.stop().await;
}
