//! `gophercap http-trace`: HTTP/1.x and WebSocket messages out of reassembled TCP — the one
//! pipeline with reassembly on, `proto::http` reading the streams, and this file turning its
//! events into JSON lines (or node_pcap's human format) for stdout, a file and an HTTP POST
//! endpoint. Offline first; live (`-i`) it is the Kubernetes sidecar, configured by flags or by
//! the environment variables the TCP Sniffer used.

use super::capture_input::{LiveArgs, MetricsArgs, open_offline, serve_metrics, stop_on_signals};
use super::filter::check_filter;
use super::{GlobalArgs, LogFormat, Outcome, UsageError};
use crate::decode::Decoded;
use crate::flow::{CommunityId, CommunityIdHasher, EndReason, Endpoint, Side, TableConfig};
use crate::metrics::{HttpCounts, Metrics, StreamCounts};
use crate::output::json::{JsonError, TextOrBase64, write_compact};
use crate::pipeline::{FlowConsumer, PipelineConfig, TrackedFlow, run as run_pipeline};
use crate::proto::http::{
    Direction, HttpConfig, HttpConnection, HttpEvent, HttpMessage, HttpSink, HttpStats,
    HttpTracker, MAX_PENDING_REQUESTS, Peer, Problem, ProblemKind, WebSocketMessage,
};
use crate::reassembly::{StreamConfig, StreamHandler};
use crate::sink::post::{PostConfig, PostSink, PostStats};
use crate::source::{Packet, Source};
use crate::time::{Timestamp, format_ts};
use anyhow::Context;
use clap::{Args, ValueEnum};
use regex::Regex;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{BufWriter, IsTerminal, LineWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Header names whose values are replaced by `[REDACTED]` unless told otherwise.
const DEFAULT_REDACTED: [&str; 4] = [
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line (the schema in the README).
    Json,
    /// node_pcap's http_trace layout for people: start lines, headers, latency; coloured on a
    /// terminal.
    Pretty,
}

#[derive(Debug, Args)]
pub struct HttpTraceArgs {
    /// Captures, folders and tarballs, merged by time (`-` reads stdin).
    #[arg(value_name = "INPUT", required_unless_present = "interface")]
    pub inputs: Vec<PathBuf>,
    /// Capture live from this interface instead (SIGINT/SIGTERM end it).
    #[arg(
        short = 'i',
        long,
        value_name = "IFACE",
        env = "INTERFACE",
        conflicts_with = "inputs"
    )]
    pub interface: Option<String>,
    /// Only packets that match this BPF expression (live with --port and no filter:
    /// `tcp port P or ...`).
    #[arg(short = 'f', long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Stop after this many packets.
    #[arg(short = 'c', long, value_name = "N")]
    pub count: Option<u64>,
    /// HTTP server ports (repeat, or comma-separated): the side with the port is the receiver.
    /// Without, HTTP is recognised from the first bytes of each connection.
    #[arg(long = "port", value_name = "P", env = "PORTS", value_delimiter = ',')]
    pub ports: Vec<u16>,
    /// Write messages to stdout (the default when no other output is given).
    #[arg(long, env = "OUTPUT_STDOUT")]
    pub stdout: bool,
    /// Append messages to this file.
    #[arg(long, value_name = "PATH")]
    pub output_file: Option<PathBuf>,
    /// POST each message (one JSON object) to this URL; `Authorization: Bearer` from
    /// OUTPUT_URL_AUTH_TOKEN.
    #[arg(long, value_name = "URL", env = "OUTPUT_URL")]
    pub output_url: Option<String>,
    /// Allow a plain http:// --output-url (https is required otherwise).
    #[arg(long)]
    pub allow_http: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Only requests whose method matches this regular expression (and their responses).
    #[arg(long, value_name = "RE")]
    pub method: Option<Regex>,
    /// Only requests whose Host header matches (and their responses).
    #[arg(long, value_name = "RE")]
    pub host: Option<Regex>,
    /// Only requests whose target (path and query) matches (and their responses).
    #[arg(long, value_name = "RE")]
    pub url: Option<Regex>,
    /// Only requests whose User-Agent matches (and their responses).
    #[arg(long, value_name = "RE")]
    pub user_agent: Option<Regex>,
    /// Replace this header's values with [REDACTED] (repeat; given, it replaces the default
    /// list: Authorization, Proxy-Authorization, Cookie, Set-Cookie).
    #[arg(long = "redact-header", value_name = "NAME")]
    pub redact_headers: Vec<String>,
    /// Redact nothing.
    #[arg(long, conflicts_with = "redact_headers")]
    pub no_redact: bool,
    /// Longest message head read; a longer one is reported and skipped.
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    pub max_header_bytes: usize,
    /// Body bytes kept per message; the rest is counted and `body_truncated` set.
    #[arg(long, value_name = "BYTES", default_value_t = 1_048_576)]
    pub max_body_size: usize,
    /// The seed of the Community IDs written (sites that compare logs agree on one).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub community_id_seed: u16,
    /// Decode gzip and deflate bodies (Content-Encoding).
    #[arg(long)]
    pub decompress: bool,
    /// Share of connections traced (0 to 1), chosen by a hash of the connection's endpoints.
    #[arg(long, value_name = "R", default_value_t = 1.0)]
    pub sample_rate: f64,
    /// Connections followed at once; the least recently active is dropped (and logged).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_concurrent_connections: usize,
    /// A connection idle this long (packet time offline) is closed.
    #[arg(long, value_name = "MS", default_value_t = 300_000)]
    pub connection_idle_timeout_ms: u64,
    /// Bytes all connections together may hold waiting for missing segments.
    #[arg(long, value_name = "MB", default_value_t = 128)]
    pub max_reassembly_mb: usize,
    /// Live: warn once when no packet came for this many seconds (0: never).
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub no_traffic_warning_s: u64,
    /// Live: log libpcap's received/dropped counters this often.
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub capture_stats_interval_s: u64,
    /// On SIGINT/SIGTERM or at the end, time left for the outputs to drain.
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub grace_period_s: u64,
    #[command(flatten)]
    pub live: LiveArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Serialize)]
