//! Writing archive members into a folder without ever leaving it: member paths are checked
//! lexically (no absolute paths, no `..`), folders are created without following symlinks, and
//! each file is written under a temporary name and renamed only when complete, so an
//! interrupted member never looks like a finished one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Component, Path, PathBuf};

/// Why a member is not written.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("absolute path")]
    Absolute,
    #[error("path climbs out with '..'")]
    ParentComponent,
    #[error("empty path")]
    Empty,
    #[error("{0} is a symlink: not followed")]
    ThroughSymlink(PathBuf),
    #[error("{0} exists and is not a folder")]
    NotAFolder(PathBuf),
    #[error("{0} exists (use --overwrite)")]
    Exists(PathBuf),
    #[error("link target {0:?} lands outside the output folder")]
    LinkOutside(String),
    #[error("link target {0:?} was not extracted")]
    LinkTargetMissing(String),
    #[error("{0} was already written by another member (name clash)")]
    NameClash(PathBuf),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A member path made safe to join under the output folder: only normal components remain.
pub fn safe_relative_path(member: &str) -> Result<PathBuf, Refusal> {
    let path = Path::new(member);
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(Refusal::ParentComponent),
            Component::RootDir | Component::Prefix(_) => return Err(Refusal::Absolute),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(Refusal::Empty);
    }
    Ok(out)
}

