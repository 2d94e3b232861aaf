//! The gateway while Redis is away, on a Redis of the test's own that it kills: it stays ready,
//! degraded; failure limits are counted in the gateway at a quarter of each limit, registration
//! and its code limits (in Postgres) carry on, the waiting rooms answer 503, and nothing answers
//! 500.

use drawbridge_domain::{BookingCode, Role};
use drawbridge_test_support::{metric, registration, spawn_with, Components, PrivateRedis, TestApp};
use serde_json::{json, Value};

/// The gateway on a Redis of its own, with the demo region.
async fn on_private_redis() -> (TestApp, PrivateRedis) {
    let redis = PrivateRedis::start();
    let url = redis.url.clone();
    let app = spawn_with(Components::default(), move |s| s.redis.url = url.into()).await;
    app.load_demo().await;
    (app, redis)
}

/// Status, `Retry-After` and error code of an answer.
async fn answer(response: reqwest::Response) -> (u16, Option<u64>, String) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().parse().unwrap());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or("-").to_owned();
    (status, retry_after, code)
}

#[tokio::test]
async fn while_redis_is_away_failure_limits_hold_in_the_gateway_and_nothing_answers_500() {
    let (app, mut redis) = on_private_redis().await;
    let (_, right) = app.registrant_with_code("+4917155500030").await;
    app.staff_token("admin.outage", Role::RegionAdmin, "bw", None)
        .await;
    redis.kill();

    let me = |code: String| {
        app.http
            .get(app.url("/v1/me"))
            .header("Authorization", format!("BookingCode {code}"))
            .send()
    };
    assert_eq!(answer(me(right.to_string()).await.unwrap()).await.0, 200);
    // A quarter of the 10 wrong codes one address may send at one prefix, then that prefix
    // waits from there; another prefix does not.
    let guess = |n: u32| format!("{}-{n:04}-0000-0000", right.prefix());
    for n in 0..2 {
        let (status, _, code) = answer(me(guess(n)).await.unwrap()).await;
        assert_eq!((status, code.as_str()), (401, "wrong_booking_code"));
    }
    let other = BookingCode::generate(&mut rand::rngs::OsRng);
    if other.prefix() != right.prefix() {
        let (status, _, code) = answer(me(other.to_string()).await.unwrap()).await;
        assert_eq!((status, code.as_str()), (401, "wrong_booking_code"));
    }
    for code in [guess(99), right.to_string()] {
        let (status, retry_after, error) = answer(me(code).await.unwrap()).await;
        assert_eq!((status, error.as_str()), (429, "too_many_requests"));
        assert!(
            matches!(retry_after, Some(1..=900)),
            "Retry-After {retry_after:?}"
        );
    }

    // Staff logins: a quarter of the 10 failures one username may have.
    let log_in = |password: &str| {
        app.http
            .post(app.url("/v1/staff/sessions"))
            .json(&json!({ "username": "admin.outage", "password": password }))
            .send()
    };
    for _ in 0..2 {
        let (status, _, code) = answer(log_in("not the password").await.unwrap()).await;
        assert_eq!((status, code.as_str()), (401, "wrong_credentials"));
    }
    for password in ["not the password", "a long test password"] {
        let (status, retry_after, code) = answer(log_in(password).await.unwrap()).await;
        assert_eq!((status, code.as_str()), (429, "too_many_requests"));
        assert!(retry_after.is_some());
    }

    // Registration and its codes are limited in Postgres, and carry on.
    let person = registration("0171 5550031");
    let register = || app.post_json("/v1/regions/bw/registrations", &person);
    assert_eq!(answer(register().await).await.0, 202);
    let (status, retry_after, _) = answer(register().await).await;
    assert_eq!((status, retry_after.is_some()), (429, true));

    let counted_here = metric(
        &app.metrics(&app.address).await,
        "drawbridge_gateway_limits_counted_here_total",
    );
    assert!(counted_here >= 10.0, "{counted_here} checks and counts made here");
    app.stop().await;
}

#[tokio::test]
async fn while_redis_is_away_a_room_join_answers_503_with_retry_after() {
    let (app, mut redis) = on_private_redis().await;
    app.put_room("outage", &json!({ "mode": "fifo" })).await;
    redis.kill();
    let join = app.post_json("/v1/rooms/outage/join", &json!({})).await;
    let (status, retry_after, code) = answer(join).await;
    assert_eq!((status, code.as_str()), (503, "unavailable"));
    assert_eq!(retry_after, Some(5));
    app.stop().await;
}

#[tokio::test]
async fn while_redis_is_away_the_gateway_stays_ready_degraded() {
    let (app, mut redis) = on_private_redis().await;
    redis.kill();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let ready: Value = response.json().await.unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["dependencies"]["postgres"], "ok");
    assert_ne!(ready["dependencies"]["redis"], "ok");
    app.stop().await;
}
