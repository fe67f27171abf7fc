//! Forwarding one byte stream to one downstream consumer over TCP, for `tap`: each direction of a
//! reassembled session goes to its own socket. The capture thread only appends to a bounded
//! buffer and never waits for the consumer; one background thread per forwarder accepts (a
//! listener) or dials (a connector) the consumer and writes what has gathered in large writes.
//!
//! Until the first consumer connects, data waits in a startup buffer, so a consumer that attaches
//! a moment late still sees the stream from its start. After that, data offered while nobody is
//! connected is dropped: the next consumer starts with live data.
//!
//! Accounting is exact: every byte given to `send` ends up in exactly one of `delivered` (the
//! kernel accepted it), one drop reason, `abandoned` (still pending when `close` gave up) or
//! `pending`. A chunk is kept or dropped whole, never split.
//!
//! A connector made by [`Forwarder::connect_inline`], for input read as fast as the consumers
//! accept it, starts no thread while it need not wait: the caller's thread dials without waiting
//! and writes full batches and the end of the stream itself, since on one core a thread per
//! stream (its creation, its stack, a wakeup per batch) costs more than the writes. A thread
//! takes over the connection the moment waiting is needed: the consumer is not there at once, its
//! socket is full, or `close` must wait for it.
//!
//! Wakeups are batched: `send` wakes the writer only when it waits on an empty buffer; the writer
//! then lets data gather for up to the limits' `flush_delay` ([`FLUSH_DELAY`] live) unless a batch
//! fills first. At 1.4 KB per chunk that is two wakeups per batch instead of one per chunk, for at
//! most ~2 ms of added latency. When hundreds of streams share the input, each one's chunks come
//! too far apart to gather in 2 ms; a reader of files that wants throughput, not latency, gives a
//! longer delay so that writes stay large.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tracing::debug;

/// Pending bytes that make the writer write at once instead of after the flush delay (half the
/// output buffer when that is smaller). Each write costs the kernel a fixed share besides the
/// copy; past 128 KiB the buffers of hundreds of concurrent streams outgrow the caches instead.
pub const BATCH_BYTES: usize = 128 * 1024;

/// Pending bytes that a forwarder's buffer grows to by doubling; past them it is given room for
/// a whole batch (see `gather`).
const SMALL_PENDING: usize = 8 * 1024;

/// Room beyond a batch for the chunk that completes it, so that chunk needs no reallocation.
const BATCH_SLACK: usize = 16 * 1024;

/// How long the writer lets a small amount of data gather before writing it, for live use.
pub const FLUSH_DELAY: Duration = Duration::from_millis(2);

/// The most one write call is given: written bytes are counted, and buffer room freed, after each
/// call, so a long batch shows progress while the consumer reads it.
const WRITE_SLICE: usize = 256 * 1024;

/// A write blocked this long returns (the socket's send timeout), so the writer can notice a stall
/// or a shutdown.
const WRITE_WAKEUP: Duration = Duration::from_millis(50);

/// How often an idle writer looks whether the consumer reset the connection, and discards what
/// the consumer sent.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// One wait for a consumer to connect to a listener, between looks at shutdown.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// Buffer capacity an idle writer keeps; a burst's larger buffers are given back, since tap may
/// hold hundreds of mostly idle forwarders.
const IDLE_CAPACITY: usize = 4 * BATCH_BYTES;

/// The writer thread's stack: it only writes and calls the event callback (which may log).
const WRITER_STACK: usize = 128 * 1024;

/// After `close` gave up, how long it waits for the writer thread to end so it can be joined; a
/// writer still in a connection attempt ends on its own later.
const JOIN_GRACE: Duration = Duration::from_millis(100);

/// Why a chunk (or part of a batch) was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// No consumer has connected yet and the chunk did not fit in the startup buffer.
    StartupBufferFull,
    /// The consumer is connected but reads slower than data arrives.
    OutputBufferFull,
    /// A consumer was connected before, and none is now.
    NotConnected,
    /// The connection broke with these bytes taken for writing or still pending.
    WriteError,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::StartupBufferFull => "startup_buffer_full",
            DropReason::OutputBufferFull => "output_buffer_full",
            DropReason::NotConnected => "not_connected",
            DropReason::WriteError => "write_error",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The byte limits of one forwarder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardLimits {
    /// Bytes kept for the first consumer while none has connected yet.
    pub startup_bytes: usize,
    /// Bytes not yet written (taken for writing included) while a consumer is connected.
    pub max_buffer_bytes: usize,
    /// A write blocked longer than this is reported as a stall (the consumer stopped reading).
    pub stall_after: Option<Duration>,
    /// How long a small amount of data may gather before it is written.
    pub flush_delay: Duration,
}

/// What happened to a forwarder, for the caller to log or announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardEvent {
    /// The writer thread started waiting for consumers on this port.
    Listening {
        port: u16,
    },
    Connected {
        peer: SocketAddr,
    },
    /// The consumer's connection broke; data is dropped until the next one.
    Disconnected {
        reason: String,
    },
    /// One round of connection attempts (every address once) failed; the next comes after the
    /// retry interval.
    ConnectFailed {
        reason: String,
        /// The process had no file descriptor left for the socket (EMFILE/ENFILE): the cure
        /// is a higher limit, not a consumer that answers.
        out_of_descriptors: bool,
    },
    /// A write made no progress for this long: the consumer stopped reading. Once per stall.
    Stalled {
        blocked_for: Duration,
    },
    /// The first drop for this reason, with the size of that drop; later drops are only counted.
    Dropped {
        reason: DropReason,
        bytes: u64,
    },
    /// Everything was delivered after `finish` and the consumer was sent end-of-stream.
    Finished,
}

/// Called from the writer thread, or from the thread calling `send` for [`ForwardEvent::Dropped`];
/// it must be cheap.
pub type EventCallback = Box<dyn Fn(ForwardEvent) + Send + Sync>;

/// What became of the bytes so far. `sent` always equals `delivered + pending + abandoned` plus
/// the four drop counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ForwardStats {
    /// Bytes offered to `send`.
    pub sent: u64,
    /// Bytes the kernel accepted for the consumer's socket.
    pub delivered: u64,
    /// Bytes buffered or being written.
    pub pending: u64,
    pub dropped_startup_buffer_full: u64,
    pub dropped_output_buffer_full: u64,
    pub dropped_not_connected: u64,
    pub dropped_write_error: u64,
    /// Bytes still pending when `close` reached its deadline, or at `abort`.
    pub abandoned: u64,
    /// Consumer connections made so far.
    pub connections: u64,
    pub connected: bool,
    /// Writes that made no progress for `stall_after`.
    pub stalls: u64,
}

impl ForwardStats {
    fn dropped_mut(&mut self, reason: DropReason) -> &mut u64 {
        match reason {
            DropReason::StartupBufferFull => &mut self.dropped_startup_buffer_full,
            DropReason::OutputBufferFull => &mut self.dropped_output_buffer_full,
            DropReason::NotConnected => &mut self.dropped_not_connected,
            DropReason::WriteError => &mut self.dropped_write_error,
        }
    }
}

/// Forwards one byte stream to one consumer socket. `send` never blocks on the consumer; a
/// background thread does the connecting and writing (the caller, for `connect_inline`, while
/// nothing needs waiting for). Dropping it without `close` aborts.
pub struct Forwarder {
    shared: Arc<Shared>,
    port: Option<u16>,
    /// Until `close`, `abort` or drop has run.
    open: bool,
}

impl Forwarder {
    /// Forward to consumers that connect to `listener`, one at a time.
    pub fn listen(
        listener: TcpListener,
        limits: ForwardLimits,
        events: EventCallback,
    ) -> io::Result<Forwarder> {
        // Accepting polls, so a shutdown never waits for a consumer that does not come.
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        Forwarder::start(
            format!("forward-{port}"),
            Some(port),
            Target::Listener { listener, port },
            limits,
            events,
            None,
        )
    }

    /// Forward to a consumer at the first of `addrs` that answers, dialling again every
    /// `retry_every` while none does. Each attempt may take `connect_timeout`; `close` does not
    /// cut an attempt short, so keep it a few seconds at most.
    pub fn connect(
        addrs: Vec<SocketAddr>,
        connect_timeout: Duration,
        retry_every: Duration,
        limits: ForwardLimits,
        events: EventCallback,
    ) -> io::Result<Forwarder> {
        let (name, _, target) = connector(addrs, connect_timeout, retry_every)?;
        Forwarder::start(name, None, target, limits, events, None)
    }

    /// `connect`, with the caller writing while nothing needs waiting for (see the module doc):
    /// the first of `addrs` is dialled without waiting, and the caller's `send`, `finish` and
    /// `flush` write to it. A writer thread takes over, as `connect`'s does, when the consumer
    /// does not answer at once, its socket fills, or `close` must wait.
    pub fn connect_inline(
        addrs: Vec<SocketAddr>,
        connect_timeout: Duration,
        retry_every: Duration,
        limits: ForwardLimits,
        events: EventCallback,
    ) -> io::Result<Forwarder> {
        let (name, first, target) = connector(addrs, connect_timeout, retry_every)?;
        // A dial that fails at once is left to the writer thread, which tries every address.
        let inline = dial_without_waiting(first).ok();
        Forwarder::start(name, None, target, limits, events, inline)
    }

