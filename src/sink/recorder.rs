//! Recording packets into capture files off the capture thread: `tap`'s pcap output. The
//! capture thread copies each packet into a bounded queue and never waits; one writer thread
//! owns the files. A full queue drops the packet and counts it, so a slow disk costs packets in
//! the recording, never packets in the capture.
//!
//! Files are per session (closed after the session ends plus a grace period, or after being
//! idle) or one file for everything. Time here is packet time, as everywhere offline; live,
//! packet time is the wall clock.

use super::capture::{PcapWriter, PcapngWriter, Precision};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFormat {
    Pcap,
    Pcapng,
}

impl RecordFormat {
    pub fn extension(self) -> &'static str {
        match self {
            RecordFormat::Pcap => "pcap",
            RecordFormat::Pcapng => "pcapng",
        }
    }
}

#[derive(Clone, Debug)]
pub struct RecorderConfig {
    pub dir: PathBuf,
    pub format: RecordFormat,
    /// One file per session; otherwise every packet goes into `shared_name`.
    pub per_session: bool,
    /// File name (without extension) of the one shared file.
    pub shared_name: String,
    /// Packets waiting for the writer before new ones are dropped.
    pub queue_packets: usize,
    /// Close a session's file after this much packet time without a packet.
    pub idle_close_ns: Option<i64>,
    /// Close a session's file `fin_close_grace_ns` after the session ended.
    pub close_on_fin: bool,
    pub fin_close_grace_ns: i64,
    /// Flush and fsync whenever the queue runs empty (slower; a crash loses less).
    pub sync: bool,
}

/// What became of the packets so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecorderStats {
    pub packets_written: u64,
    pub bytes_written: u64,
    pub dropped_queue_full: u64,
    /// Packets lost to a failed write (the file is closed at the first failure).
    pub dropped_write_error: u64,
    /// Packets whose link type a pcap file (one link type) could not take.
    pub dropped_link_type: u64,
    pub files_opened: u64,
    pub files_closed: u64,
}

#[derive(Default)]
struct Counters {
    packets_written: AtomicU64,
    bytes_written: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_write_error: AtomicU64,
    dropped_link_type: AtomicU64,
    files_opened: AtomicU64,
    files_closed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RecorderStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RecorderStats {
            packets_written: get(&self.packets_written),
            bytes_written: get(&self.bytes_written),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_write_error: get(&self.dropped_write_error),
            dropped_link_type: get(&self.dropped_link_type),
            files_opened: get(&self.files_opened),
            files_closed: get(&self.files_closed),
        }
    }
}

/// A handle on a recorder's counters.
#[derive(Clone)]
pub struct RecorderCounters(Arc<Counters>);

impl RecorderCounters {
    pub fn snapshot(&self) -> RecorderStats {
        self.0.snapshot()
    }
}

