//! tap's consumer of the pipeline. Each TCP connection the capture lets through is a session;
//! its two reassembled directions — "requests" and "responses", named by the configured role —
//! go to the session's outputs (listener and connector forwarders), its packets to the
//! recorder. The capture thread owns the sessions; the control plane and the stats monitor read
//! them through the shared [`Registry`], and `close_session` closes one from outside.

use super::config::Role;
use super::events::{Events, fields};
use crate::decode::Decoded;
use crate::flow::{EndReason, Endpoint, FlowKey, Side};
use crate::pipeline::{FlowConsumer, TrackedFlow};
use crate::reassembly::{CloseReason, ConnectionInfo, StreamHandler};
use crate::sink::control::Category;
use crate::sink::forward::{
    DropReason, FLUSH_DELAY, ForwardEvent, ForwardLimits, ForwardStats, Forwarder, PortAllocator,
};
use crate::sink::recorder::{PacketRecorder, RecorderCounters};
use crate::source::Packet;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A session's two byte streams, as downstream tools know them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Requests,
    Responses,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::Requests, Direction::Responses];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Requests => "requests",
            Direction::Responses => "responses",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// A consumer connects to a port tap listens on.
    Listener,
    /// tap dials the consumer.
    Connector,
}

impl OutputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Listener => "listener",
            OutputKind::Connector => "connector",
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Add to a counter only the capture thread writes (others only read it): a plain load and
/// store, without the locked add that would first wait for every earlier store — the output
/// copy's, to cold lines — to reach the cache.
fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

fn endpoint_text(e: &Endpoint) -> String {
    SocketAddr::new(e.ip, e.port).to_string()
}

/// Nanoseconds since the epoch as RFC 3339 UTC.
pub fn time_text(ns: i64) -> String {
    crate::time::Timestamp::micros(ns).to_string()
}

/// One direction's counters: written by the capture thread, read by anyone.
#[derive(Debug, Default)]
pub struct DirectionCounters {
    /// Reassembled bytes handed to the outputs.
    pub bytes: AtomicU64,
    pub gaps: AtomicU64,
    pub gap_bytes: AtomicU64,
    pub closed: AtomicBool,
}

struct Output {
    direction: Direction,
    kind: OutputKind,
    forwarder: Forwarder,
}

/// What the capture thread and `close_session` both change, under the session's lock.
#[derive(Default)]
struct SessionOutputs {
    outputs: Vec<Output>,
    /// Why the session closed, once it did.
    end: Option<&'static str>,
}

/// One tapped connection.
pub struct Session {
    /// The flow's id: unique for the run, also when a 5-tuple is reused.
    pub id: u64,
    /// The endpoint whose bytes are the requests, and the other.
    pub requester: Endpoint,
    pub responder: Endpoint,
    pub opened_ns: i64,
    pub last_ns: AtomicI64,
    pub packets: AtomicU64,
    pub counters: [DirectionCounters; 2],
    /// Listener ports (requests, responses), when the listener output has some.
    pub ports: Option<(u16, u16)>,
    /// File name of its recording.
    pub file_stem: Arc<str>,
    state: Mutex<SessionOutputs>,
}

