//! The control plane of `gophercap tap`: a TCP server speaking newline-delimited JSON, through
//! which clients (a script, or a person typing into `nc 127.0.0.1 50005`) send commands and
//! receive events by category. It knows nothing of what the commands mean: the subcommand answers
//! them through a [`ControlHandler`] and publishes its events through an [`EventPublisher`].
//!
//! # Protocol
//!
//! One JSON object per line in each direction, UTF-8, ending in `\n` (a `\r` before it is
//! ignored). On connect the server sends a hello and subscribes the client to the configured
//! default categories:
//!
//! ```text
//! {"type":"hello","version":"0.1.0","cats":["session"],"commands":["ping","subscribe","stats"]}
//! ```
//!
//! Every request gets exactly one reply, in order. `req`, when a request carries one, is echoed
//! so a script can match replies to requests:
//!
//! ```text
//! > {"cmd":"ping","req":1}
//! < {"type":"reply","cmd":"ping","ok":true,"req":1,"pong":true,"ts":"2025-05-01T12:00:00.123Z"}
//! > {"cmd":"subscribe","cats":["session","flow"]}
//! < {"type":"reply","cmd":"subscribe","ok":true,"cats":["session","flow"]}
//! > {"cmd":"get_session","id":7}
//! < {"type":"reply","cmd":"get_session","ok":false,"error":"no session 7"}
//! ```
//!
//! - `ping` and `subscribe` are the server's own. `subscribe` replaces the client's categories
//!   with `cats` (`"all"` or `"*"` stands for every one; an empty list for none) and replies with
//!   the categories now subscribed; an unknown name is an error reply naming the valid ones, and
//!   the subscription stays as it was.
//! - Every other command goes to the [`ControlHandler`]: its fields follow `ok: true`, or its
//!   message becomes `"ok":false,"error":...`. An unknown command is the handler's to refuse.
//! - A line that does not start with `{` is read as words, for people typing: the first word is
//!   the command; for `subscribe` the others are categories (`subscribe session flow`), for any
//!   other command one numeric word becomes `id` (`get_session 7`). A blank line is ignored.
//! - A line that is not a JSON object, or has no string `cmd`, gets an `ok: false` reply with
//!   `"cmd":null`; the connection stays open. A line longer than 64 KiB gets one and is closed.
//! - A client that closes its sending side (`nc -N`) still gets the replies to what it sent, then
//!   the server closes the connection.
//!
//! Events carry their category, their name and the wall-clock time (RFC 3339, UTC, milliseconds)
//! before their own fields:
//!
//! ```text
//! {"type":"event","cat":"session","event":"open","ts":"2025-05-01T12:00:00.456Z","id":7}
//! ```
//!
//! The categories are `session`, `flow`, `ports`, `output`, `stats` and `control`. At shutdown
//! every client, whatever it subscribed to, gets `{"type":"event","cat":"control",
//! "event":"shutdown",...}` if it can still take it, then end of file. A connection beyond the
//! client limit gets one `{"type":"error","error":...}` line and is closed.
//!
//! # Never blocking the capture thread
//!
//! [`EventPublisher::publish`] serializes an event once and offers the line to the bounded queue
//! of each client subscribed to its category; it never waits on a socket. Each client has a
//! reader thread (requests) and a writer thread (queue to socket, every write under a deadline).
//! A client whose queue is full, or whose socket takes no data for the write timeout, is
//! disconnected with a warning: one client that stops reading costs memory up to its queue limit
//! and nothing else, neither to the capture thread nor to the other clients. (A client cut off
//! in the middle of a write may find its last line unterminated.)

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::output::json::write_compact;
use chrono::Utc;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use tracing::{debug, warn};

/// Clients connected at once, unless configured otherwise.
pub const DEFAULT_MAX_CLIENTS: usize = 64;

/// Lines waiting for one client's socket, unless configured otherwise.
pub const DEFAULT_CLIENT_QUEUE_LINES: usize = 4096;

/// Bytes waiting for one client's socket, unless configured otherwise.
pub const DEFAULT_CLIENT_QUEUE_BYTES: usize = 4 << 20;

/// How long one write to a client may wait for room in its socket, unless configured otherwise.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the acceptor waits for a connection before it looks at the stop flag again: the
/// longest that shutdown waits for it.
const ACCEPT_POLL_MS: libc::c_int = 50;

/// The longest request line. Nothing legitimate comes near it, and without a limit a client that
/// never sends a newline would grow the buffer without bound.
const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Bytes a writer keeps allocated between bursts: one burst should not pin its buffer for the
/// life of the connection.
const WRITE_BUFFER_KEEP: usize = 64 * 1024;

/// The commands the server answers itself; the handler's follow them in the hello.
const SERVER_COMMANDS: [&str; 2] = ["ping", "subscribe"];

/// What an event is about; clients subscribe by category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Session,
    Flow,
    Ports,
    Output,
    Stats,
    Control,
}

impl Category {
    /// Every category, in the order replies list them.
    pub const ALL: [Category; 6] = [
        Category::Session,
        Category::Flow,
        Category::Ports,
        Category::Output,
        Category::Stats,
        Category::Control,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Session => "session",
            Category::Flow => "flow",
            Category::Ports => "ports",
            Category::Output => "output",
            Category::Stats => "stats",
            Category::Control => "control",
        }
    }

    /// The category of a protocol name; `None` for anything else (`all` included, which is a
    /// set, not a category).
    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL
            .into_iter()
            .find(|category| category.as_str() == name)
    }

    /// Its bit in a subscription mask: the discriminant, so the bits are 0..ALL.len().
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every category's bit.
const ALL_MASK: u8 = (1 << Category::ALL.len()) - 1;

fn mask_of(categories: impl IntoIterator<Item = Category>) -> u8 {
    categories
        .into_iter()
        .fold(0, |mask, category| mask | category.bit())
}

