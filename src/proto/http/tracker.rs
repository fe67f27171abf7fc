//! The tracker: per-connection state behind one map lookup per call, each direction a small
//! state machine (head, body, resynchronisation, WebSocket frames), requests paired with
//! responses first-in first-out, and protocol switches (CONNECT, 101) shared by both
//! directions.

use super::arrivals::Arrivals;
use super::body::{Body, BodyReader, Limits, request_framing, response_framing};
use super::decompress::{ContentCoding, decode};
use super::event::{
    Direction, HttpEvent, HttpMessage, PairedRequest, Peer, Problem, ProblemKind, WebSocketMessage,
};
use super::head::{
    Head, MethodRule, StartKind, StartLine, classify_line, find_head_end, has_element, parse_head,
    plausible_start, resume_point,
};
use super::resync::{Resync, find_start};
use super::sample::is_sampled;
use super::websocket::{Assembled, FrameReader};
use super::{ConfigError, HttpConfig, HttpSink};
use crate::flow::{Endpoint, Side};
use crate::reassembly::{CloseReason, ConnectionInfo, StreamHandler};
use memchr::memchr;
use std::collections::VecDeque;

/// Requests waiting for their response, per connection: a capture of one direction only must
/// not grow without bound.
pub const MAX_PENDING_REQUESTS: usize = 1024;

/// Counters of one tracker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// Connections that handed the tracker any bytes or gaps.
    pub connections: u64,
    /// Of those, connections passed over: no server port, or not in the sample.
    pub skipped_connections: u64,
    pub requests: u64,
    pub responses: u64,
    pub websocket_messages: u64,
    /// Messages (HTTP or WebSocket) emitted incomplete.
    pub incomplete_messages: u64,
    pub problems: u64,
    /// Holes the streams reported, and the bytes missing in them.
    pub gaps: u64,
    pub gap_bytes: u64,
}

/// What a connection's bytes are, once its head-reading is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http,
    WebSocket,
    /// CONNECT accepted or a switch to something other than WebSocket: not read.
    Tunnel,
}

/// How far the head at the front of a direction's bytes was looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct HeadScan {
    /// Bytes already searched for the head's end.
    scanned: usize,
    /// The first line was complete and is a start line.
    line_checked: bool,
}

/// A message whose body is being read.
#[derive(Debug)]
struct InFlight {
    message: HttpMessage,
    reader: BodyReader,
    body: Body,
}

/// What a direction is reading.
#[derive(Debug)]
enum Reading {
    Head(HeadScan),
    Body(Box<InFlight>),
    /// Looking for the next start line; `at_line_start` says whether the next byte begins a
    /// line.
    Resync {
        at_line_start: bool,
    },
    Frames(Box<FrameReader>),
    /// Nothing more is read here: not HTTP, a tunnel, passed over, closed.
    Ignore,
}

/// What a step of reading did with the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Go on from this offset.
    Continue(usize),
    /// Stop: the bytes from this offset are kept for the next call.
    Wait(usize),
}

#[derive(Debug)]
struct DirectionState {
    reading: Reading,
    arrivals: Arrivals,
    /// A valid head was read here: later errors are problems, not "not HTTP".
    seen_http: bool,
    closed: bool,
}

impl DirectionState {
    fn new(reading: Reading) -> Self {
        DirectionState {
            reading,
            arrivals: Arrivals::default(),
            seen_http: false,
            closed: false,
        }
    }
}

/// What one call needs besides the connection: configuration, output, counters.
struct Context<'a> {
    config: &'a HttpConfig,
    sink: &'a mut dyn HttpSink,
    stats: &'a mut HttpStats,
    info: &'a ConnectionInfo,
}

impl Context<'_> {
    fn emit(&mut self, event: HttpEvent) {
        let stats = &mut *self.stats;
        match &event {
            HttpEvent::Message(m) => {
                match m.direction {
                    Direction::Request => stats.requests += 1,
                    Direction::Response => stats.responses += 1,
                }
                stats.incomplete_messages += u64::from(m.incomplete);
            }
            HttpEvent::WebSocket(m) => {
                stats.websocket_messages += 1;
                stats.incomplete_messages += u64::from(m.incomplete);
            }
            HttpEvent::Problem(_) => stats.problems += 1,
        }
        self.sink.event(event);
    }

    fn limits(&self) -> Limits {
        Limits {
            max_body: self.config.max_body_size,
            max_line: self.config.max_header_bytes,
        }
    }
}

