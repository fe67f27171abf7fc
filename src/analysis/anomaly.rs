//! SYN-flood and port-scan detection over sliding windows of packet time (NetScope's rules and
//! defaults), in memory set by configuration: every window is capped by its threshold
//! ([`super::window`]), and the keys (attacked services, scanning sources) live in tables of a
//! fixed number of entries, the least recently active evicted first and counted. A flood of
//! spoofed sources costs the tables' size, not a window per source.

use super::keys::{Clear, KeyTable};
use super::window::{RecentDistinct, RecentEvents};
use crate::decode::{Decoded, TcpFlags, Transport};
use crate::time::format_ts;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq)]
pub struct SynFloodConfig {
    pub enabled: bool,
    pub window_secs: f64,
    pub syn_threshold: usize,
    pub unique_src_threshold: usize,
    pub cooldown_secs: f64,
}

impl Default for SynFloodConfig {
    fn default() -> Self {
        SynFloodConfig {
            enabled: true,
            window_secs: 5.0,
            syn_threshold: 200,
            unique_src_threshold: 50,
            cooldown_secs: 10.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PortScanConfig {
    pub enabled: bool,
    pub window_secs: f64,
    pub unique_ports_threshold: usize,
    pub unique_hosts_threshold: usize,
    pub cooldown_secs: f64,
}

impl Default for PortScanConfig {
    fn default() -> Self {
        PortScanConfig {
            enabled: true,
            window_secs: 10.0,
            unique_ports_threshold: 25,
            unique_hosts_threshold: 10,
            cooldown_secs: 30.0,
        }
    }
}

/// One alert, as a JSON line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub ts: String,
    pub ts_ns: i64,
    /// `syn_flood` or `port_scan`.
    pub kind: &'static str,
    pub description: String,
    /// The attacked `ip:port` (SYN flood).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The scanning address (port scan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syns: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<usize>,
    /// The window of a flood or scan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<f64>,
    /// Keys evicted so far (`detector_capacity`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evicted_keys: Option<u64>,
}

/// How many events and distinct items a window keeps per threshold: twice, so an alert's
/// counts are exact up to twice its thresholds (and never less than the threshold, which is
/// all the rule needs).
const CAP_PER_THRESHOLD: usize = 2;

/// Per attacked service: its SYNs and their sources within the window.
#[derive(Debug)]
struct FloodState {
    syns: RecentEvents,
    sources: RecentDistinct<IpAddr>,
    last_alert_ns: Option<i64>,
}

/// Per source: the ports and hosts it reached within the window. Most sources of a spoofed
/// flood are seen once: their one sighting is kept in the table's entry, and the windows are
/// made at the second (a small entry keeps the table in the processor's caches).
#[derive(Debug)]
struct ScanState {
    /// The source's only sighting so far: (time, port, host).
    first: Option<(i64, u16, IpAddr)>,
    windows: Option<Box<ScanWindows>>,
    newest_ns: i64,
    last_alert_ns: Option<i64>,
}

#[derive(Debug)]
struct ScanWindows {
    ports: RecentDistinct<u16>,
    hosts: RecentDistinct<IpAddr>,
}

impl ScanState {
    /// Count a sighting; returns the distinct ports and hosts within the window.
    fn push(
        &mut self,
        ts: i64,
        port: u16,
        host: IpAddr,
        config: &PortScanConfig,
    ) -> (usize, usize) {
        let window = ns(config.window_secs);
        self.newest_ns = ts;
        if self.windows.is_none() {
            match self.first {
                Some((first_ns, ..)) if ts - first_ns <= window => {}
                _ => {
                    self.first = Some((ts, port, host));
                    return (1, 1);
                }
            }
        }
        let windows = self.windows.get_or_insert_with(|| {
            let cap = |threshold: usize| threshold.saturating_mul(CAP_PER_THRESHOLD);
            Box::new(ScanWindows {
                ports: RecentDistinct::new(cap(config.unique_ports_threshold)),
                hosts: RecentDistinct::new(cap(config.unique_hosts_threshold)),
            })
        });
        if let Some((first_ns, first_port, first_host)) = self.first.take() {
            windows.ports.push(first_ns, first_port, window);
            windows.hosts.push(first_ns, first_host, window);
        }
        windows.ports.push(ts, port, window);
        windows.hosts.push(ts, host, window);
        (windows.ports.count(), windows.hosts.count())
    }
}

impl Clear for FloodState {
    fn clear(&mut self) {
        self.syns.clear();
        self.sources.clear();
        self.last_alert_ns = None;
    }
}

impl Clear for ScanState {
    fn clear(&mut self) {
        self.first = None;
        self.windows = None;
        self.last_alert_ns = None;
    }
}

/// A count as an alert tells it: `400+` once it reached its window's cap.
fn at_least(count: usize, threshold: usize) -> String {
    if count >= threshold.saturating_mul(CAP_PER_THRESHOLD) {
        format!("{count}+")
    } else {
        count.to_string()
    }
}

fn ns(secs: f64) -> i64 {
    (secs * 1e9) as i64
}

fn cooling(last_alert_ns: Option<i64>, now: i64, cooldown_ns: i64) -> bool {
    last_alert_ns.is_some_and(|t| now - t < cooldown_ns)
}

/// What the detector holds and has let go, for the summary and the memory bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DetectorStats {
    /// Services tracked for SYN floods now, and at most.
    pub flood_keys: usize,
    pub flood_key_cap: usize,
    /// Sources tracked for port scans now, and at most.
    pub scan_keys: usize,
    pub scan_key_cap: usize,
    /// Keys evicted while still active to make room (their cooldowns forgotten).
    pub evicted_keys: u64,
    /// Events and sightings held across every window.
    pub held_events: usize,
}

pub struct AnomalyDetector {
    syn: SynFloodConfig,
    scan: PortScanConfig,
    floods: KeyTable<(IpAddr, u16), FloodState>,
    scans: KeyTable<IpAddr, ScanState>,
    next_sweep_ns: i64,
    /// Evictions already told in a `detector_capacity` alert, and when the last one was.
    evictions_told: u64,
    capacity_told_ns: Option<i64>,
}

/// How often (packet time) keys idle for their window and cooldown are let go.
const SWEEP_NS: i64 = 1_000_000_000;

/// At most one `detector_capacity` alert per this much packet time while keys are evicted.
const CAPACITY_NOTICE_NS: i64 = 10_000_000_000;

/// The memory the detectors may use unless told otherwise (`--anomaly-memory-mb`).
pub const DEFAULT_MEMORY_BYTES: usize = 64 << 20;

impl AnomalyDetector {
    /// Detectors within `memory_bytes`: half for the SYN-flood table, half for the port-scan
    /// table, each as many keys as fit at the most one key can hold under the thresholds.
    pub fn new(syn: SynFloodConfig, scan: PortScanConfig, memory_bytes: usize) -> Self {
        let (flood_key, scan_key) = Self::key_bytes(&syn, &scan);
        AnomalyDetector {
            floods: KeyTable::new(memory_bytes / 2 / flood_key),
            scans: KeyTable::new(memory_bytes / 2 / scan_key),
            syn,
            scan,
            next_sweep_ns: i64::MIN,
            evictions_told: 0,
            capacity_told_ns: None,
        }
    }

