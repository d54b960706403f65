//! kube-apiserver's validation of the served built-in types (`pkg/apis/*/validation`), after defaulting: one
//! [`Cause`] per problem, with kube's field paths and wording (values are shown as JSON where kube prints a Go
//! value). The rules kept are those users meet: names, required fields, selectors that must match their
//! template, immutable fields, port ranges, supported values, update strategies, volumes and their mounts,
//! probes, resource requests against limits, environment variables, security contexts, affinity, tolerations,
//! topology spread constraints, HPA bounds and Ingress paths.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::object::name_problems;
use crate::status::Cause;
use flotilla_api::resources::Resource;

mod names;
mod pod;

use names::{config_key_problems, qualified_name_problems};
use pod::pod_template;

/// The problems of `object` (an object of `resource` in its storage version); `old` is the stored object on update.
pub fn validate(object: &Value, old: Option<&Value>, resource: &Resource) -> Vec<Cause> {
    let mut problems = Problems::default();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let old_spec = old.and_then(|o| o.get("spec"));
    match (resource.group, resource.plural) {
        ("apps", "deployments" | "replicasets" | "daemonsets" | "statefulsets") => {
            workload(&mut problems, spec, old_spec, resource);
        }
        ("batch", "jobs") => job(&mut problems, object, old_spec),
        ("", "services") => service(&mut problems, spec, old_spec),
        ("", "configmaps") => {
            config_keys(&mut problems, object, &["data", "binaryData"]);
        }
        ("", "secrets") => {
            config_keys(&mut problems, object, &["data"]);
            if let (Some(old), Some(new)) = (old.and_then(|o| o.get("type")), object.get("type"))
                && old != new
            {
                problems.invalid("type", new, "field is immutable");
            }
        }
        ("networking.k8s.io", "ingresses") => ingress(&mut problems, spec),
        ("autoscaling", "horizontalpodautoscalers") => autoscaler(&mut problems, spec),
        _ => {}
    }
    problems.0
}

#[derive(Default)]
struct Problems(Vec<Cause>);

impl Problems {
    fn required(&mut self, field: &str, detail: &str) {
        let message = if detail.is_empty() {
            "Required value".to_owned()
        } else {
            format!("Required value: {detail}")
        };
        self.0.push(Cause {
            kind: "FieldValueRequired",
            field: field.to_owned(),
            message,
        });
    }

    fn invalid(&mut self, field: &str, value: &Value, detail: &str) {
        self.0.push(Cause {
            kind: "FieldValueInvalid",
            field: field.to_owned(),
            message: format!("Invalid value: {}: {detail}", shown(value)),
        });
    }

    fn unsupported(&mut self, field: &str, value: &Value, supported: &[&str]) {
        let supported: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        self.0.push(Cause {
            kind: "FieldValueNotSupported",
            field: field.to_owned(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                shown(value),
                supported.join(", ")
            ),
        });
    }

    fn forbidden(&mut self, field: &str, detail: &str) {
        self.0.push(Cause {
            kind: "FieldValueForbidden",
            field: field.to_owned(),
            message: format!("Forbidden: {detail}"),
        });
    }

    fn not_found(&mut self, field: &str, value: &Value) {
        self.0.push(Cause {
            kind: "FieldValueNotFound",
            field: field.to_owned(),
            message: format!("Not found: {}", shown(value)),
        });
    }

    fn duplicate(&mut self, field: &str, value: &Value) {
        self.0.push(Cause {
            kind: "FieldValueDuplicate",
            field: field.to_owned(),
            message: format!("Duplicate value: {}", shown(value)),
        });
    }

    fn at_least(&mut self, field: &str, value: &Value, min: i64) {
        if let Some(n) = value.as_i64()
            && n < min
        {
            let detail = if min == 0 {
                "must be greater than or equal to 0".to_owned()
            } else {
                format!("must be greater than or equal to {min}")
            };
            self.invalid(field, value, &detail);
        }
    }

    fn port(&mut self, field: &str, value: &Value) {
        if let Some(n) = value.as_i64()
            && !(1..=65535).contains(&n)
        {
            self.invalid(field, value, "must be between 1 and 65535, inclusive");
        }
    }

