//! Zeek's log files, for the pipelines (zeek-cut scripts, SIEM parsers) that read them: the
//! TSV form exactly as Zeek's ASCII writer lays it out — the `#separator` ... `#types` header,
//! `-` for unset, `(empty)` for empty, `#close` at the end — or Zeek's JSON form, one object per
//! line with unset fields left out. A log's record is a serde struct whose field names are
//! Zeek's (`id.orig_h`); its optional fields carry `skip_serializing_if`, which the TSV encoder
//! turns into `-` and the JSON encoder into an absent key.

pub mod conn;

mod tsv;

use super::json::write_compact;
use super::records::{Flush, Pending};
use serde::Serialize;
use std::io::{self, Write};

/// A record of one Zeek log.
pub trait ZeekLog: Serialize {
    /// The log's name (`#path`).
    const PATH: &'static str;
    /// Each field's name and Zeek type, in the order serde writes them.
    const FIELDS: &'static [(&'static str, &'static str)];
}

/// Zeek's two log forms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ZeekFormat {
    /// Tab-separated with Zeek's header lines (zeek-cut reads it).
    #[default]
    Tsv,
    /// One JSON object per line, as Zeek's `LogAscii::use_json` writes it.
    Json,
}

/// A Zeek log being written, record by record.
pub struct ZeekWriter<W: Write> {
    pending: Pending<W>,
    format: ZeekFormat,
}

/// Zeek's `#open`/`#close` stamp: when the file was opened or closed, in UTC.
fn stamp() -> String {
    chrono::Utc::now().format("%Y-%m-%d-%H-%M-%S").to_string()
}

impl<W: Write> ZeekWriter<W> {
    /// Open a log of `R` records; the TSV header reaches the writer at once.
    pub fn new<R: ZeekLog>(writer: W, format: ZeekFormat, flush: Flush) -> io::Result<Self> {
        let mut pending = Pending::new(writer, flush);
        if format == ZeekFormat::Tsv {
            let b = &mut pending.bytes;
            b.extend_from_slice(b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n");
            b.extend_from_slice(b"#unset_field\t-\n#path\t");
            b.extend_from_slice(R::PATH.as_bytes());
            b.extend_from_slice(b"\n#open\t");
            b.extend_from_slice(stamp().as_bytes());
            for (i, line) in ["\n#fields", "\n#types"].into_iter().enumerate() {
                b.extend_from_slice(line.as_bytes());
                for &(name, kind) in R::FIELDS {
                    b.push(b'\t');
                    b.extend_from_slice(if i == 0 { name } else { kind }.as_bytes());
                }
            }
            b.push(b'\n');
            pending.write_out()?;
            pending.writer.flush()?;
        }
        Ok(ZeekWriter { pending, format })
    }

    pub fn write<R: ZeekLog>(&mut self, record: &R) -> io::Result<()> {
        match self.format {
            ZeekFormat::Tsv => tsv::write(&mut self.pending.bytes, record)?,
            ZeekFormat::Json => write_compact(&mut self.pending.bytes, record)?,
        }
        self.pending.bytes.push(b'\n');
        self.pending.record_done()
    }

    /// End the log (`#close` in TSV) and flush it; the writer is handed back.
    pub fn finish(mut self) -> io::Result<W> {
        if self.format == ZeekFormat::Tsv {
            self.pending.bytes.extend_from_slice(b"#close\t");
            self.pending.bytes.extend_from_slice(stamp().as_bytes());
            self.pending.bytes.push(b'\n');
        }
        self.pending.finish()
    }
}

/// A time or an interval, in seconds: Zeek writes both with six decimals (and JSON numbers of
/// the same value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seconds(pub f64);

impl Seconds {
    /// Nanoseconds, rounded to the microsecond Zeek keeps.
    pub fn from_nanos(ns: i64) -> Seconds {
        Seconds((ns as f64 / 1e3).round() / 1e6)
    }
}

impl Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Sample<'a> {
        ts: Seconds,
        #[serde(rename = "id.orig_h")]
        orig_h: std::net::IpAddr,
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
        flag: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        tags: Option<Vec<&'a str>>,
    }

    impl ZeekLog for Sample<'_> {
        const PATH: &'static str = "sample";
        const FIELDS: &'static [(&'static str, &'static str)] = &[
            ("ts", "time"),
            ("id.orig_h", "addr"),
            ("name", "string"),
            ("count", "count"),
            ("flag", "bool"),
            ("tags", "set[string]"),
        ];
    }

    fn samples() -> [Sample<'static>; 2] {
        [
            Sample {
                ts: Seconds::from_nanos(1_300_475_167_096_535_123),
                orig_h: "10.0.0.1".parse().unwrap(),
                name: "a\tb\\c\u{1}-",
                count: Some(7),
                flag: true,
                tags: Some(vec!["x,y", "z"]),
            },
            Sample {
                ts: Seconds(0.5),
                orig_h: "::1".parse().unwrap(),
                name: "",
                count: None,
                flag: false,
                tags: Some(vec![]),
            },
        ]
    }

    #[test]
    fn tsv_is_zeeks_ascii_log_header_rows_and_close() {
        let mut log =
            ZeekWriter::new::<Sample>(Vec::new(), ZeekFormat::Tsv, Flush::Blocks).unwrap();
        for s in samples() {
            log.write(&s).unwrap();
        }
        let text = String::from_utf8(log.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#separator \\x09");
        assert_eq!(lines[1], "#set_separator\t,");
        assert_eq!(lines[2], "#empty_field\t(empty)");
        assert_eq!(lines[3], "#unset_field\t-");
        assert_eq!(lines[4], "#path\tsample");
        assert!(lines[5].starts_with("#open\t20"), "{}", lines[5]);
        assert_eq!(lines[6], "#fields\tts\tid.orig_h\tname\tcount\tflag\ttags");
        assert_eq!(
            lines[7],
            "#types\ttime\taddr\tstring\tcount\tbool\tset[string]"
        );
        assert_eq!(
            lines[8],
            "1300475167.096535\t10.0.0.1\ta\\x09b\\\\c\\x01-\t7\tT\tx\\x2cy,z"
        );
        assert_eq!(lines[9], "0.500000\t::1\t(empty)\t-\tF\t(empty)");
        assert!(lines[10].starts_with("#close\t20"));
        assert_eq!(lines.len(), 11);
    }

    #[test]
    fn json_leaves_unset_fields_out() {
        let mut log =
            ZeekWriter::new::<Sample>(Vec::new(), ZeekFormat::Json, Flush::Blocks).unwrap();
        for s in samples() {
            log.write(&s).unwrap();
        }
        let text = String::from_utf8(log.finish().unwrap()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["ts"], 1300475167.096535);
        assert_eq!(lines[0]["id.orig_h"], "10.0.0.1");
        assert_eq!(lines[1].get("count"), None);
        assert_eq!(lines[1]["flag"], false);
    }

    #[test]
    fn a_lone_unset_marker_in_a_string_is_escaped() {
        let mut out = Vec::new();
        let mut s = samples().into_iter().nth(1).unwrap();
        s.name = "-";
        tsv::write(&mut out, &s).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("\t\\x2d\t"));
    }
}
