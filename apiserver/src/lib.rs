//! `flotilla-apiserver`: the native Kubernetes API over TLS, backed by a [`flotilla_storage::Store`].
//!
//! [`app`] builds the router (tests call it in-process); [`run`] is the whole server: storage, PKI,
//! credentials, default namespaces, the lifecycle worker and the TLS listener.

pub mod auth;
pub mod cache;
pub mod compaction;
pub mod conversion;
pub mod defaults;
pub mod discovery;
mod handlers;
pub mod kubeconfig;
pub mod lifecycle;
pub mod managed;
pub mod metrics;
pub mod object;
pub mod openapi;
pub mod patch;
mod protobuf;
pub mod services;
pub mod status;
pub mod table;
pub mod tls;
pub mod validation;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flotilla_api::keys::StoragePrefix;
use flotilla_api::request::ApiPath;
use flotilla_api::resources::Profile;
use flotilla_storage::Store;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;

use crate::auth::{ClientCertificate, Tokens, UserInfo};
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::status::ApiError;

/// The Kubernetes version whose API Flotilla serves (kubectl's dispatcher picks its binary by this minor).
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";

/// Everything request handlers share.
#[derive(Debug)]
pub struct ApiServer {
    /// The federation endpoint, or a (simulated) member cluster.
    pub profile: Profile,
    pub store: Arc<dyn Store>,
    pub prefix: StoragePrefix,
    pub tokens: Tokens,
    pub metrics: Metrics,
    pub lifecycle: Lifecycle,
    pub caches: cache::Caches,
    /// Whether updates record their managers in `managedFields` ([`Config::track_managed_fields`]).
    pub track_managed_fields: bool,
    /// Services' cluster IPs and node ports.
    pub services: Arc<services::Allocator>,
}

/// The HTTP application: authentication and metrics around health, version, discovery and resources.
pub fn app(server: Arc<ApiServer>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/metrics", get(metrics::serve_metrics))
        .route("/openapi/v2", get(openapi::serve_v2))
        .route("/openapi/v3", get(openapi::serve_v3_index))
        .route("/openapi/v3/", get(openapi::serve_v3_index))
        .route("/openapi/v3/{*group_version}", get(openapi::serve_v3))
        .fallback(api_request)
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            metrics::track,
        ))
        .with_state(server)
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready only when storage answers.
async fn readyz(State(server): State<Arc<ApiServer>>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), server.store.current_revision()).await {
        Ok(Ok(_)) => "ok".into_response(),
        Ok(Err(err)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("[-]storage failed: {err}\nreadyz check failed\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "[-]storage failed: timed out\nreadyz check failed\n",
        )
            .into_response(),
    }
}

async fn version() -> Response {
    let body = json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+flotilla-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Everything under `/api` and `/apis`: discovery, or a resource.
async fn api_request(State(server): State<Arc<ApiServer>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    match flotilla_api::request::parse(&path) {
        Some(ApiPath::Resource(_)) => handlers::resource_request(State(server), request).await,
        Some(discovery_path) => match discovery::serve(server.profile, &discovery_path, request.headers()) {
            Ok(response) => response,
            Err(err) => err.into_response(),
        },
        None => ApiError::NoSuchResource.into_response(),
    }
}

/// Where the server keeps its state.
#[derive(Clone, Debug)]
pub enum StorageConfig {
    Etcd {
        endpoints: Vec<String>,
        tls: Option<flotilla_storage::etcd::EtcdTls>,
    },
    Embedded,
}

/// The whole server's settings (the binary's flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// The federation endpoint, or a member cluster (nodes, no federation group).
    pub profile: Profile,
    /// The name of the cluster, user and context in the kubeconfig it writes.
    pub context_name: String,
    pub storage: StorageConfig,
    pub data_dir: PathBuf,
    pub storage_prefix: String,
    pub bind_address: std::net::IpAddr,
    pub secure_port: u16,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub token_auth_file: Option<PathBuf>,
    pub write_kubeconfig: Option<PathBuf>,
    /// How often storage history is compacted (kube's `--etcd-compaction-interval`); zero turns it off.
    pub compaction_interval: Duration,
    /// Past events the watch cache keeps per resource (kube's `--default-watch-cache-size`).
    pub watch_cache_size: usize,
    /// When set, start fails unless storage answers within this time; otherwise the server starts anyway and
    /// answers 503 until etcd comes up (as a control plane whose etcd starts after it needs).
    pub storage_startup_timeout: Option<Duration>,
    /// Whether creates, updates and patches record their managers in `managedFields`, as kube does (on by
    /// default; server-side apply keeps its own entries either way). Simulated members turn it off: the
    /// bookkeeping doubled the cost of their status writes, which is their cluster's cost in real life, not
    /// Flotilla's.
    pub track_managed_fields: bool,
    /// Where Services' cluster IPs and node ports come from (`--service-cluster-ip-range`,
    /// `--service-node-port-range`).
    pub service_ranges: services::ServiceRanges,
}