    fn too_long(&mut self, field: &str, max: usize) {
        self.0.push(Cause {
            kind: "FieldValueTooLong",
            field: field.to_owned(),
            message: format!("Too long: may not be more than {max} bytes"),
        });
    }

    /// An optional enumerated field: absent, or one of `supported`.
    fn one_of(&mut self, field: &str, value: Option<&Value>, supported: &[&str]) {
        if let Some(value) = value.filter(|v| !v.is_null())
            && !supported.iter().any(|s| value == *s)
        {
            self.unsupported(field, value, supported);
        }
    }

    /// A Unix user or group ID, as kube 1.33 bounds them.
    fn id(&mut self, field: &str, value: Option<&Value>) {
        if let Some(value) = value.filter(|v| v.is_number())
            && !value
                .as_i64()
                .is_some_and(|n| (0..=i64::from(i32::MAX)).contains(&n))
        {
            self.invalid(field, value, "must be between 0 and 2147483647, inclusive");
        }
    }

    /// A weight of a preferred scheduling term (absent is 0).
    fn weight(&mut self, field: &str, term: &Value) {
        let weight = term
            .get("weight")
            .filter(|w| !w.is_null())
            .cloned()
            .unwrap_or(Value::from(0));
        if !weight.as_i64().is_some_and(|w| (1..=100).contains(&w)) {
            self.invalid(field, &weight, "must be in the range 1-100");
        }
    }

    /// A label key or another qualified name.
    fn qualified_name(&mut self, field: &str, name: &str) {
        for problem in qualified_name_problems(name) {
            self.invalid(field, &Value::String(name.to_owned()), &problem);
        }
    }
}

/// What kube shows for a string field left out (its Go zero value).
static EMPTY: Value = Value::String(String::new());

/// A value as kube's messages show it: strings quoted, the rest as JSON.
fn shown(value: &Value) -> String {
    value.to_string()
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn is_set(value: &Value, key: &str) -> bool {
    value.get(key).is_some_and(|v| !v.is_null())
}

/// A field that may be absent or null, as kube sees it: its value, or `""` (for messages about it).
fn field_or_empty<'a>(value: &'a Value, key: &str) -> &'a Value {
    value.get(key).filter(|v| !v.is_null()).unwrap_or(&EMPTY)
}

/// The items of a list field (none if it is absent).
fn items<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// The name part of a qualified name, and a label value when not empty: `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
/// Whether a `LabelSelector` selects `labels`.
fn selects(selector: &Value, labels: &Map<String, Value>) -> bool {
    let matches_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let matches_expressions = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|requirement| {
            let key = text(requirement, "key").unwrap_or_default();
            let values: Vec<&Value> = requirement
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            match text(requirement, "operator").unwrap_or_default() {
                "In" => labels.get(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => labels.get(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => labels.contains_key(key),
                "DoesNotExist" => !labels.contains_key(key),
                _ => false,
            }
        });
    matches_labels && matches_expressions
}

fn empty_selector(selector: &Value) -> bool {
    let none = |key: &str| match selector.get(key) {
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        _ => true,
    };
    none("matchLabels") && none("matchExpressions")
}

/// Deployments, ReplicaSets, DaemonSets and StatefulSets: a selector that matches the template, immutable
/// (apps/v1), and a valid pod template that restarts always.
fn workload(problems: &mut Problems, spec: &Value, old_spec: Option<&Value>, resource: &Resource) {
    let kind = resource.kind.to_ascii_lowercase();
    for field in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        if let Some(value) = spec.get(field) {
            problems.at_least(&format!("spec.{field}"), value, 0);
        }
    }
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => problems.required("spec.selector", ""),
        Some(selector) if empty_selector(selector) => {
            problems.invalid(
                "spec.selector",
                selector,
                &format!("empty selector is invalid for {kind}"),
            );
        }
        Some(selector) => {
            let labels = spec
                .pointer("/template/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if !selects(selector, &labels) {
                problems.invalid(
                    "spec.template.metadata.labels",
                    &Value::Object(labels),
                    "`selector` does not match template `labels`",
                );
            }
            if let Some(old) = old_spec.and_then(|o| o.get("selector"))
                && old != selector
            {
                problems.invalid("spec.selector", selector, "field is immutable");
            }
        }
    }
    strategy(problems, spec, resource);
    pod_template(problems, spec, &["Always"]);
}

