//! The counters of a run in Prometheus' exposition format (`--metrics-addr`): `/metrics`,
//! `/healthz` (the process answers) and `/readyz` (the capture is open). The run's own thread
//! publishes the totals it keeps anyway, as plain stores into atomics after each packet; the
//! server's thread reads them when scraped. Nothing here is on the path unless asked for.

use crate::server::{self, Handler, Request, Response, Server, ServerError};
use crate::sink::post::PostStats;
use crate::source::CaptureCounts;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: &'static str,
}

/// Why flows or keys left a table before their end.
#[derive(Debug)]
struct Evictions {
    idle: Counter,
    capacity: Counter,
    reassembly_memory: Counter,
    detector_capacity: Counter,
}

/// Messages that were made but did not reach an output.
#[derive(Debug)]
struct OutputDrops {
    write_error: Counter,
    post_queue_full: Counter,
    post_gave_up: Counter,
    post_shutdown: Counter,
}

/// Every counter gophercap exposes; one per run, shared with the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    ready: AtomicBool,
    capture_received: Counter,
    capture_dropped: Counter,
    capture_interface_dropped: Counter,
    packets_decoded: Counter,
    connections_active: Gauge,
    evictions: Evictions,
    reassembly_gaps: Counter,
    reassembly_gap_bytes: Counter,
    http_requests: Counter,
    http_responses: Counter,
    websocket_messages: Counter,
    output_drops: OutputDrops,
    output_dropped_bytes: [Counter; 5],
    post_retries: Counter,
    post_failures: Counter,
}

/// Bytes that forwarding outputs (tap's) dropped, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DroppedBytes {
    pub startup_buffer_full: u64,
    pub output_buffer_full: u64,
    pub not_connected: u64,
    pub write_error: u64,
    /// Still pending when the output was closed.
    pub abandoned: u64,
}

/// Totals of a reassembling consumer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamCounts {
    pub gaps: u64,
    pub gap_bytes: u64,
}

/// Totals of the HTTP outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpCounts {
    pub requests: u64,
    pub responses: u64,
    pub websocket_messages: u64,
    /// Messages not written because an output had failed.
    pub unwritten: u64,
}

fn set(counter: &Counter, total: u64) {
    counter.inner().store(total, Ordering::Relaxed);
}

