#![allow(clippy::unwrap_used)]
//! The citizen flows under load, through the gateway's HTTP API on real Postgres and Redis:
//! verified registrations per second (register, read the SMS code, verify) and offer
//! acceptances per second (booking code, both appointments booked, confirmation queued),
//! next to a baseline measured in the same run: the same client at the same concurrency
//! against `GET /healthz`, an HTTP round trip that does no work.
//!
//!     cargo bench --bench flows_throughput                     # 5,000 people, 64 in flight
//!     BENCH_PEOPLE=20000 BENCH_CONCURRENCY=128 BENCH_CONNECTIONS=16 cargo bench --bench flows_throughput
//!     BENCH_SMS=delivered BENCH_CONCURRENCY=512 cargo bench --bench flows_throughput
//!
//! The bench plays the phones. By default it reads each SMS code from the outbox row the
//! registration wrote (that query runs on the same Postgres and is counted in the registration
//! time), and no notifier runs: message delivery has its own bench. With `BENCH_SMS=delivered`
//! the notifier runs too and every message goes the whole way (outbox, relay, RabbitMQ,
//! notifier, the local Twilio-compatible server, the local SMTP server); the phone reads its
//! code from the SMS the provider received, so each flow waits for its SMS, and the notifier,
//! RabbitMQ and the provider share the two cores with everything else.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{Days, Utc};
use drawbridge_domain::{Field, Role};
use drawbridge_test_support::cpu::{CpuCost, CpuTime};
use drawbridge_test_support::{metric, registration, spawn_with, Components, TestApp};
use serde_json::{json, Value};
use uuid::Uuid;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let people = setting("BENCH_PEOPLE", 5_000);
    let concurrency = setting("BENCH_CONCURRENCY", 64);
    let connections = setting("BENCH_CONNECTIONS", 32) as u32;
    let delivered = match std::env::var("BENCH_SMS").as_deref() {
        Err(_) | Ok("outbox") => false,
        Ok("delivered") => true,
        Ok(other) => panic!("BENCH_SMS is outbox or delivered, not {other:?}"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let components = Components {
            notifier: delivered,
            allocator: false,
        };
        let app = spawn_with(components, |settings| {
            settings.gateway.workers = None;
            settings.database.max_connections = connections;
        })
        .await;
        app.load_demo().await;
        publish_capacity(&app, people).await;
        let app = Arc::new(app);

        let baseline = measure(people, concurrency, {
            let app = app.clone();
            move |_| {
                let app = app.clone();
                async move {
                    let response = app.get("/healthz").await;
                    assert_eq!(response.status(), 200);
                    None
                }
            }
        })
        .await;

        let registrations = measure(people, concurrency, {
            let app = app.clone();
            move |i| {
                let app = app.clone();
                async move { Some(register_and_verify(&app, i, delivered).await) }
            }
        })
        .await;
        let codes: Arc<Vec<String>> = Arc::new(registrations.values.clone());

        app.draw().await;
        // The people the draw offered a pair, by the number in their phone.
        let offered: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT r.id, r.phone FROM offers o JOIN registrants r ON r.id = o.registrant_id WHERE o.state = 'pending'",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap();
        let keys = app.personal_data_keys();
        let offered: Arc<Vec<usize>> = Arc::new(
            offered
                .iter()
                .map(|(id, sealed)| {
                    let phone = keys.open(Field::Phone, *id, sealed).unwrap();
                    phone["+4917140".len()..].parse().unwrap()
                })
                .collect(),
        );
        let offers = offered.len();
        let accepted = Arc::new(AtomicUsize::new(0));
        let accepts = measure(offers, concurrency, {
            let (app, codes, offered, accepted) = (app.clone(), codes.clone(), offered.clone(), accepted.clone());
            move |i| {
                let (app, codes, offered, accepted) = (app.clone(), codes.clone(), offered.clone(), accepted.clone());
                async move {
                    let response = app
                        .http
                        .post(app.url("/v1/me/offer/accept"))
                        .header("Authorization", format!("BookingCode {}", codes[offered[i]]))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
                    accepted.fetch_add(1, Ordering::Relaxed);
                    None
                }
            }
        })
        .await;
        let booked: i64 = sqlx::query_scalar("SELECT count(*) FROM bookings WHERE state = 'booked'")
            .fetch_one(&app.pool)
            .await
            .unwrap();

        let sms = if delivered { "delivered by the notifier" } else { "read from the outbox" };
        println!("people: {people}, clients in flight: {concurrency}, database connections: {connections}, SMS codes {sms}");
        println!("baseline GET /healthz:            {:>8.0} requests/s", baseline.per_second);
        println!(
            "verified registrations:           {:>8.0} /s  ({:.2}x baseline requests, 3 requests each; {})",
            registrations.per_second,
            registrations.per_second / baseline.per_second,
            registrations.cpu(),
        );
        println!(
            "offer acceptances:                {:>8.0} /s  ({:.2}x baseline requests; {}; {} of {offers} offers booked, {booked} bookings in the database)",
            accepts.per_second,
            accepts.per_second / baseline.per_second,
            accepts.cpu(),
            accepted.load(Ordering::Relaxed),
        );
        let metrics = app.metrics(&app.address).await;
        for statement in ["register", "verify", "accept"] {
            let series = |part: &str| {
                let name = format!("drawbridge_gateway_statement_batch_requests_{part}{{statement=\"{statement}\"}}");
                metric(&metrics, &name)
            };
            println!(
                "{statement:>8} statements: {:>8.0}, {:.1} requests each on average",
                series("count"),
                series("sum") / series("count")
            );
        }
        if let Some(address) = &app.notifier_address {
            let metrics = app.metrics(address).await;
            let series = |name: &str| metric(&metrics, &format!("drawbridge_notifier_{name}"));
            println!(
                "relay batches: {:>8.0}, {:.1} messages each; consumer batches: {:>8.0}, {:.1} messages each",
                series("relay_batch_duration_seconds_count"),
                series("outbox_published_total") / series("relay_batch_duration_seconds_count"),
                series("send_batch_messages_count"),
                series("send_batch_messages_sum") / series("send_batch_messages_count"),
            );
        }
        Arc::into_inner(app).expect("all clients done").stop().await;
    });
}

