//! The citizen and call-centre flows end to end: answering offers with the booking code or
//! the signed link in the message, the confirmation and its check-in pass, cancelling,
//! changing choices, withdrawing, staff logins, agents acting for callers (and only in their
//! region), and 200 clients answering at once without any pair or person booked twice.

use chrono::{Duration, Utc};
use drawbridge_domain::{CheckinPass, OfferLink, Role};
use drawbridge_platform::config::ExposeSecret;
use drawbridge_test_support::{registration, spawn_app, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::drawbridge;

fn code_auth(code: &drawbridge_domain::BookingCode) -> String {
    format!("BookingCode {code}")
}

/// `count` registrants (phones `prefix` and five digits) offered a pair each by one draw: the
/// `Authorization` header of each one's booking code, and their offer.
async fn offered_many(app: &TestApp, prefix: &str, count: usize) -> Vec<(String, Uuid)> {
    let mut people = Vec::new();
    for i in 0..count {
        people.push(app.registrant_with_code(&format!("{prefix}{i:05}")).await);
    }
    app.draw().await;
    let mut offers = Vec::new();
    for (id, code) in &people {
        let offer = app.pending_offer(*id).await.expect("everyone is offered a pair");
        offers.push((code_auth(code), offer));
    }
    offers
}

/// Opens an offer's pair again while the offer stays pending: a state no writer leaves behind.
async fn release_pair_behind_the_offers_back(app: &TestApp, offer: Uuid) {
    sqlx::query(
        "UPDATE slot_pairs SET state = 'open', offer_id = NULL WHERE id = (SELECT slot_pair_id FROM offers WHERE id = $1)",
    )
    .bind(offer)
    .execute(&app.pool)
    .await
    .unwrap();
}

/// A registrant with a pending offer from a real draw.
async fn offered(app: &TestApp, phone: &str) -> (Uuid, String, Uuid) {
    let (id, code) = app.registrant_with_code(phone).await;
    app.draw().await;
    let offer = app.pending_offer(id).await.expect("the draw offered a pair");
    (id, code_auth(&code), offer)
}

/// The token in the link of the offer's SMS.
async fn link_token(app: &TestApp, offer: Uuid) -> String {
    let url: String = sqlx::query_scalar(
        "SELECT payload->>'accept_url' FROM outbox WHERE kind = 'offer' AND subject_id = $1 AND channel = 'sms'",
    )
    .bind(offer)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(url.contains(&format!("/offers/{offer}?token=")), "{url}");
    url.rsplit_once("token=").unwrap().1.to_owned()
}

async fn pair_state(app: &TestApp, offer: Uuid) -> (String, String) {
    sqlx::query_as(
        "SELECT o.state, p.state FROM offers o JOIN slot_pairs p ON p.id = o.slot_pair_id WHERE o.id = $1",
    )
    .bind(offer)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn outbox_kinds(app: &TestApp, subject: Uuid) -> Vec<(String, String)> {
    sqlx::query_as("SELECT kind, channel FROM outbox WHERE subject_id = $1 ORDER BY kind, channel")
        .bind(subject)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn bookings(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bookings")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn accepting_books_both_appointments_and_confirms_with_a_pass_the_centre_can_verify() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (id, auth, offer) = offered(&app, "+4917120000001").await;

    let (status, me) = app.call(Method::GET, "/v1/me", &auth, None).await;
    assert_eq!(status, 200);
    assert_eq!(me["offer"]["id"], offer.to_string());

    let (status, body) = app.call(Method::POST, "/v1/me/offer/accept", &auth, None).await;
    assert_eq!(status, 200, "{body}");
    let booking: Uuid = body["booking"]["booking_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        pair_state(&app, offer).await,
        ("accepted".into(), "booked".into())
    );
    let (registrant, pair_booking): (Uuid, Option<Uuid>) = sqlx::query_as(
        "SELECT b.registrant_id, p.booking_id FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id WHERE b.id = $1",
    )
    .bind(booking)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((registrant, pair_booking), (id, Some(booking)));

    // One confirmation per channel, carrying a pass signed for this booking and its dates.
    assert_eq!(
        outbox_kinds(&app, booking).await,
        [
            ("confirmation".into(), "email".into()),
            ("confirmation".into(), "sms".into())
        ]
    );
    let qr: String = sqlx::query_scalar(
        "SELECT payload->>'qr_token' FROM outbox WHERE subject_id = $1 AND channel = 'sms'",
    )
    .bind(booking)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(qr, body["booking"]["checkin_pass"].as_str().unwrap());
    let pass_keys = app.settings.secrets.pass_keyring().unwrap();
    let pass = CheckinPass::verify(pass_keys.public(), &qr, Utc::now()).expect("the pass verifies offline");
    assert_eq!(pass.booking, booking);
    assert_eq!(pass.centre, body["booking"]["centre_id"].as_str().unwrap());
    assert!(pass.second_at.is_some(), "BioNTech has two doses");

    // Accepting again: the person is booked, not offered.
    let (status, again) = app.call(Method::POST, "/v1/me/offer/accept", &auth, None).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("already_booked"))
    );
    let (_, me) = app.call(Method::GET, "/v1/me", &auth, None).await;
    assert_eq!(me["booking"]["id"], booking.to_string());
    assert_eq!(me["offer"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn declining_frees_the_pair_and_the_person_stays_in_the_pool() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (id, auth, offer) = offered(&app, "+4917120000002").await;
    let (status, body) = app.call(Method::POST, "/v1/me/offer/decline", &auth, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pair_state(&app, offer).await, ("declined".into(), "open".into()));
    let (status, none) = app.call(Method::POST, "/v1/me/offer/decline", &auth, None).await;
    assert_eq!((status, none["error"]["code"].as_str()), (404, Some("not_found")));
    app.draw().await;
    let next = app
        .pending_offer(id)
        .await
        .expect("offered again in the next draw");
    assert_ne!(next, offer);
    app.stop().await;
}

#[tokio::test]
async fn cancelling_frees_the_pair_tells_the_person_and_is_refused_after_check_in() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (_, auth, offer) = offered(&app, "+4917120000003").await;
    let (_, accepted) = app.call(Method::POST, "/v1/me/offer/accept", &auth, None).await;
    let booking: Uuid = accepted["booking"]["booking_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let (status, body) = app.call(Method::POST, "/v1/me/booking/cancel", &auth, None).await;
    assert_eq!(status, 200, "{body}");
    let (state, pair): (String, String) = sqlx::query_as(
        "SELECT b.state, p.state FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id WHERE b.id = $1",
    )
    .bind(booking)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((state.as_str(), pair.as_str()), ("cancelled", "open"));
    assert!(outbox_kinds(&app, booking)
        .await
        .contains(&("booking_cancelled".into(), "sms".into())));
    let (status, _) = app.call(Method::POST, "/v1/me/booking/cancel", &auth, None).await;
    assert_eq!(status, 404);
    let _ = offer;

    // A second booking whose first dose was given cannot be cancelled from home.
    let (_, auth, _) = offered(&app, "+4917120000004").await;
    let (_, accepted) = app.call(Method::POST, "/v1/me/offer/accept", &auth, None).await;
    sqlx::query("UPDATE bookings SET state = 'first_dose_given', first_dose_at = now() WHERE id = $1")
        .bind(
            accepted["booking"]["booking_id"]
                .as_str()
                .unwrap()
                .parse::<Uuid>()
                .unwrap(),
        )
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, refused) = app.call(Method::POST, "/v1/me/booking/cancel", &auth, None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("already_checked_in"))
    );
    app.stop().await;
}

#[tokio::test]
async fn an_expired_offer_cannot_be_accepted_and_its_pair_goes_back_to_the_draw() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (_, auth, offer) = offered(&app, "+4917120000005").await;
    sqlx::query(
        "UPDATE offers SET offered_at = now() - interval '2 hours', expires_at = now() - interval '1 minute' WHERE id = $1",
    )
    .bind(offer)
    .execute(&app.pool)
    .await
    .unwrap();
    let (status, body) = app.call(Method::POST, "/v1/me/offer/accept", &auth, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("offer_expired")),
        "{body}"
    );
    assert_eq!(pair_state(&app, offer).await, ("expired".into(), "open".into()));
    assert_eq!(bookings(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_offer_whose_pair_is_not_held_for_it_is_not_taken_half_way() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (_, auth, offer) = offered(&app, "+4917120000006").await;
    // A state no writer leaves behind: the offer pending, its pair open again.
    release_pair_behind_the_offers_back(&app, offer).await;
    let (status, body) = app.call(Method::POST, "/v1/me/offer/accept", &auth, None).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        pair_state(&app, offer).await,
        ("pending".into(), "open".into()),
        "the offer is not accepted without its pair"
    );
    assert_eq!(
        outbox_kinds(&app, offer).await.len(),
        2,
        "only the offer's own messages"
    );
    assert_eq!(bookings(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_offer_link_answers_only_its_own_offer_and_only_until_it_expires() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (_, _, first) = offered(&app, "+4917120000006").await;
    let (_, _, second) = offered(&app, "+4917120000007").await;
    let token = link_token(&app, first).await;

    // The page shows the offer and answers nothing by itself.
    let page = app.get(&format!("/offers/{first}?token={token}")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Impfzentrum Stuttgart Liederhalle"), "{html}");
    assert!(html.contains(&format!("action=\"/offers/{first}/accept")));
    assert_eq!(pair_state(&app, first).await.0, "pending");

    // Someone else's offer, a tampered token, an expired one.
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{second}/accept"),
            "",
            Some(&json!({ "token": token })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_offer_link"))
    );
    let tampered = format!("{}x", &token[..token.len() - 1]);
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{first}/accept"),
            "",
            Some(&json!({ "token": tampered })),
        )
        .await;
    assert_eq!(status, 401);
    let keyring = app.settings.secrets.keyring().unwrap();
    let lapsed = OfferLink { offer: first }.sign(
        &keyring,
        Utc::now() - Duration::hours(2),
        Utc::now() - Duration::minutes(1),
    );
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{first}/accept"),
            "",
            Some(&json!({ "token": lapsed })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("offer_expired"))
    );

    // The genuine link books, once.
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{first}/accept"),
            "",
            Some(&json!({ "token": token })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{first}/accept"),
            "",
            Some(&json!({ "token": token })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("offer_already_accepted"))
    );

    // The page's decline button is a plain form post.
    let second_token = link_token(&app, second).await;
    let response = app
        .http
        .post(app.url(&format!("/offers/{second}/decline?lang=en")))
        .form(&[("token", second_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("Declined"));
    assert_eq!(pair_state(&app, second).await, ("declined".into(), "open".into()));
    app.stop().await;
}

#[tokio::test]
async fn choices_change_with_checks_and_withdrawal_erases_the_person() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (id, auth, offer) = offered(&app, "+4917120000008").await;

    let changes = json!({ "accepted_vaccines": ["moderna", "biontech"], "max_distance_km": 80, "email": null, "language": "en" });
    let (status, me) = app.call(Method::PATCH, "/v1/me", &auth, Some(&changes)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["choices"]["accepted_vaccines"], json!(["moderna", "biontech"]));
    assert_eq!(me["choices"]["max_distance_km"], 80);
    assert_eq!(me["choices"]["email"], Value::Null);
    assert_eq!(me["language"], "en");
    for (bad, field) in [
        (json!({ "accepted_vaccines": ["sputnik"] }), "accepted_vaccines"),
        (json!({ "accepted_vaccines": [] }), "accepted_vaccines"),
        (json!({ "max_distance_km": 0 }), "max_distance_km"),
        (json!({ "email": "not-an-address" }), "email"),
    ] {
        let (status, body) = app.call(Method::PATCH, "/v1/me", &auth, Some(&bad)).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some(field)),
            "{bad}"
        );
    }
    let (status, _) = app
        .call(Method::PATCH, "/v1/me", &auth, Some(&json!({ "name": "Anna" })))
        .await;
    assert_eq!(status, 400, "unknown fields are refused, not ignored");

    let (status, body) = app.call(Method::DELETE, "/v1/me", &auth, None).await;
    assert_eq!(status, 200, "{body}");
    // Every personal field is gone; only the status and pseudonymous history stay.
    let (status, remaining): (String, i64) = sqlx::query_as(
        "SELECT status, (num_nonnulls(phone, phone_index, email, birth_year, priority_group, postcode,
                                      max_distance_km, booking_code_hash) + cardinality(accepted_vaccines))::bigint
         FROM registrants WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), remaining), ("withdrawn", 0));
    assert_eq!(pair_state(&app, offer).await, ("withdrawn".into(), "open".into()));
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE recipient <> '' AND (subject_id = $1 OR subject_id = $2)",
    )
    .bind(id)
    .bind(offer)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(kept, 0, "no message row keeps the phone number");
    let (status, _) = app.call(Method::GET, "/v1/me", &auth, None).await;
    assert_eq!(status, 401, "the booking code no longer opens anything");
    app.stop().await;
}

