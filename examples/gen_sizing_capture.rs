//! Generator of worst-case captures for sizing the memory of `gophercap http-trace`: C HTTP/1.1
//! connections open at once, each answering its request with a body of B bytes (Content-Length
//! by default), the segments of all bodies interleaved round by round (segment 1 of every connection, then
//! segment 2 of every connection, ...), so that every connection holds its message in flight
//! at the same time. The README's "Memory sizing" (under `http-trace`) was measured on these.
//!
//! Usage: `cargo run --release --example gen_sizing_capture -- OUT.pcap --connections C
//! --body-bytes B [options]` (`-` for OUT writes to stdout, to pipe into `http-trace -`).
//! Writes `OUT.pcap.tmp` and renames it when done. Same arguments, same bytes.
//!
//! Options:
//! - `--out-of-order`: each response's first body segment is held back and sent after the
//!   body's last one (a retransmission), so the rest of every body waits in the reassembly
//!   buffer (the one `--max-reassembly-mb` caps across connections).
//! - `--lost`: that segment is never sent; the hole becomes a gap when the connection closes.
//! - `--hole-at N` (0): the segment held back or lost is the one with byte N of the framed body
//!   instead of the first: the body before it is read (and kept), the rest waits behind it.
//! - `--framing length|chunked|close` (length): the body's framing: Content-Length, one chunk
//!   of B bytes (Transfer-Encoding: chunked), or until the server closes.
//! - `--requests N` (1): requests per connection, each answered in turn (keep-alive).
//! - `--no-responses`: the server never answers; all N requests stay pending (a capture that
//!   sees one direction only).
//! - `--path-bytes P` (16): length of each request's target.
//! - `--head-bytes H`: each response head padded to H bytes with an `X-Padding` header, sent in
//!   segments of `--segment-bytes` round by round like the bodies (a head waits whole before
//!   it is parsed).
//! - `--segment-bytes S` (1460): TCP payload per body segment.
//! - `--waves K` (1): K groups of C connections, one after the other (each group closed with
//!   FINs before the next opens): the same peak load over a K times longer input.
//! - `--max-bytes N` (1610612736): refuse to write a capture larger than this.
//!
//! Addresses: clients in 10.99.1.1 – 10.99.199.250, the server 10.99.200.1 port 80. Ethernet,
//! IPv4 and TCP with correct checksums; one packet per microsecond of capture time, so no
//! connection reaches an idle timeout. The last stderr line is `bytes=N packets=N messages=N`.

use std::env;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use gophercap::sink::capture::{PcapWriter, Precision};

const LINKTYPE_ETHERNET: u32 = 1;
const SNAPLEN: u32 = 65535;
/// 2024-01-01T00:00:00Z.
const START_NS: i64 = 1_704_067_200_000_000_000;
const SERVER: [u8; 4] = [10, 99, 200, 1];
const SERVER_PORT: u16 = 80;
/// Ethernet, IPv4 and TCP headers (no options).
const FRAME_OVERHEAD: u64 = 14 + 20 + 20;
/// A pcap record header.
const RECORD_OVERHEAD: u64 = 16;
/// Client hosts per third octet, and third octets used.
const HOSTS_PER_NET: u64 = 250;
const NETS: u64 = 199;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;

/// How a response's body is delimited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length,
    /// One chunk of the whole body, then the last chunk.
    Chunked,
    /// Until the server's FIN.
    Close,
}

/// What to do with each response's first body segment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hole {
    None,
    /// Sent after the body's last segment.
    OutOfOrder,
    /// Never sent.
    Lost,
}

struct Options {
    out: String,
    connections: u64,
    body: u64,
    requests: u64,
    responses: bool,
    path_bytes: usize,
    /// Length of the response head, when padded.
    head_bytes: Option<usize>,
    segment: u64,
    framing: Framing,
    hole: Hole,
    /// Body offset of the byte whose segment is held back or lost.
    hole_at: u64,
    waves: u64,
    max_bytes: u64,
}

