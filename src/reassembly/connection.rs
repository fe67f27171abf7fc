//! Both directions of one TCP connection, reassembled and handed to a [`StreamHandler`]: the
//! SYN fixes each stream's start, FIN closes a direction once its data is delivered, RST closes
//! both with whatever is buffered (holes as gaps). Consumers (http-trace, tap) implement the
//! handler and never see a segment.

use super::stream::{Stream, StreamConfig, StreamSink};
use crate::decode::{TcpFlags, TcpPacket};
use crate::flow::{FlowKey, Side};

/// Why a direction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    Fin,
    Reset,
    /// The flow table ended the connection (idle, evicted, replaced).
    Expired,
    /// The input ended.
    End,
}

/// What a handler knows of the connection it is called for.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionInfo {
    /// The flow's id: unique even when a 5-tuple is reused.
    pub id: u64,
    pub key: FlowKey,
    /// The side that opened the connection, once known.
    pub client: Option<Side>,
    /// Time (ns since the epoch) of the flow's first packet: with the key, it names the
    /// connection in logs that other tools join on (Zeek's uid).
    pub first_ns: i64,
    /// Time (ns since the epoch) of the packet behind this call: the one that carried the
    /// bytes, or the connection's last packet when it is closed by the table or the input's end.
    pub ts_ns: i64,
}

/// What a consumer of reassembled TCP implements.
pub trait StreamHandler {
    /// What the handler keeps per connection. The connection carries it in its own allocation:
    /// a call finds it without a lookup of the handler's own, and it ends with the flow.
    type State;
    /// The connection's first segment was seen: the handler's state for it.
    fn open(&mut self, connection: &ConnectionInfo) -> Self::State;
    /// In-order bytes from `from`; returns how many it used (the rest comes again with more).
    fn data(
        &mut self,
        connection: &ConnectionInfo,
        state: &mut Self::State,
        from: Side,
        data: &[u8],
    ) -> usize;
    /// `length` bytes from `from` are missing here.
    fn gap(
        &mut self,
        connection: &ConnectionInfo,
        state: &mut Self::State,
        from: Side,
        length: u64,
    );
    /// No more bytes will come from `from`.
    fn close(
        &mut self,
        connection: &ConnectionInfo,
        state: &mut Self::State,
        from: Side,
        reason: CloseReason,
    );
}

/// Lets one direction's stream talk to the connection's handler.
struct Adapter<'h, H: StreamHandler + ?Sized> {
    handler: &'h mut H,
    state: &'h mut H::State,
    info: &'h ConnectionInfo,
    from: Side,
}

impl<H: StreamHandler + ?Sized> StreamSink for Adapter<'_, H> {
    fn on_data(&mut self, data: &[u8]) -> usize {
        self.handler.data(self.info, self.state, self.from, data)
    }
    fn on_gap(&mut self, length: u64) {
        self.handler.gap(self.info, self.state, self.from, length);
    }
}

/// The two streams of one connection, and what the handler keeps for it.
#[derive(Debug)]
pub struct Connection<S> {
    streams: [Stream; 2],
    closed: [bool; 2],
    state: S,
}

impl<S> Connection<S> {
    pub fn new(state: S) -> Self {
        Connection {
            streams: Default::default(),
            closed: [false; 2],
            state,
        }
    }

    /// The handler's state for this connection.
    pub fn state(&self) -> &S {
        &self.state
    }

    pub fn stream(&self, side: Side) -> &Stream {
        &self.streams[side.index()]
    }

    /// Bytes held across both directions.
    pub fn buffered(&self) -> usize {
        self.streams.iter().map(Stream::buffered).sum()
    }

    /// One TCP segment from `from`, with `payload` its captured data.
    pub fn segment<H: StreamHandler<State = S> + ?Sized>(
        &mut self,
        info: &ConnectionInfo,
        from: Side,
        tcp: &TcpPacket<'_>,
        payload: &[u8],
        config: &StreamConfig,
        handler: &mut H,
    ) {
        let flags = tcp.flags();
        let mut seq = tcp.seq();
        let i = from.index();
        if flags.contains(TcpFlags::SYN) {
            self.streams[i].syn(seq);
            seq = seq.wrapping_add(1);
        }
        if !self.closed[i] {
            let mut sink = Adapter {
                handler: &mut *handler,
                state: &mut self.state,
                info,
                from,
            };
            let fin = flags.contains(TcpFlags::FIN);
            self.streams[i].segment(seq, payload, fin, config, &mut sink);
            if self.streams[i].finished() {
                self.close_side(info, from, CloseReason::Fin, handler);
            }
        }
        if flags.contains(TcpFlags::RST) {
            self.close(info, CloseReason::Reset, handler);
        }
    }

