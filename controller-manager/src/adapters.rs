//! What differs per federated type, behind one trait: how the federation object becomes the object each
//! member gets (plain copies, or replicas split by the planner), how a member copy is updated, and how member
//! status adds up to the federation object's status. Adding a type is adding an adapter.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flotilla_api::federation::{self, MANAGED_LABEL};
use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use serde_json::{Map, Value, json};

use crate::planner::{self, Preferences};

/// The annotation on member copies with the hash of what Flotilla last wrote.
pub const APPLIED_HASH_ANNOTATION: &str = "federation.flotilla.io/applied-hash";
/// Federation-only annotations: they steer placement and never reach members.
const FEDERATION_ONLY: &[&str] = &[
    federation::CLUSTER_SELECTOR_ANNOTATION,
    "federation.kubernetes.io/deployment-preferences",
    "federation.kubernetes.io/replica-set-preferences",
    "federation.kubernetes.io/job-preferences",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// A member cluster as placement sees it.
#[derive(Clone, Debug)]
pub struct Placement<'a> {
    /// Ready clusters the object's selector picked, in name order.
    pub clusters: &'a [String],
    /// The member copies that exist, by cluster.
    pub members: &'a BTreeMap<String, Value>,
    /// A federated HorizontalPodAutoscaler targets this object: member HPAs own the replica counts.
    pub autoscaled: bool,
}

/// One federated type.
pub trait Adapter: Send + Sync + std::fmt::Debug {
    fn resource(&self) -> &ApiResource;
    fn namespaced(&self) -> bool;

    /// The object each selected cluster should hold (a cluster left out holds none).
    fn place(&self, object: &Value, placement: &Placement<'_>) -> BTreeMap<String, Value> {
        placement
            .clusters
            .iter()
            .map(|c| (c.clone(), render(object)))
            .collect()
    }

    /// The object to write over an existing member copy (by default the desired one; types whose fields are
    /// set or made immutable by the member's own apiserver keep those).
    fn for_update(&self, desired: Value, _current: &Value) -> Value {
        desired
    }

    /// The federation object's status from its member copies, or `None` when the type aggregates none.
    fn aggregate(
        &self,
        _object: &Value,
        _members: &BTreeMap<String, Value>,
        _applied: bool,
    ) -> Option<Value> {
        None
    }
}

fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The adapters of every federated type, in propagation order (namespaces first).
pub fn all(capacity_timeout: Duration) -> Vec<Box<dyn Adapter>> {
    vec![
        Box::new(Copied::new(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            Aggregate::None,
        )),
        Box::new(Copied::new(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            Aggregate::None,
        )),
        Box::new(Copied::new(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            Aggregate::None,
        )),
        Box::new(Copied::new(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            Aggregate::None,
        )),
        Box::new(Copied::new(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            Aggregate::None,
        )),
        Box::new(Copied::new(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            Aggregate::None,
        )),
        Box::new(Copied::new(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            Aggregate::None,
        )),
        Box::new(Copied::new("", "v1", "Secret", "secrets", true, Aggregate::None)),
        Box::new(Copied::new(
            "",
            "v1",
            "Service",
            "services",
            true,
            Aggregate::LoadBalancer,
        )),
        Box::new(Copied::new(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            true,
            Aggregate::LoadBalancer,
        )),
        Box::new(Copied::new(
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            true,
            Aggregate::DaemonSet,
        )),
        Box::new(Copied::new(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            Aggregate::StatefulSet,
        )),
        Box::new(Replicated::new(
            "Deployment",
            "deployments",
            "federation.kubernetes.io/deployment-preferences",
            capacity_timeout,
        )),
        Box::new(Replicated::new(
            "ReplicaSet",
            "replicasets",
            "federation.kubernetes.io/replica-set-preferences",
            capacity_timeout,
        )),
        Box::new(crate::jobs::Jobs::new()),
        Box::new(crate::hpa::Autoscalers::new()),
    ]
}

