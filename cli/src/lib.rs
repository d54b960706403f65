//! `flotilla`: the federation from the command line. `up` runs a whole local federation in one process,
//! `member` runs simulated member clusters, `join`/`unjoin` register members kubefed-style, `status` shows
//! them. The same binary works as the kubectl plugin `kubectl flotilla …` (installed as `kubectl-flotilla`).

pub mod join;
pub mod kubeconfig;
pub mod member;
pub mod up;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use flotilla_controller_manager::Options;
use flotilla_controller_manager::health::HealthOptions;
use flotilla_controller_manager::sync::SyncOptions;

/// The Flotilla federation control plane, from the command line.
#[derive(Debug, Parser)]
#[command(name = "flotilla", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole federation in this process: apiserver, controller manager and simulated members.
    Up(UpArgs),
    /// Run simulated member clusters (a Kubernetes API plus a workload simulator; no container runs).
    Member(MemberArgs),
    /// Join a member cluster to the federation (the current kubeconfig context).
    Join(JoinArgs),
    /// Remove a member cluster from the federation.
    Unjoin(UnjoinArgs),
    /// Show each member cluster with its health and how many federated objects it holds.
    Status(FederationArgs),
}

/// Which federation to talk to, as kubectl's flags choose it.
#[derive(Debug, Args)]
struct FederationArgs {
    /// The kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The federation's context (default: the current context).
    #[arg(long)]
    context: Option<String>,
}

#[derive(Debug, Args)]
struct JoinArgs {
    /// The member's name in the federation (a DNS-1035 label).
    name: String,
    #[command(flatten)]
    federation: FederationArgs,
    /// The member's kubeconfig context (default: the member's name).
    #[arg(long)]
    cluster_context: Option<String>,
    /// The kubeconfig holding --cluster-context (default: the federation's kubeconfig).
    #[arg(long)]
    cluster_kubeconfig: Option<PathBuf>,
    /// Labels for the Cluster, for cluster selectors: k=v,k2=v2.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
}

#[derive(Debug, Args)]
struct UnjoinArgs {
    /// The member's name in the federation.
    name: String,
    #[command(flatten)]
    federation: FederationArgs,
    /// Also delete what Flotilla propagated to the member (by default it stays there).
    #[arg(long)]
    delete_propagated: bool,
}

/// How simulated members behave.
#[derive(Debug, Args)]
struct MemberBehaviour {
    /// Simulated nodes per member (a DaemonSet runs one pod on each).
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// How long simulated pods take to become ready (e.g. 500ms, 2s).
    #[arg(long, default_value = "1s", value_parser = flotilla_api::duration::parse)]
    ready_delay: Duration,
    /// The most pods a member makes ready across its Deployments and ReplicaSets (default: unlimited).
    #[arg(long)]
    capacity: Option<u32>,
}

#[derive(Debug, Args)]
struct MemberArgs {
    /// The member's name, its kubeconfig context; with --count N, members NAME-1 … NAME-N.
    #[arg(long, default_value = "member")]
    name: String,
    /// Each member keeps its store, certificates and kubeconfig in DATA_DIR/NAME.
    #[arg(long, default_value = "./flotilla-data/members")]
    data_dir: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// The HTTPS port of the (first) member; the others follow on consecutive ports. 0 picks free ports.
    #[arg(long, default_value_t = 7443)]
    port: u16,
    /// How many members to run in this process.
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// The region of the members' nodes (label topology.kubernetes.io/region).
    #[arg(long, default_value = "region-1")]
    region: String,
    /// The zones the members' nodes are spread over (label topology.kubernetes.io/zone).
    #[arg(long, value_delimiter = ',', default_value = "region-1a,region-1b")]
    zones: Vec<String>,
    #[command(flatten)]
    behaviour: MemberBehaviour,
}