impl Session {
    pub fn summary(&self) -> Map<String, Value> {
        let state = lock(&self.state);
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("requester".into(), json!(endpoint_text(&self.requester)));
        m.insert("responder".into(), json!(endpoint_text(&self.responder)));
        m.insert("opened".into(), json!(time_text(self.opened_ns)));
        m.insert(
            "last_packet".into(),
            json!(time_text(self.last_ns.load(Ordering::Relaxed))),
        );
        m.insert(
            "packets".into(),
            json!(self.packets.load(Ordering::Relaxed)),
        );
        let closed = self
            .counters
            .iter()
            .filter(|c| c.closed.load(Ordering::Relaxed));
        let state_text = match (state.end, closed.count()) {
            (Some(_), _) => "closed",
            (None, 0) => "open",
            (None, _) => "half_closed",
        };
        m.insert("state".into(), json!(state_text));
        if let Some(end) = state.end {
            m.insert("close_reason".into(), json!(end));
        }
        for d in Direction::BOTH {
            let c = &self.counters[d.index()];
            m.insert(
                d.as_str().into(),
                json!({
                    "bytes": c.bytes.load(Ordering::Relaxed),
                    "gaps": c.gaps.load(Ordering::Relaxed),
                    "gap_bytes": c.gap_bytes.load(Ordering::Relaxed),
                    "closed": c.closed.load(Ordering::Relaxed),
                }),
            );
        }
        if let Some((req, resp)) = self.ports {
            m.insert("ports".into(), json!({"requests": req, "responses": resp}));
        }
        let outputs: Vec<Value> = state
            .outputs
            .iter()
            .map(|o| output_json(o.direction, o.kind, &o.forwarder.stats()))
            .collect();
        m.insert("outputs".into(), Value::Array(outputs));
        m
    }

    fn outputs(&self) -> MutexGuard<'_, SessionOutputs> {
        lock(&self.state)
    }
}

fn output_json(direction: Direction, kind: OutputKind, stats: &ForwardStats) -> Value {
    json!({
        "direction": direction.as_str(),
        "output": kind.as_str(),
        "stats": stats,
    })
}

/// Bytes dropped per reason, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DropTotals {
    pub startup_buffer_full: u64,
    pub output_buffer_full: u64,
    pub not_connected: u64,
    pub write_error: u64,
    pub abandoned: u64,
    pub delivered: u64,
}

impl DropTotals {
    fn add(&mut self, s: &ForwardStats) {
        self.startup_buffer_full += s.dropped_startup_buffer_full;
        self.output_buffer_full += s.dropped_output_buffer_full;
        self.not_connected += s.dropped_not_connected;
        self.write_error += s.dropped_write_error;
        self.abandoned += s.abandoned;
        self.delivered += s.delivered;
    }

    fn add_totals(&mut self, other: &DropTotals) {
        self.startup_buffer_full += other.startup_buffer_full;
        self.output_buffer_full += other.output_buffer_full;
        self.not_connected += other.not_connected;
        self.write_error += other.write_error;
        self.abandoned += other.abandoned;
        self.delivered += other.delivered;
    }
}

/// Run-wide counters.
#[derive(Debug, Default)]
pub struct Totals {
    pub packets: AtomicU64,
    pub sessions_opened: AtomicU64,
    pub sessions_closed: AtomicU64,
    pub bytes: [AtomicU64; 2],
    pub gaps: AtomicU64,
    pub gap_bytes: AtomicU64,
    /// Sessions that got no listener ports (the range was exhausted).
    pub sessions_without_ports: AtomicU64,
    /// Reassembled bytes of sessions already closed by `close_session`.
    pub bytes_after_close: AtomicU64,
}

/// What the control plane and the monitor see of the run.
pub struct Registry {
    open: Mutex<BTreeMap<u64, Arc<Session>>>,
    pub totals: Totals,
    /// Output counters of sessions whose outputs are closed.
    closed_outputs: Mutex<DropTotals>,
    pub started: Instant,
    /// Listener ports come from here (None: no listener output).
    ports: Option<Mutex<PortAllocator>>,
    recorder: Option<RecorderCounters>,
}

impl Registry {
    pub fn new(ports: Option<PortAllocator>, recorder: Option<RecorderCounters>) -> Registry {
        Registry {
            open: Mutex::new(BTreeMap::new()),
            totals: Totals::default(),
            closed_outputs: Mutex::new(DropTotals::default()),
            started: Instant::now(),
            ports: ports.map(Mutex::new),
            recorder,
        }
    }

    /// Give a closed session's listener ports back.
    fn release_ports(&self, session: &Session, events: &Events) {
        if let (Some(allocator), Some((a, b))) = (&self.ports, session.ports) {
            let mut allocator = lock(allocator);
            allocator.release(a);
            allocator.release(b);
            events.ports_released(session, a, b);
        }
    }

