//! The command line: global options, one module per subcommand, logging, and the mapping of
//! outcomes to exit codes. Subcommands wire sources, the core and sinks together; they hold no
//! format or protocol logic of their own.

mod capture_input;
mod config;
mod filter;
pub mod flows;
pub mod http_trace;
#[cfg(feature = "live")]
pub mod list_interfaces;
pub mod map;
mod progress;
pub mod replay;
pub mod tap;
pub mod tar_extract;
pub mod webhook;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::{self, IsTerminal};
use std::path::PathBuf;

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    /// Some inputs were damaged or unreadable; the rest was done.
    pub const DAMAGED: i32 = 1;
    pub const USAGE: i32 = 2;
    /// A runtime failure such as a capture permission error or an unwritable output.
    pub const RUNTIME: i32 = 3;
}

/// A mistake in how gophercap was called (exit code 2), as opposed to a failure while running.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// What a finished command reports for the exit code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub damaged_inputs: bool,
}

#[derive(Debug, Parser)]
#[command(
    name = "gophercap",
    version,
    about = "Offline-first pcap toolkit: map capture sets, replay, extract, analyse flows.",
    propagate_version = true,
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr; no progress bar or summary line.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// TOML file of option defaults: top-level keys for global options, a table per
    /// subcommand (`[map]`) for its options; the command line overrides it.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Metadata of every capture in files, folders and tarballs, in parallel, as JSON.
    Map(map::MapArgs),
    /// The flow table: per-packet lines, TCP state and analysis, exported as JSON or CSV.
    Flows(flows::FlowsArgs),
    /// HTTP/1.x and WebSocket messages from reassembled TCP, as JSON lines, files or POSTs.
    HttpTrace(http_trace::HttpTraceArgs),
    /// Replay many captures on one global timeline, onto an interface or into a file.
    Replay(replay::ReplayArgs),
    /// Reassembled TCP sessions forwarded to sockets and captures, with a control plane.
    #[command(
        after_help = "For tap, --config FILE is its JSON5 configuration in Stethoscope's format \
                      (see --example-config), not the TOML option defaults."
    )]
    Tap(tap::TapArgs),
    /// Stream chosen captures out of a (gzipped) tarball in one pass, in constant memory.
    TarExtract(tar_extract::TarExtractArgs),
    /// Interfaces that live capture can open.
    #[cfg(feature = "live")]
    ListInterfaces(list_interfaces::ListInterfacesArgs),
    /// The Kubernetes admission webhook that injects the http-trace sidecar (and its certs).
    Webhook(webhook::WebhookArgs),
}

/// The clap definition, for completions and man pages.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// `service`: a long-running capture (a sidecar) logs its start, health and stop by default.
fn init_logging(global: &GlobalArgs, service: bool) {
    let level = if global.quiet {
        "error"
    } else {
        match global.verbose {
            0 if service => "info",
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GOPHERCAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match global.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder
            .with_ansi(io::stderr().is_terminal())
            .without_time()
            .with_target(false)
            .init(),
    }
}

/// True when the error is a closed stdout (`gophercap map | head`): not a failure.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Run the binary: returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = match config::apply_config_file(args, &command()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("gophercap: {e:#}");
            return exit::USAGE;
        }
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let service = match &cli.command {
        Command::HttpTrace(a) => a.interface.is_some(),
        Command::Webhook(a) => a.action.is_none(),
        _ => false,
    };
    // tap sets up its logging from its own configuration.
    if !matches!(&cli.command, Command::Tap(_)) {
        init_logging(&cli.global, service);
    }
    let result = match &cli.command {
        Command::Map(args) => map::run(args, &cli.global),
        Command::Flows(args) => flows::run_flows(args, &cli.global),
        Command::HttpTrace(args) => http_trace::run(args, &cli.global),
        Command::Replay(args) => replay::run(args, &cli.global),
        Command::Tap(args) => tap::run(args, &cli.global),
        Command::TarExtract(args) => tar_extract::run(args, &cli.global),
        #[cfg(feature = "live")]
        Command::ListInterfaces(args) => list_interfaces::run(args),
        Command::Webhook(args) => webhook::run(args),
    };
    match result {
        Ok(outcome) if outcome.damaged_inputs => exit::DAMAGED,
        Ok(_) => exit::OK,
        Err(e) if is_broken_pipe(&e) => exit::OK,
        Err(e) => {
            let code = if e.downcast_ref::<UsageError>().is_some() {
                exit::USAGE
            } else {
                exit::RUNTIME
            };
            // The last line of a failed run: `event = "failed"` and the exit code make it the
            // machine-readable reason a driver reports (the subprocess contract, README).
            match cli.global.log_format {
                LogFormat::Json => tracing::error!(event = "failed", exit_code = code, "{e:#}"),
                LogFormat::Text => eprintln!("gophercap: {e:#}"),
            }
            code
        }
    }
}

/// Write shell completions (`completions/`) and man pages (`man/`) under `root`, all from the
/// one clap definition, so they cannot drift from the binary.
pub fn generate_assets(root: &std::path::Path) -> io::Result<()> {
    use clap_complete::Shell;
    let completions = root.join("completions");
    let man = root.join("man");
    std::fs::create_dir_all(&completions)?;
    std::fs::create_dir_all(&man)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command(), "gophercap", &completions)?;
    }
    clap_mangen::generate_to(command(), &man)
}
