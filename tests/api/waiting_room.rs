//! The waiting room against real Redis (and Postgres for the guarded registrations): tickets,
//! the pre-queue draw, the pace and the cap, idle clients, two gateways on one queue, a Redis
//! restart, the guard, and every way a request can be refused.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use drawbridge_domain::waiting_room::pow;
use drawbridge_domain::waiting_room::room::{RoomClaims, ADMISSION_PURPOSE};
use drawbridge_domain::{Keyring, Shuffle, SigningKey};
use drawbridge_gateway::rooms::store::{JoinRequest, Joined};
use drawbridge_gateway::rooms::RoomStore;
use drawbridge_test_support::{
    eventually, metric, registration, spawn_app, spawn_with, Components, TestApp, ADMIN_TOKEN,
};
use futures_util::future::join_all;
use serde_json::{json, Value};

/// A browser: keeps the cookies the gateway sets and sends them back.
struct Visitor<'a> {
    app: &'a TestApp,
    cookies: Mutex<BTreeMap<String, String>>,
}

struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<String>,
}

impl<'a> Visitor<'a> {
    fn new(app: &'a TestApp) -> Self {
        Visitor {
            app,
            cookies: Mutex::default(),
        }
    }

    /// The same browser talking to another gateway.
    fn on<'b>(&self, app: &'b TestApp) -> Visitor<'b> {
        Visitor {
            app,
            cookies: Mutex::new(self.cookies.lock().unwrap().clone()),
        }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    fn forget(&self, name: &str) {
        self.cookies.lock().unwrap().remove(name);
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let cookies: Vec<String> = self
            .cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let request = if cookies.is_empty() {
            request
        } else {
            request.header("cookie", cookies.join("; "))
        };
        let response = request.send().await.expect("gateway answers");
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (name, rest) = set.split_once('=').unwrap();
            let value = rest.split(';').next().unwrap();
            let mut cookies = self.cookies.lock().unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            body,
            retry_after,
        }
    }

    async fn join(&self, room: &str) -> Answer {
        self.join_with(room, json!({})).await
    }

    async fn join_with(&self, room: &str, body: Value) -> Answer {
        let url = self.app.url(&format!("/v1/rooms/{room}/join"));
        self.send(self.app.http.post(url).json(&body)).await
    }

    async fn status(&self, room: &str) -> Answer {
        let url = self.app.url(&format!("/v1/rooms/{room}/status"));
        self.send(self.app.http.get(url)).await
    }

    async fn leave(&self, room: &str) -> Answer {
        let url = self.app.url(&format!("/v1/rooms/{room}/leave"));
        self.send(self.app.http.post(url)).await
    }

    async fn register(&self, phone: &str) -> Answer {
        self.register_with(phone, None).await
    }

    /// A registration in region `bw`, with `bearer` as `Authorization: Bearer`.
    async fn register_with(&self, phone: &str, bearer: Option<&str>) -> Answer {
        let url = self.app.url("/v1/regions/bw/registrations");
        let mut request = self.app.http.post(url).json(&registration(phone));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// Polls until admitted; returns the status answer.
    async fn until_admitted(&self, room: &str, within: Duration) -> Value {
        eventually(within, || async {
            let answer = self.status(room).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            (answer.body["state"] == "admitted").then_some(answer.body)
        })
        .await
        .unwrap_or_else(|| panic!("not admitted to {room} within {within:?}"))
    }
}

/// A new visitor, admitted to `room`.
async fn admitted<'a>(app: &'a TestApp, room: &str) -> Visitor<'a> {
    let visitor = Visitor::new(app);
    visitor.join(room).await;
    visitor.until_admitted(room, Duration::from_secs(5)).await;
    visitor
}

/// The claims inside a token (the payload is base64url JSON).
fn claims(token: &str) -> RoomClaims {
    let payload = token.split('.').nth(1).expect("three parts");
    let json: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    serde_json::from_value(json["c"].clone()).unwrap()
}

fn ticket(answer: &Answer) -> u64 {
    claims(answer.body["token"].as_str().expect("a token")).ticket
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).unwrap().to_rfc3339()
}

/// An open first-come-first-served room with `overrides`.
fn open_room(overrides: Value) -> Value {
    let mut config = json!({ "mode": "fifo", "opens_at": rfc3339(now() - 60) });
    config
        .as_object_mut()
        .unwrap()
        .extend(overrides.as_object().unwrap().clone());
    config
}

