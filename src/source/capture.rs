//! The capture-file reader: pcap (µs, ns and the "modified" variant, either byte order) and
//! pcapng (several sections and interfaces, enhanced, simple and obsolete packet blocks), over any
//! byte stream. pcap-parser decodes the records; this file owns the streaming, the limits that
//! keep a corrupt length from allocating gigabytes, and the positions that errors carry.
//!
//! Where libpcap and Wireshark disagree on a malformed file, the reader takes libpcap's side and
//! reports the damage (see the README).

use super::buffer::ReadBuffer;
use super::{LinkType, Packet, Source, SourceError, SourceErrorKind};
use pcap_parser::nom;
use pcap_parser::{
    Block, InterfaceDescriptionBlock, PcapError, parse_block_be, parse_block_le, parse_pcap_frame,
    parse_pcap_frame_be, parse_pcap_frame_modified, parse_pcap_header, parse_sectionheaderblock,
};
use serde::{Deserialize, Serialize};

/// libpcap's and Wireshark's ceiling for one pcap record (`max_snaplen_for_dlt`): a larger
/// length is damage, not a packet, and must not be allocated.
pub const MAX_PCAP_RECORD: u32 = 262_144;
/// Ceiling for one pcapng block (libpcap's `INITIAL_MAX_BLOCKSIZE` is this size too).
pub const MAX_PCAPNG_BLOCK: u32 = 16 * 1024 * 1024;
/// libpcap's bound on a section header block.
const MAX_SHB: u32 = 1024 * 1024;

const PCAP_MAGICS: [[u8; 4]; 6] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x34, 0xcd, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xcd, 0x34],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const SHB_TYPE: u32 = 0x0a0d_0d0a;
const OBSOLETE_PACKET_BLOCK: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormat {
    Pcap,
    Pcapng,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
}

/// What the first bytes of a stream say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniffed {
    Capture(CaptureFormat),
    Gzip,
    Tar,
    Unknown,
}

/// Bytes needed by [`sniff`] to recognise a tar header (its `ustar` magic sits at 257).
pub const SNIFF_LEN: usize = 262;

/// Recognise a stream by magic, never by name.
pub fn sniff(head: &[u8]) -> Sniffed {
    if head.len() >= 4 {
        let magic: [u8; 4] = [head[0], head[1], head[2], head[3]];
        if PCAP_MAGICS.contains(&magic) {
            return Sniffed::Capture(CaptureFormat::Pcap);
        }
        if magic == PCAPNG_MAGIC {
            return Sniffed::Capture(CaptureFormat::Pcapng);
        }
    }
    if head.len() >= 2 && head[..2] == GZIP_MAGIC {
        return Sniffed::Gzip;
    }
    if head.len() >= SNIFF_LEN && &head[257..262] == b"ustar" {
        return Sniffed::Tar;
    }
    Sniffed::Unknown
}

#[derive(Clone, Copy, Debug)]
struct PcapLayout {
    big_endian: bool,
    nanos: bool,
    modified: bool,
    link_type: LinkType,
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link_type: LinkType,
    /// Timestamp units per second (`if_tsresol`).
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_s: i64,
}

#[derive(Debug, Default)]
struct PcapngState {
    big_endian: bool,
    interfaces: Vec<Interface>,
    /// Time of the last timestamped packet: simple packet blocks carry none and inherit it.
    last_ts_ns: i64,
}

#[derive(Debug)]
enum Layout {
    Pcap(PcapLayout),
    Pcapng(PcapngState),
}

/// Where the current packet lies in the window, so it can be lent without holding a borrow.
#[derive(Clone, Copy, Debug)]
struct Current {
    ts_ns: i64,
    has_ts: bool,
    link_type: LinkType,
    pos: usize,
    len: usize,
    orig_len: u32,
    interface: u32,
}

/// Reads one capture (pcap or pcapng) from a stream.
pub struct CaptureReader<'a> {
    name: String,
    buf: ReadBuffer<'a>,
    compression: Compression,
    layout: Layout,
    snaplen: u32,
    link_types: Vec<LinkType>,
    records: u64,
    current: Option<Current>,
    finished: bool,
}

type ParseResult<'i, T> = Result<(&'i [u8], T), nom::Err<PcapError<&'i [u8]>>>;