struct EndpointRecord {
    ip: std::net::IpAddr,
    port: u16,
}

impl From<Endpoint> for EndpointRecord {
    fn from(e: Endpoint) -> Self {
        EndpointRecord {
            ip: e.ip,
            port: e.port,
        }
    }
}

#[derive(Serialize)]
struct HeaderRecord<'a> {
    name: &'a str,
    value: &'a str,
}

/// One HTTP message as written: every key always present (null when it does not apply), so
/// the schema is the same on every line.
#[derive(Serialize)]
struct MessageRecord<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: Timestamp,
    connection: u64,
    receiver: EndpointRecord,
    destination: EndpointRecord,
    direction: &'static str,
    version: &'static str,
    method: Option<&'a str>,
    path: Option<&'a str>,
    status_code: Option<u16>,
    reason: Option<&'a str>,
    headers: Vec<HeaderRecord<'a>>,
    body: TextOrBase64<'a>,
    body_encoding: &'static str,
    body_length: u64,
    body_truncated: bool,
    body_decoded: bool,
    incomplete: bool,
    trailers: Vec<HeaderRecord<'a>>,
    request_method: Option<&'a str>,
    request_path: Option<&'a str>,
    latency_ms: Option<f64>,
    community_id: CommunityId,
}

/// One WebSocket message as written.
#[derive(Serialize)]
struct WebSocketRecord<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: Timestamp,
    connection: u64,
    receiver: EndpointRecord,
    destination: EndpointRecord,
    direction: &'static str,
    opcode: &'static str,
    fin: bool,
    compressed: bool,
    payload: TextOrBase64<'a>,
    payload_encoding: &'static str,
    payload_length: u64,
    truncated: bool,
    incomplete: bool,
    close_code: Option<u16>,
    close_reason: Option<&'a str>,
    community_id: CommunityId,
}

/// node_pcap's request filters: a request passes when every given pattern matches; a response
/// (or WebSocket message) passes with the request that opened its exchange.
struct Filters {
    method: Option<Regex>,
    host: Option<Regex>,
    url: Option<Regex>,
    user_agent: Option<Regex>,
    /// Per connection, the verdicts of requests still waiting for their final response, keyed
    /// by the request's time (what a response's pairing carries).
    pending: HashMap<u64, Vec<(i64, bool)>>,
    /// Per connection, the verdict of its latest request (for WebSocket messages).
    latest: HashMap<u64, bool>,
    /// Verdicts held in `pending` and `latest` together.
    held: usize,
}

/// Verdicts kept at most: a capture of abandoned requests must not grow this without bound.
const MAX_FILTER_VERDICTS: usize = 100_000;

impl Filters {
    fn any(&self) -> bool {
        self.method.is_some()
            || self.host.is_some()
            || self.url.is_some()
            || self.user_agent.is_some()
    }

    fn request_passes(&self, m: &HttpMessage) -> bool {
        let matches = |re: &Option<Regex>, value: Option<&str>| {
            re.as_ref()
                .is_none_or(|re| value.is_some_and(|v| re.is_match(v)))
        };
        matches(&self.method, m.method.as_deref())
            && matches(&self.url, m.path.as_deref())
            && matches(&self.host, m.header("host"))
            && matches(&self.user_agent, m.header("user-agent"))
    }

