//! `gophercap replay`: many captures on one global timeline, onto an interface or into a file.
//! Files written in parallel and rotated out of sync are merged into one time-ordered stream
//! and each packet is sent at its absolute deadline — the temporal fidelity GopherCap exists
//! for. The timeline is `schedule`'s; merging, bounds and shifts are the source layer's.

use super::filter::{check_filter, packet_filter};
use super::progress::progress;
use super::{GlobalArgs, LogFormat, Outcome, UsageError};
use crate::catalog::Catalog;
use crate::decode::{DecodeOptions, LinkKind, decode};
#[cfg(feature = "live")]
use crate::schedule::{CatchUp, RealTimeBudget, wait_until};
use crate::schedule::{LatenessHistogram, Pace, Timeline, tighten_timer_slack};
use crate::sink::capture::PcapFile;
#[cfg(feature = "live")]
use crate::sink::interface::Dropped;
use crate::source::adapt::{StartAt, TimeBounded};
use crate::source::input::{InputError, expand, open_sources};
use crate::source::threaded::{Backpressure, ThreadedSource};
use crate::source::{InputKind, MergedSource, Selection, Source};
use crate::time::format_ts;
use anyhow::Context;
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Captures, folders and tarballs to replay together (instead of --dump-json).
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// The catalog `gophercap map --dump-json` wrote: replay its captures.
    #[arg(long, value_name = "PATH")]
    pub dump_json: Option<PathBuf>,
    /// Only files (and tar members) whose name ends with this.
    #[arg(long, value_name = "SUFFIX")]
    pub file_suffix: Option<String>,
    /// Only files (and tar members) whose full path matches this regular expression.
    #[arg(long, value_name = "RE")]
    pub file_regexp: Option<String>,
    /// Send on this interface.
    #[arg(long, value_name = "IFACE", required_unless_present = "out_pcap")]
    pub out_interface: Option<String>,
    /// Write the schedule into this pcap (replay-time timestamps) instead of sending.
    #[arg(long, value_name = "FILE", conflicts_with = "out_interface")]
    pub out_pcap: Option<PathBuf>,
    /// Speed factor: 2 replays twice as fast, 0.5 half as fast.
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub time_modifier: f64,
    /// Fit the whole set into --time-scale-duration.
    #[arg(long, requires = "time_scale_duration")]
    pub time_scale_enabled: bool,
    /// The duration the set is scaled to, e.g. 90s, 15m, 2h (plain numbers are seconds).
    #[arg(long, value_name = "D")]
    pub time_scale_duration: Option<String>,
    /// Play the set this many times.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub loop_count: u64,
    /// Play the set until interrupted.
    #[arg(long)]
    pub loop_infinite: bool,
    /// Only send packets that match this BPF expression.
    #[arg(long, value_name = "EXPR")]
    pub out_bpf: Option<String>,
    /// Skip packets before this time (RFC 3339, or `YYYY-MM-DD HH:MM:SS` in UTC).
    #[arg(long, value_name = "TIME")]
    pub time_from: Option<String>,
    /// Stop at packets after this time (RFC 3339, or `YYYY-MM-DD HH:MM:SS` in UTC).
    #[arg(long, value_name = "TIME")]
    pub time_to: Option<String>,
    /// Skip packets whose IP packet is larger than this (default: the interface's MTU).
    #[arg(long, value_name = "N")]
    pub skip_mtu: Option<u32>,
    /// Start every file at once instead of at its delay from the set's start.
    #[arg(long)]
    pub wait_disable: bool,
    /// Send as fast as possible.
    #[arg(long, conflicts_with_all = ["pps", "mbps"])]
    pub topspeed: bool,
    /// Send at this many packets per second.
    #[arg(long, value_name = "N", conflicts_with = "mbps")]
    pub pps: Option<f64>,
    /// Send at this many megabits per second.
    #[arg(long, value_name = "N")]
    pub mbps: Option<f64>,
    /// Log progress every this many seconds (0 disables).
    #[arg(long, value_name = "S", default_value_t = 0.0)]
    pub stats_interval: f64,
}