/// The categories of a mask as a JSON list of names, in [`Category::ALL`] order.
fn names_of(mask: u8) -> Value {
    Category::ALL
        .into_iter()
        .filter(|category| mask & category.bit() != 0)
        .map(Category::as_str)
        .collect::<Vec<_>>()
        .into()
}

/// Answers the commands the server does not answer itself. It runs on the requesting client's
/// reader thread, so a slow answer delays that client's next request and nothing else.
pub trait ControlHandler: Send + Sync {
    /// The commands it knows, announced in the hello after `ping` and `subscribe`. None by
    /// default: the hello then names only the server's own.
    fn commands(&self) -> &[&str] {
        &[]
    }

    /// Answer `cmd`; `request` is the whole request object (`cmd` and `req` included). The
    /// fields of `Ok` follow `"ok":true` in the reply, except those named like the envelope's
    /// (`type`, `cmd`, `ok`, `req`, `error`); `Err` becomes its `error`.
    fn command(
        &self,
        cmd: &str,
        request: &Map<String, Value>,
    ) -> Result<Map<String, Value>, String>;
}

/// Where to listen and how much to allow each client; [`ControlConfig::new`] fills in the
/// defaults.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Port 0 lets the system pick; [`ControlServer::local_addr`] says which.
    pub bind: SocketAddr,
    /// What a client receives until it subscribes otherwise.
    pub default_categories: Vec<Category>,
    /// Connections beyond this are refused with an error line.
    pub max_clients: usize,
    /// A client with this many lines waiting is disconnected rather than sent more.
    pub client_queue_lines: usize,
    /// Same, counted in bytes: a few huge events must not hold much memory either.
    pub client_queue_bytes: usize,
    /// The longest one write to a client may wait; also what shutdown gives the clients, all
    /// together, to take their last lines. Must be above zero.
    pub write_timeout: Duration,
}

impl ControlConfig {
    pub fn new(bind: SocketAddr, default_categories: Vec<Category>) -> Self {
        ControlConfig {
            bind,
            default_categories,
            max_clients: DEFAULT_MAX_CLIENTS,
            client_queue_lines: DEFAULT_CLIENT_QUEUE_LINES,
            client_queue_bytes: DEFAULT_CLIENT_QUEUE_BYTES,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
        }
    }
}

/// The running server: an acceptor thread and two threads per client. Dropping it shuts it down
/// as [`ControlServer::shutdown`] does.
pub struct ControlServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    /// Returns the handles of the client threads still running when it stops.
    acceptor: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl ControlServer {
    /// Bind and start accepting.
    pub fn start(config: ControlConfig, handler: Arc<dyn ControlHandler>) -> io::Result<Self> {
        if config.write_timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the control server's write timeout must be above zero",
            ));
        }
        let listener = TcpListener::bind(config.bind)?;
        // Accept only after poll said a connection waits, and even then never wait: the
        // connection may be gone by the time accept runs.
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let default_mask = mask_of(config.default_categories.iter().copied());
        let commands: Vec<&str> = SERVER_COMMANDS
            .into_iter()
            .chain(handler.commands().iter().copied())
            .collect();
        let hello = to_line(
            &[
                ("type", "hello".into()),
                ("version", env!("CARGO_PKG_VERSION").into()),
                ("cats", names_of(default_mask)),
                ("commands", commands.into()),
            ],
            &Map::new(),
        );
        let shared = Arc::new(Shared {
            handler,
            hello,
            default_mask,
            max_clients: config.max_clients,
            limits: QueueLimits {
                lines: config.client_queue_lines,
                bytes: config.client_queue_bytes,
            },
            write_timeout: config.write_timeout,
            wanted: AtomicU8::new(0),
            clients: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        let acceptor = thread::Builder::new()
            .name("control-accept".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || shared.accept_until_stopped(&listener)
            })?;
        Ok(ControlServer {
            shared,
            local_addr,
            acceptor: Some(acceptor),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn publisher(&self) -> EventPublisher {
        EventPublisher {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.shared.lock_clients().len()
    }

    /// Stop accepting, give every client the shutdown event if it can still take it (all of
    /// them together within one write timeout), close every connection and join every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::Relaxed);
        // A panic in the acceptor has been reported already; its client threads then end with
        // their connections below, unjoined.
        let client_threads = acceptor.join().unwrap_or_default();
        let clients = self.shared.lock_clients().clone();
        let farewell = event_line(Category::Control, "shutdown", &Map::new());
        for client in &clients {
            // A client whose queue is full gets no farewell; it is closed with the others.
            let _ = client.offer(&farewell, self.shared.limits);
            client.finish_writing();
        }
        let deadline = Instant::now() + self.shared.write_timeout;
        for client in &clients {
            client.wait_for_writer(deadline);
        }
        for client in &clients {
            self.shared.disconnect(client, Disconnect::ServerShutdown);
        }
        for thread in client_threads {
            let _ = thread.join();
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The capture side's handle: cheap to clone, and never waits on a client.
#[derive(Clone)]
pub struct EventPublisher {
    shared: Arc<Shared>,
}

impl EventPublisher {
    /// Whether any client subscribes to `cat`: one relaxed load, so an event nobody wants is not
    /// even built.
    pub fn wants(&self, cat: Category) -> bool {
        self.shared.wanted.load(Ordering::Relaxed) & cat.bit() != 0
    }

    /// Send an event to every client subscribed to `cat`. A field named like an envelope key
    /// (`type`, `cat`, `event`, `ts`) is left out. A client whose queue is full is disconnected
    /// instead of waited for.
    pub fn publish(&self, cat: Category, event: &str, fields: Map<String, Value>) {
        if !self.wants(cat) {
            return;
        }
        let line = event_line(cat, event, &fields);
        let mut too_slow = Vec::new();
        {
            let clients = self.shared.lock_clients();
            for client in clients.iter() {
                if client.cats.load(Ordering::Relaxed) & cat.bit() == 0 {
                    continue;
                }
                if let Err(why) = client.offer(&line, self.shared.limits) {
                    too_slow.push((Arc::clone(client), why));
                }
            }
        }
        // Disconnecting takes the client list's lock again, so only after it was let go.
        for (client, why) in too_slow {
            self.shared.disconnect(&client, why);
        }
    }
}

/// One serialized line, `\n` included, shared by every queue it is offered to.
type Line = Arc<[u8]>;

/// Serializes `head` in its order, then `rest` minus the keys `head` has: the envelope comes
/// first and cannot be overridden.
fn to_line(head: &[(&str, Value)], rest: &Map<String, Value>) -> Line {
    struct Ordered<'a> {
        head: &'a [(&'a str, Value)],
        rest: &'a Map<String, Value>,
    }

    impl Serialize for Ordered<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(None)?;
            for (key, value) in self.head {
                map.serialize_entry(key, value)?;
            }
            for (key, value) in self.rest {
                if !self.head.iter().any(|(taken, _)| taken == key) {
                    map.serialize_entry(key, value)?;
                }
            }
            map.end()
        }
    }

    let mut line = Vec::new();
    write_compact(&mut line, &Ordered { head, rest })
        .expect("JSON values with string keys always serialize into memory");
    line.push(b'\n');
    line.into()
}

