//! `gophercap tap` offline, end to end: captures read with `--read`, reassembled sessions
//! delivered to consumers in this test (sockets tap dials, ports tap listens on), compared
//! byte for byte with streams built here and with Zeek's reassembled FTP-over-IPv6 streams;
//! the pcap output re-read by tshark; slow and late consumers; the control plane; the
//! configuration's errors.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const LOCAL: [u8; 4] = [10, 99, 7, 1];
const REMOTE: [u8; 4] = [10, 99, 7, 2];
const REMOTE_PORT: u16 = 5000;

/// One TCP connection's frames, built in order: handshake, data either way, FIN both ways.
struct Conn {
    client_port: u16,
    /// Next sequence numbers of the client and the server.
    seq: [u32; 2],
    frames: Vec<Vec<u8>>,
}

impl Conn {
    fn open(client_port: u16, isn: u32) -> Conn {
        let mut c = Conn {
            client_port,
            seq: [isn, isn.wrapping_mul(7).wrapping_add(1_000_003)],
            frames: Vec::new(),
        };
        c.segment(true, SYN, b"");
        c.segment(false, SYN | ACK, b"");
        c.segment(true, ACK, b"");
        c
    }

    /// A segment from the client (`from_client`) or the server; SYN and FIN take a sequence
    /// number.
    fn segment(&mut self, from_client: bool, flags: u8, payload: &[u8]) -> Vec<u8> {
        let (i, src, dst, ports) = if from_client {
            (0, LOCAL, REMOTE, (self.client_port, REMOTE_PORT))
        } else {
            (1, REMOTE, LOCAL, (REMOTE_PORT, self.client_port))
        };
        let ack = if flags & SYN != 0 && flags & ACK == 0 {
            0
        } else {
            self.seq[1 - i]
        };
        let t = tcp(&src, &dst, ports, self.seq[i], ack, flags, payload);
        let frame = ethernet(&[], ETHERTYPE_IPV4, &ipv4(src, dst, 6, &t));
        let used = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        self.seq[i] = self.seq[i].wrapping_add(used);
        self.frames.push(frame.clone());
        frame
    }

    /// `data` from one side in segments of at most `mss` bytes.
    fn send(&mut self, from_client: bool, data: &[u8], mss: usize) {
        for chunk in data.chunks(mss) {
            self.segment(from_client, PSH | ACK, chunk);
        }
    }

    fn close(&mut self) {
        self.segment(true, FIN | ACK, b"");
        self.segment(false, FIN | ACK, b"");
        self.segment(true, ACK, b"");
    }
}

/// Deterministic bytes that differ along the stream, so a misplaced segment shows.
fn pattern(tag: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            tag.wrapping_add((i % 251) as u8)
                .wrapping_mul(31)
                .wrapping_add((i / 251) as u8)
        })
        .collect()
}

/// Interleave several connections' frames round-robin, as concurrent sessions appear.
fn interleave(conns: Vec<Vec<Vec<u8>>>) -> Vec<Vec<u8>> {
    let mut iters: Vec<_> = conns.into_iter().map(|c| c.into_iter()).collect();
    let mut out = Vec::new();
    loop {
        let mut any = false;
        for it in &mut iters {
            if let Some(f) = it.next() {
                out.push(f);
                any = true;
            }
        }
        if !any {
            return out;
        }
    }
}

fn write_capture(path: &Path, frames: Vec<Vec<u8>>, step_ns: i64) {
    let records = timed(frames, T0, step_ns);
    write(
        path,
        &pcap_bytes(
            1,
            65535,
            gophercap::sink::capture::Precision::Nano,
            false,
            &records,
        ),
    );
}

/// A consumer listening on a free port: every accepted connection's bytes, read to EOF (with
/// `delay` before each read of at most `chunk` bytes, to be slow on purpose).
struct Consumer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Vec<u8>>>,
}

