//! `gophercap tar-extract`: stream chosen members out of a (gzipped) tarball in one pass, in
//! constant memory — GopherCap's way to take a 300 GB subset out of a 1 TB archive with no room
//! to unpack the rest. Reading is the tar source's; writing safely is the extract sink's.

use super::progress::{ProgressReader, progress_bytes};
use super::{GlobalArgs, LogFormat, Outcome, UsageError};
use crate::sink::extract::{OutputDir, Refusal, resolve_link_target, safe_relative_path};
use crate::source::input::open_stream;
use crate::source::tar::{MemberKind, TarEntry};
use crate::source::{OpenedInput, SourceError, SourceErrorKind};
use anyhow::Context;
use clap::Args;
use flate2::write::GzEncoder;
use regex::Regex;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct TarExtractArgs {
    /// The archive (.tar, .tar.gz, .tgz; `-` reads stdin).
    #[arg(long, value_name = "PATH")]
    pub in_tarball: PathBuf,
    /// Where members are written, under their relative paths.
    #[arg(long, value_name = "DIR", required_unless_present = "dryrun")]
    pub out_dir: Option<PathBuf>,
    /// Only members whose full path in the archive matches this regular expression.
    #[arg(long, value_name = "RE")]
    pub file_regexp: Option<String>,
    /// List what would be extracted (path and size) and write nothing.
    #[arg(long)]
    pub dryrun: bool,
    /// Write each member gzipped as NAME.gz (members that already are gzip are written as is).
    #[arg(long)]
    pub out_gzip: bool,
    /// gzip level for --out-gzip (1 fastest, 9 smallest).
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub gzip_level: u32,
    /// Write every member directly in --out-dir under its file name; a name clash is an error.
    #[arg(long)]
    pub flatten: bool,
    /// Replace files that already exist (by default they are kept and the member skipped).
    #[arg(long)]
    pub overwrite: bool,
}

/// Validated options.
struct ExtractOptions {
    input: PathBuf,
    out_dir: Option<PathBuf>,
    regexp: Option<Regex>,
    gzip_level: Option<u32>,
    flatten: bool,
    overwrite: bool,
}

impl ExtractOptions {
    fn from_args(args: &TarExtractArgs) -> Result<Self, UsageError> {
        let regexp = match &args.file_regexp {
            Some(re) => {
                Some(Regex::new(re).map_err(|e| UsageError(format!("--file-regexp: {e}")))?)
            }
            None => None,
        };
        Ok(ExtractOptions {
            input: args.in_tarball.clone(),
            out_dir: if args.dryrun {
                None
            } else {
                args.out_dir.clone()
            },
            regexp,
            gzip_level: args.out_gzip.then_some(args.gzip_level),
            flatten: args.flatten,
            overwrite: args.overwrite,
        })
    }
}

#[derive(Debug, Default)]
struct Counts {
    matched: u64,
    written: u64,
    bytes_in: u64,
    bytes_out: u64,
    existing: u64,
    refused: u64,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Read up to `n` bytes (fewer only at the end of the member).
fn read_head(data: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match data.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    Ok(head)
}

/// Copy everything `from` holds into `to`, counting bytes; a read error is the archive's.
fn copy_counted(from: &mut dyn Read, to: &mut dyn Write) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

struct Extractor<'o> {
    options: &'o ExtractOptions,
    out: Option<OutputDir>,
    counts: Counts,
    /// Archive path → where it was written (relative to the output folder), for links.
    written: HashMap<String, PathBuf>,
    /// Output names used in this run, for --flatten clashes.
    used: HashSet<PathBuf>,
    dryrun_out: io::StdoutLock<'static>,
}

