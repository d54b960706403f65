//! `flotilla-controller-manager`: the federation's controllers, on their own against any federation apiserver.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use std::sync::Arc;

use flotilla_controller_manager::leader::{self, LeaderOptions};
use flotilla_controller_manager::metrics::{self, Metrics};
use flotilla_controller_manager::sync::SyncOptions;
use flotilla_controller_manager::{Options, health::HealthOptions};

/// jemalloc: less CPU and memory than glibc's malloc for this many small JSON allocations (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Runs Flotilla's controllers against a federation apiserver.
#[derive(Debug, Parser)]
#[command(name = "flotilla-controller-manager", version)]
struct Args {
    /// The federation's kubeconfig (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context of the federation (default: the current context).
    #[arg(long)]
    context: Option<String>,
    /// How often each member cluster is probed.
    #[arg(long, default_value = "10s", value_parser = flotilla_api::duration::parse)]
    cluster_monitor_period: Duration,
    /// Consecutive failed probes before a member is no longer Ready.
    #[arg(long, default_value_t = 3)]
    cluster_failure_threshold: u32,
    /// How long one probe of a member may take.
    #[arg(long, default_value = "5s", value_parser = flotilla_api::duration::parse)]
    cluster_probe_timeout: Duration,
    /// How long a member's pods may stay unavailable before its share of replicas is capped and the rest
    /// placed elsewhere (federation v1's estimated capacity).
    #[arg(long, default_value = "60s", value_parser = flotilla_api::duration::parse)]
    capacity_timeout: Duration,
    /// How often every federation object is reconciled even when nothing changed.
    #[arg(long, default_value = "5m", value_parser = flotilla_api::duration::parse)]
    resync_period: Duration,
    /// Run only while holding the leader lease (kube-system/flotilla-controller-manager), so that several
    /// controller managers can run for availability.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// How long a leader's lease lasts without renewal before another takes over.
    #[arg(long, default_value = "10s", value_parser = flotilla_api::duration::parse)]
    leader_elect_lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading.
    #[arg(long, default_value = "7s", value_parser = flotilla_api::duration::parse)]
    leader_elect_renew_deadline: Duration,
    /// How often to try to take or renew the lease.
    #[arg(long, default_value = "2s", value_parser = flotilla_api::duration::parse)]
    leader_elect_retry_period: Duration,
    /// Where to serve /metrics, /healthz, /livez and /readyz.
    #[arg(long, default_value = "127.0.0.1:10258")]
    metrics_bind_address: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let kubeconfig = match &args.kubeconfig {
        Some(path) => {
            kube::config::Kubeconfig::read_from(path).with_context(|| format!("read {}", path.display()))?
        }
        None => kube::config::Kubeconfig::read().context("read the kubeconfig")?,
    };
    let options = kube::config::KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .context("load the federation's kubeconfig")?;
    let client = kube::Client::try_from(config).context("build a client")?;
    let options = Options {
        health: HealthOptions {
            period: args.cluster_monitor_period,
            failure_threshold: args.cluster_failure_threshold,
            probe_timeout: args.cluster_probe_timeout,
        },
        sync: SyncOptions {
            capacity_timeout: args.capacity_timeout,
            resync: args.resync_period,
            ..SyncOptions::default()
        },
    };
    let metrics = Arc::new(Metrics::default());
    let server = metrics::serve(args.metrics_bind_address, metrics.clone());
    tracing::info!(metrics = %args.metrics_bind_address, "controller manager running");
    let identity = format!(
        "{}_{}",
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim(),
        std::process::id()
    );
    let leader = LeaderOptions {
        lease_duration: args.leader_elect_lease_duration,
        renew_deadline: args.leader_elect_renew_deadline,
        retry_period: args.leader_elect_retry_period,
        ..LeaderOptions::new(&identity)
    };
    let lead = async {
        if args.leader_elect {
            leader::acquire(&client, &leader).await;
        }
        metrics.is_leader.set(1);
        let controllers = flotilla_controller_manager::run(client.clone(), options, metrics.clone());
        if args.leader_elect {
            tokio::select! {
                _ = controllers => {}
                _ = leader::keep(&client, &leader) => {}
            }
            anyhow::bail!("lost the leader lease");
        }
        controllers.await;
        Ok(())
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
        result = server => result.with_context(|| format!("serve metrics on {}", args.metrics_bind_address))?,
        result = lead => result?,
    }
    Ok(())
}