/// Resolve a symlink's target, written relative to the link's own folder, to a path relative to
/// the archive root; None when it would climb above the root or is absolute.
pub fn resolve_link_target(link: &Path, target: &str) -> Option<PathBuf> {
    if Path::new(target).is_absolute() {
        return None;
    }
    let mut parts: Vec<std::ffi::OsString> = link
        .parent()
        .map(|p| p.iter().map(|c| c.to_os_string()).collect())
        .unwrap_or_default();
    for component in Path::new(target).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// The folder members are extracted into.
pub struct OutputDir {
    root: PathBuf,
}

impl OutputDir {
    pub fn create(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        Ok(OutputDir {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Create the folders of `relative` below the root, refusing to pass through a symlink.
    fn prepare_parents(&self, relative: &Path) -> Result<PathBuf, Refusal> {
        let mut dir = self.root.clone();
        if let Some(parent) = relative.parent() {
            for part in parent.iter() {
                dir.push(part);
                match fs::symlink_metadata(&dir) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        return Err(Refusal::ThroughSymlink(dir));
                    }
                    Ok(meta) if meta.is_dir() => {}
                    Ok(_) => return Err(Refusal::NotAFolder(dir)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&dir)?,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(self.root.join(relative))
    }

    fn check_target(target: &Path, overwrite: bool) -> Result<(), Refusal> {
        match fs::symlink_metadata(target) {
            Ok(meta) if meta.is_dir() => Err(Refusal::NotAFolder(target.to_path_buf())),
            Ok(_) if !overwrite => Err(Refusal::Exists(target.to_path_buf())),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Start writing the file `relative`; its data goes to a temporary name beside it until
    /// [`PartialFile::commit`].
    pub fn create_file(&self, relative: &Path, overwrite: bool) -> Result<PartialFile, Refusal> {
        let target = self.prepare_parents(relative)?;
        Self::check_target(&target, overwrite)?;
        let file_name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = target.with_file_name(format!(".{file_name}.gophercap-partial"));
        // A stale temporary from an earlier crash is ours to replace; create_new never follows
        // a symlink planted at that name.
        let _ = fs::remove_file(&temp);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        Ok(PartialFile {
            temp,
            target,
            file: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// Where a link named `relative` goes, with any file it may replace removed.
    fn link_destination(&self, relative: &Path, overwrite: bool) -> Result<PathBuf, Refusal> {
        let target = self.prepare_parents(relative)?;
        Self::check_target(&target, overwrite)?;
        if overwrite {
            let _ = fs::remove_file(&target);
        }
        Ok(target)
    }

    /// Make `relative` a hard link to the already extracted `existing` (both below the root).
    pub fn hard_link(
        &self,
        relative: &Path,
        existing: &Path,
        overwrite: bool,
    ) -> Result<(), Refusal> {
        let target = self.link_destination(relative, overwrite)?;
        fs::hard_link(self.root.join(existing), &target)?;
        Ok(())
    }

    /// Make `relative` a symlink whose text is `link_text` (already checked to stay inside).
    #[cfg(unix)]
    pub fn symlink(
        &self,
        relative: &Path,
        link_text: &Path,
        overwrite: bool,
    ) -> Result<(), Refusal> {
        let target = self.link_destination(relative, overwrite)?;
        std::os::unix::fs::symlink(link_text, &target)?;
        Ok(())
    }
}

/// A file being written under a temporary name; dropped without `commit`, it is removed.
pub struct PartialFile {
    temp: PathBuf,
    target: PathBuf,
    file: Option<BufWriter<File>>,
}

impl PartialFile {
    /// Flush and move the file to its final name.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        if let Some(mut file) = self.file.take() {
            file.flush()?;
        }
        fs::rename(&self.temp, &self.target)?;
        Ok(self.target.clone())
    }
}

impl Write for PartialFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("file already committed")),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.write_all(buf),
            None => Err(io::Error::other("file already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_are_made_safe_or_refused() {
        assert_eq!(
            safe_relative_path("a/./b.pcap").unwrap(),
            Path::new("a/b.pcap")
        );
        assert!(matches!(
            safe_relative_path("/etc/passwd"),
            Err(Refusal::Absolute)
        ));
        assert!(matches!(
            safe_relative_path("a/../../x"),
            Err(Refusal::ParentComponent)
        ));
        assert!(matches!(
            safe_relative_path("a/../b"),
            Err(Refusal::ParentComponent)
        ));
        assert!(matches!(safe_relative_path("./"), Err(Refusal::Empty)));
    }

    #[test]
    fn link_targets_resolve_against_the_link_folder() {
        let link = Path::new("day1/latest.pcap");
        assert_eq!(
            resolve_link_target(link, "a.pcap").unwrap(),
            Path::new("day1/a.pcap")
        );
        assert_eq!(
            resolve_link_target(link, "../day2/b.pcap").unwrap(),
            Path::new("day2/b.pcap")
        );
        assert!(resolve_link_target(link, "../../etc/passwd").is_none());
        assert!(resolve_link_target(link, "/etc/passwd").is_none());
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gophercap-extract-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn files_appear_only_when_committed() {
        let dir = scratch("commit");
        let out = OutputDir::create(&dir).unwrap();
        let mut f = out.create_file(Path::new("x/y.pcap"), false).unwrap();
        f.write_all(b"data").unwrap();
        assert!(!dir.join("x/y.pcap").exists());
        f.commit().unwrap();
        assert_eq!(fs::read(dir.join("x/y.pcap")).unwrap(), b"data");
        let dropped = out.create_file(Path::new("x/z.pcap"), false).unwrap();
        drop(dropped);
        assert_eq!(
            fs::read_dir(dir.join("x")).unwrap().count(),
            1,
            "no partial left behind"
        );
        assert!(matches!(
            out.create_file(Path::new("x/y.pcap"), false),
            Err(Refusal::Exists(_))
        ));
        assert!(out.create_file(Path::new("x/y.pcap"), true).is_ok());
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn never_writes_through_a_symlinked_folder() {
        let dir = scratch("symlinked");
        let outside = scratch("outside");
        fs::create_dir_all(&outside).unwrap();
        let out = OutputDir::create(&dir).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("evil")).unwrap();
        assert!(matches!(
            out.create_file(Path::new("evil/x.pcap"), true),
            Err(Refusal::ThroughSymlink(_))
        ));
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&outside);
    }
}
