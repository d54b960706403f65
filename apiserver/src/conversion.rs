//! Conversion between the versions a resource is served in. Objects are stored in the resource's preferred
//! version (its first); a request in another version has its body converted on the way in and every object
//! converted on the way out, as kube-apiserver does.
//!
//! The only resource served in two versions is HorizontalPodAutoscaler: stored as `autoscaling/v2`, served as
//! v2 and v1. v1 has no room for most of v2, so — as kube-apiserver does, and so that a v1 client's round trip
//! loses nothing — what v1 cannot say travels in annotations: metrics other than CPU utilization, current
//! metrics, conditions and scaling behaviour, each as JSON.

use flotilla_api::resources::Resource;
use serde_json::{Map, Value, json};

/// Why an object could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    #[error("{kind} cannot be converted to version {version:?}")]
    Unsupported { kind: &'static str, version: String },
    #[error("the body is not a JSON object")]
    NotAnObject,
}

/// Whether objects of `resource` served at `version` differ from the stored ones.
pub fn needed(resource: &Resource, version: &str) -> bool {
    version != resource.versions[0]
}

fn is_hpa(resource: &Resource) -> bool {
    resource.group == "autoscaling" && resource.kind == "HorizontalPodAutoscaler"
}

/// A stored object as `version` shows it. Other kinds (a Status, a Scale) pass unchanged.
pub fn to_served(resource: &Resource, version: &str, object: Value) -> Value {
    let is_resource_kind = object.get("kind").and_then(Value::as_str) == Some(resource.kind);
    if !needed(resource, version) || !is_resource_kind {
        return object;
    }
    match version {
        "v1" if is_hpa(resource) => hpa::v2_to_v1(object),
        _ => object,
    }
}

/// An object of `version` in the stored version.
pub fn to_stored(resource: &Resource, version: &str, object: Value) -> Result<Value, ConversionError> {
    if !needed(resource, version) {
        return Ok(object);
    }
    if !object.is_object() {
        return Err(ConversionError::NotAnObject);
    }
    match version {
        "v1" if is_hpa(resource) => Ok(hpa::v1_to_v2(object)),
        _ => Err(ConversionError::Unsupported {
            kind: resource.kind,
            version: version.to_owned(),
        }),
    }
}

/// autoscaling/v1 ↔ autoscaling/v2 HorizontalPodAutoscalers.
mod hpa {
    use super::*;

    pub const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
    pub const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
    pub const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
    pub const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
    const ROUND_TRIP: [&str; 4] = [METRICS, CURRENT_METRICS, CONDITIONS, BEHAVIOR];

    /// kube's CPU target for a v1 HorizontalPodAutoscaler that names none.
    const DEFAULT_CPU_UTILIZATION: i64 = 80;

    /// Copies `fields` of `from` that are set into `to`.
    fn copy(from: &Value, to: &mut Map<String, Value>, fields: &[&str]) {
        for field in fields {
            if let Some(value) = from.get(*field).filter(|v| !v.is_null()) {
                to.insert((*field).to_owned(), value.clone());
            }
        }
    }

    fn object(value: &Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn is_cpu_utilization(metric: &Value) -> bool {
        metric["type"] == "Resource"
            && metric.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
            && metric
                .pointer("/resource/target/averageUtilization")
                .is_some_and(|v| !v.is_null())
    }

    fn cpu_utilization_metric(utilization: &Value) -> Value {
        json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": utilization}}})
    }

    /// The annotations of `object`, without the round-trip ones, and those as they were.
    fn split_annotations(object: &mut Value) -> Map<String, Value> {
        let mut round_trip = Map::new();
        let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
            return round_trip;
        };
        if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
            for key in ROUND_TRIP {
                if let Some(value) = annotations.remove(key) {
                    round_trip.insert(key.to_owned(), value);
                }
            }
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
        round_trip
    }

    fn set_annotation(object: &mut Value, key: &str, value: &Value) {
        let meta = crate::object::metadata_mut(object);
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if !annotations.is_object() {
            *annotations = json!({});
        }
        annotations[key] = Value::String(value.to_string());
    }

    /// A JSON annotation, parsed; malformed text counts as absent, as kube ignores it.
    fn parse_annotation(annotations: &Map<String, Value>, key: &str) -> Option<Value> {
        let text = annotations.get(key)?.as_str()?;
        serde_json::from_str(text).ok().filter(|v: &Value| !v.is_null())
    }

