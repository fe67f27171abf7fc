//! RFC 6455 frames after a 101 upgrade, one direction at a time: headers are parsed as they
//! complete, payloads are unmasked and kept up to the body limit as they arrive, continuation
//! fragments are joined into their message, and control frames (which may come between the
//! fragments of a message) are messages of their own.

/// Control frames carry at most this much (RFC 6455 5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

const OP_CONTINUATION: u8 = 0x0;
const OP_CLOSE: u8 = 0x8;

/// A frame that breaks RFC 6455 in a way that loses the message structure; its header starts
/// `at` bytes into the offered data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BadFrame {
    pub at: usize,
}

/// A frame header breaks the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Malformed;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FrameHeader {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    length: u64,
    /// Bytes of the header itself.
    size: usize,
}

/// The header at the start of `data`; None while it is still cut.
fn parse_header(data: &[u8]) -> Result<Option<FrameHeader>, Malformed> {
    let [first, second, ..] = *data else {
        return Ok(None);
    };
    let masked = second & 0x80 != 0;
    let (length, mut size) = match second & 0x7f {
        126 => match data.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match data.get(2..10) {
            Some(b) => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(b);
                let length = u64::from_be_bytes(bytes);
                // The most significant bit must be 0.
                if length >> 63 != 0 {
                    return Err(Malformed);
                }
                (length, 10)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    let mask = if masked {
        let Some(key) = data.get(size..size + 4) else {
            return Ok(None);
        };
        size += 4;
        Some([key[0], key[1], key[2], key[3]])
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin: first & 0x80 != 0,
        rsv1: first & 0x40 != 0,
        opcode: first & 0x0f,
        mask,
        length,
        size,
    }))
}

/// Append `src` to `out` unmasked, `offset` being the payload position of `src[0]`.
fn unmask_into(out: &mut Vec<u8>, src: &[u8], mask: [u8; 4], offset: u64) {
    let shift = (offset % 4) as usize;
    let key = [
        mask[shift],
        mask[(shift + 1) % 4],
        mask[(shift + 2) % 4],
        mask[(shift + 3) % 4],
    ];
    let word = u32::from_ne_bytes(key);
    out.reserve(src.len());
    let mut words = src.chunks_exact(4);
    for w in &mut words {
        let plain = u32::from_ne_bytes([w[0], w[1], w[2], w[3]]) ^ word;
        out.extend_from_slice(&plain.to_ne_bytes());
    }
    out.extend(words.remainder().iter().zip(key).map(|(b, k)| b ^ k));
}

/// A message being put together (or a control frame being read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Assembled {
    pub timestamp_ns: i64,
    pub opcode: u8,
    pub fin: bool,
    pub compressed: bool,
    pub payload: Vec<u8>,
    pub length: u64,
    pub truncated: bool,
    pub incomplete: bool,
}

impl Assembled {
    fn new(timestamp_ns: i64, header: &FrameHeader) -> Self {
        Assembled {
            timestamp_ns,
            opcode: header.opcode,
            compressed: header.rsv1,
            ..Assembled::default()
        }
    }

    fn take(&mut self, bytes: &[u8], mask: Option<[u8; 4]>, offset: u64, max: usize) {
        self.length = self.length.saturating_add(bytes.len() as u64);
        let room = max.saturating_sub(self.payload.len());
        if bytes.len() > room {
            self.truncated = true;
        }
        let kept = &bytes[..bytes.len().min(room)];
        match mask {
            Some(mask) => unmask_into(&mut self.payload, kept, mask, offset),
            None => self.payload.extend_from_slice(kept),
        }
    }

    /// A close frame's status code and reason, when its payload carries them.
    pub fn close_fields(&self) -> (Option<u16>, Option<String>) {
        if self.opcode != OP_CLOSE {
            return (None, None);
        }
        match self.payload.as_slice() {
            [hi, lo, reason @ ..] => (
                Some(u16::from_be_bytes([*hi, *lo])),
                Some(String::from_utf8_lossy(reason).into_owned()),
            ),
            _ => (None, None),
        }
    }
}

