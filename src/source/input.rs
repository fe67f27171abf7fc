//! From what the user names to readable streams: paths are expanded (folders walked in a
//! deterministic order, symlink loops refused), and each stream is recognised by its first
//! bytes — gzip, pcap, pcapng or tar — never by its name. Files are only opened when read, so a
//! folder of 100,000 captures costs 100,000 paths, not 100,000 descriptors.

use super::buffer::{DEFAULT_CAPACITY, ReadBuffer};
use super::capture::{CaptureReader, Compression, SNIFF_LEN, Sniffed, sniff};
use super::tar::TarArchive;
use super::threaded::ThreadedSource;
use super::{Source, SourceError, SourceErrorKind};
use flate2::read::MultiGzDecoder;
use regex::Regex;
use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Which files of a folder (and members of a tarball) to take.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// The name must end with this (GopherCap's `--file-suffix`).
    pub suffix: Option<String>,
    /// The full path must match this (GopherCap's `--file-regexp`).
    pub regexp: Option<Regex>,
}

impl Selection {
    pub fn matches(&self, path: &str) -> bool {
        self.suffix.as_deref().is_none_or(|s| path.ends_with(s))
            && self.regexp.as_ref().is_none_or(|r| r.is_match(path))
    }

    pub fn is_everything(&self) -> bool {
        self.suffix.is_none() && self.regexp.is_none()
    }
}

/// One thing to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A file; `explicit` when the user named it rather than a folder walk finding it.
    File {
        path: PathBuf,
        explicit: bool,
    },
    Stdin,
}

impl InputKind {
    /// How the input is named in output and errors.
    pub fn display_name(&self) -> String {
        match self {
            InputKind::File { path, .. } => path.display().to_string(),
            InputKind::Stdin => "-".to_string(),
        }
    }
}

/// An error in naming inputs (as opposed to reading them).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: no such file or folder")]
    Missing { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn is_tarball_name(name: &str) -> bool {
    [".tar", ".tar.gz", ".tgz"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Expand the named inputs: `-` is stdin, a file is itself, a folder is walked recursively in
/// byte order of names. Walked files are kept when they match `selection` or look like
/// tarballs (whose members are selected when read).
pub fn expand(paths: &[PathBuf], selection: &Selection) -> Result<Vec<InputKind>, InputError> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            out.push(InputKind::Stdin);
            continue;
        }
        let meta = fs::metadata(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => InputError::Missing { path: path.clone() },
            _ => InputError::Io {
                path: path.clone(),
                source,
            },
        })?;
        if meta.is_dir() {
            let mut visited = HashSet::new();
            walk(path, selection, &mut visited, &mut out)?;
        } else {
            out.push(InputKind::File {
                path: path.clone(),
                explicit: true,
            });
        }
    }
    Ok(out)
}

#[cfg(unix)]
fn dir_identity(meta: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn dir_identity(_meta: &fs::Metadata) -> (u64, u64) {
    (0, 0)
}

fn walk(
    dir: &Path,
    selection: &Selection,
    visited: &mut HashSet<(u64, u64)>,
    out: &mut Vec<InputKind>,
) -> Result<(), InputError> {
    let io_err = |source| InputError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let meta = fs::metadata(dir).map_err(io_err)?;
    // A symlink back up the tree would otherwise be walked forever.
    if !visited.insert(dir_identity(&meta)) {
        tracing::warn!(path = %dir.display(), "folder already visited (symlink loop); skipped");
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let Ok(meta) = fs::metadata(&path) else {
            tracing::warn!(path = %path.display(), "dangling link or vanished entry; skipped");
            continue;
        };
        if meta.is_dir() {
            walk(&path, selection, visited, out)?;
        } else if meta.is_file() {
            let name = path.to_string_lossy();
            if selection.matches(&name) || is_tarball_name(&name) {
                out.push(InputKind::File {
                    path,
                    explicit: false,
                });
            }
        }
    }
    Ok(())
}

/// An opened input: a single capture, or a tar archive whose members are captures.
pub enum OpenedInput<'a> {
    Capture(CaptureReader<'a>),
    Archive(TarArchive<'a>),
}

/// Open a file and recognise what it holds.
pub fn open_path(path: &Path) -> Result<OpenedInput<'static>, SourceError> {
    let name = path.display().to_string();
    let file = fs::File::open(path).map_err(|e| SourceError::new(&name, e.into(), 0, 0))?;
    #[cfg(target_os = "linux")]
    match super::mapping::FileMapping::open(&file) {
        Ok(Some(mapping)) => return open_buffer(name, ReadBuffer::mapped(mapping)),
        Ok(None) => {}
        Err(error) => tracing::debug!(%error, path = %path.display(), "not mapped; read instead"),
    }
    open_stream(name, Box::new(file))
}

/// Open an input named on the command line (a file or stdin).
pub fn open_input(input: &InputKind) -> Result<OpenedInput<'static>, SourceError> {
    match input {
        InputKind::File { path, .. } => open_path(path),
        InputKind::Stdin => open_stream("-".to_string(), Box::new(io::stdin())),
    }
}

