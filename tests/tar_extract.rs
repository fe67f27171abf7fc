//! `gophercap tar-extract` as a user drives it: selection, dry runs, nested paths, hostile
//! archives, truncation, stdin, gzip output and a tarball of thousands of members.

mod common;

use common::*;
use gophercap::sink::capture::Precision;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

fn capture(packets: usize) -> Vec<u8> {
    let frames = http_exchange_ipv4(40100)
        .into_iter()
        .cycle()
        .take(packets)
        .map(|p| ethernet(&[], ETHERTYPE_IPV4, &p))
        .collect();
    pcap_bytes(1, 65535, Precision::Micro, false, &timed(frames, T0, 1_000))
}

/// A tar member header written by hand, so hostile names and links can be built.
fn raw_member(kind: tar::EntryType, name: &str, link: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn finish_tar(mut members: Vec<u8>) -> Vec<u8> {
    members.extend_from_slice(&[0u8; 1024]);
    members
}

fn extract(args: &[&str]) -> Output {
    let mut all = vec!["tar-extract"];
    all.extend_from_slice(args);
    run(&all)
}

fn files_under(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn setup(name: &str, tarball: &[u8], gzipped: bool) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let archive = dir.join(if gzipped { "in.tar.gz" } else { "in.tar" });
    write(
        &archive,
        &if gzipped {
            gzip(tarball)
        } else {
            tarball.to_vec()
        },
    );
    (archive, dir.join("out"))
}

#[test]
fn nested_paths_are_kept_and_duplicate_basenames_do_not_collide() {
    let (archive, out) = setup(
        "extract-nested",
        &tar_bytes(&[
            ("day1/capture.pcap", capture(3)),
            ("day2/capture.pcap", capture(5)),
            ("day2/deep/er/x.pcap", capture(1)),
        ]),
        true,
    );
    let o = extract(&[
        "--in-tarball",
        archive.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        files_under(&out),
        [
            "day1/capture.pcap",
            "day2/capture.pcap",
            "day2/deep/er/x.pcap"
        ]
    );
    assert_eq!(
        std::fs::read(out.join("day1/capture.pcap")).unwrap(),
        capture(3)
    );
    assert_eq!(
        std::fs::read(out.join("day2/capture.pcap")).unwrap(),
        capture(5)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("3 members matched, 3 written"), "{stderr}");
}

#[test]
fn regexp_selects_on_the_full_member_path() {
    let (archive, out) = setup(
        "extract-regexp",
        &tar_bytes(&[
            ("a/x.pcap", capture(1)),
            ("b/x.pcap", capture(1)),
            ("b/y.txt", b"t".to_vec()),
        ]),
        false,
    );
    let o = extract(&[
        "--in-tarball",
        archive.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
        "--file-regexp",
        "^b/.*\\.pcap$",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(files_under(&out), ["b/x.pcap"]);
}

#[test]
fn a_dry_run_lists_and_writes_nothing() {
    let (archive, out) = setup(
        "extract-dryrun",
        &tar_bytes(&[("a/x.pcap", capture(2)), ("b/y.pcap", capture(4))]),
        true,
    );
    let o = extract(&[
        "--in-tarball",
        archive.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
        "--dryrun",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        !out.exists(),
        "a dry run must not even create the output folder"
    );
    let listing = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        listing,
        format!(
            "a/x.pcap\t{}\nb/y.pcap\t{}\n",
            capture(2).len(),
            capture(4).len()
        )
    );
    let o = extract(&["--in-tarball", archive.to_str().unwrap(), "--dryrun"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "--out-dir is optional with --dryrun"
    );
}

#[test]
fn traversal_and_links_out_of_the_folder_are_refused() {
    let good = capture(2);
    let mut tar = Vec::new();
    tar.extend(raw_member(
        tar::EntryType::Regular,
        "ok/a.pcap",
        None,
        &good,
    ));
    tar.extend(raw_member(
        tar::EntryType::Regular,
        "/tmp/gophercap-abs.pcap",
        None,
        &good,
    ));
    tar.extend(raw_member(
        tar::EntryType::Regular,
        "ok/../../escape.pcap",
        None,
        &good,
    ));
    tar.extend(raw_member(
        tar::EntryType::Symlink,
        "ok/evil",
        Some("../../../etc"),
        b"",
    ));
    tar.extend(raw_member(
        tar::EntryType::Regular,
        "ok/evil/passwd",
        None,
        b"x",
    ));
    tar.extend(raw_member(
        tar::EntryType::Link,
        "ok/hard",
        Some("../outside.pcap"),
        b"",
    ));
    tar.extend(raw_member(
        tar::EntryType::Link,
        "ok/b.pcap",
        Some("ok/a.pcap"),
        b"",
    ));
    tar.extend(raw_member(
        tar::EntryType::Symlink,
        "ok/c.pcap",
        Some("a.pcap"),
        b"",
    ));
    let (archive, out) = setup("extract-hostile", &finish_tar(tar), false);
    let o = extract(&[
        "--in-tarball",
        archive.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "refusals make the run exit 1");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("absolute path"), "{stderr}");
    assert!(stderr.contains("climbs out"), "{stderr}");
    assert!(stderr.contains("lands outside"), "{stderr}");
    assert!(stderr.contains("4 refused"), "{stderr}");
    assert!(!Path::new("/tmp/gophercap-abs.pcap").exists());
    assert!(!out.parent().unwrap().join("escape.pcap").exists());
    assert_eq!(
        files_under(&out),
        ["ok/a.pcap", "ok/b.pcap", "ok/c.pcap", "ok/evil/passwd"]
    );
    assert!(
        std::fs::symlink_metadata(out.join("ok/evil"))
            .unwrap()
            .is_dir(),
        "the symlink was not made"
    );
    assert_eq!(
        std::fs::read(out.join("ok/b.pcap")).unwrap(),
        good,
        "a hard link inside is kept"
    );
    assert_eq!(
        std::fs::read(out.join("ok/c.pcap")).unwrap(),
        good,
        "a symlink inside is kept"
    );
}

#[cfg(unix)]
#[test]
fn an_existing_symlinked_folder_is_never_followed() {
    let (archive, out) = setup(
        "extract-symlinked-out",
        &tar_bytes(&[("logs/x.pcap", capture(1))]),
        false,
    );
    let outside = out.parent().unwrap().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("logs")).unwrap();
    let o = extract(&[
        "--in-tarball",
        archive.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is a symlink: not followed"));
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn existing_files_are_kept_unless_overwrite() {
    let (archive, out) = setup(
        "extract-overwrite",
        &tar_bytes(&[("x.pcap", capture(2))]),
        false,
    );
    write(&out.join("x.pcap"), b"mine");
    let args = [
        "--in-tarball",
        archive.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
    ];
    let o = extract(&args);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 skipped (existing)"));
    assert_eq!(std::fs::read(out.join("x.pcap")).unwrap(), b"mine");
    let mut with = args.to_vec();
    with.push("--overwrite");
    assert_eq!(extract(&with).status.code(), Some(0));
    assert_eq!(std::fs::read(out.join("x.pcap")).unwrap(), capture(2));
}

#[test]
fn flatten_puts_members_side_by_side_and_a_clash_is_an_error() {
    let (archive, out) = setup(
        "extract-flatten",
        &tar_bytes(&[
            ("a/one.pcap", capture(1)),
            ("b/two.pcap", capture(2)),
            ("c/one.pcap", capture(3)),
        ]),
        true,
    );
    let o = extract(&[
        "--in-tarball",
        archive.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
        "--flatten",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("name clash"));
    assert_eq!(files_under(&out), ["one.pcap", "two.pcap"]);
    assert_eq!(
        std::fs::read(out.join("one.pcap")).unwrap(),
        capture(1),
        "the first one wins"
    );
}

#[test]
fn a_truncated_archive_keeps_complete_members_and_removes_the_partial_one() {
    let first = capture(4);
    let second = capture(400);
    let tar = tar_bytes(&[("a.pcap", first.clone()), ("b.pcap", second.clone())]);
    // Cut in the middle of b.pcap's data.
    let cut = 512 + first.len().div_ceil(512) * 512 + 512 + second.len() / 2;
    let (archive, out) = setup("extract-truncated", &tar[..cut], true);
    let o = extract(&[
        "--in-tarball",
        archive.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(files_under(&out), ["a.pcap"], "no partial file is left");
    assert_eq!(std::fs::read(out.join("a.pcap")).unwrap(), first);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let data_start = 512 + first.len().div_ceil(512) * 512 + 512;
    assert!(
        stderr.contains(&format!("byte offset {}", data_start + second.len() / 2)),
        "{stderr}"
    );
    assert!(stderr.contains("archive damaged"), "{stderr}");
}

#[test]
fn reads_the_archive_from_stdin() {
    let tarball = gzip(&tar_bytes(&[("s/x.pcap", capture(3))]));
    let out = scratch("extract-stdin").join("out");
    let mut child = gophercap()
        .args([
            "tar-extract",
            "--in-tarball",
            "-",
            "--out-dir",
            out.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tarball).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(std::fs::read(out.join("s/x.pcap")).unwrap(), capture(3));
}

#[test]
fn out_gzip_compresses_once() {
    let plain = capture(6);
    let already = gzip(&capture(7));
    let (archive, out) = setup(
        "extract-gzip",
        &tar_bytes(&[
            ("p.pcap", plain.clone()),
            ("g.pcap.gz", already.clone()),
            ("h.cap", already.clone()),
        ]),
        true,
    );
    let o = extract(&[
        "--in-tarball",
        archive.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
        "--out-gzip",
        "--gzip-level",
        "9",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(files_under(&out), ["g.pcap.gz", "h.cap.gz", "p.pcap.gz"]);
    assert_eq!(
        std::fs::read(out.join("g.pcap.gz")).unwrap(),
        already,
        "not compressed twice"
    );
    assert_eq!(std::fs::read(out.join("h.cap.gz")).unwrap(), already);
    let mut inflated = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(out.join("p.pcap.gz")).unwrap()),
        &mut inflated,
    )
    .unwrap();
    assert_eq!(inflated, plain);
}

#[test]
fn thousands_of_members_in_one_pass() {
    let members: Vec<(String, Vec<u8>)> = (0..3000)
        .map(|i| (format!("d{:02}/f{i:05}.pcap", i % 50), capture(1 + i % 3)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(p, d)| (p.as_str(), d.clone()))
        .collect();
    let (archive, out) = setup("extract-many", &tar_bytes(&refs), true);
    let o = extract(&[
        "-q",
        "--in-tarball",
        archive.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
        "--file-regexp",
        "^d0[0-4]/",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let files = files_under(&out);
    assert_eq!(files.len(), 300);
    for f in &files {
        let i: usize = f[f.len() - 10..f.len() - 5].parse().unwrap();
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            capture(1 + i % 3),
            "{f}"
        );
    }
}

#[test]
fn a_capture_is_not_an_archive() {
    let path = repo().join("testdata/synthetic/http-le-usec.pcap");
    let o = extract(&["--in-tarball", path.to_str().unwrap(), "--dryrun"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a tar archive"));
    let o = extract(&["--in-tarball", "/nonexistent/x.tar", "--dryrun"]);
    assert_eq!(o.status.code(), Some(2));
}
