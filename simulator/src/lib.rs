//! Simulated member clusters. **Not real clusters**: each is Flotilla's own Kubernetes API server (the member
//! profile: the Kubernetes resources and nodes, no federation group) plus a workload simulator in the spirit
//! of kwok, so that member status looks like a real cluster's without running a single container.
//!
//! What the simulator does (see [`workloads`] for the exact rules): Deployments and ReplicaSets become ready
//! after the ready delay, up to the member's pod capacity; Jobs run `parallelism` pods per ready delay until
//! `completions` and get `Complete`; HPAs keep their target within bounds and report it; LoadBalancer Services
//! and Ingresses get an address from the member's range; DaemonSets run one pod on each simulated Node.
//! Tests, benchmarks and `flotilla up` run these by the hundred on one machine.

mod runner;
pub mod workloads;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

pub use runner::Behaviour;

/// One simulated member's settings (the `flotilla member` flags).
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// The member's name: its kubeconfig context and the prefix of its node names.
    pub name: String,
    /// The member's own directory: its store, certificates and `kubeconfig`.
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    /// The HTTPS port; 0 picks a free one.
    pub port: u16,
    /// Simulated nodes, spread over `zones`.
    pub nodes: u32,
    pub region: String,
    pub zones: Vec<String>,
    pub behaviour: Behaviour,
}

impl MemberConfig {
    /// A member named `name` in `data_dir/<name>`, on a free loopback port, with 3 nodes in one region.
    pub fn new(name: &str, data_dir: &std::path::Path) -> Self {
        MemberConfig {
            name: name.to_owned(),
            data_dir: data_dir.join(name),
            bind_address: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            nodes: 3,
            region: "region-1".to_owned(),
            zones: vec!["region-1a".to_owned()],
            behaviour: Behaviour {
                ready_delay: Duration::from_secs(1),
                capacity: None,
                nodes: 3,
                load_balancer_prefix: [172, 30, 0],
            },
        }
    }
}

/// A running simulated member.
#[derive(Debug)]
pub struct SimulatedMember {
    pub name: String,
    pub address: SocketAddr,
    /// A kubeconfig whose cluster, user and context are named after the member.
    pub kubeconfig: String,
    pub kubeconfig_path: PathBuf,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SimulatedMember {
    /// Starts the member's API server, creates its nodes and starts its simulator; returns once it serves.
    pub async fn start(config: MemberConfig) -> Result<Self> {
        let kubeconfig_path = config.data_dir.join("kubeconfig");
        let server = flotilla_apiserver::Config {
            profile: flotilla_api::resources::Profile::Member,
            context_name: config.name.clone(),
            bind_address: config.bind_address,
            secure_port: config.port,
            write_kubeconfig: Some(kubeconfig_path.clone()),
            // A simulated cluster: its own field-manager bookkeeping would only load the one machine it shares.
            track_managed_fields: false,
            ..flotilla_apiserver::Config::new(
                flotilla_apiserver::StorageConfig::Embedded,
                config.data_dir.clone(),
            )
        };
        let running = flotilla_apiserver::start(server)
            .await
            .with_context(|| format!("start simulated member {}", config.name))?;
        let client = client(&running.kubeconfig).await?;
        create_nodes(&client, &config).await?;
        let mut behaviour = config.behaviour.clone();
        behaviour.nodes = config.nodes;
        let simulator = tokio::spawn(runner::run(client, behaviour));
        Ok(SimulatedMember {
            name: config.name,
            address: running.address,
            kubeconfig: running.kubeconfig,
            kubeconfig_path,
            tasks: vec![running.task, simulator],
        })
    }

    /// Stops serving and simulating.
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// A kube client for the kubeconfig's current context.
pub async fn client(kubeconfig: &str) -> Result<kube::Client> {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig).context("parse the kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("load the kubeconfig")?;
    kube::Client::try_from(config).context("build a client")
}

/// The member's nodes, Ready, with hostname, zone and region labels (idempotent: a restarted member keeps
/// them).
async fn create_nodes(client: &kube::Client, config: &MemberConfig) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..config.nodes {
        let name = format!("{}-node-{}", config.name, i + 1);
        let zone = &config.zones[i as usize % config.zones.len().max(1)];
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/region": config.region,
                    "topology.kubernetes.io/zone": zone,
                    "type": "flotilla-simulated",
                },
            },
        }))?;
        let mut delay = Duration::from_millis(20);
        loop {
            match nodes.create(&PostParams::default(), &node).await {
                Ok(_) => break,
                Err(kube::Error::Api(status)) if status.code == 409 => break,
                Err(err) if delay < Duration::from_secs(5) => {
                    tracing::debug!(error = %err, "member not ready for its nodes yet");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(err) => return Err(err).with_context(|| format!("create node {name}")),
            }
        }
        let now = flotilla_apiserver::object::now();
        let status = json!({"status": {
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "simulated kubelet is posting ready status", "lastHeartbeatTime": now,
                "lastTransitionTime": now}],
            "addresses": [{"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.33.0-flotilla-simulated", "operatingSystem": "linux",
                "architecture": "amd64", "containerRuntimeVersion": "simulated://1", "kernelVersion": "",
                "osImage": "Flotilla simulated node", "kubeProxyVersion": "", "machineID": "", "systemUUID": "",
                "bootID": ""},
        }});
        nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .with_context(|| format!("set the status of node {name}"))?;
    }
    Ok(())
}