    fn passes(&mut self, event: &HttpEvent) -> bool {
        if !self.any() {
            return true;
        }
        if self.held > MAX_FILTER_VERDICTS {
            self.pending.clear();
            self.latest.clear();
            self.held = 0;
        }
        match event {
            HttpEvent::Message(m) if m.direction == Direction::Request => {
                let verdict = self.request_passes(m);
                let waiting = self.pending.entry(m.connection).or_default();
                // The tracker forgets the oldest unanswered request at its cap: so do we.
                if waiting.len() == MAX_PENDING_REQUESTS {
                    waiting.remove(0);
                    self.held -= 1;
                }
                waiting.push((m.timestamp_ns, verdict));
                self.held += 1;
                if self.latest.insert(m.connection, verdict).is_none() {
                    self.held += 1;
                }
                verdict
            }
            HttpEvent::Message(m) => {
                let Some(request) = &m.request else {
                    return false;
                };
                let waiting = self.pending.entry(m.connection).or_default();
                let found = waiting
                    .iter()
                    .position(|(ts, _)| *ts == request.timestamp_ns);
                let verdict = found.is_some_and(|i| waiting[i].1);
                // A final response settles its request; a 1xx leaves it waiting.
                if let Some(i) = found
                    && m.status_code.is_none_or(|s| s >= 200 || s == 101)
                {
                    waiting.remove(i);
                    self.held -= 1;
                }
                if waiting.is_empty() {
                    self.pending.remove(&m.connection);
                }
                verdict
            }
            HttpEvent::WebSocket(w) => self.latest.get(&w.connection).copied().unwrap_or(false),
            HttpEvent::Problem(_) => true,
        }
    }
}

/// Where messages go, and how they look there.
struct Outputs {
    format: Format,
    stdout: Option<Box<dyn Write>>,
    stdout_color: bool,
    file: Option<BufWriter<std::fs::File>>,
    flush_each: bool,
    post: Option<PostSink>,
    filters: Filters,
    /// Lower-case header names to redact.
    redact: Vec<String>,
    written: u64,
    filtered_out: u64,
    /// Problems by kind; each connection's first one of a kind is logged.
    problems: HashMap<&'static str, u64>,
    logged_problems: HashMap<u64, Vec<ProblemKind>>,
    write_error: Option<std::io::Error>,
    ids: CommunityIdHasher,
    /// Messages not written because an output had failed.
    unwritten: u64,
    line: Vec<u8>,
}

