//! IPv6: the header view and the walk along its extension-header chain. The upper-layer protocol
//! and any fragment header only appear at the end of that chain, so it is walked once, when the
//! view is made, and the result kept in the view as plain data.

use std::net::Ipv6Addr;

use super::checksum::PseudoHeader;
use super::{Anomalies, Decoded, IpPayload, Network, array_at, be16, be32, byte};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTHENTICATION: u8 = 51;
const DESTINATION_OPTIONS: u8 = 60;
const NO_NEXT_HEADER: u8 = 59;

/// Which extension headers a packet carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtHeaders(pub u8);

impl ExtHeaders {
    pub const HOP_BY_HOP: Self = Self(1 << 0);
    pub const ROUTING: Self = Self(1 << 1);
    pub const FRAGMENT: Self = Self(1 << 2);
    pub const DESTINATION_OPTIONS: Self = Self(1 << 3);
    pub const AUTHENTICATION: Self = Self(1 << 4);

    /// Whether every header of `other` was seen.
    #[inline]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for ExtHeaders {
    type Output = Self;

    #[inline]
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// The contents of an IPv6 fragment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Fragment {
    /// Offset in 8-byte units.
    pub offset: u16,
    pub more: bool,
    pub identification: u32,
}

/// The result of walking the extension-header chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Extensions {
    pub seen: ExtHeaders,
    /// Extension headers walked, repeats included (saturating at 255).
    pub count: u8,
    /// The upper-layer protocol; if the walk stopped early, the header it stopped at.
    pub protocol: u8,
    /// Bytes from the start of the IPv6 header to the upper-layer header.
    pub header_len: usize,
    pub fragment: Option<Ipv6Fragment>,
    /// A routing header still has segments to visit, so the destination address is not the
    /// one the upper-layer checksum covers.
    pub routing_pending: bool,
    /// An extension header ran past the payload length or the captured bytes.
    pub truncated: bool,
}

/// A view of an IPv6 header, with its extension chain already walked.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Packet<'a> {
    header: &'a [u8; HEADER_LEN],
    extensions: Ipv6Extensions,
}

impl<'a> Ipv6Packet<'a> {
    /// The header at the start of `bytes` (the captured bytes from there on), if its fixed 40
    /// bytes were captured.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        let header = bytes.first_chunk::<HEADER_LEN>()?;
        let end = announced_end(header)
            .unwrap_or(bytes.len())
            .min(bytes.len());
        let extensions = walk(byte(header, 6), bytes.get(..end).unwrap_or_default());
        Some(Self { header, extensions })
    }

    #[inline]
    pub fn version(&self) -> u8 {
        byte(self.header, 0) >> 4
    }

    #[inline]
    pub fn traffic_class(&self) -> u8 {
        ((be16(self.header, 0) >> 4) & 0xff) as u8
    }

    #[inline]
    pub fn flow_label(&self) -> u32 {
        be32(self.header, 0) & 0x000f_ffff
    }

    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.header, 4)
    }

    /// The header right after the fixed header (see [`Ipv6Extensions::protocol`] for the
    /// upper layer).
    #[inline]
    pub fn next_header(&self) -> u8 {
        byte(self.header, 6)
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        byte(self.header, 7)
    }

    #[inline]
    pub fn src(&self) -> [u8; 16] {
        array_at(self.header, 8).unwrap_or_default()
    }

    #[inline]
    pub fn dst(&self) -> [u8; 16] {
        array_at(self.header, 24).unwrap_or_default()
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src())
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst())
    }

    #[inline]
    pub fn extensions(&self) -> Ipv6Extensions {
        self.extensions
    }
}

/// Where the packet ends according to its header; `None` when it does not say. A payload length
/// of 0 is only honest before "no next header": otherwise it is a jumbogram (its length is in a
/// hop-by-hop option) or, in a capture on the sending host, a GSO super-packet, and only the
/// capture bounds those.
#[inline]
fn announced_end(header: &[u8; HEADER_LEN]) -> Option<usize> {
    match be16(header, 4) {
        0 if byte(header, 6) != NO_NEXT_HEADER => None,
        len => Some(HEADER_LEN + usize::from(len)),
    }
}

