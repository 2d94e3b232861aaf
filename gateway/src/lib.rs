//! The gateway: every HTTP API and web page of Drawbridge. `build` wires configuration to the
//! adapters (Postgres, Redis) and returns a bound, not yet running, server; `main` and the
//! tests use it alike.

mod batch;
mod bookings;
mod callcentre;
mod centres;
mod draws;
mod error;
mod limits;
mod me;
mod offers;
mod pages;
mod policy_cache;
mod regions;
mod registrations;
pub mod rooms;
mod staff;
mod verification;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpResponse, HttpServer};
use drawbridge_domain::Keyring;
use drawbridge_platform::config::GatewaySettings;
use drawbridge_platform::http_telemetry::{self, HttpMetrics};
use drawbridge_platform::ops::{self, Readiness};
use drawbridge_platform::{postgres, redis, Settings, StartupError};
use prometheus::{HistogramOpts, HistogramVec, Registry};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

use crate::policy_cache::PolicyCache;
use crate::rooms::metrics::RoomMetrics;
use crate::rooms::{RoomCache, RoomStore, Rooms};

/// What request handlers share.
pub struct AppState {
    pub pool: PgPool,
    pub settings: GatewaySettings,
    /// Key of the keyed hashes under which codes are stored.
    pub hash_key: Vec<u8>,
    policies: PolicyCache,
    pub rooms: Arc<Rooms>,
    /// Signs and verifies offer links and check-in passes.
    keyring: Keyring,
    /// For counters shared by all gateways (booking-code guesses).
    redis: deadpool_redis::Pool,
    redis_prefix: String,
    /// Web registrations, verifications and acceptances, batched (see `batch`).
    registrations: batch::Batcher<registrations::NewRegistration, bool>,
    verifications: batch::Batcher<verification::Guess, verification::Verification>,
    acceptances: batch::Batcher<bookings::Acceptance, bool>,
}

/// The OpenAPI document, kept beside the code it describes.
const OPENAPI: &str = include_str!("../openapi.json");

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
    let state = AppState {
        policies: PolicyCache::new(pool.clone()),
        pool: pool.clone(),
        settings: settings.gateway.clone(),
        hash_key: settings.secrets.hash_key()?,
        keyring: settings.secrets.keyring()?,
        rooms,
        redis: redis.clone(),
        redis_prefix: settings.redis.key_prefix.clone(),
        registrations: registrations::batcher(pool.clone(), batch_sizes.with_label_values(&["register"])),
        verifications: verification::batcher(pool.clone(), batch_sizes.with_label_values(&["verify"])),
        acceptances: bookings::batcher(pool.clone(), batch_sizes.with_label_values(&["accept"])),
    };
    let readiness = Readiness::new().postgres(pool).redis(redis);
    let server = serve(listener, state, registry, readiness, settings.gateway.workers)
        .map_err(|error| StartupError::Bind { address, error })?;
    ops::stop_on(shutdown, server.handle());
    tracing::info!(%address, "gateway listening");
    Ok(Application { server, address })
}

fn serve(
    listener: TcpListener,
    state: AppState,
    registry: Registry,
    readiness: Readiness,
    workers: Option<usize>,
) -> std::io::Result<Server> {
    let http_metrics = HttpMetrics::register(&registry).expect("metrics register once");
    let state = web::Data::new(state);
    let readiness = web::Data::new(readiness);
    let registry = web::Data::new(registry);
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(middleware::from_fn(http_telemetry::observe))
            .app_data(state.clone())
            .app_data(readiness.clone())
            .app_data(registry.clone())
            .app_data(http_metrics.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(16 * 1024)
                    .error_handler(|e, _| error::malformed(e)),
            )
            .app_data(web::PathConfig::default().error_handler(|e, _| error::malformed(e)))
            .app_data(web::QueryConfig::default().error_handler(|e, _| error::malformed(e)))
            .configure(ops::routes)
            .configure(routes)
    })
    .disable_signals()
    .listen(listener)?;
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}