    /// The most memory one SYN-flood key and one port-scan key can hold, in bytes: its place
    /// in the table, and its windows full (a test holds the windows to it).
    pub fn key_bytes(syn: &SynFloodConfig, scan: &PortScanConfig) -> (usize, usize) {
        let cap = |threshold: usize| threshold.max(1).saturating_mul(CAP_PER_THRESHOLD);
        let flood = KeyTable::<(IpAddr, u16), FloodState>::bytes_per_key()
            + RecentEvents::max_bytes(cap(syn.syn_threshold))
            + RecentDistinct::<IpAddr>::max_bytes(cap(syn.unique_src_threshold));
        let scan = KeyTable::<IpAddr, ScanState>::bytes_per_key()
            + std::mem::size_of::<ScanWindows>()
            + RecentDistinct::<u16>::max_bytes(cap(scan.unique_ports_threshold))
            + RecentDistinct::<IpAddr>::max_bytes(cap(scan.unique_hosts_threshold));
        (flood, scan)
    }

    /// Look at one packet; returns the alerts it raises.
    pub fn observe(&mut self, ts: i64, decoded: &Decoded<'_>, alerts: &mut Vec<Alert>) {
        if ts >= self.next_sweep_ns {
            self.sweep(ts);
            self.next_sweep_ns = ts.saturating_add(SWEEP_NS);
            if !cooling(self.capacity_told_ns, ts, CAPACITY_NOTICE_NS) {
                self.tell_evictions(ts, alerts);
            }
        }
        let (Some(src), Some(dst)) = (decoded.ip_src(), decoded.ip_dst()) else {
            return;
        };
        let (dport, syn_only) = match &decoded.transport {
            Transport::Tcp(tcp) => {
                let f = tcp.flags();
                let syn_only = f.contains(TcpFlags::SYN) && !f.contains(TcpFlags::ACK);
                if !syn_only {
                    return;
                }
                (tcp.dst_port(), true)
            }
            Transport::Udp(udp) => (udp.dst_port(), false),
            _ => return,
        };
        if syn_only && self.syn.enabled {
            self.syn_flood(ts, src, dst, dport, alerts);
        }
        if self.scan.enabled {
            self.port_scan(ts, src, dst, dport, alerts);
        }
    }

