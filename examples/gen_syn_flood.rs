//! Writes a SYN flood to 10.99.255.1:80 over 10 s: N SYNs, each its own flow. By default the
//! sources take turns (64,000 SYNs from one host, ports counted up, then the next host in
//! 10.96.0.0/11), for checking that `flows --max-flows` bounds memory; with `--spoofed` every SYN
//! comes from a random address and port of 10.96.0.0/11, the flood that makes a per-source
//! detector grow. Usage: gen_syn_flood OUT [N=10000000] [--spoofed].

use gophercap::sink::capture::{PcapWriter, Precision};
use std::io::BufWriter;

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        eprintln!("usage: gen_syn_flood OUT [N]");
        std::process::exit(2);
    };
    let n: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let spoofed = args.iter().any(|a| a == "--spoofed");
    let step_ns = (10_000_000_000 / n.max(1)) as i64;
    let mut random: u64 = 0x9e37_79b9_7f4a_7c15;
    let file = BufWriter::with_capacity(1 << 22, std::fs::File::create(out)?);
    let mut w = PcapWriter::new(file, 1, 65535, Precision::Micro, false)?;
    let mut frame = vec![0u8; 54];
    frame[..12].copy_from_slice(&[2, 0, 10, 99, 255, 1, 2, 0, 10, 99, 0, 1]);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    for i in 0..n {
        // Source: one of 64,000 ports on hosts counted up through 10.96.0.0/11, or anywhere.
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let host = if spoofed {
            (random >> 16) as u32 & 0x1f_ffff
        } else {
            (i / 64_000) as u32
        };
        let port = if spoofed {
            1024 + (random % 64_000) as u16
        } else {
            1024 + (i % 64_000) as u16
        };
        let src = [
            10,
            96 | ((host >> 16) & 0x1f) as u8,
            (host >> 8) as u8,
            host as u8,
        ];
        let ip = &mut frame[14..34];
        ip.copy_from_slice(
            &[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]
                .iter()
                .chain(&src)
                .chain(&[10, 99, 255, 1])
                .copied()
                .collect::<Vec<u8>>(),
        );
        let sum = checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&sum.to_be_bytes());
        let tcp = &mut frame[34..54];
        tcp.fill(0);
        tcp[0..2].copy_from_slice(&port.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&(i as u32).to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x02;
        tcp[14..16].copy_from_slice(&1024u16.to_be_bytes());
        w.write(1_704_067_200_000_000_000 + i as i64 * step_ns, &frame, 54)?;
    }
    std::io::Write::flush(&mut w.into_inner())?;
    Ok(())
}
