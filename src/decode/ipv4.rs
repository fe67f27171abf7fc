//! IPv4: the header view, and the lengths that bound everything above it. The total length is
//! what separates the transport payload from Ethernet padding and tells a short capture from a
//! short packet, so it is checked against the header length and the captured bytes here.

use std::net::Ipv4Addr;

use super::checksum::{self, PseudoHeader};
use super::{
    Anomalies, ChecksumStatus, DecodeOptions, Decoded, IpPayload, Network, array_at, be16, byte,
};

/// Length of the header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// A view of an IPv4 header and the bytes captured after its start.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<'a> {
    header: &'a [u8; MIN_HEADER_LEN],
    /// Everything captured from the start of the header, padding included.
    bytes: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    /// The header at the start of `bytes`, if its fixed 20 bytes were captured.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        bytes.first_chunk().map(|header| Self { header, bytes })
    }

    #[inline]
    pub fn version(&self) -> u8 {
        byte(self.header, 0) >> 4
    }

    /// Header length in 32-bit words.
    #[inline]
    pub fn ihl(&self) -> u8 {
        byte(self.header, 0) & 0x0f
    }

    /// Header length in bytes, options included, as the IHL announces it.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    #[inline]
    pub fn dscp(&self) -> u8 {
        byte(self.header, 1) >> 2
    }

    #[inline]
    pub fn ecn(&self) -> u8 {
        byte(self.header, 1) & 0x03
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.header, 2)
    }

    #[inline]
    pub fn identification(&self) -> u16 {
        be16(self.header, 4)
    }

    #[inline]
    pub fn dont_fragment(&self) -> bool {
        byte(self.header, 6) & 0x40 != 0
    }

    #[inline]
    pub fn more_fragments(&self) -> bool {
        byte(self.header, 6) & 0x20 != 0
    }

    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn fragment_offset(&self) -> u16 {
        be16(self.header, 6) & 0x1fff
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        byte(self.header, 8)
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        byte(self.header, 9)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.header, 10)
    }

    #[inline]
    pub fn src(&self) -> [u8; 4] {
        array_at(self.header, 12).unwrap_or_default()
    }

    #[inline]
    pub fn dst(&self) -> [u8; 4] {
        array_at(self.header, 16).unwrap_or_default()
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src())
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst())
    }

    /// The options bytes, as far as they were captured (empty when the IHL is below 5).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        let end = self.header_len().min(self.bytes.len());
        self.bytes.get(MIN_HEADER_LEN..end).unwrap_or_default()
    }

    /// Whether the header checksum verifies; `None` when the header is not all there to sum.
    #[inline]
    pub fn verify_checksum(&self) -> Option<bool> {
        let len = self.header_len();
        if len < MIN_HEADER_LEN {
            return None;
        }
        let header = self.bytes.get(..len)?;
        Some(checksum::verifies(checksum::sum(header)))
    }
}

