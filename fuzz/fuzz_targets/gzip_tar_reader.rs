//! Gzip and tar: whatever `open_stream` recognises, drained to the end; archives are walked member
//! by member and every member capture drained.
//!
//! Control byte bits:
//! - 0: gzip the rest before reading it (so the fuzzer's mutations land in the decompressed
//!   stream: tar headers and captures behind a valid gzip layer)
//! - 1: read through a 7-bytes-per-read stream instead of an in-memory cursor
#![no_main]

mod common;

use flate2::Compression as Level;
use flate2::write::GzEncoder;
use gophercap::source::input::{OpenedInput, Selection, open_stream};
use libfuzzer_sys::fuzz_target;
use std::io::{Cursor, Read, Write};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let gzipped;
    let bytes: &[u8] = if control & 1 != 0 {
        let mut enc = GzEncoder::new(Vec::new(), Level::fast());
        enc.write_all(rest).unwrap();
        gzipped = enc.finish().unwrap();
        &gzipped
    } else {
        rest
    };
    let stream: Box<dyn Read + '_> = if control & 2 != 0 {
        Box::new(common::Trickle::new(bytes))
    } else {
        Box::new(Cursor::new(bytes))
    };
    match open_stream("fuzz.tar.gz".to_string(), stream) {
        Ok(OpenedInput::Capture(mut reader)) => {
            common::drain(&mut reader);
        }
        Ok(OpenedInput::Archive(mut archive)) => {
            let _ = archive.name();
            let mut members = 0usize;
            let walked = archive.for_each_member(&Selection::default(), |member| {
                members += 1;
                let _ = (member.name.len(), member.path.len(), member.size, member.mtime);
                match member.capture {
                    Ok(mut reader) => {
                        common::drain(&mut reader);
                    }
                    Err(e) => {
                        common::describe(&e);
                    }
                }
            });
            if let Err(e) = walked {
                common::describe(&e);
            }
            std::hint::black_box(members);
        }
        Err(e) => {
            common::describe(&e);
        }
    }
});
