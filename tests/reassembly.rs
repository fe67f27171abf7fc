//! The reassembly core through the one pipeline, against Zeek's reassembled byte streams: the
//! IPv6 FTP trace's control connection, each direction byte for byte
//! (`contents-default-extract` baselines beside the corpus).

mod common;

use common::*;
use gophercap::decode::Decoded;
use gophercap::flow::{EndReason, Side};
use gophercap::pipeline::{FlowConsumer, PipelineConfig, TrackedFlow, run};
use gophercap::reassembly::{CloseReason, ConnectionInfo, StreamConfig, StreamHandler};
use gophercap::source::input::open_path;
use gophercap::source::{OpenedInput, Packet};
use std::collections::HashMap;

/// Every connection's two byte streams, keyed by (client port, server port).
#[derive(Default)]
struct Streams {
    bytes: HashMap<(u64, Side), Vec<u8>>,
    ports: HashMap<u64, (u16, u16)>,
    gaps: u64,
    closes: Vec<(u64, Side, CloseReason)>,
    /// Gap bytes already reported when the last packet had been handled (before the end).
    gaps_while_reading: u64,
}

impl StreamHandler for Streams {
    /// The id of the connection it was opened for: every call must bring its own back.
    type State = u64;
    fn open(&mut self, c: &ConnectionInfo) -> u64 {
        c.id
    }
    fn data(&mut self, c: &ConnectionInfo, opened_for: &mut u64, from: Side, data: &[u8]) -> usize {
        assert_eq!(*opened_for, c.id);
        let client = c.client.unwrap_or(Side::A);
        self.ports.insert(
            c.id,
            (c.key.sender(client).port, c.key.sender(client.other()).port),
        );
        self.bytes
            .entry((c.id, from))
            .or_default()
            .extend_from_slice(data);
        data.len()
    }
    fn gap(&mut self, c: &ConnectionInfo, opened_for: &mut u64, _: Side, length: u64) {
        assert_eq!(*opened_for, c.id);
        self.gaps += length;
    }
    fn close(&mut self, c: &ConnectionInfo, opened_for: &mut u64, from: Side, reason: CloseReason) {
        assert_eq!(*opened_for, c.id);
        self.closes.push((c.id, from, reason));
    }
}

impl FlowConsumer for Streams {
    type ConnectionState = u64;
    fn packet(&mut self, _: &Packet<'_>, _: &Decoded<'_>, _: Option<(&TrackedFlow<u64>, Side)>) {
        self.gaps_while_reading = self.gaps;
    }
    fn flow_ended(&mut self, _: TrackedFlow<u64>, _: EndReason) {}
    fn stream_handler(&mut self) -> Option<&mut dyn StreamHandler<State = u64>> {
        Some(self)
    }
}

fn reassemble(path: &std::path::Path) -> Streams {
    let OpenedInput::Capture(mut reader) = open_path(path).unwrap() else {
        panic!("not a capture");
    };
    let config = PipelineConfig {
        reassembly: Some(StreamConfig::default()),
        ..PipelineConfig::default()
    };
    let mut streams = Streams::default();
    let (_, error) = run(&mut reader, &config, &mut streams);
    assert!(error.is_none(), "{error:?}");
    streams
}

