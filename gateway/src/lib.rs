//! The gateway: every HTTP API and web page of Drawbridge. `build` wires configuration to the
//! adapters (Postgres, Redis) and returns a bound, not yet running, server; `main` and the
//! tests use it alike.
//!
//! Inside, three layers: `http` (handlers: parse, authorise, call one use case, render) over
//! `use_cases` (the decisions and the transaction of each thing a person does) over `store`
//! (every SQL statement). The waiting rooms (`rooms`) keep their own state in Redis.

mod error;
mod http;
mod limits;
mod policy_cache;
pub mod rooms;
pub mod store;
mod templates;
mod use_cases;

/// Retention, for `drawbridge purge`.
pub use use_cases::purge;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use drawbridge_domain::{Keyring, PassKeyring, PersonalDataKeys};
use drawbridge_platform::config::GatewaySettings;
use drawbridge_platform::http_telemetry::{self, HttpMetrics};
use drawbridge_platform::ops::{self, Readiness};
use drawbridge_platform::{postgres, redis, Settings, StartupError};
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

use crate::limits::Limits;
use crate::policy_cache::PolicyCache;
use crate::rooms::metrics::RoomMetrics;
use crate::rooms::{RoomCache, RoomStore, Rooms};
use crate::store::registrants::PhoneLimits;
use crate::store::Store;

/// What the use cases share: the store, caches, keys and settings.
pub struct AppState {
    pub store: Store,
    pub settings: GatewaySettings,
    /// Key of the keyed hashes under which codes are stored.
    pub hash_key: Vec<u8>,
    /// Seal and open phone numbers and email addresses, and key their blind index.
    pub personal_data: PersonalDataKeys,
    policies: PolicyCache,
    pub rooms: Arc<Rooms>,
    /// Signs and verifies offer links.
    keyring: Keyring,
    /// Signs check-in passes; its public half checks them and is published.
    pass_keys: PassKeyring,
    /// Failure counters shared by all gateways (booking-code guesses, staff logins), kept here
    /// while Redis is away.
    limits: Limits,
    /// The web pages' templates, texts and static files.
    templates: templates::Templates,
    /// SMS codes refused because their region's daily budget was spent, by region.
    sms_budget_spent: IntCounterVec,
}

impl AppState {
    /// The address citizens reach for `path` (`/me`, `/pass/...`), for links in messages.
    pub fn public_link(&self, path: &str) -> String {
        format!("{}{path}", self.settings.public_url.trim_end_matches('/'))
    }
}

pub struct Application {
    server: Server,
    address: SocketAddr,
}

