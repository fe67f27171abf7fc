//! `gophercap flows`: NetScope's flow table, offline first — every packet through the one
//! pipeline (decode, flow table, TCP tracking), per-packet lines, and the table exported as
//! JSON or CSV at the end or streamed as flows expire.

#[cfg(feature = "live")]
use super::capture_input::open_live;
use super::capture_input::{LiveArgs, MetricsArgs, open_offline, serve_metrics, stop_on_signals};
use super::filter::check_filter;
use super::{GlobalArgs, LogFormat, Outcome, UsageError};
use crate::analysis::{Alert, AnomalyDetector, PortScanConfig, SynFloodConfig};
use crate::decode::{Decoded, TcpFlags, Transport, ip_protocol_name};
use crate::flow::{CommunityId, CommunityIdHasher, EndReason, Side, TableConfig};
use crate::output::csv::CsvRecords;
use crate::output::zeek::conn::{ConnFacts, ConnRecord};
use crate::output::zeek::{ZeekFormat, ZeekWriter};
use crate::output::{Flush, JsonArray, JsonLines};
use crate::pipeline::{FlowConsumer, PipelineConfig, TrackedFlow, run};
use crate::sink::capture::PcapFile;
use crate::sink::file;
use crate::source::{Packet, Source};
use crate::time::{Timestamp, format_ts};
use anyhow::Context;
use clap::Args;
use serde::Serialize;
use std::borrow::Cow;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// Captures, folders and tarballs, merged by time (`-` reads stdin).
    #[arg(value_name = "INPUT", required_unless_present = "interface")]
    pub inputs: Vec<PathBuf>,
    /// Capture live from this interface instead (Ctrl-C ends it).
    #[arg(short = 'i', long, value_name = "IFACE", conflicts_with = "inputs")]
    pub interface: Option<String>,
    /// Only packets that match this BPF expression.
    #[arg(short = 'f', long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Stop after this many packets.
    #[arg(short = 'c', long, value_name = "N")]
    pub count: Option<u64>,
    /// End flows idle this many seconds of packet time (0 keeps them to the end).
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    pub flow_timeout_s: f64,
    /// Keep at most this many flows; the least recently seen is evicted (0: unlimited, as in
    /// NetScope and the config file).
    #[arg(long, value_name = "N")]
    pub max_flows: Option<usize>,
    /// Write the flow table as one JSON array, each flow appended as it ends (`-`: stdout).
    #[arg(long, value_name = "PATH")]
    pub export_json: Option<PathBuf>,
    /// Write the flow table as CSV (NetScope's columns first), each flow as it ends (`-`:
    /// stdout).
    #[arg(long, value_name = "PATH")]
    pub export_csv: Option<PathBuf>,
    /// Stream each flow as one JSON line when it ends (idle, evicted, replaced or at the end;
    /// `-`: stdout).
    #[arg(long, value_name = "PATH")]
    pub expired_flows_jsonl: Option<PathBuf>,
    /// Write Zeek's conn.log here, each connection as it ends (`-`: stdout).
    #[arg(long, value_name = "PATH")]
    pub zeek_conn: Option<PathBuf>,
    /// The form of the Zeek logs: Zeek's TSV with its header, or its JSON lines.
    #[arg(long, value_enum, default_value_t = ZeekFormat::Tsv)]
    pub zeek_format: ZeekFormat,
    /// The seed of the Community IDs written (sites that compare logs agree on one).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub community_id_seed: u16,
    /// Detect SYN floods and port scans (NetScope's rules and defaults) and print alerts.
    #[arg(long, overrides_with = "no_anomalies")]
    pub anomalies: bool,
    /// Turn anomaly detection off (overrides a config file).
    #[arg(long, overrides_with = "anomalies")]
    pub no_anomalies: bool,
    /// SYN flood: window in seconds.
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub syn_flood_window_secs: f64,
    /// SYN flood: SYNs to one ip:port within the window.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub syn_threshold: usize,
    /// SYN flood: distinct sources among them.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub unique_src_threshold: usize,
    /// SYN flood: seconds before the same target alerts again.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub syn_flood_cooldown_secs: f64,
    /// No SYN-flood detection.
    #[arg(long)]
    pub no_syn_flood: bool,
    /// Port scan: window in seconds.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub port_scan_window_secs: f64,
    /// Port scan: distinct destination ports from one source within the window.
    #[arg(long, value_name = "N", default_value_t = 25)]
    pub unique_ports_threshold: usize,
    /// Port scan: distinct destination hosts from one source within the window.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub unique_hosts_threshold: usize,
    /// Port scan: seconds before the same source alerts again.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    pub port_scan_cooldown_secs: f64,
    /// No port-scan detection.
    #[arg(long)]
    pub no_port_scan: bool,
    /// Memory the SYN-flood and port-scan detectors may hold, in MiB; past it the least
    /// recently active services and sources are let go (and counted).
    #[arg(long, value_name = "MB", default_value_t = 64)]
    pub anomaly_memory_mb: usize,
    #[command(flatten)]
    pub live: LiveArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Also write each alert as a JSON line here (implies --anomalies).
    #[arg(long, value_name = "PATH")]
    pub alerts_jsonl: Option<PathBuf>,
    /// Write the packets that passed the filter into this pcap.
    #[arg(long, value_name = "PATH")]
    pub write_pcap: Option<PathBuf>,
    /// After each per-packet line, the first 256 bytes in hex and ASCII.
    #[arg(long, overrides_with = "no_hex_dump")]
    pub hex_dump: bool,
    /// No hex dump (overrides a config file).
    #[arg(long, overrides_with = "hex_dump")]
    pub no_hex_dump: bool,
    /// Print throughput every --stats-interval-ms (packet time offline, wall time live).
    #[arg(long, overrides_with = "no_stats")]
    pub stats: bool,
    /// No periodic stats (overrides a config file).
    #[arg(long, overrides_with = "stats")]
    pub no_stats: bool,
    /// The stats interval in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub stats_interval_ms: u64,
    /// With --stats, list the N flows that moved the most bytes in the interval.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top_flows: usize,
    /// Per-packet lines even when stdout is not a terminal (they are printed by default on a
    /// terminal; the global `-q/--quiet` stops them, as NetScope's `--quiet` does).
    #[arg(long)]
    pub packets: bool,
}

