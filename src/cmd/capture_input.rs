//! Where the packet-reading subcommands (`flows`, `http-trace`) get their packets, the same way:
//! captures, folders and tarballs merged by time (or stdin) behind the optional BPF filter, or a
//! live interface with the filter compiled into the kernel. A stop flag (set by SIGINT/SIGTERM)
//! ends either kind at the next packet, so what was read so far is still reported.

use super::UsageError;
use super::filter::filtered_source;
use crate::metrics::Metrics;
use crate::server::{Server, parse_listen_address};
use crate::source::adapt::StopOnFlag;
use crate::source::input::{InputError, expand, open_sources, open_stdin_until};
use crate::source::{InputKind, MergedSource, OpenedInput, Selection, Source};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// libpcap settings of a live capture.
#[derive(Clone, Debug, Args)]
pub struct LiveArgs {
    /// Live capture: bytes kept per packet.
    #[arg(long, value_name = "N", default_value_t = 262_144)]
    pub snaplen: i32,
    /// Live capture: promiscuous mode (the default).
    #[arg(long, overrides_with = "no_promiscuous")]
    pub promiscuous: bool,
    /// Live capture: not promiscuous.
    #[arg(long, overrides_with = "promiscuous")]
    pub no_promiscuous: bool,
    /// Live capture: read timeout in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub timeout_ms: i32,
    /// Live capture: kernel buffer in MiB (0 keeps libpcap's default).
    #[arg(long, value_name = "MB", default_value_t = 0)]
    pub buffer_size_mb: i32,
    /// Live capture: hand over each packet at once.
    #[arg(long, overrides_with = "no_immediate_mode")]
    pub immediate_mode: bool,
    /// Live capture: let libpcap batch packets (the default).
    #[arg(long, overrides_with = "immediate_mode")]
    pub no_immediate_mode: bool,
    /// Live capture: once the interface is open, run as this user (NAME, UID or UID:GID;
    /// started as root), as tcpdump -Z does. Output files opened after it belong to that user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
}

/// Prometheus metrics of a long run.
#[derive(Clone, Debug, Default, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics on /metrics, with /healthz and /readyz (ready once the
    /// capture is open), at this address: HOST:PORT, [IPv6]:PORT or :PORT. Off unless given.
    #[arg(long, value_name = "ADDR", env = "METRICS_ADDR")]
    pub metrics_addr: Option<String>,
}

/// The run's metrics and the server that exposes them (dropping it stops the server).
pub struct ServedMetrics {
    pub metrics: Arc<Metrics>,
    _server: Server,
}

/// Start the metrics server when `--metrics-addr` was given. A malformed address is a usage
/// error; one that cannot be bound fails the run before any capture starts.
pub fn serve_metrics(args: &MetricsArgs) -> anyhow::Result<Option<ServedMetrics>> {
    let Some(text) = &args.metrics_addr else {
        return Ok(None);
    };
    let address =
        parse_listen_address(text).map_err(|e| UsageError(format!("--metrics-addr: {e}")))?;
    let metrics = Arc::new(Metrics::new());
    let server = metrics.serve(address)?;
    tracing::info!(address = %server.address(), "serving /metrics, /healthz and /readyz");
    Ok(Some(ServedMetrics {
        metrics,
        _server: server,
    }))
}

/// Run as `user` from now on; an unknown user is a usage error.
pub fn drop_to_user(user: &str) -> anyhow::Result<()> {
    use crate::sys::privileges::{PrivilegeError, drop_to_user};
    drop_to_user(user).map_err(|e| match e {
        PrivilegeError::UnknownUser(_) => UsageError(e.to_string()).into(),
        e => e.into(),
    })
}

/// A flag that SIGINT and SIGTERM set.
pub fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// Captures, folders and tarballs (or `-` for stdin) merged by time, filtered, ending when
/// `stop` is set. `command` names the subcommand in errors.
pub fn open_offline(
    inputs: &[PathBuf],
    filter: Option<&str>,
    stop: Arc<AtomicBool>,
    command: &str,
) -> anyhow::Result<Box<dyn Source>> {
    let inputs = expand(inputs, &Selection::default()).map_err(|e| match e {
        InputError::Missing { .. } => anyhow::Error::new(UsageError(e.to_string())),
        InputError::Io { .. } => anyhow::Error::new(e),
    })?;
    let mut paths = Vec::new();
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    for input in inputs {
        match input {
            InputKind::File { path, .. } => paths.push(path),
            InputKind::Stdin => match open_stdin_until(Arc::clone(&stop))? {
                OpenedInput::Capture(reader) => sources.push(Box::new(reader)),
                OpenedInput::Archive(_) => {
                    return Err(UsageError(format!(
                        "{command} reads a capture on stdin, not a tarball"
                    ))
                    .into());
                }
            },
        }
    }
    sources.extend(open_sources(&paths, &Selection::default())?);
    let merged = filtered_source(Box::new(MergedSource::new(sources)), filter);
    Ok(Box::new(StopOnFlag::new(merged, stop)))
}

/// A live interface, filtered in the kernel, ending when `stop` is set.
#[cfg(feature = "live")]
pub fn open_live(
    live: &LiveArgs,
    interface: &str,
    filter: Option<&str>,
    stop: Arc<AtomicBool>,
    metrics: Option<&Arc<Metrics>>,
) -> anyhow::Result<crate::source::live::LiveSource> {
    use crate::source::live::{LiveOptions, LiveSource};
    let options = LiveOptions {
        interface: interface.to_string(),
        promiscuous: !live.no_promiscuous,
        snaplen: live.snaplen,
        buffer_size: live.buffer_size_mb.saturating_mul(1 << 20),
        timeout_ms: live.timeout_ms,
        immediate: live.immediate_mode,
    };
    let mut source = LiveSource::open(&options)?;
    source.stop_on(stop);
    if let Some(expression) = filter {
        source.set_filter(expression).map_err(UsageError)?;
    }
    if let Some(metrics) = metrics {
        let metrics = Arc::clone(metrics);
        source.publish_to(move |counts| metrics.publish_capture(counts));
    }
    if let Some(user) = &live.user {
        drop_to_user(user)?;
    }
    Ok(source)
}