/// Stdin as [`open_input`] opens it, except that waiting for bytes gives up once `stop` is set
/// (the stream then ends there). signal-hook installs its handlers with SA_RESTART, so a plain
/// read() blocked on a pipe whose writer stays open (`tcpdump -w - | gophercap ...`) resumes
/// after SIGINT and the flag would never be looked at.
pub fn open_stdin_until(stop: Arc<AtomicBool>) -> Result<OpenedInput<'static>, SourceError> {
    open_stream("-".to_string(), Box::new(StdinUntil { stop }))
}

struct StdinUntil {
    stop: Arc<AtomicBool>,
}

impl Read for StdinUntil {
    #[cfg(unix)]
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        // Straight from the descriptor: std's buffer in front of it would hide bytes from poll.
        let fd = io::stdin().as_raw_fd();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(0);
            }
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            match unsafe { libc::poll(&mut p, 1, 100) } {
                0 => continue,
                r if r < 0 => {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue; // the signal that set the flag, most likely
                    }
                    return Err(e);
                }
                _ => {}
            }
            // Readable, at its end, or in error.
            // SAFETY: read writes at most out.len() bytes into out.
            let n = unsafe { libc::read(fd, out.as_mut_ptr().cast(), out.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR | libc::EAGAIN) => continue,
                // A closed stdin reads as empty, as std's Stdin has it.
                Some(libc::EBADF) => return Ok(0),
                _ => return Err(e),
            }
        }
    }

    #[cfg(not(unix))]
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        io::stdin().read(out)
    }
}

/// Recognise a stream by its first bytes and open it: gzip is unwrapped (once), then a capture
/// or a tar archive is expected.
pub fn open_stream<'a>(
    name: String,
    stream: Box<dyn Read + 'a>,
) -> Result<OpenedInput<'a>, SourceError> {
    open_buffer(name, ReadBuffer::new(stream, DEFAULT_CAPACITY))
}

/// [`open_stream`] over a window already made.
fn open_buffer<'a>(name: String, mut buf: ReadBuffer<'a>) -> Result<OpenedInput<'a>, SourceError> {
    let head_len = buf
        .fill_to(SNIFF_LEN)
        .map_err(|e| SourceError::new(&name, e.into(), 0, 0))?;
    let mut compression = Compression::None;
    if sniff(&buf.available()[..head_len]) == Sniffed::Gzip {
        compression = Compression::Gzip;
        buf = ReadBuffer::new(Box::new(MultiGzDecoder::new(buf)), DEFAULT_CAPACITY);
        buf.fill_to(SNIFF_LEN)
            .map_err(|e| SourceError::new(&name, SourceErrorKind::Gzip(e), 0, 0))?;
    }
    let head = buf.available();
    match sniff(head) {
        Sniffed::Capture(_) => Ok(OpenedInput::Capture(CaptureReader::open(
            name,
            buf,
            compression,
        )?)),
        Sniffed::Tar => Ok(OpenedInput::Archive(TarArchive::new(name, buf))),
        Sniffed::Gzip | Sniffed::Unknown if head.is_empty() => {
            Err(SourceError::new(&name, SourceErrorKind::Empty, 0, 0))
        }
        Sniffed::Gzip | Sniffed::Unknown if head.len() < 4 => {
            let kind = SourceErrorKind::Truncated {
                what: "file header",
                needed: 4,
                available: head.len() as u64,
            };
            Err(SourceError::new(&name, kind, 0, 0))
        }
        Sniffed::Gzip | Sniffed::Unknown => {
            let magic = head[..4].to_vec();
            Err(SourceError::new(
                &name,
                SourceErrorKind::NotACapture(magic),
                0,
                0,
            ))
        }
    }
}

