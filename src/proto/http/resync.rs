//! Finding the next message after bytes that could not be read (a gap, a malformed head or
//! chunk): skip to a line that starts a request or a status line, as Zeek and Wireshark do.
//! Only whole lines are judged, so where the search lands does not depend on how the bytes
//! were split into segments.

use super::head::{MethodRule, StartKind, classify_line};
use memchr::memchr;

/// Where a search for a start line got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Resync {
    /// A start line begins at this offset.
    Found(usize),
    /// Nothing before this offset can start a message; the bytes from it on are a line that
    /// is still cut (keep them and search again with more) when `at_line_start`, else the
    /// middle of a line.
    Skip { to: usize, at_line_start: bool },
}

/// Search `data` for a line that starts a message of `expected` (either kind when None).
/// `at_line_start` says whether `data` begins a line. A line longer than `max_line` is never
/// a start line.
pub(super) fn find_start(
    data: &[u8],
    at_line_start: bool,
    expected: Option<StartKind>,
    max_line: usize,
) -> Resync {
    let mut at = 0;
    if !at_line_start {
        match memchr(b'\n', data) {
            Some(nl) => at = nl + 1,
            None => {
                return Resync::Skip {
                    to: data.len(),
                    at_line_start: false,
                };
            }
        }
    }
    loop {
        let rest = &data[at..];
        let window = &rest[..rest.len().min(max_line)];
        match memchr(b'\n', window) {
            Some(nl) => {
                let kind = classify_line(&rest[..nl], MethodRule::UpperCase);
                if kind.is_some() && (expected.is_none() || kind == expected) {
                    return Resync::Found(at);
                }
                at += nl + 1;
            }
            None if rest.len() < max_line => {
                return Resync::Skip {
                    to: at,
                    at_line_start: true,
                };
            }
            None => {
                return Resync::Skip {
                    to: data.len(),
                    at_line_start: false,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lands_on_the_next_start_line_of_the_expected_kind() {
        let data = b"tail of a body\r\nHTTP/1.1 200 OK\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            find_start(data, false, Some(StartKind::Request), 100),
            Resync::Found(33)
        );
        assert_eq!(
            find_start(data, false, Some(StartKind::Response), 100),
            Resync::Found(16)
        );
        // At a line start the first line is a candidate too.
        assert_eq!(find_start(&data[16..], true, None, 100), Resync::Found(0));
        assert_eq!(find_start(&data[16..], false, None, 100), Resync::Found(17));
    }

    #[test]
    fn a_cut_line_is_kept_and_a_long_one_skipped() {
        assert_eq!(
            find_start(b"junk\nGET /very", false, None, 100),
            Resync::Skip {
                to: 5,
                at_line_start: true
            }
        );
        assert_eq!(
            find_start(b"junk\nGET /very", false, None, 8),
            Resync::Skip {
                to: 14,
                at_line_start: false
            }
        );
        assert_eq!(
            find_start(b"no line end here", false, None, 100),
            Resync::Skip {
                to: 16,
                at_line_start: false
            }
        );
        assert_eq!(
            find_start(b"lower case get / HTTP/1.1\n", true, None, 100),
            Resync::Skip {
                to: 26,
                at_line_start: true
            }
        );
    }
}