#[derive(Debug, Args)]
struct UpArgs {
    /// Where the federation keeps its state (embedded store, certificates, kubeconfig, members).
    #[arg(long, default_value = "./flotilla-data")]
    data_dir: PathBuf,
    /// etcd client URLs, comma-separated; without them the embedded store in --data-dir is used.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// The federation apiserver's HTTPS port; simulated members take the ports after it. 0 picks free ports.
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Simulated member clusters to run and join as member-1 … member-N.
    #[arg(long, default_value_t = 0)]
    simulated_members: u32,
    #[command(flatten)]
    behaviour: MemberBehaviour,
    /// How often each member cluster is probed.
    #[arg(long, default_value = "10s", value_parser = flotilla_api::duration::parse)]
    cluster_monitor_period: Duration,
    /// Consecutive failed probes before a member is no longer Ready.
    #[arg(long, default_value_t = 3)]
    cluster_failure_threshold: u32,
    /// How long a member's pods may stay unavailable before its share of replicas is capped and the rest
    /// placed elsewhere.
    #[arg(long, default_value = "60s", value_parser = flotilla_api::duration::parse)]
    capacity_timeout: Duration,
}

fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>> {
    let mut parsed = BTreeMap::new();
    for label in labels.iter().filter(|l| !l.is_empty()) {
        let Some((key, value)) = label.split_once('=') else {
            bail!("label {label:?} is not key=value");
        };
        flotilla_api::selector::LabelSelector::parse(label)
            .map_err(|err| anyhow::anyhow!("label {label:?} is invalid: {err}"))?;
        parsed.insert(key.to_owned(), value.to_owned());
    }
    Ok(parsed)
}

/// The binary's entry point: runs the command, prints an error and exits 1 on failure.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    let mut out = std::io::stdout();
    match command {
        Command::Join(args) => {
            let federation = kubeconfig::load(args.federation.kubeconfig.as_deref())?;
            let member_config = match &args.cluster_kubeconfig {
                Some(path) => kubeconfig::load(Some(path))?,
                None => federation.clone(),
            };
            let member_context = args.cluster_context.clone().unwrap_or_else(|| args.name.clone());
            let member_context = member_config.context_name(Some(&member_context), "cluster")?;
            let labels = parse_labels(&args.labels)?;
            let federation_client = federation
                .client(args.federation.context.as_deref(), "federation")
                .await?;
            let member_client = member_config.client(Some(&member_context), "cluster").await?;
            let request = join::JoinRequest {
                name: args.name.clone(),
                server: member_config
                    .server(&member_context)
                    .context("the cluster context has no server")?,
                kubeconfig: kubeconfig::to_yaml(&member_config.minified(&member_context)?)?,
                labels,
                replace: false,
            };
            join::join(&federation_client, &member_client, &request, &mut out).await
        }
        Command::Unjoin(args) => {
            let federation = kubeconfig::load(args.federation.kubeconfig.as_deref())?;
            let client = federation
                .client(args.federation.context.as_deref(), "federation")
                .await?;
            join::unjoin(&client, &args.name, args.delete_propagated, &mut out).await
        }
        Command::Status(args) => {
            let federation = kubeconfig::load(args.kubeconfig.as_deref())?;
            let client = federation.client(args.context.as_deref(), "federation").await?;
            join::status(&client, &mut out).await
        }
        Command::Member(args) => {
            let settings = member::MemberSettings {
                bind_address: args.bind_address,
                nodes: args.behaviour.nodes,
                ready_delay: args.behaviour.ready_delay,
                capacity: args.behaviour.capacity,
            };
            member::run(
                &args.name,
                args.count,
                args.data_dir,
                args.port,
                &args.region,
                &args.zones,
                settings,
            )
            .await
        }
        Command::Up(args) => {
            let options = up::UpOptions {
                data_dir: args.data_dir,
                etcd_servers: args.etcd_servers,
                bind_address: args.bind_address,
                port: args.port,
                simulated_members: args.simulated_members,
                member: member::MemberSettings {
                    bind_address: args.bind_address,
                    nodes: args.behaviour.nodes,
                    ready_delay: args.behaviour.ready_delay,
                    capacity: args.behaviour.capacity,
                },
                controllers: Options {
                    health: HealthOptions {
                        period: args.cluster_monitor_period,
                        failure_threshold: args.cluster_failure_threshold,
                        ..HealthOptions::default()
                    },
                    sync: SyncOptions {
                        capacity_timeout: args.capacity_timeout,
                        ..SyncOptions::default()
                    },
                },
            };
            let mut progress = std::io::stderr();
            let federation = up::start(&options, &mut progress).await?;
            up::summary(&federation, &options, &mut out)?;
            tokio::signal::ctrl_c().await?;
            eprintln!("Stopping.");
            federation.stop();
            Ok(())
        }
    }
}