/// One flow as exported (JSON and CSV alike): NetScope's columns, then per-direction detail.
/// Borrowed from the flow where it can be: a flood writes millions of these.
#[derive(Debug, Default, Serialize)]
pub struct FlowRecord<'a> {
    pub protocol: Cow<'static, str>,
    pub endpoint_a_ip: Address,
    pub endpoint_a_port: u16,
    pub endpoint_b_ip: Address,
    pub endpoint_b_port: u16,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub duration_secs: f64,
    pub packets_a_to_b: u64,
    pub packets_b_to_a: u64,
    pub bytes_a_to_b: u64,
    pub bytes_b_to_a: u64,
    pub packets_total: u64,
    pub bytes_total: u64,
    pub avg_bps: Option<f64>,
    pub tcp_state: Option<&'static str>,
    pub client: Option<&'static str>,
    pub retransmissions: u64,
    pub out_of_order: u64,
    pub rtt_last_ms: Option<f64>,
    pub rtt_min_ms: Option<f64>,
    pub rtt_ewma_ms: Option<f64>,
    pub rtt_samples: u64,
    pub id: u64,
    pub vlan: u16,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    pub payload_bytes_a_to_b: u64,
    pub payload_bytes_b_to_a: u64,
    pub retransmissions_a_to_b: u64,
    pub retransmissions_b_to_a: u64,
    pub out_of_order_a_to_b: u64,
    pub out_of_order_b_to_a: u64,
    pub duplicate_acks_a_to_b: u64,
    pub duplicate_acks_b_to_a: u64,
    pub zero_windows_a_to_b: u64,
    pub zero_windows_b_to_a: u64,
    pub history: Option<&'a str>,
    pub end_reason: Option<&'static str>,
    /// Always set; an `Option` only so that the default record can name the CSV columns.
    pub community_id: Option<CommunityId>,
}

/// An IP address written as text; the unspecified IPv4 address by default (the record's
/// default only names the CSV columns).
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(transparent)]
pub struct Address(pub std::net::IpAddr);

impl Default for Address {
    fn default() -> Self {
        Address(std::net::Ipv4Addr::UNSPECIFIED.into())
    }
}

