//! `gophercap tap`: Stethoscope's job. Watch one service's TCP traffic (live, or a capture
//! read with `--read`), reassemble each connection with the core, and hand each direction's
//! bytes to downstream tools — sockets they connect to, sockets tap dials, capture files —
//! with a control plane beside it. The capture thread never waits for a consumer (live or
//! `--pace`): slow consumers cost counted drops, not packets.

pub mod config;
mod events;
mod session;

use super::capture_input::{
    MetricsArgs, drop_to_user, open_offline, serve_metrics, stop_on_signals,
};
use super::{GlobalArgs, LogFormat, Outcome, UsageError};
use crate::flow::TableConfig;
use crate::metrics::{DroppedBytes, Metrics};
use crate::pipeline::{PipelineConfig, run as run_pipeline};
use crate::reassembly::StreamConfig;
use crate::sink::control::{
    Category, ControlConfig as ServerConfig, ControlHandler, ControlServer,
};
use crate::sink::forward::PortAllocator;
use crate::sink::recorder::{PacketRecorder, RecordFormat, RecorderConfig};
use crate::source::Source;
use crate::source::adapt::Paced;
use anyhow::Context;
use clap::Args;
use config::{PcapFormat, TapConfig};
use events::Events;
use serde_json::{Map, Value, json};
use session::{ConnectorPlan, DirectionRule, OutputPlan, Registry, Tap};
use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct TapArgs {
    /// Print a commented example configuration (JSON5, Stethoscope's keys) and exit.
    #[arg(long)]
    pub example_config: bool,
    /// Validate the configuration (as for live capture, unless --read is given) and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Read captures, folders or tarballs instead of capturing live (`-` for stdin).
    #[arg(short = 'r', long = "read", value_name = "INPUT", num_args = 1..)]
    pub read: Vec<PathBuf>,
    /// With --read: deliver packets at the pace they were captured, as if live (the capture
    /// then never waits for a consumer). Without it, as fast as the consumers accept.
    #[arg(long, requires = "read")]
    pub pace: bool,
    /// Live: the interface, instead of the configuration's io.input.capture.iface.
    #[arg(short = 'i', long, value_name = "IFACE", conflicts_with = "read")]
    pub interface: Option<String>,
    /// Console log level (trace, debug, info, warn, error), instead of the configuration's
    /// logging.console.verbosity.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Live: once the interface is open, run as this user (NAME, UID or UID:GID; started as
    /// root), as tcpdump -Z does.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// How long an unpaced offline run waits for a connected consumer that makes no progress
/// before dropping (unless the listener's ack_stall_sec says otherwise).
const DEFAULT_CONSUMER_STALL: Duration = Duration::from_secs(5);
/// How often per-session progress and drop events go to the control plane.
const EVENT_TICK: Duration = Duration::from_secs(1);
/// Bytes all connections together may hold waiting for holes to fill.
const REASSEMBLY_TOTAL_CAP: usize = 256 << 20;

fn parse_level(text: &str) -> Option<tracing::Level> {
    use tracing::Level;
    Some(match text.to_ascii_lowercase().as_str() {
        "trace" => Level::TRACE,
        "debug" => Level::DEBUG,
        "info" => Level::INFO,
        "warn" | "warning" => Level::WARN,
        "error" | "critical" => Level::ERROR,
        _ => return None,
    })
}

/// Console (and optionally file) logging as the configuration says; `--log-level` and
/// `--quiet` override the console only.
fn init_logging(
    global: &GlobalArgs,
    console: tracing::Level,
    file: Option<&(PathBuf, tracing::Level)>,
) -> anyhow::Result<()> {
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::prelude::*;
    let console = if global.quiet {
        tracing::Level::ERROR
    } else {
        console
    };
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let console_layer = match global.log_format {
        LogFormat::Json => stderr.json().flatten_event(true).boxed(),
        LogFormat::Text => stderr
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .boxed(),
    };
    let file_layer = match file {
        Some((path, level)) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).ok();
            }
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    UsageError(format!(
                        "logging.file.path: cannot open {}: {e}",
                        path.display()
                    ))
                })?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(Arc::new(log))
                    .with_ansi(false)
                    .with_target(false)
                    .with_filter(LevelFilter::from_level(*level)),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(console_layer.with_filter(LevelFilter::from_level(console)))
        .with(file_layer)
        .init();
    Ok(())
}

