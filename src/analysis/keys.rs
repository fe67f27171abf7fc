//! A detector's keys (attacked services, scanning sources) in a table of fixed size, kept in
//! order of activity: a new key at a full table takes the place of the least recently active
//! one, which is counted. The state a key leaves behind is cleared and given to the next new
//! key, so a flood of one-packet sources allocates nothing once the table is full.

use foldhash::fast::RandomState;
use lru::LruCache;
use std::hash::Hash;
use std::num::NonZeroUsize;

/// A key's state made new again, its allocations kept.
pub trait Clear {
    fn clear(&mut self);
}

pub struct KeyTable<K: Hash + Eq, V> {
    keys: LruCache<K, V, RandomState>,
    /// The state of the last key that left, ready for the next new one.
    spare: Option<V>,
    evicted: u64,
}

impl<K: Hash + Eq + Copy, V: Clear> KeyTable<K, V> {
    pub fn new(cap: usize) -> Self {
        KeyTable {
            keys: LruCache::with_hasher(
                NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN),
                RandomState::default(),
            ),
            spare: None,
            evicted: 0,
        }
    }

    /// The key's state (now the most recently active), made by `make` or from a spare if new.
    pub fn entry(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if self.keys.len() == self.keys.cap().get()
            && !self.keys.contains(&key)
            && let Some((_, left)) = self.keys.pop_lru()
        {
            self.evicted += 1;
            self.spare = Some(left);
        }
        let spare = &mut self.spare;
        self.keys.get_or_insert_mut(key, || match spare.take() {
            Some(mut state) => {
                state.clear();
                state
            }
            None => make(),
        })
    }

    /// Let go of the least recently active keys while `idle` says so (it is not counted as an
    /// eviction: nothing of theirs mattered any more).
    pub fn sweep(&mut self, idle: impl Fn(&V) -> bool) {
        while self.keys.peek_lru().is_some_and(|(_, state)| idle(state)) {
            if let Some((_, left)) = self.keys.pop_lru() {
                self.spare = Some(left);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn cap(&self) -> usize {
        self.keys.cap().get()
    }

    /// Active keys that had to leave to make room.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn states(&self) -> impl Iterator<Item = &V> {
        self.keys.iter().map(|(_, state)| state)
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
    }
}
