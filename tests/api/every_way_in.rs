//! Everyone can finish, on every channel: a caller with no email, registered by the call
//! centre, follows the links in the SMS they get (status page, offer, pass) and is checked in
//! for both doses at the door without a QR code at hand, by booking reference and by booking
//! code, each with their birth year. Every link in every message leads to a page that exists.

use std::time::Duration;

use drawbridge_domain::{Language, Role};
use drawbridge_platform::outbox::Notification;
use drawbridge_test_support::{registration, spawn_with, Components, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const STUTTGART: &str = "stuttgart-liederhalle";
const PHONE: &str = "+4917155580001";

/// The path (with query) of the one link in an SMS to the gateway, whatever its public address.
fn link_in(sms: &str) -> String {
    let start = sms.find("http").unwrap_or_else(|| panic!("no link in {sms:?}"));
    let url = sms[start..].split_whitespace().next().unwrap();
    let after_scheme = &url[url.find("://").unwrap() + 3..];
    after_scheme[after_scheme.find('/').unwrap()..].to_owned()
}

/// Follows a link from a message: the page must exist.
async fn follow(app: &TestApp, path: &str) -> String {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path} leads nowhere");
    // Attribute values come escaped; a browser reads `&#x2f;` as `/`.
    response.text().await.unwrap().replace("&#x2f;", "/")
}

async fn next_sms(app: &TestApp, cause: impl std::future::Future<Output = ()>) -> String {
    let sms = app.twilio.next_message_to(PHONE);
    cause.await;
    tokio::time::timeout(Duration::from_secs(20), sms)
        .await
        .expect("the SMS arrives")
        .body
}

async fn at_the_door(app: &TestApp, staff: &str, body: Value) -> (u16, Value) {
    app.call(
        Method::POST,
        &format!("/v1/centres/{STUTTGART}/checkins"),
        staff,
        Some(&body),
    )
    .await
}

