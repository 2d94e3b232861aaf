//! The surge-proof virtual waiting room: rooms meter visitors into the APIs they guard at a
//! safe pace, fairly, on stateless gateways that share Redis.
//!
//! - `store`: the state in Redis (tickets, draws, the serving counter, sessions, the lease);
//! - `cache`: each gateway's in-process copy, so status polls and the guard cost no Redis call;
//! - `controller`: the single admission controller (a Redis lease);
//!
//! Their HTTP side lives with the other handlers: the visitors' API (`http::rooms`), the
//! operators' API (`http::room_admin`), the waiting page (`http::pages`) and the guard of the
//! APIs behind a room (`http::extract::Admitted`).

mod cache;
mod controller;
pub mod metrics;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use drawbridge_domain::waiting_room::room;
use drawbridge_domain::{ClientSecret, Keyring, RoomClaims, RoomTokenError, Verified};
use drawbridge_platform::config::RoomsSettings;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::ApiError;

pub use cache::{RoomCache, RoomView};
use controller::Controller;
use metrics::RoomMetrics;
pub use store::RoomStore;

/// An admission the guard let through, to be spent by the registration it admits.
#[derive(Debug, Clone)]
pub struct Admission {
    pub room: String,
    pub ticket: u64,
    /// When the admission token expires (unix seconds).
    pub ends_at: i64,
}

/// What the room handlers share.
pub struct Rooms {
    pub cache: Arc<RoomCache>,
    pub store: RoomStore,
    pub keyring: Keyring,
    pub settings: RoomsSettings,
    pub metrics: RoomMetrics,
    /// Cookies get `Secure` when the site is served over HTTPS.
    pub secure_cookies: bool,
}

impl Rooms {
    /// The room, or 404.
    pub fn room(&self, name: &str) -> Result<std::sync::Arc<RoomView>, ApiError> {
        self.cache.view(name).ok_or_else(|| {
            ApiError::not_found(format!(
                "There is no waiting room {name:?}. Check the address you were given."
            ))
        })
    }

    /// Verifies a room token of `purpose` that a client with the secret `client` presented;
    /// refusals are counted per room and code.
    pub fn verify(
        &self,
        client: Option<&ClientSecret>,
        view: &RoomView,
        purpose: &str,
        token: Option<&str>,
        now: i64,
    ) -> Result<Verified<RoomClaims>, RoomTokenError> {
        let result = token
            .ok_or(RoomTokenError::Missing)
            .and_then(|token| {
                let verified = room::verify(&self.keyring, purpose, token, now);
                room::check_claims(verified, &view.name, client)
            })
            .and_then(|verified| {
                if view.queue.dropped.contains(verified.claims.ticket) {
                    Err(RoomTokenError::Dropped)
                } else {
                    Ok(verified)
                }
            });
        if let Err(error) = &result {
            self.metrics
                .rejected_tokens
                .with_label_values(&[&view.name, error.code()])
                .inc();
        }
        result
    }

    pub fn sign(&self, purpose: &str, claims: &RoomClaims, now: i64, expires_at: i64) -> String {
        self.keyring.sign(purpose, claims, now, expires_at)
    }
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The background task of every gateway: write the polls seen, reload every room, and, while
/// holding the controller lease, advance the queues. Stops when `shutdown` is cancelled.
pub fn spawn_refresh(rooms: Arc<Rooms>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let every = Duration::from_millis(rooms.settings.refresh_millis);
        let mut controller = Controller::new();
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            if let Err(error) = refresh_and_control(&rooms, &mut controller).await {
                // Keep serving from the last good copy; Redis may be restarting.
                tracing::warn!(%error, "waiting rooms: refresh failed");
            }
        }
    });
}

async fn refresh_and_control(rooms: &Rooms, controller: &mut Controller) -> Result<(), store::StoreError> {
    let (cache, store, metrics) = (&rooms.cache, &rooms.store, &rooms.metrics);
    let now = unix_now();
    cache.flush_polls(store, now).await?;
    cache.refresh(store, metrics, now).await?;
    if !store
        .hold_lease(controller.holder(), rooms.settings.lease_millis)
        .await?
    {
        return Ok(());
    }
    for view in cache.views() {
        let span = tracing::debug_span!("admission_controller", room = %view.name);
        if controller
            .tick(store, metrics, &view, now)
            .instrument(span)
            .await?
        {
            cache.refresh_room(store, metrics, &view.name, now).await?;
        }
    }
    Ok(())
}
