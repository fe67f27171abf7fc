//! The sidecar's memory from its limits, by the formula measured in the README (`http-trace` →
//! Memory sizing): the program and its capture ring, a table entry and a head buffer per
//! connection, a body per connection in flight (chunked bodies at up to 1.5 × their cap), the
//! reassembly cap, and the POST queue when messages are posted; then a quarter more.

/// What bounds the sidecar's memory, passed to it as `http-trace` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SidecarLimits {
    pub max_connections: u64,
    pub max_body_size: u64,
    pub max_reassembly_mb: u64,
}

/// Limits for a service with a few hundred connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 2000;
pub const DEFAULT_MAX_BODY_SIZE: u64 = 65536;
pub const DEFAULT_MAX_REASSEMBLY_MB: u64 = 32;

impl Default for SidecarLimits {
    fn default() -> Self {
        SidecarLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            max_reassembly_mb: DEFAULT_MAX_REASSEMBLY_MB,
        }
    }
}

const MIB: f64 = 1048576.0;
const KIB: f64 = 1024.0;
/// The program (9 MiB) and libpcap's default capture ring (2 MiB), live.
const BASE: f64 = 11.0 * MIB;
/// A connection's table entry and state.
const PER_CONNECTION: f64 = 2.0 * KIB;
/// A head buffer of 8 KiB kept at 2.5 × its length.
const HEAD: f64 = 2.5 * 8.0 * KIB;
/// Messages the POST queue holds, at 1.4 × their body (base64 and JSON).
const POST_QUEUE: f64 = 1024.0 * 1.4;

impl SidecarLimits {
    /// The formula's bytes, without headroom.
    pub fn expected_bytes(&self, posting: bool) -> f64 {
        let connections = self.max_connections as f64;
        let body = self.max_body_size as f64;
        let mut bytes = BASE
            + connections * (PER_CONNECTION + HEAD + 1.5 * body)
            + 1.05 * self.max_reassembly_mb as f64 * MIB;
        if posting {
            bytes += POST_QUEUE * body;
        }
        bytes
    }

    /// The memory limit to set: the formula and a quarter more, in whole MiB.
    pub fn memory_limit(&self, posting: bool) -> String {
        let mib = (1.25 * self.expected_bytes(posting) / MIB).ceil() as u64;
        format!("{mib}Mi")
    }

    /// The flags that hold the sidecar to these limits.
    pub fn flags(&self) -> Vec<String> {
        vec![
            format!("--max-concurrent-connections={}", self.max_connections),
            format!("--max-body-size={}", self.max_body_size),
            format!("--max-reassembly-mb={}", self.max_reassembly_mb),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readmes_worked_example_comes_out() {
        // 9 + 2 + 4 + 188 + 34 + 39 + 90 ≈ 365 MiB (366 with each term rounded), 456Mi with a
        // quarter more.
        let limits = SidecarLimits::default();
        let mib = limits.expected_bytes(true) / MIB;
        assert!((360.0..372.0).contains(&mib), "{mib}");
        assert_eq!(limits.memory_limit(true), "456Mi");
        assert_eq!(limits.memory_limit(false), "344Mi");
    }

    #[test]
    fn the_limit_follows_each_flag() {
        let base = SidecarLimits::default();
        let more = |l: SidecarLimits| l.expected_bytes(false) > base.expected_bytes(false);
        assert!(more(SidecarLimits {
            max_connections: 4000,
            ..base
        }));
        assert!(more(SidecarLimits {
            max_body_size: 1 << 20,
            ..base
        }));
        assert!(more(SidecarLimits {
            max_reassembly_mb: 128,
            ..base
        }));
    }
}