impl Config {
    /// The defaults of the binary's flags, on `storage`, keeping state in `data_dir`, listening on a free
    /// loopback port.
    pub fn new(storage: StorageConfig, data_dir: PathBuf) -> Self {
        Config {
            profile: Profile::Federation,
            context_name: "flotilla".to_owned(),
            storage,
            data_dir,
            storage_prefix: "/registry".to_owned(),
            bind_address: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            secure_port: 0,
            tls_cert_file: None,
            tls_private_key_file: None,
            client_ca_file: None,
            token_auth_file: None,
            write_kubeconfig: None,
            compaction_interval: compaction::DEFAULT_INTERVAL,
            watch_cache_size: cache::DEFAULT_HISTORY,
            storage_startup_timeout: None,
            track_managed_fields: true,
            service_ranges: services::ServiceRanges::default(),
        }
    }
}

/// A running server: where it listens and how to reach it.
#[derive(Debug)]
pub struct Running {
    pub address: SocketAddr,
    pub kubeconfig: String,
    pub task: tokio::task::JoinHandle<()>,
}

pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    Ok(match &config.storage {
        StorageConfig::Etcd { endpoints, tls } => {
            let etcd = flotilla_storage::etcd::EtcdConfig {
                tls: tls.clone(),
                ..flotilla_storage::etcd::EtcdConfig::new(endpoints.clone())
            };
            Arc::new(
                flotilla_storage::etcd::EtcdStore::connect(&etcd)
                    .await
                    .context("connect to etcd")?,
            )
        }
        StorageConfig::Embedded => {
            let embedded = flotilla_storage::embedded::EmbeddedConfig::new(config.data_dir.join("store"));
            Arc::new(
                flotilla_storage::embedded::EmbeddedStore::open(embedded)
                    .with_context(|| format!("open the embedded store in {}", config.data_dir.display()))?,
            )
        }
    })
}

