//! Sending frames through a Linux AF_PACKET socket bound to one interface. The socket receives
//! nothing (protocol 0), bypasses the queueing discipline, and sends batches with one
//! `sendmmsg` call when the caller has no deadline to keep (top speed) — the syscall per frame
//! is what limits a replay's packet rate.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Frames gathered before one `sendmmsg`.
pub const BATCH: usize = 64;

/// Frames of a batch the kernel refused, and why.
#[derive(Debug)]
pub struct Unsent {
    pub frames: usize,
    pub bytes: usize,
    pub error: io::Error,
}

pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
    /// Batch storage: frames back to back, with their end offsets.
    data: Vec<u8>,
    ends: Vec<usize>,
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

impl PacketSocket {
    pub fn open(interface: &str) -> io::Result<Self> {
        let name = std::ffi::CString::new(interface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string and returns 0 on failure.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::new(io::ErrorKind::NotFound, "No such device"));
        }
        // SAFETY: a plain socket(2) call; the descriptor is owned right below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(last_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        // Best effort: without the bypass frames still go out, through the qdisc.
        // SAFETY: setsockopt reads `one` for its size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = ifindex as i32;
        // SAFETY: bind reads a sockaddr_ll of the given size.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if bound < 0 {
            return Err(last_error());
        }
        Ok(PacketSocket {
            fd,
            ifindex: ifindex as i32,
            data: Vec::with_capacity(BATCH * 2048),
            ends: Vec::with_capacity(BATCH),
        })
    }

    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// Send one frame now.
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: send reads `frame.len()` bytes from `frame`.
        let sent =
            unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if sent < 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Add a frame to the batch; a full batch is sent.
    pub fn queue(&mut self, frame: &[u8]) -> Result<(), Unsent> {
        self.data.extend_from_slice(frame);
        self.ends.push(self.data.len());
        if self.ends.len() == BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Frames queued and not yet sent.
    pub fn pending(&self) -> usize {
        self.ends.len()
    }

    /// Send every queued frame. On an error the frames before the failing one were sent; the
    /// failing one and those after it are dropped, and [`Unsent`] says how many and why.
    pub fn flush(&mut self) -> Result<(), Unsent> {
        let mut iovecs = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for &end in &self.ends {
            iovecs.push(libc::iovec {
                iov_base: self.data[start..end].as_ptr() as *mut libc::c_void,
                iov_len: end - start,
            });
            start = end;
        }
        let mut messages: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .map(|iov| {
                let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
                header.msg_iov = iov;
                header.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: header,
                    msg_len: 0,
                }
            })
            .collect();
        let mut done = 0;
        let result = loop {
            if done == messages.len() {
                break Ok(());
            }
            // SAFETY: the headers point into `iovecs` and `self.data`, alive for the call.
            let sent = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    messages[done..].as_mut_ptr(),
                    (messages.len() - done) as libc::c_uint,
                    0,
                )
            };
            if sent < 0 {
                let first_unsent = if done == 0 { 0 } else { self.ends[done - 1] };
                break Err(Unsent {
                    frames: messages.len() - done,
                    bytes: self.data.len() - first_unsent,
                    error: last_error(),
                });
            }
            done += sent as usize;
        };
        self.data.clear();
        self.ends.clear();
        result
    }
}