impl<'a> CaptureReader<'a> {
    /// Read the file header of a stream that [`sniff`] recognised as a capture. `buf` must be
    /// positioned at the start of the capture.
    pub fn open(
        name: String,
        mut buf: ReadBuffer<'a>,
        compression: Compression,
    ) -> Result<Self, SourceError> {
        let head = buf
            .fill_to(4)
            .map_err(|e| SourceError::new(&name, SourceErrorKind::Io(e), 0, 0))?;
        if head < 4 {
            let kind = SourceErrorKind::Truncated {
                what: "file header",
                needed: 4,
                available: head as u64,
            };
            return Err(SourceError::new(&name, kind, 0, 0));
        }
        let format = match sniff(&buf.available()[..4]) {
            Sniffed::Capture(format) => format,
            _ => {
                let magic = buf.available()[..4].to_vec();
                return Err(SourceError::new(
                    &name,
                    SourceErrorKind::NotACapture(magic),
                    0,
                    0,
                ));
            }
        };
        let mut reader = CaptureReader {
            name,
            buf,
            compression,
            layout: Layout::Pcapng(PcapngState::default()),
            snaplen: 0,
            link_types: Vec::new(),
            records: 0,
            current: None,
            finished: false,
        };
        match format {
            CaptureFormat::Pcap => reader.read_pcap_header()?,
            CaptureFormat::Pcapng => {
                // The first block must be a readable section header: fail at open, like libpcap.
                if reader.read_one_block()?.is_none() {
                    return Err(reader.error(
                        SourceErrorKind::Truncated {
                            what: "section header block",
                            needed: 28,
                            available: 0,
                        },
                        0,
                    ));
                }
            }
        }
        Ok(reader)
    }

    pub fn format(&self) -> CaptureFormat {
        match self.layout {
            Layout::Pcap(_) => CaptureFormat::Pcap,
            Layout::Pcapng(_) => CaptureFormat::Pcapng,
        }
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The snapshot length: the pcap header's, or the largest of the pcapng interfaces'.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Link types in the order their interfaces appeared.
    pub fn link_types(&self) -> &[LinkType] {
        &self.link_types
    }

    /// Packets delivered so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Stream offset of the next unread byte (the decompressed stream for gzip).
    pub fn offset(&self) -> u64 {
        self.buf.offset()
    }

    /// False when the current packet has no usable time: a pcapng simple packet block, or a
    /// stamp that is invalid (a fraction of one second or more, a date beyond 64-bit
    /// nanoseconds). Such a packet carries the best time the capture allows: the previous
    /// packet's when the stamp is absent or out of range, so merges stay ordered.
    pub fn packet_has_timestamp(&self) -> bool {
        self.current.is_some_and(|c| c.has_ts)
    }

    fn error(&self, kind: SourceErrorKind, offset: u64) -> SourceError {
        SourceError::new(&self.name, kind, offset, self.records + 1)
    }

    fn io_error(&self, e: std::io::Error, offset: u64) -> SourceError {
        let kind = match self.compression {
            Compression::Gzip => SourceErrorKind::Gzip(e),
            Compression::None => SourceErrorKind::Io(e),
        };
        self.error(kind, offset)
    }

    fn note_link_type(&mut self, link_type: LinkType) {
        if !self.link_types.contains(&link_type) {
            self.link_types.push(link_type);
        }
    }

    fn read_pcap_header(&mut self) -> Result<(), SourceError> {
        let available = self.buf.fill_to(24).map_err(|e| self.io_error(e, 0))?;
        if available < 24 {
            return Err(self.error(
                SourceErrorKind::Truncated {
                    what: "pcap file header",
                    needed: 24,
                    available: available as u64,
                },
                0,
            ));
        }
        let header = match parse_pcap_header(&self.buf.available()[..24]) {
            Ok((_, header)) => header,
            Err(e) => {
                return Err(self.error(
                    SourceErrorKind::Corrupt {
                        what: "pcap file header",
                        detail: format!("{e:?}"),
                    },
                    0,
                ));
            }
        };
        if !(header.version_major == 2 && header.version_minor <= 4) {
            return Err(self.error(
                SourceErrorKind::UnsupportedVersion {
                    format: "pcap",
                    major: header.version_major,
                    minor: header.version_minor,
                },
                4,
            ));
        }
        let network = header.network.0 as u32;
        // Bits 16-25 are reserved (libpcap's LT_RESERVED1); the top bits may carry an FCS length.
        if network & 0x03ff_0000 != 0 {
            return Err(self.error(
                SourceErrorKind::Corrupt {
                    what: "pcap file header",
                    detail: format!("link type reserved field not zero (0x{network:08x})"),
                },
                20,
            ));
        }
        let link_type = LinkType(network & 0xffff);
        self.snaplen = header.snaplen;
        self.note_link_type(link_type);
        self.layout = Layout::Pcap(PcapLayout {
            big_endian: header.is_bigendian(),
            nanos: header.is_nanosecond_precision(),
            modified: header.is_modified_format(),
            link_type,
        });
        self.buf.consume(24);
        Ok(())
    }

    fn advance_pcap(&mut self, layout: PcapLayout) -> Result<bool, SourceError> {
        let header_len = if layout.modified { 24 } else { 16 };
        loop {
            let available = self.buf.available();
            let parsed: ParseResult<'_, _> = if layout.modified {
                parse_pcap_frame_modified(available)
            } else if layout.big_endian {
                parse_pcap_frame_be(available)
            } else {
                parse_pcap_frame(available)
            };
            match parsed {
                Ok((rest, block)) => {
                    // The length is checked here too: a whole oversized record may already
                    // sit in the window.
                    if block.caplen > MAX_PCAP_RECORD {
                        let offset = self.buf.offset();
                        return Err(self.error(
                            SourceErrorKind::RecordTooLarge {
                                len: u64::from(block.caplen),
                                max: u64::from(MAX_PCAP_RECORD),
                            },
                            offset,
                        ));
                    }
                    let record_len = available.len() - rest.len();
                    let (frac, limit) = if layout.nanos {
                        (i64::from(block.ts_usec), 1_000_000_000)
                    } else {
                        (i64::from(block.ts_usec) * 1_000, 1_000_000)
                    };
                    self.current = Some(Current {
                        ts_ns: i64::from(block.ts_sec) * 1_000_000_000 + frac,
                        // A fraction of a second past one second is no time at all
                        // (tcpdump prints "invalid us"): the packet's time is unknown.
                        has_ts: block.ts_usec < limit,
                        link_type: layout.link_type,
                        pos: self.buf.position() + header_len,
                        len: block.data.len(),
                        orig_len: block.origlen,
                        interface: 0,
                    });
                    self.buf.consume(record_len);
                    self.records += 1;
                    return Ok(true);
                }
                Err(nom::Err::Incomplete(needed)) => {
                    let have = available.len();
                    let more = match needed {
                        nom::Needed::Size(n) => n.get(),
                        nom::Needed::Unknown => 1,
                    };
                    let offset = self.buf.offset();
                    if have >= header_len {
                        let caplen = (have + more - header_len) as u64;
                        if caplen > u64::from(MAX_PCAP_RECORD) {
                            return Err(self.error(
                                SourceErrorKind::RecordTooLarge {
                                    len: caplen,
                                    max: u64::from(MAX_PCAP_RECORD),
                                },
                                offset,
                            ));
                        }
                    }
                    let want = have + more;
                    let got = self
                        .buf
                        .fill_to(want)
                        .map_err(|e| self.io_error(e, offset))?;
                    if got < want {
                        if got == 0 {
                            return Ok(false);
                        }
                        let what = if got < header_len {
                            "record header"
                        } else {
                            "packet data"
                        };
                        let needed = if got < header_len {
                            header_len
                        } else {
                            want.max(header_len)
                        };
                        return Err(self.error(
                            SourceErrorKind::Truncated {
                                what,
                                needed: needed as u64,
                                available: got as u64,
                            },
                            offset,
                        ));
                    }
                }
                Err(e) => {
                    let offset = self.buf.offset();
                    return Err(self.error(
                        SourceErrorKind::Corrupt {
                            what: "pcap record",
                            detail: format!("{e:?}"),
                        },
                        offset,
                    ));
                }
            }
        }
    }