/// The update strategy of a Deployment (`strategy`), DaemonSet or StatefulSet (`updateStrategy`).
fn strategy(problems: &mut Problems, spec: &Value, resource: &Resource) {
    let (field, types): (&str, &[&str]) = match resource.plural {
        "deployments" => ("strategy", &["Recreate", "RollingUpdate"]),
        "daemonsets" | "statefulsets" => ("updateStrategy", &["OnDelete", "RollingUpdate"]),
        _ => return,
    };
    if resource.plural == "statefulsets"
        && let Some(policy) = spec.get("podManagementPolicy").filter(|p| !p.is_null())
    {
        const POLICIES: &[&str] = &["OrderedReady", "Parallel"];
        if !POLICIES.iter().any(|p| policy == *p) {
            problems.unsupported("spec.podManagementPolicy", policy, POLICIES);
        }
    }
    let Some(strategy) = spec.get(field).filter(|s| !s.is_null()) else {
        return;
    };
    let base = format!("spec.{field}");
    let kind = strategy.get("type").filter(|t| !t.is_null());
    match kind {
        Some(kind) if !types.iter().any(|t| kind == *t) => {
            problems.unsupported(&format!("{base}.type"), kind, types);
            return;
        }
        None => {
            problems.required(&format!("{base}.type"), "");
            return;
        }
        _ => {}
    }
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    if kind != Some(&Value::from("RollingUpdate")) {
        if rolling.is_some() {
            let detail = format!(
                "may not be specified when strategy `type` is '{}'",
                kind.and_then(Value::as_str).unwrap_or_default()
            );
            problems.forbidden(&format!("{base}.rollingUpdate"), &detail);
        }
        return;
    }
    let Some(rolling) = rolling else { return };
    let base = format!("{base}.rollingUpdate");
    let mut zero = Vec::new();
    for key in ["maxUnavailable", "maxSurge"] {
        let Some(value) = rolling.get(key).filter(|v| !v.is_null()) else {
            zero.push(false);
            continue;
        };
        let path = format!("{base}.{key}");
        let amount = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(text) => match text.strip_suffix('%').map(str::parse::<i64>) {
                Some(Ok(percent)) => {
                    if percent > 100 && key == "maxUnavailable" {
                        problems.invalid(&path, value, "must not be greater than 100%");
                    }
                    Some(percent)
                }
                _ => {
                    problems.invalid(&path, value, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')");
                    None
                }
            },
            _ => None,
        };
        if amount.is_some_and(|a| a < 0) {
            problems.invalid(&path, value, "must be greater than or equal to 0");
        }
        zero.push(amount == Some(0));
    }
    // A rolling update must be able to make progress (kube checks Deployments and DaemonSets alike).
    if zero == [true, true] {
        problems.invalid(
            &format!("{base}.maxUnavailable"),
            &rolling["maxUnavailable"],
            "may not be 0 when `maxSurge` is 0",
        );
    }
}

fn job(problems: &mut Problems, object: &Value, old_spec: Option<&Value>) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    for field in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(value) = spec.get(field) {
            problems.at_least(&format!("spec.{field}"), value, 0);
        }
    }
    let manual = spec.get("manualSelector") == Some(&Value::Bool(true));
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => problems.required("spec.selector", ""),
        Some(selector) => {
            let labels = spec
                .pointer("/template/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let uid = object.pointer("/metadata/uid").and_then(Value::as_str);
            let generated = serde_json::json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
            if !manual && old_spec.is_none() && *selector != generated {
                problems.invalid("spec.selector", selector, "`selector` not auto-generated");
            } else if !selects(selector, &labels) {
                problems.invalid(
                    "spec.template.metadata.labels",
                    &Value::Object(labels),
                    "`selector` does not match template `labels`",
                );
            }
        }
    }
    if let Some(old) = old_spec {
        for field in ["selector", "template", "completionMode"] {
            if let (Some(before), Some(now)) = (old.get(field), spec.get(field))
                && before != now
            {
                let shown = if field == "template" { &Value::Null } else { now };
                problems.invalid(&format!("spec.{field}"), shown, "field is immutable");
            }
        }
        let indexed = spec.get("completionMode").and_then(Value::as_str) == Some("Indexed");
        if !indexed
            && let (Some(before), Some(now)) = (old.get("completions"), spec.get("completions"))
            && before != now
        {
            problems.invalid("spec.completions", now, "field is immutable");
        }
    }
    pod_template(problems, spec, &["OnFailure", "Never"]);
}