/// How long before a deadline the sender stops sleeping and spins: a virtual machine's timer
/// can wake a sleeper 100 µs or more late even with the slack tightened, so gaps under 2 ms
/// are spun outright (as tcpreplay does) and only longer ones sleep.
#[cfg(feature = "live")]
const SPIN: Duration = Duration::from_millis(2);

/// Parse a time bound: RFC 3339, or `YYYY-MM-DD HH:MM:SS[.frac]` taken as UTC.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc())
        })
        .map_err(|_| format!("{text:?} is not RFC 3339 or YYYY-MM-DD HH:MM:SS"))?;
    parsed
        .timestamp_nanos_opt()
        .ok_or_else(|| format!("{text:?} is out of range"))
}

/// Parse a duration: a number of seconds with an optional unit (ms, s, m, h).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 90s, 15m, 2h)"))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("{text:?}: a duration must be positive"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

enum Output {
    /// The capture is created at the first packet, whose link type it takes.
    Pcap(PcapFile),
    #[cfg(feature = "live")]
    Interface(crate::sink::interface::InterfaceSink),
}

/// Validated options.
struct ReplayOptions {
    captures: Vec<PathBuf>,
    /// Which members of tarballs named as inputs are replayed.
    selection: Selection,
    /// From the catalog: the set's span, for scaling before anything is read.
    catalog_span: Option<(i64, i64)>,
    pace_mode: PaceMode,
    loops: Option<u64>,
    filter: Option<String>,
    from_ns: Option<i64>,
    to_ns: Option<i64>,
    skip_mtu: Option<u32>,
    wait_disable: bool,
    stats_interval: Option<Duration>,
}

#[derive(Clone, Copy, Debug)]
enum PaceMode {
    Speed(f64),
    ScaleTo(Duration),
    Pps(f64),
    Mbps(f64),
    Top,
}

fn positive(name: &str, v: f64) -> Result<f64, UsageError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(UsageError(format!(
            "{name} must be a number above 0, not {v}"
        )))
    }
}

impl ReplayOptions {
    fn from_args(args: &ReplayArgs) -> anyhow::Result<Self> {
        let selection = Selection {
            suffix: args.file_suffix.clone(),
            regexp: match &args.file_regexp {
                Some(re) => Some(
                    regex::Regex::new(re).map_err(|e| UsageError(format!("--file-regexp: {e}")))?,
                ),
                None => None,
            },
        };
        let (captures, catalog_span) = match (&args.dump_json, args.inputs.is_empty()) {
            (Some(_), false) => {
                return Err(
                    UsageError("give either --dump-json or inputs, not both".into()).into(),
                );
            }
            (None, true) => {
                return Err(
                    UsageError("replay: no inputs; name captures or --dump-json".into()).into(),
                );
            }
            (Some(path), true) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
                let catalog: Catalog = serde_json::from_str(&text).map_err(|e| {
                    UsageError(format!(
                        "{} is not a gophercap map document: {e}",
                        path.display()
                    ))
                })?;
                let span = catalog.first_ts_ns.zip(catalog.last_ts_ns);
                let paths = catalog
                    .captures
                    .iter()
                    .map(|c| PathBuf::from(&c.path))
                    .collect();
                (paths, span)
            }
            (None, false) => {
                let inputs = expand(&args.inputs, &selection).map_err(|e| match e {
                    InputError::Missing { .. } => anyhow::Error::new(UsageError(e.to_string())),
                    InputError::Io { .. } => anyhow::Error::new(e),
                })?;
                let mut paths = Vec::new();
                for input in inputs {
                    match input {
                        InputKind::File { path, .. } => paths.push(path),
                        InputKind::Stdin => {
                            return Err(UsageError("replay reads files, not stdin".into()).into());
                        }
                    }
                }
                (paths, None)
            }
        };
        let pace_mode = if args.topspeed {
            PaceMode::Top
        } else if let Some(pps) = args.pps {
            PaceMode::Pps(positive("--pps", pps)?)
        } else if let Some(mbps) = args.mbps {
            PaceMode::Mbps(positive("--mbps", mbps)?)
        } else if args.time_scale_enabled {
            let text = args.time_scale_duration.as_deref().unwrap_or_default();
            PaceMode::ScaleTo(parse_duration(text).map_err(UsageError)?)
        } else {
            PaceMode::Speed(positive("--time-modifier", args.time_modifier)?)
        };
        let bound = |t: &Option<String>, flag: &str| -> Result<Option<i64>, UsageError> {
            t.as_deref()
                .map(|t| parse_time(t).map_err(|e| UsageError(format!("{flag}: {e}"))))
                .transpose()
        };
        if let Some(expression) = &args.out_bpf {
            check_filter(expression)?;
        }
        Ok(ReplayOptions {
            captures,
            selection,
            catalog_span,
            pace_mode,
            loops: (!args.loop_infinite).then_some(args.loop_count.max(1)),
            filter: args.out_bpf.clone(),
            from_ns: bound(&args.time_from, "--time-from")?,
            to_ns: bound(&args.time_to, "--time-to")?,
            skip_mtu: args.skip_mtu,
            wait_disable: args.wait_disable,
            stats_interval: (args.stats_interval > 0.0)
                .then(|| Duration::from_secs_f64(args.stats_interval)),
        })
    }
}