    fn start(
        name: String,
        port: Option<u16>,
        target: Target,
        limits: ForwardLimits,
        events: EventCallback,
        inline: Option<Inline>,
    ) -> io::Result<Forwarder> {
        let caller_writes = inline.is_some();
        let shared = Arc::new(Shared {
            limits,
            // A small output buffer is written when half full, so the capture side keeps room.
            batch_bytes: BATCH_BYTES.min(limits.max_buffer_bytes / 2).max(1),
            state: Mutex::new(State {
                phase: Phase::Startup,
                pending: Vec::new(),
                in_flight: 0,
                activity: Activity::Busy,
                finishing: false,
                stopping: false,
                done: false,
                writer: Writer::Caller { name, target },
                inline,
                socket: None,
                direct: None,
                direct_spare: Vec::new(),
                watchers: 0,
                announced: [false; 4],
                stats: ForwardStats::default(),
            }),
            wake: Condvar::new(),
            progress: Condvar::new(),
            events,
        });
        if !caller_writes {
            spawn_writer(&shared, &mut shared.lock())?;
        }
        Ok(Forwarder {
            shared,
            port,
            open: true,
        })
    }

    /// Offer one chunk; never waits for the consumer. Err when the chunk was dropped (and
    /// counted).
    pub fn send(&self, data: &[u8]) -> Result<(), DropReason> {
        if data.is_empty() {
            return Ok(());
        }
        let mut state = self.shared.lock();
        state.stats.sent += data.len() as u64;
        if state.caller_writes() {
            match self.send_inline(state, data) {
                Ok(()) => return Ok(()),
                Err(back) => state = back,
            }
        }
        let (limit, reason) = state.limit(&self.shared.limits);
        if state.queued() + data.len() > limit {
            return self.shared.drop_chunk(state, reason, data.len());
        }
        self.shared.append(state, data);
        Ok(())
    }

    /// Offer one chunk, for input read as fast as the consumer takes it: while a consumer is
    /// connected and its buffer full, wait for room as long as the consumer makes progress, and
    /// drop the chunk (as [`DropReason::OutputBufferFull`]) after `stall` without any. With no
    /// consumer connected this is `send`: nothing waits for a consumer that is absent.
    pub fn send_waiting(&self, data: &[u8], stall: Duration) -> Result<(), DropReason> {
        if data.is_empty() {
            return Ok(());
        }
        let shared = &*self.shared;
        let mut state = shared.lock();
        state.stats.sent += data.len() as u64;
        if state.caller_writes() {
            match self.send_inline(state, data) {
                Ok(()) => return Ok(()),
                Err(back) => state = back,
            }
        }
        let mut delivered = state.stats.delivered;
        let mut last_progress = Instant::now();
        loop {
            let (limit, reason) = state.limit(&shared.limits);
            if state.queued() + data.len() <= limit {
                if state.phase != Phase::Connected {
                    shared.append(state, data);
                    return Ok(());
                }
                // The writer thread is left asleep: full batches are written here, and what
                // stays below a batch is written by the writer at its next idle look or at
                // `finish`.
                gather(&mut state.pending, data, shared.batch_bytes);
                if state.in_flight == 0
                    && state.pending.len() >= shared.batch_bytes
                    && let Some(stream) = state.direct.clone()
                {
                    return self.write_directly(state, &stream, stall, data.len());
                }
                return Ok(());
            }
            if state.phase != Phase::Connected || data.len() > limit {
                return shared.drop_chunk(state, reason, data.len());
            }
            let now = Instant::now();
            if state.stats.delivered != delivered {
                delivered = state.stats.delivered;
                last_progress = now;
            }
            let waited = now - last_progress;
            if waited >= stall {
                return shared.drop_chunk(state, reason, data.len());
            }
            // A full buffer is worth writing now, even if the writer meant to gather more.
            if state.activity != Activity::Busy {
                state.activity = Activity::Busy;
                shared.wake.notify_one();
            }
            state.watchers += 1;
            state = shared.wait_progress(state, stall - waited);
            state.watchers -= 1;
        }
    }

    /// Write the pending batch on the calling thread, waiting for the socket as long as the
    /// consumer makes progress: `send_waiting`'s caller may wait, and on one core the writer
    /// thread's wakeups (a context switch each) cost more than the writes. When the consumer
    /// makes no progress for `stall`, the chunk just added (the last `chunk` bytes) is dropped
    /// whole as [`DropReason::OutputBufferFull`] if none of it went out, and the older bytes go
    /// back to the writer thread; a failed write loses the batch as a write error and shuts the
    /// socket down, so the writer thread sees the consumer gone.
    fn write_directly(
        &self,
        mut state: MutexGuard<'_, State>,
        stream: &TcpStream,
        stall: Duration,
        chunk: usize,
    ) -> Result<(), DropReason> {
        let shared = &*self.shared;
        let mut batch = std::mem::take(&mut state.direct_spare);
        std::mem::swap(&mut batch, &mut state.pending);
        state.in_flight = batch.len();
        drop(state);
        let mut written = 0;
        let mut last_progress = Instant::now();
        let mut failure = None;
        while written < batch.len() {
            let (sent, error) = send_without_waiting(stream, &batch[written..]);
            written += sent;
            if error.is_some() {
                failure = error;
                break;
            }
            if sent > 0 {
                last_progress = Instant::now();
            }
            if written == batch.len() {
                break;
            }
            let waited = last_progress.elapsed();
            if waited >= stall || shared.lock().stopping {
                break;
            }
            poll_fd(
                stream.as_raw_fd(),
                libc::POLLOUT,
                (stall - waited).min(WRITE_WAKEUP),
            );
        }
        let rest = batch.len() - written;
        let mut state = shared.lock();
        state.stats.delivered += written as u64;
        state.in_flight = 0;
        if state.watchers > 0 {
            shared.progress.notify_all();
        }
        let outcome = if rest == 0 {
            Ok(())
        } else if state.stopping {
            state.stats.abandoned += rest as u64;
            Ok(())
        } else if let Some(error) = failure {
            let _ = stream.shutdown(Shutdown::Both);
            debug!(%error, "writing to the consumer failed");
            batch.clear();
            state.direct_spare = batch;
            return shared.drop_chunk(state, DropReason::WriteError, rest);
        } else {
            // Stalled: only the other thread's writes are left; the newest chunk goes whole.
            let dropped = if rest >= chunk { chunk } else { 0 };
            batch.truncate(batch.len() - dropped);
            batch.drain(..written);
            batch.extend_from_slice(&state.pending);
            std::mem::swap(&mut batch, &mut state.pending);
            state.activity = Activity::Busy;
            shared.wake.notify_one();
            batch.clear();
            state.direct_spare = batch;
            if dropped > 0 {
                return shared.drop_chunk(state, DropReason::OutputBufferFull, dropped);
            }
            return Ok(());
        };
        batch.clear();
        state.direct_spare = batch;
        outcome
    }

    /// The stream ended: deliver what is pending, then shut down the write half so the consumer
    /// sees end-of-stream. Returns at once; the writer thread carries on.
    pub fn finish(&self) {
        let mut state = self.shared.lock();
        state.finishing = true;
        if !state.caller_writes() {
            drop(state);
            self.shared.wake.notify_one();
            return;
        }
        let mut events = Vec::new();
        self.write_inline(&mut state, &mut events);
        if state.caller_writes() {
            let written =
                state.pending.is_empty() && state.inline.as_ref().is_some_and(|c| c.established);
            if written {
                end_inline(&mut state, &mut events);
            } else {
                self.take_over(&mut state, &mut events);
            }
        }
        drop(state);
        self.announce(events);
    }

    /// Write what has gathered, when the caller writes (`connect_inline`): for a caller that
    /// goes on for long without offering this stream more, since no thread writes after the
    /// flush delay. Does nothing once a writer thread has taken over.
    pub fn flush(&self) {
        let mut state = self.shared.lock();
        if !state.caller_writes() {
            return;
        }
        let mut events = Vec::new();
        self.write_inline(&mut state, &mut events);
        drop(state);
        self.announce(events);
    }

    /// Everything is accounted for and the connection is closed: `close` returns at once.
    pub fn is_done(&self) -> bool {
        self.shared.lock().done
    }

