//! Helpers shared by the fuzz targets: a pipe-like reader and a checked drain of a capture.

#![allow(dead_code)]

use gophercap::source::buffer::ReadBuffer;
use gophercap::source::capture::{MAX_PCAP_RECORD, MAX_PCAPNG_BLOCK};
use gophercap::source::{CaptureFormat, CaptureReader, Compression, Source, SourceError};
use std::io::{self, Read};

/// Hands out at most 7 bytes per `read` (cycling 1..=7), like a slow pipe, so every
/// `ReadBuffer::fill_to` loop and refill path runs.
pub struct Trickle<'a> {
    data: &'a [u8],
    calls: usize,
}

impl<'a> Trickle<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Trickle { data, calls: 0 }
    }
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        let step = self.calls % 7 + 1;
        let n = step.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// What a drain saw, for comparing two reads of the same bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub packets: u64,
    /// FNV-1a over every packet's fields and bytes, in order.
    pub digest: u64,
    /// `(kind code, offset, record)` of the error that ended the read, if any.
    pub error: Option<(&'static str, u64, u64)>,
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Advance through every packet, touching all bytes and checking the `Source` contract:
/// a packet after every `Ok(true)`, none after the end or an error, no packet larger than the
/// format's ceiling, and `records()` counting what was delivered.
pub fn drain(reader: &mut CaptureReader<'_>) -> Outcome {
    let max = match reader.format() {
        CaptureFormat::Pcap => MAX_PCAP_RECORD as usize,
        // pcapng blocks may be up to 16 MiB and the reader does not clamp the captured
        // length to 262144 (libpcap does): hold it to the block ceiling.
        CaptureFormat::Pcapng => MAX_PCAPNG_BLOCK as usize,
    };
    let _ = (reader.snaplen(), reader.link_types().len(), reader.compression());
    let mut packets = 0u64;
    let mut digest = 0xcbf2_9ce4_8422_2325u64;
    let mut sum = 0u64;
    let error = loop {
        match reader.advance() {
            Ok(true) => {
                packets += 1;
                let has_ts = reader.packet_has_timestamp();
                let p = reader
                    .packet()
                    .expect("advance returned Ok(true) but packet() is None");
                assert!(
                    p.data.len() <= max,
                    "packet of {} bytes exceeds the {:?} ceiling {}",
                    p.data.len(),
                    reader.format(),
                    max
                );
                if reader.format() == CaptureFormat::Pcap {
                    assert!(p.data.len() <= MAX_PCAP_RECORD as usize);
                }
                for &b in p.data {
                    sum = sum.wrapping_add(u64::from(b));
                }
                let _ = p.is_truncated();
                digest = fnv(digest, &p.ts_ns.to_le_bytes());
                digest = fnv(digest, &p.link_type.0.to_le_bytes());
                digest = fnv(digest, &p.orig_len.to_le_bytes());
                digest = fnv(digest, &p.interface.to_le_bytes());
                digest = fnv(digest, &[u8::from(has_ts)]);
                digest = fnv(digest, &(p.data.len() as u64).to_le_bytes());
                digest = fnv(digest, p.data);
                assert_eq!(reader.records(), packets, "records() disagrees with packets seen");
            }
            Ok(false) => break None,
            Err(e) => break Some(describe(&e)),
        }
    };
    assert!(reader.packet().is_none(), "packet() is Some after the end or an error");
    for _ in 0..3 {
        match reader.advance() {
            Ok(false) => {}
            Ok(true) => panic!("advance returned a packet after the end or an error"),
            Err(e) => panic!("advance returned a second error after finishing: {e}"),
        }
        assert!(reader.packet().is_none(), "packet() is Some after the end or an error");
    }
    assert_eq!(reader.records(), packets);
    let _ = reader.offset();
    std::hint::black_box(sum);
    Outcome {
        packets,
        digest,
        error,
    }
}

pub fn describe(e: &SourceError) -> (&'static str, u64, u64) {
    let _ = e.to_string();
    (e.kind.code(), e.offset, e.record)
}

/// Open `data` with a 64-byte window over a 7-bytes-per-read stream and drain it.
pub fn drain_trickled(data: &[u8]) -> Result<Outcome, (&'static str, u64, u64)> {
    let buf = ReadBuffer::new(Box::new(Trickle::new(data)), 64);
    match CaptureReader::open("fuzz-trickle".to_string(), buf, Compression::None) {
        Ok(mut reader) => Ok(drain(&mut reader)),
        Err(e) => Err(describe(&e)),
    }
}

/// Feed `data` to `open_stream` from an in-memory cursor, then drain the capture through a
/// 64-byte window and 7-byte reads too; both reads of the same bytes must agree.
pub fn check_capture_bytes(data: &[u8]) {
    use gophercap::source::input::{OpenedInput, open_stream};
    let whole = match open_stream("fuzz".to_string(), Box::new(io::Cursor::new(data))) {
        Ok(OpenedInput::Capture(mut reader)) => {
            let gz = reader.compression() == Compression::Gzip;
            (Some(Ok(drain(&mut reader))), gz)
        }
        Ok(OpenedInput::Archive(_)) => (None, false),
        Err(e) => (Some(Err(describe(&e))), false),
    };
    let trickled = drain_trickled(data);
    // Only a plain (not gzip) capture reads the same through both doors; an input too short or
    // not a capture fails both, though open_stream may word it differently.
    if let (Some(Ok(a)), false) = (&whole.0, whole.1) {
        match &trickled {
            Ok(b) => assert_eq!(a, b, "1 MiB window and 64-byte window read differently"),
            Err(e) => panic!("open_stream read the capture but the trickled open failed: {e:?}"),
        }
    }
}
