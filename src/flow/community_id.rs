//! Community ID v1: one string per flow that Zeek, Suricata, Arkime and Elastic compute alike
//! (a SHA-1 over the seed and the ordered 5-tuple, base64), so a flow found in one tool's logs
//! can be looked up in another's. The hash is over the tuple as the specification orders it,
//! so both directions of a flow, and every tool, agree without sharing any state.

use super::key::{Endpoint, FlowKey, Side};
use std::net::IpAddr;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
const PROTO_SCTP: u8 = 132;

/// `1:` and 28 characters of base64: kept inline, a flood of flows writes millions.
const LEN: usize = 30;

/// A Community ID, `1:` followed by the base64 of the SHA-1.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CommunityId([u8; LEN]);

impl CommunityId {
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into it.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommunityId({})", self.as_str())
    }
}

impl serde::Serialize for CommunityId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The counterpart of an ICMP type that has one (echo and its reply, and the like): such
/// messages are two-way, and the counterpart stands in for the destination port. Any other
/// type is one-way, and its code stands in.
fn icmp_counterpart(v6: bool, icmp_type: u8) -> Option<u8> {
    let pairs: &[(u8, u8)] = if v6 {
        // Echo, multicast listener query/report, router and neighbour solicitation and
        // advertisement, who-are-you, home agent address discovery.
        &[
            (128, 129),
            (130, 131),
            (133, 134),
            (135, 136),
            (139, 140),
            (144, 145),
        ]
    } else {
        // Echo, router solicitation/advertisement, timestamp, information, address mask.
        &[(8, 0), (10, 9), (13, 14), (15, 16), (17, 18)]
    };
    pairs.iter().find_map(|&(a, b)| {
        if icmp_type == a {
            Some(b)
        } else if icmp_type == b {
            Some(a)
        } else {
            None
        }
    })
}

/// Computes Community IDs with one seed (0 unless the sites comparing logs agreed on another).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommunityIdHasher {
    pub seed: u16,
}

impl CommunityIdHasher {
    pub fn new(seed: u16) -> Self {
        CommunityIdHasher { seed }
    }

