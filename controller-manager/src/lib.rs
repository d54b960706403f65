//! `flotilla-controller-manager`: the controllers that make the federation real. The cluster health
//! controller ([`health`]) keeps each member's `Ready` condition; member clients come from [`members`].

pub mod health;
pub mod members;

use std::sync::Arc;

/// Everything the controller manager runs, with its settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub health: health::HealthOptions,
}

/// Runs every controller against the federation apiserver `federation` until the task is dropped.
pub async fn run(federation: kube::Client, options: Options) {
    let members = Arc::new(members::Members::start(federation.clone()).await);
    health::run(federation, members, options.health).await;
}
