//! A set of ticket numbers: the tickets of a room that gave up their place. Every gateway keeps
//! one per room and copies it whenever it learns of more, several times a second during an
//! event in which millions may drop out, so it is a bit per ticket, in chunks that copies
//! share: a copy costs a pointer per 65,536 tickets, and a change copies only its chunk.

use std::sync::Arc;

use rustc_hash::FxHashMap;

/// Words of 64 tickets in a chunk.
const WORDS: usize = 1024;
const PER_CHUNK: u64 = WORDS as u64 * 64;

/// A set of ticket numbers (see the module).
#[derive(Debug, Clone, Default)]
pub struct TicketSet {
    /// By chunk number; a map, not a vector, so a stray huge number costs one chunk.
    chunks: FxHashMap<u64, Arc<[u64; WORDS]>>,
    len: usize,
}

impl TicketSet {
    /// Whether `ticket` is in the set.
    pub fn contains(&self, ticket: u64) -> bool {
        let (chunk, word, bit) = Self::locate(ticket);
        self.chunks
            .get(&chunk)
            .is_some_and(|words| words[word] & bit != 0)
    }

    /// Adds `ticket`; false if it was there already.
    pub fn insert(&mut self, ticket: u64) -> bool {
        let (chunk, word, bit) = Self::locate(ticket);
        let words = Arc::make_mut(self.chunks.entry(chunk).or_insert_with(|| Arc::new([0; WORDS])));
        let new = words[word] & bit == 0;
        words[word] |= bit;
        self.len += usize::from(new);
        new
    }

    /// Tickets in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds no ticket.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn locate(ticket: u64) -> (u64, usize, u64) {
        let within = ticket % PER_CHUNK;
        (ticket / PER_CHUNK, (within / 64) as usize, 1 << (within % 64))
    }
}

impl Extend<u64> for TicketSet {
    fn extend<I: IntoIterator<Item = u64>>(&mut self, tickets: I) {
        for ticket in tickets {
            self.insert(ticket);
        }
    }
}

impl FromIterator<u64> for TicketSet {
    fn from_iter<I: IntoIterator<Item = u64>>(tickets: I) -> Self {
        let mut set = TicketSet::default();
        set.extend(tickets);
        set
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn copies_share_chunks_until_one_changes() {
        let mut set: TicketSet = [1, 64, 65_535, 65_536, u64::MAX].into_iter().collect();
        assert_eq!(set.len(), 5);
        let copy = set.clone();
        assert!(!set.insert(64), "already there");
        assert!(set.insert(2));
        assert!(set.contains(2) && !copy.contains(2));
        assert!(copy.contains(u64::MAX) && !copy.contains(0) && !copy.contains(65_537));
        assert_eq!((set.len(), copy.len()), (6, 5));
        assert!(
            Arc::ptr_eq(&set.chunks[&1], &copy.chunks[&1]),
            "the untouched chunk is shared"
        );
    }

    proptest! {
        #[test]
        fn holds_exactly_what_was_put_in(
            tickets in prop::collection::vec(0u64..300_000, 0..400),
            probes in prop::collection::vec(0u64..300_000, 0..400),
        ) {
            let set: TicketSet = tickets.iter().copied().collect();
            let reference: HashSet<u64> = tickets.iter().copied().collect();
            prop_assert_eq!(set.len(), reference.len());
            for ticket in tickets.iter().chain(&probes) {
                prop_assert_eq!(set.contains(*ticket), reference.contains(ticket));
            }
        }
    }
}