impl Outputs {
    fn redacted<'a>(redact: &[String], headers: &'a [(String, String)]) -> Vec<HeaderRecord<'a>> {
        headers
            .iter()
            .map(|(name, value)| HeaderRecord {
                name,
                value: if redact.iter().any(|r| name.eq_ignore_ascii_case(r)) {
                    "[REDACTED]"
                } else {
                    value
                },
            })
            .collect()
    }

    fn message_json(&self, m: &HttpMessage, out: &mut Vec<u8>) -> Result<(), JsonError> {
        let body = TextOrBase64::of(&m.body);
        let record = MessageRecord {
            kind: "http",
            timestamp: Timestamp::nanos(m.timestamp_ns),
            connection: m.connection,
            receiver: m.server.into(),
            destination: m.client.into(),
            direction: match m.direction {
                Direction::Request => "request",
                Direction::Response => "response",
            },
            version: m.version,
            method: m.method.as_deref(),
            path: m.path.as_deref(),
            status_code: m.status_code,
            reason: m.reason.as_deref(),
            headers: Self::redacted(&self.redact, &m.headers),
            body,
            body_encoding: body.encoding(),
            body_length: m.body_length,
            body_truncated: m.body_truncated,
            body_decoded: m.body_decoded,
            incomplete: m.incomplete,
            trailers: Self::redacted(&self.redact, &m.trailers),
            request_method: m.request.as_ref().map(|r| r.method.as_str()),
            request_path: m.request.as_ref().map(|r| r.path.as_str()),
            latency_ms: m
                .request
                .as_ref()
                .map(|r| (m.timestamp_ns - r.timestamp_ns) as f64 / 1e6),
            community_id: self.ids.tcp(m.client, m.server),
        };
        write_compact(out, &record)
    }

    fn websocket_json(&self, w: &WebSocketMessage, out: &mut Vec<u8>) -> Result<(), JsonError> {
        // Text frames are UTF-8 by the RFC; binary (and anything that is not) goes as base64.
        let payload = if w.opcode == 0x1 || w.opcode == 0x8 {
            TextOrBase64::of(&w.payload)
        } else {
            TextOrBase64::Base64(&w.payload)
        };
        write_compact(
            out,
            &WebSocketRecord {
                kind: "websocket",
                timestamp: Timestamp::nanos(w.timestamp_ns),
                connection: w.connection,
                receiver: w.server.into(),
                destination: w.client.into(),
                direction: match w.from {
                    Peer::Client => "client_to_server",
                    Peer::Server => "server_to_client",
                },
                opcode: w.opcode_name(),
                fin: w.fin,
                compressed: w.compressed,
                payload,
                payload_encoding: payload.encoding(),
                payload_length: w.payload_length,
                truncated: w.truncated,
                incomplete: w.incomplete,
                close_code: w.close_code,
                close_reason: w.close_reason.as_deref(),
                community_id: self.ids.tcp(w.client, w.server),
            },
        )
    }

    /// node_pcap's http_trace layout.
    fn pretty(redact: &[String], event: &HttpEvent, color: bool, out: &mut Vec<u8>) {
        use std::fmt::Write as _;
        let paint = |code: &str, text: &str| {
            if color {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_string()
            }
        };
        let mut s = String::new();
        match event {
            HttpEvent::Message(m) => {
                let (from, to) = match m.direction {
                    Direction::Request => (m.client, m.server),
                    Direction::Response => (m.server, m.client),
                };
                let start = match m.direction {
                    Direction::Request => paint(
                        "1;32",
                        &format!(
                            "{} {} {}",
                            m.method.as_deref().unwrap_or("?"),
                            m.path.as_deref().unwrap_or("?"),
                            m.version
                        ),
                    ),
                    Direction::Response => {
                        let status = m.status_code.unwrap_or(0);
                        let code = match status {
                            200..=299 => "1;32",
                            300..=399 => "1;36",
                            400..=499 => "1;33",
                            500.. => "1;31",
                            _ => "1",
                        };
                        paint(
                            code,
                            &format!(
                                "{} {status} {}",
                                m.version,
                                m.reason.as_deref().unwrap_or("")
                            ),
                        )
                    }
                };
                let _ = write!(
                    s,
                    "{} {}:{} -> {}:{} #{} {start}",
                    format_ts(m.timestamp_ns),
                    from.ip,
                    from.port,
                    to.ip,
                    to.port,
                    m.connection
                );
                if let Some(r) = &m.request {
                    let latency = (m.timestamp_ns - r.timestamp_ns) as f64 / 1e6;
                    let _ = write!(s, " ({latency:.3} ms after {} {})", r.method, r.path);
                }
                if m.incomplete {
                    let _ = write!(s, " {}", paint("1;31", "[incomplete]"));
                }
                s.push('\n');
                for h in Self::redacted(redact, &m.headers) {
                    let _ = writeln!(s, "    {}: {}", paint("2", h.name), h.value);
                }
                if m.body_length > 0 {
                    let _ = writeln!(
                        s,
                        "    {}",
                        paint(
                            "2",
                            &format!(
                                "[body {} bytes{}]",
                                m.body_length,
                                if m.body_truncated { ", cut" } else { "" }
                            )
                        )
                    );
                }
            }
            HttpEvent::WebSocket(w) => {
                let (from, to) = match w.from {
                    Peer::Client => (w.client, w.server),
                    Peer::Server => (w.server, w.client),
                };
                let _ = write!(
                    s,
                    "{} {}:{} -> {}:{} #{} {} {} bytes",
                    format_ts(w.timestamp_ns),
                    from.ip,
                    from.port,
                    to.ip,
                    to.port,
                    w.connection,
                    paint("1;35", &format!("websocket {}", w.opcode_name())),
                    w.payload_length
                );
                if let Some(code) = w.close_code {
                    let _ = write!(
                        s,
                        " code {code} {}",
                        w.close_reason.as_deref().unwrap_or("")
                    );
                } else if w.opcode == 0x1
                    && let Ok(text) = std::str::from_utf8(&w.payload)
                {
                    let shown: String = text.chars().take(200).collect();
                    let _ = write!(s, ": {shown}");
                }
                s.push('\n');
            }
            HttpEvent::Problem(_) => {}
        }
        out.extend_from_slice(s.as_bytes());
    }

    fn problem(&mut self, p: &Problem) {
        *self.problems.entry(p.kind.name()).or_default() += 1;
        let seen = self.logged_problems.entry(p.connection).or_default();
        if seen.contains(&p.kind) {
            return;
        }
        if self.logged_problems.len() > MAX_FILTER_VERDICTS {
            self.logged_problems.clear();
        }
        self.logged_problems
            .entry(p.connection)
            .or_default()
            .push(p.kind);
        let sample: String = p.sample.iter().map(|b| format!("{b:02x}")).collect();
        tracing::warn!(
            connection = p.connection,
            sender = %format!("{}:{}", p.sender.ip, p.sender.port),
            kind = p.kind.name(),
            sample_hex = %sample,
            "not read as HTTP"
        );
    }

    fn write(&mut self, event: &HttpEvent) -> std::io::Result<()> {
        // The JSON line is encoded once, into a buffer kept across messages, for every output
        // that takes JSON; the pretty text is made for each output that shows it.
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        match event {
            HttpEvent::Message(m) => self.message_json(m, &mut line)?,
            HttpEvent::WebSocket(w) => self.websocket_json(w, &mut line)?,
            HttpEvent::Problem(_) => return Ok(()),
        }
        if let Some(post) = &self.post {
            post.send(line.clone());
        }
        line.push(b'\n');
        let json_len = line.len();
        for to_stdout in [true, false] {
            let color = to_stdout && self.stdout_color;
            let out: &mut dyn Write = match (to_stdout, &mut self.stdout, &mut self.file) {
                (true, Some(out), _) => out,
                (false, _, Some(out)) => out,
                _ => continue,
            };
            match self.format {
                Format::Json => out.write_all(&line[..json_len])?,
                Format::Pretty => {
                    line.truncate(json_len);
                    Self::pretty(&self.redact, event, color, &mut line);
                    out.write_all(&line[json_len..])?;
                }
            }
            if self.flush_each {
                out.flush()?;
            }
        }
        self.line = line;
        self.written += 1;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(out) = &mut self.stdout {
            out.flush()?;
        }
        if let Some(out) = &mut self.file {
            out.flush()?;
        }
        Ok(())
    }
}

