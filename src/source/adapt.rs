//! Source adapters that change which packets a source lends or when they claim to be: time
//! bounds (replay's `--time-from`/`--time-to`), a shift that starts every file at zero
//! (replay's `--wait-disable`), a stop on a flag (a signal ends an offline run as it ends a
//! live one), and pacing in packet time (tap's `--pace`: a capture behaves as if live). They
//! wrap any source and copy nothing.

use super::{Packet, Source, SourceError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Ends the source once `flag` is set (checked before every packet).
pub struct StopOnFlag<S: Source> {
    inner: S,
    flag: Arc<AtomicBool>,
}

impl<S: Source> StopOnFlag<S> {
    pub fn new(inner: S, flag: Arc<AtomicBool>) -> Self {
        StopOnFlag { inner, flag }
    }
}

impl<S: Source> Source for StopOnFlag<S> {
    fn advance(&mut self) -> Result<bool, SourceError> {
        if self.flag.load(Ordering::Relaxed) {
            return Ok(false);
        }
        self.inner.advance()
    }

    fn packet(&self) -> Option<Packet<'_>> {
        self.inner.packet()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

/// Only packets with `from <= ts <= to`; the source ends at the first packet after `to` (a
/// file that straddles a bound is cut at the packet, not dropped whole).
pub struct TimeBounded<S: Source> {
    inner: S,
    from_ns: Option<i64>,
    to_ns: Option<i64>,
    done: bool,
}

impl<S: Source> TimeBounded<S> {
    pub fn new(inner: S, from_ns: Option<i64>, to_ns: Option<i64>) -> Self {
        TimeBounded {
            inner,
            from_ns,
            to_ns,
            done: false,
        }
    }
}

impl<S: Source> Source for TimeBounded<S> {
    fn advance(&mut self) -> Result<bool, SourceError> {
        while !self.done && self.inner.advance()? {
            let Some(ts) = self.inner.packet().map(|p| p.ts_ns) else {
                continue;
            };
            if self.to_ns.is_some_and(|to| ts > to) {
                self.done = true;
                break;
            }
            if self.from_ns.is_none_or(|from| ts >= from) {
                return Ok(true);
            }
        }
        self.done = true;
        Ok(false)
    }

    fn packet(&self) -> Option<Packet<'_>> {
        if self.done { None } else { self.inner.packet() }
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

/// Moves every time so that the source's first packet is at `start_ns`.
pub struct StartAt<S: Source> {
    inner: S,
    start_ns: i64,
    shift_ns: Option<i64>,
}

impl<S: Source> StartAt<S> {
    pub fn new(inner: S, start_ns: i64) -> Self {
        StartAt {
            inner,
            start_ns,
            shift_ns: None,
        }
    }
}

impl<S: Source> Source for StartAt<S> {
    fn advance(&mut self) -> Result<bool, SourceError> {
        let more = self.inner.advance()?;
        if more && self.shift_ns.is_none() {
            self.shift_ns = self.inner.packet().map(|p| self.start_ns - p.ts_ns);
        }
        Ok(more)
    }

    fn packet(&self) -> Option<Packet<'_>> {
        let shift = self.shift_ns.unwrap_or(0);
        self.inner.packet().map(|p| Packet {
            ts_ns: p.ts_ns.saturating_add(shift),
            ..p
        })
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

/// Lends each packet no earlier than its offset from the first one, on the monotonic clock:
/// absolute deadlines, so the pace does not drift. A sleep is cut into short slices so that
/// `stop` (a signal) ends a long gap at once.
pub struct Paced<S: Source> {
    inner: S,
    stop: Arc<AtomicBool>,
    origin: Option<(Instant, i64)>,
}

impl<S: Source> Paced<S> {
    pub fn new(inner: S, stop: Arc<AtomicBool>) -> Self {
        Paced {
            inner,
            stop,
            origin: None,
        }
    }
}

/// The longest a pacing sleep lasts before looking at the stop flag again.
const PACE_SLICE: Duration = Duration::from_millis(50);

impl<S: Source> Source for Paced<S> {
    fn advance(&mut self) -> Result<bool, SourceError> {
        if !self.inner.advance()? {
            return Ok(false);
        }
        let Some(ts) = self.inner.packet().map(|p| p.ts_ns) else {
            return Ok(true);
        };
        let (start, first_ns) = *self.origin.get_or_insert((Instant::now(), ts));
        let offset = Duration::from_nanos(ts.saturating_sub(first_ns).max(0) as u64);
        let due = start + offset;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            let now = Instant::now();
            if now >= due {
                return Ok(true);
            }
            std::thread::sleep((due - now).min(PACE_SLICE));
        }
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
    use crate::source::LinkType;

    struct Times(Vec<i64>, usize);

    impl Source for Times {
        fn advance(&mut self) -> Result<bool, SourceError> {
            self.1 += 1;
            Ok(self.1 <= self.0.len())
        }
        fn packet(&self) -> Option<Packet<'_>> {
            let ts_ns = *self.0.get(self.1.checked_sub(1)?)?;
            Some(Packet {
                ts_ns,
                link_type: LinkType::ETHERNET,
                data: &[],
                orig_len: 0,
                interface: 0,
            })
        }
        fn name(&self) -> &str {
            "times"
        }
    }

    fn collect(mut s: impl Source) -> Vec<i64> {
        let mut out = Vec::new();
        while let Some(p) = s.next_packet().unwrap() {
            out.push(p.ts_ns);
        }
        out
    }

    #[test]
    fn bounds_cut_at_the_packet() {
        let s = TimeBounded::new(Times(vec![1, 2, 3, 4, 5, 6], 0), Some(2), Some(4));
        assert_eq!(collect(s), [2, 3, 4]);
        let s = TimeBounded::new(Times(vec![1, 2, 3], 0), None, Some(0));
        assert!(collect(s).is_empty());
    }

    #[test]
    fn start_at_shifts_every_packet() {
        let s = StartAt::new(Times(vec![100, 150, 400], 0), 0);
        assert_eq!(collect(s), [0, 50, 300]);
    }

    #[test]
    fn a_set_flag_ends_the_source_before_the_next_packet() {
        let flag = Arc::new(AtomicBool::new(false));
        let mut s = StopOnFlag::new(Times(vec![1, 2, 3], 0), Arc::clone(&flag));
        assert_eq!(s.next_packet().unwrap().map(|p| p.ts_ns), Some(1));
        flag.store(true, Ordering::Relaxed);
        assert!(s.next_packet().unwrap().is_none());
    }

    #[test]
    fn paced_lends_packets_at_their_offsets_and_a_stop_ends_a_gap() {
        let stop = Arc::new(AtomicBool::new(false));
        let ms = 1_000_000;
        let start = Instant::now();
        let times = collect(Paced::new(
            Times(vec![5 * ms, 35 * ms, 65 * ms], 0),
            Arc::clone(&stop),
        ));
        assert_eq!(times, [5 * ms, 35 * ms, 65 * ms]);
        assert!(start.elapsed() >= Duration::from_millis(60));
        stop.store(true, Ordering::Relaxed);
        let hour = 3_600_000 * ms;
        let start = Instant::now();
        let mut paced = Paced::new(Times(vec![0, hour], 0), stop);
        assert!(paced.next_packet().unwrap().is_none());
        assert!(start.elapsed() < Duration::from_secs(60));
    }
}
