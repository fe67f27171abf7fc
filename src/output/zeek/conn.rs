//! conn.log: one line per connection, Zeek's fields in Zeek's order, plus `community_id` as
//! Zeek's community-id policy script appends it.

use super::{Seconds, ZeekLog};
use crate::flow::{CommunityId, ConnSummary, DirectionStats, FlowKey, Uid};
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Serialize)]
pub struct ConnRecord<'a> {
    pub ts: Seconds,
    pub uid: Uid,
    #[serde(rename = "id.orig_h")]
    pub orig_h: IpAddr,
    #[serde(rename = "id.orig_p")]
    pub orig_p: u16,
    #[serde(rename = "id.resp_h")]
    pub resp_h: IpAddr,
    #[serde(rename = "id.resp_p")]
    pub resp_p: u16,
    pub proto: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<Seconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp_bytes: Option<u64>,
    pub conn_state: &'static str,
    pub local_orig: bool,
    pub local_resp: bool,
    pub missed_bytes: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub history: &'a str,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    /// Always unset: tunnels are not decapsulated into connections of their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel_parents: Option<[&'static str; 0]>,
    pub ip_proto: u8,
    pub community_id: CommunityId,
}

impl ZeekLog for ConnRecord<'_> {
    const PATH: &'static str = "conn";
    const FIELDS: &'static [(&'static str, &'static str)] = &[
        ("ts", "time"),
        ("uid", "string"),
        ("id.orig_h", "addr"),
        ("id.orig_p", "port"),
        ("id.resp_h", "addr"),
        ("id.resp_p", "port"),
        ("proto", "enum"),
        ("service", "string"),
        ("duration", "interval"),
        ("orig_bytes", "count"),
        ("resp_bytes", "count"),
        ("conn_state", "string"),
        ("local_orig", "bool"),
        ("local_resp", "bool"),
        ("missed_bytes", "count"),
        ("history", "string"),
        ("orig_pkts", "count"),
        ("orig_ip_bytes", "count"),
        ("resp_pkts", "count"),
        ("resp_ip_bytes", "count"),
        ("tunnel_parents", "set[string]"),
        ("ip_proto", "count"),
        ("community_id", "string"),
    ];
}

/// Zeek's name of a transport protocol.
pub fn transport_name(protocol: u8) -> &'static str {
    match protocol {
        6 => "tcp",
        17 => "udp",
        1 | 58 => "icmp",
        _ => "unknown_transport",
    }
}

/// Zeek's default `Site::local_nets`: the private and special-purpose ranges of the IANA
/// registries (its `Site::private_address_space`), local unless configured otherwise, and the
/// local network control block (224.0.0.0/24), as the baselines of its test suite have it.
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let n = v4.to_bits();
            const NETS: [(u32, u32); 15] = [
                (0x0000_0000, 8),
                (0x0a00_0000, 8),
                (0x6440_0000, 10),
                (0x7f00_0000, 8),
                (0xa9fe_0000, 16),
                (0xac10_0000, 12),
                (0xc000_0000, 24),
                (0xc000_0200, 24),
                (0xc0a8_0000, 16),
                (0xc612_0000, 15),
                (0xc633_6400, 24),
                (0xcb00_7100, 24),
                (0xf000_0000, 4),
                (0xffff_ffff, 32),
                // The local network control block: Zeek's baselines count it local.
                (0xe000_0000, 24),
            ];
            NETS.iter()
                .any(|&(net, bits)| n >> (32 - bits) == net >> (32 - bits))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_local(IpAddr::V4(v4));
            }
            let n = v6.to_bits();
            // 6to4 (2002::/16) carries an IPv4 address: local when that one is.
            if n >> 112 == 0x2002 {
                let v4 = std::net::Ipv4Addr::from_bits((n >> 80) as u32);
                return is_local(IpAddr::V4(v4));
            }
            const NETS: [(u128, u32); 9] = [
                (0, 128),
                (1, 128),
                (0x0064_ff9b_0001 << 80, 48),
                (0x0100 << 112, 64),
                (0x2001 << 112, 23),
                (0x2001_0002 << 96, 48),
                (0x2001_0db8 << 96, 32),
                (0xfc00 << 112, 7),
                (0xfe80 << 112, 10),
            ];
            NETS.iter()
                .any(|&(net, bits)| n >> (128 - bits) == net >> (128 - bits))
        }
    }
}

