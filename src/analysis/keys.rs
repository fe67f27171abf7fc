//! A detector's keys (attacked services, scanning sources) in a table of fixed size, kept in
//! order of activity: a new key at a full table takes the place of the least recently active
//! one, which is counted. The entries live in one array linked by index (no allocation per
//! key, one hash probe per packet for a known key), and the state a key leaves behind is
//! cleared and given to the next new key, so a flood of one-packet sources allocates nothing
//! once the table is full.

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::{BuildHasher, Hash};

/// A key's state made new again, its allocations kept.
pub trait Clear {
    fn clear(&mut self);
}

/// No entry (the ends of the activity list).
const NONE: u32 = u32::MAX;

struct Entry<K, V> {
    key: K,
    hash: u64,
    /// Neighbours in order of activity: `newer` towards the most recent.
    newer: u32,
    older: u32,
    state: V,
}

pub struct KeyTable<K, V> {
    /// Indices into `entries`, by the key's hash.
    index: HashTable<u32>,
    entries: Vec<Entry<K, V>>,
    /// Entries whose key left in a sweep, ready for new keys.
    free: Vec<u32>,
    newest: u32,
    oldest: u32,
    hasher: RandomState,
    cap: usize,
    evicted: u64,
}

impl<K: Hash + Eq + Copy, V: Clear> KeyTable<K, V> {
    pub fn new(cap: usize) -> Self {
        KeyTable {
            index: HashTable::new(),
            entries: Vec::new(),
            free: Vec::new(),
            newest: NONE,
            oldest: NONE,
            hasher: RandomState::default(),
            cap: cap.clamp(1, NONE as usize - 1),
            evicted: 0,
        }
    }

    /// The key's state (now the most recently active), made by `make` or from a spare if new.
    pub fn entry(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        // The most recently active key again (a flood's one service, packet after packet):
        // no hashing, nothing to move.
        if let Some(newest) = self.entries.get(self.newest as usize)
            && newest.key == key
        {
            return &mut self.entries[self.newest as usize].state;
        }
        let hash = self.hasher.hash_one(key);
        let entries = &self.entries;
        if let Some(&at) = self.index.find(hash, |&i| entries[i as usize].key == key) {
            self.unlink(at);
            self.link_newest(at);
            return &mut self.entries[at as usize].state;
        }
        let at = if let Some(at) = self.free.pop() {
            self.entries[at as usize].state.clear();
            at
        } else if self.entries.len() < self.cap {
            self.entries.push(Entry {
                key,
                hash,
                newer: NONE,
                older: NONE,
                state: make(),
            });
            (self.entries.len() - 1) as u32
        } else {
            let at = self.oldest;
            self.forget(at);
            self.evicted += 1;
            self.entries[at as usize].state.clear();
            at
        };
        let entry = &mut self.entries[at as usize];
        entry.key = key;
        entry.hash = hash;
        let entries = &self.entries;
        self.index
            .insert_unique(hash, at, |&i| entries[i as usize].hash);
        self.link_newest(at);
        &mut self.entries[at as usize].state
    }

    /// Take the entry out of the activity list and the index.
    fn forget(&mut self, at: u32) {
        self.unlink(at);
        let hash = self.entries[at as usize].hash;
        if let Ok(found) = self.index.find_entry(hash, |&i| i == at) {
            found.remove();
        }
    }

    fn unlink(&mut self, at: u32) {
        let (newer, older) = {
            let e = &self.entries[at as usize];
            (e.newer, e.older)
        };
        match newer {
            NONE => self.newest = older,
            n => self.entries[n as usize].older = older,
        }
        match older {
            NONE => self.oldest = newer,
            o => self.entries[o as usize].newer = newer,
        }
    }

    fn link_newest(&mut self, at: u32) {
        let previous = self.newest;
        {
            let e = &mut self.entries[at as usize];
            e.newer = NONE;
            e.older = previous;
        }
        match previous {
            NONE => self.oldest = at,
            p => self.entries[p as usize].newer = at,
        }
        self.newest = at;
    }

