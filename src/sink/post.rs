//! Sending each message (one JSON object, already serialized) as one HTTP POST, for
//! `http-trace --output-url`. The capture thread only ever puts a message in a bounded queue; one
//! background thread posts the messages in order over a kept-alive connection and retries the
//! failures with backoff. Every accepted message ends up in exactly one of `sent`,
//! `dropped_after_retries` and `abandoned_at_shutdown`; a message the full queue refused is
//! counted in `dropped_queue_full` instead.
//!
//! Which failures are retried: a connection error, a timeout, a 3xx or 5xx status, and the two
//! 4xx statuses that mean "try again later" (408 Request Timeout, 429 Too Many Requests). Any
//! other 4xx says the server refuses this request as it is: sending the same bytes again would
//! only be refused again, so the message is dropped after that one attempt. Redirects are not
//! followed: a redirected POST would lose its body or its Authorization header.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tracing::{debug, warn};
use ureq::http::header::{AUTHORIZATION, CONTENT_TYPE};
use ureq::http::uri::Scheme;
use ureq::http::{HeaderValue, Uri};

/// Messages waiting for the sender thread, unless configured otherwise.
pub const DEFAULT_QUEUE_CAPACITY: NonZeroUsize = NonZeroUsize::new(1024).unwrap();

/// Waits before the retries of a failed message, unless configured otherwise.
pub const DEFAULT_BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// How long one POST may take, connection included, unless configured otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The shortest time between two warnings of the same kind, so a flood of drops is a few lines.
const WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// Response bytes read (and thrown away) so the connection can carry the next request; a longer
/// response closes the connection instead.
const RESPONSE_DRAIN_LIMIT: u64 = 64 * 1024;

/// Where and how to post; [`PostConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct PostConfig {
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// Accept an `http://` URL: captured traffic then crosses the network unencrypted.
    pub allow_http: bool,
    pub queue_capacity: NonZeroUsize,
    /// One wait per retry: its length is the number of retries after the first attempt.
    pub backoff: Vec<Duration>,
    /// One attempt's limit, connecting included; at shutdown it is cut to what is left of the
    /// grace period.
    pub request_timeout: Duration,
}

impl PostConfig {
    pub fn new(url: impl Into<String>) -> Self {
        PostConfig {
            url: url.into(),
            auth_token: None,
            allow_http: false,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            backoff: DEFAULT_BACKOFF.to_vec(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PostSinkError {
    #[error("--output-url {url:?} is not a usable URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "--output-url {url} would send captured traffic unencrypted over plain http; \
         use https, or pass --allow-http to accept that"
    )]
    PlainHttp { url: String },
    #[error(
        "--output-url {url}: scheme {scheme:?} is not supported; use https \
         (or http with --allow-http)"
    )]
    UnsupportedScheme { url: String, scheme: String },
    /// The URL is logged with every failure, so it must not carry a secret.
    #[error(
        "--output-url has a user name or password in it; put a bearer token in \
         OUTPUT_URL_AUTH_TOKEN instead"
    )]
    CredentialsInUrl,
    #[error("the bearer token for --output-url is not a valid HTTP header value")]
    InvalidToken,
    #[error("cannot start the HTTP POST sender thread")]
    Spawn(#[source] io::Error),
}

/// What became of the messages so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PostStats {
    /// Messages the server accepted with a 2xx status.
    pub sent: u64,
    /// Attempts that failed, retried or not.
    pub attempts_failed: u64,
    /// Messages given up after their last attempt, or after a permanent refusal.
    pub dropped_after_retries: u64,
    /// Messages refused by `send` because the queue was full.
    pub dropped_queue_full: u64,
    /// Messages still queued or being tried when `finish`'s grace period ended.
    pub abandoned_at_shutdown: u64,
}

/// An HTTP POST sink: `send` queues, a background thread posts. Dropping it without `finish`
/// abandons whatever is still queued.
pub struct PostSink {
    shared: Arc<Shared>,
    url: String,
    sender_thread: Option<JoinHandle<()>>,
}

