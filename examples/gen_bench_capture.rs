//! Deterministic generator of a large mixed-traffic pcap for `bench/run`.
//!
//! Usage: `cargo run --release --example gen_bench_capture -- [--short] OUT.pcap [TARGET_BYTES]`
//! (default target 1 GiB = 1073741824). Writes `OUT.pcap.tmp` and renames it when done, so a
//! present OUT.pcap is always complete. Same arguments, same bytes.
//!
//! Traffic: Ethernet; IPv4 (10.99.0.0/16) and ~10% IPv6 (fd00::/8) TCP connections (handshake,
//! request, response segments up to MSS with a delayed ACK every two segments, FIN exchange),
//! DNS-sized UDP query/response pairs and a few ICMP echo pairs. IPv4 header, TCP, UDP and ICMP
//! checksums are correct. Timestamps are monotonic, microsecond-precision pcap.
//!
//! `--short`: many short connections with small packets instead (one small request and one
//! small response each, thousands open at once; frames average under 100 bytes): the
//! per-packet and per-flow cost, where the default mix measures bytes.

use std::env;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use gophercap::sink::capture::{PcapWriter, Precision};

const LINKTYPE_ETHERNET: u32 = 1;
const SNAPLEN: u32 = 65535;
/// 2024-01-01T00:00:00Z.
const START_NS: i64 = 1_704_067_200_000_000_000;
/// Connections open at once.
const ACTIVE_CONNS: usize = 64;
const ACTIVE_SHORT_CONNS: usize = 4096;
const POOL: usize = 1 << 18;

/// splitmix64: tiny, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Syn,
    SynAck,
    HandshakeAck,
    Request,
    Response,
    ClientAck,
    FinClient,
    FinServer,
    LastAck,
}

struct Conn {
    v6: bool,
    text: bool,
    cli: [u8; 16],
    srv: [u8; 16],
    cport: u16,
    sport: u16,
    cseq: u32,
    sseq: u32,
    state: State,
    /// Response bytes still to send.
    remaining: u64,
    unacked: u8,
    requests_left: u8,
    short: bool,
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;

fn v4_addr(host: u16) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[10, 99, (host >> 8) as u8, host as u8]);
    a
}

fn v6_addr(host: u16) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[2] = 0x00;
    a[3] = 0x99;
    a[14] = (host >> 8) as u8;
    a[15] = host as u8;
    a
}

impl Conn {
    fn new(rng: &mut Rng, short: bool) -> Conn {
        let v6 = rng.chance(100);
        let cli_host = rng.range(0x0100, 0x7fff) as u16;
        let srv_host = rng.range(0x8000, 0x80ff) as u16; // a few hundred servers
        let (cli, srv) = if v6 {
            (v6_addr(cli_host), v6_addr(srv_host))
        } else {
            (v4_addr(cli_host), v4_addr(srv_host))
        };
        let sport = match rng.next() % 10 {
            0..=5 => 443,
            6..=8 => 80,
            _ => rng.range(1024, 9999) as u16,
        };
        Conn {
            v6,
            text: sport != 443,
            cli,
            srv,
            cport: rng.range(32768, 60999) as u16,
            sport,
            cseq: rng.next() as u32,
            sseq: rng.next() as u32,
            state: State::Syn,
            remaining: 0,
            unacked: 0,
            requests_left: if short { 1 } else { rng.range(1, 4) as u8 },
            short,
        }
    }

    fn mss(&self) -> u64 {
        if self.v6 { 1440 } else { 1460 }
    }
}

/// Response size: mostly small objects, some medium, a few bulk transfers.
fn response_size(rng: &mut Rng) -> u64 {
    match rng.next() % 100 {
        0..=59 => rng.range(200, 8_000),
        60..=94 => rng.range(8_000, 200_000),
        _ => rng.range(200_000, 4_000_000),
    }
}

/// One's-complement sum of `data` as big-endian 16-bit words (not folded).
fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes(c.try_into().unwrap());
        acc += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
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

