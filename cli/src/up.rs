//! `flotilla up`: the whole federation in one process, as federation v1's `fcp` ran it — the apiserver, the
//! controller manager and, with `--simulated-members N`, N simulated members joined as `member-1` … `member-N`.
//! Started again on the same data directory, it resumes the same federation.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use flotilla_api::federation::Cluster;
use flotilla_apiserver::{Config, StorageConfig};
use flotilla_controller_manager::Options;
use flotilla_simulator::SimulatedMember;
use kube::Api;
use kube::api::ListParams;

use crate::join::{self, JoinRequest};
use crate::kubeconfig;
use crate::member::{self, MemberSettings};

/// The regions simulated members are spread over, round robin.
const REGIONS: &[&str] = &["eu-west", "us-east", "ap-south"];

/// How long `flotilla up` waits for the etcd it is given before giving up.
const ETCD_STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

/// `flotilla up`'s settings.
#[derive(Clone, Debug)]
pub struct UpOptions {
    pub data_dir: PathBuf,
    pub etcd_servers: Vec<String>,
    pub bind_address: IpAddr,
    pub port: u16,
    pub simulated_members: u32,
    pub member: MemberSettings,
    pub controllers: Options,
}

/// A running federation.
#[derive(Debug)]
pub struct Federation {
    pub address: std::net::SocketAddr,
    pub kubeconfig_path: PathBuf,
    pub members: Vec<SimulatedMember>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Federation {
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
        for member in self.members {
            member.stop();
        }
    }
}

/// Starts everything and returns once every member is joined and Ready; progress goes to `progress`.
pub async fn start(options: &UpOptions, progress: &mut dyn Write) -> Result<Federation> {
    let started = Instant::now();
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("create data directory {}", options.data_dir.display()))?;
    let storage = if options.etcd_servers.is_empty() {
        StorageConfig::Embedded
    } else {
        StorageConfig::Etcd {
            endpoints: options.etcd_servers.clone(),
            tls: None,
        }
    };
    write!(progress, "Starting the federation apiserver … ")?;
    progress.flush()?;
    let config = Config {
        bind_address: options.bind_address,
        secure_port: options.port,
        storage_startup_timeout: Some(ETCD_STARTUP_TIMEOUT),
        ..Config::new(storage, options.data_dir.clone())
    };
    let apiserver = flotilla_apiserver::start(config).await?;
    writeln!(progress, "https://{}", apiserver.address)?;
    let federation = flotilla_simulator::client(&apiserver.kubeconfig).await?;

    let mut members = Vec::new();
    if options.simulated_members > 0 {
        let mut starting = Vec::new();
        write!(
            progress,
            "Starting {} simulated members … ",
            options.simulated_members
        )?;
        progress.flush()?;
        let first_port = if options.port == 0 {
            0
        } else {
            options.port.saturating_add(1)
        };
        for i in 1..=options.simulated_members {
            let region = REGIONS[(i as usize - 1) % REGIONS.len()];
            let zones = vec![format!("{region}-a"), format!("{region}-b")];
            let config = member::config(
                &format!("member-{i}"),
                i,
                &options.data_dir.join("members"),
                first_port,
                region,
                &zones,
                &options.member,
            );
            starting.push(SimulatedMember::start(config));
        }
        let members_started = futures::future::join_all(starting).await;
        let mut running = Vec::new();
        for member in members_started {
            running.push(member?);
        }
        writeln!(progress, "done")?;
        write!(progress, "Joining them … ")?;
        progress.flush()?;
        let mut quiet = std::io::sink();
        for (i, member) in running.iter().enumerate() {
            let region = REGIONS[i % REGIONS.len()];
            let client = flotilla_simulator::client(&member.kubeconfig).await?;
            let request = JoinRequest {
                name: member.name.clone(),
                server: format!("https://{}", member.address),
                kubeconfig: member.kubeconfig.clone(),
                labels: BTreeMap::from([
                    ("region".to_owned(), region.to_owned()),
                    ("zone".to_owned(), format!("{region}-a")),
                ]),
                replace: true,
            };
            join::join(&federation, &client, &request, &mut quiet)
                .await
                .with_context(|| format!("join {}", member.name))?;
        }
        writeln!(progress, "done")?;
        members = running;
    }

    let kubeconfig_path = options.data_dir.join("kubeconfig");
    let mut configs = vec![kube::config::Kubeconfig::from_yaml(&apiserver.kubeconfig)?];
    for member in &members {
        configs.push(kube::config::Kubeconfig::from_yaml(&member.kubeconfig)?);
    }
    let merged = kubeconfig::merge(configs, "flotilla");
    flotilla_apiserver::kubeconfig::write(&kubeconfig_path, &kubeconfig::to_yaml(&merged)?)?;

    write!(progress, "Starting the controller manager … ")?;
    progress.flush()?;
    let metrics = Arc::new(flotilla_controller_manager::metrics::Metrics::default());
    let controllers = tokio::spawn(flotilla_controller_manager::run(
        federation.clone(),
        options.controllers,
        metrics,
    ));
    wait_ready(&federation, members.len()).await?;
    writeln!(progress, "members Ready")?;
    writeln!(
        progress,
        "Flotilla is ready ({} ms).",
        started.elapsed().as_millis()
    )?;
    Ok(Federation {
        address: apiserver.address,
        kubeconfig_path,
        members,
        tasks: vec![apiserver.task, controllers],
    })
}

/// Waits until `count` clusters are Ready.
async fn wait_ready(federation: &kube::Client, count: usize) -> Result<()> {
    let clusters: Api<Cluster> = Api::all(federation.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = clusters.list(&ListParams::default()).await?;
        let ready = list.items.iter().filter(|c| c.is_ready()).count();
        if ready >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {ready} of {count} member clusters became Ready within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What to type next, once ready.
pub fn summary(federation: &Federation, options: &UpOptions, out: &mut dyn Write) -> Result<()> {
    let store = if options.etcd_servers.is_empty() {
        format!("embedded store in {}", options.data_dir.display())
    } else {
        format!("etcd at {}", options.etcd_servers.join(","))
    };
    writeln!(out)?;
    writeln!(
        out,
        "  federation apiserver   https://{}   ({store})",
        federation.address
    )?;
    writeln!(out, "  controller manager     in this process")?;
    for (i, member) in federation.members.iter().enumerate() {
        writeln!(
            out,
            "  {:<22} https://{}   simulated, region {}",
            member.name,
            member.address,
            REGIONS[i % REGIONS.len()]
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Next:")?;
    writeln!(
        out,
        "  export KUBECONFIG={}",
        federation.kubeconfig_path.display()
    )?;
    writeln!(out, "  kubectl get clusters -L region")?;
    writeln!(out, "  kubectl create deployment web --image=nginx --replicas=6")?;
    if let Some(first) = federation.members.first() {
        writeln!(out, "  kubectl get deployments --context {}", first.name)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Ctrl-C stops everything; `flotilla up` on the same data directory resumes this federation."
    )?;
    Ok(())
}
