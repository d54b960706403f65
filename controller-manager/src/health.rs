//! The cluster health controller: probes every member's `/readyz` (falling back to `/healthz`) each monitor
//! period, each member on its own task so that a slow or dead one never delays the others, and keeps each
//! Cluster's `Ready` and `Offline` conditions, zones and region.
//!
//! `Ready` turns `False` (the member answers, but not ok) or `Unknown` (it does not answer; `Offline` turns
//! `True`) only after `failure_threshold` consecutive failed probes, and back to `True` on the first good
//! one. Transition times are kept while a condition's status holds. The status is written when it changes,
//! and otherwise every few periods to refresh `lastProbeTime` (not on every probe: each write wakes every
//! watcher of Clusters).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_api::federation::{Cluster, ClusterCondition, ClusterStatus};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use serde_json::json;

use crate::members::Members;

/// The health controller's settings.
#[derive(Clone, Copy, Debug)]
pub struct HealthOptions {
    /// How often each member is probed (`--cluster-monitor-period`).
    pub period: Duration,
    /// Consecutive failed probes before a member is no longer Ready (`--cluster-failure-threshold`).
    pub failure_threshold: u32,
    /// How long one probe may take (`--cluster-probe-timeout`).
    pub probe_timeout: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            period: Duration::from_secs(10),
            failure_threshold: 3,
            probe_timeout: Duration::from_secs(5),
        }
    }
}

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Ok,
    /// The member answered, but not ok.
    NotReady(String),
    /// The member did not answer (or no client could be built for it).
    Unreachable(String),
}

/// Status writes refresh `lastProbeTime` at least this many periods apart when nothing changes.
const REFRESH_PERIODS: u32 = 6;

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> ClusterCondition {
    ClusterCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_probe_time: None,
        last_transition_time: None,
    }
}

/// The conditions a probe leads to once it counts (`None`: not yet, the failures are below the threshold).
pub fn conditions_for(probe: &Probe, failures: u32, threshold: u32) -> Option<Vec<ClusterCondition>> {
    match probe {
        Probe::Ok => Some(vec![
            condition("Ready", "True", "ClusterReady", "/readyz responded with ok"),
            condition("Offline", "False", "ClusterReachable", "cluster is reachable"),
        ]),
        _ if failures < threshold => None,
        Probe::NotReady(message) => Some(vec![
            condition(
                "Ready",
                "False",
                "ClusterNotReady",
                &format!("/readyz responded without ok: {message}"),
            ),
            condition("Offline", "False", "ClusterReachable", "cluster is reachable"),
        ]),
        Probe::Unreachable(message) => Some(vec![
            condition(
                "Ready",
                "Unknown",
                "ClusterNotReachable",
                &format!("cluster is not reachable: {message}"),
            ),
            condition(
                "Offline",
                "True",
                "ClusterNotReachable",
                "cluster is not reachable",
            ),
        ]),
    }
}

/// The status to write, or `None` when the stored one says the same and is fresh enough.
pub fn next_status(
    previous: Option<&ClusterStatus>,
    mut conditions: Vec<ClusterCondition>,
    zones: Vec<String>,
    region: Option<String>,
    now: jiff::Timestamp,
    refresh: Duration,
) -> Option<ClusterStatus> {
    let previous_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let mut changed = previous.is_none_or(|p| p.zones != zones || p.region != region);
    let mut stale = false;
    for condition in &mut conditions {
        let before = previous_conditions.iter().find(|c| c.type_ == condition.type_);
        condition.last_probe_time = Some(Time(now));
        match before {
            Some(before) if before.status == condition.status => {
                condition.last_transition_time = before.last_transition_time.clone().or(Some(Time(now)));
                changed |= before.reason != condition.reason || before.message != condition.message;
                stale |= before
                    .last_probe_time
                    .as_ref()
                    .is_none_or(|t| now.duration_since(t.0).unsigned_abs() >= refresh);
            }
            _ => {
                condition.last_transition_time = Some(Time(now));
                changed = true;
            }
        }
    }
    changed |= previous_conditions.len() != conditions.len();
    (changed || stale).then_some(ClusterStatus {
        conditions,
        zones,
        region,
    })
}