/// The protocol's name, or its number.
fn protocol_name(protocol: u8) -> Cow<'static, str> {
    ip_protocol_name(protocol).map_or_else(|| Cow::Owned(protocol.to_string()), Cow::Borrowed)
}

impl<'a> FlowRecord<'a> {
    pub fn of(flow: &'a TrackedFlow, reason: Option<EndReason>, ids: &CommunityIdHasher) -> Self {
        let [a, b] = flow.stats;
        let duration_ns = (flow.last_ns - flow.first_ns).max(0);
        let duration_secs = duration_ns as f64 / 1e9;
        let bytes_total = a.ip_bytes + b.ip_bytes;
        let tcp = flow.data.tcp.as_ref();
        let dir = |side: Side| tcp.map(|t| &t.directions[side.index()]);
        let count = |f: fn(&crate::flow::TcpDirection) -> u32, side| {
            dir(side).map_or(0, |d| u64::from(f(d)))
        };
        // The client's round trip: its SYN to the SYN-ACK, its data to the server's ACK.
        let rtt = flow
            .client
            .and_then(dir)
            .map(|d| d.rtt)
            .filter(|r| r.samples > 0);
        FlowRecord {
            protocol: protocol_name(flow.key.protocol),
            endpoint_a_ip: Address(flow.key.a.ip),
            endpoint_a_port: flow.key.a.port,
            endpoint_b_ip: Address(flow.key.b.ip),
            endpoint_b_port: flow.key.b.port,
            first_seen: Timestamp::nanos(flow.first_ns),
            last_seen: Timestamp::nanos(flow.last_ns),
            duration_secs,
            packets_a_to_b: a.packets,
            packets_b_to_a: b.packets,
            bytes_a_to_b: a.ip_bytes,
            bytes_b_to_a: b.ip_bytes,
            packets_total: a.packets + b.packets,
            bytes_total,
            avg_bps: (duration_secs > 0.0).then(|| bytes_total as f64 * 8.0 / duration_secs),
            tcp_state: tcp.map(|t| t.state.name()),
            client: flow.client.map(|c| match c {
                Side::A => "a",
                Side::B => "b",
            }),
            retransmissions: count(|d| d.retransmissions, Side::A)
                + count(|d| d.retransmissions, Side::B),
            out_of_order: count(|d| d.out_of_order, Side::A) + count(|d| d.out_of_order, Side::B),
            rtt_last_ms: rtt.map(|r| r.last_ns as f64 / 1e6),
            rtt_min_ms: rtt.map(|r| r.min_ns as f64 / 1e6),
            rtt_ewma_ms: rtt.map(|r| r.ewma_ns / 1e6),
            rtt_samples: rtt.map_or(0, |r| u64::from(r.samples)),
            id: flow.id,
            vlan: flow.key.vlan,
            first_seen_ns: flow.first_ns,
            last_seen_ns: flow.last_ns,
            payload_bytes_a_to_b: a.payload_bytes,
            payload_bytes_b_to_a: b.payload_bytes,
            retransmissions_a_to_b: count(|d| d.retransmissions, Side::A),
            retransmissions_b_to_a: count(|d| d.retransmissions, Side::B),
            out_of_order_a_to_b: count(|d| d.out_of_order, Side::A),
            out_of_order_b_to_a: count(|d| d.out_of_order, Side::B),
            duplicate_acks_a_to_b: count(|d| d.duplicate_acks, Side::A),
            duplicate_acks_b_to_a: count(|d| d.duplicate_acks, Side::B),
            zero_windows_a_to_b: count(|d| d.zero_windows, Side::A),
            zero_windows_b_to_a: count(|d| d.zero_windows, Side::B),
            history: tcp.map(|t| t.history()),
            end_reason: reason.map(EndReason::name),
            community_id: Some(ids.flow(&flow.key, flow.data.first_side, flow.data.first_icmp)),
        }
    }
}

/// The flows subcommand's consumer: per-packet lines, streamed expiries, the final table.
/// Throughput over an interval and the flows that moved the most bytes in it.
struct IntervalStats {
    interval_ns: i64,
    top: usize,
    live: bool,
    started_ns: Option<i64>,
    packets: u64,
    bytes: u64,
    /// The flows with traffic in this interval.
    flows: std::collections::HashMap<u64, IntervalFlow>,
    /// Bytes per flow at the last report, so deltas survive across intervals; only flows still
    /// in the table (an ended flow is forgotten), so it is bounded by the table.
    reported: std::collections::HashMap<u64, u64>,
}

