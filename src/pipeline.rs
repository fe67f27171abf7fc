//! The one pipeline: source → decode → flow table (with TCP tracking) → reassembly. `flows`
//! consumes the flows directly; the reassembling consumers (http-trace, tap) read the streams,
//! which hang off the same per-flow state together with what the consumer keeps per connection
//! (one lookup per packet, the flow table's). A 5-tuple reused by a new connection (a SYN after
//! FIN or RST) starts a new flow, as tshark's `tcp.stream` does.

use crate::decode::{DecodeOptions, Decoded, Transport, decode};
use crate::flow::{
    EndReason, Flow, FlowKey, FlowTable, Side, TableConfig, TcpState, TcpTracker, ZeekConn,
};
use crate::reassembly::{CloseReason, Connection, ConnectionInfo, StreamConfig, StreamHandler};
use crate::source::{Packet, Source, SourceError};

/// What the pipeline keeps per flow; `S` is what the consumer's stream handler keeps per
/// connection.
#[derive(Debug)]
pub struct FlowState<S = ()> {
    /// Present for TCP flows.
    pub tcp: Option<TcpTracker>,
    /// Both reassembled directions and the handler's state, for TCP flows when the consumer
    /// reads streams (boxed: most flows never have one, and the table holds millions).
    pub connection: Option<Box<Connection<S>>>,
    /// The side that sent the flow's first packet.
    pub first_side: Side,
    /// Zeek's account of the connection, when the consumer writes Zeek's logs (boxed: only
    /// then is it paid for).
    pub zeek: Option<Box<ZeekConn>>,
    /// The ICMP type and code of the flow's first packet, for ICMP flows: the flow's Community
    /// ID hashes them in place of ports.
    pub first_icmp: Option<[u8; 2]>,
}

impl<S> Default for FlowState<S> {
    fn default() -> Self {
        FlowState {
            tcp: None,
            connection: None,
            first_side: Side::A,
            zeek: None,
            first_icmp: None,
        }
    }
}

pub type TrackedFlow<S = ()> = Flow<FlowState<S>>;

/// What a pipeline consumer sees.
pub trait FlowConsumer {
    /// What its stream handler keeps per connection (`()` for a consumer that reads no streams).
    type ConnectionState;
    /// Every packet, after its flow (if it has one) was updated and its segment reassembled.
    fn packet(
        &mut self,
        packet: &Packet<'_>,
        decoded: &Decoded<'_>,
        flow: Option<(&TrackedFlow<Self::ConnectionState>, Side)>,
    );
    /// A flow left the table (its streams, if reassembled, were closed first; the connection,
    /// with the handler's state, is still in it).
    fn flow_ended(&mut self, flow: TrackedFlow<Self::ConnectionState>, reason: EndReason);
    /// The handler of reassembled TCP streams, for consumers that read them.
    fn stream_handler(&mut self) -> Option<&mut dyn StreamHandler<State = Self::ConnectionState>> {
        None
    }
    /// Publish the consumer's own totals (called after every packet when metrics are served).
    fn publish(&self, _metrics: &crate::metrics::Metrics) {}
}

fn info<S>(flow: &TrackedFlow<S>) -> ConnectionInfo {
    ConnectionInfo {
        id: flow.id,
        key: flow.key,
        client: flow.client,
        first_ns: flow.first_ns,
        ts_ns: flow.last_ns,
    }
}

/// Close a leaving flow's streams, then hand it to the consumer.
fn end_flow<C: FlowConsumer + ?Sized>(
    consumer: &mut C,
    buffered: &mut usize,
    mut flow: TrackedFlow<C::ConnectionState>,
    reason: EndReason,
) {
    let info = info(&flow);
    if let Some(connection) = &mut flow.data.connection
        && let Some(handler) = consumer.stream_handler()
    {
        *buffered = buffered.saturating_sub(connection.buffered());
        let why = match reason {
            EndReason::End => CloseReason::End,
            EndReason::Idle | EndReason::Evicted | EndReason::Replaced => CloseReason::Expired,
        };
        connection.close(&info, why, handler);
    }
    consumer.flow_ended(flow, reason);
}

/// Totals of one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct PipelineStats {
    pub packets: u64,
    /// Packets with no IP layer (ARP, LLDP, unknown link types).
    pub without_flow: u64,
    pub flows: u64,
    /// Flows pushed out at the table's capacity.
    pub evictions: u64,
    /// Flows ended by the idle timeout.
    pub idle_expired: u64,
    /// Connections made to deliver their held bytes early (with gaps) at the reassembly cap.
    pub reassembly_sheds: u64,
}

