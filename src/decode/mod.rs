//! Bytes → layers: turns one captured packet into zero-copy views of its link, network and
//! transport headers for everything downstream (flows, reassembly, analysis).
//!
//! Decoding is lenient, as an analyzer's must be: a damaged or odd packet is decoded as far as its
//! bytes allow, and what was wrong is recorded in [`Anomalies`] instead of being an error. It runs
//! once per packet at millions of packets per second, so nothing here allocates, and nothing can
//! panic whatever the input: every read goes through a bounds-checked `get`.

mod anomaly;
mod checksum;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod link;
pub mod tcp;
#[cfg(test)]
mod testing;
pub mod udp;

use std::net::IpAddr;

pub use anomaly::Anomalies;
use checksum::PseudoHeader;
pub use icmp::IcmpPacket;
pub use ipv4::Ipv4Packet;
pub use ipv6::{ExtHeaders, Ipv6Extensions, Ipv6Fragment, Ipv6Packet};
pub use link::{Link, LinkKind, VlanTags};
pub use tcp::{SackBlocks, TcpFlags, TcpOption, TcpOptions, TcpOptionsSummary, TcpPacket};
pub use udp::UdpPacket;

// IP protocol numbers the transport layer decodes.
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;

/// What the caller wants beyond plain decoding.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeOptions {
    /// Verify IPv4, TCP, UDP and ICMP checksums. Off by default: summing every byte costs time,
    /// and captures taken on the sending host carry offloaded, never-filled checksums anyway.
    pub verify_checksums: bool,
}

/// The outcome of one checksum check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChecksumStatus {
    /// Not asked for, or not checkable: a fragment, a truncated packet, an unfinished route.
    #[default]
    NotChecked,
    Good,
    Bad,
    /// UDP over IPv4 with checksum 0: the sender chose not to compute one.
    Absent,
}

/// Checksum outcomes per layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksums {
    /// The IPv4 header checksum (IPv6 has none).
    pub ip: ChecksumStatus,
    /// The TCP, UDP, ICMP or ICMPv6 checksum.
    pub transport: ChecksumStatus,
}

