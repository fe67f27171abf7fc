//! The record of everything odd about one packet. An analyzer must not drop a packet because it
//! is malformed (that is often the interesting one), so decoding notes what was wrong here and
//! carries on. A `u32` bit set keeps it `Copy` and free to pass around per packet.

/// A set of anomalies found while decoding one packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Anomalies(pub u32);

impl Anomalies {
    /// The link-layer header (Ethernet, VLAN tag, SLL, null) was cut short.
    pub const TRUNCATED_LINK_HEADER: Self = Self(1 << 0);
    /// The IPv4/IPv6 header (including IPv4 options) was cut short.
    pub const TRUNCATED_IP_HEADER: Self = Self(1 << 1);
    /// The TCP/UDP/ICMP header did not fit in the captured bytes or in the IP payload.
    pub const TRUNCATED_TRANSPORT_HEADER: Self = Self(1 << 2);
    /// The IP version nibble disagrees with the link layer, or names no IP version at all.
    pub const BAD_IP_VERSION: Self = Self(1 << 3);
    /// IPv4 IHL below 5, or a header longer than the total length.
    pub const BAD_IPV4_IHL: Self = Self(1 << 4);
    /// IPv4 total length below the 20-byte header, or IPv6 payload length 0 with a payload and
    /// no jumbogram option: what TSO/GSO packets captured on the sender look like. The captured
    /// length is used instead.
    pub const IP_TOTAL_LEN_SHORT: Self = Self(1 << 5);
    /// The IP length announces more bytes than were captured.
    pub const IP_LEN_BEYOND_CAPTURED: Self = Self(1 << 6);
    /// The IPv4 header checksum is wrong (only checked when asked to).
    pub const BAD_IPV4_CHECKSUM: Self = Self(1 << 7);
    /// The TCP checksum is wrong (only checked when asked to).
    pub const BAD_TCP_CHECKSUM: Self = Self(1 << 8);
    /// The UDP checksum is wrong, or zero over IPv6 (only checked when asked to).
    pub const BAD_UDP_CHECKSUM: Self = Self(1 << 9);
    /// The ICMP/ICMPv6 checksum is wrong (only checked when asked to).
    pub const BAD_ICMP_CHECKSUM: Self = Self(1 << 10);
    /// TCP data offset below 5 words.
    pub const TCP_DATA_OFFSET_SHORT: Self = Self(1 << 11);
    /// TCP data offset points past the end of the segment the IP layer announces.
    pub const TCP_DATA_OFFSET_BEYOND_SEGMENT: Self = Self(1 << 12);
    /// SYN and FIN together: never legitimate, a classic scan/OS-fingerprint probe.
    pub const TCP_SYN_FIN: Self = Self(1 << 13);
    /// SYN and RST together.
    pub const TCP_SYN_RST: Self = Self(1 << 14);
    /// No TCP flag at all (a null scan).
    pub const TCP_NO_FLAGS: Self = Self(1 << 15);
    /// A TCP option with an impossible length, or a known option of the wrong size.
    pub const TCP_BAD_OPTION: Self = Self(1 << 16);
    /// More than two VLAN tags; all were skipped but only two ids kept.
    pub const TOO_MANY_VLAN_TAGS: Self = Self(1 << 17);
    /// The capture's link type is not one this decoder knows.
    pub const UNKNOWN_LINK_TYPE: Self = Self(1 << 18);
    /// A null/loopback header names an address family that is neither IPv4 nor IPv6.
    pub const UNKNOWN_ADDRESS_FAMILY: Self = Self(1 << 19);
    /// An IPv6 extension header runs past the captured bytes or the payload length.
    pub const IPV6_EXT_TRUNCATED: Self = Self(1 << 20);
    /// A fragment other than the first: its transport header is in another packet.
    pub const NON_FIRST_FRAGMENT: Self = Self(1 << 21);
    /// UDP length below 8 or beyond the IP payload.
    pub const UDP_BAD_LENGTH: Self = Self(1 << 22);

    /// Every flag with its stable `snake_case` name, in bit order, for output formats.
    const NAMES: [(Self, &'static str); 23] = [
        (Self::TRUNCATED_LINK_HEADER, "truncated_link_header"),
        (Self::TRUNCATED_IP_HEADER, "truncated_ip_header"),
        (
            Self::TRUNCATED_TRANSPORT_HEADER,
            "truncated_transport_header",
        ),
        (Self::BAD_IP_VERSION, "bad_ip_version"),
        (Self::BAD_IPV4_IHL, "bad_ipv4_ihl"),
        (Self::IP_TOTAL_LEN_SHORT, "ip_total_len_short"),
        (Self::IP_LEN_BEYOND_CAPTURED, "ip_len_beyond_captured"),
        (Self::BAD_IPV4_CHECKSUM, "bad_ipv4_checksum"),
        (Self::BAD_TCP_CHECKSUM, "bad_tcp_checksum"),
        (Self::BAD_UDP_CHECKSUM, "bad_udp_checksum"),
        (Self::BAD_ICMP_CHECKSUM, "bad_icmp_checksum"),
        (Self::TCP_DATA_OFFSET_SHORT, "tcp_data_offset_short"),
        (
            Self::TCP_DATA_OFFSET_BEYOND_SEGMENT,
            "tcp_data_offset_beyond_segment",
        ),
        (Self::TCP_SYN_FIN, "tcp_syn_fin"),
        (Self::TCP_SYN_RST, "tcp_syn_rst"),
        (Self::TCP_NO_FLAGS, "tcp_no_flags"),
        (Self::TCP_BAD_OPTION, "tcp_bad_option"),
        (Self::TOO_MANY_VLAN_TAGS, "too_many_vlan_tags"),
        (Self::UNKNOWN_LINK_TYPE, "unknown_link_type"),
        (Self::UNKNOWN_ADDRESS_FAMILY, "unknown_address_family"),
        (Self::IPV6_EXT_TRUNCATED, "ipv6_ext_truncated"),
        (Self::NON_FIRST_FRAGMENT, "non_first_fragment"),
        (Self::UDP_BAD_LENGTH, "udp_bad_length"),
    ];

    /// The empty set.
    pub const NONE: Self = Self(0);

    /// Whether every flag of `other` is set.
    #[inline]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the flags of `other`.
    #[inline]
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// Whether no flag is set.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the flags set, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(flag, _)| self.contains(*flag))
            .map(|(_, name)| name)
    }
}

impl std::ops::BitOr for Anomalies {
    type Output = Self;

    #[inline]
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Anomalies;

    #[test]
    fn names_follow_bits_and_cover_every_flag() {
        let all = Anomalies::NAMES
            .iter()
            .fold(Anomalies::NONE, |acc, (flag, _)| acc | *flag);
        assert_eq!(all.0.count_ones() as usize, Anomalies::NAMES.len());
        assert_eq!(all.names().count(), Anomalies::NAMES.len());

        let mut set = Anomalies::NONE;
        assert!(set.is_empty());
        assert_eq!(set.names().count(), 0);
        set.insert(Anomalies::TCP_SYN_FIN);
        set.insert(Anomalies::TRUNCATED_LINK_HEADER);
        assert!(set.contains(Anomalies::TCP_SYN_FIN));
        assert!(!set.contains(Anomalies::TCP_SYN_FIN | Anomalies::TCP_SYN_RST));
        let names: [&str; 2] = ["truncated_link_header", "tcp_syn_fin"];
        assert!(set.names().eq(names));
    }
}