/// A flow's bytes in the current interval.
struct IntervalFlow {
    description: String,
    /// Bytes at the interval's start, and now.
    from: u64,
    to: u64,
    /// It left the table during the interval: reported once more, then forgotten.
    ended: bool,
}

impl IntervalStats {
    /// Flow `id` left the table: nothing of it is kept past this interval's report.
    fn ended(&mut self, id: u64) {
        self.reported.remove(&id);
        if let Some(flow) = self.flows.get_mut(&id) {
            flow.ended = true;
        }
    }

    fn now_ns(&self, packet_ts: i64) -> i64 {
        if self.live {
            chrono::Utc::now()
                .timestamp_nanos_opt()
                .unwrap_or(packet_ts)
        } else {
            packet_ts
        }
    }

    fn observe(
        &mut self,
        packet: &Packet<'_>,
        flow: Option<(&TrackedFlow, Side)>,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let now = self.now_ns(packet.ts_ns);
        let start = *self.started_ns.get_or_insert(now);
        if now - start >= self.interval_ns {
            self.report(start, now, out)?;
            self.started_ns = Some(now);
        }
        self.packets += 1;
        self.bytes += u64::from(packet.orig_len);
        if let Some((f, _)) = flow {
            let total = f.stats[0].ip_bytes + f.stats[1].ip_bytes;
            let before = self.reported.get(&f.id).copied().unwrap_or(0);
            let entry = self.flows.entry(f.id).or_insert_with(|| {
                let k = &f.key;
                IntervalFlow {
                    description: format!(
                        "{} {} <-> {}",
                        protocol_name(k.protocol),
                        std::net::SocketAddr::new(k.a.ip, k.a.port),
                        std::net::SocketAddr::new(k.b.ip, k.b.port)
                    ),
                    from: before,
                    to: total,
                    ended: false,
                }
            });
            entry.to = total;
        }
        Ok(())
    }

    fn report(&mut self, start: i64, end: i64, out: &mut dyn Write) -> std::io::Result<()> {
        let secs = ((end - start) as f64 / 1e9).max(1e-9);
        writeln!(
            out,
            "[stats] {}: {:.0} pps, {:.3} Mbit/s, {} flows with traffic",
            format_ts(end),
            self.packets as f64 / secs,
            self.bytes as f64 * 8.0 / secs / 1e6,
            self.flows.len()
        )?;
        let mut ranked: Vec<(u64, &String)> = self
            .flows
            .values()
            .map(|f| (f.to.saturating_sub(f.from), &f.description))
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        for (i, (delta, description)) in ranked.iter().take(self.top).enumerate() {
            writeln!(out, "[stats]   #{} {description} {delta} bytes", i + 1)?;
        }
        for (id, flow) in self.flows.drain() {
            if !flow.ended {
                self.reported.insert(id, flow.to);
            }
        }
        self.packets = 0;
        self.bytes = 0;
        Ok(())
    }
}

struct FlowsOutput {
    lines: Option<BufWriter<std::io::StdoutLock<'static>>>,
    stats: Option<IntervalStats>,
    hex_dump: bool,
    /// `--write-pcap`.
    pcap: Option<PcapFile>,
    pcap_other_link: u64,
    detector: Option<AnomalyDetector>,
    alerts: Vec<Alert>,
    alerts_out: Option<JsonLines<Output>>,
    print_alerts: bool,
    alert_count: u64,
    /// The newest packet the detectors saw.
    last_ts_ns: i64,
    exports: FlowExports,
    write_error: Option<std::io::Error>,
}

type Output = Box<dyn Write + Send>;

/// Where flows are written as they end: nothing of an ended flow is kept.
struct FlowExports {
    json: Option<JsonArray<Output>>,
    csv: Option<CsvRecords<Output>>,
    expired: Option<JsonLines<Output>>,
    zeek_conn: Option<ZeekWriter<Output>>,
    flush: Flush,
    ids: CommunityIdHasher,
}

