//! Live capture through libpcap on the loopback interface: packets this test sends to itself
//! arrive with their bytes and a kernel-side filter; a missing interface names the real ones.
//! Needs root or CAP_NET_RAW (CI runs as root); elsewhere it says so and checks nothing else.

#![cfg(feature = "live")]

use gophercap::source::Source;
use gophercap::source::live::{LiveOptions, LiveSource, list_interfaces};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn loopback() -> String {
    list_interfaces()
        .unwrap()
        .into_iter()
        .find(|i| i.loopback)
        .map(|i| i.name)
        .unwrap_or_else(|| "lo".into())
}

fn can_capture() -> bool {
    let options = LiveOptions {
        interface: loopback(),
        ..LiveOptions::default()
    };
    match LiveSource::open(&options) {
        Ok(_) => true,
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains("CAP_NET_RAW"),
                "a permission error must say what to grant: {text}"
            );
            eprintln!("skipping live capture checks: {text}");
            false
        }
    }
}

#[test]
fn captures_loopback_udp_through_a_kernel_filter() {
    if !can_capture() {
        return;
    }
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let options = LiveOptions {
        interface: loopback(),
        immediate: true,
        timeout_ms: 50,
        ..LiveOptions::default()
    };
    let mut source = LiveSource::open(&options).unwrap();
    source.set_filter(&format!("udp dst port {port}")).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sends = 5;
    for i in 0..sends {
        sender
            .send_to(
                format!("gophercap-live-{i}").as_bytes(),
                ("127.0.0.1", port),
            )
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while seen.len() < sends && Instant::now() < deadline {
        if source.advance().unwrap() {
            let p = source.packet().unwrap();
            seen.push(
                String::from_utf8_lossy(&p.data[p.data.len().saturating_sub(16)..]).into_owned(),
            );
            let now_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as i64;
            assert!(
                (now_ns - p.ts_ns).abs() < 60_000_000_000,
                "time is wall clock in ns"
            );
        }
    }
    let want: Vec<String> = (0..sends).map(|i| format!("gophercap-live-{i}")).collect();
    assert_eq!(seen, want);
    let (received, _, _) = source.stats().unwrap();
    assert!(received as usize >= sends);
}

#[test]
fn a_missing_interface_lists_the_available_ones() {
    let options = LiveOptions {
        interface: "gcnosuch0".into(),
        ..LiveOptions::default()
    };
    let Err(e) = LiveSource::open(&options) else {
        panic!("opening a missing interface must fail");
    };
    let text = e.to_string();
    if text.contains("CAP_NET_RAW") {
        return;
    }
    assert!(
        text.starts_with("gcnosuch0: no such interface; available:"),
        "named once: {text}"
    );
    assert!(text.contains(&loopback()), "{text}");
    assert!(
        !text.contains("byte offset"),
        "a live capture has no offsets: {text}"
    );
}

#[test]
fn list_interfaces_prints_the_loopback() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gophercap"))
        .args(["list-interfaces", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lo: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["loopback"] == true)
        .expect("a loopback interface");
    assert!(
        lo["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "127.0.0.1"),
        "{lo}"
    );
}