impl HttpSink for Outputs {
    fn event(&mut self, event: HttpEvent) {
        if let HttpEvent::Problem(p) = &event {
            self.problem(p);
            return;
        }
        if !self.filters.passes(&event) {
            self.filtered_out += 1;
            return;
        }
        if self.write_error.is_some() {
            self.unwritten += 1;
            return;
        }
        if let Err(e) = self.write(&event) {
            self.write_error = Some(e);
            self.unwritten += 1;
        }
    }
}

/// The pipeline's consumer: the tracker reads the streams; evictions are logged.
struct Trace {
    tracker: HttpTracker<Outputs>,
    evicted: u64,
}

/// Open connections dropped by the cap that are logged as warnings (the rest at debug level,
/// all counted in the summary): a flood must not flood the log.
const EVICTIONS_LOGGED: u64 = 20;

impl FlowConsumer for Trace {
    type ConnectionState = HttpConnection;

    fn packet(
        &mut self,
        _: &Packet<'_>,
        _: &Decoded<'_>,
        _: Option<(&TrackedFlow<HttpConnection>, Side)>,
    ) {
    }

    fn flow_ended(&mut self, flow: TrackedFlow<HttpConnection>, reason: EndReason) {
        let open = flow.data.tcp.as_ref().is_some_and(|t| {
            !matches!(
                t.state,
                crate::flow::TcpState::Closed | crate::flow::TcpState::Reset
            )
        });
        if reason == EndReason::Evicted && open {
            self.evicted += 1;
            if self.evicted > EVICTIONS_LOGGED {
                tracing::debug!(
                    connection = flow.id,
                    a = %format!("{}:{}", flow.key.a.ip, flow.key.a.port),
                    b = %format!("{}:{}", flow.key.b.ip, flow.key.b.port),
                    "connection dropped at --max-concurrent-connections"
                );
            } else {
                tracing::warn!(
                    connection = flow.id,
                    a = %format!("{}:{}", flow.key.a.ip, flow.key.a.port),
                    b = %format!("{}:{}", flow.key.b.ip, flow.key.b.port),
                    "connection dropped at --max-concurrent-connections"
                );
            }
        }
    }

    fn stream_handler(&mut self) -> Option<&mut dyn StreamHandler<State = HttpConnection>> {
        Some(&mut self.tracker)
    }

    fn publish(&self, metrics: &Metrics) {
        let stats = self.tracker.stats();
        let outputs = self.tracker.sink();
        metrics.publish_http(HttpCounts {
            requests: stats.requests,
            responses: stats.responses,
            websocket_messages: stats.websocket_messages,
            unwritten: outputs.unwritten,
        });
        metrics.publish_streams(StreamCounts {
            gaps: stats.gaps,
            gap_bytes: stats.gap_bytes,
        });
        if let Some(post) = &outputs.post {
            metrics.publish_post(&post.stats());
        }
    }
}

/// The BPF a port list stands for, when no filter was given.
fn ports_filter(ports: &[u16]) -> Option<String> {
    (!ports.is_empty()).then(|| {
        let each: Vec<String> = ports.iter().map(|p| format!("port {p}")).collect();
        format!("tcp and ({})", each.join(" or "))
    })
}

fn log_start(args: &HttpTraceArgs) {
    let placement: Vec<(&str, String)> = ["POD_NAME", "NAMESPACE", "NODE_NAME"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k, v)))
        .collect();
    let placement = placement
        .iter()
        .map(|(k, v)| format!("{}={v}", k.to_lowercase()))
        .collect::<Vec<_>>()
        .join(" ");
    let ports = args
        .ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // `event = "ready"` is the readiness signal of the subprocess contract (README): a driver
    // waits for it, live or offline, instead of matching the message's words.
    match &args.interface {
        Some(interface) => tracing::info!(
            event = "ready",
            interface = %interface,
            loopback = is_loopback(interface),
            ports = %ports,
            placement = %placement,
            "http-trace capturing"
        ),
        None => tracing::info!(event = "ready", ports = %ports, "http-trace reading captures"),
    }
}

#[cfg(feature = "live")]
fn is_loopback(interface: &str) -> bool {
    crate::source::live::list_interfaces()
        .ok()
        .and_then(|l| l.into_iter().find(|i| i.name == interface))
        .is_some_and(|i| i.loopback)
}

