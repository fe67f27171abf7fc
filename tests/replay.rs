//! `gophercap replay`: the scheduler checked deterministically through `--out-pcap` (gaps
//! across overlapping files, speeds, scaling, loops, time bounds, BPF, pacing), and a real
//! interface: two network namespaces joined by a veth pair, replay into one end, tcpdump on the
//! other, every packet compared byte for byte.

mod common;

use common::*;
use gophercap::sink::capture::Precision;
use gophercap::source::input::open_path;
use gophercap::source::{OpenedInput, Source};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Every packet of a capture: (time, bytes).
fn read_all(path: &Path) -> Vec<(i64, Vec<u8>)> {
    let OpenedInput::Capture(mut r) = open_path(path).unwrap() else {
        panic!("not a capture");
    };
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        out.push((p.ts_ns, p.data.to_vec()));
    }
    out
}

/// Frames of one HTTP exchange on `port`, at `start` spaced by `step` nanoseconds.
fn exchange(port: u16, start: i64, step: i64) -> Vec<Record> {
    timed(
        http_exchange_ipv4(port)
            .into_iter()
            .map(|p| ethernet(&[], ETHERTYPE_IPV4, &p))
            .collect(),
        start,
        step,
    )
}

/// Two overlapping files: a every 3 ms from T0, b every 2 ms from T0 + 1 ms.
fn overlapping(dir: &Path) -> (PathBuf, PathBuf, Vec<(i64, Vec<u8>)>) {
    let a = exchange(40201, T0, 3_000_000);
    let b = exchange(40202, T0 + 1_000_000, 2_000_000);
    let pa = dir.join("in/a.pcap");
    let pb = dir.join("in/b.pcap");
    write(&pa, &pcap_bytes(1, 65535, Precision::Nano, false, &a));
    write(&pb, &pcap_bytes(1, 65535, Precision::Micro, true, &b));
    let mut all: Vec<(i64, Vec<u8>)> = a.into_iter().chain(b).map(|(t, d, _)| (t, d)).collect();
    all.sort_by_key(|(t, _)| *t);
    (pa, pb, all)
}

fn replay(args: &[&str]) -> std::process::Output {
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    let out = run(&all);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    out
}

fn offsets(packets: &[(i64, Vec<u8>)]) -> Vec<i64> {
    packets.iter().map(|(t, _)| t - packets[0].0).collect()
}

#[test]
fn gaps_are_kept_across_overlapping_files() {
    let dir = scratch("replay-gaps");
    let (_, _, want) = overlapping(&dir);
    let out = dir.join("out.pcap");
    replay(&[
        "--out-pcap",
        out.to_str().unwrap(),
        dir.join("in").to_str().unwrap(),
    ]);
    let got = read_all(&out);
    assert_eq!(got, want, "merged in time order, with the original times");
}

#[test]
fn speed_scales_every_gap() {
    let dir = scratch("replay-speed");
    let (_, _, want) = overlapping(&dir);
    for (speed, factor) in [("2.0", 0.5), ("0.5", 2.0)] {
        let out = dir.join(format!("out-{speed}.pcap"));
        replay(&[
            "--out-pcap",
            out.to_str().unwrap(),
            "--time-modifier",
            speed,
            dir.join("in").to_str().unwrap(),
        ]);
        let got = read_all(&out);
        let expected: Vec<i64> = offsets(&want)
            .iter()
            .map(|o| (*o as f64 * factor) as i64)
            .collect();
        assert_eq!(offsets(&got), expected, "speed {speed}");
        assert_eq!(
            got[0].0, T0,
            "the schedule starts at the set's first packet"
        );
    }
}

#[test]
fn time_scaling_fits_the_set_into_a_duration() {
    let dir = scratch("replay-scale");
    let (_, _, want) = overlapping(&dir);
    let out = dir.join("out.pcap");
    replay(&[
        "--out-pcap",
        out.to_str().unwrap(),
        "--time-scale-enabled",
        "--time-scale-duration",
        "2s",
        dir.join("in").to_str().unwrap(),
    ]);
    let got = offsets(&read_all(&out));
    let span = *offsets(&want).last().unwrap();
    assert!((got.last().unwrap() - 2_000_000_000).abs() <= 1, "{got:?}");
    let expected_second = (offsets(&want)[1] as f64 * 2e9 / span as f64) as i64;
    assert!((got[1] - expected_second).abs() <= 1);
}