#[tokio::test]
async fn staff_log_in_with_their_password_and_out_again() {
    let app = spawn_app().await;
    app.load_demo().await;
    let token = app
        .staff_token("agent.anna", Role::CallcentreAgent, "bw", None)
        .await;
    let bearer = format!("Bearer {token}");
    let (status, me) = app.call(Method::GET, "/v1/staff/me", &bearer, None).await;
    assert_eq!(
        (status, me["staff"]["role"].as_str()),
        (200, Some("callcentre_agent"))
    );

    for (username, password) in [
        ("agent.anna", "a wrong password!"),
        ("nobody.here", "a long test password"),
    ] {
        let response = app
            .post_json(
                "/v1/staff/sessions",
                &json!({ "username": username, "password": password }),
            )
            .await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "wrong_credentials");
    }
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM staff WHERE username = 'agent.anna'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains("a long test password"));

    let (status, _) = app
        .call(Method::DELETE, "/v1/staff/sessions/current", &bearer, None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = app.call(Method::GET, "/v1/staff/me", &bearer, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("staff_session_invalid"))
    );
    let (status, body) = app
        .call(Method::GET, "/v1/staff/me", "Bearer dbs_forged", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("staff_session_invalid"))
    );
    app.stop().await;
}

/// Ten wrong passwords for one account from one address wait out the window; each time the
/// counter fills again it waits twice as long, and a right password clears the record.
#[tokio::test]
async fn a_guesser_who_keeps_failing_waits_twice_as_long_each_time() {
    let owned = spawn_app().await;
    let app = &owned;
    app.load_demo().await;
    app.staff_token("agent.anna", Role::CallcentreAgent, "bw", None)
        .await;
    let log_in = |password: &'static str| async move {
        let login = json!({ "username": "agent.anna", "password": password });
        let response = app.post_json("/v1/staff/sessions", &login).await;
        let wait = response
            .headers()
            .get("Retry-After")
            .map(|value| value.to_str().unwrap().parse::<u64>().unwrap());
        (response.status().as_u16(), wait)
    };
    let redis = deadpool_redis::Config::from_url(app.settings.redis.url.expose_secret())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    // The window ends: the counter goes, what Redis remembers of its fillings stays.
    let redis = &redis;
    let window_ends = || async move {
        let mut connection = redis.get().await.unwrap();
        let counter = format!(
            "{}:logins:user:agent.anna:address:127.0.0.1",
            app.settings.redis.key_prefix
        );
        let removed: i64 = deadpool_redis::redis::cmd("DEL")
            .arg(counter)
            .query_async(&mut *connection)
            .await
            .unwrap();
        assert_eq!(removed, 1);
    };
    let mut waits = Vec::new();
    for _ in 0..3 {
        for _ in 0..10 {
            assert_eq!(log_in("a wrong password!").await.0, 401);
        }
        let (status, wait) = log_in("a long test password").await;
        assert_eq!(status, 429);
        waits.push(wait.unwrap());
        window_ends().await;
    }
    let minutes: Vec<u64> = waits.iter().map(|seconds| seconds.div_ceil(60)).collect();
    assert_eq!(minutes, [15, 30, 60], "{waits:?}");

    // The right password clears the record: the next filling waits the window again.
    assert_eq!(log_in("a long test password").await.0, 201);
    for _ in 0..10 {
        assert_eq!(log_in("a wrong password!").await.0, 401);
    }
    let (status, wait) = log_in("a long test password").await;
    assert_eq!(
        (status, wait.map(|seconds| seconds.div_ceil(60))),
        (429, Some(15))
    );
    owned.stop().await;
}

