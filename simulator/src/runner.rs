//! The simulator's controllers: one kube-runtime controller per workload kind, against the member's own API,
//! writing the status [`crate::workloads`] computes (and, for HPAs, the target's scale).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::{apps, autoscaling, batch, core, networking};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::workloads::{self, Clock, Simulated};

/// The workload kinds the simulator brings to life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Deployment,
    ReplicaSet,
    DaemonSet,
    StatefulSet,
    Job,
    HorizontalPodAutoscaler,
    Service,
    Ingress,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::DaemonSet,
        Kind::StatefulSet,
        Kind::Job,
        Kind::HorizontalPodAutoscaler,
        Kind::Service,
        Kind::Ingress,
    ];

    fn api_resource(self) -> ApiResource {
        match self {
            Kind::Deployment => ApiResource::erase::<apps::v1::Deployment>(&()),
            Kind::ReplicaSet => ApiResource::erase::<apps::v1::ReplicaSet>(&()),
            Kind::DaemonSet => ApiResource::erase::<apps::v1::DaemonSet>(&()),
            Kind::StatefulSet => ApiResource::erase::<apps::v1::StatefulSet>(&()),
            Kind::Job => ApiResource::erase::<batch::v1::Job>(&()),
            Kind::HorizontalPodAutoscaler => {
                ApiResource::erase::<autoscaling::v2::HorizontalPodAutoscaler>(&())
            }
            Kind::Service => ApiResource::erase::<core::v1::Service>(&()),
            Kind::Ingress => ApiResource::erase::<networking::v1::Ingress>(&()),
        }
    }
}

/// How the simulated member behaves.
#[derive(Clone, Debug)]
pub struct Behaviour {
    pub ready_delay: Duration,
    /// Pods the member can make ready across its Deployments and ReplicaSets; `None` is unlimited.
    pub capacity: Option<u32>,
    pub nodes: u32,
    /// The first three octets of the member's load-balancer range (`a.b.c.0/24`).
    pub load_balancer_prefix: [u8; 3],
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

struct Simulator {
    client: Client,
    behaviour: Behaviour,
    /// When each (uid, generation) was first seen.
    first_seen: Mutex<HashMap<(String, i64), Instant>>,
    next_address: Mutex<u32>,
    /// Deployments and ReplicaSets: what already holds the member's capacity.
    replicated: OnceLock<Vec<Store<DynamicObject>>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("behaviour", &self.behaviour)
            .finish_non_exhaustive()
    }
}

/// Runs the simulator until the member's API goes away for good (the tasks are aborted with the member).
pub async fn run(client: Client, behaviour: Behaviour) {
    let simulator = Arc::new(Simulator {
        client: client.clone(),
        behaviour,
        first_seen: Mutex::new(HashMap::new()),
        next_address: Mutex::new(0),
        replicated: OnceLock::new(),
    });
    let mut stores = Vec::new();
    let mut runs = Vec::new();
    for kind in Kind::ALL {
        let resource = kind.api_resource();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let controller = Controller::new_with(api, watcher::Config::default(), resource);
        if matches!(kind, Kind::Deployment | Kind::ReplicaSet) {
            stores.push(controller.store());
        }
        let context = Arc::new((simulator.clone(), kind));
        runs.push(
            controller
                .run(reconcile, error_policy, context)
                .for_each(|_| async {}),
        );
    }
    let _ = simulator.replicated.set(stores);
    futures::future::join_all(runs).await;
}