/// Waits until storage answers, or fails naming it.
async fn wait_for_storage(store: &dyn Store, storage: &StorageConfig, timeout: Duration) -> Result<()> {
    let attempts = async {
        loop {
            match store.current_revision().await {
                Ok(_) => return,
                Err(err) => tracing::debug!(error = %err, "storage does not answer yet"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    if tokio::time::timeout(timeout, attempts).await.is_ok() {
        return Ok(());
    }
    let last = match tokio::time::timeout(Duration::from_secs(1), store.current_revision()).await {
        Ok(Err(err)) => err.to_string(),
        _ => "no answer".to_owned(),
    };
    let what = match storage {
        StorageConfig::Etcd { endpoints, .. } => format!("etcd at {}", endpoints.join(",")),
        StorageConfig::Embedded => "the embedded store".to_owned(),
    };
    anyhow::bail!("{what} is unreachable (waited {}s): {last}", timeout.as_secs())
}

/// Starts the server: returns once it listens.
pub async fn start(config: Config) -> Result<Running> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("create data directory {}", config.data_dir.display()))?;
    let prefix = StoragePrefix::new(&config.storage_prefix)?;
    let store = open_store(&config).await?;
    if let Some(timeout) = config.storage_startup_timeout {
        wait_for_storage(store.as_ref(), &config.storage, timeout).await?;
    }

    let host = hostname();
    let serving = match (&config.tls_cert_file, &config.tls_private_key_file) {
        (Some(cert), Some(key)) => tls::ServingFiles {
            ca_cert: cert.clone(),
            cert: cert.clone(),
            key: key.clone(),
        },
        (None, None) => {
            let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
            hosts.extend(host.clone());
            if !config.bind_address.is_unspecified() {
                hosts.push(config.bind_address.to_string());
            }
            tls::ensure_generated(&config.data_dir.join("pki"), &hosts)?
        }
        _ => anyhow::bail!("--tls-cert-file and --tls-private-key-file go together"),
    };
    let tls_config = tls::server_config(&serving.cert, &serving.key, config.client_ca_file.as_deref())?;

    let mut tokens = match &config.token_auth_file {
        Some(path) => Tokens::read(path)?,
        None => Tokens::default(),
    };
    let admin_token = kubeconfig::admin_token(&config.data_dir)?;
    tokens.insert(
        admin_token.clone(),
        UserInfo {
            name: "flotilla-admin".to_owned(),
            uid: "flotilla-admin".to_owned(),
            groups: vec!["system:masters".to_owned()],
        },
    );

    openapi::warm_up(config.profile);
    let lifecycle = Lifecycle::start(store.clone(), prefix.clone());
    if !config.compaction_interval.is_zero() {
        tokio::spawn(compaction::run(store.clone(), config.compaction_interval));
    }
    let caches = cache::Caches::start(store.clone(), &prefix, config.watch_cache_size);
    let service_resource = flotilla_api::resources::RESOURCES
        .iter()
        .find(|r| r.group.is_empty() && r.plural == "services")
        .expect("services are served");
    let services = Arc::new(services::Allocator::new(
        store.clone(),
        prefix.clone(),
        config.service_ranges,
        caches.of(service_resource).clone(),
    ));
    tokio::spawn(services::run_releaser(services.clone()));
    let server = Arc::new(ApiServer {
        profile: config.profile,
        store: store.clone(),
        prefix: prefix.clone(),
        tokens,
        metrics: Metrics::default(),
        lifecycle,
        track_managed_fields: config.track_managed_fields,
        caches,
        services,
    });
    // The default namespaces, as soon as storage answers (etcd may come up after us).
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        while let Err(err) = lifecycle::ensure_default_namespaces(store.as_ref(), &prefix).await {
            tracing::warn!(error = %err, "cannot create the default namespaces yet");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });

    let listener = TcpListener::bind((config.bind_address, config.secure_port))
        .await
        .with_context(|| format!("listen on {}:{}", config.bind_address, config.secure_port))?;
    let address = listener.local_addr()?;
    let server_host = if config.bind_address.is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        config.bind_address.to_string()
    };
    let ca_pem = std::fs::read_to_string(&serving.ca_cert)
        .with_context(|| format!("read {}", serving.ca_cert.display()))?;
    let kubeconfig = kubeconfig::render(
        &config.context_name,
        &format!(
            "https://{}",
            SocketAddr::new(server_host.parse()?, address.port())
        ),
        &ca_pem,
        &admin_token,
    );
    if let Some(path) = &config.write_kubeconfig {
        kubeconfig::write(path, &kubeconfig)?;
    }
    let router = app(server);
    let task = tokio::spawn(serve(listener, tls_config, router));
    Ok(Running {
        address,
        kubeconfig,
        task,
    })
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// Accepts TLS connections and serves HTTP/1.1 and HTTP/2 on each, with the client certificate's identity on
/// every request of the connection.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, router: Router) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // As Go's net/http (so kube-apiserver) does: small writes — a watch event, a short answer — leave at once
        // instead of waiting, by Nagle's algorithm, for the client's delayed ACK (up to 40 ms on Linux).
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "cannot set TCP_NODELAY");
        }
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| ClientCertificate::from_der(leaf.as_ref()))
                .unwrap_or(ClientCertificate(None));
            let service = TowerToHyperService::new(router.layer(axum::Extension(certificate)));
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // kube-apiserver's --http2-max-streams-per-connection default: watch-heavy clients multiplex.
            builder.http2().max_concurrent_streams(1000);
            if let Err(err) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
}
