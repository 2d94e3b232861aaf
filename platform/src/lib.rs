//! Plumbing shared by every Drawbridge service: typed configuration, telemetry, connections to
//! Postgres, Redis and RabbitMQ (retried with backoff at start-up), the transactional outbox,
//! and the `/healthz`, `/readyz` and `/metrics` endpoints.

pub mod amqp;
pub mod audit;
pub mod capacity;
pub mod centres;
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
pub mod table_file;
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

/// Declares a module's SQL statements as constants, each whole and static, and lists them in
/// `STATEMENTS` so that a test prepares every one against the migrated schema: a renamed column
/// fails CI, not production.
#[macro_export]
macro_rules! statements {
    ($($(#[$doc:meta])* $name:ident = $sql:expr;)*) => {
        $($(#[$doc])* pub(crate) const $name: &str = $sql;)*

        /// Every statement of this module, by name, for the schema check.
        pub const STATEMENTS: &[(&str, &str)] = &[$((stringify!($name), $name),)*];
    };
}

/// The statements of several modules as `module::NAME` and text: what a crate hands to the
/// schema check.
pub fn list_statements(modules: &[(&str, &[(&str, &'static str)])]) -> Vec<(String, &'static str)> {
    modules
        .iter()
        .flat_map(|(module, statements)| {
            statements
                .iter()
                .map(move |(name, sql)| (format!("{module}::{name}"), *sql))
        })
        .collect()
}

/// Every SQL statement of the platform, for the schema check.
pub fn all_statements() -> Vec<(String, &'static str)> {
    list_statements(&[
        ("audit", audit::STATEMENTS),
        ("capacity", capacity::STATEMENTS),
        ("centres", centres::STATEMENTS),
        ("draws", draws::STATEMENTS),
        ("outbox", outbox::STATEMENTS),
        ("policies", policies::STATEMENTS),
        ("postgres", postgres::STATEMENTS),
        ("staff", staff::STATEMENTS),
    ])
}
