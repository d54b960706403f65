//! A federation under test, from the real binaries: `flotilla up` for the control plane, one `flotilla member`
//! process per simulated member (so a member can be killed and restarted), joined with `flotilla join`; real
//! kubectl to look at both sides.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use flotilla_conformance_tests::{Daemon, Output, eventually, kubectl_at, run_command};
use flotilla_storage::testing::free_port;
use serde_json::Value;

pub const FLOTILLA: &str = env!("CARGO_BIN_EXE_flotilla");
pub const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-flotilla");
pub const KUBECTL: &str = "1.33";

/// The workspace's root, where README.md, docs/ and deploy/ are.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Runs the `flotilla` CLI to completion.
pub async fn flotilla(args: &[&str]) -> Output {
    let command = tokio::process::Command::new(FLOTILLA);
    run_command(command, args, None, &[], "flotilla")
        .await
        .expect("flotilla runs")
}

/// Waits until the server of `kubeconfig` answers `/readyz`.
pub async fn wait_serving(kubeconfig: &Path, dir: &Path) {
    eventually(&format!("{} to serve", kubeconfig.display()), || async {
        if !kubeconfig.exists() {
            return None;
        }
        let out = kubectl_at(kubeconfig, dir, KUBECTL, &["get", "--raw", "/readyz"], None, &[])
            .await
            .ok()?;
        out.success.then_some(())
    })
    .await;
}

/// One `flotilla member` process.
pub struct Member {
    pub name: String,
    pub port: u16,
    pub kubeconfig: PathBuf,
    pub daemon: Option<Daemon>,
    extra: Vec<String>,
}

impl Member {
    pub async fn start(name: &str, dir: &Path, extra: &[&str]) -> Member {
        let mut member = Member {
            name: name.to_owned(),
            port: free_port(),
            kubeconfig: dir.join("members").join(name).join("kubeconfig"),
            daemon: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        member.restart(dir).await;
        member
    }

    pub async fn restart(&mut self, dir: &Path) {
        let port = self.port.to_string();
        let members = dir.join("members");
        let mut args: Vec<&str> = vec![
            "member",
            "--name",
            &self.name,
            "--port",
            &port,
            "--data-dir",
            members.to_str().unwrap(),
            "--ready-delay",
            "200ms",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        let daemon = Daemon::spawn(
            Path::new(FLOTILLA),
            &args,
            &dir.join(format!("{}.log", self.name)),
        )
        .unwrap();
        wait_serving(&self.kubeconfig, dir).await;
        self.daemon = Some(daemon);
    }

    /// Kills the member process (SIGKILL).
    pub async fn kill(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.kill().await.unwrap();
        }
    }
}

/// A federation with members.
pub struct Federation {
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub members: Vec<Member>,
    up: Daemon,
}

/// Probe settings: a dead member turns NotReady within period × threshold + one period.
pub const PERIOD: Duration = Duration::from_millis(500);
pub const THRESHOLD: u32 = 2;

impl Federation {
    /// `flotilla up` plus members `(name, labels)` joined with `flotilla join`, all Ready.
    pub async fn start(members: &[(&str, &str)]) -> Federation {
        Self::start_with(members, |_| Vec::new()).await
    }

    /// Like [`Federation::start`], with extra `flotilla member` flags per member.
    pub async fn start_with(
        members: &[(&str, &str)],
        member_flags: impl Fn(&str) -> Vec<&'static str>,
    ) -> Federation {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
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
                "--capacity-timeout",
                "2s",
            ],
            &dir.join("up.log"),
        )
        .unwrap();
        let kubeconfig = fed_dir.join("kubeconfig");
        wait_serving(&kubeconfig, &dir).await;
        let mut federation = Federation {
            dir: tmp,
            kubeconfig,
            members: Vec::new(),
            up,
        };
        for (name, labels) in members {
            let member = Member::start(name, &dir, &member_flags(name)).await;
            let out = flotilla(&[
                "join",
                name,
                "--kubeconfig",
                federation.kubeconfig.to_str().unwrap(),
                "--cluster-kubeconfig",
                member.kubeconfig.to_str().unwrap(),
                "--labels",
                labels,
            ])
            .await;
            assert!(out.success, "join {name}: {}", out.stderr);
            federation.members.push(member);
        }
        let count = members.len();
        eventually("every member Ready", || async {
            let all = federation.readiness().await;
            (all.len() == count && all.iter().all(|(_, s)| s == "True")).then_some(())
        })
        .await;
        federation
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// kubectl against the federation.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        kubectl_at(&self.kubeconfig, self.path(), KUBECTL, args, None, &[])
            .await
            .unwrap()
    }

    /// kubectl against the federation with `stdin`.
    pub async fn apply(&self, manifest: &str) -> Output {
        kubectl_at(
            &self.kubeconfig,
            self.path(),
            KUBECTL,
            &["apply", "-f", "-"],
            Some(manifest),
            &[],
        )
        .await
        .unwrap()
    }

    pub fn member(&self, name: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.name == name)
            .expect("a member of this name")
    }

    /// kubectl against one member.
    pub async fn in_member(&self, name: &str, args: &[&str]) -> Output {
        kubectl_at(
            &self.member(name).kubeconfig,
            self.path(),
            KUBECTL,
            args,
            None,
            &[],
        )
        .await
        .unwrap()
    }

    /// An object of a member as JSON, or `None` when it has none.
    pub async fn member_object(&self, member: &str, args: &[&str]) -> Option<Value> {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        let out = self.in_member(member, &full).await;
        out.success.then(|| out.json())
    }

    /// The Ready condition of every cluster, by name.
    pub async fn readiness(&self) -> Vec<(String, String)> {
        let out = self.kubectl(&["get", "clusters", "-o", "json"]).await.ok();
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

    /// `spec.replicas` of a Deployment in each member (`None` where it has none).
    pub async fn replicas(&self, kind_name: &str, field: &str) -> Vec<Option<i64>> {
        let mut out = Vec::new();
        for member in &self.members {
            let object = self.member_object(&member.name, &[kind_name]).await;
            out.push(object.and_then(|o| o.pointer(field).and_then(Value::as_i64)));
        }
        out
    }

    pub fn up_log(&self) -> String {
        self.up.output()
    }
}
