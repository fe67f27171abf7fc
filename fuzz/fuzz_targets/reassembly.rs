//! Arbitrary segments into one reassembled stream: it must never panic, never hold more than
//! its cap (plus the segment being handled), and deliver plus declare missing exactly as many
//! bytes as it advanced.
#![no_main]

use gophercap::reassembly::{OverlapPolicy, Stream, StreamConfig, StreamSink};
use libfuzzer_sys::fuzz_target;

struct Count {
    bytes: u64,
    gaps: u64,
    keep: usize,
}

impl StreamSink for Count {
    fn on_data(&mut self, data: &[u8]) -> usize {
        // Keep up to `keep` bytes unconsumed, like a parser waiting for a whole header.
        let used = data.len().saturating_sub(self.keep);
        self.bytes += used as u64;
        used
    }
    fn on_gap(&mut self, length: u64) {
        self.gaps += length;
    }
}

const CAP: usize = 4096;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, mut rest)) = input.split_first() else {
        return;
    };
    let config = StreamConfig {
        overlap: if mode & 1 == 0 {
            OverlapPolicy::FirstWins
        } else {
            OverlapPolicy::LastWins
        },
        max_buffered: CAP,
    };
    let mut sink = Count {
        bytes: 0,
        gaps: 0,
        keep: usize::from(mode >> 4),
    };
    let mut stream = Stream::new();
    if mode & 2 != 0 {
        stream.syn(u32::MAX - 100);
    }
    // Each segment: 4 bytes of sequence number, 1 of length (times 8), 1 of flags.
    while rest.len() >= 6 {
        let seq = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let len = usize::from(rest[4]) * 8;
        let fin = rest[5] & 1 != 0;
        rest = &rest[6..];
        let payload = vec![rest.first().copied().unwrap_or(0); len];
        stream.segment(seq, &payload, fin, &config, &mut sink);
        assert!(stream.buffered() <= CAP + len, "over the cap: {}", stream.buffered());
    }
    stream.close(&mut sink);
    assert!(stream.stats.gap_bytes == sink.gaps);
    assert!(sink.bytes <= stream.stats.delivered);
});