/// The wall clock as events and pongs carry it.
fn timestamp() -> Value {
    let now = Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    crate::time::Timestamp::millis(now).to_string().into()
}

fn event_line(cat: Category, event: &str, fields: &Map<String, Value>) -> Line {
    to_line(
        &[
            ("type", "event".into()),
            ("cat", cat.as_str().into()),
            ("event", event.into()),
            ("ts", timestamp()),
        ],
        fields,
    )
}

/// The keys of a reply's envelope: a command's field of the same name is dropped, even when the
/// envelope lacks it, so a reply never claims a `req` or an `error` it was not given.
const REPLY_KEYS: [&str; 5] = ["type", "cmd", "ok", "req", "error"];

/// A reply: `cmd` is null when the request had none that could be read.
fn reply_line(
    cmd: Option<&str>,
    req: Option<&Value>,
    outcome: Result<Map<String, Value>, String>,
) -> Line {
    let mut head = vec![
        ("type", "reply".into()),
        ("cmd", cmd.map_or(Value::Null, Value::from)),
        ("ok", outcome.is_ok().into()),
    ];
    if let Some(req) = req {
        head.push(("req", req.clone()));
    }
    match outcome {
        Ok(mut fields) => {
            for key in REPLY_KEYS {
                fields.remove(key);
            }
            to_line(&head, &fields)
        }
        Err(error) => {
            head.push(("error", error.into()));
            to_line(&head, &Map::new())
        }
    }
}

/// A request that can be answered: its command and the whole request object.
#[derive(Debug)]
pub struct Request {
    pub cmd: String,
    pub fields: Map<String, Value>,
}

/// A line that is no request; answered with an error reply carrying what could be read of it.
#[derive(Debug)]
pub struct Rejected {
    pub cmd: Option<String>,
    pub req: Option<Value>,
    pub error: String,
}

impl Rejected {
    fn new(error: String) -> Self {
        Rejected {
            cmd: None,
            req: None,
            error,
        }
    }
}

/// Reads a trimmed, non-empty line: a JSON object when it starts with `{`, else words. Public
/// for the fuzz target: these are bytes from the network.
pub fn parse_request(text: &str) -> Result<Request, Rejected> {
    if text.starts_with('{') {
        let fields: Map<String, Value> = serde_json::from_str(text)
            .map_err(|error| Rejected::new(format!("not a JSON object: {error}")))?;
        return match fields.get("cmd") {
            Some(Value::String(cmd)) => Ok(Request {
                cmd: cmd.clone(),
                fields,
            }),
            _ => Err(Rejected {
                req: fields.get("req").cloned(),
                ..Rejected::new("a request needs \"cmd\", the command's name".into())
            }),
        };
    }
    let mut words = text.split_whitespace();
    let cmd = words.next().unwrap_or_default().to_owned();
    let rest: Vec<&str> = words.collect();
    let mut fields = Map::new();
    fields.insert("cmd".into(), cmd.clone().into());
    if cmd == "subscribe" {
        fields.insert("cats".into(), rest.into());
    } else if !rest.is_empty() {
        let id = match rest.as_slice() {
            [word] => word.parse::<u64>().ok(),
            _ => None,
        };
        let Some(id) = id else {
            return Err(Rejected {
                cmd: Some(cmd),
                ..Rejected::new(
                    "typed commands take one numeric id; send a JSON request for anything else"
                        .into(),
                )
            });
        };
        fields.insert("id".into(), id.into());
    }
    Ok(Request { cmd, fields })
}

fn unknown_category(name: &Value) -> String {
    let valid: Vec<&str> = Category::ALL.into_iter().map(Category::as_str).collect();
    format!(
        "unknown category {name}; valid: {}, or all",
        valid.join(", ")
    )
}

#[derive(Debug, Clone, Copy)]
struct QueueLimits {
    lines: usize,
    bytes: usize,
}

