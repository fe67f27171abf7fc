//! TCP connection state and per-direction analysis, as tshark's `tcp.analysis.*` and Zeek's
//! `history` describe a connection: retransmissions (bytes already seen, re-sent after more
//! than a round trip), out-of-order segments (new bytes below the highest sequence seen, within
//! a round trip), duplicate ACKs, zero windows, and RTT samples from the handshake and from data
//! to its ACK. Sequence numbers are compared with wrapping arithmetic, never as raw integers.

use super::key::Side;
use crate::decode::{TcpFlags, TcpPacket};

/// Where a connection is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TcpState {
    /// Only data or ACKs seen so far (picked up mid-stream), or nothing yet.
    #[default]
    Unknown,
    SynSent,
    SynAck,
    Established,
    FinWait,
    Closed,
    Reset,
}

impl TcpState {
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Unknown => "unknown",
            TcpState::SynSent => "syn_sent",
            TcpState::SynAck => "syn_ack",
            TcpState::Established => "established",
            TcpState::FinWait => "fin_wait",
            TcpState::Closed => "closed",
            TcpState::Reset => "reset",
        }
    }
}

/// `a` is after `b` in sequence space (RFC 1982 serial arithmetic).
#[inline]
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Round-trip time samples: last, minimum, and an EWMA with α = 1/8 (RFC 6298).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rtt {
    pub samples: u32,
    pub last_ns: u64,
    pub min_ns: u64,
    pub ewma_ns: f64,
}

impl Rtt {
    fn sample(&mut self, ns: u64) {
        self.samples = self.samples.saturating_add(1);
        self.last_ns = ns;
        if self.samples == 1 {
            self.min_ns = ns;
            self.ewma_ns = ns as f64;
        } else {
            self.min_ns = self.min_ns.min(ns);
            self.ewma_ns += (ns as f64 - self.ewma_ns) * 0.125;
        }
    }
}

/// Data segments waiting for their ACK, for RTT samples (a few, oldest dropped).
const OUTSTANDING: usize = 4;

/// What one direction sent. Laid out small (a flow table holds millions of these, and a
/// packet touches its direction's fields): plain integers with a flag instead of `Option`s, the
/// counters in 32 bits (they saturate).
#[derive(Clone, Debug, Default)]
pub struct TcpDirection {
    /// One past the highest sequence number sent (data, SYN and FIN count), once `seen`.
    highest_end: u32,
    /// The last acknowledgement number sent, once `acked`.
    last_ack: u32,
    highest_at_ns: i64,
    last_window: u16,
    pub window_scale: Option<u8>,
    seen: bool,
    acked: bool,
    /// This side's latest segment was a keep-alive: the other side's ACK to it is no duplicate.
    sent_keep_alive: bool,
    pub retransmissions: u32,
    pub out_of_order: u32,
    pub duplicate_acks: u32,
    pub zero_windows: u32,
    /// RTT measured from this side's segments to the other side's ACKs.
    pub rtt: Rtt,
    /// Data segments waiting for their ACK: where each ends and when it was sent.
    outstanding_end: [u32; OUTSTANDING],
    outstanding_at: [i64; OUTSTANDING],
    outstanding_len: u8,
}

impl TcpDirection {
    /// Remember a data segment for an RTT sample when its ACK comes (the oldest goes when full).
    fn wait_for_ack(&mut self, end: u32, ts_ns: i64) {
        let mut len = usize::from(self.outstanding_len);
        if len == OUTSTANDING {
            self.outstanding_end.copy_within(1.., 0);
            self.outstanding_at.copy_within(1.., 0);
            len -= 1;
        }
        self.outstanding_end[len] = end;
        self.outstanding_at[len] = ts_ns;
        self.outstanding_len = (len + 1) as u8;
    }
}

