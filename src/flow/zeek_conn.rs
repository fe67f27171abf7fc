//! A connection as Zeek's conn.log tells it, for pipelines built on that log: who originated it
//! (Zeek's role heuristics, `^` when it flipped them), each endpoint's TCP state (from which
//! `conn_state` follows), the `history` alphabet with its repeat rules, payload sizes from
//! sequence numbers, bytes missed in gaps, and a duration that ends with the last packet before
//! both sides closed. It follows Zeek's TCP analyzer rule by rule where the baselines showed a
//! difference; `flow::tcp` keeps gophercap's own (tshark-like) analysis apart.
//!
//! Gaps are found without reassembly: each direction remembers how far its bytes arrived
//! without a hole (and a few ranges above it); an acknowledgement from the peer beyond that
//! point means the bytes in between were on the wire but not in the capture.

use super::key::{FlowKey, Side};
use crate::decode::{Decoded, TcpFlags, Transport};

/// Zeek's per-endpoint TCP states (`TCP_ENDPOINT_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndpointState {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

/// Out-of-order ranges kept per direction while a hole below them is open.
const HELD_RANGES: usize = 4;

/// History flags recorded at most once per direction (Zeek's `HIST_*` bits).
const SEEN_SYN: u8 = 1;
const SEEN_FIN: u8 = 2;
const SEEN_RST: u8 = 4;
const SEEN_DATA: u8 = 8;
const SEEN_ACK: u8 = 16;
const SEEN_MULTI: u8 = 32;
const SEEN_FIN_RST: u8 = 64;

/// A count whose history letter repeats at 1, 10, 100, ... occurrences.
#[derive(Clone, Copy, Debug)]
struct LogCount {
    count: u32,
    next: u32,
}

impl Default for LogCount {
    fn default() -> Self {
        LogCount { count: 0, next: 1 }
    }
}

impl LogCount {
    /// Count one; true when its letter is due.
    fn bump(&mut self) -> bool {
        self.count = self.count.saturating_add(1);
        if self.count >= self.next {
            self.next = self.next.saturating_mul(10);
            true
        } else {
            false
        }
    }
}

/// One side of the connection.
#[derive(Clone, Debug, Default)]
struct End {
    state: EndpointState,
    prev_state: EndpointState,
    /// The sequence number the relative numbering starts from (the ISN, or one below the
    /// first byte seen).
    started: bool,
    /// One past the highest sequence number sent: raw, and relative to the start.
    last_seq: u32,
    last_rel: u64,
    /// The highest acknowledgement the peer sent for this side's bytes: raw and relative.
    ack_seq: u32,
    ack_rel: u64,
    fins: u32,
    seen: u8,
    last_syn: Option<u64>,
    last_fin: Option<u64>,
    last_rst: Option<u64>,
    rxmit: LogCount,
    zero_window: LogCount,
    gaps: LogCount,
    did_close: bool,
    /// Relative offset up to which this side's bytes arrived without a hole.
    contiguous: u64,
    held: [(u64, u64); HELD_RANGES],
    held_len: u8,
    missed: u64,
    /// Payload bytes on the wire, for protocols sized by their datagrams.
    payload: u64,
    sent: bool,
}

impl End {
    fn start(&mut self, seq: u32) {
        self.started = true;
        self.last_seq = seq;
        self.last_rel = 0;
        self.ack_seq = seq;
        self.ack_rel = 0;
        self.contiguous = 1;
        self.held_len = 0;
    }

    /// Where `seq` lies relative to the start, judged from the highest sequence seen (so
    /// wrap-around is a non-event). Below the start it is 0.
    fn rel(&self, seq: u32) -> u64 {
        let delta = i64::from(seq.wrapping_sub(self.last_seq) as i32);
        (self.last_rel as i64 + delta).max(0) as u64
    }

    fn ack_rel_of(&self, ack: u32) -> u64 {
        let delta = i64::from(ack.wrapping_sub(self.ack_seq) as i32);
        (self.ack_rel as i64 + delta).max(0) as u64
    }

