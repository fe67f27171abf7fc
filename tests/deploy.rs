//! The Kubernetes manifests of `deploy/`: each checked against the Kubernetes schemas in strict
//! mode (unknown fields are errors) by kubernetes-validate (PyPI; it bundles the schemas and
//! works offline), and so is what kustomize builds from them when kubectl or kustomize is
//! there. What no schema sees is checked by tests/deploy/check_manifests.py: kustomizations
//! list their files, and the injector's pieces name each other. Without kubernetes-validate
//! (and its PyYAML) the tests say so and pass, except under CI=true, where they fail. The
//! commands of the capture-set Jobs are also run as the pods run them, on testdata, without a
//! shell.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            manifests(&path, out);
        } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(path);
        }
    }
}

fn available(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// False (with the reason printed) when the test cannot run here; panics under CI.
fn validator_present() -> bool {
    if available("kubernetes-validate", "--version") {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("kubernetes-validate is missing (pip install kubernetes-validate)");
    }
    eprintln!("skipped: kubernetes-validate is not installed (pip install kubernetes-validate)");
    false
}

fn validate(name: &str, args: &[&str], stdin: Option<&[u8]>) {
    let mut child = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet"])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubernetes-validate");
    if let Some(bytes) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{name} does not validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    if !validator_present() {
        return;
    }
    let mut files = Vec::new();
    manifests(&repo().join("deploy"), &mut files);
    assert!(!files.is_empty());
    let mut kustomizations = Vec::new();
    for file in &files {
        if file.file_name().is_some_and(|n| n == "kustomization.yaml") {
            kustomizations.push(file.parent().unwrap().to_path_buf());
            continue;
        }
        validate(&file.display().to_string(), &[file.to_str().unwrap()], None);
    }
    // What kustomize builds: the resources as they are applied.
    let build: Option<Vec<&str>> = if available("kustomize", "version") {
        Some(vec!["kustomize", "build"])
    } else if available("kubectl", "version") || available("kubectl", "--help") {
        Some(vec!["kubectl", "kustomize"])
    } else {
        None
    };
    let Some(build) = build else {
        eprintln!("kustomize builds not checked: neither kustomize nor kubectl is installed");
        return;
    };
    for dir in kustomizations {
        let out = Command::new(build[0])
            .args(&build[1..])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} does not build: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        validate(&dir.display().to_string(), &["-"], Some(&out.stdout));
    }
}

/// The `args:` of the container of a Job manifest (one plain string per line).
fn job_args(manifest: &str) -> Vec<String> {
    let mut lines = manifest.lines().skip_while(|l| l.trim() != "args:").skip(1);
    let mut args = Vec::new();
    for line in lines.by_ref() {
        let Some(arg) = line.trim().strip_prefix("- ") else {
            break;
        };
        args.push(arg.to_string());
    }
    assert!(!args.is_empty(), "no args in the manifest");
    args
}

fn completions(manifest: &str) -> u32 {
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("completions: "))
        .expect("completions")
        .parse()
        .unwrap()
}

#[test]
fn the_jobs_commands_map_and_merge_testdata_as_one_run() {
    let jobs = repo().join("deploy/jobs");
    let map = std::fs::read_to_string(jobs.join("map-job.yaml")).unwrap();
    let merge = std::fs::read_to_string(jobs.join("merge/job.yaml")).unwrap();
    let count = completions(&map);
    let map_args = job_args(&map);
    assert!(
        map_args.contains(&format!("--shard=$(JOB_COMPLETION_INDEX)/{count}")),
        "--shard's N must be the Job's completions: {map_args:?}"
    );
    // The volumes as the pods see them: /pcaps here is testdata, /out a scratch folder.
    let out = scratch("deploy-jobs");
    let pcaps = repo().join("testdata");
    let place = |arg: &str, index: Option<u32>| {
        // A path is an argument of its own or the value of --flag=PATH.
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (format!("{flag}="), value),
            _ => (String::new(), arg),
        };
        let value = if let Some(rest) = value.strip_prefix("/pcaps") {
            format!("{}{rest}", pcaps.display())
        } else if let Some(rest) = value.strip_prefix("/out") {
            format!("{}{rest}", out.display())
        } else {
            value.to_string()
        };
        let arg = format!("{flag}{value}");
        match index {
            Some(k) => arg.replace("$(JOB_COMPLETION_INDEX)", &k.to_string()),
            None => arg,
        }
    };
    for k in 0..count {
        let args: Vec<String> = map_args.iter().map(|a| place(a, Some(k))).collect();
        let status = gophercap().arg("-q").args(&args).status().unwrap();
        // testdata/damaged holds damaged captures: their shards exit 1, documents written.
        assert!(matches!(status.code(), Some(0 | 1)), "index {k}: {status}");
    }
    let merge_args: Vec<String> = job_args(&merge).iter().map(|a| place(a, None)).collect();
    let status = gophercap().arg("-q").args(&merge_args).status().unwrap();
    assert_eq!(status.code(), Some(0));
    let single = gophercap()
        .args(["-q", "map", "--format", "json", "--dir-src"])
        .arg(&pcaps)
        .output()
        .unwrap();
    assert!(
        std::fs::read(out.join("catalog.json")).unwrap() == single.stdout,
        "the merged catalog is not the single run's document"
    );
    // Merged again with the catalog beside the shards: it is passed over.
    let status = gophercap().arg("-q").args(&merge_args).status().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(std::fs::read(out.join("catalog.json")).unwrap() == single.stdout);
}

#[test]
fn kustomizations_list_their_files_and_the_injectors_pieces_name_each_other() {
    let out = Command::new("python3")
        .arg(repo().join("tests/deploy/check_manifests.py"))
        .arg(repo().join("deploy"))
        .output()
        .expect("python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install kubernetes-validate: {stderr}"
        );
        eprintln!("skipped: {stderr}");
        return;
    }
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let checked: usize = stdout.split_whitespace().next().unwrap().parse().unwrap();
    assert!(checked >= 9, "{stdout}");
}
