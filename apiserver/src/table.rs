//! Server-side printing: `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` turns a GET or LIST into a
//! `meta.k8s.io` Table with the columns kube-apiserver prints for each type (what `kubectl get` shows), rows
//! carrying the object's metadata (`includeObject=Metadata`, the default), the whole object (`Object`) or
//! nothing (`None`). Types without columns of their own get kube's default: NAME and CREATED AT.

use flotilla_api::resources::Resource;
use serde_json::{Value, json};

/// The Table version the Accept header asks for (`v1` or `v1beta1`), if any.
pub fn requested(accept: &str) -> Option<&'static str> {
    accept.split(',').find_map(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if !(has("as=Table") && has("g=meta.k8s.io")) {
            return None;
        }
        if has("v=v1") {
            Some("v1")
        } else if has("v=v1beta1") {
            Some("v1beta1")
        } else {
            None
        }
    })
}

/// One column: its definition and how to read its cell from an object.
struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
    cell: fn(&Value) -> Value,
}

fn s(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn i(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(text: String) -> String {
    if text.is_empty() {
        "<none>".to_owned()
    } else {
        text
    }
}

/// kube's `HumanDuration`, as the AGE column prints it.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    let seconds = seconds.max(0);
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        let rest = seconds % 60;
        if rest == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{rest}s")
        }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        let rest = minutes % 60;
        if rest == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{rest}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 192 {
        let rest = hours % 24;
        if rest == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{rest}h")
        }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else {
        let years = days / 365;
        let rest = days % 365;
        if years < 8 && rest > 0 {
            format!("{years}y{rest}d")
        } else {
            format!("{years}y")
        }
    }
}

fn age_since(timestamp: &str) -> String {
    match timestamp.parse::<jiff::Timestamp>() {
        Ok(at) => human_duration(jiff::Timestamp::now().as_second() - at.as_second()),
        Err(_) => "<unknown>".to_owned(),
    }
}

fn name(object: &Value) -> Value {
    json!(s(object, "/metadata/name"))
}

fn age(object: &Value) -> Value {
    json!(age_since(&s(object, "/metadata/creationTimestamp")))
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: "Name must be unique within a namespace.",
    cell: name,
};

const AGE: Column = Column {
    name: "Age",
    kind: "string",
    format: "",
    priority: 0,
    description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
    cell: age,
};

const fn col(name: &'static str, kind: &'static str, priority: u8, cell: fn(&Value) -> Value) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority,
        description: "",
        cell,
    }
}

fn condition_status(object: &Value, type_: &str) -> Option<String> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str().map(str::to_owned))
}

/// When an event was first seen, as kube prints it: `firstTimestamp`, else `eventTime`.
fn event_first_seen(o: &Value) -> String {
    let first = s(o, "/firstTimestamp");
    if first.is_empty() {
        age_since(&s(o, "/eventTime"))
    } else {
        age_since(&first)
    }
}

/// When an event was last seen: its series' last observation, else `lastTimestamp`, else when first seen.
fn event_last_seen(o: &Value) -> String {
    let series = s(o, "/series/lastObservedTime");
    if !series.is_empty() {
        return age_since(&series);
    }
    let last = s(o, "/lastTimestamp");
    if last.is_empty() {
        event_first_seen(o)
    } else {
        age_since(&last)
    }
}

/// A binding's subjects of `kind`, as kube prints them (service accounts as `namespace/name`).
fn subjects(o: &Value, kind: &str) -> Value {
    let names: Vec<String> = o
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|subject| s(subject, "/kind") == kind)
        .map(|subject| {
            let name = s(subject, "/name");
            if kind == "ServiceAccount" {
                format!("{}/{name}", s(subject, "/namespace"))
            } else {
                name
            }
        })
        .collect();
    json!(names.join(", "))
}

fn containers(object: &Value, field: &str) -> Value {
    let list: Vec<String> = object
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| s(c, &format!("/{field}")))
        .collect();
    json!(list.join(","))
}

fn selector(object: &Value) -> Value {
    labels_at(object, "/spec/selector/matchLabels")
}