    /// Read pcapng blocks until one is a packet (now current): Ok(false) at the end.
    fn read_pcapng_block(&mut self) -> Result<bool, SourceError> {
        loop {
            match self.read_one_block()? {
                Some(true) => return Ok(true),
                Some(false) => {}
                None => return Ok(false),
            }
        }
    }

    /// Read one pcapng block: Some(true) when it was a packet (now current), Some(false) for
    /// any other block (state updated), None at the end of the stream.
    fn read_one_block(&mut self) -> Result<Option<bool>, SourceError> {
        let offset = self.buf.offset();
        let have = self.buf.fill_to(12).map_err(|e| self.io_error(e, offset))?;
        if have == 0 {
            return Ok(None);
        }
        let head = self.buf.available();
        if have < 12 {
            return Err(self.error(
                SourceErrorKind::Truncated {
                    what: "block header",
                    needed: 12,
                    available: have as u64,
                },
                offset,
            ));
        }
        let block_type = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let big_endian = if block_type == SHB_TYPE {
            match [head[8], head[9], head[10], head[11]] {
                [0x4d, 0x3c, 0x2b, 0x1a] => false,
                [0x1a, 0x2b, 0x3c, 0x4d] => true,
                bom => {
                    return Err(self.error(
                        SourceErrorKind::Corrupt {
                            what: "section header block",
                            detail: format!("byte-order magic {bom:02x?}"),
                        },
                        offset,
                    ));
                }
            }
        } else {
            match &self.layout {
                Layout::Pcapng(state) => state.big_endian,
                Layout::Pcap(_) => unreachable!("pcapng block in a pcap stream"),
            }
        };
        let len_bytes = [head[4], head[5], head[6], head[7]];
        let block_len = if big_endian {
            u32::from_be_bytes(len_bytes)
        } else {
            u32::from_le_bytes(len_bytes)
        };
        self.check_block_len(block_type, block_len, offset)?;
        let want = block_len as usize;
        let got = self
            .buf
            .fill_to(want)
            .map_err(|e| self.io_error(e, offset))?;
        if got < want {
            return Err(self.error(
                SourceErrorKind::Truncated {
                    what: "block",
                    needed: want as u64,
                    available: got as u64,
                },
                offset,
            ));
        }
        let pos = self.buf.position();
        self.read_block(block_type, big_endian, pos, want, offset)
            .map(Some)
    }

