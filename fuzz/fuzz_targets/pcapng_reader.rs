//! pcapng from the inside: the first byte picks how the rest is framed, so the fuzzer can spend
//! its time on blocks after a valid section header and interface instead of rediscovering them.
//!
//! Control byte bits:
//! - 0: prepend a Section Header Block and an Interface Description Block (else the rest is
//!   read as it is)
//! - 1: big-endian headers (else little-endian)
//! - 2-3: the IDB's if_tsresol option: none, 9 (ns), 3 (ms), 0x8a (2^-10 s)
//! - 4: add a second IDB (LINKTYPE_RAW), so interface 1 exists
//! - 5: the IDB carries an if_tsoffset option
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fn put_u16(out: &mut Vec<u8>, v: u16, be: bool) {
    out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
}

fn put_u32(out: &mut Vec<u8>, v: u32, be: bool) {
    out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
}

fn section_header(out: &mut Vec<u8>, be: bool) {
    put_u32(out, 0x0a0d_0d0a, be);
    put_u32(out, 28, be);
    put_u32(out, 0x1a2b_3c4d, be);
    put_u16(out, 1, be);
    put_u16(out, 0, be);
    out.extend_from_slice(&[0xff; 8]); // section length: unspecified (-1)
    put_u32(out, 28, be);
}

fn interface(out: &mut Vec<u8>, be: bool, link_type: u16, tsresol: Option<u8>, tsoffset: bool) {
    let mut options = Vec::new();
    if let Some(resol) = tsresol {
        put_u16(&mut options, 9, be);
        put_u16(&mut options, 1, be);
        options.extend_from_slice(&[resol, 0, 0, 0]);
    }
    if tsoffset {
        put_u16(&mut options, 14, be);
        put_u16(&mut options, 8, be);
        let v: u64 = 3600;
        options.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    if !options.is_empty() {
        put_u16(&mut options, 0, be); // opt_endofopt
        put_u16(&mut options, 0, be);
    }
    let len = 20 + options.len() as u32;
    put_u32(out, 1, be);
    put_u32(out, len, be);
    put_u16(out, link_type, be);
    put_u16(out, 0, be);
    put_u32(out, 262_144, be);
    out.extend_from_slice(&options);
    put_u32(out, len, be);
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    if control & 1 == 0 {
        common::check_capture_bytes(rest);
        return;
    }
    let be = control & 2 != 0;
    let tsresol = match (control >> 2) & 3 {
        0 => None,
        1 => Some(9),
        2 => Some(3),
        _ => Some(0x8a),
    };
    let mut input = Vec::with_capacity(96 + rest.len());
    section_header(&mut input, be);
    interface(&mut input, be, 1, tsresol, control & 0x20 != 0);
    if control & 0x10 != 0 {
        interface(&mut input, be, 101, None, false);
    }
    input.extend_from_slice(rest);
    common::check_capture_bytes(&input);
});
