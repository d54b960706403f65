//! The controller manager's Prometheus metrics, served at `/metrics` with `/healthz`, `/livez` and `/readyz`.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every metric, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub reconcile_seconds: Histogram,
    pub sync_errors: Counter,
    pub member_writes: Counter,
    pub ready_members: Gauge,
    pub is_leader: Gauge,
    /// 1 per Ready member, 0 otherwise, by cluster.
    pub cluster_ready: Family<Vec<(String, String)>, Gauge>,
    pub queue_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("flotilla");
        let reconcile_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "sync_reconcile_duration_seconds",
            "How long one reconcile of a federation object took",
            reconcile_seconds.clone(),
        );
        let sync_errors = Counter::default();
        registry.register(
            "sync_errors",
            "Reconciles that failed and were retried (propagation errors)",
            sync_errors.clone(),
        );
        let member_writes = Counter::default();
        registry.register(
            "member_writes",
            "Creates, updates and deletes of member copies",
            member_writes.clone(),
        );
        let ready_members = Gauge::default();
        registry.register(
            "ready_member_clusters",
            "Member clusters that are Ready and whose caches are synced",
            ready_members.clone(),
        );
        let cluster_ready = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "cluster_ready",
            "1 when the member cluster is Ready, 0 when it is not",
            cluster_ready.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "sync_queue_depth",
            "Federation objects changed since their last successful reconcile (the work queue's backlog)",
            queue_depth.clone(),
        );
        let is_leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this controller manager leads",
            is_leader.clone(),
        );
        Metrics {
            registry,
            reconcile_seconds,
            sync_errors,
            member_writes,
            ready_members,
            is_leader,
            cluster_ready,
            queue_depth,
        }
    }
}

impl Metrics {
    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String does not fail");
        text
    }
}

/// Serves `/metrics` and the health endpoints on `address` until dropped.
pub async fn serve(address: std::net::SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    use axum::routing::get;
    let text = move || {
        let metrics = metrics.clone();
        async move {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                metrics.encode(),
            )
        }
    };
    let router = axum::Router::new()
        .route("/metrics", get(text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(address).await?;
    axum::serve(listener, router).await
}
