//! The controller manager as a process: killed with SIGKILL in the middle of propagating 200 objects it
//! converges after restart with nothing lost and nothing written twice; with two of them, the leader's death
//! hands over within 15 s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flotilla_api::federation::{
    Cluster, ClusterSpec, MANAGED_LABEL, SYSTEM_NAMESPACE, ServerAddressByClientCIDR,
};
use flotilla_conformance_tests::{Daemon, eventually};
use flotilla_simulator::{MemberConfig, SimulatedMember};
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, LocalObjectReference, Namespace, Secret};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};

const CONTROLLER_MANAGER: &str = env!("CARGO_BIN_EXE_flotilla-controller-manager");

struct Setup {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    federation: kube::Client,
    members: Vec<(String, kube::Client)>,
    _running: Vec<SimulatedMember>,
    _apiserver: tokio::task::JoinHandle<()>,
}

/// A federation apiserver and two simulated members in this process, the members registered as `flotilla
/// join` would (a credential Secret and a Cluster).
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("federation.kubeconfig");
    let config = flotilla_apiserver::Config {
        write_kubeconfig: Some(kubeconfig.clone()),
        ..flotilla_apiserver::Config::new(
            flotilla_apiserver::StorageConfig::Embedded,
            dir.path().join("federation"),
        )
    };
    let running = flotilla_apiserver::start(config).await.unwrap();
    let federation = flotilla_simulator::client(&running.kubeconfig).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(federation.clone());
    let system: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": SYSTEM_NAMESPACE}})).unwrap();
    namespaces.create(&PostParams::default(), &system).await.unwrap();
    let mut members = Vec::new();
    let mut handles = Vec::new();
    for name in ["one", "two"] {
        let member = SimulatedMember::start(MemberConfig::new(name, &dir.path().join("members")))
            .await
            .unwrap();
        let secrets: Api<Secret> = Api::namespaced(federation.clone(), SYSTEM_NAMESPACE);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                "kubeconfig".to_owned(),
                ByteString(member.kubeconfig.clone().into_bytes()),
            )])),
            ..Secret::default()
        };
        secrets.create(&PostParams::default(), &secret).await.unwrap();
        let cluster = Cluster {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec: ClusterSpec {
                server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
                    client_cidr: "0.0.0.0/0".to_owned(),
                    server_address: format!("https://{}", member.address),
                }],
                secret_ref: Some(LocalObjectReference {
                    name: name.to_owned(),
                }),
            },
            ..Cluster::default()
        };
        Api::<Cluster>::all(federation.clone())
            .create(&PostParams::default(), &cluster)
            .await
            .unwrap();
        members.push((
            name.to_owned(),
            flotilla_simulator::client(&member.kubeconfig).await.unwrap(),
        ));
        handles.push(member);
    }
    Setup {
        dir,
        kubeconfig,
        federation,
        members,
        _running: handles,
        _apiserver: running.task,
    }
}

impl Setup {
    fn controller_manager(&self, log: &str, leader_elect: bool) -> Daemon {
        let elect = leader_elect.to_string();
        Daemon::spawn(
            Path::new(CONTROLLER_MANAGER),
            &[
                "--kubeconfig",
                self.kubeconfig.to_str().unwrap(),
                "--metrics-bind-address",
                "127.0.0.1:0",
                "--cluster-monitor-period",
                "500ms",
                "--leader-elect",
                &elect,
            ],
            &self.dir.path().join(log),
        )
        .unwrap()
    }

    async fn ready(&self) {
        eventually("both members Ready", || async {
            let list = Api::<Cluster>::all(self.federation.clone())
                .list(&ListParams::default())
                .await
                .ok()?;
            (list.items.iter().filter(|c| c.is_ready()).count() == 2).then_some(())
        })
        .await;
    }