impl PostSink {
    /// Check the configuration and start the sender thread.
    pub fn start(config: PostConfig) -> Result<Self, PostSinkError> {
        let uri = parse_url(&config.url, config.allow_http)?;
        let authorization = config
            .auth_token
            .as_deref()
            .map(|token| {
                let mut value = HeaderValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| PostSinkError::InvalidToken)?;
                value.set_sensitive(true);
                Ok(value)
            })
            .transpose()?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .https_only(!config.allow_http)
            .timeout_global(Some(config.request_timeout))
            .user_agent(concat!("gophercap/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        let shared = Arc::new(Shared {
            capacity: config.queue_capacity.get(),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let sender = Sender {
            agent,
            uri,
            url: config.url.clone(),
            authorization,
            backoff: config.backoff,
            request_timeout: config.request_timeout,
            shared: Arc::clone(&shared),
            drop_warning: RateLimit::default(),
        };
        let sender_thread = thread::Builder::new()
            .name("post-sink".into())
            .spawn(move || sender.run())
            .map_err(PostSinkError::Spawn)?;
        Ok(PostSink {
            shared,
            url: config.url,
            sender_thread: Some(sender_thread),
        })
    }

    /// Queue one message; never waits for the network. Returns false when the queue was full
    /// and the message was dropped (and counted).
    pub fn send(&self, message: Vec<u8>) -> bool {
        let mut state = self.shared.lock();
        if state.queue.len() >= self.shared.capacity {
            state.stats.dropped_queue_full += 1;
            let dropped = state.stats.dropped_queue_full;
            let warn_now = state.queue_full_warning.allows(Instant::now());
            drop(state);
            if warn_now {
                warn!(
                    url = %self.url,
                    dropped_queue_full = dropped,
                    "HTTP POST queue full: message dropped"
                );
            }
            return false;
        }
        state.queue.push_back(message);
        drop(state);
        self.shared.changed.notify_all();
        true
    }

    pub fn stats(&self) -> PostStats {
        self.shared.lock().stats
    }

    /// Stop accepting, keep delivering (retries included) until `grace` has passed, then abandon
    /// what is left. Returns as soon as nothing is left to do, and never much after `grace`: an
    /// attempt still running then is left to end in the background, its message counted as
    /// abandoned whatever the server makes of it.
    pub fn finish(mut self, grace: Duration) -> PostStats {
        self.close(grace)
    }

    fn close(&mut self, grace: Duration) -> PostStats {
        let deadline = Instant::now() + grace;
        let mut state = self.shared.lock();
        state.deadline = Some(deadline);
        self.shared.changed.notify_all();
        while !state.sender_done {
            let now = Instant::now();
            if now >= deadline {
                state.given_up = true;
                let left = state.queue.len() as u64 + u64::from(state.in_flight);
                state.stats.abandoned_at_shutdown += left;
                state.queue.clear();
                break;
            }
            state = self.shared.wait(state, deadline - now);
        }
        let stats = state.stats;
        let sender_done = state.sender_done;
        drop(state);
        if let Some(sender_thread) = self.sender_thread.take()
            && sender_done
        {
            // The thread has nothing left to do; a panic in it has already been reported.
            let _ = sender_thread.join();
        }
        stats
    }
}

impl Drop for PostSink {
    fn drop(&mut self) {
        if self.sender_thread.is_some() {
            self.close(Duration::ZERO);
        }
    }
}

/// A URL fit to post to: https, or http when allowed; a host; no credentials.
fn parse_url(url: &str, allow_http: bool) -> Result<Uri, PostSinkError> {
    let invalid = |reason: &str| PostSinkError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|error: ureq::http::uri::InvalidUri| invalid(&error.to_string()))?;
    let scheme = uri.scheme().ok_or_else(|| invalid("it has no scheme"))?;
    if *scheme == Scheme::HTTP {
        if !allow_http {
            return Err(PostSinkError::PlainHttp {
                url: url.to_owned(),
            });
        }
    } else if *scheme != Scheme::HTTPS {
        return Err(PostSinkError::UnsupportedScheme {
            url: url.to_owned(),
            scheme: scheme.as_str().to_owned(),
        });
    }
    let authority = uri.authority().ok_or_else(|| invalid("it has no host"))?;
    if authority.as_str().contains('@') {
        return Err(PostSinkError::CredentialsInUrl);
    }
    if authority.host().is_empty() {
        return Err(invalid("it has no host"));
    }
    Ok(uri)
}

/// What the caller and the sender thread share.
struct Shared {
    capacity: usize,
    state: Mutex<State>,
    /// Signalled on a new message, on shutdown, and when the sender thread is done.
    changed: Condvar,
}

