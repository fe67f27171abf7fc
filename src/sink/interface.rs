//! Sending frames onto a network interface through libpcap (`pcap_inject`, a send on a packet
//! socket on Linux). Failures are classified so a replay can count the transient ones and stop
//! only on the fatal ones.

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

/// An interface opened for sending.
pub struct InterfaceSink {
    capture: pcap::Capture<pcap::Active>,
    last_error: String,
}

/// The interface's MTU (IP packet size) where the system tells it.
pub fn interface_mtu(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

impl InterfaceSink {
    /// Open `name` for sending; the error is libpcap's text, for the caller to explain.
    pub fn open(name: &str) -> Result<Self, String> {
        let capture = pcap::Capture::from_device(name)
            .map_err(|e| e.to_string())?
            .promisc(false)
            .snaplen(64)
            .buffer_size(1 << 16)
            .immediate_mode(true)
            .open()
            .map_err(|e| e.to_string())?;
        Ok(InterfaceSink {
            capture,
            last_error: String::new(),
        })
    }

    /// The link type frames must have, as a LINKTYPE_ value.
    pub fn link_type(&self) -> u32 {
        match self.capture.get_datalink().0 {
            12 => 101,
            dlt => dlt as u32,
        }
    }

    /// Send one frame; a full queue is retried a few times before it counts as a failure.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SendFailure> {
        let mut backoff = Duration::from_micros(10);
        for _ in 0..8 {
            match self.capture.sendpacket(frame) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.last_error = e.to_string();
                    match SendFailure::of(&self.last_error) {
                        SendFailure::NoBuffers => {
                            std::thread::sleep(backoff);
                            backoff *= 2;
                        }
                        other => return Err(other),
                    }
                }
            }
        }
        Err(SendFailure::NoBuffers)
    }

    /// libpcap's text for the last failure.
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
