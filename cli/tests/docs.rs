//! The docs, run: the README's set-up command and five-minute tour (taken from README.md, not copied), and every
//! manifest in `docs/examples/` applied to `flotilla up --simulated-members 3` and checked in the members, so the
//! docs break the build when they stop being true.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{FLOTILLA, KUBECTL, flotilla, repository, wait_serving};
use flotilla_conformance_tests::{Daemon, Output, eventually, kubectl_at, path_with_kubectl};
use serde_json::Value;

/// The first ```sh block after the line containing `marker` in the README.
fn readme_block(marker: &str) -> String {
    let readme = std::fs::read_to_string(repository().join("README.md")).unwrap();
    let from = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README has {marker:?}"));
    let rest = &readme[from..];
    let start = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = rest[start..].find("```").expect("the block's end");
    rest[start..start + end].to_owned()
}

/// `flotilla up --simulated-members 3`, as the README runs it, on a free port in a temporary directory.
struct Up {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    _daemon: Daemon,
}

impl Up {
    async fn start(args: &[&str]) -> Up {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("flotilla-data");
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--port",
            "0",
            "--ready-delay",
            "200ms",
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        let daemon = Daemon::spawn(Path::new(FLOTILLA), &all, &dir.path().join("up.log")).unwrap();
        let kubeconfig = data.join("kubeconfig");
        wait_serving(&kubeconfig, dir.path()).await;
        let up = Up {
            dir,
            kubeconfig,
            _daemon: daemon,
        };
        eventually("three Ready members", || async {
            let out = up
                .kubectl(&[
                    "wait",
                    "--for=condition=Ready",
                    "clusters",
                    "--all",
                    "--timeout=1s",
                ])
                .await;
            (out.success && out.stdout.lines().count() == 3).then_some(())
        })
        .await;
        up
    }

    async fn kubectl(&self, args: &[&str]) -> Output {
        kubectl_at(&self.kubeconfig, self.dir.path(), KUBECTL, args, None, &[])
            .await
            .unwrap()
    }