    /// `send` while the caller writes: Ok when the chunk was taken (and a full batch written);
    /// otherwise the state back — with a writer thread now in charge if one could start — for
    /// the caller's usual handling of a chunk that does not fit.
    fn send_inline<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        data: &[u8],
    ) -> Result<(), MutexGuard<'a, State>> {
        let limits = &self.shared.limits;
        let fits = |state: &State| state.queued() + data.len() <= state.limit(limits).0;
        let mut events = Vec::new();
        if !fits(&state) {
            self.write_inline(&mut state, &mut events);
        }
        let taken = fits(&state);
        if taken {
            gather(&mut state.pending, data, self.shared.batch_bytes);
            if state.caller_writes() && state.pending.len() >= self.shared.batch_bytes {
                self.write_inline(&mut state, &mut events);
            }
        } else if state.caller_writes() {
            self.take_over(&mut state, &mut events);
        }
        if !events.is_empty() {
            drop(state);
            self.announce(events);
            state = self.shared.lock();
        }
        if taken { Ok(()) } else { Err(state) }
    }

    /// Write what is pending to the caller's connection, as much as its socket takes now, once
    /// the consumer has accepted it. A failed dial or write hands over to a writer thread, which
    /// dials again.
    fn write_inline(&self, state: &mut State, events: &mut Vec<ForwardEvent>) {
        let Some(connection) = state.inline.as_mut() else {
            return;
        };
        if !connection.established {
            let ready = poll_fd(connection.stream.as_raw_fd(), libc::POLLOUT, Duration::ZERO);
            if ready == 0 {
                return;
            }
            if ready & libc::POLLOUT == 0 || ready & (libc::POLLERR | libc::POLLHUP) != 0 {
                // Refused or unreachable: the writer thread goes through every address.
                state.inline = None;
                self.take_over(state, events);
                return;
            }
            connection.established = true;
            state.phase = Phase::Connected;
            state.stats.connections += 1;
            events.push(ForwardEvent::Connected {
                peer: connection.peer,
            });
        }
        if state.pending.is_empty() {
            return;
        }
        let (sent, error) = send_without_waiting(&connection.stream, &state.pending);
        state.stats.delivered += sent as u64;
        state.pending.drain(..sent);
        let Some(error) = error else {
            return;
        };
        debug!(%error, "writing to the consumer failed");
        let _ = connection.stream.shutdown(Shutdown::Both);
        state.inline = None;
        lose_pending(state, error.to_string(), events);
        self.take_over(state, events);
    }

    /// A writer thread takes over from the caller, with the caller's connection; when none can
    /// start, the stream ends here as if the consumer had gone.
    fn take_over(&self, state: &mut State, events: &mut Vec<ForwardEvent>) {
        if let Err(error) = spawn_writer(&self.shared, state) {
            lose_pending(
                state,
                format!("cannot start a writer thread: {error}"),
                events,
            );
            state.end_without_thread();
        }
    }

    fn announce(&self, events: Vec<ForwardEvent>) {
        for event in events {
            self.shared.emit(event);
        }
    }

    pub fn stats(&self) -> ForwardStats {
        self.shared.lock().snapshot()
    }

    /// The port a listener forwards from; None for a connector.
    pub fn local_port(&self) -> Option<u16> {
        self.port
    }

    /// Finish, and wait until everything was delivered and the socket closed, or until
    /// `deadline`: what is still pending then is abandoned and the socket closed. A listener that
    /// no consumer connected to waits for one until the deadline. Returns the final counts.
    pub fn close(mut self, deadline: Instant) -> ForwardStats {
        self.shut(deadline, JOIN_GRACE)
    }

    /// Stop now: whatever is pending is abandoned and the socket closed. Waits only for a write
    /// in progress to return (the socket is shut down under it); a thread still looking for a
    /// consumer ends on its own moments later, so a capture thread calling this is not held up.
    pub fn abort(mut self) -> ForwardStats {
        self.shut(Instant::now(), Duration::ZERO)
    }

    /// Deliver until `deadline`, then stop; wait up to `join_grace` more for the thread to end.
    fn shut(&mut self, deadline: Instant, join_grace: Duration) -> ForwardStats {
        if !std::mem::replace(&mut self.open, false) {
            return self.stats();
        }
        let shared = &*self.shared;
        let mut state = shared.lock();
        if state.done && !matches!(state.writer, Writer::Thread(_)) {
            // The caller finished the stream: nothing runs that could be waited for.
            return state.snapshot();
        }
        if state.caller_writes() {
            if Instant::now() >= deadline {
                // Nothing may wait: the caller's connection closes with what is pending.
                state.stopping = true;
                state.stats.abandoned += state.pending.len() as u64;
                state.pending.clear();
                state.end_without_thread();
            } else {
                state.finishing = true;
                let mut events = Vec::new();
                self.take_over(&mut state, &mut events);
                drop(state);
                self.announce(events);
                state = shared.lock();
            }
        }
        state.finishing = true;
        shared.wake.notify_one();
        state.watchers += 1;
        while !state.done {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = shared.wait_progress(state, deadline - now);
        }
        if !state.done {
            state.stopping = true;
            state.phase = Phase::Disconnected;
            let left = state.pending.len() as u64;
            state.stats.abandoned += left;
            state.pending.clear();
            if let Some(fd) = state.socket {
                // Cuts a blocked write short. SAFETY: the writer closes this descriptor only
                // after clearing `socket` under the lock held here, so it is still ours.
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
            shared.wake.notify_one();
            // Only the writer knows how much of its batch the kernel took; it settles that as
            // soon as the write returns, which the shutdown (or the send timeout) makes prompt.
            let give_up_at = Instant::now() + join_grace;
            while !state.done {
                let now = Instant::now();
                if state.in_flight == 0 && now >= give_up_at {
                    break;
                }
                let wait = if now < give_up_at {
                    give_up_at - now
                } else {
                    WRITE_WAKEUP
                };
                state = shared.wait_progress(state, wait);
            }
        }
        state.watchers -= 1;
        let stats = state.snapshot();
        // A thread that has not ended is left to end on its own.
        let writer = if state.done {
            std::mem::replace(&mut state.writer, Writer::Ended)
        } else {
            Writer::Ended
        };
        drop(state);
        if let Writer::Thread(handle) = writer {
            // Its end is recorded; a panic in it has already been reported by the panic hook.
            let _ = handle.join();
        }
        stats
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if self.open {
            self.shut(Instant::now(), Duration::ZERO);
        }
    }
}

/// Where the consumer is.
enum Target {
    Listener {
        listener: TcpListener,
        port: u16,
    },
    Connector {
        addrs: Vec<SocketAddr>,
        connect_timeout: Duration,
        retry_every: Duration,
        /// The connection the caller dialled, taken over by the writer thread.
        adopted: Option<Inline>,
    },
}

/// A connector's name, first address and target, the addresses and timeouts checked.
fn connector(
    addrs: Vec<SocketAddr>,
    connect_timeout: Duration,
    retry_every: Duration,
) -> io::Result<(String, SocketAddr, Target)> {
    let Some(&first) = addrs.first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to forward to",
        ));
    };
    if connect_timeout.is_zero() || retry_every.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the connect timeout and the retry interval must be longer than zero",
        ));
    }
    let target = Target::Connector {
        addrs,
        connect_timeout,
        retry_every,
        adopted: None,
    };
    Ok((format!("forward-{first}"), first, target))
}

/// Who writes to the consumer.
enum Writer {
    /// The caller of `send`, on the connection `connect_inline` dialled; what a writer thread
    /// needs to take over is kept until then.
    Caller {
        name: String,
        target: Target,
    },
    Thread(JoinHandle<()>),
    /// The caller finished the stream, or the thread was joined or left to end on its own.
    Ended,
}

/// The caller's non-blocking connection to the consumer.
struct Inline {
    stream: TcpStream,
    peer: SocketAddr,
    /// The consumer accepted it (until then, data gathers as in the startup buffer).
    established: bool,
}

/// True when a socket could not be made because the process (EMFILE) or the system (ENFILE)
/// has no file descriptor left.
fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Dial `peer` without waiting for the answer.
fn dial_without_waiting(peer: SocketAddr) -> io::Result<Inline> {
    #[cfg(target_os = "linux")]
    let kind = socket2::Type::STREAM.nonblocking();
    #[cfg(not(target_os = "linux"))]
    let kind = socket2::Type::STREAM;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(peer),
        kind,
        Some(socket2::Protocol::TCP),
    )?;
    #[cfg(not(target_os = "linux"))]
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    match socket.connect(&peer.into()) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    Ok(Inline {
        stream: socket.into(),
        peer,
        established: false,
    })
}

/// Start the writer thread, handing it the caller's connection if there is one. Does nothing
/// when a thread already runs or the stream has ended.
fn spawn_writer(shared: &Arc<Shared>, state: &mut State) -> io::Result<()> {
    let Writer::Caller { name, mut target } = std::mem::replace(&mut state.writer, Writer::Ended)
    else {
        return Ok(());
    };
    if let Target::Connector { adopted, .. } = &mut target {
        *adopted = state.inline.take();
    }
    let worker = Worker {
        shared: Arc::clone(shared),
        spare: Vec::new(),
    };
    let handle = thread::Builder::new()
        .name(name)
        .stack_size(WRITER_STACK)
        .spawn(move || worker.run(target))?;
    state.writer = Writer::Thread(handle);
    Ok(())
}

/// Add a chunk to a forwarder's pending bytes. A buffer that outgrows a few small chunks is
/// sized for a whole batch at once rather than doubled again and again (each doubling copies what
/// it holds, and at these sizes takes fresh pages): a stream of small messages keeps a small
/// buffer, a bulk stream reallocates once.
fn gather(pending: &mut Vec<u8>, data: &[u8], batch_bytes: usize) {
    let needed = pending.len() + data.len();
    if needed > pending.capacity() && needed > SMALL_PENDING {
        let wanted = needed.max(batch_bytes + BATCH_SLACK);
        pending.reserve_exact(wanted - pending.len());
    }
    pending.extend_from_slice(data);
    prefetch_for_write(pending.spare_capacity_mut(), data.len());
}

/// Ask for the first `len` bytes of a buffer's unused room to be brought into the cache: where
/// the stream's next chunk will go. With hundreds of streams batching at once, each batch buffer
/// has left the caches by the time its stream's next chunk comes; a copy into it stalls on every
/// line, while the prefetch fetches them as the other streams' packets are handled.
fn prefetch_for_write(spare: &[std::mem::MaybeUninit<u8>], len: usize) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (spare, len);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let len = len.min(spare.len());
        let start = spare.as_ptr().cast::<i8>();
        let mut offset = 0;
        while offset < len {
            // SAFETY: a prefetch is a hint and never faults; the address is inside the buffer.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(offset)) };
            offset += 64;
        }
    }
}

/// End of stream on the caller's connection, everything written.
fn end_inline(state: &mut State, events: &mut Vec<ForwardEvent>) {
    if let Some(connection) = state.inline.take() {
        if let Err(error) = connection.stream.shutdown(Shutdown::Write) {
            debug!(%error, "ending the forwarded stream failed");
        }
        // Input left unread would turn the close into a reset.
        let _ = check_consumer(&connection.stream, &mut false);
    }
    state.end_without_thread();
    events.push(ForwardEvent::Finished);
}

