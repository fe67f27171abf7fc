//! The flow table: one entry per conversation, found by its canonical key, kept in a
//! least-recently-seen list so that idle expiry (on packet time offline) and eviction under
//! `max_flows` cost O(1) per packet. Generic over what a consumer stores per flow (TCP analysis
//! for `flows`, stream reassembly for `http-trace` and `tap`).
//!
//! The index holds only slot numbers (the key lives in the slot), hashed once per packet with
//! foldhash seeded at random per table: keys from a hostile capture cannot be chosen to
//! collide without seeing the seed, at a fraction of SipHash's cost per packet.

use super::key::{FlowKey, Side};
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Why a flow left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// No packet for the idle timeout.
    Idle,
    /// Pushed out by a newer flow at `max_flows`.
    Evicted,
    /// The consumer closed it (a reused 5-tuple starting a new connection).
    Replaced,
    /// The input ended.
    End,
}

impl EndReason {
    /// Lower case, as the exports write it.
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Evicted => "evicted",
            EndReason::Replaced => "replaced",
            EndReason::End => "end",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionStats {
    pub packets: u64,
    /// Bytes of the IP packets (headers included).
    pub ip_bytes: u64,
    /// Bytes of transport payload.
    pub payload_bytes: u64,
}

/// One conversation.
#[derive(Debug)]
pub struct Flow<T> {
    /// Unique in this table's lifetime, even when a 5-tuple is reused.
    pub id: u64,
    pub key: FlowKey,
    pub first_ns: i64,
    pub last_ns: i64,
    /// Per direction, indexed by [`Side::index`].
    pub stats: [DirectionStats; 2],
    /// The side that opened the conversation, once known.
    pub client: Option<Side>,
    pub data: T,
}

impl<T> Flow<T> {
    /// Count a packet of `ip_bytes` with `payload_bytes` of data from `side`.
    #[inline]
    pub fn count(&mut self, side: Side, ip_bytes: usize, payload_bytes: usize) {
        let s = &mut self.stats[side.index()];
        s.packets += 1;
        s.ip_bytes += ip_bytes as u64;
        s.payload_bytes += payload_bytes as u64;
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct TableConfig {
    /// Flows idle this long (packet time) end; None keeps them until the input ends.
    pub idle_timeout_ns: Option<u64>,
    /// At most this many flows; the least recently seen is evicted for a new one.
    pub max_flows: Option<usize>,
}

const NONE: u32 = u32::MAX;

/// A slot's place in the recency list. Kept apart from the flows, in a dense array: moving a
/// flow to the front touches its neighbours' links, and with the links inside the (large) flow
/// records each of those was a cache miss.
#[derive(Clone, Copy)]
struct Link {
    /// Toward the most recently seen.
    newer: u32,
    /// Toward the least recently seen.
    older: u32,
}

pub struct FlowTable<T> {
    config: TableConfig,
    /// Slot numbers, found by the hash of their flow's key.
    index: HashTable<u32>,
    hasher: RandomState,
    slots: Vec<Option<Flow<T>>>,
    links: Vec<Link>,
    free: Vec<u32>,
    newest: u32,
    oldest: u32,
    next_id: u64,
    evictions: u64,
}

impl<T> FlowTable<T> {
    pub fn new(config: TableConfig) -> Self {
        FlowTable {
            config,
            index: HashTable::new(),
            hasher: RandomState::default(),
            slots: Vec::new(),
            links: Vec::new(),
            free: Vec::new(),
            newest: NONE,
            oldest: NONE,
            next_id: 1,
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Flows pushed out by `max_flows` so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    fn unlink(&mut self, slot: u32) {
        let (newer, older) = {
            let l = self.links[slot as usize];
            (l.newer, l.older)
        };
        match newer {
            NONE => self.newest = older,
            n => self.links[n as usize].older = older,
        }
        match older {
            NONE => self.oldest = newer,
            o => self.links[o as usize].newer = newer,
        }
    }

    fn push_newest(&mut self, slot: u32) {
        self.links[slot as usize] = Link {
            newer: NONE,
            older: self.newest,
        };
        match self.newest {
            NONE => self.oldest = slot,
            n => self.links[n as usize].newer = slot,
        }
        self.newest = slot;
    }

    fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The slot holding `key`'s flow.
    fn find(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |&s| {
                slots[s as usize].as_ref().is_some_and(|f| f.key == *key)
            })
            .copied()
    }

    fn remove_slot(&mut self, slot: u32) -> Flow<T> {
        self.unlink(slot);
        let flow = self.slots[slot as usize]
            .take()
            .expect("a linked slot holds a flow");
        let hash = self.hash(&flow.key);
        if let Ok(entry) = self.index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.free.push(slot);
        flow
    }

    /// End every flow idle for longer than the timeout at `now_ns`, oldest first.
    pub fn expire(&mut self, now_ns: i64, mut ended: impl FnMut(Flow<T>, EndReason)) {
        let Some(timeout) = self.config.idle_timeout_ns else {
            return;
        };
        while self.oldest != NONE {
            let last = self.slots[self.oldest as usize]
                .as_ref()
                .map_or(i64::MAX, |f| f.last_ns);
            if now_ns.saturating_sub(last) <= timeout as i64 {
                break;
            }
            let flow = self.remove_slot(self.oldest);
            ended(flow, EndReason::Idle);
        }
    }

    /// The flow a packet at `ts_ns` belongs to, created with `make` when new (evicting the
    /// least recently seen flow at `max_flows`); it becomes the most recently seen. Returns it
    /// and whether it was created.
    pub fn track(
        &mut self,
        key: FlowKey,
        ts_ns: i64,
        make: impl FnOnce() -> T,
        mut ended: impl FnMut(Flow<T>, EndReason),
    ) -> (&mut Flow<T>, bool) {
        let hash = self.hash(&key);
        if let Some(slot) = self.find(hash, &key) {
            if self.newest != slot {
                self.unlink(slot);
                self.push_newest(slot);
            }
            let flow = self.slots[slot as usize]
                .as_mut()
                .expect("an indexed slot holds a flow");
            flow.last_ns = flow.last_ns.max(ts_ns);
            return (flow, false);
        }
        if let Some(max) = self.config.max_flows
            && self.index.len() >= max.max(1)
            && self.oldest != NONE
        {
            let flow = self.remove_slot(self.oldest);
            self.evictions += 1;
            ended(flow, EndReason::Evicted);
        }
        let flow = Flow {
            id: self.next_id,
            key,
            first_ns: ts_ns,
            last_ns: ts_ns,
            stats: [DirectionStats::default(); 2],
            client: None,
            data: make(),
        };
        self.next_id += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(flow);
                slot
            }
            None => {
                self.slots.push(Some(flow));
                self.links.push(Link {
                    newer: NONE,
                    older: NONE,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, slot, |&s| {
            slots[s as usize]
                .as_ref()
                .map_or(0, |f| hasher.hash_one(f.key))
        });
        self.push_newest(slot);
        let flow = self.slots[slot as usize].as_mut().expect("just stored");
        (flow, true)
    }

    /// Look at a flow without touching its place in the recency list.
    pub fn get(&self, key: &FlowKey) -> Option<&Flow<T>> {
        let slot = self.find(self.hash(key), key)?;
        self.slots[slot as usize].as_ref()
    }

    /// Take a flow out (a consumer ending it, e.g. before a reused 5-tuple starts anew).
    pub fn remove(&mut self, key: &FlowKey) -> Option<Flow<T>> {
        let slot = self.find(self.hash(key), key)?;
        Some(self.remove_slot(slot))
    }

    /// End every flow, least recently seen first.
    pub fn drain(&mut self, mut ended: impl FnMut(Flow<T>, EndReason)) {
        while self.oldest != NONE {
            let flow = self.remove_slot(self.oldest);
            ended(flow, EndReason::End);
        }
    }

    /// Visit every flow, most recently seen first.
    pub fn for_each(&self, mut visit: impl FnMut(&Flow<T>)) {
        let mut slot = self.newest;
        while slot != NONE {
            if let Some(flow) = &self.slots[slot as usize] {
                visit(flow);
            }
            slot = self.links[slot as usize].older;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::Endpoint;
    use std::net::{IpAddr, Ipv4Addr};

    fn key(port: u16) -> FlowKey {
        let ep = |last, port| Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 99, 0, last)),
            port,
        };
        FlowKey::new(6, 0, ep(1, port), ep(2, 80)).0
    }

    #[test]
    fn a_flow_is_found_again_and_counts_both_sides() {
        let mut t: FlowTable<u32> = FlowTable::new(TableConfig::default());
        let (f, new) = t.track(key(1000), 10, || 7, |_, _| panic!());
        assert!(new);
        f.count(Side::A, 60, 0);
        let (f, new) = t.track(key(1000), 20, || 0, |_, _| panic!());
        assert!(!new);
        f.count(Side::B, 1500, 1460);
        assert_eq!((f.data, f.first_ns, f.last_ns), (7, 10, 20));
        assert_eq!(f.stats[1].payload_bytes, 1460);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn idle_flows_expire_on_packet_time_oldest_first() {
        let mut t: FlowTable<()> = FlowTable::new(TableConfig {
            idle_timeout_ns: Some(100),
            max_flows: None,
        });
        for (port, ts) in [(1, 0), (2, 50), (3, 120)] {
            t.track(key(port), ts, || (), |_, _| {});
        }
        t.track(key(1), 130, || (), |_, _| {});
        let mut ended = Vec::new();
        t.expire(200, |f, why| ended.push((f.key.a.port, why)));
        assert_eq!(ended, [(2, EndReason::Idle)]);
        t.expire(1000, |f, _| ended.push((f.key.a.port, EndReason::Idle)));
        assert_eq!(ended.len(), 3);
        assert!(t.is_empty());
    }

    #[test]
    fn max_flows_evicts_the_least_recently_seen() {
        let mut t: FlowTable<()> = FlowTable::new(TableConfig {
            idle_timeout_ns: None,
            max_flows: Some(2),
        });
        t.track(key(1), 0, || (), |_, _| {});
        t.track(key(2), 1, || (), |_, _| {});
        t.track(key(1), 2, || (), |_, _| {});
        let mut evicted = Vec::new();
        t.track(key(3), 3, || (), |f, why| evicted.push((f.key.a.port, why)));
        assert_eq!(evicted, [(2, EndReason::Evicted)]);
        assert_eq!(t.evictions(), 1);
        assert_eq!(t.len(), 2);
        let mut order = Vec::new();
        t.for_each(|f| order.push(f.key.a.port));
        assert_eq!(order, [3, 1]);
    }

    #[test]
    fn ids_never_repeat_when_a_tuple_is_reused() {
        let mut t: FlowTable<()> = FlowTable::new(TableConfig::default());
        let first = t.track(key(9), 0, || (), |_, _| {}).0.id;
        assert!(t.remove(&key(9)).is_some());
        let second = t.track(key(9), 5, || (), |_, _| {}).0.id;
        assert_ne!(first, second);
        let mut ended = 0;
        t.drain(|_, why| {
            assert_eq!(why, EndReason::End);
            ended += 1;
        });
        assert_eq!(ended, 1);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_new_flows() {
        let mut t: FlowTable<[u8; 16]> = FlowTable::new(TableConfig {
            idle_timeout_ns: None,
            max_flows: Some(1000),
        });
        for i in 0..100_000u32 {
            let k = FlowKey::new(
                6,
                0,
                Endpoint {
                    ip: IpAddr::V4(Ipv4Addr::from(0x0a63_0000 | (i >> 16))),
                    port: i as u16,
                },
                Endpoint {
                    ip: IpAddr::V4(Ipv4Addr::new(10, 99, 255, 1)),
                    port: 80,
                },
            )
            .0;
            t.track(k, i64::from(i), || [0; 16], |_, _| {});
        }
        assert_eq!(t.len(), 1000);
        assert!(t.slots.len() <= 1001, "slots are reused: {}", t.slots.len());
        assert_eq!(t.evictions(), 99_000);
    }
}
