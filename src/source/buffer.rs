//! A refillable window over any byte stream. Readers parse records in place in this window and
//! lend slices of it to consumers, so a plain file is read with one copy (kernel to window) and no
//! per-packet allocation; gzip and tar members are just other streams under the same window. A
//! large regular file is mapped instead ([`ReadBuffer::mapped`]): the window is then the whole
//! file, and not even that copy is made.

#[cfg(target_os = "linux")]
use super::mapping::FileMapping;
use std::io::{self, Read};

/// Bytes read per refill unless a record needs more: large enough to make syscalls rare, small
/// enough to stay in cache while records are parsed out of it.
pub const DEFAULT_CAPACITY: usize = 1 << 20;

pub struct ReadBuffer<'a> {
    inner: Box<dyn Read + 'a>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// The file, mapped: then `buf` stays empty and the window is the mapping.
    #[cfg(target_os = "linux")]
    mapping: Option<FileMapping>,
}

impl<'a> ReadBuffer<'a> {
    pub fn new(inner: Box<dyn Read + 'a>, capacity: usize) -> Self {
        ReadBuffer {
            inner,
            buf: vec![0; capacity.max(64)],
            start: 0,
            end: 0,
            eof: false,
            base: 0,
            #[cfg(target_os = "linux")]
            mapping: None,
        }
    }

    /// A window over a whole mapped file.
    #[cfg(target_os = "linux")]
    pub fn mapped(mut mapping: FileMapping) -> Self {
        let end = mapping.advance_to(0);
        ReadBuffer {
            inner: Box::new(io::empty()),
            buf: Vec::new(),
            start: 0,
            end,
            eof: true,
            base: 0,
            mapping: Some(mapping),
        }
    }

    /// The window's bytes.
    #[inline]
    fn bytes(&self) -> &[u8] {
        #[cfg(target_os = "linux")]
        if let Some(mapping) = &self.mapping {
            return mapping.bytes();
        }
        &self.buf
    }

    /// The buffered, not yet consumed bytes.
    #[inline]
    pub fn available(&self) -> &[u8] {
        &self.bytes()[self.start..self.end]
    }

    /// Stream offset of the first available byte.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Index into the window of the first available byte; with [`Self::window`] this lets a
    /// reader remember where a record lies without holding a borrow.
    #[inline]
    pub fn position(&self) -> usize {
        self.start
    }

    #[inline]
    pub fn window(&self, from: usize, len: usize) -> &[u8] {
        &self.bytes()[from..from + len]
    }

    #[inline]
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        #[cfg(target_os = "linux")]
        if let Some(mapping) = &mut self.mapping {
            self.end = mapping.advance_to(self.start).max(self.start);
        }
    }

    /// Make at least `n` bytes available, growing the window when a record is larger than it.
    /// Returns how many are available: fewer than `n` only at the end of the stream.
    pub fn fill_to(&mut self, n: usize) -> io::Result<usize> {
        if self.end - self.start >= n {
            return Ok(self.end - self.start);
        }
        #[cfg(target_os = "linux")]
        if let Some(mapping) = &mut self.mapping {
            self.end = mapping.reach(self.start + n).max(self.start);
            return Ok(self.end - self.start);
        }
        if self.start + n > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
            if n > self.buf.len() {
                self.buf.resize(n.max(self.buf.len() * 2), 0);
            }
        }
        while self.end - self.start < n && !self.eof {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(read) => self.end += read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end - self.start)
    }
}

/// Serves the buffered bytes first, then reads straight through: this is how a stream whose
/// first bytes were peeked at (to detect gzip or tar) is handed to the next layer.
impl Read for ReadBuffer<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            if self.eof {
                return Ok(0);
            }
            let n = self.inner.read(out)?;
            self.base += n as u64;
            return Ok(n);
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.available()[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per call, like a pipe.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn fill_gathers_short_reads_and_tracks_offsets() {
        let data: Vec<u8> = (0..=255).collect();
        let mut b = ReadBuffer::new(
            Box::new(Trickle {
                data: &data,
                step: 3,
            }),
            64,
        );
        assert_eq!(b.fill_to(10).unwrap(), 10.max(b.available().len()));
        assert_eq!(&b.available()[..10], &data[..10]);
        b.consume(10);
        assert_eq!(b.offset(), 10);
        assert!(b.fill_to(60).unwrap() >= 60);
        assert_eq!(&b.available()[..60], &data[10..70]);
        b.consume(60);
        assert_eq!(b.offset(), 70);
    }

    #[test]
    fn grows_for_a_record_larger_than_the_window() {
        let data = vec![7u8; 1000];
        let mut b = ReadBuffer::new(
            Box::new(Trickle {
                data: &data,
                step: 100,
            }),
            64,
        );
        assert_eq!(b.fill_to(1000).unwrap(), 1000);
        assert_eq!(b.fill_to(1001).unwrap(), 1000, "short only at the end");
    }

    #[test]
    fn read_serves_buffered_bytes_then_the_rest() {
        let data: Vec<u8> = (0..200).map(|i| i as u8).collect();
        let mut b = ReadBuffer::new(
            Box::new(Trickle {
                data: &data,
                step: 50,
            }),
            64,
        );
        b.fill_to(4).unwrap();
        let mut all = Vec::new();
        b.read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
    }
}
