//! The link layer: where the network header starts and which protocol it carries, for each link
//! type a capture may hold. Ethernet (with 802.1Q/802.1ad VLAN tags, VN-Tag and MPLS label
//! stacks), Linux cooked SLL and SLL2, BSD null/loopback and raw IP all reduce to an ethertype
//! and a slice of network bytes.

use super::{Anomalies, Decoded, array_at, be16, be32, byte};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q customer VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad service tag (QinQ outer tag).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// The pre-standard QinQ outer tag some switches still send.
pub const ETHERTYPE_QINQ_LEGACY: u16 = 0x9100;
/// Cisco's VN-Tag (802.1Qbh): four bytes of tag, then the next ethertype.
pub const ETHERTYPE_VNTAG: u16 = 0x8926;
/// MPLS label stacks, unicast and multicast: labels of four bytes down to the one marked
/// bottom of stack, then the payload (IP, told by its version nibble).
pub const ETHERTYPE_MPLS: u16 = 0x8847;
pub const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;

pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
/// DLT_RAW's own number on most systems, which old files carry instead of [`LINKTYPE_RAW`].
pub const LINKTYPE_RAW_BSD: u32 = 12;
/// DLT_RAW's number on OpenBSD, likewise.
pub const LINKTYPE_RAW_OPENBSD: u32 = 14;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Which link header the packet starts with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkKind {
    Ethernet,
    /// Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10).
    Sll,
    /// Linux cooked capture v2.
    Sll2,
    /// BSD null or OpenBSD loop: a 4-byte address family.
    Null,
    /// No link header: the packet starts with the IP header.
    Raw,
    #[default]
    Unknown,
}

/// VLAN tags seen between the link header and the network layer.
///
/// Two ids cover 802.1Q and QinQ; deeper stacks are rare enough that keeping their ids is not
/// worth a bigger per-packet struct, but they are still skipped and counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlanTags {
    ids: [u16; 2],
    count: u8,
}

impl VlanTags {
    /// The kept VLAN ids (12 bits each), outermost first.
    #[inline]
    pub fn ids(&self) -> &[u16] {
        let kept = usize::from(self.count).min(self.ids.len());
        self.ids.get(..kept).unwrap_or_default()
    }

    /// How many tags the frame carried, kept or not (saturating at 255).
    #[inline]
    pub fn count(&self) -> u8 {
        self.count
    }

    #[inline]
    fn push(&mut self, id: u16) {
        if let Some(slot) = self.ids.get_mut(usize::from(self.count)) {
            *slot = id;
        }
        self.count = self.count.saturating_add(1);
    }
}

/// The decoded link layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub kind: LinkKind,
    /// The network protocol after the link header and any VLAN tags; synthesized from the
    /// address family or IP version for null and raw links. `None` when it cannot be known.
    pub ethertype: Option<u16>,
    /// Ethernet source, or the SLL/SLL2 link-layer address when it is 6 bytes long.
    pub src_mac: Option<[u8; 6]>,
    /// Ethernet destination (SLL/SLL2 do not record one).
    pub dst_mac: Option<[u8; 6]>,
    pub vlan: VlanTags,
    /// SLL/SLL2 packet type: 0 to us, 1 broadcast, 2 multicast, 3 to another host, 4 sent by us.
    pub packet_type: Option<u16>,
}

/// An Ethernet II header.
#[derive(Clone, Copy, Debug)]
pub struct EthernetFrame<'a> {
    header: &'a [u8; 14],
}

impl<'a> EthernetFrame<'a> {
    pub const HEADER_LEN: usize = 14;

    /// The header at the start of `data`, if all 14 bytes were captured.
    #[inline]
    pub fn new(data: &'a [u8]) -> Option<Self> {
        data.first_chunk().map(|header| Self { header })
    }

    #[inline]
    pub fn dst(&self) -> [u8; 6] {
        array_at(self.header, 0).unwrap_or_default()
    }

