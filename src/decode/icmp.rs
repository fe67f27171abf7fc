//! ICMP and ICMPv6: one header view for both, since they share the type, code, checksum and
//! four-byte rest layout. They differ in the checksum: ICMPv6 covers a pseudo-header.

use super::checksum::{self, PseudoHeader};
use super::{
    Anomalies, ChecksumStatus, DecodeOptions, Decoded, IpPayload, PROTO_ICMPV6, Transport,
    array_at, be16, byte,
};

/// Length of the header (type, code, checksum and the type-specific four bytes).
pub const HEADER_LEN: usize = 8;

/// A view of an ICMP or ICMPv6 header.
#[derive(Clone, Copy, Debug)]
pub struct IcmpPacket<'a> {
    header: &'a [u8; HEADER_LEN],
}

impl<'a> IcmpPacket<'a> {
    /// The header at the start of `message`, if all 8 bytes are there.
    #[inline]
    pub fn new(message: &'a [u8]) -> Option<Self> {
        message.first_chunk().map(|header| Self { header })
    }

    #[inline]
    pub fn icmp_type(&self) -> u8 {
        byte(self.header, 0)
    }

    #[inline]
    pub fn code(&self) -> u8 {
        byte(self.header, 1)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.header, 2)
    }

    /// The type-specific "rest of header": identifier and sequence for echo, MTU for "too big".
    #[inline]
    pub fn rest(&self) -> [u8; 4] {
        array_at(self.header, 4).unwrap_or_default()
    }
}

/// Decodes the ICMP (over IPv4) or ICMPv6 (over IPv6) message in `ip` into `d`.
pub(super) fn decode<'a>(ip: &IpPayload<'a>, options: &DecodeOptions, d: &mut Decoded<'a>) {
    let Some(icmp) = IcmpPacket::new(ip.bytes) else {
        d.anomalies.insert(Anomalies::TRUNCATED_TRANSPORT_HEADER);
        return;
    };
    d.payload = ip.bytes.get(HEADER_LEN..).unwrap_or_default();
    let valid = match ip.pseudo {
        PseudoHeader::V4 { .. } => {
            d.transport = Transport::Icmp(icmp);
            ip.verify(options)
                .then(|| checksum::verifies(checksum::sum(ip.bytes)))
        }
        PseudoHeader::V6 { .. } => {
            d.transport = Transport::Icmpv6(icmp);
            ip.verify(options)
                .then(|| ip.pseudo.verifies(PROTO_ICMPV6, ip.bytes))
        }
    };
    d.checksums.transport = match valid {
        Some(true) => ChecksumStatus::Good,
        Some(false) => {
            d.anomalies.insert(Anomalies::BAD_ICMP_CHECKSUM);
            ChecksumStatus::Bad
        }
        None => ChecksumStatus::NotChecked,
    };
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PLAIN, VERIFY, every_truncation, mutations};
    use super::super::{Anomalies, ChecksumStatus, Transport, decode};

    /// Ethernet/IPv4/ICMP echo request, identifier 1, sequence 2.
    #[rustfmt::skip]
    const ECHO: [u8; 58] = [
        // Ethernet: dst 66:77:88:99:aa:bb, src 00:11:22:33:44:55, ethertype IPv4
        0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
        0x08, 0x00,
        // IPv4: IHL 5, total length 44, id 0x7777, DF, TTL 64, ICMP, checksum 0xcbcc,
        0x45, 0x00, 0x00, 0x2c, 0x77, 0x77, 0x40, 0x00, 0x40, 0x01, 0xcb, 0xcc,
        // 192.168.1.10 -> 93.184.216.34
        0xc0, 0xa8, 0x01, 0x0a, 0x5d, 0xb8, 0xd8, 0x22,
        // ICMP: echo request (8/0), checksum 0xb4b1, identifier 1, sequence 2
        0x08, 0x00, 0xb4, 0xb1, 0x00, 0x01, 0x00, 0x02,
        // "abcdefghijklmnop"
        0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c,
        0x6d, 0x6e, 0x6f, 0x70,
    ];

    /// Ethernet/IPv6/ICMPv6 echo reply, identifier 0x0abc, sequence 9.
    #[rustfmt::skip]
    const ECHO_V6: [u8; 72] = [
        // Ethernet: dst 00:11:22:33:44:55, src 66:77:88:99:aa:bb, ethertype IPv6
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
        0x86, 0xdd,
        // IPv6: payload length 18, next header ICMPv6 (58), hop limit 64
        0x60, 0x00, 0x00, 0x00, 0x00, 0x12, 0x3a, 0x40,
        // src 2001:db8::2
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02,
        // dst 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01,
        // ICMPv6: echo reply (129/0), checksum 0x136f, identifier 0x0abc, sequence 9
        0x81, 0x00, 0x13, 0x6f, 0x0a, 0xbc, 0x00, 0x09,
        // "0123456789"
        0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
    ];

    #[test]
    fn echo_request() {
        let d = decode(1, &ECHO, &VERIFY);
        assert!(d.anomalies.is_empty() && !d.truncated);
        let Transport::Icmp(icmp) = d.transport else {
            panic!("not ICMP: {:?}", d.transport)
        };
        assert_eq!(
            (icmp.icmp_type(), icmp.code(), icmp.checksum()),
            (8, 0, 0xb4b1)
        );
        assert_eq!(icmp.rest(), [0, 1, 0, 2]);
        assert_eq!(d.payload, b"abcdefghijklmnop");
        assert_eq!((d.src_port(), d.ip_protocol()), (None, Some(1)));
        assert_eq!(d.checksums.transport, ChecksumStatus::Good);
        every_truncation(1, &ECHO, ECHO.len());
        mutations(1, &ECHO);
    }

    #[test]
    fn echo_reply_over_ipv6() {
        let d = decode(1, &ECHO_V6, &VERIFY);
        assert!(d.anomalies.is_empty() && !d.truncated);
        let Transport::Icmpv6(icmp) = d.transport else {
            panic!("not ICMPv6: {:?}", d.transport)
        };
        assert_eq!((icmp.icmp_type(), icmp.code()), (129, 0));
        assert_eq!(icmp.rest(), [0x0a, 0xbc, 0, 9]);
        assert_eq!(d.payload, b"0123456789");
        assert_eq!(d.checksums.transport, ChecksumStatus::Good);
        every_truncation(1, &ECHO_V6, ECHO_V6.len());
        mutations(1, &ECHO_V6);
    }

    #[test]
    fn checksums_bad() {
        for packet in [ECHO.as_slice(), ECHO_V6.as_slice()] {
            let mut packet = packet.to_vec();
            *packet.last_mut().unwrap() ^= 1;
            let d = decode(1, &packet, &VERIFY);
            assert_eq!(d.anomalies, Anomalies::BAD_ICMP_CHECKSUM);
            assert_eq!(d.checksums.transport, ChecksumStatus::Bad);
            assert!(decode(1, &packet, &PLAIN).anomalies.is_empty());
        }
    }

    #[test]
    fn icmp_numbers_cross_ip_versions_as_other() {
        // Protocol 58 (ICMPv6) inside IPv4 is not ICMP.
        let mut packet = ECHO;
        packet[23] = 58;
        let d = decode(1, &packet, &PLAIN);
        assert!(matches!(d.transport, Transport::Other(58)));
        assert_eq!(d.payload.len(), 24);
    }
}
