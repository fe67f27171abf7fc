//! A source read on its own thread and handed over in batches: for inputs that cannot be read
//! side by side in one thread, such as several members of one compressed tarball (each member
//! needs its own pass over the archive), yet must be merged by time. Packets are copied once
//! into batch buffers that travel back to the reader for reuse, over bounded channels, so
//! memory stays fixed however large the input.

use super::{LinkType, Packet, Source, SourceError};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// Packets per batch, and batches in flight per source.
const BATCH_PACKETS: usize = 256;
const BATCHES: usize = 4;

/// How a reader that is a whole channel ahead waits for room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Block until the consumer takes a batch; the consumer wakes the reader.
    Block,
    /// Sleep in short slices and retry, so that taking a batch never costs the consumer a
    /// wake-up (a futex call and a cross-CPU interrupt: 10–20 µs in a virtual machine), for
    /// a consumer that keeps deadlines. The reader stays ahead by the channel's depth.
    Poll,
}

/// A polling reader's sleep between attempts: far shorter than the channel's depth lasts.
const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_micros(200);

#[derive(Clone, Copy, Debug)]
struct Entry {
    ts_ns: i64,
    link_type: LinkType,
    orig_len: u32,
    interface: u32,
    start: usize,
    end: usize,
}

#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    entries: Vec<Entry>,
    /// Set on the last batch: how the reader ended.
    end: Option<Result<(), SourceError>>,
}

/// Hands packets from the reading thread to a [`ThreadedSource`].
pub struct PacketSender {
    batch: Batch,
    tx: SyncSender<Batch>,
    recycled: Receiver<Batch>,
    backpressure: Backpressure,
}

impl PacketSender {
    /// Copy one packet into the current batch; false once the consumer is gone (stop reading).
    pub fn send(&mut self, packet: &Packet<'_>) -> bool {
        let start = self.batch.data.len();
        self.batch.data.extend_from_slice(packet.data);
        self.batch.entries.push(Entry {
            ts_ns: packet.ts_ns,
            link_type: packet.link_type,
            orig_len: packet.orig_len,
            interface: packet.interface,
            start,
            end: self.batch.data.len(),
        });
        if self.batch.entries.len() < BATCH_PACKETS {
            return true;
        }
        let mut next = self.recycled.try_recv().unwrap_or_default();
        next.data.clear();
        next.entries.clear();
        next.end = None;
        let full = std::mem::replace(&mut self.batch, next);
        match self.backpressure {
            Backpressure::Block => self.tx.send(full).is_ok(),
            Backpressure::Poll => {
                let mut batch = full;
                loop {
                    match self.tx.try_send(batch) {
                        Ok(()) => return true,
                        Err(TrySendError::Full(back)) => {
                            batch = back;
                            std::thread::sleep(POLL_INTERVAL);
                        }
                        Err(TrySendError::Disconnected(_)) => return false,
                    }
                }
            }
        }
    }

    fn finish(mut self, end: Result<(), SourceError>) {
        self.batch.end = Some(end);
        let _ = self.tx.send(self.batch);
    }
}

/// The consuming side: an ordinary [`Source`].
pub struct ThreadedSource {
    name: String,
    rx: Receiver<Batch>,
    recycle: SyncSender<Batch>,
    batch: Batch,
    /// Index of the current packet in `batch.entries` plus one (0: none yet).
    next: usize,
    finished: bool,
}

impl ThreadedSource {
    /// Start `read` on a new thread; it sends every packet through the [`PacketSender`] and
    /// returns how its input ended.
    pub fn spawn<F>(name: String, read: F) -> Self
    where
        F: FnOnce(&mut PacketSender) -> Result<(), SourceError> + Send + 'static,
    {
        Self::spawn_with(name, Backpressure::Block, read)
    }