    fn close_side<H: StreamHandler<State = S> + ?Sized>(
        &mut self,
        info: &ConnectionInfo,
        side: Side,
        reason: CloseReason,
        handler: &mut H,
    ) {
        let i = side.index();
        if self.closed[i] {
            return;
        }
        let mut sink = Adapter {
            handler: &mut *handler,
            state: &mut self.state,
            info,
            from: side,
        };
        self.streams[i].close(&mut sink);
        self.closed[i] = true;
        handler.close(info, &mut self.state, side, reason);
    }

    /// Deliver both directions' early data now, holes as gaps: what a global cap does to the
    /// connection that pushed it over.
    pub fn shed<H: StreamHandler<State = S> + ?Sized>(
        &mut self,
        info: &ConnectionInfo,
        handler: &mut H,
    ) {
        for side in [Side::A, Side::B] {
            let mut sink = Adapter {
                handler: &mut *handler,
                state: &mut self.state,
                info,
                from: side,
            };
            self.streams[side.index()].shed(&mut sink);
        }
    }

    /// End both directions: buffered data is delivered, holes become gaps.
    pub fn close<H: StreamHandler<State = S> + ?Sized>(
        &mut self,
        info: &ConnectionInfo,
        reason: CloseReason,
        handler: &mut H,
    ) {
        for side in [Side::A, Side::B] {
            self.close_side(info, side, reason, handler);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Endpoint;
    use std::net::{IpAddr, Ipv4Addr};

    #[derive(Default)]
    struct Record {
        bytes: [Vec<u8>; 2],
        events: Vec<String>,
    }

    impl StreamHandler for Record {
        /// Calls made for this connection, to check the state reaches each.
        type State = u32;
        fn open(&mut self, _: &ConnectionInfo) -> u32 {
            0
        }
        fn data(&mut self, _: &ConnectionInfo, calls: &mut u32, from: Side, data: &[u8]) -> usize {
            *calls += 1;
            self.bytes[from.index()].extend_from_slice(data);
            data.len()
        }
        fn gap(&mut self, _: &ConnectionInfo, calls: &mut u32, from: Side, length: u64) {
            *calls += 1;
            self.events.push(format!("gap {from:?} {length}"));
        }
        fn close(&mut self, _: &ConnectionInfo, calls: &mut u32, from: Side, reason: CloseReason) {
            *calls += 1;
            self.events.push(format!("close {from:?} {reason:?}"));
        }
    }

    fn header(seq: u32, flags: u8) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[4..8].copy_from_slice(&seq.to_be_bytes());
        h[12] = 5 << 4;
        h[13] = flags;
        h
    }

    fn info() -> ConnectionInfo {
        let ep = |last, port| Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 99, 0, last)),
            port,
        };
        ConnectionInfo {
            id: 1,
            key: FlowKey::new(6, 0, ep(1, 40000), ep(2, 80)).0,
            client: Some(Side::A),
            first_ns: 0,
            ts_ns: 0,
        }
    }

    #[test]
    fn both_directions_with_fin_and_a_hole_closed_by_rst() {
        let (info, config) = (info(), StreamConfig::default());
        let mut r = Record::default();
        let mut c = Connection::new(r.open(&info));
        let seg = |c: &mut Connection<u32>, r: &mut Record, side, seq, flags, data: &[u8]| {
            let h = header(seq, flags);
            c.segment(&info, side, &TcpPacket::new(&h).unwrap(), data, &config, r);
        };
        seg(&mut c, &mut r, Side::A, 100, 0x02, b"");
        seg(&mut c, &mut r, Side::B, 500, 0x12, b"");
        seg(
            &mut c,
            &mut r,
            Side::A,
            101,
            0x18,
            b"GET / HTTP/1.1\r\n\r\n",
        );
        seg(&mut c, &mut r, Side::A, 119, 0x11, b"");
        seg(&mut c, &mut r, Side::B, 501, 0x18, b"HTTP/1.1 200 OK\r\n");
        // 5 bytes of the body are lost; then the server resets.
        seg(&mut c, &mut r, Side::B, 523, 0x18, b"tail");
        seg(&mut c, &mut r, Side::B, 527, 0x14, b"");
        assert_eq!(r.bytes[0], b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(r.bytes[1], b"HTTP/1.1 200 OK\r\ntail");
        assert_eq!(r.events, ["close A Fin", "gap B 5", "close B Reset"]);
        // Two data calls, a gap and two closes, all with the connection's own state.
        assert_eq!(*c.state(), 6);
    }
}
