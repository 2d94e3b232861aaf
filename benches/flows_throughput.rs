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

#[path = "../tests/support/mod.rs"]
mod support;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use drawbridge_domain::Role;
use serde_json::{json, Value};
use support::{spawn_with, Components, TestApp};

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
        let offered: Vec<String> = sqlx::query_scalar(
            "SELECT r.phone FROM offers o JOIN registrants r ON r.id = o.registrant_id WHERE o.state = 'pending'",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap();
        let offered: Arc<Vec<usize>> = Arc::new(
            offered
                .iter()
                .map(|phone| phone["+4915140".len()..].parse().unwrap())
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
            "verified registrations:           {:>8.0} /s  ({:.2}x baseline requests, 3 requests each; PostgreSQL CPU {} each)",
            registrations.per_second,
            registrations.per_second / baseline.per_second,
            registrations.postgres(),
        );
        println!(
            "offer acceptances:                {:>8.0} /s  ({:.2}x baseline requests; PostgreSQL CPU {} each; {} of {offers} offers booked, {booked} bookings in the database)",
            accepts.per_second,
            accepts.per_second / baseline.per_second,
            accepts.postgres(),
            accepted.load(Ordering::Relaxed),
        );
        let metrics = app.metrics(&app.address).await;
        for statement in ["register", "verify", "accept"] {
            let total = |series: &str| -> f64 {
                let name = format!("drawbridge_gateway_statement_batch_requests_{series}{{statement=\"{statement}\"}} ");
                metrics
                    .lines()
                    .find_map(|line| line.strip_prefix(&name))
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(f64::NAN)
            };
            println!(
                "{statement:>8} statements: {:>8.0}, {:.1} requests each on average",
                total("count"),
                total("sum") / total("count")
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
    let phone = format!("+4915140{i:06}");
    let sms = delivered.then(|| app.twilio.next_message_to(&phone));
    let response = app
        .post_json("/v1/regions/bw/registrations", &support::registration(&phone))
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
    let response = app
        .post_json(
            &format!("/v1/registrations/{id}/verify"),
            &json!({ "code": code }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let verified: Value = response.json().await.unwrap();
    verified["booking_code"].as_str().unwrap().to_owned()
}

/// CPU time used so far by every process named `postgres` (backends, WAL writer,
/// checkpointer), from `/proc`; `None` where there is no `/proc`. Backends live as long as the
/// pool's connections, so a difference over a phase is what PostgreSQL spent on it.
fn postgres_cpu() -> Option<Duration> {
    // /proc counts in USER_HZ, which is 100 on Linux.
    const TICKS_PER_SECOND: u64 = 100;
    let mut ticks = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ...": utime and stime are the 12th and 13th fields after comm.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        if head.ends_with("(postgres") {
            let fields: Vec<&str> = rest.split(' ').collect();
            ticks += fields.get(11).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0)
                + fields.get(12).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// What one phase measured.
struct Phase {
    per_second: f64,
    /// PostgreSQL's CPU time per task.
    postgres_micros: Option<f64>,
    values: Vec<String>,
}

impl Phase {
    fn postgres(&self) -> String {
        self.postgres_micros
            .map_or("n/a".into(), |micros| format!("{micros:.0} µs"))
    }
}

/// Runs `task(0..count)` with `concurrency` in flight; returns tasks per second, PostgreSQL's
/// CPU time per task and the values the tasks returned, in order.
async fn measure<F, Fut>(count: usize, concurrency: usize, task: F) -> Phase
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Option<String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = postgres_cpu();
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
    let per_second = count as f64 / started.elapsed().as_secs_f64();
    let postgres_micros = cpu_before
        .zip(postgres_cpu())
        .map(|(before, after)| (after - before).as_secs_f64() * 1e6 / count as f64);
    values.sort();
    Phase {
        per_second,
        postgres_micros,
        values: values.into_iter().map(|(_, v)| v).collect(),
    }
}
