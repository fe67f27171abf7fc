//! The catalog of a capture set: per-capture metadata as `map` prints it and `replay` reads it
//! back (GopherCap's map document). Counts follow capinfos: the first and last time are the
//! earliest and latest packet times, "bytes original" is its data size.

use crate::source::{
    CaptureFormat, CaptureReader, Compression, LinkType, Packet, Source, SourceError,
};
use crate::time::format_ts;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkTypeInfo {
    pub id: u32,
    pub name: String,
}

impl From<LinkType> for LinkTypeInfo {
    fn from(l: LinkType) -> Self {
        LinkTypeInfo {
            id: l.0,
            name: l.name(),
        }
    }
}

/// Where and why a capture stopped early.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DamageInfo {
    pub kind: String,
    pub message: String,
    /// Byte offset of the bad record in the (decompressed) capture stream.
    pub offset: u64,
    /// 1-based number of the record that could not be read.
    pub record: u64,
}

impl From<&SourceError> for DamageInfo {
    fn from(e: &SourceError) -> Self {
        DamageInfo {
            kind: e.kind.code().to_string(),
            message: e.kind.to_string(),
            offset: e.offset,
            record: e.record,
        }
    }
}

/// One capture's metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaptureSummary {
    /// A file path, or `archive!member` for a tar member.
    pub path: String,
    /// Size on disk (of the member, inside an archive).
    pub size: u64,
    /// Modification time, to know when `--update` may reuse this entry.
    pub mtime_ns: i64,
    pub format: Option<CaptureFormat>,
    pub compression: Option<Compression>,
    pub link_types: Vec<LinkTypeInfo>,
    pub snaplen: Option<u32>,
    pub first_ts: Option<String>,
    pub first_ts_ns: Option<i64>,
    pub last_ts: Option<String>,
    pub last_ts_ns: Option<i64>,
    pub duration_s: Option<f64>,
    pub packets: u64,
    pub bytes_captured: u64,
    pub bytes_original: u64,
    pub max_packet_size: u32,
    /// Packets per second; null when the duration is zero.
    pub pps: Option<f64>,
    /// Bits per second of original bytes; null when the duration is zero.
    pub bps: Option<f64>,
    /// Packets cut by the snapshot length.
    pub truncated_packets: u64,
    /// Packets whose time is earlier than the packet before them.
    pub out_of_order: u64,
    /// Seconds from the set's first packet to this capture's first packet.
    pub delay_s: Option<f64>,
    pub error: Option<DamageInfo>,
}

impl CaptureSummary {
    /// An entry for an input that could not be read at all.
    pub fn unreadable(path: String, size: u64, mtime_ns: i64, error: &SourceError) -> Self {
        let mut s = Counts::default().finish(path, size, mtime_ns);
        s.error = Some(error.into());
        s
    }
}

/// One capture as a flat row (CSV): the link types joined by `;`, the error's parts apart.
#[derive(Debug, Default, Serialize)]
pub struct CaptureRow<'a> {
    pub path: &'a str,
    pub size: u64,
    pub format: Option<CaptureFormat>,
    pub compression: Option<Compression>,
    pub link_types: String,
    pub snaplen: Option<u32>,
    pub first_ts: Option<&'a str>,
    pub first_ts_ns: Option<i64>,
    pub last_ts: Option<&'a str>,
    pub last_ts_ns: Option<i64>,
    pub duration_s: Option<f64>,
    pub packets: u64,
    pub bytes_captured: u64,
    pub bytes_original: u64,
    pub max_packet_size: u32,
    pub pps: Option<f64>,
    pub bps: Option<f64>,
    pub truncated_packets: u64,
    pub out_of_order: u64,
    pub delay_s: Option<f64>,
    pub error_kind: Option<&'a str>,
    pub error_message: Option<&'a str>,
    pub error_offset: Option<u64>,
    pub error_record: Option<u64>,
    pub mtime_ns: i64,
}

impl CaptureSummary {
    /// The names of the link types, in order, joined by `;`.
    pub fn link_names(&self) -> String {
        self.link_types
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(";")
    }

    pub fn row(&self) -> CaptureRow<'_> {
        let error = self.error.as_ref();
        CaptureRow {
            path: &self.path,
            size: self.size,
            format: self.format,
            compression: self.compression,
            link_types: self.link_names(),
            snaplen: self.snaplen,
            first_ts: self.first_ts.as_deref(),
            first_ts_ns: self.first_ts_ns,
            last_ts: self.last_ts.as_deref(),
            last_ts_ns: self.last_ts_ns,
            duration_s: self.duration_s,
            packets: self.packets,
            bytes_captured: self.bytes_captured,
            bytes_original: self.bytes_original,
            max_packet_size: self.max_packet_size,
            pps: self.pps,
            bps: self.bps,
            truncated_packets: self.truncated_packets,
            out_of_order: self.out_of_order,
            delay_s: self.delay_s,
            error_kind: error.map(|e| e.kind.as_str()),
            error_message: error.map(|e| e.message.as_str()),
            error_offset: error.map(|e| e.offset),
            error_record: error.map(|e| e.record),
            mtime_ns: self.mtime_ns,
        }
    }
}

