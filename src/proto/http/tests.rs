//! Whole exchanges through the tracker, fed the way the reassembler feeds it: bytes a call
//! leaves unconsumed are offered again in front of the next ones, and dropped at a gap.

use super::websocket::tests::frame;
use super::*;
use crate::flow::{Endpoint, FlowKey, Side};
use crate::reassembly::{CloseReason, ConnectionInfo, StreamHandler};
use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};

/// The client (10.0.0.1:40000) is the lower endpoint, so side A.
const C: Side = Side::A;
const S: Side = Side::B;

fn endpoint(last: u8, port: u16) -> Endpoint {
    Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
        port,
    }
}

fn info(id: u64, client_port: u16, server_port: u16, ts_ns: i64) -> ConnectionInfo {
    ConnectionInfo {
        id,
        key: FlowKey::new(6, 0, endpoint(1, client_port), endpoint(2, server_port)).0,
        client: Some(Side::A),
        first_ns: 0,
        ts_ns,
    }
}

struct Harness {
    tracker: HttpTracker<Vec<HttpEvent>>,
    /// What the reassembler carries for the connection.
    connection: HttpConnection,
    held: [Vec<u8>; 2],
    info: ConnectionInfo,
}

impl Harness {
    fn new(config: HttpConfig) -> Self {
        let mut tracker = HttpTracker::new(config, Vec::new()).unwrap();
        let info = info(7, 40000, 80, 0);
        Harness {
            connection: tracker.open(&info),
            tracker,
            held: [Vec::new(), Vec::new()],
            info,
        }
    }

    fn with_defaults() -> Self {
        Self::new(HttpConfig::default())
    }

    fn at(&mut self, ts_ns: i64) -> &mut Self {
        self.info.ts_ns = ts_ns;
        self
    }

    fn send(&mut self, from: Side, bytes: &[u8]) -> &mut Self {
        let held = &mut self.held[from.index()];
        held.extend_from_slice(bytes);
        let used = self
            .tracker
            .data(&self.info, &mut self.connection, from, held);
        assert!(used <= held.len());
        held.drain(..used);
        let limit = self.tracker.config().max_header_bytes;
        assert!(held.len() <= limit, "held {} bytes", held.len());
        self
    }

    fn gap(&mut self, from: Side, length: u64) -> &mut Self {
        self.held[from.index()].clear();
        self.tracker
            .gap(&self.info, &mut self.connection, from, length);
        self
    }

    fn close(&mut self, from: Side, reason: CloseReason) -> &mut Self {
        self.tracker
            .close(&self.info, &mut self.connection, from, reason);
        self
    }

    fn events(&self) -> &[HttpEvent] {
        self.tracker.sink()
    }

    fn messages(&self) -> Vec<&HttpMessage> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                HttpEvent::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    fn websockets(&self) -> Vec<&WebSocketMessage> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                HttpEvent::WebSocket(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    fn problems(&self) -> Vec<ProblemKind> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                HttpEvent::Problem(p) => Some(p.kind),
                _ => None,
            })
            .collect()
    }

    /// (direction, method or status, body) of each message, for short comparisons.
    fn summary(&self) -> Vec<(Direction, String, String)> {
        self.messages()
            .iter()
            .map(|m| {
                let start = match m.direction {
                    Direction::Request => m.method.clone().unwrap_or_default(),
                    Direction::Response => m.status_code.unwrap_or_default().to_string(),
                };
                (
                    m.direction,
                    start,
                    String::from_utf8_lossy(&m.body).into_owned(),
                )
            })
            .collect()
    }
}

fn req(method: &str) -> (Direction, String, String) {
    (Direction::Request, method.into(), String::new())
}

