//! Live capture through libpcap: the only place (with injection) that touches an interface.
//! Packets are copied once out of libpcap's ring into a reused buffer, so the borrow-based
//! [`Source`] contract holds without per-packet allocation.

use super::{CaptureCounts, LinkType, Packet, Source, SourceError, SourceErrorKind};
use serde::Serialize;

/// How to open an interface.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub interface: String,
    pub promiscuous: bool,
    pub snaplen: i32,
    /// Kernel buffer size in bytes (0 keeps libpcap's default).
    pub buffer_size: i32,
    /// Read timeout in milliseconds: how long libpcap may batch packets before handing them over.
    pub timeout_ms: i32,
    /// Deliver each packet as it arrives instead of batching.
    pub immediate: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            interface: String::new(),
            promiscuous: true,
            snaplen: 262_144,
            buffer_size: 0,
            timeout_ms: 100,
            immediate: false,
        }
    }
}

/// One interface as `list-interfaces` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct InterfaceInfo {
    pub name: String,
    pub description: Option<String>,
    pub addresses: Vec<String>,
    pub up: bool,
    pub running: bool,
    pub loopback: bool,
}

/// The interfaces libpcap can open.
pub fn list_interfaces() -> Result<Vec<InterfaceInfo>, String> {
    let devices = pcap::Device::list().map_err(|e| e.to_string())?;
    Ok(devices
        .into_iter()
        .map(|d| InterfaceInfo {
            addresses: d.addresses.iter().map(|a| a.addr.to_string()).collect(),
            up: d.flags.is_up(),
            running: d.flags.is_running(),
            loopback: d.flags.is_loopback(),
            description: d.desc,
            name: d.name,
        })
        .collect())
}