    pub fn open_sessions(&self) -> Vec<Arc<Session>> {
        lock(&self.open).values().cloned().collect()
    }

    pub fn session(&self, id: u64) -> Option<Arc<Session>> {
        lock(&self.open).get(&id).cloned()
    }

    /// Output counters over every session, open and closed.
    pub fn outputs(&self) -> DropTotals {
        let mut totals = *lock(&self.closed_outputs);
        for session in self.open_sessions() {
            for o in &session.outputs().outputs {
                totals.add(&o.forwarder.stats());
            }
        }
        totals
    }

    pub fn stats(&self) -> Map<String, Value> {
        let t = &self.totals;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut m = Map::new();
        m.insert(
            "uptime_s".into(),
            json!(self.started.elapsed().as_secs_f64()),
        );
        m.insert("packets".into(), json!(get(&t.packets)));
        m.insert("sessions_open".into(), json!(lock(&self.open).len()));
        m.insert("sessions_opened".into(), json!(get(&t.sessions_opened)));
        m.insert("sessions_closed".into(), json!(get(&t.sessions_closed)));
        m.insert("requests_bytes".into(), json!(get(&t.bytes[0])));
        m.insert("responses_bytes".into(), json!(get(&t.bytes[1])));
        m.insert("gaps".into(), json!(get(&t.gaps)));
        m.insert("gap_bytes".into(), json!(get(&t.gap_bytes)));
        m.insert(
            "sessions_without_ports".into(),
            json!(get(&t.sessions_without_ports)),
        );
        m.insert("bytes_after_close".into(), json!(get(&t.bytes_after_close)));
        m.insert("outputs".into(), json!(self.outputs()));
        if let Some(recorder) = &self.recorder {
            m.insert("pcap".into(), json!(recorder.snapshot()));
        }
        m
    }

    /// Close a session from outside the capture (`close_session`): its outputs stop now.
    pub fn close_session(&self, id: u64, events: &Events) -> bool {
        let Some(session) = lock(&self.open).remove(&id) else {
            return false;
        };
        let outputs = {
            let mut state = session.outputs();
            if state.end.is_some() {
                return false;
            }
            state.end = Some("closed_by_control");
            std::mem::take(&mut state.outputs)
        };
        let finals: Vec<_> = outputs
            .into_iter()
            .map(|o| (o.direction, o.kind, o.forwarder.abort()))
            .collect();
        let mut totals = DropTotals::default();
        for (_, _, stats) in &finals {
            totals.add(stats);
        }
        lock(&self.closed_outputs).add_totals(&totals);
        self.release_ports(&session, events);
        self.totals.sessions_closed.fetch_add(1, Ordering::Relaxed);
        events.session_closed(&session, "closed_by_control");
        events.session_summary(&session, "closed_by_control", &finals);
        true
    }
}

/// How long bytes may gather before a write when the input is a file read as fast as the
/// consumers accept: nobody watches in real time, and hundreds of concurrent streams each get
/// a chunk only every few milliseconds, so a short delay would mean a write per chunk.
const BATCH_FLUSH_DELAY: Duration = Duration::from_millis(250);

/// Packets between two looks at the clock for the outputs the capture thread writes itself.
const FLUSH_CHECK_PACKETS: u32 = 1024;

/// Where and how sessions' outputs are made.
pub struct OutputPlan {
    pub listener_stall: Option<Duration>,
    /// Connector targets (requests, responses) and timeouts (None: no connector output).
    pub connector: Option<ConnectorPlan>,
    /// Startup buffer per direction, and every output's buffer cap.
    pub startup_bytes: [usize; 2],
    pub max_buffer_bytes: usize,
    /// Offline without pacing: wait for a connected consumer's room up to this long without
    /// progress (the input waits for the downstreams); None: never wait (live, paced).
    pub wait_for_consumers: Option<Duration>,
    pub drain_timeout: Duration,
}

pub struct ConnectorPlan {
    pub targets: [Vec<SocketAddr>; 2],
    pub connect_timeout: Duration,
    pub retry_every: Duration,
}

