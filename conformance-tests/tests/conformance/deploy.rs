//! `deploy/kubernetes/`, checked against Flotilla itself: every manifest passes `kubectl apply --dry-run=server`
//! (so each kind, field and namespace is one the apiserver accepts), and the credentials `certificates.sh` makes
//! are ones a `flotilla-apiserver` configured with them accepts.

use std::path::{Path, PathBuf};

use flotilla_conformance_tests::{Backend, TestApiserver, kubectl_at, path_with_kubectl};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("deploy/kubernetes")
}

/// Runs `certificates.sh NAMES…` with kubectl `version` on the PATH; the Secrets it printed.
async fn certificates(dir: &Path, names: &[&str]) -> String {
    let output = tokio::process::Command::new("bash")
        .arg(deploy().join("certificates.sh"))
        .args(names)
        .env("PATH", path_with_kubectl(dir, "1.33"))
        .env("HOME", dir)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "certificates.sh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The decoded `key` of the Secret `name` in `kubectl create secret … -o yaml` documents.
fn secret_data(secrets: &str, name: &str, key: &str) -> Vec<u8> {
    use base64::Engine;
    let document = secrets
        .split("---\n")
        .find(|d| d.lines().any(|l| l.trim() == format!("name: {name}")))
        .unwrap_or_else(|| panic!("no Secret {name}"));
    let line = document
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("{name} has no {key}"));
    base64::engine::general_purpose::STANDARD.decode(line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_manifests_pass_a_server_side_dry_run() {
    let server = TestApiserver::start(Backend::Embedded).await.unwrap();
    let secrets = server.dir().join("secrets.yaml");
    std::fs::write(
        &secrets,
        certificates(server.dir(), &["flotilla.example.com"]).await,
    )
    .unwrap();
    let namespace = deploy().join("namespace.yaml");
    server
        .kubectl("1.33", &["apply", "-f", namespace.to_str().unwrap()])
        .await
        .unwrap()
        .ok();
    for version in ["1.27", "1.33"] {
        let out = server
            .kubectl(
                version,
                &["apply", "--dry-run=server", "-f", secrets.to_str().unwrap()],
            )
            .await
            .unwrap()
            .ok();
        assert_eq!(
            out.stdout.matches("(server dry run)").count(),
            5,
            "{}",
            out.stdout
        );
        let out = server
            .kubectl(
                version,
                &["apply", "--dry-run=server", "-k", deploy().to_str().unwrap()],
            )
            .await
            .unwrap()
            .ok();
        for object in [
            "serviceaccount/flotilla-etcd",
            "serviceaccount/flotilla-apiserver",
            "serviceaccount/flotilla-controller-manager",
            "role.rbac.authorization.k8s.io/flotilla-operator",
            "rolebinding.rbac.authorization.k8s.io/flotilla-operators",
            "service/flotilla-etcd",
            "service/flotilla-apiserver",
            "statefulset.apps/flotilla-etcd",
            "deployment.apps/flotilla-apiserver",
            "deployment.apps/flotilla-controller-manager",
        ] {
            assert!(
                out.stdout.contains(&format!("{object} created (server dry run)")),
                "kubectl {version}: {object}:\n{}",
                out.stdout
            );
        }
    }
    // A dry run writes nothing.
    let left = server
        .kubectl(
            "1.33",
            &[
                "get",
                "all,secrets,sa,roles",
                "-n",
                "flotilla-system",
                "-o",
                "name",
            ],
        )
        .await
        .unwrap()
        .ok();
    assert_eq!(left.stdout.trim(), "", "{}", left.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_sh_makes_credentials_the_apiserver_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = certificates(dir.path(), &["flotilla.example.com", "203.0.113.10"]).await;
    let write = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let cert = write(
        "tls.crt",
        secret_data(&secrets, "flotilla-apiserver-certs", "tls.crt"),
    );
    let key = write(
        "tls.key",
        secret_data(&secrets, "flotilla-apiserver-certs", "tls.key"),
    );
    let ca = write(
        "ca.crt",
        secret_data(&secrets, "flotilla-apiserver-certs", "ca.crt"),
    );
    let tokens = write(
        "tokens.csv",
        secret_data(&secrets, "flotilla-tokens", "tokens.csv"),
    );
    let config = flotilla_apiserver::Config {
        tls_cert_file: Some(cert),
        tls_private_key_file: Some(key),
        client_ca_file: Some(ca),
        token_auth_file: Some(tokens),
        ..flotilla_apiserver::Config::new(
            flotilla_apiserver::StorageConfig::Embedded,
            dir.path().join("data"),
        )
    };
    let running = flotilla_apiserver::start(config).await.unwrap();
    // The kubeconfigs name the Service or the external name; the certificate also covers 127.0.0.1.
    for (secret, server) in [
        ("flotilla-admin-kubeconfig", "https://flotilla.example.com"),
        (
            "flotilla-controller-manager-kubeconfig",
            "https://flotilla-apiserver.flotilla-system.svc:443",
        ),
    ] {
        let text = String::from_utf8(secret_data(&secrets, secret, "kubeconfig")).unwrap();
        assert!(text.contains(server), "{text}");
        let kubeconfig = write(
            &format!("{secret}.yaml"),
            text.replace(server, &format!("https://127.0.0.1:{}", running.address.port()))
                .into_bytes(),
        );
        let out = kubectl_at(
            &kubeconfig,
            dir.path(),
            "1.33",
            &["get", "--raw", "/api/v1/namespaces"],
            None,
            &[],
        )
        .await
        .unwrap()
        .ok();
        assert!(out.stdout.contains("NamespaceList"), "{secret}: {}", out.stdout);
    }
    running.task.abort();
}
