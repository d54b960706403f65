//! Strategic merge patch (`application/strategic-merge-patch+json`), as client-side `kubectl apply`,
//! `kubectl edit` and `kubectl patch` send it.
//!
//! No crate implements it, so it is written here (kube's `apimachinery/pkg/util/strategicpatch`, reduced to
//! what the served types need). Maps merge recursively and `null` deletes a key. A list either is replaced
//! (the default), merges its elements by a merge key (`containers` by `name`, `ports` by `containerPort`, …), or
//! merges as a set of primitives (`finalizers`). Directives: `$patch: replace|delete|merge` on maps and list
//! elements, `$setElementOrder/<list>`, `$retainKeys`, `$deleteFromPrimitiveList/<list>`.
//!
//! The strategy of each list comes from the served types' `x-kubernetes-patch-*` extensions, keyed here by
//! where the list sits in the object (its field path, without list indices).

use flotilla_api::resources::Resource;
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListStrategy {
    Replace,
    Merge(&'static str),
    Primitive,
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// Where a pod spec sits in every served workload: `….template.spec`.
fn is_pod_spec(path: &[String]) -> bool {
    path.len() >= 2 && path[path.len() - 2] == "template" && path[path.len() - 1] == "spec"
}

pub(crate) fn list_strategy(resource: &Resource, path: &[String]) -> ListStrategy {
    let Some((field, parent)) = path.split_last() else {
        return ListStrategy::Replace;
    };
    let field = field.as_str();
    if parent == ["metadata"] {
        return match field {
            "ownerReferences" => ListStrategy::Merge("uid"),
            "finalizers" => ListStrategy::Primitive,
            _ => ListStrategy::Replace,
        };
    }
    if parent == ["status"] && field == "conditions" {
        return ListStrategy::Merge("type");
    }
    if resource.group.is_empty() && resource.plural == "services" && parent == ["spec"] && field == "ports" {
        return ListStrategy::Merge("port");
    }
    if resource.group.is_empty() && resource.plural == "nodes" && parent == ["status"] && field == "addresses"
    {
        return ListStrategy::Merge("type");
    }
    if resource.group == "federation" && parent == ["spec"] && field == "serverAddressByClientCIDRs" {
        return ListStrategy::Merge("clientCIDR");
    }
    if is_pod_spec(parent) {
        return match field {
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "imagePullSecrets"
            | "volumes"
            | "resourceClaims"
            | "schedulingGates" => ListStrategy::Merge("name"),
            "hostAliases" => ListStrategy::Merge("ip"),
            "topologySpreadConstraints" => ListStrategy::Merge("topologyKey"),
            _ => ListStrategy::Replace,
        };
    }
    if let Some((container_list, pod_spec)) = parent.split_last()
        && CONTAINER_LISTS.contains(&container_list.as_str())
        && is_pod_spec(pod_spec)
    {
        return match field {
            "env" => ListStrategy::Merge("name"),
            "ports" => ListStrategy::Merge("containerPort"),
            "volumeMounts" => ListStrategy::Merge("mountPath"),
            "volumeDevices" => ListStrategy::Merge("devicePath"),
            _ => ListStrategy::Replace,
        };
    }
    ListStrategy::Replace
}

/// Applies `patch` to `target`. `plain` (the scale subresource) has no lists to merge by key.
pub fn strategic_merge(
    target: &mut Value,
    patch: &Value,
    resource: &Resource,
    plain: bool,
) -> Result<(), String> {
    let _ = plain;
    let patch = patch
        .as_object()
        .ok_or("a strategic merge patch must be an object")?;
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    merge_map(
        target.as_object_mut().expect("made an object"),
        patch,
        resource,
        &mut Vec::new(),
    )
}

fn merge_map(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    resource: &Resource,
    path: &mut Vec<String>,
) -> Result<(), String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = patch
                .iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            return Ok(());
        }
        Some("delete") => {
            target.clear();
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch directive $patch: {other}")),
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        path.push(key.clone());
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(patch_map) => {
                if patch_map.get("$patch").and_then(Value::as_str) == Some("delete") {
                    target.remove(key);
                } else {
                    let entry = target
                        .entry(key.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !entry.is_object() {
                        *entry = Value::Object(Map::new());
                    }
                    merge_map(
                        entry.as_object_mut().expect("an object"),
                        patch_map,
                        resource,
                        path,
                    )?;
                }
            }
            Value::Array(patch_list) => {
                let strategy = list_strategy(resource, path);
                let current = target.remove(key).and_then(|v| match v {
                    Value::Array(items) => Some(items),
                    _ => None,
                });
                let merged = merge_list(current.unwrap_or_default(), patch_list, strategy, resource, path)?;
                target.insert(key.clone(), Value::Array(merged));
            }
            scalar => {
                target.insert(key.clone(), scalar.clone());
            }
        }
        path.pop();
    }
    // Directives that concern lists and keys of this map, applied after the merge.
    for (key, value) in patch {
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(remove)) = (target.get_mut(list), value.as_array()) {
                items.retain(|item| !remove.contains(item));
            }
        } else if let Some(list) = key.strip_prefix("$setElementOrder/") {
            path.push(list.to_owned());
            let strategy = list_strategy(resource, path);
            path.pop();
            if let (Some(Value::Array(items)), Some(order)) = (target.get_mut(list), value.as_array()) {
                reorder(items, order, strategy);
            }
        } else if key == "$retainKeys" {
            let keep: Vec<&str> = value
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            target.retain(|k, _| keep.contains(&k.as_str()));
        }
    }
    Ok(())
}

