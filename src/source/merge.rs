//! Many sources as one stream in timestamp order: a k-way merge holding exactly one packet per
//! source (the one each source currently lends), so memory does not grow with the number of
//! packets. Replay and folder-wide analysis of rotated, out-of-sync captures stand on this.

use super::{Packet, Source, SourceError};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub struct MergedSource<S: Source> {
    sources: Vec<S>,
    /// (time of the source's current packet, source index): ties go to the earlier source.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    current: Option<usize>,
    /// Sources not yet advanced to their first packet.
    unstarted: usize,
}

impl<S: Source> MergedSource<S> {
    pub fn new(sources: Vec<S>) -> Self {
        let unstarted = sources.len();
        MergedSource {
            heap: BinaryHeap::with_capacity(sources.len()),
            sources,
            current: None,
            unstarted,
        }
    }

    /// Index (in the order given to `new`) of the source the current packet came from.
    pub fn current_source(&self) -> Option<usize> {
        self.current
    }

    pub fn sources(&self) -> &[S] {
        &self.sources
    }

    /// Advance one source and queue its packet. A failing source is dropped from the merge.
    fn pull(&mut self, index: usize) -> Result<(), SourceError> {
        let source = &mut self.sources[index];
        if source.advance()?
            && let Some(p) = source.packet()
        {
            self.heap.push(Reverse((p.ts_ns, index)));
        }
        Ok(())
    }
}

/// An error from one member source is returned once; that source is then finished and the
/// next `advance` goes on with the others, so one damaged file never hides the rest.
impl<S: Source> Source for MergedSource<S> {
    fn advance(&mut self) -> Result<bool, SourceError> {
        while self.unstarted > 0 {
            let index = self.sources.len() - self.unstarted;
            self.unstarted -= 1;
            self.pull(index)?;
        }
        if let Some(index) = self.current.take() {
            let source = &mut self.sources[index];
            if source.advance()?
                && let Some(p) = source.packet()
            {
                // Still the earliest (always so with one source): no trip through the heap.
                let next = Reverse((p.ts_ns, index));
                if self.heap.peek().is_none_or(|top| next >= *top) {
                    self.current = Some(index);
                    return Ok(true);
                }
                self.heap.push(next);
            }
        }
        match self.heap.pop() {
            Some(Reverse((_, index))) => {
                self.current = Some(index);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn packet(&self) -> Option<Packet<'_>> {
        self.current.and_then(|i| self.sources[i].packet())
    }

    fn name(&self) -> &str {
        match self.current {
            Some(i) => self.sources[i].name(),
            None => "merge",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::LinkType;

    /// A source over fixed timestamps; `fail_after` makes it fail like a damaged file.
    struct Fixed {
        name: String,
        times: Vec<i64>,
        next: usize,
        fail_after: Option<usize>,
    }

    impl Source for Fixed {
        fn advance(&mut self) -> Result<bool, SourceError> {
            if Some(self.next) == self.fail_after {
                self.fail_after = None;
                self.next = self.times.len() + 1;
                let kind = crate::source::SourceErrorKind::Corrupt {
                    what: "test",
                    detail: "boom".into(),
                };
                return Err(SourceError::new(&self.name, kind, 0, 0));
            }
            self.next += 1;
            Ok(self.next <= self.times.len())
        }
        fn packet(&self) -> Option<Packet<'_>> {
            let ts_ns = *self.times.get(self.next.checked_sub(1)?)?;
            Some(Packet {
                ts_ns,
                link_type: LinkType::ETHERNET,
                data: self.name.as_bytes(),
                orig_len: 0,
                interface: 0,
            })
        }
        fn name(&self) -> &str {
            &self.name
        }
    }

    fn fixed(name: &str, times: &[i64], fail_after: Option<usize>) -> Fixed {
        Fixed {
            name: name.into(),
            times: times.to_vec(),
            next: 0,
            fail_after,
        }
    }

    #[test]
    fn merges_in_time_order_with_ties_to_the_first_source() {
        let mut m = MergedSource::new(vec![
            fixed("a", &[1, 5, 9], None),
            fixed("b", &[2, 5, 6], None),
            fixed("c", &[], None),
        ]);
        let mut out = Vec::new();
        while let Some(p) = m.next_packet().unwrap() {
            out.push((p.ts_ns, String::from_utf8_lossy(p.data).into_owned()));
        }
        let want: Vec<(i64, String)> = [(1, "a"), (2, "b"), (5, "a"), (5, "b"), (6, "b"), (9, "a")]
            .iter()
            .map(|(t, n)| (*t, n.to_string()))
            .collect();
        assert_eq!(out, want);
    }

    #[test]
    fn a_failing_source_reports_once_and_the_rest_go_on() {
        let mut m = MergedSource::new(vec![
            fixed("a", &[1, 2, 3], Some(1)),
            fixed("b", &[4], None),
        ]);
        assert_eq!(m.next_packet().unwrap().unwrap().ts_ns, 1);
        let err = m.advance().unwrap_err();
        assert_eq!(err.name, "a");
        assert!(m.advance().unwrap());
        assert_eq!(m.packet().unwrap().ts_ns, 4);
        assert!(!m.advance().unwrap());
    }
}
