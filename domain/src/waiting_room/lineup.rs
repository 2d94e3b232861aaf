//! The order of a waiting room's queue: who stands at which place.
//!
//! Every join takes the next ticket number. Tickets are ordered by **draws**: a draw takes a
//! contiguous range of tickets and gives them the same range of places in a uniformly random
//! order (Fisher–Yates driven by ChaCha20 from a recorded 256-bit seed, so anyone can replay
//! it). The first draw happens when a room opens and covers its pre-queue, so arriving early or
//! with many tabs buys nothing. In a `fifo` room every later ticket's place is its number; in a
//! `random` room tickets wait undrawn until the next draw, which covers everyone who joined
//! since the previous one.

use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

/// One recorded shuffle of a contiguous range of tickets (the waiting room's pre-queue
/// lottery; not to be confused with the allocation draw in `draw`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shuffle {
    /// The first ticket (and place) the draw covers; tickets start at 1.
    pub first: u64,
    /// How many tickets it covers (may be 0: a room that opened with an empty pre-queue).
    pub count: u32,
    /// The seed, 32 bytes as lowercase hex; publish it and anyone can replay the draw.
    pub seed: String,
    /// When it was drawn (unix seconds).
    pub drawn_at: i64,
}

impl Shuffle {
    /// A draw over `count` tickets from `first`, with a seed of 32 bytes.
    pub fn new(first: u64, count: u32, seed: [u8; 32], drawn_at: i64) -> Shuffle {
        Shuffle {
            first,
            count,
            seed: seed.iter().map(|b| format!("{b:02x}")).collect(),
            drawn_at,
        }
    }

    /// One past the last ticket covered.
    pub fn end(&self) -> u64 {
        self.first + u64::from(self.count)
    }

    /// `permutation()[i]` is the place offset of ticket `first + i`. `None` if the recorded
    /// seed is not 64 hex digits.
    pub fn permutation(&self) -> Option<Vec<u32>> {
        Some(shuffle(self.count, self.seed_bytes()?))
    }

    fn seed_bytes(&self) -> Option<[u8; 32]> {
        let mut seed = [0u8; 32];
        if self.seed.len() != 64 {
            return None;
        }
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(self.seed.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(seed)
    }
}

/// A uniformly random permutation of `0..count`, fully determined by `seed`.
pub fn shuffle(count: u32, seed: [u8; 32]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..count).collect();
    order.shuffle(&mut ChaCha20Rng::from_seed(seed));
    order
}

/// Whether tickets after the last draw already have their place (`Fifo`) or wait for the next
/// draw (`Random`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// First come, first served once the pre-queue has been drawn.
    Fifo,
    /// Everyone who joined since the previous draw takes part in the next one.
    Random,
}

/// A draw with its permutation and inverse, computed once.
#[derive(Debug, Clone)]
struct Drawn {
    draw: Shuffle,
    places: Arc<[u32]>,
    tickets: Arc<[u32]>,
}

/// The draws of one room, answering "which place has ticket t" and "which ticket stands at
/// place p" without I/O.
#[derive(Debug, Clone, Default)]
pub struct Lineup {
    drawn: Vec<Drawn>,
}

