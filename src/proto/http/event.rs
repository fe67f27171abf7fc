//! What the HTTP tracker reports: owned, typed events that outlive the stream bytes they were
//! read from, so a sink may keep or send them anywhere.

use crate::flow::{Endpoint, Side};

/// One thing the tracker found on a connection.
#[derive(Clone, Debug, PartialEq)]
pub enum HttpEvent {
    Message(HttpMessage),
    WebSocket(WebSocketMessage),
    Problem(Problem),
}

/// Whether an HTTP message is a request or a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// Which end of a connection sent something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Client,
    Server,
}

/// The request a response answers (pairing is first-in, first-out per connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairedRequest {
    pub method: String,
    pub path: String,
    /// When the request's first byte was seen: the response's latency is measured from here.
    pub timestamp_ns: i64,
}

/// One HTTP/1.x request or response.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpMessage {
    pub connection: u64,
    /// Time of the connection's first packet (see `ConnectionInfo::first_ns`).
    pub connection_first_ns: i64,
    /// Time of the packet that carried the message's first byte.
    pub timestamp_ns: i64,
    pub client: Endpoint,
    pub server: Endpoint,
    pub direction: Direction,
    /// "HTTP/1.0" or "HTTP/1.1".
    pub version: &'static str,
    /// Requests only: the method and the request target as sent.
    pub method: Option<String>,
    pub path: Option<String>,
    /// Responses only.
    pub status_code: Option<u16>,
    pub reason: Option<String>,
    /// In order, repeats kept; bytes that are not UTF-8 are replaced (lossy).
    pub headers: Vec<(String, String)>,
    /// The body bytes kept: at most the configured cut, decoded when `body_decoded`.
    pub body: Vec<u8>,
    /// Body bytes that crossed the wire after de-chunking and before decoding, all of them
    /// (past the cut too), not counting bytes lost in gaps.
    pub body_length: u64,
    /// `body` holds less than the whole body (the cut, or a decoded body cut).
    pub body_truncated: bool,
    /// `body` was decoded from its Content-Encoding.
    pub body_decoded: bool,
    /// A gap hit the message, or its connection ended before it was whole.
    pub incomplete: bool,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// Responses only: the request it answers, when one was seen.
    pub request: Option<PairedRequest>,
}

impl HttpMessage {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One WebSocket message: a control frame, or a data message with its continuation fragments
/// joined.
#[derive(Clone, Debug, PartialEq)]
pub struct WebSocketMessage {
    pub connection: u64,
    /// Time of the packet that carried the first byte of the message's first frame.
    pub timestamp_ns: i64,
    pub client: Endpoint,
    pub server: Endpoint,
    pub from: Peer,
    /// The first frame's opcode (see [`opcode_name`]).
    pub opcode: u8,
    /// The final fragment was seen.
    pub fin: bool,
    /// RSV1 was set on the first frame: the payload is compressed by an extension
    /// (permessage-deflate) and kept as sent.
    pub compressed: bool,
    /// Unmasked, cut at the configured size.
    pub payload: Vec<u8>,
    /// Payload bytes of all fragments on the wire, past the cut too.
    pub payload_length: u64,
    pub truncated: bool,
    /// A gap hit the message, or the connection ended before its last fragment.
    pub incomplete: bool,
    /// Close frames only, when the payload carries them.
    pub close_code: Option<u16>,
    pub close_reason: Option<String>,
}

impl WebSocketMessage {
    pub fn opcode_name(&self) -> &'static str {
        opcode_name(self.opcode)
    }
}

/// The RFC 6455 name of a frame opcode.
pub fn opcode_name(opcode: u8) -> &'static str {
    match opcode {
        0x0 => "continuation",
        0x1 => "text",
        0x2 => "binary",
        0x8 => "close",
        0x9 => "ping",
        0xa => "pong",
        _ => "reserved",
    }
}

/// Bytes the tracker could not read as HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub connection: u64,
    /// Time of the packet that carried the first offending byte.
    pub timestamp_ns: i64,
    pub side: Side,
    /// The endpoint that sent the bytes, and its role when known.
    pub sender: Endpoint,
    pub from: Option<Peer>,
    pub kind: ProblemKind,
    /// The first bytes at fault (at most [`Problem::SAMPLE_LEN`]).
    pub sample: Vec<u8>,
}

impl Problem {
    pub const SAMPLE_LEN: usize = 16;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// The stream does not start with HTTP (TLS, another protocol, garbage); reported once per
    /// connection, and the stream is not read any further.
    NotHttp,
    /// No end of head within the configured size.
    HeadTooLarge,
    /// A head that is not valid HTTP/1.x, after the stream was known to be HTTP.
    BadHead,
    /// Content-Length or Transfer-Encoding do not say where the body ends.
    BadFraming,
    /// A chunk size line, chunk end or trailer section of a chunked body is malformed.
    BadChunk,
    /// A WebSocket frame breaks RFC 6455 (reserved opcode, oversized or fragmented control
    /// frame, continuation out of place); the direction is not read any further.
    BadWebSocketFrame,
}

impl ProblemKind {
    /// A snake_case name for output.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::NotHttp => "not_http",
            ProblemKind::HeadTooLarge => "head_too_large",
            ProblemKind::BadHead => "bad_head",
            ProblemKind::BadFraming => "bad_framing",
            ProblemKind::BadChunk => "bad_chunk",
            ProblemKind::BadWebSocketFrame => "bad_websocket_frame",
        }
    }
}
