//! The source layer as later subcommands use it: the time-ordered merge of several files, BPF
//! on a source, and the promise of no per-packet allocation on the plain-file read path.

mod common;

use common::*;
use gophercap::sink::capture::Precision;
use gophercap::source::input::open_path;
use gophercap::source::{CaptureReader, MergedSource, OpenedInput, Source};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts allocations so the read loop can be shown to make none.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn capture(path: &std::path::Path) -> CaptureReader<'static> {
    match open_path(path).unwrap() {
        OpenedInput::Capture(r) => r,
        OpenedInput::Archive(_) => panic!("not a capture"),
    }
}

fn many_records(n: usize) -> Vec<Record> {
    let frames: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let payload = vec![i as u8; 60 + i % 1400];
            ethernet(
                &[],
                ETHERTYPE_IPV4,
                &ipv4(
                    CLIENT,
                    SERVER,
                    17,
                    &udp(&CLIENT, &SERVER, (5000, 53), &payload),
                ),
            )
        })
        .collect();
    timed(frames, T0, 1_000)
}

#[test]
fn reading_plain_files_allocates_nothing_per_packet() {
    let dir = scratch("no-alloc");
    let records = many_records(20_000);
    let pcap = dir.join("many.pcap");
    write(
        &pcap,
        &pcap_bytes(1, 65535, Precision::Nano, false, &records),
    );
    let tagged: Vec<(u32, Record)> = records.iter().cloned().map(|r| (0, r)).collect();
    let pcapng = dir.join("many.pcapng");
    write(&pcapng, &pcapng_bytes(&[(1, 9)], &tagged));
    for path in [pcap, pcapng] {
        let mut reader = capture(&path);
        // The first packet comes after the file's headers, whose options may allocate once.
        assert!(reader.advance().unwrap());
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let mut packets = 1u64;
        let mut bytes = 0u64;
        while let Some(p) = reader.next_packet().unwrap() {
            packets += 1;
            bytes += p.data.len() as u64;
        }
        let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(packets, 20_000);
        assert!(bytes > 20_000 * 60);
        assert_eq!(
            during,
            0,
            "{}: {during} allocations for {packets} packets",
            path.display()
        );
    }
}

#[test]
fn merge_orders_packets_across_files_by_time() {
    let dir = scratch("merge");
    let a = timed(
        http_exchange_ipv4(40010)
            .into_iter()
            .map(|p| ethernet(&[], ETHERTYPE_IPV4, &p))
            .collect(),
        T0,
        3_000,
    );
    let b = timed(
        http_exchange_ipv4(40011)
            .into_iter()
            .map(|p| ethernet(&[], ETHERTYPE_IPV4, &p))
            .collect(),
        T0 + 1_000,
        2_000,
    );
    write(
        &dir.join("a.pcap"),
        &pcap_bytes(1, 65535, Precision::Nano, false, &a),
    );
    write(
        &dir.join("b.pcap"),
        &pcap_bytes(1, 65535, Precision::Nano, true, &b),
    );
    let mut merged = MergedSource::new(vec![
        capture(&dir.join("a.pcap")),
        capture(&dir.join("b.pcap")),
    ]);
    let mut times = Vec::new();
    let mut from = Vec::new();
    while let Some(p) = merged.next_packet().unwrap() {
        times.push(p.ts_ns - T0);
        from.push(merged.current_source().unwrap());
    }
    let mut want: Vec<(i64, usize)> = a
        .iter()
        .map(|r| (r.0 - T0, 0))
        .chain(b.iter().map(|r| (r.0 - T0, 1)))
        .collect();
    want.sort();
    assert_eq!(times, want.iter().map(|w| w.0).collect::<Vec<_>>());
    assert_eq!(from, want.iter().map(|w| w.1).collect::<Vec<_>>());
}

#[cfg(feature = "live")]
#[test]
fn a_bpf_filter_wraps_any_source() {
    use gophercap::source::filter::{BpfFilter, FilteredSource};
    let path = repo().join("testdata/real/curl-vlan.pcap");
    let mut filtered = FilteredSource::new(
        capture(&path),
        BpfFilter::new("vlan 99 and tcp port 8080").unwrap(),
    );
    let mut passed = 0;
    while filtered.next_packet().unwrap().is_some() {
        passed += 1;
    }
    assert_eq!(passed, 12);
    let mut none = FilteredSource::new(capture(&path), BpfFilter::new("vlan 98").unwrap());
    assert!(none.next_packet().unwrap().is_none());
    assert_eq!(none.rejected(), 12);
}
