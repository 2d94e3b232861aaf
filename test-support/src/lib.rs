//! The harness shared by Drawbridge's integration tests (`tests/api`) and benchmarks
//! (`benches/*.rs`).
//!
//! [`spawn_app`] (and [`spawn_notifier`], [`spawn_system`], [`spawn_with`]) starts Drawbridge's
//! components in the calling process on the real local PostgreSQL (127.0.0.1:5432), Redis
//! (6379) and RabbitMQ (5672). Each [`TestApp`] has a database, a Redis key prefix, RabbitMQ
//! exchange and queue names, a message sink directory and listening ports of its own, and its
//! own [`FakeTwilio`] and [`FakeSmtp`] servers: nothing is process-wide, so any number of tests
//! run in parallel threads of one test binary. [`TestApp::stop`] shuts the components down and
//! removes the database and the queues.
//!
//! Besides the app:
//!
//! - [`twilio`]: a local server speaking Twilio's Messages API, with an inbox and failures on
//!   demand;
//! - [`smtp`]: a local SMTP server, with an inbox, refusals and delays on demand;
//! - [`redis`]: a Redis server of one test's own, to stop while the components run;
//! - [`browser`]: a headless Chromium at a phone's width, with axe-core for accessibility;
//! - [`cpu`]: CPU time read from `/proc`, for the benchmarks' cost per unit of work;
//! - [`metric`]: one series read from a page of Prometheus text;
//! - [`eventually`], [`registration`], and helpers on [`TestApp`] that act the way a person,
//!   a member of staff or a component would.
//!
//! The `drawbridge` binary itself is known only to the root package's tests and benches
//! (Cargo's `CARGO_BIN_EXE_drawbridge`); they pass it to [`run_drawbridge`].

// This crate runs only inside tests and benchmarks, where a panic is the failure report.
#![allow(clippy::unwrap_used)]

pub mod browser;
pub mod cpu;
pub mod rabbit;
pub mod redis;
pub mod smtp;
pub mod twilio;

use std::path::{Path, PathBuf};
use std::time::Duration;

use drawbridge_domain::{Field, Language, PersonalDataKeys};
use drawbridge_platform::config::{
    EmailProvider, EmailTls, InDoubt, PassKeySetting, PersonalDataKeySetting, SmsProvider, TokenKeySetting,
};
use drawbridge_platform::outbox::{self, Channel, Notification, Recipient};
use drawbridge_platform::Settings;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use rabbit::PrivateRabbit;
pub use redis::PrivateRedis;
pub use smtp::FakeSmtp;
pub use twilio::FakeTwilio;

/// The rooms admin API's bearer token in tests.
pub const ADMIN_TOKEN: &str = "test-admin-token-for-the-rooms-api-0123456789";
/// The token every component's `/metrics` asks for in tests.
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

pub const HASH_KEY_B64: &str = "dGVzdCBoYXNoIGtleSBmb3IgZHJhd2JyaWRnZSB0ZXN0cyE=";

/// Which components a test needs; the gateway always runs.
#[derive(Clone, Copy, Default)]
pub struct Components {
    pub notifier: bool,
    pub allocator: bool,
}

pub struct TestApp {
    /// `http://127.0.0.1:<port>` of the gateway.
    pub address: String,
    pub pool: PgPool,
    pub settings: Settings,
    pub twilio: FakeTwilio,
    pub smtp: FakeSmtp,
    pub http: reqwest::Client,
    pub notifier_address: Option<String>,
    pub allocator_address: Option<String>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    sink_dir: PathBuf,
}

/// The repository root: the working directory of the `drawbridge` processes tests start, so
/// that `deploy/local.toml` and `deploy/policies/` resolve as they do for an operator.
pub fn repository_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support lives in the repository root")
}

/// Runs the `drawbridge` binary at `binary` (the caller's `env!("CARGO_BIN_EXE_drawbridge")`)
/// from the repository root, with `env` added and no RUST_LOG.
pub fn run_drawbridge(binary: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(binary);
    command
        .current_dir(repository_root())
        .args(args)
        .env_remove("RUST_LOG");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the binary runs")
}

