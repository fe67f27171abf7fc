//! Which connections are traced when only a share is wanted. The choice hangs on a fixed
//! (unseeded) hash of the connection's canonical endpoints, so runs over the same capture, or
//! over captures of the same traffic taken at two points, pick the same connections.

use crate::flow::{Endpoint, FlowKey};
use std::net::IpAddr;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

fn hash_endpoint(hash: u64, endpoint: &Endpoint) -> u64 {
    let ip = match endpoint.ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    fnv1a(fnv1a(hash, &ip), &endpoint.port.to_be_bytes())
}

/// FNV-1a over both endpoints of the canonical key (the same for either direction).
pub(super) fn endpoints_hash(key: &FlowKey) -> u64 {
    hash_endpoint(hash_endpoint(FNV_OFFSET, &key.a), &key.b)
}

/// Is the connection with this key among the `rate` (0..=1) share traced?
pub(super) fn is_sampled(key: &FlowKey, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    // The top 53 bits as a fraction in [0, 1).
    let fraction = (endpoints_hash(key) >> 11) as f64 / (1u64 << 53) as f64;
    fraction < rate
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(client_port: u16) -> FlowKey {
        let ep = |last, port| Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(192, 168, 0, last)),
            port,
        };
        FlowKey::new(6, 0, ep(1, client_port), ep(2, 80)).0
    }

    #[test]
    fn the_hash_is_fixed_and_the_share_is_close_to_the_rate() {
        // Pinned: a change of the hash would change which connections past runs traced.
        assert_eq!(endpoints_hash(&key(40000)), endpoints_hash(&key(40000)));
        assert_eq!(endpoints_hash(&key(40000)), 0x005e_912a_ec27_7a34);
        let kept = (0..10_000u16)
            .filter(|p| is_sampled(&key(10_000 + p), 0.25))
            .count();
        assert!((2_300..2_700).contains(&kept), "{kept}");
        assert!((0..100u16).all(|p| is_sampled(&key(p), 1.0)));
        assert!((0..100u16).all(|p| !is_sampled(&key(p), 0.0)));
    }
}
