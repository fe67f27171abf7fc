//! `gophercap http-trace` as the sidecar runs it: live on one end of a veth pair between two
//! network namespaces of its own (a python HTTP/1.1 server on one side, curl on the other),
//! configured by the environment, stopped by SIGTERM; the quiet-interface warning; and SIGINT
//! on an offline capture whose stdin pipe stays open after the last packet.
//!
//! The live tests need root, `ip`, `python3` and `curl`; without them they print why and pass.
//! Every process is bounded (a deadline here, `timeout` around the helpers) and a guard kills
//! what is left in the namespaces and deletes them, even when a test panics.

mod common;

use common::live::*;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::process::{ChildStdout, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A child's stdout collected on a thread, readable while the child runs.
struct Collected {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Collected {
    fn follow(mut stdout: ChildStdout) -> Self {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&bytes);
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                keep.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Collected {
            bytes,
            reader: Some(reader),
        }
    }

    /// Complete lines so far, each parsed as JSON.
    fn json_lines(&self) -> Vec<Value> {
        let bytes = self.bytes.lock().unwrap().clone();
        let text = String::from_utf8(bytes).expect("stdout is UTF-8");
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Everything, once the child has exited (its end of the pipe is closed).
    fn finish(mut self) -> Vec<Value> {
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.json_lines()
    }
}

/// A tiny HTTP/1.1 keep-alive server: `/hello` is 200 with a short text, anything else 404;
/// it says "listening" on stdout once its socket accepts.
const SERVER: &str = r#"
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        code, body = (200, b"hello gophercap\n") if self.path == "/hello" else (404, b"not here\n")
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass

server = HTTPServer((sys.argv[1], int(sys.argv[2])), H)
print("listening", flush=True)
server.serve_forever()
"#;

/// The tiny server on the server side's 8080, listening when this returns (bounded by 60 s).
fn http_server(net: &Namespaces) -> Reaped {
    let mut server = Namespaces::exec(&net.server, "timeout");
    server
        .args(["60", "python3", "-c", SERVER, &net.server_ip, "8080"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut server = Reaped(server.spawn().unwrap());
    let mut ready = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "listening", "the python server did not start");
    server
}

/// What the live tests run besides gophercap.
const LIVE_TOOLS: &[&str] = &["ip", "python3", "curl", "timeout"];

const GRACE_S: u64 = 3;

#[test]
fn live_sidecar_traces_curl_and_drains_on_sigterm() {
    if let Some(why) = missing_for_live(LIVE_TOOLS) {
        eprintln!("skipping: {why}");
        return;
    }
    let net = Namespaces::new("sidecar", "sc", 70);

    let server = http_server(&net);

    // Configured the sidecar way: the interface, ports and output from the environment, the
    // placement logged as given. -v: the start and finish lines are info.
    let bin = env!("CARGO_BIN_EXE_gophercap");
    let mut trace = Namespaces::exec(&net.server, bin);
    trace
        .args([
            "-v",
            "--log-format",
            "json",
            "http-trace",
            "--grace-period-s",
        ])
        .arg(GRACE_S.to_string())
        .env("INTERFACE", &net.server_veth)
        .env("PORTS", "8080")
        .env("OUTPUT_STDOUT", "true")
        .env("POD_NAME", "web-7f9c")
        .env("NAMESPACE", "shop")
        .env("NODE_NAME", "node-3")
        .env_remove("OUTPUT_URL")
        .env_remove("OUTPUT_URL_AUTH_TOKEN")
        .env_remove("GOPHERCAP_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut trace = Reaped(trace.spawn().unwrap());
    let stderr = Lines::follow(trace.0.stderr.take().unwrap());
    let stdout = Collected::follow(trace.0.stdout.take().unwrap());

    let start = stderr
        .wait_for(Duration::from_secs(10), |l| {
            l.contains("http-trace capturing")
        })
        .unwrap_or_else(|| panic!("no start line:\n{}", stderr.text()));
    let start: Value = serde_json::from_str(&start).expect("the start line is JSON");
    assert_eq!(start["level"], "INFO");
    assert_eq!(start["interface"], net.server_veth.as_str());
    assert_eq!(start["loopback"], false);
    assert_eq!(start["ports"], "8080");
    assert_eq!(
        start["placement"],
        "pod_name=web-7f9c namespace=shop node_name=node-3"
    );

    // Two requests on one keep-alive connection.
    let base = format!("http://{}:8080", net.server_ip);
    let curl = Namespaces::exec(&net.client, "timeout")
        .args(["15", "curl", "-sS", "--noproxy", "*", "-o", "/dev/null"])
        .args(["-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n"])
        .arg(format!("{base}/hello"))
        .arg(format!("{base}/missing"))
        .output()
        .unwrap();
    assert!(curl.status.success(), "curl: {curl:?}");
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "200 1\n404 0\n",
        "curl reused its connection for the second request"
    );

    // Live, every message is flushed as it is written: all four come before any signal.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stdout.json_lines().len() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        stdout.json_lines().len(),
        4,
        "messages while running: {:?}\nstderr:\n{}",
        stdout.json_lines(),
        stderr.text()
    );

    let stopped = Instant::now();
    signal(&trace.0, "TERM");
    let status = wait_bounded(&mut trace.0, Duration::from_secs(GRACE_S + 10));
    let took = stopped.elapsed();
    let messages = stdout.finish();
    let status = status.unwrap_or_else(|| panic!("SIGTERM did not stop it:\n{}", stderr.text()));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", stderr.text());
    assert!(
        took < Duration::from_secs(GRACE_S),
        "it took {took:?} to stop, the grace period is {GRACE_S} s"
    );

    assert_eq!(messages.len(), 4, "{messages:?}");
    let kinds: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap(),
                m["path"]
                    .as_str()
                    .or(m["request_path"].as_str())
                    .unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("request", "/hello"),
            ("response", "/hello"),
            ("request", "/missing"),
            ("response", "/missing"),
        ]
    );
    let status_codes: Vec<Option<u64>> =
        messages.iter().map(|m| m["status_code"].as_u64()).collect();
    assert_eq!(status_codes, [None, Some(200), None, Some(404)]);
    for m in &messages {
        assert_eq!(m["type"], "http");
        assert_eq!(m["receiver"]["port"], 8080, "{m}");
        assert_eq!(m["receiver"]["ip"], net.server_ip.as_str());
        assert_eq!(m["destination"]["ip"], net.client_ip.as_str());
        assert_eq!(m["connection"], messages[0]["connection"], "one connection");
        assert_eq!(m["incomplete"], false, "{m}");
    }
    assert_eq!(messages[0]["method"], "GET");
    assert_eq!(messages[1]["body"], "hello gophercap\n");
    assert_eq!(messages[3]["body"], "not here\n");
    assert_eq!(messages[3]["request_method"], "GET");

    let text = stderr.text();
    let finished = logs_with_message(&text, "http-trace finished");
    assert_eq!(finished.len(), 1, "{text}");
    let f = &finished[0];
    assert_eq!(f["level"], "INFO");
    assert_eq!(f["connections"], 1, "{f}");
    assert_eq!(f["requests"], 2, "{f}");
    assert_eq!(f["responses"], 2, "{f}");
    assert_eq!(f["written"], 4, "{f}");
    assert_eq!(f["problems"], 0, "{f}");
    assert_eq!(f["evicted"], 0, "{f}");
    assert!(f["packets"].as_u64().unwrap() >= 8, "{f}");
    assert!(
        logs_with_message(&text, "no packets captured for a while").is_empty(),
        "{text}"
    );

    drop(server);
}