    #[inline]
    pub fn src(&self) -> [u8; 6] {
        array_at(self.header, 6).unwrap_or_default()
    }

    /// The ethertype, or the frame length for 802.3 frames (values up to 1500).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.header, 12)
    }
}

/// A Linux cooked capture (SLL) header.
#[derive(Clone, Copy, Debug)]
pub struct SllHeader<'a> {
    header: &'a [u8; 16],
}

impl<'a> SllHeader<'a> {
    pub const HEADER_LEN: usize = 16;

    #[inline]
    pub fn new(data: &'a [u8]) -> Option<Self> {
        data.first_chunk().map(|header| Self { header })
    }

    #[inline]
    pub fn packet_type(&self) -> u16 {
        be16(self.header, 0)
    }

    /// The ARPHRD_* device type (1 for Ethernet).
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        be16(self.header, 2)
    }

    /// The sender's link-layer address, if it is a 6-byte (MAC) address.
    #[inline]
    pub fn mac(&self) -> Option<[u8; 6]> {
        (be16(self.header, 4) == 6).then(|| array_at(self.header, 6).unwrap_or_default())
    }

    #[inline]
    pub fn protocol(&self) -> u16 {
        be16(self.header, 14)
    }
}

/// A Linux cooked capture v2 (SLL2) header.
#[derive(Clone, Copy, Debug)]
pub struct Sll2Header<'a> {
    header: &'a [u8; 20],
}

impl<'a> Sll2Header<'a> {
    pub const HEADER_LEN: usize = 20;

    #[inline]
    pub fn new(data: &'a [u8]) -> Option<Self> {
        data.first_chunk().map(|header| Self { header })
    }

    #[inline]
    pub fn protocol(&self) -> u16 {
        be16(self.header, 0)
    }

    #[inline]
    pub fn interface_index(&self) -> u32 {
        be32(self.header, 4)
    }

    /// The ARPHRD_* device type (1 for Ethernet).
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        be16(self.header, 8)
    }

    #[inline]
    pub fn packet_type(&self) -> u8 {
        byte(self.header, 10)
    }

    /// The sender's link-layer address, if it is a 6-byte (MAC) address.
    #[inline]
    pub fn mac(&self) -> Option<[u8; 6]> {
        (byte(self.header, 11) == 6).then(|| array_at(self.header, 12).unwrap_or_default())
    }
}