    /// The ID of a packet from `src` to `dst`. For TCP, UDP and SCTP the numbers are ports; for
    /// ICMP and ICMPv6 they are the message's type and code; other protocols have none and
    /// they are ignored.
    pub fn packet(
        &self,
        proto: u8,
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
    ) -> CommunityId {
        let (ports, one_way) = match proto {
            PROTO_TCP | PROTO_UDP | PROTO_SCTP => (Some((src_port, dst_port)), false),
            PROTO_ICMP | PROTO_ICMPV6 => {
                let icmp_type = src_port as u8;
                match icmp_counterpart(proto == PROTO_ICMPV6, icmp_type) {
                    Some(other) => (Some((src_port, u16::from(other))), false),
                    None => (Some((src_port, dst_port)), true),
                }
            }
            _ => (None, false),
        };
        let ordered = one_way || src < dst || (src == dst && ports.is_some_and(|(s, d)| s < d));
        let (src, dst, ports) = if ordered {
            (src, dst, ports)
        } else {
            (dst, src, ports.map(|(s, d)| (d, s)))
        };
        let mut input = [0u8; 2 + 16 + 16 + 2 + 4];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            input[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        put(&self.seed.to_be_bytes());
        for ip in [src, dst] {
            match ip {
                IpAddr::V4(v4) => put(&v4.octets()),
                IpAddr::V6(v6) => put(&v6.octets()),
            }
        }
        // The protocol and a byte of padding.
        put(&[proto, 0]);
        if let Some((s, d)) = ports {
            put(&s.to_be_bytes());
            put(&d.to_be_bytes());
        }
        // SHA-1 as the specification says; the sha1 crate uses the processor's SHA extensions
        // where it has them (one hash per flow on the export path).
        let digest = <sha1::Sha1 as sha1::Digest>::digest(&input[..len]);
        let mut id = [0u8; LEN];
        id[..2].copy_from_slice(b"1:");
        let encoded = base64_simd::STANDARD.encode(
            digest.as_slice(),
            base64_simd::Out::from_slice(&mut id[2..]),
        );
        debug_assert_eq!(encoded.len(), LEN - 2);
        CommunityId(id)
    }

    /// The ID of a TCP connection between two endpoints.
    pub fn tcp(&self, client: Endpoint, server: Endpoint) -> CommunityId {
        self.packet(PROTO_TCP, client.ip, server.ip, client.port, server.port)
    }

    /// The ID of a flow whose first packet came from `first` (it matters for one-way ICMP
    /// only); `icmp` is that packet's ICMP type and code.
    pub fn flow(&self, key: &FlowKey, first: Side, icmp: Option<[u8; 2]>) -> CommunityId {
        let (src, dst) = (key.sender(first), key.sender(first.other()));
        let (sport, dport) = match icmp {
            Some([t, c]) => (u16::from(t), u16::from(c)),
            None => (src.port, dst.port),
        };
        self.packet(key.protocol, src.ip, dst.ip, sport, dport)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's published baseline (its `baseline/baseline_deflt.json` and
    /// `baseline_seed1.json`): protocol, source, destination, source port or ICMP type,
    /// destination port or ICMP code, the ID with seed 0, the ID with seed 1. The ICMP rows
    /// are written with the type and code on the wire; the baseline lists their port
    /// equivalents (the counterpart type for two-way messages).
    const VECTORS: &[(u8, &str, &str, u16, u16, &str, &str)] = &[
        (
            58,
            "fe80::200:86ff:fe05:80da",
            "fe80::260:97ff:fe07:69ea",
            135,
            0,
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=",
        ),
        (
            58,
            "fe80::260:97ff:fe07:69ea",
            "fe80::200:86ff:fe05:80da",
            136,
            0,
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=",
        ),
        (
            58,
            "fe80::260:97ff:fe07:69ea",
            "fe80::200:86ff:fe05:80da",
            135,
            0,
            "1:zavyT/cezQr1fmImYCwYnMXbgck=",
            "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=",
        ),
        (
            58,
            "fe80::200:86ff:fe05:80da",
            "fe80::260:97ff:fe07:69ea",
            136,
            0,
            "1:zavyT/cezQr1fmImYCwYnMXbgck=",
            "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=",
        ),
        (
            58,
            "3ffe:501:1800:2345::2",
            "3ffe:507:0:1:200:86ff:fe05:80da",
            3,
            0,
            "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=",
            "1:lVEtCZpYu84Xqaa++3lXFyuu2n4=",
        ),
        (
            58,
            "3ffe:501:410:0:2c0:dfff:fe47:33e",
            "3ffe:507:0:1:200:86ff:fe05:80da",
            1,
            4,
            "1:hLZd0XGWojozrvxqE0dWB1iM6R0=",
            "1:W8MHwXpWzpoSTD+cGcaJr4u0ys8=",
        ),
        (
            58,
            "3ffe:507:0:1:200:86ff:fe05:80da",
            "3ffe:501:0:1001::2",
            128,
            0,
            "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=",
            "1:GfZxjAkDk2MkegpBYHV6tadtFXQ=",
        ),
        (
            58,
            "3ffe:501:0:1001::2",
            "3ffe:507:0:1:200:86ff:fe05:80da",
            129,
            0,
            "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=",
            "1:GfZxjAkDk2MkegpBYHV6tadtFXQ=",
        ),
        (
            58,
            "fe80::200:86ff:fe05:80da",
            "ff02::2",
            133,
            0,
            "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=",
            "1:L7Ka0ZMYu+J3bL4ulW2PrqyXNo8=",
        ),
        (
            58,
            "fe80::260:97ff:fe07:69ea",
            "ff02::1",
            134,
            0,
            "1:pkvHqCL88/tg1k4cPigmZXUtL00=",
            "1:K/ee5UCqAMAQXDorP5nSa2CGLjc=",
        ),
        (
            1,
            "192.168.0.89",
            "192.168.0.1",
            8,
            0,
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            "1:03g6IloqVBdcZlPyX8r0hgoE7kA=",
        ),
        (
            1,
            "192.168.0.1",
            "192.168.0.89",
            0,
            0,
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            "1:03g6IloqVBdcZlPyX8r0hgoE7kA=",
        ),
        (
            1,
            "10.0.0.1",
            "10.0.0.2",
            11,
            0,
            "1:YHxtAirCG//0OzkcVAukqKQN9xM=",
            "1:XjUibYHaafLQ3pxQeiMI8g25q20=",
        ),
        (
            6,
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            "2607:f8b0:400c:c03::1a",
            63943,
            25,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
        ),
        (
            6,
            "2607:f8b0:400c:c03::1a",
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            25,
            63943,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
        ),
        (
            132,
            "192.168.170.8",
            "192.168.170.56",
            7,
            7,
            "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
        ),
        (
            132,
            "192.168.170.56",
            "192.168.170.8",
            7,
            7,
            "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
        ),
        (
            6,
            "128.232.110.120",
            "66.35.250.204",
            34855,
            80,
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
        ),
        (
            6,
            "66.35.250.204",
            "128.232.110.120",
            80,
            34855,
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
        ),
        (
            17,
            "192.168.1.52",
            "8.8.8.8",
            54585,
            53,
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
        ),
        (
            17,
            "8.8.8.8",
            "192.168.1.52",
            53,
            54585,
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
        ),
        (
            46,
            "10.1.12.1",
            "10.1.12.2",
            0,
            0,
            "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=",
            "1:rYir8gphR31noO9iDRQmF/BteEI=",
        ),
        (
            46,
            "10.1.12.2",
            "10.1.12.1",
            0,
            0,
            "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=",
            "1:rYir8gphR31noO9iDRQmF/BteEI=",
        ),
    ];

    #[test]
    fn the_specifications_baseline_with_seeds_0_and_1() {
        for &(proto, src, dst, sport, dport, seed0, seed1) in VECTORS {
            let (src, dst) = (src.parse().unwrap(), dst.parse().unwrap());
            for (seed, want) in [(0, seed0), (1, seed1)] {
                let id = CommunityIdHasher::new(seed).packet(proto, src, dst, sport, dport);
                assert_eq!(
                    id.as_str(),
                    want,
                    "{proto} {src} {dst} {sport} {dport} seed {seed}"
                );
            }
        }
    }

    #[test]
    fn a_flow_has_the_id_of_its_packets_in_either_direction() {
        let ep = |ip: &str, port| Endpoint {
            ip: ip.parse().unwrap(),
            port,
        };
        let (key, side) = FlowKey::new(6, 0, ep("141.142.228.5", 59856), ep("192.150.187.43", 80));
        let hasher = CommunityIdHasher::default();
        // Zeek's baseline for this connection (its community-id-logging test).
        assert_eq!(
            hasher.flow(&key, side, None).as_str(),
            "1:yvyB8h+3dnggTZW0UEITWCst97w="
        );
        assert_eq!(
            hasher.flow(&key, side.other(), None),
            hasher.flow(&key, side, None)
        );
        assert_eq!(
            serde_json::to_string(&hasher.flow(&key, side, None)).unwrap(),
            "\"1:yvyB8h+3dnggTZW0UEITWCst97w=\""
        );
    }
}