impl Shared {
    /// The state stays consistent whatever panicked while holding the lock: every change to it
    /// is a counter or a queue operation that completes.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
        self.changed
            .wait_timeout(state, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Vec<u8>>,
    /// Set by `finish`: no attempt starts after it.
    deadline: Option<Instant>,
    /// The sender thread holds a message taken from the queue.
    in_flight: bool,
    sender_done: bool,
    /// `finish` stopped waiting and counted what was left; the sender thread changes no count
    /// after that.
    given_up: bool,
    stats: PostStats,
    queue_full_warning: RateLimit,
}

impl State {
    fn past_deadline(&self, now: Instant) -> bool {
        self.given_up || self.deadline.is_some_and(|deadline| now >= deadline)
    }
}

/// Allows one event per [`WARNING_INTERVAL`].
#[derive(Default)]
struct RateLimit {
    last: Option<Instant>,
}

impl RateLimit {
    fn allows(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < WARNING_INTERVAL)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// Why an attempt failed.
enum Failure {
    Status(u16),
    Transport(ureq::Error),
}

impl Failure {
    /// A refusal that sending the same request again would meet again.
    fn is_permanent(&self) -> bool {
        matches!(self, Failure::Status(status @ 400..=499) if *status != 408 && *status != 429)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status(status) => write!(f, "HTTP status {status}"),
            Failure::Transport(error) => error.fmt(f),
        }
    }
}

enum Delivery {
    Sent,
    Dropped {
        attempts: usize,
        failure: Failure,
    },
    /// The shutdown deadline came (or would come) before the message could be delivered.
    Abandoned,
}

/// The background thread's side: takes messages in order and posts each until it is delivered,
/// dropped or abandoned.
struct Sender {
    agent: ureq::Agent,
    uri: Uri,
    url: String,
    authorization: Option<HeaderValue>,
    backoff: Vec<Duration>,
    request_timeout: Duration,
    shared: Arc<Shared>,
    drop_warning: RateLimit,
}

impl Sender {
    fn run(mut self) {
        while let Some(message) = self.next_message() {
            match self.deliver(&message) {
                Delivery::Sent => self.settle(|stats| stats.sent += 1),
                Delivery::Dropped { attempts, failure } => {
                    self.settle(|stats| stats.dropped_after_retries += 1);
                    if self.drop_warning.allows(Instant::now()) {
                        warn!(
                            url = %self.url,
                            attempts,
                            error = %failure,
                            "HTTP POST failed: message dropped"
                        );
                    }
                }
                Delivery::Abandoned => break,
            }
        }
        let mut state = self.shared.lock();
        if !state.given_up {
            let left = state.queue.len() as u64 + u64::from(state.in_flight);
            state.stats.abandoned_at_shutdown += left;
        }
        state.queue.clear();
        state.in_flight = false;
        state.sender_done = true;
        drop(state);
        self.shared.changed.notify_all();
    }