    /// Payload bytes by sequence numbers, as Zeek sizes an endpoint: up to the highest byte
    /// sent or acknowledged, less the SYN and FIN.
    fn size(&self, peer: &End) -> u64 {
        if self.prev_state == EndpointState::SynSent
            && self.state == EndpointState::Reset
            && peer.state == EndpointState::Inactive
        {
            return 0;
        }
        let size = self.last_rel.max(self.ack_rel).saturating_sub(1);
        if self.fins > 0 {
            size.saturating_sub(1)
        } else {
            size
        }
    }

    fn set_state(&mut self, state: EndpointState) {
        self.prev_state = self.state;
        self.state = state;
    }

    /// Bytes `[from, to)` arrived.
    fn arrived(&mut self, from: u64, to: u64) {
        if to <= self.contiguous {
            return;
        }
        if from > self.contiguous {
            let held = &mut self.held[..usize::from(self.held_len)];
            if let Some(r) = held.iter_mut().find(|r| from <= r.1 && to >= r.0) {
                *r = (r.0.min(from), r.1.max(to));
            } else if usize::from(self.held_len) < HELD_RANGES {
                self.held[usize::from(self.held_len)] = (from, to);
                self.held_len += 1;
            }
            return;
        }
        self.contiguous = to;
        self.absorb_held();
    }

    /// Ranges now reached by the contiguous bytes join them.
    fn absorb_held(&mut self) {
        loop {
            let held = &self.held[..usize::from(self.held_len)];
            let Some(i) = held.iter().position(|r| r.0 <= self.contiguous) else {
                return;
            };
            self.contiguous = self.contiguous.max(self.held[i].1);
            self.held[i] = self.held[usize::from(self.held_len) - 1];
            self.held_len -= 1;
        }
    }

    /// The peer acknowledged up to `ack`: whatever below it never arrived is a gap. Returns
    /// the bytes missed.
    fn acked_to(&mut self, ack: u64) -> u64 {
        let mut missed = 0;
        while ack > self.contiguous {
            let next_held = self.held[..usize::from(self.held_len)]
                .iter()
                .map(|r| r.0)
                .min()
                .unwrap_or(u64::MAX);
            let hole_end = ack.min(next_held);
            missed += hole_end - self.contiguous;
            self.contiguous = hole_end;
            self.absorb_held();
        }
        self.missed += missed;
        missed
    }
}

/// What the log says of one connection, in the originator's terms.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnSummary<'a> {
    /// The originator's side of the flow key.
    pub originator: Side,
    pub history: &'a str,
    pub conn_state: &'static str,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub missed_bytes: u64,
    /// Time of the last packet that counts toward the duration.
    pub last_ns: i64,
    /// The application protocol recognised (`http`).
    pub service: Option<&'static str>,
}

/// Ports Zeek's bare mode with its HTTP analyzer takes for servers, besides the well-known
/// range, when it decides a connection's roles from a packet in mid-stream.
const LIKELY_SERVER_PORTS: [u16; 5] = [1080, 3128, 8000, 8080, 8888];

fn likely_server_port(port: u16) -> bool {
    port < 1024 || LIKELY_SERVER_PORTS.contains(&port)
}

/// Zeek's account of a connection, fed every packet of its flow.
#[derive(Clone, Debug)]
pub struct ZeekConn {
    originator: Side,
    protocol: u8,
    /// Indexed by `Side::index`.
    ends: [End; 2],
    history: String,
    last_ns: i64,
    service: Option<&'static str>,
}

impl ZeekConn {
    /// A connection whose first packet is `decoded`, from `side` of `key`.
    pub fn new(key: &FlowKey, side: Side, decoded: &Decoded<'_>) -> Self {
        let sender = key.sender(side);
        let receiver = key.sender(side.other());
        // A SYN-ACK first: its sender answered, so it is the responder. Data or an ACK first:
        // the side on a server port is taken for the responder.
        let flip = match &decoded.transport {
            Transport::Tcp(tcp) => {
                let f = tcp.flags();
                if f.contains(TcpFlags::SYN) {
                    f.contains(TcpFlags::ACK)
                } else {
                    likely_server_port(sender.port) && !likely_server_port(receiver.port)
                }
            }
            Transport::Udp(_) => {
                likely_server_port(sender.port) && !likely_server_port(receiver.port)
            }
            _ => false,
        };
        ZeekConn {
            originator: if flip { side.other() } else { side },
            protocol: key.protocol,
            ends: Default::default(),
            history: if flip { "^".into() } else { String::new() },
            last_ns: 0,
            service: None,
        }
    }