/// Which endpoint's bytes are the requests.
pub struct DirectionRule {
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    pub role: Role,
}

impl DirectionRule {
    /// The side that sends the requests: the local side when we are the client, the remote
    /// one when we are the server. A connection that does not touch the remote endpoint (a
    /// custom filter let it through) takes its TCP client as the requester.
    pub fn requester(&self, key: &FlowKey, client: Option<Side>) -> Side {
        let is_remote = |e: &Endpoint| e.ip == self.remote_ip && e.port == self.remote_port;
        let remote = if is_remote(&key.a) {
            Some(Side::A)
        } else if is_remote(&key.b) {
            Some(Side::B)
        } else {
            None
        };
        match (remote, self.role) {
            (Some(r), Role::Client) => r.other(),
            (Some(r), Role::Server) => r,
            (None, _) => client.unwrap_or(if key.a.port < key.b.port {
                Side::B
            } else {
                Side::A
            }),
        }
    }
}

/// Per tapped connection, carried by the reassembler's connection on the capture thread.
pub struct Tapped {
    session: Arc<Session>,
    /// The requester's side in the flow key.
    requester: Side,
}

/// The capture thread's side of tap.
pub struct Tap {
    rule: DirectionRule,
    plan: OutputPlan,
    registry: Arc<Registry>,
    events: Events,
    recorder: Option<PacketRecorder>,
    /// Sessions whose outputs are draining, on their own threads.
    closing: Vec<JoinHandle<()>>,
    /// When the outputs the capture thread writes (input that waits for the consumers) last
    /// wrote what had gathered, and packets since the clock was read.
    flushed_at: Instant,
    packets_unflushed: u32,
}

fn side_endpoint(key: &FlowKey, side: Side) -> Endpoint {
    match side {
        Side::A => key.a,
        Side::B => key.b,
    }
}

/// `10.99.0.1_40000` / `2001-db8--1_21`: an endpoint in a file name.
fn endpoint_in_name(e: &Endpoint) -> String {
    format!("{}_{}", e.ip.to_string().replace(':', "-"), e.port)
}

impl Tap {
    pub fn new(
        rule: DirectionRule,
        plan: OutputPlan,
        registry: Arc<Registry>,
        events: Events,
        recorder: Option<PacketRecorder>,
    ) -> Tap {
        Tap {
            rule,
            plan,
            registry,
            events,
            recorder,
            closing: Vec::new(),
            flushed_at: Instant::now(),
            packets_unflushed: 0,
        }
    }