/// One connection's state.
#[derive(Debug)]
struct ConnectionState {
    /// The side that sends requests, once known.
    client: Option<Side>,
    protocol: Protocol,
    directions: [DirectionState; 2],
    /// Requests whose final response has not been read, oldest first.
    pending: VecDeque<PairedRequest>,
    /// A request asked to switch protocols (Upgrade, CONNECT) and no final response came
    /// yet: the client's next bytes wait, as they may already belong to the new protocol.
    switch_asked: bool,
    /// "Not HTTP" was reported (once per connection).
    reported_not_http: bool,
}

impl ConnectionState {
    fn new(info: &ConnectionInfo, config: &HttpConfig) -> Self {
        let key = &info.key;
        let ports = &config.server_ports;
        let (a_serves, b_serves) = (ports.contains(&key.a.port), ports.contains(&key.b.port));
        let (client, traced) = match (ports.is_empty(), a_serves, b_serves) {
            (true, _, _) | (false, true, true) => (None, true),
            (false, true, false) => (Some(Side::B), true),
            (false, false, true) => (Some(Side::A), true),
            (false, false, false) => (None, false),
        };
        let traced = traced && is_sampled(key, config.sample_rate);
        let reading = || {
            if traced {
                Reading::Head(HeadScan::default())
            } else {
                Reading::Ignore
            }
        };
        ConnectionState {
            client,
            protocol: Protocol::Http,
            directions: [
                DirectionState::new(reading()),
                DirectionState::new(reading()),
            ],
            pending: VecDeque::new(),
            switch_asked: false,
            reported_not_http: false,
        }
    }

    fn is_skipped(&self) -> bool {
        self.directions
            .iter()
            .all(|d| matches!(d.reading, Reading::Ignore))
    }

    /// The start line expected from `from`, once the roles are known.
    fn expected(&self, from: Side) -> Option<StartKind> {
        self.client.map(|client| {
            if from == client {
                StartKind::Request
            } else {
                StartKind::Response
            }
        })
    }

    fn peer(&self, from: Side) -> Option<Peer> {
        self.client.map(|client| {
            if from == client {
                Peer::Client
            } else {
                Peer::Server
            }
        })
    }

    /// (client, server) endpoints; before the roles are known the lower endpoint stands as
    /// client.
    fn endpoints(&self, info: &ConnectionInfo) -> (Endpoint, Endpoint) {
        let client = self.client.unwrap_or(Side::A);
        (info.key.sender(client), info.key.sender(client.other()))
    }

    fn data(&mut self, cx: &mut Context<'_>, from: Side, data: &[u8]) -> usize {
        let i = from.index();
        self.directions[i].arrivals.offer(data.len(), cx.info.ts_ns);
        let mut at = 0;
        while at < data.len() {
            let reading = std::mem::replace(&mut self.directions[i].reading, Reading::Ignore);
            let (next, step) = match reading {
                Reading::Ignore => (Reading::Ignore, Step::Continue(data.len())),
                Reading::Head(scan) => self.read_head(cx, from, data, at, scan),
                Reading::Body(in_flight) => self.read_body(cx, from, data, at, in_flight),
                Reading::Resync { at_line_start } => self.resync(cx, from, data, at, at_line_start),
                Reading::Frames(reader) => self.read_frames(cx, from, data, at, reader),
            };
            self.directions[i].reading = next;
            match step {
                Step::Continue(to) => at = to,
                Step::Wait(to) => {
                    at = to;
                    break;
                }
            }
        }
        self.directions[i].arrivals.consumed(at, data.len());
        at
    }

