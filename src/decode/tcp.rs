//! TCP: the header view, its options, and the flag combinations worth flagging. Options are read
//! by an iterator that stops at the first impossible length instead of trusting it, and the
//! handful that flow analysis needs (MSS, window scale, SACK, timestamps) are summarized without
//! allocating.

use super::{
    Anomalies, ChecksumStatus, DecodeOptions, Decoded, IpPayload, PROTO_TCP, Transport, be16, be32,
    byte,
};

/// Length of the header without options.
pub const MIN_HEADER_LEN: usize = 20;

// Option kinds this module reads.
const END_OF_LIST: u8 = 0;
const NOP: u8 = 1;
const MSS: u8 = 2;
const WINDOW_SCALE: u8 = 3;
const SACK_PERMITTED: u8 = 4;
const SACK: u8 = 5;
const TIMESTAMPS: u8 = 8;

/// TCP flags, the nine bits after the data offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    pub const FIN: Self = Self(0x001);
    pub const SYN: Self = Self(0x002);
    pub const RST: Self = Self(0x004);
    pub const PSH: Self = Self(0x008);
    pub const ACK: Self = Self(0x010);
    pub const URG: Self = Self(0x020);
    pub const ECE: Self = Self(0x040);
    pub const CWR: Self = Self(0x080);
    pub const NS: Self = Self(0x100);

    /// Whether every flag of `other` is set.
    #[inline]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = Self;

    #[inline]
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// Up to four SACK blocks as (left edge, right edge), and how many are used. Four is the most
/// that fit in the 40 bytes of option space.
pub type SackBlocks = ([(u32, u32); 4], u8);

/// One TCP option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOption<'a> {
    EndOfList,
    Nop,
    Mss(u16),
    /// The window scale shift count.
    WindowScale(u8),
    SackPermitted,
    Sack(SackBlocks),
    Timestamps {
        value: u32,
        echo: u32,
    },
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
    /// A known option of the wrong size, or an option whose length byte is missing, below 2 or
    /// past the end of the options (then `data` is everything left, and iteration stops).
    Malformed {
        kind: u8,
        data: &'a [u8],
    },
}

/// Iterator over the options of a TCP header.
#[derive(Clone, Debug)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    /// Options read from the raw options bytes of a header.
    #[inline]
    pub fn new(options: &'a [u8]) -> Self {
        Self { rest: options }
    }

    /// Whether some option is malformed. Every decoded segment pays for this check, so it walks
    /// kinds and lengths without building the options.
    pub fn any_malformed(mut self) -> bool {
        while let Some(raw) = self.next_raw() {
            match raw {
                Raw::Option { kind, data } if !valid_len(kind, data.len()) => return true,
                Raw::Broken { .. } => return true,
                Raw::End | Raw::Nop | Raw::Option { .. } => {}
            }
        }
        false
    }

    /// Splits off the next option by its kind and length byte alone.
    #[inline]
    fn next_raw(&mut self) -> Option<Raw<'a>> {
        let (&kind, after_kind) = self.rest.split_first()?;
        match kind {
            END_OF_LIST => {
                self.rest = &[];
                return Some(Raw::End);
            }
            NOP => {
                self.rest = after_kind;
                return Some(Raw::Nop);
            }
            _ => {}
        }
        let whole = after_kind
            .first()
            .map(|&len| usize::from(len))
            .filter(|&len| len >= 2)
            .and_then(|len| self.rest.split_at_checked(len));
        let Some((option, after)) = whole else {
            self.rest = &[];
            let data = after_kind.get(1..).unwrap_or_default();
            return Some(Raw::Broken { kind, data });
        };
        self.rest = after;
        let data = option.get(2..).unwrap_or_default();
        Some(Raw::Option { kind, data })
    }
}

/// An option split off by its length byte, before its contents are read.
enum Raw<'a> {
    End,
    Nop,
    Option {
        kind: u8,
        data: &'a [u8],
    },
    /// The length byte is missing, below 2 or past the end: nothing after can be trusted.
    Broken {
        kind: u8,
        data: &'a [u8],
    },
}