/// Walks the extension headers in `packet` (bounded by the payload length and the capture),
/// starting with `next`, the fixed header's next-header field.
fn walk(mut next: u8, packet: &[u8]) -> Ipv6Extensions {
    let mut ext = Ipv6Extensions {
        seen: ExtHeaders::default(),
        count: 0,
        protocol: next,
        header_len: HEADER_LEN,
        fragment: None,
        routing_pending: false,
        truncated: false,
    };
    // Every header is at least 8 bytes long, so the walk ends within the packet.
    loop {
        let rest = packet.get(ext.header_len..).unwrap_or_default();
        let len_field = rest.get(1).copied();
        let (flag, len) = match (next, len_field) {
            (HOP_BY_HOP, Some(n)) => (ExtHeaders::HOP_BY_HOP, (usize::from(n) + 1) * 8),
            (ROUTING, Some(n)) => (ExtHeaders::ROUTING, (usize::from(n) + 1) * 8),
            (DESTINATION_OPTIONS, Some(n)) => {
                (ExtHeaders::DESTINATION_OPTIONS, (usize::from(n) + 1) * 8)
            }
            (AUTHENTICATION, Some(n)) => (ExtHeaders::AUTHENTICATION, (usize::from(n) + 2) * 4),
            (FRAGMENT, _) => (ExtHeaders::FRAGMENT, 8),
            (HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS | AUTHENTICATION, None) => {
                ext.truncated = true;
                return ext;
            }
            _ => return ext,
        };
        let Some(header) = rest.get(..len) else {
            ext.truncated = true;
            return ext;
        };
        next = byte(header, 0);
        ext.seen = ext.seen | flag;
        ext.count = ext.count.saturating_add(1);
        ext.header_len += len;
        ext.protocol = next;
        if flag == ExtHeaders::ROUTING && byte(header, 3) != 0 {
            ext.routing_pending = true;
        }
        if flag == ExtHeaders::FRAGMENT {
            let field = be16(header, 2);
            let fragment = Ipv6Fragment {
                offset: field >> 3,
                more: field & 1 != 0,
                identification: be32(header, 4),
            };
            ext.fragment = Some(fragment);
            // What follows a later fragment is the middle of someone else's payload.
            if fragment.offset != 0 {
                return ext;
            }
        }
    }
}