/// Why a client's connection ended.
#[derive(Debug, thiserror::Error)]
enum Disconnect {
    #[error("too slow: its queue is full ({lines} lines, {bytes} bytes waiting)")]
    QueueFull { lines: usize, bytes: usize },
    #[error("too slow: a write waited over {0:?}")]
    WriteTimedOut(Duration),
    #[error("write failed: {0}")]
    WriteFailed(#[source] io::Error),
    #[error("request line longer than {MAX_REQUEST_LINE} bytes")]
    RequestTooLong,
    #[error("closed by the client")]
    PeerClosed,
    #[error("read failed: {0}")]
    ReadFailed(#[source] io::Error),
    #[error("server shutting down")]
    ServerShutdown,
    #[error("cannot start its thread: {0}")]
    Spawn(#[source] io::Error),
}

impl Disconnect {
    /// Worth a warning: the client was cut off, rather than its connection ending as
    /// connections do.
    fn is_warning(&self) -> bool {
        matches!(
            self,
            Disconnect::QueueFull { .. }
                | Disconnect::WriteTimedOut(_)
                | Disconnect::RequestTooLong
                | Disconnect::Spawn(_)
        )
    }

    /// The client stopped sending but may still read: what it asked for is delivered before
    /// the connection closes.
    fn lets_replies_finish(&self) -> bool {
        matches!(self, Disconnect::PeerClosed | Disconnect::RequestTooLong)
    }
}

/// What the acceptor, the client threads and the publishers share.
struct Shared {
    handler: Arc<dyn ControlHandler>,
    hello: Line,
    default_mask: u8,
    max_clients: usize,
    limits: QueueLimits,
    write_timeout: Duration,
    /// The categories at least one client subscribes to.
    wanted: AtomicU8,
    clients: Mutex<Vec<Arc<Client>>>,
    stopping: AtomicBool,
}

impl Shared {
    /// The list stays consistent whatever panicked while holding the lock: every change to it
    /// is one push or one retain.
    fn lock_clients(&self) -> MutexGuard<'_, Vec<Arc<Client>>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called with the list locked, so two changes cannot store their masks out of order.
    fn refresh_wanted(&self, clients: &[Arc<Client>]) {
        let mask = clients
            .iter()
            .fold(0, |mask, client| mask | client.cats.load(Ordering::Relaxed));
        self.wanted.store(mask, Ordering::Relaxed);
    }

    /// Accept until `stopping`, then return the threads of the clients still connected.
    fn accept_until_stopped(self: &Arc<Self>, listener: &TcpListener) -> Vec<JoinHandle<()>> {
        let mut client_threads: Vec<JoinHandle<()>> = Vec::new();
        let mut last_warning: Option<Instant> = None;
        while !self.stopping.load(Ordering::Relaxed) {
            for finished in client_threads.extract_if(.., |thread| thread.is_finished()) {
                // A panic in it has been reported already.
                let _ = finished.join();
            }
            let mut pollfd = libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            if unsafe { libc::poll(&mut pollfd, 1, ACCEPT_POLL_MS) } <= 0 {
                continue;
            }
            match listener.accept() {
                Ok((stream, peer)) => client_threads.extend(self.admit(stream, peer)),
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(error) => {
                    // Out of descriptors, most likely: poll reports the waiting connection at
                    // once again, so pause, and warn once a second at most.
                    if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        warn!(%error, "control server cannot accept a connection");
                        last_warning = Some(Instant::now());
                    }
                    thread::sleep(Duration::from_millis(ACCEPT_POLL_MS as u64));
                }
            }
        }
        client_threads
    }

    /// Register a new connection and start its threads; refuse it beyond the client limit.
    fn admit(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) -> Option<JoinHandle<()>> {
        let mut clients = self.lock_clients();
        if clients.len() >= self.max_clients {
            drop(clients);
            self.refuse(stream, peer);
            return None;
        }
        // macOS hands out accepted sockets non-blocking like their listener.
        let setup = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_write_timeout(Some(self.write_timeout)))
            // A person typing a command should not wait on Nagle for the reply.
            .and_then(|()| stream.set_nodelay(true));
        if let Err(error) = setup {
            debug!(%peer, %error, "control client dropped while being set up");
            return None;
        }
        let client = Arc::new(Client {
            peer,
            stream,
            cats: AtomicU8::new(self.default_mask),
            outbox: Mutex::new(Outbox::default()),
            changed: Condvar::new(),
        });
        // The first line of an empty queue always fits: the hello goes before any event.
        let _ = client.offer(&self.hello, self.limits);
        clients.push(Arc::clone(&client));
        self.refresh_wanted(&clients);
        drop(clients);
        debug!(%peer, "control client connected");
        let shared = Arc::clone(self);
        let reader_client = Arc::clone(&client);
        let spawned = thread::Builder::new()
            .name("control-read".into())
            .spawn(move || shared.serve(&reader_client));
        match spawned {
            Ok(thread) => Some(thread),
            Err(error) => {
                self.disconnect(&client, Disconnect::Spawn(error));
                None
            }
        }
    }

    fn refuse(&self, stream: TcpStream, peer: SocketAddr) {
        warn!(
            %peer,
            max_clients = self.max_clients,
            "control client refused: too many clients"
        );
        let line = to_line(
            &[
                ("type", "error".into()),
                (
                    "error",
                    format!("too many control clients (at most {})", self.max_clients).into(),
                ),
            ],
            &Map::new(),
        );
        // A fresh socket takes a short line at once; non-blocking so the acceptor can never
        // wait on one that does not.
        let _ = stream
            .set_nonblocking(true)
            .and_then(|()| (&stream).write_all(&line));
        let _ = stream.shutdown(Shutdown::Both);
    }

    /// The reader thread: starts the writer, answers requests until the connection ends, then
    /// closes it and waits for the writer.
    fn serve(self: Arc<Self>, client: &Arc<Client>) {
        let writer = thread::Builder::new().name("control-write".into()).spawn({
            let shared = Arc::clone(&self);
            let client = Arc::clone(client);
            move || shared.write_queued(&client)
        });
        let writer = match writer {
            Ok(writer) => writer,
            Err(error) => {
                self.disconnect(client, Disconnect::Spawn(error));
                return;
            }
        };
        let why = self.read_requests(client);
        if why.lets_replies_finish() {
            client.cats.store(0, Ordering::Relaxed);
            self.refresh_wanted(&self.lock_clients());
            client.finish_writing();
            let _ = writer.join();
            self.disconnect(client, why);
        } else {
            self.disconnect(client, why);
            let _ = writer.join();
        }
    }

    /// Reads and answers requests until the connection ends; returns how it ended.
    fn read_requests(&self, client: &Client) -> Disconnect {
        let mut pending = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            let read = match (&client.stream).read(&mut chunk) {
                Ok(0) => {
                    // A last request without its newline counts too (`printf ping | nc -N`).
                    return match self.answer(client, &pending) {
                        Ok(()) => Disconnect::PeerClosed,
                        Err(why) => why,
                    };
                }
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Disconnect::ReadFailed(error),
            };
            // Only the new bytes can hold a newline not seen yet.
            let scan_from = pending.len();
            pending.extend_from_slice(&chunk[..read]);
            let mut line_start = 0;
            for newline in memchr::memchr_iter(b'\n', &pending[scan_from..]) {
                let line_end = scan_from + newline;
                if let Err(why) = self.answer(client, &pending[line_start..line_end]) {
                    return why;
                }
                line_start = line_end + 1;
            }
            pending.drain(..line_start);
            if pending.len() > MAX_REQUEST_LINE {
                let error = format!("request line longer than {MAX_REQUEST_LINE} bytes; closing");
                return match client.offer(&reply_line(None, None, Err(error)), self.limits) {
                    Ok(()) => Disconnect::RequestTooLong,
                    Err(why) => why,
                };
            }
        }
    }