fn merge_list(
    mut current: Vec<Value>,
    patch: &[Value],
    strategy: ListStrategy,
    resource: &Resource,
    path: &mut Vec<String>,
) -> Result<Vec<Value>, String> {
    // `{"$patch": "replace"}` as an element replaces the whole list with the other elements.
    if patch
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|item| item.get("$patch").is_none())
            .cloned()
            .collect());
    }
    match strategy {
        ListStrategy::Replace => Ok(patch.to_vec()),
        ListStrategy::Primitive => {
            for item in patch {
                if !current.contains(item) {
                    current.push(item.clone());
                }
            }
            Ok(current)
        }
        ListStrategy::Merge(merge_key) => {
            for item in patch {
                let Some(item_map) = item.as_object() else {
                    return Err(format!("elements of {} must be objects", path.join(".")));
                };
                let Some(key_value) = item_map.get(merge_key) else {
                    return Err(format!(
                        "an element of {} has no merge key {merge_key:?}",
                        path.join(".")
                    ));
                };
                let position = current
                    .iter()
                    .position(|existing| existing.get(merge_key) == Some(key_value));
                match (item_map.get("$patch").and_then(Value::as_str), position) {
                    (Some("delete"), Some(position)) => {
                        current.remove(position);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(position)) => {
                        let existing = current[position]
                            .as_object_mut()
                            .ok_or("list element is not an object")?;
                        merge_map(existing, item_map, resource, path)?;
                    }
                    (_, None) => {
                        let mut fresh = Map::new();
                        merge_map(&mut fresh, item_map, resource, path)?;
                        current.push(Value::Object(fresh));
                    }
                }
            }
            Ok(current)
        }
    }
}

/// `$setElementOrder`: the listed elements in the given order, then any others in their current order.
fn reorder(items: &mut Vec<Value>, order: &[Value], strategy: ListStrategy) {
    let identity = |item: &Value| -> Value {
        match strategy {
            ListStrategy::Merge(key) => item.get(key).cloned().unwrap_or(Value::Null),
            _ => item.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(identity).collect();
    let mut remaining = std::mem::take(items);
    for id in &wanted {
        if let Some(position) = remaining.iter().position(|item| identity(item) == *id) {
            items.push(remaining.remove(position));
        }
    }
    items.extend(remaining);
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::resources::lookup;
    use serde_json::json;

    #[track_caller]
    fn check(plural: &str, group: &str, target: Value, patch: Value, expect: Value) {
        let resource = lookup(flotilla_api::resources::Profile::Federation, group, "v1", plural).unwrap();
        let mut target = target;
        strategic_merge(&mut target, &patch, resource, false).unwrap();
        assert_eq!(target, expect);
    }

    fn deployment(containers: Value) -> Value {
        json!({"spec": {"template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn containers_merge_by_name() {
        check(
            "deployments",
            "apps",
            deployment(
                json!([{"name": "app", "image": "a:1", "ports": [{"containerPort": 80}]}, {"name": "side", "image": "s"}]),
            ),
            deployment(json!([{"name": "app", "image": "a:2"}])),
            deployment(
                json!([{"name": "app", "image": "a:2", "ports": [{"containerPort": 80}]}, {"name": "side", "image": "s"}]),
            ),
        );
    }

    #[test]
    fn kubectl_apply_directives() {
        // What client-side apply sent in the captures: element order, a deleted env entry, a deleted container
        // and a deleted label.
        let target = json!({
            "metadata": {"labels": {"app": "web", "tier": "front"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "sidecar", "image": "s"}
            ]}}}
        });
        let patch = json!({
            "metadata": {"labels": {"tier": null}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [
                    {"name": "app", "$setElementOrder/env": [{"name": "C"}, {"name": "A"}],
                     "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}]},
                    {"$patch": "delete", "name": "sidecar"}
                ]
            }}}
        });
        check(
            "deployments",
            "apps",
            target,
            patch,
            json!({
                "metadata": {"labels": {"app": "web"}},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "app", "image": "a:1", "env": [{"name": "C", "value": "3"}, {"name": "A", "value": "1"}]}
                ]}}}
            }),
        );
    }

    #[test]
    fn lists_without_a_strategy_are_replaced() {
        check(
            "deployments",
            "apps",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["x", "y"]}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["z"]}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["z"]}]}}}}),
        );
    }

    #[test]
    fn service_ports_merge_by_port_and_finalizers_as_a_set() {
        check(
            "services",
            "",
            json!({"metadata": {"finalizers": ["a"]}, "spec": {"ports": [{"port": 80, "name": "http"}]}}),
            json!({"metadata": {"finalizers": ["b", "a"], "$deleteFromPrimitiveList/finalizers": ["a"]},
                   "spec": {"ports": [{"port": 443, "name": "https"}]}}),
            json!({"metadata": {"finalizers": ["b"]},
                   "spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}),
        );
    }

    #[test]
    fn replace_and_retain_keys_directives() {
        check(
            "deployments",
            "apps",
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "selector": {"matchLabels": {"a": "b"}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}, "selector": {"$patch": "replace", "matchLabels": {"c": "d"}}}}),
            json!({"spec": {"strategy": {"type": "Recreate"}, "selector": {"matchLabels": {"c": "d"}}}}),
        );
    }

    #[test]
    fn malformed_merge_lists_are_errors() {
        let resource = lookup(
            flotilla_api::resources::Profile::Federation,
            "apps",
            "v1",
            "deployments",
        )
        .unwrap();
        let mut target = deployment(json!([]));
        let patch = deployment(json!([{"image": "no-name"}]));
        assert!(strategic_merge(&mut target, &patch, resource, false).is_err());
    }
}