fn error_policy(_: Arc<DynamicObject>, error: &Error, _: Arc<(Arc<Simulator>, Kind)>) -> Action {
    tracing::debug!(%error, "simulator write failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

async fn reconcile(
    object: Arc<DynamicObject>,
    context: Arc<(Arc<Simulator>, Kind)>,
) -> Result<Action, Error> {
    let (simulator, kind) = (&context.0, context.1);
    if object.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let value = serde_json::to_value(&*object)?;
    let now = flotilla_apiserver::object::now();
    let resource = kind.api_resource();
    let namespace = object.namespace().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(simulator.client.clone(), &namespace, &resource);
    let simulated = match kind {
        Kind::Deployment | Kind::ReplicaSet => {
            let clock = simulator.clock(&value, false, &now);
            let grant = simulator.grant(&object);
            workloads::replicated(&value, clock, grant, kind == Kind::Deployment)
        }
        Kind::DaemonSet => {
            let clock = simulator.clock(&value, false, &now);
            workloads::daemon_set(&value, clock, i64::from(simulator.behaviour.nodes))
        }
        Kind::StatefulSet => workloads::stateful_set(&value, simulator.clock(&value, false, &now)),
        Kind::Job => workloads::job(&value, simulator.clock(&value, true, &now)),
        Kind::HorizontalPodAutoscaler => {
            let (simulated, scale) = simulator.autoscale(&value, &namespace, &now).await?;
            if let Some((target, replicas)) = scale {
                target
                    .patch_scale(
                        &target_name(&value),
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
                    )
                    .await?;
            }
            // A real HPA re-reads its target every sync period.
            Simulated {
                recheck: Some(simulated.recheck.unwrap_or(Duration::from_secs(5))),
                ..simulated
            }
        }
        Kind::Service | Kind::Ingress => match workloads::load_balanced(&value, &simulator.next_ip()) {
            Some(simulated) => simulated,
            None => return Ok(Action::await_change()),
        },
    };
    let current = value.get("status").cloned().unwrap_or(Value::Null);
    if !workloads::shows(&current, &simulated.status) {
        api.patch_status(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": simulated.status})),
        )
        .await?;
    }
    Ok(match simulated.recheck {
        Some(after) => Action::requeue(after.max(Duration::from_millis(10))),
        None => Action::await_change(),
    })
}

fn target_name(hpa: &Value) -> String {
    hpa.pointer("/spec/scaleTargetRef/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

impl Simulator {
    /// How long the object's current generation (a Job: the Job) has been running. An object whose status
    /// already shows its generation was started by an earlier simulator run: it is as old as the ready delay.
    fn clock<'a>(&self, object: &Value, whole_life: bool, now: &'a str) -> Clock<'a> {
        let uid = object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let generation = if whole_life {
            0
        } else {
            object
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        };
        let observed = object
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64);
        let elapsed_before = match (
            whole_life,
            object.pointer("/status/startTime").and_then(Value::as_str),
        ) {
            (true, Some(start)) => start
                .parse::<jiff::Timestamp>()
                .ok()
                .and_then(|start| jiff::Timestamp::now().duration_since(start).try_into().ok())
                .unwrap_or_default(),
            (false, _) if observed == Some(generation) => self.behaviour.ready_delay,
            _ => Duration::ZERO,
        };
        let mut first_seen = self.first_seen.lock().expect("not poisoned");
        let seen = *first_seen.entry((uid.to_owned(), generation)).or_insert_with(|| {
            Instant::now()
                .checked_sub(elapsed_before)
                .unwrap_or_else(Instant::now)
        });
        Clock {
            elapsed: seen.elapsed(),
            ready_delay: self.behaviour.ready_delay,
            now,
        }
    }

    /// The pods `object` may have ready: the member's capacity less what its other Deployments and
    /// ReplicaSets hold.
    fn grant(&self, object: &DynamicObject) -> i64 {
        let Some(capacity) = self.behaviour.capacity else {
            return i64::MAX;
        };
        let uid = object.metadata.uid.as_deref();
        let held: i64 = self
            .replicated
            .get()
            .into_iter()
            .flatten()
            .flat_map(|store| store.state())
            .filter(|other| other.metadata.uid.as_deref() != uid)
            .filter_map(|other| {
                other
                    .data
                    .pointer("/status/readyReplicas")
                    .and_then(Value::as_i64)
            })
            .sum();
        (i64::from(capacity) - held).max(0)
    }

    fn next_ip(&self) -> String {
        let mut next = self.next_address.lock().expect("not poisoned");
        *next = *next % 254 + 1;
        let [a, b, c] = self.behaviour.load_balancer_prefix;
        format!("{a}.{b}.{c}.{next}")
    }

    /// The HPA's status and, when its target is outside the bounds, the scale to set on the target.
    async fn autoscale(
        &self,
        hpa: &Value,
        namespace: &str,
        now: &str,
    ) -> Result<(Simulated, Option<(Api<DynamicObject>, i64)>), Error> {
        let kind = hpa
            .pointer("/spec/scaleTargetRef/kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let resource = match kind {
            "Deployment" => ApiResource::erase::<apps::v1::Deployment>(&()),
            "ReplicaSet" => ApiResource::erase::<apps::v1::ReplicaSet>(&()),
            _ => {
                let (simulated, _) = workloads::horizontal_pod_autoscaler(hpa, None, now);
                return Ok((simulated, None));
            }
        };
        let target: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &resource);
        let replicas = match target.get_opt(&target_name(hpa)).await? {
            Some(object) => Some(
                object
                    .data
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1),
            ),
            None => None,
        };
        let (simulated, scale) = workloads::horizontal_pod_autoscaler(hpa, replicas, now);
        Ok((simulated, scale.map(|replicas| (target, replicas))))
    }
}