    fn add_history(&mut self, side: Side, letter: u8) {
        let c = if side == self.originator {
            letter.to_ascii_uppercase()
        } else {
            letter.to_ascii_lowercase()
        };
        self.history.push(char::from(c));
    }

    /// Record `letter` the first time `bit` is seen from `side`; true if it had been seen.
    fn check_history(&mut self, side: Side, bit: u8, letter: u8) -> bool {
        let end = &mut self.ends[side.index()];
        if end.seen & bit != 0 {
            return true;
        }
        end.seen |= bit;
        self.add_history(side, letter);
        false
    }

    /// One packet of the flow, from `side`, at `ts_ns`.
    pub fn packet(&mut self, side: Side, decoded: &Decoded<'_>, ts_ns: i64) {
        match &decoded.transport {
            Transport::Tcp(tcp) if self.protocol == 6 => {
                let payload = decoded.wire_payload_len();
                let captured = &decoded.payload[..decoded.payload.len().min(payload)];
                self.tcp(side, tcp, payload, captured, ts_ns);
            }
            _ => {
                let payload = decoded.wire_payload_len();
                let end = &mut self.ends[side.index()];
                end.sent = true;
                end.payload += payload as u64;
                if payload > 0 && self.protocol == 17 {
                    self.check_history(side, SEEN_DATA, b'd');
                }
                self.last_ns = ts_ns;
            }
        }
    }