/// The label map at `pointer` as kube prints a selector: `a=1,b=2`, or `<none>`.
fn labels_at(object: &Value, pointer: &str) -> Value {
    let labels: Vec<String> = object
        .pointer(pointer)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    json!(or_none(labels.join(",")))
}

fn service_ports(object: &Value) -> Value {
    let ports: Vec<String> = object
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(node) => format!("{}:{node}/{protocol}", i(p, "/port")),
                None => format!("{}/{protocol}", i(p, "/port")),
            }
        })
        .collect();
    json!(or_none(ports.join(",")))
}

fn load_balancer(object: &Value) -> String {
    let addresses: Vec<String> = object
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|entry| {
            entry
                .get("ip")
                .or_else(|| entry.get("hostname"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    addresses.join(",")
}

/// The columns kube-apiserver prints for a resource.
fn columns(resource: &Resource) -> Vec<Column> {
    match (resource.group, resource.plural) {
        ("federation", "clusters") => vec![
            NAME,
            col("Ready", "string", 0, |o| {
                json!(condition_status(o, "Ready").unwrap_or_else(|| "Unknown".to_owned()))
            }),
            AGE,
        ],
        ("", "namespaces") => vec![
            NAME,
            col("Status", "string", 0, |o| json!(s(o, "/status/phase"))),
            AGE,
        ],
        ("", "configmaps") => vec![
            NAME,
            col("Data", "integer", 0, |o| {
                let count = |f: &str| o.get(f).and_then(Value::as_object).map_or(0, |m| m.len());
                json!(count("data") + count("binaryData"))
            }),
            AGE,
        ],
        ("", "secrets") => vec![
            NAME,
            col("Type", "string", 0, |o| json!(s(o, "/type"))),
            col("Data", "integer", 0, |o| {
                json!(o.get("data").and_then(Value::as_object).map_or(0, |m| m.len()))
            }),
            AGE,
        ],
        ("", "services") => vec![
            NAME,
            col("Type", "string", 0, |o| {
                json!(or_default(s(o, "/spec/type"), "ClusterIP"))
            }),
            col("Cluster-IP", "string", 0, |o| {
                json!(or_none(s(o, "/spec/clusterIP")))
            }),
            col("External-IP", "string", 0, |o| {
                let external = load_balancer(o);
                json!(if external.is_empty() {
                    if s(o, "/spec/type") == "LoadBalancer" {
                        "<pending>".to_owned()
                    } else {
                        "<none>".to_owned()
                    }
                } else {
                    external
                })
            }),
            col("Port(s)", "string", 0, service_ports),
            AGE,
            col("Selector", "string", 1, |o| labels_at(o, "/spec/selector")),
        ],
        ("", "nodes") => vec![
            NAME,
            col("Status", "string", 0, |o| {
                json!(match condition_status(o, "Ready").as_deref() {
                    Some("True") => "Ready",
                    _ => "NotReady",
                })
            }),
            col("Roles", "string", 0, |_| json!("<none>")),
            AGE,
            col("Version", "string", 0, |o| {
                json!(s(o, "/status/nodeInfo/kubeletVersion"))
            }),
        ],
        ("apps", "deployments") => vec![
            NAME,
            col("Ready", "string", 0, |o| {
                json!(format!("{}/{}", i(o, "/status/readyReplicas"), replicas(o)))
            }),
            col("Up-to-date", "integer", 0, |o| {
                json!(i(o, "/status/updatedReplicas"))
            }),
            col("Available", "integer", 0, |o| {
                json!(i(o, "/status/availableReplicas"))
            }),
            AGE,
            col("Containers", "string", 1, |o| containers(o, "name")),
            col("Images", "string", 1, |o| containers(o, "image")),
            col("Selector", "string", 1, selector),
        ],
        ("apps", "replicasets") => replicated(selector),
        // The kinds Flotilla lists but does not federate: always empty, but with kube's columns all the same.
        ("", "pods") => vec![
            NAME,
            col("Ready", "string", 0, |o| {
                let statuses = o.pointer("/status/containerStatuses").and_then(Value::as_array);
                let ready = statuses
                    .into_iter()
                    .flatten()
                    .filter(|c| c["ready"] == true)
                    .count();
                let total = o
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                json!(format!("{ready}/{total}"))
            }),
            col("Status", "string", 0, |o| json!(s(o, "/status/phase"))),
            col("Restarts", "string", 0, |o| {
                let statuses = o.pointer("/status/containerStatuses").and_then(Value::as_array);
                json!(
                    statuses
                        .into_iter()
                        .flatten()
                        .map(|c| i(c, "/restartCount"))
                        .sum::<i64>()
                        .to_string()
                )
            }),
            AGE,
            col("IP", "string", 1, |o| json!(or_none(s(o, "/status/podIP")))),
            col("Node", "string", 1, |o| json!(or_none(s(o, "/spec/nodeName")))),
            col("Nominated Node", "string", 1, |o| {
                json!(or_none(s(o, "/status/nominatedNodeName")))
            }),
            col("Readiness Gates", "string", 1, |_| json!("<none>")),
        ],
        ("", "replicationcontrollers") => replicated(|o| labels_at(o, "/spec/selector")),
        ("", "endpoints") => vec![
            NAME,
            col("Endpoints", "string", 0, |o| {
                let mut addresses = Vec::new();
                for subset in o.get("subsets").and_then(Value::as_array).into_iter().flatten() {
                    for address in subset
                        .get("addresses")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        for port in subset
                            .get("ports")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            addresses.push(format!("{}:{}", s(address, "/ip"), i(port, "/port")));
                        }
                    }
                }
                json!(or_none(addresses.join(",")))
            }),
            AGE,
        ],
        ("", "persistentvolumeclaims") => vec![
            NAME,
            col("Status", "string", 0, |o| json!(s(o, "/status/phase"))),
            col("Volume", "string", 0, |o| json!(s(o, "/spec/volumeName"))),
            col("Capacity", "string", 0, |o| {
                json!(s(o, "/status/capacity/storage"))
            }),
            col("Access Modes", "string", 0, |o| {
                json!(access_modes(o, "/status/accessModes"))
            }),
            col("StorageClass", "string", 0, |o| {
                json!(s(o, "/spec/storageClassName"))
            }),
            col("VolumeAttributesClass", "string", 0, |o| {
                json!(or_unset(s(o, "/spec/volumeAttributesClassName")))
            }),
            AGE,
            col("VolumeMode", "string", 1, |o| json!(s(o, "/spec/volumeMode"))),
        ],
        ("", "persistentvolumes") => vec![
            NAME,
            col("Capacity", "string", 0, |o| json!(s(o, "/spec/capacity/storage"))),
            col("Access Modes", "string", 0, |o| {
                json!(access_modes(o, "/spec/accessModes"))
            }),
            col("Reclaim Policy", "string", 0, |o| {
                json!(s(o, "/spec/persistentVolumeReclaimPolicy"))
            }),
            col("Status", "string", 0, |o| json!(s(o, "/status/phase"))),
            col("Claim", "string", 0, |o| {
                let name = s(o, "/spec/claimRef/name");
                json!(if name.is_empty() {
                    String::new()
                } else {
                    format!("{}/{name}", s(o, "/spec/claimRef/namespace"))
                })
            }),
            col("StorageClass", "string", 0, |o| {
                json!(s(o, "/spec/storageClassName"))
            }),
            col("VolumeAttributesClass", "string", 0, |o| {
                json!(or_unset(s(o, "/spec/volumeAttributesClassName")))
            }),
            col("Reason", "string", 0, |o| json!(s(o, "/status/reason"))),
            AGE,
            col("VolumeMode", "string", 1, |o| json!(s(o, "/spec/volumeMode"))),
        ],
        ("batch", "cronjobs") => vec![
            NAME,
            col("Schedule", "string", 0, |o| json!(s(o, "/spec/schedule"))),
            col("Timezone", "string", 0, |o| {
                json!(or_none(s(o, "/spec/timeZone")))
            }),
            col("Suspend", "boolean", 0, |o| {
                json!(o.pointer("/spec/suspend") == Some(&json!(true)))
            }),
            col("Active", "integer", 0, |o| {
                json!(
                    o.pointer("/status/active")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                )
            }),
            col("Last Schedule", "string", 0, |o| {
                let last = s(o, "/status/lastScheduleTime");
                json!(if last.is_empty() {
                    "<none>".to_owned()
                } else {
                    age_since(&last)
                })
            }),
            AGE,
            col("Containers", "string", 1, |o| {
                json!(job_template_containers(o, "name"))
            }),
            col("Images", "string", 1, |o| {
                json!(job_template_containers(o, "image"))
            }),
            col("Selector", "string", 1, |o| {
                labels_at(o, "/spec/jobTemplate/spec/selector/matchLabels")
            }),
        ],
        ("", "events") => vec![
            col("Last Seen", "string", 0, |o| json!(event_last_seen(o))),
            col("Type", "string", 0, |o| json!(s(o, "/type"))),
            col("Reason", "string", 0, |o| json!(s(o, "/reason"))),
            col("Object", "string", 0, |o| {
                let kind = s(o, "/involvedObject/kind").to_lowercase();
                let name = s(o, "/involvedObject/name");
                json!(if name.is_empty() {
                    kind
                } else {
                    format!("{kind}/{name}")
                })
            }),
            col("Subobject", "string", 1, |o| {
                json!(s(o, "/involvedObject/fieldPath"))
            }),
            col("Source", "string", 1, |o| {
                let first = |a: &str, b: &str| {
                    let a = s(o, a);
                    if a.is_empty() { s(o, b) } else { a }
                };
                let component = first("/source/component", "/reportingComponent");
                let instance = first("/source/host", "/reportingInstance");
                json!(if instance.is_empty() {
                    component
                } else {
                    format!("{component}, {instance}")
                })
            }),
            col("Message", "string", 0, |o| json!(s(o, "/message").trim())),
            col("First Seen", "string", 1, |o| json!(event_first_seen(o))),
            col("Count", "string", 1, |o| {
                let count = o
                    .pointer("/series/count")
                    .or_else(|| o.get("count"))
                    .and_then(Value::as_i64)
                    .filter(|c| *c != 0);
                json!(count.unwrap_or(1))
            }),
            col("Name", "string", 1, |o| json!(s(o, "/metadata/name"))),
        ],
        ("", "serviceaccounts") => vec![
            NAME,
            col("Secrets", "string", 0, |o| {
                json!(
                    o.get("secrets")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                        .to_string()
                )
            }),
            AGE,
        ],
        ("apps", "statefulsets") => vec![
            NAME,
            col("Ready", "string", 0, |o| {
                json!(format!("{}/{}", i(o, "/status/readyReplicas"), replicas(o)))
            }),
            AGE,
            col("Containers", "string", 1, |o| containers(o, "name")),
            col("Images", "string", 1, |o| containers(o, "image")),
        ],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            NAME,
            col("Role", "string", 0, |o| {
                json!(format!("{}/{}", s(o, "/roleRef/kind"), s(o, "/roleRef/name")))
            }),
            AGE,
            col("Users", "string", 1, |o| subjects(o, "User")),
            col("Groups", "string", 1, |o| subjects(o, "Group")),
            col("ServiceAccounts", "string", 1, |o| subjects(o, "ServiceAccount")),
        ],
        ("apps", "daemonsets") => vec![
            NAME,
            col("Desired", "integer", 0, |o| {
                json!(i(o, "/status/desiredNumberScheduled"))
            }),
            col("Current", "integer", 0, |o| {
                json!(i(o, "/status/currentNumberScheduled"))
            }),
            col("Ready", "integer", 0, |o| json!(i(o, "/status/numberReady"))),
            col("Up-to-date", "integer", 0, |o| {
                json!(i(o, "/status/updatedNumberScheduled"))
            }),
            col("Available", "integer", 0, |o| {
                json!(i(o, "/status/numberAvailable"))
            }),
            col("Node Selector", "string", 0, |o| {
                let labels: Vec<String> = o
                    .pointer("/spec/template/spec/nodeSelector")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                json!(or_none(labels.join(",")))
            }),
            AGE,
        ],
        ("batch", "jobs") => vec![
            NAME,
            col("Status", "string", 0, |o| {
                json!(if condition_status(o, "Failed").as_deref() == Some("True") {
                    "Failed"
                } else if condition_status(o, "Complete").as_deref() == Some("True") {
                    "Complete"
                } else if condition_status(o, "Suspended").as_deref() == Some("True") {
                    "Suspended"
                } else {
                    "Running"
                })
            }),
            col("Completions", "string", 0, |o| {
                let completions = o.pointer("/spec/completions").and_then(Value::as_i64);
                json!(match completions {
                    Some(c) => format!("{}/{c}", i(o, "/status/succeeded")),
                    None => format!("{}/1", i(o, "/status/succeeded")),
                })
            }),
            col("Duration", "string", 0, |o| {
                let start = s(o, "/status/startTime");
                if start.is_empty() {
                    return json!("");
                }
                let end = s(o, "/status/completionTime");
                let (Ok(start), end) = (
                    start.parse::<jiff::Timestamp>(),
                    end.parse::<jiff::Timestamp>().ok(),
                ) else {
                    return json!("");
                };
                let end = end.unwrap_or_else(jiff::Timestamp::now);
                json!(human_duration(end.as_second() - start.as_second()))
            }),
            AGE,
        ],
        ("autoscaling", "horizontalpodautoscalers") => vec![
            NAME,
            col("Reference", "string", 0, |o| {
                json!(format!(
                    "{}/{}",
                    s(o, "/spec/scaleTargetRef/kind"),
                    s(o, "/spec/scaleTargetRef/name")
                ))
            }),
            col("Targets", "string", 0, |o| {
                let metrics = o
                    .pointer("/spec/metrics")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                json!(if metrics == 0 {
                    "<none>".to_owned()
                } else {
                    format!("{metrics} metric(s)")
                })
            }),
            col("MinPods", "string", 0, |o| {
                json!(
                    o.pointer("/spec/minReplicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                        .to_string()
                )
            }),
            col("MaxPods", "integer", 0, |o| json!(i(o, "/spec/maxReplicas"))),
            col("Replicas", "integer", 0, |o| {
                json!(i(o, "/status/currentReplicas"))
            }),
            AGE,
        ],
        ("networking.k8s.io", "ingresses") => vec![
            NAME,
            col("Class", "string", 0, |o| {
                json!(or_none(s(o, "/spec/ingressClassName")))
            }),
            col("Hosts", "string", 0, |o| {
                let hosts: Vec<String> = o
                    .pointer("/spec/rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|r| or_default(s(r, "/host"), "*"))
                    .collect();
                json!(if hosts.is_empty() {
                    "*".to_owned()
                } else {
                    hosts.join(",")
                })
            }),
            col("Address", "string", 0, |o| json!(load_balancer(o))),
            col("Ports", "string", 0, |o| {
                json!(if o
                    .pointer("/spec/tls")
                    .and_then(Value::as_array)
                    .is_some_and(|t| !t.is_empty())
                {
                    "80, 443"
                } else {
                    "80"
                })
            }),
            AGE,
        ],
        ("coordination.k8s.io", "leases") => vec![
            NAME,
            col("Holder", "string", 0, |o| json!(s(o, "/spec/holderIdentity"))),
            AGE,
        ],
        _ => vec![
            NAME,
            Column {
                name: "Created At",
                kind: "date",
                format: "",
                priority: 0,
                description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
                cell: |o| json!(s(o, "/metadata/creationTimestamp")),
            },
        ],
    }
}

/// Access modes as kube abbreviates them: `RWO,ROX`.
fn access_modes(object: &Value, pointer: &str) -> String {
    let modes: Vec<&str> = object
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|mode| match mode {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect();
    modes.join(",")
}

fn or_unset(text: String) -> String {
    or_default(text, "<unset>")
}

fn job_template_containers(object: &Value, field: &str) -> String {
    object
        .pointer("/spec/jobTemplate/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| s(c, &format!("/{field}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// The columns of a ReplicaSet and a ReplicationController, which differ only in the shape of their selector.
fn replicated(selector: fn(&Value) -> Value) -> Vec<Column> {
    vec![
        NAME,
        col("Desired", "integer", 0, |o| json!(replicas(o))),
        col("Current", "integer", 0, |o| json!(i(o, "/status/replicas"))),
        col("Ready", "integer", 0, |o| json!(i(o, "/status/readyReplicas"))),
        AGE,
        col("Containers", "string", 1, |o| containers(o, "name")),
        col("Images", "string", 1, |o| containers(o, "image")),
        col("Selector", "string", 1, selector),
    ]
}

fn or_default(text: String, default: &str) -> String {
    if text.is_empty() { default.to_owned() } else { text }
}

fn replicas(object: &Value) -> i64 {
    object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// What each row carries, from `includeObject`.
fn row_object(object: &Value, include: &str, version: &str) -> Option<Value> {
    match include {
        "None" => None,
        "Object" => Some(object.clone()),
        _ => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": format!("meta.k8s.io/{version}"),
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
    }
}

/// A Table of `objects` (a LIST's items, or one object).
pub fn table(
    resource: &Resource,
    objects: &[Value],
    list_metadata: Value,
    include: &str,
    version: &str,
) -> Value {
    let columns = columns(resource);
    let definitions: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let cells: Vec<Value> = columns.iter().map(|c| (c.cell)(object)).collect();
            let mut row = json!({"cells": cells});
            if let Some(object) = row_object(object, include, version) {
                row["object"] = object;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": list_metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_headers_ask_for_v1_tables() {
        assert_eq!(
            requested(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ),
            Some("v1")
        );
        assert_eq!(
            requested("application/json;as=Table;v=v1beta1;g=meta.k8s.io"),
            Some("v1beta1")
        );
        assert_eq!(requested("application/json"), None);
    }

    #[test]
    fn durations_print_as_kube_prints_them() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86_400 + 3600), "3d1h");
        assert_eq!(human_duration(40 * 86_400), "40d");
    }

    #[test]
    fn clusters_show_readiness_and_deployments_their_replicas() {
        let clusters = flotilla_api::resources::lookup(
            flotilla_api::resources::Profile::Federation,
            "federation",
            "v1beta1",
            "clusters",
        )
        .unwrap();
        let cluster = json!({"metadata": {"name": "c1", "creationTimestamp": "2020-01-01T00:00:00Z", "labels": {"region": "eu"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let t = table(clusters, &[cluster], json!({}), "Metadata", "v1");
        assert_eq!(t["columnDefinitions"][1]["name"], "Ready");
        assert_eq!(t["rows"][0]["cells"][0], "c1");
        assert_eq!(t["rows"][0]["cells"][1], "True");
        assert_eq!(t["rows"][0]["object"]["metadata"]["labels"]["region"], "eu");
        let deployments = flotilla_api::resources::lookup(
            flotilla_api::resources::Profile::Federation,
            "apps",
            "v1",
            "deployments",
        )
        .unwrap();
        let deployment = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = table(deployments, &[deployment], json!({}), "None", "v1");
        assert_eq!(t["rows"][0]["cells"][1], "2/3");
        assert!(t["rows"][0].get("object").is_none());
    }

    #[test]
    fn events_print_kubes_columns() {
        let events =
            flotilla_api::resources::lookup(flotilla_api::resources::Profile::Federation, "", "v1", "events")
                .unwrap();
        let event = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "CreateInCluster",
            "message": "Creating Deployment in cluster m1 ", "involvedObject": {"kind": "Deployment", "name": "web"},
            "source": {"component": "flotilla-controller-manager"}, "count": 3,
            "firstTimestamp": "2020-01-01T00:00:00Z", "lastTimestamp": "2020-01-01T00:00:00Z"});
        let t = table(events, &[event], json!({}), "None", "v1");
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["priority"] == 0)
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Last Seen", "Type", "Reason", "Object", "Message"]);
        let cells = &t["rows"][0]["cells"];
        assert!(cells[0].as_str().unwrap().ends_with('d'), "{cells}");
        assert_eq!(cells[3], "deployment/web");
        assert_eq!(cells[5], "flotilla-controller-manager");
        assert_eq!(cells[6], "Creating Deployment in cluster m1");
        assert_eq!(cells[8], 3);
    }
}
