//! `gophercap map`: the catalog of every capture in files, folders and tarballs, read in
//! parallel across files. GopherCap's first step; `replay` reads the JSON it dumps.

use super::filter::{check_filter, packet_filter};
use super::progress::progress;
use super::{GlobalArgs, LogFormat, Outcome, UsageError};
use crate::catalog::{CaptureRow, CaptureSummary, Catalog, CatalogTotals, InputStamp, summarize};
use crate::catalog::{ShardInfo, ShardInput};
use crate::output::csv::CsvRecords;
use crate::output::json::write_pretty;
use crate::output::table::write_table;
use crate::output::{Flush, JsonLines};
use crate::shard::{SHARD_FORMAT_VERSION, ShardDocument, ShardSpec};
use crate::source::input::{InputError, expand, open_input};
use crate::source::{InputKind, OpenedInput, Selection, SourceError};
use anyhow::Context;
use clap::{Args, ValueEnum};
use rayon::prelude::*;
use regex::Regex;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MapFormat {
    Table,
    Json,
    Jsonl,
    Csv,
}

#[derive(Debug, Args)]
pub struct MapArgs {
    /// Captures, folders and tarballs to map (`-` reads stdin).
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// A folder to map (GopherCap's flag; the same as naming it as an input).
    #[arg(long, value_name = "DIR")]
    pub dir_src: Option<PathBuf>,
    /// Only files (and tar members) whose name ends with this.
    #[arg(long, value_name = "SUFFIX")]
    pub file_suffix: Option<String>,
    /// Only files (and tar members) whose full path matches this regular expression.
    #[arg(long, value_name = "RE")]
    pub file_regexp: Option<String>,
    /// Files read in parallel (default: one per core).
    #[arg(long, value_name = "N")]
    pub file_workers: Option<usize>,
    /// Write the catalog document to this file (what `replay` reads).
    #[arg(long, value_name = "PATH")]
    pub dump_json: Option<PathBuf>,
    /// What to print on stdout (default: table on a terminal, else json; nothing extra with
    /// --dump-json).
    #[arg(long, value_enum)]
    pub format: Option<MapFormat>,
    /// Reuse entries of the existing --dump-json whose file size and mtime are unchanged.
    #[arg(long, requires = "dump_json")]
    pub update: bool,
    /// Only count packets that match this BPF expression.
    #[arg(short = 'f', long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Map only shard K of N (K from 0 to N-1, as Kubernetes' JOB_COMPLETION_INDEX): the
    /// inputs (files, whole tarballs) whose path hashes to K. The document says which shard it
    /// is, for --merge.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<ShardSpec>,
    /// The inputs are the shard documents of one run (files, or folders of *.json): join them
    /// into the document a single run over all the captures writes.
    #[arg(long, conflicts_with_all = ["shard", "update", "filter"])]
    pub merge: bool,
}

/// Validated options: the engine never sees clap types.
struct MapOptions {
    inputs: Vec<PathBuf>,
    selection: Selection,
    workers: usize,
    dump_json: Option<PathBuf>,
    format: Option<MapFormat>,
    update: bool,
    filter: Option<String>,
    shard: Option<ShardSpec>,
}

impl MapOptions {
    fn from_args(args: &MapArgs) -> Result<Self, UsageError> {
        let mut inputs = args.inputs.clone();
        inputs.extend(args.dir_src.clone());
        if inputs.is_empty() && args.merge {
            return Err(UsageError(
                "map --merge: no inputs; name shard documents or folders of them".into(),
            ));
        }
        if inputs.is_empty() {
            return Err(UsageError(
                "map: no inputs; name captures, folders or tarballs, or --dir-src".into(),
            ));
        }
        let regexp = match &args.file_regexp {
            Some(re) => {
                Some(Regex::new(re).map_err(|e| UsageError(format!("--file-regexp: {e}")))?)
            }
            None => None,
        };
        if args.file_workers == Some(0) {
            return Err(UsageError("--file-workers must be at least 1".into()));
        }
        if let Some(expression) = &args.filter {
            check_filter(expression)?;
        }
        let format = match (args.format, &args.dump_json) {
            (Some(f), _) => Some(f),
            (None, Some(_)) => None,
            (None, None) if std::io::stdout().is_terminal() => Some(MapFormat::Table),
            (None, None) => Some(MapFormat::Json),
        };
        Ok(MapOptions {
            inputs,
            selection: Selection {
                suffix: args.file_suffix.clone(),
                regexp,
            },
            workers: args
                .file_workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            dump_json: args.dump_json.clone(),
            format,
            update: args.update,
            filter: args.filter.clone(),
            shard: args.shard,
        })
    }
}