/// One GET of `path` on the metrics server, from inside `ns`: (status, body).
fn scrape(ns: &str, address: &str, path: &str) -> (String, String) {
    let out = Namespaces::exec(ns, "timeout")
        .args(["5", "curl", "-sS", "--noproxy", "*", "-w", "\n%{http_code}"])
        .arg(format!("http://{address}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_owned(), body.to_owned())
}

/// The value of one series in an exposition text.
fn series(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// The effective uid of a running process.
fn effective_uid(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap();
    uids.split_whitespace().nth(1).unwrap().to_owned()
}

/// As a sidecar started as root with `--user`: the counters reach the number of requests
/// while it runs, and everything after the capture opened runs as nobody.
#[test]
fn live_metrics_count_the_traced_messages_as_nobody() {
    if let Some(why) = missing_for_live(LIVE_TOOLS) {
        eprintln!("skipping: {why}");
        return;
    }
    let net = Namespaces::new("metrics", "mt", 73);
    let server = http_server(&net);

    // The address from the environment, as a sidecar is configured; port 0: the log says which.
    let bin = env!("CARGO_BIN_EXE_gophercap");
    let mut trace = Namespaces::exec(&net.server, bin);
    trace
        .args(["-v", "--log-format", "json", "http-trace", "--port", "8080"])
        .args(["-i", &net.server_veth, "--stdout", "--user", "nobody"])
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env_remove("OUTPUT_URL")
        .env_remove("GOPHERCAP_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut trace = Reaped(trace.spawn().unwrap());
    let stderr = Lines::follow(trace.0.stderr.take().unwrap());
    let serving = stderr
        .wait_for(Duration::from_secs(10), |l| l.contains("serving /metrics"))
        .unwrap_or_else(|| panic!("no metrics line:\n{}", stderr.text()));
    let serving: Value = serde_json::from_str(&serving).unwrap();
    let address = serving["address"].as_str().unwrap().to_owned();
    stderr
        .wait_for(Duration::from_secs(10), |l| {
            l.contains("running as an unprivileged user")
        })
        .unwrap_or_else(|| panic!("no user switch:\n{}", stderr.text()));
    stderr
        .wait_for(Duration::from_secs(10), |l| {
            l.contains("http-trace capturing")
        })
        .unwrap_or_else(|| panic!("no start line:\n{}", stderr.text()));
    assert_eq!(scrape(&net.server, &address, "/healthz").0, "200");
    assert_eq!(scrape(&net.server, &address, "/readyz").0, "200");
    assert_eq!(effective_uid(trace.0.id()), "65534");

    const REQUESTS: usize = 5;
    let base = format!("http://{}:8080", net.server_ip);
    let curl = Namespaces::exec(&net.client, "timeout")
        .args(["15", "curl", "-sS", "--noproxy", "*"])
        .args(std::iter::repeat_n(["-o", "/dev/null"], REQUESTS).flatten())
        .args((0..REQUESTS).map(|i| format!("{base}/hello?{i}")))
        .output()
        .unwrap();
    assert!(curl.status.success(), "curl: {curl:?}");

    // Published after every packet: the counters reach the totals without waiting for more.
    let want = |t: &str| {
        series(t, "gophercap_http_messages_total{direction=\"request\"}") == Some(5)
            && series(t, "gophercap_http_messages_total{direction=\"response\"}") == Some(5)
            && series(t, "gophercap_capture_received_packets_total").unwrap_or(0)
                >= series(t, "gophercap_packets_decoded_total").unwrap_or(u64::MAX)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while Instant::now() < deadline {
        let (status, body) = scrape(&net.server, &address, "/metrics");
        assert_eq!(status, "200", "{body}");
        text = body;
        if want(&text) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(want(&text), "{text}\nstderr:\n{}", stderr.text());
    assert!(
        series(&text, "gophercap_packets_decoded_total").unwrap() >= 10,
        "{text}"
    );
    assert_eq!(
        series(&text, "gophercap_connections_active"),
        Some(1),
        "{text}"
    );
    assert_eq!(
        series(&text, "gophercap_capture_dropped_packets_total"),
        Some(0),
        "{text}"
    );
    assert_eq!(
        series(&text, "gophercap_reassembly_gaps_total"),
        Some(0),
        "{text}"
    );

    signal(&trace.0, "TERM");
    let status = wait_bounded(&mut trace.0, Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", stderr.text());
    drop(server);
}

#[test]
fn no_traffic_warning_is_logged_once() {
    if let Some(why) = missing_for_live(LIVE_TOOLS) {
        eprintln!("skipping: {why}");
        return;
    }
    let net = Namespaces::new("quiet", "qt", 71);
    let bin = env!("CARGO_BIN_EXE_gophercap");
    let mut trace = Namespaces::exec(&net.server, bin);
    trace
        .args(["-v", "--log-format", "json", "http-trace", "-i"])
        .arg(&net.server_veth)
        .args(["--port", "8080", "--no-traffic-warning-s", "1"])
        .env_remove("GOPHERCAP_LOG")
        .env_remove("OUTPUT_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut trace = Reaped(trace.spawn().unwrap());
    let stderr = Lines::follow(trace.0.stderr.take().unwrap());
    let stdout = Collected::follow(trace.0.stdout.take().unwrap());
    stderr
        .wait_for(Duration::from_secs(10), |l| {
            l.contains("http-trace capturing")
        })
        .unwrap_or_else(|| panic!("no start line:\n{}", stderr.text()));

    std::thread::sleep(Duration::from_secs(3));
    let stopped = Instant::now();
    signal(&trace.0, "TERM");
    let status = wait_bounded(&mut trace.0, Duration::from_secs(15));
    let took = stopped.elapsed();
    assert!(stdout.finish().is_empty(), "nothing was traced");
    let text = stderr.text();
    let status = status.unwrap_or_else(|| panic!("SIGTERM did not stop it:\n{text}"));
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(took < Duration::from_secs(5), "it took {took:?} to stop");
    let warnings = logs_with_message(
        &text,
        "no packets captured for a while: check the interface, the ports and the filter",
    );
    assert_eq!(warnings.len(), 1, "one warning in 3 quiet seconds:\n{text}");
    assert_eq!(warnings[0]["level"], "WARN");
    assert_eq!(warnings[0]["interface"], net.server_veth.as_str());
    assert_eq!(warnings[0]["seconds"], 1.0);
    let finished = logs_with_message(&text, "http-trace finished");
    assert_eq!(finished.len(), 1, "{text}");
    assert_eq!(finished[0]["packets"], 0);
}

/// Bytes still in a pipe, seen from either end.
fn pipe_pending(fd: &impl AsRawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n as usize
}

/// The writer of the pipe stays open after the last packet (a `tcpdump -w - | gophercap` whose
/// tcpdump is still running): SIGINT must still end the run with what was read.
#[test]
fn sigint_on_offline_stdin_keeps_what_was_read() {
    let capture = std::fs::read(repo().join("testdata/real/http/get-keepalive.pcap")).unwrap();
    let mut trace = gophercap()
        .args(["--log-format", "json", "http-trace", "-"])
        .env_remove("INTERFACE")
        .env_remove("PORTS")
        .env_remove("OUTPUT_URL")
        .env_remove("OUTPUT_STDOUT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = trace.stdin.take().unwrap();
    let stderr = Lines::follow(trace.stderr.take().unwrap());
    let stdout = Collected::follow(trace.stdout.take().unwrap());
    let mut trace = Reaped(trace);
    stdin.write_all(&capture).unwrap();
    stdin.flush().unwrap();

    // Once the pipe is empty every packet has been read; then a moment to work through them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pipe_pending(&stdin) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pipe_pending(&stdin), 0, "gophercap did not read its stdin");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        trace.0.try_wait().unwrap().is_none(),
        "it must still wait for more input"
    );

    let stopped = Instant::now();
    signal(&trace.0, "INT");
    let status = wait_bounded(&mut trace.0, Duration::from_secs(10));
    let took = stopped.elapsed();
    drop(stdin);
    let messages = stdout.finish();
    let text = stderr.text();
    let status = status.unwrap_or_else(|| {
        panic!("SIGINT did not stop a read of stdin whose writer stays open:\n{text}")
    });
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(took < Duration::from_secs(3), "it took {took:?} to stop");
    assert_eq!(messages.len(), 6, "{messages:?}\n{text}");
    let paths: Vec<&str> = messages.iter().filter_map(|m| m["path"].as_str()).collect();
    assert_eq!(paths, ["/index.html", "/blob.bin", "/missing.html"]);
    let status_codes: Vec<u64> = messages
        .iter()
        .filter_map(|m| m["status_code"].as_u64())
        .collect();
    assert_eq!(status_codes, [200, 200, 404]);
    assert!(messages.iter().all(|m| m["incomplete"] == false));
}
