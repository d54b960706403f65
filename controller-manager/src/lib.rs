//! `flotilla-controller-manager`: the controllers that make the federation real.
//!
//! - [`health`]: the cluster health controller keeps each member's `Ready` condition.
//! - [`sync`]: one generic sync controller per federated type propagates federation objects to the Ready
//!   members, through a per-type [`adapters::Adapter`] ([`planner`] splits replicas as federation v1 did,
//!   [`placement`] reads cluster selectors, [`jobs`] and [`hpa`] split Jobs and autoscalers), aggregates
//!   status back and deletes in cascade.
//! - [`copies`] is how member copies are cached (compact JSON).
//! - [`members`] builds member clients from their credential Secrets; [`orphans`] remembers copies to release
//!   in members that were away when their object was orphaned; [`events`] and [`metrics`] report.

pub mod adapters;
pub mod copies;
pub mod events;
pub mod health;
pub mod hpa;
pub mod jobs;
pub mod leader;
pub mod members;
pub mod metrics;
pub mod orphans;
pub mod placement;
pub mod planner;
pub mod sync;

use std::sync::Arc;

use flotilla_api::federation::Cluster;
use futures::StreamExt;
use kube::runtime::{WatchStreamExt, reflector, watcher};

/// Everything the controller manager runs, with its settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub health: health::HealthOptions,
    pub sync: sync::SyncOptions,
}

/// Runs every controller against the federation apiserver `federation` until the task is dropped.
pub async fn run(federation: kube::Client, options: Options, metrics: Arc<metrics::Metrics>) {
    let members = Arc::new(members::Members::start(federation.clone()).await);
    let clusters: kube::Api<Cluster> = kube::Api::all(federation.clone());
    let (reader, writer) = reflector::store();
    tokio::spawn(
        reflector::reflector(writer, watcher(clusters, watcher::Config::default()))
            .default_backoff()
            .for_each(|_| async {}),
    );
    let _ = reader.wait_until_ready().await;
    tokio::join!(
        health::run(
            federation.clone(),
            members.clone(),
            reader.clone(),
            options.health
        ),
        sync::run(federation, members, reader, options.sync, metrics),
    );
}