    fn syn_flood(&mut self, ts: i64, src: IpAddr, dst: IpAddr, port: u16, alerts: &mut Vec<Alert>) {
        let c = &self.syn;
        let window = ns(c.window_secs);
        let w = self.floods.entry((dst, port), || FloodState {
            syns: RecentEvents::new(c.syn_threshold.saturating_mul(CAP_PER_THRESHOLD)),
            sources: RecentDistinct::new(c.unique_src_threshold.saturating_mul(CAP_PER_THRESHOLD)),
            last_alert_ns: None,
        });
        w.syns.push(ts, window);
        w.sources.push(ts, src, window);
        let (syns, sources) = (w.syns.count(), w.sources.count());
        if syns >= c.syn_threshold
            && sources >= c.unique_src_threshold
            && !cooling(w.last_alert_ns, ts, ns(c.cooldown_secs))
        {
            w.last_alert_ns = Some(ts);
            let target = format!("{}", std::net::SocketAddr::new(dst, port));
            alerts.push(Alert {
                ts: format_ts(ts),
                ts_ns: ts,
                kind: "syn_flood",
                description: format!(
                    "SYN flood suspected: {} SYNs from {} sources to {target} within {}s",
                    at_least(syns, c.syn_threshold),
                    at_least(sources, c.unique_src_threshold),
                    c.window_secs
                ),
                target: Some(target),
                source: None,
                syns: Some(syns),
                sources: Some(sources),
                ports: None,
                hosts: None,
                window_secs: Some(c.window_secs),
                evicted_keys: None,
            });
        }
    }

    fn port_scan(&mut self, ts: i64, src: IpAddr, dst: IpAddr, port: u16, alerts: &mut Vec<Alert>) {
        let c = &self.scan;
        let w = self.scans.entry(src, || ScanState {
            first: None,
            windows: None,
            newest_ns: ts,
            last_alert_ns: None,
        });
        let (n_ports, n_hosts) = w.push(ts, port, dst, c);
        if (n_ports >= c.unique_ports_threshold || n_hosts >= c.unique_hosts_threshold)
            && !cooling(w.last_alert_ns, ts, ns(c.cooldown_secs))
        {
            w.last_alert_ns = Some(ts);
            alerts.push(Alert {
                ts: format_ts(ts),
                ts_ns: ts,
                kind: "port_scan",
                description: format!(
                    "port scan suspected: {src} reached {} ports on {} hosts within {}s",
                    at_least(n_ports, c.unique_ports_threshold),
                    at_least(n_hosts, c.unique_hosts_threshold),
                    c.window_secs
                ),
                target: None,
                source: Some(src.to_string()),
                syns: None,
                sources: None,
                ports: Some(n_ports),
                hosts: Some(n_hosts),
                window_secs: Some(c.window_secs),
                evicted_keys: None,
            });
        }
    }

    /// Let go of the least recently active keys whose window is empty and whose cooldown is
    /// over: the tables are kept in order of activity, so this stops at the first busy key.
    fn sweep(&mut self, now: i64) {
        let (window, cooldown) = (ns(self.syn.window_secs), ns(self.syn.cooldown_secs));
        self.floods.sweep(|w| {
            w.syns.newest().is_none_or(|t| now - t > window)
                && !cooling(w.last_alert_ns, now, cooldown)
        });
        let (window, cooldown) = (ns(self.scan.window_secs), ns(self.scan.cooldown_secs));
        self.scans
            .sweep(|w| now - w.newest_ns > window && !cooling(w.last_alert_ns, now, cooldown));
    }