struct Builder {
    buf: Vec<u8>,
    random_pool: Vec<u8>,
    text_pool: Vec<u8>,
}

impl Builder {
    fn new(rng: &mut Rng) -> Builder {
        let mut random_pool = Vec::with_capacity(POOL + 8);
        while random_pool.len() < POOL {
            random_pool.extend_from_slice(&rng.next().to_le_bytes());
        }
        let mut text_pool = Vec::with_capacity(POOL + 256);
        let words = [
            "GET",
            "/index.html",
            "HTTP/1.1",
            "Host:",
            "example.internal",
            "Content-Type:",
            "text/html;",
            "charset=utf-8",
            "<div",
            "class=\"item\">",
            "</div>",
            "<p>",
            "the",
            "quick",
            "brown",
            "fox",
            "jumps",
            "over",
            "lazy",
            "dog",
            "{\"id\":",
            "\"name\":",
            "\"value\":",
            "},",
            "Cache-Control:",
            "max-age=3600",
            "\r\n",
        ];
        while text_pool.len() < POOL {
            let w = words[(rng.next() % words.len() as u64) as usize];
            text_pool.extend_from_slice(w.as_bytes());
            if rng.chance(300) {
                text_pool.extend_from_slice((rng.next() % 100_000).to_string().as_bytes());
            }
            text_pool.push(b' ');
        }
        Builder {
            buf: Vec::with_capacity(2048),
            random_pool,
            text_pool,
        }
    }

    fn ethernet(&mut self, src: &[u8; 16], dst: &[u8; 16], v6: bool) {
        self.buf.clear();
        self.buf
            .extend_from_slice(&[0x02, 0x00, dst[0], dst[3], dst[14], dst[15]]);
        self.buf
            .extend_from_slice(&[0x02, 0x00, src[0], src[3], src[14], src[15]]);
        self.buf
            .extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    }

    /// IP header with a zero length, fixed up by `finish_ip`.
    fn ip(&mut self, src: &[u8; 16], dst: &[u8; 16], v6: bool, proto: u8, ident: u16) {
        if v6 {
            self.buf
                .extend_from_slice(&[0x60, 0, 0, 0, 0, 0, proto, 64]);
            self.buf.extend_from_slice(src);
            self.buf.extend_from_slice(dst);
        } else {
            let id = ident.to_be_bytes();
            self.buf
                .extend_from_slice(&[0x45, 0, 0, 0, id[0], id[1], 0x40, 0, 64, proto, 0, 0]);
            self.buf.extend_from_slice(&src[..4]);
            self.buf.extend_from_slice(&dst[..4]);
        }
    }

    fn payload(&mut self, rng: &mut Rng, text: bool, len: usize) {
        let pool = if text {
            &self.text_pool
        } else {
            &self.random_pool
        };
        let off = (rng.next() % (pool.len() - len) as u64) as usize;
        self.buf.extend_from_slice(&pool[off..off + len]);
    }

