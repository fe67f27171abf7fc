//! Where a message body ends (RFC 9112 section 6.3) and reading it as it arrives: by
//! Content-Length, by chunks, or until the connection closes. Body bytes are consumed as they
//! come and kept only up to the configured cut; only a chunk's size line or the trailer
//! section may wait for more bytes, and those are bounded.

use super::head::{
    Head, StartLine, find_head_end, header_values, list_elements, parse_trailers, resume_point,
};
use memchr::memchr;

/// How a message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body at all.
    Empty,
    Length(u64),
    Chunked,
    /// Everything until the sender closes (responses only).
    UntilClose,
}

/// The head says where its body ends in two different ways, or in none a request may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BadFraming;

/// Content-Length: None when absent; repeated or listed values must all agree.
fn content_length(head: &Head) -> Result<Option<u64>, BadFraming> {
    let mut length = None;
    for element in header_values(&head.headers, "content-length").flat_map(|v| v.split(',')) {
        let element = element.trim();
        if element.is_empty() || !element.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadFraming);
        }
        let value: u64 = element.parse().map_err(|_| BadFraming)?;
        if length.is_some_and(|l| l != value) {
            return Err(BadFraming);
        }
        length = Some(value);
    }
    Ok(length)
}

/// Transfer-Encoding: None when absent, else whether chunked is the final coding.
fn chunked_last(head: &Head) -> Option<bool> {
    list_elements(&head.headers, "transfer-encoding")
        .last()
        .map(|last| last.eq_ignore_ascii_case("chunked"))
}

/// A request's body: chunked, else Content-Length, else none.
pub(super) fn request_framing(head: &Head) -> Result<Framing, BadFraming> {
    match chunked_last(head) {
        Some(true) => Ok(Framing::Chunked),
        Some(false) => Err(BadFraming),
        None => Ok(content_length(head)?.map_or(Framing::Empty, Framing::Length)),
    }
}

/// A response's body, knowing the method of the request it answers (when one was seen).
pub(super) fn response_framing(head: &Head, method: Option<&str>) -> Result<Framing, BadFraming> {
    let code = match head.start {
        StartLine::Response { code, .. } => code,
        StartLine::Request { .. } => return request_framing(head),
    };
    let connect_accepted = method == Some("CONNECT") && (200..300).contains(&code);
    if method == Some("HEAD")
        || (100..200).contains(&code)
        || code == 204
        || code == 304
        || connect_accepted
    {
        return Ok(Framing::Empty);
    }
    match chunked_last(head) {
        Some(true) => Ok(Framing::Chunked),
        Some(false) => Ok(Framing::UntilClose),
        None => Ok(content_length(head)?.map_or(Framing::UntilClose, Framing::Length)),
    }
}

/// The body bytes read so far.
#[derive(Debug, Default)]
pub(super) struct Body {
    pub kept: Vec<u8>,
    /// Every body byte that arrived, kept or not.
    pub length: u64,
    pub truncated: bool,
    pub trailers: Vec<(String, String)>,
}

impl Body {
    fn take(&mut self, bytes: &[u8], max: usize) {
        self.length = self.length.saturating_add(bytes.len() as u64);
        let room = max.saturating_sub(self.kept.len());
        if bytes.len() > room {
            self.truncated = true;
        }
        self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// A chunked body could not be read further: its malformed part starts `at` bytes into the
/// offered data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BadChunk {
    pub at: usize,
}

/// A chunk size line, chunk end or trailer section is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Malformed;

/// Where a chunked body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Before a chunk size line; `scanned` bytes of it were already searched for its end.
    Size {
        scanned: usize,
    },
    Data {
        remaining: u64,
    },
    /// The line end after a chunk's data.
    DataEnd,
    Trailers {
        scanned: usize,
    },
}

/// Reads one body as it arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BodyReader {
    Length { remaining: u64 },
    Chunked(Chunk),
    UntilClose,
    Done,
}

/// What one call of [`BodyReader::read`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Progress {
    pub used: usize,
    pub done: bool,
}

/// Limits of one read.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// Body bytes kept.
    pub max_body: usize,
    /// A chunk size line or a trailer section may be this long.
    pub max_line: usize,
}