impl Consumer {
    fn start(delay: Option<Duration>, chunk: usize) -> Consumer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut readers = Vec::new();
            // Stops only once the accept queue is empty: connections tap made before `finish`
            // are still taken even when they arrived while this thread slept.
            while Instant::now() < deadline {
                let stop_when_empty = stopping.load(Ordering::Relaxed);
                match listener.accept() {
                    Ok((mut socket, _)) => {
                        socket.set_nonblocking(false).unwrap();
                        socket
                            .set_read_timeout(Some(Duration::from_secs(60)))
                            .unwrap();
                        readers.push(std::thread::spawn(move || {
                            let mut data = Vec::new();
                            let mut buf = vec![0u8; chunk];
                            loop {
                                if let Some(d) = delay {
                                    std::thread::sleep(d);
                                }
                                match socket.read(&mut buf) {
                                    Ok(0) | Err(_) => return data,
                                    Ok(n) => data.extend_from_slice(&buf[..n]),
                                }
                            }
                        }));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if stop_when_empty {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
            readers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        Consumer { port, stop, thread }
    }

    /// Stop accepting; every accepted connection's bytes once it reached EOF.
    fn finish(self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// A tap configuration in Stethoscope's shape, as JSON5 text.
fn config_text(outputs: &str, extra: &str) -> String {
    format!(
        r#"{{
  // written by the test
  io: {{
    input: {{ capture: {{
      iface: "unused-offline",
      local_ip: "10.99.7.1", remote_ip: "10.99.7.2", remote_port: {REMOTE_PORT},
    }} }},
    output: {{ {outputs} }},
    mapping: {{ role: "client" }},
  }},
  control: {{ listen_port: 0 }},
  runtime: {{ drain_timeout_ms: 10000, stats_interval_sec: 0 }},
  {extra}
}}"#
    )
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("tap.json5");
    write(&path, text.as_bytes());
    path
}

fn connector(req: &Consumer, resp: &Consumer) -> String {
    format!(
        r#""remote-host": {{ enabled: true, host: "127.0.0.1", requests_port: {}, responses_port: {},
           timeouts: {{ connect: 2, "retry-every": 0.05 }} }},"#,
        req.port, resp.port
    )
}

/// Runs tap to completion; panics with its stderr unless it exits 0.
fn tap(config: &Path, extra: &[&str]) -> String {
    let out = gophercap()
        .args(["tap", "--config"])
        .arg(config)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tap failed: {stderr}");
    stderr
}

#[test]
fn concurrent_sessions_reach_the_connectors_as_reassembled_streams() {
    let dir = scratch("tap-concurrent");
    // Four sessions: clean; with a retransmission and a swapped pair; with a lost segment;
    // ended by the server's RST instead of FINs.
    let mut expected_requests = Vec::new();
    let mut expected_responses = Vec::new();
    let mut conns = Vec::new();
    for (i, port) in [41001u16, 41002, 41003, 41004].into_iter().enumerate() {
        let mut c = Conn::open(port, 1000 + i as u32 * 5_000_000);
        let request = pattern(i as u8, 3000 + i * 100);
        let response = pattern(100 + i as u8, 20_000 + i * 1000);
        c.send(true, &request, 1000);
        c.send(false, &response, 1400);
        if i == 3 {
            c.segment(false, RST | ACK, b"");
        } else {
            c.close();
        }
        let mut frames = c.frames;
        let mut response_seen = response.clone();
        match i {
            1 => {
                // Resend the first request segment after the second; swap two response ones.
                let dup = frames[3].clone();
                frames.insert(5, dup);
                frames.swap(9, 10);
            }
            2 => {
                // The fourth response segment never made it: 1400 bytes missing.
                let lost = 3 + 4 + 3;
                frames.remove(lost);
                response_seen.drain(3 * 1400..4 * 1400);
            }
            _ => {}
        }
        expected_requests.push(request);
        expected_responses.push(response_seen);
        conns.push(frames);
    }
    let capture = dir.join("sessions.pcap");
    write_capture(&capture, interleave(conns), 1_000_000);

    let (req, resp) = (Consumer::start(None, 65536), Consumer::start(None, 65536));
    let pcap_dir = dir.join("pcap");
    let outputs = format!(
        r#"{} pcap: {{ enabled: true, dir: "{}", format: "pcapng", per_session: true }},"#,
        connector(&req, &resp),
        pcap_dir.display()
    );
    let config = write_config(&dir, &config_text(&outputs, ""));
    let stderr = tap(&config, &["--read", capture.to_str().unwrap()]);
    assert!(stderr.contains("4 sessions"), "{stderr}");
    assert!(
        stderr.contains("session closed session=4 reason=\"reset\""),
        "{stderr}"
    );
    assert!(stderr.contains("1 gaps (1400 bytes)"), "{stderr}");
    assert_eq!(sorted(req.finish()), sorted(expected_requests));
    assert_eq!(sorted(resp.finish()), sorted(expected_responses));

    // Each session's recording holds exactly that session's packets, as tshark reads them.
    let fields = |path: &Path, filter: &str| -> String {
        let out = Command::new("tshark")
            .args(["-n", "-r"])
            .arg(path)
            .args([
                "-Y",
                filter,
                "-T",
                "fields",
                "-e",
                "frame.time_epoch",
                "-e",
                "frame.len",
            ])
            .args(["-e", "tcp.srcport", "-e", "tcp.seq_raw", "-e", "tcp.len"])
            .output()
            .expect("tshark");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&pcap_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    for port in [41001, 41002, 41003, 41004] {
        let file = files
            .iter()
            .find(|f| f.to_string_lossy().contains(&format!("10.99.7.1_{port}")))
            .unwrap_or_else(|| panic!("no recording for port {port}: {files:?}"));
        let recorded = fields(file, "tcp");
        let original = fields(&capture, &format!("tcp.port == {port}"));
        assert!(!recorded.is_empty());
        assert_eq!(recorded, original, "{}", file.display());
    }
}

/// Read tap's stderr lines as they come, on a thread.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first stderr line containing `needle`, within `limit`; every line seen is kept.
fn wait_for(
    lines: &Receiver<String>,
    seen: &mut Vec<String>,
    needle: &str,
    limit: Duration,
) -> String {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no {needle:?} in tap's stderr:\n{}", seen.join("\n"));
}

/// `key=value` from a text log line.
fn field(line: &str, key: &str) -> String {
    let at = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("{key} in {line}"))
        + key.len()
        + 1;
    line[at..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_string()
}

fn read_to_end(port: u16) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut data = Vec::new();
    s.read_to_end(&mut data).unwrap();
    data
}

#[test]
fn ftp_over_ipv6_reaches_late_listener_consumers_as_zeek_reassembled_it() {
    let corpus = corpus().expect("../shared/corpus beside the repository");
    let dir = scratch("tap-ftp-ipv6");
    let baseline =
        corpus.join("zeek/Baseline/scripts.base.protocols.conn.contents-default-extract");
    let name = "contents_[2001-470-1f11-81f-c999-d94-aa7c-2e3e]-49185-[2001-470-4867-99--21]-21";
    // btest-diff puts one header line of its own before the stream.
    let without_header = |bytes: Vec<u8>| -> Vec<u8> {
        let newline = bytes.iter().position(|b| *b == b'\n').unwrap();
        bytes[newline + 1..].to_vec()
    };
    let orig = without_header(std::fs::read(baseline.join(format!("{name}_orig.dat"))).unwrap());
    let resp = without_header(std::fs::read(baseline.join(format!("{name}_resp.dat"))).unwrap());
    let config = write_config(
        &dir,
        r#"{
  # Stethoscope's own comment style, and a hyphenated key without quotes
  io: {
    input: { capture: {
      local_ip: "2001:470:1f11:81f:c999:d94:aa7c:2e3e",
      remote_ip: "2001:470:4867:99::21",
      remote_port: 21,
      bpf-filter: "tcp and host {local_ip} and host {remote_ip} and port {remote_port}",
    } },
    output: { listner: { enabled: true, port_range_start: 0, port_range_end: 0 } },
  },
  control: { enabled: false },
  runtime: { drain_timeout_ms: 20000, stats_interval_sec: 0 },
}"#,
    );
    let mut child = gophercap()
        .args(["tap", "--config"])
        .arg(&config)
        .arg("--read")
        .arg(corpus.join("zeek/traces/ftp/ipv6.pcap"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let mut seen = Vec::new();
    let ports = wait_for(
        &lines,
        &mut seen,
        "listening for consumers",
        Duration::from_secs(20),
    );
    // Connect only once the whole capture was read: everything waits in the startup buffers.
    wait_for(&lines, &mut seen, "session closed", Duration::from_secs(20));
    let requests = read_to_end(field(&ports, "requests_port").parse().unwrap());
    let responses = read_to_end(field(&ports, "responses_port").parse().unwrap());
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(requests, orig, "client → server");
    assert_eq!(responses, resp, "server → client");
}

/// A control-plane client: lines sent, JSON lines received on a thread.
struct ControlClient {
    stream: TcpStream,
    lines: Receiver<Value>,
}

impl ControlClient {
    fn connect(port: u16) -> ControlClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let reader = stream.try_clone().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        ControlClient { stream, lines: rx }
    }

    fn send(&mut self, line: &str) {
        self.stream.write_all(line.as_bytes()).unwrap();
        self.stream.write_all(b"\n").unwrap();
    }

    /// The next message matching `pred` (others are kept in `seen`).
    fn until(
        &self,
        seen: &mut Vec<Value>,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no matching message; seen: {seen:#?}");
    }

    /// Like `until`, but a matching message already seen counts (events and replies race).
    fn seen_or_until(
        &self,
        seen: &mut Vec<Value>,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        match seen.iter().find(|v| pred(v)) {
            Some(v) => v.clone(),
            None => self.until(seen, limit, pred),
        }
    }

    fn reply(&mut self, seen: &mut Vec<Value>, request: &str) -> Value {
        self.send(request);
        let cmd: Value = serde_json::from_str(request).unwrap();
        let cmd = cmd["cmd"].clone();
        self.until(seen, Duration::from_secs(10), |v| {
            v["type"] == "reply" && v["cmd"] == cmd
        })
    }

    /// Everything until the server closes the connection.
    fn rest(&self, seen: &mut Vec<Value>, limit: Duration) {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) => seen.push(v),
                Err(_) => return,
            }
        }
    }
}