    fn check_block_len(&self, block_type: u32, len: u32, offset: u64) -> Result<(), SourceError> {
        let corrupt = |detail: String| {
            self.error(
                SourceErrorKind::Corrupt {
                    what: "pcapng block",
                    detail,
                },
                offset,
            )
        };
        if block_type == SHB_TYPE && !(28..=MAX_SHB).contains(&len) {
            return Err(corrupt(format!(
                "section header block has invalid length {len} (must be 28 to {MAX_SHB})"
            )));
        }
        if len < 12 {
            return Err(corrupt(format!("block length {len} < 12")));
        }
        if !len.is_multiple_of(4) {
            return Err(corrupt(format!(
                "block length {len} is not a multiple of 4"
            )));
        }
        if len > MAX_PCAPNG_BLOCK {
            return Err(self.error(
                SourceErrorKind::RecordTooLarge {
                    len: u64::from(len),
                    max: u64::from(MAX_PCAPNG_BLOCK),
                },
                offset,
            ));
        }
        Ok(())
    }

    /// Interpret the complete block at `pos..pos+len` of the window.
    fn read_block(
        &mut self,
        block_type: u32,
        big_endian: bool,
        pos: usize,
        len: usize,
        offset: u64,
    ) -> Result<bool, SourceError> {
        let bytes = self.buf.window(pos, len);
        let parsed = if block_type == SHB_TYPE {
            parse_sectionheaderblock(bytes).map(|(rest, shb)| (rest, Block::SectionHeader(shb)))
        } else if big_endian {
            parse_block_be(bytes)
        } else {
            parse_block_le(bytes)
        };
        let block = match parsed {
            Ok((_, block)) => block,
            Err(e) => {
                let detail = match e {
                    nom::Err::Incomplete(_) => "block content overruns its length".to_string(),
                    nom::Err::Error(e) | nom::Err::Failure(e) => format!("{e}"),
                };
                let what = if block_type == SHB_TYPE {
                    "section header block"
                } else {
                    "pcapng block"
                };
                return Err(self.error(SourceErrorKind::Corrupt { what, detail }, offset));
            }
        };
        let Layout::Pcapng(state) = &mut self.layout else {
            unreachable!("pcapng block in a pcap stream")
        };
        let base = bytes.as_ptr() as usize;
        let mut new_link_type = None;
        let packet = match block {
            Block::SectionHeader(shb) => {
                let (major, minor) = (shb.major_version, shb.minor_version);
                if !(major == 1 && (minor == 0 || minor == 2)) {
                    return Err(self.error(
                        SourceErrorKind::UnsupportedVersion {
                            format: "pcapng",
                            major,
                            minor,
                        },
                        offset,
                    ));
                }
                state.big_endian = big_endian;
                state.interfaces.clear();
                None
            }
            Block::InterfaceDescription(idb) => match interface_of(&idb) {
                Ok(interface) => {
                    state.interfaces.push(interface);
                    new_link_type = Some((interface.link_type, idb.snaplen));
                    None
                }
                Err(kind) => return Err(self.error(kind, offset)),
            },
            Block::EnhancedPacket(epb) => {
                let Some(interface) = state.interfaces.get(epb.if_id as usize).copied() else {
                    let detail = format!(
                        "packet block for interface {} but {} interfaces described",
                        epb.if_id,
                        state.interfaces.len()
                    );
                    return Err(self.error(
                        SourceErrorKind::Corrupt {
                            what: "enhanced packet block",
                            detail,
                        },
                        offset,
                    ));
                };
                let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let ts = units_to_ns(units, interface.units_per_sec, interface.offset_s);
                let ts_ns = ts.unwrap_or(state.last_ts_ns);
                state.last_ts_ns = ts_ns;
                let caplen = (epb.caplen as usize).min(epb.data.len());
                Some(Current {
                    ts_ns,
                    has_ts: ts.is_some(),
                    link_type: interface.link_type,
                    pos: pos + (epb.data.as_ptr() as usize - base),
                    len: caplen,
                    orig_len: epb.origlen,
                    interface: epb.if_id,
                })
            }
            Block::SimplePacket(spb) => {
                let Some(interface) = state.interfaces.first().copied() else {
                    return Err(self.error(
                        SourceErrorKind::Corrupt {
                            what: "simple packet block",
                            detail: "no interface described before it".to_string(),
                        },
                        offset,
                    ));
                };
                let data = spb.data;
                let len = (spb.origlen as usize).min(data.len());
                Some(Current {
                    ts_ns: state.last_ts_ns,
                    has_ts: false,
                    link_type: interface.link_type,
                    pos: pos + (data.as_ptr() as usize - base),
                    len,
                    orig_len: spb.origlen,
                    interface: 0,
                })
            }
            Block::Unknown(unknown) if unknown.block_type == OBSOLETE_PACKET_BLOCK => {
                let body = unknown.data;
                let body_pos = pos + (body.as_ptr() as usize - base);
                match obsolete_packet(body, big_endian, &state.interfaces) {
                    Ok((mut current, units)) => {
                        let interface = state.interfaces[current.interface as usize];
                        let ts = units_to_ns(units, interface.units_per_sec, interface.offset_s);
                        current.ts_ns = ts.unwrap_or(state.last_ts_ns);
                        current.has_ts = ts.is_some();
                        current.pos += body_pos;
                        state.last_ts_ns = current.ts_ns;
                        Some(current)
                    }
                    Err(detail) => {
                        return Err(self.error(
                            SourceErrorKind::Corrupt {
                                what: "packet block",
                                detail,
                            },
                            offset,
                        ));
                    }
                }
            }
            _ => None,
        };
        if let Some((link_type, snaplen)) = new_link_type {
            self.note_link_type(link_type);
            self.snaplen = self.snaplen.max(snaplen);
        }
        self.buf.consume(len);
        match packet {
            Some(current) => {
                self.current = Some(current);
                self.records += 1;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// A pcapng with no interface and no packets is an empty capture (Wireshark reads it so;
    /// libpcap refuses it); a packet before any interface is damage, reported where it is.
    fn advance_pcapng(&mut self) -> Result<bool, SourceError> {
        self.read_pcapng_block()
    }
}

/// Timestamp units to nanoseconds since the epoch, exactly for the usual resolutions and with
/// 128-bit arithmetic for the rest. None when the time lies beyond what 64-bit nanoseconds
/// hold (about the years 1678 to 2262): such a stamp is garbage, not a date.
#[inline]
fn units_to_ns(units: u64, units_per_sec: u64, offset_s: i64) -> Option<i64> {
    let ns: i128 = match units_per_sec {
        1_000_000_000 => i128::from(units),
        1_000_000 => i128::from(units) * 1_000,
        _ => i128::from(units) * 1_000_000_000 / i128::from(units_per_sec.max(1)),
    };
    i64::try_from(ns + i128::from(offset_s) * 1_000_000_000).ok()
}

/// Validate an interface's options as libpcap does and extract what timestamps need.
fn interface_of(idb: &InterfaceDescriptionBlock<'_>) -> Result<Interface, SourceErrorKind> {
    let corrupt = |detail: String| SourceErrorKind::Corrupt {
        what: "interface description block",
        detail,
    };
    let mut tsresol = None;
    let mut tsoffset = None;
    for option in &idb.options {
        match option.code.0 {
            0 if option.len != 0 => {
                return Err(corrupt(format!(
                    "opt_endofopt option with length {} != 0",
                    option.len
                )));
            }
            9 => {
                if option.len != 1 {
                    return Err(corrupt(format!(
                        "if_tsresol option with length {} != 1",
                        option.len
                    )));
                }
                if tsresol.is_some() {
                    return Err(corrupt("more than one if_tsresol option".to_string()));
                }
                tsresol = option.value().first().copied();
            }
            14 => {
                if option.len != 8 {
                    return Err(corrupt(format!(
                        "if_tsoffset option with length {} != 8",
                        option.len
                    )));
                }
                if tsoffset.is_some() {
                    return Err(corrupt("more than one if_tsoffset option".to_string()));
                }
                tsoffset = Some(idb.if_tsoffset);
            }
            _ => {}
        }
    }
    let resol = tsresol.unwrap_or(6);
    // The top bit picks base 2 over base 10; the unit must fit in 64 bits.
    let (base, exp) = if resol & 0x80 == 0 {
        (10u64, u32::from(resol))
    } else {
        (2u64, u32::from(resol & 0x7f))
    };
    let units_per_sec = base
        .checked_pow(exp)
        .ok_or_else(|| corrupt(format!("if_tsresol resolution {base}^-{exp} is too high")))?;
    Ok(Interface {
        link_type: LinkType(u32::from(idb.linktype.0 as u16)),
        units_per_sec,
        offset_s: tsoffset.unwrap_or(0),
    })
}

/// The obsolete packet block (type 2), which pcap-parser leaves as an unknown block:
/// interface (u16), drops (u16), timestamp high and low, captured and original length, data.
/// Returns the packet with `pos` relative to the body, and the raw timestamp units.
fn obsolete_packet(
    body: &[u8],
    big_endian: bool,
    interfaces: &[Interface],
) -> Result<(Current, u64), String> {
    if body.len() < 20 {
        return Err(format!(
            "obsolete packet block body of {} bytes",
            body.len()
        ));
    }
    let u16_at = |i: usize| {
        let b = [body[i], body[i + 1]];
        if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |i: usize| {
        let b = [body[i], body[i + 1], body[i + 2], body[i + 3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let interface = u16_at(0);
    let Some(described) = interfaces.get(usize::from(interface)) else {
        return Err(format!(
            "packet block for interface {interface} but {} interfaces described",
            interfaces.len()
        ));
    };
    let units = (u64::from(u32_at(4)) << 32) | u64::from(u32_at(8));
    let caplen = u32_at(12) as usize;
    let orig_len = u32_at(16);
    if caplen > body.len() - 20 {
        return Err(format!(
            "captured length {caplen} exceeds the block ({} bytes of data)",
            body.len() - 20
        ));
    }
    Ok((
        Current {
            ts_ns: 0,
            has_ts: true,
            link_type: described.link_type,
            pos: 20,
            len: caplen,
            orig_len,
            interface: u32::from(interface),
        },
        units,
    ))
}

impl Source for CaptureReader<'_> {
    fn advance(&mut self) -> Result<bool, SourceError> {
        if self.finished {
            return Ok(false);
        }
        self.current = None;
        let result = match &self.layout {
            Layout::Pcap(layout) => {
                let layout = *layout;
                self.advance_pcap(layout)
            }
            Layout::Pcapng(_) => self.advance_pcapng(),
        };
        if !matches!(result, Ok(true)) {
            self.finished = true;
        }
        result
    }

    #[inline]
    fn packet(&self) -> Option<Packet<'_>> {
        self.current.map(|c| Packet {
            ts_ns: c.ts_ns,
            link_type: c.link_type,
            data: self.buf.window(c.pos, c.len),
            orig_len: c.orig_len,
            interface: c.interface,
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::capture::{PcapWriter, PcapngWriter, Precision};

    fn reader(bytes: Vec<u8>, capacity: usize) -> Result<CaptureReader<'static>, SourceError> {
        let buf = ReadBuffer::new(Box::new(std::io::Cursor::new(bytes)), capacity);
        CaptureReader::open("t".into(), buf, Compression::None)
    }

    /// (time, captured length, original length, interface, link type, has time) of each packet,
    /// and the error that ended the capture, if any.
    type Seen = (i64, usize, u32, u32, u32, bool);

    fn drain(r: &mut CaptureReader<'_>) -> (Vec<Seen>, Option<SourceError>) {
        let mut seen = Vec::new();
        loop {
            match r.advance() {
                Ok(true) => {
                    let has_ts = r.packet_has_timestamp();
                    let p = r.packet().unwrap();
                    seen.push((
                        p.ts_ns,
                        p.data.len(),
                        p.orig_len,
                        p.interface,
                        p.link_type.0,
                        has_ts,
                    ));
                }
                Ok(false) => return (seen, None),
                Err(e) => return (seen, Some(e)),
            }
        }
    }

    fn pcap(precision: Precision, big_endian: bool, records: &[(i64, usize, u32)]) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new(), 1, 65535, precision, big_endian).unwrap();
        for &(ts, len, orig) in records {
            w.write(ts, &vec![0xab; len], orig).unwrap();
        }
        w.into_inner()
    }

    #[test]
    fn pcap_in_both_precisions_and_byte_orders() {
        let records = [
            (1_700_000_000_123_456_789, 60, 60),
            (1_700_000_001_000_000_001, 100, 1514),
        ];
        for big_endian in [false, true] {
            let mut r = reader(pcap(Precision::Nano, big_endian, &records), 4096).unwrap();
            let (seen, err) = drain(&mut r);
            assert!(err.is_none());
            assert_eq!(seen[0].0, 1_700_000_000_123_456_789);
            assert_eq!(seen[1], (1_700_000_001_000_000_001, 100, 1514, 0, 1, true));
            let mut r = reader(pcap(Precision::Micro, big_endian, &records), 4096).unwrap();
            let (seen, _) = drain(&mut r);
            assert_eq!(
                seen[0].0, 1_700_000_000_123_456_000,
                "µs keeps its microseconds"
            );
            assert_eq!(r.snaplen(), 65535);
            assert_eq!(r.format(), CaptureFormat::Pcap);
        }
    }

    #[test]
    fn records_larger_than_the_window_grow_it() {
        let bytes = pcap(
            Precision::Micro,
            false,
            &[(0, 100_000, 100_000), (1_000, 10, 10)],
        );
        let mut r = reader(bytes, 64).unwrap();
        let (seen, err) = drain(&mut r);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), [100_000, 10]);
    }

    #[test]
    fn an_impossible_record_length_is_an_error_not_an_allocation() {
        let mut bytes = pcap(Precision::Micro, false, &[(0, 10, 10)]);
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&0xf000_0000u32.to_le_bytes());
        bytes.extend_from_slice(&0xf000_0000u32.to_le_bytes());
        let mut r = reader(bytes, 4096).unwrap();
        let (seen, err) = drain(&mut r);
        assert_eq!(seen.len(), 1);
        let err = err.unwrap();
        assert_eq!(err.kind.code(), "record_too_large");
        assert_eq!((err.offset, err.record), (24 + 16 + 10, 2));
        assert!(!r.advance().unwrap(), "a failed source stays finished");
    }

    /// Found by the pcap_reader fuzz target: a 387,584-byte record that fit in the window
    /// whole was delivered instead of refused.
    #[test]
    fn an_oversized_record_already_in_the_window_is_refused() {
        let bytes = pcap(
            Precision::Micro,
            false,
            &[(0, 10, 10), (1, 300_000, 300_000)],
        );
        let mut r = reader(bytes, 1 << 20).unwrap();
        let (seen, err) = drain(&mut r);
        assert_eq!(seen.len(), 1);
        assert_eq!(err.unwrap().kind.code(), "record_too_large");
    }

    #[test]
    fn a_record_cut_short_names_its_offset() {
        let bytes = pcap(Precision::Micro, false, &[(0, 10, 10), (5, 50, 50)]);
        let cut = bytes.len() - 20;
        let mut r = reader(bytes[..cut].to_vec(), 4096).unwrap();
        let (seen, err) = drain(&mut r);
        assert_eq!(seen.len(), 1);
        let err = err.unwrap();
        assert_eq!(err.kind.code(), "truncated");
        assert_eq!((err.offset, err.record), (50, 2));
    }

    #[test]
    fn invalid_microseconds_are_no_time() {
        let mut bytes = pcap(Precision::Micro, false, &[(0, 10, 10)]);
        bytes[24 + 4..24 + 8].copy_from_slice(&1_000_000u32.to_le_bytes());
        let mut r = reader(bytes, 4096).unwrap();
        let (seen, _) = drain(&mut r);
        assert!(!seen[0].5);
    }

    #[test]
    fn modified_pcap_records_have_longer_headers() {
        let mut bytes = pcap(Precision::Micro, false, &[]);
        bytes[..4].copy_from_slice(&0xa1b2_cd34u32.to_le_bytes());
        for (ts, len) in [(7u32, 20usize), (8, 30)] {
            bytes.extend_from_slice(&ts.to_le_bytes());
            bytes.extend_from_slice(&0u32.to_le_bytes());
            bytes.extend_from_slice(&(len as u32).to_le_bytes());
            bytes.extend_from_slice(&(len as u32).to_le_bytes());
            bytes.extend_from_slice(&[0u8; 8]);
            bytes.extend_from_slice(&vec![1u8; len]);
        }
        let mut r = reader(bytes, 4096).unwrap();
        let (seen, err) = drain(&mut r);
        assert!(err.is_none());
        assert_eq!(
            seen.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
            [(7_000_000_000, 20), (8_000_000_000, 30)]
        );
    }

    #[test]
    fn unsupported_versions_and_reserved_link_bits_are_refused() {
        let mut bytes = pcap(Precision::Micro, false, &[]);
        bytes[4..6].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(
            reader(bytes, 64).err().unwrap().kind.code(),
            "unsupported_version"
        );
        let mut bytes = pcap(Precision::Micro, false, &[]);
        bytes[20..24].copy_from_slice(&0x0030_0001u32.to_le_bytes());
        assert_eq!(reader(bytes, 64).err().unwrap().kind.code(), "corrupt");
    }

    /// A pcapng block: type, total length, body (padded), total length.
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = (12 + body.len()) as u32;
        let mut b = kind.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&body);
        b.extend_from_slice(&len.to_le_bytes());
        b
    }

