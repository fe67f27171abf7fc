//! BPF on any source, offline included: libpcap compiles the expression once per link type
//! (a pcapng file can mix several) and runs it on each packet before anything decodes it.

use super::{LinkType, Packet, Source, SourceError, SourceErrorKind};

/// A compiled filter expression, per link type.
pub struct BpfFilter {
    expression: String,
    programs: Vec<(LinkType, pcap::BpfProgram)>,
}

/// libpcap's `pcap_open_dead` takes a DLT_ value; the few LINKTYPE_ values that differ map here.
fn dlt_of(link_type: LinkType) -> i32 {
    match link_type.0 {
        101 => 12,
        other => other as i32,
    }
}

impl BpfFilter {
    /// Check the expression now (against Ethernet), so a typo is a usage error before any work.
    pub fn new(expression: &str) -> Result<Self, String> {
        let mut filter = BpfFilter {
            expression: expression.to_string(),
            programs: Vec::new(),
        };
        filter.program_for(LinkType::ETHERNET)?;
        Ok(filter)
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    fn program_for(&mut self, link_type: LinkType) -> Result<&pcap::BpfProgram, String> {
        if let Some(i) = self.programs.iter().position(|(l, _)| *l == link_type) {
            return Ok(&self.programs[i].1);
        }
        let dead = pcap::Capture::dead(pcap::Linktype(dlt_of(link_type)))
            .map_err(|e| format!("cannot compile a filter for link type {link_type}: {e}"))?;
        let program = dead
            .compile(&self.expression, true)
            .map_err(|e| format!("bad filter {:?} for {link_type}: {e}", self.expression))?;
        self.programs.push((link_type, program));
        Ok(&self.programs.last().expect("just pushed").1)
    }

    /// Whether the packet passes. A link type the expression cannot be compiled for is an error.
    pub fn matches(&mut self, packet: &Packet<'_>) -> Result<bool, String> {
        Ok(self.program_for(packet.link_type)?.filter(packet.data))
    }
}

/// A source that only lends packets the filter accepts.
pub struct FilteredSource<S: Source> {
    inner: S,
    filter: BpfFilter,
    rejected: u64,
}

impl<S: Source> FilteredSource<S> {
    pub fn new(inner: S, filter: BpfFilter) -> Self {
        FilteredSource {
            inner,
            filter,
            rejected: 0,
        }
    }

    /// Packets the filter dropped so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Source> Source for FilteredSource<S> {
    fn advance(&mut self) -> Result<bool, SourceError> {
        while self.inner.advance()? {
            let Some(packet) = self.inner.packet() else {
                continue;
            };
            match self.filter.matches(&packet) {
                Ok(true) => return Ok(true),
                Ok(false) => self.rejected += 1,
                Err(detail) => {
                    let kind = SourceErrorKind::Corrupt {
                        what: "filter",
                        detail,
                    };
                    return Err(SourceError::new(self.inner.name(), kind, 0, 0));
                }
            }
        }
        Ok(false)
    }

    fn packet(&self) -> Option<Packet<'_>> {
        self.inner.packet()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ethernet_ipv4_udp(dst_port: u16) -> Vec<u8> {
        let mut p = vec![0u8; 12];
        p.extend_from_slice(&[0x08, 0x00]);
        p.extend_from_slice(&[
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 99, 0, 1, 10, 99, 0, 2,
        ]);
        p.extend_from_slice(&1234u16.to_be_bytes());
        p.extend_from_slice(&dst_port.to_be_bytes());
        p.extend_from_slice(&[0, 8, 0, 0]);
        p
    }

    #[test]
    fn filters_offline_packets() {
        let mut f = BpfFilter::new("udp dst port 53").unwrap();
        let dns = ethernet_ipv4_udp(53);
        let other = ethernet_ipv4_udp(80);
        let packet = |data: &'static [u8]| Packet {
            ts_ns: 0,
            link_type: LinkType::ETHERNET,
            data,
            orig_len: data.len() as u32,
            interface: 0,
        };
        assert!(f.matches(&packet(dns.leak())).unwrap());
        assert!(!f.matches(&packet(other.leak())).unwrap());
    }

    #[test]
    fn a_bad_expression_is_refused_up_front() {
        assert!(BpfFilter::new("tcp port nonsense").is_err());
    }
}
