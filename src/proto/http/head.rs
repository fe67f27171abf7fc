//! Message heads: recognising a start line early (so TLS or another protocol is turned away at
//! its first bytes instead of after a full head's worth), finding where a head ends without
//! re-reading what was already scanned, and turning httparse's borrowed view into owned fields.

use memchr::memchr;

/// Which kind of start line a head begins with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StartKind {
    Request,
    Response,
}

/// Longest method accepted by the early checks; real ones are far shorter.
const MAX_METHOD_LEN: usize = 32;

const STATUS_PREFIX: &[u8] = b"HTTP/1.";

/// A token character (RFC 9110 5.6.2): what a method is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Method characters accepted when resynchronising inside arbitrary bytes: upper-case
/// methods only, so that a line of body text is not taken for a request.
fn is_resync_method_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
}

/// How strictly a request line's method is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MethodRule {
    /// Any token, as RFC 9112 allows: at the start of a stream or after a message.
    Token,
    /// Upper-case only: when looking for a message in bytes of unknown meaning.
    UpperCase,
}

/// Could `prefix` (the first bytes of a head, possibly few) begin a start line of `expected`
/// (either kind when None)? Looks at a bounded number of bytes, so it is cheap to repeat.
pub(super) fn plausible_start(prefix: &[u8], expected: Option<StartKind>) -> bool {
    if expected != Some(StartKind::Request) {
        let n = prefix.len().min(STATUS_PREFIX.len());
        if prefix[..n] == STATUS_PREFIX[..n] {
            return true;
        }
    }
    if expected == Some(StartKind::Response) {
        return false;
    }
    for (i, &b) in prefix.iter().take(MAX_METHOD_LEN + 1).enumerate() {
        if b == b' ' {
            return i > 0;
        }
        if !is_tchar(b) {
            return false;
        }
    }
    prefix.len() <= MAX_METHOD_LEN
}

/// The kind of start line `line` (without its line feed) is, if it is one: a request line
/// `method SP target SP HTTP/1.x` or a status line `HTTP/1.x SP 3DIGIT ...`.
pub(super) fn classify_line(line: &[u8], rule: MethodRule) -> Option<StartKind> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if is_status_line(line) {
        return Some(StartKind::Response);
    }
    is_request_line(line, rule).then_some(StartKind::Request)
}

fn is_http1_version(v: &[u8]) -> bool {
    v.len() == STATUS_PREFIX.len() + 1
        && v.starts_with(STATUS_PREFIX)
        && v[STATUS_PREFIX.len()].is_ascii_digit()
}

fn is_status_line(line: &[u8]) -> bool {
    let (Some(version), Some(rest)) = (line.get(..8), line.get(8..)) else {
        return false;
    };
    is_http1_version(version)
        && rest.len() >= 4
        && rest[0] == b' '
        && rest[1..4].iter().all(u8::is_ascii_digit)
        && rest.get(4).is_none_or(|&b| b == b' ')
}

fn is_request_line(line: &[u8], rule: MethodRule) -> bool {
    let Some(sp) = memchr(b' ', line) else {
        return false;
    };
    let method = &line[..sp];
    let method_ok = match rule {
        MethodRule::Token => method.iter().all(|&b| is_tchar(b)),
        MethodRule::UpperCase => method.iter().all(|&b| is_resync_method_char(b)),
    };
    if method.is_empty() || method.len() > MAX_METHOD_LEN || !method_ok {
        return false;
    }
    let rest = &line[sp + 1..];
    let Some(last_sp) = memchr::memrchr(b' ', rest) else {
        return false;
    };
    let target = rest[..last_sp].trim_ascii();
    !target.is_empty()
        && target.iter().all(|&b| b > b' ' && b != 0x7f)
        && is_http1_version(&rest[last_sp + 1..])
}