/// `settings` as the `DRAWBRIDGE_<SECTION>__<KEY>` variables of a `drawbridge` process: the
/// connections, keys, rooms and notifier settings tests change, every listen address on a
/// free port (set `DRAWBRIDGE_<COMPONENT>__LISTEN` after these to pin one).
pub fn settings_env(settings: &Settings) -> Vec<(String, String)> {
    let s = settings;
    let in_doubt = |in_doubt: InDoubt| match in_doubt {
        InDoubt::Resend => "resend",
        InDoubt::DeadLetter => "dead-letter",
    };
    let listen = "127.0.0.1:0".to_owned();
    [
        ("DATABASE__URL", s.database.url.expose_secret().to_owned()),
        (
            "DATABASE__MAX_CONNECTIONS",
            s.database.max_connections.to_string(),
        ),
        (
            "DATABASE__STARTUP_RETRY_SECONDS",
            s.database.startup_retry_seconds.to_string(),
        ),
        ("REDIS__URL", s.redis.url.expose_secret().to_owned()),
        ("REDIS__KEY_PREFIX", s.redis.key_prefix.clone()),
        (
            "REDIS__STARTUP_RETRY_SECONDS",
            s.redis.startup_retry_seconds.to_string(),
        ),
        ("AMQP__URL", s.amqp.url.expose_secret().to_owned()),
        ("AMQP__PREFIX", s.amqp.prefix.clone()),
        ("AMQP__QUORUM_QUEUES", s.amqp.quorum_queues.to_string()),
        (
            "AMQP__STARTUP_RETRY_SECONDS",
            s.amqp.startup_retry_seconds.to_string(),
        ),
        (
            "SECRETS__TOKEN_KEYS",
            format!(
                "[{}]",
                s.secrets
                    .token_keys
                    .iter()
                    .map(|key| format!("{{id=\"{}\",secret=\"{}\"}}", key.id, key.secret.expose_secret()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        ("SECRETS__HASH_KEY", s.secrets.hash_key.expose_secret().to_owned()),
        (
            "SECRETS__PASS_KEYS",
            format!(
                "[{}]",
                s.secrets
                    .pass_keys
                    .iter()
                    .map(|key| format!("{{id=\"{}\",seed=\"{}\"}}", key.id, key.seed.expose_secret()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        (
            "SECRETS__PERSONAL_DATA_KEYS",
            format!(
                "[{}]",
                s.secrets
                    .personal_data_keys
                    .iter()
                    .map(|key| format!("{{id=\"{}\",key=\"{}\"}}", key.id, key.key.expose_secret()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        ("GATEWAY__LISTEN", listen.clone()),
        ("GATEWAY__WORKERS", s.gateway.workers.unwrap_or(2).to_string()),
        (
            "TELEMETRY__METRICS_TOKEN",
            s.telemetry.metrics_token.expose_secret().to_owned(),
        ),
        (
            "ROOMS__ADMIN_TOKEN",
            s.rooms.admin_token.expose_secret().to_owned(),
        ),
        ("ROOMS__REFRESH_MILLIS", s.rooms.refresh_millis.to_string()),
        (
            "GATEWAY__REGISTRATIONS_PER_ADDRESS_PER_HOUR",
            s.gateway.registrations_per_address_per_hour.to_string(),
        ),
        (
            "GATEWAY__REGISTRATIONS_PER_NUMBER_BLOCK_PER_HOUR",
            s.gateway.registrations_per_number_block_per_hour.to_string(),
        ),
        (
            "GATEWAY__SMS_CODES_PER_REGION_PER_DAY",
            s.gateway.sms_codes_per_region_per_day.to_string(),
        ),
        ("ROOMS__LEASE_MILLIS", s.rooms.lease_millis.to_string()),
        (
            "ROOMS__JOINS_PER_IP_PER_MINUTE",
            s.rooms.joins_per_ip_per_minute.to_string(),
        ),
        ("ALLOCATOR__LISTEN", listen.clone()),
        ("ALLOCATOR__TICK_SECONDS", s.allocator.tick_seconds.to_string()),
        ("NOTIFIER__LISTEN", listen),
        ("NOTIFIER__CONCURRENCY", s.notifier.concurrency.to_string()),
        (
            "NOTIFIER__RELAY_IDLE_MILLIS",
            s.notifier.relay_idle_millis.to_string(),
        ),
        (
            "NOTIFIER__RETRY_DELAYS_SECONDS",
            format!("{:?}", s.notifier.retry_delays_seconds),
        ),
        (
            "NOTIFIER__STRANDED_AFTER_SECONDS",
            s.notifier.stranded_after_seconds.to_string(),
        ),
        (
            "NOTIFIER__SWEEP_EVERY_SECONDS",
            s.notifier.sweep_every_seconds.to_string(),
        ),
        (
            "NOTIFIER__IN_DOUBT_GRACE_SECONDS",
            s.notifier.in_doubt_grace_seconds.to_string(),
        ),
        ("NOTIFIER__SINK_FILE", s.notifier.sink_file.display().to_string()),
        (
            "NOTIFIER__SMS__PROVIDER",
            format!("{:?}", s.notifier.sms.provider).to_lowercase(),
        ),
        ("NOTIFIER__SMS__BASE_URL", s.notifier.sms.base_url.clone()),
        ("NOTIFIER__SMS__ACCOUNT_SID", s.notifier.sms.account_sid.clone()),
        (
            "NOTIFIER__SMS__AUTH_TOKEN",
            s.notifier.sms.auth_token.expose_secret().to_owned(),
        ),
        ("NOTIFIER__SMS__FROM", s.notifier.sms.from.clone()),
        (
            "NOTIFIER__SMS__TIMEOUT_SECONDS",
            s.notifier.sms.timeout_seconds.to_string(),
        ),
        (
            "NOTIFIER__SMS__MESSAGES_PER_SECOND",
            s.notifier.sms.messages_per_second.to_string(),
        ),
        (
            "NOTIFIER__SMS__IN_DOUBT",
            in_doubt(s.notifier.sms.in_doubt).to_owned(),
        ),
        (
            "NOTIFIER__EMAIL__PROVIDER",
            format!("{:?}", s.notifier.email.provider).to_lowercase(),
        ),
        ("NOTIFIER__EMAIL__FROM", s.notifier.email.from.clone()),
        ("NOTIFIER__EMAIL__HOST", s.notifier.email.host.clone()),
        ("NOTIFIER__EMAIL__PORT", s.notifier.email.port.to_string()),
        (
            "NOTIFIER__EMAIL__TLS",
            format!("{:?}", s.notifier.email.tls).to_lowercase(),
        ),
        (
            "NOTIFIER__EMAIL__TIMEOUT_SECONDS",
            s.notifier.email.timeout_seconds.to_string(),
        ),
        (
            "NOTIFIER__EMAIL__IN_DOUBT",
            in_doubt(s.notifier.email.in_doubt).to_owned(),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (format!("DRAWBRIDGE_{key}"), value))
    .collect()
}

/// Drops a test's database (by its URL), whoever is still connected.
pub async fn drop_database(url: &str) {
    let database = url.rsplit('/').next().unwrap().to_owned();
    let admin = PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .expect("admin connection");
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"))
        .execute(&admin)
        .await
        .expect("drop test database");
    admin.close().await;
}

/// Settings isolated for one test: a database, key prefix and queue names of its own.
pub fn test_settings(twilio: &FakeTwilio, smtp: &FakeSmtp) -> Settings {
    let id = Uuid::new_v4().simple().to_string();
    let mut settings = Settings::default();
    settings.database.url = format!("postgres://postgres@127.0.0.1:5432/drawbridge_test_{id}").into();
    settings.database.startup_retry_seconds = 5;
    settings.redis.key_prefix = format!("test-{id}");
    settings.redis.startup_retry_seconds = 5;
    settings.amqp.prefix = format!("test-{id}");
    settings.amqp.quorum_queues = false;
    settings.amqp.startup_retry_seconds = 5;
    settings.secrets.token_keys = vec![TokenKeySetting {
        id: "test".into(),
        secret: "dGVzdCB0b2tlbiBrZXkgZm9yIGRyYXdicmlkZ2UgdGVzdHMh".into(),
    }];
    settings.secrets.hash_key = HASH_KEY_B64.into();
    settings.secrets.pass_keys = vec![PassKeySetting {
        id: "test-pass".into(),
        seed: "dGVzdCBwYXNzIGtleSBmb3IgZHJhd2JyaWRnZSEhISE=".into(),
    }];
    settings.secrets.personal_data_keys = vec![PersonalDataKeySetting {
        id: "test-data".into(),
        key: "dGVzdCBkYXRhIGtleSBmb3IgZHJhd2JyaWRnZSEhISE=".into(),
    }];
    settings.gateway.listen = "127.0.0.1:0".parse().unwrap();
    settings.gateway.workers = Some(2);
    settings.rooms.admin_token = ADMIN_TOKEN.into();
    settings.telemetry.metrics_token = METRICS_TOKEN.into();
    // Fast refresh so tests see room changes and admissions within a fraction of a second.
    settings.rooms.refresh_millis = 100;
    settings.rooms.lease_millis = 1000;
    settings.rooms.joins_per_ip_per_minute = 100_000;
    // Tests and benches register thousands of numbers from one address and one number block;
    // the tests of these limits set them low.
    settings.gateway.registrations_per_address_per_hour = 1_000_000;
    settings.gateway.registrations_per_number_block_per_hour = 1_000_000;
    settings.gateway.sms_codes_per_region_per_day = 1_000_000;
    settings.allocator.listen = "127.0.0.1:0".parse().unwrap();
    settings.notifier.listen = "127.0.0.1:0".parse().unwrap();
    settings.notifier.relay_idle_millis = 20;
    settings.notifier.retry_delays_seconds = vec![1, 1, 1];
    // A message in doubt is looked up a second after its request ended, not half a minute.
    settings.notifier.in_doubt_grace_seconds = 1;
    settings.notifier.sink_file = std::env::temp_dir()
        .join(format!("drawbridge-test-{id}"))
        .join("messages.jsonl");
    settings.notifier.sms.provider = SmsProvider::Twilio;
    settings.notifier.sms.base_url = twilio.base_url.clone();
    settings.notifier.sms.account_sid = twilio::ACCOUNT_SID.into();
    settings.notifier.sms.auth_token = twilio::AUTH_TOKEN.into();
    settings.notifier.sms.from = "+4917100000000".into();
    settings.notifier.sms.messages_per_second = 1000;
    settings.notifier.email.provider = EmailProvider::Smtp;
    settings.notifier.email.host = "127.0.0.1".into();
    settings.notifier.email.port = smtp.port;
    settings.notifier.email.tls = EmailTls::None;
    settings.notifier.email.from = "Drawbridge <no-reply@drawbridge.test>".into();
    settings.validate().expect("test settings are valid");
    settings
}

/// The gateway alone.
pub async fn spawn_app() -> TestApp {
    spawn_with(Components::default(), |_| {}).await
}

/// Gateway and notifier.
pub async fn spawn_notifier() -> TestApp {
    spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        |_| {},
    )
    .await
}

/// Gateway, notifier and allocator.
pub async fn spawn_system() -> TestApp {
    spawn_with(
        Components {
            notifier: true,
            allocator: true,
        },
        |_| {},
    )
    .await
}

pub async fn spawn_with(components: Components, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let twilio = FakeTwilio::start();
    let smtp = FakeSmtp::start().await;
    let mut settings = test_settings(&twilio, &smtp);
    adjust(&mut settings);
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();

    let gateway = drawbridge_gateway::build(&settings, shutdown.clone())
        .await
        .unwrap_or_else(|e| {
            panic!("the gateway could not start (are PostgreSQL and Redis running? see .ci/run): {e}")
        });
    let address = format!("http://{}", gateway.address());
    tasks.push(tokio::spawn(async move {
        gateway.run_until_stopped().await.expect("gateway stops cleanly")
    }));

    let notifier_address = if components.notifier {
        let notifier = drawbridge_notifier::build(&settings, shutdown.clone())
            .await
            .unwrap_or_else(|e| {
                panic!("the notifier could not start (is RabbitMQ running? see .ci/run): {e}")
            });
        let address = format!("http://{}", notifier.address());
        tasks.push(tokio::spawn(async move {
            notifier
                .run_until_stopped()
                .await
                .expect("notifier stops cleanly")
        }));
        Some(address)
    } else {
        None
    };
    let allocator_address = if components.allocator {
        let allocator = drawbridge_allocator::build(&settings, shutdown.clone())
            .await
            .unwrap_or_else(|e| panic!("the allocator could not start: {e}"));
        let address = format!("http://{}", allocator.address());
        tasks.push(tokio::spawn(async move {
            allocator
                .run_until_stopped()
                .await
                .expect("allocator stops cleanly")
        }));
        Some(address)
    } else {
        None
    };

    let pool = drawbridge_platform::postgres::connect(&settings.database)
        .await
        .expect("test database");
    let sink_dir = settings.notifier.sink_file.parent().unwrap().to_owned();
    TestApp {
        address,
        pool,
        settings,
        twilio,
        smtp,
        // Idle connections are dropped before actix's keep-alive (5 s) closes them, so a
        // request never races the server's close on a reused connection (a flow that waits
        // for its SMS leaves its connection idle for seconds under load).
        http: reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .expect("an HTTP client"),
        notifier_address,
        allocator_address,
        shutdown,
        tasks,
        sink_dir,
    }
}

impl TestApp {
    /// The URL of this test's own database, for the processes and tools a test starts.
    pub fn database_url(&self) -> &str {
        self.settings.database.url.expose_secret()
    }

    pub async fn load_demo(&self) {
        drawbridge::demo::load(&self.pool).await.expect("demo data loads");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("gateway answers")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("gateway answers")
    }

    /// Creates or changes a room through the admin API and waits until this gateway sees it.
    pub async fn put_room(&self, room: &str, config: &serde_json::Value) {
        let response = self
            .http
            .put(self.url(&format!("/v1/admin/rooms/{room}")))
            .bearer_auth(ADMIN_TOKEN)
            .json(config)
            .send()
            .await
            .expect("gateway answers");
        assert!(
            response.status().is_success(),
            "room {room}: {}",
            response.text().await.unwrap()
        );
        let seen = eventually(Duration::from_secs(5), || async {
            let page = self.get(&format!("/rooms/{room}")).await;
            (page.status() == 200).then_some(())
        })
        .await;
        seen.expect("the gateway sees a new room within 5 s");
    }

    /// The room as the admin API shows it.
    pub async fn describe_room(&self, room: &str) -> serde_json::Value {
        let response = self
            .http
            .get(self.url(&format!("/v1/admin/rooms/{room}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(response.status(), 200);
        response.json().await.expect("JSON")
    }

    /// The most requests the gateway wrote in one batched `statement` (`register`, `verify`,
    /// `accept`), as its `/metrics` tell: the lowest bucket bound that holds every batch.
    pub async fn largest_batch(&self, statement: &str) -> f64 {
        let metrics = self.metrics(&self.address).await;
        let bucket =
            format!("drawbridge_gateway_statement_batch_requests_bucket{{statement=\"{statement}\",le=\"");
        let buckets: Vec<(f64, u64)> = metrics
            .lines()
            .filter_map(|line| line.strip_prefix(&bucket))
            .filter_map(|rest| {
                let (bound, count) = rest.split_once("\"} ")?;
                Some((bound.parse().unwrap_or(f64::INFINITY), count.parse().ok()?))
            })
            .collect();
        let batches = buckets
            .iter()
            .map(|(_, n)| *n)
            .max()
            .expect("batch metric present");
        buckets.iter().find(|(_, n)| *n == batches).expect("a bucket").0
    }

    /// An HTTP client whose requests come from `127.0.0.<last_octet>`: another client address
    /// for the limits, on the same machine.
    pub fn client_from(&self, last_octet: u8) -> reqwest::Client {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last_octet]))
            .build()
            .expect("an HTTP client")
    }

    /// Verifies registration `id` with its SMS `code`, which must be right: the booking code.
    pub async fn verified_booking_code(&self, id: impl std::fmt::Display, code: &str) -> String {
        let response = self
            .post_json(
                &format!("/v1/registrations/{id}/verify"),
                &serde_json::json!({ "code": code }),
            )
            .await;
        assert_eq!(response.status(), 200);
        let verified: serde_json::Value = response.json().await.expect("JSON");
        verified["booking_code"]
            .as_str()
            .expect("a booking code")
            .to_owned()
    }

    /// Registers `form` (see [`registration`]) in region `bw`; answers the registration's id.
    pub async fn register(&self, form: &serde_json::Value) -> Uuid {
        let registered = self.post_json("/v1/regions/bw/registrations", form).await;
        assert_eq!(registered.status(), 202);
        let body: serde_json::Value = registered.json().await.expect("JSON");
        body["registration_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("a registration id")
    }

    /// The Prometheus text of the component served at `address` (gateway, notifier, allocator).
    pub async fn metrics(&self, address: &str) -> String {
        let response = self
            .http
            .get(format!("{address}/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("metrics answer");
        response.text().await.expect("metrics text")
    }

    /// Publishes `message` straight to the notifications exchange `copies` times, as a relay
    /// that crashed after the broker's confirm (and so published again) would.
    pub async fn publish(&self, message: &drawbridge_platform::outbox::Reference, copies: usize) {
        let connection = drawbridge_platform::amqp::connect_once(&self.settings.amqp)
            .await
            .expect("RabbitMQ");
        let channel = connection.create_channel().await.expect("channel");
        let exchange = format!("{}.notifications", self.settings.amqp.prefix);
        let body = serde_json::to_vec(message).expect("references serialise");
        for _ in 0..copies {
            channel
                .basic_publish(
                    &exchange,
                    &message.routing_key(),
                    Default::default(),
                    &body,
                    Default::default(),
                )
                .await
                .expect("published");
        }
        let _ = connection.close(200, "published").await;
    }

    /// The notifier's final record of an outbox row (`None` while unsent or in flight).
    pub async fn settled(&self, outbox_id: Uuid) -> Option<Settled> {
        sqlx::query_as(
            "SELECT state, attempts, provider_message_id AS provider_id, detail FROM deliveries
             WHERE outbox_id = $1 AND state IN ('sent', 'dead')",
        )
        .bind(outbox_id)
        .fetch_optional(&self.pool)
        .await
        .expect("read delivery")
    }

    /// Deliveries recorded as sent.
    pub async fn sent_count(&self) -> i64 {
        let (sent,): (i64,) = sqlx::query_as("SELECT count(*) FROM deliveries WHERE state = 'sent'")
            .fetch_one(&self.pool)
            .await
            .expect("count deliveries");
        sent
    }

    /// Adds `count` verified registrants to region `bw` directly (the allocator's tests need
    /// pools far larger than registering through the API would allow), numbered from `from`
    /// so repeated calls do not collide: groups 1 to 4 in turn, born 1940 to 1989, living in
    /// Stuttgart (70173) with 50 km of travel, accepting BioNTech and Moderna; every tenth has
    /// an email address. Their phone numbers and addresses are stored as from before sealing
    /// (what `drawbridge keys rotate` seals): sealing a million of them here would outlast the
    /// draws under test.
    pub async fn insert_registrants(&self, from: i64, count: i64) {
        sqlx::query(
            "INSERT INTO registrants (id, region_id, status, channel, phone, email, birth_year, priority_group,
                                      postcode, accepted_vaccines, max_distance_km, verified_at, booking_code_hash)
             SELECT gen_random_uuid(), 'bw', 'active', 'web', convert_to('+49171' || lpad(i::text, 8, '0'), 'UTF8'),
                    CASE WHEN i % 10 = 0 THEN convert_to('person' || i || '@example.de', 'UTF8') END,
                    1940 + i % 50, 1 + i % 4, '70173', '{biontech,moderna}', 50, now(),
                    sha256(('registrant ' || i)::bytea)
             FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) AS i",
        )
        .bind(from)
        .bind(count)
        .execute(&self.pool)
        .await
        .expect("registrants insert");
    }

    /// Sends the registration form of region `bw` for `phone` (group 3, born 1956, BioNTech,
    /// postcode 70173) as a browser would; answers the path of the code page it leads to.
    pub async fn register_on_the_form(&self, phone: &str) -> String {
        let registered = self
            .http
            .post(self.url("/regions/bw/register?lang=de"))
            .form(&[
                ("phone", phone),
                ("birth_year", "1956"),
                ("priority_group", "3"),
                ("postcode", "70173"),
                ("vaccine", "biontech"),
                ("max_distance_km", "30"),
            ])
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(registered.status(), 200, "the code page, after the 303");
        registered.url().path().to_owned()
    }

    /// The weight in bytes of the page at `path`: its HTML with the stylesheet and scripts it
    /// links.
    pub async fn page_weight(&self, path: &str) -> usize {
        let html = self.get(path).await.text().await.expect("a page");
        let mut weight = html.len();
        for linked in html.split('"').filter(|part| part.starts_with("/static/")) {
            weight += self.get(linked).await.bytes().await.expect("a static file").len();
        }
        weight
    }

    /// An active registrant in Stuttgart (group 1, born 1950, accepting BioNTech, 30 km, email
    /// person@example.de) with a booking code the test knows.
    pub async fn registrant_with_code(&self, phone: &str) -> (Uuid, drawbridge_domain::BookingCode) {
        self.registrant_with_code_under(&self.personal_data_keys(), phone)
            .await
    }

    /// [`TestApp::registrant_with_code`], its phone and email sealed under `keys` (another
    /// process's keys, e.g. before a rotation).
    pub async fn registrant_with_code_under(
        &self,
        keys: &PersonalDataKeys,
        phone: &str,
    ) -> (Uuid, drawbridge_domain::BookingCode) {
        let code = drawbridge_domain::BookingCode::generate(&mut rand::rngs::OsRng);
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO registrants (id, region_id, status, channel, phone, phone_index, email, birth_year,
                                      priority_group, postcode, accepted_vaccines, max_distance_km, verified_at,
                                      booking_code_hash)
             VALUES ($1, 'bw', 'active', 'web', $2, $3, $4, 1950, 1, '70173', '{biontech}', 30, now(), $5)",
        )
        .bind(id)
        .bind(keys.seal(Field::Phone, id, phone))
        .bind(keys.index(Field::Phone, phone).as_slice())
        .bind(keys.seal(Field::Email, id, "person@example.de"))
        .bind(code.keyed_hash(&self.hash_key()).as_slice())
        .execute(&self.pool)
        .await
        .expect("registrant insert");
        (id, code)
    }

    /// Six registrants of `bw` in a draw: three registered on the web and three through the
    /// hotline, born in 1950 and 1985, registered this week and three weeks ago. The draw's id
    /// and each registrant's id and booking code.
    pub async fn a_draw_of_six(&self) -> (Uuid, Vec<(Uuid, drawbridge_domain::BookingCode)>) {
        let mut people = Vec::new();
        for i in 0..6 {
            let (id, code) = self.registrant_with_code(&format!("+491715556{i:03}")).await;
            sqlx::query(
                "UPDATE registrants SET channel = $2, birth_year = $3, created_at = now() - $4 * interval '1 week'
                 WHERE id = $1",
            )
            .bind(id)
            .bind(if i % 2 == 0 { "web" } else { "callcentre" })
            .bind(if i < 3 { 1950 } else { 1985 })
            .bind(if i % 3 == 0 { 3i32 } else { 0 })
            .execute(&self.pool)
            .await
            .expect("registrant varied");
            people.push((id, code));
        }
        let tick = self.draw().await;
        let draw = tick.draw.expect("a draw").id;
        (draw, people)
    }

    /// Runs one allocator draw for region `bw`, as the allocator process would.
    pub async fn draw(&self) -> drawbridge_allocator::RegionTick {
        let allocator = drawbridge_allocator::connect(&self.settings, CancellationToken::new())
            .await
            .expect("allocator builds");
        allocator
            .tick_regions(Some("bw"), None)
            .await
            .expect("tick runs")
            .remove(0)
    }

    /// The registrant's pending offer, if any.
    pub async fn pending_offer(&self, registrant: Uuid) -> Option<Uuid> {
        sqlx::query_scalar("SELECT id FROM offers WHERE registrant_id = $1 AND state = 'pending'")
            .bind(registrant)
            .fetch_optional(&self.pool)
            .await
            .unwrap()
    }

    /// Creates a staff account in `region` (created if missing) and logs it in; returns the
    /// session token.
    pub async fn staff_token(
        &self,
        username: &str,
        role: drawbridge_domain::Role,
        region: &str,
        centre: Option<&str>,
    ) -> String {
        sqlx::query("INSERT INTO regions (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING")
            .bind(region)
            .execute(&self.pool)
            .await
            .unwrap();
        let password = "a long test password";
        drawbridge_platform::staff::add(
            &mut self.pool.acquire().await.unwrap(),
            &drawbridge_platform::staff::NewStaff {
                username,
                password,
                role,
                region,
                centre,
                must_change_password: false,
            },
        )
        .await
        .expect("staff account");
        let response = self
            .post_json(
                "/v1/staff/sessions",
                &serde_json::json!({ "username": username, "password": password }),
            )
            .await;
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// A request with `Authorization: <authorization>` and an optional JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        authorization: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("Authorization", authorization);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The keys that seal phone numbers and email addresses, as the processes hold them.
    pub fn personal_data_keys(&self) -> PersonalDataKeys {
        self.settings.secrets.personal_data_keys().unwrap()
    }

    /// Queues `notification` about `subject` to `recipient`, sealed as a registration's contact
    /// is (bound to `subject`), in the caller's transaction; its outbox id.
    pub async fn enqueue(
        &self,
        connection: &mut sqlx::PgConnection,
        subject: Uuid,
        channel: Channel,
        recipient: &str,
        language: Language,
        notification: &Notification,
    ) -> Uuid {
        let field = match channel {
            Channel::Sms => Field::Phone,
            Channel::Email => Field::Email,
        };
        let sealed = self.personal_data_keys().seal(field, subject, recipient);
        let recipient = Recipient {
            sealed: &sealed,
            of: subject,
        };
        outbox::enqueue(connection, subject, channel, recipient, language, notification)
            .await
            .expect("message queued")
    }

    /// The blind index the registrants of `phone` are found by.
    pub fn phone_index(&self, phone: &str) -> Vec<u8> {
        self.personal_data_keys().index(Field::Phone, phone).to_vec()
    }

    /// A registrant's phone number and email address, opened from their sealed columns.
    pub async fn contact(&self, registrant: Uuid) -> (Option<String>, Option<String>) {
        let (phone, email): (Option<Vec<u8>>, Option<Vec<u8>>) =
            sqlx::query_as("SELECT phone, email FROM registrants WHERE id = $1")
                .bind(registrant)
                .fetch_one(&self.pool)
                .await
                .expect("a registrant");
        let keys = self.personal_data_keys();
        let open = |field, sealed: Option<Vec<u8>>| {
            sealed.map(|sealed| keys.open(field, registrant, &sealed).expect("a contact opens"))
        };
        (open(Field::Phone, phone), open(Field::Email, email))
    }

    /// A message's recipient as its outbox row stores it (sealed for registration `of`, or
    /// empty once erased), opened: `erased` when erased.
    pub fn recipient(&self, channel: &str, sealed: &[u8], of: Uuid) -> String {
        if sealed.is_empty() {
            return "erased".to_owned();
        }
        let field = if channel == "email" {
            Field::Email
        } else {
            Field::Phone
        };
        self.personal_data_keys()
            .open(field, of, sealed)
            .expect("a recipient opens")
    }

    pub fn hash_key(&self) -> Vec<u8> {
        self.settings.secrets.hash_key().unwrap()
    }

    /// Stops every component gracefully and removes the test's database and queues.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("components stop within 30 s")
                .expect("component task did not panic");
        }
        self.twilio.stop().await;
        self.pool.close().await;
        let topology = drawbridge_notifier::topology::Topology::new(
            &self.settings.amqp,
            &self.settings.notifier.retry_delays_seconds,
        );
        delete_queues(&self.settings, &topology).await;
        drop_database(self.settings.database.url.expose_secret()).await;
        let _ = std::fs::remove_dir_all(self.sink_dir);
    }
}

async fn delete_queues(settings: &Settings, topology: &drawbridge_notifier::topology::Topology) {
    let Ok(connection) = drawbridge_platform::amqp::connect_once(&settings.amqp).await else {
        return;
    };
    let Ok(channel) = connection.create_channel().await else {
        return;
    };
    for queue in topology.queues() {
        let _ = channel.queue_delete(&queue, Default::default()).await;
    }
    for exchange in topology.exchanges() {
        let _ = channel.exchange_delete(&exchange, Default::default()).await;
    }
    let _ = connection.close(200, "test done").await;
}

/// How a message ended: `sent` (with the provider's id) or `dead` (with the reason).
#[derive(Debug, sqlx::FromRow)]
pub struct Settled {
    pub state: String,
    pub attempts: i32,
    pub provider_id: Option<String>,
    pub detail: Option<String>,
}

/// The value of one series (its name with any labels) in a page of Prometheus text; 0 if absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Polls `check` until it returns `Some` or `within` passes.
pub async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The citizen pages of the demo a person meets first, in German, with `code_page` (from
/// [`TestApp::register_on_the_form`]): for weighing and timing them.
pub fn citizen_pages(code_page: &str) -> Vec<String> {
    vec![
        "/?lang=de".to_owned(),
        "/regions/bw/policy?lang=de".to_owned(),
        "/regions/bw/check?lang=de&birth_year=1956&priority_group=3&postcode=70173&vaccine=biontech"
            .to_owned(),
        "/regions/bw/register?lang=de".to_owned(),
        format!("{code_page}?lang=de"),
        "/me?lang=de".to_owned(),
    ]
}

/// A registration body that passes every check under the demo policy.
pub fn registration(phone: &str) -> serde_json::Value {
    serde_json::json!({
        "phone": phone,
        "email": "anna@example.de",
        "birth_year": 1956,
        "priority_group": 3,
        "postcode": "70173",
        "accepted_vaccines": ["biontech", "moderna"],
        "max_distance_km": 30,
        "language": "de"
    })
}