/// Runs the controller: one probe loop per Cluster, started and stopped as Clusters come and go.
pub async fn run(federation: Client, members: Arc<Members>, reader: Store<Cluster>, options: HealthOptions) {
    let clusters: Api<Cluster> = Api::all(federation.clone());
    let mut loops: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let state = reader.state();
        let names: HashSet<&str> = state.iter().filter_map(|c| c.metadata.name.as_deref()).collect();
        loops.retain(|name, task| {
            let keep = names.contains(name.as_str()) && !task.is_finished();
            if !keep {
                task.abort();
                members.forget(name);
            }
            keep
        });
        for name in names {
            if !loops.contains_key(name) {
                let probes = probe_loop(
                    name.to_owned(),
                    reader.clone(),
                    clusters.clone(),
                    members.clone(),
                    options,
                );
                loops.insert(name.to_owned(), tokio::spawn(probes));
            }
        }
    }
}

async fn probe_loop(
    name: String,
    clusters: Store<Cluster>,
    api: Api<Cluster>,
    members: Arc<Members>,
    options: HealthOptions,
) {
    let mut failures = 0u32;
    // When the member's zones and region were last read: its nodes are listed when it turns Ready and then once
    // per status refresh, not on every probe (a member's node list can be megabytes).
    let mut topology_read: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(options.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(cluster) = clusters.get(&ObjectRef::new(&name)) else {
            return;
        };
        let (probe, client) = match members.client(&cluster).await {
            Ok(client) => (probe(&client, options.probe_timeout).await, Some(client)),
            Err(err) => (Probe::Unreachable(err.to_string()), None),
        };
        failures = if probe == Probe::Ok {
            0
        } else {
            failures.saturating_add(1)
        };
        let Some(conditions) = conditions_for(&probe, failures, options.failure_threshold) else {
            tracing::debug!(cluster = %name, ?probe, failures, "probe failed");
            continue;
        };
        let previous = cluster.status.as_ref();
        let refresh = options.period * REFRESH_PERIODS;
        let was_ready = previous
            .and_then(|p| p.conditions.first())
            .is_some_and(|c| c.status == "True");
        let read_topology = !was_ready || topology_read.is_none_or(|at| at.elapsed() >= refresh);
        let (zones, region) = match (&probe, client) {
            (Probe::Ok, Some(client)) if read_topology => {
                topology_read = Some(tokio::time::Instant::now());
                topology(&client, options.probe_timeout).await.unwrap_or_else(|| {
                    (
                        previous.map(|p| p.zones.clone()).unwrap_or_default(),
                        previous.and_then(|p| p.region.clone()),
                    )
                })
            }
            _ => (
                previous.map(|p| p.zones.clone()).unwrap_or_default(),
                previous.and_then(|p| p.region.clone()),
            ),
        };
        let Some(status) = next_status(
            previous,
            conditions,
            zones,
            region,
            jiff::Timestamp::now(),
            refresh,
        ) else {
            continue;
        };
        if previous.map(|p| p.conditions.first().map(|c| &c.status))
            != Some(status.conditions.first().map(|c| &c.status))
        {
            tracing::info!(cluster = %name, ready = %status.conditions[0].status, reason = ?status.conditions[0].reason, "cluster health changed");
        }
        // Explicitly empty zones and region, so that the merge patch clears stale ones.
        let mut patch = json!({"status": status});
        patch["status"]["zones"] = json!(status.zones);
        patch["status"]["region"] = json!(status.region);
        if let Err(err) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(cluster = %name, error = %err, "cannot update cluster status");
        }
    }
}

