//! SYN-flood and port-scan detection over sliding windows of packet time (NetScope's rules and
//! defaults). Memory is bounded: each window holds at most `MAX_EVENTS` entries, and keys idle
//! for a window are dropped on a periodic sweep.

use crate::decode::{Decoded, TcpFlags, Transport};
use crate::time::format_ts;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Events kept per key and window: enough to exceed any sensible threshold.
const MAX_EVENTS: usize = 65_536;
/// How often (packet time) idle keys are swept.
const SWEEP_NS: i64 = 30_000_000_000;

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
    pub window_secs: f64,
}

/// A sliding window of (time, item) with a count per distinct item.
#[derive(Debug)]
struct Window<T: std::hash::Hash + Eq + Copy> {
    events: VecDeque<(i64, T)>,
    distinct: HashMap<T, u32>,
    last_alert_ns: Option<i64>,
}

impl<T: std::hash::Hash + Eq + Copy> Default for Window<T> {
    fn default() -> Self {
        Window {
            events: VecDeque::new(),
            distinct: HashMap::new(),
            last_alert_ns: None,
        }
    }
}

impl<T: std::hash::Hash + Eq + Copy> Window<T> {
    fn push(&mut self, ts: i64, item: T, window_ns: i64) {
        while let Some(&(t, old)) = self.events.front() {
            if ts - t <= window_ns && self.events.len() < MAX_EVENTS {
                break;
            }
            self.events.pop_front();
            if let Some(n) = self.distinct.get_mut(&old) {
                *n -= 1;
                if *n == 0 {
                    self.distinct.remove(&old);
                }
            }
        }
        self.events.push_back((ts, item));
        *self.distinct.entry(item).or_default() += 1;
    }

    fn cooling(&self, ts: i64, cooldown_ns: i64) -> bool {
        self.last_alert_ns.is_some_and(|t| ts - t < cooldown_ns)
    }

    fn idle(&self, now: i64, window_ns: i64) -> bool {
        self.events.back().is_none_or(|&(t, _)| now - t > window_ns)
    }
}

fn ns(secs: f64) -> i64 {
    (secs * 1e9) as i64
}

pub struct AnomalyDetector {
    syn: SynFloodConfig,
    scan: PortScanConfig,
    floods: HashMap<(IpAddr, u16), Window<IpAddr>>,
    /// Per source: destination ports and hosts seen.
    scan_ports: HashMap<IpAddr, Window<u16>>,
    scan_hosts: HashMap<IpAddr, Window<IpAddr>>,
    next_sweep_ns: i64,
}

impl AnomalyDetector {
    pub fn new(syn: SynFloodConfig, scan: PortScanConfig) -> Self {
        AnomalyDetector {
            syn,
            scan,
            floods: HashMap::new(),
            scan_ports: HashMap::new(),
            scan_hosts: HashMap::new(),
            next_sweep_ns: i64::MIN,
        }
    }

    /// Look at one packet; returns the alerts it raises.
    pub fn observe(&mut self, ts: i64, decoded: &Decoded<'_>, alerts: &mut Vec<Alert>) {
        if ts >= self.next_sweep_ns {
            self.sweep(ts);
            self.next_sweep_ns = ts.saturating_add(SWEEP_NS);
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
        let w = self.floods.entry((dst, port)).or_default();
        w.push(ts, src, ns(c.window_secs));
        let (syns, sources) = (w.events.len(), w.distinct.len());
        if syns >= c.syn_threshold
            && sources >= c.unique_src_threshold
            && !w.cooling(ts, ns(c.cooldown_secs))
        {
            w.last_alert_ns = Some(ts);
            let target = format!("{}", std::net::SocketAddr::new(dst, port));
            alerts.push(Alert {
                ts: format_ts(ts),
                ts_ns: ts,
                kind: "syn_flood",
                description: format!(
                    "SYN flood suspected: {syns} SYNs from {sources} sources to {target} within {}s",
                    c.window_secs
                ),
                target: Some(target),
                source: None,
                syns: Some(syns),
                sources: Some(sources),
                ports: None,
                hosts: None,
                window_secs: c.window_secs,
            });
        }
    }

    fn port_scan(&mut self, ts: i64, src: IpAddr, dst: IpAddr, port: u16, alerts: &mut Vec<Alert>) {
        let c = &self.scan;
        let window = ns(c.window_secs);
        let ports = self.scan_ports.entry(src).or_default();
        ports.push(ts, port, window);
        let hosts = self.scan_hosts.entry(src).or_default();
        hosts.push(ts, dst, window);
        let (n_ports, n_hosts) = (ports.distinct.len(), hosts.distinct.len());
        let cooling = ports.cooling(ts, ns(c.cooldown_secs));
        if (n_ports >= c.unique_ports_threshold || n_hosts >= c.unique_hosts_threshold) && !cooling
        {
            ports.last_alert_ns = Some(ts);
            alerts.push(Alert {
                ts: format_ts(ts),
                ts_ns: ts,
                kind: "port_scan",
                description: format!(
                    "port scan suspected: {src} reached {n_ports} ports on {n_hosts} hosts within {}s",
                    c.window_secs
                ),
                target: None,
                source: Some(src.to_string()),
                syns: None,
                sources: None,
                ports: Some(n_ports),
                hosts: Some(n_hosts),
                window_secs: c.window_secs,
            });
        }
    }

    /// Drop keys with no event in their window and no cooldown running.
    fn sweep(&mut self, now: i64) {
        let (sw, sc) = (ns(self.syn.window_secs), ns(self.syn.cooldown_secs));
        self.floods
            .retain(|_, w| !w.idle(now, sw) || w.cooling(now, sc));
        let (pw, pc) = (ns(self.scan.window_secs), ns(self.scan.cooldown_secs));
        self.scan_ports
            .retain(|_, w| !w.idle(now, pw) || w.cooling(now, pc));
        self.scan_hosts.retain(|_, w| !w.idle(now, pw));
    }

    /// Keys currently tracked (for memory checks).
    pub fn tracked(&self) -> usize {
        self.floods.len() + self.scan_ports.len() + self.scan_hosts.len()
    }
}