fn counter(registry: &mut Registry, name: &str, help: &str) -> Counter {
    let counter = Counter::default();
    registry.register(name, help, counter.clone());
    counter
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        let r = root.sub_registry_with_prefix("gophercap");
        let capture_received = counter(
            r,
            "capture_received_packets",
            "Packets libpcap received on the interface",
        );
        let capture_dropped = counter(
            r,
            "capture_dropped_packets",
            "Packets libpcap dropped: its buffer was full",
        );
        let capture_interface_dropped = counter(
            r,
            "capture_interface_dropped_packets",
            "Packets the interface or its driver dropped",
        );
        let packets_decoded = counter(r, "packets_decoded", "Packets read and decoded");
        let connections_active = Gauge::default();
        r.register(
            "connections_active",
            "Flows (connections) in the table now",
            connections_active.clone(),
        );
        let evictions = Family::<Reason, Counter>::default();
        r.register(
            "evictions",
            "Flows or keys dropped before their end: idle timeout, table capacity, reassembly \
             memory cap, anomaly detector capacity",
            evictions.clone(),
        );
        let eviction = |reason| evictions.get_or_create_owned(&Reason { reason });
        let evictions = Evictions {
            idle: eviction("idle"),
            capacity: eviction("capacity"),
            reassembly_memory: eviction("reassembly_memory"),
            detector_capacity: eviction("detector_capacity"),
        };
        let reassembly_gaps = counter(r, "reassembly_gaps", "Holes in reassembled streams");
        let reassembly_gap_bytes = counter(
            r,
            "reassembly_gap_bytes",
            "Bytes missing from reassembled streams",
        );
        let messages = Family::<Direction, Counter>::default();
        r.register(
            "http_messages",
            "HTTP messages read, by direction",
            messages.clone(),
        );
        let message = |direction| messages.get_or_create_owned(&Direction { direction });
        let (http_requests, http_responses) = (message("request"), message("response"));
        let websocket_messages = counter(r, "websocket_messages", "WebSocket messages read");
        let drops = Family::<Reason, Counter>::default();
        r.register(
            "output_drops",
            "Messages that reached no output: an output had failed, the POST queue was full, \
             POST gave up after its retries, or POST was still sending at shutdown",
            drops.clone(),
        );
        let drop = |reason| drops.get_or_create_owned(&Reason { reason });
        let output_drops = OutputDrops {
            write_error: drop("write_error"),
            post_queue_full: drop("post_queue_full"),
            post_gave_up: drop("post_gave_up"),
            post_shutdown: drop("post_shutdown"),
        };
        let dropped_bytes = Family::<Reason, Counter>::default();
        r.register(
            "output_dropped_bytes",
            "Bytes forwarding outputs dropped: before the consumer connected (startup buffer \
             full), behind a slow consumer (output buffer full), with no consumer, on a write \
             error, or still pending at close",
            dropped_bytes.clone(),
        );
        let output_dropped_bytes = [
            "startup_buffer_full",
            "output_buffer_full",
            "not_connected",
            "write_error",
            "abandoned",
        ]
        .map(|reason| dropped_bytes.get_or_create_owned(&Reason { reason }));
        let post_retries = counter(r, "post_retries", "HTTP POST attempts tried again");
        let post_failures = counter(
            r,
            "post_failures",
            "Messages HTTP POST gave up on after their last attempt",
        );
        Metrics {
            registry: root,
            ready: AtomicBool::new(false),
            capture_received,
            capture_dropped,
            capture_interface_dropped,
            packets_decoded,
            connections_active,
            evictions,
            reassembly_gaps,
            reassembly_gap_bytes,
            http_requests,
            http_responses,
            websocket_messages,
            output_drops,
            output_dropped_bytes,
            post_retries,
            post_failures,
        }
    }

    /// The capture is open: `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn publish_capture(&self, counts: CaptureCounts) {
        set(&self.capture_received, counts.received);
        set(&self.capture_dropped, counts.dropped);
        set(&self.capture_interface_dropped, counts.interface_dropped);
    }

    /// The pipeline's totals and the flows in its table now.
    pub fn publish_pipeline(&self, stats: &crate::pipeline::PipelineStats, active: usize) {
        set(&self.packets_decoded, stats.packets);
        self.connections_active
            .set(i64::try_from(active).unwrap_or(i64::MAX));
        set(&self.evictions.idle, stats.idle_expired);
        set(&self.evictions.capacity, stats.evictions);
        set(&self.evictions.reassembly_memory, stats.reassembly_sheds);
    }

    pub fn publish_streams(&self, counts: StreamCounts) {
        set(&self.reassembly_gaps, counts.gaps);
        set(&self.reassembly_gap_bytes, counts.gap_bytes);
    }

    pub fn publish_http(&self, counts: HttpCounts) {
        set(&self.http_requests, counts.requests);
        set(&self.http_responses, counts.responses);
        set(&self.websocket_messages, counts.websocket_messages);
        set(&self.output_drops.write_error, counts.unwritten);
    }

    /// The POST output's totals: a failed attempt is a retry unless it was the message's last.
    pub fn publish_post(&self, stats: &PostStats) {
        let retries = stats
            .attempts_failed
            .saturating_sub(stats.dropped_after_retries);
        set(&self.post_retries, retries);
        set(&self.post_failures, stats.dropped_after_retries);
        set(&self.output_drops.post_gave_up, stats.dropped_after_retries);
        set(&self.output_drops.post_queue_full, stats.dropped_queue_full);
        set(
            &self.output_drops.post_shutdown,
            stats.abandoned_at_shutdown,
        );
    }

    pub fn publish_dropped_bytes(&self, bytes: DroppedBytes) {
        let totals = [
            bytes.startup_buffer_full,
            bytes.output_buffer_full,
            bytes.not_connected,
            bytes.write_error,
            bytes.abandoned,
        ];
        for (counter, total) in self.output_dropped_bytes.iter().zip(totals) {
            set(counter, total);
        }
    }

    /// Keys the anomaly detectors evicted while still active.
    pub fn publish_detector_evictions(&self, evicted: u64) {
        set(&self.evictions.detector_capacity, evicted);
    }

    /// The exposition text, as `/metrics` serves it.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Serve `/metrics`, `/healthz` and `/readyz` on `address` until the server is dropped.
    pub fn serve(self: &Arc<Self>, address: SocketAddr) -> Result<Server, ServerError> {
        serve(Arc::clone(self) as Arc<dyn Exposition>, address)
    }
}

impl Exposition for Metrics {
    fn encode(&self) -> String {
        Metrics::encode(self)
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

/// What a metrics server exposes: a run's counters, or the webhook's.
pub trait Exposition: Send + Sync {
    /// The exposition text.
    fn encode(&self) -> String;
    /// Whether `/readyz` answers 200.
    fn ready(&self) -> bool;
}

fn answer(exposition: &dyn Exposition, request: &Request) -> Response {
    if request.method != server::Method::GET && request.method != server::Method::HEAD {
        return Response::text(405, "only GET and HEAD\n");
    }
    match request.path.as_str() {
        "/metrics" => Response {
            status: 200,
            content_type: OPENMETRICS,
            body: exposition.encode().into(),
        },
        "/healthz" => Response::text(200, "ok\n"),
        "/readyz" if exposition.ready() => Response::text(200, "ready\n"),
        "/readyz" => Response::text(503, "not ready: the capture is not open yet\n"),
        _ => Response::text(404, "not found: /metrics, /healthz, /readyz\n"),
    }
}

/// Serve `/metrics`, `/healthz` and `/readyz` of `exposition` on `address` until the server
/// is dropped.
pub fn serve(exposition: Arc<dyn Exposition>, address: SocketAddr) -> Result<Server, ServerError> {
    let handler: Handler = Arc::new(move |request| answer(exposition.as_ref(), request));
    Server::start(address, handler)
}

#[cfg(test)]
mod tests;
pub mod webhook;