impl FlowExports {
    /// Create every output named (the JSON array is opened and the CSV header written at once).
    fn open(args: &FlowsArgs, flush: Flush) -> anyhow::Result<Self> {
        let create = |path: &Path| {
            file::create(path).with_context(|| format!("cannot write {}", path.display()))
        };
        let json = match &args.export_json {
            Some(path) => Some(
                JsonArray::new(create(path)?, flush)
                    .with_context(|| format!("cannot write {}", path.display()))?,
            ),
            None => None,
        };
        let csv = match &args.export_csv {
            Some(path) => Some(
                CsvRecords::new::<FlowRecord>(create(path)?)
                    .with_context(|| format!("cannot write {}", path.display()))?,
            ),
            None => None,
        };
        let expired = match &args.expired_flows_jsonl {
            Some(path) => Some(JsonLines::new(create(path)?, flush)),
            None => None,
        };
        let zeek_conn = match &args.zeek_conn {
            Some(path) => Some(
                ZeekWriter::new::<ConnRecord>(create(path)?, args.zeek_format, flush)
                    .with_context(|| format!("cannot write {}", path.display()))?,
            ),
            None => None,
        };
        Ok(FlowExports {
            json,
            csv,
            expired,
            zeek_conn,
            flush,
            ids: CommunityIdHasher::new(args.community_id_seed),
        })
    }

    fn any(&self) -> bool {
        self.json.is_some()
            || self.csv.is_some()
            || self.expired.is_some()
            || self.zeek_conn.is_some()
    }

    /// Zeek's conn.log line of a flow that ended.
    fn write_zeek(&mut self, flow: &TrackedFlow) -> std::io::Result<()> {
        let (Some(out), Some(zeek)) = (&mut self.zeek_conn, &flow.data.zeek) else {
            return Ok(());
        };
        let summary = zeek.summary();
        out.write(&ConnRecord::new(&ConnFacts {
            key: &flow.key,
            first_ns: flow.first_ns,
            stats: &flow.stats,
            summary: &summary,
            icmp: flow.data.first_icmp,
            community_id: self
                .ids
                .flow(&flow.key, flow.data.first_side, flow.data.first_icmp),
        }))
    }

    fn write(&mut self, record: &FlowRecord) -> std::io::Result<()> {
        if let Some(out) = &mut self.json {
            out.write(record)?;
        }
        if let Some(out) = &mut self.csv {
            out.write(record)?;
            if self.flush == Flush::EachRecord {
                out.flush()?;
            }
        }
        if let Some(out) = &mut self.expired {
            out.write(record)?;
        }
        Ok(())
    }

    /// Close the JSON array and flush everything.
    fn finish(self) -> anyhow::Result<()> {
        if let Some(out) = self.json {
            out.finish().context("cannot write the JSON export")?;
        }
        if let Some(out) = self.csv {
            out.finish().context("cannot write the CSV export")?;
        }
        if let Some(out) = self.expired {
            out.finish().context("cannot write the expired flows")?;
        }
        if let Some(out) = self.zeek_conn {
            out.finish().context("cannot write the Zeek conn.log")?;
        }
        Ok(())
    }
}

impl FlowsOutput {
    fn line(
        packet: &Packet<'_>,
        decoded: &Decoded<'_>,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let ts = format_ts(packet.ts_ns);
        let (Some(src), Some(dst)) = (decoded.ip_src(), decoded.ip_dst()) else {
            return writeln!(out, "{ts} {} len {}", packet.link_type, packet.orig_len);
        };
        let proto = protocol_name(decoded.ip_protocol().unwrap_or(0));
        match &decoded.transport {
            Transport::Tcp(tcp) => {
                let f = tcp.flags();
                let mut flags = String::new();
                for (flag, c) in [
                    (TcpFlags::SYN, 'S'),
                    (TcpFlags::FIN, 'F'),
                    (TcpFlags::RST, 'R'),
                    (TcpFlags::PSH, 'P'),
                    (TcpFlags::ACK, '.'),
                ] {
                    if f.contains(flag) {
                        flags.push(c);
                    }
                }
                writeln!(
                    out,
                    "{ts} {proto} {src}:{} -> {dst}:{} [{flags}] seq {} ack {} len {}",
                    tcp.src_port(),
                    tcp.dst_port(),
                    tcp.seq(),
                    tcp.ack(),
                    decoded.payload.len()
                )
            }
            Transport::Udp(udp) => writeln!(
                out,
                "{ts} {proto} {src}:{} -> {dst}:{} len {}",
                udp.src_port(),
                udp.dst_port(),
                decoded.payload.len()
            ),
            _ => writeln!(out, "{ts} {proto} {src} -> {dst} len {}", packet.orig_len),
        }
    }
}

