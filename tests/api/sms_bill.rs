//! Nobody can run up the SMS bill: numbers from countries the gateway does not serve (premium
//! ranges such as +881 among them) are refused before any SMS, and registrations per client
//! address, per block of numbers and the region's daily SMS budget are limited across all
//! gateways, with or without a waiting room in front.

use drawbridge_test_support::{metric, registration, spawn_with, Components, TestApp};
use serde_json::Value;

async fn register(app: &TestApp, client: &reqwest::Client, phone: &str) -> (u16, Value) {
    let response = client
        .post(app.url("/v1/regions/bw/registrations"))
        .json(&registration(phone))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn codes_sent(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE kind = 'verification_code'")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn numbers_of_other_countries_are_refused_before_any_sms() {
    let app = spawn_with(Components::default(), |_| {}).await;
    app.load_demo().await;
    let client = app.client_from(1);
    for phone in ["+881 2 1234 5678", "+1 202 555 0101", "0044 7700 900123"] {
        let (status, body) = register(&app, &client, phone).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some("phone")),
            "{phone}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains("+49"),
            "{body}"
        );
    }
    assert_eq!(codes_sent(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn landlines_and_service_numbers_are_refused_before_any_sms() {
    let app = spawn_with(Components::default(), |_| {}).await;
    app.load_demo().await;
    let client = app.client_from(1);
    for phone in ["0711 1234567", "030 12345678", "0900 1234567", "0800 1234567"] {
        let (status, body) = register(&app, &client, phone).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some("phone")),
            "{phone}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("not a mobile number"), "{body}");
    }
    assert_eq!(codes_sent(&app).await, 0);
    assert_eq!(register(&app, &client, "0171 12345678").await.0, 202);
    app.stop().await;
}

/// Each region's policy names the countries whose numbers register there.
#[tokio::test]
async fn a_region_serves_the_countries_its_policy_names() {
    let app = spawn_with(Components::default(), |_| {}).await;
    app.load_demo().await;
    let document = drawbridge::demo::POLICY
        .replace("version = 3", "version = 4")
        .replace(
            r#"phone_country_codes = ["49"]"#,
            r#"phone_country_codes = ["49", "43"]"#,
        );
    let mut tx = app.pool.begin().await.unwrap();
    drawbridge_platform::policies::publish(&mut tx, &document)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Gateways read a new version within seconds.
    let client = app.client_from(1);
    let mut status = 0;
    for _ in 0..40 {
        status = register(&app, &client, "+43 664 1234567").await.0;
        if status == 202 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(status, 202);
    let (status, body) = register(&app, &client, "+44 7700 900123").await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("+49, +43"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn one_address_and_one_block_of_numbers_register_a_limited_number_an_hour() {
    let app = spawn_with(Components::default(), |settings| {
        settings.gateway.registrations_per_address_per_hour = 3;
        settings.gateway.registrations_per_number_block_per_hour = 2;
    })
    .await;
    app.load_demo().await;
    let here = app.client_from(1);
    // A block of numbers: two, then the range waits, from any address.
    assert_eq!(register(&app, &here, "+4917155591001").await.0, 202);
    assert_eq!(register(&app, &here, "+4917155591002").await.0, 202);
    let (status, body) = register(&app, &app.client_from(4), "+4917155591003").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_requests")),
        "{body}"
    );
    // The address: three registrations started in the hour, then it waits; another does not.
    assert_eq!(register(&app, &here, "+4917155592001").await.0, 202);
    let (status, body) = register(&app, &here, "+4917155593001").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_requests")),
        "{body}"
    );
    assert_eq!(register(&app, &app.client_from(5), "+4917155594001").await.0, 202);
    assert_eq!(codes_sent(&app).await, 4);
    app.stop().await;
}

#[tokio::test]
async fn a_region_sends_no_more_codes_a_day_than_its_budget_and_says_so() {
    let app = spawn_with(Components::default(), |settings| {
        settings.gateway.sms_codes_per_region_per_day = 3;
    })
    .await;
    app.load_demo().await;
    let client = app.client_from(1);
    let mut first = Value::Null;
    for n in 1..=3 {
        let (status, body) = register(&app, &client, &format!("+49171555{n}5001")).await;
        assert_eq!(status, 202, "{body}");
        if n == 1 {
            first = body;
        }
    }
    let (status, body) = register(&app, &client, "+4917155545001").await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SMS codes for this region are used up"),
        "{body}"
    );
    // A resend is a code too.
    let id = first["registration_id"].as_str().unwrap();
    let response = app
        .post_json(&format!("/v1/registrations/{id}/resend"), &serde_json::json!({}))
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(codes_sent(&app).await, 3);
    let spent = metric(
        &app.metrics(&app.address).await,
        r#"drawbridge_gateway_sms_budget_spent_total{region="bw"}"#,
    );
    assert_eq!(spent, 2.0);
    app.stop().await;
}