#[test]
fn loops_play_the_set_back_to_back() {
    let dir = scratch("replay-loops");
    let (_, _, want) = overlapping(&dir);
    let out = dir.join("out.pcap");
    replay(&[
        "--out-pcap",
        out.to_str().unwrap(),
        "--loop-count",
        "3",
        dir.join("in").to_str().unwrap(),
    ]);
    let got = read_all(&out);
    assert_eq!(got.len(), want.len() * 3);
    let span = *offsets(&want).last().unwrap();
    for (i, (t, data)) in got.iter().enumerate() {
        let (k, j) = (i / want.len(), i % want.len());
        assert_eq!(*t, want[j].0 + k as i64 * span, "packet {i}");
        assert_eq!(data, &want[j].1);
    }
}

#[test]
fn time_bounds_cut_files_at_the_packet() {
    let dir = scratch("replay-bounds");
    let (_, _, want) = overlapping(&dir);
    let out = dir.join("out.pcap");
    // From 4 ms to 12 ms after T0 (2024-01-01 00:00:00 UTC): both files are cut mid-way.
    replay(&[
        "--out-pcap",
        out.to_str().unwrap(),
        "--time-from",
        "2024-01-01 00:00:00.004",
        "--time-to",
        "2024-01-01T00:00:00.012Z",
        dir.join("in").to_str().unwrap(),
    ]);
    let got = read_all(&out);
    let expected: Vec<&(i64, Vec<u8>)> = want
        .iter()
        .filter(|(t, _)| (T0 + 4_000_000..=T0 + 12_000_000).contains(t))
        .collect();
    assert!(expected.len() >= 4 && expected.len() < want.len());
    assert_eq!(got.len(), expected.len());
    for ((t, d), (wt, wd)) in got.iter().zip(expected) {
        assert_eq!((t - got[0].0, d), (wt - expected_first(&want), wd));
    }
}

fn expected_first(want: &[(i64, Vec<u8>)]) -> i64 {
    want.iter()
        .map(|(t, _)| *t)
        .find(|t| *t >= T0 + 4_000_000)
        .unwrap()
}