fn stamp_of(path: &Path) -> Option<(u64, i64)> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    Some((meta.len(), mtime_ns))
}

/// What one input yields: its captures (several for a tarball) and its stamp for `--update`.
struct Mapped {
    captures: Vec<CaptureSummary>,
    stamp: Option<InputStamp>,
}

/// Entries of the previous catalog, by input path, for `--update`.
struct Previous {
    stamps: HashMap<String, InputStamp>,
    captures: Vec<CaptureSummary>,
}

impl Previous {
    fn load(path: &Path) -> anyhow::Result<Option<Previous>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let catalog: Catalog = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a gophercap map document", path.display()))?;
        Ok(Some(Previous {
            stamps: catalog
                .inputs
                .into_iter()
                .map(|s| (s.path.clone(), s))
                .collect(),
            captures: catalog.captures,
        }))
    }

    /// The old entries of `name` (a file, or the members of an archive) if it is unchanged.
    fn reuse(&self, name: &str, size: u64, mtime_ns: i64) -> Option<Vec<CaptureSummary>> {
        let stamp = self.stamps.get(name)?;
        if stamp.size != size || stamp.mtime_ns != mtime_ns {
            return None;
        }
        let member_prefix = format!("{name}!");
        Some(
            self.captures
                .iter()
                .filter(|c| c.path == name || c.path.starts_with(&member_prefix))
                .cloned()
                .collect(),
        )
    }
}

fn map_input(input: &InputKind, options: &MapOptions, previous: Option<&Previous>) -> Mapped {
    let name = input.display_name();
    let (size, mtime_ns) = match input {
        InputKind::File { path, .. } => match stamp_of(path) {
            Some(s) => s,
            None => {
                let error = SourceError::new(
                    &name,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "file vanished").into(),
                    0,
                    0,
                );
                return Mapped {
                    captures: vec![CaptureSummary::unreadable(name, 0, 0, &error)],
                    stamp: None,
                };
            }
        },
        InputKind::Stdin => (0, 0),
    };
    let stamp = matches!(input, InputKind::File { .. }).then(|| InputStamp {
        path: name.clone(),
        size,
        mtime_ns,
    });
    if let Some(reused) = previous.and_then(|p| p.reuse(&name, size, mtime_ns)) {
        tracing::debug!(path = %name, "unchanged since the last map; entries reused");
        return Mapped {
            captures: reused,
            stamp,
        };
    }
    let explicit = match input {
        InputKind::File { explicit, .. } => *explicit,
        InputKind::Stdin => true,
    };
    let mut captures = Vec::new();
    match open_input(input) {
        Ok(OpenedInput::Capture(mut reader)) => {
            let keep = packet_filter(options.filter.as_deref());
            let mut summary = summarize(&mut reader, name, size, mtime_ns, keep);
            if matches!(input, InputKind::Stdin) {
                summary.size = reader.offset();
            }
            captures.push(summary);
        }
        Ok(OpenedInput::Archive(mut archive)) => {
            let walked = archive.for_each_member(&options.selection, |member| {
                let mtime_ns = member.mtime as i64 * 1_000_000_000;
                match member.capture {
                    Ok(mut reader) => {
                        let keep = packet_filter(options.filter.as_deref());
                        captures.push(summarize(
                            &mut reader,
                            member.name,
                            member.size,
                            mtime_ns,
                            keep,
                        ));
                    }
                    // Archives hold READMEs and checksums too: like files found by a folder
                    // walk, members that are not captures are passed over, not damage.
                    Err(e) if e.kind.is_not_a_capture() => {
                        tracing::debug!(member = %member.name, "not a capture; skipped");
                    }
                    Err(e) => captures.push(CaptureSummary::unreadable(
                        member.name,
                        member.size,
                        mtime_ns,
                        &e,
                    )),
                }
            });
            if let Err(e) = walked {
                tracing::warn!(archive = %name, error = %e, "archive damaged; members before it kept");
                captures.push(CaptureSummary::unreadable(name, size, mtime_ns, &e));
            }
        }
        Err(e) if !explicit && e.kind.is_not_a_capture() => {
            tracing::debug!(path = %name, "not a capture; skipped");
        }
        Err(e) => captures.push(CaptureSummary::unreadable(name, size, mtime_ns, &e)),
    }
    Mapped { captures, stamp }
}