    /// An object in a member as JSON, or `None` when the member has none.
    async fn in_member(&self, member: &str, args: &[&str]) -> Option<Value> {
        let mut all = vec!["--context", member, "get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&all).await;
        out.success.then(|| out.json())
    }

    /// A field of an object in each of member-1 … member-3.
    async fn per_member(&self, args: &[&str], pointer: &str) -> Vec<Option<i64>> {
        let mut values = Vec::new();
        for member in ["member-1", "member-2", "member-3"] {
            let object = self.in_member(member, args).await;
            values.push(object.and_then(|o| o.pointer(pointer).and_then(Value::as_i64)));
        }
        values
    }

    /// Waits until exactly the members marked `true` have the object.
    async fn expect_in(&self, args: &[&str], expected: [bool; 3]) {
        eventually(&format!("{args:?} in members {expected:?}"), || async {
            let mut got = [false; 3];
            for (i, member) in ["member-1", "member-2", "member-3"].iter().enumerate() {
                got[i] = self.in_member(member, args).await.is_some();
            }
            (got == expected).then_some(())
        })
        .await;
    }

    /// Waits until each member's `pointer` of the object is `expected`.
    async fn expect(&self, args: &[&str], pointer: &str, expected: &[Option<i64>]) {
        eventually(&format!("{args:?} {pointer} = {expected:?}"), || async {
            let got = self.per_member(args, pointer).await;
            (got == expected).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_runs_as_written() {
    let main_job = readme_block("Run the main job");
    assert_eq!(
        main_job.trim(),
        "cargo run --release --bin flotilla -- up --simulated-members 3",
        "the README's main command changed: update this test"
    );
    let up = Up::start(&["up", "--simulated-members", "3"]).await;

    // The tour, verbatim but for `cargo run` (the binary under test is already built) and the kubectl version.
    let tour = readme_block("## A five-minute tour");
    let cargo_run = "cargo run --release --bin flotilla --";
    assert!(
        tour.contains(cargo_run),
        "the tour runs flotilla with {cargo_run:?}"
    );
    let script = format!("set -euxo pipefail\n{}", tour.replace(cargo_run, FLOTILLA));
    let path = path_with_kubectl(up.dir.path(), KUBECTL);
    let run = tokio::process::Command::new("bash")
        .args(["-c", &script])
        .current_dir(up.dir.path())
        .env("PATH", path)
        .env("HOME", up.dir.path())
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the tour finishes within 3 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the tour failed:\n{stdout}\n{stderr}");

    // What the tour's comments promise.
    let row = |ready: &str| {
        stdout
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["web", ready]))
    };
    assert!(row("4/4"), "member-1 runs 4 of the 8:\n{stdout}");
    assert!(row("2/2"), "member-2 runs 2 of the 8:\n{stdout}");
    assert!(
        stdout.contains("successfully rolled out"),
        "rollout status waited:\n{stdout}"
    );
    for member in ["member-1", "member-2", "member-3"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(member) && l.contains("True")),
            "flotilla status shows {member} Ready:\n{stdout}"
        );
        assert!(
            up.in_member(member, &["deployment", "web"]).await.is_none(),
            "the delete reached {member}"
        );
    }
}

/// Every file under `docs/examples/`, relative to it, sorted.
fn example_files() -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let base = repository().join("docs/examples");
    let mut files = Vec::new();
    walk(&base, &base, &mut files);
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_lands_in_the_members_as_documented() {
    assert_eq!(
        example_files(),
        [
            "batch-job.yaml",
            "placement.yaml",
            "web-app/00-namespace.yaml",
            "web-app/10-configmap.yaml",
            "web-app/20-deployment.yaml",
            "web-app/30-service.yaml",
            "web-app/40-ingress.yaml",
            "web-app/50-hpa.yaml",
        ],
        "a new example needs its checks here"
    );
    let up = Up::start(&["up", "--simulated-members", "3"]).await;
    let examples = repository().join("docs/examples");
    let file = |name: &str| examples.join(name).display().to_string();

    // The web app, applied as a directory as a CI pipeline would.
    up.kubectl(&["apply", "-f", &file("web-app")]).await.ok();
    for args in [
        &["namespace", "shop"][..],
        &["-n", "shop", "configmap", "web-config"],
        &["-n", "shop", "service", "web"],
        &["-n", "shop", "ingress", "web"],
    ] {
        up.expect_in(args, [true; 3]).await;
    }
    // The HPA's 3 … 12 over three members: minima of 1 and maxima that add up to 12 (they start at 4 each and
    // move toward members whose HPA runs at its maximum); each member's HPA keeps its copy within its bounds.
    let hpa = &["-n", "shop", "hpa", "web"][..];
    up.expect(hpa, "/spec/minReplicas", &[Some(1); 3]).await;
    eventually(
        "the members' HPA maxima add up to 12, each copy within its bounds",
        || async {
            let maxima = up.per_member(hpa, "/spec/maxReplicas").await;
            let replicas = up
                .per_member(&["-n", "shop", "deployment", "web"], "/spec/replicas")
                .await;
            let within = maxima.iter().zip(&replicas).all(
                |(max, replicas)| matches!((max, replicas), (Some(max), Some(r)) if (1..=*max).contains(r)),
            );
            (within && maxima.iter().flatten().sum::<i64>() == 12).then_some(())
        },
    )
    .await;
    up.kubectl(&[
        "-n",
        "shop",
        "rollout",
        "status",
        "deployment/web",
        "--timeout=60s",
    ])
    .await
    .ok();
    eventually(
        "the Service's load-balancer addresses at the federation",
        || async {
            let out = up
                .kubectl(&["-n", "shop", "get", "service", "web", "-o", "json"])
                .await;
            let ingress = out.json()["status"]["loadBalancer"]["ingress"].as_array()?.len();
            (ingress == 3).then_some(())
        },
    )
    .await;

    // The batch Job: member-2 (weight 0) gets no part; the parts add up and the federation's Job completes.
    up.kubectl(&["apply", "-f", &file("batch-job.yaml")]).await.ok();
    eventually("the Job's parts", || async {
        let completions = up.per_member(&["job", "render"], "/spec/completions").await;
        let parallelism = up.per_member(&["job", "render"], "/spec/parallelism").await;
        let placed = completions[1].is_none()
            && completions[0].is_some()
            && completions[2].is_some()
            && completions.iter().flatten().sum::<i64>() == 10
            && parallelism.iter().flatten().sum::<i64>() == 4;
        placed.then_some(())
    })
    .await;
    up.kubectl(&["wait", "--for=condition=complete", "job/render", "--timeout=60s"])
        .await
        .ok();
    let job = up.kubectl(&["get", "job", "render", "-o", "json"]).await.json();
    assert_eq!(job["status"]["succeeded"], 10, "{job}");

    // Placement: member-3 (ap-south) is not selected; member-1 is held to at most 4.
    up.kubectl(&["apply", "-f", &file("placement.yaml")]).await.ok();
    up.expect(
        &["deployment", "api"],
        "/spec/replicas",
        &[Some(4), Some(6), None],
    )
    .await;
    up.expect_in(&["configmap", "api-flags"], [true, true, false])
        .await;

    // Deleting the namespace deletes the web app from every member.
    up.kubectl(&["delete", "namespace", "shop", "--timeout=60s"])
        .await
        .ok();
    up.expect_in(&["namespace", "shop"], [false; 3]).await;
    let status = flotilla(&["status", "--kubeconfig", up.kubeconfig.to_str().unwrap()])
        .await
        .ok();
    assert!(status.stdout.contains("member-3"), "{}", status.stdout);
}
