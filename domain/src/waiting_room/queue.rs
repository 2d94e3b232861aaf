//! One room's queue as a gateway sees it: the draws, the serving counter with its record of
//! advances, the tickets that gave up their place. From these alone it answers where a ticket
//! stands, so a status poll needs no I/O.

use crate::waiting_room::lineup::{Lineup, Order};
use crate::waiting_room::room::{estimate_wait_seconds, measured_rate_per_minute, Advance, RoomConfig};
use crate::waiting_room::tickets::TicketSet;

/// Seconds over which the queue's pace is measured for wait estimates.
pub const RATE_WINDOW_SECONDS: i64 = 60;

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Waiting for a draw (the room has not opened, or a random room's next draw).
    Prequeue {
        /// Estimated seconds until admission.
        eta_seconds: u64,
    },
    /// Has a place; `position` 1 is next.
    Queued {
        /// Places from the front.
        position: u64,
        /// Estimated seconds until admission.
        eta_seconds: u64,
    },
    /// Admitted; the session runs until `session_ends_at` (unix seconds).
    Admitted {
        /// When the admission ends.
        session_ends_at: i64,
    },
    /// Was admitted, and the session has ended.
    SessionOver,
    /// Left, or stopped polling and lost the place.
    Dropped,
}

/// The state of one room's queue.
#[derive(Debug, Clone)]
pub struct Queue {
    /// Queue order, from the room's mode (`None`: the room does not queue now).
    pub order: Option<Order>,
    /// The draws so far.
    pub lineup: Lineup,
    /// Tickets handed out so far.
    pub issued: u64,
    /// The serving counter: every place up to it has been admitted or skipped.
    pub serving: u64,
    /// Recent advances of the serving counter, oldest first.
    pub advances: Vec<Advance>,
    /// Every place up to this was admitted before the kept advances (0: nothing trimmed).
    pub trimmed_through: u64,
    /// Tickets that left or were dropped for idleness.
    pub dropped: TicketSet,
}

impl Queue {
    /// Where `ticket` stands at `now` under `config`.
    pub fn standing(&self, ticket: u64, config: &RoomConfig, now: i64) -> Standing {
        // Ticket 0 comes from a passthrough room and has no place once the room queues.
        if ticket == 0 || self.dropped.contains(ticket) {
            return Standing::Dropped;
        }
        let order = self.order.unwrap_or(Order::Fifo);
        let until_open = config.opens_at.timestamp() - now;
        let estimate = |ahead| {
            estimate_wait_seconds(
                ahead,
                self.rate_per_minute(now),
                config.admit_per_minute,
                until_open,
            )
        };
        match self.lineup.place(order, ticket) {
            None => {
                // Expected place: behind everyone drawn, in the middle of the undrawn.
                let drawn_ahead = self.lineup.drawn_through().saturating_sub(self.serving);
                let undrawn = self.issued.saturating_sub(self.lineup.drawn_through());
                Standing::Prequeue {
                    eta_seconds: estimate(drawn_ahead + undrawn.div_ceil(2)),
                }
            }
            Some(place) if place <= self.serving => match self.admitted_at(place) {
                Some(at) if now < at + i64::from(config.session_seconds) => Standing::Admitted {
                    session_ends_at: at + i64::from(config.session_seconds),
                },
                _ => Standing::SessionOver,
            },
            Some(place) => {
                let position = place - self.serving;
                Standing::Queued {
                    position,
                    eta_seconds: estimate(position),
                }
            }
        }
    }

    /// Places the queue advanced per minute recently.
    pub fn rate_per_minute(&self, now: i64) -> f64 {
        measured_rate_per_minute(&self.advances, self.trimmed_through, now, RATE_WINDOW_SECONDS)
    }

    /// When `place` was admitted; `None` if that record was trimmed (long ago).
    fn admitted_at(&self, place: u64) -> Option<i64> {
        if place <= self.trimmed_through {
            return None;
        }
        let index = self.advances.partition_point(|a| a.through < place);
        self.advances.get(index).map(|a| a.at)
    }

    /// Forgets advances from before `before` (unix seconds), keeping the newest one, so the
    /// record stays small while the event runs for hours. Choose `before` older than the rate
    /// window and the longest session: places admitted earlier count as sessions over.
    pub fn trim(&mut self, before: i64) {
        let old = self.advances.partition_point(|a| a.at < before);
        let old = old.min(self.advances.len().saturating_sub(1));
        if old > 0 {
            self.trimmed_through = self.advances[old - 1].through;
            self.advances.drain(..old);
        }
    }