/// `GET /v1/me` with the booking code.
async fn my_status(app: &TestApp, code: &str) -> Value {
    let response = app
        .http
        .get(app.url("/v1/me"))
        .header("Authorization", format!("BookingCode {code}"))
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

/// Moves the booked pair's `column` appointment to now, as if that day had come.
async fn its_day_comes(app: &TestApp, registrant: Uuid, column: &str) {
    sqlx::query(&format!(
        "UPDATE slot_pairs p SET {column} = now() FROM bookings b
         WHERE b.registrant_id = $1 AND p.id = b.slot_pair_id"
    ))
    .bind(registrant)
    .execute(&app.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_caller_without_email_goes_from_the_call_centre_to_both_doses_by_the_links_in_their_sms() {
    let app = spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        |_| {},
    )
    .await;
    app.load_demo().await;
    let agent = format!(
        "Bearer {}",
        app.staff_token("agent.ben", Role::CallcentreAgent, "bw", None)
            .await
    );
    let door = format!(
        "Bearer {}",
        app.staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
            .await
    );

    // Registered by phone, no email: the booking code comes by SMS with the status page.
    let mut caller = registration(PHONE);
    caller.as_object_mut().unwrap().remove("email");
    caller["birth_year"] = json!(1938);
    let mut registered = Value::Null;
    let sms = next_sms(&app, async {
        let (status, body) = app
            .call(
                Method::POST,
                "/v1/callcentre/registrations",
                &agent,
                Some(&caller),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        registered = body;
    })
    .await;
    let id: Uuid = registered["registration_id"].as_str().unwrap().parse().unwrap();
    let code = registered["booking_code"].as_str().unwrap().to_owned();
    let status_page = link_in(&sms);
    assert!(follow(&app, &status_page).await.contains("name=\"booking_code\""));

    // Drawn: the offer comes by SMS with its link, which opens the offer.
    let sms = next_sms(&app, async {
        app.draw().await;
    })
    .await;
    assert!(follow(&app, &link_in(&sms)).await.contains("/accept"));

    // The agent accepts for the caller: the confirmation says where the pass is, not "by email".
    let sms = next_sms(&app, async {
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/v1/callcentre/registrants/{id}/offer/accept"),
                &agent,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    })
    .await;
    assert!(!sms.to_lowercase().contains("email"), "{sms}");
    let pass_page = follow(&app, &link_in(&sms)).await;
    assert!(
        pass_page.contains("data:image/svg+xml;base64,"),
        "the pass page shows the QR code"
    );
    let me = my_status(&app, &code).await;
    let reference = me["booking"]["reference"].as_str().unwrap().to_owned();
    assert!(pass_page.contains(&reference));
    assert!(me["booking"]["checkin_pass"]
        .as_str()
        .is_some_and(|pass| !pass.is_empty()));
    assert_eq!(
        link_in(me["booking"]["pass_url"].as_str().unwrap()),
        link_in(&sms)
    );

    // At the door with no code at hand: the reference with the wrong birth year finds nothing;
    // with the right one, the first dose.
    its_day_comes(&app, id, "first_slot_at").await;
    let (status, body) =
        at_the_door(&app, &door, json!({ "reference": reference, "birth_year": 1939 })).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("reference")),
        "{body}"
    );
    let (status, body) = at_the_door(
        &app,
        &door,
        json!({ "reference": reference.to_lowercase(), "birth_year": 1938 }),
    )
    .await;
    assert_eq!((status, body["dose"].as_str()), (200, Some("first")), "{body}");
    let me = my_status(&app, &code).await;
    assert_eq!(me["booking"]["state"], "first_dose_given");

    // The second dose by booking code and birth year.
    its_day_comes(&app, id, "second_slot_at").await;
    let (status, body) = at_the_door(&app, &door, json!({ "booking_code": code, "birth_year": 1937 })).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("booking_code")),
        "{body}"
    );
    let (status, body) = at_the_door(&app, &door, json!({ "booking_code": code, "birth_year": 1938 })).await;
    assert_eq!((status, body["dose"].as_str()), (200, Some("second")), "{body}");
    assert_eq!(body["booking_state"], "completed");
    let (status, body) = at_the_door(&app, &door, json!({ "reference": reference })).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("birth_year")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_status_page_signs_in_with_the_booking_code_kept_in_a_strict_cookie() {
    let app = spawn_with(Components::default(), |_| {}).await;
    app.load_demo().await;
    let (_, code) = app.registrant_with_code("+4917155580002").await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let wrong = client
        .post(app.url("/me?lang=en"))
        .form(&[("booking_code", "K7Q2-M9XD-4HTB-R8WN")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let page = wrong.text().await.unwrap();
    assert!(
        page.contains("aria-invalid=\"true\"") && page.contains("booking_code_error"),
        "{page}"
    );

    let signed_in = client
        .post(app.url("/me?lang=en"))
        .form(&[("booking_code", code.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/me"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert_eq!(signed_in.headers()["location"], "/me?lang=en");
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = client
        .get(app.url("/me?lang=en"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("The draws you were in") && page.contains("Sign out"),
        "{page}"
    );
    assert!(!page.contains(&code.to_string()), "the code is never shown back");

    let out = client
        .post(app.url("/me/sign-out"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let removal = out.headers()["set-cookie"].to_str().unwrap();
    assert!(
        removal.starts_with("drawbridge_me=;") && removal.contains("Max-Age=0"),
        "{removal}"
    );
    let page = client
        .get(app.url("/me"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("name=\"booking_code\""));
    app.stop().await;
}

/// Every `http` link in a rendered message, as a browser reads it.
fn links_in(text: &str) -> Vec<String> {
    let text = text
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
        .replace("&#x3d;", "=");
    text.split(|c: char| c.is_whitespace() || "\"'<>".contains(c))
        .filter(|word| word.starts_with("http://") || word.starts_with("https://"))
        .map(|word| word.trim_end_matches(['.', ',', ')']).to_owned())
        .collect()
}

/// Each kind of message that carries a link, made by the flow that makes it, rendered in every
/// language: every link in its SMS, text and HTML leads to a page of this gateway that exists.
/// The kinds that carry no link are checked to carry none.
#[tokio::test]
async fn every_link_in_every_kind_of_message_leads_to_a_page() {
    let app = spawn_with(Components::default(), |settings| {
        settings.gateway.registrations_per_phone = 1;
    })
    .await;
    app.load_demo().await;
    let phone = "+4917155580009";

    // A registration's code, its booking code, the same person again, the offer, its
    // reminder and the confirmation.
    let response = app
        .post_json("/v1/regions/bw/registrations", &registration(phone))
        .await;
    assert_eq!(response.status(), 202);
    let started: Value = response.json().await.unwrap();
    let id = started["registration_id"].as_str().unwrap();
    let sms_code: String = sqlx::query_scalar(
        "SELECT payload->>'code' FROM outbox WHERE kind = 'verification_code' ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let code = app.verified_booking_code(id, &sms_code).await;
    let again = app
        .post_json("/v1/regions/bw/registrations", &registration(phone))
        .await;
    assert_eq!(again.status(), 202);
    app.draw().await;
    sqlx::query(
        "UPDATE offers SET offered_at = now() - interval '1 day', expires_at = now() + interval '1 hour'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    app.draw().await;
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/me/offer/accept",
            &format!("BookingCode {code}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let queued: Vec<(String, serde_json::Value, String, Vec<u8>, Uuid)> =
        sqlx::query_as("SELECT language, payload, channel, recipient, recipient_of FROM outbox")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let queued: Vec<(String, serde_json::Value)> = queued
        .into_iter()
        .filter(|(_, _, channel, sealed, of)| {
            [phone, "anna@example.de"].contains(&app.recipient(channel, sealed, *of).as_str())
        })
        .map(|(language, payload, ..)| (language, payload))
        .collect();
    let templates = drawbridge_notifier::render::Templates::new();
    let expected = [
        "already_registered",
        "booking_code",
        "confirmation",
        "offer",
        "offer_expiring",
    ];
    let mut linked = std::collections::BTreeSet::new();
    for (language, payload) in queued {
        let notification: Notification = serde_json::from_value(payload).unwrap();
        assert!(Language::parse(&language).is_some(), "{language}");
        for language in Language::ALL {
            let rendered = templates.render(&notification, language).unwrap();
            let texts = [&rendered.sms, &rendered.text, &rendered.html];
            let links: Vec<String> = texts.into_iter().flat_map(|text| links_in(text)).collect();
            for link in &links {
                assert!(link.starts_with(&app.settings.gateway.public_url), "{link}");
                follow(&app, &link[app.settings.gateway.public_url.len()..]).await;
            }
            if !links.is_empty() {
                linked.insert(notification.kind());
            }
        }
    }
    assert_eq!(linked.into_iter().collect::<Vec<_>>(), expected);

    // Every other kind carries no link at all.
    for notification in drawbridge_notifier::render::examples() {
        if expected.contains(&notification.kind()) {
            continue;
        }
        for language in Language::ALL {
            let rendered = templates.render(&notification, language).unwrap();
            let texts = [&rendered.sms, &rendered.text, &rendered.html];
            let links: Vec<String> = texts.into_iter().flat_map(|text| links_in(text)).collect();
            assert_eq!(links, Vec::<String>::new(), "{}", notification.kind());
        }
    }
    let every: Vec<&str> = drawbridge_notifier::render::examples()
        .iter()
        .map(Notification::kind)
        .collect();
    assert_eq!(every.len(), Notification::KINDS.len());
    app.stop().await;
}
