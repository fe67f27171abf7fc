//! Any bytes as a capture: through `open_stream` (1 MiB window over an in-memory cursor) and
//! through `CaptureReader::open` with a 64-byte window over a 7-bytes-per-read stream. Both must
//! never panic, must keep the `Source` contract, and must read the same packets.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::check_capture_bytes(data);
});
