//! A capture file read through a memory mapping instead of `read()`: the reader parses records
//! straight out of the page cache, so a file's bytes are not copied into a window first (that
//! copy was a tenth of `tap`'s time on a 1 GiB capture). Linux only: `MADV_POPULATE_READ`
//! reports a file that shrank under the mapping as an error where touching the page would raise
//! SIGBUS, and keeps a mapped read as safe as a `read()` past the new end.
//!
//! The mapping is walked front to back: a few MiB ahead of the reader are populated (mapped
//! without page faults), the cache lines just ahead are prefetched (the hardware prefetcher stops
//! at every 4 KiB page), and what lies well behind is unmapped from the process again, so the
//! resident size stays a few MiB whatever the file's size.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// Files smaller than this are read: mapping costs more than it saves on them.
pub const MIN_MAPPED_LEN: u64 = 1 << 20;

/// Granularity of populating and releasing (one huge page).
const STEP: usize = 2 << 20;
/// Populated ahead of the reader.
const AHEAD: usize = 2 * STEP;
/// Kept mapped behind the reader: the packet it lends lies there.
const BEHIND: usize = STEP;
/// Cache lines prefetched ahead of the reader.
const PREFETCH_DISTANCE: usize = 64 << 10;
const LINE: usize = 64;

/// A read-only private mapping of a whole file.
pub struct FileMapping {
    ptr: NonNull<u8>,
    len: usize,
    /// Bytes from the start that may be read: the file's length at mapping time, or less once
    /// populating found it shorter.
    usable: usize,
    /// Populated up to here.
    populated: usize,
    /// Released below here.
    released: usize,
    /// Prefetched up to here.
    prefetched: usize,
}

// SAFETY: the mapping is read-only memory owned by this value; nothing in it is tied to a thread.
unsafe impl Send for FileMapping {}
// SAFETY: shared access only reads.
unsafe impl Sync for FileMapping {}

impl FileMapping {
    /// Map `file` when it is a regular file of at least [`MIN_MAPPED_LEN`] bytes; `Ok(None)`
    /// for anything else (pipes, devices, small files), which the caller reads instead.
    pub fn open(file: &File) -> io::Result<Option<FileMapping>> {
        let metadata = file.metadata()?;
        if !metadata.is_file() || metadata.len() < MIN_MAPPED_LEN {
            return Ok(None);
        }
        let Ok(len) = usize::try_from(metadata.len()) else {
            return Ok(None);
        };
        // SAFETY: a fresh private read-only mapping of a descriptor we hold; the kernel picks
        // the address.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or_else(|| io::Error::other("mmap: null"))?;
        // Advice only: large page-cache folios may then be mapped whole, and read-ahead runs
        // sequentially. A refusal changes nothing but speed.
        // SAFETY: advice on the range just mapped.
        unsafe {
            libc::madvise(raw, len, libc::MADV_SEQUENTIAL);
            libc::madvise(raw, len, libc::MADV_HUGEPAGE);
        }
        Ok(Some(FileMapping {
            ptr,
            len,
            usable: len,
            populated: 0,
            released: 0,
            prefetched: 0,
        }))
    }