/// Where the blank line that ends a head lies in `data`: the offset just past it. Scanning
/// starts at `from` (what an earlier call already ruled out) and stops at `limit` bytes, so a
/// head offered again and again is read once. CRLF and bare LF line ends are both accepted.
pub(super) fn find_head_end(data: &[u8], from: usize, limit: usize) -> Option<usize> {
    let window = &data[..data.len().min(limit)];
    let mut at = from;
    while at < window.len() {
        let nl = at + memchr(b'\n', &window[at..])?;
        match window.get(nl + 1..) {
            Some([b'\n', ..]) => return Some(nl + 2),
            Some([b'\r', b'\n', ..]) => return Some(nl + 3),
            _ => at = nl + 1,
        }
    }
    None
}

/// Where a later call may resume [`find_head_end`] after it failed on `len` bytes: the last
/// two bytes may begin a terminator that is still cut.
pub(super) fn resume_point(len: usize) -> usize {
    len.saturating_sub(2)
}

/// The start line of a parsed head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum StartLine {
    Request { method: String, path: String },
    Response { code: u16, reason: String },
}

/// A parsed head, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Head {
    pub start: StartLine,
    pub version: &'static str,
    pub headers: Vec<(String, String)>,
}

/// Headers held on the stack for a typical head; more are retried on the heap.
const INLINE_HEADERS: usize = 64;

fn parser_config() -> httparse::ParserConfig {
    let mut config = httparse::ParserConfig::default();
    // An analyzer reads what real peers accept, not only what the RFC allows.
    config
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .ignore_invalid_headers_in_requests(true)
        .ignore_invalid_headers_in_responses(true);
    config
}

fn version_name(minor: Option<u8>) -> &'static str {
    match minor {
        Some(0) => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// Parse a whole head (`bytes` ends with its blank line) of the given kind. None when it is
/// not valid HTTP/1.x.
pub(super) fn parse_head(bytes: &[u8], kind: StartKind) -> Option<Head> {
    let mut inline = [httparse::EMPTY_HEADER; INLINE_HEADERS];
    match parse_into(bytes, kind, &mut inline) {
        Err(httparse::Error::TooManyHeaders) => {
            // The smallest header line is three bytes ("a:\n").
            let mut many = vec![httparse::EMPTY_HEADER; bytes.len() / 3 + 1];
            parse_into(bytes, kind, &mut many).ok().flatten()
        }
        other => other.ok().flatten(),
    }
}

fn parse_into<'b>(
    bytes: &'b [u8],
    kind: StartKind,
    headers: &mut [httparse::Header<'b>],
) -> Result<Option<Head>, httparse::Error> {
    let config = parser_config();
    match kind {
        StartKind::Request => {
            let mut request = httparse::Request::new(headers);
            if config.parse_request(&mut request, bytes)?.is_partial() {
                return Ok(None);
            }
            Ok(Some(Head {
                start: StartLine::Request {
                    method: request.method.unwrap_or_default().to_owned(),
                    path: request.path.unwrap_or_default().to_owned(),
                },
                version: version_name(request.version),
                headers: owned_headers(request.headers),
            }))
        }
        StartKind::Response => {
            let mut response = httparse::Response::new(headers);
            if config.parse_response(&mut response, bytes)?.is_partial() {
                return Ok(None);
            }
            Ok(Some(Head {
                start: StartLine::Response {
                    code: response.code.unwrap_or_default(),
                    reason: response.reason.unwrap_or_default().to_owned(),
                },
                version: version_name(response.version),
                headers: owned_headers(response.headers),
            }))
        }
    }
}

/// Parse a chunked body's trailer section (`bytes` ends with its blank line).
pub(super) fn parse_trailers(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let mut headers = vec![httparse::EMPTY_HEADER; bytes.len() / 3 + 1];
    match httparse::parse_headers(bytes, &mut headers) {
        Ok(httparse::Status::Complete((_, parsed))) => Some(owned_headers(parsed)),
        _ => None,
    }
}

/// The values of every header named `name`, in order.
pub(super) fn header_values<'h>(
    headers: &'h [(String, String)],
    name: &'h str,
) -> impl Iterator<Item = &'h str> {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The comma-separated elements of every header named `name`, trimmed, empty ones skipped.
pub(super) fn list_elements<'h>(
    headers: &'h [(String, String)],
    name: &'h str,
) -> impl Iterator<Item = &'h str> {
    header_values(headers, name)
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