/// A draw that does not continue where the previous one ended, or has an unreadable seed:
/// the record was tampered with or written by a broken controller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("draw {index} is not valid: {reason}")]
pub struct LineupError {
    /// Position of the bad draw in the record.
    pub index: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Lineup {
    /// Adds the next recorded draw; it must start where the previous one ended.
    pub fn push(&mut self, draw: Shuffle) -> Result<(), LineupError> {
        let index = self.drawn.len();
        if draw.first != self.drawn_through() + 1 {
            return Err(LineupError {
                index,
                reason: "it does not start right after the previous draw",
            });
        }
        let places = draw.permutation().ok_or(LineupError {
            index,
            reason: "its seed is not 64 hex digits",
        })?;
        let mut tickets = vec![0u32; places.len()];
        for (offset, &place) in places.iter().enumerate() {
            tickets[place as usize] = offset as u32;
        }
        self.drawn.push(Drawn {
            draw,
            places: places.into(),
            tickets: tickets.into(),
        });
        Ok(())
    }

    /// The recorded draws, oldest first.
    pub fn draws(&self) -> impl Iterator<Item = &Shuffle> {
        self.drawn.iter().map(|d| &d.draw)
    }

    /// How many draws have happened; the first one opens the room.
    pub fn len(&self) -> usize {
        self.drawn.len()
    }

    /// True before the opening draw.
    pub fn is_empty(&self) -> bool {
        self.drawn.is_empty()
    }

    /// The last ticket (and place) covered by a draw; 0 before the first.
    pub fn drawn_through(&self) -> u64 {
        self.drawn.last().map_or(0, |d| d.draw.end() - 1)
    }

    /// The place of `ticket`, or `None` while it waits for a draw.
    pub fn place(&self, order: Order, ticket: u64) -> Option<u64> {
        match self.covering(ticket) {
            Some(drawn) => Some(drawn.draw.first + u64::from(drawn.places[offset(drawn, ticket)])),
            None if order == Order::Fifo && !self.is_empty() && ticket > self.drawn_through() => Some(ticket),
            None => None,
        }
    }

    /// The ticket at `place`, or `None` if no ticket can stand there yet. `issued` is the
    /// number of tickets handed out so far.
    pub fn ticket_at(&self, order: Order, place: u64, issued: u64) -> Option<u64> {
        match self.covering(place) {
            Some(drawn) => Some(drawn.draw.first + u64::from(drawn.tickets[offset(drawn, place)])),
            None => (self.place(order, place) == Some(place) && place <= issued).then_some(place),
        }
    }

    /// The last place that can be admitted now: the end of the draws, or in a fifo room the
    /// last ticket issued once the room has opened.
    pub fn last_place(&self, order: Order, issued: u64) -> u64 {
        match order {
            Order::Fifo if !self.is_empty() => issued.max(self.drawn_through()),
            _ => self.drawn_through(),
        }
    }

    fn covering(&self, number: u64) -> Option<&Drawn> {
        // Draws are contiguous and sorted, so the covering draw is found by bisection.
        let index = self.drawn.partition_point(|d| d.draw.end() <= number);
        self.drawn
            .get(index)
            .filter(|d| d.draw.first <= number && number < d.draw.end())
    }
}

fn offset(drawn: &Drawn, number: u64) -> usize {
    (number - drawn.draw.first) as usize
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn lineup(draws: &[(u64, u32, u8)]) -> Lineup {
        let mut lineup = Lineup::default();
        for &(first, count, seed) in draws {
            lineup
                .push(Shuffle::new(first, count, [seed; 32], 0))
                .expect("contiguous");
        }
        lineup
    }

    #[test]
    fn the_same_seed_gives_the_same_order_and_another_seed_another() {
        let a = shuffle(1000, [7; 32]);
        assert_eq!(a, shuffle(1000, [7; 32]));
        assert_ne!(a, shuffle(1000, [8; 32]));
        // The recorded form replays the same order.
        let draw = Shuffle::new(1, 1000, [7; 32], 0);
        assert_eq!(draw.seed, "07".repeat(32));
        assert_eq!(draw.permutation(), Some(a));
    }

    #[test]
    fn fifo_places_follow_tickets_after_the_opening_draw() {
        let lineup = lineup(&[(1, 5, 1)]);
        let mut places: Vec<u64> = (1..=5).map(|t| lineup.place(Order::Fifo, t).unwrap()).collect();
        places.sort_unstable();
        assert_eq!(places, [1, 2, 3, 4, 5]);
        assert_eq!(lineup.place(Order::Fifo, 6), Some(6));
        assert_eq!(lineup.place(Order::Random, 6), None);
        assert_eq!(lineup.last_place(Order::Fifo, 9), 9);
        assert_eq!(lineup.last_place(Order::Random, 9), 5);
        assert_eq!(lineup.ticket_at(Order::Fifo, 7, 9), Some(7));
        assert_eq!(lineup.ticket_at(Order::Fifo, 10, 9), None);
        assert_eq!(lineup.ticket_at(Order::Random, 7, 9), None);
    }

    #[test]
    fn nothing_has_a_place_before_the_opening_draw() {
        let lineup = Lineup::default();
        assert_eq!(lineup.place(Order::Fifo, 1), None);
        assert_eq!(lineup.last_place(Order::Fifo, 10), 0);
        assert_eq!(lineup.ticket_at(Order::Fifo, 1, 10), None);
    }

    #[test]
    fn an_empty_opening_draw_opens_a_fifo_room() {
        let lineup = lineup(&[(1, 0, 1)]);
        assert_eq!(lineup.place(Order::Fifo, 1), Some(1));
        assert_eq!(lineup.drawn_through(), 0);
    }

    #[test]
    fn draws_must_be_contiguous_with_readable_seeds() {
        let mut lineup = lineup(&[(1, 3, 1)]);
        let gap = lineup.push(Shuffle::new(5, 1, [0; 32], 0)).unwrap_err();
        assert_eq!(gap.index, 1);
        let mut bad_seed = Shuffle::new(4, 1, [0; 32], 0);
        bad_seed.seed = "zz".into();
        assert!(lineup.push(bad_seed).is_err());
        assert_eq!(lineup.len(), 1);
    }

    proptest! {
        #[test]
        fn every_draw_is_a_permutation_reproducible_from_its_seed(
            count in 0u32..2000,
            seed in any::<[u8; 32]>(),
        ) {
            let order = shuffle(count, seed);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..count).collect::<Vec<_>>());
            let recorded = Shuffle::new(1, count, seed, 0);
            prop_assert_eq!(recorded.permutation(), Some(order));
        }

        #[test]
        fn place_and_ticket_are_inverse_over_several_draws(
            counts in prop::collection::vec(0u32..50, 1..6),
            seed in any::<u8>(),
            random in any::<bool>(),
            extra in 0u64..20,
        ) {
            let order = if random { Order::Random } else { Order::Fifo };
            let mut lineup = Lineup::default();
            let mut first = 1;
            for (i, &count) in counts.iter().enumerate() {
                lineup.push(Shuffle::new(first, count, [seed.wrapping_add(i as u8); 32], 0)).unwrap();
                first += u64::from(count);
            }
            let issued = lineup.drawn_through() + extra;
            let last = lineup.last_place(order, issued);
            let mut seen = std::collections::HashSet::new();
            for place in 1..=last {
                let ticket = lineup.ticket_at(order, place, issued).expect("every place up to the last has a ticket");
                prop_assert!(seen.insert(ticket), "ticket {} twice", ticket);
                prop_assert_eq!(lineup.place(order, ticket), Some(place));
            }
            prop_assert_eq!(lineup.ticket_at(order, last + 1, issued), None);
        }
    }
}