    fn read_head(
        &mut self,
        cx: &mut Context<'_>,
        from: Side,
        data: &[u8],
        at: usize,
        mut scan: HeadScan,
    ) -> (Reading, Step) {
        match self.protocol {
            Protocol::Http => {}
            Protocol::WebSocket => return (Reading::Frames(Box::default()), Step::Continue(at)),
            Protocol::Tunnel => return (Reading::Ignore, Step::Continue(at)),
        }
        let rest = &data[at..];
        // Empty lines between messages are ignored (RFC 9112 2.2).
        let blank = rest
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        if blank > 0 {
            return (Reading::Head(scan), Step::Continue(at + blank));
        }
        let max = cx.config.max_header_bytes;
        if self.switch_asked && self.client == Some(from) && rest.len() < max {
            return (Reading::Head(scan), Step::Wait(at));
        }
        let expected = self.expected(from);
        if !scan.line_checked {
            if !plausible_start(rest, expected) {
                return self.head_failed(cx, from, data, at);
            }
            if let Some(nl) = memchr(b'\n', &rest[..rest.len().min(max)]) {
                match classify_line(&rest[..nl], MethodRule::Token) {
                    Some(kind) if expected.is_none_or(|e| e == kind) => scan.line_checked = true,
                    _ => return self.head_failed(cx, from, data, at),
                }
            }
        }
        let Some(end) = find_head_end(rest, scan.scanned, max) else {
            if rest.len() >= max {
                self.problem(cx, from, data, at, ProblemKind::HeadTooLarge);
                return (
                    Reading::Resync {
                        at_line_start: false,
                    },
                    Step::Continue(at),
                );
            }
            scan.scanned = resume_point(rest.len());
            return (Reading::Head(scan), Step::Wait(at));
        };
        let kind = if rest.starts_with(b"HTTP/") {
            StartKind::Response
        } else {
            StartKind::Request
        };
        // The roles may have been settled by the other direction since the line was checked.
        if expected.is_some_and(|e| e != kind) {
            return self.head_failed(cx, from, data, at);
        }
        let Some(head) = parse_head(&rest[..end], kind) else {
            return self.head_failed(cx, from, data, at);
        };
        let i = from.index();
        self.directions[i].seen_http = true;
        if self.client.is_none() {
            self.client = Some(match kind {
                StartKind::Request => from,
                StartKind::Response => from.other(),
            });
        }
        let timestamp_ns = self.directions[i].arrivals.time_at(at);
        match self.start_message(cx, head, timestamp_ns) {
            Some(reading) => (reading, Step::Continue(at + end)),
            None => {
                self.problem(cx, from, data, at, ProblemKind::BadFraming);
                (
                    Reading::Resync {
                        at_line_start: true,
                    },
                    Step::Continue(at + end),
                )
            }
        }
    }

    /// A head that is not HTTP: the first one of a direction means the stream is something
    /// else (reported once per connection, then passed over); a later one is a problem, and
    /// reading resumes at the next start line.
    fn head_failed(
        &mut self,
        cx: &mut Context<'_>,
        from: Side,
        data: &[u8],
        at: usize,
    ) -> (Reading, Step) {
        if self.directions[from.index()].seen_http {
            self.problem(cx, from, data, at, ProblemKind::BadHead);
            return (
                Reading::Resync {
                    at_line_start: false,
                },
                Step::Continue(at),
            );
        }
        if !self.reported_not_http {
            self.reported_not_http = true;
            self.problem(cx, from, data, at, ProblemKind::NotHttp);
        }
        (Reading::Ignore, Step::Continue(data.len()))
    }

    fn problem(&self, cx: &mut Context<'_>, from: Side, data: &[u8], at: usize, kind: ProblemKind) {
        let rest = &data[at.min(data.len())..];
        let problem = Problem {
            connection: cx.info.id,
            timestamp_ns: self.directions[from.index()].arrivals.time_at(at),
            side: from,
            sender: cx.info.key.sender(from),
            from: self.peer(from),
            kind,
            sample: rest[..rest.len().min(Problem::SAMPLE_LEN)].to_vec(),
        };
        cx.emit(HttpEvent::Problem(problem));
    }