/// What a conn.log line is made of, besides Zeek's account of the connection.
pub struct ConnFacts<'a> {
    pub key: &'a FlowKey,
    pub first_ns: i64,
    /// Per side of the key.
    pub stats: &'a [DirectionStats; 2],
    pub summary: &'a ConnSummary<'a>,
    /// The ICMP type and code of the first packet, for ICMP flows (Zeek's ports for them).
    pub icmp: Option<[u8; 2]>,
    pub community_id: CommunityId,
}

impl<'a> ConnRecord<'a> {
    pub fn new(f: &ConnFacts<'a>) -> Self {
        let s = f.summary;
        let (o, r) = (s.originator, s.originator.other());
        let (orig, resp) = (f.key.sender(o), f.key.sender(r));
        let (orig_p, resp_p) = match f.icmp {
            Some([t, c]) => (u16::from(t), u16::from(c)),
            None => (orig.port, resp.port),
        };
        let duration_ns = s.last_ns - f.first_ns;
        let timed = duration_ns > 0;
        let (os, rs) = (f.stats[o.index()], f.stats[r.index()]);
        ConnRecord {
            ts: Seconds::from_nanos(f.first_ns),
            uid: Uid::of(f.first_ns, f.key),
            orig_h: orig.ip,
            orig_p,
            resp_h: resp.ip,
            resp_p,
            proto: transport_name(f.key.protocol),
            service: s.service,
            duration: timed.then(|| Seconds::from_nanos(duration_ns)),
            orig_bytes: timed.then_some(s.orig_bytes),
            resp_bytes: timed.then_some(s.resp_bytes),
            conn_state: s.conn_state,
            local_orig: is_local(orig.ip),
            local_resp: is_local(resp.ip),
            missed_bytes: s.missed_bytes,
            history: s.history,
            orig_pkts: os.packets,
            orig_ip_bytes: os.ip_bytes,
            resp_pkts: rs.packets,
            resp_ip_bytes: rs.ip_bytes,
            tunnel_parents: None,
            ip_proto: f.key.protocol,
            community_id: f.community_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_is_zeeks_private_address_space() {
        for local in [
            "224.0.0.251",
            "10.1.2.3",
            "192.168.0.27",
            "172.19.51.37",
            "127.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "2002:c0a8:101::1",
        ] {
            assert!(is_local(local.parse().unwrap()), "{local}");
        }
        for remote in [
            "141.42.64.125",
            "1.1.1.1",
            "224.2.127.254",
            "ff02::fb",
            "2001:470:1f11::1",
            "2002:101:101::1",
        ] {
            assert!(!is_local(remote.parse().unwrap()), "{remote}");
        }
    }

    #[test]
    fn the_fields_are_named_as_the_record_writes_them() {
        let key = FlowKey::new(
            6,
            0,
            crate::flow::Endpoint {
                ip: "10.0.0.1".parse().unwrap(),
                port: 1,
            },
            crate::flow::Endpoint {
                ip: "10.0.0.2".parse().unwrap(),
                port: 2,
            },
        )
        .0;
        let summary = ConnSummary {
            originator: crate::flow::Side::A,
            history: "S",
            conn_state: "S0",
            orig_bytes: 0,
            resp_bytes: 0,
            missed_bytes: 0,
            last_ns: 0,
            service: None,
        };
        let stats = [DirectionStats::default(); 2];
        let record = ConnRecord::new(&ConnFacts {
            key: &key,
            first_ns: 0,
            stats: &stats,
            summary: &summary,
            icmp: None,
            community_id: crate::flow::CommunityIdHasher::default().flow(
                &key,
                crate::flow::Side::A,
                None,
            ),
        });
        let mut row = Vec::new();
        super::super::tsv::write(&mut row, &record).unwrap();
        let row = String::from_utf8(row).unwrap();
        assert_eq!(row.split('\t').count(), ConnRecord::FIELDS.len(), "{row}");
        let mut json = Vec::new();
        crate::output::json::write_compact(&mut json, &record).unwrap();
        let json = String::from_utf8(json).unwrap();
        let mut at = 0;
        for (name, _) in ConnRecord::FIELDS {
            if let Some(found) = json.find(&format!("\"{name}\":")) {
                assert!(found >= at, "{name} out of order in {json}");
                at = found;
            }
        }
    }
}