    /// Queue the reply to one line, if it asks for one; Err when the queue is full.
    fn answer(&self, client: &Client, line: &[u8]) -> Result<(), Disconnect> {
        let reply = match std::str::from_utf8(line).map(str::trim) {
            Ok("") => return Ok(()),
            Ok(text) => match parse_request(text) {
                Ok(request) => {
                    let outcome = match request.cmd.as_str() {
                        "ping" => Ok(Map::from_iter([
                            ("pong".to_owned(), true.into()),
                            ("ts".to_owned(), timestamp()),
                        ])),
                        "subscribe" => self.subscribe(client, &request.fields),
                        cmd => self.handler.command(cmd, &request.fields),
                    };
                    reply_line(Some(&request.cmd), request.fields.get("req"), outcome)
                }
                Err(rejected) => reply_line(
                    rejected.cmd.as_deref(),
                    rejected.req.as_ref(),
                    Err(rejected.error),
                ),
            },
            Err(_) => reply_line(None, None, Err("request is not UTF-8".into())),
        };
        client.offer(&reply, self.limits)
    }

    /// Replace the client's categories; the reply lists them.
    fn subscribe(
        &self,
        client: &Client,
        request: &Map<String, Value>,
    ) -> Result<Map<String, Value>, String> {
        let Some(Value::Array(names)) = request.get("cats") else {
            return Err("subscribe needs \"cats\", a list of categories or [\"all\"]".into());
        };
        let mut mask = 0;
        for name in names {
            let bits = match name.as_str() {
                Some("all" | "*") => Some(ALL_MASK),
                Some(text) => Category::parse(text).map(Category::bit),
                None => None,
            };
            mask |= bits.ok_or_else(|| unknown_category(name))?;
        }
        client.cats.store(mask, Ordering::Relaxed);
        self.refresh_wanted(&self.lock_clients());
        Ok(Map::from_iter([("cats".to_owned(), names_of(mask))]))
    }

    /// The writer thread: queue to socket until the client is closed, or has been asked to
    /// finish and its queue is empty.
    fn write_queued(&self, client: &Arc<Client>) {
        if let Err(why) = self.write_until_done(client) {
            self.disconnect(client, why);
        }
        client.lock().writer_done = true;
        client.changed.notify_all();
    }

    fn write_until_done(&self, client: &Client) -> Result<(), Disconnect> {
        let mut taken = VecDeque::new();
        let mut bytes = Vec::new();
        loop {
            {
                let mut outbox = client.lock();
                loop {
                    if outbox.closed || (outbox.draining && outbox.lines.is_empty()) {
                        return Ok(());
                    }
                    if !outbox.lines.is_empty() {
                        break;
                    }
                    outbox = client.wait(outbox);
                }
                // Swapped, not copied: publishers wait on this lock.
                std::mem::swap(&mut outbox.lines, &mut taken);
                outbox.bytes = 0;
            }
            for line in taken.drain(..) {
                bytes.extend_from_slice(&line);
            }
            if let Err(error) = (&client.stream).write_all(&bytes) {
                return Err(match error.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        Disconnect::WriteTimedOut(self.write_timeout)
                    }
                    _ => Disconnect::WriteFailed(error),
                });
            }
            bytes.clear();
            bytes.shrink_to(WRITE_BUFFER_KEEP);
        }
    }

    /// End a client's connection, once: its queue is dropped, its socket shut in both
    /// directions (which wakes its reader and a writer blocked on a full socket), and it leaves
    /// the client list.
    fn disconnect(&self, client: &Arc<Client>, why: Disconnect) {
        {
            let mut outbox = client.lock();
            if outbox.closed {
                return;
            }
            outbox.closed = true;
            outbox.lines.clear();
            outbox.bytes = 0;
        }
        client.changed.notify_all();
        let _ = client.stream.shutdown(Shutdown::Both);
        {
            let mut clients = self.lock_clients();
            clients.retain(|other| !Arc::ptr_eq(other, client));
            self.refresh_wanted(&clients);
        }
        if why.is_warning() {
            warn!(peer = %client.peer, reason = %why, "control client disconnected");
        } else {
            debug!(peer = %client.peer, reason = %why, "control client disconnected");
        }
    }
}

/// One connection: shared by its reader and writer threads and the client list.
struct Client {
    peer: SocketAddr,
    stream: TcpStream,
    /// Its subscription mask.
    cats: AtomicU8,
    outbox: Mutex<Outbox>,
    /// Signalled when a line arrives in an empty queue, when the client is closed or asked to
    /// finish, and when its writer ends.
    changed: Condvar,
}

#[derive(Default)]
struct Outbox {
    lines: VecDeque<Line>,
    bytes: usize,
    /// Disconnected: nothing more is queued or written.
    closed: bool,
    /// The writer ends once the queue is empty.
    draining: bool,
    writer_done: bool,
}