    /// Let go of the least recently active keys while `idle` says so (it is not counted as an
    /// eviction: nothing of theirs mattered any more).
    pub fn sweep(&mut self, idle: impl Fn(&V) -> bool) {
        while self.oldest != NONE && idle(&self.entries[self.oldest as usize].state) {
            let at = self.oldest;
            self.forget(at);
            self.free.push(at);
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Bytes the table has allocated for itself (not what its states allocate).
    pub fn allocated_bytes(&self) -> usize {
        let buckets = self.index.capacity().div_ceil(7).next_power_of_two() * 8;
        self.entries.capacity() * std::mem::size_of::<Entry<K, V>>()
            + self.free.capacity() * 4
            // Each bucket of the index: its u32 and a control byte, and a group's slack.
            + buckets * 5 + 16
    }

    /// The most a key costs the table itself: its entry, a free slot and the index's buckets,
    /// twice over for the containers' growth by doubling.
    pub fn bytes_per_key() -> usize {
        2 * (std::mem::size_of::<Entry<K, V>>() + 4 + 2 * 5)
    }

    /// Forget every key (not counted as evictions), keeping the table's own allocations.
    pub fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
        self.free.clear();
        self.newest = NONE;
        self.oldest = NONE;
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Active keys that had to leave to make room.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The states of the keys held, most recently active first.
    pub fn states(&self) -> impl Iterator<Item = &V> {
        let mut at = self.newest;
        std::iter::from_fn(move || {
            let e = self.entries.get(at as usize)?;
            at = e.older;
            Some(&e.state)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq)]
    struct Count(Vec<u32>);

    impl Clear for Count {
        fn clear(&mut self) {
            self.0.clear();
        }
    }

    #[test]
    fn the_least_recently_active_key_leaves_and_its_state_is_reused_cleared() {
        let mut table = KeyTable::new(2);
        table.entry(1, Count::default).0.push(10);
        table.entry(2, Count::default).0.push(20);
        table.entry(1, Count::default).0.push(11);
        assert_eq!(
            table.entry(3, Count::default),
            &Count(vec![]),
            "2 left, cleared"
        );
        assert_eq!(table.evicted(), 1);
        assert_eq!(table.entry(1, Count::default), &Count(vec![10, 11]));
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn sweeping_stops_at_the_first_busy_key_and_counts_nothing() {
        let mut table = KeyTable::new(8);
        for key in 0..5 {
            table.entry(key, Count::default).0.push(key);
        }
        table.entry(0, Count::default);
        table.sweep(|state| state.0.first().is_some_and(|&k| k < 3));
        assert_eq!(table.len(), 3, "1 and 2 left; 3 stopped the sweep");
        assert_eq!(table.evicted(), 0);
        // Swept entries are reused before the table grows or evicts.
        table.entry(9, Count::default).0.push(9);
        table.entry(10, Count::default);
        assert_eq!(table.len(), 5);
        assert_eq!(table.evicted(), 0);
        let held: Vec<&Count> = table.states().collect();
        assert_eq!(held[0], &Count(vec![]), "10, cleared: it reused 1's entry");
        assert_eq!(held[1], &Count(vec![9]));
    }

    /// The table against a plain list kept in order of activity, on random keys.
    #[test]
    fn it_keeps_the_same_keys_in_the_same_order_as_a_plain_list() {
        let mut rng = crate::testing::XorShift::new(11);
        for cap in [1, 2, 7, 64] {
            let mut table = KeyTable::new(cap);
            let mut list: Vec<u32> = Vec::new();
            let mut evicted = 0;
            for round in 0..5_000 {
                let key = (rng.next() % (2 * cap as u64 + 3)) as u32;
                if round % 97 == 0 {
                    // Sweep the keys below a bound from the old end, as a detector would.
                    let bound = (rng.next() % 8) as u32;
                    table.sweep(|c: &Count| c.0.last().is_some_and(|&k| k < bound));
                    while list.first().is_some_and(|&k| k < bound) {
                        list.remove(0);
                    }
                }
                let state = table.entry(key, Count::default);
                state.0.clear();
                state.0.push(key);
                if let Some(at) = list.iter().position(|&k| k == key) {
                    list.remove(at);
                } else if list.len() == cap {
                    list.remove(0);
                    evicted += 1;
                }
                list.push(key);
                let held: Vec<u32> = table.states().map(|c| c.0[0]).collect();
                let want: Vec<u32> = list.iter().rev().copied().collect();
                assert_eq!(held, want, "cap {cap}, round {round}");
                assert_eq!(table.len(), list.len());
                assert_eq!(table.evicted(), evicted);
            }
        }
    }
}
