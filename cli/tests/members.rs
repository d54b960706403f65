//! Member clusters end to end, with the real `flotilla` binary: `flotilla up` runs the federation,
//! `flotilla member` processes are the (simulated) members, `flotilla join` registers them, real kubectl
//! checks what the federation shows, and killing a member process must turn it NotReady in time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::{FLOTILLA, KUBECTL, PLUGIN, flotilla, wait_serving};
use flotilla_conformance_tests::{Daemon, eventually, kubectl_at, run_command};
use flotilla_storage::testing::free_port;

/// Probe settings of the federation under test: NotReady within period × threshold + one period.
const PERIOD: Duration = Duration::from_secs(1);
const THRESHOLD: u32 = 2;

struct Member {
    name: String,
    port: u16,
    kubeconfig: PathBuf,
    daemon: Option<Daemon>,
}

impl Member {
    async fn start(name: &str, port: u16, dir: &Path) -> Member {
        let mut member = Member {
            name: name.to_owned(),
            port,
            kubeconfig: dir.join("members").join(name).join("kubeconfig"),
            daemon: None,
        };
        member.restart(dir).await;
        member
    }

    async fn restart(&mut self, dir: &Path) {
        let port = self.port.to_string();
        let members = dir.join("members");
        let daemon = Daemon::spawn(
            Path::new(FLOTILLA),
            &[
                "member",
                "--name",
                &self.name,
                "--port",
                &port,
                "--data-dir",
                members.to_str().unwrap(),
                "--ready-delay",
                "200ms",
            ],
            &dir.join(format!("{}.log", self.name)),
        )
        .unwrap();
        wait_serving(&self.kubeconfig, dir).await;
        self.daemon = Some(daemon);
    }
}

/// The clusters' Ready condition statuses, by name.
async fn readiness(kubeconfig: &Path, dir: &Path) -> Vec<(String, String)> {
    let out = kubectl_at(
        kubeconfig,
        dir,
        KUBECTL,
        &["get", "clusters", "-o", "json"],
        None,
        &[],
    )
    .await
    .unwrap()
    .ok();
    let mut ready: Vec<(String, String)> = out.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let status = c["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|x| x["type"] == "Ready"))
                .and_then(|x| x["status"].as_str())
                .unwrap_or("None")
                .to_owned();
            (c["metadata"]["name"].as_str().unwrap().to_owned(), status)
        })
        .collect();
    ready.sort();
    ready
}

