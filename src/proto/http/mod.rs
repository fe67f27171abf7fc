//! HTTP/1.x and WebSocket over reassembled TCP streams. The tracker is a `StreamHandler`: it is
//! handed each direction's bytes in order (with gaps and closes), reads message heads with
//! httparse, follows body framing (RFC 9112) and, after a 101 upgrade, WebSocket frames
//! (RFC 6455), and hands owned, typed events to an [`HttpSink`]. Output formats, filters and
//! redaction belong to the subcommand that owns the sink.
//!
//! Bytes it cannot read are never fatal: a stream that is not HTTP is reported once and passed
//! over, a malformed message is reported and reading resumes at the next start line, and a gap
//! marks the message it hits as incomplete.

mod arrivals;
mod body;
mod decompress;
mod event;
mod head;
mod resync;
mod sample;
mod tracker;
mod websocket;

#[cfg(test)]
mod tests;

pub use event::{
    Direction, HttpEvent, HttpMessage, PairedRequest, Peer, Problem, ProblemKind, WebSocketMessage,
    opcode_name,
};
pub use tracker::{HttpConnection, HttpStats, HttpTracker, MAX_PENDING_REQUESTS};

/// What the tracker reads and keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpConfig {
    /// Server ports: on a connection with one of these ports on one side, that side is the
    /// server, and connections with none are passed over. Empty: every connection is looked
    /// at, and the first start line seen tells the roles (a request line: its sender is the
    /// client).
    pub server_ports: Vec<u16>,
    /// A head (or a chunk size line, or a trailer section) longer than this is an error, and
    /// reading resumes at the next start line. It is also the most a connection holds while
    /// waiting for a head to complete, so it must stay far below the reassembly buffer cap.
    pub max_header_bytes: usize,
    /// Body (and WebSocket payload) bytes kept per message; the rest is counted, not kept.
    pub max_body_size: usize,
    /// Decode bodies sent with Content-Encoding gzip, x-gzip or deflate.
    pub decompress: bool,
    /// The share (0..=1) of connections traced, chosen by a fixed hash of their endpoints.
    pub sample_rate: f64,
}

impl HttpConfig {
    /// The largest `max_header_bytes` accepted: a quarter of the reassembly's default buffer.
    pub const MAX_HEADER_LIMIT: usize = 1 << 20;
    /// The smallest: room for a short request line and a few headers.
    pub const MIN_HEADER_LIMIT: usize = 64;

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(ConfigError::SampleRate(self.sample_rate));
        }
        if !(Self::MIN_HEADER_LIMIT..=Self::MAX_HEADER_LIMIT).contains(&self.max_header_bytes) {
            return Err(ConfigError::HeaderLimit(self.max_header_bytes));
        }
        Ok(())
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            server_ports: Vec::new(),
            max_header_bytes: 64 << 10,
            max_body_size: 1 << 20,
            decompress: false,
            sample_rate: 1.0,
        }
    }
}

/// A configuration the tracker cannot run with.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("sample rate {0} is not between 0 and 1")]
    SampleRate(f64),
    #[error(
        "max header bytes {0} is not between {min} and {max}",
        min = HttpConfig::MIN_HEADER_LIMIT,
        max = HttpConfig::MAX_HEADER_LIMIT
    )]
    HeaderLimit(usize),
}

/// Where the tracker's events go.
pub trait HttpSink {
    fn event(&mut self, event: HttpEvent);
}

/// Collects events in memory (tests, small tools).
impl HttpSink for Vec<HttpEvent> {
    fn event(&mut self, event: HttpEvent) {
        self.push(event);
    }
}
