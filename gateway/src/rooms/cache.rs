//! Each gateway's in-process copy of every room: configuration and queue state, refreshed from
//! Redis in the background. Status polls and the guard read only this copy, so they cost no
//! Redis round trip; the polls themselves are remembered here and written to Redis in one
//! command per room and refresh, so idle clients can be told apart from waiting ones.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use drawbridge_domain::waiting_room::queue::RATE_WINDOW_SECONDS;
use drawbridge_domain::{Queue, RoomConfig, RoomMode};
use rustc_hash::{FxHashMap, FxHashSet};

use super::metrics::RoomMetrics;
use super::store::{Cursor, RoomStore, StoreError};

/// A room as this gateway last saw it.
#[derive(Debug, Clone)]
pub struct RoomView {
    pub name: String,
    /// The name of the cookie that holds the room's ticket token.
    pub ticket_cookie: String,
    pub config: RoomConfig,
    /// `config.opens_at` as answers write it (RFC 3339, as chrono's `Serialize` does).
    pub opens_at: String,
    pub queue: Queue,
    /// Admitted sessions still running.
    pub active: u64,
    /// The room's count of tickets handed out here, looked up once.
    pub joined: prometheus::IntCounter,
    cursor: Cursor,
}

impl RoomView {
    pub fn guards(&self, region: &str) -> bool {
        self.config.guards.iter().any(|g| g == region)
    }
}

/// Shards of the polls noted, so that worker threads (each takes its own) do not wait on one
/// lock: every status poll notes itself.
const POLL_SHARDS: usize = 16;

#[derive(Default)]
pub struct RoomCache {
    views: RwLock<FxHashMap<String, Arc<RoomView>>>,
    /// Waiting tickets that polled since the last refresh, per room.
    polled: [Mutex<FxHashMap<String, FxHashSet<u64>>>; POLL_SHARDS],
}

/// This thread's shard of [`RoomCache::note_poll`].
fn poll_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % POLL_SHARDS;
    }
    SHARD.with(|shard| *shard)
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
        let mut polled = self.polled[poll_shard()].lock().expect("poisoned");
        match polled.get_mut(room) {
            Some(tickets) => {
                tickets.insert(ticket);
            }
            None => {
                polled.insert(room.to_owned(), FxHashSet::from_iter([ticket]));
            }
        }
    }

    /// Writes the polls collected since the last call to Redis.
    pub async fn flush_polls(&self, store: &RoomStore, now: i64) -> Result<(), StoreError> {
        let mut polled: HashMap<String, FxHashSet<u64>> = HashMap::new();
        for shard in &self.polled {
            let taken = std::mem::take(&mut *shard.lock().expect("poisoned"));
            for (room, tickets) in taken {
                polled.entry(room).or_default().extend(tickets);
            }
        }
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
                ticket_cookie: format!("drawbridge_room_{name}"),
                config: config.clone(),
                opens_at: String::new(),
                queue: Queue {
                    order: None,
                    lineup: Default::default(),
                    issued: 0,
                    serving: 0,
                    advances: Vec::new(),
                    trimmed_through: 0,
                    dropped: Default::default(),
                },
                active: 0,
                joined: metrics.joined.with_label_values(&[name]),
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
        view.queue.dropped.extend(snapshot.dropped);
        // Never backwards: a Redis that lost recent writes must not make tickets reappear.
        view.queue.issued = view.queue.issued.max(snapshot.issued);
        view.active = snapshot.active;
        view.opens_at = config
            .opens_at
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
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