impl BodyReader {
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => BodyReader::Done,
            Framing::Length(remaining) => BodyReader::Length { remaining },
            Framing::Chunked => BodyReader::Chunked(Chunk::Size { scanned: 0 }),
            Framing::UntilClose => BodyReader::UntilClose,
        }
    }

    pub fn is_done(&self) -> bool {
        *self == BodyReader::Done
    }

    /// The body ends when the sender closes.
    pub fn ends_at_close(&self) -> bool {
        *self == BodyReader::UntilClose
    }

    /// Read from `data` into `body`. Returns fewer bytes than offered only when the body is
    /// done, or when a chunk size line or trailer section is still cut.
    pub fn read(
        &mut self,
        data: &[u8],
        body: &mut Body,
        limits: Limits,
    ) -> Result<Progress, BadChunk> {
        let mut at = 0;
        loop {
            let rest = &data[at..];
            match self {
                BodyReader::Done => {
                    return Ok(Progress {
                        used: at,
                        done: true,
                    });
                }
                BodyReader::UntilClose => {
                    body.take(rest, limits.max_body);
                    return Ok(Progress {
                        used: data.len(),
                        done: false,
                    });
                }
                BodyReader::Length { remaining } => {
                    let n = clamp(*remaining, rest.len());
                    // The length is known: room for all that will be kept at once, instead of
                    // a copy at every doubling of a large body.
                    if body.kept.capacity() == 0 {
                        body.kept.reserve_exact(clamp(*remaining, limits.max_body));
                    }
                    body.take(&rest[..n], limits.max_body);
                    at += n;
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        *self = BodyReader::Done;
                    } else {
                        return Ok(Progress {
                            used: at,
                            done: false,
                        });
                    }
                }
                BodyReader::Chunked(chunk) => {
                    match read_chunked(chunk, rest, body, limits).map_err(|_| BadChunk { at })? {
                        Some((used, next)) => {
                            at += used;
                            *self = next;
                        }
                        None => {
                            return Ok(Progress {
                                used: at,
                                done: false,
                            });
                        }
                    }
                    if at == data.len() && !self.is_done() {
                        return Ok(Progress {
                            used: at,
                            done: false,
                        });
                    }
                }
            }
        }
    }

    /// `length` bytes are missing: true when they lie within a part of the body whose end is
    /// known (a Content-Length body, a chunk's data, a body read until close), so reading goes
    /// on after them; false when the body's framing is lost.
    pub fn skip(&mut self, length: u64) -> bool {
        match self {
            BodyReader::Length { remaining } if length <= *remaining => {
                *remaining -= length;
                if *remaining == 0 {
                    *self = BodyReader::Done;
                }
                true
            }
            BodyReader::Chunked(Chunk::Data { remaining }) if length <= *remaining => {
                *remaining -= length;
                if *remaining == 0 {
                    *self = BodyReader::Chunked(Chunk::DataEnd);
                }
                true
            }
            BodyReader::UntilClose => true,
            _ => false,
        }
    }
}

/// `remaining` as a slice length no longer than `available`.
fn clamp(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}

