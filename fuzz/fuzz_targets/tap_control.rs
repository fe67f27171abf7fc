//! Arbitrary bytes as what tap reads from the network and from its user: lines sent to the
//! control plane (each must parse to a request with its command, or a rejection — never a
//! panic), and the same text as a tap configuration (parsed and validated, or refused with
//! errors — never a panic, whatever the comment and key pre-pass meets).
#![no_main]

use gophercap::cmd::tap::config::TapConfig;
use gophercap::sink::control::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match parse_request(line) {
            Ok(request) => {
                assert_eq!(
                    request.fields.get("cmd").and_then(|c| c.as_str()),
                    Some(request.cmd.as_str())
                );
            }
            Err(rejected) => assert!(!rejected.error.is_empty()),
        }
    }
    for offline in [false, true] {
        if let Err(error) = TapConfig::parse(text, offline) {
            assert!(!error.to_string().is_empty());
        }
    }
});
