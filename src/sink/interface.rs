//! Sending frames onto a network interface: on Linux through an AF_PACKET socket (with batches
//! at top speed, see `packet_socket`), elsewhere through libpcap's `pcap_inject`. Failures are
//! classified so a replay can count the transient ones and stop only on the fatal ones.

use std::time::Duration;

/// Why one frame was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SendFailure {
    /// Larger than the interface takes (EMSGSIZE).
    TooLong,
    /// The kernel's queue stayed full after retries (ENOBUFS/EAGAIN).
    NoBuffers,
    /// The interface went away or down: the replay cannot go on.
    Fatal,
    Other,
}

impl SendFailure {
    pub fn name(self) -> &'static str {
        match self {
            SendFailure::TooLong => "too_long",
            SendFailure::NoBuffers => "no_buffers",
            SendFailure::Fatal => "fatal",
            SendFailure::Other => "other",
        }
    }

    #[cfg(target_os = "linux")]
    fn of_io(error: &std::io::Error) -> Self {
        match error.raw_os_error() {
            Some(libc::EMSGSIZE) => SendFailure::TooLong,
            Some(libc::ENOBUFS) | Some(libc::EAGAIN) => SendFailure::NoBuffers,
            Some(libc::ENETDOWN) | Some(libc::ENXIO) | Some(libc::ENODEV) => SendFailure::Fatal,
            _ => SendFailure::Other,
        }
    }

    #[cfg_attr(target_os = "linux", allow(dead_code))]
    fn of(message: &str) -> Self {
        let m = message.to_lowercase();
        if m.contains("message too long") {
            SendFailure::TooLong
        } else if m.contains("no buffer space") || m.contains("resource temporarily unavailable") {
            SendFailure::NoBuffers
        } else if m.contains("network is down") || m.contains("no such device") {
            SendFailure::Fatal
        } else {
            SendFailure::Other
        }
    }
}

/// Frames a batched send could not deliver.
#[derive(Clone, Copy, Debug)]
pub struct Dropped {
    pub frames: usize,
    pub bytes: usize,
    pub failure: SendFailure,
}

/// An interface opened for sending.
pub struct InterfaceSink {
    #[cfg(target_os = "linux")]
    socket: super::packet_socket::PacketSocket,
    #[cfg(not(target_os = "linux"))]
    capture: pcap::Capture<pcap::Active>,
    link_type: u32,
    last_error: String,
}

/// The interface's MTU (IP packet size) where the system tells it.
pub fn interface_mtu(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

impl InterfaceSink {
    /// Open `name` for sending; the error is the system's text, for the caller to explain.
    pub fn open(name: &str) -> Result<Self, String> {
        // libpcap knows the interface's link type; its handle is only kept off Linux.
        let capture = pcap::Capture::from_device(name)
            .map_err(|e| e.to_string())?
            .promisc(false)
            .snaplen(64)
            .buffer_size(1 << 16)
            .immediate_mode(true)
            .open()
            .map_err(|e| e.to_string())?;
        let link_type = match capture.get_datalink().0 {
            12 => 101,
            dlt => dlt as u32,
        };
        #[cfg(target_os = "linux")]
        {
            drop(capture);
            let socket =
                super::packet_socket::PacketSocket::open(name).map_err(|e| e.to_string())?;
            Ok(InterfaceSink {
                socket,
                link_type,
                last_error: String::new(),
            })
        }
        #[cfg(not(target_os = "linux"))]
        Ok(InterfaceSink {
            capture,
            link_type,
            last_error: String::new(),
        })
    }

    /// The link type frames must have, as a LINKTYPE_ value.
    pub fn link_type(&self) -> u32 {
        self.link_type
    }

    #[cfg(target_os = "linux")]
    fn send_once(&mut self, frame: &[u8]) -> Result<(), SendFailure> {
        self.socket.send(frame).map_err(|e| {
            self.last_error = e.to_string();
            SendFailure::of_io(&e)
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn send_once(&mut self, frame: &[u8]) -> Result<(), SendFailure> {
        self.capture.sendpacket(frame).map_err(|e| {
            self.last_error = e.to_string();
            SendFailure::of(&self.last_error)
        })
    }

    /// Send one frame now; a full queue is retried a few times before it counts as a failure.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SendFailure> {
        let mut backoff = Duration::from_micros(10);
        for _ in 0..8 {
            match self.send_once(frame) {
                Err(SendFailure::NoBuffers) => {
                    std::thread::sleep(backoff);
                    backoff *= 2;
                }
                other => return other,
            }
        }
        Err(SendFailure::NoBuffers)
    }

    /// Queue a frame for a batched send (top speed); [`Self::flush`] sends the rest. A failed
    /// batch reports how many frames and bytes were dropped.
    pub fn queue(&mut self, frame: &[u8]) -> Result<(), Dropped> {
        #[cfg(target_os = "linux")]
        {
            self.socket.queue(frame).map_err(|u| self.dropped(u))
        }
        #[cfg(not(target_os = "linux"))]
        self.send(frame).map_err(|failure| Dropped {
            frames: 1,
            bytes: frame.len(),
            failure,
        })
    }

    /// Frames [`Self::queue`] holds, not yet sent.
    pub fn pending(&self) -> usize {
        #[cfg(target_os = "linux")]
        {
            self.socket.pending()
        }
        #[cfg(not(target_os = "linux"))]
        0
    }

    /// Send whatever [`Self::queue`] holds.
    pub fn flush(&mut self) -> Result<(), Dropped> {
        #[cfg(target_os = "linux")]
        {
            self.socket.flush().map_err(|u| self.dropped(u))
        }
        #[cfg(not(target_os = "linux"))]
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn dropped(&mut self, unsent: super::packet_socket::Unsent) -> Dropped {
        self.last_error = unsent.error.to_string();
        Dropped {
            frames: unsent.frames,
            bytes: unsent.bytes,
            failure: SendFailure::of_io(&unsent.error),
        }
    }

    /// The system's text for the last failure.
    pub fn last_error(&self) -> &str {
        &self.last_error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_by_errno_text() {
        assert_eq!(
            SendFailure::of("send: Message too long"),
            SendFailure::TooLong
        );
        assert_eq!(
            SendFailure::of("send: No buffer space available"),
            SendFailure::NoBuffers
        );
        assert_eq!(SendFailure::of("send: Network is down"), SendFailure::Fatal);
        assert_eq!(SendFailure::of("send: Bad address"), SendFailure::Other);
    }
}