/// Running counts over one capture's packets: the per-packet work of `map`, kept minimal.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub packets: u64,
    pub bytes_captured: u64,
    pub bytes_original: u64,
    pub max_packet_size: u32,
    pub truncated_packets: u64,
    pub out_of_order: u64,
    first_ts_ns: Option<i64>,
    last_ts_ns: Option<i64>,
    previous_ts_ns: Option<i64>,
}

impl Counts {
    /// Count one packet; `has_ts` is false for packets that carry no time of their own.
    #[inline]
    pub fn observe(&mut self, packet: &Packet<'_>, has_ts: bool) {
        let caplen = packet.data.len() as u32;
        self.packets += 1;
        self.bytes_captured += u64::from(caplen);
        self.bytes_original += u64::from(packet.orig_len);
        self.max_packet_size = self.max_packet_size.max(caplen);
        self.truncated_packets += u64::from(caplen < packet.orig_len);
        if has_ts {
            let ts = packet.ts_ns;
            if let Some(prev) = self.previous_ts_ns {
                self.out_of_order += u64::from(ts < prev);
            }
            self.previous_ts_ns = Some(ts);
            self.first_ts_ns = Some(self.first_ts_ns.map_or(ts, |f| f.min(ts)));
            self.last_ts_ns = Some(self.last_ts_ns.map_or(ts, |l| l.max(ts)));
        }
    }

    /// The summary of what was counted, without format details (see [`summarize`]).
    pub fn finish(&self, path: String, size: u64, mtime_ns: i64) -> CaptureSummary {
        let duration_ns = match (self.first_ts_ns, self.last_ts_ns) {
            (Some(f), Some(l)) => Some(l - f),
            _ => None,
        };
        let duration_s = duration_ns.map(|d| d as f64 / 1e9);
        let rate = |amount: f64| match duration_s {
            Some(d) if d > 0.0 => Some(amount / d),
            _ => None,
        };
        CaptureSummary {
            path,
            size,
            mtime_ns,
            format: None,
            compression: None,
            link_types: Vec::new(),
            snaplen: None,
            first_ts: self.first_ts_ns.map(format_ts),
            first_ts_ns: self.first_ts_ns,
            last_ts: self.last_ts_ns.map(format_ts),
            last_ts_ns: self.last_ts_ns,
            duration_s,
            packets: self.packets,
            bytes_captured: self.bytes_captured,
            bytes_original: self.bytes_original,
            max_packet_size: self.max_packet_size,
            pps: rate(self.packets as f64),
            bps: rate(self.bytes_original as f64 * 8.0),
            truncated_packets: self.truncated_packets,
            out_of_order: self.out_of_order,
            delay_s: None,
            error: None,
        }
    }
}

/// Read a whole capture and summarise the packets `keep` accepts. A damaged capture keeps the
/// counts up to the damage and records where it is.
pub fn summarize<F>(
    reader: &mut CaptureReader<'_>,
    path: String,
    size: u64,
    mtime_ns: i64,
    mut keep: F,
) -> CaptureSummary
where
    F: FnMut(&Packet<'_>) -> Result<bool, String>,
{
    let mut counts = Counts::default();
    let mut error = None;
    loop {
        match reader.advance() {
            Ok(true) => {
                let Some(packet) = reader.packet() else {
                    continue;
                };
                match keep(&packet) {
                    Ok(true) => counts.observe(&packet, reader.packet_has_timestamp()),
                    Ok(false) => {}
                    Err(detail) => {
                        error = Some(DamageInfo {
                            kind: "filter".to_string(),
                            message: detail,
                            offset: reader.offset(),
                            record: reader.records(),
                        });
                        break;
                    }
                }
            }
            Ok(false) => break,
            Err(e) => {
                error = Some(DamageInfo::from(&e));
                break;
            }
        }
    }
    let mut summary = counts.finish(path, size, mtime_ns);
    summary.format = Some(reader.format());
    summary.compression = Some(reader.compression());
    summary.link_types = reader.link_types().iter().map(|&l| l.into()).collect();
    summary.snaplen = Some(reader.snaplen());
    summary.error = error;
    summary
}

/// A file the catalog was built from, to tell later whether it changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputStamp {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
}

/// The whole document `map --dump-json` writes and `replay` reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub first_ts: Option<String>,
    pub first_ts_ns: Option<i64>,
    pub last_ts: Option<String>,
    pub last_ts_ns: Option<i64>,
    pub duration_s: Option<f64>,
    pub captures: Vec<CaptureSummary>,
    pub inputs: Vec<InputStamp>,
    /// In the document of one shard (`map --shard`) only: what `map --merge` needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
}

