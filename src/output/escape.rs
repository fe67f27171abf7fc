//! JSON string contents at close to the cost of a copy: plain bytes are found eight at a time
//! (one 64-bit word, no `unsafe`) and copied as one run; only `"`, `\` and control characters
//! are escaped, exactly as serde_json escapes them, so lines stay byte-identical to its output.
//! Bytes that are not text travel as base64 (SIMD, runtime-detected), written straight into the
//! line.

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that needs escaping: below 0x20, `"` or `\`. Exact for
/// the lowest flagged byte (a borrow only reaches upward), which is all the scan needs.
#[inline(always)]
fn needs_escape(word: u64) -> u64 {
    let zero_byte = |w: u64| w.wrapping_sub(LOW_BITS) & !w & HIGH_BITS;
    let control = word.wrapping_sub(LOW_BITS * 0x20) & !word & HIGH_BITS;
    control
        | zero_byte(word ^ (LOW_BITS * u64::from(b'"')))
        | zero_byte(word ^ (LOW_BITS * u64::from(b'\\')))
}

/// The offset of the first byte of `bytes` that needs escaping, if any.
#[inline]
pub fn first_escape(bytes: &[u8]) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut words {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let flagged = needs_escape(word);
        if flagged != 0 {
            return Some(offset + (flagged.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|i| offset + i)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append `text` as a quoted JSON string.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    let mut rest = text.as_bytes();
    out.reserve(rest.len() + 2);
    out.push(b'"');
    while let Some(at) = first_escape(rest) {
        out.extend_from_slice(&rest[..at]);
        let byte = rest[at];
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Append `bytes` as a quoted string of standard, padded base64.
pub fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    base64_simd::STANDARD.encode_append(bytes, out);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn matches_serde_json_for_every_byte_at_every_position_of_a_word() {
        for byte in 0u8..0x80 {
            for at in 0..17 {
                let mut text = "abcdefghijklmnopq".to_string().into_bytes();
                text[at] = byte;
                let text = String::from_utf8(text).unwrap();
                assert_eq!(
                    escaped(&text),
                    serde_json::to_string(&text).unwrap(),
                    "{byte:#x} at {at}"
                );
            }
        }
    }

    #[test]
    fn multibyte_text_and_runs_of_escapes_match_serde_json() {
        for text in [
            "",
            "\"",
            "\\\\\"\"\n\n",
            "héllo wörld — ☃ 🦀 \u{7f} \u{1f}",
            "line one\r\nline two\ttabbed\u{0}nul",
            &"x".repeat(1000),
            &"ü\"".repeat(300),
        ] {
            assert_eq!(escaped(text), serde_json::to_string(text).unwrap());
        }
    }

    #[test]
    fn base64_is_standard_and_padded() {
        for (bytes, want) in [
            (&b""[..], "\"\""),
            (b"f", "\"Zg==\""),
            (b"fo", "\"Zm8=\""),
            (b"foo", "\"Zm9v\""),
            (&[0xff, 0xfe, 0x00, 0x80][..], "\"//4AgA==\""),
        ] {
            let mut out = Vec::new();
            write_base64(&mut out, bytes);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
        let long: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let mut out = Vec::new();
        write_base64(&mut out, &long);
        use base64::Engine;
        let want = format!(
            "\"{}\"",
            base64::engine::general_purpose::STANDARD.encode(&long)
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}