    /// The next message, or None once shutdown leaves nothing to deliver.
    fn next_message(&self) -> Option<Vec<u8>> {
        let mut state = self.shared.lock();
        loop {
            if state.past_deadline(Instant::now()) {
                return None;
            }
            if let Some(message) = state.queue.pop_front() {
                state.in_flight = true;
                return Some(message);
            }
            if state.deadline.is_some() {
                return None;
            }
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Record the fate of the message in flight, unless `finish` has already counted it.
    fn settle(&self, count: impl FnOnce(&mut PostStats)) {
        let mut state = self.shared.lock();
        if !state.given_up {
            count(&mut state.stats);
        }
        state.in_flight = false;
    }

    fn deliver(&self, message: &[u8]) -> Delivery {
        let mut waits = self.backoff.iter();
        let mut attempts = 0;
        loop {
            let Some(timeout) = self.attempt_timeout() else {
                return Delivery::Abandoned;
            };
            attempts += 1;
            let failure = match self.post(message, timeout) {
                Ok(()) => return Delivery::Sent,
                Err(failure) => failure,
            };
            let given_up = {
                let mut state = self.shared.lock();
                if !state.given_up {
                    state.stats.attempts_failed += 1;
                }
                state.given_up
            };
            debug!(url = %self.url, attempts, error = %failure, "HTTP POST attempt failed");
            if given_up {
                return Delivery::Abandoned;
            }
            let wait = if failure.is_permanent() {
                None
            } else {
                waits.next()
            };
            match wait {
                None => return Delivery::Dropped { attempts, failure },
                Some(&wait) => {
                    if !self.back_off(wait) {
                        return Delivery::Abandoned;
                    }
                }
            }
        }
    }

    /// The time the next attempt may take: the request timeout, cut to what is left of the
    /// grace period once shutdown has begun; None when nothing is left.
    fn attempt_timeout(&self) -> Option<Duration> {
        let state = self.shared.lock();
        let now = Instant::now();
        if state.past_deadline(now) {
            return None;
        }
        Some(match state.deadline {
            Some(deadline) => self.request_timeout.min(deadline - now),
            None => self.request_timeout,
        })
    }

    /// Wait before a retry. False when the shutdown deadline falls before the wait ends: no
    /// attempt could follow it, so there is no point sleeping until then.
    fn back_off(&self, wait: Duration) -> bool {
        let retry_at = Instant::now() + wait;
        let mut state = self.shared.lock();
        loop {
            if state.given_up || state.deadline.is_some_and(|deadline| deadline <= retry_at) {
                return false;
            }
            let now = Instant::now();
            if now >= retry_at {
                return true;
            }
            state = self.shared.wait(state, retry_at - now);
        }
    }

    fn post(&self, message: &[u8], timeout: Duration) -> Result<(), Failure> {
        let mut request = self
            .agent
            .post(&self.uri)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header(CONTENT_TYPE, "application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        let mut response = request.send(message).map_err(Failure::Transport)?;
        // Reading the response to its end lets the connection carry the next request; the
        // status alone decides the outcome, so a failure to read it changes nothing.
        let _ = io::copy(
            &mut response.body_mut().as_reader().take(RESPONSE_DRAIN_LIMIT),
            &mut io::sink(),
        );
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Status(status.as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What the test server does with a request.
    #[derive(Clone, Copy)]
    enum Reply {
        Status(u16),
        /// Read the request and never answer.
        Stall,
    }

    struct Received {
        /// Header lines, names lowercased.
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Received {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(header, _)| header == name)
                .map(|(_, value)| value.as_str())
        }
    }

    /// An HTTP/1.1 server on loopback that answers the n-th request (from 0, across
    /// connections) as `reply(n)` says, and records every request it read.
    struct TestServer {
        url: String,
        received: Arc<Mutex<Vec<Received>>>,
        connections: Arc<AtomicUsize>,
    }

    impl TestServer {
        fn start(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}/ingest", listener.local_addr().unwrap());
            let received = Arc::new(Mutex::new(Vec::new()));
            let connections = Arc::new(AtomicUsize::new(0));
            let reply = Arc::new(reply);
            let (received_by_server, connections_by_server) =
                (Arc::clone(&received), Arc::clone(&connections));
            thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    connections_by_server.fetch_add(1, Ordering::SeqCst);
                    let (received, reply) = (Arc::clone(&received_by_server), Arc::clone(&reply));
                    thread::spawn(move || serve_connection(stream, &received, &*reply));
                }
            });
            TestServer {
                url,
                received,
                connections,
            }
        }

        fn bodies(&self) -> Vec<Vec<u8>> {
            let received = self.received.lock().unwrap();
            received
                .iter()
                .map(|request| request.body.clone())
                .collect()
        }
    }

    fn serve_connection(
        stream: TcpStream,
        received: &Mutex<Vec<Received>>,
        reply: &dyn Fn(usize) -> Reply,
    ) {
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            assert!(
                request_line.starts_with("POST /ingest HTTP/1.1"),
                "{request_line}"
            );
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
            }
            let length = headers
                .iter()
                .find(|(name, _)| name == "content-length")
                .map_or(0, |(_, value)| value.parse().unwrap());
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let index = {
                let mut received = received.lock().unwrap();
                received.push(Received { headers, body });
                received.len() - 1
            };
            match reply(index) {
                Reply::Status(status) => {
                    let response = format!("HTTP/1.1 {status} Test\r\nContent-Length: 2\r\n\r\nok");
                    if writer.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
                Reply::Stall => {
                    thread::sleep(Duration::from_secs(30));
                    return;
                }
            }
        }
    }

    fn config(url: &str, backoff_ms: &[u64]) -> PostConfig {
        PostConfig {
            allow_http: true,
            backoff: backoff_ms
                .iter()
                .map(|&ms| Duration::from_millis(ms))
                .collect(),
            ..PostConfig::new(url)
        }
    }

