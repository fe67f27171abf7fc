//! `gophercap tap` live: HTTP sessions between two network namespaces of its own (curl in one,
//! a python server in the other), tapped on the server's end of the veth from inside the
//! server's namespace, as a sidecar beside the server would. Each session's requests and
//! responses go to python consumers tap's connector dials and must equal, byte for byte, what
//! the server recorded receiving and sending; each session's pcap recording, re-read by tshark,
//! holds the connection from SYN to FIN; SIGTERM ends the run with exit 0.
//!
//! Needs root, `ip`, `python3`, `curl`, `timeout` and `tshark`; without them it prints why and
//! passes. Every process is bounded (a deadline here, `timeout` around the helpers) and the
//! namespaces, with whatever still runs in them, are deleted even when an assertion fails.

mod common;

use common::live::*;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOOLS: &[&str] = &["ip", "python3", "curl", "timeout", "tshark"];

/// The service port, and the consumers' ports (on the server namespace's loopback).
const HTTP_PORT: u16 = 8080;
const REQUESTS_PORT: u16 = 9001;
const RESPONSES_PORT: u16 = 9002;

/// An HTTP/1.1 server on a bare socket, one connection at a time, so that it can record the
/// exact bytes it read and wrote (to `received-PORT` and `sent-PORT`, PORT being the client's).
/// `/hello` is a short text, `/big` 300 000 patterned bytes, a POST is answered with the size of
/// its body. It closes its side after the response (`Connection: close`) and reads until curl
/// closes too, so every connection ends with a FIN each way. Says "listening" when ready.
const HTTP_SERVER: &str = r#"
import os, socket, sys

host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
BIG = bytes((i * 31 + i // 251) & 255 for i in range(300000))

def save(name, data):
    with open(os.path.join(out, name + ".tmp"), "wb") as f:
        f.write(data)
    os.rename(os.path.join(out, name + ".tmp"), os.path.join(out, name))

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, port))
srv.listen(8)
print("listening", flush=True)
while True:
    conn, peer = srv.accept()
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = conn.recv(65536)
        if not chunk:
            break
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, path = lines[0].split(b" ")[:2]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
        received += chunk
    if method == b"POST":
        code, payload = b"200 OK", b"got %d bytes\n" % len(body)
    elif path == b"/hello":
        code, payload = b"200 OK", b"hello gophercap\n"
    elif path == b"/big":
        code, payload = b"200 OK", BIG
    else:
        code, payload = b"404 Not Found", b"not here\n"
    sent = (b"HTTP/1.1 " + code + b"\r\nContent-Type: application/octet-stream\r\n"
            + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(payload) + payload)
    conn.sendall(sent)
    conn.shutdown(socket.SHUT_WR)
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        received += chunk
    conn.close()
    save("received-%d" % peer[1], received)
    save("sent-%d" % peer[1], sent)
"#;

/// Two listening ports (requests, responses) on loopback; every accepted connection is read to
/// its end and saved as `requests-N` or `responses-N`. Says "listening" when both are ready.
const CONSUMER: &str = r#"
import os, socket, sys, threading

out = sys.argv[1]

def drain(conn, name):
    data = bytearray()
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    conn.close()
    with open(os.path.join(out, name + ".tmp"), "wb") as f:
        f.write(data)
    os.rename(os.path.join(out, name + ".tmp"), os.path.join(out, name))

def accept(srv, direction):
    n = 0
    while True:
        conn, _ = srv.accept()
        n += 1
        threading.Thread(target=drain, args=(conn, "%s-%d" % (direction, n)), daemon=True).start()

threads = []
for direction, port in (("requests", int(sys.argv[2])), ("responses", int(sys.argv[3]))):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    threads.append(threading.Thread(target=accept, args=(srv, direction), daemon=True))
print("listening", flush=True)
for t in threads:
    t.start()
for t in threads:
    t.join()
"#;

/// Starts a python snippet in a namespace (bounded to a minute) and waits for its "listening".
fn start_python(ns: &str, script: &str, args: &[&str]) -> Reaped {
    let mut command = Namespaces::exec(ns, "timeout");
    command
        .args(["60", "python3", "-c", script])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = Reaped(command.spawn().unwrap());
    let mut ready = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "listening", "a python helper did not start");
    child
}

/// The files in `dir` whose names start with `prefix` (and are complete: no `.tmp`), by name.
fn saved(dir: &Path, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            (name.starts_with(prefix) && !name.ends_with(".tmp"))
                .then(|| (name, std::fs::read(&p).unwrap()))
        })
        .collect()
}

