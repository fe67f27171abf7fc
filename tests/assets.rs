//! Completions and man pages are generated from the clap definition and committed; this test
//! fails when they are stale. `GOPHERCAP_BLESS=1 cargo test --test assets` regenerates them.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;

fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for dir in ["completions", "man"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = format!("{dir}/{}", entry.file_name().to_string_lossy());
            out.insert(name, std::fs::read(entry.path()).unwrap());
        }
    }
    out
}

#[cfg(feature = "live")]
#[test]
fn completions_and_man_pages_are_current() {
    let fresh = scratch("assets");
    gophercap::cmd::generate_assets(&fresh).unwrap();
    if std::env::var_os("GOPHERCAP_BLESS").is_some() {
        for dir in ["completions", "man"] {
            let _ = std::fs::remove_dir_all(repo().join(dir));
        }
        gophercap::cmd::generate_assets(&repo()).unwrap();
    }
    let generated = files_under(&fresh);
    let committed = files_under(&repo());
    assert!(generated.contains_key("man/gophercap-map.1"));
    assert!(generated.contains_key("completions/_gophercap"));
    let stale: Vec<&String> = generated
        .keys()
        .chain(committed.keys())
        .filter(|k| generated.get(*k) != committed.get(*k))
        .collect();
    assert!(
        stale.is_empty(),
        "stale completions/man pages {stale:?}: run GOPHERCAP_BLESS=1 cargo test --test assets"
    );
}