fn resp(code: u16, body: &str) -> (Direction, String, String) {
    (Direction::Response, code.to_string(), body.into())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn a_request_and_its_response_with_every_field() {
    let mut h = Harness::with_defaults();
    h.at(1_000)
        .send(C, b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nAccept: text/html\r\n\r\n");
    h.at(5_000).send(
        S,
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Bin: \xfe\r\n\r\nhello",
    );
    let m = h.messages();
    assert_eq!(m.len(), 2);
    let (request, response) = (m[0], m[1]);
    assert_eq!(request.connection, 7);
    assert_eq!(request.timestamp_ns, 1_000);
    assert_eq!(request.client, endpoint(1, 40000));
    assert_eq!(request.server, endpoint(2, 80));
    assert_eq!(request.direction, Direction::Request);
    assert_eq!(request.method.as_deref(), Some("GET"));
    assert_eq!(request.path.as_deref(), Some("/index.html?q=1"));
    assert_eq!(request.version, "HTTP/1.1");
    assert_eq!(
        request.headers,
        [
            ("Host".into(), "example.com".into()),
            ("Accept".into(), "*/*".into()),
            ("Accept".into(), "text/html".into())
        ]
    );
    assert_eq!((request.body_length, request.incomplete), (0, false));
    assert_eq!(response.status_code, Some(200));
    assert_eq!(response.reason.as_deref(), Some("OK"));
    assert_eq!(response.header("x-bin"), Some("\u{fffd}"));
    assert_eq!(
        (response.body.as_slice(), response.body_length),
        (&b"hello"[..], 5)
    );
    assert_eq!(
        response.request,
        Some(PairedRequest {
            method: "GET".into(),
            path: "/index.html?q=1".into(),
            timestamp_ns: 1_000
        })
    );
    assert_eq!(response.timestamp_ns, 5_000);
    assert_eq!(h.tracker.stats().requests, 1);
    assert_eq!(h.tracker.stats().responses, 1);
}

#[test]
fn pipelined_requests_pair_with_responses_in_order() {
    let mut h = Harness::with_defaults();
    h.send(
        C,
        b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyzGET /c HTTP/1.1\r\n\r\n",
    );
    h.send(
        S,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nbHTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nc",
    );
    let paths: Vec<_> = h
        .messages()
        .iter()
        .filter(|m| m.direction == Direction::Response)
        .map(|m| {
            let r = m.request.as_ref().unwrap();
            (m.status_code.unwrap(), r.method.clone(), r.path.clone())
        })
        .collect();
    assert_eq!(
        paths,
        [
            (200, "GET".into(), "/a".into()),
            (201, "POST".into(), "/b".into()),
            (404, "GET".into(), "/c".into())
        ]
    );
    assert_eq!(h.messages()[1].body, b"xyz");
}

#[test]
fn a_response_to_head_has_no_body() {
    let mut h = Harness::with_defaults();
    h.send(C, b"HEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    h.send(
        S,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!(
        h.summary(),
        [req("HEAD"), req("GET"), resp(200, ""), resp(200, "ok")]
    );
    assert!(h.problems().is_empty());
}

#[test]
fn continue_is_emitted_and_leaves_its_request_waiting() {
    let mut h = Harness::with_defaults();
    h.send(
        C,
        b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    h.send(S, b"HTTP/1.1 100 Continue\r\n\r\n");
    h.send(C, b"dataGET /next HTTP/1.1\r\n\r\n");
    h.send(
        S,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    let responses: Vec<_> = h
        .messages()
        .iter()
        .filter(|m| m.direction == Direction::Response)
        .map(|m| {
            (
                m.status_code.unwrap(),
                m.request.as_ref().unwrap().path.clone(),
            )
        })
        .collect();
    assert_eq!(
        responses,
        [
            (100, "/up".into()),
            (200, "/up".into()),
            (200, "/next".into())
        ]
    );
}

#[test]
fn no_content_and_not_modified_have_no_body() {
    let mut h = Harness::with_defaults();
    h.send(
        C,
        b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n",
    );
    h.send(
        S,
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_eq!(
        h.summary()[3..],
        [resp(204, ""), resp(304, ""), resp(200, "x")]
    );
}

#[test]
fn an_accepted_connect_turns_the_connection_into_a_tunnel() {
    let mut h = Harness::with_defaults();
    h.send(
        C,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    );
    // The client's TLS hello may race the proxy's answer: it waits, then is passed over.
    h.send(C, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
    h.send(
        S,
        b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x03\x00\x5a\x02",
    );
    h.send(C, b"\x17\x03\x03 more TLS");
    h.send(S, b"\x17\x03\x03 more TLS");
    assert_eq!(h.summary(), [req("CONNECT"), resp(200, "")]);
    assert!(h.problems().is_empty());
}

#[test]
fn a_refused_connect_stays_http() {
    let mut h = Harness::with_defaults();
    h.send(C, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n");
    h.send(
        S,
        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno",
    );
    h.send(C, b"GET / HTTP/1.1\r\n\r\n");
    h.send(S, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(
        h.summary(),
        [req("CONNECT"), resp(407, "no"), req("GET"), resp(200, "ok")]
    );
}

#[test]
fn switching_to_something_other_than_websocket_ends_http() {
    let mut h = Harness::with_defaults();
    h.send(
        C,
        b"GET / HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n",
    );
    h.send(
        S,
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n\x00\x00\x12\x04\x00",
    );
    h.send(C, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert_eq!(h.summary(), [req("GET"), resp(101, "")]);
    assert!(h.problems().is_empty());
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let mut h = Harness::with_defaults();
    h.send(
        C,
        b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 999\r\n\r\n3;a=b\r\nabc\r\n0\r\n\r\n",
    );
    h.send(
        S,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n1 ; ext=\"x\"\r\n!\r\n0\r\nServer-Timing: db;dur=53\r\n\r\n",
    );
    let m = h.messages();
    assert_eq!((m[0].body.as_slice(), m[0].body_length), (&b"abc"[..], 3));
    assert_eq!(m[1].body, b"hello!");
    assert_eq!(
        m[1].trailers,
        [("Server-Timing".into(), "db;dur=53".into())]
    );
    assert!(!m[1].incomplete);
}

#[test]
fn a_body_until_close_is_complete_on_fin_and_incomplete_on_reset() {
    let mut h = Harness::with_defaults();
    h.send(C, b"GET / HTTP/1.0\r\n\r\n");
    h.send(S, b"HTTP/1.0 200 OK\r\n\r\nall of ");
    h.send(S, b"it");
    assert_eq!(h.messages().len(), 1);
    h.close(S, CloseReason::Fin);
    let m = h.messages();
    assert_eq!(
        (m[1].body.as_slice(), m[1].incomplete),
        (&b"all of it"[..], false)
    );

    let mut h = Harness::with_defaults();
    h.send(C, b"GET / HTTP/1.0\r\n\r\n");
    h.send(S, b"HTTP/1.0 200 OK\r\n\r\npart");
    h.close(S, CloseReason::Reset);
    assert!(h.messages()[1].incomplete);
}

#[test]
fn a_content_length_body_cut_by_the_close_is_incomplete_and_state_is_freed() {
    let mut h = Harness::with_defaults();
    h.send(C, b"GET / HTTP/1.1\r\n\r\n");
    h.send(S, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    assert!(h.held[1].is_empty(), "body bytes are consumed as they come");
    h.close(S, CloseReason::Fin);
    assert!(h.connection.is_open());
    h.close(C, CloseReason::Fin);
    assert!(!h.connection.is_open());
    let m = h.messages();
    assert_eq!((m[1].body_length, m[1].incomplete), (3, true));
}

#[test]
fn a_direction_closed_before_any_byte_still_frees_the_connection() {
    // Found by the http_parser fuzz target: the state made by the client's first bytes did
    // not know the server had already closed.
    let mut h = Harness::with_defaults();
    h.close(S, CloseReason::Fin);
    h.send(C, b"GET / HTTP/1.1\r\n\r\n");
    h.close(C, CloseReason::Fin);
    assert!(!h.connection.is_open());
    assert_eq!(h.messages().len(), 1);
}

#[test]
fn gzip_and_deflate_bodies_are_decoded_when_asked() {
    let text = b"The quick brown fox jumps over the lazy dog. ".repeat(50);
    let gz = gzip(&text);
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::best());
    zlib.write_all(&text).unwrap();
    let zlib = zlib.finish().unwrap();
    let mut exchange = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n".to_vec();
    exchange.extend_from_slice(format!("Content-Length: {}\r\n\r\n", gz.len()).as_bytes());
    exchange.extend_from_slice(&gz);
    exchange.extend_from_slice(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            zlib.len()
        )
        .as_bytes(),
    );
    exchange.extend_from_slice(&zlib);
    exchange.extend_from_slice(b"\r\n0\r\n\r\n");

    for decompress in [true, false] {
        let mut h = Harness::new(HttpConfig {
            decompress,
            ..HttpConfig::default()
        });
        h.send(C, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
        h.send(S, &exchange);
        let m = h.messages();
        let (gzipped, deflated) = (m[2], m[3]);
        assert_eq!(gzipped.body_length, gz.len() as u64);
        assert_eq!(deflated.body_length, zlib.len() as u64);
        if decompress {
            assert_eq!(
                (gzipped.body.as_slice(), gzipped.body_decoded),
                (&text[..], true)
            );
            assert_eq!(deflated.body, text);
        } else {
            assert_eq!(
                (gzipped.body.as_slice(), gzipped.body_decoded),
                (&gz[..], false)
            );
        }
    }
}

#[test]
fn a_decoded_body_is_cut_at_the_limit_and_an_undecodable_one_kept_as_sent() {
    let text = vec![b'a'; 10_000];
    let gz = gzip(&text);
    let mut h = Harness::new(HttpConfig {
        decompress: true,
        max_body_size: 1000,
        ..HttpConfig::default()
    });
    h.send(C, b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    let mut exchange = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        gz.len()
    )
    .into_bytes();
    exchange.extend_from_slice(&gz);
    exchange.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
    );
    h.send(S, &exchange);
    let m = h.messages();
    assert_eq!(
        (m[2].body.len(), m[2].body_truncated, m[2].body_decoded),
        (1000, true, true)
    );
    assert_eq!(
        (m[3].body.as_slice(), m[3].body_decoded),
        (&b"nope"[..], false)
    );
}

#[test]
fn bodies_past_the_limit_are_counted_not_kept() {
    let mut h = Harness::new(HttpConfig {
        max_body_size: 8,
        ..HttpConfig::default()
    });
    h.send(
        C,
        b"POST / HTTP/1.1\r\nContent-Length: 20\r\n\r\n0123456789",
    );
    h.send(C, b"abcdefghij");
    let m = h.messages();
    assert_eq!(
        (m[0].body.as_slice(), m[0].body_length, m[0].body_truncated),
        (&b"01234567"[..], 20, true)
    );
}

#[test]
fn a_gap_inside_a_body_is_skipped_and_reading_goes_on() {
    let mut h = Harness::with_defaults();
    h.send(C, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    h.send(S, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n012");
    h.gap(S, 4);
    h.send(S, b"789HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let m = h.messages();
    assert_eq!(
        (m[2].body.as_slice(), m[2].body_length, m[2].incomplete),
        (&b"012789"[..], 6, true)
    );
    assert_eq!((m[3].body.as_slice(), m[3].incomplete), (&b"ok"[..], false));
    assert_eq!(m[3].request.as_ref().unwrap().path, "/b");
}

#[test]
fn a_gap_past_the_body_resyncs_and_drops_requests_sent_before_it() {
    let mut h = Harness::with_defaults();
    h.at(100)
        .send(C, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    h.at(200)
        .send(S, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n012");
    // The rest of /a's body and /b's response are lost.
    h.at(300).gap(S, 60);
    h.send(S, b"of a body\r\n");
    h.at(400).send(C, b"GET /c HTTP/1.1\r\n\r\n");
    h.at(500)
        .send(S, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc");
    let m = h.messages();
    assert_eq!((m[2].body_length, m[2].incomplete), (3, true));
    assert_eq!(m[2].request.as_ref().unwrap().path, "/a");
    let last = m.last().unwrap();
    assert_eq!(last.body, b"c");
    assert_eq!(last.request.as_ref().unwrap().path, "/c");
    assert!(h.problems().is_empty());
}

#[test]
fn a_gap_inside_a_head_resyncs_at_the_next_start_line() {
    let mut h = Harness::with_defaults();
    h.send(C, b"GET /first HTTP/1.1\r\nHost: a\r\n");
    h.gap(C, 100);
    h.send(C, b"er: value\r\n\r\nGET /second HTTP/1.1\r\n\r\n");
    assert_eq!(h.messages().len(), 1);
    assert_eq!(h.messages()[0].path.as_deref(), Some("/second"));
    assert!(h.problems().is_empty());
}

#[test]
fn a_gap_at_a_message_boundary_loses_nothing_after_it() {
    let mut h = Harness::with_defaults();
    h.send(C, b"GET /a HTTP/1.1\r\n\r\n");
    h.gap(C, 18);
    h.send(C, b"GET /c HTTP/1.1\r\n\r\n");
    let paths: Vec<_> = h
        .messages()
        .iter()
        .map(|m| m.path.clone().unwrap())
        .collect();
    assert_eq!(paths, ["/a", "/c"]);
}

#[test]
fn a_malformed_head_after_good_ones_is_reported_and_skipped() {
    let mut h = Harness::with_defaults();
    h.send(C, b"GET /a HTTP/1.1\r\n\r\n");
    h.send(
        C,
        b"GET /b HTTP/1.1\r\nBad\0Header: x\r\n\r\nGET /c HTTP/1.1\r\n\r\n",
    );
    let paths: Vec<_> = h
        .messages()
        .iter()
        .map(|m| m.path.clone().unwrap())
        .collect();
    assert_eq!(paths, ["/a", "/c"]);
    assert_eq!(h.problems(), [ProblemKind::BadHead]);
}

#[test]
fn tls_is_reported_once_per_connection() {
    let mut h = Harness::with_defaults();
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.extend_from_slice(&[0x5a; 500]);
    h.send(C, &hello[..3]);
    h.send(C, &hello[3..]);
    h.send(S, &[0x16, 0x03, 0x03, 0x00, 0x7a, 0x02, 0x00]);
    h.send(C, b"GET / HTTP/1.1\r\n\r\n");
    h.close(C, CloseReason::Fin).close(S, CloseReason::Fin);
    assert_eq!(h.problems(), [ProblemKind::NotHttp]);
    assert_eq!(h.events().len(), 1);
    let HttpEvent::Problem(p) = &h.events()[0] else {
        unreachable!()
    };
    // Turned away at its first three bytes: the sample is what had arrived.
    assert_eq!((p.side, p.sample.as_slice()), (C, &hello[..3]));
    assert!(h.held.iter().all(Vec::is_empty));
}

#[test]
fn another_protocol_is_reported_once() {
    let mut h = Harness::with_defaults();
    h.send(S, b"220 mail.example.com ESMTP ready\r\n");
    h.send(C, b"EHLO client.example.com\r\n");
    h.send(S, b"250-mail.example.com\r\n250 OK\r\n");
    assert_eq!(h.problems(), [ProblemKind::NotHttp]);
    assert_eq!(h.events().len(), 1);
}

#[test]
fn a_head_too_large_is_reported_then_the_next_message_read() {
    let mut h = Harness::new(HttpConfig {
        max_header_bytes: 256,
        ..HttpConfig::default()
    });
    let mut big = b"GET /big HTTP/1.1\r\n".to_vec();
    for i in 0..40 {
        big.extend_from_slice(format!("X-Filler-{i}: abcdefgh\r\n").as_bytes());
    }
    big.extend_from_slice(b"\r\nGET /small HTTP/1.1\r\n\r\n");
    h.send(C, &big);
    assert_eq!(h.problems(), [ProblemKind::HeadTooLarge]);
    assert_eq!(h.messages()[0].path.as_deref(), Some("/small"));
}

#[test]
fn conflicting_lengths_and_bad_chunks_are_reported_and_skipped() {
    let mut h = Harness::with_defaults();
    h.send(
        C,
        b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd\r\nGET /b HTTP/1.1\r\n\r\n",
    );
    h.send(
        S,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
    );
    h.send(S, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb");
    assert_eq!(
        h.problems(),
        [ProblemKind::BadFraming, ProblemKind::BadChunk]
    );
    let m = h.messages();
    assert!(m[0].incomplete);
    assert_eq!(m[1].path.as_deref(), Some("/b"));
    assert_eq!((m[2].body.as_slice(), m[2].incomplete), (&b"abc"[..], true));
    assert_eq!((m[3].body.as_slice(), m[3].incomplete), (&b"b"[..], false));
}

const MASK: Option<[u8; 4]> = Some([0xa1, 0xb2, 0xc3, 0xd4]);

const UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
const SWITCH: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

#[test]
fn websocket_after_upgrade_in_both_directions() {
    let mut h = Harness::with_defaults();
    // The client's first frame comes in the same segment as its upgrade request: it waits
    // until the switch is known.
    let mut first = UPGRADE.to_vec();
    first.extend(frame(true, 0x1, b"hi server", MASK));
    h.at(10).send(C, &first);
    let mut server = SWITCH.to_vec();
    server.extend(frame(true, 0x1, b"hi client", None));
    server.extend(frame(true, 0x9, b"", None));
    h.at(20).send(S, &server);
    let mut client = frame(true, 0xa, b"", MASK);
    client.extend(frame(false, 0x2, &[1, 2], MASK));
    client.extend(frame(true, 0x9, b"p", MASK));
    client.extend(frame(true, 0x0, &[3], MASK));
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    client.extend(frame(true, 0x8, &close, MASK));
    h.at(30).send(C, &client);
    assert_eq!(h.summary(), [req("GET"), resp(101, "")]);
    let ws: Vec<_> = h
        .websockets()
        .iter()
        .map(|m| (m.from, m.opcode_name(), m.payload.clone(), m.timestamp_ns))
        .collect();
    assert_eq!(
        ws,
        [
            (Peer::Server, "text", b"hi client".to_vec(), 20),
            (Peer::Server, "ping", vec![], 20),
            (Peer::Client, "text", b"hi server".to_vec(), 10),
            (Peer::Client, "pong", vec![], 30),
            (Peer::Client, "ping", b"p".to_vec(), 30),
            (Peer::Client, "binary", vec![1, 2, 3], 30),
            (Peer::Client, "close", close.clone(), 30),
        ]
    );
    let closing = h.websockets()[6];
    assert_eq!(
        (closing.close_code, closing.close_reason.as_deref()),
        (Some(1000), Some("bye"))
    );
    assert!(h.problems().is_empty());
}

#[test]
fn websocket_lengths_of_16_and_64_bits_are_cut_at_the_limit() {
    let mut h = Harness::new(HttpConfig {
        max_body_size: 1000,
        ..HttpConfig::default()
    });
    h.send(C, UPGRADE).send(S, SWITCH);
    let medium: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let large: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    h.send(S, &frame(true, 0x2, &medium, None));
    let large_frame = frame(true, 0x2, &large, MASK);
    for piece in large_frame.chunks(1460) {
        h.send(C, piece);
        assert!(h.held[0].len() < 14);
    }
    let ws = h.websockets();
    assert_eq!(
        (ws[0].payload.as_slice(), ws[0].truncated),
        (&medium[..], false)
    );
    assert_eq!(
        (
            ws[1].payload.as_slice(),
            ws[1].payload_length,
            ws[1].truncated
        ),
        (&large[..1000], 70_000, true)
    );
}

#[test]
fn a_broken_websocket_frame_is_reported_and_the_direction_passed_over() {
    let mut h = Harness::with_defaults();
    h.send(C, UPGRADE).send(S, SWITCH);
    let mut data = frame(false, 0x1, b"part", None);
    data.extend(frame(true, 0x5, b"reserved", None));
    data.extend(frame(true, 0x1, b"never read", None));
    h.send(S, &data);
    h.send(C, &frame(true, 0x1, b"still read", MASK));
    assert_eq!(h.problems(), [ProblemKind::BadWebSocketFrame]);
    let ws = h.websockets();
    assert_eq!(
        (ws[0].payload.as_slice(), ws[0].incomplete, ws[0].fin),
        (&b"part"[..], true, false)
    );
    assert_eq!(ws[1].payload, b"still read");
}

#[test]
fn the_time_of_a_message_is_that_of_its_first_byte() {
    let mut h = Harness::with_defaults();
    h.at(100).send(C, b"GET /a HTTP/1.1\r\n\r\nGE");
    h.at(200).send(C, b"T /b HTTP/1.1\r\nHo");
    h.at(300).send(C, b"st: x\r\n\r\n");
    h.at(400).send(
        S,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n",
    );
    h.at(900).send(S, b"Content-Length: 0\r\n\r\n");
    let times: Vec<_> = h
        .messages()
        .iter()
        .map(|m| (m.timestamp_ns, m.request.as_ref().map(|r| r.timestamp_ns)))
        .collect();
    assert_eq!(
        times,
        [(100, None), (100, None), (400, Some(100)), (400, Some(100))]
    );
}

#[test]
fn roles_come_from_server_ports_or_the_first_start_line() {
    // The server speaks first (the capture began after the request): its status line makes
    // it the server.
    let mut h = Harness::with_defaults();
    h.send(S, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let m = h.messages();
    assert_eq!(
        (m[0].server, m[0].request.is_none()),
        (endpoint(2, 80), true)
    );

    // On a configured server port the roles are fixed: a status line from the client is not
    // HTTP.
    let mut h = Harness::new(HttpConfig {
        server_ports: vec![80],
        ..HttpConfig::default()
    });
    h.send(C, b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(h.problems(), [ProblemKind::NotHttp]);

    // A connection on no server port is passed over.
    let mut h = Harness::new(HttpConfig {
        server_ports: vec![8080],
        ..HttpConfig::default()
    });
    h.send(C, b"GET / HTTP/1.1\r\n\r\n");
    assert!(h.events().is_empty());
    assert_eq!(h.tracker.stats().skipped_connections, 1);
}

#[test]
fn sampling_picks_the_same_connections_every_run() {
    let config = HttpConfig {
        sample_rate: 0.5,
        ..HttpConfig::default()
    };
    // Flow ids differ between runs (and for a reused 5-tuple); the choice hangs on the
    // endpoints alone.
    let traced = |first_id: u64| -> Vec<u16> {
        let mut tracker = HttpTracker::new(config.clone(), Vec::new()).unwrap();
        for port in 1000..1200u16 {
            let i = info(first_id + u64::from(port), port, 80, 0);
            let mut connection = tracker.open(&i);
            tracker.data(&i, &mut connection, C, b"GET / HTTP/1.1\r\n\r\n");
        }
        tracker
            .sink()
            .iter()
            .filter_map(|e| match e {
                HttpEvent::Message(m) => Some(m.client.port),
                _ => None,
            })
            .collect()
    };
    let first = traced(0);
    assert!((70..130).contains(&first.len()), "{}", first.len());
    assert_eq!(first, traced(1_000_000));
    let none = HttpConfig {
        sample_rate: 0.0,
        ..HttpConfig::default()
    };
    let mut h = Harness::new(none);
    h.send(C, b"GET / HTTP/1.1\r\n\r\n");
    assert!(h.events().is_empty());
}

#[test]
fn invalid_configurations_are_refused() {
    let bad_rate = HttpConfig {
        sample_rate: 1.5,
        ..HttpConfig::default()
    };
    assert_eq!(
        HttpTracker::new(bad_rate, Vec::new()).err(),
        Some(ConfigError::SampleRate(1.5))
    );
    let nan = HttpConfig {
        sample_rate: f64::NAN,
        ..HttpConfig::default()
    };
    assert!(HttpTracker::new(nan, Vec::new()).is_err());
    let huge_head = HttpConfig {
        max_header_bytes: 8 << 20,
        ..HttpConfig::default()
    };
    assert_eq!(
        HttpTracker::new(huge_head, Vec::new()).err(),
        Some(ConfigError::HeaderLimit(8 << 20))
    );
}

/// An exchange that touches most rules: pipelining, chunks with trailers, a gzip body,
/// 100-continue, an upgrade and WebSocket frames in both directions.
fn sample_exchange() -> Vec<(Side, Vec<u8>)> {
    let gz = gzip(&b"compressed body ".repeat(40));
    let mut gz_response = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        gz.len()
    )
    .into_bytes();
    gz_response.extend_from_slice(&gz);
    let mut ws_server = SWITCH.to_vec();
    ws_server.extend(frame(false, 0x1, b"frag", None));
    ws_server.extend(frame(true, 0x9, b"ping", None));
    ws_server.extend(frame(true, 0x0, &vec![b'x'; 300], None));
    let mut ws_client = frame(true, 0x2, &vec![7u8; 70_000], MASK);
    ws_client.extend(frame(true, 0x8, b"\x03\xe8done", MASK));
    vec![
        (
            C,
            b"\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nbody\r\n0\r\nT: 1\r\n\r\n"
                .to_vec(),
        ),
        (
            S,
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"
                .to_vec(),
        ),
        (
            C,
            b"PUT /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n".to_vec(),
        ),
        (S, b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()),
        (C, b"12345GET /gz HTTP/1.1\r\n\r\n".to_vec()),
        (
            S,
            [
                b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
                gz_response,
            ]
            .concat(),
        ),
        (C, UPGRADE.to_vec()),
        (S, ws_server),
        (C, ws_client),
    ]
}

fn run_split(
    exchange: &[(Side, Vec<u8>)],
    cuts: &mut dyn FnMut(usize) -> Vec<usize>,
) -> Vec<HttpEvent> {
    let mut h = Harness::new(HttpConfig {
        decompress: true,
        max_body_size: 4096,
        ..HttpConfig::default()
    });
    for (side, bytes) in exchange {
        let mut start = 0;
        for end in cuts(bytes.len()).into_iter().chain([bytes.len()]) {
            h.send(*side, &bytes[start..end]);
            start = end;
        }
    }
    h.close(C, CloseReason::Fin).close(S, CloseReason::Fin);
    h.tracker.into_sink()
}

#[test]
fn every_segmentation_gives_the_same_events() {
    let exchange = sample_exchange();
    let whole = run_split(&exchange, &mut |_| Vec::new());
    assert_eq!(
        whole
            .iter()
            .filter(|e| matches!(e, HttpEvent::Message(_)))
            .count(),
        11
    );
    assert_eq!(
        whole
            .iter()
            .filter(|e| matches!(e, HttpEvent::WebSocket(_)))
            .count(),
        4
    );
    assert!(!whole.iter().any(|e| matches!(e, HttpEvent::Problem(_))));
    let bytewise = run_split(&exchange, &mut |len| (1..len).collect());
    assert_eq!(bytewise, whole);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..200 {
        let split = run_split(&exchange, &mut |len| {
            let mut cuts: Vec<usize> = (0..next() % 12)
                .map(|_| (next() as usize) % len.max(1))
                .collect();
            cuts.sort_unstable();
            cuts
        });
        assert_eq!(split, whole);
    }
}
