//! The `flotilla-apiserver` binary itself: it serves on the embedded store and on an etcd that requires TLS and
//! client certificates, with the flags operators use, and refuses flags that do not go together. (Building this test also builds the binary for the tests of
//! `deploy/`, which run it as a separate process.)

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const APISERVER: &str = env!("CARGO_BIN_EXE_flotilla-apiserver");

/// `GET path` with curl, verifying the server against `ca`; the status code and body.
fn curl(port: u16, path: &str, ca: &Path) -> Option<(u16, String)> {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "2", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    // curl writes 000 when nothing answered.
    let code: u16 = code.parse().ok().filter(|c| *c != 0)?;
    Some((code, body.to_owned()))
}

#[test]
fn serves_the_embedded_store_and_writes_a_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("admin.kubeconfig");
    let (mut child, port) = start_ready(dir.path(), &["--write-kubeconfig", kubeconfig.to_str().unwrap()]);
    // Resources need credentials; the kubeconfig it wrote has them.
    let ca = dir.path().join("data/pki/ca.crt");
    assert_eq!(curl(port, "/api/v1/namespaces", &ca).map(|r| r.0), Some(401));
    let written = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        written.contains(&format!("https://127.0.0.1:{port}")),
        "{written}"
    );
    assert!(written.contains("token:"), "{written}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Starts the binary with `args`, its data in `dir/data`, on a free port; the child and its port.
fn spawn(dir: &Path, args: &[&str]) -> (std::process::Child, u16) {
    let port = flotilla_storage::testing::free_port();
    let child = Command::new(APISERVER)
        .args([
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, port)
}

/// Like [`spawn`], then waits for `/readyz`.
fn start_ready(dir: &Path, args: &[&str]) -> (std::process::Child, u16) {
    let (mut child, port) = spawn(dir, args);
    let ca = dir.join("data/pki/ca.crt");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match curl(port, "/readyz", &ca) {
            Some((200, body)) if body.trim() == "ok" => return (child, port),
            _ if Instant::now() > deadline => {
                child.kill().unwrap();
                panic!("flotilla-apiserver {args:?} did not become ready");
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn serves_from_an_etcd_that_requires_tls_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    // A CA and a certificate for 127.0.0.1 (no extended key usage: good for serving and as a client).
    let pki = dir.path().join("etcd-pki");
    let files = flotilla_apiserver::tls::ensure_generated(&pki, &["127.0.0.1".to_owned()]).unwrap();
    let (client_port, peer_port, metrics_port) = (
        flotilla_storage::testing::free_port(),
        flotilla_storage::testing::free_port(),
        flotilla_storage::testing::free_port(),
    );
    let client = format!("https://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut etcd = Command::new(std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".to_owned()))
        .args(["--name", "tls", "--data-dir"])
        .arg(dir.path().join("etcd"))
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("tls={peer}")])
        .args([
            "--listen-metrics-urls",
            &format!("http://127.0.0.1:{metrics_port}"),
        ])
        .arg("--cert-file")
        .arg(&files.cert)
        .arg("--key-file")
        .arg(&files.key)
        .arg("--trusted-ca-file")
        .arg(&files.ca_cert)
        .arg("--client-cert-auth")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd runs (apt-get install etcd-server)");
    let healthy = (0..200).any(|_| {
        let out = Command::new("curl")
            .args([
                "-sf",
                "--max-time",
                "1",
                &format!("http://127.0.0.1:{metrics_port}/health"),
            ])
            .output()
            .unwrap();
        let ok = String::from_utf8_lossy(&out.stdout).contains("true");
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(healthy, "etcd with TLS did not become healthy");

    let (ca, cert, key) = (
        files.ca_cert.to_str().unwrap(),
        files.cert.to_str().unwrap(),
        files.key.to_str().unwrap(),
    );
    let served = dir.path().join("served");
    let (mut apiserver, port) = start_ready(
        &served,
        &[
            "--etcd-servers",
            &client,
            "--etcd-cafile",
            ca,
            "--etcd-certfile",
            cert,
            "--etcd-keyfile",
            key,
        ],
    );
    // Ready means storage answered; a namespace written through the apiserver is in etcd, over TLS.
    let token = std::fs::read_to_string(served.join("data/admin-token")).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(served.join("data/pki/ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
        .args(["-H", "Content-Type: application/json", "-X", "POST", "-d"])
        .arg(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"over-tls"}}"#)
        .arg(format!("https://127.0.0.1:{port}/api/v1/namespaces"))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains(r#""name":"over-tls""#), "{body}");
    apiserver.kill().unwrap();
    apiserver.wait().unwrap();

    // Without a client certificate etcd refuses the connection, and the apiserver is not ready.
    let unready = dir.path().join("unready");
    let (mut child, port) = spawn(&unready, &["--etcd-servers", &client, "--etcd-cafile", ca]);
    let mut answered = None;
    for _ in 0..100 {
        answered = curl(port, "/readyz", &unready.join("data/pki/ca.crt"));
        if answered.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        answered.map(|r| r.0),
        Some(500),
        "readyz without an etcd client certificate"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    etcd.kill().unwrap();
    etcd.wait().unwrap();
}

#[test]
fn a_certificate_without_its_key_is_refused() {
    let output = Command::new(APISERVER)
        .args(["--tls-cert-file", "/nonexistent/tls.crt"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tls-private-key-file"), "{stderr}");
}
