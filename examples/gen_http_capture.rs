//! Deterministic generator of HTTP/1.1 captures for the `http` section of `bench/run`, the
//! benchmark of `gophercap http-trace`.
//!
//! Usage: `cargo run --release --example gen_http_capture -- [--short] OUT.pcap [TARGET_BYTES]`
//! (default target 1 GiB = 1073741824). Writes `OUT.pcap.tmp` and renames it when done, so a
//! present OUT.pcap is always complete. Same arguments, same bytes.
//!
//! Default (mixed): 256 keep-alive connections open at once (IPv4 10.99.0.0/16, ~10% IPv6
//! fd00:99::/64, servers on ports 80 and 8080), each with 1–20 request/response exchanges:
//! browser and API GETs with realistic headers, POSTs with form and JSON bodies (100 B – 20 KB),
//! responses with Content-Length bodies, chunked bodies (3–12 chunks), gzip bodies (real text
//! compressed once with flate2 into a pool and reused), 304, 204, 404 and HEAD. Segments up to
//! the MSS; a segment never spans two of the sender's writes (headers written apart from a body,
//! one write per chunk, as servers do). The receiver ACKs every second segment; a response's
//! first segment carries the ACK of its request; handshake and FIN close on every connection.
//! Checksums are correct and sequence numbers continuous, so reassembly sees clean streams;
//! frames are not padded to Ethernet's minimum (as captured on the sending host).
//!
//! `--short`: 4096 short connections open at once, each one small GET and one small response
//! (frames of about 60–300 bytes), for messages per second.
//!
//! When the bytes written plus those the exchanges under way still have to send reach the
//! target, no new exchange starts; those under way finish and every connection closes, so each
//! message written is complete and the file ends near the target (a few percent either way). The counts go to stderr, in the
//! shape of `tshark -z http,tree` to compare with it, and as a last line
//! `messages=N requests=N responses=N` for scripts.

use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use flate2::Compression;
use flate2::write::GzEncoder;
use gophercap::sink::capture::{PcapWriter, Precision};