impl Options {
    /// What the server sends after the head: the body, framed.
    fn wire(&self) -> (Vec<u8>, u64, Vec<u8>) {
        match self.framing {
            Framing::Chunked if self.body == 0 => (b"0\r\n\r\n".to_vec(), 0, Vec::new()),
            Framing::Chunked => (
                format!("{:x}\r\n", self.body).into_bytes(),
                self.body,
                b"\r\n0\r\n\r\n".to_vec(),
            ),
            Framing::Length | Framing::Close => (Vec::new(), self.body, Vec::new()),
        }
    }

    /// Bytes after the head.
    fn wire_len(&self) -> u64 {
        let (prefix, body, suffix) = self.wire();
        prefix.len() as u64 + body + suffix.len() as u64
    }

    fn segments(&self) -> u64 {
        self.wire_len().div_ceil(self.segment)
    }

    /// The index of the segment held back or lost, when there is one.
    fn hole_segment(&self) -> Option<u64> {
        let segments = self.segments();
        (self.hole != Hole::None && segments > 0)
            .then(|| (self.hole_at / self.segment).min(segments - 1))
    }

    /// Body bytes of segment `r`: its offset and length.
    fn segment_at(&self, r: u64) -> (u64, usize) {
        let at = r * self.segment;
        (at, self.segment.min(self.wire_len() - at) as usize)
    }