/// The consumer is gone: what it has not been given (the unwritten rest of a batch and the
/// pending bytes) is a write error, and data is dropped until the next consumer.
fn lose_pending(state: &mut State, reason: String, events: &mut Vec<ForwardEvent>) {
    state.phase = Phase::Disconnected;
    let lost = state.queued() as u64;
    state.pending.clear();
    state.in_flight = 0;
    events.push(ForwardEvent::Disconnected { reason });
    if state.count_drop(DropReason::WriteError, lost) {
        events.push(ForwardEvent::Dropped {
            reason: DropReason::WriteError,
            bytes: lost,
        });
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No consumer has connected yet: data gathers in the startup buffer.
    Startup,
    Connected,
    /// A consumer was connected and is gone, or the stream was finished: data is dropped.
    Disconnected,
}

/// What the writer thread is doing, so `send` wakes it only when it waits for data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Activity {
    /// Connecting, writing, or already woken.
    Busy,
    /// Waiting on an empty buffer: the first byte wakes it.
    Idle,
    /// Letting data gather: a full batch wakes it.
    Gathering,
}

/// What the caller and the writer thread share.
struct Shared {
    limits: ForwardLimits,
    batch_bytes: usize,
    state: Mutex<State>,
    /// Wakes the writer: data to write, finish, stop.
    wake: Condvar,
    /// Wakes `send_waiting` and `close`: bytes written, connection lost, writer done.
    progress: Condvar,
    events: EventCallback,
}

impl Shared {
    /// The state stays consistent whatever panicked while holding the lock: every change to it
    /// is a counter update or a buffer operation that completes.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_wake<'a>(
        &self,
        state: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> (MutexGuard<'a, State>, bool) {
        let (state, result) = self
            .wake
            .wait_timeout(state, timeout)
            .unwrap_or_else(PoisonError::into_inner);
        (state, result.timed_out())
    }

    fn wait_progress<'a>(
        &self,
        state: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        self.progress
            .wait_timeout(state, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    fn emit(&self, event: ForwardEvent) {
        (self.events)(event);
    }

    /// Add a chunk that fits, waking the writer if it waits for it.
    fn append(&self, mut state: MutexGuard<'_, State>, data: &[u8]) {
        gather(&mut state.pending, data, self.batch_bytes);
        let wake = match state.activity {
            Activity::Idle => true,
            Activity::Gathering => state.pending.len() >= self.batch_bytes,
            Activity::Busy => false,
        };
        if wake {
            state.activity = Activity::Busy;
            drop(state);
            self.wake.notify_one();
        }
    }

    fn drop_chunk(
        &self,
        mut state: MutexGuard<'_, State>,
        reason: DropReason,
        bytes: usize,
    ) -> Result<(), DropReason> {
        let first = state.count_drop(reason, bytes as u64);
        drop(state);
        if first {
            self.emit(ForwardEvent::Dropped {
                reason,
                bytes: bytes as u64,
            });
        }
        Err(reason)
    }
}

struct State {
    phase: Phase,
    /// Bytes not yet taken by the writer.
    pending: Vec<u8>,
    /// Bytes the writer took and has neither written nor counted as dropped yet.
    in_flight: usize,
    activity: Activity,
    /// Set by `finish` and `close`: deliver the rest, then send end-of-stream.
    finishing: bool,
    /// Set when `close` gives up: the writer ends without counting anything but its batch.
    stopping: bool,
    /// The writer thread has ended, or the caller finished the stream.
    done: bool,
    writer: Writer,
    /// The caller's connection while the caller writes.
    inline: Option<Inline>,
    /// The consumer's socket while the writer holds it open, so `close` can cut a write short.
    socket: Option<RawFd>,
    /// The same socket for `send_waiting`, which writes full batches itself.
    direct: Option<Arc<TcpStream>>,
    /// The buffer of the last batch `send_waiting` wrote, kept for the next one.
    direct_spare: Vec<u8>,
    /// Threads waiting on `progress`; the writer signals it only when there are any.
    watchers: usize,
    /// Drop reasons already announced by an event, indexed by the reason.
    announced: [bool; 4],
    stats: ForwardStats,
}

impl State {
    fn caller_writes(&self) -> bool {
        matches!(self.writer, Writer::Caller { .. })
    }

    /// The stream ends where no writer thread runs: the caller's connection (if still open)
    /// closes, and `close` has nothing to wait for.
    fn end_without_thread(&mut self) {
        self.inline = None;
        self.phase = Phase::Disconnected;
        self.writer = Writer::Ended;
        self.done = true;
    }

    /// The most bytes that may be queued now, and what a chunk beyond it is dropped as.
    fn limit(&self, limits: &ForwardLimits) -> (usize, DropReason) {
        match self.phase {
            Phase::Startup => (limits.startup_bytes, DropReason::StartupBufferFull),
            Phase::Connected => (limits.max_buffer_bytes, DropReason::OutputBufferFull),
            Phase::Disconnected => (0, DropReason::NotConnected),
        }
    }

    /// True when no further consumer should be looked for: `close` gave up, or the stream was
    /// finished after a consumer left (nothing is left for a newcomer).
    fn nothing_to_connect_for(&self) -> bool {
        self.stopping || (self.finishing && self.phase == Phase::Disconnected)
    }

    fn queued(&self) -> usize {
        self.pending.len() + self.in_flight
    }

    /// Count a drop; true when it is the first for its reason.
    fn count_drop(&mut self, reason: DropReason, bytes: u64) -> bool {
        if bytes == 0 {
            return false;
        }
        *self.stats.dropped_mut(reason) += bytes;
        !std::mem::replace(&mut self.announced[reason as usize], true)
    }

    fn snapshot(&self) -> ForwardStats {
        ForwardStats {
            pending: self.queued() as u64,
            connected: self.phase == Phase::Connected,
            ..self.stats
        }
    }
}

/// How a connection to a consumer ended.
enum End {
    /// Everything was delivered and end-of-stream sent.
    Finished,
    /// `close` gave up.
    Stopped,
    /// The consumer went away; another may come.
    Lost,
}

/// What the writer does next while connected.
enum Next {
    /// A batch is in `spare`.
    Write,
    Finish,
    Stop,
    Lost(String),
}

/// Sets `done` however the writer thread ends, a panic included, counting anything it left as
/// abandoned, so `close` never waits for a thread that is gone.
struct DoneGuard(Arc<Shared>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        let left = state.queued() as u64;
        state.stats.abandoned += left;
        state.pending.clear();
        state.in_flight = 0;
        state.phase = Phase::Disconnected;
        state.socket = None;
        state.direct = None;
        state.done = true;
        drop(state);
        self.0.progress.notify_all();
    }
}

/// The writer thread: finds a consumer, writes batches to it, finds the next.
struct Worker {
    shared: Arc<Shared>,
    /// The buffer swapped with `pending` for each batch, so steady state allocates nothing.
    spare: Vec<u8>,
}

impl Worker {
    fn run(mut self, target: Target) {
        let _done = DoneGuard(Arc::clone(&self.shared));
        match target {
            Target::Listener { listener, port } => {
                self.shared.emit(ForwardEvent::Listening { port });
                while let Some((stream, peer)) = self.accept(&listener) {
                    if !matches!(self.serve(stream, peer, false), End::Lost) {
                        return;
                    }
                }
            }
            Target::Connector {
                addrs,
                connect_timeout,
                retry_every,
                adopted,
            } => {
                if let Some((stream, peer, announced)) =
                    adopted.and_then(|c| Worker::adopt(c, connect_timeout))
                    && !matches!(self.serve(stream, peer, announced), End::Lost)
                {
                    return;
                }
                while let Some((stream, peer)) = self.dial(&addrs, connect_timeout, retry_every) {
                    if !matches!(self.serve(stream, peer, false), End::Lost) {
                        return;
                    }
                }
            }
        }
    }

    fn nothing_to_connect_for(&self) -> bool {
        self.shared.lock().nothing_to_connect_for()
    }

    /// The connection the caller dialled, once the consumer has accepted it (waiting up to
    /// `connect_timeout` if it has not yet), and whether the caller already counted it as
    /// connected; None when it failed, and a round of dialling follows at once.
    fn adopt(
        connection: Inline,
        connect_timeout: Duration,
    ) -> Option<(TcpStream, SocketAddr, bool)> {
        let Inline {
            stream,
            peer,
            established,
        } = connection;
        if established {
            return Some((stream, peer, true));
        }
        let ready = poll_fd(stream.as_raw_fd(), libc::POLLOUT, connect_timeout);
        (ready & libc::POLLOUT != 0 && matches!(stream.take_error(), Ok(None)))
            .then_some((stream, peer, false))
    }

