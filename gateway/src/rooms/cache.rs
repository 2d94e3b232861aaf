//! Each gateway's in-process copy of every room: configuration and queue state, refreshed from
//! Redis in the background. Status polls and the guard read only this copy, so they cost no
//! Redis round trip; the polls themselves are remembered here and written to Redis in one
//! command per room and refresh, so idle clients can be told apart from waiting ones.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use drawbridge_domain::queue::RATE_WINDOW_SECONDS;
use drawbridge_domain::{Queue, RoomConfig, RoomMode};

use super::metrics::RoomMetrics;
use super::store::{Cursor, RoomStore, StoreError};

/// A room as this gateway last saw it.
#[derive(Debug, Clone)]
pub struct RoomView {
    pub name: String,
    pub config: RoomConfig,
    pub queue: Queue,
    /// Admitted sessions still running.
    pub active: u64,
    cursor: Cursor,
}

impl RoomView {
    pub fn guards(&self, region: &str) -> bool {
        self.config.guards.iter().any(|g| g == region)
    }
}

#[derive(Default)]
pub struct RoomCache {
    views: RwLock<HashMap<String, Arc<RoomView>>>,
    /// Waiting tickets that polled since the last refresh, per room.
    polled: Mutex<HashMap<String, HashSet<u64>>>,
    /// The highest ticket this gateway handed out, per room (see `JoinRequest::floor`).
    issued_here: Mutex<HashMap<String, u64>>,
}

impl RoomCache {
    pub fn view(&self, room: &str) -> Option<Arc<RoomView>> {
        self.views.read().expect("poisoned").get(room).cloned()
    }

    pub fn views(&self) -> Vec<Arc<RoomView>> {
        self.views.read().expect("poisoned").values().cloned().collect()
    }

    /// The rooms guarding `region`.
    pub fn guarding(&self, region: &str) -> Vec<Arc<RoomView>> {
        let views = self.views.read().expect("poisoned");
        views.values().filter(|v| v.guards(region)).cloned().collect()
    }

    pub fn note_poll(&self, room: &str, ticket: u64) {
        let mut polled = self.polled.lock().expect("poisoned");
        match polled.get_mut(room) {
            Some(tickets) => {
                tickets.insert(ticket);
            }
            None => {
                polled.insert(room.to_owned(), HashSet::from([ticket]));
            }
        }
    }

    pub fn note_issued(&self, room: &str, ticket: u64) {
        let mut issued = self.issued_here.lock().expect("poisoned");
        let highest = issued.entry(room.to_owned()).or_default();
        *highest = (*highest).max(ticket);
    }

    /// The least ticket counter Redis may have: nothing this gateway handed out or saw issued.
    pub fn ticket_floor(&self, room: &str) -> u64 {
        let here = self.issued_here.lock().expect("poisoned").get(room).copied();
        let seen = self.view(room).map(|v| v.queue.issued);
        here.unwrap_or(0).max(seen.unwrap_or(0))
    }

    /// Writes the polls collected since the last call to Redis.
    pub async fn flush_polls(&self, store: &RoomStore, now: i64) -> Result<(), StoreError> {
        let polled = std::mem::take(&mut *self.polled.lock().expect("poisoned"));
        for (room, tickets) in polled {
            let tickets: Vec<u64> = tickets.into_iter().collect();
            store.touch(&room, &tickets, now).await?;
        }
        Ok(())
    }

    /// Reloads every room from Redis.
    pub async fn refresh(
        &self,
        store: &RoomStore,
        metrics: &RoomMetrics,
        now: i64,
    ) -> Result<(), StoreError> {
        let names = store.rooms().await?;
        for name in &names {
            self.refresh_room(store, metrics, name, now).await?;
        }
        let names: HashSet<&String> = names.iter().collect();
        self.views
            .write()
            .expect("poisoned")
            .retain(|name, _| names.contains(name));
        Ok(())
    }

    /// Reloads one room: what changed since this gateway last looked.
    pub async fn refresh_room(
        &self,
        store: &RoomStore,
        metrics: &RoomMetrics,
        name: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let old = self.view(name);
        let cursor = old.as_ref().map_or_else(Cursor::default, |v| v.cursor);
        let snapshot = store.snapshot(name, cursor).await?;
        let Some(config) = snapshot.config else {
            return Ok(());
        };
        let mut view = match old {
            Some(old) => RoomView::clone(&old),
            None => RoomView {
                name: name.to_owned(),
                config: config.clone(),
                queue: Queue {
                    order: None,
                    lineup: Default::default(),
                    issued: 0,
                    serving: 0,
                    advances: Vec::new(),
                    trimmed_through: 0,
                    dropped: Arc::default(),
                },
                active: 0,
                cursor,
            },
        };
        view.queue.order = config.mode.order();
        view.cursor.draws += snapshot.draws.len();
        for draw in snapshot.draws {
            if let Err(error) = view.queue.lineup.push(draw) {
                tracing::error!(room = name, %error, "ignoring a draw that does not fit");
            }
        }
        view.cursor.advances += snapshot.advances.len();
        if let Some(last) = snapshot.advances.last() {
            view.queue.serving = view.queue.serving.max(last.through);
        }
        view.queue.advances.extend(snapshot.advances);
        let keep_since = now - i64::from(config.session_seconds).max(RATE_WINDOW_SECONDS) - 60;
        view.queue.trim(keep_since);
        view.cursor.dropped += snapshot.dropped.len();
        if !snapshot.dropped.is_empty() {
            let mut dropped = HashSet::clone(&view.queue.dropped);
            dropped.extend(snapshot.dropped);
            view.queue.dropped = Arc::new(dropped);
        }
        // Never backwards: a Redis that lost recent writes must not make tickets reappear.
        view.queue.issued = view.queue.issued.max(snapshot.issued);
        view.active = snapshot.active;
        view.config = config;

        let queued = view.queue.issued.saturating_sub(view.queue.serving);
        metrics.queued.with_label_values(&[name]).set(queued as i64);
        metrics.active.with_label_values(&[name]).set(view.active as i64);
        let rate = match view.config.mode {
            RoomMode::Fifo | RoomMode::Random => view.queue.rate_per_minute(now),
            RoomMode::Passthrough | RoomMode::Closed => 0.0,
        };
        metrics.admission_rate.with_label_values(&[name]).set(rate);
        self.views
            .write()
            .expect("poisoned")
            .insert(name.to_owned(), Arc::new(view));
        Ok(())
    }
}