#[test]
fn ftp_over_ipv6_matches_zeeks_reassembled_streams() {
    let corpus = corpus().expect("../shared/corpus beside the repository");
    let streams = reassemble(&corpus.join("zeek/traces/ftp/ipv6.pcap"));
    let baseline =
        corpus.join("zeek/Baseline/scripts.base.protocols.conn.contents-default-extract");
    let name = "contents_[2001-470-1f11-81f-c999-d94-aa7c-2e3e]-49185-[2001-470-4867-99--21]-21";
    // btest-diff puts one header line of its own before the stream.
    let without_header = |bytes: Vec<u8>| -> Vec<u8> {
        assert!(bytes.starts_with(b"### BTest"));
        let newline = bytes.iter().position(|b| *b == b'\n').unwrap();
        bytes[newline + 1..].to_vec()
    };
    let orig = without_header(std::fs::read(baseline.join(format!("{name}_orig.dat"))).unwrap());
    let resp = without_header(std::fs::read(baseline.join(format!("{name}_resp.dat"))).unwrap());
    let (&id, _) = streams
        .ports
        .iter()
        .find(|(_, ports)| **ports == (49185, 21))
        .expect("the control connection");
    let client = streams
        .bytes
        .keys()
        .find(|(i, side)| *i == id && streams.bytes[&(id, *side)].starts_with(b"USER"))
        .map(|(_, side)| *side)
        .expect("the client's stream starts with USER");
    assert_eq!(streams.bytes[&(id, client)], orig, "client → server");
    assert_eq!(
        streams.bytes[&(id, client.other())],
        resp,
        "server → client"
    );
    assert_eq!(streams.gaps, 0);
    assert!(
        streams
            .closes
            .iter()
            .any(|c| c.0 == id && c.2 == CloseReason::Fin)
    );
}

#[test]
fn a_lost_segment_is_a_gap_of_its_length() {
    let dir = scratch("reassembly-gap");
    let mut frames = http_exchange_ipv4(40600);
    // Drop the client's request (the fourth packet): its 35 bytes become a gap.
    let request = frames.remove(3);
    let lost = request.len() - 40;
    let records = timed(
        frames
            .into_iter()
            .map(|p| ethernet(&[], ETHERTYPE_IPV4, &p))
            .collect(),
        T0,
        1_000_000,
    );
    let path = dir.join("lost.pcap");
    write(
        &path,
        &pcap_bytes(
            1,
            65535,
            gophercap::sink::capture::Precision::Micro,
            false,
            &records,
        ),
    );
    let streams = reassemble(&path);
    assert_eq!(streams.gaps, lost as u64);
    let response: Vec<&Vec<u8>> = streams.bytes.values().collect();
    assert_eq!(response.len(), 1, "only the server's bytes arrived");
    assert!(response[0].starts_with(b"HTTP/1.1 200 OK"));
}

#[test]
fn the_cap_across_connections_turns_waiting_data_into_gaps() {
    let dir = scratch("reassembly-total-cap");
    // Two connections, each missing its first data segment and holding 400 bytes behind it:
    // 800 bytes wait in all, over a global cap of 600 though under each stream's own cap.
    let mut frames = Vec::new();
    for port in [40801u16, 40802] {
        let (c, s) = (CLIENT, SERVER);
        frames.push(ipv4(c, s, 6, &tcp(&c, &s, (port, 80), 0, 0, SYN, b"")));
        frames.push(ipv4(
            c,
            s,
            6,
            &tcp(&c, &s, (port, 80), 1 + 100, 0, ACK, &[b'x'; 400]),
        ));
    }
    let records = timed(
        frames
            .into_iter()
            .map(|p| ethernet(&[], ETHERTYPE_IPV4, &p))
            .collect(),
        T0,
        1_000,
    );
    let path = dir.join("holes.pcap");
    write(
        &path,
        &pcap_bytes(
            1,
            65535,
            gophercap::sink::capture::Precision::Micro,
            false,
            &records,
        ),
    );
    let read = |cap| {
        let OpenedInput::Capture(mut reader) = open_path(&path).unwrap() else {
            panic!("not a capture");
        };
        let config = PipelineConfig {
            reassembly: Some(StreamConfig::default()),
            reassembly_total_cap: cap,
            ..PipelineConfig::default()
        };
        let mut streams = Streams::default();
        let (_, error) = run(&mut reader, &config, &mut streams);
        assert!(error.is_none());
        streams
    };
    let capped = read(600);
    assert_eq!(
        capped.gaps_while_reading, 100,
        "the second connection crossed the cap"
    );
    assert_eq!(
        capped.gaps, 200,
        "the first one's hole is declared at the end"
    );
    assert_eq!(capped.bytes.values().map(Vec::len).sum::<usize>(), 800);
    let uncapped = read(0);
    assert_eq!(
        uncapped.gaps_while_reading, 0,
        "without the cap data waits for the holes"
    );
    assert_eq!(uncapped.gaps, 200);
}
