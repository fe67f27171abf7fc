//! Arbitrary bytes as both directions of one connection, cut into segments with gaps and
//! closes between them, fed the way the reassembler feeds a handler (unconsumed bytes come
//! again with the next ones): the HTTP tracker must never panic, never leave more than a head's
//! worth of bytes unconsumed, keep bodies and payloads within the limit, and free the
//! connection once both directions closed.
#![no_main]

use gophercap::flow::{Endpoint, FlowKey, Side};
use gophercap::proto::http::{HttpConfig, HttpEvent, HttpSink, HttpTracker, Problem};
use gophercap::reassembly::{CloseReason, ConnectionInfo, StreamHandler};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr};

const MAX_HEAD: usize = 256;
const MAX_BODY: usize = 64;

/// Checks each event as it comes.
struct Check;

impl HttpSink for Check {
    fn event(&mut self, event: HttpEvent) {
        match event {
            HttpEvent::Message(m) => {
                assert!(m.body.len() <= MAX_BODY);
                assert!(m.body_decoded || m.body.len() as u64 <= m.body_length);
                assert!(m.body_truncated || m.body_decoded || m.body.len() as u64 == m.body_length);
            }
            HttpEvent::WebSocket(w) => {
                assert!(w.payload.len() <= MAX_BODY);
                assert!(w.payload.len() as u64 <= w.payload_length);
            }
            HttpEvent::Problem(p) => assert!(p.sample.len() <= Problem::SAMPLE_LEN),
        }
    }
}

const REASONS: [CloseReason; 4] = [
    CloseReason::Fin,
    CloseReason::Reset,
    CloseReason::Expired,
    CloseReason::End,
];

fuzz_target!(|input: &[u8]| {
    let Some((&mode, mut rest)) = input.split_first() else {
        return;
    };
    let config = HttpConfig {
        server_ports: if mode & 1 != 0 { vec![80] } else { Vec::new() },
        max_header_bytes: MAX_HEAD,
        max_body_size: MAX_BODY,
        decompress: mode & 2 != 0,
        sample_rate: 1.0,
    };
    let mut tracker = HttpTracker::new(config, Check).expect("valid config");
    let endpoint = |last, port| Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
        port,
    };
    let mut info = ConnectionInfo {
        id: 1,
        key: FlowKey::new(6, 0, endpoint(1, 40000), endpoint(2, 80)).0,
        client: None,
        ts_ns: 0,
    };
    let mut connection = tracker.open(&info);
    let mut held: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut closed = [false; 2];
    // Each step: an op byte (bit 0: side B; bits 1-2: 0 or 1 data, 2 gap, 3 close) and a
    // length byte, then for data that many bytes.
    while let [op, length, tail @ ..] = rest {
        rest = tail;
        let side = if op & 1 == 0 { Side::A } else { Side::B };
        let i = side.index();
        info.ts_ns += 1;
        if closed[i] {
            continue;
        }
        match (op >> 1) & 3 {
            0 | 1 => {
                let n = usize::from(*length).min(rest.len());
                held[i].extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                let used = tracker.data(&info, &mut connection, side, &held[i]);
                assert!(used <= held[i].len());
                held[i].drain(..used);
                assert!(held[i].len() <= MAX_HEAD, "held {}", held[i].len());
            }
            2 => {
                held[i].clear();
                let gap = if *length == 255 {
                    u64::MAX / 2
                } else {
                    u64::from(*length)
                };
                tracker.gap(&info, &mut connection, side, gap);
            }
            _ => {
                tracker.close(
                    &info,
                    &mut connection,
                    side,
                    REASONS[usize::from(*length) % 4],
                );
                closed[i] = true;
            }
        }
    }
    for side in [Side::A, Side::B] {
        if !closed[side.index()] {
            tracker.close(&info, &mut connection, side, CloseReason::End);
        }
    }
    assert!(!connection.is_open());
});