/// Everything counted during a replay.
#[derive(Default)]
struct Stats {
    sent: u64,
    bytes: u64,
    skipped: BTreeMap<&'static str, u64>,
    failed: BTreeMap<&'static str, u64>,
    lateness: LatenessHistogram,
}

impl Stats {
    fn skip(&mut self, reason: &'static str) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    /// Frames that were counted as sent (queued) but the kernel refused.
    #[cfg(feature = "live")]
    fn drop(&mut self, dropped: Dropped) {
        *self.failed.entry(dropped.failure.name()).or_default() += dropped.frames as u64;
        self.sent = self.sent.saturating_sub(dropped.frames as u64);
        self.bytes = self.bytes.saturating_sub(dropped.bytes as u64);
    }

    fn line(&self, elapsed: Duration, timed: bool) -> String {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let mut text = format!(
            "{} packets, {} bytes sent in {:.3} s ({:.0} pps, {:.3} Mbit/s)",
            self.sent,
            self.bytes,
            secs,
            self.sent as f64 / secs,
            self.bytes as f64 * 8.0 / secs / 1e6
        );
        if timed && self.lateness.count() > 0 {
            text.push_str(&format!(
                "; lateness p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
                self.lateness.quantile_ns(0.5) as f64 / 1e3,
                self.lateness.quantile_ns(0.99) as f64 / 1e3,
                self.lateness.max_ns() as f64 / 1e3
            ));
        }
        for (what, map) in [("skipped", &self.skipped), ("send errors", &self.failed)] {
            if !map.is_empty() {
                let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
                text.push_str(&format!("; {what}: {}", parts.join(", ")));
            }
        }
        text
    }
}

/// The merged, bounded, maybe shifted stream of one pass over the set.
fn open_set(options: &ReplayOptions) -> anyhow::Result<MergedSource<Box<dyn Source>>> {
    let sources = open_sources(&options.captures, &options.selection)?
        .into_iter()
        .map(|source| {
            let bounded = TimeBounded::new(source, options.from_ns, options.to_ns);
            if options.wait_disable {
                Box::new(StartAt::new(bounded, 0)) as Box<dyn Source>
            } else {
                Box::new(bounded)
            }
        })
        .collect();
    Ok(MergedSource::new(sources))
}

/// One pass over the set read on its own thread, ahead of the sender: a refill of a reader's
/// 1 MiB window (or a page the cache lost) takes from a few hundred microseconds to milliseconds,
/// and in the sending thread every packet due meanwhile would leave that much late. The thread
/// stays up to a few batches ahead (see `ThreadedSource`), so such a stall only empties the
/// queue a little; it polls for room, so the sender never spends a wake-up on it.
struct ReadAhead {
    source: ThreadedSource,
    /// How opening the set went, sent once before the first packet.
    opened: Receiver<anyhow::Result<()>>,
}

impl ReadAhead {
    fn spawn(options: &Arc<ReplayOptions>) -> Self {
        let options = Arc::clone(options);
        let (report, opened) = sync_channel(1);
        let source =
            ThreadedSource::spawn_with("replay".into(), Backpressure::Poll, move |sender| {
                let mut merged = match open_set(&options) {
                    Ok(merged) => {
                        let _ = report.send(Ok(()));
                        merged
                    }
                    Err(e) => {
                        let _ = report.send(Err(e));
                        return Ok(());
                    }
                };
                loop {
                    match merged.next_packet() {
                        Ok(Some(packet)) => {
                            if !sender.send(&packet) {
                                return Ok(()); // the replay stopped
                            }
                        }
                        Ok(None) => return Ok(()),
                        Err(e) => tracing::warn!("{e}; the rest of that file is skipped"),
                    }
                }
            });
        ReadAhead { source, opened }
    }

