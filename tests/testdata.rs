//! The synthetic captures in `testdata/synthetic/` (and the deliberately damaged ones in
//! `testdata/damaged/`) are written by these builders. This test
//! rebuilds every one and fails when a committed file differs; `GOPHERCAP_BLESS=1 cargo test
//! --test testdata` rewrites them.

mod common;

use common::*;
use gophercap::sink::capture::Precision;

const ETHERNET: u32 = 1;

fn synthetic() -> Vec<(&'static str, Vec<u8>)> {
    let http = timed(
        http_exchange_ipv4(40001)
            .into_iter()
            .map(|p| ethernet(&[], ETHERTYPE_IPV4, &p))
            .collect(),
        T0,
        1_250_000,
    );
    let mut out = Vec::new();
    out.push((
        "http-le-usec.pcap",
        pcap_bytes(ETHERNET, 65535, Precision::Micro, false, &http),
    ));
    out.push((
        "http-be-usec.pcap",
        pcap_bytes(ETHERNET, 65535, Precision::Micro, true, &http),
    ));
    let nano = timed(
        http.iter().map(|r| r.1.clone()).collect(),
        T0 + 123_456_789,
        1_000_001,
    );
    out.push((
        "http-le-nsec.pcap",
        pcap_bytes(ETHERNET, 65535, Precision::Nano, false, &nano),
    ));
    out.push((
        "http-be-nsec.pcap",
        pcap_bytes(ETHERNET, 65535, Precision::Nano, true, &nano),
    ));

    // Two interfaces of different link types and resolutions, interleaved and out of order.
    let raw: Vec<Vec<u8>> = http_exchange_ipv4(40002);
    let mut ng = Vec::new();
    for (i, (eth, ip)) in http.iter().zip(raw).enumerate() {
        ng.push((0, eth.clone()));
        let ts = T0 + 500_000 + i as i64 * 1_100_000 + 7;
        let len = ip.len() as u32;
        ng.push((1, (ts, ip, len)));
    }
    ng.swap(3, 4);
    out.push((
        "two-linktypes.pcapng",
        pcapng_bytes(&[(1, 6), (101, 9)], &ng),
    ));

    // VLAN, QinQ, Linux cooked v1 and v2.
    let frames = http_exchange_ipv4(40003);
    let vlan: Vec<Vec<u8>> = frames
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i % 2 == 0 {
                ethernet(&[(ETHERTYPE_VLAN, 99)], ETHERTYPE_IPV4, p)
            } else {
                ethernet(
                    &[(ETHERTYPE_QINQ, 100), (ETHERTYPE_VLAN, 99)],
                    ETHERTYPE_IPV4,
                    p,
                )
            }
        })
        .collect();
    out.push((
        "vlan-qinq.pcap",
        pcap_bytes(
            ETHERNET,
            65535,
            Precision::Micro,
            false,
            &timed(vlan, T0, 1_000),
        ),
    ));
    let cooked: Vec<Vec<u8>> = frames.iter().map(|p| sll(ETHERTYPE_IPV4, p)).collect();
    out.push((
        "sll.pcap",
        pcap_bytes(
            113,
            65535,
            Precision::Micro,
            false,
            &timed(cooked, T0, 1_000),
        ),
    ));
    let cooked2: Vec<Vec<u8>> = frames.iter().map(|p| sll2(ETHERTYPE_IPV4, p)).collect();
    out.push((
        "sll2.pcap",
        pcap_bytes(
            276,
            65535,
            Precision::Micro,
            false,
            &timed(cooked2, T0, 1_000),
        ),
    ));

    // IPv6 with hop-by-hop, routing, destination options and a fragment header (atomic).
    let (c6, s6) = (
        [0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
    );
    let seg = tcp(&c6, &s6, (40004, 80), 1, 0, SYN, b"");
    let ext = vec![
        (0u8, vec![1, 4, 0, 0, 0, 0]),
        (43u8, {
            let mut r = vec![0, 0, 0, 0, 0, 0];
            r.extend_from_slice(&s6);
            r
        }),
        (60u8, vec![1, 4, 0, 0, 0, 0]),
        (44u8, vec![0, 0, 0, 0, 0, 1]),
    ];
    let v6 = vec![
        ethernet(&[], ETHERTYPE_IPV6, &ipv6(c6, s6, 6, &ext, &seg)),
        ethernet(&[], ETHERTYPE_IPV6, &ipv6(c6, s6, 6, &[], &seg)),
    ];
    out.push((
        "ipv6-ext.pcap",
        pcap_bytes(
            ETHERNET,
            65535,
            Precision::Micro,
            false,
            &timed(v6, T0, 1_000),
        ),
    ));

    // Cut by a 64-byte snapshot length: captured bytes shorter than the original.
    let cut: Vec<Record> = http
        .iter()
        .map(|(ts, data, orig)| (*ts, data[..data.len().min(64)].to_vec(), *orig))
        .collect();
    out.push((
        "snaplen-64.pcap",
        pcap_bytes(ETHERNET, 64, Precision::Micro, false, &cut),
    ));

    // Time going backwards twice.
    let mut backwards = http.clone();
    backwards.swap(1, 2);
    backwards.swap(5, 6);
    out.push((
        "out-of-order.pcap",
        pcap_bytes(ETHERNET, 65535, Precision::Micro, false, &backwards),
    ));

    // Damage: the last record cut in the middle of its data, and a gzip cut short.
    let whole = pcap_bytes(ETHERNET, 65535, Precision::Micro, false, &http);
    out.push((
        "../damaged/truncated-record.pcap",
        whole[..whole.len() - 10].to_vec(),
    ));
    let gz = gzip(&whole);
    out.push((
        "../damaged/truncated.pcap.gz",
        gz[..gz.len() * 2 / 3].to_vec(),
    ));

    // Edge cases: header only, one packet, zero duration, shorter than a header.
    out.push((
        "header-only.pcap",
        pcap_bytes(ETHERNET, 65535, Precision::Micro, false, &[]),
    ));
    out.push((
        "one-packet.pcap",
        pcap_bytes(ETHERNET, 65535, Precision::Micro, false, &http[..1]),
    ));
    let same_time: Vec<Record> = http[..3]
        .iter()
        .map(|(_, d, o)| (T0, d.clone(), *o))
        .collect();
    out.push((
        "zero-duration.pcap",
        pcap_bytes(ETHERNET, 65535, Precision::Micro, false, &same_time),
    ));
    out.push(("../damaged/under-24-bytes.pcap", whole[..20].to_vec()));

    // A tarball of captures: nested folders, a duplicate basename, a gzipped member.
    let tarball = tar_bytes(&[
        ("day1/capture.pcap", whole.clone()),
        (
            "day2/capture.pcap",
            pcap_bytes(ETHERNET, 65535, Precision::Nano, false, &nano),
        ),
        ("day2/extra.pcap.gz", gzip(&whole)),
        ("notes.txt", b"not a capture\n".to_vec()),
    ]);
    out.push(("captures.tar.gz", gzip(&tarball)));
    out
}

#[test]
fn synthetic_testdata_is_current() {
    let dir = repo().join("testdata/synthetic");
    let bless = std::env::var_os("GOPHERCAP_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, bytes) in synthetic() {
        let path = dir.join(name);
        if bless {
            write(&path, &bytes);
        } else if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "testdata/synthetic is stale ({stale:?}); run GOPHERCAP_BLESS=1 cargo test --test testdata"
    );
}
