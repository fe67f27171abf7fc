//! Builders shared by the integration tests: packets by layer, and whole captures written
//! through the library's own writers (the capinfos oracle checks both sides of that circle).

#![allow(dead_code)]

/// Plumbing for the tests that capture live between network namespaces.
pub mod live;

use gophercap::sink::capture::{PcapWriter, PcapngWriter, Precision};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

/// The Internet checksum over `data` starting from `initial` (a partial sum).
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo_sum(src: &[u8], dst: &[u8], proto: u8, len: usize) -> u32 {
    let mut sum = 0u32;
    for part in [src, dst] {
        for c in part.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
    }
    sum + u32::from(proto) + len as u32
}

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// A TCP segment (no options) with its checksum over the given IP addresses.
pub fn tcp(
    src: &[u8],
    dst: &[u8],
    ports: (u16, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&ports.0.to_be_bytes());
    t.extend_from_slice(&ports.1.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[5 << 4, flags]);
    t.extend_from_slice(&65535u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(payload);
    let sum = checksum(&t, pseudo_sum(src, dst, 6, t.len()));
    t[16..18].copy_from_slice(&sum.to_be_bytes());
    t
}

/// A UDP datagram with its checksum.
pub fn udp(src: &[u8], dst: &[u8], ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut u = Vec::with_capacity(len);
    u.extend_from_slice(&ports.0.to_be_bytes());
    u.extend_from_slice(&ports.1.to_be_bytes());
    u.extend_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let sum = checksum(&u, pseudo_sum(src, dst, 17, len));
    u[6..8].copy_from_slice(&sum.to_be_bytes());
    u
}

pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(payload);
    ip
}

/// IPv6 with extension headers: each `(header type, body)` is chained in order before the
/// upper-layer `proto`; bodies are padded to the 8-byte units the headers require.
pub fn ipv6(
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    extensions: &[(u8, Vec<u8>)],
    payload: &[u8],
) -> Vec<u8> {
    let mut chain = Vec::new();
    for (i, (_, body)) in extensions.iter().enumerate() {
        let next = extensions.get(i + 1).map_or(proto, |e| e.0);
        let mut h = vec![next, 0];
        h.extend_from_slice(body);
        while !h.len().is_multiple_of(8) {
            h.push(0);
        }
        if extensions[i].0 != 44 {
            h[1] = (h.len() / 8 - 1) as u8;
        }
        chain.extend_from_slice(&h);
    }
    let first = extensions.first().map_or(proto, |e| e.0);
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&((chain.len() + payload.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[first, 64]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend_from_slice(&chain);
    ip.extend_from_slice(payload);
    ip
}

pub fn ethernet(vlans: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0x0a, 0x63, 0, 0x02, 0x02, 0, 0x0a, 0x63, 0, 0x01];
    for (tpid, id) in vlans {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn sll(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 4, 0, 1, 0, 6, 0x02, 0, 0x0a, 0x63, 0, 0x01, 0, 0];
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn sll2(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = protocol.to_be_bytes().to_vec();
    f.extend_from_slice(&[
        0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 0x02, 0, 0x0a, 0x63, 0, 0x01, 0, 0,
    ]);
    f.extend_from_slice(payload);
    f
}

pub const CLIENT: [u8; 4] = [10, 99, 0, 1];
pub const SERVER: [u8; 4] = [10, 99, 0, 2];

/// A short HTTP exchange as IPv4 packets: handshake, request, response, close.
pub fn http_exchange_ipv4(client_port: u16) -> Vec<Vec<u8>> {
    let (c, s) = (CLIENT, SERVER);
    let seg = |from_client: bool, seq: u32, ack: u32, flags: u8, data: &[u8]| {
        if from_client {
            ipv4(
                c,
                s,
                6,
                &tcp(&c, &s, (client_port, 80), seq, ack, flags, data),
            )
        } else {
            ipv4(
                s,
                c,
                6,
                &tcp(&s, &c, (80, client_port), seq, ack, flags, data),
            )
        }
    };
    let request = b"GET / HTTP/1.1\r\nHost: 10.99.0.2\r\n\r\n";
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let (ci, si) = (1000u32, 5000u32);
    vec![
        seg(true, ci, 0, SYN, b""),
        seg(false, si, ci + 1, SYN | ACK, b""),
        seg(true, ci + 1, si + 1, ACK, b""),
        seg(true, ci + 1, si + 1, PSH | ACK, request),
        seg(
            false,
            si + 1,
            ci + 1 + request.len() as u32,
            PSH | ACK,
            response,
        ),
        seg(
            true,
            ci + 1 + request.len() as u32,
            si + 1 + response.len() as u32,
            FIN | ACK,
            b"",
        ),
        seg(
            false,
            si + 1 + response.len() as u32,
            ci + 2 + request.len() as u32,
            FIN | ACK,
            b"",
        ),
        seg(
            true,
            ci + 2 + request.len() as u32,
            si + 2 + response.len() as u32,
            ACK,
            b"",
        ),
    ]
}

/// One record to write: time, captured bytes, original length.
pub type Record = (i64, Vec<u8>, u32);

/// Records at `start_ns` spaced by `step_ns`, each kept whole.
pub fn timed(frames: Vec<Vec<u8>>, start_ns: i64, step_ns: i64) -> Vec<Record> {
    frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let len = f.len() as u32;
            (start_ns + i as i64 * step_ns, f, len)
        })
        .collect()
}

pub fn pcap_bytes(
    link_type: u32,
    snaplen: u32,
    precision: Precision,
    big_endian: bool,
    records: &[Record],
) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), link_type, snaplen, precision, big_endian).unwrap();
    for (ts, data, orig) in records {
        w.write(*ts, data, *orig).unwrap();
    }
    w.into_inner()
}

/// A pcapng with one interface per `(link type, tsresol)` and records tagged by interface.
pub fn pcapng_bytes(interfaces: &[(u16, u8)], records: &[(u32, Record)]) -> Vec<u8> {
    let mut w = PcapngWriter::new(Vec::new()).unwrap();
    for (link, resol) in interfaces {
        w.add_interface(*link, 65535, *resol).unwrap();
    }
    for (interface, (ts, data, orig)) in records {
        w.write(*interface, *ts, data, *orig).unwrap();
    }
    w.into_inner()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A tar archive of `(path, bytes)` members with fixed metadata, so its bytes are stable.
pub fn tar_bytes(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append_data(&mut h, path, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// 2024-01-01T00:00:00Z in nanoseconds: the epoch of the synthetic captures.
pub const T0: i64 = 1_704_067_200_000_000_000;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real-world corpus beside the repository, if present.
pub fn corpus() -> Option<PathBuf> {
    let p = repo().join("../shared/corpus");
    p.is_dir().then_some(p)
}

pub fn gophercap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gophercap"))
}

pub fn run(args: &[&str]) -> Output {
    gophercap().args(args).output().expect("run gophercap")
}

pub fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A fresh empty folder under the target directory, named for the test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = repo().join("target").join("test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}