/// `spec.template` of a workload: containers present, named uniquely, with valid ports, environment and
/// security context; a supported restart policy; the pod's security context, affinity, topology spread
/// constraints and tolerations.
fn protocol(problems: &mut Problems, field: &str, port: &Value) {
    const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
    if let Some(protocol) = port.get("protocol").filter(|p| !p.is_null())
        && !PROTOCOLS.iter().any(|p| protocol == *p)
    {
        problems.unsupported(field, protocol, PROTOCOLS);
    }
}

fn service(problems: &mut Problems, spec: &Value, old_spec: Option<&Value>) {
    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    let kind = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
    if let Some(value) = spec.get("type")
        && !TYPES.iter().any(|t| value == *t)
    {
        problems.unsupported("spec.type", value, TYPES);
    }
    let ports: Vec<&Value> = spec
        .get("ports")
        .and_then(Value::as_array)
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if kind == "ExternalName" {
        if text(spec, "externalName").is_none() {
            problems.required("spec.externalName", "");
        }
    } else if ports.is_empty() && !headless {
        problems.required("spec.ports", "");
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let name = port.get("name").and_then(Value::as_str).unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            problems.required(&format!("{path}.name"), "");
        } else if !name.is_empty() {
            for problem in name_problems(name, true) {
                problems.invalid(&format!("{path}.name"), &port["name"], &problem);
            }
            if !names.insert(name) {
                problems.duplicate(&format!("{path}.name"), &port["name"]);
            }
        }
        match port.get("port") {
            Some(value) if !value.is_null() => problems.port(&format!("{path}.port"), value),
            _ => problems.required(&format!("{path}.port"), ""),
        }
        if let Some(value) = port.get("targetPort").filter(|v| v.is_number()) {
            problems.port(&format!("{path}.targetPort"), value);
        }
        if let Some(value) = port.get("nodePort").filter(|v| v.as_i64() != Some(0)) {
            if kind == "ClusterIP" {
                problems.forbidden(
                    &format!("{path}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                );
            } else {
                problems.port(&format!("{path}.nodePort"), value);
            }
        }
        protocol(problems, &format!("{path}.protocol"), port);
    }
    if let Some(ip) = spec.get("clusterIP").and_then(Value::as_str)
        && !ip.is_empty()
        && ip != "None"
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        problems.invalid(
            "spec.clusterIPs[0]",
            &spec["clusterIP"],
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        );
    }
    if let Some(old) = old_spec
        && let (Some(before), Some(now)) = (text(old, "clusterIP"), text(spec, "clusterIP"))
        && before != now
    {
        problems.invalid(
            "spec.clusterIPs[0]",
            &spec["clusterIP"],
            "may not change once set",
        );
    }
}

fn ingress(problems: &mut Problems, spec: &Value) {
    let rules = spec.get("rules").and_then(Value::as_array);
    if !is_set(spec, "defaultBackend") && rules.is_none_or(|r| r.is_empty()) {
        problems.invalid(
            "spec",
            &Value::String("rules".to_owned()),
            "either `defaultBackend` or `rules` must be specified",
        );
    }
    if let Some(backend) = spec.get("defaultBackend").filter(|b| !b.is_null()) {
        ingress_backend(problems, "spec.defaultBackend", backend);
    }
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else {
            continue;
        };
        let paths = http.get("paths").and_then(Value::as_array);
        if paths.is_none_or(|p| p.is_empty()) {
            problems.required(&format!("spec.rules[{i}].http.paths"), "");
        }
        for (j, path) in paths.into_iter().flatten().enumerate() {
            let base = format!("spec.rules[{i}].http.paths[{j}]");
            const TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
            match path.get("pathType").filter(|t| !t.is_null()) {
                None => problems.required(&format!("{base}.pathType"), "pathType must be specified"),
                Some(kind) if !TYPES.iter().any(|t| kind == *t) => {
                    problems.unsupported(&format!("{base}.pathType"), kind, TYPES)
                }
                Some(kind) => {
                    let value = path.get("path").cloned().unwrap_or(Value::String(String::new()));
                    let text = value.as_str().unwrap_or_default();
                    if kind != "ImplementationSpecific" && !text.starts_with('/') {
                        problems.invalid(&format!("{base}.path"), &value, "must be an absolute path");
                    }
                }
            }
            match path.get("backend").filter(|b| !b.is_null()) {
                Some(backend) => ingress_backend(problems, &format!("{base}.backend"), backend),
                None => problems.required(&format!("{base}.backend"), ""),
            }
        }
    }
}

