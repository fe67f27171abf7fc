//! The labels and annotations a pod opts in and tunes its sidecar with. A malformed value is
//! not an error: it is left out (the injector's default applies) and reported as a warning.

use super::inject::SecretRef;
use std::collections::BTreeMap;

/// Label (on the pod or its namespace): `"true"` opts in, `"false"` on the pod opts out.
pub const INJECT: &str = "gophercap.io/inject";
/// Annotation the injector writes: what it added.
pub const INJECTED: &str = "gophercap.io/injected";
/// Annotation: the server ports to watch, `80,8080` (else the declared containerPorts).
pub const PORTS: &str = "gophercap.io/ports";
pub const INTERFACE: &str = "gophercap.io/interface";
pub const OUTPUT_URL: &str = "gophercap.io/output-url";
pub const OUTPUT_STDOUT: &str = "gophercap.io/output-stdout";
/// Annotation: the secret holding the POST token, `NAME/KEY`.
pub const OUTPUT_TOKEN_SECRET: &str = "gophercap.io/output-token-secret";
pub const CPU_REQUEST: &str = "gophercap.io/cpu-request";
pub const CPU_LIMIT: &str = "gophercap.io/cpu-limit";
pub const MEMORY_REQUEST: &str = "gophercap.io/memory-request";
pub const MEMORY_LIMIT: &str = "gophercap.io/memory-limit";
/// Annotations: the sidecar's limits (and so its memory limit, unless that is given).
pub const MAX_CONNECTIONS: &str = "gophercap.io/max-concurrent-connections";
pub const MAX_BODY_SIZE: &str = "gophercap.io/max-body-size";
pub const MAX_REASSEMBLY_MB: &str = "gophercap.io/max-reassembly-mb";

/// What a pod's annotations ask for, each value checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PodAnnotations {
    pub ports: Option<Vec<u16>>,
    pub interface: Option<String>,
    pub output_url: Option<String>,
    pub output_stdout: Option<bool>,
    pub token_secret: Option<SecretRef>,
    pub cpu_request: Option<String>,
    pub cpu_limit: Option<String>,
    pub memory_request: Option<String>,
    pub memory_limit: Option<String>,
    pub max_connections: Option<u64>,
    pub max_body_size: Option<u64>,
    pub max_reassembly_mb: Option<u64>,
    /// One per malformed annotation, naming it and its value.
    pub warnings: Vec<String>,
}

impl PodAnnotations {
    pub fn read(annotations: Option<&BTreeMap<String, String>>) -> Self {
        let mut read = PodAnnotations::default();
        let Some(annotations) = annotations else {
            return read;
        };
        let mut warn = |key: &str, value: &str, why: &str| {
            read.warnings.push(format!(
                "gophercap: annotation {key}={value:?} ignored: {why}"
            ));
        };
        let mut take = |key: &str, check: &dyn Fn(&str) -> Result<(), String>| {
            let value = annotations.get(key)?.trim();
            match check(value) {
                Ok(()) => Some(value.to_owned()),
                Err(why) => {
                    warn(key, value, &why);
                    None
                }
            }
        };
        let ports = take(PORTS, &|v| parse_ports(v).map(drop));
        let interface = take(INTERFACE, &|v| {
            let fine = !v.is_empty()
                && v.len() < 16
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
            fine.then_some(())
                .ok_or_else(|| "not an interface name".to_owned())
        });
        let output_url = take(OUTPUT_URL, &|v| {
            (v.starts_with("https://") || v.starts_with("http://"))
                .then_some(())
                .ok_or_else(|| "not an http(s) URL".to_owned())
        });
        let output_stdout = take(OUTPUT_STDOUT, &|v| {
            matches!(v, "true" | "false")
                .then_some(())
                .ok_or_else(|| "neither true nor false".to_owned())
        });
        let token_secret = take(OUTPUT_TOKEN_SECRET, &|v| v.parse::<SecretRef>().map(drop));
        let cpu_request = take(CPU_REQUEST, &check_quantity);
        let cpu_limit = take(CPU_LIMIT, &check_quantity);
        let memory_request = take(MEMORY_REQUEST, &check_quantity);
        let memory_limit = take(MEMORY_LIMIT, &check_quantity);
        let count = |v: &str| {
            v.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .map(drop)
                .ok_or_else(|| "not a whole number above 0".to_owned())
        };
        let max_connections = take(MAX_CONNECTIONS, &count);
        let max_body_size = take(MAX_BODY_SIZE, &|v| {
            v.parse::<u64>()
                .map(drop)
                .map_err(|_| "not a whole number".to_owned())
        });
        let max_reassembly_mb = take(MAX_REASSEMBLY_MB, &count);
        read.ports = ports.map(|v| parse_ports(&v).unwrap_or_default());
        read.interface = interface;
        read.output_url = output_url;
        read.output_stdout = output_stdout.map(|v| v == "true");
        read.token_secret = token_secret.and_then(|v| v.parse().ok());
        read.cpu_request = cpu_request;
        read.cpu_limit = cpu_limit;
        read.memory_request = memory_request;
        read.memory_limit = memory_limit;
        read.max_connections = max_connections.and_then(|v| v.parse().ok());
        read.max_body_size = max_body_size.and_then(|v| v.parse().ok());
        read.max_reassembly_mb = max_reassembly_mb.and_then(|v| v.parse().ok());
        read
    }
}