/// The network layer.
#[derive(Clone, Copy, Debug)]
pub enum Network<'a> {
    /// The link layer could not be decoded or named no network protocol.
    None,
    Ipv4(Ipv4Packet<'a>),
    Ipv6(Ipv6Packet<'a>),
    /// A network protocol this module does not decode, by ethertype (ARP, LLDP, ...).
    Other(u16),
}

/// The transport layer.
#[derive(Clone, Copy, Debug)]
pub enum Transport<'a> {
    /// Not reached: no IP, a truncated header, or a non-first fragment.
    None,
    Tcp(TcpPacket<'a>),
    Udp(UdpPacket<'a>),
    Icmp(IcmpPacket<'a>),
    Icmpv6(IcmpPacket<'a>),
    /// An upper-layer protocol this module does not decode, by IP protocol number.
    Other(u8),
}

/// One decoded packet: plain `Copy` data and views borrowing the captured bytes.
#[derive(Clone, Copy, Debug)]
pub struct Decoded<'a> {
    pub link: Link,
    pub network: Network<'a>,
    pub transport: Transport<'a>,
    /// The bytes after the deepest header decoded: TCP/UDP data or the ICMP body, else the IP
    /// payload (a fragment, an unknown protocol) or the link payload. Bounded by the IP and UDP
    /// lengths, so Ethernet padding never counts as data, and by what was captured.
    pub payload: &'a [u8],
    /// The capture (snaplen) cut the packet before the end its headers announce.
    pub truncated: bool,
    /// Part of a fragmented IP packet; only the first fragment has a transport header.
    pub fragment: bool,
    pub checksums: Checksums,
    pub anomalies: Anomalies,
}

impl Decoded<'_> {
    /// Source address of the IP header.
    #[inline]
    pub fn ip_src(&self) -> Option<IpAddr> {
        match self.network {
            Network::Ipv4(ip) => Some(IpAddr::V4(ip.src_addr())),
            Network::Ipv6(ip) => Some(IpAddr::V6(ip.src_addr())),
            Network::None | Network::Other(_) => None,
        }
    }

    /// Destination address of the IP header.
    #[inline]
    pub fn ip_dst(&self) -> Option<IpAddr> {
        match self.network {
            Network::Ipv4(ip) => Some(IpAddr::V4(ip.dst_addr())),
            Network::Ipv6(ip) => Some(IpAddr::V6(ip.dst_addr())),
            Network::None | Network::Other(_) => None,
        }
    }

    /// TCP or UDP source port.
    #[inline]
    pub fn src_port(&self) -> Option<u16> {
        match self.transport {
            Transport::Tcp(tcp) => Some(tcp.src_port()),
            Transport::Udp(udp) => Some(udp.src_port()),
            _ => None,
        }
    }

    /// TCP or UDP destination port.
    #[inline]
    pub fn dst_port(&self) -> Option<u16> {
        match self.transport {
            Transport::Tcp(tcp) => Some(tcp.dst_port()),
            Transport::Udp(udp) => Some(udp.dst_port()),
            _ => None,
        }
    }

    /// The upper-layer protocol: IPv4's protocol field, or for IPv6 the header after the
    /// extension chain (where the walk stopped, if the chain was cut).
    #[inline]
    pub fn ip_protocol(&self) -> Option<u8> {
        match self.network {
            Network::Ipv4(ip) => Some(ip.protocol()),
            Network::Ipv6(ip) => Some(ip.extensions().protocol),
            Network::None | Network::Other(_) => None,
        }
    }

    /// The IP packet length its header announces (IPv4 total length, IPv6 40 + payload length).
    #[inline]
    pub fn ip_total_len(&self) -> Option<usize> {
        match self.network {
            Network::Ipv4(ip) => Some(usize::from(ip.total_len())),
            Network::Ipv6(ip) => Some(ipv6::HEADER_LEN + usize::from(ip.payload_len())),
            Network::None | Network::Other(_) => None,
        }
    }

    /// The transport payload's length on the wire as the IP and TCP/UDP headers declare it:
    /// more than `payload.len()` when the snapshot length cut the packet, so a cut segment
    /// still covers its whole sequence range. The captured length when the packet was not cut
    /// (the headers may understate it: segmentation offload leaves IP lengths unfilled).
    pub fn wire_payload_len(&self) -> usize {
        if !self.truncated {
            return self.payload.len();
        }
        let ip_header = match self.network {
            Network::Ipv4(ip) => ip.header_len(),
            Network::Ipv6(ip) => ipv6::HEADER_LEN + ip.extensions().header_len,
            Network::None | Network::Other(_) => return self.payload.len(),
        };
        let transport_header = match self.transport {
            Transport::Tcp(tcp) => tcp.header_len(),
            Transport::Udp(_) => 8,
            _ => return self.payload.len(),
        };
        self.ip_total_len().map_or(self.payload.len(), |total| {
            total
                .saturating_sub(ip_header + transport_header)
                .max(self.payload.len())
        })
    }

    /// The VLAN ids kept, outermost first (at most two; see [`VlanTags::count`] for all).
    #[inline]
    pub fn vlan_ids(&self) -> &[u16] {
        self.link.vlan.ids()
    }
}

/// Decodes one captured packet of pcap link type `link_type` (a LINKTYPE_* number).
pub fn decode<'a>(link_type: u32, data: &'a [u8], options: &DecodeOptions) -> Decoded<'a> {
    let mut d = Decoded {
        link: Link::default(),
        network: Network::None,
        transport: Transport::None,
        payload: &[],
        truncated: false,
        fragment: false,
        checksums: Checksums::default(),
        anomalies: Anomalies::NONE,
    };
    let Some(network) = link::decode(link_type, data, &mut d) else {
        return d;
    };
    d.payload = network;
    let ip = match d.link.ethertype {
        Some(link::ETHERTYPE_IPV4) => ipv4::decode(network, options, &mut d),
        Some(link::ETHERTYPE_IPV6) => ipv6::decode(network, &mut d),
        Some(other) => {
            d.network = Network::Other(other);
            None
        }
        None => None,
    };
    if let Some(ip) = ip {
        d.payload = ip.bytes;
        match (ip.protocol, ip.pseudo) {
            (PROTO_TCP, _) => tcp::decode(&ip, options, &mut d),
            (PROTO_UDP, _) => udp::decode(&ip, options, &mut d),
            (PROTO_ICMP, PseudoHeader::V4 { .. }) | (PROTO_ICMPV6, PseudoHeader::V6 { .. }) => {
                icmp::decode(&ip, options, &mut d);
            }
            (other, _) => d.transport = Transport::Other(other),
        }
    }
    d
}

/// What the IP layer hands to the transport layer.
struct IpPayload<'a> {
    protocol: u8,
    /// The upper-layer bytes, bounded by the IP length and the capture.
    bytes: &'a [u8],
    /// The upper-layer length the IP header announces (more than `bytes` when truncated).
    announced: usize,
    pseudo: PseudoHeader,
    /// The whole upper-layer message is here and its pseudo-header is known, so a checksum over
    /// it means something: not truncated, not a fragment, a length the IP header stated (not one
    /// taken from the capture), no IPv6 routing header still under way.
    checksummable: bool,
}