fn events<'a>(seen: &'a [Value], cat: &str, event: &str) -> Vec<&'a Value> {
    seen.iter()
        .filter(|v| v["type"] == "event" && v["cat"] == cat && v["event"] == event)
        .collect()
}

/// A small session: its client port, request and response.
type SmallSession = (u16, Vec<u8>, Vec<u8>);

/// What each announced session's consumers read, by (requester port, direction), with the log.
type Consumed = (Vec<String>, HashMap<(u16, &'static str), Vec<u8>>);

/// A paced capture: one big upload (session of port 42001) and two small exchanges, spread
/// over about `seconds` of packet time.
/// The small sessions begin once `lead` of the upload's frames have gone by: paced, that is after
/// `lead` frames' worth of the `seconds`, time for a control client to subscribe first.
fn paced_capture(
    path: &Path,
    big: usize,
    seconds: f64,
    gap: bool,
    lead: usize,
) -> (Vec<u8>, Vec<SmallSession>) {
    let upload = pattern(7, big);
    let mut a = Conn::open(42001, 77);
    a.send(true, &upload, 1400);
    a.send(false, b"stored\n", 1400);
    a.close();
    let mut small = Vec::new();
    let rest = a.frames.split_off(lead.min(a.frames.len()));
    let mut frames = a.frames;
    let mut conns = vec![rest];
    for (i, port) in [42002u16, 42003].into_iter().enumerate() {
        let mut c = Conn::open(port, 9000 + i as u32);
        let request = pattern(20 + i as u8, 30_000);
        let response = pattern(40 + i as u8, 50_000);
        c.send(true, &request, 1400);
        c.send(false, &response, 1400);
        c.close();
        let mut frames = c.frames;
        if gap && port == 42003 {
            // The second response segment is lost (3 handshake + 22 request segments before).
            frames.remove(3 + 22 + 1);
        }
        conns.push(frames);
        small.push((port, request, response));
    }
    frames.extend(interleave(conns));
    let step = (seconds * 1e9 / frames.len() as f64) as i64;
    write_capture(path, frames, step);
    (upload, small)
}

/// Reads tap's log until it ends, connecting to each session's listener ports as they are
/// announced: the port-42001 requester's bytes slowly (until `fast` is set), the rest at once.
fn consume_announced(lines: Receiver<String>, fast: Arc<AtomicBool>) -> JoinHandle<Consumed> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut readers = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = lines.recv_timeout(left) else {
                break;
            };
            seen.push(line.clone());
            if !line.contains("listening for consumers") {
                continue;
            }
            let requester: u16 = field(&line, "requester")
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            for (direction, key) in [
                ("requests", "requests_port"),
                ("responses", "responses_port"),
            ] {
                let port: u16 = field(&line, key).parse().unwrap();
                let slow = requester == 42001 && direction == "requests";
                let fast = Arc::clone(&fast);
                readers.push(std::thread::spawn(move || {
                    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                    let mut data = Vec::new();
                    let mut buf = vec![0u8; if slow { 4096 } else { 65536 }];
                    loop {
                        if slow && !fast.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => data.extend_from_slice(&buf[..n]),
                        }
                    }
                    ((requester, direction), data)
                }));
            }
        }
        let streams = readers.into_iter().map(|r| r.join().unwrap()).collect();
        (seen, streams)
    })
}

