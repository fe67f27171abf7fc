//! A downstream consumer for the `tap` section of `bench/run`: listens on two ports (tap's
//! connector dials one per direction for every session), reads every connection to its end
//! and throws the bytes away, and when its stdin closes prints what it read:
//! `connections=N bytes=N`. One thread polls every socket, so hundreds of concurrent sessions
//! cost it no scheduling: the consumer must not be what the benchmark measures.
//!
//! Usage: `cargo run --release --example tap_consumer -- REQUESTS_PORT RESPONSES_PORT`
//! (0 picks free ports; the ports are printed first as `ports=REQ,RESP`).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;

fn main() -> ExitCode {
    let ports: Vec<u16> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if ports.len() != 2 {
        eprintln!("usage: tap_consumer REQUESTS_PORT RESPONSES_PORT");
        return ExitCode::from(2);
    }
    let mut listeners = Vec::new();
    for port in ports {
        match TcpListener::bind(("127.0.0.1", port)).and_then(|l| {
            l.set_nonblocking(true)?;
            Ok(l)
        }) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("tap_consumer: cannot listen on port {port}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let bound: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().map_or(0, |a| a.port()))
        .collect();
    println!("ports={},{}", bound[0], bound[1]);
    let _ = io::stdout().flush();
    let mut connections: Vec<TcpStream> = Vec::new();
    let (mut accepted, mut bytes) = (0u64, 0u64);
    let mut buf = vec![0u8; 1 << 20];
    let mut stdin_open = true;
    // Runs until stdin ends (the bench closes it once tap has finished) and every connection
    // has been read to its end.
    while stdin_open || !connections.is_empty() {
        let mut fds: Vec<libc::pollfd> = listeners
            .iter()
            .map(|l| l.as_raw_fd())
            .chain(connections.iter().map(|c| c.as_raw_fd()))
            .chain(stdin_open.then_some(0))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: a valid array of pollfd for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if ready <= 0 {
            continue;
        }
        if stdin_open && fds.last().is_some_and(|p| p.revents != 0) {
            let mut scratch = [0u8; 4096];
            if matches!(io::stdin().read(&mut scratch), Ok(0) | Err(_)) {
                stdin_open = false;
            }
        }
        let readable: Vec<bool> = fds[listeners.len()..listeners.len() + connections.len()]
            .iter()
            .map(|p| p.revents != 0)
            .collect();
        let mut open = Vec::with_capacity(connections.len());
        for (mut c, ready) in connections.drain(..).zip(readable) {
            let mut keep = true;
            while keep && ready {
                match c.read(&mut buf) {
                    Ok(0) => keep = false,
                    Ok(n) => bytes += n as u64,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => keep = false,
                }
            }
            if keep {
                open.push(c);
            }
        }
        connections = open;
        for l in &listeners {
            while let Ok((c, _)) = l.accept() {
                if c.set_nonblocking(true).is_ok() {
                    accepted += 1;
                    connections.push(c);
                }
            }
        }
    }
    println!("connections={accepted} bytes={bytes}");
    ExitCode::SUCCESS
}
