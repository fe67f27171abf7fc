//! Arbitrary bytes as what the API server (or anyone reaching the webhook's port) POSTs to
//! `/mutate`: an answer (always allowing the pod, any patch well-formed and applicable to the
//! pod it came with) or a refusal with its reason — never a panic.
#![no_main]

use gophercap::k8s::admission::review;
use gophercap::k8s::inject::{InjectionConfig, Resources};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = InjectionConfig {
        image: "gophercap:fuzz".into(),
        image_pull_policy: None,
        interface: "eth0".into(),
        output_url: None,
        token_secret: None,
        metrics_port: 9100,
        limits: Default::default(),
        resources: Resources {
            cpu_request: "50m".into(),
            cpu_limit: None,
            memory_request: "64Mi".into(),
            memory_limit: None,
        },
    };
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