/// tap on a paced capture: the child, its stderr lines, and its control plane's port.
fn start_paced(config: &Path, capture: &Path) -> (Child, Receiver<String>, u16) {
    let mut child = gophercap()
        .args(["tap", "--pace", "--config"])
        .arg(config)
        .arg("--read")
        .arg(capture)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let control = wait_for(
        &lines,
        &mut Vec::new(),
        "control plane listening",
        Duration::from_secs(20),
    );
    let port = field(&control, "address")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (child, lines, port)
}

fn listener_config(dir: &Path, startup_bytes: usize, extra_runtime: &str) -> PathBuf {
    let text = format!(
        r#"{{
  io: {{
    input: {{ capture: {{ local_ip: "10.99.7.1", remote_ip: "10.99.7.2", remote_port: {REMOTE_PORT},
                          buffer_bytes: {startup_bytes} }} }},
    output: {{ listener: {{ enabled: true, port_range_start: 0, port_range_end: 0 }} }},
  }},
  control: {{ listen_port: 0, default_cats: ["session"] }},
  runtime: {{ drain_timeout_ms: 3000, stats_interval_sec: 1, {extra_runtime} }},
}}"#
    );
    write_config(dir, &text)
}

fn stats_of<'a>(summary: &'a Value, direction: &str) -> &'a Value {
    summary["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["direction"] == direction)
        .map(|o| &o["stats"])
        .unwrap_or_else(|| panic!("no {direction} output in {summary}"))
}

