//! Sliding windows of packet time whose memory is set by the thresholds, not by the traffic.
//!
//! A rule asks "at least N events (or N distinct items) within the last W seconds?". Only the
//! events inside the window can count, and past a cap of at least N the answer is yes whatever
//! else arrives, so each window keeps the events inside it up to its cap and lets the oldest go
//! first. The count is exact below the cap and "at least the cap" at it, so a rule whose
//! threshold is at most the cap fires on exactly the packet an unbounded count would.

use super::keys::{Clear, KeyTable};
use std::collections::VecDeque;
use std::hash::Hash;

/// The times of the events within a window, at most `cap` of them.
#[derive(Debug)]
pub struct RecentEvents {
    times: VecDeque<i64>,
    cap: usize,
}

impl RecentEvents {
    pub fn new(cap: usize) -> Self {
        RecentEvents {
            times: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Count an event at `now` (times never go back: a capture's time order is kept by the
    /// caller) and forget those more than `window_ns` before it.
    pub fn push(&mut self, now: i64, window_ns: i64) {
        self.expire(now, window_ns);
        if self.times.len() == self.cap {
            self.times.pop_front();
        }
        self.times.push_back(now);
    }

    fn expire(&mut self, now: i64, window_ns: i64) {
        while self.times.front().is_some_and(|&t| now - t > window_ns) {
            self.times.pop_front();
        }
    }

    /// The most a window of `cap` events allocates (the list grows by doubling, from 4).
    pub fn max_bytes(cap: usize) -> usize {
        2 * cap.max(4) * std::mem::size_of::<i64>()
    }

    /// Bytes allocated for the events (for the memory bound).
    pub fn allocated_bytes(&self) -> usize {
        self.times.capacity() * std::mem::size_of::<i64>()
    }

    /// Events within the window at the last push: exact below the cap, the cap at it.
    pub fn count(&self) -> usize {
        self.times.len()
    }

    /// Forget every event, keeping the allocation for the next key.
    pub fn clear(&mut self) {
        self.times.clear();
    }

    /// The newest event's time.
    pub fn newest(&self) -> Option<i64> {
        self.times.back().copied()
    }
}

/// Caps up to this many keep their items in a list searched end to end: no hashing, one
/// allocation, and faster than a map at these sizes (NetScope's thresholds give 50 and 20).
const LISTED_UP_TO: usize = 64;

/// The distinct items seen within a window, at most `cap` of them (the least recently seen
/// leaves first).
#[derive(Debug)]
pub enum RecentDistinct<T: Hash + Eq + Copy> {
    Listed(ListedDistinct<T>),
    Indexed(IndexedDistinct<T>),
}

impl<T: Hash + Eq + Copy> RecentDistinct<T> {
    pub fn new(cap: usize) -> Self {
        if cap <= LISTED_UP_TO {
            RecentDistinct::Listed(ListedDistinct::new(cap))
        } else {
            RecentDistinct::Indexed(IndexedDistinct::new(cap))
        }
    }

    /// See `item` at `now` (times never go back) and forget the items not seen within
    /// `window_ns` before it.
    pub fn push(&mut self, now: i64, item: T, window_ns: i64) {
        match self {
            RecentDistinct::Listed(d) => d.push(now, item, window_ns),
            RecentDistinct::Indexed(d) => d.push(now, item, window_ns),
        }
    }

    /// Distinct items within the window at the last push: exact below the cap, the cap at it.
    pub fn count(&self) -> usize {
        match self {
            RecentDistinct::Listed(d) => d.seen.len(),
            RecentDistinct::Indexed(d) => d.seen.len(),
        }
    }

    /// Forget every item, keeping the allocations for the next key.
    pub fn clear(&mut self) {
        match self {
            RecentDistinct::Listed(d) => d.seen.clear(),
            RecentDistinct::Indexed(d) => d.seen.clear(),
        }
    }

    /// The most a window of `cap` items allocates.
    pub fn max_bytes(cap: usize) -> usize {
        if cap <= LISTED_UP_TO {
            2 * cap.max(4) * std::mem::size_of::<(i64, T)>()
        } else {
            cap * KeyTable::<T, SeenAt>::bytes_per_key() + 16
        }
    }

    /// Bytes allocated for the items (for the memory bound).
    pub fn allocated_bytes(&self) -> usize {
        match self {
            RecentDistinct::Listed(d) => d.seen.capacity() * std::mem::size_of::<(i64, T)>(),
            RecentDistinct::Indexed(d) => d.seen.allocated_bytes(),
        }
    }

    /// Entries held (for the memory bound: at most the cap).
    pub fn held(&self) -> usize {
        match self {
            RecentDistinct::Listed(d) => d.seen.len(),
            RecentDistinct::Indexed(d) => d.seen.len(),
        }
    }
}

/// Each item once, with its latest time, in order of that time.
#[derive(Debug)]
pub struct ListedDistinct<T> {
    seen: VecDeque<(i64, T)>,
    cap: usize,
}

impl<T: Eq + Copy> ListedDistinct<T> {
    fn new(cap: usize) -> Self {
        ListedDistinct {
            seen: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    fn push(&mut self, now: i64, item: T, window_ns: i64) {
        while self.seen.front().is_some_and(|&(t, _)| now - t > window_ns) {
            self.seen.pop_front();
        }
        // Seen again: it moves to the newest end. New at the cap: the oldest leaves.
        if let Some(at) = self.seen.iter().rposition(|&(_, i)| i == item) {
            self.seen.remove(at);
        } else if self.seen.len() >= self.cap {
            self.seen.pop_front();
        }
        self.seen.push_back((now, item));
    }
}

/// The items in order of their latest sighting, indexed by item: the table of detector keys,
/// whose least recently active entry is also the one to leave first here.
pub struct IndexedDistinct<T: Hash + Eq + Copy> {
    seen: KeyTable<T, SeenAt>,
}

/// When an item was last seen.
#[derive(Clone, Copy, Debug)]
struct SeenAt(i64);

impl Clear for SeenAt {
    fn clear(&mut self) {}
}

impl<T: Hash + Eq + Copy> std::fmt::Debug for IndexedDistinct<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexedDistinct")
            .field("items", &self.seen.len())
            .finish()
    }
}

impl<T: Hash + Eq + Copy> IndexedDistinct<T> {
    fn new(cap: usize) -> Self {
        IndexedDistinct {
            seen: KeyTable::new(cap.max(1)),
        }
    }

    fn push(&mut self, now: i64, item: T, window_ns: i64) {
        self.seen.sweep(|at| now - at.0 > window_ns);
        // Full: the least recently seen item leaves to make room.
        self.seen.entry(item, || SeenAt(now)).0 = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::XorShift;

    #[test]
    fn events_leave_the_window_and_the_count_stops_at_the_cap() {
        let mut w = RecentEvents::new(3);
        w.push(0, 10);
        w.push(5, 10);
        assert_eq!(w.count(), 2);
        w.push(10, 10);
        assert_eq!(w.count(), 3, "the window includes its start (10 - 0 <= 10)");
        w.push(11, 10);
        assert_eq!(w.count(), 3, "at the cap");
        w.push(30, 10);
        assert_eq!(w.count(), 1, "all older than 10 left");
        assert_eq!(w.newest(), Some(30));
    }

    #[test]
    fn distinct_items_are_counted_once_and_leave_when_not_seen_again() {
        let mut d = RecentDistinct::new(10);
        for (t, item) in [(0, 'a'), (1, 'b'), (2, 'a'), (3, 'c')] {
            d.push(t, item, 10);
        }
        assert_eq!(d.count(), 3);
        d.push(12, 'd', 10);
        assert_eq!(d.count(), 3, "b (seen at 1) left; a was seen again at 2");
        d.push(13, 'e', 10);
        assert_eq!(
            d.count(),
            3,
            "a (last seen at 2) left; c, at the window's very start, stays"
        );
    }

    #[test]
    fn at_the_cap_the_least_recently_seen_item_leaves() {
        let mut d = RecentDistinct::new(2);
        d.push(0, 1u32, 100);
        d.push(1, 2, 100);
        d.push(2, 1, 100);
        d.push(3, 3, 100);
        assert_eq!(d.count(), 2);
        let RecentDistinct::Listed(listed) = &d else {
            panic!("a cap of 2 is listed")
        };
        let kept: Vec<u32> = listed.seen.iter().map(|&(_, i)| i).collect();
        assert_eq!(kept, [1, 3], "2 left, not 1");
    }

    #[test]
    fn one_item_seen_a_million_times_holds_a_bounded_list() {
        for cap in [50, 500] {
            let mut d = RecentDistinct::new(cap);
            for t in 0..1_000_000 {
                d.push(t, 7u8, i64::MAX);
                assert!(d.held() <= cap);
            }
            assert_eq!(d.count(), 1);
        }
    }

    #[test]
    fn the_list_and_the_map_count_alike() {
        let mut rng = XorShift::new(0x1234_5678_9abc_def1);
        let mut next = move || rng.next();
        for round in 0..200 {
            let cap = 1 + (next() % 40) as usize;
            let window = 1 + (next() % 50) as i64;
            let items = 1 + next() % 60;
            let mut listed = ListedDistinct::new(cap);
            let mut indexed = IndexedDistinct::new(cap);
            let mut now = 0;
            for _ in 0..500 {
                now += (next() % 4) as i64;
                let item = next() % items;
                listed.push(now, item, window);
                indexed.push(now, item, window);
                assert_eq!(listed.seen.len(), indexed.seen.len(), "round {round}");
            }
        }
    }
}
