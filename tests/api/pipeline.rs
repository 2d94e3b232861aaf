//! The walking skeleton, end to end through real services: an HTTP request to the gateway
//! writes a registrant and an outbox row in one transaction, the relay publishes the row to
//! RabbitMQ with publisher confirms, the notifier consumes it and the Twilio-compatible
//! provider receives the SMS, whose code is the one stored (as a keyed hash) for verification.

use std::time::Duration;

use drawbridge_domain::VerificationCode;
use drawbridge_test_support::{eventually, registration, spawn_system};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_reaches_the_phone_by_sms_through_outbox_and_rabbitmq() {
    let app = spawn_system().await;
    app.load_demo().await;

    let response = app
        .post_json("/v1/regions/bw/registrations", &registration("0171 2345678"))
        .await;
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    let id: Uuid = body["registration_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(body["status"], "pending_verification");
    assert_eq!(body["eligibility"]["eligible"], true);

    // State and message were written together.
    let status: String = sqlx::query_scalar("SELECT status FROM registrants WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (phone, _) = app.contact(id).await;
    assert_eq!(
        (phone.as_deref(), status.as_str()),
        (Some("+491712345678"), "pending_verification")
    );

    let sms = eventually(Duration::from_secs(20), || async {
        app.twilio
            .accepted()
            .into_iter()
            .find(|sms| sms.to == "+491712345678")
    })
    .await
    .expect("the SMS reached the provider within 20 s");
    assert_eq!(sms.from.as_deref(), Some("+4917100000000"));
    let code = sms
        .body
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| part.len() == 6)
        .expect("the SMS carries a 6-digit code");
    let (stored,): (Vec<u8>,) =
        sqlx::query_as("SELECT code_hash FROM phone_verifications WHERE registrant_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let code = VerificationCode::parse(code).unwrap();
    assert_eq!(
        code.keyed_hash(&app.hash_key(), id.as_bytes()).as_slice(),
        stored,
        "the texted code is the stored one"
    );

    // The outbox row is marked published and the delivery recorded with the provider's id.
    let delivered = eventually(Duration::from_secs(5), || async {
        sqlx::query_as::<_, (String, Option<String>, i32)>(
            "SELECT d.state, d.provider_message_id, d.attempts FROM deliveries d
             JOIN outbox o ON o.id = d.outbox_id
             JOIN phone_verifications v ON v.id = o.subject_id
             WHERE v.registrant_id = $1 AND o.published_at IS NOT NULL AND d.state = 'sent'",
        )
        .bind(id)
        .fetch_optional(&app.pool)
        .await
        .unwrap()
    })
    .await
    .expect("delivery recorded");
    assert_eq!(delivered, ("sent".to_owned(), Some(sms.sid.clone()), 1));
    assert_eq!(app.twilio.accepted().len(), 1, "sent exactly once");

    // Every component reports ready and exposes metrics.
    for address in [
        Some(app.address.clone()),
        app.notifier_address.clone(),
        app.allocator_address.clone(),
    ] {
        let address = address.unwrap();
        let ready = app.http.get(format!("{address}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "{address} ready");
        let metrics = app.metrics(&address).await;
        assert!(metrics.contains("drawbridge_"), "{address} metrics: {metrics}");
    }
    let notifier_metrics = app.metrics(app.notifier_address.as_ref().unwrap()).await;
    assert!(
        notifier_metrics
            .contains(r#"drawbridge_notifier_messages_sent_total{channel="sms",kind="verification_code"} 1"#),
        "{notifier_metrics}"
    );
    app.stop().await;
}