/// Fills `d.link` and returns the network-layer bytes, or `None` when there are none to decode.
pub(super) fn decode<'a>(link_type: u32, data: &'a [u8], d: &mut Decoded<'a>) -> Option<&'a [u8]> {
    match link_type {
        LINKTYPE_ETHERNET => {
            d.link.kind = LinkKind::Ethernet;
            let Some(eth) = EthernetFrame::new(data) else {
                return cut_short(d);
            };
            d.link.src_mac = Some(eth.src());
            d.link.dst_mac = Some(eth.dst());
            let rest = data.get(EthernetFrame::HEADER_LEN..).unwrap_or_default();
            vlan_tags(eth.ethertype(), rest, d)
        }
        LINKTYPE_LINUX_SLL => {
            d.link.kind = LinkKind::Sll;
            let Some(sll) = SllHeader::new(data) else {
                return cut_short(d);
            };
            d.link.src_mac = sll.mac();
            d.link.packet_type = Some(sll.packet_type());
            let rest = data.get(SllHeader::HEADER_LEN..).unwrap_or_default();
            vlan_tags(sll.protocol(), rest, d)
        }
        LINKTYPE_LINUX_SLL2 => {
            d.link.kind = LinkKind::Sll2;
            let Some(sll) = Sll2Header::new(data) else {
                return cut_short(d);
            };
            d.link.src_mac = sll.mac();
            d.link.packet_type = Some(u16::from(sll.packet_type()));
            let rest = data.get(Sll2Header::HEADER_LEN..).unwrap_or_default();
            vlan_tags(sll.protocol(), rest, d)
        }
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            d.link.kind = LinkKind::Null;
            let Some((family, rest)) = data.split_first_chunk::<4>() else {
                return cut_short(d);
            };
            // NULL stores the family in the capturing host's byte order, which the file does not
            // record; the IPv4/IPv6 values read in the wrong order are never valid, so try both.
            let be = u32::from_be_bytes(*family);
            d.link.ethertype = if link_type == LINKTYPE_LOOP {
                family_ethertype(be)
            } else {
                family_ethertype(u32::from_le_bytes(*family)).or_else(|| family_ethertype(be))
            };
            if d.link.ethertype.is_none() {
                d.anomalies.insert(Anomalies::UNKNOWN_ADDRESS_FAMILY);
            }
            Some(rest)
        }
        LINKTYPE_RAW | LINKTYPE_RAW_BSD | LINKTYPE_RAW_OPENBSD => {
            d.link.kind = LinkKind::Raw;
            let Some(first) = data.first() else {
                d.anomalies.insert(Anomalies::TRUNCATED_IP_HEADER);
                d.truncated = true;
                return None;
            };
            d.link.ethertype = match first >> 4 {
                4 => Some(ETHERTYPE_IPV4),
                6 => Some(ETHERTYPE_IPV6),
                _ => {
                    d.anomalies.insert(Anomalies::BAD_IP_VERSION);
                    None
                }
            };
            Some(data)
        }
        LINKTYPE_IPV4 | LINKTYPE_IPV6 => {
            d.link.kind = LinkKind::Raw;
            d.link.ethertype = Some(if link_type == LINKTYPE_IPV4 {
                ETHERTYPE_IPV4
            } else {
                ETHERTYPE_IPV6
            });
            Some(data)
        }
        _ => {
            d.anomalies.insert(Anomalies::UNKNOWN_LINK_TYPE);
            None
        }
    }
}

/// Records a link header cut by the capture.
fn cut_short<'a>(d: &mut Decoded<'a>) -> Option<&'a [u8]> {
    d.anomalies.insert(Anomalies::TRUNCATED_LINK_HEADER);
    d.truncated = true;
    None
}

/// Skips any VLAN tags, VN-Tags and MPLS labels after a link header whose protocol field is
/// `ethertype`, recording the VLAN ids and the final ethertype; returns the network-layer bytes.
fn vlan_tags<'a>(mut ethertype: u16, mut rest: &'a [u8], d: &mut Decoded<'a>) -> Option<&'a [u8]> {
    // Each pass consumes bytes, so the loop ends however many tags a frame claims.
    loop {
        match ethertype {
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_LEGACY => {
                let Some((tag, after)) = rest.split_first_chunk::<4>() else {
                    return cut_short(d);
                };
                d.link.vlan.push(be16(tag, 0) & 0x0fff);
                ethertype = be16(tag, 2);
                rest = after;
            }
            ETHERTYPE_VNTAG => {
                let Some((tag, after)) = rest.split_first_chunk::<6>() else {
                    return cut_short(d);
                };
                ethertype = be16(tag, 4);
                rest = after;
            }
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => {
                loop {
                    let Some((label, after)) = rest.split_first_chunk::<4>() else {
                        return cut_short(d);
                    };
                    rest = after;
                    if label[2] & 0x01 == 1 {
                        break;
                    }
                }
                // No ethertype follows the stack: the payload's version nibble tells (a
                // pseudowire or anything else stays undecoded).
                let Some(first) = rest.first() else {
                    return cut_short(d);
                };
                ethertype = match first >> 4 {
                    4 => ETHERTYPE_IPV4,
                    6 => ETHERTYPE_IPV6,
                    _ => ETHERTYPE_MPLS,
                };
                break;
            }
            _ => break,
        }
    }
    if d.link.vlan.count() > 2 {
        d.anomalies.insert(Anomalies::TOO_MANY_VLAN_TAGS);
    }
    d.link.ethertype = Some(ethertype);
    Some(rest)
}