impl FlowsOutput {
    /// Print and write the alerts raised so far.
    fn write_alerts(&mut self) {
        for alert in self.alerts.drain(..) {
            self.alert_count += 1;
            let mut written = Ok(());
            if self.print_alerts {
                let mut stdout = std::io::stdout().lock();
                written = writeln!(stdout, "[alert] {}", alert.description);
            }
            if let Some(out) = &mut self.alerts_out
                && written.is_ok()
            {
                written = out.write(&alert);
            }
            if let Err(e) = written {
                self.write_error.get_or_insert(e);
            }
        }
    }
}

impl FlowConsumer for FlowsOutput {
    type ConnectionState = ();

    fn packet(
        &mut self,
        packet: &Packet<'_>,
        decoded: &Decoded<'_>,
        flow: Option<(&TrackedFlow, Side)>,
    ) {
        if let Some(out) = &mut self.lines
            && self.write_error.is_none()
        {
            let mut written = Self::line(packet, decoded, out);
            if self.hex_dump && written.is_ok() {
                written = hex_dump(&packet.data[..packet.data.len().min(256)], out);
            }
            if let Err(e) = written {
                self.write_error = Some(e);
            }
        }
        if let Some(file) = &mut self.pcap
            && self.write_error.is_none()
        {
            match file.write(
                packet.link_type.0,
                packet.ts_ns,
                packet.data,
                packet.orig_len,
            ) {
                Ok(true) => {}
                Ok(false) => self.pcap_other_link += 1,
                Err(e) => self.write_error = Some(e),
            }
        }
        if let Some(stats) = &mut self.stats
            && self.write_error.is_none()
        {
            // Through the per-packet lines' buffer when there is one, so lines stay in order.
            let mut stdout = std::io::stdout().lock();
            let out: &mut dyn Write = match &mut self.lines {
                Some(lines) => lines,
                None => &mut stdout,
            };
            if let Err(e) = stats.observe(packet, flow, out) {
                self.write_error = Some(e);
            }
        }
        if let Some(detector) = &mut self.detector {
            detector.observe(packet.ts_ns, decoded, &mut self.alerts);
            self.last_ts_ns = packet.ts_ns;
            self.write_alerts();
        }
    }

    fn flow_ended(&mut self, flow: TrackedFlow, reason: EndReason) {
        if let Some(stats) = &mut self.stats {
            stats.ended(flow.id);
        }
        // A flood of evicted flows must not cost a record each when nothing is written.
        if !self.exports.any() || self.write_error.is_some() {
            return;
        }
        let ids = self.exports.ids;
        let native = self.exports.json.is_some()
            || self.exports.csv.is_some()
            || self.exports.expired.is_some();
        let mut written = self.exports.write_zeek(&flow);
        if native && written.is_ok() {
            written = self
                .exports
                .write(&FlowRecord::of(&flow, Some(reason), &ids));
        }
        if let Err(e) = written {
            self.write_error = Some(e);
        }
    }

    fn publish(&self, metrics: &crate::metrics::Metrics) {
        if let Some(detector) = &self.detector {
            metrics.publish_detector_evictions(detector.evicted_keys());
        }
    }
}