/// The control plane's commands beyond ping and subscribe.
struct Commands {
    registry: Arc<Registry>,
    events: OnceLock<Events>,
}

fn session_id(request: &Map<String, Value>) -> Result<u64, String> {
    request
        .get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| "needs \"id\": a session id (see list_sessions)".to_string())
}

impl ControlHandler for Commands {
    fn commands(&self) -> &[&str] {
        &["stats", "list_sessions", "get_session", "close_session"]
    }

    fn command(
        &self,
        cmd: &str,
        request: &Map<String, Value>,
    ) -> Result<Map<String, Value>, String> {
        let mut reply = Map::new();
        match cmd {
            "stats" => {
                reply.insert("stats".into(), Value::Object(self.registry.stats()));
            }
            "list_sessions" => {
                let sessions: Vec<Value> = self
                    .registry
                    .open_sessions()
                    .iter()
                    .map(|s| Value::Object(s.summary()))
                    .collect();
                reply.insert("sessions".into(), Value::Array(sessions));
            }
            "get_session" => {
                let id = session_id(request)?;
                let session = self
                    .registry
                    .session(id)
                    .ok_or_else(|| format!("no open session {id}"))?;
                reply.insert("session".into(), Value::Object(session.summary()));
            }
            "close_session" => {
                let id = session_id(request)?;
                let events = self.events.get().cloned().unwrap_or_default();
                if !self.registry.close_session(id, &events) {
                    return Err(format!("no open session {id}"));
                }
                tracing::info!(session = id, "session closed by the control plane");
                reply.insert("closed".into(), json!(id));
            }
            other => {
                return Err(format!(
                    "unknown command {other:?}; commands: ping, subscribe, stats, \
                     list_sessions, get_session, close_session"
                ));
            }
        }
        Ok(reply)
    }
}

/// Per-session progress and drop events every second, and the periodic stats (log and
/// control plane), on their own thread so that a quiet capture still reports.
struct Monitor {
    registry: Arc<Registry>,
    events: Events,
    /// Bytes per (session, direction) at the last progress event.
    reported_bytes: HashMap<(u64, usize), u64>,
    /// Drop counters per session at the last drops event.
    reported_drops: HashMap<u64, Value>,
    metrics: Option<Arc<Metrics>>,
}

const DROP_KEYS: [&str; 4] = [
    "dropped_startup_buffer_full",
    "dropped_output_buffer_full",
    "dropped_not_connected",
    "dropped_write_error",
];