impl Client {
    /// The outbox stays consistent whatever panicked while holding the lock: every change to it
    /// completes.
    fn lock(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, outbox: MutexGuard<'a, Outbox>) -> MutexGuard<'a, Outbox> {
        self.changed
            .wait(outbox)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue one line without waiting; Err when the queue is at its limits. A closed client
    /// drops the line. The first line of an empty queue always fits, so one reply larger than
    /// the byte limit does not cost its client the connection.
    fn offer(&self, line: &Line, limits: QueueLimits) -> Result<(), Disconnect> {
        let mut outbox = self.lock();
        if outbox.closed {
            return Ok(());
        }
        let was_empty = outbox.lines.is_empty();
        if !was_empty
            && (outbox.lines.len() >= limits.lines || outbox.bytes + line.len() > limits.bytes)
        {
            return Err(Disconnect::QueueFull {
                lines: outbox.lines.len(),
                bytes: outbox.bytes,
            });
        }
        outbox.bytes += line.len();
        outbox.lines.push_back(Arc::clone(line));
        drop(outbox);
        // The writer only ever waits on an empty queue.
        if was_empty {
            self.changed.notify_all();
        }
        Ok(())
    }

    /// Let the writer end once it has written what is queued.
    fn finish_writing(&self) {
        self.lock().draining = true;
        self.changed.notify_all();
    }

    /// Wait until the writer has ended or the client is closed, or until `deadline`.
    fn wait_for_writer(&self, deadline: Instant) {
        let mut outbox = self.lock();
        while !outbox.writer_done && !outbox.closed {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            outbox = self
                .changed
                .wait_timeout(outbox, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::{BufRead, BufReader};
    use std::sync::atomic::AtomicUsize;

    /// Knows `stats` and `get_session` (session 7 exists), refuses anything else.
    struct TestHandler;

    impl ControlHandler for TestHandler {
        fn commands(&self) -> &[&str] {
            &["stats", "get_session"]
        }

        fn command(
            &self,
            cmd: &str,
            request: &Map<String, Value>,
        ) -> Result<Map<String, Value>, String> {
            match (cmd, request.get("id").and_then(Value::as_u64)) {
                ("stats", _) => Ok(object(
                    json!({"sessions": 2, "ok": "overridden", "error": "not one"}),
                )),
                ("get_session", Some(7)) => Ok(object(json!({"session": {"id": 7}}))),
                ("get_session", Some(id)) => Err(format!("no session {id}")),
                ("get_session", None) => Err("get_session needs an id".into()),
                _ => Err(format!("unknown command {cmd:?}")),
            }
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn config() -> ControlConfig {
        ControlConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            vec![Category::Session, Category::Stats],
        )
    }

    fn start(config: ControlConfig) -> ControlServer {
        ControlServer::start(config, Arc::new(TestHandler)).unwrap()
    }

    /// Generous: the machine running the tests may be busy.
    const PATIENCE: Duration = Duration::from_secs(5);

    struct TestClient {
        reader: BufReader<TcpStream>,
        writer: TcpStream,
    }

    impl TestClient {
        fn connect(server: &ControlServer) -> Self {
            let stream = TcpStream::connect(server.local_addr()).unwrap();
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            TestClient {
                writer: stream.try_clone().unwrap(),
                reader: BufReader::new(stream),
            }
        }

        /// Connected, with the hello read: the server has registered it.
        fn connect_hello(server: &ControlServer) -> Self {
            let mut client = TestClient::connect(server);
            assert_eq!(client.line()["type"], "hello");
            client
        }

        fn send(&mut self, text: &str) {
            self.writer.write_all(text.as_bytes()).unwrap();
        }

        /// The next line, or None at end of file.
        fn try_line(&mut self) -> Option<Value> {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap() == 0 {
                return None;
            }
            assert!(line.ends_with('\n'), "unterminated line {line:?}");
            Some(serde_json::from_str(&line).unwrap())
        }

        fn line(&mut self) -> Value {
            self.try_line().expect("a line, not end of file")
        }

        fn request(&mut self, text: &str) -> Value {
            self.send(&format!("{text}\n"));
            self.line()
        }

        /// Read to end of file; the lines before it.
        fn rest(&mut self) -> Vec<Value> {
            std::iter::from_fn(|| self.try_line()).collect()
        }
    }

    fn wait_for(what: &str, condition: impl Fn() -> bool) {
        let give_up_at = Instant::now() + PATIENCE;
        while !condition() {
            assert!(Instant::now() < give_up_at, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// A receive buffer this small fills after a few lines.
    fn shrink_receive_buffer(stream: &TcpStream) {
        let size: libc::c_int = 4096;
        // SAFETY: setsockopt reads one c_int for its size.
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
    }

    fn is_timestamp(value: &Value) -> bool {
        value.as_str().is_some_and(|text| {
            text.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(text).is_ok()
        })
    }

    #[test]
    fn category_names_round_trip_and_the_masks_agree() {
        for category in Category::ALL {
            assert_eq!(Category::parse(category.as_str()), Some(category));
            assert_eq!(category.to_string(), category.as_str());
        }
        assert_eq!(Category::parse("all"), None);
        assert_eq!(Category::parse("Session"), None);
        assert_eq!(mask_of(Category::ALL), ALL_MASK);
    }

    #[test]
    fn hello_on_connect_names_version_default_categories_and_commands() {
        let server = start(config());
        let mut client = TestClient::connect(&server);
        assert_eq!(
            client.line(),
            json!({
                "type": "hello",
                "version": env!("CARGO_PKG_VERSION"),
                "cats": ["session", "stats"],
                "commands": ["ping", "subscribe", "stats", "get_session"],
            })
        );
        assert_eq!(server.clients(), 1);
    }

    #[test]
    fn ping_answers_as_json_and_as_a_typed_word() {
        let server = start(config());
        let mut client = TestClient::connect_hello(&server);
        for request in [r#"{"cmd":"ping"}"#, "ping", "  ping\r", "\n\nping"] {
            let reply = client.request(request);
            assert!(is_timestamp(&reply["ts"]), "{reply}");
            let mut reply = object(reply);
            reply.remove("ts");
            assert_eq!(
                Value::Object(reply),
                json!({"type": "reply", "cmd": "ping", "ok": true, "pong": true})
            );
        }
    }

    #[test]
    fn subscribe_replaces_accepts_all_and_names_unknown_categories() {
        let server = start(config());
        let publisher = server.publisher();
        let mut client = TestClient::connect_hello(&server);
        let reply = client.request("subscribe flow session");
        assert_eq!(
            reply,
            json!({"type": "reply", "cmd": "subscribe", "ok": true, "cats": ["session", "flow"]})
        );
        assert_eq!(
            client.request(r#"{"cmd":"subscribe","cats":["ports"]}"#)["cats"],
            json!(["ports"])
        );
        publisher.publish(Category::Session, "open", Map::new());
        publisher.publish(Category::Ports, "new", Map::new());
        assert_eq!(client.line()["event"], "new");

        let all = json!(["session", "flow", "ports", "output", "stats", "control"]);
        assert_eq!(
            client.request(r#"{"cmd":"subscribe","cats":["all"]}"#)["cats"],
            all
        );
        assert_eq!(client.request("subscribe")["cats"], json!([]));
        assert_eq!(client.request("subscribe *")["cats"], all);

        let reply = client.request("subscribe session bogus");
        assert_eq!(reply["ok"], false);
        let error = reply["error"].as_str().unwrap();
        assert!(
            error.contains("\"bogus\"") && error.contains("session, flow, ports"),
            "{error}"
        );
        let reply = client.request(r#"{"cmd":"subscribe","cats":"session"}"#);
        assert_eq!(reply["ok"], false, "{reply}");
        assert_eq!(reply["cmd"], "subscribe");
        // A refused subscribe changed nothing.
        publisher.publish(Category::Control, "still", Map::new());
        assert_eq!(client.line()["event"], "still");
    }

    #[test]
    fn req_is_echoed_in_every_kind_of_reply() {
        let server = start(config());
        let mut client = TestClient::connect_hello(&server);
        assert_eq!(
            client.request(r#"{"cmd":"ping","req":"a-1"}"#)["req"],
            "a-1"
        );
        let reply = client.request(r#"{"cmd":"stats","req":{"n":[1,2]}}"#);
        assert_eq!(reply["req"], json!({"n": [1, 2]}));
        assert_eq!(reply["sessions"], 2);
        let reply = client.request(r#"{"cmd":"get_session","id":9,"req":3}"#);
        assert_eq!((&reply["ok"], &reply["req"]), (&json!(false), &json!(3)));
        let reply = client.request(r#"{"req":4}"#);
        assert_eq!(
            (&reply["cmd"], &reply["ok"], &reply["req"]),
            (&Value::Null, &json!(false), &json!(4))
        );
        assert!(client.request("ping").get("req").is_none());
    }

    #[test]
    fn handler_commands_reply_with_their_fields_or_their_error() {
        let server = start(config());
        let mut client = TestClient::connect_hello(&server);
        // The handler's own "ok" and "error" fields do not reach the reply.
        assert_eq!(
            client.request(r#"{"cmd":"stats"}"#),
            json!({"type": "reply", "cmd": "stats", "ok": true, "sessions": 2})
        );
        assert_eq!(
            client.request("get_session 7"),
            json!({"type": "reply", "cmd": "get_session", "ok": true, "session": {"id": 7}})
        );
        assert_eq!(
            client.request(r#"{"cmd":"get_session","id":9}"#),
            json!({"type": "reply", "cmd": "get_session", "ok": false, "error": "no session 9"})
        );
        assert_eq!(
            client.request("close_session 9")["error"],
            "unknown command \"close_session\""
        );
        for typed in ["get_session seven", "get_session 7 8"] {
            let reply = client.request(typed);
            assert_eq!(
                (&reply["cmd"], &reply["ok"]),
                (&json!("get_session"), &json!(false)),
                "{reply}"
            );
        }
    }

    #[test]
    fn malformed_requests_are_answered_and_the_connection_kept() {
        let server = start(config());
        let mut client = TestClient::connect_hello(&server);
        for bad in [
            r#"{"cmd":"#,
            r#"{"cmd":5}"#,
            "{}",
            "{\"cmd\":\"ping\"} trailing",
        ] {
            let reply = client.request(bad);
            assert_eq!(reply["type"], "reply", "{bad}");
            assert_eq!(reply["cmd"], Value::Null, "{bad}");
            assert_eq!(reply["ok"], false, "{bad}");
            assert!(reply["error"].is_string(), "{bad}");
        }
        client.writer.write_all(b"\xff\xfe\n").unwrap();
        assert_eq!(client.line()["error"], "request is not UTF-8");
        assert_eq!(client.request("ping")["pong"], true);
        assert_eq!(server.clients(), 1);
    }

    #[test]
    fn a_request_line_beyond_the_limit_is_answered_then_closed() {
        let server = start(config());
        let mut client = TestClient::connect_hello(&server);
        client.send(&"a".repeat(MAX_REQUEST_LINE + 1));
        let reply = client.line();
        assert_eq!(reply["ok"], false);
        assert!(client.rest().is_empty());
        wait_for("the client to leave", || server.clients() == 0);
    }

    #[test]
    fn a_half_closed_client_gets_its_replies_then_end_of_file() {
        let server = start(config());
        let mut client = TestClient::connect_hello(&server);
        client.send("stats\nping");
        client.writer.shutdown(Shutdown::Write).unwrap();
        let lines = client.rest();
        let cmds: Vec<&Value> = lines.iter().map(|line| &line["cmd"]).collect();
        assert_eq!(cmds, [&json!("stats"), &json!("ping")]);
    }

    #[test]
    fn each_client_gets_only_its_categories() {
        let server = start(config());
        let publisher = server.publisher();
        let mut sessions = TestClient::connect_hello(&server);
        let mut flows = TestClient::connect_hello(&server);
        assert_eq!(flows.request("subscribe flow")["ok"], true);
        publisher.publish(
            Category::Session,
            "open",
            object(json!({"id": 7, "type": "ignored"})),
        );
        publisher.publish(Category::Flow, "new", object(json!({"id": 8})));
        publisher.publish(Category::Output, "rotated", Map::new());

        let event = sessions.line();
        assert!(is_timestamp(&event["ts"]), "{event}");
        let mut event = object(event);
        event.remove("ts");
        assert_eq!(
            Value::Object(event),
            json!({"type": "event", "cat": "session", "event": "open", "id": 7})
        );
        let event = flows.line();
        assert_eq!((&event["cat"], &event["id"]), (&json!("flow"), &json!(8)));
        // Anything else published before the ping would come before its reply.
        assert_eq!(sessions.request("ping")["cmd"], "ping");
        assert_eq!(flows.request("ping")["cmd"], "ping");
    }

    #[test]
    fn wants_follows_subscriptions_and_departures() {
        let server = start(config());
        let publisher = server.publisher();
        assert!(!Category::ALL.into_iter().any(|cat| publisher.wants(cat)));
        let mut first = TestClient::connect_hello(&server);
        assert!(publisher.wants(Category::Session) && publisher.wants(Category::Stats));
        assert!(!publisher.wants(Category::Flow));
        first.request("subscribe flow");
        assert!(publisher.wants(Category::Flow) && !publisher.wants(Category::Session));
        let second = TestClient::connect_hello(&server);
        assert!(publisher.wants(Category::Session) && publisher.wants(Category::Flow));
        drop(second);
        wait_for("the second client to leave", || server.clients() == 1);
        assert!(publisher.wants(Category::Flow) && !publisher.wants(Category::Session));
        first.request("subscribe");
        assert!(!Category::ALL.into_iter().any(|cat| publisher.wants(cat)));
    }

    #[test]
    fn a_client_that_never_reads_is_cut_off_while_the_others_keep_up() {
        // The stalled client is cut off by its full queue, never by the write deadline, which is
        // long so that a publish waiting on that client would be told apart from a busy machine
        // merely pausing the test.
        let write_timeout = Duration::from_secs(30);
        let server = start(ControlConfig {
            client_queue_lines: 64,
            write_timeout,
            ..config()
        });
        let publisher = server.publisher();
        let stalled = TestClient::connect_hello(&server);
        shrink_receive_buffer(&stalled.writer);
        let mut reading = TestClient::connect_hello(&server);
        let received = Arc::new(AtomicUsize::new(0));
        let reader = thread::spawn({
            let received = Arc::clone(&received);
            move || {
                while let Some(line) = reading.try_line() {
                    if line["cat"] == "session" {
                        let n = received.load(Ordering::SeqCst);
                        assert_eq!(line["n"], n, "events lost or out of order");
                        received.store(n + 1, Ordering::SeqCst);
                    }
                }
            }
        });
        let padding = "x".repeat(1000);
        let mut published = 0;
        let mut slowest = Duration::ZERO;
        let mut publish_burst = |published: &mut usize| {
            for _ in 0..32 {
                let started = Instant::now();
                publisher.publish(
                    Category::Session,
                    "open",
                    object(json!({"n": *published, "padding": padding})),
                );
                slowest = slowest.max(started.elapsed());
                *published += 1;
            }
            // Paced by the reading client, so only the stalled one falls behind.
            wait_for("the reading client", || {
                received.load(Ordering::SeqCst) == *published
            });
        };
        while server.clients() == 2 {
            assert!(published < 50_000, "the stalled client was never cut off");
            publish_burst(&mut published);
        }
        publish_burst(&mut published);
        assert!(
            slowest < write_timeout / 6,
            "publish took {slowest:?}: it waited on the stalled client"
        );
        drop(stalled);
        drop(server);
        reader.join().unwrap();
    }

    #[test]
    fn connections_beyond_max_clients_get_an_error_line_and_are_closed() {
        let server = start(ControlConfig {
            max_clients: 2,
            ..config()
        });
        let first = TestClient::connect_hello(&server);
        let _second = TestClient::connect_hello(&server);
        let mut third = TestClient::connect(&server);
        let refusal = third.line();
        assert_eq!(refusal["type"], "error");
        assert!(
            refusal["error"].as_str().unwrap().contains("at most 2"),
            "{refusal}"
        );
        assert!(third.rest().is_empty());
        assert_eq!(server.clients(), 2);
        drop(first);
        wait_for("the first client to leave", || server.clients() == 1);
        TestClient::connect_hello(&server);
    }

    #[test]
    fn shutdown_tells_every_client_and_closes_promptly() {
        let server = start(config());
        let addr = server.local_addr();
        let mut subscribed = TestClient::connect_hello(&server);
        let mut unsubscribed = TestClient::connect_hello(&server);
        unsubscribed.request("subscribe");
        let started = Instant::now();
        server.shutdown();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
        for client in [&mut subscribed, &mut unsubscribed] {
            let lines = client.rest();
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert_eq!(
                (&lines[0]["type"], &lines[0]["cat"], &lines[0]["event"]),
                (&json!("event"), &json!("control"), &json!("shutdown"))
            );
        }
        assert!(TcpStream::connect(addr).is_err(), "still accepting");
    }

    #[test]
    fn shutdown_waits_one_write_timeout_for_all_stalled_clients_together() {
        let write_timeout = Duration::from_secs(1);
        let server = start(ControlConfig {
            client_queue_lines: 1 << 20,
            client_queue_bytes: 1 << 30,
            write_timeout,
            ..config()
        });
        let publisher = server.publisher();
        let _stalled: Vec<TestClient> = (0..4)
            .map(|_| {
                let client = TestClient::connect_hello(&server);
                shrink_receive_buffer(&client.writer);
                client
            })
            .collect();
        let padding = "x".repeat(1000);
        for n in 0..6000 {
            publisher.publish(
                Category::Session,
                "open",
                object(json!({"n": n, "padding": padding})),
            );
        }
        let started = Instant::now();
        server.shutdown();
        let took = started.elapsed();
        // One write timeout per client would be 4 s.
        assert!(took < Duration::from_millis(2500), "shutdown took {took:?}");
    }
}