pub fn run_flows(args: &FlowsArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    if let Some(expression) = &args.filter {
        check_filter(expression)?;
    }
    if !(args.flow_timeout_s.is_finite() && args.flow_timeout_s >= 0.0) {
        return Err(UsageError("--flow-timeout-s must be 0 or more".into()).into());
    }
    let stop = stop_on_signals()?;
    let served = serve_metrics(&args.metrics)?;
    let metrics = served.as_ref().map(|s| &s.metrics);
    let source: Box<dyn Source> = match &args.interface {
        Some(interface) => live_source(args, interface, stop, metrics)?,
        None => open_offline(&args.inputs, args.filter.as_deref(), stop, "flows")?,
    };
    if let Some(metrics) = metrics {
        metrics.set_ready();
    }
    let mut source = source;
    // An export on stdout keeps stdout to itself unless per-packet lines are asked for.
    let exports_to_stdout = [
        &args.export_json,
        &args.export_csv,
        &args.expired_flows_jsonl,
        &args.zeek_conn,
    ]
    .into_iter()
    .flatten()
    .any(|path| file::is_stdout(path));
    let show_lines =
        !global.quiet && (args.packets || (std::io::stdout().is_terminal() && !exports_to_stdout));
    // Someone reading a live capture or a pipe sees each flow as it ends.
    let streaming = args.interface.is_some() || args.inputs.iter().any(|p| file::is_stdout(p));
    let flush = if streaming {
        Flush::EachRecord
    } else {
        Flush::Blocks
    };
    let anomalies = (args.anomalies || args.alerts_jsonl.is_some()) && !args.no_anomalies;
    if args.anomaly_memory_mb == 0 {
        return Err(UsageError("--anomaly-memory-mb must be at least 1".into()).into());
    }
    if args.stats && args.stats_interval_ms == 0 {
        return Err(UsageError("--stats-interval-ms must be at least 1".into()).into());
    }
    let mut output = FlowsOutput {
        lines: show_lines.then(|| BufWriter::new(std::io::stdout().lock())),
        stats: (args.stats && !args.no_stats).then(|| IntervalStats {
            interval_ns: args.stats_interval_ms as i64 * 1_000_000,
            top: args.top_flows,
            live: args.interface.is_some(),
            started_ns: None,
            packets: 0,
            bytes: 0,
            flows: Default::default(),
            reported: Default::default(),
        }),
        hex_dump: args.hex_dump && !args.no_hex_dump,
        pcap: args.write_pcap.as_ref().map(PcapFile::new),
        pcap_other_link: 0,
        detector: anomalies.then(|| {
            AnomalyDetector::new(
                SynFloodConfig {
                    enabled: !args.no_syn_flood,
                    window_secs: args.syn_flood_window_secs,
                    syn_threshold: args.syn_threshold,
                    unique_src_threshold: args.unique_src_threshold,
                    cooldown_secs: args.syn_flood_cooldown_secs,
                },
                PortScanConfig {
                    enabled: !args.no_port_scan,
                    window_secs: args.port_scan_window_secs,
                    unique_ports_threshold: args.unique_ports_threshold,
                    unique_hosts_threshold: args.unique_hosts_threshold,
                    cooldown_secs: args.port_scan_cooldown_secs,
                },
                args.anomaly_memory_mb.saturating_mul(1 << 20),
            )
        }),
        alerts: Vec::new(),
        alerts_out: match &args.alerts_jsonl {
            Some(path) => Some(JsonLines::new(
                file::create(path).with_context(|| format!("cannot write {}", path.display()))?,
                flush,
            )),
            None => None,
        },
        print_alerts: anomalies && !global.quiet && !show_lines && !exports_to_stdout,
        alert_count: 0,
        last_ts_ns: 0,
        exports: FlowExports::open(args, flush)?,
        write_error: None,
    };
    let config = PipelineConfig {
        table: TableConfig {
            idle_timeout_ns: (args.flow_timeout_s > 0.0)
                .then_some((args.flow_timeout_s * 1e9) as u64),
            max_flows: args.max_flows.filter(|&n| n > 0),
        },
        count: args.count,
        decode: Default::default(),
        reassembly: None,
        reassembly_total_cap: 0,
        zeek: args.zeek_conn.is_some(),
        metrics: metrics.cloned(),
    };
    let (stats, error) = run(source.as_mut(), &config, &mut output);
    if let Some(detector) = &mut output.detector {
        detector.finish(output.last_ts_ns, &mut output.alerts);
        output.write_alerts();
    }
    if let Some(e) = output.write_error.take() {
        return Err(anyhow::Error::new(e).context("cannot write output"));
    }
    if let Some(out) = &mut output.lines {
        out.flush()?;
    }
    if let Some(out) = output.alerts_out.take() {
        out.finish().context("cannot write the alerts")?;
    }
    if let Some(file) = output.pcap.take() {
        file.finish().context("cannot write the pcap")?;
    }
    if output.pcap_other_link > 0 {
        tracing::warn!(
            packets = output.pcap_other_link,
            "packets of another link type than the first were not written to the pcap"
        );
    }
    output.exports.finish()?;
    if let Some(e) = &error {
        tracing::error!("{e}; the flows before it are kept");
    }
    let detector = output.detector.as_ref().map(AnomalyDetector::stats);
    if !global.quiet && global.log_format == LogFormat::Text {
        let detector_note = detector.map_or(String::new(), |d| {
            format!(
                " (detectors: {} of {} services, {} of {} sources tracked, {} evicted)",
                d.flood_keys, d.flood_key_cap, d.scan_keys, d.scan_key_cap, d.evicted_keys
            )
        });
        eprintln!(
            "flows: {} packets, {} flows ({} evicted), {} packets without a flow, {} alerts{detector_note}",
            stats.packets, stats.flows, stats.evictions, stats.without_flow, output.alert_count
        );
    }
    if let Some(d) = detector {
        tracing::info!(
            flood_keys = d.flood_keys,
            scan_keys = d.scan_keys,
            evicted_keys = d.evicted_keys,
            "anomaly detectors"
        );
    }
    tracing::info!(
        packets = stats.packets,
        flows = stats.flows,
        evictions = stats.evictions,
        "flows finished"
    );
    Ok(Outcome {
        damaged_inputs: error.is_some(),
    })
}