impl Monitor {
    fn start(
        registry: Arc<Registry>,
        events: Events,
        stats_every: Option<Duration>,
        metrics: Option<Arc<Metrics>>,
    ) -> anyhow::Result<(Sender<()>, JoinHandle<()>)> {
        let (stop, stopped) = channel::<()>();
        let mut monitor = Monitor {
            registry,
            events,
            reported_bytes: HashMap::new(),
            reported_drops: HashMap::new(),
            metrics,
        };
        let thread = std::thread::Builder::new()
            .name("tap-monitor".into())
            .spawn(move || {
                let mut next_stats = stats_every.map(|e| Instant::now() + e);
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVENT_TICK) {
                    monitor.tick();
                    if let (Some(due), Some(every)) = (next_stats, stats_every)
                        && Instant::now() >= due
                    {
                        next_stats = Some(due + every);
                        monitor.stats();
                    }
                }
            })
            .context("cannot start the stats thread")?;
        Ok((stop, thread))
    }

    fn tick(&mut self) {
        if let Some(metrics) = &self.metrics {
            let o = self.registry.outputs();
            metrics.publish_dropped_bytes(DroppedBytes {
                startup_buffer_full: o.startup_buffer_full,
                output_buffer_full: o.output_buffer_full,
                not_connected: o.not_connected,
                write_error: o.write_error,
                abandoned: o.abandoned,
            });
        }
        let sessions = self.registry.open_sessions();
        let open: HashSet<u64> = sessions.iter().map(|s| s.id).collect();
        self.reported_bytes.retain(|(id, _), _| open.contains(id));
        self.reported_drops.retain(|id, _| open.contains(id));
        if self.events.wants(Category::Flow) {
            for s in &sessions {
                for d in session::Direction::BOTH {
                    let bytes = s.counters[d.index()].bytes.load(Ordering::Relaxed);
                    let before = self.reported_bytes.insert((s.id, d.index()), bytes);
                    if bytes != before.unwrap_or(0) {
                        let mut m = Map::new();
                        m.insert("session".into(), json!(s.id));
                        m.insert("direction".into(), json!(d.as_str()));
                        m.insert("bytes".into(), json!(bytes));
                        m.insert("delta".into(), json!(bytes - before.unwrap_or(0)));
                        self.events.publish(Category::Flow, "data", m);
                    }
                }
            }
        }
        if self.events.wants(Category::Output) {
            for s in &sessions {
                let outputs = s.summary().remove("outputs").unwrap_or(Value::Null);
                let drops: Vec<Value> = outputs
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| {
                        let mut d = Map::new();
                        d.insert("direction".into(), o["direction"].clone());
                        d.insert("output".into(), o["output"].clone());
                        for key in DROP_KEYS {
                            d.insert(key.into(), o["stats"][key].clone());
                        }
                        Value::Object(d)
                    })
                    .collect();
                let any = drops
                    .iter()
                    .any(|d| DROP_KEYS.iter().any(|k| d[k].as_u64().unwrap_or(0) > 0));
                let drops = Value::Array(drops);
                if any && self.reported_drops.get(&s.id) != Some(&drops) {
                    self.reported_drops.insert(s.id, drops.clone());
                    let mut m = Map::new();
                    m.insert("session".into(), json!(s.id));
                    m.insert("drops".into(), drops);
                    self.events.publish(Category::Output, "drops", m);
                }
            }
        }
    }

    fn stats(&self) {
        let stats = self.registry.stats();
        let line = Value::Object(stats.clone());
        tracing::info!(stats = %line, "tap stats");
        self.events.publish(Category::Stats, "stats", stats);
    }
}

fn resolve(host: &str, port: u16, key: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| {
            UsageError(format!(
                "io.output.remote-host.{key}: cannot resolve {host}: {e}"
            ))
        })?
        .collect();
    if addrs.is_empty() {
        return Err(
            UsageError(format!("io.output.remote-host.host: {host} has no address")).into(),
        );
    }
    Ok(addrs)
}

#[cfg(feature = "live")]
fn open_live(
    interface: &str,
    config: &TapConfig,
    stop: Arc<AtomicBool>,
    metrics: Option<&Arc<Metrics>>,
) -> anyhow::Result<Box<dyn Source>> {
    use crate::source::live::{LiveOptions, LiveSource};
    let options = LiveOptions {
        interface: interface.to_string(),
        promiscuous: true,
        snaplen: 262_144,
        buffer_size: config
            .capture
            .pcap_buffer_bytes
            .map_or(0, |b| i32::try_from(b).unwrap_or(i32::MAX)),
        timeout_ms: 100,
        // Forwarded live: each packet as it comes, not in libpcap's batches.
        immediate: true,
    };
    let mut source = LiveSource::open(&options)?;
    source.stop_on(stop);
    if let Some(expression) = &config.capture.bpf_filter {
        source
            .set_filter(expression)
            .map_err(|e| UsageError(format!("io.input.capture.bpf-filter: {e}")))?;
    }
    let every = config
        .runtime
        .stats_interval
        .unwrap_or(Duration::from_secs(60));
    source.watch_health(every, None);
    if let Some(metrics) = metrics {
        let metrics = Arc::clone(metrics);
        source.publish_to(move |counts| metrics.publish_capture(counts));
    }
    Ok(Box::new(source))
}

#[cfg(not(feature = "live"))]
fn open_live(
    _: &str,
    _: &TapConfig,
    _: Arc<AtomicBool>,
    _: Option<&Arc<Metrics>>,
) -> anyhow::Result<Box<dyn Source>> {
    Err(UsageError("live capture needs libpcap: built without the `live` feature".into()).into())
}

/// Descriptors the table is grown to hold before tap starts its threads (or the soft
/// RLIMIT_NOFILE if lower): two sockets per session for connectors, more with listeners and
/// per-session pcap files.
const PRESIZED_DESCRIPTORS: libc::rlim_t = 4096;

/// The process's RLIMIT_NOFILE.
fn descriptor_limit() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit)
}

