//! Typed configuration: one TOML file (`--config FILE`) with a section per service, then
//! environment variables `DRAWBRIDGE_<SECTION>__<KEY>` overriding single keys (double
//! underscore between levels, e.g. `DRAWBRIDGE_GATEWAY__LISTEN=0.0.0.0:8080`). Unknown keys are
//! errors, and everything is validated at start-up so a bad value stops the process with one
//! line that names the key, instead of failing later under load.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use drawbridge_domain::phone::is_country_calling_code;
use drawbridge_domain::{Keyring, PassKeyring, PassSigningKey, PersonalDataKeys, SealingKey, SigningKey};
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
pub use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Environment variables that belong to the command line, not to configuration keys.
const ENV_NOT_KEYS: &[&str] = &["config"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist; pass an existing file with --config (see deploy/local.toml)")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid configuration: {key}: {message}")]
    Key { key: &'static str, message: String },
}

impl ConfigError {
    fn key(key: &'static str, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key,
            message: message.into(),
        }
    }
}

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        // Figment's display already names the key and where the value came from.
        ConfigError::Invalid(error.to_string().replace("default.", ""))
    }
}

/// `DRAWBRIDGE_<SECTION>__<KEY>` variables with their values kept as text, so a sender like
/// `+4915100000000` or a numeric password stays exactly as written; only values that start
/// with `[` or `{` (lists and tables, e.g. `retry_delays_seconds`) are parsed.
struct EnvironmentStrings;

impl Provider for EnvironmentStrings {
    fn metadata(&self) -> Metadata {
        Metadata::named("`DRAWBRIDGE_` environment variable(s)")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut values = Dict::new();
        for (key, raw) in Env::prefixed("DRAWBRIDGE_")
            .split("__")
            .ignore(ENV_NOT_KEYS)
            .iter()
        {
            let value = if raw.trim_start().starts_with(['[', '{']) {
                raw.parse::<Value>().expect("parsing a value never fails")
            } else {
                Value::from(raw)
            };
            let path: Vec<&str> = key.as_str().split('.').collect();
            insert_at(&mut values, &path, value);
        }
        Ok(Profile::Default.collect(values))
    }
}

/// Puts `value` at the dotted `path`, creating the tables on the way.
fn insert_at(dict: &mut Dict, path: &[&str], value: Value) {
    let [first, rest @ ..] = path else { return };
    if rest.is_empty() {
        dict.insert((*first).to_owned(), value);
        return;
    }
    let entry = dict
        .entry((*first).to_owned())
        .or_insert_with(|| Value::from(Dict::new()));
    if !matches!(entry, Value::Dict(..)) {
        *entry = Value::from(Dict::new());
    }
    if let Value::Dict(_, inner) = entry {
        insert_at(inner, rest, value);
    }
}