/// Decodes the IPv6 header in `data` into `d`; returns the upper-layer bytes when there is a
/// transport header to decode.
pub(super) fn decode<'a>(data: &'a [u8], d: &mut Decoded<'a>) -> Option<IpPayload<'a>> {
    let Some(ip) = Ipv6Packet::new(data) else {
        d.anomalies.insert(Anomalies::TRUNCATED_IP_HEADER);
        d.truncated = true;
        return None;
    };
    d.network = Network::Ipv6(ip);
    if ip.version() != 6 {
        d.anomalies.insert(Anomalies::BAD_IP_VERSION);
        return None;
    }
    let announced_end = announced_end(ip.header);
    if announced_end.is_none() && ip.next_header() != HOP_BY_HOP {
        d.anomalies.insert(Anomalies::IP_TOTAL_LEN_SHORT);
    }
    let end = announced_end.unwrap_or(data.len());
    if end > data.len() {
        d.anomalies.insert(Anomalies::IP_LEN_BEYOND_CAPTURED);
        d.truncated = true;
    }
    let ext = ip.extensions;
    let packet = data.get(..end).unwrap_or(data);
    d.payload = packet.get(ext.header_len..).unwrap_or_default();
    if ext.truncated {
        d.anomalies.insert(Anomalies::IPV6_EXT_TRUNCATED);
        return None;
    }
    if let Some(fragment) = ext.fragment {
        // An atomic fragment (offset 0, no more) is a whole packet.
        d.fragment = fragment.offset != 0 || fragment.more;
        if fragment.offset != 0 {
            d.anomalies.insert(Anomalies::NON_FIRST_FRAGMENT);
            return None;
        }
    }
    let announced = end.saturating_sub(ext.header_len);
    Some(IpPayload {
        protocol: ext.protocol,
        bytes: d.payload,
        announced,
        pseudo: PseudoHeader::V6 {
            src: ip.src(),
            dst: ip.dst(),
        },
        checksummable: announced_end.is_some()
            && !d.fragment
            && !ext.routing_pending
            && d.payload.len() == announced,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PLAIN, VERIFY, every_truncation, mutations};
    use super::super::{Anomalies, ChecksumStatus, Decoded, Network, Transport, decode};
    use super::{ExtHeaders, Ipv6Fragment, Ipv6Packet};

    /// Raw IPv6 (no link header): hop-by-hop, routing, destination options, then the fragment
    /// header of a first fragment (offset 0, more fragments), then TCP with 19 bytes of data.
    #[rustfmt::skip]
    const EXT_CHAIN: [u8; 119] = [
        // IPv6: payload length 79, next header hop-by-hop (0), hop limit 64
        0x60, 0x00, 0x00, 0x00, 0x00, 0x4f, 0x00, 0x40,
        // src 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01,
        // dst 2001:db8::2
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02,
        // hop-by-hop: next routing (43), length 0 (8 bytes), PadN(4)
        0x2b, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
        // routing: next destination options (60), length 0, type 253, segments left 0
        0x3c, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00,
        // destination options: next fragment (44), length 1 (16 bytes), PadN(12)
        0x2c, 0x01, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
        // fragment: next TCP (6), offset 0, more fragments, identification 0xdeadbeef
        0x06, 0x00, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef,
        // TCP: 40001 -> 8080, seq 7, ack 9, data offset 5, PSH+ACK, window 1000, checksum 0xc0f1
        0x9c, 0x41, 0x1f, 0x90, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x09,
        0x50, 0x18, 0x03, 0xe8, 0xc0, 0xf1, 0x00, 0x00,
        // "first fragment data"
        0x66, 0x69, 0x72, 0x73, 0x74, 0x20, 0x66, 0x72, 0x61, 0x67, 0x6d, 0x65,
        0x6e, 0x74, 0x20, 0x64, 0x61, 0x74, 0x61,
    ];

    /// Raw IPv6: a later fragment (offset 5, i.e. 40 bytes) of the same datagram.
    #[rustfmt::skip]
    const LATER_FRAGMENT: [u8; 64] = [
        // IPv6: payload length 24, next header fragment (44), hop limit 64
        0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x2c, 0x40,
        // src 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01,
        // dst 2001:db8::2
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02,
        // fragment: next TCP (6), offset 5, last fragment, identification 0xdeadbeef
        0x06, 0x00, 0x00, 0x28, 0xde, 0xad, 0xbe, 0xef,
        // "second fragment."
        0x73, 0x65, 0x63, 0x6f, 0x6e, 0x64, 0x20, 0x66, 0x72, 0x61, 0x67, 0x6d,
        0x65, 0x6e, 0x74, 0x2e,
    ];

    /// Raw IPv6 with an authentication header (length counted in 4-byte units, plus 2) then UDP.
    #[rustfmt::skip]
    const AH_UDP: [u8; 75] = [
        // IPv6: payload length 35, next header AH (51), hop limit 64
        0x60, 0x00, 0x00, 0x00, 0x00, 0x23, 0x33, 0x40,
        // src 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01,
        // dst 2001:db8::2
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02,
        // AH: next UDP (17), length 4 (24 bytes), SPI 0x100, sequence 1, 12-byte ICV
        0x11, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01,
        0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
        // UDP: 500 -> 500, length 11, checksum 0x1e13
        0x01, 0xf4, 0x01, 0xf4, 0x00, 0x0b, 0x1e, 0x13,
        // "ah!"
        0x61, 0x68, 0x21,
    ];

    fn ipv6<'a>(d: &Decoded<'a>) -> Ipv6Packet<'a> {
        match d.network {
            Network::Ipv6(ip) => ip,
            other => panic!("not IPv6: {other:?}"),
        }
    }

    #[test]
    fn extension_chain_then_tcp() {
        for link_type in [101, 12, 14, 229] {
            let d = decode(link_type, &EXT_CHAIN, &VERIFY);
            assert!(d.anomalies.is_empty() && !d.truncated);
            let ip = ipv6(&d);
            assert_eq!(
                (ip.version(), ip.payload_len(), ip.hop_limit()),
                (6, 79, 64)
            );
            assert_eq!(
                (ip.traffic_class(), ip.flow_label(), ip.next_header()),
                (0, 0, 0)
            );
            assert_eq!(
                ip.dst_addr(),
                "2001:db8::2".parse::<std::net::Ipv6Addr>().unwrap()
            );
            let ext = ip.extensions();
            assert!(ext.seen.contains(
                ExtHeaders::HOP_BY_HOP
                    | ExtHeaders::ROUTING
                    | ExtHeaders::DESTINATION_OPTIONS
                    | ExtHeaders::FRAGMENT
            ));
            assert!(!ext.seen.contains(ExtHeaders::AUTHENTICATION));
            assert_eq!((ext.count, ext.protocol, ext.header_len), (4, 6, 80));
            assert!(!ext.truncated && !ext.routing_pending);
            let fragment = Ipv6Fragment {
                offset: 0,
                more: true,
                identification: 0xdead_beef,
            };
            assert_eq!(ext.fragment, Some(fragment));
            // A first fragment: transport decoded, flagged, not checksummed.
            assert!(d.fragment);
            assert_eq!((d.src_port(), d.dst_port()), (Some(40001), Some(8080)));
            assert_eq!(d.payload, b"first fragment data");
            assert_eq!(d.checksums.transport, ChecksumStatus::NotChecked);
            assert_eq!(d.ip_total_len(), Some(119));
        }
    }

    #[test]
    fn extension_chain_cut_at_every_length() {
        every_truncation(101, &EXT_CHAIN, EXT_CHAIN.len());
        mutations(101, &EXT_CHAIN);
    }

    #[test]
    fn later_fragment_has_no_transport() {
        let d = decode(229, &LATER_FRAGMENT, &VERIFY);
        assert_eq!(d.anomalies, Anomalies::NON_FIRST_FRAGMENT);
        assert!(d.fragment && matches!(d.transport, Transport::None));
        assert_eq!(d.ip_protocol(), Some(6));
        assert_eq!(d.payload, b"second fragment.");
        let fragment = ipv6(&d).extensions().fragment.unwrap();
        assert_eq!((fragment.offset, fragment.more), (5, false));
        every_truncation(229, &LATER_FRAGMENT, LATER_FRAGMENT.len());
    }

    #[test]
    fn authentication_header_counts_4_byte_units() {
        let d = decode(229, &AH_UDP, &VERIFY);
        assert!(d.anomalies.is_empty());
        let ext = ipv6(&d).extensions();
        assert_eq!(ext.seen, ExtHeaders::AUTHENTICATION);
        assert_eq!((ext.protocol, ext.header_len), (17, 64));
        assert_eq!(d.dst_port(), Some(500));
        assert_eq!(d.payload, b"ah!");
        assert_eq!(d.checksums.transport, ChecksumStatus::Good);
        every_truncation(229, &AH_UDP, AH_UDP.len());
        mutations(229, &AH_UDP);
    }

    #[test]
    fn extension_header_past_the_payload_length() {
        // Payload length 10: the 8-byte hop-by-hop header fits, the routing header does not.
        let mut packet = EXT_CHAIN;
        packet[5] = 10;
        let d = decode(101, &packet, &PLAIN);
        assert_eq!(d.anomalies, Anomalies::IPV6_EXT_TRUNCATED);
        assert!(!d.truncated && matches!(d.transport, Transport::None));
        assert_eq!(d.ip_protocol(), Some(43));
        assert_eq!(ipv6(&d).extensions().seen, ExtHeaders::HOP_BY_HOP);
    }

    #[test]
    fn routing_header_under_way_is_not_checksummed() {
        // Segments left 1: the upper-layer checksum covers an address not in this header.
        let mut packet = EXT_CHAIN;
        packet[51] = 1;
        packet[75] = 0; // clear "more fragments" so only the route stands in the way
        let d = decode(101, &packet, &VERIFY);
        assert!(ipv6(&d).extensions().routing_pending && !d.fragment);
        assert!(matches!(d.transport, Transport::Tcp(_)));
        assert_eq!(d.checksums.transport, ChecksumStatus::NotChecked);
    }

    #[test]
    fn traffic_class_and_flow_label() {
        let mut packet = AH_UDP;
        packet[..4].copy_from_slice(&[0x6a, 0xb1, 0x23, 0x45]);
        let ip = ipv6(&decode(229, &packet, &PLAIN));
        assert_eq!((ip.traffic_class(), ip.flow_label()), (0xab, 0x1_2345));
    }

    #[test]
    fn payload_length_zero_falls_back_to_the_capture() {
        // How GSO super-packets look when captured on the sending host.
        let mut packet = AH_UDP;
        packet[5] = 0;
        let d = decode(229, &packet, &VERIFY);
        assert_eq!(d.anomalies, Anomalies::IP_TOTAL_LEN_SHORT);
        assert_eq!(d.payload, b"ah!");
        assert_eq!(d.checksums.transport, ChecksumStatus::NotChecked);
    }

    #[test]
    fn wrong_version() {
        let mut packet = AH_UDP;
        packet[0] = 0x40;
        let d = decode(229, &packet, &PLAIN);
        assert_eq!(d.anomalies, Anomalies::BAD_IP_VERSION);
        assert!(matches!(d.transport, Transport::None));
        packet[0] = 0x50;
        let d = decode(101, &packet, &PLAIN);
        assert_eq!(d.anomalies, Anomalies::BAD_IP_VERSION);
        assert!(matches!(d.network, Network::None));
    }
}
