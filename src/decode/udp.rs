//! UDP: the header view and its length field, which bounds the datagram more tightly than the
//! IP layer when a sender pads, and which the checksum covers.

use super::checksum::PseudoHeader;
use super::{
    Anomalies, ChecksumStatus, DecodeOptions, Decoded, IpPayload, PROTO_UDP, Transport, be16,
};

/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP header.
#[derive(Clone, Copy, Debug)]
pub struct UdpPacket<'a> {
    header: &'a [u8; HEADER_LEN],
}

impl<'a> UdpPacket<'a> {
    /// The header at the start of `datagram`, if all 8 bytes are there.
    #[inline]
    pub fn new(datagram: &'a [u8]) -> Option<Self> {
        datagram.first_chunk().map(|header| Self { header })
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.header, 0)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.header, 2)
    }

    /// Header plus data length, as the header announces it.
    #[inline]
    pub fn length(&self) -> u16 {
        be16(self.header, 4)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.header, 6)
    }
}

/// Decodes the UDP datagram in `ip` into `d`.
pub(super) fn decode<'a>(ip: &IpPayload<'a>, options: &DecodeOptions, d: &mut Decoded<'a>) {
    let Some(udp) = UdpPacket::new(ip.bytes) else {
        d.anomalies.insert(Anomalies::TRUNCATED_TRANSPORT_HEADER);
        return;
    };
    d.transport = Transport::Udp(udp);
    let length = usize::from(udp.length());
    // Length 0 is legitimate only in an IPv6 jumbogram, where the IP layer carries the length.
    let jumbo = length == 0 && ip.announced > usize::from(u16::MAX);
    let length_valid = (HEADER_LEN..=ip.announced).contains(&length);
    if !length_valid && !jumbo {
        d.anomalies.insert(Anomalies::UDP_BAD_LENGTH);
    }
    let end = if length_valid { length } else { ip.announced };
    let datagram = ip.bytes.get(..end).unwrap_or(ip.bytes);
    d.payload = datagram.get(HEADER_LEN..).unwrap_or_default();

    if ip.verify(options) && length_valid {
        d.checksums.transport = match (udp.checksum(), ip.pseudo) {
            (0, PseudoHeader::V4 { .. }) => ChecksumStatus::Absent,
            (checksum, pseudo) if checksum != 0 && pseudo.verifies(PROTO_UDP, datagram) => {
                ChecksumStatus::Good
            }
            // Zero over IPv6 is forbidden (RFC 8200 section 8.1), so it counts as bad.
            _ => {
                d.anomalies.insert(Anomalies::BAD_UDP_CHECKSUM);
                ChecksumStatus::Bad
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PLAIN, VERIFY, every_truncation, mutations};
    use super::super::{Anomalies, ChecksumStatus, Decoded, Transport, decode};
    use super::UdpPacket;

    /// Ethernet/802.1Q VLAN 100 (priority 3)/IPv4/UDP: a DNS query for example.com A.
    #[rustfmt::skip]
    const DNS_VLAN: [u8; 75] = [
        // Ethernet: dst 66:77:88:99:aa:bb, src 00:11:22:33:44:55, ethertype 802.1Q
        0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
        0x81, 0x00,
        // 802.1Q: priority 3, VLAN 100, ethertype IPv4
        0x60, 0x64, 0x08, 0x00,
        // IPv4: IHL 5, total length 57, id 1, TTL 64, UDP, checksum 0x667d,
        0x45, 0x00, 0x00, 0x39, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x66, 0x7d,
        // 10.0.0.2 -> 10.0.0.53
        0x0a, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x35,
        // UDP: 40000 -> 53, length 37, checksum 0xd3bc
        0x9c, 0x40, 0x00, 0x35, 0x00, 0x25, 0xd3, 0xbc,
        // DNS: id 0xabcd, RD, 1 question: example.com A IN
        0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d,
        0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    /// Raw IPv6/UDP: a DNS query for example.com AAAA.
    #[rustfmt::skip]
    const DNS_V6: [u8; 77] = [
        // IPv6: payload length 37, next header UDP (17), hop limit 64
        0x60, 0x00, 0x00, 0x00, 0x00, 0x25, 0x11, 0x40,
        // src 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01,
        // dst 2001:db8::2
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02,
        // UDP: 53000 -> 53, length 37, checksum 0x2b94
        0xcf, 0x08, 0x00, 0x35, 0x00, 0x25, 0x2b, 0x94,
        // DNS: id 0xbeef, RD, 1 question: example.com AAAA IN
        0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d,
        0x00, 0x00, 0x1c, 0x00, 0x01,
    ];

    /// Offset of the UDP header in [`DNS_VLAN`] and [`DNS_V6`].
    const VLAN_UDP_AT: usize = 38;
    const V6_UDP_AT: usize = 40;

    fn udp<'a>(d: &Decoded<'a>) -> UdpPacket<'a> {
        match d.transport {
            Transport::Udp(udp) => udp,
            other => panic!("not UDP: {other:?}"),
        }
    }

    #[test]
    fn dns_query_over_vlan() {
        let d = decode(1, &DNS_VLAN, &VERIFY);
        assert!(d.anomalies.is_empty() && !d.truncated);
        assert_eq!(d.vlan_ids(), &[100]);
        assert_eq!(d.link.ethertype, Some(0x0800));
        let udp = udp(&d);
        assert_eq!((udp.src_port(), udp.dst_port()), (40000, 53));
        assert_eq!((udp.length(), udp.checksum()), (37, 0xd3bc));
        assert_eq!(d.payload, &DNS_VLAN[VLAN_UDP_AT + 8..]);
        assert_eq!(d.checksums.ip, ChecksumStatus::Good);
        assert_eq!(d.checksums.transport, ChecksumStatus::Good);
        every_truncation(1, &DNS_VLAN, DNS_VLAN.len());
        mutations(1, &DNS_VLAN);
    }

    #[test]
    fn checksum_over_ipv6_good_and_bad() {
        let d = decode(229, &DNS_V6, &VERIFY);
        assert!(d.anomalies.is_empty());
        assert_eq!(d.checksums.transport, ChecksumStatus::Good);
        assert_eq!(d.payload.first_chunk(), Some(&[0xbe, 0xef]));
        // One flipped bit in the query name.
        let mut packet = DNS_V6;
        packet[V6_UDP_AT + 20] ^= 0x20;
        let d = decode(229, &packet, &VERIFY);
        assert_eq!(d.checksums.transport, ChecksumStatus::Bad);
        assert_eq!(d.anomalies, Anomalies::BAD_UDP_CHECKSUM);
        // Zero means "none" over IPv4 but is forbidden over IPv6.
        let mut packet = DNS_V6;
        packet[V6_UDP_AT + 6..V6_UDP_AT + 8].copy_from_slice(&[0, 0]);
        let d = decode(229, &packet, &VERIFY);
        assert_eq!(d.anomalies, Anomalies::BAD_UDP_CHECKSUM);
        every_truncation(229, &DNS_V6, DNS_V6.len());
        mutations(229, &DNS_V6);
    }

    #[test]
    fn zero_checksum_over_ipv4_means_none() {
        let mut packet = DNS_VLAN;
        packet[VLAN_UDP_AT + 6..VLAN_UDP_AT + 8].copy_from_slice(&[0, 0]);
        let d = decode(1, &packet, &VERIFY);
        assert!(d.anomalies.is_empty());
        assert_eq!(d.checksums.transport, ChecksumStatus::Absent);
    }

    #[test]
    fn udp_length_bounds_the_payload() {
        let with_length = |length: u8| {
            let mut packet = DNS_VLAN;
            packet[VLAN_UDP_AT + 5] = length;
            packet
        };
        // Shorter than the IP payload: the UDP length wins.
        let packet = with_length(20);
        let d = decode(1, &packet, &PLAIN);
        assert!(d.anomalies.is_empty());
        assert_eq!(d.payload.len(), 12);
        // Below the header or past the IP payload: flagged, the IP length bounds the payload.
        for length in [4, 200] {
            let packet = with_length(length);
            let d = decode(1, &packet, &VERIFY);
            assert_eq!(d.anomalies, Anomalies::UDP_BAD_LENGTH, "length {length}");
            assert_eq!(d.payload.len(), 29);
            assert_eq!(d.checksums.transport, ChecksumStatus::NotChecked);
        }
    }
}