/// Waits until `count` complete files start with `prefix`, within `limit`.
fn wait_saved(dir: &Path, prefix: &str, count: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while saved(dir, prefix).len() < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let names: Vec<String> = saved(dir, prefix).into_keys().collect();
    assert_eq!(
        names.len(),
        count,
        "{prefix}* in {}: {names:?}",
        dir.display()
    );
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// Bytes in a message as text, shortened: for assertion messages.
fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    format!("{} bytes: {text:?}", bytes.len())
}

/// One curl from the client namespace, the body it received saved to `body_to`; returns its
/// local (ephemeral) port.
fn curl(net: &Namespaces, extra: &[&str], path: &str, body_to: &Path) -> u16 {
    let out = Namespaces::exec(&net.client, "timeout")
        .args(["15", "curl", "-sS", "--noproxy", "*", "--max-time", "10"])
        .args(extra)
        .arg("-o")
        .arg(body_to)
        .args(["-w", "%{local_port}"])
        .arg(format!("http://{}:{HTTP_PORT}{path}", net.server_ip))
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {path}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("curl's local port {:?}: {e}", out.stdout))
}

/// One packet of a recording, as tshark reads it.
struct Packet {
    src_port: u16,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    /// Relative sequence number (the first data byte is 1) and payload length.
    seq: u64,
    len: u64,
}

/// The fields of [`Packet`], in order.
const FIELDS: [&str; 7] = [
    "tcp.srcport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.flags.fin",
    "tcp.flags.reset",
    "tcp.seq",
    "tcp.len",
];

fn tshark_packets(file: &Path) -> Vec<Packet> {
    let mut tshark = Command::new("timeout");
    tshark
        .args([
            "30",
            "tshark",
            "-n",
            "-o",
            "tcp.relative_sequence_numbers:TRUE",
            "-r",
        ])
        .arg(file)
        .args(["-Y", "tcp", "-T", "fields", "-E", "separator=,"]);
    for field in FIELDS {
        tshark.args(["-e", field]);
    }
    let out = tshark.output().unwrap();
    assert!(
        out.status.success(),
        "tshark {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // tshark 3 prints flags as 0/1, tshark 4 as True/False.
    let flag = |f: &str| f == "1" || f == "True";
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), FIELDS.len(), "{line}");
            Packet {
                src_port: f[0].parse().unwrap(),
                syn: flag(f[1]),
                ack: flag(f[2]),
                fin: flag(f[3]),
                rst: flag(f[4]),
                seq: f[5].parse().unwrap(),
                len: f[6].parse().unwrap(),
            }
        })
        .collect()
}

/// The sequence ranges the packets' payloads cover, merged: a retransmission (they happen when
/// the machine is busy) adds packets, not bytes.
fn covered<'a>(packets: impl Iterator<Item = &'a Packet>) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = packets
        .filter(|p| p.len > 0)
        .map(|p| (p.seq, p.seq + p.len))
        .collect();
    ranges.sort();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Every frame of a recording, TCP or not.