    /// Poll until `condition` holds; fail the test after a few seconds.
    fn wait_for(what: &str, condition: impl Fn() -> bool) {
        let give_up_at = Instant::now() + Duration::from_secs(5);
        while !condition() {
            assert!(Instant::now() < give_up_at, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn two_server_errors_then_success_delivers_once_on_the_default_schedule() {
        let server = TestServer::start(|n| Reply::Status(if n < 2 { 500 } else { 200 }));
        let sink = PostSink::start(PostConfig {
            allow_http: true,
            ..PostConfig::new(&server.url)
        })
        .unwrap();
        let started = Instant::now();
        assert!(sink.send(br#"{"n":1}"#.to_vec()));
        let stats = sink.finish(Duration::from_secs(10));
        let elapsed = started.elapsed();
        assert_eq!(
            stats,
            PostStats {
                sent: 1,
                attempts_failed: 2,
                ..PostStats::default()
            }
        );
        assert!(
            elapsed >= Duration::from_secs(3),
            "retried after {elapsed:?}"
        );
        assert_eq!(server.bodies(), vec![br#"{"n":1}"#.to_vec(); 3]);
    }

    #[test]
    fn always_failing_server_drops_after_one_attempt_and_three_retries() {
        let server = TestServer::start(|_| Reply::Status(503));
        let sink = PostSink::start(config(&server.url, &[5, 10, 20])).unwrap();
        sink.send(b"{}".to_vec());
        let stats = sink.finish(Duration::from_secs(5));
        assert_eq!(
            stats,
            PostStats {
                attempts_failed: 4,
                dropped_after_retries: 1,
                ..PostStats::default()
            }
        );
        assert_eq!(server.bodies().len(), 4);
    }

    #[test]
    fn client_error_is_permanent_but_429_and_408_are_retried() {
        let server = TestServer::start(|n| Reply::Status([400, 429, 408, 200][n]));
        let sink = PostSink::start(config(&server.url, &[5, 5, 5])).unwrap();
        sink.send(b"{\"refused\":true}".to_vec());
        sink.send(b"{\"later\":true}".to_vec());
        let stats = sink.finish(Duration::from_secs(5));
        assert_eq!(
            stats,
            PostStats {
                sent: 1,
                attempts_failed: 3,
                dropped_after_retries: 1,
                ..PostStats::default()
            }
        );
        assert_eq!(server.bodies().len(), 4);
    }

    #[test]
    fn bearer_token_and_content_type_arrive() {
        let server = TestServer::start(|_| Reply::Status(204));
        let sink = PostSink::start(PostConfig {
            auth_token: Some("s3cret-token".into()),
            ..config(&server.url, &[5])
        })
        .unwrap();
        sink.send(br#"{"method":"GET"}"#.to_vec());
        assert_eq!(sink.finish(Duration::from_secs(5)).sent, 1);
        let received = server.received.lock().unwrap();
        assert_eq!(received[0].header("content-type"), Some("application/json"));
        assert_eq!(
            received[0].header("authorization"),
            Some("Bearer s3cret-token")
        );
        assert_eq!(received[0].body, br#"{"method":"GET"}"#);
    }

    #[test]
    fn no_authorization_header_without_a_token() {
        let server = TestServer::start(|_| Reply::Status(200));
        let sink = PostSink::start(config(&server.url, &[5])).unwrap();
        sink.send(b"{}".to_vec());
        assert_eq!(sink.finish(Duration::from_secs(5)).sent, 1);
        assert_eq!(
            server.received.lock().unwrap()[0].header("authorization"),
            None
        );
    }

    #[test]
    fn http_url_without_allow_http_is_a_config_error_naming_the_flag() {
        let error = PostSink::start(PostConfig::new("http://127.0.0.1:9/ingest"))
            .err()
            .unwrap();
        assert!(
            matches!(error, PostSinkError::PlainHttp { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("--allow-http"), "{error}");
    }

    #[test]
    fn other_schemes_and_unparsable_urls_are_config_errors() {
        let start = |url: &str| PostSink::start(config(url, &[])).err().unwrap();
        assert!(matches!(
            start("ftp://example.com/x"),
            PostSinkError::UnsupportedScheme { .. }
        ));
        assert!(matches!(
            start("not a url"),
            PostSinkError::InvalidUrl { .. }
        ));
        assert!(matches!(
            start("example.com/ingest"),
            PostSinkError::InvalidUrl { .. }
        ));
        assert!(matches!(
            start("https://user:pw@example.com/"),
            PostSinkError::CredentialsInUrl
        ));
        let token_with_newline = PostConfig {
            auth_token: Some("a\nb".into()),
            ..config("https://example.com/", &[])
        };
        assert!(matches!(
            PostSink::start(token_with_newline).err().unwrap(),
            PostSinkError::InvalidToken
        ));
    }

    #[test]
    fn full_queue_drops_and_counts_without_blocking() {
        let server = TestServer::start(|_| Reply::Stall);
        let sink = PostSink::start(PostConfig {
            queue_capacity: NonZeroUsize::new(2).unwrap(),
            ..config(&server.url, &[5])
        })
        .unwrap();
        assert!(sink.send(b"{\"n\":0}".to_vec()));
        wait_for("the stalled request", || server.bodies().len() == 1);
        let started = Instant::now();
        let queued: Vec<bool> = (1..=7)
            .map(|n| sink.send(format!("{{\"n\":{n}}}").into_bytes()))
            .collect();
        // Blocking would last the request timeout (10 s), as the server stalls for 30 s.
        assert!(started.elapsed() < Duration::from_secs(3), "send blocked");
        assert_eq!(queued, [true, true, false, false, false, false, false]);
        assert_eq!(sink.stats().dropped_queue_full, 5);
        let stats = sink.finish(Duration::ZERO);
        assert_eq!(
            stats,
            PostStats {
                dropped_queue_full: 5,
                abandoned_at_shutdown: 3,
                ..PostStats::default()
            }
        );
    }

    #[test]
    fn finish_cuts_a_backoff_longer_than_the_grace_period() {
        let server = TestServer::start(|_| Reply::Status(500));
        let sink = PostSink::start(config(&server.url, &[5_000, 5_000, 5_000])).unwrap();
        for n in 0..3 {
            sink.send(format!("{{\"n\":{n}}}").into_bytes());
        }
        wait_for("the first failed attempt", || {
            sink.stats().attempts_failed == 1
        });
        let grace = Duration::from_millis(300);
        let started = Instant::now();
        let stats = sink.finish(grace);
        let elapsed = started.elapsed();
        assert!(
            elapsed < grace + Duration::from_millis(200),
            "finish took {elapsed:?}"
        );
        assert_eq!(
            stats,
            PostStats {
                attempts_failed: 1,
                abandoned_at_shutdown: 3,
                ..PostStats::default()
            }
        );
    }

    #[test]
    fn finish_delivers_the_queue_in_order_over_one_connection() {
        let server = TestServer::start(|_| Reply::Status(200));
        let sink = PostSink::start(config(&server.url, &[5])).unwrap();
        let messages: Vec<Vec<u8>> = (0..300)
            .map(|n| format!("{{\"n\":{n}}}").into_bytes())
            .collect();
        for message in &messages {
            assert!(sink.send(message.clone()));
        }
        let stats = sink.finish(Duration::from_secs(10));
        assert_eq!(stats.sent, 300);
        assert_eq!(server.bodies(), messages);
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn server_down_counts_failed_attempts_and_drops() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sink = PostSink::start(config(
            &format!("http://127.0.0.1:{port}/ingest"),
            &[5, 5, 5],
        ))
        .unwrap();
        sink.send(b"{}".to_vec());
        sink.send(b"{}".to_vec());
        let stats = sink.finish(Duration::from_secs(5));
        assert_eq!(
            stats,
            PostStats {
                attempts_failed: 8,
                dropped_after_retries: 2,
                ..PostStats::default()
            }
        );
    }

    #[test]
    fn warnings_are_rate_limited_to_one_per_interval() {
        let mut limit = RateLimit::default();
        let start = Instant::now();
        assert!(limit.allows(start));
        assert!(!limit.allows(start + Duration::from_millis(10)));
        assert!(!limit.allows(start + WARNING_INTERVAL - Duration::from_millis(1)));
        assert!(limit.allows(start + WARNING_INTERVAL));
    }

    #[test]
    fn dropping_the_sink_abandons_the_queue_without_waiting() {
        let server = TestServer::start(|_| Reply::Stall);
        let sink = PostSink::start(config(&server.url, &[5])).unwrap();
        sink.send(b"{}".to_vec());
        wait_for("the stalled request", || server.bodies().len() == 1);
        let started = Instant::now();
        drop(sink);
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