fn error_code(answer: &Answer) -> &str {
    answer.body["error"]["code"].as_str().unwrap_or("<no code>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_get_distinct_tickets_and_are_counted() {
    let app = spawn_app().await;
    app.put_room("surge", &open_room(json!({ "admit_per_minute": 1 })))
        .await;
    let visitors: Vec<Visitor<'_>> = (0..200).map(|_| Visitor::new(&app)).collect();
    let answers = join_all(visitors.iter().map(|v| v.join("surge"))).await;
    let mut tickets: Vec<u64> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 200, "{}", a.body);
            ticket(a)
        })
        .collect();
    tickets.sort_unstable();
    assert_eq!(tickets, (1..=200).collect::<Vec<_>>());
    // Every answer has the documented shape, and the token is also the cookie.
    let first = &answers[0];
    for key in ["token", "state", "position", "eta_seconds", "poll_after_seconds"] {
        assert!(first.body.get(key).is_some(), "{key} missing: {}", first.body);
    }
    assert_eq!(
        visitors[0].cookie("drawbridge_room_surge").as_deref(),
        first.body["token"].as_str()
    );
    assert!(visitors[0].cookie("drawbridge_client").is_some());

    // Joining again from the same browser keeps the ticket.
    let again = visitors[0].join("surge").await;
    assert_eq!(ticket(&again), ticket(first));
    assert_eq!(app.describe_room("surge").await["tickets_issued"], 200);
    let metrics = app.metrics(&app.address).await;
    assert!(
        metrics.contains(r#"drawbridge_gateway_room_joined_total{room="surge"} 200"#),
        "{metrics}"
    );
    // Joins that arrived together went to Redis together.
    let calls = metric(&metrics, "drawbridge_gateway_room_joins_per_call_count");
    assert_eq!(
        metric(&metrics, "drawbridge_gateway_room_joins_per_call_sum"),
        200.0
    );
    assert!(calls < 200.0, "200 joins took {calls} calls to Redis");
    for name in ["room_queued", "room_active", "room_admission_rate_per_minute"] {
        assert!(
            metrics.contains(&format!("drawbridge_gateway_{name}{{room=\"surge\"}}")),
            "{name}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prequeue_is_a_permutation_drawn_at_opening_and_replayable_from_its_seed() {
    let app = spawn_app().await;
    let opens_at = now() + 3;
    app.put_room(
        "release",
        &json!({ "mode": "fifo", "opens_at": rfc3339(opens_at), "admit_per_minute": 1 }),
    )
    .await;
    let visitors: Vec<Visitor<'_>> = (0..30).map(|_| Visitor::new(&app)).collect();
    let mut tickets = Vec::new();
    for visitor in &visitors {
        let joined = visitor.join("release").await;
        assert_eq!(joined.body["state"], "prequeue", "{}", joined.body);
        assert_eq!(joined.body["position"], Value::Null);
        assert!(joined.body["eta_seconds"].as_u64().unwrap() >= 1);
        tickets.push(ticket(&joined));
    }
    // After opening every pre-queue ticket has a place.
    let mut positions = Vec::new();
    for visitor in &visitors {
        let queued = eventually(Duration::from_secs(10), || async {
            let answer = visitor.status("release").await;
            (answer.body["state"] == "queued").then_some(answer.body)
        })
        .await
        .expect("placed after opening");
        positions.push(queued["position"].as_u64().unwrap());
    }
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=30).collect::<Vec<_>>(), "a permutation");
    assert_ne!(positions, sorted, "shuffled (fails with probability 1/30!)");

    // The recorded draw replays the same places.
    let room = app.describe_room("release").await;
    let draw: Shuffle = serde_json::from_value(room["draws"][0].clone()).unwrap();
    assert_eq!((draw.first, draw.count), (1, 30));
    assert!(draw.drawn_at >= opens_at);
    let replayed = draw.permutation().unwrap();
    for (ticket, position) in tickets.iter().zip(&positions) {
        assert_eq!(u64::from(replayed[(*ticket - 1) as usize]) + 1, *position);
    }
    // Someone arriving after the opening queues behind the pre-queue.
    let late = Visitor::new(&app).join("release").await;
    assert_eq!((late.body["state"].as_str(), ticket(&late)), (Some("queued"), 31));
    assert_eq!(late.body["position"], 31);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_room_draws_everyone_waiting() {
    let app = spawn_app().await;
    app.put_room(
        "lottery",
        &json!({ "mode": "random", "opens_at": rfc3339(now() + 2), "admit_per_minute": 1 }),
    )
    .await;
    let visitors: Vec<Visitor<'_>> = (0..12).map(|_| Visitor::new(&app)).collect();
    join_all(visitors.iter().map(|v| v.join("lottery"))).await;
    let mut positions = Vec::new();
    for visitor in &visitors {
        let queued = eventually(Duration::from_secs(10), || async {
            let answer = visitor.status("lottery").await;
            (answer.body["state"] == "queued").then_some(answer.body)
        })
        .await
        .expect("drawn");
        positions.push(queued["position"].as_u64().unwrap());
    }
    positions.sort_unstable();
    assert_eq!(positions, (1..=12).collect::<Vec<_>>());
    // A newcomer waits for the next draw instead of queueing behind.
    let late = Visitor::new(&app).join("lottery").await;
    assert_eq!(late.body["state"], "prequeue", "{}", late.body);
    app.stop().await;
}

/// Twenty visitors poll while the controller admits at most 5 at a time (sessions of 2 s) and
/// at most 10 per second: the cap holds at every moment and the queue keeps moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admissions_respect_max_active_and_the_rate_over_time() {
    let app = spawn_app().await;
    app.put_room(
        "capped",
        &open_room(json!({ "admit_per_minute": 600, "max_active": 5, "session_seconds": 2 })),
    )
    .await;
    let paced_since = Instant::now();
    app.put_room("paced", &open_room(json!({ "admit_per_minute": 120 })))
        .await;
    let capped: Vec<Visitor<'_>> = (0..20).map(|_| Visitor::new(&app)).collect();
    let paced: Vec<Visitor<'_>> = (0..20).map(|_| Visitor::new(&app)).collect();
    join_all(capped.iter().map(|v| v.join("capped"))).await;
    join_all(paced.iter().map(|v| v.join("paced"))).await;

    let started = Instant::now();
    let mut sessions: BTreeMap<u64, i64> = BTreeMap::new();
    let mut paced_admitted: BTreeMap<u64, Instant> = BTreeMap::new();
    while started.elapsed() < Duration::from_secs(6) {
        let answers = join_all(capped.iter().map(|v| v.status("capped"))).await;
        for answer in answers.iter().filter(|a| a.body["state"] == "admitted") {
            let ends = answer.body["session_ends_at"].as_i64().unwrap();
            sessions.insert(ticket(answer), ends);
        }
        let answers = join_all(paced.iter().map(|v| v.status("paced"))).await;
        for answer in answers.iter().filter(|a| a.body["state"] == "admitted") {
            paced_admitted.entry(ticket(answer)).or_insert_with(Instant::now);
        }
        let active = app.describe_room("capped").await["active"].as_u64().unwrap();
        assert!(active <= 5, "{active} active sessions");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A session admitted at second `end - 2` runs while `now < end`: at no second more than 5.
    let (first_end, last_end) = (sessions.values().min().unwrap(), sessions.values().max().unwrap());
    for second in first_end - 2..=*last_end {
        let running = sessions
            .values()
            .filter(|&&end| end - 2 <= second && second < end)
            .count();
        assert!(
            running <= 5,
            "{running} sessions at second {second}: {sessions:?}"
        );
    }
    assert!(
        sessions.len() >= 8,
        "the queue moves as sessions end: {}",
        sessions.len()
    );
    // 2 per second with one second's worth of burst, counted from the room's creation.
    let allowed = 2.0 * paced_since.elapsed().as_secs_f64() + 2.0;
    let paced_count = paced_admitted.len() as f64;
    assert!(
        (4.0..=allowed).contains(&paced_count),
        "{paced_count} admitted at 120/min, at most {allowed}"
    );
    let serving = app.describe_room("paced").await["serving"].as_f64().unwrap();
    assert!(serving <= allowed, "{serving} > {allowed}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_lose_their_place_and_leaving_frees_capacity() {
    let app = spawn_app().await;
    app.put_room(
        "idle",
        &open_room(json!({ "max_active": 1, "idle_seconds": 3, "session_seconds": 60, "guards": ["bw"] })),
    )
    .await;
    let first = Visitor::new(&app);
    let idle = Visitor::new(&app);
    let polling = Visitor::new(&app);
    first.join("idle").await;
    first.until_admitted("idle", Duration::from_secs(5)).await;
    idle.join("idle").await;
    polling.join("idle").await;
    // The only session is taken: both wait; one of them stops polling.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let answer = polling.status("idle").await;
        assert_eq!(
            (answer.status, answer.body["state"].as_str()),
            (200, Some("queued"))
        );
        assert_eq!(answer.body["position"], 2);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let session = first.cookie("drawbridge_admission").expect("admission cookie");
    assert_eq!(first.leave("idle").await.status, 200);
    let admitted = polling.until_admitted("idle", Duration::from_secs(5)).await;
    assert!(admitted["admission_token"].is_string());
    let dropped = idle.status("idle").await;
    assert_eq!((dropped.status, error_code(&dropped)), (401, "ticket_dropped"));
    // The session that was left no longer passes the guard, even with its token.
    let refused = first.register_with("0171 7770001", Some(&session)).await;
    assert_eq!((refused.status, error_code(&refused)), (401, "ticket_dropped"));
    let metrics = app.metrics(&app.address).await;
    assert!(
        metrics.contains(r#"drawbridge_gateway_room_expired_total{reason="idle",room="idle"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_sharing_redis_give_one_queue() {
    let one = spawn_app().await;
    let prefix = one.settings.redis.key_prefix.clone();
    let two = spawn_with(Components::default(), |s| s.redis.key_prefix = prefix).await;
    one.put_room(
        "shared",
        &open_room(json!({ "admit_per_minute": 600, "max_active": 4 })),
    )
    .await;
    eventually(Duration::from_secs(5), || async {
        (two.get("/rooms/shared").await.status() == 200).then_some(())
    })
    .await
    .expect("the second gateway sees the room");

    let visitors: Vec<Visitor<'_>> = (0..20)
        .map(|i| Visitor::new(if i % 2 == 0 { &one } else { &two }))
        .collect();
    let answers = join_all(visitors.iter().map(|v| v.join("shared"))).await;
    let tickets: HashSet<u64> = answers.iter().map(ticket).collect();
    assert_eq!(tickets, (1..=20).collect());

    // Both gateways tell a visitor the same thing, and admit no more than the cap in total.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for visitor in &visitors {
        let here = visitor.status("shared").await.body;
        let there = visitor.on(if std::ptr::eq(visitor.app, &one) {
            &two
        } else {
            &one
        });
        let elsewhere = there.status("shared").await.body;
        assert_eq!(here["state"], elsewhere["state"]);
        assert_eq!(here["position"], elsewhere["position"]);
    }
    let room = one.describe_room("shared").await;
    assert_eq!(room["active"], 4, "{room}");
    assert_eq!(room["serving"], 4, "{room}");
    // One controller at a time: the admissions counted by both gateways add up to the cap.
    let mut admitted = 0.0;
    for app in [&one, &two] {
        let metrics = app.metrics(&app.address).await;
        admitted += metric(
            &metrics,
            r#"drawbridge_gateway_room_admitted_total{room="shared"}"#,
        );
    }
    assert_eq!(admitted, 4.0);

    // A change made through one gateway reaches the other within seconds.
    one.put_room("shared", &open_room(json!({ "mode": "closed" })))
        .await;
    let closed = eventually(Duration::from_secs(3), || async {
        let answer = Visitor::new(&two).join("shared").await;
        (answer.status == 403).then_some(answer)
    })
    .await
    .expect("closed on the other gateway within 3 s");
    assert_eq!(error_code(&closed), "room_closed");
    two.stop().await;
    one.stop().await;
}

/// A Redis of this test's own (the shared one must keep running for the other tests), with
/// every write fsynced to its append-only file as a deployment for rooms should run it.
struct PrivateRedis {
    port: u16,
    dir: std::path::PathBuf,
    process: Option<std::process::Child>,
}

impl PrivateRedis {
    async fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("drawbridge-redis-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = PrivateRedis {
            port,
            dir,
            process: None,
        };
        redis.restart().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn restart(&mut self) {
        let process = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.process = Some(process);
        let pool = self.pool();
        eventually(Duration::from_secs(10), || async {
            drawbridge_platform::redis::ping(&pool).await.ok()
        })
        .await
        .expect("the private Redis answers");
    }

    /// A crash: SIGKILL, no chance to write anything more.
    fn kill(&mut self) {
        let mut process = self.process.take().expect("running");
        process.kill().unwrap();
        process.wait().unwrap();
    }

    fn pool(&self) -> deadpool_redis::Pool {
        deadpool_redis::Config::from_url(self.url())
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .unwrap()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if self.process.is_some() {
            self.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Kills Redis under a running gateway: status polls keep answering from the in-process copy
/// (so a poll needs no Redis at all), and a registration, which must spend its admission in
/// Redis, is refused with a code that says to try again; after the restart no ticket is handed
/// out twice and the admitted visitor is still admitted and registers. Then Redis loses the
/// ticket counter outright, and the gateway's floor still prevents a repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_neither_repeats_tickets_nor_ends_admissions() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = spawn_with(Components::default(), |s| s.redis.url = url.into()).await;
    app.load_demo().await;
    app.put_room(
        "restart",
        &open_room(json!({ "max_active": 1, "guards": ["bw"], "session_seconds": 600 })),
    )
    .await;
    let visitors: Vec<Visitor<'_>> = (0..3).map(|_| Visitor::new(&app)).collect();
    for visitor in &visitors {
        visitor.join("restart").await;
    }
    let admitted = visitors[0]
        .until_admitted("restart", Duration::from_secs(5))
        .await;
    let waiting = visitors[1].status("restart").await.body;
    assert_eq!(waiting["state"], "queued");

    redis.kill();
    for _ in 0..20 {
        let status = visitors[0].status("restart").await;
        assert_eq!(status.status, 200, "{}", status.body);
        assert_eq!(status.body["state"], "admitted");
        assert_eq!(status.body["session_ends_at"], admitted["session_ends_at"]);
        let other = visitors[1].status("restart").await;
        assert_eq!(
            (other.status, &other.body["position"]),
            (200, &waiting["position"])
        );
    }
    let refused = visitors[0].register("0171 8880001").await;
    assert_eq!(
        (refused.status, error_code(&refused)),
        (503, "admission_unavailable"),
        "spending an admission fails closed: {}",
        refused.body
    );
    assert_eq!(refused.retry_after.as_deref(), Some("30"));

    redis.restart().await;
    let late = Visitor::new(&app);
    let joined = eventually(Duration::from_secs(10), || async {
        let answer = late.join("restart").await;
        (answer.status == 200).then_some(answer)
    })
    .await
    .expect("joins work again after the restart");
    assert_eq!(ticket(&joined), 4);
    let status = visitors[0].status("restart").await;
    assert_eq!(status.body["state"], "admitted");
    let registered = eventually(Duration::from_secs(10), || async {
        let answer = visitors[0].register("0171 8880001").await;
        (answer.status != 503).then_some(answer)
    })
    .await
    .expect("registrations work again after the restart");
    assert_eq!(registered.status, 202, "{}", registered.body);

    // Redis loses the counter (a restart without persistence): the floor of this gateway
    // moves it past every ticket it handed out or saw.
    let mut connection = redis.pool().get().await.unwrap();
    let prefix = &app.settings.redis.key_prefix;
    deadpool_redis::redis::cmd("DEL")
        .arg(format!("{prefix}:room:restart:tickets"))
        .query_async::<()>(&mut *connection)
        .await
        .unwrap();
    // Like the first join after the restart, this one may meet a pooled connection that still
    // has to notice the restart, so it is retried the same way.
    let after_loss = eventually(Duration::from_secs(10), || async {
        let answer = Visitor::new(&app).join("restart").await;
        (answer.status == 200).then_some(answer)
    })
    .await
    .expect("joins work after the counter is lost");
    assert_eq!(ticket(&after_loss), 5);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_lets_only_admitted_visitors_register_and_says_why_not() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.put_room("bw-release", &open_room(json!({ "guards": ["bw"] })))
        .await;
    app.put_room("elsewhere", &open_room(json!({}))).await;

    let anonymous = Visitor::new(&app).register("0171 1110001").await;
    assert_eq!((anonymous.status, error_code(&anonymous)), (401, "token_missing"));

    let visitor = Visitor::new(&app);
    visitor.join("bw-release").await;
    let admitted = visitor.until_admitted("bw-release", Duration::from_secs(5)).await;
    assert_eq!(admitted["target_path"], "/");
    let admission = admitted["admission_token"].as_str().unwrap().to_owned();
    assert_eq!(
        visitor.cookie("drawbridge_admission").as_deref(),
        Some(admission.as_str())
    );
    let ticket_token = visitor.cookie("drawbridge_room_bw-release").unwrap();
    let registered = visitor.register("0171 1110002").await;
    assert_eq!(registered.status, 202, "{}", registered.body);

    let keyring = app.settings.secrets.keyring().unwrap();
    let claims = claims(&admission);
    let now = now();
    let foreign_key = Keyring::new(vec![SigningKey {
        id: "other".into(),
        secret: vec![7; 32],
    }])
    .unwrap();
    let same_id_other_secret = Keyring::new(vec![SigningKey {
        id: keyring.signing_key_id().into(),
        secret: vec![7; 32],
    }])
    .unwrap();
    let mut tampered = admission.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let other_room = Visitor::new(&app);
    other_room.join("elsewhere").await;
    let foreign = other_room
        .until_admitted("elsewhere", Duration::from_secs(5))
        .await;
    let cases = [
        ("garbage", "token_malformed"),
        (ticket_token.as_str(), "token_wrong_purpose"),
        (tampered.as_str(), "token_bad_signature"),
        (
            &foreign_key.sign(ADMISSION_PURPOSE, &claims, now, now + 60),
            "token_unknown_key",
        ),
        (
            &same_id_other_secret.sign(ADMISSION_PURPOSE, &claims, now, now + 60),
            "token_bad_signature",
        ),
        (
            &keyring.sign(ADMISSION_PURPOSE, &claims, now - 120, now - 60),
            "token_expired",
        ),
        (foreign["admission_token"].as_str().unwrap(), "token_foreign_room"),
    ];
    for (phone, (token, code)) in (3..).zip(cases) {
        let refused = visitor
            .register_with(&format!("0171 111000{phone}"), Some(token))
            .await;
        assert_eq!((refused.status, error_code(&refused)), (401, code), "{token}");
        assert!(refused.body["error"]["message"].as_str().unwrap().len() > 10);
    }
    // A copied token is useless without the browser's client cookie.
    let copied = Visitor::new(&app)
        .register_with("0171 1110020", Some(&admission))
        .await;
    assert_eq!((copied.status, error_code(&copied)), (401, "token_wrong_client"));

    let metrics = app.metrics(&app.address).await;
    assert!(
        metric(
            &metrics,
            r#"drawbridge_gateway_room_rejected_tokens_total{code="token_expired",room="bw-release"}"#
        ) >= 1.0
    );

    // In passthrough the guard lets everyone through.
    app.put_room("bw-release", &json!({ "mode": "passthrough", "guards": ["bw"] }))
        .await;
    let through = eventually(Duration::from_secs(3), || async {
        let answer = Visitor::new(&app).register("0171 1110021").await;
        (answer.status != 401).then_some(answer)
    })
    .await
    .expect("passthrough within 3 s");
    assert_eq!(through.status, 202, "{}", through.body);
    let joined = Visitor::new(&app).join("bw-release").await;
    assert_eq!(joined.body["state"], "admitted");
    assert!(joined.body["admission_token"].is_string());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_registers_one_phone_and_ends_when_its_visitor_leaves() {
    let app = spawn_app().await;
    app.load_demo().await;
    app.put_room("bw-release", &open_room(json!({ "guards": ["bw"] })))
        .await;
    let visitor = admitted(&app, "bw-release").await;
    let registered = visitor.register("0171 2220001").await;
    assert_eq!(registered.status, 202, "{}", registered.body);
    // The same registration sent again (its answer lost) passes the admission.
    let again = visitor.register("+49 171 2220001").await;
    assert_ne!(again.status, 401, "{}", again.body);
    // Another phone does not, also with the new admission token of a later status poll.
    let other = visitor.register("0171 2220002").await;
    assert_eq!((other.status, error_code(&other)), (401, "admission_spent"));
    visitor.status("bw-release").await;
    let other = visitor.register("0171 2220002").await;
    assert_eq!((other.status, error_code(&other)), (401, "admission_spent"));

    // Three phones sent at once with one admission: one registers.
    let visitor = admitted(&app, "bw-release").await;
    let answers =
        join_all(["0171 2220011", "0171 2220012", "0171 2220013"].map(|phone| visitor.register(phone))).await;
    let mut outcomes: Vec<(u16, &str)> = answers
        .iter()
        .map(|answer| (answer.status, error_code(answer)))
        .collect();
    outcomes.sort_unstable();
    assert_eq!(
        outcomes,
        [
            (202, "<no code>"),
            (401, "admission_spent"),
            (401, "admission_spent")
        ]
    );

    // Leaving ends the admission at once, also on a gateway whose copy of the room has not
    // heard of it yet (this one refreshes it once a minute).
    let visitor = admitted(&app, "bw-release").await;
    let prefix = app.settings.redis.key_prefix.clone();
    let slow = spawn_with(Components::default(), |s| {
        s.redis.key_prefix = prefix;
        s.rooms.refresh_millis = 60_000;
    })
    .await;
    slow.load_demo().await;
    let admission = visitor.cookie("drawbridge_admission").unwrap();
    assert_eq!(visitor.leave("bw-release").await.status, 200);
    let refused = visitor
        .on(&slow)
        .register_with("0171 2220021", Some(&admission))
        .await;
    assert_eq!((refused.status, error_code(&refused)), (401, "ticket_dropped"));
    slow.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn status_refuses_every_bad_token_and_garbage_never_breaks_it() {
    let app = spawn_app().await;
    app.put_room("strict", &open_room(json!({}))).await;
    app.put_room("other", &open_room(json!({}))).await;
    let visitor = Visitor::new(&app);
    let missing = visitor.status("strict").await;
    assert_eq!((missing.status, error_code(&missing)), (401, "token_missing"));
    visitor.join("other").await;
    let foreign = visitor.cookie("drawbridge_room_other").unwrap();
    let huge = "A".repeat(5000);
    let garbage = [
        "",
        ".",
        "..",
        "a.b.c",
        "test..",
        "test.e30.",
        &huge,
        "ä.ö.ü",
        "test.%%%.###",
        "Bearer",
        "test.eyJwIjoicm9vbS10aWNrZXQifQ.AAAA",
    ];
    for token in garbage {
        let url = app.url("/v1/rooms/strict/status");
        let answer = visitor.send(app.http.get(url).bearer_auth(token)).await;
        assert_eq!(answer.status, 401, "{token:?}: {}", answer.body);
        assert!(answer.body["error"]["code"].is_string());
    }
    let url = app.url("/v1/rooms/strict/status");
    let answer = visitor.send(app.http.get(url).bearer_auth(&foreign)).await;
    assert_eq!(error_code(&answer), "token_foreign_room");
    // Junk cookies are no different.
    let url = app.url("/v1/rooms/strict/status");
    let junk = app
        .http
        .get(url)
        .header("cookie", "drawbridge_room_strict=%%%; drawbridge_client=!!!;;==")
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_closed_rooms_and_bad_bodies_are_refused() {
    let app = spawn_app().await;
    let visitor = Visitor::new(&app);
    for path in ["join", "leave", "challenge"] {
        let url = app.url(&format!("/v1/rooms/nowhere/{path}"));
        let answer = visitor.send(app.http.post(url)).await;
        assert_eq!((answer.status, error_code(&answer)), (404, "not_found"), "{path}");
    }
    assert_eq!(visitor.status("nowhere").await.status, 404);
    assert_eq!(app.get("/rooms/nowhere").await.status(), 404);

    app.put_room("shut", &open_room(json!({ "mode": "closed" })))
        .await;
    let closed = visitor.join("shut").await;
    assert_eq!((closed.status, error_code(&closed)), (403, "room_closed"));
    app.put_room("open", &open_room(json!({}))).await;
    let url = app.url("/v1/rooms/open/join");
    let malformed = visitor
        .send(
            app.http
                .post(url)
                .body("{not json")
                .header("content-type", "application/json"),
        )
        .await;
    assert_eq!(
        (malformed.status, error_code(&malformed)),
        (400, "malformed_request")
    );
    app.stop().await;
}

#[tokio::test]
async fn the_admin_api_needs_its_token_and_valid_input() {
    let app = spawn_app().await;
    let put = |token: Option<&str>, room: &str, body: Value| {
        let mut request = app
            .http
            .put(app.url(&format!("/v1/admin/rooms/{room}")))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = put(None, "r1", json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("admin_credentials_missing"))
    );
    let (status, body) = put(Some("wrong"), "r1", json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("admin_credentials_wrong"))
    );
    let listed = app.get("/v1/admin/rooms").await;
    assert_eq!(listed.status(), 401);

    let (status, body) = put(Some(ADMIN_TOKEN), "r1", json!({ "admit_per_minute": 0 })).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("admit_per_minute"))
    );
    let (status, body) = put(Some(ADMIN_TOKEN), "Bad Name", json!({})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("room")));
    let (status, _) = put(Some(ADMIN_TOKEN), "r1", json!({ "colour": "red" })).await;
    assert_eq!(status, 400);
    let (status, body) = put(Some(ADMIN_TOKEN), "r1", json!({ "mode": "random" })).await;
    assert_eq!((status, &body["config"]["mode"]), (201, &json!("random")));
    let (status, _) = put(Some(ADMIN_TOKEN), "r1", json!({ "mode": "fifo" })).await;
    assert_eq!(status, 200);
    let listed: Value = app
        .http
        .get(app.url("/v1/admin/rooms"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["rooms"][0]["room"], "r1");
    assert_eq!(listed["rooms"][0]["config"]["mode"], "fifo");
    let unknown = app
        .http
        .get(app.url("/v1/admin/rooms/nowhere"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn guessing_the_admin_token_is_limited_per_address_even_when_guesses_come_at_once() {
    let app = spawn_app().await;
    let list = |token: String| {
        let request = app.http.get(app.url("/v1/admin/rooms")).bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let body: Value = response.json().await.unwrap();
            (
                body["error"]["code"].as_str().unwrap_or("none").to_owned(),
                retry_after,
            )
        }
    };
    let answers = join_all((0..300).map(|n| list(format!("guess-{n}")))).await;
    let wrong = answers
        .iter()
        .filter(|(code, _)| code == "admin_credentials_wrong")
        .count();
    let limited: Vec<u64> = answers
        .iter()
        .filter(|(code, _)| code == "too_many_requests")
        .map(|(_, retry_after)| retry_after.expect("Retry-After"))
        .collect();
    assert_eq!((wrong, limited.len()), (10, 290));
    assert!(limited.iter().all(|s| (1..=900).contains(s)), "{limited:?}");
    // From this address the right token waits too: otherwise the limit would tell which guess
    // was right.
    assert_eq!(list(ADMIN_TOKEN.to_owned()).await.0, "too_many_requests");
    app.stop().await;
}

#[tokio::test]
async fn joins_are_rate_limited_per_address_across_gateways() {
    let one = spawn_with(Components::default(), |s| {
        s.rooms.joins_per_ip_per_minute = 3;
        s.rooms.admin_token = "".into();
    })
    .await;
    let prefix = one.settings.redis.key_prefix.clone();
    let two = spawn_with(Components::default(), |s| {
        s.redis.key_prefix = prefix;
        s.rooms.joins_per_ip_per_minute = 3;
    })
    .await;
    // The first gateway has the admin API switched off.
    let disabled = one
        .http
        .put(one.url("/v1/admin/rooms/limited"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 403);
    two.put_room("limited", &open_room(json!({}))).await;
    eventually(Duration::from_secs(5), || async {
        (one.get("/rooms/limited").await.status() == 200).then_some(())
    })
    .await
    .unwrap();
    for app in [&one, &two, &one] {
        assert_eq!(Visitor::new(app).join("limited").await.status, 200);
    }
    let limited = Visitor::new(&two).join("limited").await;
    assert_eq!((limited.status, error_code(&limited)), (429, "too_many_requests"));
    let retry_after: u64 = limited.retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    two.stop().await;
    one.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_sent_at_once_share_calls_and_keep_every_limit() {
    let app = spawn_with(Components::default(), |s| s.rooms.joins_per_ip_per_minute = 5).await;
    app.put_room("crowd", &open_room(json!({}))).await;
    let visitors: Vec<Visitor<'_>> = (0..20).map(|_| Visitor::new(&app)).collect();
    let answers = join_all(visitors.iter().map(|v| v.join("crowd"))).await;
    let mut tickets: Vec<u64> = answers.iter().filter(|a| a.status == 200).map(ticket).collect();
    tickets.sort_unstable();
    assert_eq!(
        tickets,
        (1..=5).collect::<Vec<_>>(),
        "five joins per address and minute"
    );
    for limited in answers.iter().filter(|a| a.status != 200) {
        assert_eq!((limited.status, error_code(limited)), (429, "too_many_requests"));
        let retry_after: u64 = limited
            .retry_after
            .as_deref()
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
    }
    app.stop().await;

    // One solved challenge sent five times at once buys one ticket.
    let app = spawn_app().await;
    app.put_room("hard", &open_room(json!({ "pow_difficulty": 4 })))
        .await;
    let visitor = Visitor::new(&app);
    let challenge = visitor
        .send(app.http.post(app.url("/v1/rooms/hard/challenge")))
        .await
        .body;
    let challenge = challenge["challenge"].as_str().unwrap().to_owned();
    let solved = json!({ "challenge": challenge, "nonce": pow::solve(&challenge, 4) });
    // Five copies of the browser as it stands, so that the ticket one of them gets first does
    // not travel with the others' joins (a browser with a ticket keeps its place).
    let copies: Vec<Visitor<'_>> = (0..5).map(|_| visitor.on(&app)).collect();
    let answers = join_all(copies.iter().map(|copy| copy.join_with("hard", solved.clone()))).await;
    let codes: Vec<(u16, &str)> = answers.iter().map(|a| (a.status, error_code(a))).collect();
    assert_eq!(
        codes.iter().filter(|(status, _)| *status == 200).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == (403, "proof_of_work_reused"))
            .count(),
        4,
        "{codes:?}"
    );
    app.stop().await;
}

/// Joins made on one thread while a call is out go in the next call, together; each is counted
/// as if it came alone: the rate limit per address, a challenge used once, tickets in order, the
/// floor, and no ticket twice when Redis loses its counter.
#[tokio::test]
async fn joins_waiting_together_go_in_one_call_and_count_as_if_one_by_one() {
    let app = spawn_app().await;
    let sizes = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("sizes", "joins")).unwrap();
    let prefix = format!("{}-store", app.settings.redis.key_prefix);
    let redis = drawbridge_platform::redis::connect(&app.settings.redis)
        .await
        .unwrap();
    let store = RoomStore::new(redis.clone(), &prefix).observing_joins(sizes.clone());
    let request = |ip, challenge_id, floor| JoinRequest {
        ip,
        limit_per_minute: 5,
        floor,
        challenge_id,
        now: now(),
    };
    // Address `a` joins eight times (five allowed); `b` four times, twice with one challenge.
    let joins = (0..12).map(|i| {
        let ip = if i % 3 == 2 { "b" } else { "a" };
        let challenge = matches!(i, 5 | 8).then_some("challenge-1");
        store.join("store", request(ip, challenge, 0))
    });
    let joined: Vec<Joined> = join_all(joins).await.into_iter().map(Result::unwrap).collect();
    let limited = Joined::RateLimited {
        retry_after_seconds: match joined[7] {
            Joined::RateLimited { retry_after_seconds } => retry_after_seconds,
            other => panic!("the sixth join from a was let through: {other:?}"),
        },
    };
    use Joined::{ChallengeReused as Reused, Ticket};
    assert_eq!(
        joined,
        [
            Ticket(1),
            Ticket(2),
            Ticket(3),
            Ticket(4),
            Ticket(5),
            Ticket(6),
            Ticket(7),
            limited,
            Reused,
            limited,
            limited,
            Ticket(8),
        ]
    );
    assert_eq!((sizes.get_sample_count(), sizes.get_sample_sum()), (1, 12.0));

    // A floor moves the counter past it; a counter Redis lost restarts past what was issued.
    assert_eq!(
        store.join("store", request("c", None, 50)).await.unwrap(),
        Ticket(51)
    );
    let mut connection = redis.get().await.unwrap();
    deadpool_redis::redis::cmd("DEL")
        .arg(format!("{prefix}:room:store:tickets"))
        .query_async::<()>(&mut *connection)
        .await
        .unwrap();
    assert_eq!(
        store.join("store", request("c", None, 0)).await.unwrap(),
        Ticket(52)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_room_under_attack_asks_for_proof_of_work() {
    let app = spawn_app().await;
    app.put_room("hard", &open_room(json!({ "pow_difficulty": 10 })))
        .await;
    let visitor = Visitor::new(&app);
    let refused = visitor.join("hard").await;
    assert_eq!(
        (refused.status, error_code(&refused)),
        (403, "proof_of_work_required")
    );

    let url = app.url("/v1/rooms/hard/challenge");
    let challenge = visitor.send(app.http.post(url.clone())).await.body;
    assert_eq!(challenge["difficulty"], 10);
    assert_eq!(challenge["algorithm"], "sha256-leading-zero-bits");
    let challenge = challenge["challenge"].as_str().unwrap().to_owned();
    let nonce = pow::solve(&challenge, 10);
    let wrong = (0u64..)
        .map(|n| n.to_string())
        .find(|n| !pow::is_solved(&challenge, n, 10))
        .unwrap();
    let invalid = visitor
        .join_with("hard", json!({ "challenge": challenge, "nonce": wrong }))
        .await;
    assert_eq!(
        (invalid.status, error_code(&invalid)),
        (403, "proof_of_work_invalid")
    );
    // Another browser cannot use this browser's challenge.
    let stranger = Visitor::new(&app)
        .join_with("hard", json!({ "challenge": challenge, "nonce": nonce }))
        .await;
    assert_eq!(error_code(&stranger), "proof_of_work_invalid");

    let solved = json!({ "challenge": challenge, "nonce": nonce });
    let joined = visitor.join_with("hard", solved.clone()).await;
    assert_eq!(joined.status, 200, "{}", joined.body);
    visitor.forget("drawbridge_room_hard");
    let reused = visitor.join_with("hard", solved).await;
    assert_eq!(
        (reused.status, error_code(&reused)),
        (403, "proof_of_work_reused")
    );
    app.stop().await;
}

#[tokio::test]
async fn the_waiting_page_explains_fairness_in_its_language() {
    let app = spawn_app().await;
    app.put_room("page", &open_room(json!({ "pow_difficulty": 4 })))
        .await;
    let german = app.get("/rooms/page").await.text().await.unwrap();
    assert!(german.contains("<html lang=\"de\" dir=\"ltr\">") && german.contains("Die Reihenfolge ist fair"));
    assert!(german.contains("aria-live=\"polite\""));
    let english = app.get("/rooms/page?lang=en").await.text().await.unwrap();
    assert!(english.contains("The queue is fair"), "{english}");
    // The script is a static file (its content is checked in tests/pages.rs); it reads the
    // room's difficulty from the page.
    assert!(
        english.contains("<script src=\"/static/waiting-room."),
        "{english}"
    );
    assert!(english.contains("data-difficulty=\"4\""), "{english}");
    let arabic = app.get("/rooms/page?lang=ar").await.text().await.unwrap();
    assert!(arabic.contains("<html lang=\"ar\" dir=\"rtl\">"), "{arabic}");
    assert!(arabic.contains("data-difficulty=\"4\""), "{arabic}");
    app.stop().await;
}