enum Message {
    Packet {
        session: u64,
        /// The session's file name without extension (shared by the session's packets).
        name: Arc<str>,
        ts_ns: i64,
        link_type: u32,
        orig_len: u32,
        data: Vec<u8>,
    },
    SessionEnded {
        session: u64,
        ts_ns: i64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("cannot create {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("{} is not writable: {source}", path.display())]
    NotWritable { path: PathBuf, source: io::Error },
    #[error("cannot start the capture-file writer thread: {0}")]
    Spawn(io::Error),
}

/// The capture thread's handle on the writer.
pub struct PacketRecorder {
    tx: Option<SyncSender<Message>>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl PacketRecorder {
    /// Create the directory, prove it writable, start the writer.
    pub fn start(config: RecorderConfig) -> Result<PacketRecorder, RecorderError> {
        std::fs::create_dir_all(&config.dir).map_err(|source| RecorderError::CreateDir {
            path: config.dir.clone(),
            source,
        })?;
        let probe = config
            .dir
            .join(format!(".gophercap-write-test-{}", std::process::id()));
        File::create(&probe)
            .and_then(|_| std::fs::remove_file(&probe))
            .map_err(|source| RecorderError::NotWritable {
                path: config.dir.clone(),
                source,
            })?;
        let (tx, rx) = sync_channel(config.queue_packets.max(1));
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            config,
            files: HashMap::new(),
            counters: Arc::clone(&counters),
            now_ns: i64::MIN,
            next_sweep_ns: i64::MIN,
        };
        let thread = std::thread::Builder::new()
            .name("pcap-recorder".into())
            .spawn(move || writer.run(rx))
            .map_err(RecorderError::Spawn)?;
        Ok(PacketRecorder {
            tx: Some(tx),
            counters,
            thread: Some(thread),
        })
    }

    /// Queue one packet of `session` for the file `name`; false when the queue was full (the
    /// packet is dropped and counted).
    pub fn record(
        &self,
        session: u64,
        name: &Arc<str>,
        ts_ns: i64,
        link_type: u32,
        data: &[u8],
        orig_len: u32,
    ) -> bool {
        let Some(tx) = &self.tx else { return false };
        let message = Message::Packet {
            session,
            name: Arc::clone(name),
            ts_ns,
            link_type,
            orig_len,
            data: data.to_vec(),
        };
        match tx.try_send(message) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The session ended (FIN, RST, idle): its file closes after the grace period. Best effort:
    /// with a full queue, the idle timeout closes the file instead.
    pub fn session_ended(&self, session: u64, ts_ns: i64) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(Message::SessionEnded { session, ts_ns });
        }
    }

    pub fn stats(&self) -> RecorderStats {
        self.counters.snapshot()
    }

    /// The counters, readable from other threads while the recorder runs.
    pub fn counters(&self) -> RecorderCounters {
        RecorderCounters(Arc::clone(&self.counters))
    }

    /// Write what is queued, close every file, stop the writer.
    pub fn finish(mut self) -> RecorderStats {
        self.stop();
        self.counters.snapshot()
    }

    fn stop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PacketRecorder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An open capture file of either format.
enum Output {
    Pcap {
        writer: PcapWriter<BufWriter<File>>,
        link_type: u32,
    },
    Pcapng {
        writer: PcapngWriter<BufWriter<File>>,
        /// Interface index per link type.
        interfaces: Vec<(u32, u32)>,
    },
}

struct OpenFile {
    path: PathBuf,
    output: Output,
    last_ns: i64,
    /// Packet time at which it closes (the session ended).
    close_at: Option<i64>,
}

const SNAPLEN: u32 = 262_144;

impl OpenFile {
    fn create(path: PathBuf, format: RecordFormat, link_type: u32) -> io::Result<OpenFile> {
        let out = BufWriter::with_capacity(1 << 16, File::create(&path)?);
        let output = match format {
            RecordFormat::Pcap => Output::Pcap {
                writer: PcapWriter::new(out, link_type, SNAPLEN, Precision::Nano, false)?,
                link_type,
            },
            RecordFormat::Pcapng => Output::Pcapng {
                writer: PcapngWriter::new(out)?,
                interfaces: Vec::new(),
            },
        };
        Ok(OpenFile {
            path,
            output,
            last_ns: i64::MIN,
            close_at: None,
        })
    }

    /// Ok(false): a pcap file cannot take this link type.
    fn write(
        &mut self,
        ts_ns: i64,
        link_type: u32,
        data: &[u8],
        orig_len: u32,
    ) -> io::Result<bool> {
        self.last_ns = self.last_ns.max(ts_ns);
        match &mut self.output {
            Output::Pcap {
                writer,
                link_type: file_link,
            } => {
                if *file_link != link_type {
                    return Ok(false);
                }
                writer.write(ts_ns, data, orig_len)?;
            }
            Output::Pcapng { writer, interfaces } => {
                let interface = match interfaces.iter().find(|(l, _)| *l == link_type) {
                    Some((_, i)) => *i,
                    None => {
                        let i = writer.add_interface(link_type as u16, SNAPLEN, 9)?;
                        interfaces.push((link_type, i));
                        i
                    }
                };
                writer.write(interface, ts_ns, data, orig_len)?;
            }
        }
        Ok(true)
    }

    fn out(&mut self) -> &mut BufWriter<File> {
        match &mut self.output {
            Output::Pcap { writer, .. } => writer.get_mut(),
            Output::Pcapng { writer, .. } => writer.get_mut(),
        }
    }

    fn flush(&mut self, sync: bool) -> io::Result<()> {
        let out = self.out();
        out.flush()?;
        if sync {
            out.get_ref().sync_data()?;
        }
        Ok(())
    }
}

/// The writer thread's state.
struct Writer {
    config: RecorderConfig,
    /// By session (0 for the shared file).
    files: HashMap<u64, OpenFile>,
    counters: Arc<Counters>,
    /// The latest packet time seen.
    now_ns: i64,
    next_sweep_ns: i64,
}

/// How often (packet time) files are checked for closing.
const SWEEP_STEP_NS: i64 = 1_000_000_000;
/// Without packets for this long (wall clock), buffered bytes are flushed to the files.
const IDLE_FLUSH: Duration = Duration::from_secs(1);

impl Writer {
    fn run(mut self, rx: Receiver<Message>) {
        loop {
            match rx.recv_timeout(IDLE_FLUSH) {
                Ok(message) => self.handle(message),
                Err(RecvTimeoutError::Timeout) => self.flush_all(false),
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // Everything already queued, then (with `sync`) to disk while the queue is empty.
            while let Ok(message) = rx.try_recv() {
                self.handle(message);
            }
            if self.config.sync {
                self.flush_all(true);
            }
        }
        let sessions: Vec<u64> = self.files.keys().copied().collect();
        for session in sessions {
            self.close(session);
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Packet {
                session,
                name,
                ts_ns,
                link_type,
                orig_len,
                data,
            } => {
                self.now_ns = self.now_ns.max(ts_ns);
                self.packet(session, &name, ts_ns, link_type, &data, orig_len);
            }
            Message::SessionEnded { session, ts_ns } => {
                self.now_ns = self.now_ns.max(ts_ns);
                if self.config.per_session
                    && self.config.close_on_fin
                    && let Some(file) = self.files.get_mut(&session)
                {
                    file.close_at = Some(ts_ns.saturating_add(self.config.fin_close_grace_ns));
                }
            }
        }
        if self.now_ns >= self.next_sweep_ns {
            self.sweep();
            self.next_sweep_ns = self.now_ns.saturating_add(SWEEP_STEP_NS);
        }
    }

    fn packet(
        &mut self,
        session: u64,
        name: &str,
        ts_ns: i64,
        link_type: u32,
        data: &[u8],
        orig_len: u32,
    ) {
        let key = if self.config.per_session { session } else { 0 };
        if !self.files.contains_key(&key) {
            let stem = if self.config.per_session {
                name
            } else {
                &self.config.shared_name
            };
            let path = unique_path(&self.config.dir, stem, self.config.format.extension());
            match OpenFile::create(path.clone(), self.config.format, link_type) {
                Ok(file) => {
                    self.counters.files_opened.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(path = %path.display(), session, "capture file opened");
                    self.files.insert(key, file);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot create capture file: {e}");
                    self.counters
                        .dropped_write_error
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let file = self.files.get_mut(&key).expect("inserted above");
        match file.write(ts_ns, link_type, data, orig_len) {
            Ok(true) => {
                self.counters
                    .packets_written
                    .fetch_add(1, Ordering::Relaxed);
                self.counters
                    .bytes_written
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            Ok(false) => {
                self.counters
                    .dropped_link_type
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(path = %file.path.display(), "cannot write capture file: {e}");
                self.counters
                    .dropped_write_error
                    .fetch_add(1, Ordering::Relaxed);
                self.close(key);
            }
        }
    }

    /// Close the files whose session ended a grace period ago, or that have been idle.
    fn sweep(&mut self) {
        if !self.config.per_session {
            return;
        }
        let now = self.now_ns;
        let idle = self.config.idle_close_ns;
        let due: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, f)| {
                f.close_at.is_some_and(|at| now >= at)
                    || idle.is_some_and(|i| now.saturating_sub(f.last_ns) >= i)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.close(key);
        }
    }

    fn close(&mut self, key: u64) {
        if let Some(mut file) = self.files.remove(&key) {
            if let Err(e) = file.flush(self.config.sync) {
                tracing::warn!(path = %file.path.display(), "cannot write capture file: {e}");
            }
            self.counters.files_closed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(path = %file.path.display(), "capture file closed");
        }
    }

    fn flush_all(&mut self, sync: bool) {
        for file in self.files.values_mut() {
            if let Err(e) = file.flush(sync) {
                tracing::warn!(path = %file.path.display(), "cannot write capture file: {e}");
            }
        }
    }
}

/// `dir/stem.ext`, or `dir/stem-2.ext`… when a file of that name exists (a restarted tap, or
/// a session file reopened after its idle close), so no recording overwrites another.
fn unique_path(dir: &Path, stem: &str, extension: &str) -> PathBuf {
    let first = dir.join(format!("{stem}.{extension}"));
    if !first.exists() {
        return first;
    }
    (2u32..)
        .map(|n| dir.join(format!("{stem}-{n}.{extension}")))
        .find(|p| !p.exists())
        .expect("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::input::open_path;
    use crate::source::{OpenedInput, Source};

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gophercap-recorder-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn config(dir: &Path, format: RecordFormat, per_session: bool) -> RecorderConfig {
        RecorderConfig {
            dir: dir.join("nested"),
            format,
            per_session,
            shared_name: "all".into(),
            queue_packets: 10_000,
            idle_close_ns: Some(60_000_000_000),
            close_on_fin: true,
            fin_close_grace_ns: 1_000_000_000,
            sync: false,
        }
    }

    /// (timestamp, link type, bytes) of every packet in a capture file.
    fn read(path: &Path) -> Vec<(i64, u32, Vec<u8>)> {
        let Ok(OpenedInput::Capture(mut reader)) = open_path(path) else {
            panic!("{} is not a capture", path.display());
        };
        let mut packets = Vec::new();
        while let Some(p) = reader.next_packet().unwrap() {
            packets.push((p.ts_ns, p.link_type.0, p.data.to_vec()));
        }
        packets
    }

    #[test]
    fn sessions_get_their_own_files_closed_after_fin_grace_or_idleness() {
        let dir = temp_dir("per-session");
        let recorder = PacketRecorder::start(config(&dir, RecordFormat::Pcapng, true)).unwrap();
        let (a, b): (Arc<str>, Arc<str>) = ("session-1".into(), "session-2".into());
        let s = 1_000_000_000i64;
        assert!(recorder.record(1, &a, s, 1, b"one", 3));
        assert!(recorder.record(2, &b, s + 1, 101, b"two", 40));
        recorder.session_ended(1, s + 2);
        assert!(recorder.record(2, &b, 3 * s, 101, b"three", 5));
        // Session 1's grace has passed: a new packet of it goes to a second file.
        assert!(recorder.record(1, &a, 4 * s, 1, b"late", 4));
        let stats = recorder.finish();
        assert_eq!(stats.packets_written, 4);
        assert_eq!(stats.files_opened, 3);
        assert_eq!(stats.files_closed, 3);
        let nested = dir.join("nested");
        assert_eq!(
            read(&nested.join("session-1.pcapng")),
            [(s, 1, b"one".to_vec())]
        );
        assert_eq!(
            read(&nested.join("session-1-2.pcapng")),
            [(4 * s, 1, b"late".to_vec())]
        );
        assert_eq!(
            read(&nested.join("session-2.pcapng")),
            [
                (s + 1, 101, b"two".to_vec()),
                (3 * s, 101, b"three".to_vec())
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_shared_pcap_file_keeps_its_first_link_type() {
        let dir = temp_dir("shared");
        let recorder = PacketRecorder::start(config(&dir, RecordFormat::Pcap, false)).unwrap();
        let name: Arc<str> = "ignored".into();
        for (session, ts, link) in [
            (1, 10, 1),
            (2, 20, 1),
            (3, 30, 113),
            (1, 200_000_000_000, 1),
        ] {
            assert!(recorder.record(session, &name, ts, link, &[session as u8; 4], 4));
        }
        let stats = recorder.finish();
        assert_eq!((stats.packets_written, stats.dropped_link_type), (3, 1));
        assert_eq!(stats.files_opened, 1);
        let packets = read(&dir.join("nested/all.pcap"));
        let times: Vec<i64> = packets.iter().map(|p| p.0).collect();
        assert_eq!(times, [10, 20, 200_000_000_000]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_that_cannot_be_created_is_an_error_not_a_panic() {
        let dir = temp_dir("blocked");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("nested"), b"a file where the directory should be").unwrap();
        let error = PacketRecorder::start(config(&dir, RecordFormat::Pcapng, true))
            .err()
            .expect("a file blocks the directory");
        assert!(matches!(error, RecorderError::CreateDir { .. }), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