fn ready_of(all: &[(String, String)], name: &str) -> String {
    all.iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_turn_not_ready_when_down_and_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fed_dir = dir.join("federation");
    let period = format!("{}ms", PERIOD.as_millis());
    let threshold = THRESHOLD.to_string();
    let up = Daemon::spawn(
        Path::new(FLOTILLA),
        &[
            "up",
            "--data-dir",
            fed_dir.to_str().unwrap(),
            "--port",
            "0",
            "--cluster-monitor-period",
            &period,
            "--cluster-failure-threshold",
            &threshold,
        ],
        &dir.join("up.log"),
    )
    .unwrap();
    let fed = fed_dir.join("kubeconfig");
    wait_serving(&fed, dir).await;
    let fed_arg = fed.to_str().unwrap();

    let mut members = Vec::new();
    for name in ["m1", "m2", "m3"] {
        members.push(Member::start(name, free_port(), dir).await);
    }
    for (member, region) in members.iter().zip(["eu", "us", "eu"]) {
        let labels = format!("region={region},tier=gold");
        let out = flotilla(&[
            "join",
            &member.name,
            "--kubeconfig",
            fed_arg,
            "--cluster-kubeconfig",
            member.kubeconfig.to_str().unwrap(),
            "--cluster-context",
            &member.name,
            "--labels",
            &labels,
        ])
        .await
        .ok();
        assert!(
            out.stdout
                .contains(&format!("Cluster {:?} joined the federation.", member.name)),
            "{}",
            out.stdout
        );
    }
    // Joining again is idempotent.
    let again = flotilla(&[
        "join",
        "m1",
        "--kubeconfig",
        fed_arg,
        "--cluster-kubeconfig",
        members[0].kubeconfig.to_str().unwrap(),
        "--cluster-context",
        "m1",
        "--labels",
        "region=eu,tier=gold",
    ])
    .await
    .ok();
    assert!(again.stdout.contains("already joined"), "{}", again.stdout);

    eventually("three Ready clusters", || async {
        let all = readiness(&fed, dir).await;
        (all.len() == 3 && all.iter().all(|(_, s)| s == "True")).then_some(())
    })
    .await;

    // kubectl shows the labels as columns and relabels clusters.
    let table = kubectl_at(
        &fed,
        dir,
        KUBECTL,
        &["get", "clusters", "-L", "region"],
        None,
        &[],
    )
    .await
    .unwrap()
    .ok();
    assert!(table.stdout.contains("REGION"), "{}", table.stdout);
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("m2") && l.contains("us")),
        "{}",
        table.stdout
    );
    kubectl_at(
        &fed,
        dir,
        KUBECTL,
        &["label", "cluster", "m2", "region=ap", "--overwrite"],
        None,
        &[],
    )
    .await
    .unwrap()
    .ok();
    let relabelled = kubectl_at(
        &fed,
        dir,
        KUBECTL,
        &["get", "clusters", "-l", "region=ap", "-o", "name"],
        None,
        &[],
    )
    .await
    .unwrap()
    .ok();
    assert_eq!(relabelled.stdout.trim(), "cluster.federation/m2");

    // A member that goes down turns NotReady within period × threshold + one period (plus a little for the
    // status write to reach kubectl); the others stay Ready.
    let m2 = members[1].daemon.take().unwrap();
    m2.kill().await.unwrap();
    let killed = Instant::now();
    let budget = PERIOD * THRESHOLD + PERIOD + Duration::from_millis(1500);
    loop {
        let all = readiness(&fed, dir).await;
        if ready_of(&all, "m2") != "True" {
            assert_eq!(
                ready_of(&all, "m2"),
                "Unknown",
                "an unreachable member is Unknown"
            );
            assert_eq!(ready_of(&all, "m1"), "True");
            assert_eq!(ready_of(&all, "m3"), "True");
            break;
        }
        assert!(
            killed.elapsed() < budget,
            "m2 still Ready {:?} after it died",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let offline = kubectl_at(
        &fed,
        dir,
        KUBECTL,
        &["get", "cluster", "m2", "-o", "json"],
        None,
        &[],
    )
    .await
    .unwrap()
    .ok()
    .json();
    let conditions = offline["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Offline" && c["status"] == "True"),
        "{conditions:?}"
    );

    // Back up on the same port and data: Ready again.
    members[1].restart(dir).await;
    eventually("m2 to be Ready again", || async {
        (ready_of(&readiness(&fed, dir).await, "m2") == "True").then_some(())
    })
    .await;

    // `flotilla status`, also as the kubectl plugin.
    let status = flotilla(&["status", "--kubeconfig", fed_arg]).await.ok();
    assert!(status.stdout.contains("ClusterReady"), "{}", status.stdout);
    let plugin_dir = Path::new(PLUGIN).parent().unwrap().to_str().unwrap().to_owned();
    let path = format!("{plugin_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let kubectl = tokio::process::Command::new(flotilla_conformance_tests::kubectl_binary(KUBECTL));
    let plugin = run_command(
        kubectl,
        &["flotilla", "status", "--kubeconfig", fed_arg],
        None,
        &[("PATH", &path)],
        "kubectl flotilla",
    )
    .await
    .unwrap()
    .ok();
    assert_eq!(
        plugin.stdout.lines().filter(|l| l.starts_with('m')).count(),
        3,
        "{}",
        plugin.stdout
    );

    // Unjoin removes the Cluster and its credentials.
    let out = flotilla(&["unjoin", "m3", "--kubeconfig", fed_arg]).await.ok();
    assert!(out.stdout.contains("Successfully removed"), "{}", out.stdout);
    let names = kubectl_at(&fed, dir, KUBECTL, &["get", "clusters", "-o", "name"], None, &[])
        .await
        .unwrap()
        .ok();
    assert_eq!(names.stdout.lines().count(), 2, "{}", names.stdout);
    kubectl_at(
        &fed,
        dir,
        KUBECTL,
        &["get", "secret", "m3", "-n", "federation-system"],
        None,
        &[],
    )
    .await
    .unwrap()
    .failed();
    drop(up);
}

/// Everything in the federation that a failed join could have left behind.
async fn registry(fed: &Path, dir: &Path) -> String {
    let clusters = kubectl_at(fed, dir, KUBECTL, &["get", "clusters", "-o", "name"], None, &[])
        .await
        .unwrap()
        .ok();
    let secrets = kubectl_at(
        fed,
        dir,
        KUBECTL,
        &["get", "secrets", "-n", "federation-system", "-o", "name"],
        None,
        &[],
    )
    .await
    .unwrap();
    format!(
        "{}|{}",
        clusters.stdout,
        if secrets.success {
            secrets.stdout
        } else {
            String::new()
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_joins_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fed_dir = dir.join("federation");
    let up = Daemon::spawn(
        Path::new(FLOTILLA),
        &["up", "--data-dir", fed_dir.to_str().unwrap(), "--port", "0"],
        &dir.join("up.log"),
    )
    .unwrap();
    let fed = fed_dir.join("kubeconfig");
    wait_serving(&fed, dir).await;
    let fed_arg = fed.to_str().unwrap();
    let good = Member::start("good", free_port(), dir).await;
    let good_config = good.kubeconfig.to_str().unwrap();
    flotilla(&[
        "join",
        "good",
        "--kubeconfig",
        fed_arg,
        "--cluster-kubeconfig",
        good_config,
    ])
    .await
    .ok();
    let before = registry(&fed, dir).await;

    // A context that does not exist.
    let missing = flotilla(&[
        "join",
        "other",
        "--kubeconfig",
        fed_arg,
        "--cluster-kubeconfig",
        good_config,
        "--cluster-context",
        "nope",
    ])
    .await
    .failed();
    assert!(
        missing.stderr.contains("context \"nope\" not found"),
        "{}",
        missing.stderr
    );

    // A member that does not answer: the good member's kubeconfig pointed at a closed port.
    let dead_config = dir.join("dead-kubeconfig");
    let text = std::fs::read_to_string(&good.kubeconfig).unwrap();
    let good_server = format!("127.0.0.1:{}", good.port);
    std::fs::write(
        &dead_config,
        text.replace(&good_server, &format!("127.0.0.1:{}", free_port())),
    )
    .unwrap();
    let dead = flotilla(&[
        "join",
        "dead",
        "--kubeconfig",
        fed_arg,
        "--cluster-kubeconfig",
        dead_config.to_str().unwrap(),
        "--cluster-context",
        "good",
    ])
    .await
    .failed();
    assert!(dead.stderr.contains("does not answer"), "{}", dead.stderr);

    // A name already taken by another member.
    let other = Member::start("other", free_port(), dir).await;
    let taken = flotilla(&[
        "join",
        "good",
        "--kubeconfig",
        fed_arg,
        "--cluster-kubeconfig",
        other.kubeconfig.to_str().unwrap(),
        "--cluster-context",
        "other",
    ])
    .await
    .failed();
    assert!(taken.stderr.contains("already joined"), "{}", taken.stderr);

    assert_eq!(
        registry(&fed, dir).await,
        before,
        "failed joins changed the registry"
    );
    drop(up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_serves_kubectl_like_a_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let member = Member::start("solo", free_port(), dir).await;
    let kc = &member.kubeconfig;
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance-tests/tests/manifests/mixed");
    let applied = kubectl_at(
        kc,
        dir,
        KUBECTL,
        &["apply", "-f", manifests.to_str().unwrap()],
        None,
        &[],
    )
    .await
    .unwrap()
    .ok();
    assert!(applied.stdout.contains("created"), "{}", applied.stdout);
    let listed = kubectl_at(
        kc,
        dir,
        KUBECTL,
        &[
            "get",
            "deployments,replicasets,daemonsets,jobs,services,configmaps,secrets,ingresses,hpa",
            "-A",
            "-o",
            "name",
        ],
        None,
        &[],
    )
    .await
    .unwrap()
    .ok();
    assert!(listed.stdout.contains("deployment.apps/"), "{}", listed.stdout);
    // The simulator brings the workloads to life.
    let deployments = kubectl_at(
        kc,
        dir,
        KUBECTL,
        &["get", "deployments", "-A", "-o", "json"],
        None,
        &[],
    )
    .await
    .unwrap()
    .ok()
    .json();
    for deployment in deployments["items"].as_array().unwrap() {
        let name = deployment["metadata"]["name"].as_str().unwrap();
        let namespace = deployment["metadata"]["namespace"].as_str().unwrap();
        kubectl_at(
            kc,
            dir,
            KUBECTL,
            &[
                "rollout",
                "status",
                &format!("deployment/{name}"),
                "-n",
                namespace,
                "--timeout=20s",
            ],
            None,
            &[],
        )
        .await
        .unwrap()
        .ok();
    }
    let nodes = kubectl_at(kc, dir, KUBECTL, &["get", "nodes", "-o", "name"], None, &[])
        .await
        .unwrap()
        .ok();
    assert_eq!(nodes.stdout.lines().count(), 3, "{}", nodes.stdout);
    let federation_group = kubectl_at(
        kc,
        dir,
        KUBECTL,
        &["api-resources", "--api-group=federation", "--no-headers"],
        None,
        &[],
    )
    .await
    .unwrap()
    .ok();
    assert_eq!(federation_group.stdout, "", "a member serves no federation group");
    kubectl_at(
        kc,
        dir,
        KUBECTL,
        &["delete", "-f", manifests.to_str().unwrap(), "--ignore-not-found"],
        None,
        &[],
    )
    .await
    .unwrap()
    .ok();
}