    /// The pass's packets, once the set is open.
    fn start(self) -> anyhow::Result<ThreadedSource> {
        match self.opened.recv() {
            Ok(Ok(())) => Ok(self.source),
            Ok(Err(e)) => Err(e),
            Err(_) => anyhow::bail!("the replay's reader thread ended before opening the set"),
        }
    }
}

/// The set's first and last packet time (after bounds and shifts), from the catalog when it
/// covers the same stream, else by a pass over the set's times.
fn set_span(options: &ReplayOptions) -> anyhow::Result<Option<(i64, i64)>> {
    if let Some(span) = options.catalog_span
        && options.from_ns.is_none()
        && options.to_ns.is_none()
        && !options.wait_disable
    {
        return Ok(Some(span));
    }
    let mut merged = open_set(options)?;
    let mut span: Option<(i64, i64)> = None;
    loop {
        match merged.next_packet() {
            Ok(Some(p)) => {
                span = Some(span.map_or((p.ts_ns, p.ts_ns), |(f, l)| {
                    (f.min(p.ts_ns), l.max(p.ts_ns))
                }));
            }
            Ok(None) => break,
            Err(e) => tracing::warn!("{e}"),
        }
    }
    Ok(span)
}

pub fn run(args: &ReplayArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let options = Arc::new(ReplayOptions::from_args(args)?);
    let Some((first_ns, last_ns)) = set_span(&options)? else {
        tracing::warn!("nothing to replay: no packets in the set");
        return Ok(Outcome::default());
    };
    let span_ns = (last_ns - first_ns).max(0) as u64;
    let pace = match options.pace_mode {
        PaceMode::Speed(speed) => Pace::Timed { speed },
        PaceMode::ScaleTo(target) => Pace::Timed {
            speed: if span_ns == 0 {
                1.0
            } else {
                span_ns as f64 / target.as_nanos() as f64
            },
        },
        PaceMode::Pps(n) => Pace::PacketsPerSecond(n),
        PaceMode::Mbps(n) => Pace::Megabits(n),
        PaceMode::Top => Pace::TopSpeed,
    };
    let mut output = match (&args.out_pcap, &args.out_interface) {
        (Some(path), _) => Output::Pcap(PcapFile::new(path)),
        (None, Some(name)) => open_interface(name)?,
        (None, None) => unreachable!("clap requires an output"),
    };
    let mtu = options.skip_mtu.or(match &output {
        #[cfg(feature = "live")]
        Output::Interface(_) => args
            .out_interface
            .as_deref()
            .and_then(crate::sink::interface::interface_mtu),
        Output::Pcap(_) => None,
    });
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))
            .context("cannot install the signal handler")?;
    }
    let mut filter = packet_filter(options.filter.as_deref());
    let mut timeline = Timeline::new(pace, first_ns);
    let mut stats = Stats::default();
    // Into a file the schedule is written, not waited for.
    let sleeping = !matches!(output, Output::Pcap(_)) && pace != Pace::TopSpeed;
    let bar = progress(0, "packets", global.quiet);
    let started = Instant::now();
    #[cfg(feature = "live")]
    let mut clock_start: Option<Instant> = None;
    #[cfg(feature = "live")]
    let mut catch_up = CatchUp::default();
    #[cfg(feature = "live")]
    let mut real_time = None;
    if sleeping {
        tighten_timer_slack();
        #[cfg(feature = "live")]
        {
            let budget = RealTimeBudget::new();
            tracing::debug!(real_time = budget.allowed(), "sender scheduling");
            real_time = Some(budget);
        }
    }
    let mut next_stats = options.stats_interval.map(|i| started + i);
    let mut pass = 0u64;
    // Timed sends read on another thread, one pass ahead at the seams of a loop; files and top
    // speed read in line, where nothing waits on a deadline and a copy would only cost.
    let mut ahead = sleeping.then(|| ReadAhead::spawn(&options));
    'passes: while options.loops.is_none_or(|n| pass < n) {
        if pass > 0 {
            timeline.next_loop(span_ns);
        }
        pass += 1;
        let mut merged: Box<dyn Source> = match ahead.take() {
            Some(reader) => {
                let source = reader.start()?;
                if options.loops.is_none_or(|n| pass < n) {
                    ahead = Some(ReadAhead::spawn(&options));
                }
                Box::new(source)
            }
            None => Box::new(open_set(&options)?),
        };
        loop {
            if interrupted.load(Ordering::Relaxed) {
                break 'passes;
            }
            let packet = match merged.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("{e}; the rest of that file is skipped");
                    continue;
                }
            };
            match filter(&packet) {
                Ok(true) => {}
                Ok(false) => {
                    stats.skip("filter");
                    continue;
                }
                Err(e) => return Err(anyhow::anyhow!(e)),
            }
            if let Some(mtu) = mtu {
                let decoded = decode(packet.link_type.0, packet.data, &DecodeOptions::default());
                let header = match decoded.link.kind {
                    LinkKind::Ethernet => 14 + 4 * usize::from(decoded.link.vlan.count()),
                    _ => 0,
                };
                if packet.data.len().saturating_sub(header) > mtu as usize {
                    stats.skip("mtu");
                    continue;
                }
            }
            let deadline_ns = timeline.deadline(packet.ts_ns, packet.orig_len as usize);
            match &mut output {
                Output::Pcap(file) => {
                    let ts = first_ns.saturating_add(deadline_ns as i64);
                    let written = file
                        .write(packet.link_type.0, ts, packet.data, packet.orig_len)
                        .with_context(|| format!("cannot write {}", file.path().display()))?;
                    if !written {
                        stats.skip("link_type");
                        continue;
                    }
                }
                #[cfg(feature = "live")]
                Output::Interface(sink) => {
                    if sink.link_type() != packet.link_type.0 {
                        stats.skip("link_type");
                        continue;
                    }
                    if sleeping {
                        // The clock starts at the first packet, after inputs are open.
                        let start = *clock_start.get_or_insert_with(Instant::now);
                        let send_at = start + Duration::from_nanos(catch_up.hold(deadline_ns));
                        let now = Instant::now();
                        if let Some(budget) = &mut real_time {
                            budget.before_wait(now);
                        }
                        let sent = if now < send_at {
                            // Queued frames were due when read (a burst, or a late sender):
                            // they leave together now; this one is waited for and leaves
                            // alone at once, with nothing read or decided in between.
                            counted(sink.flush(), &mut stats, sink)?;
                            wait_until(send_at, SPIN);
                            let sent = Instant::now();
                            let queued = sink.queue(packet.data);
                            counted(queued.and_then(|()| sink.flush()), &mut stats, sink)?;
                            sent
                        } else {
                            // Already due: it joins the batch that leaves before the next
                            // wait (one sendmmsg, not a syscall per frame of a burst).
                            counted(sink.queue(packet.data), &mut stats, sink)?;
                            Instant::now()
                        };
                        let sent_ns = sent.saturating_duration_since(start).as_nanos() as u64;
                        catch_up.sent(deadline_ns, sent_ns);
                        stats.lateness.record(sent_ns.saturating_sub(deadline_ns));
                    } else {
                        counted(sink.queue(packet.data), &mut stats, sink)?;
                    }
                }
            }
            // Counted now; a frame a batch later fails to send is taken back off (Stats::drop).
            stats.sent += 1;
            stats.bytes += packet.data.len() as u64;
            if stats.sent % 1024 == 0 {
                bar.set_position(stats.sent);
                if let Some(at) = next_stats
                    && Instant::now() >= at
                {
                    tracing::info!("{}", stats.line(started.elapsed(), sleeping));
                    next_stats = options.stats_interval.map(|i| at + i);
                }
            }
        }
        // The last frames of a pass were due when read: they leave now, not after the reader's
        // teardown (350 µs late, measured) or the next pass's first wait.
        #[cfg(feature = "live")]
        if let Output::Interface(sink) = &mut output {
            counted(sink.flush(), &mut stats, sink)?;
        }
    }
    bar.finish_and_clear();
    #[cfg(feature = "live")]
    if let Output::Interface(sink) = &mut output
        && let Err(dropped) = sink.flush()
    {
        stats.drop(dropped);
    }
    match output {
        Output::Pcap(file) => {
            let path = file.path().to_path_buf();
            file.finish()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        #[cfg(feature = "live")]
        Output::Interface(_) => {}
    }
    let elapsed = started.elapsed();
    let summary = stats.line(elapsed, sleeping);
    let stopped = if interrupted.load(Ordering::Relaxed) {
        " (interrupted)"
    } else {
        ""
    };
    if !global.quiet && global.log_format == LogFormat::Text {
        eprintln!(
            "replay{stopped}: {summary}; set {} to {}, {pass} pass(es)",
            format_ts(first_ns),
            format_ts(last_ns)
        );
    }
    tracing::info!(
        sent = stats.sent,
        bytes = stats.bytes,
        elapsed_s = elapsed.as_secs_f64(),
        lateness_p50_ns = stats.lateness.quantile_ns(0.5),
        lateness_p99_ns = stats.lateness.quantile_ns(0.99),
        lateness_max_ns = stats.lateness.max_ns(),
        interrupted = !stopped.is_empty(),
        "replay finished"
    );
    Ok(Outcome {
        damaged_inputs: !stats.failed.is_empty(),
    })
}

/// Count the frames a send dropped; stop the replay on a fatal failure.
#[cfg(feature = "live")]
fn counted(
    result: Result<(), Dropped>,
    stats: &mut Stats,
    sink: &crate::sink::interface::InterfaceSink,
) -> anyhow::Result<()> {
    if let Err(dropped) = result {
        stats.drop(dropped);
        if dropped.failure == crate::sink::interface::SendFailure::Fatal {
            anyhow::bail!("sending stopped: {}", sink.last_error());
        }
    }
    Ok(())
}

#[cfg(feature = "live")]
fn open_interface(name: &str) -> anyhow::Result<Output> {
    crate::sink::interface::InterfaceSink::open(name)
        .map(Output::Interface)
        .map_err(|e| anyhow::anyhow!(crate::source::live::explain_open_error(name, &e)))
}

#[cfg(not(feature = "live"))]
fn open_interface(_name: &str) -> anyhow::Result<Output> {
    Err(UsageError("--out-interface needs libpcap: built without the `live` feature".into()).into())
}