/// Split `archive!member` at the first `!` whose left side is an existing file.
pub fn split_member(path: &std::path::Path) -> Option<(PathBuf, String)> {
    let text = path.to_string_lossy();
    text.match_indices('!').find_map(|(i, _)| {
        let archive = PathBuf::from(&text[..i]);
        archive
            .is_file()
            .then(|| (archive, text[i + 1..].to_string()))
    })
}

/// One member of a tarball, read on its own thread (each member of a compressed archive needs
/// its own pass over it, and members are merged by time like any files).
pub fn member_source(archive: PathBuf, member: String) -> ThreadedSource {
    let name = format!("{}!{member}", archive.display());
    ThreadedSource::spawn(name, move |sender| {
        let OpenedInput::Archive(mut tar) = open_path(&archive)? else {
            return Ok(());
        };
        let exact = Selection {
            suffix: None,
            regexp: Some(
                regex::Regex::new(&format!("^{}$", regex::escape(&member)))
                    .expect("an escaped literal is a valid expression"),
            ),
        };
        let mut result = Ok(());
        tar.for_each_member(&exact, |found| {
            let mut reader = match found.capture {
                Ok(reader) => reader,
                Err(e) => {
                    result = Err(e);
                    return;
                }
            };
            loop {
                match reader.next_packet() {
                    Ok(Some(packet)) => {
                        if !sender.send(&packet) {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        result = Err(e);
                        return;
                    }
                }
            }
        })?;
        result
    })
}

/// The capture members of a tarball, in archive order (one pass over it).
pub fn archive_members(
    archive: &std::path::Path,
    selection: &Selection,
) -> Result<Vec<String>, SourceError> {
    let OpenedInput::Archive(mut tar) = open_path(archive)? else {
        return Ok(Vec::new());
    };
    let mut members = Vec::new();
    tar.for_each_member(selection, |member| {
        if member.capture.is_ok() {
            members.push(member.path);
        }
    })?;
    Ok(members)
}

/// Open every named capture, tarball (each selected member on its own thread) and
/// `archive!member` as a source, for merging by time. Inputs that are not captures are passed
/// over; unreadable ones are logged and passed over, so one bad file never stops the rest.
pub fn open_sources(
    paths: &[PathBuf],
    selection: &Selection,
) -> Result<Vec<Box<dyn Source>>, SourceError> {
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    for path in paths {
        if !path.is_file()
            && let Some((archive, member)) = split_member(path)
        {
            sources.push(Box::new(member_source(archive, member)));
            continue;
        }
        match open_path(path) {
            Ok(OpenedInput::Capture(reader)) => sources.push(Box::new(reader)),
            Ok(OpenedInput::Archive(_)) => {
                for member in archive_members(path, selection)? {
                    sources.push(Box::new(member_source(path.clone(), member)));
                }
            }
            Err(e) if e.kind.is_not_a_capture() => {
                tracing::debug!(path = %path.display(), "not a capture; skipped");
            }
            Err(e) => tracing::warn!("{e}; skipped"),
        }
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (time, bytes) of each packet.
    type Packets = Vec<(i64, Vec<u8>)>;
    /// (kind, offset, record) of an error.
    type Fault = (String, u64, u64);

    /// Every packet of `input`, then the error that ended it, if any.
    fn drain(input: OpenedInput<'_>) -> (Packets, Option<Fault>) {
        use crate::source::Source;
        let OpenedInput::Capture(mut reader) = input else {
            panic!("not a capture");
        };
        let mut packets = Vec::new();
        loop {
            match reader.next_packet() {
                Ok(Some(p)) => packets.push((p.ts_ns, p.data.to_vec())),
                Ok(None) => return (packets, None),
                Err(e) => {
                    return (
                        packets,
                        Some((e.kind.code().to_string(), e.offset, e.record)),
                    );
                }
            }
        }
    }

    /// A capture of several MiB (mapped when opened by path), packets of varied sizes.
    fn large_capture() -> Vec<u8> {
        use crate::sink::capture::{PcapWriter, Precision};
        let mut w = PcapWriter::new(Vec::new(), 1, 65535, Precision::Nano, false).unwrap();
        let mut ts = 1_700_000_000_000_000_000i64;
        for i in 0..6000usize {
            let len = 60 + (i * 7919) % 1455;
            let data: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
            w.write(ts, &data, len as u32).unwrap();
            ts += 1000;
        }
        w.into_inner()
    }

    /// A mapped file and the same bytes read as a stream give the same packets and, cut short,
    /// the same error at the same offset; gzip is recognised in a mapped file too.
    #[test]
    fn mapped_files_read_as_streams_do() {
        let bytes = large_capture();
        assert!(bytes.len() as u64 >= crate::source::mapping::MIN_MAPPED_LEN * 4);
        let dir =
            std::env::temp_dir().join(format!("gophercap-input-mapped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cut = bytes.len() - 700;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &bytes).unwrap();
        let gzipped = gz.finish().unwrap();
        for (name, content) in [
            ("whole.pcap", &bytes[..]),
            ("cut.pcap", &bytes[..cut]),
            ("whole.pcap.gz", &gzipped[..]),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, content).unwrap();
            let streamed = drain(
                open_stream(
                    name.into(),
                    Box::new(std::io::Cursor::new(content.to_vec())),
                )
                .unwrap(),
            );
            let mapped = drain(open_path(&path).unwrap());
            assert_eq!(mapped.0.len(), streamed.0.len(), "{name}");
            assert!(mapped.0 == streamed.0, "{name}: packets differ");
            assert_eq!(mapped.1, streamed.1, "{name}");
        }
        let (packets, error) = drain(open_path(&dir.join("whole.pcap")).unwrap());
        assert_eq!((packets.len(), error), (6000, None));
        let (packets, error) = drain(open_path(&dir.join("cut.pcap")).unwrap());
        assert!((5990..6000).contains(&packets.len()), "{}", packets.len());
        assert_eq!(error.map(|e| e.0), Some("truncated".to_string()));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn selection_combines_suffix_and_regexp() {
        let sel = Selection {
            suffix: Some(".pcap".into()),
            regexp: Some(Regex::new("day[0-9]/").unwrap()),
        };
        assert!(sel.matches("/data/day1/a.pcap"));
        assert!(!sel.matches("/data/day1/a.pcapng"));
        assert!(!sel.matches("/data/other/a.pcap"));
        assert!(Selection::default().matches("anything"));
    }

    #[test]
    fn tarball_names() {
        assert!(is_tarball_name("x.tar.gz"));
        assert!(is_tarball_name("x.tgz"));
        assert!(is_tarball_name("x.tar"));
        assert!(!is_tarball_name("x.pcap.gz"));
    }

    #[test]
    fn unknown_and_tiny_streams_are_errors() {
        let err = open_stream("t".into(), Box::new(&b"hello world"[..]))
            .err()
            .unwrap();
        assert_eq!(err.kind.code(), "not_a_capture");
        let err = open_stream("t".into(), Box::new(&b"\xd4\xc3"[..]))
            .err()
            .unwrap();
        assert_eq!(err.kind.code(), "truncated");
    }
}