fn write_catalog(catalog: &Catalog, format: MapFormat, out: &mut dyn Write) -> anyhow::Result<()> {
    match format {
        MapFormat::Json => {
            let mut document = Vec::new();
            write_pretty(&mut document, catalog, 0)?;
            document.push(b'\n');
            out.write_all(&document)?;
        }
        MapFormat::Jsonl => {
            let mut lines = JsonLines::new(&mut *out, Flush::Blocks);
            for c in &catalog.captures {
                lines.write(c)?;
            }
            lines.finish()?;
        }
        MapFormat::Csv => {
            let mut rows = CsvRecords::new::<CaptureRow>(&mut *out)?;
            for c in &catalog.captures {
                rows.write(&c.row())?;
            }
            rows.finish()?;
        }
        MapFormat::Table => write_summary_table(catalog, out)?,
    }
    out.flush()?;
    Ok(())
}

fn write_summary_table(catalog: &Catalog, out: &mut dyn Write) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = catalog
        .captures
        .iter()
        .map(|c| {
            vec![
                c.path.clone(),
                c.format
                    .map(|f| format!("{f:?}").to_lowercase())
                    .unwrap_or_else(|| "-".into()),
                c.link_names(),
                c.packets.to_string(),
                c.bytes_original.to_string(),
                c.first_ts.clone().unwrap_or_else(|| "-".into()),
                c.duration_s.map_or("-".into(), |d| format!("{d:.6}")),
                c.error.as_ref().map_or(String::new(), |e| {
                    format!("{} at byte {}", e.kind, e.offset)
                }),
            ]
        })
        .collect();
    write_table(
        out,
        &[
            "path",
            "format",
            "link",
            "packets",
            "bytes",
            "first",
            "duration_s",
            "error",
        ],
        &["packets", "bytes", "duration_s"],
        &rows,
    )?;
    Ok(())
}

/// The document to `--dump-json PATH` and in `--format` to stdout.
fn write_outputs(
    catalog: &Catalog,
    dump_json: Option<&Path>,
    format: Option<MapFormat>,
) -> anyhow::Result<()> {
    if let Some(path) = dump_json {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut w = std::io::BufWriter::new(file);
        write_catalog(catalog, MapFormat::Json, &mut w)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(format) = format {
        let mut out = std::io::stdout().lock();
        write_catalog(catalog, format, &mut out)?;
    }
    Ok(())
}

/// Just enough of a document to tell a shard document, and its version, before reading it all.
#[derive(serde::Deserialize)]
struct Probe {
    shard: Option<ProbeShard>,
}

#[derive(serde::Deserialize)]
struct ProbeShard {
    version: u32,
}

/// Read one shard document; `None` for a map document without a shard section found in a
/// folder (the merged document itself, written beside its shards), which is passed over.
fn read_shard_document(path: &Path, in_folder: bool) -> anyhow::Result<Option<ShardDocument>> {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(UsageError(format!("{name}: no such file or folder")).into());
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(UsageError(format!("{name}: not a gophercap map document: {e}")).into());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {name}")),
    };
    let not_a_document =
        |e: serde_json::Error| UsageError(format!("{name}: not a gophercap map document: {e}"));
    let probe: Probe = serde_json::from_str(&text).map_err(not_a_document)?;
    match probe.shard {
        Some(shard) if shard.version != SHARD_FORMAT_VERSION => {
            return Err(UsageError(format!(
                "{name}: shard document format version {}; this gophercap reads version \
                 {SHARD_FORMAT_VERSION}",
                shard.version
            ))
            .into());
        }
        Some(_) => {}
        None => {
            let catalog = serde_json::from_str::<Catalog>(&text);
            if in_folder && catalog.is_ok() {
                tracing::debug!(path = %name, "a map document without a shard section; passed over");
                return Ok(None);
            }
            catalog.map_err(not_a_document)?;
            return Err(UsageError(format!(
                "{name}: not a shard document (map --shard K/N --dump-json writes them)"
            ))
            .into());
        }
    }
    let catalog: Catalog = serde_json::from_str(&text).map_err(not_a_document)?;
    // What is merged must be what this gophercap wrote: a document that does not come back
    // the same (another version's fields or numbers, or edited) could not merge into the
    // document a single run writes.
    let mut again = Vec::new();
    write_catalog(&catalog, MapFormat::Json, &mut again)?;
    if again != text.as_bytes() {
        return Err(UsageError(format!(
            "{name}: not a shard document as this gophercap writes it (another version's, or \
             edited)"
        ))
        .into());
    }
    Ok(Some(ShardDocument { name, catalog }))
}

