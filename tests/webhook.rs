//! `gophercap webhook` as the API server meets it: certificates from `webhook certs`, HTTPS
//! checked against that CA for the Service's name, AdmissionReviews as the API server sends
//! them, each returned patch applied by an independent JSON Patch implementation and the pod
//! validated against the Kubernetes schemas (tests/webhook/patched_pod.py: the Python packages
//! jsonpatch and kubernetes-validate; without them the test says so and passes, except under
//! CI=true), a second pass that adds nothing, 400 on a malformed body, a rotated certificate
//! served without a restart, and SIGTERM.

mod common;

use common::live::{Lines, Reaped, signal, wait_bounded};
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

const SERVICE: &str = "gophercap-webhook";
const NAMESPACE: &str = "gophercap";

fn certs(dir: &Path) -> String {
    let out = run(&[
        "webhook",
        "certs",
        "--service",
        SERVICE,
        "--namespace",
        NAMESPACE,
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// One HTTPS request, the server's certificate checked against `ca` for the Service's name as
/// the API server checks it: (status, body), or the error (a refused certificate).
fn https(
    address: SocketAddr,
    ca: &Path,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(format!("{SERVICE}.{NAMESPACE}.svc")).unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(address)?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(connection, socket);
    write!(
        tls,
        "{method} {path} HTTP/1.1\r\nHost: {SERVICE}.{NAMESPACE}.svc\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    tls.write_all(body)?;
    tls.flush()?;
    let mut answer = Vec::new();
    match tls.read_to_end(&mut answer) {
        Ok(_) => {}
        // A peer that closes without close_notify: what came before it is the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text[9..12].parse().unwrap();
    let at = text.find("\r\n\r\n").unwrap() + 4;
    Ok((status, answer[at..].to_vec()))
}

/// The pod of `request` with the answer's patch applied and validated by the independent
/// tools, or None (with the reason printed) when they are not installed outside CI.
fn validated(dir: &Path, name: &str, request: &Value, answer: &Value) -> Option<Value> {
    let request_path = dir.join(format!("{name}.request.json"));
    let answer_path = dir.join(format!("{name}.answer.json"));
    std::fs::write(&request_path, serde_json::to_vec(request).unwrap()).unwrap();
    std::fs::write(&answer_path, serde_json::to_vec(answer).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(repo().join("tests/webhook/patched_pod.py"))
        .args([&request_path, &answer_path])
        .output()
        .expect("python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install the validators: {stderr}"
        );
        eprintln!("skipping the independent check: {stderr}");
        return None;
    }
    assert!(out.status.success(), "{name}: {stderr}");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn the_webhook_answers_the_api_server_over_https_and_follows_its_certificate() {
    let dir = scratch("webhook");
    let bundle = certs(&dir);
    let ca_pem = std::fs::read(dir.join("ca.crt")).unwrap();
    assert_eq!(
        base64_simd::STANDARD.decode_to_vec(&bundle).unwrap(),
        ca_pem,
        "the printed caBundle is the CA, base64"
    );
    let old_ca = dir.join("old-ca.crt");
    std::fs::copy(dir.join("ca.crt"), &old_ca).unwrap();

    let mut webhook = gophercap();
    webhook
        .args(["--log-format", "json", "webhook", "--listen", "127.0.0.1:0"])
        .args(["--image", "registry.example/gophercap:test"])
        .arg("--tls-cert")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.join("tls.key"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut webhook = Reaped(webhook.spawn().unwrap());
    let stderr = Lines::follow(webhook.0.stderr.take().unwrap());
    let listening = stderr
        .wait_for(Duration::from_secs(10), |l| l.contains("webhook listening"))
        .unwrap_or_else(|| panic!("no listening line:\n{}", stderr.text()));
    let listening: Value = serde_json::from_str(&listening).unwrap();
    let address: SocketAddr = listening["address"].as_str().unwrap().parse().unwrap();
    let ca = dir.join("ca.crt");

    let (status, body) = https(address, &ca, "GET", "/healthz", b"").unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"ok\n"[..]));

    for fixture in ["deployment-pod.json", "annotated-pod.json"] {
        let request: Value = serde_json::from_slice(
            &std::fs::read(repo().join("testdata/admission").join(fixture)).unwrap(),
        )
        .unwrap();
        let (status, body) = https(
            address,
            &ca,
            "POST",
            "/mutate",
            &serde_json::to_vec(&request).unwrap(),
        )
        .unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["response"]["uid"], request["request"]["uid"]);
        assert_eq!(answer["response"]["allowed"], true);
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        let Some(patched) = validated(&dir, fixture, &request, &answer) else {
            continue;
        };
        let containers = patched["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.last().unwrap()["name"], "gophercap", "{fixture}");

        // The API server calls again after other webhooks (reinvocation): nothing more.
        let mut again = request.clone();
        again["request"]["object"] = patched;
        let (status, body) = https(
            address,
            &ca,
            "POST",
            "/mutate",
            &serde_json::to_vec(&again).unwrap(),
        )
        .unwrap();
        assert_eq!(status, 200);
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert!(answer["response"].get("patch").is_none(), "{answer}");
        assert_eq!(answer["response"]["allowed"], true);
    }

    let (status, body) = https(address, &ca, "POST", "/mutate", b"{\"kind\": 7}").unwrap();
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("not an AdmissionReview"));

    // Rotation: new files in place; the next handshakes get the new certificate.
    certs(&dir);
    std::thread::sleep(Duration::from_millis(1_500));
    let mut rotated = false;
    for _ in 0..20 {
        if https(address, &ca, "GET", "/readyz", b"").is_ok_and(|(s, _)| s == 200) {
            rotated = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(rotated, "the new CA is not accepted:\n{}", stderr.text());
    assert!(
        https(address, &old_ca, "GET", "/readyz", b"").is_err(),
        "the old certificate is still served"
    );

    signal(&webhook.0, "TERM");
    let status = wait_bounded(&mut webhook.0, Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", stderr.text());
    let text = stderr.text();
    assert!(text.contains("TLS certificate reloaded"), "{text}");
    assert!(text.contains("\"outcome\":\"injected\""), "{text}");
}