/// The federation object as a member should hold it: no server-owned metadata, no status, no
/// federation-only annotations; labelled as Flotilla's.
pub fn render(object: &Value) -> Value {
    let mut copy = Map::new();
    for (key, value) in object.as_object().into_iter().flatten() {
        if key != "status" && key != "metadata" {
            copy.insert(key.clone(), value.clone());
        }
    }
    let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut meta = Map::new();
    for key in ["name", "namespace"] {
        if let Some(value) = metadata.get(key) {
            meta.insert(key.to_owned(), value.clone());
        }
    }
    let mut labels = metadata.get("labels").cloned().unwrap_or_else(|| json!({}));
    labels[MANAGED_LABEL] = json!("true");
    meta.insert("labels".to_owned(), labels);
    let annotations: Map<String, Value> = metadata
        .get("annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| !FEDERATION_ONLY.contains(&k.as_str()) && k.as_str() != APPLIED_HASH_ANNOTATION)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !annotations.is_empty() {
        meta.insert("annotations".to_owned(), Value::Object(annotations));
    }
    copy.insert("metadata".to_owned(), Value::Object(meta));
    Value::Object(copy)
}

/// The node ports of a Service that a user asked for, by the field managers that own them.
#[derive(Debug, Default)]
struct AskedNodePorts {
    /// (port, protocol) of the ports whose `nodePort` some manager owns.
    ports: BTreeSet<(i64, String)>,
    health_check: bool,
}

fn asked_node_ports(service: &Value) -> AskedNodePorts {
    let mut asked = AskedNodePorts::default();
    let entries = service
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for entry in entries {
        let Some(spec) = entry.pointer("/fieldsV1/f:spec") else {
            continue;
        };
        asked.health_check |= spec.get("f:healthCheckNodePort").is_some();
        let ports = spec
            .get("f:ports")
            .and_then(Value::as_object)
            .into_iter()
            .flatten();
        for (key, fields) in ports {
            let Some(Ok(port)) = key.strip_prefix("k:").map(serde_json::from_str::<Value>) else {
                continue;
            };
            if fields.get("f:nodePort").is_some()
                && let Some(number) = port.get("port").and_then(Value::as_i64)
            {
                let protocol = port.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                asked.ports.insert((number, protocol.to_owned()));
            }
        }
    }
    asked
}

