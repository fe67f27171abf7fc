//! Capture-file writers: pcap (µs or ns, either byte order) and pcapng (several interfaces with
//! their own link types and time resolutions). Replay's `--out-pcap`, `flows --write-pcap` and the
//! test builders all write through these.

use std::io::{self, Write};

/// Time resolution of written timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Micro,
    Nano,
}

/// A classic pcap writer.
pub struct PcapWriter<W: Write> {
    out: W,
    precision: Precision,
    big_endian: bool,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(
        mut out: W,
        link_type: u32,
        snaplen: u32,
        precision: Precision,
        big_endian: bool,
    ) -> io::Result<Self> {
        let magic: u32 = match precision {
            Precision::Micro => 0xa1b2_c3d4,
            Precision::Nano => 0xa1b2_3c4d,
        };
        let mut header = Vec::with_capacity(24);
        let put32 = |v: u32, h: &mut Vec<u8>| {
            h.extend_from_slice(&if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        put32(magic, &mut header);
        let (major, minor): (u16, u16) = (2, 4);
        for v in [major, minor] {
            header.extend_from_slice(&if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
        put32(0, &mut header);
        put32(0, &mut header);
        put32(snaplen, &mut header);
        put32(link_type, &mut header);
        out.write_all(&header)?;
        Ok(PcapWriter {
            out,
            precision,
            big_endian,
        })
    }

    /// Write one record; `data` is what was captured, `orig_len` the length on the wire.
    pub fn write(&mut self, ts_ns: i64, data: &[u8], orig_len: u32) -> io::Result<()> {
        let secs = ts_ns.div_euclid(1_000_000_000) as u32;
        let nanos = ts_ns.rem_euclid(1_000_000_000) as u32;
        let frac = match self.precision {
            Precision::Micro => nanos / 1_000,
            Precision::Nano => nanos,
        };
        let mut header = [0u8; 16];
        for (i, v) in [secs, frac, data.len() as u32, orig_len]
            .into_iter()
            .enumerate()
        {
            let b = if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            header[i * 4..i * 4 + 4].copy_from_slice(&b);
        }
        self.out.write_all(&header)?;
        self.out.write_all(data)
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }
}

/// A pcapng writer (little-endian, one section).
pub struct PcapngWriter<W: Write> {
    out: W,
    /// Per interface: `if_tsresol` as a power of ten.
    resolutions: Vec<u8>,
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

impl<W: Write> PcapngWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut shb = Vec::with_capacity(28);
        shb.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
        shb.extend_from_slice(&28u32.to_le_bytes());
        shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        shb.extend_from_slice(&28u32.to_le_bytes());
        out.write_all(&shb)?;
        Ok(PcapngWriter {
            out,
            resolutions: Vec::new(),
        })
    }

    /// Describe an interface; returns its index. `tsresol` is the power of ten of the time unit
    /// (6 for microseconds, 9 for nanoseconds).
    pub fn add_interface(&mut self, link_type: u16, snaplen: u32, tsresol: u8) -> io::Result<u32> {
        let mut idb = Vec::with_capacity(32);
        idb.extend_from_slice(&1u32.to_le_bytes());
        idb.extend_from_slice(&32u32.to_le_bytes());
        idb.extend_from_slice(&link_type.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&snaplen.to_le_bytes());
        // if_tsresol (code 9, length 1, padded), then opt_endofopt.
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[tsresol, 0, 0, 0]);
        idb.extend_from_slice(&0u32.to_le_bytes());
        idb.extend_from_slice(&32u32.to_le_bytes());
        self.out.write_all(&idb)?;
        self.resolutions.push(tsresol);
        Ok(self.resolutions.len() as u32 - 1)
    }

    /// Write an enhanced packet block on `interface`.
    pub fn write(
        &mut self,
        interface: u32,
        ts_ns: i64,
        data: &[u8],
        orig_len: u32,
    ) -> io::Result<()> {
        let resol = *self
            .resolutions
            .get(interface as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "unknown interface"))?;
        let units = if resol >= 9 {
            (ts_ns as u64).saturating_mul(10u64.pow(u32::from(resol - 9)))
        } else {
            ts_ns as u64 / 10u64.pow(u32::from(9 - resol))
        };
        let padding = pad4(data.len());
        let total = (32 + data.len() + padding) as u32;
        let mut head = Vec::with_capacity(28);
        head.extend_from_slice(&6u32.to_le_bytes());
        head.extend_from_slice(&total.to_le_bytes());
        head.extend_from_slice(&interface.to_le_bytes());
        head.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
        head.extend_from_slice(&(units as u32).to_le_bytes());
        head.extend_from_slice(&(data.len() as u32).to_le_bytes());
        head.extend_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(data)?;
        self.out.write_all(&[0u8; 3][..padding])?;
        self.out.write_all(&total.to_le_bytes())
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }
}

/// A nanosecond pcap file created at its first packet, whose link type it takes: a pcap has
/// one link type, and the first packet is the first moment it is known.
pub struct PcapFile {
    path: std::path::PathBuf,
    writer: Option<(PcapWriter<io::BufWriter<std::fs::File>>, u32)>,
}

impl PcapFile {
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        PcapFile {
            path: path.into(),
            writer: None,
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn create(&self, link_type: u32) -> io::Result<PcapWriter<io::BufWriter<std::fs::File>>> {
        let file = std::fs::File::create(&self.path)?;
        PcapWriter::new(
            io::BufWriter::with_capacity(1 << 20, file),
            link_type,
            262_144,
            Precision::Nano,
            false,
        )
    }

    /// Write one packet; Ok(false) when its link type differs from the file's (not written).
    pub fn write(
        &mut self,
        link_type: u32,
        ts_ns: i64,
        data: &[u8],
        orig_len: u32,
    ) -> io::Result<bool> {
        if self.writer.is_none() {
            self.writer = Some((self.create(link_type)?, link_type));
        }
        let (writer, file_link) = self.writer.as_mut().expect("created above");
        if *file_link != link_type {
            return Ok(false);
        }
        writer.write(ts_ns, data, orig_len)?;
        Ok(true)
    }

    /// Flush the file; without any packet, an empty Ethernet capture is written.
    pub fn finish(self) -> io::Result<()> {
        let writer = match self.writer {
            Some((w, _)) => w,
            None => self.create(1)?,
        };
        writer.into_inner().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pcap_file_takes_the_first_link_type_and_refuses_others() {
        let path =
            std::env::temp_dir().join(format!("gophercap-pcapfile-{}.pcap", std::process::id()));
        let mut f = PcapFile::new(&path);
        assert!(f.write(113, 5, &[1, 2, 3], 3).unwrap());
        assert!(!f.write(1, 6, &[4], 1).unwrap());
        f.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(u32::from_le_bytes(bytes[20..24].try_into().unwrap()), 113);
        assert_eq!(bytes.len(), 24 + 16 + 3);
        let empty = PcapFile::new(&path);
        empty.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 24);
        let _ = std::fs::remove_file(&path);
    }
}