/// The ethertype for a BSD address family: AF_INET is 2 everywhere, AF_INET6 is 24 (NetBSD,
/// OpenBSD), 28 (FreeBSD), 30 (macOS) or 10 (Linux).
fn family_ethertype(family: u32) -> Option<u16> {
    match family {
        2 => Some(ETHERTYPE_IPV4),
        10 | 24 | 28 | 30 => Some(ETHERTYPE_IPV6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PLAIN, VERIFY, every_truncation, mutations};
    use super::super::{Anomalies, ChecksumStatus, Network, Transport, decode};
    use super::LinkKind;

    /// Ethernet/802.1ad S-tag 300/802.1Q C-tag 42/IPv4/TCP ACK.
    #[rustfmt::skip]
    const QINQ: [u8; 62] = [
        // Ethernet: dst 00:11:22:33:44:55, src 66:77:88:99:aa:bb, ethertype 802.1ad
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
        0x88, 0xa8,
        // 802.1ad: VLAN 300, ethertype 802.1Q
        0x01, 0x2c, 0x81, 0x00,
        // 802.1Q: VLAN 42, ethertype IPv4
        0x00, 0x2a, 0x08, 0x00,
        // IPv4: total length 40, id 0x2222, DF, TTL 64, TCP, 93.184.216.34 -> 192.168.1.10
        0x45, 0x00, 0x00, 0x28, 0x22, 0x22, 0x40, 0x00, 0x40, 0x06, 0x21, 0x21,
        0x5d, 0xb8, 0xd8, 0x22, 0xc0, 0xa8, 0x01, 0x0a,
        // TCP: 443 -> 51000, seq 1000, ack 2000, data offset 5, ACK, window 512
        0x01, 0xbb, 0xc7, 0x38, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x07, 0xd0,
        0x50, 0x10, 0x02, 0x00, 0xe1, 0x9b, 0x00, 0x00,
    ];

    /// Linux cooked (SLL) capture of an outgoing IPv4/TCP segment carrying an HTTP request.
    #[rustfmt::skip]
    const SLL: [u8; 86] = [
        // SLL: packet type 4 (outgoing), ARPHRD_ETHER, address length 6,
        0x00, 0x04, 0x00, 0x01, 0x00, 0x06,
        // address 00:11:22:33:44:55 + 2 bytes of padding
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x00, 0x00,
        // protocol IPv4
        0x08, 0x00,
        // IPv4: total length 70, id 0x3333, DF, TTL 64, TCP, checksum 0x0ff2,
        0x45, 0x00, 0x00, 0x46, 0x33, 0x33, 0x40, 0x00, 0x40, 0x06, 0x0f, 0xf2,
        // 192.168.1.10 -> 93.184.216.34
        0xc0, 0xa8, 0x01, 0x0a, 0x5d, 0xb8, 0xd8, 0x22,
        // TCP: 51000 -> 80, seq 1001, ack 5001, data offset 8, PSH+ACK, window 502,
        0xc7, 0x38, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe9, 0x00, 0x00, 0x13, 0x89,
        0x80, 0x18,
        // checksum 0xbe58, urgent 0
        0x01, 0xf6, 0xbe, 0x58, 0x00, 0x00,
        // NOP, NOP, timestamps (100, 200)
        0x01, 0x01, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0xc8,
        // "GET / HTTP/1.1\r\n\r\n"
        0x47, 0x45, 0x54, 0x20, 0x2f, 0x20, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31,
        0x2e, 0x31, 0x0d, 0x0a, 0x0d, 0x0a,
    ];

    /// Linux cooked v2 (SLL2) capture of an incoming IPv6/UDP datagram.
    #[rustfmt::skip]
    const SLL2: [u8; 83] = [
        // SLL2: protocol IPv6, reserved, interface index 3,
        0x86, 0xdd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
        // ARPHRD_ETHER, packet type 0 (to us)
        0x00, 0x01, 0x00,
        // address length 6, 66:77:88:99:aa:bb + 2 bytes of padding
        0x06, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x00, 0x00,
        // IPv6: payload length 23, next header UDP (17), hop limit 255
        0x60, 0x00, 0x00, 0x00, 0x00, 0x17, 0x11, 0xff,
        // src 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01,
        // dst 2001:db8::2
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02,
        // UDP: 40002 -> 9999, length 23, checksum 0x0d39
        0x9c, 0x42, 0x27, 0x0f, 0x00, 0x17, 0x0d, 0x39,
        // "hello over udp6"
        0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x6f, 0x76, 0x65, 0x72, 0x20, 0x75,
        0x64, 0x70, 0x36,
    ];

    /// BSD null/loopback from a little-endian host: AF_INET, then IPv4/ICMP echo request.
    #[rustfmt::skip]
    const NULL_LE: [u8; 48] = [
        // AF_INET (2), little-endian
        0x02, 0x00, 0x00, 0x00,
        // IPv4: total length 44, id 0x4444, DF, TTL 64, ICMP, 127.0.0.1 -> 127.0.0.1
        0x45, 0x00, 0x00, 0x2c, 0x44, 0x44, 0x40, 0x00, 0x40, 0x01, 0xf8, 0x8a,
        0x7f, 0x00, 0x00, 0x01, 0x7f, 0x00, 0x00, 0x01,
        // ICMP: echo request, checksum 0x7c75, identifier 0x4242, sequence 7
        0x08, 0x00, 0x7c, 0x75, 0x42, 0x42, 0x00, 0x07,
        // data
        0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b,
        0x2c, 0x2d, 0x2e, 0x2f,
    ];

    /// BSD null/loopback from a big-endian macOS host: AF_INET6 (30), then IPv6/ICMPv6 echo
    /// request.
    #[rustfmt::skip]
    const NULL_BE: [u8; 65] = [
        // AF_INET6 (30), big-endian
        0x00, 0x00, 0x00, 0x1e,
        // IPv6: payload length 21, next header ICMPv6 (58), hop limit 64
        0x60, 0x00, 0x00, 0x00, 0x00, 0x15, 0x3a, 0x40,
        // src 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01,
        // dst 2001:db8::2
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02,
        // ICMPv6: echo request, checksum 0x3fe5, identifier 0x1234, sequence 1
        0x80, 0x00, 0x3f, 0xe5, 0x12, 0x34, 0x00, 0x01,
        // "ping6 payload"
        0x70, 0x69, 0x6e, 0x67, 0x36, 0x20, 0x70, 0x61, 0x79, 0x6c, 0x6f, 0x61,
        0x64,
    ];

    #[test]
    fn qinq_keeps_both_tags() {
        let d = decode(1, &QINQ, &VERIFY);
        assert!(d.anomalies.is_empty() && !d.truncated);
        assert_eq!(d.link.kind, LinkKind::Ethernet);
        assert_eq!(d.vlan_ids(), &[300, 42]);
        assert_eq!(d.link.vlan.count(), 2);
        assert_eq!(d.link.ethertype, Some(0x0800));
        assert_eq!(d.link.src_mac, Some([0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb]));
        assert_eq!((d.src_port(), d.dst_port()), (Some(443), Some(51000)));
        assert_eq!(d.checksums.transport, ChecksumStatus::Good);
        every_truncation(1, &QINQ, QINQ.len());
        mutations(1, &QINQ);
    }

    /// QINQ's IPv4 packet behind other link-layer headers: `between` replaces its two tags.
    fn behind(ethertype: [u8; 2], between: &[u8]) -> Vec<u8> {
        let mut frame = QINQ[..12].to_vec();
        frame.extend_from_slice(&ethertype);
        frame.extend_from_slice(between);
        frame.extend_from_slice(&QINQ[22..]);
        frame
    }

    #[test]
    fn an_mpls_label_stack_is_skipped_to_the_ip_packet_it_carries() {
        // Two labels, the second marked bottom of stack (label 16 then 17, TTL 64).
        let frame = behind([0x88, 0x47], &[0, 1, 0, 64, 0, 1, 0x11, 64]);
        let d = decode(1, &frame, &VERIFY);
        assert!(d.anomalies.is_empty() && !d.truncated, "{:?}", d.anomalies);
        assert_eq!(d.link.ethertype, Some(0x0800));
        assert_eq!((d.src_port(), d.dst_port()), (Some(443), Some(51000)));
        assert_eq!(d.checksums.transport, ChecksumStatus::Good);
        every_truncation(1, &frame, frame.len());
        mutations(1, &frame);
        // A stack that never reaches its bottom is a cut header, not a loop.
        let endless = behind([0x88, 0x47], &[0, 1, 0, 64, 0, 1, 0, 64]);
        let d = decode(1, &endless[..22], &VERIFY);
        assert!(d.truncated);
    }

    #[test]
    fn a_vn_tag_is_skipped_to_the_ethertype_after_it() {
        let frame = behind([0x89, 0x26], &[0x80, 0x01, 0x00, 0x02, 0x08, 0x00]);
        let d = decode(1, &frame, &VERIFY);
        assert!(d.anomalies.is_empty() && !d.truncated, "{:?}", d.anomalies);
        assert_eq!(d.link.ethertype, Some(0x0800));
        assert_eq!((d.src_port(), d.dst_port()), (Some(443), Some(51000)));
        every_truncation(1, &frame, frame.len());
        mutations(1, &frame);
    }

    #[test]
    fn third_tag_is_skipped_and_flagged() {
        // A legacy 0x9100 tag (VLAN 1) in front of the two QinQ tags.
        let mut packet = QINQ[..12].to_vec();
        packet.extend_from_slice(&[0x91, 0x00, 0x00, 0x01, 0x88, 0xa8]);
        packet.extend_from_slice(&QINQ[14..]);
        let d = decode(1, &packet, &PLAIN);
        assert_eq!(d.anomalies, Anomalies::TOO_MANY_VLAN_TAGS);
        assert_eq!(d.vlan_ids(), &[1, 300]);
        assert_eq!(d.link.vlan.count(), 3);
        assert!(matches!(d.transport, Transport::Tcp(_)));
    }

    #[test]
    fn non_ip_ethertype_is_other() {
        // An ARP request: not decoded, handed over as the payload.
        let mut packet = QINQ[..12].to_vec();
        packet.extend_from_slice(&[0x08, 0x06]);
        packet.extend_from_slice(&[0; 28]);
        let d = decode(1, &packet, &PLAIN);
        assert!(d.anomalies.is_empty());
        assert!(matches!(d.network, Network::Other(0x0806)));
        assert_eq!(d.payload.len(), 28);
        assert_eq!(d.ip_src(), None);
    }

    #[test]
    fn linux_cooked_v1() {
        let d = decode(113, &SLL, &VERIFY);
        assert!(d.anomalies.is_empty() && !d.truncated);
        assert_eq!(d.link.kind, LinkKind::Sll);
        assert_eq!(d.link.packet_type, Some(4));
        assert_eq!(d.link.src_mac, Some([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert_eq!(d.link.dst_mac, None);
        assert_eq!(d.payload, b"GET / HTTP/1.1\r\n\r\n");
        let Transport::Tcp(tcp) = d.transport else {
            panic!("not TCP")
        };
        assert_eq!(tcp.options_summary().timestamp, Some((100, 200)));
        assert_eq!(d.checksums.transport, ChecksumStatus::Good);
        every_truncation(113, &SLL, SLL.len());
        mutations(113, &SLL);
    }

    #[test]
    fn linux_cooked_v2() {
        let d = decode(276, &SLL2, &VERIFY);
        assert!(d.anomalies.is_empty() && !d.truncated);
        assert_eq!(d.link.kind, LinkKind::Sll2);
        assert_eq!(d.link.packet_type, Some(0));
        assert_eq!(d.link.src_mac, Some([0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb]));
        assert_eq!(d.link.ethertype, Some(0x86dd));
        assert_eq!((d.src_port(), d.dst_port()), (Some(40002), Some(9999)));
        assert_eq!(d.payload, b"hello over udp6");
        assert_eq!(d.checksums.transport, ChecksumStatus::Good);
        every_truncation(276, &SLL2, SLL2.len());
        mutations(276, &SLL2);
    }

    #[test]
    fn null_in_both_byte_orders() {
        let d = decode(0, &NULL_LE, &VERIFY);
        assert!(d.anomalies.is_empty());
        assert_eq!(d.link.kind, LinkKind::Null);
        assert!(matches!(d.transport, Transport::Icmp(_)));
        let d = decode(0, &NULL_BE, &VERIFY);
        assert!(d.anomalies.is_empty());
        assert!(matches!(d.transport, Transport::Icmpv6(_)));
        every_truncation(0, &NULL_LE, NULL_LE.len());
        every_truncation(0, &NULL_BE, NULL_BE.len());
        mutations(0, &NULL_LE);
        mutations(0, &NULL_BE);

        // Every AF_INET6 value, either way round.
        for family in [10u32, 24, 28, 30] {
            for header in [family.to_le_bytes(), family.to_be_bytes()] {
                let mut packet = NULL_BE;
                packet[..4].copy_from_slice(&header);
                let d = decode(0, &packet, &PLAIN);
                assert_eq!(d.link.ethertype, Some(0x86dd), "family {family}");
            }
        }
        let mut packet = NULL_LE;
        packet[..4].copy_from_slice(&[0, 0, 0, 7]);
        let d = decode(0, &packet, &PLAIN);
        assert_eq!(d.anomalies, Anomalies::UNKNOWN_ADDRESS_FAMILY);
        assert!(matches!(d.network, Network::None));
        assert_eq!(d.payload.len(), NULL_LE.len() - 4);
    }

    #[test]
    fn loop_is_network_order_only() {
        let mut packet = NULL_LE;
        packet[..4].copy_from_slice(&2u32.to_be_bytes());
        assert!(decode(108, &packet, &PLAIN).anomalies.is_empty());
        let d = decode(108, &NULL_LE, &PLAIN);
        assert_eq!(d.anomalies, Anomalies::UNKNOWN_ADDRESS_FAMILY);
    }

    #[test]
    fn raw_ip_link_types() {
        let ip = &QINQ[22..];
        for link_type in [12, 14, 101, 228] {
            let d = decode(link_type, ip, &VERIFY);
            assert!(d.anomalies.is_empty(), "link type {link_type}");
            assert_eq!(d.link.kind, LinkKind::Raw);
            assert!(matches!(d.transport, Transport::Tcp(_)));
        }
        // The link type says IPv6; the bytes disagree.
        let d = decode(229, ip, &PLAIN);
        assert_eq!(d.anomalies, Anomalies::BAD_IP_VERSION);
        // Nothing captured at all.
        let d = decode(101, &[], &PLAIN);
        assert!(d.truncated && d.anomalies.contains(Anomalies::TRUNCATED_IP_HEADER));
    }

    #[test]
    fn unknown_link_type() {
        let d = decode(147, &QINQ, &VERIFY);
        assert_eq!(d.link.kind, LinkKind::Unknown);
        assert_eq!(d.anomalies, Anomalies::UNKNOWN_LINK_TYPE);
        assert!(matches!(d.network, Network::None));
        assert!(d.payload.is_empty() && !d.truncated);
    }
}