    /// A head was read: pair it, settle its body's framing and any protocol switch. Returns
    /// what to read next, or None when the framing is bad (the message was emitted
    /// incomplete).
    fn start_message(
        &mut self,
        cx: &mut Context<'_>,
        head: Head,
        timestamp_ns: i64,
    ) -> Option<Reading> {
        let (client, server) = self.endpoints(cx.info);
        let mut message = HttpMessage {
            connection: cx.info.id,
            connection_first_ns: cx.info.first_ns,
            timestamp_ns,
            client,
            server,
            direction: Direction::Request,
            version: head.version,
            method: None,
            path: None,
            status_code: None,
            reason: None,
            headers: Vec::new(),
            body: Vec::new(),
            body_length: 0,
            body_truncated: false,
            body_decoded: false,
            incomplete: false,
            trailers: Vec::new(),
            request: None,
        };
        let framing = match head.start {
            StartLine::Request {
                ref method,
                ref path,
            } => {
                if method == "CONNECT" || has_upgrade(&head) {
                    self.switch_asked = true;
                }
                if self.pending.len() == MAX_PENDING_REQUESTS {
                    self.pending.pop_front();
                }
                self.pending.push_back(PairedRequest {
                    method: method.clone(),
                    path: path.clone(),
                    timestamp_ns,
                });
                let framing = request_framing(&head);
                message.method = Some(method.clone());
                message.path = Some(path.clone());
                framing
            }
            StartLine::Response { code, ref reason } => {
                // An interim response (100 Continue) leaves its request waiting; 101 ends it.
                let request = if (100..200).contains(&code) && code != 101 {
                    self.pending.front().cloned()
                } else {
                    self.switch_asked = false;
                    self.pending.pop_front()
                };
                let method = request.as_ref().map(|r| r.method.as_str());
                let framing = response_framing(&head, method);
                if code == 101 {
                    self.protocol = if has_element(&head.headers, "upgrade", "websocket") {
                        Protocol::WebSocket
                    } else {
                        Protocol::Tunnel
                    };
                } else if method == Some("CONNECT") && (200..300).contains(&code) {
                    self.protocol = Protocol::Tunnel;
                }
                message.direction = Direction::Response;
                message.status_code = Some(code);
                message.reason = Some(reason.clone());
                message.request = request;
                framing
            }
        };
        message.headers = head.headers;
        let Ok(framing) = framing else {
            self.finish(cx, message, Body::default(), true);
            return None;
        };
        let reader = BodyReader::new(framing);
        if reader.is_done() {
            self.finish(cx, message, Body::default(), false);
            return Some(Reading::Head(HeadScan::default()));
        }
        Some(Reading::Body(Box::new(InFlight {
            message,
            reader,
            body: Body::default(),
        })))
    }

    /// Emit a message with its body (decoded when asked and possible).
    fn finish(&self, cx: &mut Context<'_>, mut message: HttpMessage, body: Body, cut_short: bool) {
        message.incomplete |= cut_short;
        message.body_length = body.length;
        message.body_truncated = body.truncated;
        message.trailers = body.trailers;
        message.body = body.kept;
        if cx.config.decompress
            && !message.body.is_empty()
            && let Some(coding) = ContentCoding::of(&message.headers)
            && let Some(decoded) = decode(coding, &message.body, cx.config.max_body_size)
        {
            message.body = decoded.bytes;
            message.body_truncated |= decoded.cut;
            message.body_decoded = true;
        }
        cx.emit(HttpEvent::Message(message));
    }

    fn read_body(
        &mut self,
        cx: &mut Context<'_>,
        from: Side,
        data: &[u8],
        at: usize,
        mut in_flight: Box<InFlight>,
    ) -> (Reading, Step) {
        let InFlight { reader, body, .. } = &mut *in_flight;
        match reader.read(&data[at..], body, cx.limits()) {
            Ok(progress) if progress.done => {
                let InFlight { message, body, .. } = *in_flight;
                self.finish(cx, message, body, false);
                (
                    Reading::Head(HeadScan::default()),
                    Step::Continue(at + progress.used),
                )
            }
            Ok(progress) if at + progress.used == data.len() => {
                (Reading::Body(in_flight), Step::Continue(data.len()))
            }
            Ok(progress) => (Reading::Body(in_flight), Step::Wait(at + progress.used)),
            Err(bad) => {
                let InFlight { message, body, .. } = *in_flight;
                self.finish(cx, message, body, true);
                let at = at + bad.at;
                self.problem(cx, from, data, at, ProblemKind::BadChunk);
                (
                    Reading::Resync {
                        at_line_start: true,
                    },
                    Step::Continue(at),
                )
            }
        }
    }