#[test]
fn the_bpf_filter_really_filters() {
    let dir = scratch("replay-bpf");
    let (_, _, want) = overlapping(&dir);
    let out = dir.join("out.pcap");
    let o = replay(&[
        "--out-pcap",
        out.to_str().unwrap(),
        "--out-bpf",
        "tcp[tcpflags] & tcp-syn != 0 and port 40202",
        dir.join("in").to_str().unwrap(),
    ]);
    let got = read_all(&out);
    assert_eq!(got.len(), 2, "the SYN and SYN-ACK of one connection");
    assert!(want.iter().any(|w| w.1 == got[0].1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("filter 14"),
        "{o:?}"
    );
}

#[test]
fn wait_disable_starts_every_file_at_once() {
    let dir = scratch("replay-wait-disable");
    let a = exchange(40203, T0, 1_000_000);
    let b = exchange(40204, T0 + 60_000_000_000, 1_000_000);
    write(
        &dir.join("in/a.pcap"),
        &pcap_bytes(1, 65535, Precision::Nano, false, &a),
    );
    write(
        &dir.join("in/b.pcap"),
        &pcap_bytes(1, 65535, Precision::Nano, false, &b),
    );
    let out = dir.join("out.pcap");
    replay(&[
        "--out-pcap",
        out.to_str().unwrap(),
        "--wait-disable",
        dir.join("in").to_str().unwrap(),
    ]);
    let got = offsets(&read_all(&out));
    assert_eq!(got.len(), 16);
    assert_eq!(
        *got.last().unwrap(),
        7_000_000,
        "b no longer waits a minute"
    );
}

#[test]
fn pps_and_mbps_pace_by_count_and_size() {
    let dir = scratch("replay-pace");
    let (_, _, want) = overlapping(&dir);
    let out = dir.join("pps.pcap");
    replay(&[
        "--out-pcap",
        out.to_str().unwrap(),
        "--pps",
        "1000",
        dir.join("in").to_str().unwrap(),
    ]);
    let expected: Vec<i64> = (0..want.len() as i64).map(|i| i * 1_000_000).collect();
    assert_eq!(offsets(&read_all(&out)), expected);
    let out = dir.join("mbps.pcap");
    replay(&[
        "--out-pcap",
        out.to_str().unwrap(),
        "--mbps",
        "1",
        dir.join("in").to_str().unwrap(),
    ]);
    let got = offsets(&read_all(&out));
    let first_len = want[0].1.len() as i64;
    assert_eq!(
        got[1],
        first_len * 8 * 1_000,
        "a frame of N bytes takes 8N µs at 1 Mbit/s"
    );
}

#[test]
fn replays_the_catalog_that_map_dumped() {
    let dir = scratch("replay-catalog");
    let (_, _, want) = overlapping(&dir);
    let catalog = dir.join("map.json");
    let o = run(&[
        "-q",
        "map",
        "--dump-json",
        catalog.to_str().unwrap(),
        dir.join("in").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = dir.join("out.pcap");
    replay(&[
        "--out-pcap",
        out.to_str().unwrap(),
        "--dump-json",
        catalog.to_str().unwrap(),
    ]);
    assert_eq!(read_all(&out), want);
}

#[test]
fn packets_over_the_mtu_are_skipped_and_counted() {
    let dir = scratch("replay-mtu");
    let (_, _, want) = overlapping(&dir);
    let out = dir.join("out.pcap");
    // The HTTP request and response frames carry data; at an MTU of 60 they no longer fit.
    let o = replay(&[
        "--out-pcap",
        out.to_str().unwrap(),
        "--skip-mtu",
        "60",
        dir.join("in").to_str().unwrap(),
    ]);
    let big = want.iter().filter(|(_, d)| d.len() - 14 > 60).count();
    assert_eq!(big, 4);
    assert_eq!(read_all(&out).len(), want.len() - big);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("mtu {big}")),
        "{o:?}"
    );
}

#[test]
fn tarball_members_are_merged_like_files() {
    let dir = scratch("replay-tar");
    let (pa, pb, want) = overlapping(&dir);
    let tarball = tar_bytes(&[
        ("x/a.pcap", std::fs::read(&pa).unwrap()),
        ("y/b.pcap.gz", gzip(&std::fs::read(&pb).unwrap())),
        ("notes.txt", b"not a capture".to_vec()),
    ]);
    let archive = dir.join("set.tar.gz");
    write(&archive, &gzip(&tarball));
    let out = dir.join("out.pcap");
    replay(&[
        "--out-pcap",
        out.to_str().unwrap(),
        archive.to_str().unwrap(),
    ]);
    assert_eq!(read_all(&out), want, "a tarball given directly");
    let catalog = dir.join("map.json");
    let o = run(&[
        "-q",
        "map",
        "--dump-json",
        catalog.to_str().unwrap(),
        archive.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = dir.join("from-catalog.pcap");
    replay(&[
        "--out-pcap",
        out.to_str().unwrap(),
        "--dump-json",
        catalog.to_str().unwrap(),
    ]);
    assert_eq!(read_all(&out), want, "tar members named in a catalog");
    let out = dir.join("one-member.pcap");
    replay(&[
        "--out-pcap",
        out.to_str().unwrap(),
        "--file-regexp",
        "^y/",
        archive.to_str().unwrap(),
    ]);
    assert_eq!(read_all(&out).len(), 8, "--file-regexp selects members");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let file = repo().join("testdata/synthetic/http-le-usec.pcap");
    let f = file.to_str().unwrap();
    for args in [
        vec![
            "replay",
            "--out-pcap",
            "/tmp/x.pcap",
            "--time-from",
            "yesterday",
            f,
        ],
        vec![
            "replay",
            "--out-pcap",
            "/tmp/x.pcap",
            "--time-modifier",
            "0",
            f,
        ],
        vec![
            "replay",
            "--out-pcap",
            "/tmp/x.pcap",
            "--time-scale-enabled",
            "--time-scale-duration",
            "soon",
            f,
        ],
        vec![
            "replay",
            "--out-pcap",
            "/tmp/x.pcap",
            "--out-bpf",
            "tcp port nonsense",
            f,
        ],
        vec!["replay", "--out-pcap", "/tmp/x.pcap"],
        vec!["replay", f],
    ] {
        assert_eq!(run(&args).status.code(), Some(2), "{args:?}");
    }
}

/// Runs a command and panics with its output on failure.
fn sh(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair, removed again on drop.
struct VethPair {
    a: String,
    b: String,
}

impl VethPair {
    fn new(tag: &str) -> Option<Self> {
        let root = Command::new("id").arg("-u").output().ok()?;
        let tools = ["ip", "tcpdump"].iter().all(|t| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {t}"))
                .output()
                .is_ok_and(|o| o.status.success())
        });
        if String::from_utf8_lossy(&root.stdout).trim() != "0" || !tools {
            return None;
        }
        let pair = VethPair {
            a: format!("gc{tag}a"),
            b: format!("gc{tag}b"),
        };
        let _ = Command::new("ip").args(["netns", "del", &pair.a]).output();
        let _ = Command::new("ip").args(["netns", "del", &pair.b]).output();
        sh(&format!(
            "ip netns add {a} && ip netns add {b}",
            a = pair.a,
            b = pair.b
        ));
        sh(&format!(
            "ip link add v{a} netns {a} type veth peer name v{b} netns {b} && \
             ip -n {a} link set v{a} up && ip -n {b} link set v{b} up && \
             ip -n {a} addr add 10.99.7.1/24 dev v{a} && ip -n {b} addr add 10.99.7.2/24 dev v{b}",
            a = pair.a,
            b = pair.b
        ));
        for ns in [&pair.a, &pair.b] {
            let _ = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv6.conf.all.disable_ipv6=1",
                ])
                .output();
        }
        Some(pair)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).output();
    }
}

