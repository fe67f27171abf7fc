//! `map` against capinfos: for every capture in testdata/ and ../shared/corpus that capinfos
//! reads, the packet count, earliest and latest time (to the nanosecond) and the sum of
//! original lengths must be equal. Where capinfos and libpcap disagree on a malformed file,
//! gophercap takes libpcap's side and must report the damage.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::process::Command;

/// Files capinfos reads but libpcap refuses (../shared/corpus/README.md): we report an error.
const LIBPCAP_SIDE: [&str; 11] = [
    "libpcap/pcap-empty-file.pcap",
    "libpcap/pcap-invalid-version-2.pcap",
    "libpcap/pcapng-truncated-shb.pcapng",
    "libpcap/pcapng-shb-len-insane.pcapng",
    "libpcap/pcapng-idb-tsresol-badlen.pcapng",
    "libpcap/pcapng-idb-tsresol-dup.pcapng",
    "libpcap/pcapng-idb-endofopt-badlen.pcapng",
    "libpcap/pcapng-idb-tsresol-dec-high.pcapng",
    "libpcap/pcapng-idb-tsresol-bin-high.pcapng",
    "libpcap/pcapng-idb-tsoffset-badlen.pcapng",
    "libpcap/pcapng-idb-tsoffset-dup.pcapng",
];

/// capinfos 4.0 prints a wrapped start time for this file (year 586524, from an interface
/// whose stamps lie beyond 64-bit nanoseconds and which we treat as unknown); its end time is
/// right, and its start is checked against tshark's earliest frame time.
const CAPINFOS_START_BUG: &str = "pcapplusplus/pcapng-example.pcapng";

/// A µs field of one second or more: tcpdump prints "(invalid us)", capinfos normalises it
/// into a time; we leave such packets out of the time range, so the range is the valid packet's.
const INVALID_MICROSECONDS: &str = "tcpdump/timestamp_invalid_micro.pcap";

/// "1362692526.869344" → nanoseconds, exactly, with the number of fraction digits printed.
fn seconds_to_ns(text: &str) -> Option<(i64, usize)> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = frac.len();
    let mut frac = frac.to_string();
    if digits > 9 {
        return None;
    }
    while frac.len() < 9 {
        frac.push('0');
    }
    let ns = secs
        .parse::<i64>()
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(frac.parse::<i64>().ok()?)?;
    Some((ns, digits))
}

/// Our nanoseconds cut to the digits the other tool printed (a 2^-8 s clock prints as .19).
fn to_printed_precision(ns: i64, digits: usize) -> i64 {
    let unit = 10i64.pow(9 - digits as u32);
    ns.div_euclid(unit) * unit
}

struct Capinfos {
    rc: i32,
    packets: Option<u64>,
    bytes: Option<u64>,
    first_ns: Option<(i64, usize)>,
    last_ns: Option<(i64, usize)>,
}

fn capinfos(path: &str) -> Capinfos {
    let out = Command::new("capinfos")
        .args(["-T", "-r", "-M", "-c", "-d", "-a", "-e", "-S", path])
        .output()
        .expect("capinfos is installed (tshark / wireshark-common)");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.lines().next().unwrap_or("").split('\t').collect();
    let get = |i: usize| {
        fields
            .get(i)
            .copied()
            .filter(|f| !f.is_empty() && *f != "n/a")
    };
    Capinfos {
        rc: out.status.code().unwrap_or(-1),
        packets: get(1).and_then(|f| f.parse().ok()),
        bytes: get(2).and_then(|f| f.parse().ok()),
        first_ns: get(3).and_then(seconds_to_ns),
        last_ns: get(4).and_then(seconds_to_ns),
    }
}

fn tshark_earliest(path: &str) -> (i64, usize) {
    let out = Command::new("tshark")
        .args(["-r", path, "-T", "fields", "-e", "frame.time_epoch"])
        .output()
        .expect("tshark is installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| seconds_to_ns(l.trim()))
        .min()
        .expect("tshark printed frame times")
}

fn mapped(dir: &std::path::Path) -> BTreeMap<String, serde_json::Value> {
    let out = run(&["-q", "map", "--format", "jsonl", dir.to_str().unwrap()]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["path"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

fn check_folder(dir: &std::path::Path) -> usize {
    let mut compared = 0;
    let mut failures = Vec::new();
    for (path, ours) in mapped(dir) {
        if path.contains('!') {
            continue;
        }
        let relative = path
            .strip_prefix(&format!("{}/", dir.display()))
            .unwrap_or(&path)
            .to_string();
        let theirs = capinfos(&path);
        let error = &ours["error"];
        if LIBPCAP_SIDE.contains(&relative.as_str()) {
            continue;
        }
        if theirs.rc == 2 {
            if error.is_null() {
                failures.push(format!("{relative}: capinfos fails, we report no damage"));
            }
            continue;
        }
        if theirs.rc == 1 && error.is_null() {
            failures.push(format!(
                "{relative}: capinfos reports it cut short, we do not"
            ));
        }
        if theirs.rc == 0 && !error.is_null() {
            failures.push(format!(
                "{relative}: we report damage {error} that capinfos does not"
            ));
        }
        let first = match relative.as_str() {
            CAPINFOS_START_BUG => Some(tshark_earliest(&path)),
            _ => theirs.first_ns,
        };
        let last = match relative.as_str() {
            INVALID_MICROSECONDS => theirs.first_ns,
            _ => theirs.last_ns,
        };
        // capinfos prints n/a for the times of a file with packets that carry none (pcapng
        // simple packet blocks, invalid stamps): then only the counts are compared.
        let printed = |ours: Option<i64>, theirs: Option<(i64, usize)>| {
            theirs.map(|(_, digits)| ours.map(|o| to_printed_precision(o, digits)))
        };
        let ours_tuple = (
            ours["packets"].as_u64(),
            printed(ours["first_ts_ns"].as_i64(), first),
            printed(ours["last_ts_ns"].as_i64(), last),
            ours["bytes_original"].as_u64(),
        );
        let theirs_tuple = (
            theirs.packets,
            first.map(|(ns, _)| Some(ns)),
            last.map(|(ns, _)| Some(ns)),
            theirs.bytes,
        );
        if ours_tuple != theirs_tuple {
            failures.push(format!(
                "{relative}: ours (packets, first, last, bytes) {ours_tuple:?} != capinfos {theirs_tuple:?}"
            ));
        }
        compared += 1;
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    compared
}

#[test]
fn map_agrees_with_capinfos_on_testdata() {
    let compared = check_folder(&repo().join("testdata"));
    assert!(compared >= 25, "only {compared} captures compared");
}

/// Named one by one, the files where we take libpcap's side are reported as damaged.
#[test]
fn files_libpcap_refuses_are_reported_as_damaged() {
    let Some(corpus) = corpus() else {
        panic!("../shared/corpus is missing: the oracle test needs it beside the repository");
    };
    for name in LIBPCAP_SIDE {
        let path = corpus.join(name);
        let out = run(&["-q", "map", "--format", "jsonl", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
        let entry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(entry["error"]["kind"].is_string(), "{name}: {entry}");
    }
}

#[test]
fn map_agrees_with_capinfos_on_the_corpus() {
    let Some(corpus) = corpus() else {
        panic!("../shared/corpus is missing: the oracle test needs it beside the repository");
    };
    let compared = check_folder(&corpus);
    println!("compared {compared} corpus captures with capinfos");
    assert!(compared >= 175, "only {compared} captures compared");
}