#[cfg(not(feature = "live"))]
fn is_loopback(_interface: &str) -> bool {
    false
}

#[cfg(feature = "live")]
fn live_source(
    args: &HttpTraceArgs,
    interface: &str,
    filter: Option<&str>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    metrics: Option<&std::sync::Arc<Metrics>>,
) -> anyhow::Result<Box<dyn Source>> {
    let mut source = super::capture_input::open_live(&args.live, interface, filter, stop, metrics)?;
    let every = Duration::from_secs(args.capture_stats_interval_s.max(1));
    let quiet =
        (args.no_traffic_warning_s > 0).then(|| Duration::from_secs(args.no_traffic_warning_s));
    source.watch_health(every, quiet);
    Ok(Box::new(source))
}

#[cfg(not(feature = "live"))]
fn live_source(
    _args: &HttpTraceArgs,
    _interface: &str,
    _filter: Option<&str>,
    _stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    _metrics: Option<&std::sync::Arc<Metrics>>,
) -> anyhow::Result<Box<dyn Source>> {
    Err(UsageError("-i needs libpcap: built without the `live` feature".into()).into())
}

/// Standard output is a pipe or a socket (a reader downstream waits for each line).
#[cfg(unix)]
fn stdout_is_stream() -> bool {
    use std::os::unix::fs::FileTypeExt;
    let stdout = std::io::stdout();
    let fd = std::os::fd::AsFd::as_fd(&stdout)
        .try_clone_to_owned()
        .map(std::fs::File::from);
    fd.and_then(|f| f.metadata())
        .is_ok_and(|m| m.file_type().is_fifo() || m.file_type().is_socket())
}

#[cfg(not(unix))]
fn stdout_is_stream() -> bool {
    true
}

fn create_file(path: &PathBuf) -> anyhow::Result<BufWriter<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(BufWriter::new(file))
}