const LINKTYPE_ETHERNET: u32 = 1;
const SNAPLEN: u32 = 65535;
/// 2024-01-01T00:00:00Z.
const START_NS: i64 = 1_704_067_200_000_000_000;
/// Connections open at once.
const ACTIVE_CONNS: usize = 256;
const ACTIVE_SHORT_CONNS: usize = 4096;
/// Client hosts: 10.99.1.0 – 10.99.127.255 (and the same last 16 bits in IPv6).
const CLIENT_HOSTS: u64 = 0x7f00;
/// Random bytes for application/octet-stream bodies.
const RANDOM_POOL: usize = 4 << 20;

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
    /// Log-uniform in lo..=hi: as many 100–1000 byte bodies as 10–100 KB ones.
    fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((l + u * (h - l)).exp() as u64).clamp(lo, hi)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn word(&mut self) -> &'static str {
        WORDS[(self.next() % WORDS.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies: made once, reused by slice or whole.

const WORDS: [&str; 96] = [
    "the", "of", "and", "to", "in", "is", "you", "that", "it", "for", "was", "on", "are", "with",
    "as", "his", "they", "be", "at", "one", "have", "this", "from", "by", "hot", "word", "but",
    "what", "some", "we", "can", "out", "other", "were", "all", "there", "when", "up", "use",
    "your", "how", "said", "an", "each", "which", "she", "do", "their", "time", "if", "will",
    "way", "about", "many", "then", "them", "write", "would", "like", "so", "these", "her", "long",
    "make", "thing", "see", "him", "two", "has", "look", "more", "day", "could", "go", "come",
    "did", "number", "sound", "most", "people", "my", "over", "know", "water", "than", "call",
    "first", "who", "may", "down", "side", "been", "now", "find", "price", "order",
];

fn sentence(rng: &mut Rng, out: &mut String) {
    let n = rng.range(6, 18);
    for i in 0..n {
        let w = rng.word();
        if i == 0 {
            let mut cs = w.chars();
            if let Some(f) = cs.next() {
                out.push(f.to_ascii_uppercase());
                out.push_str(cs.as_str());
            }
        } else {
            out.push(' ');
            out.push_str(w);
        }
    }
    out.push_str(". ");
}

/// lo..=hi words joined by `sep`.
fn words(rng: &mut Rng, lo: u64, hi: u64, sep: &str, out: &mut String) {
    for i in 0..rng.range(lo, hi) {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(rng.word());
    }
}

/// A product page of about `size` bytes.
fn html_doc(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut s = String::with_capacity(size + 512);
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    words(rng, 4, 4, " ", &mut s);
    s.push_str("</title>\n<link rel=\"stylesheet\" href=\"/static/css/site.css\">\n</head>\n");
    s.push_str("<body>\n<div class=\"container\">\n");
    while s.len() + 40 < size {
        match rng.next() % 4 {
            0 => {
                s.push_str("<h2>");
                words(rng, 2, 6, " ", &mut s);
                s.push_str("</h2>\n");
            }
            1 => {
                s.push_str("<ul>\n");
                for _ in 0..rng.range(2, 8) {
                    let _ = write!(s, "<li><a href=\"/products/{}\">", rng.range(1000, 99999));
                    words(rng, 2, 5, " ", &mut s);
                    s.push_str("</a></li>\n");
                }
                s.push_str("</ul>\n");
            }
            _ => {
                s.push_str("<p>");
                for _ in 0..rng.range(1, 5) {
                    sentence(rng, &mut s);
                }
                s.push_str("</p>\n");
            }
        }
    }
    s.push_str("</div>\n</body>\n</html>\n");
    s.into_bytes()
}

/// A JSON listing of about `size` bytes (valid JSON).
fn json_doc(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut s = String::with_capacity(size + 256);
    let _ = write!(s, "{{\"page\":{},\"items\":[", rng.range(1, 40));
    let mut first = true;
    while s.len() + 30 < size {
        if !first {
            s.push(',');
        }
        first = false;
        let _ = write!(s, "{{\"id\":{},\"name\":\"", rng.range(1000, 999_999));
        words(rng, 1, 4, " ", &mut s);
        s.push_str("\",\"description\":\"");
        sentence(rng, &mut s);
        let _ = write!(
            s,
            "\",\"price\":{}.{:02},\"tags\":[\"{}\",\"{}\"],\"in_stock\":{}}}",
            rng.range(1, 999),
            rng.range(0, 99),
            rng.word(),
            rng.word(),
            rng.chance(700)
        );
    }
    let _ = write!(s, "],\"total\":{}}}", rng.range(100, 100_000));
    s.into_bytes()
}

/// An application/x-www-form-urlencoded body of about `size` bytes.
fn form_doc(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut s = String::with_capacity(size + 128);
    let _ = write!(s, "csrf_token={:016x}{:016x}", rng.next(), rng.next());
    let _ = write!(
        s,
        "&email={}.{}%40example.com",
        rng.word(),
        rng.range(1, 9999)
    );
    s.push_str("&name=");
    words(rng, 2, 2, "+", &mut s);
    let mut i = 0;
    while s.len() + 20 < size {
        let _ = write!(s, "&field_{i}=");
        let mut text = String::new();
        sentence(rng, &mut text);
        s.push_str(&text.trim_end().replace(' ', "+").replace('.', "%2E"));
        i += 1;
    }
    s.into_bytes()
}

struct Gz {
    bytes: Vec<u8>,
    content_type: &'static str,
}

struct Pools {
    html: Vec<Vec<u8>>,
    json: Vec<Vec<u8>>,
    /// Request bodies, 100 B – 20 KB.
    form: Vec<Vec<u8>>,
    req_json: Vec<Vec<u8>>,
    gz: Vec<Gz>,
    random: Vec<u8>,
}

impl Pools {
    fn new(rng: &mut Rng) -> Pools {
        let html: Vec<_> = (0..96)
            .map(|_| {
                let n = rng.log_range(400, 200_000) as usize;
                html_doc(rng, n)
            })
            .collect();
        let json: Vec<_> = (0..96)
            .map(|_| {
                let n = rng.log_range(100, 64_000) as usize;
                json_doc(rng, n)
            })
            .collect();
        let form = (0..48)
            .map(|_| {
                let n = rng.log_range(100, 20_000) as usize;
                form_doc(rng, n)
            })
            .collect();
        let req_json = (0..48)
            .map(|_| {
                let n = rng.log_range(100, 20_000) as usize;
                json_doc(rng, n)
            })
            .collect();
        // gzip the larger half of the text: small responses are rarely compressed.
        let mut gz = Vec::new();
        for (docs, content_type) in [
            (&html, "text/html; charset=utf-8"),
            (&json, "application/json"),
        ] {
            for d in docs.iter().filter(|d| d.len() >= 1000) {
                let mut e = GzEncoder::new(Vec::new(), Compression::default());
                e.write_all(d).expect("gzip to memory");
                gz.push(Gz {
                    bytes: e.finish().expect("gzip to memory"),
                    content_type,
                });
            }
        }
        let mut random = Vec::with_capacity(RANDOM_POOL + 8);
        while random.len() < RANDOM_POOL {
            random.extend_from_slice(&rng.next().to_le_bytes());
        }
        Pools {
            html,
            json,
            form,
            req_json,
            gz,
            random,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP exchanges

const BROWSER_AGENTS: [&str; 3] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
];
const API_AGENTS: [&str; 3] = ["curl/8.5.0", "python-requests/2.31.0", "okhttp/4.12.0"];
const HOST_PREFIXES: [&str; 5] = ["www", "api", "shop", "static", "app"];

/// A message as its sender writes it: the bytes and where each write ends. A segment never
/// spans two writes.
#[derive(Default)]
struct Msg {
    bytes: Vec<u8>,
    writes: Vec<usize>,
    pos: usize,
    write: usize,
}

impl Msg {
    fn clear(&mut self) {
        self.bytes.clear();
        self.writes.clear();
        self.pos = 0;
        self.write = 0;
    }
    fn push(&mut self, s: &[u8]) {
        self.bytes.extend_from_slice(s);
    }
    fn end_write(&mut self) {
        if self.writes.last() != Some(&self.bytes.len()) {
            self.writes.push(self.bytes.len());
        }
    }
    fn done(&self) -> bool {
        self.pos == self.bytes.len()
    }
    /// The next segment's range (at most `mss` bytes, within one write).
    fn next_segment(&mut self, mss: usize) -> (usize, usize) {
        while self.writes[self.write] <= self.pos {
            self.write += 1;
        }
        let start = self.pos;
        self.pos = (start + mss).min(self.writes[self.write]);
        (start, self.pos)
    }
}

#[derive(Default)]
struct Counts {
    connections: u64,
    methods: BTreeMap<&'static str, u64>,
    statuses: BTreeMap<u16, u64>,
    chunked: u64,
    gzip: u64,
    request_bodies: u64,
    response_body_bytes: u64,
}

impl Counts {
    fn requests(&self) -> u64 {
        self.methods.values().sum()
    }
    fn responses(&self) -> u64 {
        self.statuses.values().sum()
    }
}

/// What makes the HTTP: body pools, counts and the Date header of the current second.
struct Http {
    pools: Pools,
    /// Payload bytes of the exchanges under way not yet sent.
    pending: u64,
    counts: Counts,
    date_secs: i64,
    date: String,
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        404 => "Not Found",
        _ => "Unknown",
    }
}

enum Body<'a> {
    None,
    Length(&'a [u8]),
    Chunked(&'a [u8]),
    /// HEAD: the length of the body a GET would get, and none.
    HeadOf(usize),
}

impl Http {
    fn date(&mut self, ts: i64) -> &str {
        let secs = ts.div_euclid(1_000_000_000);
        if secs != self.date_secs || self.date.is_empty() {
            self.date_secs = secs;
            self.date = chrono::DateTime::from_timestamp(secs, 0)
                .expect("timestamp in range")
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string();
        }
        &self.date
    }

    /// Build `c.req` and `c.resp` for the next exchange of `c`.
    fn exchange(&mut self, rng: &mut Rng, c: &mut Conn, ts: i64) {
        c.req.clear();
        c.resp.clear();
        if c.short {
            self.short_exchange(rng, c, ts);
        } else {
            self.mixed_exchange(rng, c, ts);
        }
        c.req.end_write();
        c.resp.end_write();
        self.pending += (c.req.bytes.len() + c.resp.bytes.len()) as u64;
    }

    fn short_exchange(&mut self, rng: &mut Rng, c: &mut Conn, ts: i64) {
        let id = rng.range(1, 999_999);
        let r = &mut c.req;
        let mut h = String::with_capacity(256);
        let _ = write!(
            h,
            "GET /api/v1/status/{id} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: */*\r\n\r\n",
            c.host, c.agent
        );
        r.push(h.as_bytes());
        *self.counts.methods.entry("GET").or_default() += 1;
        let code = match rng.next() % 100 {
            0..=84 => 200,
            85..=94 => 304,
            _ => 204,
        };
        let body = if code == 200 {
            let mut b = String::with_capacity(160);
            let _ = write!(b, "{{\"id\":{id},\"status\":\"{}\"", rng.word());
            for _ in 0..rng.range(0, 3) {
                let _ = write!(b, ",\"{}\":{}", rng.word(), rng.range(0, 99_999));
            }
            b.push('}');
            Some(b)
        } else {
            None
        };
        let date = self.date(ts).to_owned();
        h.clear();
        let _ = write!(
            h,
            "HTTP/1.1 {code} {}\r\nServer: nginx/1.24.0\r\nDate: {date}\r\n",
            reason(code)
        );
        if let Some(b) = &body {
            let _ = write!(
                h,
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            );
            self.counts.response_body_bytes += b.len() as u64;
        }
        h.push_str("Connection: close\r\n\r\n");
        if let Some(b) = &body {
            h.push_str(b);
        }
        c.resp.push(h.as_bytes());
        *self.counts.statuses.entry(code).or_default() += 1;
    }

    fn mixed_exchange(&mut self, rng: &mut Rng, c: &mut Conn, ts: i64) {
        let date = self.date(ts).to_owned();
        let p = &self.pools;
        let id = rng.range(1000, 99_999);
        let etag = format!("\"{:x}-{:x}\"", rng.next() as u32, rng.range(100, 1 << 20));
        // (method, path, request body and its type, response code, body, type, gzip)
        let mut method = "GET";
        let mut path = String::with_capacity(96);
        let mut req_body: Option<(&[u8], &str)> = None;
        let mut conditional = false;
        let mut code = 200u16;
        let mut body = Body::None;
        let mut ctype = "text/html; charset=utf-8";
        let mut gzip = false;
        let mut separate_head = rng.chance(300);
        match rng.next() % 1000 {
            0..=199 => {
                let _ = write!(path, "/products/{id}?ref={}", rng.word());
                body = Body::Length(rng.pick(&p.html).as_slice());
            }
            200..=349 => {
                let _ = write!(path, "/category/{}/page/{}", rng.word(), id % 50);
                let g = rng.pick(&p.gz);
                (body, ctype, gzip) = (Body::Length(&g.bytes), g.content_type, true);
            }
            350..=449 => {
                let _ = write!(path, "/api/v1/items?page={}&limit=50", id % 40);
                body = Body::Length(rng.pick(&p.json).as_slice());
                ctype = "application/json";
            }
            450..=509 => {
                let _ = write!(path, "/api/v1/search?q={}+{}", rng.word(), rng.word());
                let g = rng.pick(&p.gz);
                (body, ctype, gzip) = (Body::Chunked(&g.bytes), g.content_type, true);
            }
            510..=589 => {
                let _ = write!(path, "/feed/{}?after={id}", rng.word());
                body = Body::Chunked(rng.pick(&p.html).as_slice());
            }
            590..=709 => {
                let _ = write!(path, "/static/assets/{}-{:08x}.bin", rng.word(), id);
                let n = rng.log_range(1_000, 2_000_000) as usize;
                let at = rng.range(0, (p.random.len() - n) as u64) as usize;
                (body, ctype) = (
                    Body::Length(&p.random[at..at + n]),
                    "application/octet-stream",
                );
                separate_head = true; // sendfile: headers first, then the file
            }
            710..=789 => {
                let _ = write!(path, "/static/css/{}.css", rng.word());
                (conditional, code, ctype) = (true, 304, "text/css");
            }
            790..=829 => {
                method = "HEAD";
                let _ = write!(path, "/downloads/release-{}.tar.gz", id % 100);
                let n = rng.log_range(10_000, 50_000_000) as usize;
                (body, ctype) = (Body::HeadOf(n), "application/gzip");
            }
            830..=889 => {
                method = "POST";
                path.push_str("/account/profile");
                req_body = Some((
                    rng.pick(&p.form).as_slice(),
                    "application/x-www-form-urlencoded",
                ));
                body = Body::Length(rng.pick(&p.html).as_slice());
            }
            890..=939 => {
                method = "POST";
                path.push_str("/api/v1/orders");
                req_body = Some((rng.pick(&p.req_json).as_slice(), "application/json"));
                code = 201;
                body = Body::Length(rng.pick(&p.json).as_slice());
                ctype = "application/json";
            }
            940..=979 => {
                method = "POST";
                let _ = write!(path, "/api/v1/events?batch={id}");
                req_body = Some((rng.pick(&p.req_json).as_slice(), "application/json"));
                code = 204;
            }
            _ => {
                let _ = write!(path, "/{}/{}.html", rng.word(), rng.word());
                code = 404;
                body = Body::Length(rng.pick(&p.html[..8]).as_slice());
            }
        }

        // Request.
        let mut h = String::with_capacity(1024);
        let _ = write!(h, "{method} {path} HTTP/1.1\r\nHost: {}\r\n", c.host);
        let _ = write!(h, "User-Agent: {}\r\n", c.agent);
        if c.browser {
            h.push_str(if method == "POST" {
                "Accept: application/json, text/plain, */*\r\n"
            } else {
                "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
            });
            h.push_str("Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate\r\n");
            let _ = write!(h, "Referer: http://{}/\r\nCookie: {}\r\n", c.host, c.cookie);
        } else {
            h.push_str("Accept: */*\r\nAccept-Encoding: gzip\r\n");
            let _ = write!(h, "Authorization: Bearer {}\r\n", c.token);
        }
        if conditional {
            let _ = write!(h, "If-None-Match: {etag}\r\n");
        }
        if let Some((b, t)) = req_body {
            let _ = write!(h, "Content-Type: {t}\r\nContent-Length: {}\r\n", b.len());
        }
        h.push_str("Connection: keep-alive\r\n\r\n");
        c.req.push(h.as_bytes());
        if let Some((b, _)) = req_body {
            if rng.chance(300) {
                c.req.end_write();
            }
            c.req.push(b);
            self.counts.request_bodies += 1;
        }
        *self.counts.methods.entry(method).or_default() += 1;

        // Response.
        h.clear();
        let _ = write!(
            h,
            "HTTP/1.1 {code} {}\r\nServer: nginx/1.24.0\r\nDate: {date}\r\n",
            reason(code)
        );
        if !matches!(body, Body::None) || code == 304 {
            let _ = write!(h, "Content-Type: {ctype}\r\n");
        }
        match body {
            Body::Length(b) => {
                let _ = write!(h, "Content-Length: {}\r\n", b.len());
            }
            Body::HeadOf(n) => {
                let _ = write!(h, "Content-Length: {n}\r\n");
            }
            Body::Chunked(_) => h.push_str("Transfer-Encoding: chunked\r\n"),
            Body::None => {}
        }
        h.push_str("Connection: keep-alive\r\n");
        if gzip {
            h.push_str("Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
        }
        if code == 200 || code == 304 {
            let _ = write!(
                h,
                "ETag: {etag}\r\nCache-Control: public, max-age=3600\r\nLast-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
            );
        }
        if c.browser && rng.chance(100) {
            let _ = write!(
                h,
                "Set-Cookie: prefs={}-{}; Path=/; Max-Age=31536000; HttpOnly\r\n",
                rng.word(),
                rng.range(1, 99)
            );
        }
        h.push_str("\r\n");
        c.resp.push(h.as_bytes());
        if separate_head {
            c.resp.end_write();
        }
        match body {
            Body::Length(b) => {
                c.resp.push(b);
                self.counts.response_body_bytes += b.len() as u64;
            }
            Body::Chunked(b) => {
                // 3–12 chunks at random cuts, each its own write (a streaming server).
                let k = rng.range(3, 12).min(b.len() as u64) as usize;
                let mut cuts: Vec<usize> = (1..k)
                    .map(|_| rng.range(1, b.len() as u64 - 1) as usize)
                    .collect();
                cuts.push(0);
                cuts.push(b.len());
                cuts.sort_unstable();
                cuts.dedup();
                c.resp.end_write();
                for w in cuts.windows(2) {
                    let chunk = &b[w[0]..w[1]];
                    c.resp.push(format!("{:x}\r\n", chunk.len()).as_bytes());
                    c.resp.push(chunk);
                    c.resp.push(b"\r\n");
                    c.resp.end_write();
                }
                c.resp.push(b"0\r\n\r\n");
                self.counts.chunked += 1;
                self.counts.response_body_bytes += b.len() as u64;
            }
            Body::None | Body::HeadOf(_) => {}
        }
        if gzip {
            self.counts.gzip += 1;
        }
        *self.counts.statuses.entry(code).or_default() += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// TCP

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Syn,
    SynAck,
    HandshakeAck,
    Request,
    ServerAck,
    Response,
    ClientAck,
    FinClient,
    FinServer,
    LastAck,
}

struct Conn {
    v6: bool,
    short: bool,
    cli: [u8; 16],
    srv: [u8; 16],
    cport: u16,
    sport: u16,
    cseq: u32,
    sseq: u32,
    state: State,
    /// Segments received and not yet ACKed by the side receiving now.
    unacked: u8,
    exchanges_left: u8,
    host: String,
    agent: &'static str,
    browser: bool,
    cookie: String,
    token: String,
    req: Msg,
    resp: Msg,
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

/// fd00:99::HOST.
fn v6_addr(host: u16) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[3] = 0x99;
    a[14] = (host >> 8) as u8;
    a[15] = host as u8;
    a
}

impl Conn {
    /// Connection number `n`: its client address and port come from `n`, so no two
    /// connections of one capture share a 4-tuple.
    fn new(rng: &mut Rng, n: u64, short: bool) -> Conn {
        let v6 = rng.chance(100);
        let cli_host = (0x0100 + n % CLIENT_HOSTS) as u16;
        let cport = (32768 + (n / CLIENT_HOSTS) % 28232) as u16;
        let srv_host = rng.range(0x8000, 0x80ff) as u16; // a few hundred servers
        let (cli, srv) = if v6 {
            (v6_addr(cli_host), v6_addr(srv_host))
        } else {
            (v4_addr(cli_host), v4_addr(srv_host))
        };
        let browser = !short && rng.chance(600);
        let agent = if browser {
            *rng.pick(&BROWSER_AGENTS)
        } else {
            *rng.pick(&API_AGENTS)
        };
        Conn {
            v6,
            short,
            cli,
            srv,
            cport,
            sport: if rng.chance(800) { 80 } else { 8080 },
            cseq: rng.next() as u32,
            sseq: rng.next() as u32,
            state: State::Syn,
            unacked: 0,
            exchanges_left: if short { 1 } else { rng.range(1, 20) as u8 },
            host: format!(
                "{}.example{}.internal",
                rng.pick(&HOST_PREFIXES),
                srv_host & 0xff
            ),
            agent,
            browser,
            cookie: format!(
                "sessionid={:016x}{:016x}; _ga=GA1.2.{}.{}; theme=dark; cart_items={}",
                rng.next(),
                rng.next(),
                rng.range(100_000_000, 999_999_999),
                1_704_067_200 + rng.range(0, 1_000_000),
                rng.range(0, 9)
            ),
            token: format!(
                "eyJhbGciOiJIUzI1NiJ9.{:016x}{:016x}",
                rng.next(),
                rng.next()
            ),
            req: Msg::default(),
            resp: Msg::default(),
        }
    }

    fn mss(&self) -> usize {
        if self.v6 { 1440 } else { 1460 }
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

/// One frame at a time: Ethernet, IPv4 or IPv6, TCP, with lengths and checksums.
struct Builder {
    buf: Vec<u8>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        c: &Conn,
        from_client: bool,
        flags: u8,
        seq: u32,
        ack: u32,
        payload: &[u8],
        ident: u16,
    ) {
        let (src, dst, sp, dp) = if from_client {
            (&c.cli, &c.srv, c.cport, c.sport)
        } else {
            (&c.srv, &c.cli, c.sport, c.cport)
        };
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(&[0x02, 0x00, dst[0], dst[3], dst[14], dst[15]]);
        b.extend_from_slice(&[0x02, 0x00, src[0], src[3], src[14], src[15]]);
        b.extend_from_slice(if c.v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        let l3 = b.len();
        if c.v6 {
            b.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, 6, 64]);
            b.extend_from_slice(src);
            b.extend_from_slice(dst);
        } else {
            let id = ident.to_be_bytes();
            b.extend_from_slice(&[0x45, 0, 0, 0, id[0], id[1], 0x40, 0, 64, 6, 0, 0]);
            b.extend_from_slice(&src[..4]);
            b.extend_from_slice(&dst[..4]);
        }
        let l4 = b.len();
        let syn = flags & SYN != 0;
        let off: u8 = if syn { 6 } else { 5 };
        let ack = if flags & ACK != 0 { ack } else { 0 };
        b.extend_from_slice(&sp.to_be_bytes());
        b.extend_from_slice(&dp.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&ack.to_be_bytes());
        b.extend_from_slice(&[off << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        if syn {
            b.extend_from_slice(&[2, 4]);
            b.extend_from_slice(&(c.mss() as u16).to_be_bytes());
        }
        b.extend_from_slice(payload);

        let l4_len = b.len() - l4;
        let pseudo = if c.v6 {
            b[l3 + 4..l3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            sum16(&b[l3 + 8..l3 + 40], l4_len as u64 + 6)
        } else {
            let total = (b.len() - l3) as u16;
            b[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            let c = fold(sum16(&b[l3..l3 + 20], 0));
            b[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
            sum16(&b[l3 + 12..l3 + 20], l4_len as u64 + 6)
        };
        let csum = fold(sum16(&b[l4..], pseudo));
        b[l4 + 16..l4 + 18].copy_from_slice(&csum.to_be_bytes());
        // No padding to Ethernet's 60-byte minimum: frames as the sending host captures them
        // (tcpflow takes the padding of a SYN for data).
    }
}

/// Emit the next packet of `c` into the builder; returns false when the connection is over.
/// `draining`: the target is reached, start no new exchange.
fn step(
    b: &mut Builder,
    rng: &mut Rng,
    http: &mut Http,
    c: &mut Conn,
    ident: u16,
    ts: i64,
    draining: bool,
) -> bool {
    match c.state {
        State::Syn => {
            b.tcp(c, true, SYN, c.cseq, 0, &[], ident);
            c.cseq = c.cseq.wrapping_add(1);
            c.state = State::SynAck;
        }
        State::SynAck => {
            b.tcp(c, false, SYN | ACK, c.sseq, c.cseq, &[], ident);
            c.sseq = c.sseq.wrapping_add(1);
            c.state = State::HandshakeAck;
        }
        State::HandshakeAck => {
            b.tcp(c, true, ACK, c.cseq, c.sseq, &[], ident);
            if draining {
                c.state = State::FinClient;
            } else {
                http.exchange(rng, c, ts);
                c.state = State::Request;
            }
        }
        State::Request => {
            let (from, to) = c.req.next_segment(c.mss());
            let flags = if c.req.done() || c.req.writes.contains(&to) {
                PSH | ACK
            } else {
                ACK
            };
            b.tcp(
                c,
                true,
                flags,
                c.cseq,
                c.sseq,
                &c.req.bytes[from..to],
                ident,
            );
            c.cseq = c.cseq.wrapping_add((to - from) as u32);
            http.pending -= (to - from) as u64;
            c.unacked += 1;
            if c.req.done() {
                // The response's first segment ACKs the request.
                c.unacked = 0;
                c.state = State::Response;
            } else if c.unacked == 2 {
                c.state = State::ServerAck;
            }
        }
        State::ServerAck => {
            b.tcp(c, false, ACK, c.sseq, c.cseq, &[], ident);
            c.unacked = 0;
            c.state = State::Request;
        }
        State::Response => {
            let (from, to) = c.resp.next_segment(c.mss());
            let flags = if c.resp.done() || c.resp.writes.contains(&to) {
                PSH | ACK
            } else {
                ACK
            };
            b.tcp(
                c,
                false,
                flags,
                c.sseq,
                c.cseq,
                &c.resp.bytes[from..to],
                ident,
            );
            c.sseq = c.sseq.wrapping_add((to - from) as u32);
            http.pending -= (to - from) as u64;
            c.unacked += 1;
            if c.resp.done() {
                c.exchanges_left -= 1;
                // The last response is ACKed by the client's FIN.
                c.state = if c.exchanges_left == 0 || draining {
                    State::FinClient
                } else {
                    State::ClientAck
                };
            } else if c.unacked == 2 {
                c.state = State::ClientAck;
            }
        }
        State::ClientAck => {
            b.tcp(c, true, ACK, c.cseq, c.sseq, &[], ident);
            c.unacked = 0;
            c.state = if !c.resp.done() {
                State::Response
            } else if draining {
                State::FinClient
            } else {
                http.exchange(rng, c, ts);
                State::Request
            };
        }
        State::FinClient => {
            b.tcp(c, true, FIN | ACK, c.cseq, c.sseq, &[], ident);
            c.cseq = c.cseq.wrapping_add(1);
            c.state = State::FinServer;
        }
        State::FinServer => {
            b.tcp(c, false, FIN | ACK, c.sseq, c.cseq, &[], ident);
            c.sseq = c.sseq.wrapping_add(1);
            c.state = State::LastAck;
        }
        State::LastAck => {
            b.tcp(c, true, ACK, c.cseq, c.sseq, &[], ident);
            return false;
        }
    }
    true
}

struct Summary {
    bytes: u64,
    packets: u64,
    counts: Counts,
}

fn generate(path: &str, target: u64, short: bool) -> io::Result<Summary> {
    let tmp = format!("{path}.tmp");
    let file = File::create(&tmp)?;
    let mut w = PcapWriter::new(
        BufWriter::with_capacity(8 << 20, file),
        LINKTYPE_ETHERNET,
        SNAPLEN,
        Precision::Micro,
        false,
    )?;
    let mut rng = Rng(0x6874_7470_7472_6163); // "httptrac"
    let mut http = Http {
        pools: Pools::new(&mut rng),
        pending: 0,
        counts: Counts::default(),
        date_secs: 0,
        date: String::new(),
    };
    let mut b = Builder {
        buf: Vec::with_capacity(2048),
    };
    let active = if short {
        ACTIVE_SHORT_CONNS
    } else {
        ACTIVE_CONNS
    };
    let mut next_conn: u64 = 0;
    let mut conns: Vec<Conn> = (0..active)
        .map(|_| {
            next_conn += 1;
            Conn::new(&mut rng, next_conn - 1, short)
        })
        .collect();
    let mut written: u64 = 24;
    let mut packets: u64 = 0;
    let mut ts = START_NS;
    let mut ident: u16 = 1;

    // Draining (no new exchange) starts once what is written plus what the exchanges under way
    // still have to send (payload and ~6% of headers and ACKs) reaches the target, so the file
    // ends near it however large the responses in flight.
    let mut draining = false;
    while !conns.is_empty() {
        draining = draining || written + http.pending + http.pending / 16 >= target;
        let i = (rng.next() % conns.len() as u64) as usize;
        if draining && conns[i].state == State::Syn {
            conns.swap_remove(i);
            continue;
        }
        // Inter-packet gap: mostly a few µs, sometimes longer pauses.
        ts += if rng.chance(10) {
            rng.range(1_000_000, 50_000_000) as i64
        } else {
            rng.range(500, 20_000) as i64
        };
        ident = ident.wrapping_add(1);
        if conns[i].state == State::Syn {
            http.counts.connections += 1;
        }
        if !step(
            &mut b,
            &mut rng,
            &mut http,
            &mut conns[i],
            ident,
            ts,
            draining,
        ) {
            if draining {
                conns.swap_remove(i);
            } else {
                conns[i] = Conn::new(&mut rng, next_conn, short);
                next_conn += 1;
            }
        }
        w.write(ts, &b.buf, b.buf.len() as u32)?;
        written += 16 + b.buf.len() as u64;
        packets += 1;
    }
    let mut out = w.into_inner();
    out.flush()?;
    drop(out.into_inner().map_err(|e| e.into_error())?);
    fs::rename(&tmp, path)?;
    Ok(Summary {
        bytes: written,
        packets,
        counts: http.counts,
    })
}

fn main() -> ExitCode {
    let mut args: Vec<String> = env::args().skip(1).collect();
    let short = args.first().is_some_and(|a| a == "--short");
    if short {
        args.remove(0);
    }
    if args.is_empty() || args.len() > 2 || args[0].starts_with('-') {
        eprintln!("usage: gen_http_capture [--short] OUT.pcap [TARGET_BYTES (default 1073741824)]");
        return ExitCode::from(2);
    }
    let target: u64 = match args.get(1).map(|s| s.parse()) {
        None => 1 << 30,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("gen_http_capture: bad size {:?}: {e}", args[1]);
            return ExitCode::from(2);
        }
    };
    let start = std::time::Instant::now();
    match generate(&args[0], target, short) {
        Ok(s) => {
            let secs = start.elapsed().as_secs_f64();
            let c = &s.counts;
            eprintln!(
                "gen_http_capture: wrote {} ({} bytes, {} packets, {:.0} B per frame on average, \
                 {} connections) in {secs:.1}s ({:.0} MB/s)",
                args[0],
                s.bytes,
                s.packets,
                (s.bytes - 24) as f64 / s.packets.max(1) as f64 - 16.0,
                c.connections,
                s.bytes as f64 / secs / 1e6
            );
            let list = |m: &mut dyn Iterator<Item = (String, u64)>| {
                m.map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            eprintln!(
                "gen_http_capture: {} requests ({}; {} with a body)",
                c.requests(),
                list(&mut c.methods.iter().map(|(k, v)| (k.to_string(), *v))),
                c.request_bodies
            );
            eprintln!(
                "gen_http_capture: {} responses ({}; {} chunked, {} gzip; {} body bytes)",
                c.responses(),
                list(&mut c.statuses.iter().map(|(k, v)| (k.to_string(), *v))),
                c.chunked,
                c.gzip,
                c.response_body_bytes
            );
            eprintln!(
                "messages={} requests={} responses={}",
                c.requests() + c.responses(),
                c.requests(),
                c.responses()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_http_capture: {}: {e}", args[0]);
            ExitCode::FAILURE
        }
    }
}