/// What a catalog adds up to, for a run's summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CatalogTotals {
    pub damaged: usize,
    pub packets: u64,
    pub bytes: u64,
}

impl Catalog {
    pub fn totals(&self) -> CatalogTotals {
        CatalogTotals {
            damaged: self.captures.iter().filter(|c| c.error.is_some()).count(),
            packets: self.captures.iter().map(|c| c.packets).sum(),
            bytes: self.captures.iter().map(|c| c.bytes_captured).sum(),
        }
    }

    /// Build the set-wide times and each capture's `delay_s` from the set's start.
    pub fn new(mut captures: Vec<CaptureSummary>, inputs: Vec<InputStamp>) -> Self {
        let first = captures.iter().filter_map(|c| c.first_ts_ns).min();
        let last = captures.iter().filter_map(|c| c.last_ts_ns).max();
        for c in &mut captures {
            c.delay_s = match (first, c.first_ts_ns) {
                (Some(set), Some(own)) => Some((own - set) as f64 / 1e9),
                _ => None,
            };
        }
        Catalog {
            first_ts: first.map(format_ts),
            first_ts_ns: first,
            last_ts: last.map(format_ts),
            last_ts_ns: last,
            duration_s: first.zip(last).map(|(f, l)| (l - f) as f64 / 1e9),
            captures,
            inputs,
            shard: None,
        }
    }
}

/// What a shard document adds to the map document: enough to merge it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// [`crate::shard::SHARD_FORMAT_VERSION`].
    pub version: u32,
    /// This shard, from 0.
    pub index: u32,
    /// How many shards the run was cut into.
    pub count: u32,
    /// How many inputs the whole run named (after folder walks), over all shards.
    pub inputs_total: u64,
    /// This shard's inputs in order: where each stands in the whole run and what it gave.
    pub inputs: Vec<ShardInput>,
}

/// One input of a shard: a file or a whole tarball.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInput {
    /// Its place (from 0) among the whole run's inputs.
    pub position: u64,
    pub path: String,
    /// How many entries of `captures` it gave (the members of a tarball; none for a file a
    /// folder walk passed over).
    pub captures: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ts_ns: i64, caplen: usize, orig_len: u32) -> Packet<'static> {
        Packet {
            ts_ns,
            link_type: LinkType::ETHERNET,
            data: &[0u8; 2000][..caplen],
            orig_len,
            interface: 0,
        }
    }

    #[test]
    fn counts_follow_capinfos_min_and_max_times() {
        let mut c = Counts::default();
        c.observe(&packet(2_000_000_000, 60, 60), true);
        c.observe(&packet(1_000_000_000, 100, 1500), true);
        c.observe(&packet(4_000_000_000, 1500, 1500), true);
        let s = c.finish("x".into(), 1, 0);
        assert_eq!(s.first_ts_ns, Some(1_000_000_000));
        assert_eq!(s.last_ts_ns, Some(4_000_000_000));
        assert_eq!(s.duration_s, Some(3.0));
        assert_eq!(s.packets, 3);
        assert_eq!(s.bytes_captured, 1660);
        assert_eq!(s.bytes_original, 3060);
        assert_eq!(s.max_packet_size, 1500);
        assert_eq!(s.truncated_packets, 1);
        assert_eq!(s.out_of_order, 1);
        assert_eq!(s.pps, Some(1.0));
        assert_eq!(s.bps, Some(3060.0 * 8.0 / 3.0));
    }

    #[test]
    fn zero_duration_has_no_rates() {
        let mut c = Counts::default();
        c.observe(&packet(5, 60, 60), true);
        let s = c.finish("x".into(), 1, 0);
        assert_eq!(s.duration_s, Some(0.0));
        assert_eq!(s.pps, None);
        assert_eq!(s.bps, None);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"pps\":null"), "{json}");
    }

    #[test]
    fn timestamps_print_with_nanoseconds() {
        assert_eq!(
            format_ts(1_362_692_526_869_344_123),
            "2013-03-07T21:42:06.869344123Z"
        );
        assert_eq!(format_ts(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn catalog_sets_delays_from_the_set_start() {
        let mut a = Counts::default();
        a.observe(&packet(10_000_000_000, 60, 60), true);
        let mut b = Counts::default();
        b.observe(&packet(12_500_000_000, 60, 60), true);
        let cat = Catalog::new(
            vec![a.finish("a".into(), 0, 0), b.finish("b".into(), 0, 0)],
            vec![],
        );
        assert_eq!(cat.captures[0].delay_s, Some(0.0));
        assert_eq!(cat.captures[1].delay_s, Some(2.5));
        assert_eq!(cat.duration_s, Some(2.5));
    }
}
