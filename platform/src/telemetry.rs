//! Structured logs through `tracing`. Installed once per process; later calls (tests that build
//! several apps) keep the first subscriber.

use tracing_subscriber::EnvFilter;

use crate::config::TelemetrySettings;

pub fn init(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log_filter));
    // Logs go to stderr so command output (e.g. `allocator --once`) stays machine-readable.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // An error only means a subscriber is already installed.
    let _ = if settings.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
