use super::*;
use crate::pipeline::PipelineStats;
use crate::source::CaptureCounts;
use std::io::{Read, Write};

/// The value of one sample line (`name{labels} value`) in the exposition text.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[test]
fn every_series_is_exposed_from_the_start_at_zero() {
    let text = Metrics::new().encode();
    for series in [
        "gophercap_capture_received_packets_total",
        "gophercap_capture_dropped_packets_total",
        "gophercap_capture_interface_dropped_packets_total",
        "gophercap_packets_decoded_total",
        "gophercap_connections_active",
        "gophercap_evictions_total{reason=\"idle\"}",
        "gophercap_evictions_total{reason=\"capacity\"}",
        "gophercap_evictions_total{reason=\"reassembly_memory\"}",
        "gophercap_evictions_total{reason=\"detector_capacity\"}",
        "gophercap_reassembly_gaps_total",
        "gophercap_reassembly_gap_bytes_total",
        "gophercap_http_messages_total{direction=\"request\"}",
        "gophercap_http_messages_total{direction=\"response\"}",
        "gophercap_websocket_messages_total",
        "gophercap_output_drops_total{reason=\"write_error\"}",
        "gophercap_output_drops_total{reason=\"post_queue_full\"}",
        "gophercap_output_drops_total{reason=\"post_gave_up\"}",
        "gophercap_output_drops_total{reason=\"post_shutdown\"}",
        "gophercap_output_dropped_bytes_total{reason=\"startup_buffer_full\"}",
        "gophercap_output_dropped_bytes_total{reason=\"output_buffer_full\"}",
        "gophercap_output_dropped_bytes_total{reason=\"not_connected\"}",
        "gophercap_output_dropped_bytes_total{reason=\"write_error\"}",
        "gophercap_output_dropped_bytes_total{reason=\"abandoned\"}",
        "gophercap_post_retries_total",
        "gophercap_post_failures_total",
    ] {
        assert_eq!(sample(&text, series), Some(0), "{series} in\n{text}");
    }
    assert!(
        text.contains("# TYPE gophercap_http_messages counter"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn published_totals_are_what_is_exposed() {
    let m = Metrics::new();
    m.publish_capture(CaptureCounts {
        received: 5_000_000_000,
        dropped: 7,
        interface_dropped: 1,
    });
    let stats = PipelineStats {
        packets: 1234,
        evictions: 3,
        idle_expired: 4,
        reassembly_sheds: 5,
        ..PipelineStats::default()
    };
    m.publish_pipeline(&stats, 42);
    m.publish_streams(StreamCounts {
        gaps: 2,
        gap_bytes: 2920,
    });
    m.publish_http(HttpCounts {
        requests: 20,
        responses: 19,
        websocket_messages: 6,
        unwritten: 1,
    });
    m.publish_post(&crate::sink::post::PostStats {
        sent: 100,
        attempts_failed: 10,
        dropped_after_retries: 2,
        dropped_queue_full: 9,
        abandoned_at_shutdown: 10,
    });
    m.publish_detector_evictions(11);
    m.publish_dropped_bytes(DroppedBytes {
        startup_buffer_full: 12,
        output_buffer_full: 13,
        not_connected: 14,
        write_error: 15,
        abandoned: 16,
    });
    let text = m.encode();
    let expect = [
        ("gophercap_capture_received_packets_total", 5_000_000_000),
        ("gophercap_capture_dropped_packets_total", 7),
        ("gophercap_capture_interface_dropped_packets_total", 1),
        ("gophercap_packets_decoded_total", 1234),
        ("gophercap_connections_active", 42),
        ("gophercap_evictions_total{reason=\"capacity\"}", 3),
        ("gophercap_evictions_total{reason=\"idle\"}", 4),
        ("gophercap_evictions_total{reason=\"reassembly_memory\"}", 5),
        (
            "gophercap_evictions_total{reason=\"detector_capacity\"}",
            11,
        ),
        ("gophercap_reassembly_gaps_total", 2),
        ("gophercap_reassembly_gap_bytes_total", 2920),
        ("gophercap_http_messages_total{direction=\"request\"}", 20),
        ("gophercap_http_messages_total{direction=\"response\"}", 19),
        ("gophercap_websocket_messages_total", 6),
        ("gophercap_output_drops_total{reason=\"write_error\"}", 1),
        ("gophercap_output_drops_total{reason=\"post_gave_up\"}", 2),
        (
            "gophercap_output_drops_total{reason=\"post_queue_full\"}",
            9,
        ),
        ("gophercap_output_drops_total{reason=\"post_shutdown\"}", 10),
        (
            "gophercap_output_dropped_bytes_total{reason=\"startup_buffer_full\"}",
            12,
        ),
        (
            "gophercap_output_dropped_bytes_total{reason=\"output_buffer_full\"}",
            13,
        ),
        (
            "gophercap_output_dropped_bytes_total{reason=\"not_connected\"}",
            14,
        ),
        (
            "gophercap_output_dropped_bytes_total{reason=\"write_error\"}",
            15,
        ),
        (
            "gophercap_output_dropped_bytes_total{reason=\"abandoned\"}",
            16,
        ),
        ("gophercap_post_retries_total", 8),
        ("gophercap_post_failures_total", 2),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
}

fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[test]
fn the_server_answers_metrics_health_and_readiness() {
    let metrics = Arc::new(Metrics::new());
    let server = metrics.serve("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = server.address();
    assert_eq!(get(address, "/healthz").0, 200);
    assert_eq!(get(address, "/readyz").0, 503);
    metrics.set_ready();
    assert_eq!(get(address, "/readyz").0, 200);
    metrics.publish_http(HttpCounts {
        requests: 3,
        ..HttpCounts::default()
    });
    let (status, body) = get(address, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(
            &body,
            "gophercap_http_messages_total{direction=\"request\"}"
        ),
        Some(3),
        "{body}"
    );
    assert_eq!(get(address, "/other").0, 404);
}