/// The soft RLIMIT_NOFILE raised to the hard limit, as network daemons do: each session takes
/// sockets (two per connector output, four with listeners) and pcap files, and the common soft
/// default of 1024 would leave the outputs of sessions past the first few hundred without a
/// socket. Returns the soft limit in force afterwards.
fn raise_descriptor_limit() -> Option<libc::rlim_t> {
    let limit = descriptor_limit()?;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given. An unlimited hard limit is refused
        // on some systems (macOS, Linux above nr_open): the soft limit then stays as it was.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Some(raised.rlim_cur);
        }
    }
    Some(limit.rlim_cur)
}

/// Grow the process's descriptor table now, while tap has a single thread. The kernel grows it
/// by doubling as descriptors are opened (64, 128, 256, ...), and in a process with threads
/// each growth waits for an RCU grace period: measured here, four stalls of 4–30 ms (40 ms in
/// all) of the thread that opens a session's sockets, the capture thread. Grown before any
/// thread exists, the table does not wait; `soft_limit` bounds it. Nothing is lost if this
/// fails: the table then grows as before.
fn presize_descriptor_table(soft_limit: libc::rlim_t) {
    let highest = soft_limit.min(PRESIZED_DESCRIPTORS).saturating_sub(1);
    let Ok(highest) = libc::c_int::try_from(highest) else {
        return;
    };
    // F_DUPFD takes the lowest free descriptor at or above `highest`, growing the table to
    // hold it; the duplicate is closed at once, the table keeps its size.
    // SAFETY: duplicating stderr and closing the duplicate touches no descriptor of ours.
    let duplicate = unsafe { libc::fcntl(libc::STDERR_FILENO, libc::F_DUPFD_CLOEXEC, highest) };
    if duplicate >= 0 {
        // SAFETY: `duplicate` was just opened here and is used by nothing else.
        unsafe { libc::close(duplicate) };
    }
}

