//! Positioned source errors: which input, which byte, which record — so a damaged file in a
//! terabyte set can be found and cut, and everything before the fault is still counted.

use std::io;

/// What went wrong, without the position.
#[derive(Debug, thiserror::Error)]
pub enum SourceErrorKind {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("empty file")]
    Empty,
    #[error("not a pcap or pcapng capture (magic {0:02x?})")]
    NotACapture(Vec<u8>),
    #[error("unsupported {format} version {major}.{minor}")]
    UnsupportedVersion {
        format: &'static str,
        major: u16,
        minor: u16,
    },
    #[error("file ends inside {what}: needed {needed} bytes, only {available} left")]
    Truncated {
        what: &'static str,
        needed: u64,
        available: u64,
    },
    #[error("record of {len} bytes is larger than the maximum of {max}")]
    RecordTooLarge { len: u64, max: u64 },
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("gzip stream is damaged: {0}")]
    Gzip(io::Error),
    #[error("tar archive is damaged: {0}")]
    Tar(io::Error),
    #[cfg(feature = "live")]
    #[error("{0}")]
    Live(String),
}

impl SourceErrorKind {
    /// True for inputs that are not captures at all (as opposed to damaged captures): a folder
    /// walk or an archive passes over these instead of reporting them.
    pub fn is_not_a_capture(&self) -> bool {
        matches!(
            self,
            SourceErrorKind::Empty | SourceErrorKind::NotACapture(_)
        )
    }

    /// A stable short name for machine-readable output (`map`'s `error.kind`).
    pub fn code(&self) -> &'static str {
        match self {
            SourceErrorKind::Io(_) => "io",
            SourceErrorKind::Empty => "empty",
            SourceErrorKind::NotACapture(_) => "not_a_capture",
            SourceErrorKind::UnsupportedVersion { .. } => "unsupported_version",
            SourceErrorKind::Truncated { .. } => "truncated",
            SourceErrorKind::RecordTooLarge { .. } => "record_too_large",
            SourceErrorKind::Corrupt { .. } => "corrupt",
            SourceErrorKind::Gzip(_) => "gzip",
            SourceErrorKind::Tar(_) => "tar",
            #[cfg(feature = "live")]
            SourceErrorKind::Live(_) => "live",
        }
    }
}

/// A fault in one source: the source's name, the byte offset in its (decompressed) stream where
/// the bad record starts, and how many records were read before it.
#[derive(Debug, thiserror::Error)]
pub struct SourceError {
    pub name: String,
    pub kind: SourceErrorKind,
    pub offset: u64,
    /// The 1-based number of the record that failed (records read before it plus one).
    pub record: u64,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            // A live capture has no offsets, and its message already names the interface.
            #[cfg(feature = "live")]
            SourceErrorKind::Live(message) => f.write_str(message),
            kind => write!(
                f,
                "{}: {kind} (byte offset {}, record {})",
                self.name, self.offset, self.record
            ),
        }
    }
}

impl SourceError {
    pub fn new(name: impl Into<String>, kind: SourceErrorKind, offset: u64, record: u64) -> Self {
        SourceError {
            name: name.into(),
            kind,
            offset,
            record,
        }
    }
}
