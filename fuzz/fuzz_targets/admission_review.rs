//! Arbitrary bytes as what the API server (or anyone reaching the webhook's port) POSTs to
//! `/mutate`: an answer (always allowing the pod, any patch well-formed and applicable to the
//! pod it came with) or a refusal with its reason — never a panic.
#![no_main]

use gophercap::k8s::admission::review;
use gophercap::k8s::inject::InjectionConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = InjectionConfig::new("gophercap:fuzz");
    match review(data, &config) {
        Ok(reviewed) => {
            let answer: serde_json::Value = serde_json::from_slice(&reviewed.body).unwrap();
            assert_eq!(answer["response"]["allowed"], true);
            if let Some(patch) = answer["response"]["patch"].as_str() {
                let bytes = base64_simd::STANDARD.decode_to_vec(patch).unwrap();
                let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
                let request: serde_json::Value = serde_json::from_slice(data).unwrap();
                let mut pod = request["request"]["object"].clone();
                json_patch::patch(&mut pod, &patch).unwrap();
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