pub fn run(args: &TapArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    if args.example_config {
        super::init_logging(global, false);
        print!("{}", config::EXAMPLE_CONFIG);
        return Ok(Outcome::default());
    }
    let offline = !args.read.is_empty();
    let loaded = match &global.config {
        Some(path) => TapConfig::load(path, offline || args.interface.is_some())
            .map_err(|e| UsageError(format!("{}: {e}", path.display()))),
        None => Err(UsageError(
            "tap needs --config FILE (see --example-config)".into(),
        )),
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            super::init_logging(global, false);
            return Err(e.into());
        }
    };
    let console = match &args.log_level {
        Some(text) => parse_level(text).ok_or_else(|| {
            super::init_logging(global, false);
            UsageError(format!(
                "--log-level {text:?}: expected trace, debug, info, warn or error"
            ))
        })?,
        None => config.logging.console_level,
    };
    if args.check_config {
        super::init_logging(global, false);
        if !global.quiet {
            eprintln!("tap: configuration is valid");
        }
        return Ok(Outcome::default());
    }
    let descriptors = raise_descriptor_limit();
    if let Some(soft_limit) = descriptors {
        presize_descriptor_table(soft_limit);
    }
    init_logging(global, console, config.logging.file.as_ref())?;
    if let Some(limit) = descriptors {
        tracing::debug!(limit, "file descriptor limit");
    }
    if config.runtime.workers > 1 {
        tracing::debug!(
            workers = config.runtime.workers,
            "runtime.workers: reassembly runs on one thread (faster here than sharding), \
             each output on its own"
        );
    }

    let recorder = config.pcap.as_ref().and_then(|p| {
        let started = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let recorder = PacketRecorder::start(RecorderConfig {
            dir: p.dir.clone(),
            format: match p.format {
                PcapFormat::Pcap => RecordFormat::Pcap,
                PcapFormat::Pcapng => RecordFormat::Pcapng,
            },
            per_session: p.per_session,
            shared_name: format!("tap-{started}"),
            queue_packets: p.queue_size,
            idle_close_ns: p.idle_close.map(|d| d.as_nanos() as i64),
            close_on_fin: p.close_on_fin,
            fin_close_grace_ns: p.fin_close_grace.as_nanos() as i64,
            sync: p.sync,
        });
        match recorder {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("io.output.pcap: {e}; the pcap output is disabled");
                None
            }
        }
    });
    let ports = config
        .listener
        .as_ref()
        .map(|l| PortAllocator::new(l.bind_ip, l.port_range, l.first_ports));
    let registry = Arc::new(Registry::new(
        ports,
        recorder.as_ref().map(PacketRecorder::counters),
    ));
    let commands = Arc::new(Commands {
        registry: Arc::clone(&registry),
        events: OnceLock::new(),
    });
    let control = match &config.control {
        Some(c) => {
            let categories = c
                .default_categories
                .iter()
                .filter_map(|name| Category::parse(name))
                .collect();
            let server = ControlServer::start(
                ServerConfig::new(SocketAddr::new(c.bind_ip, c.listen_port), categories),
                Arc::clone(&commands) as Arc<dyn ControlHandler>,
            )
            .with_context(|| {
                format!(
                    "control plane: cannot listen on {}",
                    SocketAddr::new(c.bind_ip, c.listen_port)
                )
            })?;
            tracing::info!(address = %server.local_addr(), "control plane listening");
            Some(server)
        }
        None => None,
    };
    let events = Events::new(control.as_ref().map(ControlServer::publisher));
    let _ = commands.events.set(events.clone());

    let connector = match &config.connector {
        Some(c) => Some(ConnectorPlan {
            targets: [
                resolve(&c.host, c.requests_port, "host")?,
                resolve(&c.host, c.responses_port, "host")?,
            ],
            connect_timeout: c.connect_timeout,
            retry_every: c.retry_every,
        }),
        None => None,
    };
    let listener_stall = config.listener.as_ref().and_then(|l| l.ack_stall);
    let plan = OutputPlan {
        listener_stall,
        connector,
        startup_bytes: [
            config.capture.requests_buffer_bytes,
            config.capture.responses_buffer_bytes,
        ],
        max_buffer_bytes: config.runtime.max_output_buffer_bytes,
        wait_for_consumers: (offline && !args.pace)
            .then(|| listener_stall.unwrap_or(DEFAULT_CONSUMER_STALL)),
        drain_timeout: config.runtime.drain_timeout,
    };
    if config.listener.is_none() && config.connector.is_none() && config.pcap.is_none() {
        tracing::warn!("no output is enabled: sessions are only counted and reported");
    }

    let stop = stop_on_signals()?;
    let served = serve_metrics(&args.metrics)?;
    let metrics = served.as_ref().map(|s| &s.metrics);
    let mut source: Box<dyn Source> = if offline {
        let source = open_offline(
            &args.read,
            config.capture.bpf_filter.as_deref(),
            Arc::clone(&stop),
            "tap",
        )?;
        if args.pace {
            Box::new(Paced::new(source, Arc::clone(&stop)))
        } else {
            source
        }
    } else {
        let interface = args
            .interface
            .as_deref()
            .or(config.capture.iface.as_deref())
            .ok_or_else(|| {
                UsageError("io.input.capture.iface: required for live capture".into())
            })?;
        let source = open_live(interface, &config, Arc::clone(&stop), metrics)?;
        if let Some(user) = &args.user {
            drop_to_user(user)?;
        }
        source
    };
    if let Some(metrics) = metrics {
        metrics.set_ready();
    }
    tracing::info!(
        input = if offline { "file" } else { "live" },
        filter = config.capture.bpf_filter.as_deref().unwrap_or(""),
        "tap started"
    );
    events.publish(Category::Control, "service_started", {
        let mut m = Map::new();
        m.insert(
            "filter".into(),
            json!(config.capture.bpf_filter.as_deref().unwrap_or("")),
        );
        m
    });
    let (monitor_stop, monitor) = Monitor::start(
        Arc::clone(&registry),
        events.clone(),
        config.runtime.stats_interval,
        metrics.cloned(),
    )?;

    let rule = DirectionRule {
        remote_ip: config.capture.remote_ip,
        remote_port: config.capture.remote_port,
        role: config.role,
    };
    let mut tap = Tap::new(rule, plan, Arc::clone(&registry), events.clone(), recorder);
    let pipeline = PipelineConfig {
        table: TableConfig {
            idle_timeout_ns: Some(config.capture.session_idle.as_nanos() as u64),
            max_flows: None,
        },
        count: None,
        decode: Default::default(),
        reassembly: Some(StreamConfig::default()),
        reassembly_total_cap: REASSEMBLY_TOTAL_CAP,
        zeek: false,
        metrics: metrics.cloned(),
    };
    let (stats, error) = run_pipeline(source.as_mut(), &pipeline, &mut tap);
    drop(source);
    if stop.load(Ordering::Relaxed) {
        tracing::info!("stopping: draining the outputs");
    }
    let recorder_stats = tap.finish();
    events.publish(Category::Control, "service_stopping", Map::new());
    let _ = monitor_stop.send(());
    let _ = monitor.join();
    if let Some(e) = &error {
        tracing::error!("{e}; the sessions before it were delivered");
    }
    report(global, &registry, stats.packets, recorder_stats);
    if let Some(server) = control {
        server.shutdown();
    }
    Ok(Outcome {
        damaged_inputs: error.is_some(),
    })
}

