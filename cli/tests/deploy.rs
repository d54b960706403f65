//! `deploy/local/run.sh` as an operator runs it: etcd, `flotilla-apiserver`, two leader-elected
//! `flotilla-controller-manager`s and simulated members as separate processes on free loopback ports, driven
//! with real kubectl, then stopped with SIGTERM.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{FLOTILLA, KUBECTL, repository};
use flotilla_conformance_tests::{eventually, kubectl_at, path_with_kubectl};
use flotilla_storage::testing::free_port;

/// The `flotilla_leader` gauge of the controller manager serving metrics on `port`.
async fn leads(port: u16) -> Option<bool> {
    let output = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "2",
            &format!("http://127.0.0.1:{port}/metrics"),
        ])
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let line = text.lines().find(|l| l.starts_with("flotilla_leader "))?;
    Some(line.ends_with(" 1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_deployment_runs_each_part_as_its_own_process() {
    let binaries = Path::new(FLOTILLA).parent().unwrap();
    for binary in ["flotilla-apiserver", "flotilla-controller-manager"] {
        assert!(
            binaries.join(binary).exists(),
            "{binary} is built by `cargo test --workspace` (apiserver/tests, controller-manager/tests)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("local");
    let metrics = free_port();
    let ports = [
        ("ETCD_PORT", free_port()),
        ("APISERVER_PORT", free_port()),
        ("METRICS_PORT", metrics),
        ("MEMBER_PORT", free_port()),
    ];
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(repository().join("deploy/local/run.sh"))
        .env("FLOTILLA_BIN", binaries)
        .env("FLOTILLA_DATA", &data)
        .env("SIMULATED_MEMBERS", "2")
        .env("HOME", dir.path())
        .env("PATH", path_with_kubectl(dir.path(), KUBECTL));
    for (name, port) in ports {
        command.env(name, port.to_string());
    }
    let log = dir.path().join("run.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut script = command
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = || std::fs::read_to_string(&log).unwrap_or_default();
    for _ in 0..900 {
        if output().contains("Flotilla is ready") {
            break;
        }
        if let Some(status) = script.try_wait().unwrap() {
            panic!("run.sh exited ({status}):\n{}", output());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(output().contains("Flotilla is ready"), "{}", output());

    let kubeconfig = data.join("kubeconfig");
    let kubectl = |args: Vec<String>| {
        let (kubeconfig, dir) = (kubeconfig.clone(), dir.path().to_owned());
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            kubectl_at(&kubeconfig, &dir, KUBECTL, &args, None, &[])
                .await
                .unwrap()
        }
    };
    let clusters = kubectl(vec!["get".into(), "clusters".into(), "-o".into(), "name".into()])
        .await
        .ok();
    assert_eq!(clusters.stdout.lines().count(), 2, "{}", clusters.stdout);

    // Propagation through the separate controller managers, one of which leads.
    kubectl(
        ["create", "configmap", "settings", "--from-literal=mode=local"]
            .map(String::from)
            .to_vec(),
    )
    .await
    .ok();
    for member in ["member-1", "member-2"] {
        let member_config = data.join("members").join(member).join("kubeconfig");
        eventually(&format!("the ConfigMap in {member}"), || async {
            let out = kubectl_at(
                &member_config,
                dir.path(),
                KUBECTL,
                &["get", "configmap", "settings"],
                None,
                &[],
            )
            .await
            .ok()?;
            out.success.then_some(())
        })
        .await;
    }
    let leaders = eventually("both controller managers' metrics", || async {
        Some([leads(metrics).await?, leads(metrics + 1).await?])
    })
    .await;
    assert_eq!(
        leaders.iter().filter(|l| **l).count(),
        1,
        "exactly one leads: {leaders:?}"
    );

    // SIGTERM stops every part.
    let pid = script.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), script.wait())
        .await
        .expect("run.sh stops within 30 s of SIGTERM")
        .unwrap();
    assert!(output().contains("Stopped."), "{status}: {}", output());
    for (name, port) in ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{name} {port} still listens"
        );
    }
}
