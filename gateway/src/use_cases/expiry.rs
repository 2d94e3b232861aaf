//! Unverified registrations hold neither a phone nor personal data for good: once the last
//! code of one has been dead for `gateway.unverified_hours`, it expires, erased. Every gateway
//! sweeps; the rows are locked with SKIP LOCKED, so sweepers never wait on each other.

use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounter;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::store::registrants;
use crate::AppState;

/// Expires every registration due, a few hundred per transaction; how many.
pub async fn expire_unverified(state: &AppState) -> Result<usize, ApiError> {
    let hours = i32::try_from(state.settings.unverified_hours).unwrap_or(i32::MAX);
    let mut expired = 0;
    loop {
        let mut tx = state.store.begin().await?;
        let due = registrants::unverified_long_dead(&mut tx, hours).await?;
        if due.is_empty() {
            return Ok(expired);
        }
        registrants::expire(&mut tx, &due).await?;
        tx.commit().await?;
        expired += due.len();
    }
}

/// Sweeps every `gateway.expiry_sweep_seconds` until `shutdown`, counting what expired.
pub fn spawn(state: Arc<AppState>, expired: IntCounter, shutdown: CancellationToken) {
    let every = Duration::from_secs(state.settings.expiry_sweep_seconds.into());
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match expire_unverified(&state).await {
                Ok(0) => {}
                Ok(count) => {
                    expired.inc_by(count as u64);
                    tracing::info!(count, "unverified registrations expired and erased");
                }
                Err(error) => {
                    tracing::warn!(%error, "unverified registrations: the sweep failed; trying again")
                }
            }
        }
    });
}