    fn head(&self) -> Vec<u8> {
        let framing = match self.framing {
            Framing::Length => format!("Content-Length: {}", self.body),
            Framing::Chunked => "Transfer-Encoding: chunked".into(),
            Framing::Close => "Connection: close".into(),
        };
        let mut head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{framing}\r\n");
        if let Some(want) = self.head_bytes {
            let padding = want.saturating_sub(head.len() + "X-Padding: \r\n\r\n".len());
            head.push_str("X-Padding: ");
            head.extend(std::iter::repeat_n('p', padding));
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    /// The head's segments: offset and length of each.
    fn head_segments(&self) -> impl Iterator<Item = (usize, usize)> {
        let (len, segment) = (self.head().len(), self.segment as usize);
        (0..len.div_ceil(segment)).map(move |i| (i * segment, segment.min(len - i * segment)))
    }

    fn request(&self, n: u64) -> Vec<u8> {
        // The target: "/" and the connection's number, padded to the length asked for.
        let mut path = format!("/{n}/");
        while path.len() < self.path_bytes {
            path.push('x');
        }
        path.truncate(self.path_bytes.max(1));
        format!(
            "GET {path} HTTP/1.1\r\nHost: 10.99.200.1\r\nUser-Agent: gen_sizing_capture\r\n\
             Accept: */*\r\n\r\n"
        )
        .into_bytes()
    }

    /// Packets and bytes of one connection, and the whole file's bytes.
    fn size(&self) -> (u64, u64) {
        let record = |payload: u64| RECORD_OVERHEAD + FRAME_OVERHEAD + payload;
        // Handshake (the SYNs carry a 4-byte MSS option) and the FIN exchange.
        let mut packets = 6;
        let mut bytes = 2 * record(4) + 4 * record(0);
        let request = self.request(u64::MAX).len() as u64;
        packets += self.requests;
        bytes += self.requests * record(request);
        if self.responses {
            let segments = self.segments();
            let lost = self.hole_segment().filter(|_| self.hole == Hole::Lost);
            let sent = segments - u64::from(lost.is_some());
            let body = self.wire_len() - lost.map_or(0, |h| self.segment_at(h).1 as u64);
            // Head, body segments, an ACK for every second segment and a last one.
            let heads = self.head_segments().count() as u64;
            let per = heads + sent + segments / 2 + 1;
            packets += self.requests * per;
            bytes += self.requests
                * (heads * record(0)
                    + self.head().len() as u64
                    + sent * record(0)
                    + body
                    + (segments / 2 + 1) * record(0));
        }
        let conns = self.connections * self.waves;
        (conns * packets, 24 + conns * bytes)
    }
}

/// One connection's endpoints and next sequence numbers.
struct Conn {
    client: [u8; 4],
    port: u16,
    cseq: u32,
    sseq: u32,
}

impl Conn {
    fn new(n: u64) -> Conn {
        let host = n % (HOSTS_PER_NET * NETS);
        Conn {
            client: [
                10,
                99,
                (1 + host / HOSTS_PER_NET) as u8,
                (1 + host % HOSTS_PER_NET) as u8,
            ],
            port: 20_000 + (n / (HOSTS_PER_NET * NETS)) as u16,
            // Initial sequence numbers spread over the space (some wrap within the body).
            cseq: (n as u32).wrapping_mul(0x9e37_79b9),
            sseq: (n as u32).wrapping_mul(0x85eb_ca6b) ^ 0x5bd1_e995,
        }
    }
}

/// One's-complement sum of `data` as big-endian 16-bit words (not folded).
fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut pairs = data.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [b] = pairs.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Writes the frames, counting what it wrote.
struct Out<W: Write> {
    pcap: PcapWriter<W>,
    frame: Vec<u8>,
    ts: i64,
    ident: u16,
    packets: u64,
    bytes: u64,
}

impl<W: Write> Out<W> {
    fn tcp(
        &mut self,
        c: &Conn,
        from_client: bool,
        flags: u8,
        seq: u32,
        ack: u32,
        payload: &[u8],
    ) -> io::Result<()> {
        let (src, dst, sp, dp) = if from_client {
            (c.client, SERVER, c.port, SERVER_PORT)
        } else {
            (SERVER, c.client, SERVER_PORT, c.port)
        };
        let b = &mut self.frame;
        b.clear();
        b.extend_from_slice(&[0x02, 0x00, dst[0], dst[1], dst[2], dst[3]]);
        b.extend_from_slice(&[0x02, 0x00, src[0], src[1], src[2], src[3]]);
        b.extend_from_slice(&[0x08, 0x00]);
        let id = self.ident.to_be_bytes();
        self.ident = self.ident.wrapping_add(1);
        b.extend_from_slice(&[0x45, 0, 0, 0, id[0], id[1], 0x40, 0, 64, 6, 0, 0]);
        b.extend_from_slice(&src);
        b.extend_from_slice(&dst);
        let syn = flags & SYN != 0;
        let ack = if flags & ACK != 0 { ack } else { 0 };
        b.extend_from_slice(&sp.to_be_bytes());
        b.extend_from_slice(&dp.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&ack.to_be_bytes());
        let offset: u8 = if syn { 6 << 4 } else { 5 << 4 };
        b.extend_from_slice(&[offset, flags, 0xff, 0xff, 0, 0, 0, 0]);
        if syn {
            b.extend_from_slice(&[2, 4, 0x05, 0xb4]);
        }
        b.extend_from_slice(payload);
        let total = (b.len() - 14) as u16;
        b[16..18].copy_from_slice(&total.to_be_bytes());
        let ip = fold(sum16(&b[14..34], 0));
        b[24..26].copy_from_slice(&ip.to_be_bytes());
        let l4_len = b.len() - 34;
        let pseudo = sum16(&b[26..34], l4_len as u64 + 6);
        let tcp = fold(sum16(&b[34..], pseudo));
        b[50..52].copy_from_slice(&tcp.to_be_bytes());
        self.pcap.write(self.ts, b, b.len() as u32)?;
        self.ts += 1_000;
        self.packets += 1;
        self.bytes += RECORD_OVERHEAD + b.len() as u64;
        Ok(())
    }
}

/// Body bytes: printable text (kept as UTF-8 in the JSON lines, as most bodies are).
const LINE: &[u8] = b"the quick brown fox jumps over the lazy dog 0123456789\n";

/// The framed body's bytes `at..at + len` into `out`.
fn wire_bytes(o: &Options, at: u64, len: usize, out: &mut Vec<u8>) {
    let (prefix, body, suffix) = o.wire();
    out.clear();
    for offset in at..at + len as u64 {
        let p = prefix.len() as u64;
        out.push(if offset < p {
            prefix[offset as usize]
        } else if offset < p + body {
            LINE[((offset - p) % LINE.len() as u64) as usize]
        } else {
            suffix[(offset - p - body) as usize]
        });
    }
}

fn generate<W: Write>(o: &Options, w: W) -> io::Result<(W, u64, u64, u64)> {
    let mut out = Out {
        pcap: PcapWriter::new(w, LINKTYPE_ETHERNET, SNAPLEN, Precision::Micro, false)?,
        frame: Vec::with_capacity(2048),
        ts: START_NS,
        ident: 1,
        packets: 0,
        bytes: 24,
    };
    let mut payload = Vec::with_capacity(o.segment as usize);
    let head = o.head();
    let segments = o.segments();
    let mut messages = 0;
    for wave in 0..o.waves {
        let first = wave * o.connections;
        let mut conns: Vec<Conn> = (first..first + o.connections).map(Conn::new).collect();
        for c in &mut conns {
            out.tcp(c, true, SYN, c.cseq, 0, &[])?;
            out.tcp(c, false, SYN | ACK, c.sseq, c.cseq.wrapping_add(1), &[])?;
            c.cseq = c.cseq.wrapping_add(1);
            c.sseq = c.sseq.wrapping_add(1);
            out.tcp(c, true, ACK, c.cseq, c.sseq, &[])?;
        }
        for _ in 0..o.requests {
            for (i, c) in conns.iter_mut().enumerate() {
                let request = o.request(first + i as u64);
                out.tcp(c, true, PSH | ACK, c.cseq, c.sseq, &request)?;
                c.cseq = c.cseq.wrapping_add(request.len() as u32);
                messages += 1;
            }
            if !o.responses {
                continue;
            }
            for (at, len) in o.head_segments() {
                for c in &mut conns {
                    let piece = &head[at..at + len];
                    out.tcp(c, false, PSH | ACK, c.sseq, c.cseq, piece)?;
                    c.sseq = c.sseq.wrapping_add(len as u32);
                }
            }
            messages += conns.len() as u64;
            // Body segment r of every connection, then r + 1: all bodies grow together.
            let body_start: Vec<u32> = conns.iter().map(|c| c.sseq).collect();
            let hole = o.hole_segment();
            let hole_offset = hole.map(|h| o.segment_at(h).0);
            for r in 0..segments {
                let (at, len) = o.segment_at(r);
                let last = r + 1 == segments;
                for (c, start) in conns.iter_mut().zip(&body_start) {
                    let seq = start.wrapping_add(at as u32);
                    if hole != Some(r) {
                        let flags = if last { PSH | ACK } else { ACK };
                        wire_bytes(o, at, len, &mut payload);
                        out.tcp(c, false, flags, seq, c.cseq, &payload)?;
                    }
                    if r % 2 == 1 {
                        // Behind a hole the client repeats the ACK of the hole's start.
                        let acked = match hole_offset {
                            Some(h) if h <= at => start.wrapping_add(h as u32),
                            _ => seq.wrapping_add(len as u32),
                        };
                        out.tcp(c, true, ACK, c.cseq, acked, &[])?;
                    }
                }
            }
            for (c, start) in conns.iter_mut().zip(&body_start) {
                let end = start.wrapping_add(o.wire_len() as u32);
                let mut acked = end;
                if let Some(h) = hole {
                    let (at, len) = o.segment_at(h);
                    if o.hole == Hole::OutOfOrder {
                        let seq = start.wrapping_add(at as u32);
                        wire_bytes(o, at, len, &mut payload);
                        out.tcp(c, false, ACK, seq, c.cseq, &payload)?;
                    } else {
                        acked = start.wrapping_add(at as u32);
                    }
                }
                c.sseq = end;
                out.tcp(c, true, ACK, c.cseq, acked, &[])?;
            }
        }
        for c in &mut conns {
            out.tcp(c, true, FIN | ACK, c.cseq, c.sseq, &[])?;
            c.cseq = c.cseq.wrapping_add(1);
            out.tcp(c, false, FIN | ACK, c.sseq, c.cseq, &[])?;
            c.sseq = c.sseq.wrapping_add(1);
            out.tcp(c, true, ACK, c.cseq, c.sseq, &[])?;
        }
    }
    Ok((out.pcap.into_inner(), out.packets, out.bytes, messages))
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        out: String::new(),
        connections: 0,
        body: 0,
        requests: 1,
        responses: true,
        path_bytes: 16,
        head_bytes: None,
        segment: 1460,
        framing: Framing::Length,
        hole: Hole::None,
        hole_at: 0,
        waves: 1,
        max_bytes: 1_610_612_736,
    };
    let mut it = args.iter();
    let number = |name: &str, value: Option<&String>| -> Result<u64, String> {
        let value = value.ok_or_else(|| format!("{name} needs a value"))?;
        value
            .parse()
            .map_err(|e| format!("bad {name} {value:?}: {e}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--connections" => o.connections = number(arg, it.next())?,
            "--body-bytes" => o.body = number(arg, it.next())?,
            "--requests" => o.requests = number(arg, it.next())?,
            "--no-responses" => o.responses = false,
            "--path-bytes" => o.path_bytes = number(arg, it.next())? as usize,
            "--head-bytes" => o.head_bytes = Some(number(arg, it.next())? as usize),
            "--segment-bytes" => o.segment = number(arg, it.next())?,
            "--framing" => {
                o.framing = match it.next().map(String::as_str) {
                    Some("length") => Framing::Length,
                    Some("chunked") => Framing::Chunked,
                    Some("close") => Framing::Close,
                    other => return Err(format!("bad --framing {other:?}")),
                }
            }
            "--out-of-order" => o.hole = Hole::OutOfOrder,
            "--lost" => o.hole = Hole::Lost,
            "--hole-at" => o.hole_at = number(arg, it.next())?,
            "--waves" => o.waves = number(arg, it.next())?,
            "--max-bytes" => o.max_bytes = number(arg, it.next())?,
            _ if o.out.is_empty() && (arg == "-" || !arg.starts_with('-')) => o.out = arg.clone(),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    if o.out.is_empty() {
        return Err("no output file".into());
    }
    if o.connections == 0 || o.connections > 5_000_000 {
        return Err("--connections must be between 1 and 5000000".into());
    }
    if o.body > u64::from(u32::MAX / 2) {
        return Err("--body-bytes must be below 2 GiB".into());
    }
    if !(1..=1460).contains(&o.segment) {
        return Err("--segment-bytes must be between 1 and 1460".into());
    }
    if o.connections.saturating_mul(o.waves) > 100_000_000 {
        return Err("--connections times --waves must be at most 100000000".into());
    }
    if o.requests == 0 || o.waves == 0 {
        return Err("--requests and --waves must be at least 1".into());
    }
    if o.framing == Framing::Close && o.requests > 1 {
        return Err("--framing close ends the connection: one request only".into());
    }
    if o.head_bytes.is_some_and(|h| h > 1 << 20) {
        return Err("--head-bytes must be at most 1048576".into());
    }
    if !(1..=8192).contains(&o.path_bytes) {
        return Err("--path-bytes must be between 1 and 8192".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("gen_sizing_capture: {e}");
            eprintln!(
                "usage: gen_sizing_capture OUT.pcap|- --connections C --body-bytes B \
                 [--framing length|chunked|close] [--out-of-order|--lost] [--hole-at N] [--requests N] [--no-responses] [--path-bytes P] \
                 [--head-bytes H] [--segment-bytes S] [--waves K] [--max-bytes N]"
            );
            return ExitCode::from(2);
        }
    };
    let (packets, bytes) = o.size();
    if bytes > o.max_bytes {
        eprintln!(
            "gen_sizing_capture: the capture would be {bytes} bytes ({packets} packets), over \
             --max-bytes {}",
            o.max_bytes
        );
        return ExitCode::from(2);
    }
    let start = std::time::Instant::now();
    let result = if o.out == "-" {
        let stdout = io::stdout().lock();
        generate(&o, BufWriter::with_capacity(1 << 20, stdout))
            .and_then(|(mut w, p, b, m)| w.flush().map(|()| (p, b, m)))
    } else {
        let tmp = format!("{}.tmp", o.out);
        File::create(&tmp)
            .and_then(|f| generate(&o, BufWriter::with_capacity(8 << 20, f)))
            .and_then(|(w, p, b, m)| {
                drop(w.into_inner().map_err(|e| e.into_error())?);
                fs::rename(&tmp, &o.out)?;
                Ok((p, b, m))
            })
    };
    match result {
        Ok((packets, bytes, messages)) => {
            debug_assert_eq!((packets, bytes), o.size());
            eprintln!(
                "gen_sizing_capture: wrote {} ({} connections x {} body bytes) in {:.1}s",
                o.out,
                o.connections * o.waves,
                o.body,
                start.elapsed().as_secs_f64()
            );
            eprintln!("bytes={bytes} packets={packets} messages={messages}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_sizing_capture: {}: {e}", o.out);
            ExitCode::FAILURE
        }
    }
}
