//! Retention: each kind of data goes once its time under `[retention]` is up and not a day
//! before, as of a clock the test sets; a dry run counts without removing; the audit log keeps
//! its year whatever is asked; every gateway purges on its timer and counts what went; and
//! every published draw still replays after a purge.

use std::time::Duration;

use chrono::{DateTime, Utc};
use drawbridge_domain::{Language, Role};
use drawbridge_gateway::purge::{self, Kind};
use drawbridge_platform::config::RetentionSettings;
use drawbridge_platform::draws;
use drawbridge_platform::outbox::{Channel, Notification};
use drawbridge_test_support::{eventually, registration, spawn_app, spawn_with, Components, TestApp};
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use crate::drawbridge;

/// The rows of `kind` a purge as of `now` removes (a dry run if `dry_run`).
async fn purged(
    app: &TestApp,
    retention: &RetentionSettings,
    now: DateTime<Utc>,
    kind: Kind,
    dry_run: bool,
) -> u64 {
    let counts = purge::purge(&app.pool, retention, now, dry_run).await.unwrap();
    counts.into_iter().find(|(k, _)| *k == kind).unwrap().1
}

/// `days` days from now.
fn in_days(days: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::days(days)
}

async fn count(app: &TestApp, sql: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Messages about the registrant, their codes, offers and bookings.
const MESSAGES_ABOUT: &str = "SELECT count(*) FROM outbox WHERE subject_id = $1
    OR subject_id IN (SELECT id FROM phone_verifications WHERE registrant_id = $1)
    OR subject_id IN (SELECT id FROM offers WHERE registrant_id = $1)
    OR subject_id IN (SELECT id FROM bookings WHERE registrant_id = $1)";

/// A person who registered with the demo's policy and accepted the pair a draw offered them:
/// their id and `Authorization` header.
async fn booked(app: &TestApp, phone: &str) -> (Uuid, String) {
    let (id, code) = app.registrant_with_code(phone).await;
    app.draw().await;
    let holder = format!("BookingCode {code}");
    let (status, body) = app.call(Method::POST, "/v1/me/offer/accept", &holder, None).await;
    assert_eq!(status, 200, "{body}");
    (id, holder)
}

#[tokio::test]
async fn an_expired_registration_keeps_its_code_and_message_for_its_time_only() {
    let app = spawn_app().await;
    app.load_demo().await;
    let id = app.register(&registration("+4917155595001")).await;
    // Expired and erased as the gateway's expiry sweep leaves it.
    sqlx::query(
        "UPDATE registrants SET status = 'expired', phone = NULL, phone_index = NULL, email = NULL, birth_year = NULL,
                initials = '', priority_group = NULL, postcode = NULL, accepted_vaccines = '{}',
                max_distance_km = NULL
         WHERE id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let retention = RetentionSettings::default();
    let kind = Kind::UnverifiedRegistrations;
    assert_eq!(purged(&app, &retention, in_days(6), kind, false).await, 0);
    assert_eq!(count(&app, MESSAGES_ABOUT, id).await, 1);
    // The code's record and its SMS.
    assert_eq!(purged(&app, &retention, in_days(8), kind, false).await, 2);
    assert_eq!(count(&app, MESSAGES_ABOUT, id).await, 0);
    let codes = "SELECT count(*) FROM phone_verifications WHERE registrant_id = $1";
    assert_eq!(count(&app, codes, id).await, 0);
    // The pseudonymous row stays.
    assert_eq!(
        count(&app, "SELECT count(*) FROM registrants WHERE id = $1", id).await,
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn a_withdrawn_person_leaves_only_pseudonymous_rows_once_their_time_is_up() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (id, holder) = booked(&app, "+4917155595002").await;
    let (status, body) = app.call(Method::DELETE, "/v1/me", &holder, None).await;
    assert!((200..300).contains(&status), "{status} {body}");
    let messages = count(&app, MESSAGES_ABOUT, id).await;
    assert!(
        messages >= 3,
        "the offer's, the confirmation's and the cancellation's: {messages}"
    );
    let retention = RetentionSettings::default();
    let kind = Kind::WithdrawnPeople;
    assert_eq!(purged(&app, &retention, in_days(29), kind, false).await, 0);
    assert_eq!(
        purged(&app, &retention, in_days(31), kind, false).await,
        messages as u64
    );
    assert_eq!(count(&app, MESSAGES_ABOUT, id).await, 0);
    for kept in [
        "SELECT count(*) FROM registrants WHERE id = $1",
        "SELECT count(*) FROM offers WHERE registrant_id = $1",
        "SELECT count(*) FROM bookings WHERE registrant_id = $1",
    ] {
        assert_eq!(count(&app, kept, id).await, 1, "{kept}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_person_whose_course_is_complete_is_erased_after_its_time() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (id, holder) = booked(&app, "+4917155595003").await;
    sqlx::query(
        "UPDATE bookings SET state = 'completed', first_dose_at = now() - interval '21 days',
                second_dose_at = now()
         WHERE registrant_id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let retention = RetentionSettings::default();
    let kind = Kind::CompletedCourses;
    assert_eq!(purged(&app, &retention, in_days(89), kind, false).await, 0);
    assert_eq!(purged(&app, &retention, in_days(91), kind, false).await, 1);
    let (status, phone): (String, Option<String>) =
        sqlx::query_as("SELECT status, phone FROM registrants WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), phone), ("withdrawn", None));
    let (status, _) = app.call(Method::GET, "/v1/me", &holder, None).await;
    assert_eq!(status, 401, "the booking code opens nothing any more");
    let booking_kept = "SELECT count(*) FROM bookings WHERE registrant_id = $1 AND state = 'completed'";
    assert_eq!(count(&app, booking_kept, id).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_cancelled_booking_and_its_messages_go_after_their_time() {
    let app = spawn_app().await;
    app.load_demo().await;
    let (id, holder) = booked(&app, "+4917155595004").await;
    let (status, body) = app
        .call(Method::POST, "/v1/me/booking/cancel", &holder, None)
        .await;
    assert_eq!(status, 200, "{body}");
    let booking: Uuid = sqlx::query_scalar("SELECT id FROM bookings WHERE registrant_id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let about = "SELECT count(*) FROM outbox WHERE subject_id = $1";
    assert!(
        count(&app, about, booking).await >= 2,
        "its confirmation and its cancellation"
    );
    let retention = RetentionSettings::default();
    let kind = Kind::CancelledBookings;
    assert_eq!(purged(&app, &retention, in_days(89), kind, false).await, 0);
    assert_eq!(purged(&app, &retention, in_days(91), kind, false).await, 1);
    assert_eq!(
        count(&app, "SELECT count(*) FROM bookings WHERE id = $1", booking).await,
        0
    );
    assert_eq!(count(&app, about, booking).await, 0);
    // The person is still registered, with the offer they once accepted.
    assert_eq!(
        count(&app, "SELECT count(*) FROM offers WHERE registrant_id = $1", id).await,
        1
    );
    let (status, _) = app.call(Method::GET, "/v1/me", &holder, None).await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// Records every message as sent `days_ago` days ago.
async fn all_sent(app: &TestApp, days_ago: i32) {
    sqlx::query(
        "INSERT INTO deliveries (outbox_id, state, attempts, finished_at)
         SELECT id, 'sent', 1, now() - make_interval(days => $1) FROM outbox
         ON CONFLICT (outbox_id) DO NOTHING",
    )
    .bind(days_ago)
    .execute(&app.pool)
    .await
    .unwrap();
}

async fn enqueue_code(app: &TestApp, phone: &str) -> Uuid {
    let mut connection = app.pool.acquire().await.unwrap();
    app.enqueue(
        &mut connection,
        Uuid::new_v4(),
        Channel::Sms,
        phone,
        Language::De,
        &Notification::VerificationCode {
            code: "123456".into(),
            valid_minutes: 10,
        },
    )
    .await
}

#[tokio::test]
async fn a_delivered_message_goes_after_its_time_unless_its_offer_is_open() {
    let app = spawn_app().await;
    app.load_demo().await;
    let message = enqueue_code(&app, "+4917155595005").await;
    let (offered, _) = app.registrant_with_code("+4917155595006").await;
    app.draw().await;
    let offer = app.pending_offer(offered).await.expect("an offer");
    all_sent(&app, 0).await;
    let offer_messages = "SELECT count(*) FROM outbox WHERE subject_id = $1";
    let announced = count(&app, offer_messages, offer).await;
    assert!(announced >= 1);
    let retention = RetentionSettings::default();
    let kind = Kind::DeliveredMessages;
    assert_eq!(purged(&app, &retention, in_days(29), kind, false).await, 0);
    assert_eq!(
        purged(&app, &retention, in_days(31), kind, true).await,
        1,
        "a dry run counts"
    );
    let exists = "SELECT count(*) FROM outbox WHERE id = $1";
    assert_eq!(count(&app, exists, message).await, 1, "and keeps");
    assert_eq!(purged(&app, &retention, in_days(31), kind, false).await, 1);
    assert_eq!(count(&app, exists, message).await, 0);
    let delivery = "SELECT count(*) FROM deliveries WHERE outbox_id = $1";
    assert_eq!(count(&app, delivery, message).await, 0);
    // The open offer's messages stay for its reminder.
    assert_eq!(count(&app, offer_messages, offer).await, announced);
    app.stop().await;
}

#[tokio::test]
async fn a_staff_session_goes_after_its_time() {
    let app = spawn_app().await;
    app.staff_token("admin.retention", Role::RegionAdmin, "bw", None)
        .await;
    let retention = RetentionSettings::default();
    let kind = Kind::StaffSessions;
    assert_eq!(purged(&app, &retention, in_days(89), kind, false).await, 0);
    assert_eq!(purged(&app, &retention, in_days(91), kind, false).await, 1);
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
    app.stop().await;
}

#[tokio::test]
async fn the_audit_log_goes_after_its_time_and_never_before_a_year() {
    let app = spawn_app().await;
    app.staff_token("admin.audited", Role::RegionAdmin, "bw", None)
        .await;
    let staff: Uuid = sqlx::query_scalar("SELECT id FROM staff WHERE username = 'admin.audited'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for days_ago in [800, 400, 100, 0] {
        sqlx::query(
            "INSERT INTO staff_actions (staff_id, action, region_id, at)
             VALUES ($1, 'registration.look_up', 'bw', now() - make_interval(days => $2))",
        )
        .bind(staff)
        .bind(days_ago)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let mut retention = RetentionSettings::default();
    let kind = Kind::AuditEntries;
    // Two years by default: the entry of 800 days ago.
    assert_eq!(purged(&app, &retention, Utc::now(), kind, false).await, 1);
    retention.audit_entries_days = 365;
    assert_eq!(purged(&app, &retention, Utc::now(), kind, false).await, 1);
    let left: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT at FROM staff_actions WHERE action = 'registration.look_up'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(left.len(), 2);
    // Whatever asks: an entry younger than a year stays, and none is ever changed.
    retention.audit_entries_days = 1;
    let refused = purge::purge(&app.pool, &retention, Utc::now(), false)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("kept for 365 days at least"),
        "{refused}"
    );
    let refused = sqlx::query("UPDATE staff_actions SET detail = '{}'")
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("never changed"), "{refused}");
    app.stop().await;
}

#[tokio::test]
async fn the_purge_command_counts_on_a_dry_run_and_removes_otherwise() {
    let app = spawn_app().await;
    let message = enqueue_code(&app, "+4917155595007").await;
    all_sent(&app, 31).await;
    let env = drawbridge_test_support::settings_env(&app.settings);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = |args: &[&str]| {
        let output = drawbridge(
            &[&["--config", "deploy/local.toml", "purge"], args].concat(),
            &env,
        );
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let dry = run(&["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["purged"]["delivered_messages"], 1, "{dry}");
    assert_eq!(dry["purged"].as_object().unwrap().len(), Kind::ALL.len(), "{dry}");
    let exists = "SELECT count(*) FROM outbox WHERE id = $1";
    assert_eq!(count(&app, exists, message).await, 1);
    let done = run(&[]);
    assert_eq!(done["purged"]["delivered_messages"], 1, "{done}");
    assert_eq!(count(&app, exists, message).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn every_gateway_purges_on_its_timer_and_counts_the_rows() {
    let app = spawn_with(Components::default(), |settings| {
        settings.retention.purge_every_seconds = 1;
    })
    .await;
    let message = enqueue_code(&app, "+4917155595008").await;
    all_sent(&app, 31).await;
    let counted = eventually(Duration::from_secs(10), || async {
        let metrics = app.metrics(&app.address).await;
        metrics
            .contains(r#"drawbridge_gateway_purged_rows_total{kind="delivered_messages"} 1"#)
            .then_some(())
    })
    .await;
    assert!(counted.is_some(), "{}", app.metrics(&app.address).await);
    assert_eq!(
        count(&app, "SELECT count(*) FROM outbox WHERE id = $1", message).await,
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn every_published_draw_still_replays_after_everything_is_purged() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.insert_registrants(0, 10).await;
    let (completed, _) = booked(&app, "+4917155595009").await;
    sqlx::query(
        "UPDATE bookings SET state = 'completed', first_dose_at = now(), second_dose_at = now()
         WHERE registrant_id = $1",
    )
    .bind(completed)
    .execute(&app.pool)
    .await
    .unwrap();
    let (_, cancelling) = booked(&app, "+4917155595010").await;
    let (status, _) = app
        .call(Method::POST, "/v1/me/booking/cancel", &cancelling, None)
        .await;
    assert_eq!(status, 200);
    let (_, withdrawing) = booked(&app, "+4917155595011").await;
    let (status, _) = app.call(Method::DELETE, "/v1/me", &withdrawing, None).await;
    assert!((200..300).contains(&status));
    all_sent(&app, 0).await;
    let drawn: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM draws WHERE state = 'completed'")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(!drawn.is_empty());

    // Far in the future every kind's time is up; the audit log's entries are left alone, as
    // the database keeps them a year whatever the clock of the purge says.
    let retention = RetentionSettings {
        audit_entries_days: 100_000,
        ..RetentionSettings::default()
    };
    let counts = purge::purge(&app.pool, &retention, in_days(1000), false)
        .await
        .unwrap();
    for kind in [
        Kind::WithdrawnPeople,
        Kind::CompletedCourses,
        Kind::CancelledBookings,
        Kind::DeliveredMessages,
    ] {
        let (_, count) = counts.iter().find(|(k, _)| *k == kind).unwrap();
        assert!(*count > 0, "{kind:?}: {counts:?}");
    }
    for id in drawn {
        let manifest = draws::manifest(&app.pool, id)
            .await
            .unwrap()
            .expect("still published");
        let replay = manifest.replay();
        assert!(replay.reproduced(), "draw {id}: {:?}", replay.problems);
        let response = app.get(&format!("/v1/draws/{id}/manifest")).await;
        assert_eq!(response.status(), 200);
    }
    app.stop().await;
}