/// `map --merge`: the shard documents named (files, or every `*.json` in a folder) joined.
fn run_merge(options: &MapOptions, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut documents = Vec::new();
    for input in &options.inputs {
        let meta = std::fs::metadata(input).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::Error::new(UsageError(format!(
                "{}: no such file or folder",
                input.display()
            ))),
            _ => anyhow::Error::new(e).context(format!("cannot read {}", input.display())),
        })?;
        if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("cannot read {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
                .collect();
            files.sort();
            for file in files {
                documents.extend(read_shard_document(&file, true)?);
            }
        } else {
            documents.extend(read_shard_document(input, false)?);
        }
    }
    let read = documents.len();
    let catalog = crate::shard::merge(documents).map_err(|e| UsageError(e.to_string()))?;
    write_outputs(&catalog, options.dump_json.as_deref(), options.format)?;
    let CatalogTotals {
        damaged,
        packets,
        bytes,
    } = catalog.totals();
    let elapsed = started.elapsed().as_secs_f64();
    if !global.quiet && global.log_format == LogFormat::Text {
        eprintln!(
            "merged {read} shard documents: {} captures, {} packets, {} bytes in {:.3} s; {} \
             damaged",
            catalog.captures.len(),
            packets,
            bytes,
            elapsed,
            damaged
        );
    }
    tracing::info!(
        shards = read,
        captures = catalog.captures.len(),
        packets,
        bytes,
        damaged,
        elapsed_s = elapsed,
        "merge finished"
    );
    // The merge's own inputs are the documents, and they were all read: the damage in the
    // captures was reported by the shards' runs and stays in the document.
    Ok(Outcome::default())
}

pub fn run(args: &MapArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let options = MapOptions::from_args(args)?;
    if args.merge {
        return run_merge(&options, global);
    }
    let started = Instant::now();
    let inputs = expand(&options.inputs, &options.selection).map_err(|e| match e {
        InputError::Missing { .. } => anyhow::Error::new(UsageError(e.to_string())),
        InputError::Io { .. } => anyhow::Error::new(e),
    })?;
    let inputs_total = inputs.len() as u64;
    // Each input with its place in the whole run, for --merge to put the shards back in order.
    let inputs: Vec<(u64, InputKind)> = match options.shard {
        None => (0..).zip(inputs).collect(),
        Some(shard) => {
            if inputs.iter().any(|i| matches!(i, InputKind::Stdin)) {
                return Err(UsageError("--shard: stdin (-) cannot be sharded".into()).into());
            }
            (0..)
                .zip(inputs)
                .filter(|(_, input)| shard.holds(&input.display_name()))
                .collect()
        }
    };
    let previous = match (&options.dump_json, options.update) {
        (Some(path), true) => Previous::load(path)?,
        _ => None,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.workers)
        .build()
        .context("cannot start worker threads")?;
    let bar = progress(inputs.len() as u64, "inputs", global.quiet);
    let mapped: Vec<Mapped> = pool.install(|| {
        inputs
            .par_iter()
            .map(|(_, input)| {
                let m = map_input(input, &options, previous.as_ref());
                bar.inc(1);
                m
            })
            .collect()
    });
    bar.finish_and_clear();
    let mut captures = Vec::new();
    let mut stamps = Vec::new();
    let mut placed = Vec::new();
    for ((position, input), m) in inputs.iter().zip(mapped) {
        placed.push(ShardInput {
            position: *position,
            path: input.display_name(),
            captures: m.captures.len() as u64,
        });
        captures.extend(m.captures);
        stamps.extend(m.stamp);
    }
    let mut catalog = Catalog::new(captures, stamps);
    catalog.shard = options.shard.map(|shard| ShardInfo {
        version: SHARD_FORMAT_VERSION,
        index: shard.index,
        count: shard.count,
        inputs_total,
        inputs: placed,
    });
    write_outputs(&catalog, options.dump_json.as_deref(), options.format)?;
    let CatalogTotals {
        damaged,
        packets,
        bytes,
    } = catalog.totals();
    let elapsed = started.elapsed().as_secs_f64();
    if !global.quiet && global.log_format == LogFormat::Text {
        let share = options.shard.map_or(String::new(), |shard| {
            format!(
                " (shard {shard}: {} of {inputs_total} inputs)",
                inputs.len()
            )
        });
        eprintln!(
            "mapped {} captures: {} packets, {} bytes in {:.3} s; {} damaged{share}",
            catalog.captures.len(),
            packets,
            bytes,
            elapsed,
            damaged
        );
    }
    tracing::info!(
        captures = catalog.captures.len(),
        packets,
        bytes,
        damaged,
        elapsed_s = elapsed,
        "map finished"
    );
    Ok(Outcome {
        damaged_inputs: damaged > 0,
    })
}