    /// Flotilla's ConfigMap copies in a member: name → (resourceVersion, data).
    async fn copies(
        &self,
        member: &kube::Client,
    ) -> BTreeMap<String, (String, Option<BTreeMap<String, String>>)> {
        let api: Api<ConfigMap> = Api::namespaced(member.clone(), "default");
        let list = api
            .list(&ListParams::default().labels(&format!("{MANAGED_LABEL}=true")))
            .await
            .unwrap();
        list.items
            .into_iter()
            .map(|c| {
                (
                    c.metadata.name.clone().unwrap(),
                    (c.metadata.resource_version.clone().unwrap(), c.data),
                )
            })
            .collect()
    }

    async fn create_config_maps(&self, prefix: &str, count: usize) {
        let api: Api<ConfigMap> = Api::namespaced(self.federation.clone(), "default");
        let creates = (0..count).map(|i| {
            let api = api.clone();
            async move {
                let config: ConfigMap = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("{prefix}-{i}")}, "data": {"index": i.to_string()}
                }))
                .unwrap();
                api.create(&PostParams::default(), &config).await.unwrap();
            }
        });
        futures::future::join_all(creates).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_controller_manager_converges_after_restart_without_rewrites() {
    let setup = setup().await;
    let first = setup.controller_manager("cm-1.log", false);
    setup.ready().await;
    setup.create_config_maps("cm", 200).await;
    eventually("propagation under way", || async {
        (setup.copies(&setup.members[0].1).await.len() >= 20).then_some(())
    })
    .await;
    first.kill().await.unwrap();
    let mut before = Vec::new();
    for (_, member) in &setup.members {
        before.push(setup.copies(member).await);
    }
    assert!(
        before[0].len() < 200 || before[1].len() < 200,
        "killed too late to test anything"
    );

    let _second = setup.controller_manager("cm-2.log", false);
    for (index, (name, member)) in setup.members.iter().enumerate() {
        let after = eventually(&format!("all 200 copies in {name}"), || async {
            let copies = setup.copies(member).await;
            (copies.len() == 200).then_some(copies)
        })
        .await;
        for (config, (_, data)) in &after {
            let i = config.trim_start_matches("cm-");
            assert_eq!(
                data.as_ref().and_then(|d| d.get("index")).map(String::as_str),
                Some(i)
            );
        }
        for (config, (version, _)) in &before[index] {
            assert_eq!(
                &after[config].0, version,
                "{config} in {name} was written again after the restart"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaders_death_hands_over_within_15_seconds() {
    let setup = setup().await;
    let a = setup.controller_manager("cm-a.log", true);
    let b = setup.controller_manager("cm-b.log", true);
    setup.ready().await;
    let leases: Api<Lease> = Api::namespaced(setup.federation.clone(), "kube-system");
    let holder = || async {
        leases
            .get_opt("flotilla-controller-manager")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
    };
    let leader = eventually("a leader", || async { holder().await }).await;
    setup.create_config_maps("before", 20).await;
    for (name, member) in &setup.members {
        eventually(&format!("the first copies in {name}"), || async {
            (setup.copies(member).await.len() == 20).then_some(())
        })
        .await;
    }
    let mut before = Vec::new();
    for (_, member) in &setup.members {
        before.push(setup.copies(member).await);
    }

    let (dead, survivor) = if leader.ends_with(&format!("_{}", a.id().unwrap())) {
        (a, b)
    } else {
        (b, a)
    };
    dead.kill().await.unwrap();
    let killed = Instant::now();
    let new_leader = eventually("another leader", || async {
        holder().await.filter(|h| *h != leader)
    })
    .await;
    assert!(new_leader.ends_with(&format!("_{}", survivor.id().unwrap())));
    assert!(
        killed.elapsed() <= Duration::from_secs(15),
        "handover took {:?}",
        killed.elapsed()
    );

    setup.create_config_maps("after", 5).await;
    for (index, (name, member)) in setup.members.iter().enumerate() {
        let after = eventually(&format!("the new copies in {name}"), || async {
            let copies = setup.copies(member).await;
            (copies.len() == 25).then_some(copies)
        })
        .await;
        for (config, (version, _)) in &before[index] {
            assert_eq!(&after[config].0, version, "{config} in {name} was written twice");
        }
    }
}