fn report(
    global: &GlobalArgs,
    registry: &Registry,
    packets: u64,
    recorder: Option<crate::sink::recorder::RecorderStats>,
) {
    let t = &registry.totals;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let o = registry.outputs();
    if !global.quiet && global.log_format == LogFormat::Text {
        eprintln!(
            "tap: {packets} packets, {} sessions, {} request bytes, {} response bytes, {} gaps \
             ({} bytes); outputs delivered {} bytes, dropped {} (startup buffer full), {} \
             (output buffer full), {} (not connected), {} (write error), {} abandoned",
            get(&t.sessions_opened),
            get(&t.bytes[0]),
            get(&t.bytes[1]),
            get(&t.gaps),
            get(&t.gap_bytes),
            o.delivered,
            o.startup_buffer_full,
            o.output_buffer_full,
            o.not_connected,
            o.write_error,
            o.abandoned,
        );
        let without_ports = get(&t.sessions_without_ports);
        if without_ports > 0 {
            eprintln!(
                "tap: {without_ports} sessions got no listener ports (the range was in use): \
                 their bytes went to no listener"
            );
        }
        if let Some(r) = recorder {
            eprintln!(
                "tap: pcap {} packets written in {} files, {} dropped (queue full), {} \
                 (write error)",
                r.packets_written, r.files_opened, r.dropped_queue_full, r.dropped_write_error
            );
        }
    }
    tracing::info!(
        packets,
        sessions = get(&t.sessions_opened),
        requests_bytes = get(&t.bytes[0]),
        responses_bytes = get(&t.bytes[1]),
        gaps = get(&t.gaps),
        delivered = o.delivered,
        dropped_startup_buffer_full = o.startup_buffer_full,
        dropped_output_buffer_full = o.output_buffer_full,
        dropped_not_connected = o.not_connected,
        dropped_write_error = o.write_error,
        abandoned = o.abandoned,
        "tap finished"
    );
}

#[cfg(test)]
mod tests {
    /// The size of this process's descriptor table, from /proc (Linux only).
    #[cfg(target_os = "linux")]
    fn descriptor_table_size() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("FDSize in /proc/self/status")
    }

    fn descriptor_limit() -> libc::rlimit {
        super::descriptor_limit().expect("getrlimit")
    }

    #[test]
    fn the_soft_descriptor_limit_is_raised_to_the_hard_one() {
        let before = descriptor_limit();
        // Lowered first (always allowed), so that there is something to raise; not below what
        // the test of the table's size expects, which may run meanwhile.
        let lowered = libc::rlimit {
            rlim_cur: before.rlim_cur.min(super::PRESIZED_DESCRIPTORS),
            rlim_max: before.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
        let reported = super::raise_descriptor_limit();
        let after = descriptor_limit();
        assert_eq!(reported, Some(after.rlim_cur));
        assert_eq!(after.rlim_max, before.rlim_max);
        if before.rlim_max != libc::RLIM_INFINITY {
            assert_eq!(after.rlim_cur, before.rlim_max);
        } else {
            assert!(after.rlim_cur >= lowered.rlim_cur);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_descriptor_table_is_grown_up_front_within_the_soft_limit() {
        let soft_limit = descriptor_limit().rlim_cur;
        let expected = soft_limit.min(super::PRESIZED_DESCRIPTORS);
        super::presize_descriptor_table(soft_limit);
        assert!(
            descriptor_table_size() >= expected,
            "table of {} descriptors, expected at least {expected}",
            descriptor_table_size()
        );
    }
}
