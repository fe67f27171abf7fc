//! `gophercap http-trace` end to end: our own captures of real clients and servers (curl,
//! nginx, python, websockets between two namespaces) message by message, and every HTTP
//! capture of the corpus against tshark's http dissector: the method and target of each
//! request, the status and body length of each response. Body lengths are compared where
//! tshark states one (Content-Length, or the sum of the chunk sizes). Stated tolerance on the
//! corpus: at least 97% of tshark's requests and responses are found with equal fields; the
//! rest are printed with their file.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn trace(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["-q", "http-trace"];
    all.extend_from_slice(args);
    let out = run(&all);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn http_dir() -> PathBuf {
    repo().join("testdata/real/http")
}

fn capture(name: &str) -> String {
    http_dir().join(name).to_str().unwrap().to_string()
}

fn of_direction<'a>(messages: &'a [serde_json::Value], d: &str) -> Vec<&'a serde_json::Value> {
    messages.iter().filter(|m| m["direction"] == d).collect()
}

#[test]
fn keep_alive_gets_are_paired_with_their_responses() {
    let m = trace(&[&capture("get-keepalive.pcap")]);
    let requests = of_direction(&m, "request");
    let responses = of_direction(&m, "response");
    let paths: Vec<&str> = requests
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/index.html", "/blob.bin", "/missing.html"]);
    let status: Vec<u64> = responses
        .iter()
        .map(|r| r["status_code"].as_u64().unwrap())
        .collect();
    assert_eq!(status, [200, 200, 404]);
    let lengths: Vec<u64> = responses
        .iter()
        .map(|r| r["body_length"].as_u64().unwrap())
        .collect();
    assert_eq!(lengths, [300, 20480, 146]);
    for r in &responses {
        assert_eq!(r["request_method"], "GET");
        assert!(r["latency_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(r["receiver"]["port"], 8080);
        assert_eq!(r["destination"]["ip"], "10.99.60.1");
        assert_eq!(r["incomplete"], false);
    }
    assert_eq!(responses[1]["body_encoding"], "base64");
    assert_eq!(responses[0]["body_encoding"], "utf-8");
    assert!(
        responses[0]["body"]
            .as_str()
            .unwrap()
            .starts_with("<!DOCTYPE html>")
    );
}

#[test]
fn posts_head_pipelining_and_100_continue() {
    let post = trace(&[&capture("post.pcap")]);
    let requests = of_direction(&post, "request");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["method"], "POST");
    assert_eq!(requests[0]["body_length"], 200);
    assert_eq!(requests[1]["body_length"], 84);
    assert!(requests[1]["body"].as_str().unwrap().starts_with('{'));

    let head = trace(&[&capture("head.pcap")]);
    let response = of_direction(&head, "response")[0];
    assert_eq!(response["request_method"], "HEAD");
    assert_eq!(response["body_length"], 0);
    assert!(
        response["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == "Content-Length" && h["value"] == "20480")
    );

    let pipelined = trace(&[&capture("pipelined.pcap")]);
    let pairs: Vec<(String, u64)> = of_direction(&pipelined, "response")
        .iter()
        .map(|r| {
            (
                r["request_path"].as_str().unwrap().to_string(),
                r["body_length"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("/index.html".to_string(), 300),
            ("/tiny.txt".to_string(), 15),
            ("/data.json".to_string(), 42)
        ]
    );

    let expect = trace(&[&capture("expect-100.pcap")]);
    let status: Vec<u64> = of_direction(&expect, "response")
        .iter()
        .map(|r| r["status_code"].as_u64().unwrap())
        .collect();
    assert_eq!(status, [100, 200]);
    let request = of_direction(&expect, "request")[0];
    assert_eq!(request["body_length"], 4096);
    assert_eq!(request["incomplete"], false);
}

#[test]
fn chunked_gzip_is_dechunked_and_decompressed_on_request() {
    let raw = trace(&[&capture("chunked-gzip.pcap")]);
    let responses = of_direction(&raw, "response");
    assert_eq!(responses[0]["body_length"], 7863);
    assert_eq!(responses[0]["body_encoding"], "base64");
    assert_eq!(responses[0]["body_decoded"], false);
    let decoded = trace(&["--decompress", &capture("chunked-gzip.pcap")]);
    let responses = of_direction(&decoded, "response");
    assert_eq!(responses[0]["body_decoded"], true);
    assert_eq!(responses[0]["body_encoding"], "utf-8");
    // The same 30,000-byte file, sent compressed then plain.
    assert_eq!(responses[0]["body"], responses[1]["body"]);
    assert_eq!(responses[1]["body_length"], 30000);
    let cut = trace(&["--max-body-size", "100", &capture("chunked-gzip.pcap")]);
    let plain = of_direction(&cut, "response")[1];
    assert_eq!(plain["body"].as_str().unwrap().len(), 100);
    assert_eq!(plain["body_truncated"], true);
    assert_eq!(plain["body_length"], 30000);
}

#[test]
fn websocket_frames_after_the_upgrade() {
    let m = trace(&[&capture("websocket.pcap")]);
    let ws: Vec<&serde_json::Value> = m.iter().filter(|v| v["type"] == "websocket").collect();
    let status: Vec<u64> = of_direction(&m, "response")
        .iter()
        .map(|r| r["status_code"].as_u64().unwrap())
        .collect();
    assert_eq!(status, [101]);
    let opcodes: Vec<&str> = ws
        .iter()
        .filter(|w| w["direction"] == "client_to_server")
        .map(|w| w["opcode"].as_str().unwrap())
        .collect();
    assert_eq!(
        opcodes,
        ["text", "binary", "text", "ping", "text", "binary", "close"]
    );
    let big = ws
        .iter()
        .find(|w| w["payload_length"] == 70000)
        .expect("the 64-bit length frame");
    assert_eq!(big["payload_encoding"], "base64");
    let close = ws.iter().find(|w| w["opcode"] == "close").unwrap();
    assert_eq!(close["close_code"], 1000);
    assert_eq!(close["close_reason"], "gophercap done");
    assert!(ws.iter().all(|w| w["incomplete"] == false));
}

#[test]
fn filters_redaction_ports_and_sampling() {
    let only = trace(&["--url", "^/blob", &capture("get-keepalive.pcap")]);
    assert_eq!(only.len(), 2, "{only:?}");
    assert!(
        only.iter()
            .all(|m| m["path"] == "/blob.bin" || m["request_path"] == "/blob.bin")
    );
    let none = trace(&["--port", "9999", &capture("get-keepalive.pcap")]);
    assert!(none.is_empty());
    let by_port = trace(&["--port", "8080", &capture("many-short.pcap")]);
    assert_eq!(by_port.len(), 100);
    let half = trace(&["--sample-rate", "0.5", &capture("many-short.pcap")]);
    assert!(half.len() < 100 && half.len() > 10, "{}", half.len());
    assert_eq!(half.len() % 2, 0, "whole connections are sampled");
    let again = trace(&["--sample-rate", "0.5", &capture("many-short.pcap")]);
    assert_eq!(half, again, "sampling is deterministic");
    // The UA header is curl's; redact it by name, and nothing else.
    let m = trace(&["--redact-header", "user-agent", &capture("head.pcap")]);
    let request = of_direction(&m, "request")[0];
    let ua = request["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "User-Agent")
        .unwrap();
    assert_eq!(ua["value"], "[REDACTED]");
}

#[test]
fn pretty_format_and_output_file() {
    let dir = scratch("http-trace-file");
    let file = dir.join("messages.jsonl");
    let out = run(&[
        "-q",
        "http-trace",
        "--output-file",
        file.to_str().unwrap(),
        "--format",
        "pretty",
        "--stdout",
        &capture("pipelined.pcap"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("GET /tiny.txt HTTP/1.1"), "{text}");
    assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
    assert!(!text.contains('\x1b'), "no colour into a pipe");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        vec!["http-trace", "--sample-rate", "2", "x.pcap"],
        vec![
            "http-trace",
            "--output-url",
            "http://127.0.0.1:1/",
            "x.pcap",
        ],
        vec!["http-trace", "--max-header-bytes", "1", "x.pcap"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

/// The signals of the subprocess contract on stderr (`--log-format json`): offline at `-v`, one
/// `"event":"ready"` line once the input is open and one `"event":"finished"` line at the end;
/// a run that cannot start ends on `"event":"failed"` with its exit code and no ready line.
#[test]
fn json_logs_carry_the_ready_finished_and_failed_events() {
    let parse = |stderr: &[u8]| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(stderr)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let out = run(&[
        "-v",
        "--log-format",
        "json",
        "http-trace",
        &capture("get-keepalive.pcap"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let logs = parse(&out.stderr);
    let events: Vec<&str> = logs.iter().filter_map(|l| l["event"].as_str()).collect();
    assert_eq!(events, ["ready", "finished"], "{logs:?}");
    let ready = logs.iter().find(|l| l["event"] == "ready").unwrap();
    assert_eq!(ready["level"], "INFO");
    assert_eq!(ready["message"], "http-trace reading captures");
    let finished = logs.last().unwrap();
    assert_eq!(finished["event"], "finished", "the finish line is the last");
    let written = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(finished["written"], written as u64);

    let out = run(&[
        "--log-format",
        "json",
        "http-trace",
        "--port",
        "80",
        "no-such-capture.pcap",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let logs = parse(&out.stderr);
    assert!(logs.iter().all(|l| l["event"] != "ready"), "{logs:?}");
    let failed = logs.last().unwrap();
    assert_eq!(failed["event"], "failed", "{logs:?}");
    assert_eq!(failed["level"], "ERROR");
    assert_eq!(failed["exit_code"], 2);
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("no-such-capture.pcap"),
        "{failed}"
    );
}

/// A local endpoint that answers 500 twice, then 200: the message arrives after two retries.
#[test]
fn output_url_retries_until_the_server_accepts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        let mut answered = 0;
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            while let Some((head, body)) = read_request(&mut stream) {
                answered += 1;
                let status = if answered <= 2 { "500 Oops" } else { "200 OK" };
                write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").unwrap();
                if answered > 2 {
                    bodies.push((head, body));
                }
                if bodies.len() == 2 {
                    return (answered, bodies);
                }
            }
        }
        unreachable!()
    });
    let out = gophercap()
        .args([
            "-q",
            "http-trace",
            "--allow-http",
            "--output-url",
            &format!("http://127.0.0.1:{port}/ingest"),
            &capture("head.pcap"),
        ])
        .env("OUTPUT_URL_AUTH_TOKEN", "t0k3n")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty(), "an output URL alone means no stdout");
    let (answered, bodies) = server.join().unwrap();
    assert_eq!(answered, 4);
    let (head, body) = &bodies[0];
    assert!(
        head.to_lowercase().contains("authorization: bearer t0k3n"),
        "{head}"
    );
    assert!(
        head.to_lowercase()
            .contains("content-type: application/json")
    );
    let message: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(message["method"], "HEAD");
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// What tshark's http dissector says of a capture: (method, target) of each request and
/// (status, body length when stated) of each response.
type Requests = HashMap<(String, String), usize>;
type Responses = HashMap<(u64, Option<u64>), usize>;

fn tshark_http(path: &Path) -> Option<(Requests, Responses)> {
    let out = std::process::Command::new("tshark")
        .args(["-r", path.to_str()?, "-Y", "http", "-T", "fields"])
        .args(["-E", "occurrence=a", "-E", "aggregator=|"])
        .args(["-e", "http.request.method", "-e", "http.request.uri"])
        .args(["-e", "http.response.code", "-e", "http.content_length"])
        .args(["-e", "http.chunk_size"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut requests = Requests::new();
    let mut responses = Responses::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or("");
        if !field(0).is_empty() {
            for (method, uri) in field(0).split('|').zip(field(1).split('|')) {
                *requests.entry((method.into(), uri.into())).or_default() += 1;
            }
        }
        if !field(2).is_empty() {
            let codes: Vec<&str> = field(2).split('|').collect();
            // Lengths only when one message is in the frame (else they cannot be matched).
            let length = if codes.len() == 1 {
                if !field(3).is_empty() {
                    field(3).parse().ok()
                } else if !field(4).is_empty() {
                    Some(
                        field(4)
                            .split('|')
                            .filter_map(|c| c.parse::<u64>().ok())
                            .sum(),
                    )
                } else {
                    None
                }
            } else {
                None
            };
            for code in codes {
                let Ok(code) = code.parse() else { continue };
                *responses.entry((code, length)).or_default() += 1;
            }
        }
    }
    Some((requests, responses))
}

/// Found in ours / in tshark's, with the misses listed.
fn compare(path: &Path) -> Option<(usize, usize, Vec<String>)> {
    let (requests, responses) = tshark_http(path)?;
    let out = run(&["-q", "http-trace", "--max-body-size", "0", path.to_str()?]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{path:?}: {out:?}"
    );
    let mut ours_req = Requests::new();
    let mut ours_resp: HashMap<u64, Vec<u64>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let m: serde_json::Value = serde_json::from_str(line).ok()?;
        if m["direction"] == "request" {
            let key = (
                m["method"].as_str()?.to_string(),
                m["path"].as_str()?.to_string(),
            );
            *ours_req.entry(key).or_default() += 1;
        } else if m["direction"] == "response" {
            let status = m["status_code"].as_u64()?;
            // tshark's length is the header's: a HEAD or 304 answer states one it does not send.
            let length = if m["request_method"] == "HEAD" || status == 304 {
                m["headers"]
                    .as_array()?
                    .iter()
                    .find(|h| {
                        h["name"]
                            .as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case("content-length"))
                    })
                    .and_then(|h| h["value"].as_str()?.trim().parse().ok())
                    .unwrap_or(0)
            } else {
                m["body_length"].as_u64()?
            };
            ours_resp.entry(status).or_default().push(length);
        }
    }
    let (mut found, mut total, mut misses) = (0, 0, Vec::new());
    for (key, n) in &requests {
        total += n;
        let have = ours_req.get(key).copied().unwrap_or(0);
        found += have.min(*n);
        if have < *n {
            misses.push(format!("request {} {} ×{}", key.0, key.1, n - have));
        }
    }
    let mut stated: Vec<(&(u64, Option<u64>), &usize)> = responses.iter().collect();
    // Responses with a stated length claim theirs first.
    stated.sort_by_key(|((_, length), _)| length.is_none());
    for ((code, length), n) in stated {
        total += n;
        let pool = ours_resp.entry(*code).or_default();
        for _ in 0..*n {
            let at = match length {
                Some(l) => pool.iter().position(|x| x == l),
                None if !pool.is_empty() => Some(0),
                None => None,
            };
            match at {
                Some(i) => {
                    pool.remove(i);
                    found += 1;
                }
                None => misses.push(format!("response {code} length {length:?}")),
            }
        }
    }
    Some((found, total, misses))
}

fn http_captures_in_corpus(corpus: &Path) -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).unwrap();
    manifest
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|p| p.contains("http") && !p.contains("https") && !p.contains("http2"))
        .map(|p| corpus.join(p))
        .filter(|p| p.is_file())
        .collect()
}

#[test]
fn our_captures_equal_tshark_exactly() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(http_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    files.sort();
    for file in files {
        let Some((found, total, misses)) = compare(&file) else {
            eprintln!("tshark not available: skipped");
            return;
        };
        eprintln!("{}: {found}/{total}", file.display());
        assert_eq!(found, total, "{}: {misses:?}", file.display());
    }
}

#[test]
fn corpus_http_agrees_with_tshark() {
    let Some(corpus) = corpus() else {
        eprintln!("no ../shared/corpus: skipped");
        return;
    };
    let (mut found, mut total) = (0, 0);
    for file in http_captures_in_corpus(&corpus) {
        let Some((f, t, misses)) = compare(&file) else {
            eprintln!("tshark not available: skipped");
            return;
        };
        eprintln!(
            "{}: {f}/{t}{}",
            file.strip_prefix(&corpus).unwrap().display(),
            if misses.is_empty() {
                String::new()
            } else {
                format!(" missing {:?}", &misses[..misses.len().min(5)])
            }
        );
        found += f;
        total += t;
    }
    eprintln!("corpus: {found} of {total} tshark HTTP messages found with equal fields");
    assert!(total > 1000, "the corpus has its HTTP captures");
    assert!(found * 100 >= total * 97, "{found} of {total}");
}

/// Two connections open at once under `--max-concurrent-connections 1`: the second pushes the
/// first (still open) out, which is logged with its endpoints; what the first had said is
/// still written.
#[test]
fn the_connection_cap_drops_the_least_recent_open_connection_and_logs_it() {
    let first = http_exchange_ipv4(40001);
    let second = http_exchange_ipv4(40002);
    // The first connection up to its FIN, all of the second, then the first's close.
    let frames: Vec<Vec<u8>> = first[..5]
        .iter()
        .chain(&second)
        .chain(&first[5..])
        .map(|p| ethernet(&[], ETHERTYPE_IPV4, p))
        .collect();
    let dir = scratch("http-trace-cap");
    let capture = dir.join("two.pcap");
    write(
        &capture,
        &pcap_bytes(
            1,
            65535,
            gophercap::sink::capture::Precision::Micro,
            false,
            &timed(frames, T0, 1_000_000),
        ),
    );
    let out = run(&[
        "http-trace",
        "--max-concurrent-connections",
        "1",
        capture.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("connection dropped").count(),
        1,
        "the first, still open, is dropped once: {stderr}"
    );
    assert!(stderr.contains("10.99.0.1:40001"), "{stderr}");
    let lines = String::from_utf8(out.stdout).unwrap();
    assert_eq!(lines.lines().count(), 4, "both exchanges written: {lines}");
}