impl Application {
    /// The address actually bound (the configured port may be 0 in tests).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until the shutdown token given to `build` is cancelled, then finishes the requests
    /// in flight.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Connects to Postgres (running migrations) and Redis, and binds the listener. Cancelling
/// `shutdown` stops the server gracefully.
pub async fn build(settings: &Settings, shutdown: CancellationToken) -> Result<Application, StartupError> {
    let pool = postgres::connect_and_migrate(&settings.database).await?;
    let redis = redis::connect(&settings.redis).await?;
    let listener = ops::bind(settings.gateway.listen)?;
    let address = listener.local_addr().map_err(|error| StartupError::Bind {
        address: settings.gateway.listen,
        error,
    })?;
    let registry = Registry::new_custom(Some("drawbridge_gateway".into()), None).expect("valid prefix");
    let room_metrics = RoomMetrics::register(&registry).expect("metrics register once");
    let rooms = Arc::new(Rooms {
        cache: Arc::new(RoomCache::default()),
        store: RoomStore::new(redis.clone(), &settings.redis.key_prefix)
            .observing_joins(room_metrics.joins_per_call.clone()),
        keyring: settings.secrets.keyring()?,
        settings: settings.rooms.clone(),
        metrics: room_metrics,
        secure_cookies: settings.gateway.public_url.starts_with("https:"),
    });
    // Serve with the rooms as they are now, then keep them fresh in the background.
    if let Err(error) = rooms
        .cache
        .refresh(&rooms.store, &rooms.metrics, rooms::unix_now())
        .await
    {
        tracing::warn!(%error, "waiting rooms: first load failed; retrying in the background");
    }
    rooms::spawn_refresh(rooms.clone(), shutdown.clone());
    let batch_sizes = HistogramVec::new(
        HistogramOpts::new(
            "statement_batch_requests",
            "Requests written by one batched statement",
        )
        .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        &["statement"],
    )
    .expect("valid histogram");
    registry
        .register(Box::new(batch_sizes.clone()))
        .expect("metrics register once");
    let counted_here = IntCounter::new(
        "limits_counted_here_total",
        "Failure-limit checks and counts made in this gateway because Redis could not be reached",
    )
    .expect("valid counter");
    registry
        .register(Box::new(counted_here.clone()))
        .expect("metrics register once");
    let guesses_failed = IntCounterVec::new(
        Opts::new(
            "guesses_failed_total",
            "Wrong booking codes, staff passwords and admin tokens, by credential: the guessing alarm",
        ),
        &["credential"],
    )
    .expect("valid counter");
    registry
        .register(Box::new(guesses_failed.clone()))
        .expect("metrics register once");
    let sms_budget_spent = IntCounterVec::new(
        Opts::new(
            "sms_budget_spent_total",
            "SMS codes refused because their region's daily SMS budget was spent",
        ),
        &["region"],
    )
    .expect("valid counter");
    registry
        .register(Box::new(sms_budget_spent.clone()))
        .expect("metrics register once");
    let expired = IntCounter::new(
        "registrations_expired_total",
        "Unverified registrations expired and erased once their last code was long dead",
    )
    .expect("valid counter");
    registry
        .register(Box::new(expired.clone()))
        .expect("metrics register once");
    let purged = IntCounterVec::new(
        Opts::new(
            "purged_rows_total",
            "Rows removed because their retention was up, by kind (people, for completed courses)",
        ),
        &["kind"],
    )
    .expect("valid counter");
    registry
        .register(Box::new(purged.clone()))
        .expect("metrics register once");
    let phones = PhoneLimits {
        people: i32::try_from(settings.gateway.registrations_per_phone).unwrap_or(i32::MAX),
        codes: i32::try_from(settings.gateway.codes_per_phone_per_day).unwrap_or(i32::MAX),
        window_hours: i32::try_from(settings.gateway.unverified_hours).unwrap_or(i32::MAX),
    };
    let state = AppState {
        policies: PolicyCache::new(pool.clone()),
        store: Store::new(pool.clone(), &batch_sizes, phones),
        settings: settings.gateway.clone(),
        hash_key: settings.secrets.hash_key()?,
        personal_data: settings.secrets.personal_data_keys()?,
        keyring: settings.secrets.keyring()?,
        pass_keys: settings.secrets.pass_keyring()?,
        rooms,
        limits: Limits::new(
            redis.clone(),
            settings.redis.key_prefix.clone(),
            counted_here,
            guesses_failed,
        ),
        templates: templates::Templates::load(),
        sms_budget_spent,
    };
    // Without Redis the gateway serves everything but the waiting rooms' joins, leaves and
    // administration (failure limits count here): it stays in the load balancer, degraded.
    use_cases::purge::spawn(pool.clone(), settings.retention.clone(), purged, shutdown.clone());
    let readiness = Readiness::new().postgres(pool).redis(redis).optional();
    let state = Arc::new(state);
    use_cases::expiry::spawn(state.clone(), expired, shutdown.clone());
    let metrics = ops::MetricsAccess::public(&settings.telemetry.metrics_token);
    let server = serve(
        listener,
        state,
        registry,
        readiness,
        metrics,
        settings.gateway.workers,
    )
    .map_err(|error| StartupError::Bind { address, error })?;
    ops::stop_on(shutdown, server.handle());
    tracing::info!(%address, "gateway listening");
    Ok(Application { server, address })
}

fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    registry: Registry,
    readiness: Readiness,
    metrics: ops::MetricsAccess,
    workers: Option<usize>,
) -> std::io::Result<Server> {
    let http_metrics = HttpMetrics::register(&registry).expect("metrics register once");
    let state = web::Data::from(state);
    let readiness = web::Data::new(readiness);
    let registry = web::Data::new(registry);
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(middleware::from_fn(http::nul::refuse_nul))
            .wrap(middleware::from_fn(http_telemetry::observe))
            .app_data(state.clone())
            .app_data(readiness.clone())
            .app_data(registry.clone())
            .app_data(http_metrics.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(16 * 1024)
                    .error_handler(|e, _| error::json_refused(e)),
            )
            .app_data(web::PathConfig::default().error_handler(|e, _| error::malformed(e)))
            .app_data(web::QueryConfig::default().error_handler(|e, _| error::malformed(e)))
            .configure(ops::routes(metrics.clone()))
            .configure(http::routes)
    })
    .disable_signals()
    .listen(listener)?;
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}