/// Whether `len` bytes of data (after kind and length) is a size option `kind` can have.
#[inline]
fn valid_len(kind: u8, len: usize) -> bool {
    match kind {
        MSS => len == 2,
        WINDOW_SCALE => len == 1,
        SACK_PERMITTED => len == 0,
        // One to four 8-byte blocks.
        SACK => matches!(len, 8 | 16 | 24 | 32),
        TIMESTAMPS => len == 8,
        _ => true,
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = TcpOption<'a>;

    fn next(&mut self) -> Option<TcpOption<'a>> {
        Some(match self.next_raw()? {
            Raw::End => TcpOption::EndOfList,
            Raw::Nop => TcpOption::Nop,
            Raw::Broken { kind, data } => TcpOption::Malformed { kind, data },
            Raw::Option { kind, data } if !valid_len(kind, data.len()) => {
                TcpOption::Malformed { kind, data }
            }
            Raw::Option { kind, data } => match kind {
                MSS => TcpOption::Mss(be16(data, 0)),
                WINDOW_SCALE => TcpOption::WindowScale(byte(data, 0)),
                SACK_PERMITTED => TcpOption::SackPermitted,
                SACK => TcpOption::Sack(sack_blocks(data)),
                TIMESTAMPS => TcpOption::Timestamps {
                    value: be32(data, 0),
                    echo: be32(data, 4),
                },
                _ => TcpOption::Unknown { kind, data },
            },
        })
    }
}

/// The SACK blocks in a SACK option body whose length [`valid_len`] accepted.
fn sack_blocks(data: &[u8]) -> SackBlocks {
    let (pairs, _) = data.as_chunks::<8>();
    let mut blocks = [(0, 0); 4];
    for (block, pair) in blocks.iter_mut().zip(pairs) {
        *block = (be32(pair, 0), be32(pair, 4));
    }
    (blocks, pairs.len().min(blocks.len()) as u8)
}

/// The options flow analysis needs, gathered in one pass. A repeated option keeps its last value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptionsSummary {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    pub sack_blocks: SackBlocks,
    /// (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
    /// Some option was malformed; the options after an impossible length were not read.
    pub malformed: bool,
}

impl TcpOptionsSummary {
    /// Summarizes the options in raw options bytes.
    pub fn from_options(options: &[u8]) -> Self {
        let mut summary = Self::default();
        for option in TcpOptions::new(options) {
            match option {
                TcpOption::Mss(mss) => summary.mss = Some(mss),
                TcpOption::WindowScale(shift) => summary.wscale = Some(shift),
                TcpOption::SackPermitted => summary.sack_permitted = true,
                TcpOption::Sack(blocks) => summary.sack_blocks = blocks,
                TcpOption::Timestamps { value, echo } => summary.timestamp = Some((value, echo)),
                TcpOption::Malformed { .. } => summary.malformed = true,
                TcpOption::EndOfList | TcpOption::Nop | TcpOption::Unknown { .. } => {}
            }
        }
        summary
    }

    /// The SACK blocks in use.
    #[inline]
    pub fn sack(&self) -> &[(u32, u32)] {
        let (blocks, count) = &self.sack_blocks;
        blocks.get(..usize::from(*count)).unwrap_or(blocks)
    }
}

/// A view of a TCP header.
#[derive(Clone, Copy, Debug)]
pub struct TcpPacket<'a> {
    header: &'a [u8; MIN_HEADER_LEN],
    options: &'a [u8],
}

impl<'a> TcpPacket<'a> {
    /// The header at the start of `segment`, if its fixed 20 bytes are there. Options are what
    /// the data offset covers, as far as `segment` goes.
    #[inline]
    pub fn new(segment: &'a [u8]) -> Option<Self> {
        let header = segment.first_chunk::<MIN_HEADER_LEN>()?;
        let end = (usize::from(byte(header, 12) >> 4) * 4).min(segment.len());
        let options = segment.get(MIN_HEADER_LEN..end).unwrap_or_default();
        Some(Self { header, options })
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.header, 0)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.header, 2)
    }

    #[inline]
    pub fn seq(&self) -> u32 {
        be32(self.header, 4)
    }

    #[inline]
    pub fn ack(&self) -> u32 {
        be32(self.header, 8)
    }

    /// Header length in 32-bit words.
    #[inline]
    pub fn data_offset(&self) -> u8 {
        byte(self.header, 12) >> 4
    }

    /// Header length in bytes as the data offset announces it.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(be16(self.header, 12) & 0x01ff)
    }

    #[inline]
    pub fn window(&self) -> u16 {
        be16(self.header, 14)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.header, 16)
    }

    #[inline]
    pub fn urgent_pointer(&self) -> u16 {
        be16(self.header, 18)
    }

    /// The raw options bytes.
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        self.options
    }

    #[inline]
    pub fn options_iter(&self) -> TcpOptions<'a> {
        TcpOptions::new(self.options)
    }

    #[inline]
    pub fn options_summary(&self) -> TcpOptionsSummary {
        TcpOptionsSummary::from_options(self.options)
    }
}