impl Extractor<'_> {
    fn refuse(&mut self, member: &str, refusal: &Refusal) {
        match refusal {
            Refusal::Exists(_) => {
                self.counts.existing += 1;
                tracing::warn!(member, "skipped: {refusal}");
            }
            _ => {
                self.counts.refused += 1;
                tracing::warn!(member, "refused: {refusal}");
            }
        }
    }

    /// Where a member goes, relative to the output folder.
    fn destination(&self, path: &str) -> Result<PathBuf, Refusal> {
        let safe = safe_relative_path(path)?;
        if self.options.flatten {
            Ok(PathBuf::from(
                safe.file_name().expect("a safe path has a file name"),
            ))
        } else {
            Ok(safe)
        }
    }

    fn claim(&mut self, relative: &Path) -> Result<(), Refusal> {
        if !self.used.insert(relative.to_path_buf()) {
            return Err(Refusal::NameClash(relative.to_path_buf()));
        }
        Ok(())
    }

    fn visit(&mut self, entry: TarEntry<'_>) -> anyhow::Result<()> {
        if matches!(entry.kind, MemberKind::Directory | MemberKind::Other) {
            return Ok(());
        }
        if let Some(re) = &self.options.regexp
            && !re.is_match(&entry.path)
        {
            return Ok(());
        }
        self.counts.matched += 1;
        let relative = match self.destination(&entry.path) {
            Ok(r) => r,
            Err(refusal) => {
                self.refuse(&entry.name, &refusal);
                return Ok(());
            }
        };
        match entry.kind.clone() {
            MemberKind::File => self.extract_file(entry, relative),
            MemberKind::HardLink { target } => self.link(&entry, relative, &target, true),
            MemberKind::Symlink { target } => self.link(&entry, relative, &target, false),
            MemberKind::Directory | MemberKind::Other => Ok(()),
        }
    }

    fn extract_file(&mut self, entry: TarEntry<'_>, relative: PathBuf) -> anyhow::Result<()> {
        let TarEntry {
            name,
            path,
            size,
            offset,
            data,
            ..
        } = entry;
        let head = read_head(data, 2).map_err(|e| damaged(&name, e, offset))?;
        let already_gzip = head.as_slice() == GZIP_MAGIC;
        let mut relative = relative;
        if self.options.gzip_level.is_some() && !relative.to_string_lossy().ends_with(".gz") {
            relative.as_mut_os_string().push(".gz");
        }
        if let Err(refusal) = self.claim(&relative) {
            self.refuse(&name, &refusal);
            return Ok(());
        }
        let Some(out) = &self.out else {
            writeln!(self.dryrun_out, "{path}\t{size}")?;
            self.counts.written += 1;
            self.counts.bytes_in += size;
            return Ok(());
        };
        let mut file = match out.create_file(&relative, self.options.overwrite) {
            Ok(f) => f,
            Err(Refusal::Io(e)) => {
                return Err(e).with_context(|| format!("cannot write {}", relative.display()));
            }
            Err(refusal) => {
                self.refuse(&name, &refusal);
                return Ok(());
            }
        };
        let copied = match self.options.gzip_level {
            Some(level) if !already_gzip => {
                let mut gz = GzEncoder::new(&mut file, flate2::Compression::new(level));
                gz.write_all(&head)?;
                let copied = copy_counted(data, &mut gz);
                gz.finish()?;
                copied
            }
            _ => {
                file.write_all(&head)?;
                copy_counted(data, &mut file)
            }
        };
        let copied = match copied {
            Ok(n) => n + head.len() as u64,
            Err(CopyError::Read(e)) => return Err(damaged(&name, e, offset).into()),
            Err(CopyError::Write(e)) => {
                return Err(e).with_context(|| format!("cannot write {}", relative.display()));
            }
        };
        if copied < size {
            // Dropping the partial file removes it: only complete members are left.
            drop(file);
            let kind = SourceErrorKind::Truncated {
                what: "archive member",
                needed: size,
                available: copied,
            };
            return Err(SourceError::new(&name, kind, offset + copied, 0).into());
        }
        let target = file
            .commit()
            .with_context(|| format!("cannot write {}", relative.display()))?;
        self.counts.written += 1;
        self.counts.bytes_in += size;
        self.counts.bytes_out += std::fs::metadata(&target).map_or(0, |m| m.len());
        self.written.insert(path, relative);
        Ok(())
    }

    /// Links are recreated only when they stay inside the output folder: a hard link to a
    /// member extracted in this run, a symlink whose target resolves below the root.
    fn link(
        &mut self,
        entry: &TarEntry<'_>,
        relative: PathBuf,
        target: &str,
        hard: bool,
    ) -> anyhow::Result<()> {
        let resolved = if hard {
            safe_relative_path(target).ok()
        } else {
            resolve_link_target(Path::new(&entry.path), target)
        };
        let Some(resolved) = resolved else {
            self.refuse(&entry.name, &Refusal::LinkOutside(target.to_string()));
            return Ok(());
        };
        let key = resolved.to_string_lossy().into_owned();
        let Some(existing) = self.written.get(&key).cloned() else {
            if self.out.is_none() {
                writeln!(self.dryrun_out, "{}\t0", entry.path)?;
                self.counts.written += 1;
                return Ok(());
            }
            self.refuse(&entry.name, &Refusal::LinkTargetMissing(target.to_string()));
            return Ok(());
        };
        let mut relative = relative;
        if existing.to_string_lossy().ends_with(".gz")
            && !relative.to_string_lossy().ends_with(".gz")
        {
            relative.as_mut_os_string().push(".gz");
        }
        if let Err(refusal) = self.claim(&relative) {
            self.refuse(&entry.name, &refusal);
            return Ok(());
        }
        let Some(out) = &self.out else {
            writeln!(self.dryrun_out, "{}\t0", entry.path)?;
            self.counts.written += 1;
            return Ok(());
        };
        let made = if hard {
            out.hard_link(&relative, &existing, self.options.overwrite)
        } else {
            symlink_to(out, &relative, &existing, self.options.overwrite)
        };
        match made {
            Ok(()) => {
                self.counts.written += 1;
                self.written.insert(entry.path.clone(), relative);
            }
            Err(refusal) => self.refuse(&entry.name, &refusal),
        }
        Ok(())
    }
}

