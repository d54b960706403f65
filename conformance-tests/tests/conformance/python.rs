//! The official Python `kubernetes` client (installed with pip by this test) against the apiserver.

use std::path::PathBuf;

use flotilla_conformance_tests::{Backend, TestApiserver};

crate::on_both_backends!(python_client_creates_lists_watches_patches_and_deletes);

/// The client version the survey in `shared/reference/kubectl.md` recorded.
const PYTHON_KUBERNETES: &str = "kubernetes==37.0.2";

/// Installs the client once per target directory, with pip, and returns where.
async fn python_client() -> PathBuf {
    static INSTALL: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    INSTALL
        .get_or_init(|| async {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python-kubernetes-37.0.2");
            if !dir.join("kubernetes").exists() {
                let status = tokio::process::Command::new("python3")
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--target",
                    ])
                    .arg(&dir)
                    .arg(PYTHON_KUBERNETES)
                    .status()
                    .await
                    .expect("run pip");
                assert!(status.success(), "pip install {PYTHON_KUBERNETES} failed");
            }
            dir
        })
        .await
        .clone()
}

async fn python_client_creates_lists_watches_patches_and_deletes(backend: Backend) {
    let site = python_client().await;
    let server = TestApiserver::start(backend).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client_test.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&server.kubeconfig)
        .env("PYTHONPATH", &site)
        .output()
        .await
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python client test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("python client: ok"), "{stdout}");
}
