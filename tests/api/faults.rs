//! Nothing lost, nothing doubled: the components as separate `drawbridge` processes (two
//! gateways, two allocators, two notifiers) on a private RabbitMQ node, a private Redis with
//! its append-only file, this test's database and the fake SMS and mail providers, while people
//! register, verify, accept, decline and cancel through both gateways and faults are injected:
//! SIGKILL of each component kind (restarted), Redis killed and restarted, the broker stopped
//! or killed and started again, and the providers failing (500, 429, answers lost, timeouts).
//!
//! Then it checks the booking invariants over the whole history, that every 2xx answer took
//! effect, that nothing answered 500, and that every message of the outbox reached its provider
//! exactly once. The one exception is documented (configuration.md, "Messages in doubt"):
//! where the provider cannot be asked (email, or an SMS provider without a message list,
//! `in_doubt = "resend"`), a message whose provider took it and whose answer was lost (a
//! failure answered after taking it, a notifier killed mid-call, or a request that timed out
//! while the provider, slow on a loaded machine, still took it) may arrive twice; those are
//! counted apart. A timed-out request is known only to the sender: such a copy is excused
//! only for a message whose delivery records that it was sent again in doubt, one a message.
//!
//! Parameters (environment): `FAULTS_PEOPLE` (default 200), `FAULTS_SECONDS` of load and
//! faults (default 60), `FAULTS_ROUNDS` of each fault kind (default 1), `FAULTS_MESSAGE_LIST`
//! `yes` or `no` (default `yes`): whether the SMS provider answers its message list. The long
//! run is in docs/development.md.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drawbridge_platform::config::ExposeSecret;
use drawbridge_test_support::{
    drop_database, registration, settings_env, test_settings, FakeSmtp, FakeTwilio, PrivateRabbit,
    PrivateRedis,
};
use reqwest::Method;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

struct Plan {
    people: usize,
    seconds: u64,
    rounds: usize,
    message_list: bool,
}

impl Plan {
    fn from_env() -> Plan {
        let number = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .map(|value| {
                    value
                        .parse()
                        .unwrap_or_else(|_| panic!("{name}={value}: a number"))
                })
                .unwrap_or(default)
        };
        Plan {
            people: number("FAULTS_PEOPLE", 200) as usize,
            seconds: number("FAULTS_SECONDS", 60),
            rounds: number("FAULTS_ROUNDS", 1) as usize,
            message_list: std::env::var("FAULTS_MESSAGE_LIST").map_or(true, |v| v != "no"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Component {
    Gateway,
    Allocator,
    Notifier,
}

impl Component {
    fn name(self) -> &'static str {
        match self {
            Component::Gateway => "gateway",
            Component::Allocator => "allocator",
            Component::Notifier => "notifier",
        }
    }
}

/// One `drawbridge` process, always on the same address so that clients find it again.
struct Process {
    component: Component,
    address: String,
    child: Option<tokio::process::Child>,
}

/// The six processes and how to start them.
struct Cluster {
    env: Vec<(String, String)>,
    dir: PathBuf,
    processes: Vec<Process>,
}

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

impl Cluster {
    fn new(env: Vec<(String, String)>, dir: PathBuf) -> Cluster {
        let processes = [Component::Gateway, Component::Allocator, Component::Notifier]
            .into_iter()
            .flat_map(|component| [component, component])
            .map(|component| Process {
                component,
                address: free_address(),
                child: None,
            })
            .collect();
        Cluster { env, dir, processes }
    }

    fn indices(&self, component: Component) -> Vec<usize> {
        (0..self.processes.len())
            .filter(|&i| self.processes[i].component == component)
            .collect()
    }

    fn urls(&self, component: Component) -> Vec<String> {
        self.indices(component)
            .into_iter()
            .map(|i| format!("http://{}", self.processes[i].address))
            .collect()
    }

    fn start(&mut self, i: usize) {
        let process = &mut self.processes[i];
        let name = process.component.name();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}-{i}.log")))
            .unwrap();
        // Postgres is shared with every other test: a few connections per process.
        let connections = match process.component {
            Component::Gateway => "8",
            Component::Allocator => "5",
            Component::Notifier => "6",
        };
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_drawbridge"))
            .current_dir(drawbridge_test_support::repository_root())
            .arg(name)
            .envs(self.env.iter().cloned())
            .env(
                format!("DRAWBRIDGE_{}__LISTEN", name.to_uppercase()),
                &process.address,
            )
            .env("DRAWBRIDGE_DATABASE__MAX_CONNECTIONS", connections)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("drawbridge starts");
        process.child = Some(child);
    }

    async fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.processes[i].child.take() {
            child.kill().await.expect("SIGKILL");
        }
    }

