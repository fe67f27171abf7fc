//! Test helpers shared by the per-protocol tests: a deterministic random generator, the
//! invariants every decode must keep, and the sweeps over truncated and mutated packets.

use super::{Anomalies, DecodeOptions, Decoded, Network, Transport, decode};

/// Decoding that verifies checksums.
pub(super) const VERIFY: DecodeOptions = DecodeOptions {
    verify_checksums: true,
};

/// Decoding that leaves checksums alone.
pub(super) const PLAIN: DecodeOptions = DecodeOptions {
    verify_checksums: false,
};

/// Both ways of decoding.
pub(super) const BOTH: [DecodeOptions; 2] = [PLAIN, VERIFY];

/// Anomalies that report a packet cut short.
const TRUNCATION: Anomalies = Anomalies(
    Anomalies::TRUNCATED_LINK_HEADER.0
        | Anomalies::TRUNCATED_IP_HEADER.0
        | Anomalies::TRUNCATED_TRANSPORT_HEADER.0
        | Anomalies::IP_LEN_BEYOND_CAPTURED.0
        | Anomalies::IPV6_EXT_TRUNCATED.0,
);

pub(super) use crate::testing::XorShift;

/// What must hold for any decode of any input.
pub(super) fn check_invariants(d: &Decoded<'_>, data: &[u8]) {
    let start = data.as_ptr() as usize;
    let at = d.payload.as_ptr() as usize;
    assert!(
        d.payload.is_empty() || (at >= start && at + d.payload.len() <= start + data.len()),
        "payload outside the packet"
    );
    assert!(d.vlan_ids().len() <= 2);
    assert_eq!(
        d.anomalies.names().count(),
        d.anomalies.0.count_ones() as usize
    );
    if d.ip_src().is_some() {
        assert!(d.ip_dst().is_some() && d.ip_protocol().is_some() && d.ip_total_len().is_some());
    }
    match d.transport {
        Transport::Tcp(tcp) => {
            assert_eq!(d.src_port(), Some(tcp.src_port()));
            assert!(tcp.options().len() <= 40);
            assert!(tcp.options_iter().count() <= 40);
            assert!(tcp.options_summary().sack().len() <= 4);
        }
        Transport::Udp(udp) => assert_eq!(d.dst_port(), Some(udp.dst_port())),
        Transport::Icmp(_) | Transport::Icmpv6(_) | Transport::Other(_) => {
            assert!(d.src_port().is_none());
        }
        Transport::None => {}
    }
    if !matches!(d.transport, Transport::None) {
        assert!(matches!(d.network, Network::Ipv4(_) | Network::Ipv6(_)));
    }
}

/// Decodes every prefix of `packet` (whose layers end at `full` bytes; anything after is
/// padding): each must keep the invariants, prefixes shorter than `full` must report the
/// truncation, and longer ones must decode like the whole packet.
pub(super) fn every_truncation(link_type: u32, packet: &[u8], full: usize) {
    for options in BOTH {
        let whole = decode(link_type, packet, &options);
        assert!(!whole.truncated);
        for len in 0..packet.len() {
            let part = packet.get(..len).unwrap_or_default();
            let d = decode(link_type, part, &options);
            check_invariants(&d, part);
            if len < full {
                assert!(d.truncated, "{len} bytes not reported truncated");
                assert!(
                    d.anomalies.0 & TRUNCATION.0 != 0,
                    "{len} bytes: no truncation anomaly in {:?}",
                    d.anomalies.names().collect::<Vec<_>>()
                );
            } else {
                assert!(!d.truncated, "{len} bytes reported truncated");
                assert_eq!(d.anomalies, whole.anomalies, "{len} bytes");
                assert_eq!(d.payload, whole.payload, "{len} bytes");
            }
        }
    }
}

/// Decodes thousands of randomly damaged copies of `packet`, cut at random lengths.
pub(super) fn mutations(link_type: u32, packet: &[u8]) {
    let mut rng = XorShift::new(packet.len() as u64 ^ u64::from(link_type) << 32);
    let mut buf = packet.to_vec();
    for round in 0..5_000 {
        buf.copy_from_slice(packet);
        for _ in 0..=rng.below(4) {
            let at = rng.below(buf.len());
            buf[at] = rng.next() as u8;
        }
        let len = if round % 4 == 0 {
            rng.below(buf.len() + 1)
        } else {
            buf.len()
        };
        for options in BOTH {
            check_invariants(&decode(link_type, &buf[..len], &options), &buf[..len]);
        }
    }
}