    /// The mapped bytes: read only below the end [`Self::advance_to`] or [`Self::reach`]
    /// returned.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` bytes for as long as `self` lives and `usable <= len`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.usable) }
    }

    /// The reader is at `pos`: populate ahead, prefetch the next lines, release what lies well
    /// behind. Returns the end of the bytes that may be read now: populated, and within the
    /// file (which may have shrunk since it was mapped).
    #[inline]
    pub fn advance_to(&mut self, pos: usize) -> usize {
        if pos + AHEAD > self.populated && self.populated < self.usable {
            self.populate(pos + AHEAD);
        }
        let target = (pos + PREFETCH_DISTANCE).min(self.populated);
        while self.prefetched < target {
            prefetch(self.ptr.as_ptr().wrapping_add(self.prefetched));
            self.prefetched += LINE;
        }
        if pos >= self.released + BEHIND + STEP {
            self.release(pos);
        }
        self.readable()
    }

    /// Make the bytes up to `end` readable if the file has them (a record larger than the
    /// populated stretch); returns the end of the readable bytes.
    pub fn reach(&mut self, end: usize) -> usize {
        if end > self.populated && self.populated < self.usable {
            self.populate(end);
        }
        self.readable()
    }

    #[inline]
    fn readable(&self) -> usize {
        self.populated.min(self.usable)
    }

    fn populate(&mut self, end: usize) {
        let from = self.populated;
        let to = end.next_multiple_of(STEP).min(self.usable);
        if to <= from {
            return;
        }
        // SAFETY: advice on a part of the mapping.
        let done = unsafe {
            libc::madvise(
                self.ptr.as_ptr().add(from).cast(),
                to - from,
                libc::MADV_POPULATE_READ,
            )
        };
        if done != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EFAULT) {
                // The file shrank: the bytes past its new end would raise SIGBUS. Find the end
                // page by page within the range, and read no further.
                self.usable = from + self.populatable(from, to);
                self.populated = self.usable;
                return;
            }
            // Kernels before 5.14 (EINVAL) know no populating: faults then map the pages as
            // they are read, and a file cut short under the mapping is not caught.
        }
        self.populated = to;
    }

    /// How many bytes of `from..to` can be populated, page by page.
    fn populatable(&self, from: usize, to: usize) -> usize {
        let page = page_size();
        let mut at = from;
        while at < to {
            let len = page.min(to - at);
            // SAFETY: advice on a part of the mapping.
            let done = unsafe {
                libc::madvise(
                    self.ptr.as_ptr().add(at).cast(),
                    len,
                    libc::MADV_POPULATE_READ,
                )
            };
            if done != 0 {
                break;
            }
            at += len;
        }
        at - from
    }

    fn release(&mut self, pos: usize) {
        let to = (pos - BEHIND) / STEP * STEP;
        if to <= self.released {
            return;
        }
        // SAFETY: the range lies behind the reader (BEHIND bytes at least). Dropping a private
        // read-only mapping's pages only unmaps them from this process: the page cache keeps
        // them, and a later read (a record larger than BEHIND still lent) faults them in again.
        unsafe {
            libc::madvise(
                self.ptr.as_ptr().add(self.released).cast(),
                to - self.released,
                libc::MADV_DONTNEED,
            );
        }
        self.released = to;
    }
}

impl Drop for FileMapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `open` mapped; no slice of it outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(1)
}

#[inline]
fn prefetch(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is a hint and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(name: &str, bytes: &[u8]) -> (std::path::PathBuf, File) {
        let path =
            std::env::temp_dir().join(format!("gophercap-mapping-{}-{name}", std::process::id()));
        let mut f = File::create(&path).unwrap();
        f.write_all(bytes).unwrap();
        (path.clone(), File::open(&path).unwrap())
    }

    #[test]
    fn small_files_and_devices_are_not_mapped() {
        let (path, small) = file_of("small", b"tiny");
        assert!(FileMapping::open(&small).unwrap().is_none());
        std::fs::remove_file(path).unwrap();
        let device = File::open("/dev/null").unwrap();
        assert!(FileMapping::open(&device).unwrap().is_none());
    }

    #[test]
    fn a_walk_reads_every_byte_and_releases_what_lies_behind() {
        let bytes: Vec<u8> = (0..9 * STEP + 12345).map(|i| (i % 251) as u8).collect();
        let (path, file) = file_of("walk", &bytes);
        let mut m = FileMapping::open(&file).unwrap().expect("mapped");
        let mut pos = 0;
        while pos < bytes.len() {
            let readable = m.advance_to(pos);
            assert!(
                readable >= (pos + AHEAD).min(bytes.len()),
                "{readable} at {pos}"
            );
            let end = (pos + 100_000).min(bytes.len());
            assert_eq!(&m.bytes()[pos..end], &bytes[pos..end]);
            assert!(m.released + BEHIND <= pos.max(BEHIND));
            pos = end;
        }
        assert!(m.released >= 7 * STEP, "released {}", m.released);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_file_that_shrinks_under_the_mapping_ends_where_it_now_ends() {
        let bytes = vec![7u8; 8 * STEP];
        let (path, file) = file_of("shrink", &bytes);
        let mut m = FileMapping::open(&file).unwrap().expect("mapped");
        let cut = 5 * STEP + 3 * 4096;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        let mut readable = bytes.len();
        let mut pos = 0;
        while pos < readable {
            readable = m.advance_to(pos);
            pos += 4096;
        }
        assert_eq!(readable, cut);
        assert_eq!(m.reach(bytes.len()), cut);
        assert!(m.bytes()[..readable].iter().all(|&b| b == 7));
        std::fs::remove_file(path).unwrap();
    }
}
