//! `flotilla up` for a newcomer: `--help` explains every flag with its default, and a one-line error, not a panic,
//! comes when its port is taken, its data directory cannot be made or its etcd does not answer.

mod common;

use std::time::{Duration, Instant};

use common::flotilla;
use flotilla_storage::testing::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_fails_clearly_on_a_taken_port_a_bad_data_dir_or_no_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let data = dir.path().join("data");
    let out = flotilla(&["up", "--port", &port, "--data-dir", data.to_str().unwrap()]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("Address already in use"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);

    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let under_file = file.join("data");
    let out = flotilla(&["up", "--port", "0", "--data-dir", under_file.to_str().unwrap()]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("create data directory"), "{}", out.stderr);

    let nobody = format!("http://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let out = flotilla(&[
        "up",
        "--port",
        "0",
        "--data-dir",
        data.to_str().unwrap(),
        "--etcd-servers",
        &nobody,
    ])
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("etcd at {nobody} is unreachable")),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_explains_every_flag_with_its_default() {
    let out = flotilla(&["up", "--help"]).await;
    assert!(out.success, "{}", out.stderr);
    for flag in [
        "--data-dir",
        "--etcd-servers",
        "--bind-address",
        "--port",
        "--simulated-members",
        "--nodes",
        "--ready-delay",
        "--capacity",
        "--cluster-monitor-period",
        "--cluster-failure-threshold",
        "--capacity-timeout",
    ] {
        assert!(out.stdout.contains(flag), "{flag} in\n{}", out.stdout);
    }
    assert!(
        out.stdout.contains("[default: ./flotilla-data]"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("[default: 6443]"), "{}", out.stdout);
}