/// Does the list header `name` hold `token` (case-insensitive)?
pub(super) fn has_element(headers: &[(String, String)], name: &str, token: &str) -> bool {
    list_elements(headers, name).any(|e| e.eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_other_protocols_are_turned_away_at_their_first_bytes() {
        assert!(!plausible_start(&[0x16, 0x03, 0x01], None));
        assert!(!plausible_start(b"SSH-2.0-OpenSSH_9.6\r\n", None));
        assert!(!plausible_start(b"PRI", Some(StartKind::Response)));
        assert!(!plausible_start(&[b'A'; 40], None));
        assert!(plausible_start(b"GE", None));
        assert!(plausible_start(b"GET /", Some(StartKind::Request)));
        assert!(plausible_start(b"HTT", Some(StartKind::Response)));
        assert!(plausible_start(b"HTTP/1.1 2", None));
        assert!(!plausible_start(b"HTTP/1.1 2", Some(StartKind::Request)));
    }

    #[test]
    fn start_lines_are_recognised_and_others_are_not() {
        let token = MethodRule::Token;
        assert_eq!(
            classify_line(b"GET /a?b HTTP/1.1\r", token),
            Some(StartKind::Request)
        );
        assert_eq!(
            classify_line(b"HTTP/1.0 404 Not Found", token),
            Some(StartKind::Response)
        );
        assert_eq!(
            classify_line(b"HTTP/1.1 204", token),
            Some(StartKind::Response)
        );
        assert_eq!(
            classify_line(b"m-search * HTTP/1.1", token),
            Some(StartKind::Request)
        );
        assert_eq!(
            classify_line(b"m-search * HTTP/1.1", MethodRule::UpperCase),
            None
        );
        assert_eq!(classify_line(b"PRI * HTTP/2.0", token), None);
        assert_eq!(classify_line(b"GET /\r", token), None);
        assert_eq!(classify_line(b"HTTP/1.1 20 OK", token), None);
        assert_eq!(classify_line(b"HTTP/1.1 2000", token), None);
        assert_eq!(classify_line(b"220 mail.example.com ESMTP", token), None);
    }

    #[test]
    fn head_end_with_crlf_or_bare_lf_and_resumed_scans() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody";
        assert_eq!(find_head_end(head, 0, 1000), Some(27));
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\nHost: a\n\nx", 0, 1000),
            Some(24)
        );
        // Resuming where a shorter offer stopped finds the same end.
        let cut = &head[..26];
        assert_eq!(find_head_end(cut, 0, 1000), None);
        assert_eq!(find_head_end(head, resume_point(cut.len()), 1000), Some(27));
        // The end must lie within the limit.
        assert_eq!(find_head_end(head, 0, 26), None);
        assert_eq!(find_head_end(head, 0, 27), Some(27));
    }

    #[test]
    fn heads_become_owned_fields_with_lossy_values_and_repeats_kept() {
        let head = parse_head(
            b"GET /x HTTP/1.0\r\nA: 1\r\nB: \xff\r\nA: 2\r\n\r\n",
            StartKind::Request,
        )
        .unwrap();
        assert_eq!(
            head.start,
            StartLine::Request {
                method: "GET".into(),
                path: "/x".into()
            }
        );
        assert_eq!(head.version, "HTTP/1.0");
        assert_eq!(
            head.headers,
            [
                ("A".into(), "1".into()),
                ("B".into(), "\u{fffd}".into()),
                ("A".into(), "2".into())
            ]
        );
        assert_eq!(
            list_elements(&head.headers, "a").collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n", StartKind::Request).is_none());
    }

    #[test]
    fn more_headers_than_fit_inline_are_kept() {
        let mut bytes = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..500 {
            bytes.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        let head = parse_head(&bytes, StartKind::Response).unwrap();
        assert_eq!(head.headers.len(), 500);
    }
}