/// tcpdump -X style: offset, 16 bytes in hex, the same as ASCII.
fn hex_dump(bytes: &[u8], out: &mut dyn Write) -> std::io::Result<()> {
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let mut hex = String::with_capacity(48);
        for (j, b) in chunk.iter().enumerate() {
            if j > 0 && j % 2 == 0 {
                hex.push(' ');
            }
            hex.push_str(&format!("{b:02x}"));
        }
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        writeln!(out, "\t0x{:04x}:  {hex:<39}  {ascii}", i * 16)?;
    }
    Ok(())
}

/// A live interface as the pipeline's source, with the filter compiled into the kernel.
#[cfg(feature = "live")]
fn live_source(
    args: &FlowsArgs,
    interface: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    metrics: Option<&std::sync::Arc<crate::metrics::Metrics>>,
) -> anyhow::Result<Box<dyn Source>> {
    let source = open_live(&args.live, interface, args.filter.as_deref(), stop, metrics)?;
    Ok(Box::new(source))
}

#[cfg(not(feature = "live"))]
fn live_source(
    _args: &FlowsArgs,
    _interface: &str,
    _stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    _metrics: Option<&std::sync::Arc<crate::metrics::Metrics>>,
) -> anyhow::Result<Box<dyn Source>> {
    Err(UsageError("-i needs libpcap: built without the `live` feature".into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> IntervalStats {
        IntervalStats {
            interval_ns: 1_000,
            top: 5,
            live: false,
            started_ns: None,
            packets: 0,
            bytes: 0,
            flows: Default::default(),
            reported: Default::default(),
        }
    }

    fn traffic(stats: &mut IntervalStats, id: u64, to: u64) {
        let from = stats.reported.get(&id).copied().unwrap_or(0);
        let flow = stats.flows.entry(id).or_insert(IntervalFlow {
            description: format!("flow {id}"),
            from,
            to,
            ended: false,
        });
        flow.to = to;
    }

    /// A live run's flows come and go: what the intervals keep is bounded by the flows still
    /// in the table, not by every flow ever seen; an ended flow is still in its last report.
    #[test]
    fn ended_flows_are_reported_once_more_then_forgotten() {
        let mut s = stats();
        let mut out = Vec::new();
        for round in 0..1_000u64 {
            traffic(&mut s, round, 100);
            traffic(&mut s, u64::MAX, 100 * (round + 1));
            s.ended(round);
            s.report(0, 1_000, &mut out).unwrap();
        }
        assert_eq!(s.reported.len(), 1, "only the flow still open");
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("flow 999 100 bytes"),
            "ended flows are in their last report"
        );
        // The long-lived flow's delta is per interval, not its total.
        assert!(text.contains(&format!("flow {} 100 bytes", u64::MAX)));
    }
}
