//! Decoding bodies sent with Content-Encoding gzip or deflate, so a trace shows what the
//! application saw. The output is cut at the body limit, and a body that does not decode is
//! kept as sent: an analyzer reports, it does not reject.

use super::head::list_elements;
use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use std::io::{self, Read};

/// A content coding this module decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ContentCoding {
    Gzip,
    /// "deflate" is zlib-wrapped by the RFC, raw in some servers: both are read.
    Deflate,
}

impl ContentCoding {
    /// The coding of a body with these headers, when there is exactly one besides "identity"
    /// and it is one this module decodes.
    pub fn of(headers: &[(String, String)]) -> Option<ContentCoding> {
        let mut codings = list_elements(headers, "content-encoding")
            .filter(|c| !c.eq_ignore_ascii_case("identity"));
        let coding = codings.next()?;
        if codings.next().is_some() {
            return None;
        }
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            Some(ContentCoding::Gzip)
        } else if coding.eq_ignore_ascii_case("deflate") {
            Some(ContentCoding::Deflate)
        } else {
            None
        }
    }
}

/// A decoded body.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Decoded {
    pub bytes: Vec<u8>,
    /// The output went on past `max` bytes.
    pub cut: bool,
}

/// Does `data` start with a zlib header (RFC 1950: deflate method, check bits)?
fn is_zlib(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

/// Decode `encoded` (which may be cut short: the body limit, a gap, an early close), keeping
/// at most `max` bytes. None when nothing decodes.
pub(super) fn decode(coding: ContentCoding, encoded: &[u8], max: usize) -> Option<Decoded> {
    let decoder: Box<dyn Read + '_> = match coding {
        ContentCoding::Gzip => Box::new(MultiGzDecoder::new(encoded)),
        ContentCoding::Deflate if is_zlib(encoded) => Box::new(ZlibDecoder::new(encoded)),
        ContentCoding::Deflate => Box::new(DeflateDecoder::new(encoded)),
    };
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    match decoder.take(limit).read_to_end(&mut bytes) {
        Ok(_) => {}
        // Input that ends early still yields what it decoded so far.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !bytes.is_empty() => {}
        Err(_) => return None,
    }
    let cut = bytes.len() > max;
    bytes.truncate(max);
    Some(Decoded { bytes, cut })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use std::io::Write;

    fn text() -> Vec<u8> {
        (0..5000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn headers(value: &str) -> Vec<(String, String)> {
        vec![("Content-Encoding".into(), value.into())]
    }

    #[test]
    fn codings_named_in_the_head() {
        assert_eq!(
            ContentCoding::of(&headers("gzip")),
            Some(ContentCoding::Gzip)
        );
        assert_eq!(
            ContentCoding::of(&headers("X-GZIP")),
            Some(ContentCoding::Gzip)
        );
        assert_eq!(
            ContentCoding::of(&headers("identity, deflate")),
            Some(ContentCoding::Deflate)
        );
        assert_eq!(ContentCoding::of(&headers("br")), None);
        assert_eq!(ContentCoding::of(&headers("deflate, gzip")), None);
        assert_eq!(ContentCoding::of(&[]), None);
    }

    #[test]
    fn gzip_zlib_and_raw_deflate_decode() {
        let data = text();
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(&data).unwrap();
        let mut raw = DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(&data).unwrap();
        let whole = Decoded {
            bytes: data.clone(),
            cut: false,
        };
        assert_eq!(
            decode(ContentCoding::Gzip, &gzip(&data), 1 << 20),
            Some(whole)
        );
        let zlib = zlib.finish().unwrap();
        assert!(is_zlib(&zlib));
        assert_eq!(
            decode(ContentCoding::Deflate, &zlib, 1 << 20)
                .unwrap()
                .bytes,
            data
        );
        let raw = raw.finish().unwrap();
        assert_eq!(
            decode(ContentCoding::Deflate, &raw, 1 << 20).unwrap().bytes,
            data
        );
    }

    #[test]
    fn output_is_cut_and_short_input_gives_what_it_holds() {
        let data = text();
        let encoded = gzip(&data);
        let cut = decode(ContentCoding::Gzip, &encoded, 100).unwrap();
        assert_eq!((cut.bytes.as_slice(), cut.cut), (&data[..100], true));
        let half = decode(ContentCoding::Gzip, &encoded[..encoded.len() / 2], 1 << 20).unwrap();
        assert!(!half.bytes.is_empty() && data.starts_with(&half.bytes));
    }

    #[test]
    fn bytes_that_do_not_decode_give_none() {
        assert_eq!(
            decode(ContentCoding::Gzip, b"plain text, not gzip", 1 << 20),
            None
        );
        assert_eq!(
            decode(ContentCoding::Deflate, b"\xff\xff\xff\xff", 1 << 20),
            None
        );
        assert_eq!(
            decode(ContentCoding::Gzip, &gzip(b"abc")[..5], 1 << 20),
            None
        );
    }
}
