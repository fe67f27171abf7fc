//! Any bytes as a packet of any link type: the decoder must never panic, and every view it
//! returns must lie inside the bytes it was given.
#![no_main]

use gophercap::decode::{DecodeOptions, Transport, decode};
use libfuzzer_sys::fuzz_target;

/// Link types the decoder knows, plus one it does not.
const LINK_TYPES: [u32; 11] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147];

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let link_type = LINK_TYPES[usize::from(selector & 0x0f) % LINK_TYPES.len()];
    let options = DecodeOptions {
        verify_checksums: selector & 0x80 != 0,
    };
    let d = decode(link_type, data, &options);
    let range = data.as_ptr_range();
    let payload = d.payload.as_ptr_range();
    assert!(
        d.payload.is_empty() || (payload.start >= range.start && payload.end <= range.end),
        "payload outside the packet"
    );
    let _ = (d.ip_src(), d.ip_dst(), d.src_port(), d.dst_port(), d.ip_protocol());
    let _ = (d.ip_total_len(), d.vlan_ids().len(), d.truncated, d.fragment);
    assert!(d.anomalies.names().count() <= 32);
    if let Transport::Tcp(tcp) = &d.transport {
        let summary = tcp.options_summary();
        assert!(summary.sack().len() <= 4);
        for option in tcp.options_iter() {
            std::hint::black_box(option);
        }
    }
});