    /// SIGTERM, and wait until it has finished what it was doing.
    async fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.processes[i].child.take() {
            let pid = child.id().unwrap().to_string();
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .is_err()
            {
                child.kill().await.unwrap();
            }
        }
    }

    /// Waits until the process answers `/readyz` with 200 and, if `redis_ok`, sees Redis.
    async fn ready(&mut self, http: &reqwest::Client, i: usize, redis_ok: bool) {
        let url = format!("http://{}/readyz", self.processes[i].address);
        let deadline = Instant::now() + Duration::from_secs(120);
        let name = self.processes[i].component.name();
        loop {
            if let Some(status) = self.processes[i].child.as_mut().unwrap().try_wait().unwrap() {
                let log = std::fs::read_to_string(self.dir.join(format!("{name}-{i}.log")));
                panic!("{name} {i} exited ({status}): {}", log.unwrap_or_default());
            }
            if let Ok(response) = http.get(&url).send().await {
                if response.status() == 200 {
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if !redis_ok || body["dependencies"]["redis"] == "ok" {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "{name} {i} not ready within 120 s; see {}",
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What the people were told, to check afterwards that it took effect.
#[derive(Default)]
struct Record {
    requests: u64,
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (a gateway killed under them, or overloaded) and were sent
    /// again; after 120 s without one the person gives up.
    unanswered: u64,
    /// Method, path, status and body of every answer 500.
    errors: Vec<String>,
    registered: Vec<Uuid>,
    verified: Vec<Uuid>,
    /// (registrant, booking)
    accepted: Vec<(Uuid, Uuid)>,
    declined: Vec<Uuid>,
    cancelled: Vec<Uuid>,
    /// Flows that gave up (an offer that never came counts too).
    unfinished: u64,
}

/// A person's client: both gateways, sending again what got no answer or a 503.
struct Client {
    http: reqwest::Client,
    gateways: Vec<String>,
    record: Arc<Mutex<Record>>,
    pool: PgPool,
    /// The people's phones: a code the outbox no longer holds (erased once sent) is read here.
    twilio: FakeTwilio,
}

impl Client {
    async fn send(
        &self,
        person: usize,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> (u16, Value) {
        let deadline = Instant::now() + Duration::from_secs(120);
        for attempt in 0.. {
            let gateway = &self.gateways[(person + attempt) % self.gateways.len()];
            let mut request = self.http.request(method.clone(), format!("{gateway}{path}"));
            if let Some(authorization) = authorization {
                request = request.header("Authorization", authorization);
            }
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let answer = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    Some((status, response.json().await.unwrap_or(Value::Null)))
                }
                Err(_) => None,
            };
            {
                let mut record = self.record.lock().unwrap();
                record.requests += 1;
                match &answer {
                    Some((status, body)) => {
                        *record.statuses.entry(*status).or_default() += 1;
                        if *status >= 500 && *status != 503 {
                            record.errors.push(format!("{method} {path}: {status} {body}"));
                        }
                    }
                    None => record.unanswered += 1,
                }
            }
            match answer {
                Some((status, _)) if status == 503 || status == 429 => {}
                Some(answer) => return answer,
                None => {}
            }
            // An overloaded machine can leave a person without an answer for minutes: they
            // give up, which the summary counts, and what they were told is still checked.
            if Instant::now() >= deadline {
                return (0, Value::Null);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        unreachable!()
    }

    /// The newest SMS code texted for the registration: from the outbox while it is queued,
    /// from the phone once it was sent (the outbox then keeps no code).
    async fn texted_code(&self, registration: Uuid, phone: &str) -> String {
        let queued =
            "SELECT o.payload->>'code' FROM outbox o JOIN phone_verifications v ON v.id = o.subject_id
             WHERE v.registrant_id = $1 AND o.kind = 'verification_code' ORDER BY v.created_at DESC LIMIT 1";
        self.texted(registration, phone, queued, six_digits).await
    }

    /// The booking code as texted, for a person whose answer to the right code was lost.
    async fn texted_booking_code(&self, registration: Uuid, phone: &str) -> String {
        let queued = "SELECT payload->>'booking_code' FROM outbox
             WHERE kind = 'booking_code' AND subject_id = $1 AND channel = 'sms'";
        self.texted(registration, phone, queued, booking_code_in).await
    }

    /// What `queued` reads of the registration's message, else what `find` finds in the newest
    /// SMS to `phone` that has it; waits for the message while it is on its way.
    async fn texted(
        &self,
        registration: Uuid,
        phone: &str,
        queued: &str,
        find: fn(&str) -> Option<String>,
    ) -> String {
        for _ in 0..600 {
            let held: Option<Option<String>> = sqlx::query_scalar(queued)
                .bind(registration)
                .fetch_optional(&self.pool)
                .await
                .unwrap();
            if let Some(Some(text)) = held {
                return text;
            }
            let sent = self.twilio.accepted();
            if let Some(text) = sent
                .iter()
                .rev()
                .filter(|sms| sms.to == phone)
                .find_map(|sms| find(&sms.body))
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        String::new()
    }
}

/// The six-digit code in an SMS.
fn six_digits(body: &str) -> Option<String> {
    body.split(|c: char| !c.is_ascii_digit())
        .find(|word| word.len() == 6)
        .map(str::to_owned)
}

/// The booking code (four groups of four) in an SMS.
fn booking_code_in(body: &str) -> Option<String> {
    body.split_whitespace()
        .map(|word| word.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
        .find(|word| {
            word.len() == 19
                && word.split('-').count() == 4
                && word
                    .split('-')
                    .all(|group| group.len() == 4 && group.chars().all(|c| c.is_ascii_alphanumeric()))
        })
        .map(str::to_owned)
}

/// One person: registers, verifies, waits for an offer, then accepts (three in five), declines
/// (one in five) or accepts and cancels (one in five).
async fn person(client: Arc<Client>, n: usize, offer_wait: Duration) {
    let phone = format!("+4915230{n:06}");
    let mut body = registration(&phone);
    body["email"] = Value::from(format!("person{n}@example.de"));
    let key = Uuid::new_v4().to_string();
    let path = "/v1/regions/bw/registrations";
    let (status, answer) = client
        .send(n, Method::POST, path, None, Some(&body), Some(&key))
        .await;
    let gave_up = || client.record.lock().unwrap().unfinished += 1;
    if status != 202 {
        return gave_up();
    }
    let id: Uuid = answer["registration_id"].as_str().unwrap().parse().unwrap();
    client.record.lock().unwrap().registered.push(id);

    let code = client.texted_code(id, &phone).await;
    let verify = format!("/v1/registrations/{id}/verify");
    let (status, answer) = client
        .send(
            n,
            Method::POST,
            &verify,
            None,
            Some(&serde_json::json!({ "code": code })),
            None,
        )
        .await;
    let booking_code = match status {
        200 => {
            client.record.lock().unwrap().verified.push(id);
            answer["booking_code"].as_str().unwrap().to_owned()
        }
        // Verified by an earlier request whose answer was lost: the code came by SMS.
        409 => client.texted_booking_code(id, &phone).await,
        _ => return gave_up(),
    };
    let auth = format!("BookingCode {booking_code}");

    let deadline = Instant::now() + offer_wait;
    let offer = loop {
        let (status, me) = client
            .send(n, Method::GET, "/v1/me", Some(&auth), None, None)
            .await;
        if let (200, Some(offer)) = (status, me["offer"]["id"].as_str()) {
            break offer.parse::<Uuid>().unwrap();
        }
        if Instant::now() > deadline {
            return gave_up();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    if n % 5 == 3 {
        let decline = "/v1/me/offer/decline";
        let (status, _) = client
            .send(n, Method::POST, decline, Some(&auth), None, None)
            .await;
        if status == 200 {
            client.record.lock().unwrap().declined.push(offer);
        }
        return;
    }
    let accept = "/v1/me/offer/accept";
    let (status, answer) = client
        .send(n, Method::POST, accept, Some(&auth), None, None)
        .await;
    if status != 200 {
        // 409 `offer_already_accepted`: an earlier request took effect and its answer was lost.
        return;
    }
    let booking: Uuid = answer["booking"]["booking_id"].as_str().unwrap().parse().unwrap();
    client.record.lock().unwrap().accepted.push((id, booking));
    if n % 5 == 4 {
        let cancel = "/v1/me/booking/cancel";
        let (status, _) = client
            .send(n, Method::POST, cancel, Some(&auth), None, None)
            .await;
        if status == 200 {
            client.record.lock().unwrap().cancelled.push(booking);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Fault {
    Kill(Component),
    Redis,
    Broker,
    Provider,
}

impl Fault {
    fn name(self) -> String {
        match self {
            Fault::Kill(component) => format!("SIGKILL {}", component.name()),
            Fault::Redis => "Redis killed".into(),
            Fault::Broker => "broker stopped/killed".into(),
            Fault::Provider => "providers failing".into(),
        }
    }
}

/// The injected faults, and what was seen of them.
struct Faults {
    twilio: FakeTwilio,
    smtp: FakeSmtp,
    redis: PrivateRedis,
    rabbit: PrivateRabbit,
    /// Seconds from each fault until every affected component was ready again.
    recovery: BTreeMap<Fault, Vec<f64>>,
    /// When notifiers were killed: a message the provider took just before has its answer lost.
    notifier_kills: Vec<Instant>,
    /// When each fault began.
    log: Vec<(Instant, Fault)>,
}

impl Faults {
    async fn inject(&mut self, cluster: &mut Cluster, http: &reqwest::Client, fault: Fault, round: usize) {
        let began = Instant::now();
        self.log.push((began, fault));
        match fault {
            Fault::Kill(component) => {
                let i = cluster.indices(component)[round % 2];
                cluster.kill(i).await;
                if component == Component::Notifier {
                    self.notifier_kills.push(Instant::now());
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                cluster.start(i);
                cluster.ready(http, i, false).await;
            }
            Fault::Redis => {
                self.redis.kill();
                tokio::time::sleep(Duration::from_secs(3)).await;
                self.redis.restart();
                for i in cluster.indices(Component::Gateway) {
                    cluster.ready(http, i, true).await;
                }
            }
            Fault::Broker => {
                // Stopped in order, or killed as a crash would, in turn.
                tokio::task::block_in_place(|| {
                    if round.is_multiple_of(2) {
                        self.rabbit.stop()
                    } else {
                        self.rabbit.kill()
                    }
                });
                tokio::time::sleep(Duration::from_secs(3)).await;
                tokio::task::block_in_place(|| self.rabbit.start_again());
                for i in cluster.indices(Component::Notifier) {
                    cluster.ready(http, i, false).await;
                }
            }
            Fault::Provider => {
                self.twilio.fail_next(&[500, 429, 500, 429, 503, 429]);
                self.twilio.accept_then_fail_next(&[500, 502]);
                self.twilio.hang_next(2);
                self.smtp.refuse_next(&[451, 451]);
                self.smtp.drop_reply_next(2);
            }
        }
        if fault != Fault::Provider {
            self.recovery
                .entry(fault)
                .or_default()
                .push(began.elapsed().as_secs_f64());
        } else {
            self.recovery.entry(fault).or_default();
        }
    }
}

/// The outbox rows not yet sent or dead-lettered.
async fn undelivered(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM outbox o LEFT JOIN deliveries d ON d.outbox_id = o.id
         WHERE d.state IS NULL OR d.state NOT IN ('sent', 'dead')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Pairs of offers `a`, `b` where `b` came from a later draw than `a`, joined on a condition
/// that follows.
macro_rules! later_offer {
    () => {
        "SELECT count(*) FROM offers a JOIN draws da ON da.id = a.draw_id
         JOIN offers b ON b.id <> a.id JOIN draws db ON db.id = b.draw_id AND da.completed_at < db.completed_at AND "
    };
}

/// `a` was still pending when `b`'s draw had read who and what was free.
macro_rules! still_pending {
    () => {
        "(a.answered_at IS NULL OR a.answered_at > db.completed_at)"
    };
}

/// `a`'s booking was still live when `b`'s draw had read who and what was free.
macro_rules! still_booked {
    () => {
        "JOIN bookings k ON k.offer_id = a.id WHERE (k.cancelled_at IS NULL OR k.cancelled_at > db.completed_at)"
    };
}

/// Violations of invariants 1–3 over the whole history, by name; all should be 0.
async fn invariant_violations(pool: &PgPool) -> Vec<(&'static str, i64)> {
    let checks: [(&str, &str); 11] = [
        (
            "a pair in two live bookings at once",
            "SELECT count(*) FROM bookings a JOIN bookings b ON a.slot_pair_id = b.slot_pair_id AND a.id < b.id
             WHERE a.booked_at < coalesce(b.cancelled_at, 'infinity') AND b.booked_at < coalesce(a.cancelled_at, 'infinity')",
        ),
        (
            "a registrant with two live bookings at once",
            "SELECT count(*) FROM bookings a JOIN bookings b ON a.registrant_id = b.registrant_id AND a.id < b.id
             WHERE a.booked_at < coalesce(b.cancelled_at, 'infinity') AND b.booked_at < coalesce(a.cancelled_at, 'infinity')",
        ),
        // An offer's `offered_at` is when its draw's transaction began, which may be before
        // an answer that freed its pair or person committed. Draws of a region run one at a
        // time, so a later draw began after an earlier one committed, and an answer or
        // cancellation whose transaction began after a draw finished reading was not seen by it.
        (
            "a pair offered while an earlier offer of it was pending",
            concat!(later_offer!(), "a.slot_pair_id = b.slot_pair_id WHERE ", still_pending!()),
        ),
        (
            "a registrant offered while an earlier offer was pending",
            concat!(later_offer!(), "a.registrant_id = b.registrant_id WHERE ", still_pending!()),
        ),
        (
            "a pair offered while booked",
            concat!(later_offer!(), "a.slot_pair_id = b.slot_pair_id ", still_booked!()),
        ),
        (
            "a registrant offered while booked",
            concat!(later_offer!(), "a.registrant_id = b.registrant_id ", still_booked!()),
        ),
        (
            "a booking not from its own accepted offer",
            "SELECT count(*) FROM bookings b JOIN offers o ON o.id = b.offer_id
             WHERE o.state <> 'accepted' OR o.registrant_id <> b.registrant_id OR o.slot_pair_id <> b.slot_pair_id",
        ),
        (
            "a pair's holder that is not its pending offer or live booking",
            "SELECT count(*) FROM slot_pairs p
             WHERE (p.offer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.id = p.offer_id AND o.state = 'pending' AND o.slot_pair_id = p.id))
                OR (p.booking_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.id = p.booking_id AND b.state <> 'cancelled' AND b.slot_pair_id = p.id))
                OR (p.state = 'open' AND (EXISTS (SELECT 1 FROM offers o WHERE o.slot_pair_id = p.id AND o.state = 'pending')
                                       OR EXISTS (SELECT 1 FROM bookings b WHERE b.slot_pair_id = p.id AND b.state <> 'cancelled')))",
        ),
        (
            "an offer without its SMS",
            "SELECT count(*) FROM offers o WHERE NOT EXISTS
             (SELECT 1 FROM outbox m WHERE m.kind = 'offer' AND m.subject_id = o.id AND m.channel = 'sms')",
        ),
        (
            "a booking without its confirmation",
            "SELECT count(*) FROM bookings b WHERE NOT EXISTS
             (SELECT 1 FROM outbox m WHERE m.kind = 'confirmation' AND m.subject_id = b.id AND m.channel = 'sms')",
        ),
        (
            "a cancelled booking without its message",
            "SELECT count(*) FROM bookings b WHERE b.state = 'cancelled' AND NOT EXISTS
             (SELECT 1 FROM outbox m WHERE m.kind = 'booking_cancelled' AND m.subject_id = b.id AND m.channel = 'sms')",
        ),
    ];
    let mut violations = Vec::new();
    for (name, sql) in checks {
        violations.push((name, count(pool, sql).await));
    }
    violations
}

/// 2xx answers whose effect is not in the database, by kind.
async fn answers_without_effect(pool: &PgPool, record: &Record) -> Vec<(&'static str, usize)> {
    let missing = |sql: &'static str, ids: Vec<Uuid>| async move {
        let found: i64 = sqlx::query_scalar(sql).bind(&ids).fetch_one(pool).await.unwrap();
        ids.len() - found as usize
    };
    vec![
        (
            "202 registration without its registrant",
            missing(
                "SELECT count(*) FROM registrants WHERE id = ANY($1)",
                record.registered.clone(),
            )
            .await,
        ),
        (
            "200 verification without an active registrant",
            missing(
                "SELECT count(*) FROM registrants WHERE id = ANY($1) AND status = 'active' AND booking_code_hash IS NOT NULL",
                record.verified.clone(),
            )
            .await,
        ),
        (
            "200 acceptance without its booking",
            missing(
                "SELECT count(*) FROM bookings b JOIN unnest($1::uuid[]) AS t(id) ON t.id = b.id",
                record.accepted.iter().map(|(_, booking)| *booking).collect(),
            )
            .await
                + {
                    let pairs: Vec<(Uuid, Uuid)> = sqlx::query_as(
                        "SELECT id, registrant_id FROM bookings WHERE id = ANY($1)",
                    )
                    .bind(record.accepted.iter().map(|(_, b)| *b).collect::<Vec<_>>())
                    .fetch_all(pool)
                    .await
                    .unwrap();
                    let owners: HashMap<Uuid, Uuid> = pairs.into_iter().collect();
                    record
                        .accepted
                        .iter()
                        .filter(|(registrant, booking)| owners.get(booking).is_some_and(|o| o != registrant))
                        .count()
                },
        ),
        (
            "200 decline without a declined offer",
            missing(
                "SELECT count(*) FROM offers WHERE id = ANY($1) AND state = 'declined'",
                record.declined.clone(),
            )
            .await,
        ),
        (
            "200 cancellation without a cancelled booking",
            missing(
                "SELECT count(*) FROM bookings WHERE id = ANY($1) AND state = 'cancelled'",
                record.cancelled.clone(),
            )
            .await,
        ),
    ]
}

/// How the messages of one channel came out.
#[derive(Debug, Default)]
struct Delivered {
    messages: usize,
    sent: usize,
    dead: usize,
    /// Not sent, or recorded as sent with an id the provider never gave out or that another
    /// message's delivery records too (a lookup that took another message for it).
    lost: usize,
    /// Copies the provider took beyond one per message...
    doubled: usize,
    /// ...of which the provider answered with a failure after taking the first.
    doubled_answer_lost: usize,
    /// ...of which a notifier was killed while the first was with the provider.
    doubled_notifier_killed: usize,
    /// ...of which the message's delivery records that it was sent again in doubt, without a
    /// way to ask the provider (an attempt timed out, or its answer was otherwise lost): one
    /// copy per such message.
    doubled_resent_in_doubt: usize,
    /// Copies taken with the answer lost that a delivery records: found by a lookup, or
    /// (email) recorded as sent although the reply was lost.
    answer_lost_recorded: usize,
    /// The provider's ids of the copies no delivery records and nothing excuses.
    unexcused_ids: Vec<String>,
}

impl Delivered {
    fn unexcused(&self) -> usize {
        self.doubled - self.doubled_answer_lost - self.doubled_notifier_killed - self.doubled_resent_in_doubt
    }
}

/// One copy a provider took: its id, when, whether its answer was lost, and what copies of
/// the same message share (recipient and text).
type Taken = (String, Instant, bool, String);

/// Compares the outbox of `channel` with what the provider took. A copy no delivery records
/// is an extra one; where the provider cannot be asked (`excuse`), one taken with its answer
/// lost, while a notifier died, or of a message its delivery records as sent again in doubt
/// is counted apart.
async fn delivered(
    pool: &PgPool,
    channel: &str,
    taken: Vec<Taken>,
    notifier_kills: &[Instant],
    excuse: bool,
) -> Delivered {
    let rows: Vec<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT d.state, d.provider_message_id, d.detail FROM outbox o LEFT JOIN deliveries d ON d.outbox_id = o.id
         WHERE o.channel = $1",
    )
    .bind(channel)
    .fetch_all(pool)
    .await
    .unwrap();
    let ids: HashSet<&str> = taken.iter().map(|(id, ..)| id.as_str()).collect();
    let recorded: HashSet<&str> = rows.iter().filter_map(|(_, id, _)| id.as_deref()).collect();
    let resent: HashSet<&str> = rows
        .iter()
        .filter(|(_, _, detail)| {
            detail
                .as_deref()
                .is_some_and(|d| d.starts_with(drawbridge_notifier::RESENT_IN_DOUBT))
        })
        .filter_map(|(_, id, _)| id.as_deref())
        .collect();
    // Per message sent again in doubt, one extra copy it may explain.
    let mut resent_allowance: HashMap<&str, usize> = HashMap::new();
    for (id, _, _, same) in &taken {
        if resent.contains(id.as_str()) {
            *resent_allowance.entry(same.as_str()).or_default() += 1;
        }
    }
    let mut result = Delivered {
        messages: rows.len(),
        ..Default::default()
    };
    let mut counted = HashSet::new();
    for (state, id, _) in &rows {
        match state.as_deref() {
            Some("sent")
                if id
                    .as_deref()
                    .is_some_and(|id| ids.contains(id) && counted.insert(id)) =>
            {
                result.sent += 1
            }
            Some("dead") => {
                result.dead += 1;
                result.lost += 1;
            }
            _ => result.lost += 1,
        }
    }
    // A message the provider takes while a notifier dies may be taken up to the request's
    // timeout before the kill (2 s here).
    let killed_mid_call = |at: Instant| {
        notifier_kills
            .iter()
            .any(|kill| at <= *kill + Duration::from_secs(1) && *kill <= at + Duration::from_secs(3))
    };
    for (id, at, answer_lost, same) in &taken {
        if recorded.contains(id.as_str()) {
            result.answer_lost_recorded += usize::from(*answer_lost);
            continue;
        }
        result.doubled += 1;
        let allowance = resent_allowance.get_mut(same.as_str());
        if *answer_lost && excuse {
            result.doubled_answer_lost += 1;
        } else if excuse && killed_mid_call(*at) {
            result.doubled_notifier_killed += 1;
        } else if let Some(allowance) = allowance.filter(|n| excuse && **n > 0) {
            *allowance -= 1;
            result.doubled_resent_in_doubt += 1;
        } else {
            result.unexcused_ids.push(id.clone());
        }
    }
    result
}

/// Seconds from `origin` to `at`, negative before it.
fn since(origin: Instant, at: Instant) -> f64 {
    match at.checked_duration_since(origin) {
        Some(after) => after.as_secs_f64(),
        None => -(origin - at).as_secs_f64(),
    }
}

/// Prints, for each SMS copy that no delivery records and nothing excuses, when the provider
/// took it and the copy a delivery records (same number and text), with that delivery's
/// attempts and last detail and the nearest fault: what a failed run needs to find the cause.
async fn explain_sms_doubles(
    pool: &PgPool,
    accepted: &[drawbridge_test_support::twilio::Sms],
    unexcused: &[String],
    began: Instant,
    log: &[(Instant, Fault)],
) {
    for id in unexcused.iter().take(50) {
        let Some(copy) = accepted.iter().find(|sms| &sms.sid == id) else {
            continue;
        };
        let recorded = accepted
            .iter()
            .find(|sms| sms.sid != *id && sms.to == copy.to && sms.body == copy.body);
        let delivery: Option<(i32, Option<String>)> = match recorded {
            Some(sms) => {
                sqlx::query_as("SELECT attempts, detail FROM deliveries WHERE provider_message_id = $1")
                    .bind(&sms.sid)
                    .fetch_optional(pool)
                    .await
                    .unwrap()
            }
            None => None,
        };
        let nearest = log
            .iter()
            .min_by(|a, b| {
                let (a, b) = (
                    since(copy.accepted_at, a.0).abs(),
                    since(copy.accepted_at, b.0).abs(),
                );
                a.total_cmp(&b)
            })
            .map(|(at, fault)| format!("{} at {:+.1} s", fault.name(), since(copy.accepted_at, *at)));
        println!(
            "  extra SMS {id} taken at {:.1} s{}: {:.40}; recorded copy {} at {}, delivery {:?}; nearest fault {}",
            since(began, copy.accepted_at),
            if copy.answer_lost { " (answer lost)" } else { "" },
            copy.body,
            recorded.map_or("none", |sms| sms.sid.as_str()),
            recorded.map_or("-".into(), |sms| format!("{:.1} s", since(began, sms.accepted_at))),
            delivery,
            nearest.unwrap_or_default()
        );
    }
}

fn seconds(values: &[f64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let max = values.iter().cloned().fold(0.0, f64::max);
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    format!("mean {mean:.1} s, max {max:.1} s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs for minutes beside a private broker; run it with --ignored (docs/development.md)"]
async fn faults_lose_nothing_and_double_nothing() {
    let plan = Plan::from_env();
    let started = Instant::now();
    let twilio = FakeTwilio::start();
    if !plan.message_list {
        twilio.list_answers(405);
    }
    let smtp = FakeSmtp::start().await;
    let redis = PrivateRedis::start_append_only();
    let rabbit = tokio::task::block_in_place(PrivateRabbit::start);
    let mut settings = test_settings(&twilio, &smtp);
    settings.redis.url = redis.url.clone().into();
    settings.amqp.url = rabbit.url.clone().into();
    settings.amqp.quorum_queues = true;
    // Restarted processes wait for whatever is away at that moment.
    settings.database.startup_retry_seconds = 60;
    settings.redis.startup_retry_seconds = 60;
    settings.amqp.startup_retry_seconds = 60;
    settings.allocator.tick_seconds = 1;
    // Recovery within the run: retries, lookups, and the sweep of messages lost in flight.
    settings.notifier.concurrency = 32;
    settings.notifier.retry_delays_seconds = vec![1, 1, 2, 2, 3, 5, 8];
    settings.notifier.in_doubt_grace_seconds = 1;
    settings.notifier.stranded_after_seconds = 5;
    settings.notifier.sweep_every_seconds = 1;
    settings.notifier.sms.timeout_seconds = 2;
    settings.notifier.email.timeout_seconds = 2;
    let database_url = settings.database.url.expose_secret().to_owned();
    let dir = settings.notifier.sink_file.parent().unwrap().to_owned();
    std::fs::create_dir_all(&dir).unwrap();
    let env = settings_env(&settings);

    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let demo = tokio::task::block_in_place(|| crate::drawbridge(&["demo"], &pairs));
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    let pool = drawbridge_platform::postgres::connect(&settings.database)
        .await
        .unwrap();

    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(4))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut cluster = Cluster::new(env, dir.clone());
    for i in 0..cluster.processes.len() {
        cluster.start(i);
    }
    for i in 0..cluster.processes.len() {
        cluster.ready(&http, i, false).await;
    }
    let setup = started.elapsed();

    // The load: people arrive over the first 70 % of the run and act until its end.
    let record = Arc::new(Mutex::new(Record::default()));
    let client = Arc::new(Client {
        http: http.clone(),
        gateways: cluster.urls(Component::Gateway),
        record: record.clone(),
        pool: pool.clone(),
        twilio: twilio.clone(),
    });
    let load_began = Instant::now();
    let arrivals = Duration::from_secs(plan.seconds).mul_f64(0.7);
    let mut people = Vec::new();
    for n in 0..plan.people {
        let client = client.clone();
        let at = arrivals.mul_f64(n as f64 / plan.people as f64);
        let offer_wait = Duration::from_secs(plan.seconds).saturating_sub(at) + Duration::from_secs(30);
        people.push(tokio::spawn(async move {
            tokio::time::sleep(at).await;
            person(client, n, offer_wait).await;
        }));
    }

    // The faults, spread evenly over the run, the kinds in turn.
    let kinds = [
        Fault::Kill(Component::Gateway),
        Fault::Provider,
        Fault::Kill(Component::Notifier),
        Fault::Redis,
        Fault::Kill(Component::Allocator),
        Fault::Broker,
    ];
    let total = kinds.len() * plan.rounds;
    let mut faults = Faults {
        twilio: twilio.clone(),
        smtp: smtp.clone(),
        redis,
        rabbit,
        recovery: BTreeMap::new(),
        notifier_kills: Vec::new(),
        log: Vec::new(),
    };
    for k in 0..total {
        let due = Duration::from_secs(plan.seconds).mul_f64((k + 1) as f64 / (total + 1) as f64);
        tokio::time::sleep(due.saturating_sub(load_began.elapsed())).await;
        faults
            .inject(&mut cluster, &http, kinds[k % kinds.len()], k / kinds.len())
            .await;
    }
    for person in people {
        person.await.unwrap();
    }
    let load = load_began.elapsed();

    // No new offers from here, then wait until every message is sent or dead-lettered.
    for i in cluster.indices(Component::Allocator) {
        cluster.stop(i).await;
    }
    let drain_began = Instant::now();
    while undelivered(&pool).await > 0 && drain_began.elapsed() < Duration::from_secs(180) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain = drain_began.elapsed();
    let undelivered_at_end = undelivered(&pool).await;
    for i in 0..cluster.processes.len() {
        cluster.stop(i).await;
    }

    let violations = invariant_violations(&pool).await;
    let record = std::mem::take(&mut *record.lock().unwrap());
    let without_effect = answers_without_effect(&pool, &record).await;
    let sms = delivered(
        &pool,
        "sms",
        twilio
            .accepted()
            .into_iter()
            .map(|sms| {
                let same = format!("{}\n{}", sms.to, sms.body);
                (sms.sid, sms.accepted_at, sms.answer_lost, same)
            })
            .collect(),
        &faults.notifier_kills,
        !plan.message_list,
    )
    .await;
    let email = delivered(
        &pool,
        "email",
        smtp.accepted()
            .into_iter()
            .map(|email| {
                let id = email.message_id().expect("every email carries a Message-ID");
                let id = id.to_owned();
                let subject = email.data.lines().find(|line| line.starts_with("Subject:"));
                let same = format!("{:?}\n{}", email.to, subject.unwrap_or_default());
                (id, email.accepted_at, email.reply_lost, same)
            })
            .collect(),
        &faults.notifier_kills,
        true,
    )
    .await;
    let bookings = count(&pool, "SELECT count(*) FROM bookings").await;
    let offers = count(&pool, "SELECT count(*) FROM offers").await;

    let two_xx: u64 = record
        .statuses
        .iter()
        .filter(|(status, _)| (200..300).contains(*status))
        .map(|(_, n)| n)
        .sum();
    println!(
        "faults: {} people, {} s of load ({:.0} s), {} round(s), SMS provider {} a message list; setup {:.1} s, drained in {:.1} s",
        plan.people,
        plan.seconds,
        load.as_secs_f64(),
        plan.rounds,
        if plan.message_list { "with" } else { "without" },
        setup.as_secs_f64(),
        drain.as_secs_f64()
    );
    for (fault, times) in &faults.recovery {
        let injected = if *fault == Fault::Provider {
            plan.rounds
        } else {
            times.len()
        };
        println!(
            "  fault {:<24} x{injected}  recovered: {}",
            fault.name(),
            seconds(times)
        );
    }
    println!(
        "  requests {} ({} 2xx, {} unanswered and sent again), by status {:?}; flows given up {}",
        record.requests, two_xx, record.unanswered, record.statuses, record.unfinished
    );
    println!(
        "  registered {}, verified {}, offers {offers}, bookings {bookings} (accepted {}, declined {}, cancelled {})",
        record.registered.len(),
        record.verified.len(),
        record.accepted.len(),
        record.declined.len(),
        record.cancelled.len()
    );
    for (channel, d) in [("sms", &sms), ("email", &email)] {
        println!(
            "  {channel}: {} messages, {} sent once, {} dead, {} lost, {} doubled ({} after a lost answer, {} by a notifier killed mid-call, {} sent again in doubt, {} unexplained); {} taken with the answer lost and recorded",
            d.messages,
            d.sent,
            d.dead,
            d.lost,
            d.doubled,
            d.doubled_answer_lost,
            d.doubled_notifier_killed,
            d.doubled_resent_in_doubt,
            d.unexcused(),
            d.answer_lost_recorded
        );
    }
    let sms_answers_lost = twilio.accepted().iter().filter(|sms| sms.answer_lost).count();
    let email_replies_lost = smtp.accepted().iter().filter(|email| email.reply_lost).count();
    println!(
        "  taken by the providers with the answer lost: {sms_answers_lost} SMS, {email_replies_lost} emails; SMS lookups {}; logs in {}",
        twilio.lookups(),
        dir.display()
    );

    explain_sms_doubles(
        &pool,
        &twilio.accepted(),
        &sms.unexcused_ids,
        load_began,
        &faults.log,
    )
    .await;

    let broken: Vec<_> = violations.iter().filter(|(_, n)| *n > 0).collect();
    assert!(broken.is_empty(), "invariants broken: {broken:?}");
    assert!(record.errors.is_empty(), "answers 5xx: {:#?}", record.errors);
    let ineffective: Vec<_> = without_effect.iter().filter(|(_, n)| *n > 0).collect();
    assert!(ineffective.is_empty(), "2xx without effect: {ineffective:?}");
    assert_eq!(undelivered_at_end, 0, "messages still in flight after 180 s");
    for (channel, d) in [("sms", &sms), ("email", &email)] {
        assert_eq!((d.lost, d.unexcused()), (0, 0), "{channel}: {d:?}");
    }
    assert!(
        record.accepted.len() + record.declined.len() > 0,
        "the load reached offers"
    );

    twilio.stop().await;
    pool.close().await;
    drop(faults);
    drop_database(&database_url).await;
    let _ = std::fs::remove_dir_all(&dir);
}
