//! The Postgres adapter's entry: connect (creating the database if needed), retrying while the
//! server is not up yet, and bring the schema to the newest migration.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres};

use crate::config::{ConfigError, DatabaseSettings, ExposeSecret};
use crate::retry::{redact_url, with_backoff};
use crate::StartupError;

use crate::statements;

statements! {
    PING = "SELECT 1";
}

/// A pooled connection idle this long is pinged before it is handed out.
const IDLE_CHECK_AFTER: Duration = Duration::from_secs(1);

/// Every migration in `migrations/`, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Connects, creates the database if it is missing, and runs pending migrations. Safe to call
/// from several processes at once: sqlx serialises migrations with an advisory lock.
pub async fn connect_and_migrate(settings: &DatabaseSettings) -> Result<PgPool, StartupError> {
    let pool = connect(settings).await?;
    MIGRATOR.run(&pool).await.map_err(StartupError::Migrations)?;
    Ok(pool)
}

/// Connects without migrating (for tools that must not change the schema).
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, StartupError> {
    let url = settings.url.expose_secret();
    let options = PgConnectOptions::from_str(url).map_err(|e| ConfigError::Key {
        key: "database.url",
        message: e.to_string(),
    })?;
    let target = redact_url(url);
    let budget = Duration::from_secs(settings.startup_retry_seconds);
    with_backoff("Postgres", &target, budget, || async {
        if !Postgres::database_exists(url).await? {
            // Another process may create it at the same moment; the next try then connects.
            Postgres::create_database(url).await?;
            tracing::info!(database = %target, "created database");
        }
        PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // sqlx already pings every connection when it returns to the pool (and closes it if
            // broken), so pinging again on every acquire only doubles the round trips of a busy
            // pool. A connection idle for a while may have been cut (a Postgres restart, a
            // firewall): that one is still checked.
            .test_before_acquire(false)
            .before_acquire(|connection, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_CHECK_AFTER {
                        connection.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await
    })
    .await
}

/// Readiness probe: one round trip.
pub async fn ping(pool: &PgPool) -> Result<(), String> {
    sqlx::query(PING)
        .execute(pool)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
