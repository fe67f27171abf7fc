//! Connection uids in Zeek's form (`C` and base62), derived from the connection itself rather
//! than drawn at random: the same capture gives the same uids on every run, and `flows` and
//! `http-trace` name a connection alike, so their logs join on `uid` as Zeek's conn.log and
//! http.log do.

use super::key::FlowKey;
use std::net::IpAddr;

/// `C` and up to 17 base62 digits of 96 bits.
const MAX: usize = 18;

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Uid {
    bytes: [u8; MAX],
    len: u8,
}

impl Uid {
    /// The uid of the connection whose first packet came at `first_ns`. The VLAN is left
    /// out: an HTTP message knows its endpoints, not the tags its packets carried.
    pub fn of(first_ns: i64, key: &FlowKey) -> Uid {
        let mut input = [0u8; 8 + 1 + 2 * (16 + 2)];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            input[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        put(&first_ns.to_be_bytes());
        put(&[key.protocol]);
        for end in [key.a, key.b] {
            match end.ip {
                IpAddr::V4(v4) => put(&v4.to_ipv6_mapped().octets()),
                IpAddr::V6(v6) => put(&v6.octets()),
            }
            put(&end.port.to_be_bytes());
        }
        // Two fixed-seed hashes: the same on every run of a build, and cheap enough for a
        // flood of short connections (a cryptographic hash cost a tenth of conn.log's time).
        use std::hash::BuildHasher;
        let hash = |seed: u64| foldhash::fast::FixedState::with_seed(seed).hash_one(&input[..len]);
        let mut n = u128::from(hash(0x5eed_0001)) << 32 | u128::from(hash(0x5eed_0002) >> 32);
        const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut digits = [0u8; MAX - 1];
        let mut count = 0;
        while n > 0 || count == 0 {
            digits[count] = DIGITS[(n % 62) as usize];
            n /= 62;
            count += 1;
        }
        let mut bytes = [0u8; MAX];
        bytes[0] = b'C';
        for (to, from) in bytes[1..=count]
            .iter_mut()
            .zip(digits[..count].iter().rev())
        {
            *to = *from;
        }
        Uid {
            bytes,
            len: (count + 1) as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Uid({})", self.as_str())
    }
}

impl serde::Serialize for Uid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::Endpoint;

    #[test]
    fn a_uid_is_zeeks_shape_and_the_same_for_the_same_connection() {
        let ep = |last, port| Endpoint {
            ip: [10, 0, 0, last].into(),
            port,
        };
        let (key, _) = FlowKey::new(6, 0, ep(1, 40000), ep(2, 80));
        let uid = Uid::of(1_000, &key);
        assert!(uid.as_str().starts_with('C'));
        assert!((10..=18).contains(&uid.as_str().len()), "{uid:?}");
        assert!(uid.as_str()[1..].bytes().all(|b| b.is_ascii_alphanumeric()));
        let (tagged, _) = FlowKey::new(6, 7, ep(2, 80), ep(1, 40000));
        assert_eq!(Uid::of(1_000, &tagged), uid, "either direction, any VLAN");
        assert_ne!(
            Uid::of(1_001, &key),
            uid,
            "a reused 5-tuple is another connection"
        );
    }
}