fn ingress_backend(problems: &mut Problems, base: &str, backend: &Value) {
    let service = backend.get("service").filter(|s| !s.is_null());
    let resource = backend.get("resource").filter(|s| !s.is_null());
    match (service, resource) {
        (None, None) => problems.invalid(
            base,
            &Value::String(String::new()),
            "resource or service backend is required",
        ),
        (Some(_), Some(_)) => problems.invalid(
            base,
            &Value::String(String::new()),
            "cannot set both resource and service backends",
        ),
        (Some(service), None) => {
            if text(service, "name").is_none() {
                problems.required(&format!("{base}.service.name"), "");
            }
            let port = service.get("port").unwrap_or(&Value::Null);
            let named = text(port, "name").is_some();
            let numbered = port.get("number").and_then(Value::as_i64).is_some_and(|n| n != 0);
            match (named, numbered) {
                (true, true) => problems.invalid(
                    &format!("{base}.service.port"),
                    port,
                    "cannot set both port name & port number",
                ),
                (false, false) => problems.invalid(
                    &format!("{base}.service.port"),
                    port,
                    "port name or number is required",
                ),
                (false, true) => problems.port(&format!("{base}.service.port.number"), &port["number"]),
                (true, false) => {}
            }
        }
        (None, Some(_)) => {}
    }
}

fn autoscaler(problems: &mut Problems, spec: &Value) {
    let target = spec.get("scaleTargetRef").unwrap_or(&Value::Null);
    for field in ["kind", "name"] {
        if text(target, field).is_none() {
            problems.required(&format!("spec.scaleTargetRef.{field}"), "");
        }
    }
    let min = spec.get("minReplicas").and_then(Value::as_i64).unwrap_or(1);
    if min < 1 {
        problems.invalid(
            "spec.minReplicas",
            &spec["minReplicas"],
            "must be greater than or equal to 1",
        );
    }
    match spec.get("maxReplicas").and_then(Value::as_i64) {
        None => problems.required("spec.maxReplicas", ""),
        Some(max) if max < 1 => {
            problems.invalid("spec.maxReplicas", &spec["maxReplicas"], "must be greater than 0")
        }
        Some(max) if max < min => problems.invalid(
            "spec.maxReplicas",
            &spec["maxReplicas"],
            "must be greater than or equal to `minReplicas`",
        ),
        Some(_) => {}
    }
}