    pub fn v2_to_v1(mut v2: Value) -> Value {
        let _ = split_annotations(&mut v2);
        let spec = v2.get("spec").cloned().unwrap_or(Value::Null);
        let status = v2.get("status").cloned().unwrap_or(Value::Null);
        let metrics = spec["metrics"].as_array().cloned().unwrap_or_default();
        let mut v1 = object(&v2);
        v1.insert("apiVersion".to_owned(), json!("autoscaling/v1"));

        let mut v1_spec = Map::new();
        copy(
            &spec,
            &mut v1_spec,
            &["scaleTargetRef", "minReplicas", "maxReplicas"],
        );
        if let Some(cpu) = metrics.iter().find(|m| is_cpu_utilization(m)) {
            v1_spec.insert(
                "targetCPUUtilizationPercentage".to_owned(),
                cpu["resource"]["target"]["averageUtilization"].clone(),
            );
        }
        v1.insert("spec".to_owned(), Value::Object(v1_spec));

        let has_status = status.is_object();
        let mut v1_status = Map::new();
        copy(
            &status,
            &mut v1_status,
            &[
                "observedGeneration",
                "lastScaleTime",
                "currentReplicas",
                "desiredReplicas",
            ],
        );
        let current = status["currentMetrics"].as_array().cloned().unwrap_or_default();
        // kube takes the last CPU utilization it finds.
        let current_cpu = current
            .iter()
            .filter(|m| m["type"] == "Resource" && m.pointer("/resource/name") == Some(&json!("cpu")))
            .filter_map(|m| m.pointer("/resource/current/averageUtilization"))
            .rfind(|v| !v.is_null());
        if let Some(cpu) = current_cpu {
            v1_status.insert("currentCPUUtilizationPercentage".to_owned(), cpu.clone());
        }
        if has_status {
            // v1's currentReplicas and desiredReplicas are required.
            v1_status.entry("currentReplicas").or_insert(json!(0));
            v1_status.entry("desiredReplicas").or_insert(json!(0));
            v1.insert("status".to_owned(), Value::Object(v1_status));
        } else {
            v1.remove("status");
        }
        let mut v1 = Value::Object(v1);

        let others: Vec<Value> = metrics
            .iter()
            .filter(|m| !is_cpu_utilization(m))
            .map(metric_spec_to_v1)
            .collect();
        if !others.is_empty() {
            set_annotation(&mut v1, METRICS, &Value::Array(others));
        }
        if let Some(behavior) = spec.get("behavior").filter(|b| b.is_object()) {
            set_annotation(&mut v1, BEHAVIOR, &go_names(behavior));
        }
        if !current.is_empty() {
            let current: Vec<Value> = current.iter().map(metric_status_to_v1).collect();
            set_annotation(&mut v1, CURRENT_METRICS, &Value::Array(current));
        }
        if let Some(conditions) = status["conditions"].as_array().filter(|c| !c.is_empty()) {
            set_annotation(&mut v1, CONDITIONS, &Value::Array(conditions.clone()));
        }
        v1
    }

