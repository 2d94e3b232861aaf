//! The RabbitMQ adapter's entry: a lapin connection driven by tokio.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

use crate::config::{AmqpSettings, ExposeSecret};
use crate::retry::{redact_url, with_backoff};
use crate::StartupError;

/// One connection attempt, for reconnect loops that have their own pacing. The connection is
/// named after the prefix, so operators (and tests) can tell deployments apart in the broker.
pub async fn connect_once(settings: &AmqpSettings) -> Result<Connection, lapin::Error> {
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("drawbridge/{}", settings.prefix).into())
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    Connection::connect(settings.url.expose_secret(), properties).await
}

/// Connects at start-up, retrying with backoff while the broker is not up yet.
pub async fn connect(settings: &AmqpSettings) -> Result<Connection, StartupError> {
    let budget = Duration::from_secs(settings.startup_retry_seconds);
    with_backoff(
        "RabbitMQ",
        &redact_url(settings.url.expose_secret()),
        budget,
        || connect_once(settings),
    )
    .await
}