    /// [`Self::spawn`], with the reader waiting for room as `backpressure` says.
    pub fn spawn_with<F>(name: String, backpressure: Backpressure, read: F) -> Self
    where
        F: FnOnce(&mut PacketSender) -> Result<(), SourceError> + Send + 'static,
    {
        let (tx, rx) = sync_channel(BATCHES);
        let (recycle, recycled) = sync_channel(BATCHES + 1);
        std::thread::Builder::new()
            .name(format!("read {name}"))
            .spawn(move || {
                let mut sender = PacketSender {
                    batch: Batch::default(),
                    tx,
                    recycled,
                    backpressure,
                };
                let end = read(&mut sender);
                sender.finish(end);
            })
            .expect("spawn a reader thread");
        ThreadedSource {
            name,
            rx,
            recycle,
            batch: Batch::default(),
            next: 0,
            finished: false,
        }
    }
}

impl Source for ThreadedSource {
    fn advance(&mut self) -> Result<bool, SourceError> {
        if self.finished {
            return Ok(false);
        }
        loop {
            if self.next < self.batch.entries.len() {
                self.next += 1;
                return Ok(true);
            }
            if let Some(end) = self.batch.end.take() {
                self.finished = true;
                self.next = 0;
                self.batch.entries.clear();
                return end.map(|()| false);
            }
            let Ok(batch) = self.rx.recv() else {
                self.finished = true;
                return Ok(false);
            };
            let used = std::mem::replace(&mut self.batch, batch);
            let _ = self.recycle.try_send(used);
            self.next = 0;
        }
    }

    fn packet(&self) -> Option<Packet<'_>> {
        let e = self.batch.entries.get(self.next.checked_sub(1)?)?;
        Some(Packet {
            ts_ns: e.ts_ns,
            link_type: e.link_type,
            data: &self.batch.data[e.start..e.end],
            orig_len: e.orig_len,
            interface: e.interface,
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceErrorKind;

    fn producing(count: usize, fail: bool) -> ThreadedSource {
        producing_with(count, fail, Backpressure::Block)
    }

    fn producing_with(count: usize, fail: bool, backpressure: Backpressure) -> ThreadedSource {
        ThreadedSource::spawn_with("t".into(), backpressure, move |tx| {
            for i in 0..count {
                let data = vec![i as u8; i % 50];
                let p = Packet {
                    ts_ns: i as i64,
                    link_type: LinkType::ETHERNET,
                    data: &data,
                    orig_len: 1000,
                    interface: 0,
                };
                if !tx.send(&p) {
                    return Ok(());
                }
            }
            if fail {
                let kind = SourceErrorKind::Corrupt {
                    what: "test",
                    detail: "cut".into(),
                };
                return Err(SourceError::new("t", kind, 7, count as u64 + 1));
            }
            Ok(())
        })
    }

    #[test]
    fn every_packet_arrives_in_order_across_batches() {
        let mut s = producing(1000, false);
        let mut n = 0;
        while let Some(p) = s.next_packet().unwrap() {
            assert_eq!(p.ts_ns, n as i64);
            assert_eq!(p.data, vec![n as u8; n % 50].as_slice());
            n += 1;
        }
        assert_eq!(n, 1000);
        assert!(!s.advance().unwrap());
    }

    #[test]
    fn the_readers_error_comes_after_its_packets() {
        let mut s = producing(300, true);
        let mut n = 0;
        let err = loop {
            match s.next_packet() {
                Ok(Some(_)) => n += 1,
                Ok(None) => panic!("the error was lost"),
                Err(e) => break e,
            }
        };
        assert_eq!((n, err.offset, err.record), (300, 7, 301));
        assert!(!s.advance().unwrap(), "finished after the error");
    }

    #[test]
    fn dropping_the_consumer_stops_the_reader() {
        let s = producing(usize::MAX, false);
        drop(s);
        let polled = producing_with(usize::MAX, false, Backpressure::Poll);
        drop(polled);
    }

    #[test]
    fn a_polling_reader_delivers_everything_to_a_slow_consumer() {
        let mut s = producing_with(BATCH_PACKETS * (BATCHES + 3) + 5, false, Backpressure::Poll);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut n = 0;
        while let Some(p) = s.next_packet().unwrap() {
            assert_eq!(p.ts_ns, n as i64);
            n += 1;
        }
        assert_eq!(n, BATCH_PACKETS * (BATCHES + 3) + 5);
    }
}