/// Capacity for everyone in Stuttgart, published through the centres API: 20 people per
/// 5-minute slot from 08:00 to 20:00 (2,880 pairs per day and vaccine).
async fn publish_capacity(app: &TestApp, people: usize) {
    let token = app
        .staff_token("bench.admin", Role::RegionAdmin, "bw", None)
        .await;
    let days = people.div_ceil(2 * 2_880).max(1);
    for day in 1..=days {
        for (vaccine, interval) in [("biontech", 21), ("moderna", 28)] {
            let date = Utc::now().date_naive() + Days::new(day as u64);
            let response = app
                .http
                .post(app.url("/v1/centres/stuttgart-liederhalle/capacity"))
                .header("Authorization", format!("Bearer {token}"))
                .header("Idempotency-Key", format!("bench-{day}-{vaccine}"))
                .json(&json!({
                    "vaccine": vaccine, "day": date, "from": "08:00:00", "until": "20:00:00",
                    "slot_minutes": 5, "people_per_slot": 20, "second_dose_after_days": interval,
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        }
    }
}

/// Registers person `i`, reads their SMS code (from the outbox, or from the SMS `delivered` to
/// the provider), verifies; returns the booking code.
async fn register_and_verify(app: &TestApp, i: usize, delivered: bool) -> String {
    let phone = format!("+4917140{i:06}");
    let sms = delivered.then(|| app.twilio.next_message_to(&phone));
    let response = app
        .post_json("/v1/regions/bw/registrations", &registration(&phone))
        .await;
    assert_eq!(response.status(), 202);
    let started: Value = response.json().await.unwrap();
    let id = started["registration_id"].as_str().unwrap();
    let code = match sms {
        Some(sms) => {
            let body = sms.await.body;
            let digits = body
                .find(|c: char| c.is_ascii_digit())
                .expect("the SMS has its code");
            body[digits..digits + 6].to_owned()
        }
        None => sqlx::query_scalar(
            "SELECT payload->>'code' FROM outbox
             WHERE kind = 'verification_code' AND channel = 'sms'
               AND subject_id = (SELECT id FROM phone_verifications WHERE registrant_id = $1::uuid)",
        )
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap(),
    };
    app.verified_booking_code(id, &code).await
}

/// What one phase measured.
struct Phase {
    per_second: f64,
    /// The CPU each task cost the machine and PostgreSQL.
    cpu: Option<CpuCost>,
    values: Vec<String>,
}

impl Phase {
    fn cpu(&self) -> String {
        self.cpu.map_or("CPU n/a".into(), |cost| cost.to_string())
    }
}

/// Runs `task(0..count)` with `concurrency` in flight; returns tasks per second, the CPU time
/// per task and the values the tasks returned, in order.
async fn measure<F, Fut>(count: usize, concurrency: usize, task: F) -> Phase
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Option<String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = CpuTime::now();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (next, task) = (next.clone(), task.clone());
        workers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return done;
                }
                if let Some(value) = task(i).await {
                    done.push((i, value));
                }
            }
        }));
    }
    let mut values = Vec::new();
    for worker in workers {
        values.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    let per_second = count as f64 / elapsed.as_secs_f64();
    let cpu = cpu_before.and_then(|before| before.cost_since(count, elapsed));
    values.sort();
    Phase {
        per_second,
        cpu,
        values: values.into_iter().map(|(_, v)| v).collect(),
    }
}
