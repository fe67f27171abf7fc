//! The Internet checksum (RFC 1071) shared by the IPv4 header, TCP, UDP and ICMP, with the
//! IPv4/IPv6 pseudo-headers the transport checksums cover. It runs on every verified packet, so
//! it sums wide words and folds once at the end instead of adding 16 bits at a time.

/// Ones'-complement sum of `data` as big-endian 16-bit words, unfolded.
///
/// Eight bytes are added per step: because 2^16 ≡ 1 (mod 2^16 − 1), a 64-bit word with its
/// end-around carry folds to the same 16-bit sum as its four 16-bit halves.
#[inline]
pub(super) fn sum(data: &[u8]) -> u64 {
    let (words, rest) = data.as_chunks::<8>();
    let mut acc: u64 = 0;
    for word in words {
        let (total, carry) = acc.overflowing_add(u64::from_be_bytes(*word));
        // After a carry `total` is at most 2^64 - 2, so adding it back cannot overflow.
        acc = total + u64::from(carry);
    }
    let (pairs, last) = rest.as_chunks::<2>();
    // At most three pairs and one byte remain: far from overflowing after the fold below.
    let mut tail: u64 = pairs
        .iter()
        .map(|p| u64::from(u16::from_be_bytes(*p)))
        .sum();
    if let Some(&byte) = last.first() {
        tail += u64::from(byte) << 8;
    }
    add(acc, tail)
}

/// Ones'-complement addition of two partial sums.
#[inline]
fn add(a: u64, b: u64) -> u64 {
    let (total, carry) = a.overflowing_add(b);
    total + u64::from(carry)
}

/// Folds a partial sum to 16 bits.
#[inline]
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Whether a partial sum that includes the transmitted checksum field verifies.
#[inline]
pub(super) fn verifies(acc: u64) -> bool {
    fold(acc) == 0xffff
}

/// The addresses a TCP/UDP/ICMPv6 checksum covers besides the segment itself.
#[derive(Clone, Copy, Debug)]
pub(super) enum PseudoHeader {
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
}

impl PseudoHeader {
    /// The partial sum of the pseudo-header for `protocol` over an upper-layer length of `len`.
    #[inline]
    fn sum(&self, protocol: u8, len: usize) -> u64 {
        let addresses = match self {
            Self::V4 { src, dst } => add(sum(src), sum(dst)),
            Self::V6 { src, dst } => add(sum(src), sum(dst)),
        };
        add(add(addresses, u64::from(protocol)), len as u64)
    }

    /// Whether the checksum of a segment of `protocol` carried in `segment` verifies.
    #[inline]
    pub(super) fn verifies(&self, protocol: u8, segment: &[u8]) -> bool {
        verifies(add(self.sum(protocol, segment.len()), sum(segment)))
    }
}

#[cfg(test)]
mod tests {
    use super::{PseudoHeader, fold, sum, verifies};

    /// Reference: one 16-bit word at a time, as RFC 1071 spells it out.
    fn naive(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let hi = u32::from(pair.first().copied().unwrap_or(0)) << 8;
            let lo = u32::from(pair.get(1).copied().unwrap_or(0));
            acc += hi | lo;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // The worked example of RFC 1071 section 3: sum 0xddf2, checksum 0x220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(!fold(sum(&data)), 0x220d);
    }

    #[test]
    fn wide_sum_matches_word_by_word_sum_for_every_length() {
        let mut state: u32 = 0x1234_5678;
        let data: [u8; 300] = core::array::from_fn(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        });
        for len in 0..=data.len() {
            let part = data.get(..len).unwrap_or_default();
            assert_eq!(fold(sum(part)), naive(part), "length {len}");
        }
        assert_eq!(fold(sum(&[0xff; 4096])), 0xffff);
    }

    #[test]
    fn pseudo_header_counts_protocol_and_length() {
        let v4 = PseudoHeader::V4 {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
        };
        // 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 8
        assert_eq!(fold(v4.sum(17, 8)), 0x1403 + 25);
        assert!(!verifies(v4.sum(17, 8)));
    }
}
