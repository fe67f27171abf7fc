//! Detectors over packets and flows: SYN floods and port scans.

pub mod anomaly;

pub use anomaly::{Alert, AnomalyDetector, PortScanConfig, SynFloodConfig};