#[derive(Clone, Debug, Default)]
pub struct PipelineConfig {
    pub table: TableConfig,
    /// Stop after this many packets.
    pub count: Option<u64>,
    pub decode: DecodeOptions,
    /// Reassemble TCP into the consumer's stream handler with these limits.
    pub reassembly: Option<StreamConfig>,
    /// Bytes all connections together may hold waiting for holes to fill (0: no global cap);
    /// the connection that crosses it delivers its early data with gaps.
    pub reassembly_total_cap: usize,
    /// Keep Zeek's account of each connection (for conn.log and EVE flow events).
    pub zeek: bool,
    /// Publish the totals here after every packet.
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

/// How often (in packet time) idle flows are looked for.
const EXPIRY_STEP_NS: i64 = 1_000_000_000;

/// Run `source` through decode and the flow table into `consumer`. A source error ends the run
/// after everything before it was handed over (and every flow ended).
pub fn run<S: Source + ?Sized, C: FlowConsumer + ?Sized>(
    source: &mut S,
    config: &PipelineConfig,
    consumer: &mut C,
) -> (PipelineStats, Option<SourceError>) {
    let mut table: FlowTable<FlowState<C::ConnectionState>> = FlowTable::new(config.table);
    let mut stats = PipelineStats::default();
    let mut next_expiry = i64::MIN;
    // Bytes held by every connection's streams, against the global cap.
    let mut buffered = 0usize;
    let mut error = None;
    loop {
        if config.count.is_some_and(|c| stats.packets >= c) {
            break;
        }
        let packet = match source.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        stats.packets += 1;
        if packet.ts_ns >= next_expiry {
            table.expire(packet.ts_ns, |f, why| {
                stats.idle_expired += u64::from(why == EndReason::Idle);
                end_flow(consumer, &mut buffered, f, why)
            });
            next_expiry = packet.ts_ns.saturating_add(EXPIRY_STEP_NS);
        }
        let decoded = decode(packet.link_type.0, packet.data, &config.decode);
        let Some((key, side)) = FlowKey::of(&decoded) else {
            stats.without_flow += 1;
            consumer.packet(&packet, &decoded, None);
            publish(config, &mut stats, &table, consumer);
            continue;
        };
        if let Transport::Tcp(tcp) = &decoded.transport
            && starts_a_new_connection(&table, &key, tcp.flags())
            && let Some(old) = table.remove(&key)
        {
            end_flow(consumer, &mut buffered, old, EndReason::Replaced);
        }
        let (flow, created) = table.track(
            key,
            packet.ts_ns,
            || FlowState {
                tcp: (key.protocol == 6).then(TcpTracker::default),
                connection: None,
                first_side: side,
                zeek: config
                    .zeek
                    .then(|| Box::new(ZeekConn::new(&key, side, &decoded))),
                first_icmp: match &decoded.transport {
                    Transport::Icmp(icmp) | Transport::Icmpv6(icmp) => {
                        Some([icmp.icmp_type(), icmp.code()])
                    }
                    _ => None,
                },
            },
            |f, why| end_flow(consumer, &mut buffered, f, why),
        );
        stats.flows += u64::from(created);
        let ip_len = decoded.ip_total_len().unwrap_or(packet.orig_len as usize);
        flow.count(side, ip_len, decoded.payload.len());
        if let (Transport::Tcp(tcp), Some(tracker)) = (&decoded.transport, &mut flow.data.tcp) {
            tracker.packet(side, tcp, decoded.wire_payload_len(), packet.ts_ns);
            flow.client = tracker.client;
        }
        if let Some(zeek) = &mut flow.data.zeek {
            zeek.packet(side, &decoded, packet.ts_ns);
        }
        if flow.client.is_none() {
            flow.client = Some(guess_client(&key));
        }
        if let (Transport::Tcp(tcp), Some(limits)) = (&decoded.transport, &config.reassembly)
            && let Some(handler) = consumer.stream_handler()
        {
            let info = info(flow);
            let connection = flow
                .data
                .connection
                .get_or_insert_with(|| Box::new(Connection::new(handler.open(&info))));
            let before = connection.buffered();
            connection.segment(&info, side, tcp, decoded.payload, limits, handler);
            let total = (buffered + connection.buffered()).saturating_sub(before);
            if config.reassembly_total_cap > 0 && total > config.reassembly_total_cap {
                connection.shed(&info, handler);
                stats.reassembly_sheds += 1;
            }
            buffered = (buffered + connection.buffered()).saturating_sub(before);
        }
        consumer.packet(&packet, &decoded, Some((flow, side)));
        publish(config, &mut stats, &table, consumer);
    }
    stats.evictions = table.evictions();
    table.drain(|f, why| end_flow(consumer, &mut buffered, f, why));
    (stats, error)
}

/// Hand the totals so far to the metrics, when they are served.
fn publish<C: FlowConsumer + ?Sized>(
    config: &PipelineConfig,
    stats: &mut PipelineStats,
    table: &FlowTable<FlowState<C::ConnectionState>>,
    consumer: &C,
) {
    if let Some(metrics) = &config.metrics {
        stats.evictions = table.evictions();
        metrics.publish_pipeline(stats, table.len());
        consumer.publish(metrics);
    }
}

/// A SYN (without ACK) on a flow whose connection is closing or over begins a new connection
/// on the same 5-tuple.
fn starts_a_new_connection<S>(
    table: &FlowTable<FlowState<S>>,
    key: &FlowKey,
    flags: crate::decode::TcpFlags,
) -> bool {
    use crate::decode::TcpFlags;
    if !flags.contains(TcpFlags::SYN) || flags.contains(TcpFlags::ACK) {
        return false;
    }
    table.get(key).is_some_and(|flow| {
        flow.data.tcp.as_ref().is_some_and(|t| {
            matches!(
                t.state,
                TcpState::Closed | TcpState::Reset | TcpState::FinWait
            )
        })
    })
}

/// Without a SYN, the side with the lower port is taken as the server (the well-known one).
fn guess_client(key: &FlowKey) -> Side {
    if key.a.port < key.b.port {
        Side::B
    } else {
        Side::A
    }
}
#[cfg(test)]
mod tests {
    /// A flow table holds millions of these and a packet touches several of their cache lines:
    /// growing the record is a decision to take with a benchmark, not by accident.
    #[test]
    fn a_tracked_flow_stays_within_seven_cache_lines() {
        assert!(std::mem::size_of::<super::TrackedFlow>() <= 7 * 64);
    }
}