/// The whole connection.
#[derive(Clone, Debug, Default)]
pub struct TcpTracker {
    pub state: TcpState,
    /// The side that sent the first SYN.
    pub client: Option<Side>,
    pub directions: [TcpDirection; 2],
    /// Zeek-like: S SYN, H SYN-ACK, A pure ACK, D data, F FIN, R RST, T retransmission; upper
    /// case from the client (or side A before a client is known), each once per side: at most
    /// 14 letters, kept inline so a flow costs no allocation.
    history: [u8; 14],
    history_len: u8,
    /// The letters already in `history`, a bit each (cheaper than searching it per packet).
    history_seen: u64,
    /// The first SYN's answer was seen (its RTT sample taken): one flag rather than a second
    /// copy of the SYN's time keeps a flow within its cache lines.
    syn_answered: bool,
    /// SYN to the client's handshake ACK.
    handshake_rtt_ns: Option<i64>,
    first_syn_ns: Option<i64>,
    fins: [bool; 2],
}

impl TcpTracker {
    pub fn history(&self) -> &str {
        std::str::from_utf8(&self.history[..usize::from(self.history_len)]).unwrap_or("")
    }

    fn note(&mut self, side: Side, letter: char) {
        let upper = self.client.unwrap_or(Side::A) == side;
        let c = if upper {
            letter.to_ascii_uppercase()
        } else {
            letter.to_ascii_lowercase()
        } as u8;
        let bit = 1u64 << (u32::from(c & 0x1f) + if upper { 0 } else { 32 });
        let len = usize::from(self.history_len);
        if self.history_seen & bit == 0 && len < self.history.len() {
            self.history_seen |= bit;
            self.history[len] = c;
            self.history_len += 1;
        }
    }

    /// How soon after the highest segment a lower one counts as reordering: the handshake's
    /// round trip (SYN to the client's ACK), or 3 ms without one — tshark's threshold.
    fn reorder_window_ns(&self) -> i64 {
        self.handshake_rtt_ns.unwrap_or(3_000_000)
    }

    /// One segment from `side` at `ts_ns` with `payload_len` bytes of data.
    pub fn packet(&mut self, side: Side, tcp: &TcpPacket<'_>, payload_len: usize, ts_ns: i64) {
        let flags = tcp.flags();
        let syn = flags.contains(TcpFlags::SYN);
        let ack = flags.contains(TcpFlags::ACK);
        let fin = flags.contains(TcpFlags::FIN);
        let rst = flags.contains(TcpFlags::RST);
        let seq = tcp.seq();
        let len = payload_len as u32 + u32::from(syn) + u32::from(fin);
        if syn && !ack && self.client.is_none() {
            self.client = Some(side);
            self.first_syn_ns = Some(ts_ns);
        }
        if !syn
            && ack
            && self.state == TcpState::SynAck
            && Some(side) == self.client
            && self.handshake_rtt_ns.is_none()
        {
            self.handshake_rtt_ns = self.first_syn_ns.map(|at| (ts_ns - at).max(0));
        }
        self.update_state(side, syn, ack, fin, rst, payload_len);
        if syn {
            self.directions[side.index()].window_scale = tcp.options_summary().wscale;
            self.note(side, if ack { 'h' } else { 's' });
            if ack
                && !self.syn_answered
                && let Some(at) = self.first_syn_ns
            {
                self.syn_answered = true;
                // SYN → SYN-ACK: the client's round trip to the server.
                let client = side.other();
                self.directions[client.index()]
                    .rtt
                    .sample((ts_ns - at).max(0) as u64);
            }
        }
        if rst {
            self.note(side, 'r');
        }
        if fin {
            self.note(side, 'f');
        }
        if payload_len > 0 {
            self.note(side, 'd');
        } else if ack && !syn && !fin && !rst {
            self.note(side, 'a');
        }
        let window = self.reorder_window_ns();
        let answers_keep_alive =
            std::mem::take(&mut self.directions[side.other().index()].sent_keep_alive);
        let d = &mut self.directions[side.index()];
        // tshark's keep-alive: at most one byte, one below the next sequence number.
        d.sent_keep_alive = d.seen
            && payload_len <= 1
            && !syn
            && !fin
            && !rst
            && seq == d.highest_end.wrapping_sub(1);
        let mut resent = false;
        if len > 0 {
            let end = seq.wrapping_add(len);
            let highest = d.highest_end;
            if d.seen && seq_after(highest, seq) {
                // A keep-alive (one byte or none just below the highest) is neither.
                let keep_alive = payload_len <= 1 && !syn && !fin && seq == highest.wrapping_sub(1);
                // Bytes below what was already sent: reordering when they come within a
                // round trip of the highest and do not simply repeat the latest segment,
                // else a resend after loss (tshark's rule).
                if keep_alive {
                } else if ts_ns - d.highest_at_ns < window && end != highest {
                    d.out_of_order = d.out_of_order.saturating_add(1);
                } else {
                    d.retransmissions = d.retransmissions.saturating_add(1);
                    resent = true;
                }
                if seq_after(end, highest) {
                    d.highest_end = end;
                    d.highest_at_ns = ts_ns;
                }
            } else {
                d.seen = true;
                d.highest_end = end;
                d.highest_at_ns = ts_ns;
                // Data and FIN are acknowledged (tshark times both); the SYN is timed apart.
                if payload_len > 0 || fin {
                    d.wait_for_ack(end, ts_ns);
                }
            }
        }
        let window_field = tcp.window();
        // tshark's rule: a zero window on a segment without SYN, FIN or RST.
        if !syn && !fin && !rst && window_field == 0 {
            d.zero_windows = d.zero_windows.saturating_add(1);
        }
        if ack {
            let a = tcp.ack();
            let pure = payload_len == 0 && !syn && !fin && !rst;
            // tshark's rule: nothing sent, the same ACK and the same non-zero window, from the
            // sender's next sequence number (a keep-alive's lower one is not a duplicate).
            let at_next = !d.seen || seq == d.highest_end;
            if pure
                && !answers_keep_alive
                && d.acked
                && d.last_ack == a
                && window_field != 0
                && d.last_window == window_field
                && at_next
            {
                d.duplicate_acks = d.duplicate_acks.saturating_add(1);
            }
            d.acked = true;
            d.last_ack = a;
            d.last_window = window_field;
            self.sample_data_rtt(side.other(), a, ts_ns);
        }
        if resent {
            self.note(side, 't');
        }
    }