    /// Open the session of a connection at its first segment.
    fn open_session(&mut self, id: u64, key: &FlowKey, client: Option<Side>, ts_ns: i64) -> Tapped {
        let requester = self.rule.requester(key, client);
        let (req, resp) = (
            side_endpoint(key, requester),
            side_endpoint(key, requester.other()),
        );
        let mut outputs = Vec::new();
        let mut ports = None;
        if let Some(allocator) = &self.registry.ports {
            let allocated = lock(allocator).allocate();
            match allocated {
                Ok((requests, responses)) => {
                    let pair = (
                        requests.local_addr().map_or(0, |a| a.port()),
                        responses.local_addr().map_or(0, |a| a.port()),
                    );
                    for (direction, listener) in
                        Direction::BOTH.into_iter().zip([requests, responses])
                    {
                        let port = if direction == Direction::Requests {
                            pair.0
                        } else {
                            pair.1
                        };
                        match Forwarder::listen(
                            listener,
                            self.limits(direction, self.plan.listener_stall),
                            self.callback(id, direction, OutputKind::Listener),
                        ) {
                            Ok(forwarder) => outputs.push(Output {
                                direction,
                                kind: OutputKind::Listener,
                                forwarder,
                            }),
                            Err(e) => {
                                tracing::warn!(session = id, port, "cannot start a listener: {e}");
                                lock(allocator).release(port);
                            }
                        }
                    }
                    ports = Some(pair);
                }
                Err(e) => {
                    self.registry
                        .totals
                        .sessions_without_ports
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(session = id, "no listener ports for this session: {e}");
                }
            }
        }
        if let Some(connector) = &self.plan.connector {
            // Input that waits for the consumers writes to them on this thread while it can.
            let connect = if self.plan.wait_for_consumers.is_some() {
                Forwarder::connect_inline
            } else {
                Forwarder::connect
            };
            for direction in Direction::BOTH {
                match connect(
                    connector.targets[direction.index()].clone(),
                    connector.connect_timeout,
                    connector.retry_every,
                    self.limits(direction, None),
                    self.callback(id, direction, OutputKind::Connector),
                ) {
                    Ok(forwarder) => outputs.push(Output {
                        direction,
                        kind: OutputKind::Connector,
                        forwarder,
                    }),
                    Err(e) => tracing::warn!(session = id, "cannot start a connector: {e}"),
                }
            }
        }
        let session = Arc::new(Session {
            id,
            requester: req,
            responder: resp,
            opened_ns: ts_ns,
            last_ns: AtomicI64::new(ts_ns),
            packets: AtomicU64::new(0),
            counters: Default::default(),
            ports,
            file_stem: format!(
                "session-{id}-{}-{}",
                endpoint_in_name(&req),
                endpoint_in_name(&resp)
            )
            .into(),
            state: Mutex::new(SessionOutputs { outputs, end: None }),
        });
        lock(&self.registry.open).insert(id, Arc::clone(&session));
        self.registry
            .totals
            .sessions_opened
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            session = id,
            requester = %endpoint_text(&req),
            responder = %endpoint_text(&resp),
            "session opened"
        );
        self.events.session_opened(&session);
        if let Some((requests, responses)) = ports {
            self.events.ports_allocated(&session, requests, responses);
        }
        Tapped { session, requester }
    }

    fn limits(&self, direction: Direction, stall: Option<Duration>) -> ForwardLimits {
        ForwardLimits {
            startup_bytes: self.plan.startup_bytes[direction.index()],
            max_buffer_bytes: self.plan.max_buffer_bytes,
            stall_after: stall,
            flush_delay: if self.plan.wait_for_consumers.is_some() {
                BATCH_FLUSH_DELAY
            } else {
                FLUSH_DELAY
            },
        }
    }

    fn callback(
        &self,
        session: u64,
        direction: Direction,
        kind: OutputKind,
    ) -> crate::sink::forward::EventCallback {
        let events = self.events.clone();
        Box::new(move |event| events.output_event(session, direction, kind, &event))
    }

    /// End a session: its outputs drain (on a thread of their own when that means waiting),
    /// then its ports return.
    fn end(&mut self, session: &Arc<Session>, reason: &'static str, ts_ns: i64) {
        let (id, session) = (session.id, Arc::clone(session));
        let outputs = {
            let mut state = session.outputs();
            if state.end.is_some() {
                return;
            }
            state.end = Some(reason);
            std::mem::take(&mut state.outputs)
        };
        lock(&self.registry.open).remove(&id);
        self.registry
            .totals
            .sessions_closed
            .fetch_add(1, Ordering::Relaxed);
        if let Some(recorder) = &self.recorder {
            recorder.session_ended(id, ts_ns);
        }
        tracing::info!(session = id, reason, "session closed");
        self.events.session_closed(&session, reason);
        let deadline = Instant::now() + self.plan.drain_timeout;
        let registry = Arc::clone(&self.registry);
        let events = self.events.clone();
        let drained = outputs.iter().all(|o| o.forwarder.is_done());
        let drain = move || {
            let mut finals = Vec::new();
            for o in outputs {
                let stats = o.forwarder.close(deadline);
                finals.push((o.direction, o.kind, stats));
            }
            let mut totals = DropTotals::default();
            for (_, _, stats) in &finals {
                totals.add(stats);
            }
            lock(&registry.closed_outputs).add_totals(&totals);
            registry.release_ports(&session, &events);
            events.session_summary(&session, reason, &finals);
        };
        if drained {
            // Nothing left to wait for (the outputs were written on this thread).
            drain();
            return;
        }
        self.closing.retain(|h| !h.is_finished());
        match std::thread::Builder::new()
            .name(format!("tap-close-{id}"))
            .stack_size(64 * 1024)
            .spawn(drain)
        {
            Ok(handle) => self.closing.push(handle),
            Err(e) => tracing::error!(
                session = id,
                "cannot start a thread to close a session: {e}"
            ),
        }
    }

    /// Every [`BATCH_FLUSH_DELAY`], the outputs this thread writes write what has gathered, as a
    /// writer thread does after its flush delay: a quiet session's bytes do not wait for its
    /// end, and a consumer that is not there is noticed (a thread then dials it).
    fn flush_when_due(&mut self) {
        self.packets_unflushed += 1;
        if self.packets_unflushed < FLUSH_CHECK_PACKETS {
            return;
        }
        self.packets_unflushed = 0;
        let now = Instant::now();
        if now - self.flushed_at < BATCH_FLUSH_DELAY {
            return;
        }
        self.flushed_at = now;
        for session in self.registry.open_sessions() {
            for o in &session.outputs().outputs {
                o.forwarder.flush();
            }
        }
    }

    /// Wait for every closing session to drain (each bounded by the drain timeout), then stop
    /// the recorder.
    pub fn finish(mut self) -> Option<crate::sink::recorder::RecorderStats> {
        for handle in self.closing.drain(..) {
            let _ = handle.join();
        }
        self.recorder.take().map(PacketRecorder::finish)
    }
}

