//! Storage compaction, as kube-apiserver does it: every interval, compact to the revision recorded at the
//! previous tick, so that history (watch resumption, continue tokens) stays available for one to two intervals
//! and storage does not grow without bound. Compacting is idempotent, so several apiservers on one etcd may
//! all run it.

use std::sync::Arc;
use std::time::Duration;

use flotilla_storage::{Revision, Store};

/// kube-apiserver's `--etcd-compaction-interval` default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// Runs until the task is dropped.
pub async fn run(store: Arc<dyn Store>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut previous: Option<Revision> = None;
    loop {
        ticker.tick().await;
        if let Some(revision) = previous {
            match store.compact(revision).await {
                Ok(()) => tracing::debug!(%revision, "compacted storage"),
                Err(err) => tracing::warn!(%revision, error = %err, "storage compaction failed"),
            }
        }
        match store.current_revision().await {
            Ok(current) => previous = Some(current),
            Err(err) => tracing::warn!(error = %err, "cannot read the storage revision for compaction"),
        }
    }
}