/// The frame being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrameState {
    Header,
    Payload {
        remaining: u64,
        /// Payload bytes of this frame already read (for the mask's phase).
        offset: u64,
        mask: Option<[u8; 4]>,
        control: bool,
        fin: bool,
    },
}

/// Reads one direction's frames.
#[derive(Debug)]
pub(super) struct FrameReader {
    state: FrameState,
    /// The data message whose fragments are being joined.
    message: Option<Assembled>,
    /// The control frame being read.
    control: Option<Assembled>,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            state: FrameState::Header,
            message: None,
            control: None,
        }
    }
}

impl FrameReader {
    /// Read frames from `data`, handing each finished message to `emit`; `time_at` gives the
    /// time of the packet that carried a byte of `data`. Returns the bytes used: all but a
    /// frame header still cut.
    pub fn read(
        &mut self,
        data: &[u8],
        time_at: &dyn Fn(usize) -> i64,
        max_payload: usize,
        emit: &mut dyn FnMut(Assembled),
    ) -> Result<usize, BadFrame> {
        let mut at = 0;
        loop {
            match self.state {
                FrameState::Header => {
                    let bad = BadFrame { at };
                    let Some(header) = parse_header(&data[at..]).map_err(|_| bad)? else {
                        return Ok(at);
                    };
                    self.begin(&header, time_at(at)).map_err(|_| bad)?;
                    at += header.size;
                    self.state = FrameState::Payload {
                        remaining: header.length,
                        offset: 0,
                        mask: header.mask,
                        control: header.opcode >= OP_CLOSE,
                        fin: header.fin,
                    };
                    self.end_frame_if_read(emit);
                }
                FrameState::Payload {
                    remaining,
                    offset,
                    mask,
                    control,
                    fin,
                } => {
                    if at == data.len() {
                        return Ok(at);
                    }
                    let n = usize::try_from(remaining)
                        .map_or(data.len() - at, |r| r.min(data.len() - at));
                    let target = if control {
                        &mut self.control
                    } else {
                        &mut self.message
                    };
                    if let Some(target) = target {
                        target.take(&data[at..at + n], mask, offset, max_payload);
                    }
                    at += n;
                    self.state = FrameState::Payload {
                        remaining: remaining - n as u64,
                        offset: offset + n as u64,
                        mask,
                        control,
                        fin,
                    };
                    self.end_frame_if_read(emit);
                }
            }
        }
    }

    /// Check a new frame's header against the message in progress and open its target.
    fn begin(&mut self, header: &FrameHeader, timestamp_ns: i64) -> Result<(), Malformed> {
        match header.opcode {
            0x3..=0x7 | 0xb..=0xf => Err(Malformed),
            OP_CLOSE.. => {
                if !header.fin || header.length > MAX_CONTROL_PAYLOAD {
                    return Err(Malformed);
                }
                self.control = Some(Assembled::new(timestamp_ns, header));
                Ok(())
            }
            OP_CONTINUATION => {
                if self.message.is_none() {
                    return Err(Malformed);
                }
                Ok(())
            }
            _ => {
                if self.message.is_some() {
                    return Err(Malformed);
                }
                self.message = Some(Assembled::new(timestamp_ns, header));
                Ok(())
            }
        }
    }

    /// After a frame's last payload byte: emit a control frame, or a data message whose final
    /// fragment it was.
    fn end_frame_if_read(&mut self, emit: &mut dyn FnMut(Assembled)) {
        let FrameState::Payload {
            remaining: 0,
            control,
            fin,
            ..
        } = self.state
        else {
            return;
        };
        self.state = FrameState::Header;
        let finished = if control {
            self.control.take()
        } else if fin {
            self.message.take()
        } else {
            None
        };
        if let Some(mut message) = finished {
            message.fin = true;
            emit(message);
        }
    }