impl StreamHandler for Tap {
    type State = Tapped;

    fn open(&mut self, connection: &ConnectionInfo) -> Tapped {
        self.open_session(
            connection.id,
            &connection.key,
            connection.client,
            connection.ts_ns,
        )
    }

    fn data(&mut self, _: &ConnectionInfo, tapped: &mut Tapped, from: Side, data: &[u8]) -> usize {
        let direction = direction_of(from, tapped.requester);
        let session = &tapped.session;
        let state = session.outputs();
        if state.end.is_some() {
            add(&self.registry.totals.bytes_after_close, data.len() as u64);
            return data.len();
        }
        add(
            &session.counters[direction.index()].bytes,
            data.len() as u64,
        );
        add(
            &self.registry.totals.bytes[direction.index()],
            data.len() as u64,
        );
        for o in state.outputs.iter().filter(|o| o.direction == direction) {
            // A drop is counted by the forwarder and announced once per reason by its events.
            let _: Result<(), DropReason> = match self.plan.wait_for_consumers {
                Some(stall) => o.forwarder.send_waiting(data, stall),
                None => o.forwarder.send(data),
            };
        }
        data.len()
    }

    fn gap(&mut self, _: &ConnectionInfo, tapped: &mut Tapped, from: Side, length: u64) {
        let direction = direction_of(from, tapped.requester);
        let session = &tapped.session;
        let c = &session.counters[direction.index()];
        add(&c.gaps, 1);
        add(&c.gap_bytes, length);
        let totals = &self.registry.totals;
        add(&totals.gaps, 1);
        add(&totals.gap_bytes, length);
        tracing::debug!(
            session = session.id,
            direction = direction.as_str(),
            bytes = length,
            "gap"
        );
        self.events.gap(session, direction, length);
    }

    fn close(
        &mut self,
        connection: &ConnectionInfo,
        tapped: &mut Tapped,
        from: Side,
        reason: CloseReason,
    ) {
        let direction = direction_of(from, tapped.requester);
        let session = &tapped.session;
        let why = match reason {
            CloseReason::Fin => "fin",
            CloseReason::Reset => "reset",
            CloseReason::Expired => "idle",
            CloseReason::End => "input_ended",
        };
        {
            let state = session.outputs();
            if state.end.is_none() {
                for o in state.outputs.iter().filter(|o| o.direction == direction) {
                    o.forwarder.finish();
                }
            }
        }
        session.counters[direction.index()]
            .closed
            .store(true, Ordering::Relaxed);
        if reason == CloseReason::Fin {
            self.events.half_closed(session, direction, why);
        }
        if session
            .counters
            .iter()
            .all(|c| c.closed.load(Ordering::Relaxed))
        {
            self.end(session, why, connection.ts_ns);
        }
    }
}