/// The whole configuration file. Each service reads the shared connection sections plus its own.
///
/// Every value that grants access (connection URLs, which may carry a password, keys, tokens,
/// provider credentials) is a [`SecretString`]: `Debug` prints it as `[REDACTED]`, and reading
/// it takes an explicit `expose_secret()` where it is used.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub amqp: AmqpSettings,
    pub secrets: SecretSettings,
    pub telemetry: TelemetrySettings,
    pub gateway: GatewaySettings,
    pub rooms: RoomsSettings,
    pub allocator: AllocatorSettings,
    pub notifier: NotifierSettings,
    pub retention: RetentionSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/database`; the database is created if it does not
    /// exist.
    pub url: SecretString,
    pub max_connections: u32,
    /// How long start-up keeps retrying an unreachable database before giving up.
    pub startup_retry_seconds: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: "postgres://postgres@127.0.0.1:5432/drawbridge".into(),
            max_connections: 20,
            startup_retry_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port`.
    pub url: SecretString,
    /// Every key this deployment writes starts with this, so deployments (and tests) can share
    /// one Redis.
    pub key_prefix: String,
    pub pool_size: usize,
    pub startup_retry_seconds: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "drawbridge".into(),
            pool_size: 32,
            startup_retry_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port/vhost`.
    pub url: SecretString,
    /// Prefix of every exchange and queue name, so deployments (and tests) can share a vhost.
    pub prefix: String,
    /// Quorum queues survive a broker node loss; classic queues are for tests and laptops.
    pub quorum_queues: bool,
    /// Unacknowledged messages a consumer may hold at once.
    pub prefetch: u16,
    pub startup_retry_seconds: u64,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        AmqpSettings {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            prefix: "drawbridge".into(),
            quorum_queues: true,
            prefetch: 256,
            startup_retry_seconds: 60,
        }
    }
}

/// Keys for signed tokens and keyed hashes. There are deliberately no defaults: a deployment
/// that forgot its keys must not start with guessable ones.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSettings {
    /// Token signing keys, oldest first; the last one signs, all of them verify (rotation).
    pub token_keys: Vec<TokenKeySetting>,
    /// Base64 key for the keyed hashes of booking codes and SMS codes (at least 32 bytes).
    pub hash_key: SecretString,
    /// Ed25519 keys of the check-in passes, oldest first: the last one signs, all are
    /// published (`/.well-known/jwks.json`) and verify; a key taken off the list is retired.
    pub pass_keys: Vec<PassKeySetting>,
    /// XChaCha20-Poly1305 keys that seal phone numbers and email addresses at rest, oldest
    /// first: the last one seals, all of them open (`drawbridge keys rotate` seals again what an
    /// older one sealed).
    pub personal_data_keys: Vec<PersonalDataKeySetting>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalDataKeySetting {
    pub id: String,
    /// Base64 (standard alphabet) of exactly 32 random bytes.
    pub key: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassKeySetting {
    pub id: String,
    /// Base64 (standard alphabet) of exactly 32 random bytes: the private key's seed.
    pub seed: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenKeySetting {
    pub id: String,
    /// Base64 (standard alphabet) of at least 32 random bytes.
    pub secret: SecretString,
}

impl SecretSettings {
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        if self.token_keys.is_empty() {
            return Err(ConfigError::key(
                "secrets.token_keys",
                "at least one signing key is required, e.g. token_keys = [{ id = \"k1\", secret = \"<base64 of 32 random bytes>\" }]",
            ));
        }
        let keys = self
            .token_keys
            .iter()
            .map(|key| {
                Ok(SigningKey {
                    id: key.id.clone(),
                    secret: decode_base64("secrets.token_keys.secret", key.secret.expose_secret())?,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Keyring::new(keys).map_err(|e| ConfigError::key("secrets.token_keys", e.to_string()))
    }

    pub fn pass_keyring(&self) -> Result<PassKeyring, ConfigError> {
        const FIELD: &str = "secrets.pass_keys";
        if self.pass_keys.is_empty() {
            return Err(ConfigError::key(
                FIELD,
                "at least one pass key is required, e.g. pass_keys = [{ id = \"p1\", seed = \"<base64 of 32 random bytes>\" }]",
            ));
        }
        let keys = self
            .pass_keys
            .iter()
            .map(|key| {
                Ok(PassSigningKey {
                    id: key.id.clone(),
                    seed: decode_key_32("secrets.pass_keys.seed", &key.id, &key.seed)?,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        PassKeyring::new(keys).map_err(|e| ConfigError::key(FIELD, e.to_string()))
    }

    /// The keys of personal data at rest; its blind index is keyed by a key derived from
    /// `hash_key`, which never rotates.
    pub fn personal_data_keys(&self) -> Result<PersonalDataKeys, ConfigError> {
        const FIELD: &str = "secrets.personal_data_keys";
        if self.personal_data_keys.is_empty() {
            return Err(ConfigError::key(
                FIELD,
                "at least one key is required, e.g. personal_data_keys = [{ id = \"d1\", key = \"<base64 of 32 random bytes>\" }]",
            ));
        }
        let keys = self
            .personal_data_keys
            .iter()
            .map(|key| {
                Ok(SealingKey {
                    id: key.id.clone(),
                    key: decode_key_32("secrets.personal_data_keys.key", &key.id, &key.key)?,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        PersonalDataKeys::new(keys, &self.hash_key()?).map_err(|e| ConfigError::key(FIELD, e.to_string()))
    }

    pub fn hash_key(&self) -> Result<Vec<u8>, ConfigError> {
        let hash_key = self.hash_key.expose_secret();
        if hash_key.is_empty() {
            return Err(ConfigError::key(
                "secrets.hash_key",
                "required: base64 of at least 32 random bytes (e.g. `openssl rand -base64 32`)",
            ));
        }
        let key = decode_base64("secrets.hash_key", hash_key)?;
        if key.len() < 32 {
            return Err(ConfigError::key(
                "secrets.hash_key",
                format!("must decode to at least 32 bytes, got {}", key.len()),
            ));
        }
        Ok(key)
    }
}

/// A key of exactly 32 bytes, in base64, of the key named `id`.
fn decode_key_32(field: &'static str, id: &str, value: &SecretString) -> Result<[u8; 32], ConfigError> {
    let bytes = decode_base64(field, value.expose_secret())?;
    bytes.try_into().map_err(|bytes: Vec<u8>| {
        ConfigError::key(
            field,
            format!("key {id:?}: must decode to exactly 32 bytes, got {}", bytes.len()),
        )
    })
}

fn decode_base64(key: &'static str, value: &str) -> Result<Vec<u8>, ConfigError> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|e| ConfigError::key(key, format!("not valid base64: {e}")))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// A tracing filter such as `info` or `drawbridge_gateway=debug,info`; `RUST_LOG` wins.
    pub log_filter: String,
    /// One JSON object per line, for log shippers.
    pub json: bool,
    /// Bearer token `/metrics` asks for. Without one, the gateway (which the internet
    /// reaches) does not serve `/metrics`, and the allocator and notifier serve it to anyone
    /// who reaches their listeners.
    pub metrics_token: SecretString,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            // sqlx and actix narrate every migration check and worker start at info.
            log_filter: "info,sqlx=warn,actix_server=warn".into(),
            json: false,
            metrics_token: SecretString::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    pub listen: SocketAddr,
    /// Worker threads; defaults to the number of cores.
    pub workers: Option<usize>,
    /// The address citizens reach, used for links in messages.
    pub public_url: String,
    /// Country calling code assumed for national phone numbers such as 0151 12345678.
    pub default_country_code: String,
    /// Minutes an SMS verification code stays valid.
    pub verification_code_minutes: u32,
    /// Hours an unverified registration is kept after its last code died, before it expires
    /// and its personal data is erased; until then the same registration again is answered by
    /// it. Also how long the codes sent to a phone count against its daily limit.
    pub unverified_hours: u32,
    /// Verified registrations of different people one phone may hold (a household).
    pub registrations_per_phone: u32,
    /// SMS codes and registration notices one phone may receive in 24 hours, whatever
    /// registrations they are for.
    pub codes_per_phone_per_day: u32,
    /// Seconds between two sweeps for unverified registrations due to expire.
    pub expiry_sweep_seconds: u32,
    /// Web registrations one client address may start in an hour, with or without a waiting
    /// room in front.
    pub registrations_per_address_per_hour: u32,
    /// Web registrations for numbers of one block (a number without its last three digits) in
    /// an hour: pumping SMS through a range of numbers meets this first.
    pub registrations_per_number_block_per_hour: u32,
    /// SMS codes and registration notices a region may send in a day: the SMS budget. Offers
    /// and confirmations are never counted against it.
    pub sms_codes_per_region_per_day: u32,
    /// Where the analysts' console finds simulation reports: a folder per region (`bw/`), in
    /// it a folder per report as `drawbridge simulate --out` writes it. None: it lists none.
    pub simulation_reports: Option<PathBuf>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: None,
            public_url: "http://127.0.0.1:8080".into(),
            default_country_code: "49".into(),
            verification_code_minutes: 10,
            unverified_hours: 24,
            registrations_per_phone: 4,
            codes_per_phone_per_day: 10,
            expiry_sweep_seconds: 60,
            registrations_per_address_per_hour: 30,
            registrations_per_number_block_per_hour: 10,
            sms_codes_per_region_per_day: 50_000,
            simulation_reports: None,
        }
    }
}

/// Static knobs of the waiting rooms; the rooms themselves are run-time data in Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsSettings {
    /// Bearer token of the admin API (`/v1/admin/rooms`); empty switches the admin API off.
    pub admin_token: SecretString,
    /// How often each gateway reloads room configuration and queue state from Redis (changes
    /// reach every gateway within this time) and, if it holds the lease, advances the queues.
    pub refresh_millis: u64,
    /// Lifetime of the admission controller's lease; another gateway takes over after it.
    pub lease_millis: u64,
    /// Joins per client IP address and minute, counted across all gateways.
    pub joins_per_ip_per_minute: u32,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
}

impl Default for RoomsSettings {
    fn default() -> Self {
        RoomsSettings {
            admin_token: SecretString::default(),
            refresh_millis: 1000,
            lease_millis: 5000,
            joins_per_ip_per_minute: 60,
            trust_forwarded_for: false,
        }
    }
}

impl RoomsSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let admin_token = self.admin_token.expose_secret();
        if !admin_token.is_empty() && admin_token.len() < 32 {
            return Err(ConfigError::key(
                "rooms.admin_token",
                "must be at least 32 characters (e.g. `openssl rand -base64 32`), or empty to switch the admin API off",
            ));
        }
        if !(50..=10_000).contains(&self.refresh_millis) {
            return Err(ConfigError::key(
                "rooms.refresh_millis",
                "must be between 50 and 10000: room changes must reach every gateway within seconds",
            ));
        }
        if self.lease_millis < 2 * self.refresh_millis {
            return Err(ConfigError::key(
                "rooms.lease_millis",
                format!(
                    "must be at least twice rooms.refresh_millis ({}), so the controller renews it in time",
                    self.refresh_millis
                ),
            ));
        }
        if self.joins_per_ip_per_minute == 0 {
            return Err(ConfigError::key(
                "rooms.joins_per_ip_per_minute",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// How long each kind of data is kept before `drawbridge purge` (and every gateway's purge
/// sweep) removes it, in days after the event that ends its use.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Registrations never verified (expired, erased), after they were made.
    pub unverified_registrations_days: u32,
    /// What is left of a withdrawn person besides the pseudonymous rows (their messages and
    /// code records), after the withdrawal.
    pub withdrawn_people_days: u32,
    /// A person whose course is complete, after the last dose: erased as on withdrawal.
    pub completed_courses_days: u32,
    /// Cancelled bookings and their messages, after the cancellation.
    pub cancelled_bookings_days: u32,
    /// Messages sent or given up, after that.
    pub delivered_messages_days: u32,
    /// Staff sessions, after they ended or expired.
    pub staff_sessions_days: u32,
    /// The staff audit log, after the action; at least [`AUDIT_MINIMUM_DAYS`].
    pub audit_entries_days: u32,
    /// How often each gateway purges.
    pub purge_every_seconds: u64,
}

/// The shortest time the audit log of staff actions is kept: a year, so that a person's
/// question about who looked at their data can be answered for that long.
pub const AUDIT_MINIMUM_DAYS: u32 = 365;

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            unverified_registrations_days: 7,
            withdrawn_people_days: 30,
            completed_courses_days: 90,
            cancelled_bookings_days: 90,
            delivered_messages_days: 30,
            staff_sessions_days: 90,
            audit_entries_days: 730,
            purge_every_seconds: 3600,
        }
    }
}

impl RetentionSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, days) in [
            (
                "retention.unverified_registrations_days",
                self.unverified_registrations_days,
            ),
            ("retention.withdrawn_people_days", self.withdrawn_people_days),
            ("retention.completed_courses_days", self.completed_courses_days),
            ("retention.cancelled_bookings_days", self.cancelled_bookings_days),
            ("retention.delivered_messages_days", self.delivered_messages_days),
            ("retention.staff_sessions_days", self.staff_sessions_days),
        ] {
            if days == 0 {
                return Err(ConfigError::key(key, "must be at least 1"));
            }
        }
        if self.audit_entries_days < AUDIT_MINIMUM_DAYS {
            return Err(ConfigError::key(
                "retention.audit_entries_days",
                format!(
                    "must be at least {AUDIT_MINIMUM_DAYS}: the audit log is kept a year at least, got {}",
                    self.audit_entries_days
                ),
            ));
        }
        if self.purge_every_seconds == 0 {
            return Err(ConfigError::key(
                "retention.purge_every_seconds",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllocatorSettings {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub listen: SocketAddr,
    pub tick_seconds: u64,
    /// Draw a region before its next tick once this many of its pairs were freed.
    pub draw_when_freed: u64,
}

impl Default for AllocatorSettings {
    fn default() -> Self {
        AllocatorSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            tick_seconds: 30,
            draw_when_freed: 50,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifierSettings {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub listen: SocketAddr,
    /// Outbox rows a relay worker publishes per round.
    pub relay_batch: u32,
    /// Relay workers per notifier process.
    pub relay_workers: usize,
    /// Pause of the relay when the outbox is empty.
    pub relay_idle_millis: u64,
    /// Messages sent at the same time by one consumer (see [`NotifierSettings::send_batches`]).
    pub concurrency: usize,
    /// Delays before each retry of a temporarily failed send; after the last one a message is
    /// dead-lettered.
    pub retry_delays_seconds: Vec<u32>,
    /// The local sink file: where messages go when a channel's provider is `file`.
    pub sink_file: PathBuf,
    /// A message still in flight this long after its next attempt was due was lost by the
    /// broker: the sweeper publishes it again. Above the longest wait in a queue.
    pub stranded_after_seconds: u64,
    /// How often each notifier's sweeper looks for stranded messages.
    pub sweep_every_seconds: u64,
    /// How long after an attempt's request ended a provider may still record the message: a
    /// message in doubt is looked up (or, without a way to, sent again) only after it.
    pub in_doubt_grace_seconds: u64,
    pub sms: SmsSettings,
    pub email: EmailSettings,
}

/// The most messages the consumer handles as one batch.
pub const MAX_SEND_BATCH: usize = 64;

/// How the consumer groups its sends. A batch costs two commits whatever its size, and each
/// batch in flight holds one database connection; at least two are in flight, so that one
/// batch's database work overlaps another's sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendBatches {
    pub size: usize,
    pub in_flight: usize,
}

impl NotifierSettings {
    pub fn send_batches(&self) -> SendBatches {
        let in_flight = self.concurrency.div_ceil(MAX_SEND_BATCH).max(2);
        SendBatches {
            size: self.concurrency.div_ceil(in_flight),
            in_flight,
        }
    }
}

impl Default for NotifierSettings {
    fn default() -> Self {
        NotifierSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            relay_batch: 256,
            relay_workers: 2,
            relay_idle_millis: 100,
            concurrency: 128,
            retry_delays_seconds: vec![1, 5, 30, 120, 600],
            sink_file: PathBuf::from("var/messages.jsonl"),
            stranded_after_seconds: 900,
            sweep_every_seconds: 60,
            in_doubt_grace_seconds: 30,
            sms: SmsSettings::default(),
            email: EmailSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsProvider {
    /// Write to the log and the sink file: the demo runs with no account.
    File,
    /// Any provider speaking Twilio's Messages API.
    Twilio,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsSettings {
    pub provider: SmsProvider,
    /// Base URL of the Twilio-compatible API; a test server or another provider by config only.
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: SecretString,
    /// Sender number (E.164) or alphanumeric sender id; or set `messaging_service_sid`.
    pub from: String,
    pub messaging_service_sid: String,
    pub timeout_seconds: u64,
    /// Client-side limit so a burst does not get the account throttled.
    pub messages_per_second: u32,
    /// What to do with a message in doubt when the provider cannot be asked whether it has it.
    pub in_doubt: InDoubt,
}

impl Default for SmsSettings {
    fn default() -> Self {
        SmsSettings {
            provider: SmsProvider::File,
            base_url: "https://api.twilio.com".into(),
            account_sid: String::new(),
            auth_token: SecretString::default(),
            from: "Drawbridge".into(),
            messaging_service_sid: String::new(),
            timeout_seconds: 10,
            messages_per_second: 100,
            in_doubt: InDoubt::Resend,
        }
    }
}

/// A message is in doubt when an attempt may have reached the provider but its answer was
/// lost (a timeout after the request was written, a 5xx, a crash mid-call). Where the provider
/// lists its messages the notifier asks it; this says what to do where it cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InDoubt {
    /// Send it again: the person may get it twice, which costs less than never getting it.
    Resend,
    /// Give up on it, for an operator to look at: nobody gets a message twice.
    DeadLetter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailProvider {
    /// Write to the log and the sink file.
    File,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTls {
    /// Plain SMTP: only for a relay on the same host or network.
    None,
    /// Upgrade with STARTTLS (usually port 587).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailSettings {
    pub provider: EmailProvider,
    pub from: String,
    pub host: String,
    pub port: u16,
    pub tls: EmailTls,
    pub username: String,
    pub password: SecretString,
    pub timeout_seconds: u64,
    /// SMTP cannot be asked whether a server took a message, so every email in doubt follows it.
    pub in_doubt: InDoubt,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            provider: EmailProvider::File,
            from: "Drawbridge <no-reply@drawbridge.invalid>".into(),
            host: "127.0.0.1".into(),
            port: 587,
            tls: EmailTls::Starttls,
            username: String::new(),
            password: SecretString::default(),
            timeout_seconds: 10,
            in_doubt: InDoubt::Resend,
        }
    }
}

impl Settings {
    /// Reads `path` (if given) and the `DRAWBRIDGE_...` environment, then validates.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Lossy: strings from the environment become numbers and booleans where a key needs one.
        let settings: Settings = figment.merge(EnvironmentStrings).extract_lossy()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot: URL schemes, secrets, sizes, provider credentials.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_url(
            "database.url",
            self.database.url.expose_secret(),
            &["postgres", "postgresql"],
        )?;
        check_url("redis.url", self.redis.url.expose_secret(), &["redis", "rediss"])?;
        check_url("amqp.url", self.amqp.url.expose_secret(), &["amqp", "amqps"])?;
        check_url("gateway.public_url", &self.gateway.public_url, &["http", "https"])?;
        if self.database.max_connections == 0 {
            return Err(ConfigError::key("database.max_connections", "must be at least 1"));
        }
        if self.redis.pool_size == 0 {
            return Err(ConfigError::key("redis.pool_size", "must be at least 1"));
        }
        check_name("redis.key_prefix", &self.redis.key_prefix)?;
        check_name("amqp.prefix", &self.amqp.prefix)?;
        if self.amqp.prefetch == 0 {
            return Err(ConfigError::key("amqp.prefetch", "must be at least 1"));
        }
        self.secrets.keyring()?;
        self.secrets.pass_keyring()?;
        self.secrets.hash_key()?;
        self.secrets.personal_data_keys()?;
        let code = &self.gateway.default_country_code;
        if !is_country_calling_code(code) {
            return Err(ConfigError::key(
                "gateway.default_country_code",
                format!("must be a country calling code without + such as 49, got {code:?}"),
            ));
        }
        for (key, value) in [
            (
                "gateway.registrations_per_address_per_hour",
                self.gateway.registrations_per_address_per_hour,
            ),
            (
                "gateway.registrations_per_number_block_per_hour",
                self.gateway.registrations_per_number_block_per_hour,
            ),
            (
                "gateway.sms_codes_per_region_per_day",
                self.gateway.sms_codes_per_region_per_day,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::key(key, "must be at least 1"));
            }
        }
        if !(1..=60).contains(&self.gateway.verification_code_minutes) {
            return Err(ConfigError::key(
                "gateway.verification_code_minutes",
                "must be between 1 and 60",
            ));
        }
        if !(1..=720).contains(&self.gateway.unverified_hours) {
            return Err(ConfigError::key(
                "gateway.unverified_hours",
                "must be between 1 and 720 (30 days)",
            ));
        }
        if !(1..=20).contains(&self.gateway.registrations_per_phone) {
            return Err(ConfigError::key(
                "gateway.registrations_per_phone",
                "must be between 1 and 20",
            ));
        }
        if self.gateway.expiry_sweep_seconds == 0 {
            return Err(ConfigError::key(
                "gateway.expiry_sweep_seconds",
                "must be at least 1",
            ));
        }
        if self.gateway.codes_per_phone_per_day < self.gateway.registrations_per_phone {
            return Err(ConfigError::key(
                "gateway.codes_per_phone_per_day",
                "must be at least gateway.registrations_per_phone, or a household cannot register",
            ));
        }
        self.rooms.validate()?;
        self.retention.validate()?;
        if self.allocator.tick_seconds == 0 {
            return Err(ConfigError::key("allocator.tick_seconds", "must be at least 1"));
        }
        if self.allocator.draw_when_freed == 0 {
            return Err(ConfigError::key(
                "allocator.draw_when_freed",
                "must be at least 1 (a large number effectively draws on the timer only)",
            ));
        }
        let notifier = &self.notifier;
        if notifier.relay_batch == 0 || notifier.relay_workers == 0 || notifier.concurrency == 0 {
            return Err(ConfigError::key(
                "notifier.relay_batch",
                "relay_batch, relay_workers and concurrency must be at least 1",
            ));
        }
        if usize::from(self.amqp.prefetch) < notifier.concurrency {
            return Err(ConfigError::key(
                "amqp.prefetch",
                format!(
                    "must be at least notifier.concurrency ({}), or the broker never hands the consumer \
                     enough messages to keep that many sends in flight; got {}",
                    notifier.concurrency, self.amqp.prefetch
                ),
            ));
        }
        let connections = notifier.send_batches().in_flight + notifier.relay_workers;
        if connections >= self.database.max_connections as usize {
            return Err(ConfigError::key(
                "database.max_connections",
                format!(
                    "must be above {connections}, the notifier's batches in flight (notifier.concurrency {} \
                     in batches of up to {MAX_SEND_BATCH}) plus its relay workers; got {}",
                    notifier.concurrency, self.database.max_connections
                ),
            ));
        }
        if notifier.retry_delays_seconds.is_empty() || notifier.retry_delays_seconds.contains(&0) {
            return Err(ConfigError::key(
                "notifier.retry_delays_seconds",
                "needs at least one delay (a message whose earlier attempt may still be under way \
                 waits in a delay queue), each at least 1 second",
            ));
        }
        if notifier.stranded_after_seconds == 0 || notifier.sweep_every_seconds == 0 {
            return Err(ConfigError::key(
                "notifier.stranded_after_seconds",
                "stranded_after_seconds and sweep_every_seconds must be at least 1",
            ));
        }
        if notifier.sms.messages_per_second == 0 {
            return Err(ConfigError::key(
                "notifier.sms.messages_per_second",
                "must be at least 1",
            ));
        }
        if notifier.email.provider == EmailProvider::Smtp && notifier.email.host.is_empty() {
            return Err(ConfigError::key(
                "notifier.email.host",
                "provider = \"smtp\" needs a host",
            ));
        }
        if notifier.sms.provider == SmsProvider::Twilio {
            check_url(
                "notifier.sms.base_url",
                &notifier.sms.base_url,
                &["http", "https"],
            )?;
            if notifier.sms.account_sid.is_empty() || notifier.sms.auth_token.expose_secret().is_empty() {
                return Err(ConfigError::key(
                    "notifier.sms.account_sid",
                    "provider = \"twilio\" needs account_sid and auth_token",
                ));
            }
            if notifier.sms.from.is_empty() && notifier.sms.messaging_service_sid.is_empty() {
                return Err(ConfigError::key(
                    "notifier.sms.from",
                    "provider = \"twilio\" needs a sender: from or messaging_service_sid",
                ));
            }
        }
        Ok(())
    }
}

fn check_url(key: &'static str, value: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    let url = url::Url::parse(value).map_err(|e| {
        ConfigError::key(
            key,
            format!("not a valid URL ({e}): {:?}", crate::retry::redact_url(value)),
        )
    })?;
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError::key(
            key,
            format!("scheme must be one of {schemes:?}, got {:?}", url.scheme()),
        ));
    }
    Ok(())
}

fn check_name(key: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::key(
            key,
            format!("must be 1 to 64 of [A-Za-z0-9._-], got {value:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRETS: &str = r#"
[secrets]
token_keys = [{ id = "k1", secret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" }]
hash_key = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
pass_keys = [{ id = "p1", seed = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" }]
personal_data_keys = [{ id = "d1", key = "ZGF0YS1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY=" }]
"#;

    // Jail's closure signature is figment's, large error type included.
    #[allow(clippy::result_large_err)]
    /// Loads `contents` as the config file inside a figment jail (own directory and
    /// environment), with `env` set as environment variables.
    fn load_with_env(contents: &str, env: &[(&str, &str)]) -> Result<Settings, String> {
        let mut outcome = Err(String::new());
        figment::Jail::expect_with(|jail| {
            jail.create_file("drawbridge.toml", contents)?;
            for (key, value) in env {
                jail.set_env(key, value);
            }
            outcome = Settings::load(Some(Path::new("drawbridge.toml"))).map_err(|e| e.to_string());
            Ok(())
        });
        outcome
    }

    fn load(contents: &str) -> Result<Settings, String> {
        load_with_env(contents, &[])
    }

    #[test]
    fn defaults_point_at_local_services() {
        let s = load(SECRETS).unwrap();
        assert_eq!(s.gateway.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            s.database.url.expose_secret(),
            "postgres://postgres@127.0.0.1:5432/drawbridge"
        );
        assert_eq!(s.redis.url.expose_secret(), "redis://127.0.0.1:6379");
        assert_eq!(
            s.amqp.url.expose_secret(),
            "amqp://guest:guest@127.0.0.1:5672/%2f"
        );
        assert_eq!(s.notifier.sms.provider, SmsProvider::File);
    }

    #[test]
    fn missing_file_names_the_file() {
        let err = Settings::load(Some(Path::new("/nonexistent/drawbridge.toml"))).unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/drawbridge.toml does not exist"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load(&format!("{SECRETS}\n[gateway]\nlisten_port = 1\n")).unwrap_err();
        assert!(err.contains("listen_port"), "{err}");
    }

    #[test]
    fn bad_url_is_named() {
        let err = load(&format!("{SECRETS}\n[database]\nurl = \"mysql://x/y\"\n")).unwrap_err();
        assert!(err.contains("database.url") && err.contains("mysql"), "{err}");
    }

    #[test]
    fn missing_or_short_secrets_are_named() {
        let err = load("").unwrap_err();
        assert!(err.contains("secrets.token_keys"), "{err}");
        let short = SECRETS.replace("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=", "c2hvcnQ=");
        let err = load(&short).unwrap_err();
        assert!(
            err.contains("secrets.hash_key") && err.contains("32 bytes"),
            "{err}"
        );
        let without_pass_keys: String = SECRETS
            .lines()
            .filter(|line| !line.starts_with("pass_keys"))
            .collect::<Vec<_>>()
            .join("\n");
        let err = load(&without_pass_keys).unwrap_err();
        assert!(err.contains("secrets.pass_keys"), "{err}");
        let short = SECRETS.replace(
            r#"seed = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=""#,
            r#"seed = "c2hvcnQ=""#,
        );
        let err = load(&short).unwrap_err();
        assert!(err.contains("exactly 32 bytes, got 5"), "{err}");
        let without_data_keys: String = SECRETS
            .lines()
            .filter(|line| !line.starts_with("personal_data_keys"))
            .collect::<Vec<_>>()
            .join("\n");
        let err = load(&without_data_keys).unwrap_err();
        assert!(err.contains("secrets.personal_data_keys"), "{err}");
        let short = SECRETS.replace(
            r#"key = "ZGF0YS1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY=""#,
            r#"key = "c2hvcnQ=""#,
        );
        let err = load(&short).unwrap_err();
        assert!(
            err.contains("secrets.personal_data_keys.key") && err.contains("exactly 32 bytes, got 5"),
            "{err}"
        );
    }

    #[test]
    fn an_audit_log_kept_less_than_its_minimum_is_refused() {
        let s = load(SECRETS).unwrap();
        assert_eq!(s.retention.audit_entries_days, 730);
        let err = load(&format!("{SECRETS}\n[retention]\naudit_entries_days = 364\n")).unwrap_err();
        assert!(
            err.contains("retention.audit_entries_days") && err.contains("at least 365"),
            "{err}"
        );
        let s = load(&format!("{SECRETS}\n[retention]\naudit_entries_days = 365\n")).unwrap();
        assert_eq!(s.retention.audit_entries_days, 365);
    }

    #[test]
    fn twilio_needs_credentials() {
        let err = load(&format!("{SECRETS}\n[notifier.sms]\nprovider = \"twilio\"\n")).unwrap_err();
        assert!(err.contains("account_sid"), "{err}");
    }

    #[test]
    fn in_doubt_policy_is_resend_unless_set_to_dead_letter() {
        let s = load(SECRETS).unwrap();
        assert_eq!(
            (s.notifier.sms.in_doubt, s.notifier.email.in_doubt),
            (InDoubt::Resend, InDoubt::Resend)
        );
        let s = load_with_env(
            &format!("{SECRETS}\n[notifier.sms]\nin_doubt = \"dead-letter\"\n"),
            &[("DRAWBRIDGE_NOTIFIER__EMAIL__IN_DOUBT", "dead-letter")],
        )
        .unwrap();
        assert_eq!(
            (s.notifier.sms.in_doubt, s.notifier.email.in_doubt),
            (InDoubt::DeadLetter, InDoubt::DeadLetter)
        );
        let err = load(&format!("{SECRETS}\n[notifier.sms]\nin_doubt = \"maybe\"\n")).unwrap_err();
        assert!(err.contains("in_doubt"), "{err}");
    }

    #[test]
    fn the_sweeper_needs_a_deadline_and_a_pace() {
        let s = load(SECRETS).unwrap();
        assert_eq!(
            (s.notifier.stranded_after_seconds, s.notifier.sweep_every_seconds),
            (900, 60)
        );
        let err = load(&format!("{SECRETS}\n[notifier]\nsweep_every_seconds = 0\n")).unwrap_err();
        assert!(err.contains("notifier.stranded_after_seconds"), "{err}");
    }

    #[test]
    fn a_delay_queue_is_required_for_messages_that_must_wait() {
        let err = load(&format!("{SECRETS}\n[notifier]\nretry_delays_seconds = []\n")).unwrap_err();
        assert!(
            err.contains("notifier.retry_delays_seconds") && err.contains("at least one"),
            "{err}"
        );
        assert_eq!(load(SECRETS).unwrap().notifier.in_doubt_grace_seconds, 30);
    }

    #[test]
    fn environment_overrides_single_keys() {
        let s = load_with_env(
            SECRETS,
            &[
                ("DRAWBRIDGE_GATEWAY__LISTEN", "0.0.0.0:9999"),
                ("DRAWBRIDGE_DATABASE__MAX_CONNECTIONS", "40"),
                ("DRAWBRIDGE_CONFIG", "ignored.toml"),
                ("DRAWBRIDGE_NOTIFIER__SMS__FROM", "+4915100000000"),
                ("DRAWBRIDGE_GATEWAY__DEFAULT_COUNTRY_CODE", "43"),
                ("DRAWBRIDGE_AMQP__QUORUM_QUEUES", "false"),
                ("DRAWBRIDGE_NOTIFIER__RETRY_DELAYS_SECONDS", "[2, 4]"),
                (
                    "DRAWBRIDGE_SECRETS__TOKEN_KEYS",
                    "[{id=\"env\",secret=\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"}]",
                ),
            ],
        )
        .unwrap();
        assert_eq!(s.gateway.listen.to_string(), "0.0.0.0:9999");
        assert_eq!(s.database.max_connections, 40);
        assert_eq!(
            s.notifier.sms.from, "+4915100000000",
            "text stays text, sign included"
        );
        assert_eq!(s.gateway.default_country_code, "43");
        assert!(!s.amqp.quorum_queues);
        assert_eq!(s.notifier.retry_delays_seconds, [2, 4]);
        assert_eq!(s.secrets.keyring().unwrap().signing_key_id(), "env");
    }

    #[test]
    fn room_knobs_are_checked_at_start_up() {
        let err = load(&format!("{SECRETS}\n[rooms]\nadmin_token = \"short\"\n")).unwrap_err();
        assert!(err.contains("rooms.admin_token") && err.contains("32"), "{err}");
        let err = load(&format!(
            "{SECRETS}\n[rooms]\nrefresh_millis = 1000\nlease_millis = 1500\n"
        ))
        .unwrap_err();
        assert!(err.contains("rooms.lease_millis"), "{err}");
        let err = load_with_env(SECRETS, &[("DRAWBRIDGE_ROOMS__REFRESH_MILLIS", "60000")]).unwrap_err();
        assert!(err.contains("rooms.refresh_millis"), "{err}");
        let ok = load_with_env(SECRETS, &[("DRAWBRIDGE_ROOMS__ADMIN_TOKEN", &"a".repeat(32))]).unwrap();
        assert!(
            !format!("{:?}", ok.rooms).contains("aaaa"),
            "the token is never printed"
        );
    }

    #[test]
    fn debug_output_of_loaded_settings_contains_no_secret() {
        let file = r#"
[database]
url = "postgres://app:database-password-1@db.internal:5432/drawbridge"
[redis]
url = "redis://:redis-password-2@cache.internal:6379"
[amqp]
url = "amqp://app:amqp-password-3@broker.internal:5672/%2f"
[secrets]
token_keys = [{ id = "k1", secret = "dG9rZW4ta2V5LXNlY3JldC00LTAxMjM0NTY3ODlhYmNkZWY=" }]
hash_key = "aGFzaC1rZXktc2VjcmV0LTUtMDEyMzQ1Njc4OWFiY2RlZg=="
pass_keys = [{ id = "p1", seed = "cGFzcy1rZXktc2VjcmV0LTctMDEyMzQ1Njc4OWFiY2Q=" }]
personal_data_keys = [{ id = "d1", key = "ZGF0YS1rZXktc2VjcmV0LTgtMDEyMzQ1Njc4OWFiY2Q=" }]
[rooms]
admin_token = "rooms-admin-token-6-0123456789abcdef"
[notifier.sms]
provider = "twilio"
account_sid = "AC0123"
auth_token = "sms-auth-token-7"
[notifier.email]
provider = "smtp"
username = "mailer"
password = "smtp-password-8"
"#;
        let settings = load(file).unwrap();
        let printed = format!("{settings:?} {:#?}", settings);
        for secret in [
            "database-password-1",
            "redis-password-2",
            "amqp-password-3",
            "dG9rZW4ta2V5LXNlY3JldC00",
            "aGFzaC1rZXktc2VjcmV0LTUt",
            "cGFzcy1rZXktc2VjcmV0LTct",
            "ZGF0YS1rZXktc2VjcmV0LTgt",
            "rooms-admin-token-6",
            "sms-auth-token-7",
            "smtp-password-8",
        ] {
            assert!(!printed.contains(secret), "{secret} printed in {printed}");
        }
        assert!(
            printed.contains("k1") && printed.contains("mailer"),
            "non-secrets stay readable"
        );
        assert_eq!(
            settings.notifier.email.password.expose_secret(),
            "smtp-password-8",
            "the value itself is kept"
        );
    }

    #[test]
    fn notifier_sends_in_overlapping_batches_within_its_connections_and_prefetch() {
        let batches = |concurrency| {
            let notifier = NotifierSettings {
                concurrency,
                ..NotifierSettings::default()
            };
            let b = notifier.send_batches();
            (b.size, b.in_flight)
        };
        assert_eq!(batches(1), (1, 2));
        assert_eq!(batches(16), (8, 2));
        assert_eq!(batches(128), (64, 2));
        assert_eq!(batches(129), (43, 3));
        assert_eq!(batches(1000), (63, 16));
        let err = load(&format!("{SECRETS}\n[notifier]\nconcurrency = 1200\n")).unwrap_err();
        assert!(err.contains("amqp.prefetch") && err.contains("1200"), "{err}");
        let many = format!("{SECRETS}\n[notifier]\nconcurrency = 1200\n[amqp]\nprefetch = 1200\n");
        let err = load(&many).unwrap_err();
        assert!(
            err.contains("database.max_connections") && err.contains("above 21"),
            "{err}"
        );
        load(&format!("{many}[database]\nmax_connections = 22\n")).unwrap();
    }

    #[test]
    fn wrong_type_from_environment_is_named() {
        let err = load_with_env(SECRETS, &[("DRAWBRIDGE_ALLOCATOR__TICK_SECONDS", "soon")]).unwrap_err();
        assert!(err.to_lowercase().contains("allocator.tick_seconds"), "{err}");
    }
}
