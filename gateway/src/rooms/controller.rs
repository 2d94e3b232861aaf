//! The admission controller. Every gateway runs one, but only the holder of the Redis lease
//! acts: it draws the pre-queue at opening (and a random room's later draws), ends sessions
//! that are over, and advances each room's serving counter at the configured pace without
//! exceeding `max_active`, skipping clients that stopped polling.

use std::collections::HashMap;
use std::time::Instant;

use drawbridge_domain::AdmissionPace;
use rand::RngCore;

use super::cache::RoomView;
use super::metrics::RoomMetrics;
use super::store::{Advancement, RoomStore, StoreError};

/// Idle tickets one step may drop at most.
const MAX_DROPPED_PER_TICK: usize = 10_000;

pub struct Controller {
    /// This process's name in the lease.
    holder: String,
    paces: HashMap<String, (AdmissionPace, Instant)>,
}

impl Controller {
    pub fn new() -> Self {
        Controller {
            holder: uuid::Uuid::new_v4().to_string(),
            paces: HashMap::new(),
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// One step for one room; true if it wrote anything (the caller then reloads the room).
    pub async fn tick(
        &mut self,
        store: &RoomStore,
        metrics: &RoomMetrics,
        view: &RoomView,
        now: i64,
    ) -> Result<bool, StoreError> {
        let name = view.name.as_str();
        let (config, queue) = (&view.config, &view.queue);
        let Some(order) = queue.order else {
            self.paces.remove(name);
            return Ok(false);
        };
        if let Some(first) = queue.draw_due(config, now) {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            let seed: String = seed.iter().map(|b| format!("{b:02x}")).collect();
            let drawn = store
                .draw(name, &self.holder, queue.lineup.len(), first, &seed, now)
                .await?;
            if let Some(count) = drawn {
                tracing::info!(room = name, first, count, %seed, "drew the queue");
            }
            return Ok(drawn.is_some());
        }
        let (ended, active) = store.expire_sessions(name, now).await?;
        metrics
            .expired
            .with_label_values(&[name, "session"])
            .inc_by(ended);

        let (pace, last_tick) = self
            .paces
            .entry(name.to_owned())
            .or_insert_with(|| (AdmissionPace::default(), Instant::now()));
        let granted = pace.grant(config.admit_per_minute, last_tick.elapsed().as_secs_f64());
        *last_tick = Instant::now();
        let wanted = AdmissionPace::within_capacity(granted, active, config.max_active) as usize;
        let last_place = queue.lineup.last_place(order, queue.issued);
        if wanted == 0 || queue.serving >= last_place {
            return Ok(ended > 0);
        }

        let idle_before = now - i64::from(config.idle_seconds);
        let (mut admitted, mut dropped) = (Vec::new(), Vec::new());
        let mut through = queue.serving;
        // Bounded, so a front of abandoned tickets (a crowd that joined and left) is cleared
        // over several ticks instead of holding Redis for one enormous step.
        while admitted.len() < wanted && through < last_place && dropped.len() < MAX_DROPPED_PER_TICK {
            // Look a little further than needed: some at the front may have gone idle; and
            // further each time, while they have (one Redis call per batch).
            let look = (2 * (wanted - admitted.len()) + 16).max(dropped.len()).min(4096);
            let batch_end = last_place.min(through + look as u64);
            let candidates: Vec<(u64, u64)> = (through + 1..=batch_end)
                .filter_map(|place| Some((place, queue.lineup.ticket_at(order, place, queue.issued)?)))
                .collect();
            let tickets: Vec<u64> = candidates.iter().map(|&(_, ticket)| ticket).collect();
            let seen = store.last_seen(name, &tickets).await?;
            for (&(place, ticket), seen) in candidates.iter().zip(seen) {
                through = place;
                if queue.dropped.contains(ticket) {
                    continue;
                }
                match seen {
                    Some(at) if at >= idle_before => admitted.push(ticket),
                    _ => dropped.push(ticket),
                }
                if admitted.len() == wanted {
                    break;
                }
            }
            if candidates.is_empty() {
                break;
            }
        }
        let step = Advancement {
            from: queue.serving,
            through,
            admitted: &admitted,
            dropped: &dropped,
            session_ends_at: now + i64::from(config.session_seconds),
            now,
        };
        if !store.advance(name, &self.holder, &step).await? {
            return Ok(false);
        }
        metrics
            .admitted
            .with_label_values(&[name])
            .inc_by(admitted.len() as u64);
        metrics
            .expired
            .with_label_values(&[name, "idle"])
            .inc_by(dropped.len() as u64);
        tracing::debug!(
            room = name,
            through,
            admitted = admitted.len(),
            dropped = dropped.len(),
            "advanced"
        );
        Ok(true)
    }
}
