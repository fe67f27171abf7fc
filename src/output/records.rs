//! Streams of JSON records: one object per line, or the elements of one pretty-printed array
//! written as they come (the file is one valid JSON document once finished, and memory does
//! not grow with the number of records).

use super::json::{write_compact, write_pretty};
use serde::Serialize;
use std::io::{self, Write};

/// When encoded records leave for the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// In blocks of [`BLOCK`] bytes, and at the end: the fastest, for regular files.
    Blocks,
    /// After every record: for someone watching a stream (live capture, a pipe on stdin).
    EachRecord,
}

/// Encoded bytes gathered before one write.
pub const BLOCK: usize = 1024 * 1024;

/// The buffer of encoded records and the writer they go to.
pub(super) struct Pending<W: Write> {
    pub(super) writer: W,
    pub(super) bytes: Vec<u8>,
    flush: Flush,
}

impl<W: Write> Pending<W> {
    pub(super) fn new(writer: W, flush: Flush) -> Self {
        Pending {
            writer,
            bytes: Vec::with_capacity(BLOCK),
            flush,
        }
    }

    /// Hand the buffer to the writer if the policy says so.
    pub(super) fn record_done(&mut self) -> io::Result<()> {
        match self.flush {
            Flush::Blocks if self.bytes.len() < BLOCK => Ok(()),
            Flush::Blocks => self.write_out(),
            Flush::EachRecord => {
                self.write_out()?;
                self.writer.flush()
            }
        }
    }

    pub(super) fn write_out(&mut self) -> io::Result<()> {
        let written = self.writer.write_all(&self.bytes);
        self.bytes.clear();
        written
    }

    pub(super) fn finish(mut self) -> io::Result<W> {
        self.write_out()?;
        self.writer.flush()?;
        Ok(self.writer)
    }
}

/// JSON lines: one compact object per line.
pub struct JsonLines<W: Write> {
    pending: Pending<W>,
}

impl<W: Write> JsonLines<W> {
    pub fn new(writer: W, flush: Flush) -> Self {
        JsonLines {
            pending: Pending::new(writer, flush),
        }
    }

    pub fn write<R: Serialize + ?Sized>(&mut self, record: &R) -> io::Result<()> {
        write_compact(&mut self.pending.bytes, record)?;
        self.pending.bytes.push(b'\n');
        self.pending.record_done()
    }

    /// Write what is buffered and flush the writer; the writer is handed back.
    pub fn finish(self) -> io::Result<W> {
        self.pending.finish()
    }
}

/// One JSON array, indented as serde_json's pretty printer does, written element by element:
/// `[` at once, each record as it comes, `]` at [`JsonArray::finish`].
pub struct JsonArray<W: Write> {
    pending: Pending<W>,
    empty: bool,
}

impl<W: Write> JsonArray<W> {
    /// Open the array (its `[` reaches the writer at once).
    pub fn new(writer: W, flush: Flush) -> io::Result<Self> {
        let mut pending = Pending::new(writer, flush);
        pending.bytes.push(b'[');
        pending.write_out()?;
        pending.writer.flush()?;
        Ok(JsonArray {
            pending,
            empty: true,
        })
    }

    pub fn write<R: Serialize + ?Sized>(&mut self, record: &R) -> io::Result<()> {
        let separator: &[u8] = if self.empty { b"\n  " } else { b",\n  " };
        self.pending.bytes.extend_from_slice(separator);
        self.empty = false;
        write_pretty(&mut self.pending.bytes, record, 1)?;
        self.pending.record_done()
    }

    /// Close the array, end the document with a newline, and flush.
    pub fn finish(mut self) -> io::Result<W> {
        let close: &[u8] = if self.empty { b"]\n" } else { b"\n]\n" };
        self.pending.bytes.extend_from_slice(close);
        self.pending.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records() -> Vec<serde_json::Value> {
        vec![
            json!({"a": 1, "b": [1, 2, {"c": null}], "d": {}, "e": [], "f": "x\"y\n"}),
            json!({"nested": {"deeper": {"list": [[], [1], {"k": -2.5e-7}]}}}),
            json!([]),
            json!("just a string"),
        ]
    }

    #[test]
    fn a_streamed_array_is_what_serde_json_pretty_prints_for_the_whole_vec() {
        for n in 0..=records().len() {
            let all = &records()[..n];
            for flush in [Flush::Blocks, Flush::EachRecord] {
                let mut array = JsonArray::new(Vec::new(), flush).unwrap();
                for r in all {
                    array.write(r).unwrap();
                }
                let out = array.finish().unwrap();
                let want = serde_json::to_string_pretty(all).unwrap() + "\n";
                assert_eq!(String::from_utf8(out).unwrap(), want);
            }
        }
    }

    #[test]
    fn json_lines_are_serde_json_compact_lines() {
        let mut lines = JsonLines::new(Vec::new(), Flush::Blocks);
        for r in records() {
            lines.write(&r).unwrap();
        }
        let out = String::from_utf8(lines.finish().unwrap()).unwrap();
        let want: String = records()
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        assert_eq!(out, want);
    }

    /// A writer that records how many times it was written to.
    struct Counting {
        bytes: Vec<u8>,
        writes: usize,
    }

    impl Write for Counting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_record_reaches_the_writer_at_once_blocks_wait_for_a_block() {
        let counting = || Counting {
            bytes: Vec::new(),
            writes: 0,
        };
        let mut streamed = JsonArray::new(counting(), Flush::EachRecord).unwrap();
        let mut blocked = JsonArray::new(counting(), Flush::Blocks).unwrap();
        for i in 0..10 {
            streamed.write(&json!({ "i": i })).unwrap();
            blocked.write(&json!({ "i": i })).unwrap();
            assert!(streamed.pending.writer.bytes.ends_with(b"}"));
            assert_eq!(streamed.pending.writer.writes, 2 + i);
            assert_eq!(blocked.pending.writer.writes, 1, "only the opening bracket");
        }
    }
}
