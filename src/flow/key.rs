//! The canonical, bidirectional flow key: both directions of a conversation map to one key
//! (the lower endpoint is `a`), and the side a packet came from is reported beside it.

use crate::decode::{Decoded, Transport};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: IpAddr,
    /// The TCP/UDP port; 0 for protocols without ports.
    pub port: u16,
}

/// Which endpoint of a key sent a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// From `a` (the lower endpoint) to `b`.
    A,
    /// From `b` to `a`.
    B,
}

impl Side {
    pub fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    /// The IP protocol number (6 TCP, 17 UDP, 1 ICMP, ...).
    pub protocol: u8,
    /// The outer VLAN id, 0 when untagged: the same addresses on two VLANs are two flows.
    pub vlan: u16,
    pub a: Endpoint,
    pub b: Endpoint,
}

/// A few word-sized writes: field by field (an `IpAddr` hashes its variant and each byte on its
/// own), hashing cost most of a short connection's per-packet time.
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(
            u64::from(self.protocol) << 48
                | u64::from(self.vlan) << 32
                | u64::from(self.a.port) << 16
                | u64::from(self.b.port),
        );
        match (self.a.ip, self.b.ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                state.write_u64(u64::from(a.to_bits()) << 32 | u64::from(b.to_bits()));
            }
            (a, b) => {
                for ip in [a, b] {
                    let bits = match ip {
                        IpAddr::V4(v4) => v4.to_ipv6_mapped().to_bits(),
                        IpAddr::V6(v6) => v6.to_bits(),
                    };
                    state.write_u128(bits);
                }
            }
        }
    }
}

impl FlowKey {
    /// Order two endpoints into a key; the side says which one sent.
    pub fn new(protocol: u8, vlan: u16, src: Endpoint, dst: Endpoint) -> (FlowKey, Side) {
        if src <= dst {
            (
                FlowKey {
                    protocol,
                    vlan,
                    a: src,
                    b: dst,
                },
                Side::A,
            )
        } else {
            (
                FlowKey {
                    protocol,
                    vlan,
                    a: dst,
                    b: src,
                },
                Side::B,
            )
        }
    }

    /// The key of a decoded IP packet; None without an IP layer.
    pub fn of(decoded: &Decoded<'_>) -> Option<(FlowKey, Side)> {
        let (src, dst) = (decoded.ip_src()?, decoded.ip_dst()?);
        let protocol = decoded.ip_protocol()?;
        let (sport, dport) = match decoded.transport {
            Transport::Tcp(_) | Transport::Udp(_) => (
                decoded.src_port().unwrap_or(0),
                decoded.dst_port().unwrap_or(0),
            ),
            _ => (0, 0),
        };
        let vlan = decoded.vlan_ids().first().copied().unwrap_or(0);
        Some(FlowKey::new(
            protocol,
            vlan,
            Endpoint {
                ip: src,
                port: sport,
            },
            Endpoint {
                ip: dst,
                port: dport,
            },
        ))
    }

    /// The endpoint that sent on `side`.
    pub fn sender(&self, side: Side) -> Endpoint {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ep(last: u8, port: u16) -> Endpoint {
        Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 99, 0, last)),
            port,
        }
    }

    #[test]
    fn both_directions_share_one_key() {
        let (k1, s1) = FlowKey::new(6, 0, ep(1, 40000), ep(2, 80));
        let (k2, s2) = FlowKey::new(6, 0, ep(2, 80), ep(1, 40000));
        assert_eq!(k1, k2);
        assert_eq!((s1, s2), (Side::A, Side::B));
        assert_eq!(k1.sender(s2), ep(2, 80));
        let (other_vlan, _) = FlowKey::new(6, 7, ep(1, 40000), ep(2, 80));
        assert_ne!(k1, other_vlan);
    }
}
