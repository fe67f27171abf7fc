//! A downstream consumer for the `tap` section of `bench/run`: listens on two ports (tap's
//! connector dials one per direction for every session), reads every connection to its end
//! and throws the bytes away, and when it gets SIGTERM or stdin closes prints what it read:
//! `connections=N bytes=N`.
//!
//! Usage: `cargo run --release --example tap_consumer -- REQUESTS_PORT RESPONSES_PORT`
//! (0 picks free ports; the ports are printed first as `ports=REQ,RESP`).

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn serve(listener: TcpListener, bytes: Arc<AtomicU64>, connections: Arc<AtomicU64>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        connections.fetch_add(1, Ordering::Relaxed);
        let bytes = Arc::clone(&bytes);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
    }
}

fn main() -> ExitCode {
    let ports: Vec<u16> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if ports.len() != 2 {
        eprintln!("usage: tap_consumer REQUESTS_PORT RESPONSES_PORT");
        return ExitCode::from(2);
    }
    let bytes = Arc::new(AtomicU64::new(0));
    let connections = Arc::new(AtomicU64::new(0));
    let mut bound = Vec::new();
    for port in ports {
        let listener = match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tap_consumer: cannot listen on port {port}: {e}");
                return ExitCode::FAILURE;
            }
        };
        bound.push(listener.local_addr().map_or(0, |a| a.port()));
        let (b, c) = (Arc::clone(&bytes), Arc::clone(&connections));
        std::thread::spawn(move || serve(listener, b, c));
    }
    println!("ports={},{}", bound[0], bound[1]);
    let _ = io::stdout().flush();
    // Runs until stdin ends (the bench closes it once tap has finished).
    let _ = io::copy(&mut io::stdin(), &mut io::sink());
    println!(
        "connections={} bytes={}",
        connections.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed)
    );
    ExitCode::SUCCESS
}