    /// The input ended at `ts`: evictions not yet told are.
    pub fn finish(&mut self, ts: i64, alerts: &mut Vec<Alert>) {
        self.tell_evictions(ts, alerts);
    }

    /// A `detector_capacity` alert when keys were evicted since the last one: alerts about the
    /// evicted services and sources may be missed, or repeated within their cooldown.
    fn tell_evictions(&mut self, ts: i64, alerts: &mut Vec<Alert>) {
        let evicted = self.evicted_keys();
        if evicted == self.evictions_told {
            return;
        }
        let new = evicted - self.evictions_told;
        self.evictions_told = evicted;
        self.capacity_told_ns = Some(ts);
        alerts.push(Alert {
            ts: format_ts(ts),
            ts_ns: ts,
            kind: "detector_capacity",
            description: format!(
                "anomaly detectors full: {new} active keys evicted ({evicted} in all; tables of \
                 {} services and {} sources); alerts on them may be missed or repeated, \
                 --anomaly-memory-mb raises the tables",
                self.floods.cap(),
                self.scans.cap()
            ),
            target: None,
            source: None,
            syns: None,
            sources: None,
            ports: None,
            hosts: None,
            window_secs: None,
            evicted_keys: Some(evicted),
        });
    }

    /// Keys evicted while still active, so far (cheap: for a per-packet publish).
    pub fn evicted_keys(&self) -> u64 {
        self.floods.evicted() + self.scans.evicted()
    }