    fn idb(link_type: u16, options: &[u8]) -> Vec<u8> {
        let mut body = link_type.to_le_bytes().to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&65535u32.to_le_bytes());
        body.extend_from_slice(options);
        block(1, &body)
    }

    fn shb() -> Vec<u8> {
        PcapngWriter::new(Vec::new()).unwrap().into_inner()
    }

    #[test]
    fn pcapng_interfaces_resolutions_offsets_and_packet_kinds() {
        let mut bytes = shb();
        // Interface 0: Ethernet in µs. Interface 1: raw IP in 2^-10 s with a 100 s offset.
        bytes.extend(idb(1, &[]));
        let mut opts = vec![9, 0, 1, 0, 0x8a, 0, 0, 0, 14, 0, 8, 0];
        opts.extend_from_slice(&100i64.to_le_bytes());
        opts.extend_from_slice(&[0, 0, 0, 0]);
        bytes.extend(idb(101, &opts));
        let epb = |interface: u32, units: u64, data: &[u8]| {
            let mut body = interface.to_le_bytes().to_vec();
            body.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
            body.extend_from_slice(&(units as u32).to_le_bytes());
            body.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(&(data.len() as u32 + 4).to_le_bytes());
            body.extend_from_slice(data);
            block(6, &body)
        };
        bytes.extend(epb(0, 1_500_000, &[1, 2, 3]));
        bytes.extend(epb(1, 1024 * 5 + 512, &[4; 9]));
        // A simple packet block (no time), an unknown block, an obsolete packet block.
        let mut spb = 7u32.to_le_bytes().to_vec();
        spb.extend_from_slice(&[5; 7]);
        bytes.extend(block(3, &spb));
        bytes.extend(block(0x0bad_0001, &[9; 16]));
        let mut opb = 1u16.to_le_bytes().to_vec();
        opb.extend_from_slice(&0u16.to_le_bytes());
        opb.extend_from_slice(&0u32.to_le_bytes());
        opb.extend_from_slice(&2048u32.to_le_bytes());
        opb.extend_from_slice(&2u32.to_le_bytes());
        opb.extend_from_slice(&2u32.to_le_bytes());
        opb.extend_from_slice(&[6, 6]);
        bytes.extend(block(2, &opb));
        let mut r = reader(bytes, 64).unwrap();
        let (seen, err) = drain(&mut r);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            seen,
            [
                (1_500_000_000, 3, 7, 0, 1, true),
                (105_500_000_000, 9, 13, 1, 101, true),
                (105_500_000_000, 7, 7, 0, 1, false),
                (102_000_000_000, 2, 2, 1, 101, true),
            ]
        );
        assert_eq!(r.link_types(), [LinkType::ETHERNET, LinkType::RAW]);
    }

    #[test]
    fn a_new_section_resets_interfaces_and_may_switch_byte_order() {
        let mut first = PcapngWriter::new(Vec::new()).unwrap();
        first.add_interface(1, 65535, 9).unwrap();
        first.write(0, 42, &[1; 5], 5).unwrap();
        let mut bytes = first.into_inner();
        // A big-endian section with one interface and one packet.
        let be = |v: u32| v.to_be_bytes();
        let mut section = vec![0x0a, 0x0d, 0x0d, 0x0a];
        section.extend_from_slice(&be(28));
        section.extend_from_slice(&[0x1a, 0x2b, 0x3c, 0x4d, 0, 1, 0, 0]);
        section.extend_from_slice(&(-1i64).to_be_bytes());
        section.extend_from_slice(&be(28));
        section.extend_from_slice(&be(1));
        section.extend_from_slice(&be(20));
        section.extend_from_slice(&113u16.to_be_bytes());
        section.extend_from_slice(&[0, 0]);
        section.extend_from_slice(&be(0));
        section.extend_from_slice(&be(20));
        section.extend_from_slice(&be(6));
        section.extend_from_slice(&be(36));
        for v in [0u32, 0, 3_000_000, 4, 4] {
            section.extend_from_slice(&be(v));
        }
        section.extend_from_slice(&[7; 4]);
        section.extend_from_slice(&be(36));
        bytes.extend(section);
        let mut r = reader(bytes, 4096).unwrap();
        let (seen, err) = drain(&mut r);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            seen,
            [(42, 5, 5, 0, 1, true), (3_000_000_000, 4, 4, 0, 113, true)]
        );
    }

    #[test]
    fn a_packet_for_an_undescribed_interface_is_damage() {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        w.add_interface(1, 65535, 6).unwrap();
        w.write(0, 1_000, &[1; 4], 4).unwrap();
        let mut bytes = w.into_inner();
        let good = bytes.len() as u64;
        let mut bad = 6u32.to_le_bytes().to_vec();
        bad.extend_from_slice(&32u32.to_le_bytes());
        bad.extend_from_slice(&5u32.to_le_bytes());
        bad.extend_from_slice(&[0; 16]);
        bad.extend_from_slice(&32u32.to_le_bytes());
        bytes.extend(bad);
        let mut r = reader(bytes, 4096).unwrap();
        let (seen, err) = drain(&mut r);
        assert_eq!(seen.len(), 1);
        let err = err.unwrap();
        assert_eq!(
            (err.kind.code(), err.offset, err.record),
            ("corrupt", good, 2)
        );
    }

    #[test]
    fn sniffing_by_magic() {
        assert_eq!(
            sniff(&[0xd4, 0xc3, 0xb2, 0xa1]),
            Sniffed::Capture(CaptureFormat::Pcap)
        );
        assert_eq!(
            sniff(&[0x0a, 0x0d, 0x0d, 0x0a]),
            Sniffed::Capture(CaptureFormat::Pcapng)
        );
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Sniffed::Gzip);
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(sniff(&tar), Sniffed::Tar);
        assert_eq!(sniff(b"GET / HTTP/1.1"), Sniffed::Unknown);
    }
}
