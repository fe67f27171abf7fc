//! Where packets come from: one [`Source`] trait over capture files (pcap, pcapng, gzip by
//! magic), tar members, stdin and live interfaces, plus the time-ordered merge of many sources.
//!
//! A source hands out packets borrowed from its own buffer: [`Source::advance`] moves to the next
//! packet and [`Source::packet`] lends it until the next call. That shape lets the merge hold one
//! packet per source without copying, and keeps the read path free of per-packet allocation.

pub mod adapt;
pub mod buffer;
pub mod capture;
mod error;
#[cfg(feature = "live")]
pub mod filter;
pub mod input;
#[cfg(feature = "live")]
pub mod live;
#[cfg(target_os = "linux")]
pub mod mapping;
pub mod merge;
pub mod tar;
pub mod threaded;

/// What libpcap counted on a live capture, widened past its 32-bit wrap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureCounts {
    pub received: u64,
    pub dropped: u64,
    pub interface_dropped: u64,
}

pub use capture::{CaptureFormat, CaptureReader, Compression};
pub use error::{SourceError, SourceErrorKind};
pub use input::{InputKind, OpenedInput, Selection};
pub use merge::MergedSource;

use std::fmt;

/// A pcap LINKTYPE_* value (the number stored in files, not libpcap's DLT_* where they differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    pub const RAW: LinkType = LinkType(101);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// The short name tcpdump and libpcap use (`pcap_datalink_val_to_name`), or `LINKTYPE_<n>`.
    pub fn name(self) -> String {
        let known = match self.0 {
            0 => "NULL",
            1 => "EN10MB",
            9 => "PPP",
            12 | 14 | 101 => "RAW",
            105 => "IEEE802_11",
            108 => "LOOP",
            113 => "LINUX_SLL",
            127 => "IEEE802_11_RADIO",
            228 => "IPV4",
            229 => "IPV6",
            239 => "NFLOG",
            249 => "NETLINK",
            276 => "LINUX_SLL2",
            _ => return format!("LINKTYPE_{}", self.0),
        };
        known.to_string()
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// One captured packet, borrowed from the source's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// Nanoseconds since the Unix epoch, exactly as the capture stores it (no rounding).
    pub ts_ns: i64,
    pub link_type: LinkType,
    /// The captured bytes (at most the snapshot length).
    pub data: &'a [u8],
    /// The length of the packet on the wire.
    pub orig_len: u32,
    /// The pcapng interface index (0 for pcap and live sources).
    pub interface: u32,
}

impl Packet<'_> {
    /// True when the capture kept fewer bytes than the packet had on the wire.
    #[inline]
    pub fn is_truncated(&self) -> bool {
        (self.data.len() as u64) < u64::from(self.orig_len)
    }
}

/// A stream of packets in capture order.
pub trait Source {
    /// Move to the next packet: `Ok(false)` at the end. After an error the source is finished;
    /// every packet before the fault was delivered.
    fn advance(&mut self) -> Result<bool, SourceError>;

    /// The packet the last successful `advance` moved to.
    fn packet(&self) -> Option<Packet<'_>>;

    /// How this source is named in messages: a path, `archive.tar.gz!member`, `-` or an interface.
    fn name(&self) -> &str;

    /// Advance and return the packet in one step.
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, SourceError> {
        if self.advance()? {
            Ok(self.packet())
        } else {
            Ok(None)
        }
    }
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn advance(&mut self) -> Result<bool, SourceError> {
        (**self).advance()
    }
    fn packet(&self) -> Option<Packet<'_>> {
        (**self).packet()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}