#[test]
fn a_slow_consumer_loses_counted_bytes_without_stalling_the_capture_or_other_sessions() {
    let dir = scratch("tap-slow-consumer");
    let capture = dir.join("paced.pcap");
    let (upload, small) = paced_capture(&capture, 24 << 20, 1.5, false, 0);
    let config = listener_config(&dir, 16_000_000, "max_output_buffer_bytes: 262144");
    let started = Instant::now();
    let (mut child, lines, port) = start_paced(&config, &capture);
    let client = ControlClient::connect(port);
    let fast = Arc::new(AtomicBool::new(false));
    let consumers = consume_announced(lines, Arc::clone(&fast));
    let mut messages = Vec::new();
    client.until(&mut messages, Duration::from_secs(10), |v| {
        v["type"] == "hello"
    });
    // Three session summaries: the capture went on while the slow consumer lagged.
    for _ in 0..3 {
        client.until(&mut messages, Duration::from_secs(30), |v| {
            v["event"] == "summary"
        });
    }
    fast.store(true, Ordering::Relaxed);
    let status = child.wait().unwrap();
    let elapsed = started.elapsed();
    assert!(status.success());
    let (log, streams) = consumers.join().unwrap();
    // 24 MiB at the slow reader's 200 KiB/s would take two minutes: the capture did not wait.
    assert!(
        elapsed < Duration::from_secs(20),
        "{elapsed:?}\n{}",
        log.join("\n")
    );
    let summaries = events(&messages, "session", "summary");
    let summary_of = |port: u16| {
        *summaries
            .iter()
            .find(|s| {
                s["requester"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!(":{port}"))
            })
            .unwrap_or_else(|| panic!("no summary for {port}: {summaries:#?}"))
    };
    let slow = stats_of(summary_of(42001), "requests");
    let slow_received = &streams[&(42001, "requests")];
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap();
    assert_eq!(n(slow, "sent"), upload.len() as u64, "{slow}");
    assert!(n(slow, "dropped_output_buffer_full") > 0, "{slow}");
    assert_eq!(
        n(slow, "delivered")
            + n(slow, "dropped_startup_buffer_full")
            + n(slow, "dropped_output_buffer_full")
            + n(slow, "dropped_not_connected")
            + n(slow, "dropped_write_error")
            + n(slow, "abandoned"),
        n(slow, "sent"),
        "{slow}"
    );
    assert_eq!(slow_received.len() as u64, n(slow, "delivered"), "{slow}");
    // What arrived is the upload with whole chunks missing, in order: a prefix is intact.
    assert!(upload.starts_with(&slow_received[..4096.min(slow_received.len())]));
    for (port, request, response) in &small {
        assert_eq!(&streams[&(*port, "requests")], request, "session {port}");
        assert_eq!(&streams[&(*port, "responses")], response, "session {port}");
        let s = summary_of(*port);
        for d in ["requests", "responses"] {
            let st = stats_of(s, d);
            assert_eq!(n(st, "delivered"), n(st, "sent"), "{st}");
        }
    }
}