/// One step of a chunked body from `rest`: the bytes used and the reader's next state, or None
/// when a line is still cut.
fn read_chunked(
    chunk: &mut Chunk,
    rest: &[u8],
    body: &mut Body,
    limits: Limits,
) -> Result<Option<(usize, BodyReader)>, Malformed> {
    match *chunk {
        Chunk::Size { scanned } => {
            let window = &rest[..rest.len().min(limits.max_line)];
            let Some(nl) = memchr(b'\n', &window[scanned.min(window.len())..]).map(|i| i + scanned)
            else {
                if rest.len() >= limits.max_line {
                    return Err(Malformed);
                }
                *chunk = Chunk::Size {
                    scanned: rest.len(),
                };
                return Ok(None);
            };
            let size = chunk_size(&rest[..nl])?;
            let next = if size == 0 {
                Chunk::Trailers { scanned: 0 }
            } else {
                Chunk::Data { remaining: size }
            };
            Ok(Some((nl + 1, BodyReader::Chunked(next))))
        }
        Chunk::Data { remaining } => {
            let n = clamp(remaining, rest.len());
            body.take(&rest[..n], limits.max_body);
            let left = remaining - n as u64;
            let next = if left == 0 {
                Chunk::DataEnd
            } else {
                Chunk::Data { remaining: left }
            };
            Ok(Some((n, BodyReader::Chunked(next))))
        }
        Chunk::DataEnd => match rest {
            [] | [b'\r'] => Ok(None),
            [b'\r', b'\n', ..] => Ok(Some((2, BodyReader::Chunked(Chunk::Size { scanned: 0 })))),
            [b'\n', ..] => Ok(Some((1, BodyReader::Chunked(Chunk::Size { scanned: 0 })))),
            _ => Err(Malformed),
        },
        Chunk::Trailers { scanned } => {
            // No trailer fields: the last chunk is followed by an empty line at once.
            match rest {
                [] | [b'\r'] => return Ok(None),
                [b'\r', b'\n', ..] => return Ok(Some((2, BodyReader::Done))),
                [b'\n', ..] => return Ok(Some((1, BodyReader::Done))),
                _ => {}
            }
            let Some(end) = find_head_end(rest, scanned, limits.max_line) else {
                if rest.len() >= limits.max_line {
                    return Err(Malformed);
                }
                *chunk = Chunk::Trailers {
                    scanned: resume_point(rest.len()),
                };
                return Ok(None);
            };
            body.trailers = parse_trailers(&rest[..end]).ok_or(Malformed)?;
            Ok(Some((end, BodyReader::Done)))
        }
    }
}

