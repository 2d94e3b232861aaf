//! What vaccination centres do, end to end through the HTTP API against the real database:
//!
//! - publishing capacity: idempotent per `Idempotency-Key` (a retry creates nothing, the same
//!   key with another request is refused, concurrent twins create the pairs once), validated
//!   against the policy's vaccines and dose intervals;
//! - who may run a centre: its own centre staff, or a region admin for any centre of their
//!   region; every other role, centre or region is refused, and anonymous callers too;
//! - the day's schedule: counts per slot and bookings by reference only, no personal data;
//! - withdrawing capacity: offers withdrawn, bookings cancelled, people told and sent back to
//!   the pool ahead of every priority tier, started courses kept;
//! - check-in by QR pass: each dose once, at its own centre, not too early; forged passes
//!   refused; a checked-in booking can no longer be cancelled by its holder;
//! - the audit log: every centre action is in `staff_actions`, readable by region admins only;
//! - races: a withdrawal that meets a check-in or an acceptance of one of its pairs must leave
//!   a consistent state (forced deterministically by holding a row lock from the test).
//!
//! The demo's own capacity has no batch and would compete with the test's pairs in the draw,
//! so most tests withdraw it first (see [`app_with_demo_centres`]) and publish exactly the
//! pairs they need through the API.

use chrono::{DateTime, Days, NaiveDate, Utc};
use drawbridge_domain::{BookingCode, Role};
use drawbridge_test_support::{eventually, spawn_app, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const STUTTGART: &str = "stuttgart-liederhalle";
const KARLSRUHE: &str = "karlsruhe-schwarzwaldhalle";
const MANNHEIM: &str = "mannheim-maimarkt";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The demo region with its centres and policy, but none of the demo's slot pairs open: pairs
/// cannot be deleted (the schema refuses), so they are marked cancelled. The draw then offers
/// only what the test publishes.
async fn app_with_demo_centres() -> TestApp {
    let app = spawn_app().await;
    app.load_demo().await;
    sqlx::query("UPDATE slot_pairs SET state = 'cancelled' WHERE batch_id IS NULL AND state = 'open'")
        .execute(&app.pool)
        .await
        .expect("demo capacity withdrawn");
    app
}

/// A day `days` ahead. The tests use 60 and more: neither such a day nor the one 21 to 28 days
/// later holds any demo appointment (the demo covers the next week, second doses up to five
/// weeks out), so schedules show only what the test published.
fn day_ahead(days: u64) -> NaiveDate {
    Utc::now().date_naive() + Days::new(days)
}

/// A capacity request: 15-minute slots from `from` until `until` on `day`.
fn capacity(
    vaccine: &str,
    day: NaiveDate,
    from: &str,
    until: &str,
    people: u32,
    second: Option<u32>,
) -> Value {
    json!({
        "vaccine": vaccine,
        "day": day,
        "from": from,
        "until": until,
        "slot_minutes": 15,
        "people_per_slot": people,
        "second_dose_after_days": second,
    })
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn code_auth(code: &BookingCode) -> String {
    format!("BookingCode {code}")
}

/// The error code and field of an error body (`""` when it is no error body).
fn error(body: &Value) -> (&str, Option<&str>) {
    (
        body["error"]["code"].as_str().unwrap_or(""),
        body["error"]["field"].as_str(),
    )
}

fn uuid(value: &Value) -> Uuid {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a UUID: {value}"))
}

fn instant(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

/// `POST /v1/centres/{centre}/capacity`, with the `Idempotency-Key` header if given (the
/// harness's `call` sends no extra headers).
async fn publish(app: &TestApp, token: &str, centre: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url(&format!("/v1/centres/{centre}/capacity")))
        .header("Authorization", bearer(token))
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("gateway answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Publishes under a fresh key and expects 201; returns the batch id.
async fn published(app: &TestApp, token: &str, centre: &str, body: &Value) -> Uuid {
    let (status, answer) = publish(app, token, centre, Some(&Uuid::new_v4().to_string()), body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["replayed"], false);
    uuid(&answer["capacity_id"])
}

async fn withdraw(app: &TestApp, token: &str, centre: &str, batch: Uuid, reason: &str) -> (u16, Value) {
    app.call(
        Method::POST,
        &format!("/v1/centres/{centre}/capacity/{batch}/cancel"),
        &bearer(token),
        Some(&json!({ "reason": reason })),
    )
    .await
}

async fn check_in(app: &TestApp, token: &str, centre: &str, pass: &str) -> (u16, Value) {
    app.call(
        Method::POST,
        &format!("/v1/centres/{centre}/checkins"),
        &bearer(token),
        Some(&json!({ "pass": pass })),
    )
    .await
}

async fn schedule(app: &TestApp, token: &str, centre: &str, date: NaiveDate) -> (u16, Value) {
    app.call(
        Method::GET,
        &format!("/v1/centres/{centre}/schedule?date={date}"),
        &bearer(token),
        None,
    )
    .await
}

/// Accepts the registrant's current offer with their booking code; returns the booking.
async fn accept(app: &TestApp, code: &BookingCode) -> Value {
    let (status, body) = app
        .call(Method::POST, "/v1/me/offer/accept", &code_auth(code), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["booking"].clone()
}

/// A registrant as `registrant_with_code` makes them (Stuttgart, BioNTech, with an email
/// address), but in priority group `group`.
async fn registrant(app: &TestApp, phone: &str, group: i16) -> (Uuid, BookingCode) {
    let (id, code) = app.registrant_with_code(phone).await;
    sqlx::query("UPDATE registrants SET priority_group = $2 WHERE id = $1")
        .bind(id)
        .bind(group)
        .execute(&app.pool)
        .await
        .unwrap();
    (id, code)
}

/// Slot pair count of a batch, by state.
async fn batch_pairs(app: &TestApp, batch: Uuid) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT state, count(*) FROM slot_pairs WHERE batch_id = $1 GROUP BY state ORDER BY state")
        .bind(batch)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// A booking whose first appointment is now, so the door is open for it.
struct Booked {
    registrant: Uuid,
    code: BookingCode,
    batch: Uuid,
    pair: Uuid,
    booking: Uuid,
    reference: String,
    pass: String,
}

/// Publishes two BioNTech pairs in Stuttgart 60 days ahead (as `token`), lets a draw offer one
/// to a new registrant, moves that pair's first appointment to now — check-in opens only two
/// hours before it, and the draw never offers a pair that has started — and accepts, so the
/// pass is signed with the moved time.
async fn booked_for_now(app: &TestApp, token: &str, phone: &str) -> Booked {
    let batch = published(
        app,
        token,
        STUTTGART,
        &capacity("biontech", day_ahead(60), "09:00:00", "09:30:00", 1, Some(21)),
    )
    .await;
    let (registrant, code) = app.registrant_with_code(phone).await;
    app.draw().await;
    let offer = app
        .pending_offer(registrant)
        .await
        .expect("the draw offered a pair");
    let pair: Uuid = sqlx::query_scalar(
        "UPDATE slot_pairs p SET first_slot_at = now() FROM offers o
         WHERE o.id = $1 AND p.id = o.slot_pair_id AND p.batch_id = $2 RETURNING p.id",
    )
    .bind(offer)
    .bind(batch)
    .fetch_one(&app.pool)
    .await
    .expect("the offered pair is one of the batch");
    let booking = accept(app, &code).await;
    Booked {
        registrant,
        code,
        batch,
        pair,
        booking: uuid(&booking["booking_id"]),
        reference: booking["reference"].as_str().unwrap().to_owned(),
        pass: booking["checkin_pass"].as_str().unwrap().to_owned(),
    }
}

/// A schedule slot as (at, vaccine, dose, capacity, open, offered, booked, cancelled).
type SlotCounts<'a> = (DateTime<Utc>, &'a str, &'a str, i64, i64, i64, i64, i64);

/// A `staff_actions` row as (staff username, action, region, centre, subject).
type AuditRow = (String, String, String, Option<String>, Option<Uuid>);

/// How many rows `SELECT count(*) FROM capacity_batches` finds.
async fn batches(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM capacity_batches")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// `[(state, count)]` as [`batch_pairs`] returns it.
fn counts(expected: &[(&str, i64)]) -> Vec<(String, i64)> {
    expected
        .iter()
        .map(|(state, n)| ((*state).to_owned(), *n))
        .collect()
}

async fn booking_state(
    app: &TestApp,
    booking: Uuid,
) -> (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    sqlx::query_as("SELECT state, first_dose_at, second_dose_at FROM bookings WHERE id = $1")
        .bind(booking)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Publishing capacity
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn publishing_capacity_is_idempotent_per_key_and_checked_against_the_policy() {
    let app = app_with_demo_centres().await;
    let staff = app
        .staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
        .await;
    let admin = app.staff_token("admin.bw", Role::RegionAdmin, "bw", None).await;
    let day = day_ahead(60);
    let request = capacity("biontech", day, "09:00:00", "10:00:00", 2, Some(21));

    // Without a usable key nothing is published: a retry could not be recognised.
    let too_long = "k".repeat(129);
    for key in [None, Some(""), Some("   "), Some(too_long.as_str())] {
        let (status, body) = publish(&app, &staff, STUTTGART, key, &request).await;
        assert_eq!(
            (status, error(&body)),
            (422, ("invalid_field", Some("Idempotency-Key"))),
            "{key:?}: {body}"
        );
    }
    assert_eq!(batches(&app).await, 0);

    // First time: 4 slots of 15 minutes x 2 people, each with its second dose 21 days later.
    let key = Uuid::new_v4().to_string();
    let (status, first) = publish(&app, &staff, STUTTGART, Some(&key), &request).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["pairs_created"], 8);
    assert_eq!(first["replayed"], false);
    let batch = uuid(&first["capacity_id"]);
    let pairs: Vec<(String, String, String, String, i32)> = sqlx::query_as(
        "SELECT centre_id, vaccine, state,
                to_char(first_slot_at AT TIME ZONE 'Europe/Berlin', 'YYYY-MM-DD HH24:MI'),
                (second_slot_at::date - first_slot_at::date)
         FROM slot_pairs WHERE batch_id = $1 ORDER BY first_slot_at",
    )
    .bind(batch)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(pairs.len(), 8);
    let starts: Vec<&str> = pairs.iter().map(|p| &p.3[11..]).collect();
    assert_eq!(
        starts,
        ["09:00", "09:00", "09:15", "09:15", "09:30", "09:30", "09:45", "09:45"]
    );
    for (centre, vaccine, state, local, days) in &pairs {
        assert_eq!(
            (centre.as_str(), vaccine.as_str(), state.as_str()),
            (STUTTGART, "biontech", "open")
        );
        assert!(local.starts_with(&day.to_string()), "{local}");
        assert_eq!(*days, 21);
    }

    // A retry (lost answer): same key, same request. Same batch, nothing new.
    let (status, again) = publish(&app, &staff, STUTTGART, Some(&key), &request).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again,
        json!({ "capacity_id": batch, "pairs_created": 8, "replayed": true })
    );
    // Keys belong to the centre: the same request from another of its staff is a retry too.
    let (status, again) = publish(&app, &admin, STUTTGART, Some(&key), &request).await;
    assert_eq!((status, &again["capacity_id"]), (200, &json!(batch)), "{again}");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM slot_pairs WHERE batch_id IS NOT NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!((total, batches(&app).await), (8, 1));

    // The same key for a different request is a client bug: refused, nothing created.
    let mut different = request.clone();
    different["people_per_slot"] = json!(3);
    let (status, body) = publish(&app, &staff, STUTTGART, Some(&key), &different).await;
    assert_eq!(
        (status, error(&body).0),
        (409, "idempotency_key_reused"),
        "{body}"
    );
    assert_eq!(batches(&app).await, 1);

    // Keys are per centre: another centre may use the same one.
    let (status, body) = publish(&app, &admin, KARLSRUHE, Some(&key), &request).await;
    assert_eq!(status, 201, "{body}");
    assert_ne!(uuid(&body["capacity_id"]), batch);

    // One-dose vaccines take no second dose; two-dose vaccines need one inside their window
    // (bw.toml: BioNTech 21-42 days, Moderna 28-42 days).
    let mut janssen = capacity("janssen", day, "09:00:00", "09:30:00", 1, None);
    janssen.as_object_mut().unwrap().remove("second_dose_after_days");
    let (status, body) = publish(&app, &admin, MANNHEIM, Some("janssen-1"), &janssen).await;
    assert_eq!((status, &body["pairs_created"]), (201, &json!(2)), "{body}");
    // An absent field and an explicit null are the same request.
    janssen["second_dose_after_days"] = Value::Null;
    let (status, again) = publish(&app, &admin, MANNHEIM, Some("janssen-1"), &janssen).await;
    assert_eq!((status, &again["replayed"]), (200, &json!(true)), "{again}");
    let seconds: i64 = sqlx::query_scalar("SELECT count(second_slot_at) FROM slot_pairs WHERE batch_id = $1")
        .bind(uuid(&body["capacity_id"]))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(seconds, 0);
    let refused = [
        (
            capacity("biontech", day, "09:00:00", "10:00:00", 2, Some(14)),
            "second_dose_after_days",
        ),
        (
            capacity("biontech", day, "09:00:00", "10:00:00", 2, Some(43)),
            "second_dose_after_days",
        ),
        (
            capacity("biontech", day, "09:00:00", "10:00:00", 2, None),
            "second_dose_after_days",
        ),
        (
            capacity("moderna", day, "09:00:00", "10:00:00", 2, Some(21)),
            "second_dose_after_days",
        ),
        (
            capacity("janssen", day, "09:00:00", "10:00:00", 2, Some(28)),
            "second_dose_after_days",
        ),
        (
            capacity("sputnik", day, "09:00:00", "10:00:00", 2, Some(21)),
            "vaccine",
        ),
        (
            capacity("biontech", day, "10:00:00", "09:00:00", 2, Some(21)),
            "until",
        ),
        (
            capacity("biontech", day, "09:00:00", "10:00:00", 0, Some(21)),
            "people_per_slot",
        ),
    ];
    for (n, (body, field)) in refused.iter().enumerate() {
        let (status, answer) = publish(&app, &staff, STUTTGART, Some(&format!("refused-{n}")), body).await;
        assert_eq!(
            (status, error(&answer)),
            (422, ("invalid_field", Some(*field))),
            "{body}: {answer}"
        );
    }
    assert_eq!(batches(&app).await, 3, "refused requests leave no batch behind");

    // Unknown centres are not found, for any role.
    let (status, body) = publish(&app, &admin, "nowhere", Some("k"), &request).await;
    assert_eq!((status, error(&body).0), (404, "not_found"), "{body}");

    // Two identical requests at the same moment (a client retrying too eagerly): one
    // publishes, the other is answered as a retry, and the pairs exist once.
    let twin_key = Uuid::new_v4().to_string();
    let twin = capacity("moderna", day, "14:00:00", "15:00:00", 1, Some(28));
    let (a, b) = tokio::join!(
        publish(&app, &staff, STUTTGART, Some(&twin_key), &twin),
        publish(&app, &staff, STUTTGART, Some(&twin_key), &twin),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 201], "{} / {}", a.1, b.1);
    assert_eq!(a.1["capacity_id"], b.1["capacity_id"]);
    let twin_pairs: i64 = sqlx::query_scalar("SELECT count(*) FROM slot_pairs WHERE batch_id = $1")
        .bind(uuid(&a.1["capacity_id"]))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(twin_pairs, 4);

    // Each publication is audited once; retries publish nothing and are not actions.
    let audited: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT a.subject_id, s.username, a.centre_id FROM staff_actions a JOIN staff s ON s.id = a.staff_id
         WHERE a.action = 'capacity.publish' AND a.subject_id = $1",
    )
    .bind(batch)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        audited,
        [(batch, "door.stuttgart".to_owned(), Some(STUTTGART.to_owned()))]
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Who may run a centre
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn only_the_centres_own_staff_or_its_region_admins_may_run_it() {
    let app = app_with_demo_centres().await;
    let own = app
        .staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
        .await;
    let other_centre = app
        .staff_token("door.karlsruhe", Role::CentreStaff, "bw", Some(KARLSRUHE))
        .await;
    let admin = app.staff_token("admin.bw", Role::RegionAdmin, "bw", None).await;
    let other_region = app.staff_token("admin.by", Role::RegionAdmin, "by", None).await;
    let agent = app
        .staff_token("agent.bw", Role::CallcentreAgent, "bw", None)
        .await;
    let analyst = app.staff_token("analyst.bw", Role::Analyst, "bw", None).await;
    let day = day_ahead(60);
    let request = capacity("biontech", day, "09:00:00", "09:30:00", 1, Some(21));
    let batch = published(&app, &own, STUTTGART, &request).await;

    // Every centre route, as (method, path, body) for Stuttgart.
    let routes = [
        (
            Method::POST,
            format!("/v1/centres/{STUTTGART}/capacity"),
            Some(request.clone()),
        ),
        (
            Method::GET,
            format!("/v1/centres/{STUTTGART}/schedule?date={day}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/centres/{STUTTGART}/capacity/{batch}/cancel"),
            Some(json!({ "reason": "test" })),
        ),
        (
            Method::POST,
            format!("/v1/centres/{STUTTGART}/checkins"),
            Some(json!({ "pass": "x" })),
        ),
    ];
    for (method, path, body) in &routes {
        // Nobody logged in, or a token that is no session.
        let mut anonymous = app
            .http
            .request(method.clone(), app.url(path))
            .header("Idempotency-Key", "anon");
        if let Some(body) = body {
            anonymous = anonymous.json(body);
        }
        let response = anonymous.send().await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(error(&answer).0, "staff_login_required", "{path}");
        let (status, answer) = app
            .call(method.clone(), path, "Bearer dbs_not-a-session", body.as_ref())
            .await;
        assert_eq!(
            (status, error(&answer).0),
            (401, "staff_session_invalid"),
            "{path}: {answer}"
        );
        // Logged in, but not allowed here.
        for (who, token) in [
            ("other centre's staff", &other_centre),
            ("other region's admin", &other_region),
            ("call-centre agent", &agent),
            ("analyst", &analyst),
        ] {
            let (status, answer) = app
                .call(method.clone(), path, &bearer(token), body.as_ref())
                .await;
            assert_eq!(
                (status, error(&answer).0),
                (403, "not_allowed"),
                "{who}: {method} {path}: {answer}"
            );
        }
    }
    // None of those refusals changed anything.
    assert_eq!(batch_pairs(&app, batch).await, counts(&[("open", 2)]));
    assert_eq!(batches(&app).await, 1);

    // The centre's own staff and the region's admin (for any centre of the region) may.
    let (status, body) = schedule(&app, &own, STUTTGART, day).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = schedule(&app, &admin, MANNHEIM, day).await;
    assert_eq!((status, &body["centre"]), (200, &json!(MANNHEIM)), "{body}");
    published(&app, &admin, KARLSRUHE, &request).await;
    let (status, body) = withdraw(&app, &admin, STUTTGART, batch, "staff shortage").await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The schedule
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_schedule_counts_each_slot_and_shows_bookings_by_reference_only() {
    let app = app_with_demo_centres().await;
    let staff = app
        .staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
        .await;
    let day = day_ahead(60);
    // 09:00 and 09:15 with two BioNTech pairs each; one Moderna pair at 09:00, withdrawn.
    published(
        &app,
        &staff,
        STUTTGART,
        &capacity("biontech", day, "09:00:00", "09:30:00", 2, Some(21)),
    )
    .await;
    let moderna = published(
        &app,
        &staff,
        STUTTGART,
        &capacity("moderna", day, "09:00:00", "09:15:00", 1, Some(28)),
    )
    .await;
    let (status, body) = withdraw(&app, &staff, STUTTGART, moderna, "no Moderna delivery").await;
    assert_eq!(status, 200, "{body}");

    // Two people draw the two earliest pairs (09:00); one books, the other leaves it offered.
    let phone = "+4917112345678";
    let (_, code) = app.registrant_with_code(phone).await;
    let (other, _) = app.registrant_with_code("+4917112345679").await;
    app.draw().await;
    assert!(app.pending_offer(other).await.is_some());
    let booking = accept(&app, &code).await;
    let reference = booking["reference"].as_str().unwrap().to_owned();
    let booking_id = uuid(&booking["booking_id"]);
    let (first_at, second_at, local): (DateTime<Utc>, DateTime<Utc>, String) = sqlx::query_as(
        "SELECT first_slot_at, second_slot_at, to_char(first_slot_at AT TIME ZONE 'Europe/Berlin', 'HH24:MI')
         FROM slot_pairs WHERE booking_id = $1",
    )
    .bind(booking_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(local, "09:00");

    let (status, body) = schedule(&app, &staff, STUTTGART, day).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["centre"], STUTTGART);
    assert_eq!(body["date"], day.to_string());
    assert_eq!(body["timezone"], "Europe/Berlin");
    let slots = body["slots"].as_array().expect("slots");
    let summary: Vec<SlotCounts<'_>> = slots
        .iter()
        .map(|s| {
            let n = |k: &str| s[k].as_i64().unwrap_or_else(|| panic!("{k} in {s}"));
            (
                instant(&s["at"]),
                s["vaccine"].as_str().unwrap(),
                s["dose"].as_str().unwrap(),
                n("capacity"),
                n("open"),
                n("offered"),
                n("booked"),
                n("cancelled"),
            )
        })
        .collect();
    let quarter_past = first_at + chrono::Duration::minutes(15);
    assert_eq!(
        summary,
        [
            (first_at, "biontech", "first", 2, 0, 1, 1, 0),
            (first_at, "moderna", "first", 1, 0, 0, 0, 1),
            (quarter_past, "biontech", "first", 2, 2, 0, 0, 0),
        ],
        "{body}"
    );
    // The booked appointment is listed by its reference, and only the booked one.
    assert_eq!(
        slots[0]["bookings"],
        json!([{ "reference": reference, "state": "booked", "checked_in_at": null }])
    );
    assert_eq!(slots[1]["bookings"], json!([]));
    assert_eq!(slots[2]["bookings"], json!([]));
    // The door needs no personal data: exactly these fields, and no phone, email or birth year.
    for slot in slots {
        let mut keys: Vec<&str> = slot.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "at",
                "booked",
                "bookings",
                "cancelled",
                "capacity",
                "dose",
                "offered",
                "open",
                "vaccine"
            ]
        );
    }
    let text = body.to_string();
    let code_text = code.to_string();
    for personal in [
        phone,
        "+4917112345679",
        "person@example.de",
        "phone",
        "email",
        "birth",
        &code_text,
    ] {
        assert!(
            !text.contains(personal),
            "the schedule shows {personal:?}: {text}"
        );
    }

    // 21 days later the same booking is listed for its second dose.
    let later = day + Days::new(21);
    let (status, body) = schedule(&app, &staff, STUTTGART, later).await;
    assert_eq!(status, 200, "{body}");
    let second: Vec<&Value> = body["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["dose"] == "second")
        .collect();
    assert_eq!(second.len(), 2, "{body}");
    assert_eq!(instant(&second[0]["at"]), second_at);
    assert_eq!(second[0]["bookings"][0]["reference"], reference.as_str());
    assert!(body["slots"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["dose"] == "second"));

    // A day without appointments is an empty list; a date that is none is refused.
    let (status, body) = schedule(&app, &staff, STUTTGART, day_ahead(200)).await;
    assert_eq!((status, &body["slots"]), (200, &json!([])), "{body}");
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v1/centres/{STUTTGART}/schedule?date=2026-13-40"),
            &bearer(&staff),
            None,
        )
        .await;
    assert_eq!((status, error(&body).0), (400, "malformed_request"), "{body}");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Withdrawing capacity
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_withdrawal_reason_of_200_characters_is_taken_in_any_script() {
    let app = app_with_demo_centres().await;
    let staff = app
        .staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
        .await;
    let batch = published(
        &app,
        &staff,
        STUTTGART,
        &capacity("biontech", day_ahead(60), "09:00:00", "09:15:00", 1, Some(21)),
    )
    .await;
    // 200 characters, 400 bytes in UTF-8.
    let (status, body) = withdraw(&app, &staff, STUTTGART, batch, &"ü".repeat(200)).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn withdrawn_capacity_tells_its_people_and_sends_them_ahead_of_every_tier() {
    let app = app_with_demo_centres().await;
    let admin = app.staff_token("admin.bw", Role::RegionAdmin, "bw", None).await;
    let staff = app
        .staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
        .await;

    // Three pairs at 09:00; two people of the lowest tier (group 4) draw two of them: one
    // books, the other leaves the offer pending. The third pair stays open.
    let batch = published(
        &app,
        &staff,
        STUTTGART,
        &capacity("biontech", day_ahead(60), "09:00:00", "09:15:00", 3, Some(21)),
    )
    .await;
    let (booker, booker_code) = registrant(&app, "+4917110000001", 4).await;
    let (offered, _) = registrant(&app, "+4917110000002", 4).await;
    app.draw().await;
    let offer = app.pending_offer(offered).await.expect("an offer");
    let booking = accept(&app, &booker_code).await;
    let booking_id = uuid(&booking["booking_id"]);
    let pass = booking["checkin_pass"].as_str().unwrap().to_owned();
    assert_eq!(
        batch_pairs(&app, batch).await,
        counts(&[("booked", 1), ("offered", 1), ("open", 1)])
    );

    // Requests that cannot withdraw anything.
    let (status, body) = withdraw(&app, &staff, STUTTGART, batch, "  ").await;
    assert_eq!(
        (status, error(&body)),
        (422, ("invalid_field", Some("reason"))),
        "{body}"
    );
    let (status, body) = withdraw(&app, &staff, STUTTGART, batch, &"x".repeat(201)).await;
    assert_eq!(
        (status, error(&body)),
        (422, ("invalid_field", Some("reason"))),
        "{body}"
    );
    let (status, body) = withdraw(&app, &staff, STUTTGART, Uuid::new_v4(), "why").await;
    assert_eq!((status, error(&body).0), (404, "not_found"), "{body}");
    // The batch belongs to Stuttgart: named under another centre, it is not found there.
    let (status, body) = withdraw(&app, &admin, KARLSRUHE, batch, "why").await;
    assert_eq!((status, error(&body).0), (404, "not_found"), "{body}");
    assert_eq!(batch_pairs(&app, batch).await.len(), 3, "nothing changed yet");

    let reason = "Der Impfstoff wurde nicht geliefert";
    let (status, outcome) = withdraw(&app, &staff, STUTTGART, batch, reason).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        outcome,
        json!({
            "capacity_id": batch,
            "pairs_cancelled": 3,
            "offers_withdrawn": 1,
            "bookings_cancelled": 1,
            "kept_course_in_progress": 0,
            "cancelled_bookings": [booking["reference"]],
        })
    );
    assert_eq!(batch_pairs(&app, batch).await, counts(&[("cancelled", 3)]));
    let holders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM slot_pairs WHERE batch_id = $1 AND (offer_id IS NOT NULL OR booking_id IS NOT NULL)",
    )
    .bind(batch)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(holders, 0);
    let offer_state: String = sqlx::query_scalar("SELECT state FROM offers WHERE id = $1")
        .bind(offer)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(offer_state, "withdrawn");
    let (state, cancel_reason): (String, String) =
        sqlx::query_as("SELECT state, cancel_reason FROM bookings WHERE id = $1")
            .bind(booking_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(state, "cancelled");
    assert!(cancel_reason.contains(reason), "{cancel_reason}");
    let batch_reason: Option<String> =
        sqlx::query_scalar("SELECT cancel_reason FROM capacity_batches WHERE id = $1")
            .bind(batch)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(batch_reason.as_deref(), Some(reason));

    // Both are told, by SMS and email, with the reason; both are marked to go ahead.
    let told: Vec<(Uuid, String, Vec<u8>, Uuid)> = sqlx::query_as(
        "SELECT subject_id, channel, recipient, recipient_of FROM outbox
         WHERE kind = 'cancelled_by_centre' AND payload::text LIKE '%' || $1 || '%'",
    )
    .bind(reason)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let told: Vec<(Uuid, String, String)> = told
        .into_iter()
        .map(|(subject, channel, sealed, of)| {
            let recipient = app.recipient(&channel, &sealed, of);
            (subject, channel, recipient)
        })
        .collect();
    let mut expected = vec![
        (offer, "email".to_owned(), "person@example.de".to_owned()),
        (booking_id, "email".to_owned(), "person@example.de".to_owned()),
        (booking_id, "sms".to_owned(), "+4917110000001".to_owned()),
        (offer, "sms".to_owned(), "+4917110000002".to_owned()),
    ];
    let mut told_sorted = told.clone();
    told_sorted.sort();
    expected.sort();
    assert_eq!(told_sorted, expected);
    let ahead: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM registrants WHERE ahead_since IS NOT NULL ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let mut affected = vec![booker, offered];
    affected.sort();
    assert_eq!(ahead, affected);

    // Withdrawing again changes nothing.
    let (status, body) = withdraw(&app, &admin, STUTTGART, batch, reason).await;
    assert_eq!(
        (status, error(&body).0),
        (409, "capacity_already_cancelled"),
        "{body}"
    );
    // The cancelled booking's pass no longer opens the door.
    let (status, body) = check_in(&app, &staff, STUTTGART, &pass).await;
    assert_eq!((status, error(&body).0), (409, "booking_cancelled"), "{body}");

    // Now twenty people of the highest tier join, and one more of the lowest tier who was
    // never affected; new capacity has only two pairs. Strict tiers would give both to group
    // 1: those sent back by the centre go first, and the bystander of their tier gets nothing.
    sqlx::query(
        "INSERT INTO registrants (id, region_id, status, channel, phone, birth_year, priority_group, postcode,
                                  accepted_vaccines, max_distance_km, verified_at, booking_code_hash)
         SELECT gen_random_uuid(), 'bw', 'active', 'web', convert_to('+49152' || lpad(i::text, 8, '0'), 'UTF8'),
                1950, 1, '70173',
                '{biontech}', 30, now(), sha256(('centres test ' || i)::bytea)
         FROM generate_series(1, 20) AS i",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let (bystander, _) = registrant(&app, "+4917110000003", 4).await;
    published(
        &app,
        &admin,
        STUTTGART,
        &capacity("biontech", day_ahead(61), "09:00:00", "09:15:00", 2, Some(21)),
    )
    .await;
    let tick = app.draw().await;
    let draw = tick.draw.expect("a draw ran");
    assert_eq!((draw.pool, draw.free_pairs, draw.offers), (23, 2, 2));
    assert!(
        app.pending_offer(booker).await.is_some(),
        "the person whose booking was cancelled is served first"
    );
    assert!(
        app.pending_offer(offered).await.is_some(),
        "the person whose offer was withdrawn is served first"
    );
    assert!(app.pending_offer(bystander).await.is_none());
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM offers WHERE state = 'pending'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(pending, 2, "nobody of group 1 got an offer");
    // The draw record says who was served ahead, so a replay reproduces it; and having had
    // their turn, they are back to the ordinary lottery.
    let served_ahead: i64 =
        sqlx::query_scalar("SELECT count(*) FROM draw_candidates WHERE draw_id = $1 AND ahead")
            .bind(draw.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(served_ahead, 2);
    let still_ahead: i64 =
        sqlx::query_scalar("SELECT count(*) FROM registrants WHERE ahead_since IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(still_ahead, 0);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Check-in
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_pass_checks_in_each_dose_once_at_its_own_centre_and_not_too_early() {
    let app = app_with_demo_centres().await;
    let staff = app
        .staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
        .await;
    let karlsruhe = app
        .staff_token("door.karlsruhe", Role::CentreStaff, "bw", Some(KARLSRUHE))
        .await;
    let admin = app.staff_token("admin.bw", Role::RegionAdmin, "bw", None).await;
    let booked = booked_for_now(&app, &staff, "+4917112345678").await;

    // Not a pass, or a pass altered in transit: refused as invalid, nothing recorded.
    let mut altered = booked.pass.clone().into_bytes();
    let middle = altered.len() / 2;
    altered[middle] = if altered[middle] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for bad in ["", "not-a-pass", altered.as_str()] {
        let (status, body) = check_in(&app, &staff, STUTTGART, bad).await;
        assert_eq!(
            (status, error(&body)),
            (422, ("invalid_field", Some("pass"))),
            "{bad:?}: {body}"
        );
    }
    // Another centre's staff cannot scan at Stuttgart; a region admin scanning it at Karlsruhe
    // is told to send the person to Stuttgart.
    let (status, body) = check_in(&app, &karlsruhe, STUTTGART, &booked.pass).await;
    assert_eq!((status, error(&body).0), (403, "not_allowed"), "{body}");
    let (status, body) = check_in(&app, &staff, KARLSRUHE, &booked.pass).await;
    assert_eq!((status, error(&body).0), (403, "not_allowed"), "{body}");
    let (status, body) = check_in(&app, &admin, KARLSRUHE, &booked.pass).await;
    assert_eq!((status, error(&body).0), (409, "wrong_centre"), "{body}");
    assert_eq!(
        booking_state(&app, booked.booking).await,
        ("booked".into(), None, None)
    );

    // The first dose, at the right centre and time.
    let (second_at,): (DateTime<Utc>,) =
        sqlx::query_as("SELECT second_slot_at FROM slot_pairs WHERE id = $1")
            .bind(booked.pair)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let (status, body) = check_in(&app, &staff, STUTTGART, &booked.pass).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], true);
    assert_eq!(body["dose"], "first");
    assert_eq!(body["booking_state"], "first_dose_given");
    assert_eq!(body["booking"], booked.reference.as_str());
    assert_eq!(body["vaccine"], "biontech");
    assert_eq!(instant(&body["second_at"]), second_at);
    let (state, first_dose_at, second_dose_at) = booking_state(&app, booked.booking).await;
    assert_eq!((state.as_str(), second_dose_at), ("first_dose_given", None));
    let first_dose_at = first_dose_at.expect("first dose recorded");
    assert!(
        (Utc::now() - first_dose_at).num_seconds().abs() < 60,
        "{first_dose_at}"
    );

    // The schedule of the day shows the check-in.
    let today: NaiveDate = sqlx::query_scalar(
        "SELECT (first_slot_at AT TIME ZONE 'Europe/Berlin')::date FROM slot_pairs WHERE id = $1",
    )
    .bind(booked.pair)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let (status, day) = schedule(&app, &staff, STUTTGART, today).await;
    assert_eq!(status, 200, "{day}");
    // The centre's day in the centre's time, with its offset, not UTC.
    for slot in day["slots"].as_array().unwrap() {
        let at = slot["at"].as_str().unwrap();
        assert!(at.ends_with("+01:00") || at.ends_with("+02:00"), "{at}");
    }
    let listed: Vec<&Value> = day["slots"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["bookings"].as_array().unwrap())
        .filter(|b| b["reference"] == booked.reference.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "{day}");
    assert_eq!(listed[0]["state"], "first_dose_given");
    assert_eq!(instant(&listed[0]["checked_in_at"]), first_dose_at);

    // A second scan is for the second dose, weeks away: too early, nothing recorded.
    let (status, body) = check_in(&app, &staff, STUTTGART, &booked.pass).await;
    assert_eq!((status, error(&body).0), (409, "too_early"), "{body}");
    assert_eq!(booking_state(&app, booked.booking).await.0, "first_dose_given");

    // After the first dose the holder cannot cancel the course themselves.
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/me/booking/cancel",
            &code_auth(&booked.code),
            None,
        )
        .await;
    assert_eq!((status, error(&body).0), (409, "already_checked_in"), "{body}");

    // Withdrawing the batch keeps the started course (its pair stays booked) and cancels the
    // batch's other, open pair; the person is neither told nor sent back to the pool.
    let (status, outcome) = withdraw(&app, &admin, STUTTGART, booked.batch, "Halle wird geschlossen").await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        (
            &outcome["pairs_cancelled"],
            &outcome["offers_withdrawn"],
            &outcome["bookings_cancelled"],
            &outcome["kept_course_in_progress"]
        ),
        (&json!(1), &json!(0), &json!(0), &json!(1)),
        "{outcome}"
    );
    assert_eq!(
        batch_pairs(&app, booked.batch).await,
        counts(&[("booked", 1), ("cancelled", 1)])
    );
    let (ahead, told): (Option<DateTime<Utc>>, i64) = sqlx::query_as(
        "SELECT ahead_since, (SELECT count(*) FROM outbox WHERE kind = 'cancelled_by_centre')
         FROM registrants WHERE id = $1",
    )
    .bind(booked.registrant)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((ahead, told), (None, 0));

    // On the day of the second appointment the same pass completes the course, once.
    sqlx::query("UPDATE slot_pairs SET second_slot_at = now() + interval '1 hour' WHERE id = $1")
        .bind(booked.pair)
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, body) = check_in(&app, &staff, STUTTGART, &booked.pass).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["dose"], &body["booking_state"]),
        (&json!("second"), &json!("completed")),
        "{body}"
    );
    let (state, _, second_dose_at) = booking_state(&app, booked.booking).await;
    assert_eq!(state, "completed");
    assert!(second_dose_at.is_some());
    let pair_state: String = sqlx::query_scalar("SELECT state FROM slot_pairs WHERE id = $1")
        .bind(booked.pair)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(pair_state, "used");
    let (status, body) = check_in(&app, &admin, STUTTGART, &booked.pass).await;
    assert_eq!((status, error(&body).0), (409, "already_used"), "{body}");

    // Two doses, two check-in entries in the audit log.
    let checkins: Vec<Value> = sqlx::query_scalar(
        "SELECT detail FROM staff_actions WHERE action = 'checkin' AND subject_id = $1 ORDER BY id",
    )
    .bind(booked.booking)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        checkins,
        [json!({ "dose": "first" }), json!({ "dose": "second" })]
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The audit log
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_centre_action_is_audited_and_the_log_is_for_region_admins_only() {
    let app = app_with_demo_centres().await;
    let staff = app
        .staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
        .await;
    let admin = app.staff_token("admin.bw", Role::RegionAdmin, "bw", None).await;
    let analyst = app.staff_token("analyst.bw", Role::Analyst, "bw", None).await;

    // The centre's staff publish and check in; the admin withdraws the batch.
    let booked = booked_for_now(&app, &staff, "+4917112345678").await;
    let (status, body) = check_in(&app, &staff, STUTTGART, &booked.pass).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = withdraw(&app, &admin, STUTTGART, booked.batch, "Personalmangel").await;
    assert_eq!(status, 200, "{body}");

    // In the table: who, which action, at which centre, about what.
    let rows: Vec<AuditRow> = sqlx::query_as(
        "SELECT s.username, a.action, a.region_id, a.centre_id, a.subject_id
         FROM staff_actions a JOIN staff s ON s.id = a.staff_id
         WHERE a.action NOT LIKE 'session.%' ORDER BY a.id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let centre = Some(STUTTGART.to_owned());
    let row = |staff: &str, action: &str, centre: Option<String>, subject: Option<Uuid>| {
        (
            staff.to_owned(),
            action.to_owned(),
            "bw".to_owned(),
            centre,
            subject,
        )
    };
    assert_eq!(
        rows,
        [
            row(
                "door.stuttgart",
                "capacity.publish",
                centre.clone(),
                Some(booked.batch)
            ),
            row("door.stuttgart", "checkin", centre.clone(), Some(booked.booking)),
            row("admin.bw", "capacity.cancel", centre.clone(), Some(booked.batch)),
        ]
    );
    let publish_detail: Value =
        sqlx::query_scalar("SELECT detail FROM staff_actions WHERE action = 'capacity.publish'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(publish_detail["pairs"], 2);
    assert_eq!(publish_detail["vaccine"], "biontech");
    let cancel_detail: Value =
        sqlx::query_scalar("SELECT detail FROM staff_actions WHERE action = 'capacity.cancel'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(cancel_detail["reason"], "Personalmangel");
    assert_eq!(cancel_detail["outcome"]["kept_course_in_progress"], 1);

    // The region admin reads it, newest first; filtered by subject, only that subject's entries.
    let (status, body) = app
        .call(Method::GET, "/v1/staff/actions", &bearer(&admin), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let actions = body["actions"].as_array().expect("actions");
    let centre_actions: Vec<(&str, &str, &str)> = actions
        .iter()
        .filter(|a| !a["action"].as_str().unwrap().starts_with("session."))
        .map(|a| {
            (
                a["action"].as_str().unwrap(),
                a["staff"].as_str().unwrap(),
                a["centre"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        centre_actions,
        [
            ("capacity.cancel", "admin.bw", STUTTGART),
            ("checkin", "door.stuttgart", STUTTGART),
            ("capacity.publish", "door.stuttgart", STUTTGART),
        ],
        "{body}"
    );
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v1/staff/actions?subject={}", booked.booking),
            &bearer(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let subjects: Vec<&str> = body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["checkin"], "{body}");

    // Centre staff and analysts may not read the log.
    for token in [&staff, &analyst] {
        let (status, body) = app
            .call(Method::GET, "/v1/staff/actions", &bearer(token), None)
            .await;
        assert_eq!((status, error(&body).0), (403, "not_allowed"), "{body}");
    }
    let response = app.get("/v1/staff/actions").await;
    assert_eq!(response.status(), 401);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Races between the door, the person and a withdrawal
// ---------------------------------------------------------------------------------------------
//
// Each test makes the race deterministic: the test's own transaction holds a row lock, both
// requests are sent and seen waiting on it (in `pg_stat_activity`), then the lock is released.
// Whichever request wins, the outcome must be consistent.

/// Waits until at least `n` backends of the test's database wait for a lock.
async fn lock_waiters(app: &TestApp, n: i64) {
    let seen = eventually(std::time::Duration::from_secs(10), move || async move {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        (waiting >= n).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "{n} requests did not queue on the held lock within 10 s"
    );
}

#[tokio::test]
async fn a_withdrawal_racing_a_check_in_never_cancels_a_course_whose_first_dose_was_given() {
    let app = app_with_demo_centres().await;
    let staff = app
        .staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
        .await;
    let admin = app.staff_token("admin.bw", Role::RegionAdmin, "bw", None).await;
    let booked = booked_for_now(&app, &staff, "+4917112345678").await;

    // The scan queues on the booking first, the withdrawal behind it.
    let mut hold = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM bookings WHERE id = $1 FOR UPDATE")
        .bind(booked.booking)
        .execute(&mut *hold)
        .await
        .unwrap();
    let scan = check_in(&app, &staff, STUTTGART, &booked.pass);
    let withdrawal = async {
        lock_waiters(&app, 1).await;
        withdraw(&app, &admin, STUTTGART, booked.batch, "Halle wird geschlossen").await
    };
    let release = async {
        lock_waiters(&app, 2).await;
        hold.commit().await.unwrap();
    };
    let ((scan_status, scan_body), (withdraw_status, outcome), ()) = tokio::join!(scan, withdrawal, release);
    assert_eq!(scan_status, 200, "the scan came first: {scan_body}");
    assert_eq!(withdraw_status, 200, "{outcome}");

    // The first dose was given, so the course must be kept: the booking live, its pair booked.
    let (state, first_dose_at, _) = booking_state(&app, booked.booking).await;
    assert!(first_dose_at.is_some());
    let (pair_state, pair_booking): (String, Option<Uuid>) =
        sqlx::query_as("SELECT state, booking_id FROM slot_pairs WHERE id = $1")
            .bind(booked.pair)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), pair_state.as_str(), pair_booking),
        ("first_dose_given", "booked", Some(booked.booking)),
        "withdrawal outcome {outcome}"
    );
    assert_eq!(outcome["kept_course_in_progress"], 1, "{outcome}");
    app.stop().await;
}

#[tokio::test]
async fn a_withdrawal_racing_an_acceptance_leaves_no_live_booking_on_a_cancelled_pair() {
    let app = app_with_demo_centres().await;
    let staff = app
        .staff_token("door.stuttgart", Role::CentreStaff, "bw", Some(STUTTGART))
        .await;
    let batch = published(
        &app,
        &staff,
        STUTTGART,
        &capacity("biontech", day_ahead(60), "09:00:00", "09:15:00", 1, Some(21)),
    )
    .await;
    let (registrant, code) = app.registrant_with_code("+4917112345678").await;
    app.draw().await;
    let offer = app.pending_offer(registrant).await.expect("an offer");
    let pair: Uuid = sqlx::query_scalar("SELECT slot_pair_id FROM offers WHERE id = $1")
        .bind(offer)
        .fetch_one(&app.pool)
        .await
        .unwrap();

    // The acceptance queues on the pair first (booking it needs the pair row), the withdrawal
    // behind it.
    let mut hold = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM slot_pairs WHERE id = $1 FOR UPDATE")
        .bind(pair)
        .execute(&mut *hold)
        .await
        .unwrap();
    let authorization = code_auth(&code);
    let acceptance = app.call(Method::POST, "/v1/me/offer/accept", &authorization, None);
    let withdrawal = async {
        lock_waiters(&app, 1).await;
        withdraw(&app, &staff, STUTTGART, batch, "Kein Impfstoff").await
    };
    let release = async {
        lock_waiters(&app, 2).await;
        hold.commit().await.unwrap();
    };
    let ((accept_status, accepted), (withdraw_status, outcome), ()) =
        tokio::join!(acceptance, withdrawal, release);
    assert_eq!(withdraw_status, 200, "{outcome}");

    // Whoever won: no live booking on a pair that is not booked for it, no pending offer, and
    // a person whose booking or offer went is told.
    let live: Vec<(Uuid, String, Option<Uuid>)> = sqlx::query_as(
        "SELECT b.id, p.state, p.booking_id FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id
         WHERE b.registrant_id = $1 AND b.state <> 'cancelled'",
    )
    .bind(registrant)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for (booking, pair_state, holder) in &live {
        assert_eq!(
            (pair_state.as_str(), *holder),
            ("booked", Some(*booking)),
            "accept answered {accept_status} {accepted}; withdrawal {outcome}"
        );
    }
    assert!(app.pending_offer(registrant).await.is_none());
    let pair_state: String = sqlx::query_scalar("SELECT state FROM slot_pairs WHERE id = $1")
        .bind(pair)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    if pair_state == "cancelled" {
        let told: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE kind = 'cancelled_by_centre'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert!(
            told > 0,
            "the pair was withdrawn but nobody was told: accept {accept_status} {accepted}; {outcome}"
        );
        assert!(live.is_empty());
    }
    app.stop().await;
}