    fn tcp(
        &mut self,
        side: Side,
        tcp: &crate::decode::TcpPacket<'_>,
        len: usize,
        captured: &[u8],
        ts_ns: i64,
    ) {
        let flags = tcp.flags();
        let (syn, ack, fin, rst) = (
            flags.contains(TcpFlags::SYN),
            flags.contains(TcpFlags::ACK),
            flags.contains(TcpFlags::FIN),
            flags.contains(TcpFlags::RST),
        );
        let (seq, ack_seq) = (tcp.seq(), tcp.ack());
        let len32 = len as u32;
        let mut seg_len = len32 + u32::from(syn) + u32::from(fin);
        if rst {
            seg_len -= len32;
        }
        let (i, p) = (side.index(), side.other().index());
        let is_orig = side == self.originator;

        // The endpoint's numbering starts at its first packet (one below it without a SYN).
        let e = &mut self.ends[i];
        if e.state == EndpointState::Inactive {
            if syn {
                e.start(seq);
                e.last_seq = seq.wrapping_add(seg_len);
                e.last_rel = u64::from(seg_len);
            } else {
                e.start(seq.wrapping_sub(1));
                e.last_seq = seq;
                e.last_rel = 1;
            }
        }
        let rel_seq = self.ends[i].rel(seq);

        // The history letters of this packet.
        let bits = u8::from(syn) + u8::from(fin) + u8::from(rst);
        if bits > 1 {
            if fin && rst {
                self.check_history(side, SEEN_FIN_RST, b'i');
            } else {
                self.check_history(side, SEEN_MULTI, b'q');
            }
        } else if syn {
            let code = if ack { b'h' } else { b's' };
            if self.check_history(side, SEEN_SYN, code) && self.ends[i].last_syn != Some(rel_seq) {
                self.add_history(side, code);
            }
            self.ends[i].last_syn = Some(rel_seq);
        } else if fin {
            let at = rel_seq + len as u64;
            if self.check_history(side, SEEN_FIN, b'f') && self.ends[i].last_fin != Some(at) {
                self.add_history(side, b'f');
            }
            self.ends[i].last_fin = Some(at);
        } else if rst {
            if self.check_history(side, SEEN_RST, b'r') && self.ends[i].last_rst != Some(rel_seq) {
                self.add_history(side, b'r');
            }
            self.ends[i].last_rst = Some(rel_seq);
        } else if len > 0 {
            self.check_history(side, SEEN_DATA, b'd');
        } else if ack {
            self.check_history(side, SEEN_ACK, b'a');
        }

        // A zero window is news unless it comes with or after a RST, or after the peer's FIN.
        if tcp.window() == 0
            && !rst
            && self.ends[p].state != EndpointState::Closed
            && self.ends[i].state != EndpointState::Reset
            && self.ends[i].zero_window.bump()
        {
            self.add_history(side, b'w');
        }

        if !(self.ends[0].did_close && self.ends[1].did_close) {
            self.last_ns = ts_ns;
        }
        if fin {
            self.ends[i].fins += 1;
        }

        let mut rel_ack = None;
        if ack {
            let peer = &mut self.ends[p];
            if peer.state == EndpointState::Inactive {
                peer.start(ack_seq.wrapping_sub(1));
                rel_ack = Some(1);
            } else {
                let r = peer.ack_rel_of(ack_seq);
                rel_ack = Some(r);
                if !rst && (ack_seq.wrapping_sub(peer.ack_seq) as i32) > 0 {
                    peer.ack_seq = ack_seq;
                    peer.ack_rel = r;
                }
            }
        }

        // The highest sequence number: advanced, or a retransmission when data does not.
        let e = &mut self.ends[i];
        let next = seq.wrapping_add(seg_len);
        let delta = next.wrapping_sub(e.last_seq) as i32;
        let mut rxmit = false;
        if (syn || rst) && delta.unsigned_abs() > 1 << 20 {
        } else if fin && e.last_rel == 1 {
            e.last_rel = (e.last_rel as i64 + i64::from(delta)).max(0) as u64;
            e.last_seq = next;
        } else if e.state == EndpointState::Reset {
        } else if delta > 0 {
            e.last_rel += delta as u64;
            e.last_seq = next;
        } else if len > 0 {
            rxmit = e.rxmit.bump();
        }
        if rxmit {
            self.add_history(side, b't');
        }
        if !captured.is_empty() && !rst {
            let from = rel_seq + u64::from(syn);
            if from == 1 && self.service.is_none() && speaks_http(captured) {
                self.service = Some("http");
            }
            self.ends[i].arrived(from, from + captured.len() as u64);
        }

        self.state_machine(side, is_orig, syn, ack, fin, rst, len);

        // An acknowledgement past bytes that never arrived: a gap in the peer's stream (not
        // counted for the FIN's own sequence number, nor at a partial connection's start).
        if let Some(ack) = rel_ack
            && !rst
        {
            let peer = &mut self.ends[p];
            let fin_at = peer.last_fin.map(|f| f + 1);
            let up_to = if fin_at == Some(ack) { ack - 1 } else { ack };
            if up_to > 2 || peer.contiguous > 1 {
                let missed = peer.acked_to(up_to);
                if missed > 0 && peer.gaps.bump() {
                    self.add_history(side.other(), b'g');
                }
            } else {
                peer.contiguous = peer.contiguous.max(up_to);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn state_machine(
        &mut self,
        side: Side,
        is_orig: bool,
        syn: bool,
        ack: bool,
        fin: bool,
        rst: bool,
        len: usize,
    ) {
        use EndpointState::*;
        let (i, p) = (side.index(), side.other().index());
        let state = self.ends[i].state;
        let peer_state = self.ends[p].state;
        match state {
            Inactive => {
                if syn {
                    if is_orig {
                        self.ends[i].set_state(if ack { SynAckSent } else { SynSent });
                    } else {
                        if peer_state == SynSent {
                            self.ends[p].set_state(Established);
                        }
                        self.ends[i].set_state(Established);
                    }
                }
                if fin {
                    self.ends[i].set_state(Closed);
                    self.ends[i].did_close = true;
                }
                if rst {
                    self.ends[i].set_state(Reset);
                    self.ends[i].did_close = true;
                }
                if self.ends[i].state == Inactive {
                    if !is_orig && len == 0 && self.ends[p].state == SynSent {
                    } else if ack && self.ends[p].state == Established {
                        self.ends[i].set_state(Established);
                    } else {
                        self.ends[i].set_state(Partial);
                    }
                }
            }
            SynSent | SynAckSent => {
                if fin {
                    self.ends[i].set_state(Closed);
                    self.ends[i].did_close = true;
                }
                if rst {
                    self.ends[i].set_state(Reset);
                    self.ends[i].did_close = true;
                }
            }
            Established | Partial => {
                if syn && state == Partial && peer_state == Inactive && !ack {
                    self.ends[i].set_state(SynSent);
                }
                if fin && !rst {
                    self.ends[i].set_state(Closed);
                    self.ends[i].did_close = true;
                    let peer = &mut self.ends[p];
                    if peer.state == Reset && peer.prev_state == Closed {
                        peer.set_state(Closed);
                    }
                }
                if rst {
                    self.ends[i].set_state(Reset);
                    self.ends[i].did_close = true;
                }
            }
            Closed => {
                if rst && peer_state != Closed {
                    self.ends[i].set_state(Reset);
                }
            }
            Reset => {}
        }
    }

    /// The connection as logged.
    pub fn summary(&self) -> ConnSummary<'_> {
        let o = &self.ends[self.originator.index()];
        let r = &self.ends[self.originator.other().index()];
        let (orig_bytes, resp_bytes) = if self.protocol == 6 {
            (o.size(r), r.size(o))
        } else {
            (o.payload, r.payload)
        };
        ConnSummary {
            originator: self.originator,
            conn_state: match self.protocol {
                6 => tcp_conn_state(o, r, &self.history, orig_bytes, resp_bytes),
                17 => match (o.sent, r.sent) {
                    (true, true) => "SF",
                    (true, false) => "S0",
                    (false, true) => "SHR",
                    (false, false) => "OTH",
                },
                _ => "OTH",
            },
            history: &self.history,
            orig_bytes,
            resp_bytes,
            missed_bytes: o.missed + r.missed,
            last_ns: self.last_ns,
            service: self.service,
        }
    }
}

/// The first bytes of a stream open an HTTP/1.x request or response: enough for `service`,
/// which in Zeek is the protocol its analyzers recognised.
fn speaks_http(stream: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"CONNECT ",
        b"PATCH ",
        b"TRACE ",
    ];
    stream.starts_with(b"HTTP/1.") || METHODS.iter().any(|m| stream.starts_with(m))
}

/// Zeek's `conn_state` from the two endpoints' states (its conn/main.zeek).
fn tcp_conn_state(o: &End, r: &End, history: &str, orig: u64, resp: u64) -> &'static str {
    use EndpointState::*;
    let (os, rs) = (o.state, r.state);
    let o_inactive = matches!(os, Inactive | Partial);
    let r_inactive = matches!(rs, Inactive | Partial);
    if rs == Reset {
        if matches!(os, SynSent | SynAckSent) || (os == Reset && orig == 0 && resp == 0) {
            "REJ"
        } else if o_inactive {
            "RSTRH"
        } else {
            "RSTR"
        }
    } else if os == Reset {
        if r_inactive {
            if syn_then_reset(history) {
                "RSTOS0"
            } else {
                "OTH"
            }
        } else {
            "RSTO"
        }
    } else if rs == Closed && os == Closed {
        "SF"
    } else if os == Closed {
        if r_inactive { "SH" } else { "S2" }
    } else if rs == Closed {
        if o_inactive { "SHR" } else { "S3" }
    } else if os == SynSent && rs == Inactive {
        "S0"
    } else if os == Established && rs == Established {
        "S1"
    } else {
        "OTH"
    }
}

