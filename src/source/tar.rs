//! Captures inside tar archives (`.tar`, `.tar.gz`, `.tgz`), read in one streaming pass with no
//! temporary files: each selected member is opened in place as a capture, named
//! `archive.tar.gz!dir/file.pcap` wherever it is printed.

use super::buffer::ReadBuffer;
use super::capture::CaptureReader;
use super::input::{OpenedInput, Selection, open_stream};
use super::{SourceError, SourceErrorKind};

pub struct TarArchive<'a> {
    name: String,
    archive: tar::Archive<ReadBuffer<'a>>,
}

/// One selected member of an archive.
pub struct TarMember<'r> {
    /// `archive!path`, the name used in output and errors.
    pub name: String,
    /// The path inside the archive.
    pub path: String,
    pub size: u64,
    /// Modification time from the member header (seconds since the epoch).
    pub mtime: u64,
    /// The member opened as a capture, or why it could not be.
    pub capture: Result<CaptureReader<'r>, SourceError>,
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

    /// Visit every regular-file member whose path matches `selection`, in archive order. A
    /// damaged member is handed over as an error and the walk goes on; a damaged archive ends
    /// the walk with an error positioned after the last good member.
    pub fn for_each_member(
        &mut self,
        selection: &Selection,
        mut visit: impl FnMut(TarMember<'_>),
    ) -> Result<(), SourceError> {
        let name = self.name.clone();
        let tar_error = |e: std::io::Error, offset: u64, record: u64| {
            SourceError::new(&name, SourceErrorKind::Tar(e), offset, record)
        };
        let entries = self.archive.entries().map_err(|e| tar_error(e, 0, 1))?;
        let mut members = 0u64;
        let mut position = 0u64;
        for entry in entries {
            let mut entry = entry.map_err(|e| tar_error(e, position, members + 1))?;
            members += 1;
            position = entry.raw_file_position() + entry.size();
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = match entry.path() {
                Ok(p) => p.to_string_lossy().into_owned(),
                Err(e) => return Err(tar_error(e, entry.raw_header_position(), members)),
            };
            if !selection.matches(&path) {
                continue;
            }
            let member_name = format!("{}!{}", self.name, path);
            let size = entry.size();
            let mtime = entry.header().mtime().unwrap_or(0);
            let capture = match open_stream(member_name.clone(), Box::new(&mut entry)) {
                Ok(OpenedInput::Capture(reader)) => Ok(reader),
                Ok(OpenedInput::Archive(_)) => Err(SourceError::new(
                    &member_name,
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
                name: member_name,
                path,
                size,
                mtime,
                capture,
            });
        }
        Ok(())
    }
}