/// ConfigMap and Secret keys: valid config keys, given once.
fn config_keys(problems: &mut Problems, object: &Value, fields: &[&str]) {
    let mut seen = BTreeSet::new();
    for field in fields {
        for key in object
            .get(*field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            for problem in config_key_problems(key) {
                problems.invalid(&format!("{field}[{key}]"), &Value::String(key.clone()), &problem);
            }
            if !seen.insert(key.clone()) {
                problems.duplicate(&format!("{field}[{key}]"), &Value::String(key.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(plural: &str, object: Value, old: Option<Value>) -> Vec<(String, String)> {
        let resource = flotilla_api::resources::RESOURCES
            .iter()
            .find(|r| r.plural == plural)
            .expect("served");
        let mut object = object;
        crate::defaults::apply(&mut object, resource);
        let mut old = old;
        if let Some(old) = old.as_mut() {
            crate::defaults::apply(old, resource);
        }
        validate(&object, old.as_ref(), resource)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    fn fields_of(found: &[(String, String)]) -> Vec<&str> {
        found.iter().map(|(field, _)| field.as_str()).collect()
    }

    pub(super) fn deployment(labels: Value, containers: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}}}})
    }

    #[test]
    fn a_valid_deployment_has_no_problems() {
        let ok = deployment(json!({"app": "web"}), json!([{"name": "web", "image": "nginx"}]));
        assert_eq!(problems("deployments", ok, None), vec![]);
    }

    #[test]
    fn deployment_rules_in_kubes_words() {
        let bad = deployment(
            json!({"app": "other"}),
            json!([{"name": "web", "image": "x", "ports": [{"containerPort": 70000}]},
                {"name": "web", "image": "y"}, {"name": "Bad_Name", "image": "z"}]),
        );
        let found = problems("deployments", bad, None);
        let fields = fields_of(&found);
        assert_eq!(
            fields,
            [
                "spec.template.metadata.labels",
                "spec.template.spec.containers[0].ports[0].containerPort",
                "spec.template.spec.containers[1].name",
                "spec.template.spec.containers[2].name",
            ],
            "{found:?}"
        );
        assert_eq!(
            found[0].1,
            "Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`"
        );
        assert_eq!(
            found[1].1,
            "Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert_eq!(found[2].1, "Duplicate value: \"web\"");
        let no_containers = deployment(json!({"app": "web"}), json!([]));
        assert_eq!(
            problems("deployments", no_containers, None),
            vec![(
                "spec.template.spec.containers".to_owned(),
                "Required value".to_owned()
            )]
        );
    }

    #[test]
    fn volumes_mounts_probes_and_resources() {
        let mut bad = deployment(
            json!({"app": "web"}),
            json!([{"name": "web", "image": "nginx",
                "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}, {"name": "missing", "mountPath": "/etc/web"}],
                "livenessProbe": {"httpGet": {"port": 80}, "exec": {"command": ["true"]}, "successThreshold": 2},
                "readinessProbe": {"periodSeconds": -1},
                "resources": {"requests": {"cpu": "2", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}}]),
        );
        bad["spec"]["template"]["spec"]["volumes"] = json!([
            {"name": "config", "configMap": {"name": "web"}},
            {"name": "config", "emptyDir": {}},
            {"name": "both", "emptyDir": {}, "secret": {"secretName": "s"}},
            // kube defaults a volume without a source to an emptyDir.
            {"name": "none"},
        ]);
        let found = problems("deployments", bad, None);
        let c = "spec.template.spec.containers[0]";
        let v = "spec.template.spec.volumes";
        assert_eq!(
            found,
            [
                (format!("{v}[1].name"), "Duplicate value: \"config\"".to_owned()),
                (
                    format!("{v}[2].secret"),
                    "Forbidden: may not specify more than 1 volume type".to_owned()
                ),
                (
                    format!("{c}.volumeMounts[1].name"),
                    "Not found: \"missing\"".to_owned()
                ),
                (
                    format!("{c}.volumeMounts[1].mountPath"),
                    "Invalid value: \"/etc/web\": must be unique".to_owned()
                ),
                (
                    format!("{c}.resources.requests[cpu]"),
                    "Invalid value: \"2\": must be less than or equal to cpu limit of 500m".to_owned()
                ),
                (
                    format!("{c}.livenessProbe.httpGet"),
                    "Forbidden: may not specify more than 1 handler type".to_owned()
                ),
                (
                    format!("{c}.livenessProbe.successThreshold"),
                    "Invalid value: 2: must be 1".to_owned()
                ),
                (
                    format!("{c}.readinessProbe"),
                    "Required value: must specify a handler type".to_owned()
                ),
                (
                    format!("{c}.readinessProbe.periodSeconds"),
                    "Invalid value: -1: must be greater than or equal to 0".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn update_strategies() {
        let mut recreate = deployment(json!({"app": "web"}), json!([{"name": "web", "image": "nginx"}]));
        recreate["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
        assert_eq!(
            problems("deployments", recreate, None),
            [(
                "spec.strategy.rollingUpdate".to_owned(),
                "Forbidden: may not be specified when strategy `type` is 'Recreate'".to_owned()
            )]
        );
        let mut stuck = deployment(json!({"app": "web"}), json!([{"name": "web", "image": "nginx"}]));
        stuck["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}});
        assert_eq!(
            problems("deployments", stuck, None),
            [(
                "spec.strategy.rollingUpdate.maxUnavailable".to_owned(),
                "Invalid value: \"0%\": may not be 0 when `maxSurge` is 0".to_owned()
            )]
        );
        let mut unknown = deployment(json!({"app": "web"}), json!([{"name": "web", "image": "nginx"}]));
        unknown["spec"]["updateStrategy"] = json!({"type": "Sometimes"});
        assert_eq!(
            fields_of(&problems("daemonsets", unknown, None)),
            ["spec.updateStrategy.type"]
        );
        let mut claims = deployment(
            json!({"app": "web"}),
            json!([{"name": "web", "image": "nginx", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]),
        );
        claims["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"}}]);
        assert_eq!(
            problems("statefulsets", claims, None),
            vec![],
            "claim templates are volumes"
        );
    }

    #[test]
    fn selectors_are_immutable() {
        let old = deployment(json!({"app": "web"}), json!([{"name": "c", "image": "x"}]));
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "a"}});
        new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("a");
        let found = problems("deployments", new, Some(old));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "spec.selector");
        assert!(found[0].1.ends_with("field is immutable"));
    }

    #[test]
    fn jobs_need_a_restart_policy_and_keep_their_template() {
        let mut job = json!({"metadata": {"name": "pi", "uid": "u"}, "spec": {"template": {"spec": {
            "containers": [{"name": "pi", "image": "perl"}]}}}});
        let resource = flotilla_api::resources::RESOURCES
            .iter()
            .find(|r| r.plural == "jobs")
            .unwrap();
        crate::defaults::apply(&mut job, resource);
        crate::defaults::generate_job_selector(&mut job);
        let found: Vec<_> = validate(&job, None, resource)
            .into_iter()
            .map(|c| c.message)
            .collect();
        assert_eq!(
            found,
            ["Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""]
        );
        job["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert!(validate(&job, None, resource).is_empty());
        let mut changed = job.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:5");
        let found = validate(&changed, Some(&job), resource);
        assert_eq!(found[0].field, "spec.template");
        assert!(found[0].message.ends_with("field is immutable"));
        // A selector the user wrote without manualSelector is refused.
        let mut own = job.clone();
        own["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
        assert!(
            validate(&own, None, resource)[0]
                .message
                .ends_with("`selector` not auto-generated")
        );
    }

    #[test]
    fn services_ingresses_autoscalers_and_config_keys() {
        let service = json!({"spec": {"type": "Bogus", "ports": [{"port": 80}, {"port": 0}]}});
        let found = problems("services", service, None);
        let fields = fields_of(&found);
        assert_eq!(
            fields,
            [
                "spec.type",
                "spec.ports[0].name",
                "spec.ports[1].name",
                "spec.ports[1].port",
                "spec.ports[1].targetPort",
            ],
            "{found:?}"
        );
        assert!(
            problems("services", json!({"spec": {"type": "ExternalName"}}), None)[0].0 == "spec.externalName"
        );

        let ingress = json!({"spec": {"rules": [{"http": {"paths": [
            {"path": "api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}},
            {"path": "/", "backend": {"service": {"name": "web", "port": {}}}}]}}]}});
        let found = problems("ingresses", ingress, None);
        let fields = fields_of(&found);
        assert_eq!(
            fields,
            [
                "spec.rules[0].http.paths[0].path",
                "spec.rules[0].http.paths[1].pathType",
                "spec.rules[0].http.paths[1].backend.service.port",
            ],
            "{found:?}"
        );

        let hpa = json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "minReplicas": 5, "maxReplicas": 2}});
        assert_eq!(
            problems("horizontalpodautoscalers", hpa, None),
            vec![(
                "spec.maxReplicas".to_owned(),
                "Invalid value: 2: must be greater than or equal to `minReplicas`".to_owned()
            )]
        );

        let config = json!({"data": {"ok.key": "1", "bad key": "2"}});
        let found = problems("configmaps", config, None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "data[bad key]");
    }
}
