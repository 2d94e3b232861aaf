//! `GET /v1/me` with the booking code: the registrant's status and reasons, their offer, and
//! their pseudonym and lottery key per draw, matching the published manifest; wrong codes are
//! refused alike whether or not they exist, and guessing is rate-limited.

use std::collections::BTreeSet;

use drawbridge_domain::allocation::draw::Pseudonym;
use drawbridge_domain::BookingCode;
use drawbridge_test_support::{spawn_app, TestApp};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// An active registrant in Stuttgart with a booking code we know.
async fn registrant_with_code(app: &TestApp, phone: &str) -> (Uuid, BookingCode) {
    let code = BookingCode::generate(&mut rand::rngs::OsRng);
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO registrants (id, region_id, status, channel, phone, birth_year, priority_group, postcode,
                                  accepted_vaccines, max_distance_km, verified_at, booking_code_hash)
         VALUES ($1, 'bw', 'active', 'web', $2, 1950, 1, '70173', '{biontech}', 30, now(), $3)",
    )
    .bind(id)
    .bind(phone.as_bytes())
    .bind(code.keyed_hash(&app.hash_key()).as_slice())
    .execute(&app.pool)
    .await
    .unwrap();
    (id, code)
}

async fn me(app: &TestApp, authorization: Option<&str>) -> (u16, Value) {
    let mut request = app.http.get(app.url("/v1/me"));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_booking_code_opens_status_offer_and_place_in_every_draw() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.insert_registrants(0, 50).await;
    let (id, code) = registrant_with_code(&app, "+4917199990001").await;
    let auth = format!("BookingCode {code}");

    let (status, before) = me(&app, Some(&auth)).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["registration_id"], id.to_string());
    assert_eq!(before["eligibility"]["eligible"], true);
    assert_eq!(before["offer"], Value::Null);
    assert_eq!(before["draws"].as_array().unwrap().len(), 0);
    let pseudonym = Pseudonym::of(&app.hash_key(), id.as_bytes()).to_string();
    assert_eq!(before["pseudonym"], pseudonym);
    // What happens next, in the person's language (German here), and as a key for pages.
    assert_eq!(before["next_step"], "wait_for_a_draw");
    assert!(
        before["next"]
            .as_str()
            .unwrap()
            .starts_with("Sie sind in der Auslosung"),
        "{before}"
    );

    let allocator = drawbridge_allocator::connect(&app.settings, CancellationToken::new())
        .await
        .unwrap();
    let draw = allocator.tick_regions(Some("bw"), None).await.unwrap()[0]
        .draw
        .clone()
        .unwrap();
    let (_, after) = me(&app, Some(&auth)).await;
    assert_eq!(
        after["offer"]["centre"], "Impfzentrum Stuttgart Liederhalle",
        "{after}"
    );
    assert_eq!(after["next_step"], "answer_the_offer");
    let entry = &after["draws"][0];
    assert_eq!(entry["draw"], draw.id.to_string());
    assert_eq!(entry["in_pool"], true);
    assert_eq!(entry["offered"], true);
    assert_eq!(entry["pool"], 51);
    // The key shown is the key published, so the registrant can check the draw themselves.
    let manifest: Value = app
        .get(&format!("/v1/draws/{}/manifest", draw.id))
        .await
        .json()
        .await
        .unwrap();
    let published = manifest["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["pseudonym"] == pseudonym)
        .expect("in the manifest");
    assert_eq!(published["lottery_key"], entry["lottery_key"]);
    // Codes are read as people type them: lower case, spaces instead of dashes.
    let typed = code.to_string().to_lowercase().replace('-', " ");
    assert_eq!(me(&app, Some(&format!("BookingCode {typed}"))).await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn wrong_codes_are_refused_alike_and_guessing_is_limited() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (_, code) = registrant_with_code(&app, "+4917199990002").await;

    let (status, body) = me(&app, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("booking_code_required"))
    );
    let (status, _) = me(&app, Some(&format!("Bearer {code}"))).await;
    assert_eq!(status, 401);
    // A typo (caught by the check character) and a well-formed code nobody holds: same answer.
    let mut typo = code.to_string().into_bytes();
    typo[0] = if typo[0] == b'A' { b'B' } else { b'A' };
    let typo = String::from_utf8(typo).unwrap();
    let unknown = BookingCode::generate(&mut rand::rngs::OsRng);
    let (s1, b1) = me(&app, Some(&format!("BookingCode {typo}"))).await;
    let (s2, b2) = me(&app, Some(&format!("BookingCode {unknown}"))).await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1, b2);
    assert_eq!(b1["error"]["code"], "wrong_booking_code");
    let (s3, _) = me(&app, Some("BookingCode !!!!-????-####-\"\"\"\"")).await;
    assert_eq!(s3, 401);

    // Ten wrong codes at the holder's prefix from one address (its look-alike spellings
    // counting as one) slow that address down for that prefix...
    let prefix = code.prefix();
    let look_alike = prefix.replace('0', "O").replace('1', "l");
    let prefix_guess = |n: u32| {
        let spelled = if n.is_multiple_of(2) { &prefix } else { &look_alike };
        format!("BookingCode {spelled}-{n:04}-0000-0000")
    };
    for n in 0..10 {
        assert_eq!(me(&app, Some(&prefix_guess(n))).await.0, 401);
    }
    let response = app
        .http
        .get(app.url("/v1/me"))
        .header("Authorization", prefix_guess(99))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["Retry-After"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    // ...but never the holder elsewhere: guesses cannot lock a person out.
    let elsewhere = app.client_from(2);
    let response = elsewhere
        .get(app.url("/v1/me"))
        .header("Authorization", format!("BookingCode {code}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Nor does an address lock out everyone behind it: thirty wrong codes at other prefixes,
    // and a right one from the same address still opens its registration.
    for n in 0..30 {
        me(&app, Some(&format!("BookingCode Y{n:03}-0000-0000-0000"))).await;
    }
    let other = app.registrant_with_code("+4917112345699").await.1;
    assert_eq!(me(&app, Some(&format!("BookingCode {other}"))).await.0, 200);
    // Every wrong code counts on the guessing alarm.
    let alarm = drawbridge_test_support::metric(
        &app.metrics(&app.address).await,
        r#"drawbridge_gateway_guesses_failed_total{credential="booking_code"}"#,
    );
    assert!(alarm >= 43.0, "{alarm}");
    app.stop().await;
}

#[tokio::test]
async fn wrong_codes_sent_at_once_get_no_more_lookups_than_the_limit() {
    let app = spawn_app().await;
    let guesses = (0..150).map(|n| {
        let app = &app;
        async move {
            me(app, Some(&format!("BookingCode ZZZZ-{n:04}-0000-0000")))
                .await
                .0
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let judged = statuses.iter().filter(|&&status| status == 401).count();
    let limited = statuses.iter().filter(|&&status| status == 429).count();
    // Ten wrong codes per prefix.
    assert_eq!((judged, limited), (10, 140), "{statuses:?}");
    app.stop().await;
}

/// GDPR Art. 15: the person's copy of everything held about them, from the API and as a file
/// from the status page; codes and message contents are not in it.
#[tokio::test]
async fn a_person_gets_a_copy_of_everything_held_about_them() {
    let app = spawn_app().await;
    app.load_demo().await;
    let phone = "+4917155592001";
    let registered = app
        .post_json(
            "/v1/regions/bw/registrations",
            &drawbridge_test_support::registration(phone),
        )
        .await;
    assert_eq!(registered.status(), 202);
    let id = registered.json::<Value>().await.unwrap()["registration_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sms_code: String = sqlx::query_scalar(
        "SELECT payload->>'code' FROM outbox WHERE kind = 'verification_code' AND recipient_of = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let booking_code = app.verified_booking_code(&id, &sms_code).await;
    app.draw().await;
    let holder = format!("BookingCode {booking_code}");
    let (status, _) = app
        .call(reqwest::Method::POST, "/v1/me/offer/accept", &holder, None)
        .await;
    assert_eq!(status, 200);

    let (status, data) = app
        .call(reqwest::Method::GET, "/v1/me/export", &holder, None)
        .await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["registration"]["phone"], phone);
    assert_eq!(data["registration"]["email"], "anna@example.de");
    assert_eq!(data["registration"]["channel"], "web");
    assert_eq!(data["status"]["registration_id"], id.as_str());
    assert_eq!(data["offers"][0]["state"], "accepted");
    assert_eq!(data["bookings"][0]["state"], "booked");
    let kinds: BTreeSet<(&str, &str)> = data["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["kind"].as_str().unwrap(), m["channel"].as_str().unwrap()))
        .collect();
    for kind in ["verification_code", "booking_code", "offer", "confirmation"] {
        assert!(kinds.contains(&(kind, "sms")), "{kind}: {kinds:?}");
    }
    let text = data.to_string();
    for secret in [sms_code.as_str(), booking_code.as_str(), "payload", "token"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    // The same as a file from the status page, for the person signed in there only.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let anonymous = browser.get(app.url("/me/export")).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    let signed_in = browser
        .post(app.url("/me"))
        .form(&[("booking_code", booking_code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = signed_in.headers()["set-cookie"].to_str().unwrap();
    let session = session.split(';').next().unwrap().to_owned();
    let file = browser
        .get(app.url("/me/export"))
        .header("Cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(
        file.headers()["content-disposition"],
        "attachment; filename=\"drawbridge-my-data.json\""
    );
    let file: Value = file.json().await.unwrap();
    assert_eq!(file["bookings"], data["bookings"]);
    app.stop().await;
}
