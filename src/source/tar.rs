//! Captures inside tar archives (`.tar`, `.tar.gz`, `.tgz`), read in one streaming pass with no
//! temporary files. Members are visited in archive order, either raw (for extraction) or opened
//! in place as captures, and are named `archive.tar.gz!dir/file.pcap` wherever printed.

use super::buffer::ReadBuffer;
use super::capture::CaptureReader;
use super::input::{OpenedInput, Selection, open_stream};
use super::{SourceError, SourceErrorKind};
use std::io::Read;

pub struct TarArchive<'a> {
    name: String,
    archive: tar::Archive<ReadBuffer<'a>>,
}

/// What an archive member is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberKind {
    File,
    Directory,
    Symlink { target: String },
    HardLink { target: String },
    Other,
}

/// One member, its data readable once, in place.
pub struct TarEntry<'r> {
    /// `archive!path`, the name used in output and errors.
    pub name: String,
    /// The path inside the archive.
    pub path: String,
    pub kind: MemberKind,
    pub size: u64,
    /// Modification time from the member header (seconds since the epoch).
    pub mtime: u64,
    /// Offset of the member's data in the (decompressed) archive stream.
    pub offset: u64,
    pub data: &'r mut dyn Read,
}

/// One selected member opened as a capture.
pub struct TarMember<'r> {
    pub name: String,
    pub path: String,
    pub size: u64,
    pub mtime: u64,
    /// The member opened as a capture, or why it could not be.
    pub capture: Result<CaptureReader<'r>, SourceError>,
}

fn kind_of(entry: &tar::Entry<'_, impl Read>) -> MemberKind {
    let kind = entry.header().entry_type();
    let target = || {
        entry
            .link_name_bytes()
            .map(|t| String::from_utf8_lossy(&t).into_owned())
            .unwrap_or_default()
    };
    if kind.is_file() {
        MemberKind::File
    } else if kind.is_dir() {
        MemberKind::Directory
    } else if kind.is_symlink() {
        MemberKind::Symlink { target: target() }
    } else if kind.is_hard_link() {
        MemberKind::HardLink { target: target() }
    } else {
        MemberKind::Other
    }
}

impl<'a> TarArchive<'a> {
    pub fn new(name: String, buf: ReadBuffer<'a>) -> Self {
        TarArchive {
            name,
            archive: tar::Archive::new(buf),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Visit every member in archive order with its data unread. A damaged archive ends the
    /// walk with an error positioned after the last member whose header was good; the
    /// visitor's own errors end it too.
    pub fn for_each_entry<E: From<SourceError>>(
        &mut self,
        mut visit: impl FnMut(TarEntry<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let name = self.name.clone();
        let tar_error = |e: std::io::Error, offset: u64, record: u64| {
            SourceError::new(&name, SourceErrorKind::Tar(e), offset, record)
        };
        let entries = self.archive.entries().map_err(|e| tar_error(e, 0, 1))?;
        let mut position = 0u64;
        for (index, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|e| tar_error(e, position, index as u64 + 1))?;
            let offset = entry.raw_file_position();
            position = offset + entry.size();
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = kind_of(&entry);
            let size = entry.size();
            let mtime = entry.header().mtime().unwrap_or(0);
            visit(TarEntry {
                name: format!("{}!{}", self.name, path),
                path,
                kind,
                size,
                mtime,
                offset,
                data: &mut entry,
            })?;
        }
        Ok(())
    }

    /// Visit every regular-file member whose path matches `selection`, opened as a capture. A
    /// damaged member is handed over as an error and the walk goes on.
    pub fn for_each_member(
        &mut self,
        selection: &Selection,
        mut visit: impl FnMut(TarMember<'_>),
    ) -> Result<(), SourceError> {
        self.for_each_entry(|entry: TarEntry<'_>| {
            if entry.kind != MemberKind::File || !selection.matches(&entry.path) {
                return Ok::<(), SourceError>(());
            }
            let capture = match open_stream(entry.name.clone(), Box::new(entry.data)) {
                Ok(OpenedInput::Capture(reader)) => Ok(reader),
                Ok(OpenedInput::Archive(_)) => Err(SourceError::new(
                    &entry.name,
                    SourceErrorKind::Corrupt {
                        what: "archive member",
                        detail: "nested archives are not read".to_string(),
                    },
                    0,
                    0,
                )),
                Err(e) => Err(e),
            };
            visit(TarMember {
                name: entry.name,
                path: entry.path,
                size: entry.size,
                mtime: entry.mtime,
                capture,
            });
            Ok(())
        })
    }
}
