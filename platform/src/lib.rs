//! Plumbing shared by every Drawbridge service: typed configuration, telemetry, connections to
//! Postgres, Redis and RabbitMQ (retried with backoff at start-up), the transactional outbox,
//! and the `/healthz`, `/readyz` and `/metrics` endpoints.

pub mod amqp;
pub mod capacity;
pub mod config;
pub mod copy;
pub mod draws;
pub mod http_telemetry;
pub mod ops;
pub mod outbox;
pub mod policies;
pub mod postgres;
pub mod redis;
pub mod retry;
pub mod staff;
pub mod states;
pub mod telemetry;

pub use config::{ConfigError, Settings};

/// A dependency could not be reached or prepared while a service was starting.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{service} at {target} is not reachable after {waited_seconds} s: {detail}")]
    Unreachable {
        service: &'static str,
        target: String,
        waited_seconds: u64,
        detail: String,
    },
    #[error("database migrations failed: {0}")]
    Migrations(sqlx::migrate::MigrateError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not bind {address}: {error}")]
    Bind {
        address: std::net::SocketAddr,
        error: std::io::Error,
    },
}