/// 64-bit FNV-1a of the desired object's JSON (keys sorted), as the applied-hash annotation holds it.
pub fn hash(desired: &Value) -> String {
    let text = serde_json::to_string(desired).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Whether `current` has every field `desired` sets, with the same values (fields the member added, such as
/// defaults, do not count; lists must have the same length, element by element).
pub fn covers(current: &Value, desired: &Value) -> bool {
    match (current, desired) {
        (Value::Object(current), Value::Object(desired)) => desired
            .iter()
            .all(|(k, v)| current.get(k).is_some_and(|c| covers(c, v)) || v.is_null()),
        (Value::Array(current), Value::Array(desired)) => {
            current.len() == desired.len() && current.iter().zip(desired).all(|(c, d)| covers(c, d))
        }
        _ => current == desired,
    }
}

fn int(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// How a plainly copied type's status adds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    None,
    /// `status.loadBalancer.ingress`: the union of the members'.
    LoadBalancer,
    /// DaemonSet counts summed.
    DaemonSet,
    /// StatefulSet counts of the least advanced member: every member runs the whole StatefulSet, so the
    /// federation's is ready (and rolled out) when every member's is, and `kubectl rollout status` waits for all.
    StatefulSet,
}

/// A type copied as is to every selected member.
#[derive(Debug)]
pub struct Copied {
    resource: ApiResource,
    namespaced: bool,
    aggregate: Aggregate,
}

impl Copied {
    fn new(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        aggregate: Aggregate,
    ) -> Self {
        Copied {
            resource: api_resource(group, version, kind, plural),
            namespaced,
            aggregate,
        }
    }
}

impl Adapter for Copied {
    fn resource(&self) -> &ApiResource {
        &self.resource
    }

    fn namespaced(&self) -> bool {
        self.namespaced
    }

    fn place(&self, object: &Value, placement: &Placement<'_>) -> BTreeMap<String, Value> {
        let mut desired = render(object);
        if self.resource.kind == "Service"
            && let Some(spec) = desired.get_mut("spec").and_then(Value::as_object_mut)
        {
            // The member allocates these, except for a headless Service (`None`), which stays headless.
            if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
            // Node ports too, unless a user asked for them: those some field manager owns (the federation's
            // apiserver allocates the others, and they are its own).
            let asked = asked_node_ports(object);
            for port in spec
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let key = (
                    port.get("port").and_then(Value::as_i64).unwrap_or_default(),
                    port.get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("TCP")
                        .to_owned(),
                );
                if !asked.ports.contains(&key)
                    && let Some(port) = port.as_object_mut()
                {
                    port.remove("nodePort");
                }
            }
            if !asked.health_check {
                spec.remove("healthCheckNodePort");
            }
        }
        if self.resource.kind == "Namespace" {
            // The member's own namespace controller owns `spec.finalizers`.
            desired.as_object_mut().map(|o| o.remove("spec"));
        }
        placement
            .clusters
            .iter()
            .map(|c| (c.clone(), desired.clone()))
            .collect()
    }

    fn for_update(&self, mut desired: Value, current: &Value) -> Value {
        if self.resource.kind == "Service" {
            for field in ["clusterIP", "clusterIPs", "healthCheckNodePort"] {
                if desired.pointer(&format!("/spec/{field}")).is_none()
                    && let Some(value) = current.pointer(&format!("/spec/{field}"))
                {
                    desired["spec"][field] = value.clone();
                }
            }
            // Node ports the member allocated stay, port by port.
            if let (Some(ports), Some(current_ports)) = (
                desired.pointer_mut("/spec/ports").and_then(Value::as_array_mut),
                current.pointer("/spec/ports").and_then(Value::as_array),
            ) {
                for port in ports.iter_mut() {
                    if port.get("nodePort").is_none()
                        && let Some(node_port) = current_ports
                            .iter()
                            .find(|p| {
                                p.get("port") == port.get("port") && p.get("protocol") == port.get("protocol")
                            })
                            .and_then(|p| p.get("nodePort"))
                    {
                        port["nodePort"] = node_port.clone();
                    }
                }
            }
        }
        desired
    }

    fn aggregate(&self, object: &Value, members: &BTreeMap<String, Value>, applied: bool) -> Option<Value> {
        match self.aggregate {
            Aggregate::None => None,
            Aggregate::LoadBalancer => {
                let mut ingress: Vec<Value> = Vec::new();
                for member in members.values() {
                    for entry in member
                        .pointer("/status/loadBalancer/ingress")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if !ingress.contains(entry) {
                            ingress.push(entry.clone());
                        }
                    }
                }
                Some(
                    json!({"loadBalancer": if ingress.is_empty() { json!({}) } else { json!({"ingress": ingress}) }}),
                )
            }
            Aggregate::DaemonSet => {
                let sum = |field: &str| {
                    members
                        .values()
                        .map(|m| int(m, &format!("/status/{field}")))
                        .sum::<i64>()
                };
                let mut status = json!({
                    "currentNumberScheduled": sum("currentNumberScheduled"),
                    "desiredNumberScheduled": sum("desiredNumberScheduled"),
                    "numberMisscheduled": sum("numberMisscheduled"),
                    "numberReady": sum("numberReady"),
                    "updatedNumberScheduled": sum("updatedNumberScheduled"),
                    "numberAvailable": sum("numberAvailable"),
                    "numberUnavailable": sum("numberUnavailable"),
                });
                status["observedGeneration"] = observed_generation(object, members, applied);
                Some(status)
            }
            Aggregate::StatefulSet => {
                let least = |field: &str| {
                    members
                        .values()
                        .map(|m| int(m, &format!("/status/{field}")))
                        .min()
                        .unwrap_or(0)
                };
                let mut status = json!({
                    "replicas": least("replicas"),
                    "readyReplicas": least("readyReplicas"),
                    "currentReplicas": least("currentReplicas"),
                    "updatedReplicas": least("updatedReplicas"),
                    "availableReplicas": least("availableReplicas"),
                });
                // A member still rolling out shows its revisions, so that the federation's differ too; once none is,
                // the federation shows none (null removes what an earlier rollout left in the merge patch).
                status["currentRevision"] = Value::Null;
                status["updateRevision"] = Value::Null;
                if let Some(rolling) = members
                    .values()
                    .find(|m| m.pointer("/status/currentRevision") != m.pointer("/status/updateRevision"))
                {
                    for field in ["currentRevision", "updateRevision"] {
                        if let Some(revision) = rolling.pointer(&format!("/status/{field}")) {
                            status[field] = revision.clone();
                        }
                    }
                }
                status["observedGeneration"] = observed_generation(object, members, applied);
                Some(status)
            }
        }
    }
}