    /// An ACK from the other side covers `side`'s outstanding data: one RTT sample for the
    /// newest segment it covers (Karn: a segment sent once; retransmitted ranges never enter).
    fn sample_data_rtt(&mut self, side: Side, ack: u32, ts_ns: i64) {
        let d = &mut self.directions[side.index()];
        let mut newest: Option<i64> = None;
        let mut kept = 0;
        for i in 0..usize::from(d.outstanding_len) {
            let (end, at) = (d.outstanding_end[i], d.outstanding_at[i]);
            if seq_after(end, ack) {
                d.outstanding_end[kept] = end;
                d.outstanding_at[kept] = at;
                kept += 1;
            } else {
                newest = Some(newest.map_or(at, |n: i64| n.max(at)));
            }
        }
        d.outstanding_len = kept as u8;
        if let Some(at) = newest {
            d.rtt.sample((ts_ns - at).max(0) as u64);
        }
    }

    fn update_state(
        &mut self,
        side: Side,
        syn: bool,
        ack: bool,
        fin: bool,
        rst: bool,
        data: usize,
    ) {
        use TcpState::*;
        if rst {
            self.state = Reset;
            return;
        }
        if fin {
            self.fins[side.index()] = true;
        }
        self.state = match self.state {
            Reset | Closed => self.state,
            _ if self.fins[0] && self.fins[1] => Closed,
            _ if fin => FinWait,
            Unknown if syn && !ack => SynSent,
            Unknown | SynSent if syn && ack => SynAck,
            SynAck if ack && !syn && Some(side) == self.client => Established,
            Unknown if data > 0 || ack => Established,
            other => other,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpPacket;

    /// A 20-byte TCP header with the given fields.
    fn header(seq: u32, ack: u32, flags: u8, window: u16) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[0..2].copy_from_slice(&40000u16.to_be_bytes());
        h[2..4].copy_from_slice(&80u16.to_be_bytes());
        h[4..8].copy_from_slice(&seq.to_be_bytes());
        h[8..12].copy_from_slice(&ack.to_be_bytes());
        h[12] = 5 << 4;
        h[13] = flags;
        h[14..16].copy_from_slice(&window.to_be_bytes());
        h
    }

    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;

    fn feed(t: &mut TcpTracker, side: Side, seq: u32, ack: u32, flags: u8, len: usize, ts_ms: i64) {
        let h = header(seq, ack, flags, 1000);
        let p = TcpPacket::new(&h).expect("a whole header");
        t.packet(side, &p, len, ts_ms * 1_000_000);
    }

    #[test]
    fn handshake_data_and_close() {
        let mut t = TcpTracker::default();
        let (c, s) = (Side::B, Side::A);
        feed(&mut t, c, 100, 0, SYN, 0, 0);
        assert_eq!((t.state, t.client), (TcpState::SynSent, Some(c)));
        feed(&mut t, s, 900, 101, SYN | ACK, 0, 10);
        assert_eq!(t.state, TcpState::SynAck);
        feed(&mut t, c, 101, 901, ACK, 0, 11);
        assert_eq!(t.state, TcpState::Established);
        feed(&mut t, c, 101, 901, ACK, 50, 12);
        feed(&mut t, s, 901, 151, ACK, 0, 22);
        feed(&mut t, c, 151, 901, FIN | ACK, 0, 30);
        assert_eq!(t.state, TcpState::FinWait);
        feed(&mut t, s, 901, 152, FIN | ACK, 0, 31);
        assert_eq!(t.state, TcpState::Closed);
        let client = &t.directions[c.index()];
        assert_eq!(client.rtt.samples, 3, "handshake, data→ACK and FIN→ACK");
        assert_eq!(client.rtt.min_ns, 1_000_000);
        assert_eq!(client.rtt.last_ns, 1_000_000);
        assert_eq!(client.retransmissions + client.out_of_order, 0);
        assert_eq!(t.history(), "ShADaFf");
    }

    #[test]
    fn a_late_resend_is_a_retransmission_and_a_quick_one_out_of_order() {
        let mut t = TcpTracker::default();
        let side = Side::A;
        feed(&mut t, side, 1000, 0, ACK, 100, 0);
        feed(&mut t, side, 1200, 0, ACK, 100, 1);
        // The hole at 1100 filled 1 ms later: reordering.
        feed(&mut t, side, 1100, 0, ACK, 100, 2);
        // The first segment again, 500 ms later: loss recovery.
        feed(&mut t, side, 1000, 0, ACK, 100, 500);
        let d = &t.directions[side.index()];
        assert_eq!((d.out_of_order, d.retransmissions), (1, 1));
        assert!(t.history().contains('T'));
    }

    #[test]
    fn duplicate_acks_and_zero_windows() {
        let mut t = TcpTracker::default();
        feed(&mut t, Side::A, 1, 500, ACK, 0, 0);
        feed(&mut t, Side::A, 1, 500, ACK, 0, 1);
        feed(&mut t, Side::A, 1, 500, ACK, 0, 2);
        let h = header(1, 500, ACK, 0);
        t.packet(Side::A, &TcpPacket::new(&h).unwrap(), 0, 3_000_000);
        let d = &t.directions[0];
        assert_eq!(d.duplicate_acks, 2);
        assert_eq!(d.zero_windows, 1);
    }

    #[test]
    fn sequence_comparisons_wrap() {
        let mut t = TcpTracker::default();
        feed(&mut t, Side::A, u32::MAX - 49, 0, ACK, 100, 0);
        feed(&mut t, Side::A, 50, 0, ACK, 100, 1);
        let d = &t.directions[0];
        assert_eq!((d.retransmissions, d.out_of_order), (0, 0));
    }

    #[test]
    fn a_reset_ends_the_connection() {
        let mut t = TcpTracker::default();
        feed(&mut t, Side::A, 1, 0, SYN, 0, 0);
        feed(&mut t, Side::B, 0, 2, RST | ACK, 0, 1);
        assert_eq!(t.state, TcpState::Reset);
        assert_eq!(t.history(), "Sr");
    }
}