    /// The first ticket of the draw due now, if one is: the opening draw once `opens_at` has
    /// passed, and in a random room the next draw once everyone drawn has been served and
    /// someone new has joined.
    pub fn draw_due(&self, config: &RoomConfig, now: i64) -> Option<u64> {
        let order = self.order?;
        if now < config.opens_at.timestamp() {
            return None;
        }
        let drawn = self.lineup.drawn_through();
        let due = self.lineup.is_empty()
            || (order == Order::Random && self.serving >= drawn && self.issued > drawn);
        due.then_some(drawn + 1)
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::waiting_room::lineup::Shuffle;

    const NOW: i64 = 1_700_000_000;

    fn config() -> RoomConfig {
        RoomConfig {
            opens_at: DateTime::from_timestamp(NOW, 0).unwrap(),
            admit_per_minute: 60,
            session_seconds: 100,
            ..RoomConfig::default()
        }
    }

    fn queue(order: Order) -> Queue {
        Queue {
            order: Some(order),
            lineup: Lineup::default(),
            issued: 0,
            serving: 0,
            advances: Vec::new(),
            trimmed_through: 0,
            dropped: TicketSet::default(),
        }
    }

    fn advance(queue: &mut Queue, through: u64, at: i64) {
        queue.serving = through;
        queue.advances.push(Advance { through, at });
    }

    #[test]
    fn before_opening_everyone_is_in_the_prequeue_with_the_wait_until_opening() {
        let mut queue = queue(Order::Fifo);
        queue.issued = 10;
        let standing = queue.standing(3, &config(), NOW - 30);
        // 30 s to opening, then on average 5 people ahead at one per second.
        assert_eq!(standing, Standing::Prequeue { eta_seconds: 35 });
        assert_eq!(queue.draw_due(&config(), NOW - 1), None);
        assert_eq!(queue.draw_due(&config(), NOW), Some(1));
    }

    #[test]
    fn after_the_draw_places_are_known_and_admissions_expire() {
        let mut queue = queue(Order::Fifo);
        queue.issued = 12;
        queue.lineup.push(Shuffle::new(1, 10, [9; 32], NOW)).unwrap();
        assert_eq!(queue.draw_due(&config(), NOW + 1), None);
        assert_eq!(
            queue.standing(12, &config(), NOW),
            Standing::Queued {
                position: 12,
                eta_seconds: 12
            }
        );
        advance(&mut queue, 4, NOW + 10);
        advance(&mut queue, 12, NOW + 20);
        let admitted = queue.standing(12, &config(), NOW + 20);
        assert_eq!(
            admitted,
            Standing::Admitted {
                session_ends_at: NOW + 120
            }
        );
        let first = queue.lineup.ticket_at(Order::Fifo, 1, 12).unwrap();
        assert_eq!(
            queue.standing(first, &config(), NOW + 20),
            Standing::Admitted {
                session_ends_at: NOW + 110
            }
        );
        assert_eq!(queue.standing(first, &config(), NOW + 110), Standing::SessionOver);
        queue.issued = 13;
        // Measured: 12 places in 10 s since the first advance.
        assert_eq!(
            queue.standing(13, &config(), NOW + 20),
            Standing::Queued {
                position: 1,
                eta_seconds: 1
            }
        );
    }

    #[test]
    fn dropped_tickets_stand_nowhere() {
        let mut queue = queue(Order::Fifo);
        queue.dropped = [5].into_iter().collect();
        assert_eq!(queue.standing(5, &config(), NOW), Standing::Dropped);
        assert_eq!(queue.standing(0, &config(), NOW), Standing::Dropped);
    }

    #[test]
    fn a_random_room_draws_again_once_everyone_drawn_is_served() {
        let mut queue = queue(Order::Random);
        queue.lineup.push(Shuffle::new(1, 3, [1; 32], NOW)).unwrap();
        queue.issued = 5;
        assert!(matches!(
            queue.standing(5, &config(), NOW),
            Standing::Prequeue { .. }
        ));
        assert_eq!(queue.draw_due(&config(), NOW), None, "three drawn still wait");
        advance(&mut queue, 3, NOW + 3);
        assert_eq!(queue.draw_due(&config(), NOW + 3), Some(4));
        queue.order = None;
        assert_eq!(
            queue.draw_due(&config(), NOW + 3),
            None,
            "passthrough and closed never draw"
        );
    }

    #[test]
    fn trimming_keeps_the_newest_advance_and_ends_old_sessions() {
        let mut queue = queue(Order::Fifo);
        queue.lineup.push(Shuffle::new(1, 0, [1; 32], NOW)).unwrap();
        queue.issued = 30;
        advance(&mut queue, 10, NOW);
        advance(&mut queue, 20, NOW + 50);
        queue.trim(NOW + 1000);
        assert_eq!(
            queue.advances,
            [Advance {
                through: 20,
                at: NOW + 50
            }]
        );
        assert_eq!(queue.trimmed_through, 10);
        assert_eq!(queue.standing(5, &config(), NOW + 60), Standing::SessionOver);
        assert_eq!(
            queue.standing(15, &config(), NOW + 60),
            Standing::Admitted {
                session_ends_at: NOW + 150
            }
        );
        // The pace counts only what happened in the window, trimmed or not.
        assert_eq!(queue.rate_per_minute(NOW + 100), 10.0);
    }
}