/// Zeek's `/\^?S[^HAFGIQ]*R.*/`: an originator's SYN, then its RST with none of those between.
fn syn_then_reset(history: &str) -> bool {
    let h = history.strip_prefix('^').unwrap_or(history);
    let Some(rest) = h.strip_prefix('S') else {
        return false;
    };
    for c in rest.chars() {
        match c {
            'R' => return true,
            'H' | 'A' | 'F' | 'G' | 'I' | 'Q' => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DecodeOptions, decode};
    use crate::flow::key::Endpoint;

    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;

    /// A raw IPv4 packet (link type 101) carrying one TCP segment.
    fn segment(from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let (src, dst, sport, dport) = if from_client {
            ([10, 0, 0, 1], [10, 0, 0, 2], 40000u16, 80u16)
        } else {
            ([10, 0, 0, 2], [10, 0, 0, 1], 80, 40000)
        };
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ack.to_be_bytes());
        p.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p
    }

    struct Conn {
        key: FlowKey,
        zeek: Option<ZeekConn>,
        ts: i64,
    }

    impl Conn {
        fn new() -> Self {
            let ep = |last, port| Endpoint {
                ip: [10, 0, 0, last].into(),
                port,
            };
            Conn {
                key: FlowKey::new(6, 0, ep(1, 40000), ep(2, 80)).0,
                zeek: None,
                ts: 0,
            }
        }

        fn send(&mut self, from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) {
            let bytes = segment(from_client, seq, ack, flags, payload);
            let decoded = decode(101, &bytes, &DecodeOptions::default());
            // The client, 10.0.0.1, is the key's side A.
            let side = if from_client { Side::A } else { Side::B };
            self.ts += 1_000;
            let key = self.key;
            self.zeek
                .get_or_insert_with(|| ZeekConn::new(&key, side, &decoded))
                .packet(side, &decoded, self.ts);
        }

        fn summary(&self) -> ConnSummary<'_> {
            self.zeek.as_ref().unwrap().summary()
        }
    }

    #[test]
    fn a_clean_exchange_is_sf_and_its_last_ack_is_not_in_the_duration() {
        let mut c = Conn::new();
        c.send(true, 100, 0, SYN, b"");
        c.send(false, 900, 101, SYN | ACK, b"");
        c.send(true, 101, 901, ACK, b"");
        c.send(true, 101, 901, ACK, b"GET / HTTP/1.1\r\n\r\n");
        c.send(false, 901, 119, ACK, b"HTTP/1.1 200 OK\r\n\r\n");
        c.send(true, 119, 920, FIN | ACK, b"");
        c.send(false, 920, 120, FIN | ACK, b"");
        c.send(true, 120, 921, ACK, b"");
        let s = c.summary();
        assert_eq!(s.history, "ShADdFf");
        assert_eq!(s.conn_state, "SF");
        assert_eq!((s.orig_bytes, s.resp_bytes, s.missed_bytes), (18, 19, 0));
        assert_eq!(s.last_ns, 7_000);
        assert_eq!(s.originator, Side::A);
    }

    #[test]
    fn a_syn_ack_first_flips_the_roles() {
        let mut c = Conn::new();
        c.send(false, 900, 101, SYN | ACK, b"");
        c.send(true, 101, 901, ACK, b"");
        let s = c.summary();
        assert_eq!(s.history, "^hA");
        assert_eq!(s.originator, Side::A);
    }

    #[test]
    fn a_rejected_syn_is_rej_and_an_unanswered_one_s0() {
        let mut c = Conn::new();
        c.send(true, 100, 0, SYN, b"");
        c.send(false, 0, 101, RST | ACK, b"");
        assert_eq!(c.summary().conn_state, "REJ");
        let mut c = Conn::new();
        c.send(true, 100, 0, SYN, b"");
        c.send(true, 100, 0, SYN, b"");
        let s = c.summary();
        assert_eq!((s.conn_state, s.history), ("S0", "S"));
    }

    #[test]
    fn bytes_acknowledged_but_never_seen_are_missed() {
        let mut c = Conn::new();
        c.send(true, 100, 0, SYN, b"");
        c.send(false, 900, 101, SYN | ACK, b"");
        c.send(true, 101, 901, ACK, b"");
        // 1000 bytes from the server never reach the capture; the client acknowledges them.
        c.send(true, 101, 1901, ACK, b"");
        let s = c.summary();
        assert_eq!(s.missed_bytes, 1000);
        assert_eq!(s.resp_bytes, 1000);
        assert_eq!(s.history, "ShAg");
    }

    #[test]
    fn retransmissions_are_letters_at_1_10_and_100() {
        let mut c = Conn::new();
        c.send(true, 100, 0, SYN, b"");
        c.send(false, 900, 101, SYN | ACK, b"");
        c.send(true, 101, 901, ACK, b"x");
        for _ in 0..10 {
            c.send(true, 101, 901, ACK, b"x");
        }
        assert_eq!(c.summary().history, "ShDTT");
    }

    #[test]
    fn the_rstos0_pattern() {
        assert!(syn_then_reset("SR"));
        assert!(syn_then_reset("^SdR"));
        assert!(
            syn_then_reset("ShR"),
            "the responder's SYN-ACK is no answer to Zeek"
        );
        assert!(!syn_then_reset("SAR"));
        assert!(!syn_then_reset("R"));
    }
}