    fn resync(
        &mut self,
        cx: &mut Context<'_>,
        from: Side,
        data: &[u8],
        at: usize,
        at_line_start: bool,
    ) -> (Reading, Step) {
        // Frame or tunnel boundaries cannot be found again once lost.
        if self.protocol != Protocol::Http {
            return (Reading::Ignore, Step::Continue(data.len()));
        }
        let max = cx.config.max_header_bytes;
        match find_start(&data[at..], at_line_start, self.expected(from), max) {
            Resync::Found(offset) => (
                Reading::Head(HeadScan::default()),
                Step::Continue(at + offset),
            ),
            Resync::Skip { to, at_line_start } => {
                let to = at + to;
                let step = if to == data.len() {
                    Step::Continue(to)
                } else {
                    Step::Wait(to)
                };
                (Reading::Resync { at_line_start }, step)
            }
        }
    }

    fn read_frames(
        &mut self,
        cx: &mut Context<'_>,
        from: Side,
        data: &[u8],
        at: usize,
        mut reader: Box<FrameReader>,
    ) -> (Reading, Step) {
        let arrivals = &self.directions[from.index()].arrivals;
        let time_at = |offset: usize| arrivals.time_at(at + offset);
        let max = cx.config.max_body_size;
        let result = reader.read(&data[at..], &time_at, max, &mut |m| {
            self.emit_websocket(cx, from, m)
        });
        match result {
            Ok(used) if at + used == data.len() => {
                (Reading::Frames(reader), Step::Continue(data.len()))
            }
            Ok(used) => (Reading::Frames(reader), Step::Wait(at + used)),
            Err(bad) => {
                reader.finish(&mut |m| self.emit_websocket(cx, from, m));
                self.problem(cx, from, data, at + bad.at, ProblemKind::BadWebSocketFrame);
                (Reading::Ignore, Step::Continue(data.len()))
            }
        }
    }

    fn emit_websocket(&self, cx: &mut Context<'_>, from: Side, assembled: Assembled) {
        let (client, server) = self.endpoints(cx.info);
        let (close_code, close_reason) = assembled.close_fields();
        let message = WebSocketMessage {
            connection: cx.info.id,
            timestamp_ns: assembled.timestamp_ns,
            client,
            server,
            from: self.peer(from).unwrap_or(Peer::Client),
            opcode: assembled.opcode,
            fin: assembled.fin,
            compressed: assembled.compressed,
            payload: assembled.payload,
            payload_length: assembled.length,
            truncated: assembled.truncated,
            incomplete: assembled.incomplete,
            close_code,
            close_reason,
        };
        cx.emit(HttpEvent::WebSocket(message));
    }

    fn gap(&mut self, cx: &mut Context<'_>, from: Side, length: u64) {
        let i = from.index();
        self.directions[i].arrivals.reset();
        let reading = std::mem::replace(&mut self.directions[i].reading, Reading::Ignore);
        let lost_bytes = Reading::Resync {
            at_line_start: true,
        };
        let (next, framing_kept) = match reading {
            Reading::Ignore => (Reading::Ignore, true),
            Reading::Head(_) | Reading::Resync { .. } => (lost_bytes, false),
            Reading::Body(mut in_flight) => {
                in_flight.message.incomplete = true;
                if in_flight.reader.skip(length) {
                    if in_flight.reader.is_done() {
                        let InFlight { message, body, .. } = *in_flight;
                        self.finish(cx, message, body, true);
                        (Reading::Head(HeadScan::default()), true)
                    } else {
                        (Reading::Body(in_flight), true)
                    }
                } else {
                    let InFlight { message, body, .. } = *in_flight;
                    self.finish(cx, message, body, true);
                    (lost_bytes, false)
                }
            }
            Reading::Frames(mut reader) => {
                if reader.skip(length, &mut |m| self.emit_websocket(cx, from, m)) {
                    (Reading::Frames(reader), true)
                } else {
                    reader.finish(&mut |m| self.emit_websocket(cx, from, m));
                    (Reading::Ignore, false)
                }
            }
        };
        self.directions[i].reading = next;
        // Responses may have been lost: the requests they answered must not be paired with
        // later responses.
        if !framing_kept && self.expected(from) == Some(StartKind::Response) {
            while self
                .pending
                .front()
                .is_some_and(|r| r.timestamp_ns < cx.info.ts_ns)
            {
                self.pending.pop_front();
            }
        }
    }

