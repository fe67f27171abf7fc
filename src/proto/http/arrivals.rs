//! When each byte offered to a direction arrived. Bytes a call leaves unconsumed are offered
//! again in front of the next packet's, so the first byte of a message may belong to a packet
//! several calls old: a message's time is that packet's, as tshark stamps it.

/// Arrival times of the bytes offered to one direction, as offsets into the current offer.
#[derive(Debug, Default)]
pub(super) struct Arrivals {
    /// (offset of the first byte that arrived at this time, time), ascending.
    times: Vec<(usize, i64)>,
    /// Bytes left unconsumed by the last call: the front of the next offer.
    held: usize,
}

impl Arrivals {
    /// A call offers `len` bytes, the ones past those held having arrived at `ts_ns`.
    pub fn offer(&mut self, len: usize, ts_ns: i64) {
        if self.held == 0 {
            self.times.clear();
        }
        if len > self.held {
            self.times.push((self.held, ts_ns));
        }
    }

    /// Time of the packet that carried byte `at` of the current offer.
    pub fn time_at(&self, at: usize) -> i64 {
        self.times
            .iter()
            .rev()
            .find(|(start, _)| *start <= at)
            .or(self.times.first())
            .map_or(0, |(_, ts)| *ts)
    }

    /// The call used `used` of its `len` bytes; the rest will be offered again.
    pub fn consumed(&mut self, used: usize, len: usize) {
        self.held = len.saturating_sub(used);
        if self.held == 0 {
            self.times.clear();
            return;
        }
        // Keep the arrival that covers `used` and those after it, rebased to the new front.
        let first = self
            .times
            .iter()
            .rposition(|(start, _)| *start <= used)
            .unwrap_or(0);
        self.times.drain(..first);
        for (start, _) in &mut self.times {
            *start = start.saturating_sub(used);
        }
    }

    /// Held bytes were dropped (a gap).
    pub fn reset(&mut self) {
        self.held = 0;
        self.times.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_bytes_keep_the_time_they_arrived() {
        let mut a = Arrivals::default();
        a.offer(10, 100);
        a.consumed(6, 10);
        // Four held bytes from time 100, then 5 new ones at 200.
        a.offer(9, 200);
        assert_eq!(
            (a.time_at(0), a.time_at(3), a.time_at(4), a.time_at(8)),
            (100, 100, 200, 200)
        );
        a.consumed(5, 9);
        a.offer(7, 300);
        assert_eq!((a.time_at(0), a.time_at(3), a.time_at(4)), (200, 200, 300));
        a.consumed(7, 7);
        a.offer(3, 400);
        assert_eq!(a.time_at(0), 400);
        a.reset();
        a.offer(2, 500);
        assert_eq!(a.time_at(1), 500);
    }
}