#[test]
fn replays_onto_a_veth_pair_byte_for_byte() {
    veth_replay("rp", &[]);
}

/// At top speed frames go out in batches (one sendmmsg per batch on Linux).
#[test]
fn top_speed_batches_arrive_byte_for_byte() {
    veth_replay("rt", &["--topspeed", "--loop-count", "5"]);
}

fn veth_replay(tag: &str, extra: &[&str]) {
    let Some(pair) = VethPair::new(tag) else {
        eprintln!("skipping: needs root, ip and tcpdump (CI has them)");
        return;
    };
    let dir = scratch(&format!("replay-veth-{tag}"));
    let loops = extra
        .iter()
        .position(|a| *a == "--loop-count")
        .map_or(1, |i| extra[i + 1].parse::<usize>().unwrap());
    let (_, _, once) = overlapping(&dir);
    let want: Vec<(i64, Vec<u8>)> = (0..loops).flat_map(|_| once.clone()).collect();
    let captured = dir.join("captured.pcap");
    let mut tcpdump = Command::new("timeout")
        .args(["20", "ip", "netns", "exec", &pair.b, "tcpdump", "-i"])
        .arg(format!("v{}", pair.b))
        .args(["-U", "-n", "-s", "0", "--time-stamp-precision=nano", "-c"])
        .arg(want.len().to_string())
        .arg("-w")
        .arg(&captured)
        .arg("tcp and net 10.99.0.0/24")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump prints "listening on" once its filter is in place.
    let mut ready = String::new();
    let mut err = std::io::BufReader::new(tcpdump.stderr.take().unwrap());
    std::io::BufRead::read_line(&mut err, &mut ready).unwrap();
    assert!(ready.contains("listening"), "{ready}");
    let bin = env!("CARGO_BIN_EXE_gophercap");
    let out = Command::new("ip")
        .args(["netns", "exec", &pair.a, bin, "replay", "--out-interface"])
        .arg(format!("v{}", pair.a))
        .args(extra)
        .arg(dir.join("in"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{} packets", want.len())),
        "{stderr}"
    );
    if extra.is_empty() {
        assert!(stderr.contains("lateness p50"), "{stderr}");
    }
    let status = tcpdump.wait().unwrap();
    assert!(status.success(), "tcpdump did not see every packet in time");
    let got = read_all(&captured);
    assert_eq!(got.len(), want.len());
    for (i, ((_, g), (_, w))) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "packet {i} changed on the way");
    }
    // Timed, the gaps survive the wire within a few milliseconds (the bench measures them).
    if extra.is_empty() {
        for (g, w) in offsets(&got).iter().zip(offsets(&want)) {
            assert!(
                (g - w).abs() < Duration::from_millis(5).as_nanos() as i64,
                "{g} vs {w}"
            );
        }
    }
}

#[test]
fn sigint_stops_at_once_and_still_prints_the_summary() {
    let Some(pair) = VethPair::new("ri") else {
        eprintln!("skipping: needs root, ip and tcpdump (CI has them)");
        return;
    };
    let dir = scratch("replay-sigint");
    overlapping(&dir);
    let bin = env!("CARGO_BIN_EXE_gophercap");
    // At a thousandth of the speed the 15 ms set would take 15 s.
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.a,
            bin,
            "replay",
            "--time-modifier",
            "0.001",
            "--out-interface",
        ])
        .arg(format!("v{}", pair.a))
        .arg(dir.join("in"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let started = std::time::Instant::now();
    sh(&format!("kill -INT {}", child.id()));
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "SIGINT must stop the replay at once"
    );
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replay (interrupted):"), "{stderr}");
    assert!(
        !stderr.contains(" 16 packets"),
        "it stopped before the end: {stderr}"
    );
}

#[test]
fn a_missing_interface_lists_the_real_ones() {
    let file = repo().join("testdata/synthetic/http-le-usec.pcap");
    let out = run(&[
        "replay",
        "--out-interface",
        "gcnosuch0",
        file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("CAP_NET_RAW") {
        return;
    }
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no such interface; available:"), "{stderr}");
}