    fn accept(&self, listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
        while !self.nothing_to_connect_for() {
            match listener.accept() {
                Ok(accepted) => return Some(accepted),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    poll_fd(listener.as_raw_fd(), libc::POLLIN, ACCEPT_POLL);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // Out of descriptors, or a connection reset before it was accepted: the
                    // listener stays usable, so wait a little (poll would return at once).
                    debug!(%error, "accepting a consumer failed");
                    thread::sleep(ACCEPT_POLL);
                }
            }
        }
        None
    }

    fn dial(
        &self,
        addrs: &[SocketAddr],
        connect_timeout: Duration,
        retry_every: Duration,
    ) -> Option<(TcpStream, SocketAddr)> {
        let mut first_round = true;
        loop {
            // Every round after the first, a lost connection included, waits for the retry
            // interval, so a consumer that accepts and hangs up at once is not redialled hot.
            if !first_round {
                let retry_at = Instant::now() + retry_every;
                let mut state = self.shared.lock();
                loop {
                    let now = Instant::now();
                    if now >= retry_at || state.nothing_to_connect_for() {
                        break;
                    }
                    state = self.shared.wait_wake(state, retry_at - now).0;
                }
            }
            first_round = false;
            if self.nothing_to_connect_for() {
                return None;
            }
            let mut failures = Vec::with_capacity(addrs.len());
            let mut out_of_descriptors = false;
            for &addr in addrs {
                match TcpStream::connect_timeout(&addr, connect_timeout) {
                    Ok(stream) => return Some((stream, addr)),
                    Err(error) => {
                        out_of_descriptors |= is_out_of_descriptors(&error);
                        failures.push(format!("{addr}: {error}"));
                    }
                }
            }
            self.shared.emit(ForwardEvent::ConnectFailed {
                reason: failures.join("; "),
                out_of_descriptors,
            });
        }
    }

    /// Forward to one consumer until the stream is finished, `close` gives up, or the consumer
    /// goes away. `announced`: the caller already counted and announced the connection.
    fn serve(&mut self, stream: TcpStream, peer: SocketAddr, announced: bool) -> End {
        let stream = Arc::new(stream);
        let configured = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_nodelay(true))
            .and_then(|()| stream.set_write_timeout(Some(WRITE_WAKEUP)));
        if let Err(error) = configured {
            self.shared.emit(ForwardEvent::ConnectFailed {
                reason: format!("{peer}: {error}"),
                out_of_descriptors: false,
            });
            return End::Lost;
        }
        {
            let mut state = self.shared.lock();
            if state.stopping {
                return End::Stopped;
            }
            if !announced {
                state.phase = Phase::Connected;
                state.stats.connections += 1;
            }
            state.socket = Some(stream.as_raw_fd());
            state.direct = Some(Arc::clone(&stream));
        }
        if !announced {
            self.shared.emit(ForwardEvent::Connected { peer });
        }
        let end = self.pump(&stream);
        // The descriptor is forgotten under the lock before it is closed, so `close` never
        // shuts down a descriptor that has been reused (a `send_waiting` still writing holds
        // its own reference, so the descriptor outlives that write).
        {
            let mut state = self.shared.lock();
            state.socket = None;
            state.direct = None;
        }
        drop(stream);
        end
    }

    fn pump(&mut self, stream: &TcpStream) -> End {
        let mut consumer_eof = false;
        loop {
            match self.next_batch(stream, &mut consumer_eof) {
                Next::Write => {}
                Next::Stop => return End::Stopped,
                Next::Lost(reason) => {
                    self.lose(reason);
                    return End::Lost;
                }
                Next::Finish => {
                    if let Err(error) = stream.shutdown(Shutdown::Write) {
                        debug!(%error, "ending the forwarded stream failed");
                    }
                    // Input left unread would turn the close into a reset; whether the consumer
                    // is still there no longer matters.
                    let _ = check_consumer(stream, &mut consumer_eof);
                    self.shared.emit(ForwardEvent::Finished);
                    return End::Finished;
                }
            }
            if let Err(end) = self.write_batch(stream) {
                return end;
            }
        }
    }

    /// Wait until a batch is worth writing and take it into `spare`.
    fn next_batch(&mut self, stream: &TcpStream, consumer_eof: &mut bool) -> Next {
        let shared = &*self.shared;
        let mut state = shared.lock();
        loop {
            if state.stopping {
                return Next::Stop;
            }
            if state.in_flight > 0 {
                // `send_waiting` is writing a batch itself: the next bytes follow it.
                state.watchers += 1;
                state = shared.wait_progress(state, WRITE_WAKEUP);
                state.watchers -= 1;
                continue;
            }
            if !state.pending.is_empty() {
                break;
            }
            if state.finishing {
                // Under the same lock that saw the buffer empty: no chunk can slip in after.
                state.phase = Phase::Disconnected;
                return Next::Finish;
            }
            state.activity = Activity::Idle;
            let (woken, timed_out) = shared.wait_wake(state, IDLE_CHECK);
            state = woken;
            if timed_out && state.pending.is_empty() && !state.stopping && !state.finishing {
                // Idle for a while, not between two batches: a burst's buffers can go.
                state.pending.shrink_to(IDLE_CAPACITY);
                state.activity = Activity::Busy;
                drop(state);
                self.spare.shrink_to(IDLE_CAPACITY);
                if let Err(reason) = check_consumer(stream, consumer_eof) {
                    return Next::Lost(reason);
                }
                state = shared.lock();
            }
        }
        let flush_at = Instant::now() + shared.limits.flush_delay;
        while state.pending.len() < shared.batch_bytes && !state.finishing && !state.stopping {
            let now = Instant::now();
            if now >= flush_at {
                break;
            }
            state.activity = Activity::Gathering;
            state = shared.wait_wake(state, flush_at - now).0;
        }
        state.activity = Activity::Busy;
        while state.in_flight > 0 && !state.stopping {
            state.watchers += 1;
            state = shared.wait_progress(state, WRITE_WAKEUP);
            state.watchers -= 1;
        }
        if state.stopping {
            return Next::Stop;
        }
        std::mem::swap(&mut state.pending, &mut self.spare);
        state.in_flight = self.spare.len();
        Next::Write
    }

    /// Write the batch in `spare`, counting what the kernel takes as it goes. On failure the
    /// rest is counted (a write error, or abandoned when `close` gave up) and the way the
    /// connection ended is returned.
    fn write_batch(&mut self, mut stream: &TcpStream) -> Result<(), End> {
        let shared = &*self.shared;
        let total = self.spare.len();
        let mut written = 0;
        let mut last_progress = Instant::now();
        let mut stalled = false;
        let failure = loop {
            if written == total {
                break None;
            }
            let end = total.min(written + WRITE_SLICE);
            match stream.write(&self.spare[written..end]) {
                Ok(0) => break Some(io::Error::from(io::ErrorKind::WriteZero).to_string()),
                Ok(n) => {
                    written += n;
                    last_progress = Instant::now();
                    stalled = false;
                    let mut state = shared.lock();
                    state.stats.delivered += n as u64;
                    state.in_flight -= n;
                    if state.watchers > 0 {
                        shared.progress.notify_all();
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    let mut state = shared.lock();
                    if state.stopping {
                        break Some(error.to_string());
                    }
                    let blocked_for = last_progress.elapsed();
                    if !stalled && shared.limits.stall_after.is_some_and(|s| blocked_for >= s) {
                        stalled = true;
                        state.stats.stalls += 1;
                        drop(state);
                        shared.emit(ForwardEvent::Stalled { blocked_for });
                    }
                }
                Err(error) => break Some(error.to_string()),
            }
        };
        self.spare.clear();
        let Some(reason) = failure else {
            return Ok(());
        };
        let mut state = shared.lock();
        if state.stopping {
            state.stats.abandoned += state.in_flight as u64;
            state.in_flight = 0;
            drop(state);
            shared.progress.notify_all();
            return Err(End::Stopped);
        }
        drop(state);
        self.lose(reason);
        Err(End::Lost)
    }

    /// The consumer is gone: what it has not been given (the unwritten rest of a batch and the
    /// pending bytes) is a write error, and data is dropped until the next consumer.
    fn lose(&self, reason: String) {
        let shared = &*self.shared;
        let mut events = Vec::new();
        lose_pending(&mut shared.lock(), reason, &mut events);
        shared.progress.notify_all();
        for event in events {
            shared.emit(event);
        }
    }
}

/// Send as much of `data` as the socket takes now; the bytes sent, and the error that stopped
/// it if it was not a full socket.
fn send_without_waiting(stream: &TcpStream, data: &[u8]) -> (usize, Option<io::Error>) {
    #[cfg(target_os = "linux")]
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::MSG_DONTWAIT;
    let mut sent = 0;
    while sent < data.len() {
        let slice = &data[sent..data.len().min(sent + WRITE_SLICE)];
        // SAFETY: a valid descriptor (the stream is borrowed) and a readable slice.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                slice.as_ptr().cast(),
                slice.len(),
                flags,
            )
        };
        if n > 0 {
            sent += n as usize;
            continue;
        }
        if n == 0 {
            return (sent, Some(io::Error::from(io::ErrorKind::WriteZero)));
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => return (sent, None),
            _ => return (sent, Some(error)),
        }
    }
    (sent, None)
}

/// Wait until `fd` is ready for `events` or `timeout` passed; the events that are ready (none
/// after a timeout or an interruption). Errors and hang-ups are reported whatever `events` asks.
fn poll_fd(fd: RawFd, events: libc::c_short, timeout: Duration) -> libc::c_short {
    let mut pollfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let timeout_ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut pollfd, 1, timeout_ms) };
    if ready > 0 { pollfd.revents } else { 0 }
}

