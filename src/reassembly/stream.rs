//! One direction of a TCP connection as an ordered byte stream. 32-bit sequence numbers become
//! 64-bit offsets from the first byte (so wrap-around is a non-event), retransmissions are
//! dropped, overlaps are resolved by a named policy and conflicting bytes counted, and data
//! that arrives early waits in a bounded buffer. When something forces progress — the buffer
//! cap, a FIN or RST with a hole before it, the end of the input — the hole becomes a gap
//! event with its exact length, never silent corruption.

use std::collections::BTreeMap;

/// Which bytes win when segments overlap with different content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverlapPolicy {
    /// The bytes seen first stay (what most stacks do; Zeek's and gopacket's default).
    #[default]
    FirstWins,
    /// Later bytes replace earlier ones still buffered.
    LastWins,
}

/// What a consumer of a stream implements. `on_data` returns how many bytes it used; the rest
/// is offered again, followed by more data, on the next call (an HTTP head split over three
/// segments needs this).
pub trait StreamSink {
    fn on_data(&mut self, data: &[u8]) -> usize;
    /// `length` bytes are missing here; bytes offered before and not consumed are dropped.
    fn on_gap(&mut self, length: u64);
}

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Bytes delivered in order.
    pub delivered: u64,
    /// Bytes of segments entirely below what was already delivered or buffered.
    pub retransmitted: u64,
    /// Overlapping bytes whose content differed from what was kept.
    pub conflicting: u64,
    /// Bytes declared missing through gap events, and how many events.
    pub gap_bytes: u64,
    pub gaps: u64,
    /// Segments that arrived ahead of the stream.
    pub out_of_order: u64,
}

#[derive(Clone, Debug)]
pub struct StreamConfig {
    pub overlap: OverlapPolicy,
    /// Bytes that may wait out of order (plus unconsumed bytes) before a gap is forced.
    pub max_buffered: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            overlap: OverlapPolicy::FirstWins,
            max_buffered: 4 << 20,
        }
    }
}

/// Bytes at an offset, while two overlapping segments are merged.
type Piece<'a> = (u64, &'a [u8]);

/// One direction's reassembly state.
#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of offset 0, once known.
    base: Option<u32>,
    /// The next offset to deliver.
    next: u64,
    /// Segments ahead of `next`, by offset, never overlapping each other.
    early: BTreeMap<u64, Vec<u8>>,
    early_bytes: usize,
    /// Delivered bytes the sink has not consumed yet.
    pending: Vec<u8>,
    /// Offset just past the last byte, once a FIN was seen.
    fin: Option<u64>,
    closed: bool,
    pub stats: StreamStats,
}