    /// Fill in lengths and checksums; `l4_csum_at` is the checksum offset inside the L4 header.
    fn finish_ip(&mut self, v6: bool, proto: u8, l4_csum_at: usize) {
        let l3 = 14;
        let l4 = if v6 { l3 + 40 } else { l3 + 20 };
        let l4_len = self.buf.len() - l4;
        let pseudo = if v6 {
            self.buf[l3 + 4..l3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            sum16(&self.buf[l3 + 8..l3 + 40], l4_len as u64 + u64::from(proto))
        } else {
            let total = (self.buf.len() - l3) as u16;
            self.buf[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            let c = fold(sum16(&self.buf[l3..l3 + 20], 0));
            self.buf[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
            sum16(
                &self.buf[l3 + 12..l3 + 20],
                l4_len as u64 + u64::from(proto),
            )
        };
        if proto == 1 {
            // ICMPv4: no pseudo-header.
            let c = fold(sum16(&self.buf[l4..], 0));
            self.buf[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
        } else {
            if proto == 17 {
                self.buf[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            }
            let mut c = fold(sum16(&self.buf[l4..], pseudo));
            if proto == 17 && c == 0 {
                c = 0xffff;
            }
            let at = l4 + l4_csum_at;
            self.buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        // Ethernet minimum frame (without FCS).
        if self.buf.len() < 60 {
            self.buf.resize(60, 0);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        rng: &mut Rng,
        c: &Conn,
        from_client: bool,
        flags: u8,
        seq: u32,
        ack: u32,
        payload: usize,
        ident: u16,
    ) {
        let (src, dst, sp, dp) = if from_client {
            (&c.cli, &c.srv, c.cport, c.sport)
        } else {
            (&c.srv, &c.cli, c.sport, c.cport)
        };
        self.ethernet(src, dst, c.v6);
        self.ip(src, dst, c.v6, 6, ident);
        let syn = flags & SYN != 0;
        let off: u8 = if syn { 6 } else { 5 };
        let ack = if flags & ACK != 0 { ack } else { 0 };
        self.buf.extend_from_slice(&sp.to_be_bytes());
        self.buf.extend_from_slice(&dp.to_be_bytes());
        self.buf.extend_from_slice(&seq.to_be_bytes());
        self.buf.extend_from_slice(&ack.to_be_bytes());
        self.buf
            .extend_from_slice(&[off << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        if syn {
            let mss = c.mss() as u16;
            self.buf.extend_from_slice(&[2, 4]);
            self.buf.extend_from_slice(&mss.to_be_bytes());
        }
        if payload > 0 {
            self.payload(rng, c.text, payload);
        }
        self.finish_ip(c.v6, 6, 16);
    }
}

/// Emit the next packet of `c` into the builder; returns false when the connection is over.
fn step(b: &mut Builder, rng: &mut Rng, c: &mut Conn, ident: u16) -> bool {
    match c.state {
        State::Syn => {
            b.tcp(rng, c, true, SYN, c.cseq, 0, 0, ident);
            c.cseq = c.cseq.wrapping_add(1);
            c.state = State::SynAck;
        }
        State::SynAck => {
            b.tcp(rng, c, false, SYN | ACK, c.sseq, c.cseq, 0, ident);
            c.sseq = c.sseq.wrapping_add(1);
            c.state = State::HandshakeAck;
        }
        State::HandshakeAck => {
            b.tcp(rng, c, true, ACK, c.cseq, c.sseq, 0, ident);
            c.state = State::Request;
        }
        State::Request => {
            let len = if c.short {
                rng.range(20, 120)
            } else {
                rng.range(40, 700)
            } as usize;
            b.tcp(rng, c, true, PSH | ACK, c.cseq, c.sseq, len, ident);
            c.cseq = c.cseq.wrapping_add(len as u32);
            c.remaining = if c.short {
                rng.range(20, 160)
            } else {
                response_size(rng)
            };
            c.unacked = 0;
            c.state = State::Response;
        }
        State::Response => {
            // Mostly full segments; sometimes the application pushes a partial buffer.
            let seg = if rng.chance(120) {
                rng.range(1, c.mss())
            } else {
                c.mss()
            };
            let len = c.remaining.min(seg);
            c.remaining -= len;
            let flags = if c.remaining == 0 { PSH | ACK } else { ACK };
            b.tcp(rng, c, false, flags, c.sseq, c.cseq, len as usize, ident);
            c.sseq = c.sseq.wrapping_add(len as u32);
            c.unacked += 1;
            if c.unacked == 2 || c.remaining == 0 {
                c.state = State::ClientAck;
            }
        }
        State::ClientAck => {
            b.tcp(rng, c, true, ACK, c.cseq, c.sseq, 0, ident);
            c.unacked = 0;
            c.state = if c.remaining > 0 {
                State::Response
            } else {
                c.requests_left -= 1;
                if c.requests_left > 0 {
                    State::Request
                } else {
                    State::FinClient
                }
            };
        }
        State::FinClient => {
            b.tcp(rng, c, true, FIN | ACK, c.cseq, c.sseq, 0, ident);
            c.cseq = c.cseq.wrapping_add(1);
            c.state = State::FinServer;
        }
        State::FinServer => {
            b.tcp(rng, c, false, FIN | ACK, c.sseq, c.cseq, 0, ident);
            c.sseq = c.sseq.wrapping_add(1);
            c.state = State::LastAck;
        }
        State::LastAck => {
            b.tcp(rng, c, true, ACK, c.cseq, c.sseq, 0, ident);
            return false;
        }
    }
    true
}

#[allow(clippy::too_many_arguments)]
/// A DNS-looking UDP datagram: header, a random name, type A; responses carry answers.
fn dns(
    b: &mut Builder,
    rng: &mut Rng,
    query: bool,
    v6: bool,
    client: &[u8; 16],
    txid: u16,
    cport: u16,
    ident: u16,
) {
    let server = if v6 { v6_addr(0x0035) } else { v4_addr(0x0035) };
    let (src, dst, sp, dp) = if query {
        (client, &server, cport, 53u16)
    } else {
        (&server, client, 53u16, cport)
    };
    b.ethernet(src, dst, v6);
    b.ip(src, dst, v6, 17, ident);
    b.buf.extend_from_slice(&sp.to_be_bytes());
    b.buf.extend_from_slice(&dp.to_be_bytes());
    b.buf.extend_from_slice(&[0, 0, 0, 0]);
    let flags: u16 = if query { 0x0100 } else { 0x8180 };
    let answers: u16 = if query { 0 } else { rng.range(1, 8) as u16 };
    b.buf.extend_from_slice(&txid.to_be_bytes());
    b.buf.extend_from_slice(&flags.to_be_bytes());
    b.buf.extend_from_slice(&[0, 1]);
    b.buf.extend_from_slice(&answers.to_be_bytes());
    b.buf.extend_from_slice(&[0, 0, 0, 0]);
    // The name is derived from txid so query and response agree.
    let mut name_rng = Rng(u64::from(txid) * 7919);
    for _ in 0..name_rng.range(2, 4) {
        let n = name_rng.range(3, 12) as usize;
        b.buf.push(n as u8);
        for _ in 0..n {
            b.buf.push(b'a' + (name_rng.next() % 26) as u8);
        }
    }
    b.buf.extend_from_slice(&[0, 0, 1, 0, 1]);
    for _ in 0..answers {
        b.buf
            .extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 10, 99]);
        b.buf.extend_from_slice(&(rng.next() as u16).to_be_bytes());
    }
    b.finish_ip(v6, 17, 6);
}

fn icmp_echo(b: &mut Builder, request: bool, host: &[u8; 16], id: u16, seq: u16, ident: u16) {
    let gw = v4_addr(0x0001);
    let (src, dst) = if request { (host, &gw) } else { (&gw, host) };
    b.ethernet(src, dst, false);
    b.ip(src, dst, false, 1, ident);
    b.buf
        .extend_from_slice(&[if request { 8 } else { 0 }, 0, 0, 0]);
    b.buf.extend_from_slice(&id.to_be_bytes());
    b.buf.extend_from_slice(&seq.to_be_bytes());
    // Classic ping payload: 56 bytes, deterministic per (id, seq) so the reply echoes it.
    let mut p = Rng(u64::from(id) << 16 | u64::from(seq));
    for _ in 0..7 {
        b.buf.extend_from_slice(&p.next().to_le_bytes());
    }
    b.finish_ip(false, 1, 2);
}

fn generate(path: &str, target: u64, short: bool) -> io::Result<(u64, u64)> {
    let tmp = format!("{path}.tmp");
    let file = File::create(&tmp)?;
    let mut w = PcapWriter::new(
        BufWriter::with_capacity(8 << 20, file),
        LINKTYPE_ETHERNET,
        SNAPLEN,
        Precision::Micro,
        false,
    )?;
    let mut rng = Rng(0x6f70_6865_7263_6170); // "gophercap"-ish seed
    let mut b = Builder::new(&mut rng);
    let active = if short {
        ACTIVE_SHORT_CONNS
    } else {
        ACTIVE_CONNS
    };
    let mut conns: Vec<Conn> = (0..active).map(|_| Conn::new(&mut rng, short)).collect();
    let mut written: u64 = 24;
    let mut packets: u64 = 0;
    let mut ts = START_NS;
    let mut ident: u16 = 1;
    let mut icmp_seq: u16 = 0;

    macro_rules! emit {
        ($w:expr, $b:expr, $ts:expr) => {{
            $w.write($ts, &$b.buf, $b.buf.len() as u32)?;
            written += 16 + $b.buf.len() as u64;
            packets += 1;
            Ok::<(), io::Error>(())
        }};
    }

    while written < target {
        // Inter-packet gap: mostly a few µs, sometimes longer pauses.
        ts += if rng.chance(10) {
            rng.range(1_000_000, 50_000_000) as i64
        } else {
            rng.range(500, 20_000) as i64
        };
        ident = ident.wrapping_add(1);
        let r = rng.next() % 1000;
        if r < 930 {
            let i = (rng.next() % active as u64) as usize;
            if !step(&mut b, &mut rng, &mut conns[i], ident) {
                conns[i] = Conn::new(&mut rng, short);
            }
            emit!(w, b, ts)?;
        } else if r < 995 {
            let v6 = rng.chance(100);
            let host = rng.range(0x0100, 0x7fff) as u16;
            let client = if v6 { v6_addr(host) } else { v4_addr(host) };
            let txid = rng.next() as u16;
            let cport = rng.range(32768, 60999) as u16;
            dns(&mut b, &mut rng, true, v6, &client, txid, cport, ident);
            emit!(w, b, ts)?;
            ts += rng.range(200_000, 30_000_000) as i64;
            dns(
                &mut b,
                &mut rng,
                false,
                v6,
                &client,
                txid,
                cport,
                ident.wrapping_add(7),
            );
            emit!(w, b, ts)?;
        } else {
            let host = v4_addr(rng.range(0x0100, 0x7fff) as u16);
            let id = rng.next() as u16;
            icmp_seq = icmp_seq.wrapping_add(1);
            icmp_echo(&mut b, true, &host, id, icmp_seq, ident);
            emit!(w, b, ts)?;
            ts += rng.range(100_000, 2_000_000) as i64;
            icmp_echo(&mut b, false, &host, id, icmp_seq, ident.wrapping_add(3));
            emit!(w, b, ts)?;
        }
    }
    let mut out = w.into_inner();
    out.flush()?;
    drop(out.into_inner().map_err(|e| e.into_error())?);
    fs::rename(&tmp, path)?;
    Ok((written, packets))
}

fn main() -> ExitCode {
    let mut args: Vec<String> = env::args().skip(1).collect();
    let short = args.first().is_some_and(|a| a == "--short");
    if short {
        args.remove(0);
    }
    if args.is_empty() || args.len() > 2 || args[0].starts_with('-') {
        eprintln!(
            "usage: gen_bench_capture [--short] OUT.pcap [TARGET_BYTES (default 1073741824)]"
        );
        return ExitCode::from(2);
    }
    let target: u64 = match args.get(1).map(|s| s.parse()) {
        None => 1 << 30,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("gen_bench_capture: bad size {:?}: {e}", args[1]);
            return ExitCode::from(2);
        }
    };
    let start = std::time::Instant::now();
    match generate(&args[0], target, short) {
        Ok((bytes, packets)) => {
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "gen_bench_capture: wrote {} ({bytes} bytes, {packets} packets) in {secs:.1}s ({:.0} MB/s)",
                args[0],
                bytes as f64 / secs / 1e6
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_bench_capture: {}: {e}", args[0]);
            ExitCode::FAILURE
        }
    }
}