pub fn run(args: &HttpTraceArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let http = HttpConfig {
        server_ports: args.ports.clone(),
        max_header_bytes: args.max_header_bytes,
        max_body_size: args.max_body_size,
        decompress: args.decompress,
        sample_rate: args.sample_rate,
    };
    http.validate().map_err(|e| UsageError(e.to_string()))?;
    if args.max_concurrent_connections == 0 {
        return Err(UsageError("--max-concurrent-connections must be at least 1".into()).into());
    }
    let live = args.interface.is_some();
    let filter = match (&args.filter, live) {
        (Some(f), _) => Some(f.clone()),
        (None, true) => ports_filter(&args.ports),
        (None, false) => None,
    };
    if let Some(expression) = &filter {
        check_filter(expression)?;
    }
    let post = match &args.output_url {
        Some(url) => Some(
            PostSink::start(PostConfig {
                allow_http: args.allow_http,
                auth_token: std::env::var("OUTPUT_URL_AUTH_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty()),
                ..PostConfig::new(url.clone())
            })
            .map_err(|e| UsageError(e.to_string()))?,
        ),
        None => None,
    };
    let to_stdout = args.stdout || (args.output_file.is_none() && args.output_url.is_none());
    let terminal = std::io::stdout().is_terminal();
    // Line-buffered wherever someone reads as it comes (live, a terminal, a pipe or socket);
    // into a regular file or /dev/null offline, block-buffered and flushed at the end.
    let flush_each = live || terminal || stdout_is_stream();
    let stdout: Option<Box<dyn Write>> = to_stdout.then(|| -> Box<dyn Write> {
        if flush_each {
            Box::new(LineWriter::new(std::io::stdout()))
        } else {
            Box::new(BufWriter::with_capacity(1 << 16, std::io::stdout()))
        }
    });
    let file = args.output_file.as_ref().map(create_file).transpose()?;
    let redact = if args.no_redact {
        Vec::new()
    } else if args.redact_headers.is_empty() {
        DEFAULT_REDACTED.iter().map(|h| h.to_lowercase()).collect()
    } else {
        args.redact_headers
            .iter()
            .map(|h| h.to_lowercase())
            .collect()
    };
    let outputs = Outputs {
        format: args.format,
        stdout,
        stdout_color: terminal && args.format == Format::Pretty,
        file,
        flush_each,
        post,
        filters: Filters {
            method: args.method.clone(),
            host: args.host.clone(),
            url: args.url.clone(),
            user_agent: args.user_agent.clone(),
            pending: HashMap::new(),
            latest: HashMap::new(),
            held: 0,
        },
        redact,
        written: 0,
        filtered_out: 0,
        problems: HashMap::new(),
        logged_problems: HashMap::new(),
        write_error: None,
        ids: CommunityIdHasher::new(args.community_id_seed),
        unwritten: 0,
        line: Vec::new(),
    };
    let tracker = HttpTracker::new(http, outputs).map_err(|e| UsageError(e.to_string()))?;
    let mut trace = Trace {
        tracker,
        evicted: 0,
    };
    let stop = stop_on_signals()?;
    let served = serve_metrics(&args.metrics)?;
    let metrics = served.as_ref().map(|s| &s.metrics);
    let mut source: Box<dyn Source> = match &args.interface {
        Some(interface) => live_source(args, interface, filter.as_deref(), stop, metrics)?,
        None => open_offline(&args.inputs, filter.as_deref(), stop, "http-trace")?,
    };
    if let Some(metrics) = metrics {
        metrics.set_ready();
    }
    // Only once the capture is open (and filtered): a "capturing" line means packets are seen.
    log_start(args);
    let config = PipelineConfig {
        table: TableConfig {
            idle_timeout_ns: (args.connection_idle_timeout_ms > 0)
                .then_some(args.connection_idle_timeout_ms.saturating_mul(1_000_000)),
            max_flows: Some(args.max_concurrent_connections),
        },
        count: args.count,
        decode: Default::default(),
        reassembly: Some(StreamConfig::default()),
        reassembly_total_cap: args.max_reassembly_mb.saturating_mul(1 << 20),
        zeek: false,
        metrics: metrics.cloned(),
    };
    let (stats, error) = run_pipeline(source.as_mut(), &config, &mut trace);
    let http_stats = trace.tracker.stats();
    let mut outputs = trace.tracker.into_sink();
    let flushed = outputs.flush();
    let post_stats = outputs
        .post
        .take()
        .map(|p| p.finish(Duration::from_secs(args.grace_period_s)));
    if let Some(e) = outputs.write_error.take() {
        return Err(anyhow::Error::new(e).context("cannot write output"));
    }
    flushed.context("cannot write output")?;
    if let Some(e) = &error {
        tracing::error!("{e}; the messages before it are kept");
    }
    report(
        global,
        &stats,
        &http_stats,
        &outputs,
        trace.evicted,
        post_stats.as_ref(),
    );
    Ok(Outcome {
        damaged_inputs: error.is_some(),
    })
}

fn report(
    global: &GlobalArgs,
    stats: &crate::pipeline::PipelineStats,
    http: &HttpStats,
    outputs: &Outputs,
    evicted: u64,
    post: Option<&PostStats>,
) {
    let problems: u64 = outputs.problems.values().sum();
    if !global.quiet && global.log_format == LogFormat::Text {
        eprintln!(
            "http-trace: {} packets, {} connections ({} evicted), {} requests, {} responses, \
             {} websocket messages ({} incomplete), {} written, {} filtered out, {} problems",
            stats.packets,
            http.connections,
            evicted,
            http.requests,
            http.responses,
            http.websocket_messages,
            http.incomplete_messages,
            outputs.written,
            outputs.filtered_out,
            problems
        );
        if let Some(p) = post {
            eprintln!(
                "http-trace: POST {} sent, {} failed attempts, {} dropped after retries, {} \
                 dropped (queue full), {} abandoned at shutdown",
                p.sent,
                p.attempts_failed,
                p.dropped_after_retries,
                p.dropped_queue_full,
                p.abandoned_at_shutdown
            );
        }
    }
    tracing::info!(
        event = "finished",
        packets = stats.packets,
        connections = http.connections,
        evicted,
        requests = http.requests,
        responses = http.responses,
        websocket_messages = http.websocket_messages,
        incomplete = http.incomplete_messages,
        written = outputs.written,
        filtered_out = outputs.filtered_out,
        problems,
        "http-trace finished"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::PairedRequest;
    use std::net::{IpAddr, Ipv4Addr};

    fn endpoint(last: u8, port: u16) -> Endpoint {
        Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 99, 0, last)),
            port,
        }
    }

    fn message(direction: Direction, ts: i64) -> HttpMessage {
        HttpMessage {
            connection: 7,
            connection_first_ns: 0,
            timestamp_ns: ts,
            client: endpoint(1, 40000),
            server: endpoint(2, 80),
            direction,
            version: "HTTP/1.1",
            method: (direction == Direction::Request).then(|| "GET".into()),
            path: (direction == Direction::Request).then(|| "/a?b=1".into()),
            status_code: (direction == Direction::Response).then_some(200),
            reason: (direction == Direction::Response).then(|| "OK".into()),
            headers: vec![
                ("Host".into(), "example.test".into()),
                ("Cookie".into(), "secret".into()),
                ("cookie".into(), "again".into()),
            ],
            body: b"\xff\x00".to_vec(),
            body_length: 2,
            body_truncated: false,
            body_decoded: false,
            incomplete: false,
            trailers: Vec::new(),
            request: (direction == Direction::Response).then(|| PairedRequest {
                method: "GET".into(),
                path: "/a?b=1".into(),
                timestamp_ns: 1_000_000,
            }),
        }
    }

    fn outputs(redact: &[&str]) -> Outputs {
        Outputs {
            format: Format::Json,
            stdout: None,
            stdout_color: false,
            file: None,
            flush_each: false,
            post: None,
            filters: Filters {
                method: None,
                host: None,
                url: None,
                user_agent: None,
                pending: HashMap::new(),
                latest: HashMap::new(),
                held: 0,
            },
            redact: redact.iter().map(|s| s.to_lowercase()).collect(),
            written: 0,
            filtered_out: 0,
            problems: HashMap::new(),
            logged_problems: HashMap::new(),
            write_error: None,
            ids: CommunityIdHasher::default(),
            unwritten: 0,
            line: Vec::new(),
        }
    }

    #[test]
    fn a_response_line_has_every_key_redacted_headers_base64_body_and_latency() {
        let o = outputs(&["cookie"]);
        let mut json = Vec::new();
        o.message_json(&message(Direction::Response, 3_500_000), &mut json)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["type"], "http");
        assert_eq!(v["direction"], "response");
        assert_eq!(v["status_code"], 200);
        assert_eq!(v["receiver"]["ip"], "10.99.0.2");
        assert_eq!(v["receiver"]["port"], 80);
        assert_eq!(v["destination"]["port"], 40000);
        assert_eq!(v["method"], serde_json::Value::Null);
        assert_eq!(v["request_method"], "GET");
        assert_eq!(v["request_path"], "/a?b=1");
        assert_eq!(v["latency_ms"], 2.5);
        assert_eq!(v["headers"][1]["value"], "[REDACTED]");
        assert_eq!(v["headers"][2]["value"], "[REDACTED]");
        assert_eq!(v["headers"][0]["value"], "example.test");
        assert_eq!(v["body_encoding"], "base64");
        assert_eq!(v["body"], "/wA=");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.003500000Z");
    }

    #[test]
    fn filters_pass_a_matching_request_and_its_response_only() {
        let mut o = outputs(&[]);
        o.filters.url = Some(Regex::new("^/a").unwrap());
        let request = message(Direction::Request, 1_000_000);
        assert!(o.filters.passes(&HttpEvent::Message(request.clone())));
        assert!(
            o.filters
                .passes(&HttpEvent::Message(message(Direction::Response, 2_000_000)))
        );
        let mut other = request;
        other.path = Some("/b".into());
        other.timestamp_ns = 5_000_000;
        assert!(!o.filters.passes(&HttpEvent::Message(other)));
        let mut response = message(Direction::Response, 6_000_000);
        response.request.as_mut().unwrap().timestamp_ns = 5_000_000;
        assert!(!o.filters.passes(&HttpEvent::Message(response)));
        assert!(o.filters.pending.is_empty());
    }

    #[test]
    fn unanswered_requests_hold_at_most_the_trackers_cap_of_verdicts() {
        let mut o = outputs(&[]);
        o.filters.method = Some(Regex::new("GET").unwrap());
        for i in 0..3 * MAX_PENDING_REQUESTS as i64 {
            let request = message(Direction::Request, 1_000 + i);
            assert!(o.filters.passes(&HttpEvent::Message(request)));
        }
        assert_eq!(o.filters.pending[&7].len(), MAX_PENDING_REQUESTS);
        assert_eq!(o.filters.held, MAX_PENDING_REQUESTS + 1);
        // The newest request still pairs with its response.
        let mut response = message(Direction::Response, 9_000_000);
        response.request.as_mut().unwrap().timestamp_ns =
            1_000 + 3 * MAX_PENDING_REQUESTS as i64 - 1;
        assert!(o.filters.passes(&HttpEvent::Message(response)));
        assert_eq!(o.filters.held, MAX_PENDING_REQUESTS);
    }

    #[test]
    fn websocket_text_stays_text_and_binary_is_base64() {
        let mut w = WebSocketMessage {
            connection: 1,
            timestamp_ns: 0,
            client: endpoint(1, 40000),
            server: endpoint(2, 80),
            from: Peer::Client,
            opcode: 0x1,
            fin: true,
            compressed: false,
            payload: b"hi".to_vec(),
            payload_length: 2,
            truncated: false,
            incomplete: false,
            close_code: None,
            close_reason: None,
        };
        let json = |w: &WebSocketMessage| {
            let mut out = Vec::new();
            outputs(&[]).websocket_json(w, &mut out).unwrap();
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        let v = json(&w);
        assert_eq!(
            (v["payload"].as_str(), v["opcode"].as_str()),
            (Some("hi"), Some("text"))
        );
        w.opcode = 0x2;
        let v = json(&w);
        assert_eq!(v["payload"], "aGk=");
        assert_eq!(v["payload_encoding"], "base64");
        assert_eq!(v["direction"], "client_to_server");
    }

    #[test]
    fn ports_become_a_filter() {
        assert_eq!(
            ports_filter(&[80, 8080]).as_deref(),
            Some("tcp and (port 80 or port 8080)")
        );
        assert_eq!(ports_filter(&[]), None);
    }
}