/// Whether the consumer is still there, judged without writing. A reset or a socket error ends
/// the connection. Input from the consumer is read and thrown away: unread, it would fill up and
/// turn our close into a reset. An orderly close by the consumer ends only its sending side (it
/// may still read, as `nc` does after its input ends), so such a connection ends only when a
/// write fails.
fn check_consumer(mut stream: &TcpStream, consumer_eof: &mut bool) -> Result<(), String> {
    let events = if *consumer_eof { 0 } else { libc::POLLIN };
    let ready = poll_fd(stream.as_raw_fd(), events, Duration::ZERO);
    if ready & libc::POLLIN != 0 {
        let mut scratch = [0; 4096];
        match stream.read(&mut scratch) {
            Ok(0) => *consumer_eof = true,
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    if ready & (libc::POLLERR | libc::POLLHUP) != 0 {
        return Err(match stream.take_error() {
            Ok(Some(error)) => error.to_string(),
            _ => "the consumer closed the connection".to_owned(),
        });
    }
    Ok(())
}

/// Listener ports for sessions, two at a time (requests, responses), from an inclusive range:
/// lowest free first, skipping ports something else holds, reusing released ones.
pub struct PortAllocator {
    bind_ip: IpAddr,
    range: Option<(u16, u16)>,
    /// The pair for the first session, if configured.
    first: Option<(u16, u16)>,
    in_use: BTreeSet<u16>,
}

impl PortAllocator {
    /// Without a range, every listener gets a port the system picks.
    pub fn new(
        bind_ip: IpAddr,
        range: Option<(u16, u16)>,
        first: Option<(u16, u16)>,
    ) -> PortAllocator {
        PortAllocator {
            bind_ip,
            range,
            first,
            in_use: BTreeSet::new(),
        }
    }

    /// Two listeners: the first pair on the first call, else the two lowest free ports of the
    /// range. Err when the first pair cannot be bound, or the range has no two bindable ports.
    pub fn allocate(&mut self) -> io::Result<(TcpListener, TcpListener)> {
        if let Some((requests, responses)) = self.first.take() {
            let pair = (self.bind(requests)?, self.bind(responses)?);
            self.in_use.extend([requests, responses]);
            return Ok(pair);
        }
        let Some((low, high)) = self.range else {
            return Ok((self.bind(0)?, self.bind(0)?));
        };
        let mut bound = Vec::with_capacity(2);
        let mut last_error = None;
        for port in low..=high {
            if self.in_use.contains(&port) {
                continue;
            }
            match self.bind(port) {
                Ok(listener) => bound.push((port, listener)),
                Err(error) => last_error = Some(error),
            }
            if bound.len() == 2 {
                break;
            }
        }
        let mut bound = bound.into_iter();
        let (Some((requests_port, requests)), Some((responses_port, responses))) =
            (bound.next(), bound.next())
        else {
            let why = last_error.map_or(String::new(), |error| format!(" (last: {error})"));
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "no two free ports left in {low}-{high} on {}{why}",
                    self.bind_ip
                ),
            ));
        };
        self.in_use.extend([requests_port, responses_port]);
        Ok((requests, responses))
    }

    /// Give a port back to the range.
    pub fn release(&mut self, port: u16) {
        self.in_use.remove(&port);
    }

    fn bind(&self, port: u16) -> io::Result<TcpListener> {
        TcpListener::bind((self.bind_ip, port)).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot listen on {}: {error}",
                    SocketAddr::new(self.bind_ip, port)
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

    /// How long a test waits for something that should happen; generous, as the machine may be
    /// busy. Nothing waits this long when the code works.
    const PATIENCE: Duration = Duration::from_secs(10);

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn limits(startup_bytes: usize, max_buffer_bytes: usize) -> ForwardLimits {
        ForwardLimits {
            startup_bytes,
            max_buffer_bytes,
            stall_after: None,
            flush_delay: FLUSH_DELAY,
        }
    }

    /// An event callback that records the events, and the record.
    fn recorder() -> (EventCallback, Arc<Mutex<Vec<ForwardEvent>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        (
            Box::new(move |event| record.lock().unwrap().push(event)),
            seen,
        )
    }

    fn count(seen: &Mutex<Vec<ForwardEvent>>, wanted: impl Fn(&ForwardEvent) -> bool) -> usize {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|event| wanted(event))
            .count()
    }

    fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
        let give_up_at = Instant::now() + PATIENCE;
        while !condition() {
            assert!(Instant::now() < give_up_at, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Chunk `index`: its number, then a pattern that depends on it, so a chunk reordered,
    /// split, repeated or lost shows in a comparison.
    fn chunk(index: u64, len: usize) -> Vec<u8> {
        let mut data = index.to_be_bytes().to_vec();
        data.extend((0..len - 8).map(|i| (index as usize * 31 + i) as u8));
        data
    }

    fn assert_accounted(stats: &ForwardStats) {
        let accounted = stats.delivered
            + stats.pending
            + stats.abandoned
            + stats.dropped_startup_buffer_full
            + stats.dropped_output_buffer_full
            + stats.dropped_not_connected
            + stats.dropped_write_error;
        assert_eq!(stats.sent, accounted, "{stats:?}");
    }

    fn loopback_listener() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind((LOOPBACK, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    /// A consumer whose receive buffer is fixed at `size` bytes, so that the kernel cannot
    /// hide a slow reader by growing it. Very small sizes are for consumers that never read:
    /// below the loopback segment size, throughput collapses to a segment per delayed ack.
    fn consumer(addr: SocketAddr, size: libc::c_int) -> TcpStream {
        let stream = TcpStream::connect(addr).unwrap();
        // SAFETY: a valid socket and an option value of the size given.
        let result = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(result, 0, "{}", io::Error::last_os_error());
        stream
    }

    fn accept_within(listener: &TcpListener) -> TcpStream {
        listener.set_nonblocking(true).unwrap();
        let give_up_at = Instant::now() + PATIENCE;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    return stream;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < give_up_at, "nobody connected");
                    thread::sleep(Duration::from_millis(2));
                }
                Err(error) => panic!("{error}"),
            }
        }
    }

    /// Read to end-of-stream on another thread: while `slow()` holds, 8 KiB per read with a
    /// 2 ms pause before each (at most 4 MB/s); then as fast as the data comes.
    fn spawn_reader(
        mut stream: TcpStream,
        slow: impl Fn() -> bool + Send + 'static,
    ) -> JoinHandle<Vec<u8>> {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        thread::spawn(move || {
            let mut received = Vec::new();
            let mut piece = vec![0; 64 * 1024];
            loop {
                let len = if slow() {
                    thread::sleep(Duration::from_millis(2));
                    8 * 1024
                } else {
                    piece.len()
                };
                match stream.read(&mut piece[..len]) {
                    Ok(0) => return received,
                    Ok(n) => received.extend_from_slice(&piece[..n]),
                    Err(error) => panic!("reading the forwarded stream: {error}"),
                }
            }
        })
    }

    fn read_to_end(stream: TcpStream) -> Vec<u8> {
        spawn_reader(stream, || false).join().unwrap()
    }

    /// Send chunks to a consumer that has gone until the forwarder notices and drops them as
    /// not connected: the first write only provokes a reset, a later one fails.
    /// Once `second` is the forwarder's second connection, live data reaches it whole and the
    /// bytes sent while nobody was connected are counted as such.
    fn live_on_second_connection(forwarder: Forwarder, second: TcpStream, what: &str) {
        wait_for(what, || {
            let stats = forwarder.stats();
            stats.connected && stats.connections == 2
        });
        assert_eq!(forwarder.send(b"live"), Ok(()));
        forwarder.finish();
        assert_eq!(read_to_end(second), b"live");
        let stats = forwarder.close(Instant::now() + PATIENCE);
        assert_accounted(&stats);
        assert!(stats.dropped_not_connected >= 1400, "{stats:?}");
        assert_eq!((stats.connections, stats.abandoned), (2, 0));
    }

    fn send_until_not_connected(forwarder: &Forwarder) {
        let give_up_at = Instant::now() + PATIENCE;
        for index in 0.. {
            match forwarder.send(&chunk(index, 1400)) {
                Err(DropReason::NotConnected) => return,
                result => assert_eq!(result, Ok(())),
            }
            assert!(
                Instant::now() < give_up_at,
                "the lost consumer went unnoticed"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn listener_gives_a_late_consumer_the_startup_buffer_then_live_data() {
        let (listener, addr) = loopback_listener();
        let (events, seen) = recorder();
        let forwarder = Forwarder::listen(listener, limits(10_000, 1 << 20), events).unwrap();
        assert_eq!(forwarder.local_port(), Some(addr.port()));
        let mut expected = Vec::new();
        // Chunks that do not fit are dropped whole; a later, smaller one may still fit exactly.
        for (index, len, fits) in [
            (0, 3000, true),
            (1, 3000, true),
            (2, 3000, true),
            (3, 3000, false),
            (4, 1000, true),
            (5, 9, false),
        ] {
            let data = chunk(index, len);
            if fits {
                assert_eq!(forwarder.send(&data), Ok(()));
                expected.extend_from_slice(&data);
            } else {
                assert_eq!(forwarder.send(&data), Err(DropReason::StartupBufferFull));
            }
        }
        let consumer = TcpStream::connect(addr).unwrap();
        let consumer_addr = consumer.local_addr().unwrap();
        wait_for("the consumer", || forwarder.stats().connected);
        for index in 10..60 {
            let data = chunk(index, 1400);
            assert_eq!(forwarder.send(&data), Ok(()));
            expected.extend_from_slice(&data);
        }
        forwarder.finish();
        let received = read_to_end(consumer);
        assert!(received == expected, "{} bytes arrived", received.len());
        let stats = forwarder.close(Instant::now() + PATIENCE);
        assert_eq!(
            stats,
            ForwardStats {
                sent: expected.len() as u64 + 3009,
                delivered: expected.len() as u64,
                dropped_startup_buffer_full: 3009,
                connections: 1,
                ..ForwardStats::default()
            }
        );
        let events = seen.lock().unwrap().clone();
        assert_eq!(events.len(), 4, "{events:?}");
        for event in [
            ForwardEvent::Listening { port: addr.port() },
            ForwardEvent::Dropped {
                reason: DropReason::StartupBufferFull,
                bytes: 3000,
            },
            ForwardEvent::Connected {
                peer: consumer_addr,
            },
        ] {
            assert!(events.contains(&event), "{events:?}");
        }
        assert_eq!(events.last(), Some(&ForwardEvent::Finished));
    }

    #[test]
    fn listener_takes_the_next_consumer_after_the_first_leaves() {
        let (listener, addr) = loopback_listener();
        let (events, seen) = recorder();
        let forwarder = Forwarder::listen(listener, limits(1 << 16, 1 << 20), events).unwrap();
        assert_eq!(forwarder.send(b"startup"), Ok(()));
        let mut first = TcpStream::connect(addr).unwrap();
        let mut startup = [0; 7];
        first.read_exact(&mut startup).unwrap();
        assert_eq!(&startup, b"startup");
        drop(first);
        send_until_not_connected(&forwarder);
        let second = TcpStream::connect(addr).unwrap();
        live_on_second_connection(forwarder, second, "the second consumer");
        assert_eq!(
            count(&seen, |e| matches!(e, ForwardEvent::Disconnected { .. })),
            1
        );
    }

    #[test]
    fn connector_retries_until_the_consumer_listens_and_reconnects_after_it_leaves() {
        // A port nobody listens on any more.
        let addr = loopback_listener().1;
        let (events, seen) = recorder();
        let forwarder = dialling(Forwarder::connect, addr, 1 << 20, events);
        assert_eq!(forwarder.local_port(), None);
        assert_eq!(forwarder.send(b"startup"), Ok(()));
        wait_for("a failed attempt", || {
            count(&seen, |e| matches!(e, ForwardEvent::ConnectFailed { .. })) > 0
        });
        let listener = TcpListener::bind(addr).unwrap();
        let mut first = accept_within(&listener);
        first.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut startup = [0; 7];
        first.read_exact(&mut startup).unwrap();
        assert_eq!(&startup, b"startup");
        // The consumer goes away entirely: redialling fails until it listens again.
        drop(listener);
        drop(first);
        send_until_not_connected(&forwarder);
        let listener = TcpListener::bind(addr).unwrap();
        let second = accept_within(&listener);
        live_on_second_connection(forwarder, second, "the reconnection");
    }

    type Connect = fn(
        Vec<SocketAddr>,
        Duration,
        Duration,
        ForwardLimits,
        EventCallback,
    ) -> io::Result<Forwarder>;

    /// A connector to `addr` made by `connect` (`Forwarder::connect` or `connect_inline`), with
    /// a 64 KiB startup buffer and timeouts short enough for tests.
    fn dialling(
        connect: Connect,
        addr: SocketAddr,
        max_buffer_bytes: usize,
        events: EventCallback,
    ) -> Forwarder {
        connect(
            vec![addr],
            Duration::from_millis(500),
            Duration::from_millis(50),
            limits(1 << 16, max_buffer_bytes),
            events,
        )
        .unwrap()
    }

    /// A connector the caller writes to (`connect_inline`), and the consumer it dialled.
    fn inline_connector(
        max_buffer_bytes: usize,
        events: EventCallback,
    ) -> (Forwarder, TcpListener, TcpStream) {
        let (listener, addr) = loopback_listener();
        let forwarder = dialling(Forwarder::connect_inline, addr, max_buffer_bytes, events);
        let consumer = accept_within(&listener);
        (forwarder, listener, consumer)
    }

    #[test]
    fn inline_connector_writes_on_the_callers_thread_and_ends_the_stream_at_finish() {
        let (events, seen) = recorder();
        let (forwarder, _listener, consumer) = inline_connector(1 << 20, events);
        let reader = spawn_reader(consumer, || false);
        // 100 KB: more than a batch goes out from `send_waiting`, the rest at `flush`; the
        // last chunk at `finish`.
        let mut expected = Vec::new();
        for index in 0..73 {
            if index == 72 {
                assert!(forwarder.stats().delivered > 0);
                forwarder.flush();
                assert_eq!(forwarder.stats().delivered, expected.len() as u64);
            }
            let data = chunk(index, 1400);
            assert_eq!(forwarder.send_waiting(&data, PATIENCE), Ok(()));
            expected.extend_from_slice(&data);
        }
        forwarder.finish();
        // Written and ended on this thread: nothing is left for a writer thread.
        assert!(forwarder.is_done());
        assert!(reader.join().unwrap() == expected);
        let stats = forwarder.close(Instant::now());
        assert_eq!(stats, delivered_whole(expected.len()));
        let seen = seen.lock().unwrap();
        assert!(
            matches!(seen[0], ForwardEvent::Connected { .. }),
            "{seen:?}"
        );
        assert_eq!(seen[1..], [ForwardEvent::Finished]);
    }

    #[test]
    fn inline_connector_hands_a_refused_dial_to_the_writer_thread_which_retries() {
        let addr = loopback_listener().1;
        let (events, seen) = recorder();
        let forwarder = dialling(Forwarder::connect_inline, addr, 1 << 20, events);
        assert_eq!(forwarder.send_waiting(b"startup", PATIENCE), Ok(()));
        // What the caller of a file input does every so often: the refusal is noticed.
        forwarder.flush();
        wait_for("a failed attempt", || {
            count(&seen, |e| matches!(e, ForwardEvent::ConnectFailed { .. })) > 0
        });
        let listener = TcpListener::bind(addr).unwrap();
        let consumer = accept_within(&listener);
        assert_eq!(forwarder.send_waiting(b" live", PATIENCE), Ok(()));
        forwarder.finish();
        assert_eq!(read_to_end(consumer), b"startup live");
        let stats = forwarder.close(Instant::now() + PATIENCE);
        assert_accounted(&stats);
        assert_eq!((stats.delivered, stats.connections), (12, 1));
    }

    #[test]
    fn inline_connector_leaves_a_slow_consumer_to_the_writer_thread_and_loses_nothing() {
        let (events, _) = recorder();
        let (forwarder, _listener, consumer) = inline_connector(16 * 1024, events);
        send_waiting_to_a_slow_reader(forwarder, consumer);
    }

    #[test]
    fn inline_connector_abort_abandons_what_is_pending_and_closes() {
        let (events, _) = recorder();
        let (forwarder, _listener, consumer) = inline_connector(1 << 20, events);
        assert_eq!(forwarder.send_waiting(&chunk(0, 1000), PATIENCE), Ok(()));
        let stats = forwarder.abort();
        assert_accounted(&stats);
        assert_eq!(
            (stats.sent, stats.abandoned, stats.delivered),
            (1000, 1000, 0)
        );
        assert_eq!(read_to_end(consumer), b"");
    }

    #[test]
    fn slow_consumer_gets_whole_chunks_in_order_and_send_never_blocks() {
        let (listener, addr) = loopback_listener();
        let (events, seen) = recorder();
        let forwarder = Forwarder::listen(listener, limits(0, 64 * 1024), events).unwrap();
        let consumer = consumer(addr, 256 * 1024);
        wait_for("the consumer", || forwarder.stats().connected);
        // Slow while the chunks are offered: 28 MB is more than the kernel buffers and what a
        // 4 MB/s reader takes in the time, whatever the machine's speed.
        let sending = Arc::new(AtomicBool::new(true));
        let reader = spawn_reader(consumer, {
            let sending = Arc::clone(&sending);
            move || sending.load(Ordering::Relaxed)
        });
        let mut expected = Vec::new();
        let started = Instant::now();
        for index in 0..20_000 {
            let data = chunk(index, 1400);
            match forwarder.send(&data) {
                Ok(()) => expected.extend_from_slice(&data),
                Err(reason) => assert_eq!(reason, DropReason::OutputBufferFull),
            }
        }
        // Waiting for this reader would take 7 s; a busy machine's pauses take milliseconds.
        let sending_took = started.elapsed();
        sending.store(false, Ordering::Relaxed);
        assert!(
            sending_took < Duration::from_secs(3),
            "sending took {sending_took:?}"
        );
        forwarder.finish();
        let received = reader.join().unwrap();
        let stats = forwarder.close(Instant::now() + PATIENCE);
        assert_accounted(&stats);
        assert!(stats.dropped_output_buffer_full > 0, "{stats:?}");
        assert_eq!(stats.dropped_output_buffer_full % 1400, 0);
        assert_eq!(stats.delivered, received.len() as u64);
        assert_eq!((stats.abandoned, stats.pending), (0, 0));
        assert!(received == expected, "{} bytes arrived", received.len());
        assert_eq!(
            count(&seen, |e| matches!(e, ForwardEvent::Dropped { .. })),
            1
        );
    }

    #[test]
    fn send_waiting_loses_nothing_to_a_slow_consumer() {
        let (listener, addr) = loopback_listener();
        let (events, _) = recorder();
        let forwarder = Forwarder::listen(listener, limits(0, 16 * 1024), events).unwrap();
        let consumer = consumer(addr, 256 * 1024);
        wait_for("the consumer", || forwarder.stats().connected);
        send_waiting_to_a_slow_reader(forwarder, consumer);
    }

    /// 8 MB with `send_waiting` to a consumer that reads slowly for the first 200 ms: more
    /// than the kernel buffers, so the sender has to wait for the reader; all of it arrives.
    fn send_waiting_to_a_slow_reader(forwarder: Forwarder, consumer: TcpStream) {
        let started = Instant::now();
        let reader = spawn_reader(consumer, move || {
            started.elapsed() < Duration::from_millis(200)
        });
        let mut expected = Vec::new();
        for index in 0..6000 {
            let data = chunk(index, 1400);
            assert_eq!(forwarder.send_waiting(&data, PATIENCE), Ok(()));
            expected.extend_from_slice(&data);
        }
        forwarder.finish();
        let received = reader.join().unwrap();
        assert!(received == expected, "{} bytes arrived", received.len());
        let stats = forwarder.close(Instant::now() + PATIENCE);
        assert_eq!(stats, delivered_whole(expected.len()));
    }

    /// The final counts of a stream delivered whole over one connection.
    fn delivered_whole(bytes: usize) -> ForwardStats {
        ForwardStats {
            sent: bytes as u64,
            delivered: bytes as u64,
            connections: 1,
            ..ForwardStats::default()
        }
    }

    #[test]
    fn send_waiting_gives_up_after_the_stall_when_the_consumer_never_reads() {
        let (listener, addr) = loopback_listener();
        let (events, _) = recorder();
        let forwarder = Forwarder::listen(listener, limits(0, 64 * 1024), events).unwrap();
        let _consumer = consumer(addr, 4096);
        wait_for("the consumer", || forwarder.stats().connected);
        let stall = Duration::from_millis(100);
        let mut gave_up_after = None;
        for index in 0..20_000 {
            let started = Instant::now();
            match forwarder.send_waiting(&chunk(index, 1400), stall) {
                Ok(()) => {}
                Err(reason) => {
                    assert_eq!(reason, DropReason::OutputBufferFull);
                    gave_up_after = Some(started.elapsed());
                    break;
                }
            }
        }
        let gave_up_after = gave_up_after.expect("the buffer never filled");
        assert!(gave_up_after >= stall, "gave up after {gave_up_after:?}");
        assert_eq!(forwarder.stats().dropped_output_buffer_full, 1400);
        // The writer is blocked in a write the consumer will never take: abort cuts it short.
        let started = Instant::now();
        let stats = forwarder.abort();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_accounted(&stats);
        assert_eq!(stats.pending, 0);
        assert!(stats.abandoned > 0 && stats.delivered > 0, "{stats:?}");
    }

    #[test]
    fn close_gives_up_on_a_listener_nobody_connects_to_at_the_deadline() {
        let (listener, _) = loopback_listener();
        let (events, seen) = recorder();
        let forwarder = Forwarder::listen(listener, limits(1 << 16, 1 << 20), events).unwrap();
        for index in 0..3 {
            assert_eq!(forwarder.send(&chunk(index, 1000)), Ok(()));
        }
        let grace = Duration::from_millis(200);
        let started = Instant::now();
        let stats = forwarder.close(started + grace);
        let elapsed = started.elapsed();
        assert!(
            elapsed >= grace && elapsed < grace + Duration::from_secs(3),
            "close took {elapsed:?}"
        );
        assert_eq!(
            stats,
            ForwardStats {
                sent: 3000,
                abandoned: 3000,
                ..ForwardStats::default()
            }
        );
        wait_for("the writer thread to end", || Arc::strong_count(&seen) == 1);
    }

    #[test]
    fn stall_is_reported_when_the_consumer_stops_reading() {
        let (listener, addr) = loopback_listener();
        let (events, seen) = recorder();
        let forwarder = Forwarder::listen(
            listener,
            ForwardLimits {
                stall_after: Some(Duration::from_millis(100)),
                flush_delay: FLUSH_DELAY,
                ..limits(0, 1 << 20)
            },
            events,
        )
        .unwrap();
        let _consumer = consumer(addr, 4096);
        wait_for("the consumer", || forwarder.stats().connected);
        // Offered until the socket is full and the writer blocked: how much the kernel takes
        // first depends on its buffer tuning. Drops are expected once everything is full.
        let mut index = 0;
        wait_for("the stall", || {
            for _ in 0..500 {
                let _ = forwarder.send(&chunk(index, 1400));
                index += 1;
            }
            forwarder.stats().stalls > 0
        });
        let stalled: Vec<Duration> = seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|event| match event {
                ForwardEvent::Stalled { blocked_for } => Some(*blocked_for),
                _ => None,
            })
            .collect();
        assert!(!stalled.is_empty());
        assert!(stalled[0] >= Duration::from_millis(100), "{stalled:?}");
        let stats = forwarder.abort();
        assert_accounted(&stats);
        assert_eq!(stats.stalls, stalled.len() as u64);
    }

    #[test]
    fn dropping_a_forwarder_ends_its_thread() {
        let (listener, addr) = loopback_listener();
        let (events, seen) = recorder();
        let forwarder = Forwarder::listen(listener, limits(1 << 16, 1 << 20), events).unwrap();
        let _consumer = TcpStream::connect(addr).unwrap();
        wait_for("the consumer", || forwarder.stats().connected);
        assert_eq!(forwarder.send(b"data"), Ok(()));
        drop(forwarder);
        // The callback goes when the last owner of the shared state, the thread, has ended.
        wait_for("the writer thread to end", || Arc::strong_count(&seen) == 1);
    }

    #[test]
    fn pending_bytes_grow_to_a_whole_batch_at_once_but_stay_small_for_small_streams() {
        let mut small = Vec::new();
        for _ in 0..20 {
            gather(&mut small, &[1; 300], BATCH_BYTES);
        }
        assert_eq!(small.len(), 6000);
        assert!(
            small.capacity() <= 2 * SMALL_PENDING,
            "{}",
            small.capacity()
        );

        let mut bulk = Vec::new();
        let mut reallocations = 0;
        let mut capacity = bulk.capacity();
        while bulk.len() < BATCH_BYTES {
            gather(&mut bulk, &[2; 1448], BATCH_BYTES);
            if bulk.capacity() != capacity {
                reallocations += 1;
                capacity = bulk.capacity();
            }
        }
        assert!(bulk.iter().all(|&b| b == 2));
        assert!(capacity >= BATCH_BYTES + 1448, "{capacity}");
        // The small steps up to SMALL_PENDING, then one for the whole batch.
        assert!(reallocations <= 5, "{reallocations} reallocations");

        // A chunk larger than the batch still fits.
        let mut big = Vec::new();
        gather(&mut big, &vec![3; 3 * BATCH_BYTES], BATCH_BYTES);
        assert_eq!(big.len(), 3 * BATCH_BYTES);
    }

    #[test]
    fn drop_reason_names_are_the_json_field_suffixes() {
        let names: Vec<&str> = [
            DropReason::StartupBufferFull,
            DropReason::OutputBufferFull,
            DropReason::NotConnected,
            DropReason::WriteError,
        ]
        .iter()
        .map(|reason| reason.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "startup_buffer_full",
                "output_buffer_full",
                "not_connected",
                "write_error"
            ]
        );
        let json = serde_json::to_value(ForwardStats::default()).unwrap();
        for name in names {
            assert!(json.get(format!("dropped_{name}")).is_some(), "{name}");
        }
    }

    /// The first of `count` consecutive loopback ports free right now, below the range the
    /// system hands out for port 0; each call looks at different ports, so tests running at the
    /// same time do not pick the same ones.
    fn free_ports(count: u16) -> u16 {
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let seed = 20_000 + (std::process::id() % 500) as u16 * 20;
        for _ in 0..200 {
            let base = seed + NEXT.fetch_add(count, Ordering::Relaxed);
            if (0..count).all(|i| TcpListener::bind((LOOPBACK, base + i)).is_ok()) {
                return base;
            }
        }
        panic!("no {count} consecutive free ports");
    }

    fn port_of(listener: &TcpListener) -> u16 {
        listener.local_addr().unwrap().port()
    }

    fn ports_of(pair: &(TcpListener, TcpListener)) -> (u16, u16) {
        (port_of(&pair.0), port_of(&pair.1))
    }

    #[test]
    fn port_allocator_gives_the_first_pair_then_the_lowest_free_ports_and_reuses_released_ones() {
        let base = free_ports(6);
        let mut ports =
            PortAllocator::new(LOOPBACK, Some((base, base + 3)), Some((base + 4, base + 5)));
        let first = ports.allocate().unwrap();
        assert_eq!(ports_of(&first), (base + 4, base + 5));
        let second = ports.allocate().unwrap();
        assert_eq!(ports_of(&second), (base, base + 1));
        let third = ports.allocate().unwrap();
        assert_eq!(ports_of(&third), (base + 2, base + 3));
        let exhausted = ports.allocate().unwrap_err();
        assert!(
            exhausted
                .to_string()
                .contains(&format!("{base}-{}", base + 3)),
            "{exhausted}"
        );
        drop(second);
        ports.release(base);
        assert!(ports.allocate().is_err(), "one free port is not a pair");
        ports.release(base + 1);
        let fourth = ports.allocate().unwrap();
        assert_eq!(ports_of(&fourth), (base, base + 1));
        // The first pair lies outside the range: released, it is not handed out again.
        drop(first);
        ports.release(base + 4);
        ports.release(base + 5);
        assert!(ports.allocate().is_err());
    }

    #[test]
    fn port_allocator_skips_a_port_held_by_another_socket() {
        let base = free_ports(4);
        let _held = TcpListener::bind((LOOPBACK, base + 1)).unwrap();
        let mut ports = PortAllocator::new(LOOPBACK, Some((base, base + 3)), None);
        assert_eq!(ports_of(&ports.allocate().unwrap()), (base, base + 2));
    }

    #[test]
    fn port_allocator_reports_a_first_pair_it_cannot_bind_and_goes_on_with_the_range() {
        let base = free_ports(4);
        let _held = TcpListener::bind((LOOPBACK, base + 3)).unwrap();
        let mut ports =
            PortAllocator::new(LOOPBACK, Some((base, base + 1)), Some((base + 2, base + 3)));
        let error = ports.allocate().unwrap_err();
        assert!(
            error.to_string().contains(&(base + 3).to_string()),
            "{error}"
        );
        assert_eq!(ports_of(&ports.allocate().unwrap()), (base, base + 1));
    }

    #[test]
    fn port_allocator_without_a_range_lets_the_system_pick() {
        let mut ports = PortAllocator::new(LOOPBACK, None, None);
        let pair = ports.allocate().unwrap();
        let (requests, responses) = ports_of(&pair);
        assert!(requests != 0 && responses != 0 && requests != responses);
        ports.release(requests);
        assert!(ports.allocate().is_ok());
    }
}
