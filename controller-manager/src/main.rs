//! `flotilla-controller-manager`: the federation's controllers, on their own against any federation apiserver.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use std::sync::Arc;

use flotilla_controller_manager::metrics::{self, Metrics};
use flotilla_controller_manager::sync::SyncOptions;
use flotilla_controller_manager::{Options, health::HealthOptions};

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
    #[arg(long, default_value = "10s", value_parser = humantime_like)]
    cluster_monitor_period: Duration,
    /// Consecutive failed probes before a member is no longer Ready.
    #[arg(long, default_value_t = 3)]
    cluster_failure_threshold: u32,
    /// How long one probe of a member may take.
    #[arg(long, default_value = "5s", value_parser = humantime_like)]
    cluster_probe_timeout: Duration,
    /// How long a member's pods may stay unavailable before its share of replicas is capped and the rest
    /// placed elsewhere (federation v1's estimated capacity).
    #[arg(long, default_value = "60s", value_parser = humantime_like)]
    capacity_timeout: Duration,
    /// How often every federation object is reconciled even when nothing changed.
    #[arg(long, default_value = "5m", value_parser = humantime_like)]
    resync_period: Duration,
    /// Where to serve /metrics, /healthz, /livez and /readyz.
    #[arg(long, default_value = "127.0.0.1:10258")]
    metrics_bind_address: std::net::SocketAddr,
}

/// Go-style durations as kube's flags take them: `300ms`, `30s`, `5m`, `1h`.
fn humantime_like(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or("a duration needs a unit (ms, s, m, h)")?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("invalid duration {text:?}"))?;
    let millis = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("unknown unit in {text:?} (use ms, s, m or h)")),
    };
    Ok(Duration::from_millis(number * millis))
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
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
        result = server => result.with_context(|| format!("serve metrics on {}", args.metrics_bind_address))?,
        _ = flotilla_controller_manager::run(client, options, metrics.clone()) => {}
    }
    Ok(())
}