    /// `length` bytes are missing: true when they lie inside the current frame's payload
    /// (reading goes on after them, the message marked incomplete).
    pub fn skip(&mut self, length: u64, emit: &mut dyn FnMut(Assembled)) -> bool {
        let FrameState::Payload {
            remaining,
            offset,
            mask,
            control,
            fin,
        } = self.state
        else {
            return false;
        };
        if length > remaining {
            return false;
        }
        let target = if control {
            &mut self.control
        } else {
            &mut self.message
        };
        if let Some(target) = target {
            target.incomplete = true;
        }
        self.state = FrameState::Payload {
            remaining: remaining - length,
            offset: offset.wrapping_add(length),
            mask,
            control,
            fin,
        };
        self.end_frame_if_read(emit);
        true
    }

    /// No more bytes will come: whatever is in progress is emitted, incomplete.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Assembled)) {
        self.state = FrameState::Header;
        for mut message in [self.message.take(), self.control.take()]
            .into_iter()
            .flatten()
        {
            message.incomplete = true;
            emit(message);
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A frame as a client (masked with `mask`) or a server (unmasked) sends it.
    pub(in crate::proto::http) fn frame(
        fin: bool,
        opcode: u8,
        payload: &[u8],
        mask: Option<[u8; 4]>,
    ) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        let mask_bit = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(mask_bit | n as u8),
            n if n <= 0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(payload),
        }
        out
    }

    fn read_all(
        reader: &mut FrameReader,
        data: &[u8],
        max: usize,
    ) -> (Result<usize, BadFrame>, Vec<Assembled>) {
        let mut out = Vec::new();
        let used = reader.read(data, &|at| at as i64, max, &mut |m| out.push(m));
        (used, out)
    }

    const KEY: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);
    /// Longest frame header: 2 bytes, 8 of extended length, 4 of mask key.
    const MAX_HEADER_LEN: usize = 14;

    #[test]
    fn masked_text_and_unmasked_binary() {
        let mut data = frame(true, 0x1, b"Hello", KEY);
        data.extend(frame(true, 0x2, &[0, 1, 2, 255], None));
        let (used, out) = read_all(&mut FrameReader::default(), &data, 1 << 20);
        assert_eq!(used, Ok(data.len()));
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].opcode, out[0].payload.as_slice(), out[0].fin),
            (1, &b"Hello"[..], true)
        );
        assert_eq!(
            (out[1].opcode, out[1].payload.as_slice()),
            (2, &[0, 1, 2, 255][..])
        );
        assert_eq!(out[1].timestamp_ns, 11);
    }

    #[test]
    fn rfc_6455_masked_hello_example() {
        let data = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (_, out) = read_all(&mut FrameReader::default(), &data, 1 << 20);
        assert_eq!(out[0].payload, b"Hello");
    }

    #[test]
    fn sixteen_and_sixty_four_bit_lengths() {
        for len in [126usize, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let data = frame(true, 0x2, &payload, KEY);
            let (used, out) = read_all(&mut FrameReader::default(), &data, 1 << 20);
            assert_eq!(used, Ok(data.len()));
            assert_eq!(out[0].payload, payload, "{len}");
            assert_eq!(out[0].length, len as u64);
        }
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(
            read_all(&mut FrameReader::default(), &huge, 10).0,
            Err(BadFrame { at: 0 })
        );
        // The largest legal length is read incrementally without trouble.
        let mut big = vec![0x82, 127];
        big.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
        big.extend_from_slice(b"some");
        assert_eq!(read_all(&mut FrameReader::default(), &big, 10).0, Ok(14));
    }

    #[test]
    fn continuations_join_with_pings_and_pongs_between() {
        let mut data = frame(false, 0x1, b"Hel", KEY);
        data.extend(frame(true, 0x9, b"ping!", KEY));
        data.extend(frame(false, 0x0, b"lo, ", Some([1, 2, 3, 4])));
        data.extend(frame(true, 0xa, b"", KEY));
        data.extend(frame(true, 0x0, b"world", KEY));
        let (used, out) = read_all(&mut FrameReader::default(), &data, 1 << 20);
        assert_eq!(used, Ok(data.len()));
        let seen: Vec<(u8, &[u8])> = out
            .iter()
            .map(|m| (m.opcode, m.payload.as_slice()))
            .collect();
        assert_eq!(
            seen,
            [(0x9, &b"ping!"[..]), (0xa, b""), (0x1, b"Hello, world")]
        );
        assert_eq!(out[2].timestamp_ns, 0);
        assert_eq!(out[2].length, 12);
    }

    #[test]
    fn close_with_code_and_reason() {
        let mut payload = 1001u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"going away");
        let (_, out) = read_all(
            &mut FrameReader::default(),
            &frame(true, 0x8, &payload, None),
            100,
        );
        assert_eq!(
            out[0].close_fields(),
            (Some(1001), Some("going away".into()))
        );
        let (_, out) = read_all(
            &mut FrameReader::default(),
            &frame(true, 0x8, b"", KEY),
            100,
        );
        assert_eq!(out[0].close_fields(), (None, None));
    }

    #[test]
    fn frames_that_break_the_rules() {
        let cases = [
            frame(true, 0x3, b"", None),
            frame(true, 0xb, b"", None),
            frame(false, 0x9, b"", None),
            frame(true, 0x9, &[0; 126], None),
            frame(true, 0x0, b"orphan", None),
            [frame(false, 0x1, b"a", None), frame(true, 0x2, b"b", None)].concat(),
        ];
        for data in cases {
            assert!(
                read_all(&mut FrameReader::default(), &data, 100).0.is_err(),
                "{data:?}"
            );
        }
    }

    #[test]
    fn payload_is_cut_and_a_byte_at_a_time_reads_the_same() {
        let payload: Vec<u8> = (0..300).map(|i| (i * 7) as u8).collect();
        let data = frame(true, 0x2, &payload, KEY);
        let (_, out) = read_all(&mut FrameReader::default(), &data, 10);
        assert_eq!(
            (out[0].payload.as_slice(), out[0].truncated, out[0].length),
            (&payload[..10], true, 300)
        );
        let mut reader = FrameReader::default();
        let mut held = Vec::new();
        let mut out = Vec::new();
        for &b in &data {
            held.push(b);
            let used = reader
                .read(&held, &|_| 0, 1 << 20, &mut |m| out.push(m))
                .unwrap();
            held.drain(..used);
            assert!(held.len() < MAX_HEADER_LEN);
        }
        assert_eq!(out[0].payload, payload);
    }

    #[test]
    fn a_gap_in_a_payload_is_skipped_and_one_past_it_is_not() {
        let data = frame(true, 0x2, b"0123456789", KEY);
        let mut reader = FrameReader::default();
        let mut out = Vec::new();
        reader
            .read(&data[..9], &|_| 0, 100, &mut |m| out.push(m))
            .unwrap();
        assert!(reader.skip(4, &mut |m| out.push(m)));
        reader
            .read(&data[13..], &|_| 0, 100, &mut |m| out.push(m))
            .unwrap();
        assert_eq!(
            (out[0].payload.as_slice(), out[0].incomplete),
            (&b"012789"[..], true)
        );
        let mut reader = FrameReader::default();
        reader
            .read(&data[..9], &|_| 0, 100, &mut |m| out.push(m))
            .unwrap();
        assert!(!reader.skip(20, &mut |m| out.push(m)));
        reader.finish(&mut |m| out.push(m));
        assert_eq!(
            (out[1].payload.as_slice(), out[1].incomplete, out[1].fin),
            (&b"012"[..], true, false)
        );
    }
}