fn direction_of(from: Side, requester: Side) -> Direction {
    if from == requester {
        Direction::Requests
    } else {
        Direction::Responses
    }
}

impl FlowConsumer for Tap {
    type ConnectionState = Tapped;

    fn packet(
        &mut self,
        packet: &Packet<'_>,
        _: &Decoded<'_>,
        flow: Option<(&TrackedFlow<Tapped>, Side)>,
    ) {
        add(&self.registry.totals.packets, 1);
        if self.plan.wait_for_consumers.is_some() {
            self.flush_when_due();
        }
        // Every TCP packet was reassembled first, so its connection (and session) exists.
        let Some(connection) = flow.and_then(|(f, _)| f.data.connection.as_ref()) else {
            return;
        };
        let session = &connection.state().session;
        add(&session.packets, 1);
        session.last_ns.store(packet.ts_ns, Ordering::Relaxed);
        if let Some(recorder) = &self.recorder {
            recorder.record(
                session.id,
                &session.file_stem,
                packet.ts_ns,
                packet.link_type.0,
                packet.data,
                packet.orig_len,
            );
        }
    }

    fn flow_ended(&mut self, flow: TrackedFlow<Tapped>, reason: EndReason) {
        let why = match reason {
            EndReason::End => "input_ended",
            EndReason::Idle => "idle",
            EndReason::Evicted => "evicted",
            EndReason::Replaced => "replaced",
        };
        if let Some(connection) = &flow.data.connection {
            self.end(&connection.state().session, why, flow.last_ns);
        }
    }

    fn stream_handler(&mut self) -> Option<&mut dyn StreamHandler<State = Tapped>> {
        Some(self)
    }

    fn publish(&self, metrics: &crate::metrics::Metrics) {
        let totals = &self.registry.totals;
        metrics.publish_streams(crate::metrics::StreamCounts {
            gaps: totals.gaps.load(Ordering::Relaxed),
            gap_bytes: totals.gap_bytes.load(Ordering::Relaxed),
        });
    }
}

/// Set once running out of file descriptors has been reported.
static DESCRIPTORS_WARNED: AtomicBool = AtomicBool::new(false);

/// Events of a drained session's outputs, for its summary.
pub type OutputFinals = [(Direction, OutputKind, ForwardStats)];

impl Events {
    /// A forwarder's event: logged, and published in the `output` category.
    fn output_event(
        &self,
        session: u64,
        direction: Direction,
        kind: OutputKind,
        event: &ForwardEvent,
    ) {
        let (d, o) = (direction.as_str(), kind.as_str());
        let (name, extra): (&str, Vec<(&str, Value)>) = match event {
            ForwardEvent::Listening { port } => ("listening", vec![("port", json!(port))]),
            ForwardEvent::Connected { peer } => {
                tracing::info!(session, direction = d, output = o, %peer, "consumer connected");
                ("connected", vec![("peer", json!(peer.to_string()))])
            }
            ForwardEvent::Disconnected { reason } => {
                tracing::warn!(
                    session,
                    direction = d,
                    output = o,
                    "consumer gone: {reason}"
                );
                ("disconnected", vec![("reason", json!(reason))])
            }
            ForwardEvent::ConnectFailed {
                reason,
                out_of_descriptors,
            } => {
                // A consumer that is not up yet fails every retry: that is only worth a debug
                // line. A process out of descriptors is tap's own limit and costs every new
                // session its outputs: said once, loudly.
                if *out_of_descriptors && !DESCRIPTORS_WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        session,
                        direction = d,
                        "connect failed: {reason}; tap has no file descriptor left for the \
                         sockets of new sessions, whose data waits and is dropped: raise the \
                         limit (ulimit -n)"
                    );
                } else {
                    tracing::debug!(session, direction = d, "connect failed: {reason}");
                }
                ("connect_failed", vec![("reason", json!(reason))])
            }
            ForwardEvent::Stalled { blocked_for } => {
                let seconds = blocked_for.as_secs_f64();
                tracing::warn!(
                    session,
                    direction = d,
                    output = o,
                    "consumer stalled {seconds:.1} s"
                );
                ("stalled", vec![("seconds", json!(seconds))])
            }
            ForwardEvent::Dropped { reason, bytes } => {
                let reason = reason.as_str();
                tracing::warn!(
                    session,
                    direction = d,
                    output = o,
                    reason,
                    bytes,
                    "first drop"
                );
                (
                    "drop",
                    vec![("reason", json!(reason)), ("bytes", json!(bytes))],
                )
            }
            ForwardEvent::Finished => ("finished", Vec::new()),
        };
        self.publish_with(Category::Output, name, || {
            let mut m = fields([
                ("session", json!(session)),
                ("direction", json!(d)),
                ("output", json!(o)),
            ]);
            m.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
            m
        });
    }
}