/// Probes `/readyz`, falling back to `/healthz` where the member has no `/readyz`.
pub async fn probe(client: &Client, timeout: Duration) -> Probe {
    let mut last = Probe::Unreachable("no probe ran".to_owned());
    for path in ["/readyz", "/healthz"] {
        let request = http::Request::get(path)
            .body(Vec::new())
            .expect("a valid request");
        last = match tokio::time::timeout(timeout, client.request_text(request)).await {
            Err(_) => return Probe::Unreachable(format!("no answer within {timeout:?}")),
            Ok(Ok(body)) if body.trim().eq_ignore_ascii_case("ok") => return Probe::Ok,
            Ok(Ok(body)) => return Probe::NotReady(body.trim().chars().take(200).collect()),
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
                Probe::NotReady(format!("{path} not found"))
            }
            Ok(Err(kube::Error::Api(status))) => return Probe::NotReady(status.message),
            Ok(Err(err)) => return Probe::Unreachable(err.to_string()),
        };
    }
    last
}

/// Zones (sorted, unique) and region from the member's node labels (`topology.kubernetes.io/*`, or the
/// deprecated `failure-domain.beta.kubernetes.io/*`); `None` when the nodes cannot be listed.
async fn topology(client: &Client, timeout: Duration) -> Option<(Vec<String>, Option<String>)> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = tokio::time::timeout(timeout, nodes.list(&ListParams::default().limit(500)))
        .await
        .ok()?
        .ok()?;
    let label = |node: &Node, key: &str| {
        let labels = node.metadata.labels.as_ref()?;
        labels
            .get(&format!("topology.kubernetes.io/{key}"))
            .or_else(|| labels.get(&format!("failure-domain.beta.kubernetes.io/{key}")))
            .cloned()
    };
    let zones: BTreeSet<String> = list.items.iter().filter_map(|n| label(n, "zone")).collect();
    let region = list.items.iter().find_map(|n| label(n, "region"));
    Some((zones.into_iter().collect(), region))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    const REFRESH: Duration = Duration::from_secs(60);

    #[test]
    fn failures_count_only_from_the_threshold() {
        let down = Probe::Unreachable("refused".to_owned());
        assert!(conditions_for(&down, 1, 3).is_none());
        assert!(conditions_for(&down, 2, 3).is_none());
        let conditions = conditions_for(&down, 3, 3).unwrap();
        assert_eq!(
            (conditions[0].type_.as_str(), conditions[0].status.as_str()),
            ("Ready", "Unknown")
        );
        assert_eq!(
            (conditions[1].type_.as_str(), conditions[1].status.as_str()),
            ("Offline", "True")
        );
        let sick = conditions_for(&Probe::NotReady("etcd".to_owned()), 3, 3).unwrap();
        assert_eq!(sick[0].status, "False");
        assert_eq!(conditions_for(&Probe::Ok, 0, 3).unwrap()[0].status, "True");
    }

    #[test]
    fn transition_times_hold_while_the_status_holds() {
        let ready = || conditions_for(&Probe::Ok, 0, 3).unwrap();
        let first = next_status(None, ready(), vec![], None, at(0), REFRESH).unwrap();
        assert_eq!(first.conditions[0].last_transition_time, Some(Time(at(0))));

        assert!(
            next_status(Some(&first), ready(), vec![], None, at(10), REFRESH).is_none(),
            "nothing changed and the probe time is fresh"
        );
        let refreshed = next_status(Some(&first), ready(), vec![], None, at(60), REFRESH).unwrap();
        assert_eq!(refreshed.conditions[0].last_probe_time, Some(Time(at(60))));
        assert_eq!(refreshed.conditions[0].last_transition_time, Some(Time(at(0))));

        let down = conditions_for(&Probe::Unreachable("x".to_owned()), 3, 3).unwrap();
        let offline = next_status(Some(&refreshed), down, vec![], None, at(70), REFRESH).unwrap();
        assert_eq!(offline.conditions[0].status, "Unknown");
        assert_eq!(offline.conditions[0].last_transition_time, Some(Time(at(70))));
    }

    #[test]
    fn zone_changes_are_written() {
        let ready = || conditions_for(&Probe::Ok, 0, 3).unwrap();
        let first = next_status(None, ready(), vec![], None, at(0), REFRESH).unwrap();
        let zoned = next_status(
            Some(&first),
            ready(),
            vec!["eu-1a".to_owned()],
            Some("eu-1".to_owned()),
            at(1),
            REFRESH,
        )
        .unwrap();
        assert_eq!(zoned.region.as_deref(), Some("eu-1"));
    }
}