fn routes(config: &mut web::ServiceConfig) {
    // First, under a static prefix: status polls are the surge, and every dynamic route tried
    // before the right one costs a regex match.
    config.service(
        web::scope("/v1/rooms")
            .route("/{room}/status", web::get().to(rooms::api::status))
            .route("/{room}/join", web::post().to(rooms::api::join))
            .route("/{room}/leave", web::post().to(rooms::api::leave))
            .route("/{room}/challenge", web::post().to(rooms::api::challenge))
            .default_service(web::to(not_found)),
    );
    config
        .route("/", web::get().to(pages::index))
        .route("/regions/{region}/policy", web::get().to(pages::policy))
        .route("/regions/{region}/check", web::get().to(pages::check))
        .route("/openapi.json", web::get().to(openapi))
        .route("/v1/regions", web::get().to(regions::list))
        .route("/v1/regions/{region}/policy", web::get().to(regions::policy))
        .route(
            "/v1/regions/{region}/eligibility",
            web::post().to(regions::eligibility),
        )
        .route(
            "/v1/regions/{region}/registrations",
            web::post().to(registrations::create),
        )
        .route("/rooms/{room}", web::get().to(rooms::page::waiting_room))
        .route("/v1/admin/rooms", web::get().to(rooms::admin::list))
        .route("/v1/admin/rooms/{room}", web::get().to(rooms::admin::show))
        .route("/v1/admin/rooms/{room}", web::put().to(rooms::admin::put))
        .route(
            "/v1/registrations/{id}/verify",
            web::post().to(verification::verify),
        )
        .route(
            "/v1/registrations/{id}/resend",
            web::post().to(verification::resend),
        )
        .route("/v1/me", web::get().to(me::show))
        .route("/v1/me", web::patch().to(me::change))
        .route("/v1/me", web::delete().to(me::withdraw))
        .route("/v1/me/offer/accept", web::post().to(me::accept))
        .route("/v1/me/offer/decline", web::post().to(me::decline))
        .route("/v1/me/booking/cancel", web::post().to(me::cancel))
        .route("/offers/{id}", web::get().to(offers::page))
        .route("/offers/{id}/accept", web::post().to(offers::accept_form))
        .route("/offers/{id}/decline", web::post().to(offers::decline_form))
        .route("/v1/offers/{id}/accept", web::post().to(offers::accept))
        .route("/v1/offers/{id}/decline", web::post().to(offers::decline))
        .route("/v1/staff/sessions", web::post().to(staff::login))
        .route("/v1/staff/sessions/current", web::delete().to(staff::logout))
        .route("/v1/staff/me", web::get().to(staff::me))
        .route("/v1/staff/actions", web::get().to(staff::actions))
        .route(
            "/v1/callcentre/registrations",
            web::post().to(callcentre::register),
        )
        .route("/v1/callcentre/lookup", web::post().to(callcentre::lookup))
        .route(
            "/v1/callcentre/registrants/{id}",
            web::get().to(callcentre::registrant),
        )
        .route(
            "/v1/callcentre/registrants/{id}/offer/accept",
            web::post().to(callcentre::accept),
        )
        .route(
            "/v1/callcentre/registrants/{id}/offer/decline",
            web::post().to(callcentre::decline),
        )
        .route(
            "/v1/callcentre/registrants/{id}/booking/cancel",
            web::post().to(callcentre::cancel),
        )
        .route(
            "/v1/callcentre/registrants/{id}/withdraw",
            web::post().to(callcentre::withdraw),
        )
        .route("/v1/centres/{centre}/capacity", web::post().to(centres::publish))
        .route(
            "/v1/centres/{centre}/capacity/{id}/cancel",
            web::post().to(centres::withdraw),
        )
        .route("/v1/centres/{centre}/schedule", web::get().to(centres::schedule))
        .route("/v1/centres/{centre}/checkins", web::post().to(centres::check_in))
        .route("/v1/draws", web::get().to(draws::list))
        .route("/v1/draws/{id}", web::get().to(draws::show))
        .route("/v1/draws/{id}/manifest", web::get().to(draws::manifest))
        .default_service(web::to(not_found));
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(
        "There is nothing at this address. The API is described at /openapi.json.".into(),
    ))
}