    /// Returns true once both directions are closed.
    fn close(&mut self, cx: &mut Context<'_>, from: Side, reason: CloseReason) -> bool {
        let i = from.index();
        let reading = std::mem::replace(&mut self.directions[i].reading, Reading::Ignore);
        match reading {
            Reading::Body(in_flight) => {
                let complete = in_flight.reader.ends_at_close()
                    && matches!(reason, CloseReason::Fin | CloseReason::End);
                let InFlight { message, body, .. } = *in_flight;
                self.finish(cx, message, body, !complete);
            }
            Reading::Frames(mut reader) => {
                reader.finish(&mut |m| self.emit_websocket(cx, from, m));
            }
            Reading::Head(_) | Reading::Resync { .. } | Reading::Ignore => {}
        }
        self.directions[i].closed = true;
        self.directions.iter().all(|d| d.closed)
    }
}

/// Does a request ask to switch protocols (an Upgrade header)?
fn has_upgrade(head: &Head) -> bool {
    head.headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("upgrade"))
}

/// Reads HTTP/1.x and WebSocket from reassembled connections into a sink.
pub struct HttpTracker<S: HttpSink> {
    config: HttpConfig,
    sink: S,
    stats: HttpStats,
}

/// What the tracker keeps per connection: nothing until the connection hands it bytes, a gap or
/// a close, and nothing again once both directions are closed.
#[derive(Debug, Default)]
pub struct HttpConnection(Option<ConnectionState>);

impl HttpConnection {
    /// Whether the connection holds state (not both directions closed yet).
    pub fn is_open(&self) -> bool {
        self.0.is_some()
    }
}

impl<S: HttpSink> HttpTracker<S> {
    pub fn new(config: HttpConfig, sink: S) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(HttpTracker {
            config,
            sink,
            stats: HttpStats::default(),
        })
    }

    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    pub fn into_sink(self) -> S {
        self.sink
    }

    pub fn stats(&self) -> HttpStats {
        self.stats
    }

    /// The connection's state, made on its first call, and what the calls on it share.
    fn connection<'a>(
        &'a mut self,
        held: &'a mut HttpConnection,
        info: &'a ConnectionInfo,
    ) -> (&'a mut ConnectionState, Context<'a>) {
        let state = held.0.get_or_insert_with(|| {
            let state = ConnectionState::new(info, &self.config);
            self.stats.connections += 1;
            self.stats.skipped_connections += u64::from(state.is_skipped());
            state
        });
        let cx = Context {
            config: &self.config,
            sink: &mut self.sink,
            stats: &mut self.stats,
            info,
        };
        (state, cx)
    }
}

impl<S: HttpSink> StreamHandler for HttpTracker<S> {
    type State = HttpConnection;

    fn open(&mut self, _: &ConnectionInfo) -> HttpConnection {
        HttpConnection::default()
    }

    fn data(
        &mut self,
        connection: &ConnectionInfo,
        held: &mut HttpConnection,
        from: Side,
        data: &[u8],
    ) -> usize {
        let (state, mut cx) = self.connection(held, connection);
        state.data(&mut cx, from, data)
    }

    fn gap(
        &mut self,
        connection: &ConnectionInfo,
        held: &mut HttpConnection,
        from: Side,
        length: u64,
    ) {
        self.stats.gaps += 1;
        self.stats.gap_bytes += length;
        let (state, mut cx) = self.connection(held, connection);
        state.gap(&mut cx, from, length);
    }

    fn close(
        &mut self,
        connection: &ConnectionInfo,
        held: &mut HttpConnection,
        from: Side,
        reason: CloseReason,
    ) {
        // A direction may close before the connection carried any byte: the state must
        // remember it, or the other direction's close would never free the connection.
        let (state, mut cx) = self.connection(held, connection);
        if state.close(&mut cx, from, reason) {
            held.0 = None;
        }
    }
}