/// The size on a chunk size line (without its line feed): hex digits, then optional white
/// space and extensions, which are ignored.
fn chunk_size(line: &[u8]) -> Result<u64, Malformed> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(Malformed);
    }
    let after = line[digits..].trim_ascii_start();
    if !after.is_empty() && after[0] != b';' {
        return Err(Malformed);
    }
    line[..digits].iter().try_fold(0u64, |size, &b| {
        let digit = u64::from(char::from(b).to_digit(16).unwrap_or(0));
        size.checked_mul(16)
            .and_then(|s| s.checked_add(digit))
            .ok_or(Malformed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::head::{StartKind, parse_head};

    const LIMITS: Limits = Limits {
        max_body: 1 << 20,
        max_line: 1024,
    };

    fn head(text: &str) -> Head {
        let kind = if text.starts_with("HTTP/") {
            StartKind::Response
        } else {
            StartKind::Request
        };
        parse_head(text.as_bytes(), kind).unwrap()
    }

    #[test]
    fn request_bodies_by_chunks_then_length_else_none() {
        let h = head("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(request_framing(&h), Ok(Framing::Chunked));
        let h = head("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(request_framing(&h), Ok(Framing::Length(5)));
        let h = head("GET / HTTP/1.1\r\n\r\n");
        assert_eq!(request_framing(&h), Ok(Framing::Empty));
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(request_framing(&h), Err(BadFraming));
    }

    #[test]
    fn content_length_repeats_must_agree_and_be_digits() {
        let h = head("POST / HTTP/1.1\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n");
        assert_eq!(request_framing(&h), Ok(Framing::Length(7)));
        let h = head("POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n");
        assert_eq!(request_framing(&h), Err(BadFraming));
        let h = head("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(request_framing(&h), Err(BadFraming));
        let h = head("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        assert_eq!(request_framing(&h), Err(BadFraming));
    }

    #[test]
    fn responses_without_a_body_and_until_close() {
        let ok = head("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
        assert_eq!(response_framing(&ok, Some("HEAD")), Ok(Framing::Empty));
        assert_eq!(response_framing(&ok, Some("GET")), Ok(Framing::Length(10)));
        assert_eq!(response_framing(&ok, Some("CONNECT")), Ok(Framing::Empty));
        for code in [
            "100 Continue",
            "101 Switching",
            "204 No Content",
            "304 Not Modified",
        ] {
            let h = head(&format!("HTTP/1.1 {code}\r\nContent-Length: 10\r\n\r\n"));
            assert_eq!(response_framing(&h, None), Ok(Framing::Empty), "{code}");
        }
        let h = head("HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(response_framing(&h, None), Ok(Framing::UntilClose));
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(response_framing(&h, None), Ok(Framing::UntilClose));
        let h = head("HTTP/1.1 407 No\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(
            response_framing(&h, Some("CONNECT")),
            Ok(Framing::Length(3))
        );
    }

    fn read_all(
        framing: Framing,
        data: &[u8],
        limits: Limits,
    ) -> (Result<Progress, BadChunk>, Body) {
        let mut reader = BodyReader::new(framing);
        let mut body = Body::default();
        (reader.read(data, &mut body, limits), body)
    }

    #[test]
    fn chunks_with_extensions_and_trailers() {
        let data = b"4;name=\"v\"\r\nWiki\r\n5 ; x\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\nX-T: 1\r\n\r\nNEXT";
        let (progress, body) = read_all(Framing::Chunked, data, LIMITS);
        assert_eq!(
            progress,
            Ok(Progress {
                used: data.len() - 4,
                done: true
            })
        );
        assert_eq!(body.kept, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(body.length, 23);
        assert_eq!(
            body.trailers,
            [
                ("Expires".into(), "never".into()),
                ("X-T".into(), "1".into())
            ]
        );
    }

    #[test]
    fn chunks_fed_a_byte_at_a_time_give_the_same_body() {
        let data = b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: x\r\n\r\n";
        let mut reader = BodyReader::new(Framing::Chunked);
        let mut body = Body::default();
        let mut held = Vec::new();
        for &b in data.iter() {
            held.push(b);
            let p = reader.read(&held, &mut body, LIMITS).unwrap();
            held.drain(..p.used);
            assert!(held.len() <= 8, "held {held:?}");
        }
        assert!(reader.is_done());
        assert_eq!(body.kept, b"abc0123456789abcdef");
        assert_eq!(body.trailers, [("T".into(), "x".into())]);
    }

    #[test]
    fn bad_and_overflowing_chunk_sizes() {
        for data in [&b"zz\r\n"[..], b"5x\r\nhello", b"4\r\nWikiXX", b"\r\n"] {
            assert!(
                read_all(Framing::Chunked, data, LIMITS).0.is_err(),
                "{data:?}"
            );
        }
        // 16 hex digits fit in 64 bits; 17 significant ones do not.
        assert_eq!(chunk_size(b"ffffffffffffffff"), Ok(u64::MAX));
        assert_eq!(chunk_size(b"00000000000000000001"), Ok(1));
        assert_eq!(chunk_size(b"10000000000000000"), Err(Malformed));
        // A size line that never ends is cut off at the line limit.
        let long = vec![b'0'; 2000];
        assert_eq!(
            read_all(Framing::Chunked, &long, LIMITS).0,
            Err(BadChunk { at: 0 })
        );
    }

    #[test]
    fn bodies_beyond_the_cut_are_counted_not_kept() {
        let limits = Limits {
            max_body: 4,
            max_line: 1024,
        };
        let (progress, body) = read_all(Framing::Length(10), b"0123456789rest", limits);
        assert_eq!(
            progress,
            Ok(Progress {
                used: 10,
                done: true
            })
        );
        assert_eq!(
            (body.kept.as_slice(), body.length, body.truncated),
            (&b"0123"[..], 10, true)
        );
        let (_, body) = read_all(Framing::UntilClose, b"0123", limits);
        assert_eq!((body.length, body.truncated), (4, false));
    }

    #[test]
    fn a_gap_inside_a_known_length_is_skipped() {
        let mut reader = BodyReader::new(Framing::Length(10));
        assert!(reader.skip(4));
        assert_eq!(reader, BodyReader::Length { remaining: 6 });
        assert!(!reader.skip(7));
        let mut reader = BodyReader::Chunked(Chunk::Data { remaining: 3 });
        assert!(reader.skip(3));
        assert_eq!(reader, BodyReader::Chunked(Chunk::DataEnd));
        assert!(!reader.skip(1));
        assert!(BodyReader::UntilClose.skip(u64::MAX));
        let mut huge = BodyReader::new(Framing::Length(u64::MAX));
        assert!(huge.skip(u64::MAX));
        assert!(huge.is_done());
    }
}