/// Explain an open failure the way a user can act on it: what to grant, or which names exist.
pub fn explain_open_error(interface: &str, error: &str) -> String {
    let lower = error.to_lowercase();
    if lower.contains("permission") || lower.contains("operation not permitted") {
        return format!(
            "{interface}: {error}; capturing needs root or the CAP_NET_RAW capability \
             (setcap cap_net_raw,cap_net_admin=eip on the binary; in a container, where file \
             capabilities are ignored under no_new_privs: uid 0 with NET_RAW added, see the \
             README's Sidecar section)"
        );
    }
    if lower.contains("no such device") || lower.contains("doesn't exist") {
        let names = list_interfaces()
            .map(|l| l.into_iter().map(|i| i.name).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        return format!("{interface}: no such interface; available: {names}");
    }
    format!("{interface}: {error}")
}

pub struct LiveSource {
    name: String,
    capture: pcap::Capture<pcap::Active>,
    link_type: LinkType,
    data: Vec<u8>,
    ts_ns: i64,
    orig_len: u32,
    has_packet: bool,
    /// Set by a signal handler: the capture ends at the next packet or read timeout.
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    health: Option<Health>,
    published: Option<Published>,
    /// How long one wait for packets lasts before the stop flag and health are looked at.
    wait_ms: i32,
}

/// Periodic logs of a long-running capture: libpcap's drop counts, and one warning when no
/// packet came for a while (a sidecar on the wrong interface or port says so by itself).
struct Health {
    every: std::time::Duration,
    next_report: std::time::Instant,
    quiet_after: Option<std::time::Duration>,
    last_packet: std::time::Instant,
    warned_quiet: bool,
}

/// libpcap's counters as last published: its 32-bit counts widened across their wrap.
struct Published {
    to: Box<dyn FnMut(CaptureCounts)>,
    next: std::time::Instant,
    raw: (u32, u32, u32),
    totals: CaptureCounts,
}

/// How often libpcap's counters are read for the metrics (a system call each time).
const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl LiveSource {
    pub fn open(options: &LiveOptions) -> Result<Self, SourceError> {
        let fail = |detail: String| {
            SourceError::new(&options.interface, SourceErrorKind::Live(detail), 0, 0)
        };
        let mut inactive = pcap::Capture::from_device(options.interface.as_str())
            .map_err(|e| fail(explain_open_error(&options.interface, &e.to_string())))?
            .promisc(options.promiscuous)
            .snaplen(options.snaplen)
            .timeout(options.timeout_ms)
            .immediate_mode(options.immediate)
            .precision(pcap::Precision::Nano);
        if options.buffer_size > 0 {
            inactive = inactive.buffer_size(options.buffer_size);
        }
        // Non-blocking, with our own poll(): in blocking mode libpcap on Linux keeps polling
        // until a packet comes (its read timeout does not return an empty read, and a signal's
        // EINTR is retried), so on a quiet interface neither SIGTERM nor the no-traffic warning
        // would ever be looked at.
        let capture = inactive
            .open()
            .and_then(|c| c.setnonblock())
            .map_err(|e| fail(explain_open_error(&options.interface, &e.to_string())))?;
        // libpcap reports DLT_ values; DLT_RAW (12) is LINKTYPE_RAW (101) in files.
        let link_type = match capture.get_datalink().0 {
            12 => LinkType::RAW,
            dlt => LinkType(dlt as u32),
        };
        Ok(LiveSource {
            name: options.interface.clone(),
            capture,
            link_type,
            data: Vec::with_capacity(options.snaplen.max(0) as usize),
            ts_ns: 0,
            orig_len: 0,
            has_packet: false,
            stop: None,
            health: None,
            published: None,
            wait_ms: options.timeout_ms.clamp(1, 1000),
        })
    }

    /// End the capture once `flag` is set (checked at every packet and read timeout).
    pub fn stop_on(&mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.stop = Some(flag);
    }

    /// Install a kernel-side filter: cheaper than filtering in user space.
    pub fn set_filter(&mut self, expression: &str) -> Result<(), String> {
        self.capture
            .filter(expression, true)
            .map_err(|e| format!("bad filter {expression:?}: {e}"))
    }

    /// Log libpcap's counters every `every`, and warn once when no packet came for
    /// `quiet_after` (logged again when packets resume and stop again).
    pub fn watch_health(
        &mut self,
        every: std::time::Duration,
        quiet_after: Option<std::time::Duration>,
    ) {
        let now = std::time::Instant::now();
        self.health = Some(Health {
            every,
            next_report: now + every,
            quiet_after,
            last_packet: now,
            warned_quiet: false,
        });
    }

    /// Hand libpcap's counters to `to` from now on, every half second (also while no packet
    /// comes).
    pub fn publish_to(&mut self, to: impl FnMut(CaptureCounts) + 'static) {
        self.published = Some(Published {
            to: Box::new(to),
            next: std::time::Instant::now(),
            raw: (0, 0, 0),
            totals: Default::default(),
        });
        self.publish();
    }

    fn publish(&mut self) {
        let Some(published) = &mut self.published else {
            return;
        };
        let now = std::time::Instant::now();
        if now < published.next {
            return;
        }
        published.next = now + PUBLISH_EVERY;
        let Ok(s) = self.capture.stats() else {
            return;
        };
        let (received, dropped, if_dropped) = published.raw;
        let totals = &mut published.totals;
        totals.received += u64::from(s.received.wrapping_sub(received));
        totals.dropped += u64::from(s.dropped.wrapping_sub(dropped));
        totals.interface_dropped += u64::from(s.if_dropped.wrapping_sub(if_dropped));
        published.raw = (s.received, s.dropped, s.if_dropped);
        (published.to)(*totals);
    }

    fn check_health(&mut self, got_packet: bool) {
        self.publish();
        let Some(health) = &mut self.health else {
            return;
        };
        let now = std::time::Instant::now();
        if got_packet {
            health.last_packet = now;
            health.warned_quiet = false;
        } else if let Some(quiet) = health.quiet_after
            && !health.warned_quiet
            && now.duration_since(health.last_packet) >= quiet
        {
            health.warned_quiet = true;
            tracing::warn!(
                interface = %self.name,
                seconds = quiet.as_secs_f64(),
                "no packets captured for a while: check the interface, the ports and the filter"
            );
        }
        if now >= health.next_report {
            health.next_report = now + health.every;
            if let Ok(s) = self.capture.stats() {
                tracing::info!(
                    interface = %self.name,
                    received = s.received,
                    dropped = s.dropped,
                    if_dropped = s.if_dropped,
                    "capture counters"
                );
            }
        }
    }

    /// Packets received and dropped as libpcap counts them.
    pub fn stats(&mut self) -> Option<(u32, u32, u32)> {
        self.capture
            .stats()
            .ok()
            .map(|s| (s.received, s.dropped, s.if_dropped))
    }
}

impl Source for LiveSource {
    fn advance(&mut self) -> Result<bool, SourceError> {
        self.has_packet = false;
        loop {
            if self
                .stop
                .as_ref()
                .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
            {
                return Ok(false);
            }
            match self.capture.next_packet() {
                Ok(packet) => {
                    let h = packet.header;
                    // With nanosecond precision libpcap stores nanoseconds in tv_usec.
                    // time_t and suseconds_t differ in width across platforms.
                    #[allow(clippy::useless_conversion)]
                    let (secs, frac) = (i64::from(h.ts.tv_sec), i64::from(h.ts.tv_usec));
                    self.ts_ns = secs * 1_000_000_000 + frac;
                    self.orig_len = h.len;
                    self.data.clear();
                    self.data.extend_from_slice(packet.data);
                    self.has_packet = true;
                    self.check_health(true);
                    return Ok(true);
                }
                Err(pcap::Error::TimeoutExpired) => {
                    // Nothing ready: wait for the socket (a signal's EINTR just ends the wait).
                    let mut fd = libc::pollfd {
                        fd: std::os::fd::AsRawFd::as_raw_fd(&self.capture),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the duration of the call.
                    unsafe { libc::poll(&mut fd, 1, self.wait_ms) };
                    self.check_health(false);
                    continue;
                }
                Err(pcap::Error::NoMorePackets) => return Ok(false),
                Err(e) => {
                    return Err(SourceError::new(
                        &self.name,
                        SourceErrorKind::Live(format!("{}: {e}", self.name)),
                        0,
                        0,
                    ));
                }
            }
        }
    }

    fn packet(&self) -> Option<Packet<'_>> {
        self.has_packet.then(|| Packet {
            ts_ns: self.ts_ns,
            link_type: self.link_type,
            data: &self.data,
            orig_len: self.orig_len,
            interface: 0,
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permission_error_says_what_to_grant() {
        let text = explain_open_error("eth0", "socket: Operation not permitted");
        assert!(
            text.contains("root or the CAP_NET_RAW capability"),
            "{text}"
        );
        let text = explain_open_error(
            "eth0",
            "You don't have permission to capture on that device",
        );
        assert!(text.contains("CAP_NET_RAW"), "{text}");
    }
}