impl Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held (early segments and unconsumed data): what counts against caps.
    pub fn buffered(&self) -> usize {
        self.early_bytes + self.pending.len()
    }

    /// The next offset the stream expects.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// True once a FIN's data has all been delivered.
    pub fn finished(&self) -> bool {
        self.fin.is_some_and(|f| self.next >= f)
    }

    /// The 64-bit offset of `seq`: the candidate (over wraps of 2^32) nearest `next`.
    fn offset_of(&self, base: u32, seq: u32) -> u64 {
        let relative = u64::from(seq.wrapping_sub(base));
        let epoch = self.next & !0xffff_ffff;
        let candidates = [
            epoch.wrapping_sub(1 << 32).wrapping_add(relative),
            epoch + relative,
            epoch + (1 << 32) + relative,
        ];
        candidates
            .into_iter()
            .filter(|c| *c < (1 << 62))
            .min_by_key(|c| c.abs_diff(self.next))
            .unwrap_or(relative)
    }

    /// The SYN fixes the stream's start: its sequence number plus one is offset 0.
    pub fn syn(&mut self, seq: u32) {
        if self.base.is_none() {
            self.base = Some(seq.wrapping_add(1));
        }
    }

    /// A segment of this direction: its sequence number, payload and whether it carries FIN.
    /// Without a SYN first, the first segment seen starts the stream (mid-stream pickup).
    pub fn segment(
        &mut self,
        seq: u32,
        payload: &[u8],
        fin: bool,
        config: &StreamConfig,
        sink: &mut dyn StreamSink,
    ) {
        if self.closed {
            return;
        }
        let base = *self.base.get_or_insert(seq);
        let start = self.offset_of(base, seq);
        let end = start + payload.len() as u64;
        if fin {
            self.fin.get_or_insert(end);
        }
        if !payload.is_empty() {
            self.insert(start, payload, config, sink);
        }
        // Each forced gap may leave more early data behind the next hole: go on until under
        // the cap (found by the reassembly fuzz target).
        while self.buffered() > config.max_buffered && !self.early.is_empty() {
            self.force(sink);
        }
    }

    fn insert(
        &mut self,
        start: u64,
        payload: &[u8],
        config: &StreamConfig,
        sink: &mut dyn StreamSink,
    ) {
        let end = start + payload.len() as u64;
        if end <= self.next {
            self.stats.retransmitted += payload.len() as u64;
            return;
        }
        let (start, payload) = if start < self.next {
            let skip = (self.next - start) as usize;
            self.stats.retransmitted += skip as u64;
            (self.next, &payload[skip..])
        } else {
            (start, payload)
        };
        if start == self.next && self.early.is_empty() {
            self.deliver(payload, sink);
            return;
        }
        self.stats.out_of_order += u64::from(start > self.next);
        self.store_early(start, payload, config);
        self.drain_early(sink);
    }

    /// Keep `payload` at `start` among the early segments, resolving overlaps by policy.
    fn store_early(&mut self, start: u64, payload: &[u8], config: &StreamConfig) {
        let end = start + payload.len() as u64;
        // Existing segments that overlap [start, end). They never overlap each other, so only
        // the last one starting before `start` can reach into it from the left: a lookup, not
        // a scan of every held segment (thousands of tiny segments behind a hole would make
        // each insert cost them all).
        let before = self
            .early
            .range(..start)
            .next_back()
            .filter(|(s, d)| *s + d.len() as u64 > start)
            .map(|(s, _)| *s);
        let overlapping: Vec<u64> = before
            .into_iter()
            .chain(self.early.range(start..end).map(|(s, _)| *s))
            .collect();
        let mut merged_start = start;
        let mut merged: Vec<u8> = payload.to_vec();
        for s in overlapping {
            let old = self.early.remove(&s).expect("listed above");
            self.early_bytes -= old.len();
            let old_end = s + old.len() as u64;
            // Count differing bytes in the common part.
            let lo = s.max(start);
            let hi = old_end.min(end);
            let differing = (lo..hi)
                .filter(|&o| old[(o - s) as usize] != payload[(o - start) as usize])
                .count() as u64;
            self.stats.conflicting += differing;
            // Union of the two, with the winner's bytes in the common part.
            let new_start = merged_start.min(s);
            let new_end = (merged_start + merged.len() as u64).max(old_end);
            let mut union = vec![0u8; (new_end - new_start) as usize];
            let (first, second): (Piece<'_>, Piece<'_>) = match config.overlap {
                OverlapPolicy::FirstWins => ((merged_start, &merged), (s, &old)),
                OverlapPolicy::LastWins => ((s, &old), (merged_start, &merged)),
            };
            for (at, bytes) in [first, second] {
                let from = (at - new_start) as usize;
                union[from..from + bytes.len()].copy_from_slice(bytes);
            }
            merged_start = new_start;
            merged = union;
        }
        self.early_bytes += merged.len();
        self.early.insert(merged_start, merged);
    }

    /// Deliver early segments that have become contiguous.
    fn drain_early(&mut self, sink: &mut dyn StreamSink) {
        while let Some((&start, _)) = self.early.first_key_value() {
            if start > self.next {
                break;
            }
            let data = self.early.remove(&start).expect("first key");
            self.early_bytes -= data.len();
            let skip = (self.next - start) as usize;
            if skip < data.len() {
                self.deliver(&data[skip..], sink);
            }
        }
    }

    /// Hand in-order bytes to the sink, after any it kept from before.
    fn deliver(&mut self, data: &[u8], sink: &mut dyn StreamSink) {
        self.next += data.len() as u64;
        self.stats.delivered += data.len() as u64;
        if self.pending.is_empty() {
            let used = sink.on_data(data).min(data.len());
            self.pending.extend_from_slice(&data[used..]);
        } else {
            self.pending.extend_from_slice(data);
            let used = sink.on_data(&self.pending).min(self.pending.len());
            self.pending.drain(..used);
        }
    }

    /// Give up waiting: every hole before buffered early data becomes a gap and the data is
    /// delivered (used when a cap across many streams forces progress).
    pub fn shed(&mut self, sink: &mut dyn StreamSink) {
        while !self.early.is_empty() {
            self.force(sink);
        }
    }

    /// Declare the hole before the first early segment missing and go on from there.
    fn force(&mut self, sink: &mut dyn StreamSink) {
        let Some((&start, _)) = self.early.first_key_value() else {
            return;
        };
        let length = start - self.next;
        self.gap(length, sink);
        self.drain_early(sink);
    }

    fn gap(&mut self, length: u64, sink: &mut dyn StreamSink) {
        if length == 0 {
            return;
        }
        self.pending.clear();
        self.stats.gaps += 1;
        self.stats.gap_bytes += length;
        self.next += length;
        sink.on_gap(length);
    }

    /// The connection ended (FIN, RST, idle, end of input): deliver what is buffered, with
    /// gaps for every hole, up to the FIN when there was one.
    pub fn close(&mut self, sink: &mut dyn StreamSink) {
        if self.closed {
            return;
        }
        self.shed(sink);
        if let Some(fin) = self.fin
            && fin > self.next
        {
            self.gap(fin - self.next, sink);
        }
        self.closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::XorShift;

    /// Collects what a stream delivers; consumes at most `bite` bytes per call when set.
    #[derive(Default)]
    struct Collect {
        data: Vec<u8>,
        gaps: Vec<u64>,
        bite: Option<usize>,
        calls: usize,
    }

    impl StreamSink for Collect {
        fn on_data(&mut self, data: &[u8]) -> usize {
            self.calls += 1;
            let used = self.bite.map_or(data.len(), |b| b.min(data.len()));
            self.data.extend_from_slice(&data[..used]);
            used
        }
        fn on_gap(&mut self, length: u64) {
            self.gaps.push(length);
        }
    }

    /// Cut `data` into segments (start, end) of random sizes, some overlapping their neighbours.
    fn segments(rng: &mut XorShift, len: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < len {
            let size = 1 + rng.below(200);
            let end = (at + size).min(len);
            let back = if at > 0 {
                rng.below(3) * rng.below(20)
            } else {
                0
            };
            out.push((at.saturating_sub(back), end));
            at = end;
        }
        out
    }

    #[test]
    fn any_segmentation_order_duplication_and_wrap_gives_back_the_bytes() {
        let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
        for case in 0..300 {
            let len = 1 + rng.below(5000);
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Half the cases start within a few KB of the 2^32 wrap.
            let isn = if case % 2 == 0 {
                u32::MAX - rng.below(3000) as u32
            } else {
                rng.next() as u32
            };
            let mut segs = segments(&mut rng, len);
            for _ in 0..rng.below(5) {
                let dup = segs[rng.below(segs.len())];
                segs.push(dup);
            }
            // Shuffle within a window, as reordering on a path does.
            for i in 0..segs.len() {
                let j = (i + rng.below(6)).min(segs.len() - 1);
                segs.swap(i, j);
            }
            let config = StreamConfig {
                overlap: if case % 3 == 0 {
                    OverlapPolicy::LastWins
                } else {
                    OverlapPolicy::FirstWins
                },
                max_buffered: 1 << 20,
            };
            let mut sink = Collect {
                bite: (case % 4 == 1).then_some(7),
                ..Collect::default()
            };
            let mut s = Stream::new();
            s.syn(isn);
            for (a, b) in &segs {
                let seq = isn.wrapping_add(1).wrapping_add(*a as u32);
                s.segment(seq, &data[*a..*b], false, &config, &mut sink);
            }
            s.close(&mut sink);
            if sink.bite.is_some() {
                // A sink that takes 7 bytes at a time is offered the rest again.
                while sink.data.len() < len && sink.calls < 100_000 {
                    let rest = s.pending.clone();
                    let used = sink.on_data(&rest);
                    s.pending.drain(..used);
                }
            }
            assert_eq!(sink.data, data, "case {case}");
            assert!(sink.gaps.is_empty(), "case {case}");
            assert_eq!(s.stats.conflicting, 0, "case {case}");
        }
    }

    #[test]
    fn forced_gaps_report_exactly_the_missing_lengths() {
        let mut rng = XorShift::new(42);
        for case in 0..200 {
            let len = 100 + rng.below(4000);
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let segs = segments(&mut rng, len);
            let isn = rng.next() as u32;
            let config = StreamConfig::default();
            let mut s = Stream::new();
            s.syn(isn);
            let mut sink = Collect::default();
            // Drop some segments, never the first.
            let mut kept = vec![false; len];
            for (i, (a, b)) in segs.iter().enumerate() {
                if i > 0 && rng.below(4) == 0 {
                    continue;
                }
                kept[*a..*b].iter_mut().for_each(|k| *k = true);
                let seq = isn.wrapping_add(1).wrapping_add(*a as u32);
                s.segment(seq, &data[*a..*b], false, &config, &mut sink);
            }
            // The FIN marks the end, so a missing tail is a gap too.
            s.segment(
                isn.wrapping_add(1).wrapping_add(len as u32),
                &[],
                true,
                &config,
                &mut sink,
            );
            s.close(&mut sink);
            let want: Vec<u8> = data
                .iter()
                .zip(&kept)
                .filter(|(_, k)| **k)
                .map(|(d, _)| *d)
                .collect();
            let mut holes = Vec::new();
            let mut run = 0u64;
            for k in &kept {
                if *k {
                    if run > 0 {
                        holes.push(run);
                    }
                    run = 0;
                } else {
                    run += 1;
                }
            }
            if run > 0 {
                holes.push(run);
            }
            assert_eq!(sink.data, want, "case {case}");
            assert_eq!(sink.gaps, holes, "case {case}");
            assert_eq!(s.stats.gap_bytes, holes.iter().sum::<u64>());
            assert!(s.finished());
        }
    }

    #[test]
    fn the_buffer_cap_forces_a_gap_instead_of_growing() {
        let config = StreamConfig {
            max_buffered: 1000,
            ..StreamConfig::default()
        };
        let mut s = Stream::new();
        s.syn(0);
        let mut sink = Collect::default();
        s.segment(1, b"abc", false, &config, &mut sink);
        // Offset 3..103 is lost; 1,200 bytes arrive beyond it.
        for i in 0..12u32 {
            s.segment(104 + i * 100, &[b'x'; 100], false, &config, &mut sink);
            assert!(s.buffered() <= 1000);
        }
        assert_eq!(sink.gaps, [100]);
        assert_eq!(sink.data.len(), 3 + 1200);
    }

    /// Found by the reassembly fuzz target: several holes, one forced gap was not enough.
    #[test]
    fn the_cap_holds_with_several_holes() {
        let config = StreamConfig {
            max_buffered: 100,
            ..StreamConfig::default()
        };
        let mut s = Stream::new();
        s.syn(0);
        let mut sink = Collect::default();
        for i in 0..20u32 {
            s.segment(1 + 100 + i * 30, &[1; 20], false, &config, &mut sink);
            assert!(s.buffered() <= 100 + 20, "{}", s.buffered());
        }
    }

    #[test]
    fn overlaps_follow_the_policy_and_count_conflicts() {
        for (policy, want) in [
            (OverlapPolicy::FirstWins, b"abcdXYZ"),
            (OverlapPolicy::LastWins, b"abQQXYZ"),
        ] {
            let config = StreamConfig {
                overlap: policy,
                ..StreamConfig::default()
            };
            let mut s = Stream::new();
            s.syn(999);
            let mut sink = Collect::default();
            s.segment(1003, b"cd", false, &config, &mut sink);
            s.segment(1003, b"QQXYZ", false, &config, &mut sink);
            s.segment(1000, b"ab", false, &config, &mut sink);
            s.close(&mut sink);
            assert_eq!(&sink.data, want, "{policy:?}");
            assert_eq!(s.stats.conflicting, 2);
        }
    }

    #[test]
    fn offsets_keep_counting_past_four_gigabytes() {
        let mut s = Stream::new();
        s.next = (1 << 32) + 100;
        assert_eq!(s.offset_of(0, 150), (1 << 32) + 150);
        assert_eq!(
            s.offset_of(0, u32::MAX - 10),
            (1 << 32) - 11,
            "a late retransmission"
        );
        s.next = (1 << 32) - 5;
        assert_eq!(s.offset_of(0, 20), (1 << 32) + 20, "just past the wrap");
    }

    #[test]
    fn mid_stream_pickup_and_retransmissions() {
        let config = StreamConfig::default();
        let mut s = Stream::new();
        let mut sink = Collect::default();
        s.segment(5000, b"hello ", false, &config, &mut sink);
        s.segment(5000, b"hello ", false, &config, &mut sink);
        s.segment(5006, b"world", true, &config, &mut sink);
        assert_eq!(sink.data, b"hello world");
        assert_eq!(s.stats.retransmitted, 6);
        assert!(s.finished());
    }
}