impl IpPayload<'_> {
    /// Whether the caller asked for checksums and this payload can have its checksum verified.
    #[inline]
    fn verify(&self, options: &DecodeOptions) -> bool {
        options.verify_checksums && self.checksummable
    }
}

/// `N` bytes at `at`, or `None` when the capture does not hold them all.
#[inline]
fn array_at<const N: usize>(data: &[u8], at: usize) -> Option<[u8; N]> {
    data.get(at..)?.first_chunk::<N>().copied()
}

/// A byte of a header whose length its view's constructor checked, so the zero fallback is
/// unreachable (and compiled away) yet a wrong offset still cannot panic.
#[inline]
fn byte(header: &[u8], at: usize) -> u8 {
    header.get(at).copied().unwrap_or(0)
}

/// A big-endian `u16` of a length-checked header (see [`byte`]).
#[inline]
fn be16(header: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(array_at(header, at).unwrap_or_default())
}

/// A big-endian `u32` of a length-checked header (see [`byte`]).
#[inline]
fn be32(header: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(array_at(header, at).unwrap_or_default())
}

/// The name tools print for an IP protocol number (`TCP`, `UDP`, `ICMP`, `ICMPv6`), if it has
/// one here.
pub fn ip_protocol_name(protocol: u8) -> Option<&'static str> {
    match protocol {
        1 => Some("ICMP"),
        6 => Some("TCP"),
        17 => Some("UDP"),
        58 => Some("ICMPv6"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{XorShift, check_invariants};
    use super::{DecodeOptions, Transport, decode};

    /// Every link type the decoder knows, plus two it does not.
    const LINK_TYPES: [u32; 12] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 2, 0xffff_ffff];

    /// Protocols worth landing on: the transports and the IPv6 extension headers.
    const PROTOCOLS: [u8; 9] = [6, 17, 1, 58, 0, 43, 44, 60, 51];

    fn set(buf: &mut [u8], at: usize, bytes: &[u8]) {
        if let Some(field) = buf.get_mut(at..at + bytes.len()) {
            field.copy_from_slice(bytes);
        }
    }

    /// Makes random bytes look enough like a packet that decoding goes deep: the right
    /// ethertype or address family, then an IP header with a plausible version, length and
    /// protocol, then a plausible TCP data offset. Lengths stay near, not at, the truth.
    fn plant_headers(link_type: u32, buf: &mut [u8], rng: &mut XorShift) {
        let v6 = rng.below(2) == 0;
        let ethertype: u16 = if v6 { 0x86dd } else { 0x0800 };
        let family: u32 = if v6 { 30 } else { 2 };
        let ip_at = match link_type {
            0 | 108 => {
                set(buf, 0, &family.to_be_bytes());
                4
            }
            1 => {
                set(buf, 12, &ethertype.to_be_bytes());
                14
            }
            113 => {
                set(buf, 14, &ethertype.to_be_bytes());
                16
            }
            276 => {
                set(buf, 0, &ethertype.to_be_bytes());
                20
            }
            _ => 0,
        };
        let protocol = PROTOCOLS[rng.below(PROTOCOLS.len())];
        let ip_len = (buf.len().saturating_sub(ip_at) + rng.below(16)).saturating_sub(8);
        let header_len = if v6 {
            let payload_len = ip_len.saturating_sub(40) as u16;
            set(buf, ip_at, &[0x60]);
            set(buf, ip_at + 4, &payload_len.to_be_bytes());
            set(buf, ip_at + 6, &[protocol]);
            40
        } else {
            let ihl = 5 + rng.below(3);
            set(buf, ip_at, &[0x40 | ihl as u8]);
            set(buf, ip_at + 2, &(ip_len as u16).to_be_bytes());
            set(buf, ip_at + 6, &[0, 0]);
            set(buf, ip_at + 9, &[protocol]);
            ihl * 4
        };
        let data_offset = 5 + rng.below(11) as u8;
        set(buf, ip_at + header_len + 12, &[data_offset << 4]);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut buf = [0u8; 256];
        let mut deep = 0;
        for round in 0..100_000usize {
            let len = rng.below(buf.len() + 1);
            let part = &mut buf[..len];
            rng.fill(part);
            let link_type = LINK_TYPES[round % LINK_TYPES.len()];
            if rng.below(3) != 0 {
                plant_headers(link_type, part, &mut rng);
            }
            let options = DecodeOptions {
                verify_checksums: rng.below(2) == 0,
            };
            let d = decode(link_type, part, &options);
            check_invariants(&d, part);
            if !matches!(d.transport, Transport::None | Transport::Other(_)) {
                deep += 1;
            }
        }
        // The planted headers must actually lead somewhere for this test to mean anything.
        assert!(
            deep > 10_000,
            "only {deep} packets reached a transport header"
        );
    }
}