    /// What is held now and what was let go.
    pub fn stats(&self) -> DetectorStats {
        DetectorStats {
            flood_keys: self.floods.len(),
            flood_key_cap: self.floods.cap(),
            scan_keys: self.scans.len(),
            scan_key_cap: self.scans.cap(),
            evicted_keys: self.evicted_keys(),
            held_events: self
                .floods
                .states()
                .map(|w| w.syns.count() + w.sources.held())
                .chain(self.scans.states().map(|w| match &w.windows {
                    Some(windows) => windows.ports.held() + windows.hosts.held(),
                    None => usize::from(w.first.is_some()),
                }))
                .sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DecodeOptions, decode};
    use crate::testing::XorShift;
    use std::collections::{HashMap, HashSet};

    /// One packet of a trace: a TCP SYN (or a UDP datagram) at a time.
    #[derive(Clone, Copy, Debug)]
    struct Probe {
        ts: i64,
        src: [u8; 4],
        dst: [u8; 4],
        dport: u16,
        tcp: bool,
    }

    /// The probe as a raw IPv4 packet (LINKTYPE_RAW).
    fn bytes(p: &Probe) -> Vec<u8> {
        let transport: Vec<u8> = if p.tcp {
            let mut tcp = vec![0u8; 20];
            tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
            tcp[2..4].copy_from_slice(&p.dport.to_be_bytes());
            tcp[12] = 5 << 4;
            tcp[13] = 0x02;
            tcp
        } else {
            let mut udp = vec![0u8; 8];
            udp[0..2].copy_from_slice(&40000u16.to_be_bytes());
            udp[2..4].copy_from_slice(&p.dport.to_be_bytes());
            udp[4..6].copy_from_slice(&8u16.to_be_bytes());
            udp
        };
        let mut ip = vec![
            0x45,
            0,
            0,
            0,
            0,
            0,
            0x40,
            0,
            64,
            if p.tcp { 6 } else { 17 },
            0,
            0,
        ];
        ip[2..4].copy_from_slice(&(20 + transport.len() as u16).to_be_bytes());
        ip.extend_from_slice(&p.src);
        ip.extend_from_slice(&p.dst);
        ip.extend_from_slice(&transport);
        ip
    }

    /// What an alert is compared by.
    type Seen = (
        i64,
        &'static str,
        Option<String>,
        Option<String>,
        [Option<usize>; 4],
    );

    fn seen(a: &Alert) -> Seen {
        (
            a.ts_ns,
            a.kind,
            a.target.clone(),
            a.source.clone(),
            [a.syns, a.sources, a.ports, a.hosts],
        )
    }

    fn run(detector: &mut AnomalyDetector, probes: &[Probe]) -> Vec<Seen> {
        let mut alerts = Vec::new();
        for p in probes {
            let data = bytes(p);
            let decoded = decode(101, &data, &DecodeOptions::default());
            detector.observe(p.ts, &decoded, &mut alerts);
        }
        alerts.iter().map(seen).collect()
    }

    /// NetScope's rules over every event, kept forever, counted exactly; counts are reported
    /// as the detector reports them (at most twice the threshold).
    fn exact(syn: &SynFloodConfig, scan: &PortScanConfig, probes: &[Probe]) -> Vec<Seen> {
        let cap = |n: usize, threshold: usize| Some(n.min(threshold * CAP_PER_THRESHOLD));
        // Per key: every event so far, and the last alert's time.
        type Events<E> = (Vec<E>, Option<i64>);
        let mut floods: HashMap<(IpAddr, u16), Events<(i64, IpAddr)>> = HashMap::new();
        let mut scans: HashMap<IpAddr, Events<(i64, u16, IpAddr)>> = HashMap::new();
        let mut out = Vec::new();
        for p in probes {
            let (src, dst) = (IpAddr::from(p.src), IpAddr::from(p.dst));
            if p.tcp && syn.enabled {
                let (events, last) = floods.entry((dst, p.dport)).or_default();
                events.push((p.ts, src));
                let within: Vec<_> = events
                    .iter()
                    .filter(|(t, _)| p.ts - t <= ns(syn.window_secs))
                    .collect();
                let sources: HashSet<_> = within.iter().map(|(_, s)| s).collect();
                if within.len() >= syn.syn_threshold
                    && sources.len() >= syn.unique_src_threshold
                    && !cooling(*last, p.ts, ns(syn.cooldown_secs))
                {
                    *last = Some(p.ts);
                    out.push((
                        p.ts,
                        "syn_flood",
                        Some(std::net::SocketAddr::new(dst, p.dport).to_string()),
                        None,
                        [
                            cap(within.len(), syn.syn_threshold),
                            cap(sources.len(), syn.unique_src_threshold),
                            None,
                            None,
                        ],
                    ));
                }
            }
            if scan.enabled {
                let (events, last) = scans.entry(src).or_default();
                events.push((p.ts, p.dport, dst));
                let within: Vec<_> = events
                    .iter()
                    .filter(|(t, _, _)| p.ts - t <= ns(scan.window_secs))
                    .collect();
                let ports: HashSet<_> = within.iter().map(|(_, port, _)| port).collect();
                let hosts: HashSet<_> = within.iter().map(|(_, _, host)| host).collect();
                if (ports.len() >= scan.unique_ports_threshold
                    || hosts.len() >= scan.unique_hosts_threshold)
                    && !cooling(*last, p.ts, ns(scan.cooldown_secs))
                {
                    *last = Some(p.ts);
                    out.push((
                        p.ts,
                        "port_scan",
                        None,
                        Some(src.to_string()),
                        [
                            None,
                            None,
                            cap(ports.len(), scan.unique_ports_threshold),
                            cap(hosts.len(), scan.unique_hosts_threshold),
                        ],
                    ));
                }
            }
        }
        out
    }

    #[test]
    fn bounded_detectors_raise_exactly_the_alerts_of_unbounded_exact_counting() {
        let mut rng = XorShift::new(0x5eed_1234_abcd_0001);
        let mut alerts_seen = 0;
        for _ in 0..300 {
            let syn = SynFloodConfig {
                enabled: rng.below(8) != 0,
                window_secs: 0.5 + rng.below(40) as f64 / 10.0,
                syn_threshold: 1 + rng.below(25),
                unique_src_threshold: 1 + rng.below(12),
                cooldown_secs: rng.below(60) as f64 / 10.0,
            };
            let scan = PortScanConfig {
                enabled: rng.below(8) != 0,
                window_secs: 0.5 + rng.below(40) as f64 / 10.0,
                unique_ports_threshold: 1 + rng.below(15),
                unique_hosts_threshold: 1 + rng.below(6),
                cooldown_secs: rng.below(60) as f64 / 10.0,
            };
            let (sources, hosts, ports) = (1 + rng.below(40), 1 + rng.below(5), 1 + rng.below(40));
            let mut ts = 1_700_000_000_000_000_000i64;
            let probes: Vec<Probe> = (0..1 + rng.below(600))
                .map(|_| {
                    // Bursts and pauses, from no gap to several windows, in steps of 50 ms so
                    // that events fall exactly on a window's edge too.
                    ts += match rng.below(10) {
                        0 => 0,
                        1..=7 => rng.below(8) as i64 * 50_000_000,
                        _ => rng.below(160) as i64 * 50_000_000,
                    };
                    Probe {
                        ts,
                        src: [10, 99, 1, rng.below(sources) as u8],
                        dst: [10, 99, 2, rng.below(hosts) as u8],
                        dport: 1 + rng.below(ports) as u16,
                        tcp: rng.below(5) != 0,
                    }
                })
                .collect();
            let mut detector = AnomalyDetector::new(syn.clone(), scan.clone(), 64 << 20);
            let ours = run(&mut detector, &probes);
            let want = exact(&syn, &scan, &probes);
            assert_eq!(ours, want, "{syn:?} {scan:?}");
            assert_eq!(
                detector.stats().evicted_keys,
                0,
                "keys stayed under the cap"
            );
            alerts_seen += want.len();
        }
        assert!(alerts_seen > 300, "the traces raise alerts ({alerts_seen})");
    }

    /// The `n`th address of 10.96.0.0/11, where the floods come from.
    fn flood_source(n: u32) -> [u8; 4] {
        let [_, b, c, d] = (n & 0x1f_ffff).to_be_bytes();
        [10, 96 | b, c, d]
    }

    /// SYNs to one service, one every microsecond, each source sending `run` in a row.
    fn sequential_flood(syns: u32, run: u32) -> Vec<Probe> {
        (0..syns)
            .map(|i| {
                let source = i / run;
                Probe {
                    ts: i64::from(i) * 1_000,
                    src: flood_source(source),
                    dst: [10, 99, 255, 1],
                    dport: 80,
                    tcp: true,
                }
            })
            .collect()
    }

    #[test]
    fn a_flood_whose_sources_send_in_long_runs_still_alerts() {
        // 50 sources need 100,000 SYNs: more than any event list of 65,536 could see at once.
        let probes = sequential_flood(120_000, 2_000);
        let mut detector = AnomalyDetector::new(
            SynFloodConfig::default(),
            PortScanConfig::default(),
            64 << 20,
        );
        let alerts = run(&mut detector, &probes);
        let floods: Vec<_> = alerts.iter().filter(|a| a.1 == "syn_flood").collect();
        assert_eq!(floods.len(), 1, "{alerts:?}");
        assert_eq!(
            floods[0].0, 98_000_000,
            "at the first SYN of the 50th source"
        );
        assert_eq!(floods[0].4[1], Some(50));
    }

    fn spoofed_flood(syns: u32, seed: u64) -> Vec<Probe> {
        let mut rng = XorShift::new(seed);
        (0..syns)
            .map(|i| {
                let source = rng.next() as u32 & 0x1f_ffff;
                Probe {
                    ts: i64::from(i) * 5_000,
                    src: flood_source(source),
                    dst: [10, 99, 255, 1],
                    dport: 80,
                    tcp: true,
                }
            })
            .collect()
    }

    #[test]
    fn a_spoofed_flood_alerts_and_ten_times_the_sources_hold_no_more_memory() {
        let budget = 4 << 20;
        let held = |syns| {
            let mut detector =
                AnomalyDetector::new(SynFloodConfig::default(), PortScanConfig::default(), budget);
            let alerts = run(&mut detector, &spoofed_flood(syns, 99));
            assert!(
                alerts
                    .iter()
                    .any(|a| a.1 == "syn_flood" && a.0 == 199 * 5_000)
            );
            detector.stats()
        };
        let (small, large) = (held(20_000), held(200_000));
        assert_eq!(
            small.scan_keys, small.scan_key_cap,
            "the source table filled up"
        );
        assert_eq!(large.scan_keys, large.scan_key_cap);
        assert!(large.evicted_keys > 9 * small.evicted_keys);
        assert_eq!(large.flood_keys, 1);
        let bound = |s: DetectorStats| {
            let (flood, scan) =
                AnomalyDetector::key_bytes(&SynFloodConfig::default(), &PortScanConfig::default());
            s.flood_keys * flood + s.scan_keys * scan
        };
        assert!(bound(large) <= budget);
        assert!(large.held_events <= small.held_events + 2 * 400 + 2 * 100);
    }

    #[test]
    fn full_windows_stay_within_the_bytes_the_memory_bound_counts() {
        for cap in [1, 20, 50, 64, 65, 100, 400, 1000, 20_000] {
            let mut syns = RecentEvents::new(cap);
            let mut sources = RecentDistinct::new(cap);
            let mut ports = RecentDistinct::new(cap);
            for i in 0..3 * cap as u32 {
                syns.push(i64::from(i), i64::MAX);
                sources.push(i64::from(i), IpAddr::from(flood_source(i)), i64::MAX);
                ports.push(i64::from(i), i as u16, i64::MAX);
            }
            assert_eq!(sources.count(), cap);
            let within = |held: usize, bound: usize| {
                assert!(held <= bound, "cap {cap}: {held} > {bound}");
            };
            within(syns.allocated_bytes(), RecentEvents::max_bytes(cap));
            within(
                sources.allocated_bytes(),
                RecentDistinct::<IpAddr>::max_bytes(cap),
            );
            within(
                ports.allocated_bytes(),
                RecentDistinct::<u16>::max_bytes(cap),
            );
        }
    }

    #[test]
    fn evictions_are_told_in_capacity_alerts_at_most_every_ten_seconds_and_at_the_end() {
        // 25 s of spoofed SYNs, one every 50 µs, into tables of 1 MiB.
        let probes: Vec<Probe> = spoofed_flood(500_000, 5)
            .into_iter()
            .map(|p| Probe { ts: p.ts * 10, ..p })
            .collect();
        let mut detector = AnomalyDetector::new(
            SynFloodConfig::default(),
            PortScanConfig::default(),
            1 << 20,
        );
        let mut alerts = Vec::new();
        for p in &probes {
            let data = bytes(p);
            detector.observe(
                p.ts,
                &decode(101, &data, &DecodeOptions::default()),
                &mut alerts,
            );
        }
        let last_ts = probes.last().unwrap().ts;
        detector.finish(last_ts, &mut alerts);
        let told: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.kind == "detector_capacity")
            .collect();
        let times: Vec<i64> = told.iter().map(|a| a.ts_ns).collect();
        assert!((3..=4).contains(&told.len()), "{times:?}");
        for pair in times[..times.len() - 1].windows(2) {
            assert!(pair[1] - pair[0] >= CAPACITY_NOTICE_NS, "{times:?}");
        }
        assert_eq!(
            *times.last().unwrap(),
            last_ts,
            "the rest is told at the end"
        );
        let counts: Vec<u64> = told.iter().map(|a| a.evicted_keys.unwrap()).collect();
        assert!(counts.is_sorted(), "{counts:?}");
        assert_eq!(*counts.last().unwrap(), detector.evicted_keys());
        assert!(told[0].description.contains("--anomaly-memory-mb"));
        // Nothing new to tell: finishing again adds nothing.
        let before = alerts.len();
        detector.finish(last_ts, &mut alerts);
        assert_eq!(alerts.len(), before);
    }