#[test]
fn the_control_plane_answers_every_command_and_streams_every_category() {
    let dir = scratch("tap-control");
    let capture = dir.join("paced.pcap");
    // The small sessions open a second in, after the clients below have subscribed: their
    // ports' allocation is an event the all-categories client must see.
    paced_capture(&capture, 2 << 20, 3.0, true, 500);
    // Nobody reads the sessions' ports but one: 20 kB startup buffers overflow.
    let config = listener_config(&dir, 20_000, "");
    let (mut child, _lines, port) = start_paced(&config, &capture);
    let mut all = ControlClient::connect(port);
    let sessions_only = ControlClient::connect(port);
    let mut silent = ControlClient::connect(port);
    silent.send(r#"{"cmd":"subscribe","cats":"all"}"#);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let hello = all.until(&mut a, Duration::from_secs(10), |v| v["type"] == "hello");
    assert_eq!(hello["cats"], json!(["session"]));
    let reply = all.reply(&mut a, r#"{"cmd":"subscribe","cats":["all"],"req":1}"#);
    assert_eq!(
        (reply["ok"].clone(), reply["req"].clone()),
        (json!(true), json!(1))
    );
    assert_eq!(all.reply(&mut a, r#"{"cmd":"ping"}"#)["pong"], json!(true));
    all.send("ping");
    all.until(&mut a, Duration::from_secs(10), |v| v["cmd"] == "ping");
    sessions_only.until(&mut b, Duration::from_secs(10), |v| v["type"] == "hello");

    // The big upload's session, while it runs: listed (it may have opened before this client
    // connected), fetched, then closed from here.
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let listed = all.reply(&mut a, r#"{"cmd":"list_sessions"}"#);
        let upload = listed["sessions"].as_array().unwrap().iter().find(|s| {
            s["requester"]
                .as_str()
                .is_some_and(|r| r.ends_with(":42001"))
        });
        if let Some(session) = upload {
            break session["id"].as_u64().unwrap();
        }
        assert!(Instant::now() < deadline, "no upload session in {listed}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let got = all.reply(&mut a, &format!(r#"{{"cmd":"get_session","id":{id}}}"#));
    assert_eq!(got["session"]["state"], "open", "{got}");
    let requests_port = got["session"]["ports"]["requests"].as_u64().unwrap() as u16;
    // One consumer, on the upload's requests port: an output "connected" event.
    let reader = std::thread::spawn(move || read_to_end(requests_port));
    all.seen_or_until(&mut a, Duration::from_secs(10), |v| {
        v["cat"] == "output" && v["event"] == "connected" && v["session"] == id
    });
    // Closed only once the consumer got some of the upload (its startup buffer at least).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = all.reply(&mut a, &format!(r#"{{"cmd":"get_session","id":{id}}}"#));
        let requests = got["session"]["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["direction"] == "requests")
            .map(|o| o["stats"]["delivered"].as_u64().unwrap())
            .unwrap();
        if requests > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing delivered: {got}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = all.reply(&mut a, r#"{"cmd":"stats"}"#);
    assert!(stats["stats"]["packets"].as_u64().unwrap() > 0, "{stats}");
    let closed = all.reply(&mut a, &format!(r#"{{"cmd":"close_session","id":{id}}}"#));
    assert_eq!(closed["ok"], json!(true), "{closed}");
    all.seen_or_until(&mut a, Duration::from_secs(10), |v| {
        v["event"] == "close" && v["session"] == id && v["reason"] == "closed_by_control"
    });
    let again = all.reply(&mut a, &format!(r#"{{"cmd":"get_session","id":{id}}}"#));
    assert_eq!(again["ok"], json!(false), "{again}");
    let unknown = all.reply(&mut a, r#"{"cmd":"reboot"}"#);
    assert_eq!(unknown["ok"], json!(false), "{unknown}");
    let uploaded = reader.join().unwrap();
    assert!(
        !uploaded.is_empty() && uploaded.len() < 2 << 20,
        "{}",
        uploaded.len()
    );

    let status = child.wait().unwrap();
    assert!(status.success());
    all.rest(&mut a, Duration::from_secs(10));
    sessions_only.rest(&mut b, Duration::from_secs(10));
    for (cat, event) in [
        ("session", "open"),
        ("session", "half_close"),
        ("session", "close"),
        ("session", "summary"),
        ("flow", "data"),
        ("flow", "gap"),
        ("ports", "allocated"),
        ("ports", "released"),
        ("output", "connected"),
        ("output", "drop"),
        ("output", "drops"),
        ("stats", "stats"),
        ("control", "service_stopping"),
    ] {
        assert!(
            !events(&a, cat, event).is_empty(),
            "no {cat} {event} in {a:#?}"
        );
    }
    let gap = events(&a, "flow", "gap");
    assert_eq!(gap[0]["bytes"], json!(1400), "{gap:?}");
    let dropped = events(&a, "output", "drop");
    assert!(
        dropped.iter().any(|d| d["reason"] == "startup_buffer_full"),
        "{dropped:?}"
    );
    // The second client saw its category only, the same session events as the first.
    // (The server's own farewell goes to every client.)
    assert!(
        b.iter()
            .filter(|v| v["type"] == "event" && v["event"] != "shutdown")
            .all(|v| v["cat"] == "session"),
        "{b:#?}"
    );
    assert_eq!(
        events(&b, "session", "summary").len(),
        events(&a, "session", "summary").len()
    );
    assert_eq!(events(&b, "session", "summary").len(), 3);
    drop(silent);
}

#[test]
fn configuration_errors_name_the_key_and_exit_2() {
    let dir = scratch("tap-config-errors");
    let capture = dir.join("one.pcap");
    let mut c = Conn::open(43001, 1);
    c.send(true, b"hello", 1400);
    c.close();
    write_capture(&capture, c.frames, 1_000_000);
    let capture_block = |extra: &str| {
        format!(
            r#"{{ io: {{ input: {{ capture: {{ local_ip: "10.99.7.1", remote_ip: "10.99.7.2", {extra} }} }} }} }}"#
        )
    };
    let cases = [
        (capture_block(""), "io.input.capture.remote_port"),
        (
            capture_block(r#"remote_port: "5000""#),
            "io.input.capture.remote_port",
        ),
        (
            capture_block("remote_port: 5000, colour: 1"),
            "io.input.capture.colour",
        ),
        (
            r#"{ io: { input: { capture: { local_ip: "10.99.7.1", remote_ip: "10.99.7.2", remote_port: 5000 } },
                      output: { listner: { enabled: true, port_range_start: 33600, port_range_end: 33530 } } } }"#
                .to_string(),
            "io.output.listner.port_range_end",
        ),
        ("{ io: { input: ".to_string(), "line"),
    ];
    for (text, key) in cases {
        let config = write_config(&dir, &text);
        let out = gophercap()
            .args(["tap", "--config"])
            .arg(&config)
            .arg("--read")
            .arg(&capture)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(key), "{text}: expected {key} in {stderr}");
    }
}

#[test]
fn the_example_configuration_validates() {
    let dir = scratch("tap-example-config");
    let out = run(&["tap", "--example-config"]);
    assert!(out.status.success());
    let config = write_config(&dir, &String::from_utf8(out.stdout).unwrap());
    let out = gophercap()
        .args(["tap", "--check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_idle_session_closes_after_session_idle_sec_and_an_unwritable_pcap_dir_is_a_warning() {
    let dir = scratch("tap-idle");
    // Session 1 says one thing and falls silent; session 2 talks on for three seconds.
    let ms = 1_000_000i64;
    let mut quiet = Conn::open(41101, 5);
    quiet.send(true, b"hello, then nothing", 1400);
    let mut busy = Conn::open(41102, 9);
    for i in 0..30u8 {
        busy.send(true, &[i; 100], 1400);
    }
    busy.close();
    let mut records = timed(quiet.frames, T0, ms);
    records.extend(timed(busy.frames, T0 + 10 * ms, 100 * ms));
    let capture = dir.join("idle.pcap");
    write(
        &capture,
        &pcap_bytes(
            1,
            65535,
            gophercap::sink::capture::Precision::Nano,
            false,
            &records,
        ),
    );
    // A file where the pcap directory should be: the pcap output is off, the run goes on.
    let blocked = dir.join("not-a-directory");
    write(&blocked, b"a file");
    let consumer = Consumer::start(None, 65536);
    let outputs = format!(
        r#"{} pcap: {{ enabled: true, dir: "{}" }},"#,
        connector(&consumer, &consumer),
        blocked.join("pcap").display()
    );
    let text = config_text(&outputs, "").replace(
        "remote_port: 5000,",
        "remote_port: 5000, session_idle_sec: 1,",
    );
    let config = write_config(&dir, &text);
    let stderr = tap(&config, &["--read", capture.to_str().unwrap()]);
    assert!(
        stderr.contains("session closed session=1 reason=\"idle\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("session closed session=2 reason=\"fin\""),
        "{stderr}"
    );
    assert!(stderr.contains("the pcap output is disabled"), "{stderr}");
    let mut streams = consumer.finish();
    streams.sort();
    let busy_stream: Vec<u8> = (0..30u8).flat_map(|i| [i; 100]).collect();
    assert!(
        streams.contains(&b"hello, then nothing".to_vec()),
        "{streams:?}"
    );
    assert!(streams.contains(&busy_stream));
}

/// Forty sessions open at once against a low descriptor limit. A low soft limit costs nothing
/// (tap raises it to the hard one). At a low hard limit, the sockets that cannot be made are
/// said once, as a warning that names the cure; those outputs dial again as ended sessions free
/// descriptors, and their streams, small enough to wait in the startup buffers, still arrive.
#[test]
fn a_low_descriptor_limit_is_raised_and_running_out_is_one_warning() {
    use std::os::unix::process::CommandExt;
    let dir = scratch("tap-descriptors");
    let mut conns = Vec::new();
    let mut expected = Vec::new();
    for i in 0..40u16 {
        let mut c = Conn::open(42000 + i, 7000 + u32::from(i) * 1_000_000);
        let request = pattern(i as u8, 500);
        c.send(true, &request, 1000);
        c.send(false, &pattern(100 + i as u8, 3000), 1400);
        c.close();
        expected.push(request);
        conns.push(c.frames);
    }
    let capture = dir.join("forty.pcap");
    write_capture(&capture, interleave(conns), 1_000_000);
    let mut own = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut own) }, 0);

    let run = |soft: libc::rlim_t, hard: libc::rlim_t| -> (String, Vec<Vec<u8>>) {
        let (req, resp) = (Consumer::start(None, 65536), Consumer::start(None, 65536));
        let text = format!(
            r#"{{
  io: {{
    input: {{ capture: {{ iface: "unused-offline", local_ip: "10.99.7.1",
                          remote_ip: "10.99.7.2", remote_port: {REMOTE_PORT} }} }},
    output: {{ {} }},
    mapping: {{ role: "client" }},
  }},
  control: {{ enabled: false }},
  runtime: {{ drain_timeout_ms: 20000, stats_interval_sec: 0 }},
}}"#,
            connector(&req, &resp)
        );
        let config = write_config(&dir, &text);
        let mut command = gophercap();
        command
            .args(["tap", "--config"])
            .arg(&config)
            .arg("--read")
            .arg(&capture);
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit is async-signal-safe and reads only the struct moved in here.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "tap failed: {stderr}");
        let requests = req.finish();
        resp.finish();
        (stderr, requests)
    };
    let warning = "no file descriptor left";

    let (stderr, requests) = run(24, own.rlim_max);
    assert!(!stderr.contains(warning), "{stderr}");
    assert_eq!(sorted(requests), sorted(expected.clone()), "{stderr}");

    let (stderr, requests) = run(24, 24);
    assert_eq!(stderr.matches(warning).count(), 1, "{stderr}");
    assert_eq!(sorted(requests), sorted(expected), "{stderr}");
}