fn frame_count(file: &Path) -> usize {
    let out = Command::new("timeout")
        .args(["30", "tshark", "-n", "-r"])
        .arg(file)
        .args(["-T", "fields", "-e", "frame.number"])
        .output()
        .unwrap();
    assert!(out.status.success(), "tshark {}", file.display());
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn live_sessions_reach_connector_consumers_and_pcaps_and_sigterm_drains() {
    if let Some(why) = missing_for_live(TOOLS) {
        eprintln!("skipping: {why}");
        return;
    }
    let net = Namespaces::new("tap", "tp", 72);
    let dir = scratch("tap-live");
    let (server_dir, consumer_dir, pcap_dir, bodies) = (
        dir.join("server"),
        dir.join("consumer"),
        dir.join("pcap"),
        dir.join("curl"),
    );
    for d in [&server_dir, &consumer_dir, &bodies] {
        std::fs::create_dir_all(d).unwrap();
    }
    let server = start_python(
        &net.server,
        HTTP_SERVER,
        &[
            &net.server_ip,
            &HTTP_PORT.to_string(),
            server_dir.to_str().unwrap(),
        ],
    );
    let consumer = start_python(
        &net.server,
        CONSUMER,
        &[
            consumer_dir.to_str().unwrap(),
            &REQUESTS_PORT.to_string(),
            &RESPONSES_PORT.to_string(),
        ],
    );

    // tap beside the server: role "server", local = the server, remote = the client. The
    // remote side's port is curl's ephemeral one, unknown here, so the filter names the
    // service port instead ({local_port}) and remote_port is a placeholder no connection uses:
    // with no connection matching remote_ip:remote_port, tap takes the TCP client (the SYN's
    // sender) as the requester, which for role "server" is what the remote side is anyway.
    // (Pinning curl's port with --local-port could name one session only: remote_port is one
    // value, and each connection needs a client port of its own.)
    let config = dir.join("tap.json5");
    write(
        &config,
        format!(
            r#"{{
  io: {{
    input: {{ capture: {{
      iface: "{veth}",
      local_ip: "{server_ip}", local_port: {HTTP_PORT},
      remote_ip: "{client_ip}", remote_port: 1,
      "bpf-filter": "tcp and host {{local_ip}} and host {{remote_ip}} and port {{local_port}}",
    }} }},
    output: {{
      "remote-host": {{ enabled: true, host: "127.0.0.1", requests_port: {REQUESTS_PORT},
                       responses_port: {RESPONSES_PORT},
                       timeouts: {{ connect: 2, "retry-every": 0.2 }} }},
      pcap: {{ enabled: true, dir: "{pcap}", format: "pcap", per_session: true }},
    }},
    mapping: {{ role: "server" }},
  }},
  control: {{ enabled: false }},
  runtime: {{ drain_timeout_ms: 5000, stats_interval_sec: 0 }},
}}"#,
            veth = net.server_veth,
            server_ip = net.server_ip,
            client_ip = net.client_ip,
            pcap = pcap_dir.display(),
        )
        .as_bytes(),
    );
    let bin = env!("CARGO_BIN_EXE_gophercap");
    let mut tap = Namespaces::exec(&net.server, bin);
    tap.args(["--log-format", "json", "tap", "--config"])
        .arg(&config)
        .env_remove("GOPHERCAP_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut tap = Reaped(tap.spawn().unwrap());
    let stderr = Lines::follow(tap.0.stderr.take().unwrap());
    let started = stderr
        .wait_for(Duration::from_secs(10), |l| l.contains("tap started"))
        .unwrap_or_else(|| panic!("no start line:\n{}", stderr.text()));
    let started: Value = serde_json::from_str(&started).unwrap();
    assert_eq!(started["input"], "live", "{started}");
    assert_eq!(
        started["filter"],
        format!(
            "tcp and host {} and host {} and port {HTTP_PORT}",
            net.server_ip, net.client_ip
        )
        .as_str()
    );

    // Three sessions, one after another: a short page, a large one, an upload.
    let upload: Vec<u8> = (0..65_536u32).map(|i| (i * 7 + i / 253) as u8).collect();
    let upload_file = dir.join("upload.bin");
    write(&upload_file, &upload);
    let upload_arg = format!("@{}", upload_file.display());
    let runs = [
        ("hello", curl(&net, &[], "/hello", &bodies.join("hello"))),
        ("big", curl(&net, &[], "/big", &bodies.join("big"))),
        (
            "upload",
            curl(
                &net,
                // No "Expect: 100-continue": the request is one stream, sent at once.
                &["-H", "Expect:", "--data-binary", &upload_arg],
                "/upload",
                &bodies.join("upload"),
            ),
        ),
    ];

    let deadline = Instant::now() + Duration::from_secs(15);
    for _ in &runs {
        let left = deadline.saturating_duration_since(Instant::now());
        stderr
            .wait_for(left, |l| l.contains("\"session closed\""))
            .unwrap_or_else(|| panic!("not every session closed:\n{}", stderr.text()));
    }
    // A session's outputs drain after it closes; the server saves after curl has gone.
    for (dir, prefix) in [
        (&consumer_dir, "requests-"),
        (&consumer_dir, "responses-"),
        (&server_dir, "received-"),
        (&server_dir, "sent-"),
    ] {
        wait_saved(dir, prefix, runs.len(), Duration::from_secs(10));
    }

    let stopped = Instant::now();
    signal(&tap.0, "TERM");
    let status = wait_bounded(&mut tap.0, Duration::from_secs(15));
    let took = stopped.elapsed();
    let text = stderr.text();
    let status = status.unwrap_or_else(|| panic!("SIGTERM did not stop tap:\n{text}"));
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(took < Duration::from_secs(5), "it took {took:?} to stop");
    drop((server, consumer));

    // What the server read and wrote, per curl; curl got what the server wrote.
    let received = saved(&server_dir, "received-");
    let sent = saved(&server_dir, "sent-");
    let exchange = |port: u16| {
        (
            &received[&format!("received-{port}")],
            &sent[&format!("sent-{port}")],
        )
    };
    for (name, port) in &runs {
        let (request, response) = exchange(*port);
        let body = std::fs::read(bodies.join(name)).unwrap();
        assert!(
            response.starts_with(b"HTTP/1.1 200 OK\r\n") && response.ends_with(&body),
            "{name}: curl got {}, the server sent {}",
            show(&body),
            show(response)
        );
        let first_line = match *name {
            "hello" => "GET /hello HTTP/1.1\r\n",
            "big" => "GET /big HTTP/1.1\r\n",
            _ => "POST /upload HTTP/1.1\r\n",
        };
        assert!(
            request.starts_with(first_line.as_bytes()),
            "{name}: {}",
            show(request)
        );
    }
    let (upload_request, _) = exchange(runs[2].1);
    assert!(
        upload_request.ends_with(&upload),
        "{}",
        show(upload_request)
    );
    assert_eq!(
        std::fs::read(bodies.join("hello")).unwrap(),
        b"hello gophercap\n"
    );
    assert_eq!(
        std::fs::read(bodies.join("upload")).unwrap(),
        b"got 65536 bytes\n"
    );
    assert_eq!(std::fs::read(bodies.join("big")).unwrap().len(), 300_000);

    // The consumers got each session's two streams, exactly.
    let streams = |prefix| sorted(saved(&consumer_dir, prefix).into_values().collect());
    let requests = streams("requests-");
    let responses = streams("responses-");
    assert!(
        requests == sorted(received.values().cloned().collect()),
        "requests streams {:?}",
        requests.iter().map(|r| show(r)).collect::<Vec<_>>()
    );
    assert!(
        responses == sorted(sent.values().cloned().collect()),
        "responses streams {:?}",
        responses.iter().map(|r| show(r)).collect::<Vec<_>>()
    );

    // tap's own account: one session per curl, client to server, ended by FINs, nothing lost.
    let opened = logs_with_message(&text, "session opened");
    assert_eq!(opened.len(), runs.len(), "{text}");
    let mut ids = BTreeMap::new();
    for (name, port) in &runs {
        let requester = format!("{}:{port}", net.client_ip);
        let session = opened
            .iter()
            .find(|s| s["requester"] == requester.as_str())
            .unwrap_or_else(|| panic!("no session with requester {requester}:\n{text}"));
        assert_eq!(
            session["responder"],
            format!("{}:{HTTP_PORT}", net.server_ip).as_str()
        );
        ids.insert(*name, session["session"].as_u64().unwrap());
    }
    let closed = logs_with_message(&text, "session closed");
    assert_eq!(closed.len(), runs.len(), "{text}");
    assert!(closed.iter().all(|c| c["reason"] == "fin"), "{closed:?}");
    let finished = logs_with_message(&text, "tap finished");
    assert_eq!(finished.len(), 1, "{text}");
    let f = &finished[0];
    let n = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("{k} in {f}"));
    let total = |m: &BTreeMap<String, Vec<u8>>| m.values().map(|v| v.len() as u64).sum::<u64>();
    assert_eq!(n("sessions"), runs.len() as u64, "{f}");
    assert_eq!(n("requests_bytes"), total(&received), "{f}");
    assert_eq!(n("responses_bytes"), total(&sent), "{f}");
    assert_eq!(n("delivered"), total(&received) + total(&sent), "{f}");
    for k in [
        "gaps",
        "dropped_startup_buffer_full",
        "dropped_output_buffer_full",
        "dropped_not_connected",
        "dropped_write_error",
        "abandoned",
    ] {
        assert_eq!(n(k), 0, "{k}: {f}");
    }

    // Each session's recording: that connection alone, from curl's SYN to both FINs, carrying
    // every byte each way.
    let mut files: Vec<String> = std::fs::read_dir(&pcap_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), runs.len(), "{files:?}");
    for (name, port) in &runs {
        let file = pcap_dir.join(format!(
            "session-{}-{}_{port}-{}_{HTTP_PORT}.pcap",
            ids[name], net.client_ip, net.server_ip
        ));
        assert!(file.is_file(), "{name}: no {} in {files:?}", file.display());
        let packets = tshark_packets(&file);
        assert_eq!(packets.len(), frame_count(&file), "{name}: only TCP");
        let from_client = |p: &&Packet| p.src_port == *port;
        let from_server = |p: &&Packet| p.src_port == HTTP_PORT;
        assert!(
            packets.iter().all(|p| from_client(&p) || from_server(&p)),
            "{name}: another connection's packet"
        );
        let first = &packets[0];
        assert!(
            first.src_port == *port && first.syn && !first.ack,
            "{name}: the first packet is not curl's SYN"
        );
        assert!(
            packets.iter().filter(from_server).any(|p| p.syn && p.ack),
            "{name}: no SYN-ACK"
        );
        assert!(packets.iter().filter(from_client).any(|p| p.fin), "{name}");
        assert!(packets.iter().filter(from_server).any(|p| p.fin), "{name}");
        assert!(packets.iter().all(|p| !p.rst), "{name}: a reset");
        let (request, response) = exchange(*port);
        assert_eq!(
            covered(packets.iter().filter(from_client)),
            [(1, 1 + request.len() as u64)],
            "{name}: request bytes"
        );
        assert_eq!(
            covered(packets.iter().filter(from_server)),
            [(1, 1 + response.len() as u64)],
            "{name}: response bytes"
        );
    }
}
