//! `gophercap map` driven as a user drives it: edge-case captures, damage, selection, formats,
//! exit codes, stdin, tarballs, `--update`, and a closed stdout.

mod common;

use common::*;
use gophercap::sink::capture::Precision;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

fn synthetic(name: &str) -> String {
    repo()
        .join("testdata/synthetic")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn damaged(name: &str) -> String {
    repo()
        .join("testdata/damaged")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn map_one(path: &str) -> (Option<i32>, serde_json::Value) {
    let out = run(&["-q", "map", "--format", "jsonl", path]);
    let line = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(line.lines().next().unwrap_or("null")).unwrap();
    (out.status.code(), value)
}

fn http_records() -> Vec<Record> {
    timed(
        http_exchange_ipv4(40001)
            .into_iter()
            .map(|p| ethernet(&[], ETHERTYPE_IPV4, &p))
            .collect(),
        T0,
        1_000_000,
    )
}

#[test]
fn an_empty_file_named_explicitly_is_reported() {
    let dir = scratch("empty-file");
    let path = dir.join("empty.pcap");
    write(&path, b"");
    let (code, v) = map_one(path.to_str().unwrap());
    assert_eq!(code, Some(1));
    assert_eq!(v["error"]["kind"], "empty");
    assert_eq!(v["packets"], 0);
}

#[test]
fn a_file_under_24_bytes_is_truncated_at_offset_zero() {
    let (code, v) = map_one(&damaged("under-24-bytes.pcap"));
    assert_eq!(code, Some(1));
    assert_eq!(v["error"]["kind"], "truncated");
    assert_eq!(v["error"]["offset"], 0);
}

#[test]
fn header_only_file_has_no_times_and_no_error() {
    let (code, v) = map_one(&synthetic("header-only.pcap"));
    assert_eq!(code, Some(0));
    assert_eq!(v["packets"], 0);
    assert!(v["first_ts"].is_null() && v["duration_s"].is_null());
    assert!(v["error"].is_null());
    assert_eq!(v["snaplen"], 65535);
}

#[test]
fn one_packet_and_zero_duration_have_null_rates() {
    for name in ["one-packet.pcap", "zero-duration.pcap"] {
        let (code, v) = map_one(&synthetic(name));
        assert_eq!(code, Some(0), "{name}");
        assert_eq!(v["duration_s"], 0.0, "{name}");
        assert!(v["pps"].is_null() && v["bps"].is_null(), "{name}: {v}");
    }
}

#[test]
fn truncated_last_record_keeps_the_counts_before_it() {
    let (code, v) = map_one(&damaged("truncated-record.pcap"));
    assert_eq!(code, Some(1));
    assert_eq!(v["packets"], 7);
    assert_eq!(v["error"]["kind"], "truncated");
    assert_eq!(v["error"]["record"], 8);
    // 24-byte header plus seven records of 16-byte headers and their frames.
    let frames: u64 = http_records()[..7]
        .iter()
        .map(|r| 16 + r.1.len() as u64)
        .sum();
    assert_eq!(v["error"]["offset"], 24 + frames);
}

#[test]
fn truncated_gzip_keeps_what_was_inflated() {
    let (code, v) = map_one(&damaged("truncated.pcap.gz"));
    assert_eq!(code, Some(1));
    assert_eq!(v["compression"], "gzip");
    assert_eq!(v["error"]["kind"], "gzip");
    assert!(v["packets"].as_u64().unwrap() > 0, "{v}");
}

#[test]
fn multi_member_gzip_is_read_to_the_end() {
    let dir = scratch("multi-member-gzip");
    let whole = pcap_bytes(1, 65535, Precision::Micro, false, &http_records());
    // Two gzip members, as `cat a.gz b.gz` or a rotating writer makes them.
    let mut bytes = gzip(&whole[..200]);
    bytes.extend(gzip(&whole[200..]));
    let path = dir.join("two-members.pcap.gz");
    write(&path, &bytes);
    let (code, v) = map_one(path.to_str().unwrap());
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["packets"], 8);
}

#[test]
fn gzip_is_detected_by_magic_not_by_name() {
    let (code, v) = map_one(
        repo()
            .join("testdata/real/curl-get-gzipped.cap")
            .to_str()
            .unwrap(),
    );
    assert_eq!(code, Some(0));
    assert_eq!(v["compression"], "gzip");
    assert_eq!(v["packets"], 12);
}

#[test]
fn every_field_of_the_schema_is_present() {
    let (_, v) = map_one(&synthetic("http-le-nsec.pcap"));
    for field in [
        "path",
        "size",
        "format",
        "compression",
        "link_types",
        "snaplen",
        "first_ts",
        "first_ts_ns",
        "last_ts",
        "last_ts_ns",
        "duration_s",
        "packets",
        "bytes_captured",
        "bytes_original",
        "max_packet_size",
        "pps",
        "bps",
        "truncated_packets",
        "out_of_order",
        "delay_s",
        "error",
    ] {
        assert!(v.get(field).is_some(), "missing {field}: {v}");
    }
    assert_eq!(v["first_ts"], "2024-01-01T00:00:00.123456789Z");
    assert_eq!(v["first_ts_ns"], 1_704_067_200_123_456_789i64);
    assert_eq!(v["link_types"][0]["name"], "EN10MB");
    assert_eq!(v["format"], "pcap");
}

#[test]
fn snaplen_cuts_and_backwards_time_are_counted() {
    let (_, cut) = map_one(&synthetic("snaplen-64.pcap"));
    assert_eq!(cut["truncated_packets"], 2);
    assert_eq!(cut["max_packet_size"], 64);
    let (_, ooo) = map_one(&synthetic("out-of-order.pcap"));
    assert_eq!(ooo["out_of_order"], 2);
}

#[test]
fn a_missing_folder_is_a_usage_error() {
    let out = run(&["map", "/nonexistent/gophercap-folder"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/gophercap-folder: no such file or folder"),
        "{stderr}"
    );
}

#[test]
fn usage_mistakes_exit_2() {
    assert_eq!(run(&["map"]).status.code(), Some(2));
    assert_eq!(
        run(&["map", "--file-regexp", "(", "testdata"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run(&["map", "--bogus"]).status.code(), Some(2));
    assert_eq!(
        run(&["map", "-f", "tcp port nonsense", "testdata"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run(&["--version"]).status.code(), Some(0));
}

#[test]
fn tarball_members_are_read_in_place_with_their_paths() {
    let out = run(&[
        "-q",
        "map",
        "--format",
        "jsonl",
        &synthetic("captures.tar.gz"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let paths: Vec<&str> = lines.iter().map(|v| v["path"].as_str().unwrap()).collect();
    let archive = synthetic("captures.tar.gz");
    assert_eq!(
        paths,
        [
            format!("{archive}!day1/capture.pcap"),
            format!("{archive}!day2/capture.pcap"),
            format!("{archive}!day2/extra.pcap.gz"),
        ],
        "duplicate basenames stay apart and notes.txt is passed over"
    );
    assert_eq!(lines[2]["compression"], "gzip");
    assert!(lines.iter().all(|v| v["packets"] == 8));
}

#[test]
fn a_truncated_tarball_keeps_the_members_before_the_damage() {
    let dir = scratch("truncated-tar");
    let whole = pcap_bytes(1, 65535, Precision::Micro, false, &http_records());
    let tarball = tar_bytes(&[("a.pcap", whole.clone()), ("b.pcap", whole.clone())]);
    let path = dir.join("cut.tar");
    write(
        &path,
        &tarball[..512 + whole.len().div_ceil(512) * 512 + 512 + 100],
    );
    let out = run(&["-q", "map", "--format", "jsonl", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["packets"], 8);
    assert!(lines[0]["error"].is_null());
    assert!(lines[1]["error"]["kind"].is_string(), "{text}");
}

#[test]
fn duplicate_basenames_in_folders_stay_apart() {
    let dir = scratch("dup-basenames");
    let records = http_records();
    write(
        &dir.join("a/capture.pcap"),
        &pcap_bytes(1, 65535, Precision::Micro, false, &records),
    );
    write(
        &dir.join("b/capture.pcap"),
        &pcap_bytes(1, 65535, Precision::Micro, false, &records[..3]),
    );
    let out = run(&["-q", "map", "--format", "json", dir.to_str().unwrap()]);
    let doc = stdout_json(&out);
    let captures = doc["captures"].as_array().unwrap();
    assert_eq!(captures.len(), 2);
    assert!(
        captures[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("a/capture.pcap")
    );
    assert_eq!(captures[0]["packets"], 8);
    assert_eq!(captures[1]["packets"], 3);
}

#[test]
fn selection_by_suffix_and_regexp() {
    let dir = scratch("selection");
    let bytes = pcap_bytes(1, 65535, Precision::Micro, false, &http_records());
    for name in [
        "x/keep.pcap",
        "x/skip.pcapng.bak",
        "y/keep.pcap",
        "y/other.cap",
    ] {
        write(&dir.join(name), &bytes);
    }
    let count = |args: &[&str]| {
        let mut all = vec!["-q", "map", "--format", "jsonl"];
        all.extend_from_slice(args);
        all.push(dir.to_str().unwrap());
        String::from_utf8(run(&all).stdout).unwrap().lines().count()
    };
    assert_eq!(count(&[]), 4);
    assert_eq!(count(&["--file-suffix", ".pcap"]), 2);
    assert_eq!(count(&["--file-regexp", "/y/"]), 2);
    assert_eq!(
        count(&["--file-suffix", ".pcap", "--file-regexp", "/y/"]),
        1
    );
    let via_dir_src = run(&[
        "-q",
        "map",
        "--format",
        "jsonl",
        "--dir-src",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(
        String::from_utf8(via_dir_src.stdout)
            .unwrap()
            .lines()
            .count(),
        4
    );
}

#[cfg(unix)]
#[test]
fn symlink_loops_are_walked_once() {
    let dir = scratch("symlink-loop");
    write(
        &dir.join("sub/a.pcap"),
        &pcap_bytes(1, 65535, Precision::Micro, false, &http_records()),
    );
    std::os::unix::fs::symlink(&dir, dir.join("sub/loop")).unwrap();
    let out = run(&["-q", "map", "--format", "jsonl", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
}

#[cfg(unix)]
#[test]
fn a_big_folder_does_not_exhaust_file_descriptors() {
    let dir = scratch("many-files");
    let bytes = pcap_bytes(1, 65535, Precision::Micro, false, &http_records()[..2]);
    for i in 0..600 {
        write(&dir.join(format!("d{}/f{i:04}.pcap", i % 7)), &bytes);
    }
    let bin = env!("CARGO_BIN_EXE_gophercap");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {bin} -q map --format jsonl {}",
            dir.display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 600);
}

#[test]
fn stdin_is_read_as_dash() {
    let bytes = std::fs::read(synthetic("http-be-usec.pcap")).unwrap();
    let mut child = gophercap()
        .args(["-q", "map", "--format", "jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["path"], "-");
    assert_eq!(v["packets"], 8);
    assert_eq!(v["size"], bytes.len());
}

#[test]
fn dump_json_document_has_set_times_and_delays() {
    let dir = scratch("dump");
    let records = http_records();
    let late: Vec<Record> = records
        .iter()
        .map(|(t, d, o)| (t + 2_500_000_000, d.clone(), *o))
        .collect();
    write(
        &dir.join("in/a.pcap"),
        &pcap_bytes(1, 65535, Precision::Micro, false, &records),
    );
    write(
        &dir.join("in/b.pcap"),
        &pcap_bytes(1, 65535, Precision::Nano, false, &late),
    );
    let dump = dir.join("map.json");
    let out = run(&[
        "-q",
        "map",
        "--dump-json",
        dump.to_str().unwrap(),
        dir.join("in").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stdout.is_empty(),
        "--dump-json alone prints nothing on stdout"
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&dump).unwrap()).unwrap();
    assert_eq!(doc["first_ts_ns"], T0);
    assert_eq!(doc["last_ts_ns"], T0 + 2_500_000_000 + 7_000_000);
    assert_eq!(doc["captures"][0]["delay_s"], 0.0);
    assert_eq!(doc["captures"][1]["delay_s"], 2.5);
}

#[test]
fn update_reuses_unchanged_entries_and_rereads_changed_ones() {
    let dir = scratch("update");
    let records = http_records();
    let a = dir.join("in/a.pcap");
    let b = dir.join("in/b.pcap");
    write(&a, &pcap_bytes(1, 65535, Precision::Micro, false, &records));
    write(&b, &pcap_bytes(1, 65535, Precision::Micro, false, &records));
    let dump = dir.join("map.json");
    let input = dir.join("in");
    let args = [
        "-q",
        "map",
        "--update",
        "--dump-json",
        dump.to_str().unwrap(),
        input.to_str().unwrap(),
    ];
    assert_eq!(run(&args).status.code(), Some(0));
    // Mark the dump: an entry that is reused keeps the mark, a re-read one loses it.
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&dump).unwrap()).unwrap();
    doc["captures"][0]["packets"] = 4242.into();
    doc["captures"][1]["packets"] = 4242.into();
    std::fs::write(&dump, serde_json::to_vec(&doc).unwrap()).unwrap();
    write(
        &b,
        &pcap_bytes(1, 65535, Precision::Micro, false, &records[..5]),
    );
    assert_eq!(run(&args).status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&dump).unwrap()).unwrap();
    assert_eq!(
        doc["captures"][0]["packets"], 4242,
        "unchanged a.pcap is reused"
    );
    assert_eq!(
        doc["captures"][1]["packets"], 5,
        "rewritten b.pcap is read again"
    );
}

#[test]
fn update_writes_reused_entries_back_to_the_last_digit() {
    // Reused entries are read from the previous document: their rates must come back exactly,
    // or every --update would rewrite the document a digit apart.
    let dir = scratch("update-exact");
    let dump = dir.join("map.json");
    let args = [
        "-q",
        "map",
        "--update",
        "--dump-json",
        dump.to_str().unwrap(),
        "testdata/real",
        "testdata/synthetic",
    ];
    let out = gophercap().current_dir(repo()).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let first = std::fs::read(&dump).unwrap();
    let out = gophercap().current_dir(repo()).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        std::fs::read(&dump).unwrap() == first,
        "--update changed the document"
    );
}

#[test]
fn csv_and_table_formats() {
    let out = run(&[
        "-q",
        "map",
        "--format",
        "csv",
        &synthetic("http-le-usec.pcap"),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("path,size,format,compression,link_types,snaplen,first_ts"));
    let row = lines.next().unwrap();
    assert!(
        row.contains(",pcap,none,EN10MB,65535,2024-01-01T00:00:00.000000000Z,"),
        "{row}"
    );
    let out = run(&[
        "-q",
        "map",
        "--format",
        "table",
        &synthetic("http-le-usec.pcap"),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("path"), "{text}");
    assert!(text.contains("EN10MB"), "{text}");
}

#[test]
fn bpf_filter_applies_to_offline_files() {
    let v = |filter: &str| {
        let out = run(&[
            "-q",
            "map",
            "--format",
            "jsonl",
            "-f",
            filter,
            &synthetic("two-linktypes.pcapng"),
        ]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["packets"].clone()
    };
    // Each interface (Ethernet and raw IP) holds one 8-packet exchange: the filter is compiled
    // for each link type.
    assert_eq!(v("tcp"), 16);
    assert_eq!(v("tcp[tcpflags] & tcp-syn != 0"), 4);
    assert_eq!(v("port 40002"), 8);
    assert_eq!(v("udp"), 0);
}

#[test]
fn config_file_sets_defaults_the_command_line_overrides() {
    let dir = scratch("config");
    let config = dir.join("gophercap.toml");
    std::fs::write(
        &config,
        "quiet = true\n[map]\nformat = \"csv\"\nfile_suffix = \".pcap\"\n",
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let folder = repo().join("testdata/synthetic");
    let out = run(&["--config", cfg, "map", folder.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("path,size,"), "{text}");
    assert!(
        !text.contains(".pcapng"),
        "file_suffix from the file applies"
    );
    assert!(out.stderr.is_empty(), "quiet from the file applies");
    let out = run(&[
        "--config",
        cfg,
        "map",
        "--format",
        "jsonl",
        folder.to_str().unwrap(),
    ]);
    assert!(String::from_utf8(out.stdout).unwrap().starts_with('{'));
    std::fs::write(&config, "[map]\nformat = \"csv\"\nnope = 1\n").unwrap();
    let out = run(&["--config", cfg, "map", "testdata"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("gophercap.toml:3: unknown key \"nope\" in [map]")
    );
}

#[test]
fn json_logs_are_structured() {
    let out = run(&[
        "-v",
        "--log-format",
        "json",
        "map",
        "--format",
        "jsonl",
        &synthetic("one-packet.pcap"),
    ]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let log = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "map finished")
        .unwrap_or_else(|| panic!("no JSON log line: {stderr}"));
    assert_eq!(log["level"], "INFO");
    assert_eq!(log["packets"], 1);
    assert!(log["timestamp"].is_string());
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let dir = scratch("broken-pipe");
    let bytes = pcap_bytes(1, 65535, Precision::Micro, false, &http_records()[..1]);
    for i in 0..400 {
        write(&dir.join(format!("f{i:04}.pcap")), &bytes);
    }
    let mut child = gophercap()
        .args(["map", "--format", "jsonl", dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.to_lowercase().contains("broken pipe") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// gophercap run from the repository, so that paths in the documents are relative
/// (`testdata/...`) and the same on every machine.
fn run_in_repo(args: &[&str]) -> std::process::Output {
    gophercap()
        .current_dir(repo())
        .args(args)
        .output()
        .expect("run gophercap")
}

fn read_doc(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Map `inputs` in `count` shards into `dir/shard-K.json` and in one run into `dir/full.json`;
/// each run must exit with `code`.
fn map_sharded(dir: &std::path::Path, inputs: &[&str], count: u32, code: i32) {
    for k in 0..count {
        let dump = dir.join(format!("shard-{k}.json"));
        let spec = format!("{k}/{count}");
        let mut args = vec![
            "-q",
            "map",
            "--shard",
            &spec,
            "--dump-json",
            dump.to_str().unwrap(),
        ];
        args.extend(inputs);
        let out = run_in_repo(&args);
        assert!(
            out.status.code() == Some(code) || out.status.code() == Some(0),
            "shard {spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let full = dir.join("full.json");
    let mut args = vec!["-q", "map", "--dump-json", full.to_str().unwrap()];
    args.extend(inputs);
    assert_eq!(run_in_repo(&args).status.code(), Some(code));
}

#[test]
fn shards_merge_into_the_document_of_one_run_byte_for_byte() {
    let dir = scratch("shard-merge");
    map_sharded(&dir, &["testdata/real", "testdata/synthetic"], 3, 0);
    let shards: Vec<_> = (0..3)
        .map(|k| dir.join(format!("shard-{k}.json")))
        .collect();
    let merged = dir.join("merged.json");
    let mut args = vec!["map", "--merge", "--dump-json", merged.to_str().unwrap()];
    args.extend(shards.iter().map(|p| p.to_str().unwrap()));
    let out = run(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "--dump-json alone prints nothing");
    let full = std::fs::read(dir.join("full.json")).unwrap();
    assert!(
        std::fs::read(&merged).unwrap() == full,
        "the merged document differs from the single run's"
    );
    // A folder of shard documents, printed on stdout; the merged and single-run documents
    // beside them have no shard section and are passed over.
    let out = run(&["map", "--merge", "--format", "json", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == full, "merging the folder differs");

    // Every input and every capture is in exactly one shard; tarball members go with their
    // tarball; the shards' positions are the single run's order.
    let full = read_doc(&dir.join("full.json"));
    let docs: Vec<serde_json::Value> = shards.iter().map(|p| read_doc(p)).collect();
    let mut inputs: Vec<(u64, String)> = Vec::new();
    let mut captures: Vec<String> = Vec::new();
    for (k, doc) in docs.iter().enumerate() {
        assert_eq!(doc["shard"]["version"], 1);
        assert_eq!(doc["shard"]["index"], k);
        assert_eq!(doc["shard"]["count"], 3);
        assert_eq!(
            doc["shard"]["inputs_total"],
            full["inputs"].as_array().unwrap().len()
        );
        for input in doc["shard"]["inputs"].as_array().unwrap() {
            inputs.push((
                input["position"].as_u64().unwrap(),
                input["path"].as_str().unwrap().to_string(),
            ));
        }
        for c in doc["captures"].as_array().unwrap() {
            captures.push(c["path"].as_str().unwrap().to_string());
        }
    }
    inputs.sort();
    let expected: Vec<(u64, String)> = full["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u64, s["path"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(inputs, expected);
    let mut expected: Vec<String> = full["captures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect();
    captures.sort();
    expected.sort();
    assert_eq!(captures, expected);
    assert_eq!(full["shard"], serde_json::Value::Null);

    // Stability: these inputs are in these shards on every machine and every build.
    let shard_of = |path: &str| {
        docs.iter()
            .position(|d| {
                d["shard"]["inputs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["path"] == path)
            })
            .unwrap()
    };
    assert_eq!(shard_of("testdata/real/curl-get.pcap"), 0);
    assert_eq!(shard_of("testdata/synthetic/one-packet.pcap"), 0);
    assert_eq!(shard_of("testdata/synthetic/captures.tar.gz"), 2);
    let members: Vec<&serde_json::Value> = docs[2]["captures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["path"]
                .as_str()
                .unwrap()
                .starts_with("testdata/synthetic/captures.tar.gz!")
        })
        .collect();
    assert_eq!(members.len(), 3, "the tarball's members stay together");
}

#[test]
fn shards_with_damage_and_inputs_named_twice_merge_too() {
    let dir = scratch("shard-damaged");
    // Damaged captures: a shard that holds one exits 1, the single run too; the merge reads
    // every document and exits 0. A file named again after its folder is an input twice.
    let inputs = [
        "testdata/synthetic",
        "testdata/damaged",
        "testdata/real/two-interfaces.pcapng",
        "testdata/real",
    ];
    map_sharded(&dir, &inputs, 2, 1);
    let out = run(&[
        "-q",
        "map",
        "--merge",
        "--format",
        "json",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == std::fs::read(dir.join("full.json")).unwrap());
}

#[test]
fn shard_usage_mistakes_exit_2() {
    for bad in ["3/3", "0/0", "1", "-1/3", "$(JOB_COMPLETION_INDEX)/3"] {
        let out = run(&["map", "--shard", bad, "testdata/synthetic"]);
        assert_eq!(out.status.code(), Some(2), "--shard {bad}");
    }
    let out = run(&["map", "--shard", "0/2", "-"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stdin"));
    assert_eq!(
        run(&["map", "--merge", "--shard", "0/2", "x.json"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run(&["map", "--merge"]).status.code(), Some(2));
}

/// A document written as gophercap writes it (what --merge reads).
fn write_doc(path: &std::path::Path, catalog: &gophercap::catalog::Catalog) {
    let mut text = Vec::new();
    gophercap::output::json::write_pretty(&mut text, catalog, 0).unwrap();
    text.push(b'\n');
    std::fs::write(path, text).unwrap();
}

#[test]
fn merge_refuses_documents_that_do_not_make_one_run() {
    use gophercap::catalog::Catalog;
    let dir = scratch("shard-refused");
    map_sharded(&dir, &["testdata/synthetic"], 3, 0);
    let shard = |k: u32| dir.join(format!("shard-{k}.json"));
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let refuse = |files: &[String], needle: &str| {
        let mut args = vec!["-q", "map", "--merge", "--format", "json"];
        args.extend(files.iter().map(String::as_str));
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{files:?}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing is written");
        assert!(stderr.contains(needle), "{files:?}: {stderr}");
    };
    let (s0, s1, s2) = (path(&shard(0)), path(&shard(1)), path(&shard(2)));

    refuse(&[s0.clone(), s1.clone()], "shard 2/3 missing");
    refuse(
        &[s0.clone(), s1.clone(), s1.clone(), s2.clone()],
        &format!("{s1} and {s1} are both shard 1/3"),
    );
    let missing = path(&dir.join("nowhere.json"));
    refuse(
        &[s0.clone(), missing.clone()],
        &format!("{missing}: no such file"),
    );

    let garbage = dir.join("bad/garbage.json");
    write(&garbage, b"not json at all");
    refuse(
        &[s0.clone(), path(&garbage)],
        &format!("{}: not a gophercap map document", path(&garbage)),
    );
    // In a folder too: only map documents without a shard section are passed over.
    refuse(
        &[path(&dir.join("bad"))],
        "garbage.json: not a gophercap map document",
    );

    // The single run's document, named: not a shard.
    let full = path(&dir.join("full.json"));
    refuse(
        std::slice::from_ref(&full),
        &format!("{full}: not a shard document"),
    );

    // Another format version.
    let mut doc = read_doc(&shard(1));
    doc["shard"]["version"] = 2.into();
    let v2 = dir.join("other/v2.json");
    write(&v2, &serde_json::to_vec_pretty(&doc).unwrap());
    refuse(
        &[s0.clone(), path(&v2), s2.clone()],
        &format!("{}: shard document format version 2", path(&v2)),
    );

    // Edited (here: written compact): not what this gophercap writes.
    let compact = dir.join("other/compact.json");
    let doc = read_doc(&shard(1));
    write(&compact, &serde_json::to_vec(&doc).unwrap());
    refuse(
        &[s0.clone(), path(&compact), s2.clone()],
        &format!(
            "{}: not a shard document as this gophercap writes it",
            path(&compact)
        ),
    );

    // The same input in two shards.
    let zero: Catalog = serde_json::from_slice(&std::fs::read(shard(0)).unwrap()).unwrap();
    let mut one: Catalog = serde_json::from_slice(&std::fs::read(shard(1)).unwrap()).unwrap();
    let taken = zero.shard.as_ref().unwrap().inputs[0].clone();
    assert_eq!(taken.captures, 1);
    one.captures
        .extend(zero.captures.iter().find(|c| c.path == taken.path).cloned());
    one.inputs
        .extend(zero.inputs.iter().find(|s| s.path == taken.path).cloned());
    one.shard.as_mut().unwrap().inputs.push(taken.clone());
    let twice = dir.join("other/twice.json");
    write_doc(&twice, &one);
    refuse(
        &[s0.clone(), path(&twice), s2.clone()],
        &format!("{} is in both {s0} and {}", taken.path, path(&twice)),
    );

    // Shards of two runs over different inputs.
    let other = scratch("shard-refused-other");
    map_sharded(&other, &["testdata/real"], 3, 0);
    refuse(
        &[s0.clone(), s1.clone(), path(&other.join("shard-2.json"))],
        "not the same run",
    );
}