/// The events about sessions, by category.
impl Events {
    fn session_fields<const N: usize>(
        session: &Session,
        extra: [(&str, Value); N],
    ) -> Map<String, Value> {
        let mut m = fields([
            ("session", json!(session.id)),
            ("requester", json!(endpoint_text(&session.requester))),
            ("responder", json!(endpoint_text(&session.responder))),
        ]);
        m.extend(fields(extra));
        m
    }

    fn session_opened(&self, session: &Session) {
        self.publish_with(Category::Session, "open", || {
            Self::session_fields(
                session,
                [("packet_time", json!(time_text(session.opened_ns)))],
            )
        });
    }

    fn half_closed(&self, session: &Session, direction: Direction, reason: &str) {
        self.publish_with(Category::Session, "half_close", || {
            Self::session_fields(
                session,
                [
                    ("direction", json!(direction.as_str())),
                    ("reason", json!(reason)),
                ],
            )
        });
    }

    pub fn session_closed(&self, session: &Session, reason: &str) {
        self.publish_with(Category::Session, "close", || {
            Self::session_fields(session, [("reason", json!(reason))])
        });
    }

    /// After the outputs drained: what each delivered and dropped.
    fn session_summary(&self, session: &Session, reason: &str, finals: &OutputFinals) {
        self.publish_with(Category::Session, "summary", || {
            let mut m = session.summary();
            let outputs: Vec<Value> = finals
                .iter()
                .map(|(d, k, s)| output_json(*d, *k, s))
                .collect();
            m.extend(fields([
                ("session", json!(session.id)),
                ("reason", json!(reason)),
                ("outputs", Value::Array(outputs)),
            ]));
            m
        });
    }

    fn ports_allocated(&self, session: &Session, requests: u16, responses: u16) {
        tracing::info!(
            session = session.id,
            requester = %endpoint_text(&session.requester),
            requests_port = requests,
            responses_port = responses,
            "listening for consumers"
        );
        self.publish_with(Category::Ports, "allocated", || {
            Self::session_fields(
                session,
                [
                    ("requests_port", json!(requests)),
                    ("responses_port", json!(responses)),
                ],
            )
        });
    }

    fn ports_released(&self, session: &Session, requests: u16, responses: u16) {
        self.publish_with(Category::Ports, "released", || {
            fields([
                ("session", json!(session.id)),
                ("requests_port", json!(requests)),
                ("responses_port", json!(responses)),
            ])
        });
    }

    fn gap(&self, session: &Session, direction: Direction, bytes: u64) {
        self.publish_with(Category::Flow, "gap", || {
            fields([
                ("session", json!(session.id)),
                ("direction", json!(direction.as_str())),
                ("bytes", json!(bytes)),
            ])
        });
    }
}