/// The federation object's `observedGeneration`: its generation once every member copy holds what Flotilla
/// wrote for it and has observed it; otherwise what it was.
pub fn observed_generation(object: &Value, members: &BTreeMap<String, Value>, applied: bool) -> Value {
    let caught_up = applied
        && members
            .values()
            .all(|m| int(m, "/status/observedGeneration") >= int(m, "/metadata/generation"));
    if caught_up {
        json!(int(object, "/metadata/generation"))
    } else {
        object
            .pointer("/status/observedGeneration")
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// Deployments and ReplicaSets: `spec.replicas` split by federation v1's planner, with capacity estimated
/// from member copies whose pods stay unavailable past a timeout.
#[derive(Debug)]
pub struct Replicated {
    resource: ApiResource,
    preferences_annotation: &'static str,
    capacity_timeout: Duration,
    /// Since when each (cluster, namespace/name) has had fewer ready replicas than it should.
    short_since: Mutex<HashMap<(String, String), Instant>>,
}

impl Replicated {
    fn new(
        kind: &str,
        plural: &str,
        preferences_annotation: &'static str,
        capacity_timeout: Duration,
    ) -> Self {
        Replicated {
            resource: api_resource("apps", "v1", kind, plural),
            preferences_annotation,
            capacity_timeout,
            short_since: Mutex::new(HashMap::new()),
        }
    }

    /// What a member runs (`status.readyReplicas`) and, where it has been short of its `spec.replicas` for
    /// longer than the timeout, what it is estimated to be able to run.
    fn estimate(
        &self,
        key: &str,
        members: &BTreeMap<String, Value>,
    ) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
        let mut current = BTreeMap::new();
        let mut capacity = BTreeMap::new();
        let mut short_since = self.short_since.lock().expect("not poisoned");
        for (cluster, member) in members {
            let ready = int(member, "/status/readyReplicas");
            let wanted = member
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            current.insert(cluster.clone(), ready);
            let entry = (cluster.clone(), key.to_owned());
            if ready < wanted {
                let since = *short_since.entry(entry).or_insert_with(Instant::now);
                if since.elapsed() >= self.capacity_timeout {
                    capacity.insert(cluster.clone(), ready);
                }
            } else {
                short_since.remove(&entry);
            }
        }
        (current, capacity)
    }
}

/// `namespace/name`, the planner's key.
pub fn key_of(object: &Value) -> String {
    let meta = |f: &str| {
        object
            .pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    format!("{}/{}", meta("namespace"), meta("name"))
}

/// The planner's preferences from an annotation (v1's default when absent or unparsable).
pub fn preferences(object: &Value, annotation: &str) -> Preferences {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(annotation))
        .and_then(Value::as_str)
        .and_then(|text| Preferences::parse(text).ok())
        .unwrap_or_default()
}

impl Adapter for Replicated {
    fn resource(&self) -> &ApiResource {
        &self.resource
    }

    fn namespaced(&self) -> bool {
        true
    }

    fn place(&self, object: &Value, placement: &Placement<'_>) -> BTreeMap<String, Value> {
        let key = key_of(object);
        let total = object
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let desired = render(object);
        let (current, capacity) = self.estimate(&key, placement.members);
        let plan = planner::plan(
            &preferences(object, self.preferences_annotation),
            total,
            placement.clusters,
            &current,
            &capacity,
            &key,
        );
        placement
            .clusters
            .iter()
            .map(|cluster| {
                let planned = plan.replicas.get(cluster).copied().unwrap_or(0)
                    + plan.overflow.get(cluster).copied().unwrap_or(0);
                // Member HPAs own the replica counts of the copies they scale (federation v1's
                // hpa-target-cluster-list); new copies start from the plan.
                let replicas = match placement.members.get(cluster) {
                    Some(member) if placement.autoscaled => member
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(planned),
                    _ => planned,
                };
                let mut copy = desired.clone();
                copy["spec"]["replicas"] = json!(replicas);
                (cluster.clone(), copy)
            })
            .collect()
    }

    fn aggregate(&self, object: &Value, members: &BTreeMap<String, Value>, applied: bool) -> Option<Value> {
        let sum = |field: &str| {
            members
                .values()
                .map(|m| int(m, &format!("/status/{field}")))
                .sum::<i64>()
        };
        let deployment = self.resource.kind == "Deployment";
        let replicas = sum("replicas");
        let available = sum("availableReplicas");
        let mut status = json!({
            "replicas": replicas,
            "readyReplicas": sum("readyReplicas"),
            "availableReplicas": available,
            "observedGeneration": observed_generation(object, members, applied),
        });
        if deployment {
            status["updatedReplicas"] = json!(sum("updatedReplicas"));
            status["unavailableReplicas"] = json!(sum("unavailableReplicas"));
            let condition = |type_: &str| -> Vec<&Value> {
                members
                    .values()
                    .filter_map(|m| {
                        m.pointer("/status/conditions")
                            .and_then(Value::as_array)
                            .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
                    })
                    .collect()
            };
            let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            let previous = |type_: &str| {
                object
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
            };
            let keep_time = |type_: &str, status: &str, reason: &str, message: String| {
                let transition = previous(type_)
                    .filter(|p| p["status"] == status)
                    .map(|p| p["lastTransitionTime"].clone())
                    .unwrap_or_else(|| json!(now));
                let update = previous(type_)
                    .filter(|p| p["status"] == status && p["reason"] == reason)
                    .map(|p| p["lastUpdateTime"].clone())
                    .unwrap_or_else(|| json!(now));
                json!({"type": type_, "status": status, "reason": reason, "message": message,
                       "lastTransitionTime": transition, "lastUpdateTime": update})
            };
            let all_available = !members.is_empty()
                && condition("Available")
                    .iter()
                    .filter(|c| c["status"] == "True")
                    .count()
                    == members.len();
            let stuck = condition("Progressing")
                .iter()
                .any(|c| c["reason"] == "ProgressDeadlineExceeded");
            let complete = !members.is_empty()
                && condition("Progressing")
                    .iter()
                    .filter(|c| c["reason"] == "NewReplicaSetAvailable")
                    .count()
                    == members.len();
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            status["conditions"] = json!([
                if all_available {
                    keep_time(
                        "Available",
                        "True",
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability in every member cluster.".to_owned(),
                    )
                } else {
                    keep_time(
                        "Available",
                        "False",
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability in every member cluster.".to_owned(),
                    )
                },
                if stuck {
                    keep_time(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        format!("Deployment \"{name}\" has timed out progressing in a member cluster."),
                    )
                } else if complete {
                    keep_time(
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        format!("Deployment \"{name}\" has successfully progressed in every member cluster."),
                    )
                } else {
                    keep_time(
                        "Progressing",
                        "True",
                        "ReplicaSetUpdated",
                        format!("Deployment \"{name}\" is progressing."),
                    )
                },
            ]);
        } else {
            status["fullyLabeledReplicas"] = json!(sum("fullyLabeledReplicas"));
        }
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_drops_server_fields_and_federation_annotations() {
        let object = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u", "resourceVersion": "7", "generation": 3,
                "creationTimestamp": "x", "finalizers": ["f"], "ownerReferences": [], "managedFields": [],
                "labels": {"app": "web"},
                "annotations": {"team": "a", "federation.kubernetes.io/deployment-preferences": "{}",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": 3}, "status": {"replicas": 3}
        });
        let copy = render(&object);
        assert_eq!(
            copy,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop",
                    "labels": {"app": "web", MANAGED_LABEL: "true"}, "annotations": {"team": "a"}},
                "spec": {"replicas": 3}})
        );
    }

    #[test]
    fn services_leave_allocated_values_to_the_member_but_keep_asked_node_ports() {
        let adapter = Copied::new("", "v1", "Service", "services", true, Aggregate::LoadBalancer);
        // Port 80's node port was asked for (kubectl's manager owns it); port 443's was allocated.
        let service = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "managedFields": [{"manager": "kubectl-client-side-apply",
                "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:type": {},
                "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:nodePort": {}, "f:port": {}},
                    "k:{\"port\":443,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}}}}}]},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31999,
                "clusterIP": "10.96.1.5", "clusterIPs": ["10.96.1.5"],
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080},
                    {"port": 443, "protocol": "TCP", "nodePort": 31443}]}});
        let clusters = ["m1".to_owned()];
        let members = BTreeMap::new();
        let placement = Placement {
            clusters: &clusters,
            members: &members,
            autoscaled: false,
        };
        let spec = adapter.place(&service, &placement)["m1"]["spec"].clone();
        assert!(
            spec.get("clusterIP").is_none() && spec.get("clusterIPs").is_none(),
            "{spec}"
        );
        assert!(spec.get("healthCheckNodePort").is_none());
        assert_eq!(spec["ports"][0]["nodePort"], 30080);
        assert!(spec["ports"][1].get("nodePort").is_none());
        // An update keeps what the member allocated.
        let current = json!({"spec": {"clusterIP": "10.0.0.7", "healthCheckNodePort": 32000,
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 443, "protocol": "TCP", "nodePort": 30443}]}});
        let update = adapter.for_update(json!({"spec": spec}), &current);
        assert_eq!(update["spec"]["clusterIP"], "10.0.0.7");
        assert_eq!(update["spec"]["healthCheckNodePort"], 32000);
        assert_eq!(update["spec"]["ports"][1]["nodePort"], 30443);
        // Headless stays headless.
        let headless =
            json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        assert_eq!(
            adapter.place(&headless, &placement)["m1"]["spec"]["clusterIP"],
            "None"
        );
    }

    #[test]
    fn defaults_added_by_a_member_are_not_drift() {
        let desired = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let defaulted = json!({"spec": {"revisionHistoryLimit": 10, "template": {"spec": {"containers": [
            {"name": "a", "image": "x", "imagePullPolicy": "Always"}]}}}});
        assert!(covers(&defaulted, &desired));
        let edited = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "y"}]}}}});
        assert!(!covers(&edited, &desired));
        let extra = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}}}});
        assert!(!covers(&extra, &desired));
    }

    #[test]
    fn deployments_split_by_preferences() {
        let adapter = Replicated::new(
            "Deployment",
            "deployments",
            "federation.kubernetes.io/deployment-preferences",
            Duration::from_secs(60),
        );
        let object = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "annotations": {
                "federation.kubernetes.io/deployment-preferences":
                    r#"{"rebalance": true, "clusters": {"a": {"weight": 2}, "b": {"weight": 1}, "c": {"weight": 1}}}"#}},
            "spec": {"replicas": 10}});
        let clusters = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let members = BTreeMap::new();
        let placed = adapter.place(
            &object,
            &Placement {
                clusters: &clusters,
                members: &members,
                autoscaled: false,
            },
        );
        let replicas: Vec<i64> = placed
            .values()
            .map(|o| o["spec"]["replicas"].as_i64().unwrap())
            .collect();
        assert_eq!(replicas.iter().sum::<i64>(), 10);
        assert_eq!(replicas[0], 5);
    }

    #[test]
    fn stateful_set_status_is_the_least_advanced_members() {
        let adapter = Copied::new(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            Aggregate::StatefulSet,
        );
        let object = json!({"metadata": {"name": "db", "generation": 2}});
        let member = |ready: i64, current: &str, update: &str| {
            json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "replicas": 3,
                "readyReplicas": ready, "currentReplicas": 3, "updatedReplicas": 3,
                "currentRevision": current, "updateRevision": update}})
        };
        let rolling = BTreeMap::from([
            ("a".to_owned(), member(3, "db-2", "db-2")),
            ("b".to_owned(), member(1, "db-1", "db-2")),
        ]);
        let status = adapter.aggregate(&object, &rolling, true).unwrap();
        assert_eq!(status["readyReplicas"], 1);
        assert_eq!(status["replicas"], 3);
        assert_eq!(
            (&status["currentRevision"], &status["updateRevision"]),
            (&json!("db-1"), &json!("db-2"))
        );
        let done = BTreeMap::from([
            ("a".to_owned(), member(3, "db-2", "db-2")),
            ("b".to_owned(), member(3, "db-2", "db-2")),
        ]);
        let status = adapter.aggregate(&object, &done, true).unwrap();
        assert_eq!(status["readyReplicas"], 3);
        assert_eq!(status["observedGeneration"], 2);
        assert!(status["currentRevision"].is_null() && status["updateRevision"].is_null());
    }

    #[test]
    fn deployment_status_sums_members_and_waits_for_them() {
        let adapter = Replicated::new("Deployment", "deployments", "x", Duration::from_secs(60));
        let object =
            json!({"metadata": {"name": "web", "generation": 4}, "status": {"observedGeneration": 3}});
        let member = |ready: i64| {
            json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 2,
            "replicas": 3, "updatedReplicas": 3, "readyReplicas": ready, "availableReplicas": ready,
            "conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}})
        };
        let members = BTreeMap::from([("a".to_owned(), member(3)), ("b".to_owned(), member(1))]);
        let status = adapter.aggregate(&object, &members, true).unwrap();
        assert_eq!(status["replicas"], 6);
        assert_eq!(status["availableReplicas"], 4);
        assert_eq!(status["observedGeneration"], 4);
        let waiting = adapter.aggregate(&object, &members, false).unwrap();
        assert_eq!(
            waiting["observedGeneration"], 3,
            "not every member has what Flotilla wrote"
        );
    }
}
