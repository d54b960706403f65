//! `flotilla-apiserver`: flags in kube-apiserver's style, then [`flotilla_apiserver::start`].

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use flotilla_apiserver::{Config, StorageConfig};

/// jemalloc: less CPU and memory than glibc's malloc for this many small JSON allocations (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The federation apiserver: the native Kubernetes API over TLS, on etcd or an embedded store.
#[derive(Debug, Parser)]
#[command(name = "flotilla-apiserver", version)]
struct Args {
    /// etcd client URLs, comma-separated; without them the embedded store in --data-dir is used.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// The CA (PEM) that signed etcd's serving certificates, for `https://` etcd servers.
    #[arg(long)]
    etcd_cafile: Option<PathBuf>,
    /// The client certificate (PEM) to present to etcd, when etcd checks client certificates.
    #[arg(long, requires = "etcd_keyfile")]
    etcd_certfile: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, requires = "etcd_certfile")]
    etcd_keyfile: Option<PathBuf>,
    /// Where the embedded store, the generated certificates and the admin credential live.
    #[arg(long, default_value = "./flotilla-data")]
    data_dir: PathBuf,
    /// The key prefix of every object in storage, as kube-apiserver's --etcd-prefix.
    #[arg(long, default_value = "/registry")]
    storage_prefix: String,
    /// The address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// The HTTPS port (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Serving certificate (PEM); generated into <data-dir>/pki when not given.
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// Serving key (PEM).
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// CA that signs client certificates (CN = user, O = groups).
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// Bearer tokens in kube's CSV format: token,user,uid,"group1,group2".
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Write an admin kubeconfig here once serving.
    #[arg(long)]
    write_kubeconfig: Option<PathBuf>,
    /// How often to compact storage history, as kube's --etcd-compaction-interval (e.g. 5m, 30s; 0 turns it off).
    #[arg(long, default_value = "5m", value_parser = flotilla_api::duration::parse)]
    etcd_compaction_interval: std::time::Duration,
    /// Past events the watch cache keeps per resource, for watches resuming from an older resourceVersion.
    #[arg(long, default_value_t = flotilla_apiserver::cache::DEFAULT_HISTORY)]
    default_watch_cache_size: usize,
    /// The IPv4 CIDR Services' cluster IPs are allocated from, as kube-apiserver's flag.
    #[arg(long, default_value = flotilla_apiserver::services::DEFAULT_CLUSTER_IP_RANGE)]
    service_cluster_ip_range: flotilla_apiserver::services::IpRange,
    /// The ports NodePort and LoadBalancer Services' node ports are allocated from, as kube-apiserver's flag.
    #[arg(long, default_value = flotilla_apiserver::services::DEFAULT_NODE_PORT_RANGE)]
    service_node_port_range: flotilla_apiserver::services::PortRange,
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
    let config = Config {
        profile: flotilla_api::resources::Profile::Federation,
        context_name: "flotilla".to_owned(),
        storage: if args.etcd_servers.is_empty() {
            StorageConfig::Embedded
        } else {
            StorageConfig::Etcd {
                endpoints: args.etcd_servers,
                tls: (args.etcd_cafile.is_some() || args.etcd_certfile.is_some()).then_some(
                    flotilla_storage::etcd::EtcdTls {
                        ca_file: args.etcd_cafile,
                        cert_file: args.etcd_certfile,
                        key_file: args.etcd_keyfile,
                    },
                ),
            }
        },
        data_dir: args.data_dir,
        storage_prefix: args.storage_prefix,
        bind_address: args.bind_address,
        secure_port: args.secure_port,
        tls_cert_file: args.tls_cert_file,
        tls_private_key_file: args.tls_private_key_file,
        client_ca_file: args.client_ca_file,
        token_auth_file: args.token_auth_file,
        write_kubeconfig: args.write_kubeconfig,
        compaction_interval: args.etcd_compaction_interval,
        watch_cache_size: args.default_watch_cache_size,
        // etcd may start after the apiserver (as on a host cluster): serve 503 until it answers.
        storage_startup_timeout: None,
        track_managed_fields: true,
        service_ranges: flotilla_apiserver::services::ServiceRanges {
            cluster_ips: args.service_cluster_ip_range,
            node_ports: args.service_node_port_range,
        },
    };
    let running = flotilla_apiserver::start(config).await?;
    tracing::info!(address = %running.address, "serving");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
        _ = running.task => {}
    }
    Ok(())
}
