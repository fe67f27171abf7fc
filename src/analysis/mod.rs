//! Detectors over packets and flows: SYN floods and port scans, in bounded memory.

pub mod anomaly;
pub mod keys;
pub mod window;

pub use anomaly::{
    Alert, AnomalyDetector, DEFAULT_MEMORY_BYTES, DetectorStats, PortScanConfig, SynFloodConfig,
};
