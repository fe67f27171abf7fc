//! Sliding windows of packet time whose memory is set by the thresholds, not by the traffic.
//!
//! A rule asks "at least N events (or N distinct items) within the last W seconds?". Only the
//! events inside the window can count, and past a cap of at least N the answer is yes whatever
//! else arrives, so each window keeps the events inside it up to its cap and lets the oldest go
//! first. The count is exact below the cap and "at least the cap" at it, so a rule whose
//! threshold is at most the cap fires on exactly the packet an unbounded count would.

use foldhash::fast::RandomState;
use hashbrown::HashMap;
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
            RecentDistinct::Indexed(d) => d.latest.len(),
        }
    }

    /// Forget every item, keeping the allocations for the next key.
    pub fn clear(&mut self) {
        match self {
            RecentDistinct::Listed(d) => d.seen.clear(),
            RecentDistinct::Indexed(d) => {
                d.latest.clear();
                d.order.clear();
            }
        }
    }

    /// Entries held (for the memory bound: at most twice the cap and a few).
    pub fn held(&self) -> usize {
        match self {
            RecentDistinct::Listed(d) => d.seen.len(),
            RecentDistinct::Indexed(d) => d.order.len(),
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

/// A map from each item to its latest time, and the sightings in time order (a sighting is
/// stale when its item was seen again later, or left).
#[derive(Debug)]
pub struct IndexedDistinct<T: Hash + Eq + Copy> {
    latest: HashMap<T, i64, RandomState>,
    order: VecDeque<(i64, T)>,
    cap: usize,
}

impl<T: Hash + Eq + Copy> IndexedDistinct<T> {
    fn new(cap: usize) -> Self {
        IndexedDistinct {
            latest: HashMap::with_hasher(RandomState::default()),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Drop the oldest sighting; forget its item if it was the item's latest (one lookup in
    /// the common case: the item is taken out, and put back only if seen since). True when
    /// the item left.
    fn pop_oldest(&mut self) -> bool {
        let Some((time, item)) = self.order.pop_front() else {
            return false;
        };
        match self.latest.remove(&item) {
            Some(latest) if latest != time => {
                self.latest.insert(item, latest);
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    fn push(&mut self, now: i64, item: T, window_ns: i64) {
        while self
            .order
            .front()
            .is_some_and(|&(t, _)| now - t > window_ns)
        {
            self.pop_oldest();
        }
        if let Some(seen) = self.latest.get_mut(&item) {
            *seen = now;
        } else {
            // Full: the least recently seen item leaves (its stale sightings first).
            while self.latest.len() >= self.cap && !self.order.is_empty() {
                if self.pop_oldest() {
                    break;
                }
            }
            self.latest.insert(item, now);
        }
        self.order.push_back((now, item));
        // An item seen over and over leaves stale sightings behind: sweep them out before they
        // outnumber the items twice over.
        if self.order.len() > 2 * self.cap + 16 {
            let latest = &self.latest;
            self.order.retain(|(t, i)| latest.get(i) == Some(t));
        }
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
                assert!(d.held() <= 2 * cap + 17);
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
                assert_eq!(listed.seen.len(), indexed.latest.len(), "round {round}");
            }
        }
    }
}