    #[test]
    fn a_port_scan_among_a_hundred_thousand_spoofed_sources_still_alerts() {
        let mut rng = XorShift::new(7);
        let scanner = [10, 99, 3, 3];
        let probes: Vec<Probe> = (0..101_000u32)
            .map(|i| {
                let scanning = i % 101 == 0;
                let source = rng.next() as u32 & 0x1f_ffff;
                Probe {
                    ts: i64::from(i) * 1_000,
                    src: if scanning {
                        scanner
                    } else {
                        flood_source(source)
                    },
                    dst: [10, 99, 255, 1],
                    dport: if scanning { 1 + (i / 101) as u16 } else { 443 },
                    tcp: true,
                }
            })
            .collect();
        let mut detector = AnomalyDetector::new(
            SynFloodConfig {
                enabled: false,
                ..Default::default()
            },
            PortScanConfig::default(),
            1 << 20,
        );
        let alerts = run(&mut detector, &probes);
        assert!(
            detector.stats().evicted_keys > 90_000,
            "{:?}",
            detector.stats()
        );
        let scans: Vec<_> = alerts
            .iter()
            .filter(|a| a.3.as_deref() == Some("10.99.3.3"))
            .collect();
        assert_eq!(scans.len(), 1, "{alerts:?}");
        assert_eq!(scans[0].4[2], Some(25), "at its 25th port");
    }
}