#[tokio::test]
async fn wrong_logins_sent_at_once_get_no_more_password_checks_than_the_limit() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.staff_token("agent.anna", Role::CallcentreAgent, "bw", None)
        .await;
    let logins: Vec<Value> = (0..150)
        .map(|n| json!({ "username": "agent.anna", "password": format!("wrong password {n}") }))
        .collect();
    let logins = logins
        .iter()
        .map(|login| app.post_json("/v1/staff/sessions", login));
    let statuses: Vec<u16> = futures_util::future::join_all(logins)
        .await
        .iter()
        .map(|response| response.status().as_u16())
        .collect();
    let checked = statuses.iter().filter(|&&status| status == 401).count();
    let limited = statuses.iter().filter(|&&status| status == 429).count();
    // Ten failed logins per username: the logged-in one before them was taken back.
    assert_eq!((checked, limited), (10, 140), "{statuses:?}");
    app.stop().await;
}

#[tokio::test]
async fn wrong_logins_from_one_address_never_lock_the_owner_out_elsewhere() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.staff_token("agent.anna", Role::CallcentreAgent, "bw", None)
        .await;
    let log_in = |client: &reqwest::Client, password: &str| {
        client
            .post(app.url("/v1/staff/sessions"))
            .json(&json!({ "username": "agent.anna", "password": password }))
            .send()
    };
    let attacker = reqwest::Client::new();
    for n in 0..10 {
        let response = log_in(&attacker, &format!("wrong password {n}")).await.unwrap();
        assert_eq!(response.status(), 401);
    }
    let response = log_in(&attacker, "a long test password").await.unwrap();
    assert_eq!(
        response.status(),
        429,
        "the guessing address waits, even with the password"
    );
    // The owner, at another address, logs in at once.
    let owner = app.client_from(3);
    let response = log_in(&owner, "a long test password").await.unwrap();
    assert_eq!(response.status(), 201);
    let alarm = drawbridge_test_support::metric(
        &app.metrics(&app.address).await,
        r#"drawbridge_gateway_guesses_failed_total{credential="staff_password"}"#,
    );
    assert_eq!(alarm, 10.0);
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_staff_account_loses_its_sessions_for_good() {
    let app = spawn_app().await;
    app.load_demo().await;
    let url = app.database_url().to_owned();
    let env = [("DRAWBRIDGE_DATABASE__URL", url.as_str())];
    let staff = |action: &str| {
        let output = drawbridge(
            &["--config", "deploy/local.toml", "staff", action, "agent.anna"],
            &env,
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let me = |token: &str| {
        let bearer = format!("Bearer {token}");
        let app = &app;
        async move { app.call(Method::GET, "/v1/staff/me", &bearer, None).await }
    };
    let credentials = json!({ "username": "agent.anna", "password": "a long test password" });
    let login = || app.post_json("/v1/staff/sessions", &credentials);
    let token = app
        .staff_token("agent.anna", Role::CallcentreAgent, "bw", None)
        .await;
    staff("disable");
    let (status, body) = me(&token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("staff_session_invalid"))
    );
    assert_eq!(login().await.status(), 401);
    staff("enable");
    assert_eq!(me(&token).await.0, 401, "enabling revives no session");
    let response = login().await;
    assert_eq!(response.status(), 201);
    let token: String = response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(me(&token).await.0, 200);

    // Disabled and enabled again by hand in SQL: the same.
    for disabled_at in ["now()", "NULL"] {
        sqlx::query(&format!(
            "UPDATE staff SET disabled_at = {disabled_at} WHERE username = 'agent.anna'"
        ))
        .execute(&app.pool)
        .await
        .unwrap();
    }
    assert_eq!(me(&token).await.0, 401, "enabling revives no session");
    let output = drawbridge(
        &["--config", "deploy/local.toml", "staff", "disable", "nobody.here"],
        &env,
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("no staff account \"nobody.here\""));
    app.stop().await;
}

#[tokio::test]
async fn staff_accounts_are_created_on_the_command_line_with_the_password_kept_hashed() {
    let app = spawn_app().await;
    app.load_demo().await;
    let url = app.database_url().to_owned();
    let env = [("DRAWBRIDGE_DATABASE__URL", url.as_str())];
    let file = std::env::temp_dir().join(format!("drawbridge-password-{}", Uuid::new_v4()));
    std::fs::write(&file, "centre staff password\n").unwrap();
    let file = file.to_str().unwrap();
    let output = drawbridge(
        &[
            "--config",
            "deploy/local.toml",
            "staff",
            "add",
            "door.stuttgart",
            "--role",
            "centre_staff",
            "--region",
            "bw",
            "--centre",
            "stuttgart-liederhalle",
            "--password-file",
            file,
        ],
        &env,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let response = app
        .post_json(
            "/v1/staff/sessions",
            &json!({ "username": "door.stuttgart", "password": "centre staff password" }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["staff"]["centre"], "stuttgart-liederhalle");

    // Centre staff need their centre; nobody else may have one.
    let output = drawbridge(
        &[
            "--config",
            "deploy/local.toml",
            "staff",
            "add",
            "door.two",
            "--role",
            "centre_staff",
            "--region",
            "bw",
            "--password-file",
            file,
        ],
        &env,
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--centre"));
    let output = drawbridge(
        &[
            "--config",
            "deploy/local.toml",
            "staff",
            "add",
            "x",
            "--role",
            "analyst",
            "--region",
            "bw",
            "--password-file",
            file,
        ],
        &env,
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("username"));
    app.stop().await;
}

#[tokio::test]
async fn agents_register_callers_and_act_for_them_in_their_region_only_with_every_step_logged() {
    let app = spawn_app().await;
    app.load_demo().await;
    let agent = format!(
        "Bearer {}",
        app.staff_token("agent.ben", Role::CallcentreAgent, "bw", None)
            .await
    );
    let mut caller = registration("+49 171 2000 0009");
    caller.as_object_mut().unwrap().remove("email");
    let (status, registered) = app
        .call(
            Method::POST,
            "/v1/callcentre/registrations",
            &agent,
            Some(&caller),
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(
        registered["status"], "active",
        "no SMS code: the agent attests the phone"
    );
    let id: Uuid = registered["registration_id"].as_str().unwrap().parse().unwrap();
    let code = registered["booking_code"].as_str().unwrap().to_owned();
    assert_eq!(
        outbox_kinds(&app, id).await,
        [("booking_code".into(), "sms".into())]
    );
    let channel: String = sqlx::query_scalar("SELECT channel FROM registrants WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(channel, "callcentre");

    // The same phone cannot register twice, by phone or on the web.
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/callcentre/registrations",
            &agent,
            Some(&caller),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("phone_already_registered"))
    );

    let (status, found) = app
        .call(
            Method::POST,
            "/v1/callcentre/lookup",
            &agent,
            Some(&json!({ "booking_code": code })),
        )
        .await;
    assert_eq!(
        (status, found["registration_id"].as_str()),
        (200, Some(id.to_string().as_str()))
    );
    app.draw().await;
    let path = |action: &str| format!("/v1/callcentre/registrants/{id}/{action}");
    let (status, body) = app.call(Method::POST, &path("offer/accept"), &agent, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .call(Method::POST, &path("booking/cancel"), &agent, None)
        .await;
    assert_eq!(status, 200, "{body}");

    // Another region's agent, centre staff and anonymous callers get nowhere.
    let foreign = format!(
        "Bearer {}",
        app.staff_token("agent.bayern", Role::CallcentreAgent, "by", None)
            .await
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/callcentre/lookup",
            &foreign,
            Some(&json!({ "booking_code": code })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_allowed"))
    );
    let (status, _) = app
        .call(Method::POST, &path("offer/decline"), &foreign, None)
        .await;
    assert_eq!(status, 403);
    let door = format!(
        "Bearer {}",
        app.staff_token("door.ulm", Role::CentreStaff, "bw", Some("stuttgart-liederhalle"))
            .await
    );
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/callcentre/registrants/{id}"),
            &door,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .call(Method::POST, "/v1/callcentre/registrations", "", Some(&caller))
        .await;
    assert_eq!(status, 401);

    let logged: Vec<String> = sqlx::query_scalar(
        "SELECT a.action FROM staff_actions a JOIN staff s ON s.id = a.staff_id
         WHERE s.username = 'agent.ben' AND a.subject_id = $1 ORDER BY a.id",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        logged,
        [
            "registration.create",
            "registrant.lookup",
            "offer.accept",
            "booking.cancel"
        ]
    );
    // The acceptance's entry names the offer and the booking it made.
    let (detail, booking): (Value, Uuid) = sqlx::query_as(
        "SELECT a.detail, b.id FROM staff_actions a JOIN bookings b ON b.registrant_id = a.subject_id
         WHERE a.action = 'offer.accept' AND a.subject_id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let offer: Uuid = sqlx::query_scalar("SELECT offer_id FROM bookings WHERE id = $1")
        .bind(booking)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(detail, json!({ "offer": offer, "booking": booking }));
    app.stop().await;
}

#[tokio::test]
async fn two_hundred_clients_answering_at_once_book_every_pair_and_person_at_most_once() {
    let app = spawn_app().await;
    app.load_demo().await;
    let mut offers = Vec::new();
    for (auth, offer) in offered_many(&app, "+49171300", 100).await {
        offers.push((auth, offer, link_token(&app, offer).await));
    }
    // Each offer is answered twice at the same moment: once with the booking code, once
    // through the link, as a person with the SMS open on two devices would.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(200));
    let mut clients = Vec::new();
    for (auth, offer, token) in offers {
        for by_link in [false, true] {
            let (http, base, barrier, auth, token) = (
                app.http.clone(),
                app.address.clone(),
                barrier.clone(),
                auth.clone(),
                token.clone(),
            );
            clients.push(tokio::spawn(async move {
                barrier.wait().await;
                let request = if by_link {
                    http.post(format!("{base}/v1/offers/{offer}/accept"))
                        .json(&json!({ "token": token }))
                } else {
                    http.post(format!("{base}/v1/me/offer/accept"))
                        .header("Authorization", auth)
                };
                (offer, request.send().await.unwrap().status().as_u16())
            }));
        }
    }
    let mut outcomes: std::collections::HashMap<Uuid, Vec<u16>> = Default::default();
    for client in clients {
        let (offer, status) = client.await.unwrap();
        outcomes.entry(offer).or_default().push(status);
    }
    for (offer, mut statuses) in outcomes {
        statuses.sort();
        assert_eq!(statuses, [200, 409], "offer {offer}: exactly one answer books");
    }
    let (bookings, pairs, people): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT slot_pair_id), count(DISTINCT registrant_id) FROM bookings WHERE state = 'booked'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((bookings, pairs, people), (100, 100, 100));
    let messages: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE kind = 'confirmation' AND channel = 'sms'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(messages, 100, "one confirmation per booking");
    assert!(
        app.largest_batch("accept").await > 1.0,
        "acceptances shared statements"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acceptance_that_fails_its_shared_statement_fails_alone() {
    let app = spawn_app().await;
    app.load_demo().await;
    let offers = offered_many(&app, "+49171310", 20).await;
    // One offer's pair is no longer held for it (a state no writer leaves behind), so the
    // statement that books it fails: shared with other acceptances, it must not take them down.
    let broken = offers[7].1;
    release_pair_behind_the_offers_back(&app, broken).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(offers.len()));
    let clients: Vec<_> = offers
        .iter()
        .map(|(auth, offer)| {
            let (http, base, barrier, auth, offer) = (
                app.http.clone(),
                app.address.clone(),
                barrier.clone(),
                auth.clone(),
                *offer,
            );
            tokio::spawn(async move {
                barrier.wait().await;
                let response = http
                    .post(format!("{base}/v1/me/offer/accept"))
                    .header("Authorization", auth)
                    .send()
                    .await
                    .unwrap();
                (offer, response.status().as_u16())
            })
        })
        .collect();
    for client in clients {
        let (offer, status) = client.await.unwrap();
        let expected = if offer == broken { 500 } else { 200 };
        assert_eq!(status, expected, "offer {offer}");
    }
    assert_eq!(pair_state(&app, broken).await, ("pending".into(), "open".into()));
    assert_eq!(bookings(&app).await, 19);
    app.stop().await;
}