    pub fn v1_to_v2(mut v1: Value) -> Value {
        let annotations = split_annotations(&mut v1);
        let spec = v1.get("spec").cloned().unwrap_or(Value::Null);
        let status = v1.get("status").cloned().unwrap_or(Value::Null);
        let mut v2 = object(&v1);
        v2.insert("apiVersion".to_owned(), json!("autoscaling/v2"));

        let mut v2_spec = Map::new();
        copy(
            &spec,
            &mut v2_spec,
            &["scaleTargetRef", "minReplicas", "maxReplicas"],
        );
        let mut metrics: Vec<Value> = parse_annotation(&annotations, METRICS)
            .and_then(|m| m.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(metric_spec_to_v2)
            .collect();
        if let Some(cpu) = spec
            .get("targetCPUUtilizationPercentage")
            .filter(|v| !v.is_null())
        {
            metrics.push(cpu_utilization_metric(cpu));
        }
        if metrics.is_empty() {
            metrics.push(cpu_utilization_metric(&json!(DEFAULT_CPU_UTILIZATION)));
        }
        v2_spec.insert("metrics".to_owned(), Value::Array(metrics));
        if let Some(behavior) = parse_annotation(&annotations, BEHAVIOR)
            .map(|b| camel_names(&b))
            .filter(|b| !b["scaleUp"].is_null() || !b["scaleDown"].is_null())
        {
            v2_spec.insert("behavior".to_owned(), behavior);
        }
        v2.insert("spec".to_owned(), Value::Object(v2_spec));

        if status.is_object() {
            let mut v2_status = Map::new();
            copy(
                &status,
                &mut v2_status,
                &[
                    "observedGeneration",
                    "lastScaleTime",
                    "currentReplicas",
                    "desiredReplicas",
                ],
            );
            let current = match parse_annotation(&annotations, CURRENT_METRICS).and_then(|m| m.as_array().cloned()) {
                Some(current) => current.iter().map(metric_status_to_v2).collect(),
                None => status
                    .get("currentCPUUtilizationPercentage")
                    .filter(|v| !v.is_null())
                    .map(|cpu| {
                        vec![json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}})]
                    })
                    .unwrap_or_default(),
            };
            if !current.is_empty() {
                v2_status.insert("currentMetrics".to_owned(), Value::Array(current));
            }
            if let Some(conditions) = parse_annotation(&annotations, CONDITIONS).filter(Value::is_array) {
                v2_status.insert("conditions".to_owned(), conditions);
            }
            v2.insert("status".to_owned(), Value::Object(v2_status));
        } else {
            v2.remove("status");
        }
        Value::Object(v2)
    }

    /// The v1 (v2beta1-shaped) form of a v2 metric target: `averageUtilization`, `averageValue`, `value` under
    /// the names v1 gives them.
    fn target_to_v1(target: &Value, names: &[(&str, &str)], out: &mut Map<String, Value>) {
        for (v2, v1) in names {
            if let Some(value) = target.get(*v2).filter(|v| !v.is_null()) {
                out.insert((*v1).to_owned(), value.clone());
            }
        }
    }

    fn metric_spec_to_v1(metric: &Value) -> Value {
        let kind = metric["type"].as_str().unwrap_or_default();
        let mut out = Map::new();
        out.insert("type".to_owned(), json!(kind));
        match kind {
            "Resource" | "ContainerResource" => {
                let key = if kind == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let source = &metric[key];
                let mut v1 = Map::new();
                copy(source, &mut v1, &["name", "container"]);
                target_to_v1(
                    &source["target"],
                    &[
                        ("averageUtilization", "targetAverageUtilization"),
                        ("averageValue", "targetAverageValue"),
                    ],
                    &mut v1,
                );
                out.insert(key.to_owned(), Value::Object(v1));
            }
            "Pods" => {
                let source = &metric["pods"];
                let mut v1 = Map::new();
                copy(&source["metric"], &mut v1, &["selector"]);
                v1.insert("metricName".to_owned(), source["metric"]["name"].clone());
                v1.insert(
                    "targetAverageValue".to_owned(),
                    source["target"]
                        .get("averageValue")
                        .cloned()
                        .unwrap_or(json!("0")),
                );
                out.insert("pods".to_owned(), Value::Object(v1));
            }
            "Object" => {
                let source = &metric["object"];
                let mut v1 = Map::new();
                v1.insert("target".to_owned(), source["describedObject"].clone());
                v1.insert("metricName".to_owned(), source["metric"]["name"].clone());
                copy(&source["metric"], &mut v1, &["selector"]);
                v1.insert(
                    "targetValue".to_owned(),
                    source["target"].get("value").cloned().unwrap_or(json!("0")),
                );
                target_to_v1(&source["target"], &[("averageValue", "averageValue")], &mut v1);
                out.insert("object".to_owned(), Value::Object(v1));
            }
            "External" => {
                let source = &metric["external"];
                let mut v1 = Map::new();
                v1.insert("metricName".to_owned(), source["metric"]["name"].clone());
                if let Some(selector) = source["metric"].get("selector").filter(|s| !s.is_null()) {
                    v1.insert("metricSelector".to_owned(), selector.clone());
                }
                target_to_v1(
                    &source["target"],
                    &[("value", "targetValue"), ("averageValue", "targetAverageValue")],
                    &mut v1,
                );
                out.insert("external".to_owned(), Value::Object(v1));
            }
            _ => {}
        }
        Value::Object(out)
    }

    fn metric_spec_to_v2(metric: &Value) -> Value {
        let kind = metric["type"].as_str().unwrap_or_default();
        let mut out = Map::new();
        out.insert("type".to_owned(), json!(kind));
        let pick = |source: &Value, field: &str| source.get(field).filter(|v| !v.is_null()).cloned();
        match kind {
            "Resource" | "ContainerResource" => {
                let key = if kind == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let source = &metric[key];
                let mut v2 = Map::new();
                copy(source, &mut v2, &["name", "container"]);
                let utilization = pick(source, "targetAverageUtilization");
                let mut target = Map::new();
                target.insert(
                    "type".to_owned(),
                    json!(if utilization.is_some() {
                        "Utilization"
                    } else {
                        "AverageValue"
                    }),
                );
                if let Some(utilization) = utilization {
                    target.insert("averageUtilization".to_owned(), utilization);
                }
                if let Some(value) = pick(source, "targetAverageValue") {
                    target.insert("averageValue".to_owned(), value);
                }
                v2.insert("target".to_owned(), Value::Object(target));
                out.insert(key.to_owned(), Value::Object(v2));
            }
            "Pods" => {
                let source = &metric["pods"];
                let mut identifier = Map::new();
                identifier.insert("name".to_owned(), source["metricName"].clone());
                copy(source, &mut identifier, &["selector"]);
                out.insert(
                    "pods".to_owned(),
                    json!({"metric": identifier, "target": {"type": "AverageValue", "averageValue": source["targetAverageValue"]}}),
                );
            }
            "Object" => {
                let source = &metric["object"];
                let mut identifier = Map::new();
                identifier.insert("name".to_owned(), source["metricName"].clone());
                copy(source, &mut identifier, &["selector"]);
                let average = pick(source, "averageValue");
                let mut target = Map::new();
                target.insert(
                    "type".to_owned(),
                    json!(if average.is_some() {
                        "AverageValue"
                    } else {
                        "Value"
                    }),
                );
                target.insert("value".to_owned(), source["targetValue"].clone());
                if let Some(average) = average {
                    target.insert("averageValue".to_owned(), average);
                }
                out.insert(
                    "object".to_owned(),
                    json!({"describedObject": source["target"], "metric": identifier, "target": target}),
                );
            }
            "External" => {
                let source = &metric["external"];
                let mut identifier = Map::new();
                identifier.insert("name".to_owned(), source["metricName"].clone());
                if let Some(selector) = pick(source, "metricSelector") {
                    identifier.insert("selector".to_owned(), selector);
                }
                let value = pick(source, "targetValue");
                let mut target = Map::new();
                target.insert(
                    "type".to_owned(),
                    json!(if value.is_some() { "Value" } else { "AverageValue" }),
                );
                if let Some(value) = value {
                    target.insert("value".to_owned(), value);
                }
                if let Some(average) = pick(source, "targetAverageValue") {
                    target.insert("averageValue".to_owned(), average);
                }
                out.insert(
                    "external".to_owned(),
                    json!({"metric": identifier, "target": target}),
                );
            }
            _ => {}
        }
        Value::Object(out)
    }

    fn metric_status_to_v1(metric: &Value) -> Value {
        let kind = metric["type"].as_str().unwrap_or_default();
        let mut out = Map::new();
        out.insert("type".to_owned(), json!(kind));
        match kind {
            "Resource" | "ContainerResource" => {
                let key = if kind == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let source = &metric[key];
                let mut v1 = Map::new();
                copy(source, &mut v1, &["name", "container"]);
                target_to_v1(
                    &source["current"],
                    &[
                        ("averageUtilization", "currentAverageUtilization"),
                        ("averageValue", "currentAverageValue"),
                    ],
                    &mut v1,
                );
                v1.entry("currentAverageValue").or_insert(json!("0"));
                out.insert(key.to_owned(), Value::Object(v1));
            }
            "Pods" => {
                let source = &metric["pods"];
                let mut v1 = Map::new();
                v1.insert("metricName".to_owned(), source["metric"]["name"].clone());
                copy(&source["metric"], &mut v1, &["selector"]);
                v1.insert(
                    "currentAverageValue".to_owned(),
                    source["current"]
                        .get("averageValue")
                        .cloned()
                        .unwrap_or(json!("0")),
                );
                out.insert("pods".to_owned(), Value::Object(v1));
            }
            "Object" => {
                let source = &metric["object"];
                let mut v1 = Map::new();
                v1.insert("target".to_owned(), source["describedObject"].clone());
                v1.insert("metricName".to_owned(), source["metric"]["name"].clone());
                copy(&source["metric"], &mut v1, &["selector"]);
                v1.insert(
                    "currentValue".to_owned(),
                    source["current"].get("value").cloned().unwrap_or(json!("0")),
                );
                target_to_v1(&source["current"], &[("averageValue", "averageValue")], &mut v1);
                out.insert("object".to_owned(), Value::Object(v1));
            }
            "External" => {
                let source = &metric["external"];
                let mut v1 = Map::new();
                v1.insert("metricName".to_owned(), source["metric"]["name"].clone());
                if let Some(selector) = source["metric"].get("selector").filter(|s| !s.is_null()) {
                    v1.insert("metricSelector".to_owned(), selector.clone());
                }
                v1.insert(
                    "currentValue".to_owned(),
                    source["current"].get("value").cloned().unwrap_or(json!("0")),
                );
                target_to_v1(
                    &source["current"],
                    &[("averageValue", "currentAverageValue")],
                    &mut v1,
                );
                out.insert("external".to_owned(), Value::Object(v1));
            }
            _ => {}
        }
        Value::Object(out)
    }

    fn metric_status_to_v2(metric: &Value) -> Value {
        let kind = metric["type"].as_str().unwrap_or_default();
        let mut out = Map::new();
        out.insert("type".to_owned(), json!(kind));
        let pick = |source: &Value, field: &str| source.get(field).filter(|v| !v.is_null()).cloned();
        match kind {
            "Resource" | "ContainerResource" => {
                let key = if kind == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let source = &metric[key];
                let mut v2 = Map::new();
                copy(source, &mut v2, &["name", "container"]);
                let mut current = Map::new();
                current.insert(
                    "averageValue".to_owned(),
                    pick(source, "currentAverageValue").unwrap_or(json!("0")),
                );
                if let Some(utilization) = pick(source, "currentAverageUtilization") {
                    current.insert("averageUtilization".to_owned(), utilization);
                }
                v2.insert("current".to_owned(), Value::Object(current));
                out.insert(key.to_owned(), Value::Object(v2));
            }
            "Pods" => {
                let source = &metric["pods"];
                let mut identifier = Map::new();
                identifier.insert("name".to_owned(), source["metricName"].clone());
                copy(source, &mut identifier, &["selector"]);
                out.insert(
                    "pods".to_owned(),
                    json!({"metric": identifier, "current": {"averageValue": source["currentAverageValue"]}}),
                );
            }
            "Object" => {
                let source = &metric["object"];
                let mut identifier = Map::new();
                identifier.insert("name".to_owned(), source["metricName"].clone());
                copy(source, &mut identifier, &["selector"]);
                let mut current = Map::new();
                current.insert("value".to_owned(), source["currentValue"].clone());
                if let Some(average) = pick(source, "averageValue") {
                    current.insert("averageValue".to_owned(), average);
                }
                out.insert(
                    "object".to_owned(),
                    json!({"describedObject": source["target"], "metric": identifier, "current": current}),
                );
            }
            "External" => {
                let source = &metric["external"];
                let mut identifier = Map::new();
                identifier.insert("name".to_owned(), source["metricName"].clone());
                if let Some(selector) = pick(source, "metricSelector") {
                    identifier.insert("selector".to_owned(), selector);
                }
                let mut current = Map::new();
                current.insert("value".to_owned(), source["currentValue"].clone());
                if let Some(average) = pick(source, "currentAverageValue") {
                    current.insert("averageValue".to_owned(), average);
                }
                out.insert(
                    "external".to_owned(),
                    json!({"metric": identifier, "current": current}),
                );
            }
            _ => {}
        }
        Value::Object(out)
    }

    /// Object keys renamed recursively by `rename`.
    fn rename_keys(value: &Value, rename: &dyn Fn(&str) -> String) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (rename(k), rename_keys(v, rename)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| rename_keys(v, rename)).collect()),
            other => other.clone(),
        }
    }

    /// kube writes the behaviour annotation from its internal type, which has no JSON tags: Go field names.
    fn go_names(behavior: &Value) -> Value {
        rename_keys(behavior, &|key| {
            let mut chars = key.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
    }

    /// The behaviour annotation read back (Go decodes keys case-insensitively; v2's names are camelCase).
    fn camel_names(behavior: &Value) -> Value {
        rename_keys(behavior, &|key| {
            let mut chars = key.chars();
            chars
                .next()
                .map(|first| first.to_ascii_lowercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::resources::{Profile, lookup};

    fn hpas() -> &'static Resource {
        lookup(
            Profile::Federation,
            "autoscaling",
            "v1",
            "horizontalpodautoscalers",
        )
        .expect("served")
    }

    fn v2_hpa() -> Value {
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
                    {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}},
                    {"type": "Object", "object": {"describedObject": {"kind": "Ingress", "name": "main", "apiVersion": "networking.k8s.io/v1"},
                        "metric": {"name": "hits"}, "target": {"type": "Value", "value": "2k"}}}
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
            },
            "status": {
                "currentReplicas": 3, "desiredReplicas": 4, "observedGeneration": 1,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 75, "averageValue": "150m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"}]
            }
        })
    }

    #[test]
    fn v1_shows_cpu_in_its_fields_and_the_rest_in_annotations() {
        let v1 = to_served(hpas(), "v1", v2_hpa());
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
        assert_eq!(v1["spec"]["minReplicas"], 2);
        assert!(v1["spec"].get("metrics").is_none());
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 75);
        assert_eq!(v1["status"]["desiredReplicas"], 4);
        let annotations = &v1["metadata"]["annotations"];
        assert_eq!(annotations["team"], "a");
        let metrics: Value = serde_json::from_str(annotations[hpa::METRICS].as_str().unwrap()).unwrap();
        assert_eq!(
            metrics.as_array().unwrap().len(),
            4,
            "all but the CPU utilization: {metrics}"
        );
        assert_eq!(metrics[0]["resource"]["targetAverageValue"], "500Mi");
        assert_eq!(metrics[1]["pods"]["metricName"], "qps");
        assert_eq!(metrics[2]["external"]["targetValue"], "30");
        assert_eq!(metrics[3]["object"]["target"]["kind"], "Ingress");
        let behavior: Value = serde_json::from_str(annotations[hpa::BEHAVIOR].as_str().unwrap()).unwrap();
        assert_eq!(behavior["ScaleDown"]["StabilizationWindowSeconds"], 300);
        assert!(
            annotations[hpa::CONDITIONS]
                .as_str()
                .unwrap()
                .contains("AbleToScale")
        );
    }

    #[test]
    fn a_v1_round_trip_loses_nothing() {
        let original = v2_hpa();
        let back = to_stored(hpas(), "v1", to_served(hpas(), "v1", original.clone())).unwrap();
        // The CPU metric comes back after the annotation's metrics, as kube orders them.
        let mut expected = original;
        let metrics = expected["spec"]["metrics"].as_array_mut().unwrap();
        let cpu = metrics.remove(1);
        metrics.push(cpu);
        assert_eq!(back["spec"], expected["spec"]);
        assert_eq!(back["metadata"], expected["metadata"]);
        assert_eq!(back["status"]["conditions"], expected["status"]["conditions"]);
        assert_eq!(
            back["status"]["currentMetrics"],
            expected["status"]["currentMetrics"]
        );
    }

    #[test]
    fn a_plain_v1_object_becomes_v2() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": {hpa::METRICS: "not json"}},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}, "maxReplicas": 5}});
        let v2 = to_stored(hpas(), "v1", v1).unwrap();
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(v2["spec"]["maxReplicas"], 5);
        // No target: kube's default of 80% CPU; a malformed annotation is ignored and dropped.
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert!(v2["metadata"].get("annotations").is_none());
        assert!(v2.get("status").is_none());
        let with_cpu = json!({"kind": "HorizontalPodAutoscaler", "metadata": {"name": "w"},
            "spec": {"maxReplicas": 5, "targetCPUUtilizationPercentage": 50}, "status": {"currentCPUUtilizationPercentage": 20, "currentReplicas": 1, "desiredReplicas": 1}});
        let v2 = to_stored(hpas(), "v1", with_cpu).unwrap();
        assert_eq!(v2["spec"]["metrics"].as_array().unwrap().len(), 1);
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        assert_eq!(
            v2["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
            20
        );
    }

    #[test]
    fn other_kinds_and_the_stored_version_pass_unchanged() {
        let status = json!({"kind": "Status", "code": 404});
        assert_eq!(to_served(hpas(), "v1", status.clone()), status);
        assert_eq!(to_served(hpas(), "v2", v2_hpa()), v2_hpa());
        assert!(!needed(hpas(), "v2"));
        assert!(matches!(
            to_stored(hpas(), "v1", json!("x")),
            Err(ConversionError::NotAnObject)
        ));
    }
}
