//! What `map`, `flows` and `http-trace` write for the bundled captures, held to snapshots in
//! `tests/snapshots/`: a change of output format shows up here as a diff to review, not in a
//! user's pipeline. The snapshots were first taken with the binary from before the output
//! layer, so they also prove the move to it changed nothing (the CSVs excepted: their change is
//! described in the README). `GOPHERCAP_BLESS=1 cargo test --test snapshots` retakes them.

mod common;

use common::*;
use regex::Regex;

/// (snapshot name, arguments), run from the repository's root.
fn cases() -> Vec<(String, Vec<String>)> {
    let mut cases: Vec<(String, Vec<String>)> = Vec::new();
    let mut case = |name: &str, args: &[&str]| {
        cases.push((
            name.to_string(),
            args.iter().map(|a| a.to_string()).collect(),
        ));
    };
    let sets = ["testdata/real", "testdata/synthetic", "testdata/damaged"];
    for format in ["json", "jsonl", "csv", "table"] {
        let mut args = vec!["-q", "map", "--format", format];
        args.extend(sets);
        case(&format!("map.{format}"), &args);
    }
    for capture in [
        "real/http/many-short.pcap",
        "real/curl-post.pcap",
        "synthetic/out-of-order.pcap",
    ] {
        let path = format!("testdata/{capture}");
        let name = capture.rsplit('/').next().unwrap_or(capture);
        case(
            &format!("flows.{name}.json"),
            &["-q", "flows", "--export-json", "-", &path],
        );
        case(
            &format!("flows.{name}.csv"),
            &["-q", "flows", "--export-csv", "-", &path],
        );
        case(
            &format!("flows.{name}.jsonl"),
            &["-q", "flows", "--expired-flows-jsonl", "-", &path],
        );
    }
    let mut http: Vec<String> = std::fs::read_dir(repo().join("testdata/real/http"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".pcap"))
        .collect();
    http.sort();
    for name in &http {
        let path = format!("testdata/real/http/{name}");
        case(
            &format!("http-trace.{name}.jsonl"),
            &["-q", "http-trace", &path],
        );
        case(
            &format!("http-trace.{name}.pretty"),
            &["-q", "http-trace", "--format", "pretty", &path],
        );
    }
    case(
        "http-trace.chunked-gzip.pcap.decompressed.jsonl",
        &[
            "-q",
            "http-trace",
            "--decompress",
            "testdata/real/http/chunked-gzip.pcap",
        ],
    );
    case(
        "http-trace.curl-get-gzipped.cap.jsonl",
        &[
            "-q",
            "http-trace",
            "--decompress",
            "testdata/real/curl-get-gzipped.cap",
        ],
    );
    cases
}

#[test]
fn outputs_match_their_snapshots() {
    let bless = std::env::var_os("GOPHERCAP_BLESS").is_some();
    // A checkout's file times are its own: JSON's mtime_ns, the CSV's last column.
    let json_mtime = Regex::new(r#""mtime_ns": ?-?[0-9]+"#).unwrap();
    let csv_mtime = Regex::new(r"(?m),-?[0-9]+$").unwrap();
    let mut stale = Vec::new();
    for (name, args) in cases() {
        let out = gophercap()
            .current_dir(repo())
            .args(&args)
            .output()
            .expect("run gophercap");
        let text = String::from_utf8(out.stdout).expect("UTF-8 output");
        let text = format!("{text}exit code {:?}\n", out.status.code());
        let text = json_mtime.replace_all(&text, r#""mtime_ns":MTIME"#);
        let text = if name == "map.csv" {
            csv_mtime.replace_all(&text, ",MTIME").into_owned()
        } else {
            text.into_owned()
        };
        let path = repo().join("tests/snapshots").join(&name);
        if bless {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(&text) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "outputs differ from tests/snapshots/ {stale:?}: review with GOPHERCAP_BLESS=1 cargo test --test snapshots and git diff"
    );
}