/// Decodes the TCP segment in `ip` into `d`.
pub(super) fn decode<'a>(ip: &IpPayload<'a>, options: &DecodeOptions, d: &mut Decoded<'a>) {
    let Some(tcp) = TcpPacket::new(ip.bytes) else {
        d.anomalies.insert(Anomalies::TRUNCATED_TRANSPORT_HEADER);
        return;
    };
    d.transport = Transport::Tcp(tcp);
    let header_len = tcp.header_len();
    let data_start = if header_len < MIN_HEADER_LEN {
        d.anomalies.insert(Anomalies::TCP_DATA_OFFSET_SHORT);
        MIN_HEADER_LEN
    } else if header_len > ip.announced {
        d.anomalies
            .insert(Anomalies::TCP_DATA_OFFSET_BEYOND_SEGMENT);
        ip.bytes.len()
    } else if header_len > ip.bytes.len() {
        d.anomalies.insert(Anomalies::TRUNCATED_TRANSPORT_HEADER);
        ip.bytes.len()
    } else {
        // Only a whole options area is judged: one cut by the capture is not malformed.
        if tcp.options_iter().any_malformed() {
            d.anomalies.insert(Anomalies::TCP_BAD_OPTION);
        }
        header_len
    };
    d.payload = ip.bytes.get(data_start..).unwrap_or_default();

    let flags = tcp.flags();
    if flags.contains(TcpFlags::SYN | TcpFlags::FIN) {
        d.anomalies.insert(Anomalies::TCP_SYN_FIN);
    }
    if flags.contains(TcpFlags::SYN | TcpFlags::RST) {
        d.anomalies.insert(Anomalies::TCP_SYN_RST);
    }
    if flags.is_empty() {
        d.anomalies.insert(Anomalies::TCP_NO_FLAGS);
    }

    if ip.verify(options) {
        d.checksums.transport = if ip.pseudo.verifies(PROTO_TCP, ip.bytes) {
            ChecksumStatus::Good
        } else {
            d.anomalies.insert(Anomalies::BAD_TCP_CHECKSUM);
            ChecksumStatus::Bad
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PLAIN, VERIFY, every_truncation, mutations};
    use super::super::{Anomalies, ChecksumStatus, Decoded, Network, Transport, decode};
    use super::{TcpFlags, TcpOption, TcpOptions, TcpOptionsSummary, TcpPacket};

    /// Ethernet/IPv4/TCP SYN as Linux sends it: MSS, SACK permitted, timestamps, NOP,
    /// window scale.
    #[rustfmt::skip]
    const SYN: [u8; 74] = [
        // Ethernet: dst 66:77:88:99:aa:bb, src 00:11:22:33:44:55, ethertype IPv4
        0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
        0x08, 0x00,
        // IPv4: IHL 5, total length 60, id 0x1c46, DF, TTL 64, TCP, checksum 0x26e9,
        0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x26, 0xe9,
        // 192.168.1.10 -> 93.184.216.34
        0xc0, 0xa8, 0x01, 0x0a, 0x5d, 0xb8, 0xd8, 0x22,
        // TCP: 54321 -> 80, seq 0x12345678, ack 0, data offset 10, SYN, window 64240,
        0xd4, 0x31, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00,
        0xa0, 0x02,
        // checksum 0x023c, urgent 0
        0xfa, 0xf0, 0x02, 0x3c, 0x00, 0x00,
        // MSS 1460, SACK permitted, timestamps (0x0a0b0c0d, 0), NOP, window scale 7
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x0a, 0x0b, 0x0c, 0x0d,
        0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    /// Offset of the TCP header in [`SYN`].
    const TCP_AT: usize = 34;

    fn tcp<'a>(d: &Decoded<'a>) -> TcpPacket<'a> {
        match d.transport {
            Transport::Tcp(tcp) => tcp,
            other => panic!("not TCP: {other:?}"),
        }
    }

    /// [`SYN`] with one byte replaced.
    fn syn_with(at: usize, value: u8) -> [u8; 74] {
        let mut packet = SYN;
        packet[at] = value;
        packet
    }

    #[test]
    fn syn_with_linux_options() {
        let d = decode(1, &SYN, &VERIFY);
        assert!(
            d.anomalies.is_empty(),
            "{:?}",
            d.anomalies.names().collect::<Vec<_>>()
        );
        assert!(!d.truncated && !d.fragment);
        assert_eq!(d.link.dst_mac, Some([0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb]));
        assert_eq!(d.link.src_mac, Some([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert_eq!(d.ip_src(), Some("192.168.1.10".parse().unwrap()));
        assert_eq!(d.ip_dst(), Some("93.184.216.34".parse().unwrap()));
        assert_eq!((d.ip_protocol(), d.ip_total_len()), (Some(6), Some(60)));
        assert_eq!((d.src_port(), d.dst_port()), (Some(54321), Some(80)));
        let Network::Ipv4(ip) = d.network else {
            panic!("not IPv4")
        };
        assert_eq!((ip.identification(), ip.ttl()), (0x1c46, 64));
        assert!(ip.dont_fragment() && !ip.more_fragments());

        let tcp = tcp(&d);
        assert_eq!((tcp.seq(), tcp.ack()), (0x1234_5678, 0));
        assert_eq!((tcp.data_offset(), tcp.header_len()), (10, 40));
        assert_eq!(tcp.flags(), TcpFlags::SYN);
        assert_eq!(
            (tcp.window(), tcp.checksum(), tcp.urgent_pointer()),
            (64240, 0x023c, 0)
        );
        assert!(tcp.options_iter().eq([
            TcpOption::Mss(1460),
            TcpOption::SackPermitted,
            TcpOption::Timestamps {
                value: 0x0a0b_0c0d,
                echo: 0
            },
            TcpOption::Nop,
            TcpOption::WindowScale(7),
        ]));
        let summary = tcp.options_summary();
        assert_eq!((summary.mss, summary.wscale), (Some(1460), Some(7)));
        assert!(summary.sack_permitted && !summary.malformed);
        assert_eq!(summary.timestamp, Some((0x0a0b_0c0d, 0)));
        assert!(summary.sack().is_empty());
        assert!(d.payload.is_empty());
        assert_eq!(d.checksums.ip, ChecksumStatus::Good);
        assert_eq!(d.checksums.transport, ChecksumStatus::Good);
    }

    #[test]
    fn syn_cut_at_every_length() {
        every_truncation(1, &SYN, SYN.len());
        mutations(1, &SYN);
    }

    #[test]
    fn options_cut_by_the_capture_are_truncated_not_malformed() {
        // The capture ends inside the timestamps option.
        let d = decode(1, &SYN[..TCP_AT + 30], &PLAIN);
        assert!(d.truncated);
        assert!(d.anomalies.contains(Anomalies::TRUNCATED_TRANSPORT_HEADER));
        assert!(!d.anomalies.contains(Anomalies::TCP_BAD_OPTION));
        assert_eq!(tcp(&d).options().len(), 10);
        assert_eq!(tcp(&d).options_summary().mss, Some(1460));
    }

    #[test]
    fn checksum_over_ipv4_good_and_bad() {
        assert_eq!(
            decode(1, &SYN, &VERIFY).checksums.transport,
            ChecksumStatus::Good
        );
        // The window changed in flight: the IP header still verifies, TCP does not.
        let damaged = syn_with(TCP_AT + 15, 0x00);
        let d = decode(1, &damaged, &VERIFY);
        assert_eq!(d.checksums.ip, ChecksumStatus::Good);
        assert_eq!(d.checksums.transport, ChecksumStatus::Bad);
        assert_eq!(d.anomalies, Anomalies::BAD_TCP_CHECKSUM);
        let d = decode(1, &damaged, &PLAIN);
        assert_eq!(d.checksums.transport, ChecksumStatus::NotChecked);
        assert!(d.anomalies.is_empty());
    }

    #[test]
    fn data_offset_15_runs_past_the_segment() {
        let packet = syn_with(TCP_AT + 12, 0xf0);
        let d = decode(1, &packet, &PLAIN);
        assert_eq!(d.anomalies, Anomalies::TCP_DATA_OFFSET_BEYOND_SEGMENT);
        assert!(!d.truncated);
        assert_eq!(tcp(&d).header_len(), 60);
        assert_eq!(tcp(&d).options().len(), 20);
        assert!(d.payload.is_empty());
    }

    #[test]
    fn data_offset_below_5_is_read_as_5() {
        let packet = syn_with(TCP_AT + 12, 0x20);
        let d = decode(1, &packet, &PLAIN);
        assert_eq!(d.anomalies, Anomalies::TCP_DATA_OFFSET_SHORT);
        assert!(tcp(&d).options().is_empty());
        assert_eq!(d.payload, &SYN[TCP_AT + 20..]);
    }

    #[test]
    fn suspicious_flag_combinations() {
        let cases = [
            (0x03, Anomalies::TCP_SYN_FIN),
            (0x06, Anomalies::TCP_SYN_RST),
            (0x00, Anomalies::TCP_NO_FLAGS),
            (0x12, Anomalies::NONE),
        ];
        for (flags, expected) in cases {
            let packet = syn_with(TCP_AT + 13, flags);
            let d = decode(1, &packet, &PLAIN);
            assert_eq!(d.anomalies, expected, "flags {flags:#x}");
        }
        let packet = syn_with(TCP_AT + 12, 0xa1);
        let flags = tcp(&decode(1, &packet, &PLAIN)).flags();
        assert!(flags.contains(TcpFlags::NS | TcpFlags::SYN) && !flags.contains(TcpFlags::ACK));
    }

    #[test]
    fn malformed_option_in_a_whole_header() {
        // The window scale option claims 9 bytes where 3 are left.
        let packet = syn_with(TCP_AT + 38, 9);
        let d = decode(1, &packet, &PLAIN);
        assert_eq!(d.anomalies, Anomalies::TCP_BAD_OPTION);
        let summary = tcp(&d).options_summary();
        assert!(summary.malformed && summary.wscale.is_none());
        assert_eq!(summary.mss, Some(1460));
    }

    #[test]
    fn option_iterator_never_trusts_a_length() {
        let none: [TcpOption<'_>; 0] = [];
        assert!(TcpOptions::new(&[]).eq(none));
        // Nothing after end-of-list is read.
        assert!(TcpOptions::new(&[0, 2, 4, 5, 0xb4]).eq([TcpOption::EndOfList]));
        // A kind without its length byte, a length below 2, a length past the end.
        for bytes in [&[2][..], &[2, 1, 5, 0xb4], &[2, 10, 5, 0xb4]] {
            let mut options = TcpOptions::new(bytes);
            assert!(matches!(
                options.next(),
                Some(TcpOption::Malformed { kind: 2, .. })
            ));
            assert_eq!(options.next(), None);
        }
        // A known option of the wrong size is skipped by its length, and reading goes on.
        assert!(TcpOptions::new(&[2, 3, 5, 1]).eq([
            TcpOption::Malformed {
                kind: 2,
                data: &[5]
            },
            TcpOption::Nop
        ]));
        // Unknown kinds (here MPTCP) are kept with their data.
        assert!(
            TcpOptions::new(&[30, 4, 0x10, 0x01]).eq([TcpOption::Unknown {
                kind: 30,
                data: &[0x10, 0x01]
            }])
        );
        // SACK bodies must be whole 8-byte blocks.
        let odd = [5, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0];
        assert!(matches!(
            TcpOptions::new(&odd).next(),
            Some(TcpOption::Malformed { kind: 5, .. })
        ));
    }

    #[test]
    fn sack_blocks_are_summarized() {
        let options = [
            1, 1, // NOP, NOP
            5, 18, // SACK, two blocks
            0, 0, 0, 10, 0, 0, 0, 20, // 10..20
            0, 0, 0, 30, 0xff, 0xff, 0xff, 0xff, // 30..u32::MAX
        ];
        let summary = TcpOptionsSummary::from_options(&options);
        assert_eq!(summary.sack(), &[(10, 20), (30, u32::MAX)]);
        assert_eq!(summary.sack_blocks.1, 2);
        assert!(!summary.malformed && summary.mss.is_none());
    }
}
