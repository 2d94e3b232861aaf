//! The Redis adapter's entry. Redis holds only what can be rebuilt or lost safely, but a
//! gateway without it cannot run the waiting room, so start-up waits for it.

use std::time::Duration;

use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};

use crate::config::{ConfigError, ExposeSecret, RedisSettings};
use crate::retry::{redact_url, with_backoff};
use crate::StartupError;

pub async fn connect(settings: &RedisSettings) -> Result<Pool, StartupError> {
    let mut config = Config::from_url(settings.url.expose_secret());
    // A new connection that takes longer than this fails, so a Redis that cannot be reached is
    // noticed; waiting for a free connection in a burst is not limited.
    config.pool = Some(PoolConfig {
        timeouts: Timeouts {
            create: Some(Duration::from_secs(2)),
            ..Timeouts::default()
        },
        ..PoolConfig::new(settings.pool_size)
    });
    let pool = config
        .create_pool(Some(Runtime::Tokio1))
        .map_err(|e| ConfigError::Key {
            key: "redis.url",
            message: e.to_string(),
        })?;
    let budget = Duration::from_secs(settings.startup_retry_seconds);
    with_backoff("Redis", &redact_url(settings.url.expose_secret()), budget, || {
        ping(&pool)
    })
    .await?;
    Ok(pool)
}

/// Readiness probe: `PING` on a pooled connection.
pub async fn ping(pool: &Pool) -> Result<(), String> {
    let mut connection = pool.get().await.map_err(|e| e.to_string())?;
    deadpool_redis::redis::cmd("PING")
        .query_async::<String>(&mut *connection)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