/// `80,8080` (commas or spaces), each port 1 to 65535, at least one.
pub fn parse_ports(text: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for part in text.split([',', ' ']).filter(|p| !p.is_empty()) {
        match part.parse::<u16>() {
            Ok(port) if port > 0 => {
                if !ports.contains(&port) {
                    ports.push(port);
                }
            }
            _ => return Err(format!("{part:?} is not a port")),
        }
    }
    if ports.is_empty() {
        return Err("no port".into());
    }
    Ok(ports)
}

/// A Kubernetes quantity as the API server accepts it for CPU and memory: a decimal number
/// and an optional suffix (`m`, `k`, `M`, `G`, `T`, `Ki`, `Mi`, `Gi`, `Ti`).
fn check_quantity(text: &str) -> Result<(), String> {
    quantity_value(text)
        .map(drop)
        .ok_or_else(|| "not a quantity (such as 100m, 256Mi, 1)".to_owned())
}

fn quantity_value(text: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 9] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("m", 0.001),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, scale) = SUFFIXES
        .iter()
        .find_map(|(suffix, scale)| text.strip_suffix(suffix).map(|n| (n, *scale)))
        .unwrap_or((text, 1.0));
    let digits = !number.is_empty()
        && number.bytes().filter(|&b| b == b'.').count() <= 1
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().any(|b| b.is_ascii_digit());
    digits
        .then(|| number.parse::<f64>().ok())
        .flatten()
        .map(|n| n * scale)
}

/// A memory quantity in bytes (0 when malformed: only well-formed values get this far).
pub fn quantity_bytes(text: &str) -> f64 {
    quantity_value(text).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn well_formed_annotations_are_read() {
        let read = PodAnnotations::read(Some(&annotations(&[
            (PORTS, "8080, 80,8080"),
            (INTERFACE, "eth1"),
            (OUTPUT_URL, "https://collector.example/ingest"),
            (OUTPUT_STDOUT, "true"),
            (OUTPUT_TOKEN_SECRET, "collector/token"),
            (CPU_REQUEST, "50m"),
            (MEMORY_LIMIT, "512Mi"),
        ])));
        assert_eq!(read.warnings, Vec::<String>::new());
        assert_eq!(read.ports, Some(vec![8080, 80]));
        assert_eq!(read.interface.as_deref(), Some("eth1"));
        assert_eq!(read.output_stdout, Some(true));
        assert_eq!(
            read.token_secret,
            Some(SecretRef {
                name: "collector".into(),
                key: "token".into()
            })
        );
        assert_eq!(read.cpu_request.as_deref(), Some("50m"));
        assert_eq!(read.memory_limit.as_deref(), Some("512Mi"));
    }

    #[test]
    fn malformed_annotations_are_left_out_with_a_warning_each() {
        let read = PodAnnotations::read(Some(&annotations(&[
            (PORTS, "80,http"),
            (INTERFACE, "eth0; rm -rf /"),
            (OUTPUT_URL, "ftp://x"),
            (OUTPUT_STDOUT, "yes"),
            (OUTPUT_TOKEN_SECRET, "no-key"),
            (MEMORY_LIMIT, "lots"),
            (CPU_LIMIT, "1.2.3"),
        ])));
        assert_eq!(read.warnings.len(), 7, "{:?}", read.warnings);
        assert!(read.warnings[0].contains("gophercap.io/ports=\"80,http\""));
        assert_eq!(read.ports, None);
        assert_eq!(read.interface, None);
        assert_eq!(read.memory_limit, None);
    }

    #[test]
    fn quantities_scale_by_their_suffix() {
        assert_eq!(quantity_bytes("256Mi"), 268435456.0);
        assert_eq!(quantity_bytes("1G"), 1e9);
        assert_eq!(quantity_bytes("100m"), 0.1);
        assert_eq!(quantity_bytes("2"), 2.0);
        for bad in ["", "Mi", "1.2.3", "-1", "1e3", "12Xi"] {
            assert!(quantity_value(bad).is_none(), "{bad}");
        }
    }
}