/// Decodes the IPv4 header in `data` into `d`; returns the transport bytes when there is a
/// transport header to decode.
pub(super) fn decode<'a>(
    data: &'a [u8],
    options: &DecodeOptions,
    d: &mut Decoded<'a>,
) -> Option<IpPayload<'a>> {
    let Some(ip) = Ipv4Packet::new(data) else {
        d.anomalies.insert(Anomalies::TRUNCATED_IP_HEADER);
        d.truncated = true;
        return None;
    };
    d.network = Network::Ipv4(ip);
    if ip.version() != 4 {
        d.anomalies.insert(Anomalies::BAD_IP_VERSION);
        return None;
    }
    let header_len = ip.header_len();
    if header_len < MIN_HEADER_LEN {
        d.anomalies.insert(Anomalies::BAD_IPV4_IHL);
        return None;
    }
    let total_len = usize::from(ip.total_len());
    let end = if total_len < MIN_HEADER_LEN {
        // A capture on the sending host shows TSO super-packets with a total length of 0; the
        // captured length is the only length left to trust.
        d.anomalies.insert(Anomalies::IP_TOTAL_LEN_SHORT);
        data.len()
    } else if header_len > total_len {
        d.anomalies.insert(Anomalies::BAD_IPV4_IHL);
        return None;
    } else {
        total_len
    };
    if end > data.len() {
        d.anomalies.insert(Anomalies::IP_LEN_BEYOND_CAPTURED);
        d.truncated = true;
    }
    let packet = data.get(..end).unwrap_or(data);
    let Some(upper) = packet.get(header_len..) else {
        d.anomalies.insert(Anomalies::TRUNCATED_IP_HEADER);
        d.truncated = true;
        return None;
    };
    if options.verify_checksums {
        d.checksums.ip = match ip.verify_checksum() {
            Some(true) => ChecksumStatus::Good,
            Some(false) => {
                d.anomalies.insert(Anomalies::BAD_IPV4_CHECKSUM);
                ChecksumStatus::Bad
            }
            None => ChecksumStatus::NotChecked,
        };
    }
    d.payload = upper;
    d.fragment = ip.more_fragments() || ip.fragment_offset() != 0;
    if ip.fragment_offset() != 0 {
        d.anomalies.insert(Anomalies::NON_FIRST_FRAGMENT);
        return None;
    }
    let announced = end.saturating_sub(header_len);
    Some(IpPayload {
        protocol: ip.protocol(),
        bytes: upper,
        announced,
        pseudo: PseudoHeader::V4 {
            src: ip.src(),
            dst: ip.dst(),
        },
        checksummable: total_len >= MIN_HEADER_LEN && !d.fragment && upper.len() == announced,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PLAIN, VERIFY, every_truncation, mutations};
    use super::super::{Anomalies, ChecksumStatus, Decoded, Network, Transport, decode};
    use super::Ipv4Packet;

    /// Ethernet/IPv4/TCP FIN+ACK: a 40-byte IP packet in a 60-byte frame, the last 6 bytes
    /// Ethernet padding.
    #[rustfmt::skip]
    const PADDED: [u8; 60] = [
        // Ethernet: dst 00:11:22:33:44:55, src 66:77:88:99:aa:bb, ethertype IPv4
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
        0x08, 0x00,
        // IPv4: IHL 5, total length 40, id 0x5555, DF, TTL 64, TCP, checksum 0xeded,
        0x45, 0x00, 0x00, 0x28, 0x55, 0x55, 0x40, 0x00, 0x40, 0x06, 0xed, 0xed,
        // 93.184.216.34 -> 192.168.1.10
        0x5d, 0xb8, 0xd8, 0x22, 0xc0, 0xa8, 0x01, 0x0a,
        // TCP: 80 -> 54321, seq 0x9abc, ack 0x12345679, data offset 5, FIN+ACK, window 509,
        0x00, 0x50, 0xd4, 0x31, 0x00, 0x00, 0x9a, 0xbc, 0x12, 0x34, 0x56, 0x79,
        0x50, 0x11,
        // checksum 0xde5d, urgent 0
        0x01, 0xfd, 0xde, 0x5d, 0x00, 0x00,
        // Ethernet padding
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// Ethernet/IPv4 with a router-alert option/UDP, as IGMP-adjacent multicast traffic carries.
    #[rustfmt::skip]
    const WITH_OPTIONS: [u8; 50] = [
        // Ethernet: dst 01:00:5e:00:00:16, src 00:11:22:33:44:55, ethertype IPv4
        0x01, 0x00, 0x5e, 0x00, 0x00, 0x16, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
        0x08, 0x00,
        // IPv4: IHL 6, total length 36, id 0x6666, TTL 1, UDP, checksum 0xd346,
        0x46, 0x00, 0x00, 0x24, 0x66, 0x66, 0x00, 0x00, 0x01, 0x11, 0xd3, 0x46,
        // 10.1.1.1 -> 224.0.0.22
        0x0a, 0x01, 0x01, 0x01, 0xe0, 0x00, 0x00, 0x16,
        // option: router alert (0x94, length 4, value 0)
        0x94, 0x04, 0x00, 0x00,
        // UDP: 1000 -> 2000, length 12, checksum 0xc49f
        0x03, 0xe8, 0x07, 0xd0, 0x00, 0x0c, 0xc4, 0x9f,
        // data
        0x11, 0x22, 0x33, 0x44,
    ];

    /// Offset of the IPv4 header in the Ethernet frames above.
    const IP_AT: usize = 14;

    fn ipv4<'a>(d: &Decoded<'a>) -> Ipv4Packet<'a> {
        match d.network {
            Network::Ipv4(ip) => ip,
            other => panic!("not IPv4: {other:?}"),
        }
    }

    /// [`PADDED`] with the bytes at `at` replaced.
    fn padded_with(at: usize, bytes: &[u8]) -> [u8; 60] {
        let mut packet = PADDED;
        packet[at..at + bytes.len()].copy_from_slice(bytes);
        packet
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let d = decode(1, &PADDED, &VERIFY);
        assert!(d.anomalies.is_empty() && !d.truncated);
        assert!(matches!(d.transport, Transport::Tcp(_)));
        assert!(d.payload.is_empty());
        assert_eq!(d.ip_total_len(), Some(40));
        assert_eq!(d.checksums.ip, ChecksumStatus::Good);
        assert_eq!(d.checksums.transport, ChecksumStatus::Good);
        // The same packet captured without its padding decodes the same.
        let bare = decode(1, &PADDED[..54], &VERIFY);
        assert_eq!((bare.anomalies, bare.payload), (d.anomalies, d.payload));
    }

    #[test]
    fn padded_frame_cut_at_every_length() {
        every_truncation(1, &PADDED, 54);
        mutations(1, &PADDED);
    }

    #[test]
    fn header_with_options() {
        let d = decode(1, &WITH_OPTIONS, &VERIFY);
        assert!(d.anomalies.is_empty());
        let ip = ipv4(&d);
        assert_eq!((ip.version(), ip.ihl(), ip.header_len()), (4, 6, 24));
        assert_eq!(ip.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(
            (ip.dscp(), ip.ecn(), ip.ttl(), ip.protocol()),
            (0, 0, 1, 17)
        );
        assert_eq!((ip.identification(), ip.checksum()), (0x6666, 0xd346));
        assert!(!ip.dont_fragment() && !ip.more_fragments() && ip.fragment_offset() == 0);
        assert_eq!(ip.dst_addr(), std::net::Ipv4Addr::new(224, 0, 0, 22));
        assert_eq!(ip.src(), [10, 1, 1, 1]);
        assert_eq!(d.payload, &[0x11, 0x22, 0x33, 0x44]);
        assert_eq!(d.checksums.ip, ChecksumStatus::Good);
        every_truncation(1, &WITH_OPTIONS, WITH_OPTIONS.len());
        mutations(1, &WITH_OPTIONS);
    }

    #[test]
    fn header_checksum_good_and_bad() {
        assert_eq!(
            ipv4(&decode(1, &PADDED, &PLAIN)).verify_checksum(),
            Some(true)
        );
        // TTL decremented by a router that did not update the checksum.
        let packet = padded_with(IP_AT + 8, &[63]);
        let d = decode(1, &packet, &VERIFY);
        assert_eq!(d.checksums.ip, ChecksumStatus::Bad);
        assert_eq!(d.anomalies, Anomalies::BAD_IPV4_CHECKSUM);
        // TCP does not cover the TTL, so it still verifies.
        assert_eq!(d.checksums.transport, ChecksumStatus::Good);
        let d = decode(1, &packet, &PLAIN);
        assert_eq!(d.checksums.ip, ChecksumStatus::NotChecked);
        assert!(d.anomalies.is_empty());
    }

    #[test]
    fn ihl_15_in_a_20_byte_packet() {
        // Raw IPv4: the first 20 bytes of the header, IHL 15, total length 20.
        let mut header: [u8; 20] = PADDED[IP_AT..IP_AT + 20].try_into().unwrap();
        header[0] = 0x4f;
        header[3] = 20;
        let d = decode(228, &header, &PLAIN);
        assert_eq!(d.anomalies, Anomalies::BAD_IPV4_IHL);
        assert!(!d.truncated && matches!(d.transport, Transport::None));
        assert!(ipv4(&d).options().is_empty());
        // Total length 60 makes it a capture cut inside the options instead.
        header[3] = 60;
        let d = decode(228, &header, &PLAIN);
        assert!(d.truncated);
        assert_eq!(
            d.anomalies,
            Anomalies::IP_LEN_BEYOND_CAPTURED | Anomalies::TRUNCATED_IP_HEADER
        );
    }

    #[test]
    fn ihl_below_5_and_wrong_version() {
        let packet = padded_with(IP_AT, &[0x44]);
        let d = decode(1, &packet, &PLAIN);
        assert_eq!(d.anomalies, Anomalies::BAD_IPV4_IHL);
        assert!(matches!(d.transport, Transport::None));
        let packet = padded_with(IP_AT, &[0x65]);
        let d = decode(1, &packet, &PLAIN);
        assert_eq!(d.anomalies, Anomalies::BAD_IP_VERSION);
        assert!(matches!(d.network, Network::Ipv4(_)));
        assert!(matches!(d.transport, Transport::None));
    }

    #[test]
    fn total_length_65535_on_a_60_byte_frame() {
        let packet = padded_with(IP_AT + 2, &[0xff, 0xff]);
        let d = decode(1, &packet, &VERIFY);
        assert!(d.truncated);
        assert!(d.anomalies.contains(Anomalies::IP_LEN_BEYOND_CAPTURED));
        // The padding now counts as the start of the data; a cut segment is never checksummed.
        assert!(matches!(d.transport, Transport::Tcp(_)));
        assert_eq!(d.payload, &[0; 6]);
        assert_eq!(d.checksums.transport, ChecksumStatus::NotChecked);
    }

    #[test]
    fn total_length_zero_falls_back_to_the_capture() {
        // What TSO super-packets look like when captured on the sending host.
        let packet = padded_with(IP_AT + 2, &[0, 0]);
        let d = decode(1, &packet, &VERIFY);
        assert!(d.anomalies.contains(Anomalies::IP_TOTAL_LEN_SHORT));
        assert!(!d.truncated && matches!(d.transport, Transport::Tcp(_)));
        assert_eq!(d.payload.len(), 6);
        assert_eq!(d.checksums.transport, ChecksumStatus::NotChecked);
    }

    #[test]
    fn first_fragment_keeps_its_transport() {
        let packet = padded_with(IP_AT + 6, &[0x20, 0x00]);
        let d = decode(1, &packet, &VERIFY);
        assert!(d.fragment);
        assert!(ipv4(&d).more_fragments());
        assert!(matches!(d.transport, Transport::Tcp(_)));
        assert!(!d.anomalies.contains(Anomalies::NON_FIRST_FRAGMENT));
        assert_eq!(d.checksums.transport, ChecksumStatus::NotChecked);
    }

    #[test]
    fn later_fragment_has_no_transport() {
        let packet = padded_with(IP_AT + 6, &[0x00, 0xb9]);
        let d = decode(1, &packet, &PLAIN);
        assert!(d.fragment);
        assert_eq!(ipv4(&d).fragment_offset(), 185);
        assert_eq!(d.anomalies, Anomalies::NON_FIRST_FRAGMENT);
        assert!(matches!(d.transport, Transport::None));
        assert_eq!(d.ip_protocol(), Some(6));
        assert_eq!(d.payload, &PADDED[IP_AT + 20..IP_AT + 40]);
        assert_eq!(d.src_port(), None);
    }
}