/// A symlink at `relative` pointing at `existing` (both relative to the output root), written
/// relative to the link's own folder so the tree can be moved.
#[cfg(unix)]
fn symlink_to(
    out: &OutputDir,
    relative: &Path,
    existing: &Path,
    overwrite: bool,
) -> Result<(), Refusal> {
    let depth = relative.parent().map_or(0, |p| p.iter().count());
    let mut text = PathBuf::new();
    for _ in 0..depth {
        text.push("..");
    }
    text.push(existing);
    out.symlink(relative, &text, overwrite)
}

#[cfg(not(unix))]
fn symlink_to(
    out: &OutputDir,
    relative: &Path,
    existing: &Path,
    overwrite: bool,
) -> Result<(), Refusal> {
    out.hard_link(relative, existing, overwrite)
}

fn damaged(name: &str, e: io::Error, offset: u64) -> SourceError {
    SourceError::new(name, SourceErrorKind::Tar(e), offset, 0)
}

pub fn run(args: &TarExtractArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let options = ExtractOptions::from_args(args)?;
    let started = Instant::now();
    let (name, stream, total): (String, Box<dyn Read>, Option<u64>) =
        if options.input.as_os_str() == "-" {
            ("-".into(), Box::new(io::stdin()), None)
        } else {
            let file = std::fs::File::open(&options.input).map_err(|e| {
                let text = format!("{}: {e}", options.input.display());
                if e.kind() == io::ErrorKind::NotFound {
                    anyhow::Error::new(UsageError(text))
                } else {
                    anyhow::Error::msg(text)
                }
            })?;
            let len = file.metadata().ok().map(|m| m.len());
            (options.input.display().to_string(), Box::new(file), len)
        };
    let bar = progress_bytes(total, global.quiet);
    let reader = ProgressReader::new(stream, bar.clone());
    let mut archive = match open_stream(name.clone(), Box::new(reader))? {
        OpenedInput::Archive(archive) => archive,
        OpenedInput::Capture(_) => {
            return Err(UsageError(format!("{name}: a capture, not a tar archive")).into());
        }
    };
    let out = match &options.out_dir {
        Some(dir) => Some(
            OutputDir::create(dir).with_context(|| format!("cannot create {}", dir.display()))?,
        ),
        None => None,
    };
    let mut extractor = Extractor {
        options: &options,
        out,
        counts: Counts::default(),
        written: HashMap::new(),
        used: HashSet::new(),
        dryrun_out: io::stdout().lock(),
    };
    let walked = archive.for_each_entry(|entry| extractor.visit(entry));
    bar.finish_and_clear();
    extractor.dryrun_out.flush()?;
    let damage = match walked {
        Ok(()) => None,
        Err(e) => match e.downcast::<SourceError>() {
            Ok(source) => Some(source),
            Err(other) => return Err(other),
        },
    };
    if let Some(e) = &damage {
        tracing::error!(
            offset = e.offset,
            "archive damaged: {e}; completed members kept"
        );
    }
    let c = &extractor.counts;
    let elapsed = started.elapsed().as_secs_f64();
    let verb = if options.out_dir.is_some() {
        "written"
    } else {
        "would be written"
    };
    if !global.quiet && global.log_format == LogFormat::Text {
        eprintln!(
            "tar-extract: {} members matched, {} {verb} ({} bytes in, {} bytes out), {} skipped (existing), {} refused, in {elapsed:.3} s{}",
            c.matched,
            c.written,
            c.bytes_in,
            c.bytes_out,
            c.existing,
            c.refused,
            if damage.is_some() {
                "; archive damaged"
            } else {
                ""
            }
        );
    }
    tracing::info!(
        matched = c.matched,
        written = c.written,
        bytes_in = c.bytes_in,
        bytes_out = c.bytes_out,
        skipped_existing = c.existing,
        refused = c.refused,
        damaged = damage.is_some(),
        elapsed_s = elapsed,
        "tar-extract finished"
    );
    Ok(Outcome {
        damaged_inputs: damage.is_some() || c.refused > 0,
    })
}
