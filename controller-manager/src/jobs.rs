//! Jobs: `completions` and `parallelism` split with federation v1's planner and its
//! `federation.kubernetes.io/job-preferences` annotation. Unlike v1, the cluster selector is honoured, a cluster
//! only gets a part when it has completions to run (each part runs at least one pod at a time), and an existing
//! part is never re-planned: a Job's template, selector and completions are immutable, so only its mutable
//! fields are updated.

use std::collections::BTreeMap;

use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::adapters::{self, Adapter, Placement, key_of, render};
use crate::planner;

const PREFERENCES: &str = "federation.kubernetes.io/job-preferences";

#[derive(Debug)]
pub struct Jobs {
    resource: ApiResource,
}

impl Jobs {
    pub fn new() -> Self {
        Jobs {
            resource: ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("batch", "v1", "Job"), "jobs"),
        }
    }
}

impl Default for Jobs {
    fn default() -> Self {
        Self::new()
    }
}

fn int(value: &Value, pointer: &str) -> Option<i64> {
    value.pointer(pointer).and_then(Value::as_i64)
}

impl Adapter for Jobs {
    fn resource(&self) -> &ApiResource {
        &self.resource
    }

    fn namespaced(&self) -> bool {
        true
    }

    fn place(&self, object: &Value, placement: &Placement<'_>) -> BTreeMap<String, Value> {
        let key = key_of(object);
        let preferences = adapters::preferences(object, PREFERENCES);
        let none = BTreeMap::new();
        let parallelism = int(object, "/spec/parallelism").unwrap_or(1);
        let completions = int(object, "/spec/completions");
        // Parts already running keep their completions (immutable); the rest is planned over the others.
        let mut split: BTreeMap<String, (i64, Option<i64>)> = BTreeMap::new();
        let running: Vec<&String> = placement
            .clusters
            .iter()
            .filter(|c| placement.members.contains_key(*c))
            .collect();
        let fresh: Vec<String> = placement
            .clusters
            .iter()
            .filter(|c| !placement.members.contains_key(*c))
            .cloned()
            .collect();
        // A finished Job gets no new parts (a member's TTL controller may have removed a finished one).
        let finished = object
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
            });
        let fresh: Vec<String> = if finished { Vec::new() } else { fresh };
        let running_completions: i64 = running
            .iter()
            .filter_map(|c| int(&placement.members[*c], "/spec/completions"))
            .sum();
        let parallel_plan = planner::plan(&preferences, parallelism, placement.clusters, &none, &none, &key);
        match completions {
            Some(total) => {
                let targets = if running.is_empty() && !finished {
                    placement.clusters.to_vec()
                } else {
                    fresh
                };
                let plan = planner::plan(
                    &preferences,
                    (total - running_completions).max(0),
                    &targets,
                    &none,
                    &none,
                    &key,
                );
                for (cluster, part) in plan.replicas {
                    if part > 0 {
                        let p = parallel_plan
                            .replicas
                            .get(&cluster)
                            .copied()
                            .unwrap_or(0)
                            .clamp(1, part);
                        split.insert(cluster, (p, Some(part)));
                    }
                }
            }
            None => {
                for (cluster, p) in &parallel_plan.replicas {
                    if *p > 0 && fresh.contains(cluster) {
                        split.insert(cluster.clone(), (*p, None));
                    }
                }
            }
        }
        for cluster in running {
            let member = &placement.members[cluster];
            // A running part keeps at least one pod at a time, or it would never finish.
            let p = parallel_plan.replicas.get(cluster).copied().unwrap_or(0).max(1);
            split.insert(cluster.clone(), (p, int(member, "/spec/completions")));
        }
        let desired = render_job(object);
        split
            .into_iter()
            .map(|(cluster, (parallelism, completions))| {
                let mut copy = desired.clone();
                copy["spec"]["parallelism"] = json!(parallelism);
                if let Some(completions) = completions {
                    copy["spec"]["completions"] = json!(completions);
                }
                (cluster, copy)
            })
            .collect()
    }

    fn for_update(&self, desired: Value, current: &Value) -> Value {
        // Only what a Job lets change: its labels, annotations and the mutable spec fields.
        let mut update = current.clone();
        update["metadata"]["labels"] = desired["metadata"]["labels"].clone();
        if let Some(annotations) = desired.pointer("/metadata/annotations") {
            update["metadata"]["annotations"] = annotations.clone();
        }
        for field in [
            "parallelism",
            "suspend",
            "activeDeadlineSeconds",
            "ttlSecondsAfterFinished",
        ] {
            match desired.pointer(&format!("/spec/{field}")) {
                Some(value) => update["spec"][field] = value.clone(),
                None => {
                    if let Some(spec) = update.get_mut("spec").and_then(Value::as_object_mut) {
                        spec.remove(field);
                    }
                }
            }
        }
        if let Some(status) = update.as_object_mut() {
            status.remove("status");
        }
        update
    }

    fn aggregate(&self, _object: &Value, members: &BTreeMap<String, Value>, applied: bool) -> Option<Value> {
        let sum = |field: &str| {
            members
                .values()
                .filter_map(|m| int(m, &format!("/status/{field}")))
                .sum::<i64>()
        };
        let times = |field: &str| -> Vec<String> {
            let mut times: Vec<String> = members
                .values()
                .filter_map(|m| {
                    m.pointer(&format!("/status/{field}"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .collect();
            times.sort();
            times
        };
        let condition = |member: &Value, type_: &str| {
            member
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c["type"] == type_ && c["status"] == "True")
                        .cloned()
                })
        };
        let mut status = json!({
            "active": sum("active"),
            "succeeded": sum("succeeded"),
            "failed": sum("failed"),
            "ready": sum("ready"),
        });
        if let Some(start) = times("startTime").first() {
            status["startTime"] = json!(start);
        }
        let failed: Vec<Value> = members.values().filter_map(|m| condition(m, "Failed")).collect();
        let complete: Vec<Value> = members
            .values()
            .filter_map(|m| condition(m, "Complete"))
            .collect();
        if let Some(failure) = failed
            .into_iter()
            .max_by_key(|c| c["lastTransitionTime"].as_str().map(str::to_owned))
        {
            status["conditions"] = json!([failure]);
        } else if applied && !members.is_empty() && complete.len() == members.len() {
            let latest = complete
                .into_iter()
                .max_by_key(|c| c["lastTransitionTime"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut criteria = latest.clone();
            criteria["type"] = json!("SuccessCriteriaMet");
            status["conditions"] = json!([criteria, latest]);
            if let Some(end) = times("completionTime").last() {
                status["completionTime"] = json!(end);
            }
        }
        Some(status)
    }
}

/// A Job as members get it: without the selector and pod labels the federation generated from its own uid (each
/// member generates its own, and refuses a generated selector it did not make).
fn render_job(object: &Value) -> Value {
    let mut copy = render(object);
    if copy.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return copy;
    }
    if let Some(spec) = copy.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("selector");
    }
    if let Some(labels) = copy
        .pointer_mut("/spec/template/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        for generated in GENERATED_LABELS {
            labels.remove(*generated);
        }
    }
    copy
}

/// The pod labels kube adds to a Job whose selector it generates.
const GENERATED_LABELS: &[&str] = &[
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "job-name",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn place(
        object: &Value,
        clusters: &[&str],
        members: &BTreeMap<String, Value>,
    ) -> BTreeMap<String, (i64, Option<i64>)> {
        let clusters: Vec<String> = clusters.iter().map(|c| (*c).to_owned()).collect();
        Jobs::new()
            .place(
                object,
                &Placement {
                    clusters: &clusters,
                    members,
                    autoscaled: false,
                },
            )
            .into_iter()
            .map(|(c, o)| {
                (
                    c,
                    (
                        o["spec"]["parallelism"].as_i64().unwrap(),
                        o["spec"]["completions"].as_i64(),
                    ),
                )
            })
            .collect()
    }

    #[test]
    fn completions_and_parallelism_split_together() {
        let job = json!({"metadata": {"name": "pi", "namespace": "default"}, "spec": {"completions": 12, "parallelism": 6}});
        let split = place(&job, &["a", "b", "c"], &BTreeMap::new());
        assert_eq!(split.values().map(|(_, c)| c.unwrap()).sum::<i64>(), 12);
        assert_eq!(split.values().map(|(p, _)| *p).sum::<i64>(), 6);
        assert!(split.values().all(|(p, c)| *p == 2 && *c == Some(4)), "{split:?}");
    }

    #[test]
    fn v1s_two_cluster_vector() {
        let job = json!({"metadata": {"name": "job1", "namespace": "default"}, "spec": {"completions": 7, "parallelism": 2}});
        let split = place(&job, &["k8s-1", "k8s-2"], &BTreeMap::new());
        assert_eq!(split["k8s-1"], (1, Some(4)));
        assert_eq!(split["k8s-2"], (1, Some(3)));
    }

    #[test]
    fn running_parts_keep_their_completions() {
        let job = json!({"metadata": {"name": "pi", "namespace": "default"}, "spec": {"completions": 12, "parallelism": 6}});
        let members = BTreeMap::from([(
            "a".to_owned(),
            json!({"spec": {"completions": 6, "parallelism": 3}}),
        )]);
        let split = place(&job, &["a", "b", "c"], &members);
        assert_eq!(split["a"].1, Some(6));
        assert_eq!(split.values().map(|(_, c)| c.unwrap()).sum::<i64>(), 12);
    }

    #[test]
    fn running_parts_never_drop_to_zero_pods() {
        let job = json!({"metadata": {"name": "pi", "namespace": "default"}, "spec": {"completions": 4, "parallelism": 1}});
        let members = BTreeMap::from([
            (
                "a".to_owned(),
                json!({"spec": {"completions": 2, "parallelism": 1}}),
            ),
            (
                "b".to_owned(),
                json!({"spec": {"completions": 2, "parallelism": 1}}),
            ),
        ]);
        let split = place(&job, &["a", "b"], &members);
        assert!(split.values().all(|(p, _)| *p >= 1), "{split:?}");
    }

    #[test]
    fn finished_jobs_get_no_new_parts() {
        let job = json!({"metadata": {"name": "pi", "namespace": "default"}, "spec": {"completions": 4, "parallelism": 2},
            "status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        let members = BTreeMap::from([(
            "a".to_owned(),
            json!({"spec": {"completions": 2, "parallelism": 1}}),
        )]);
        let split = place(&job, &["a", "b"], &members);
        assert_eq!(
            split.keys().collect::<Vec<_>>(),
            vec!["a"],
            "b's finished part was removed by its TTL"
        );
    }

    #[test]
    fn generated_selectors_stay_in_the_federation() {
        let generated = json!({"metadata": {"name": "pi"}, "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
            "template": {"metadata": {"labels": {"app": "pi", "controller-uid": "u", "job-name": "pi",
                "batch.kubernetes.io/controller-uid": "u", "batch.kubernetes.io/job-name": "pi"}}}}});
        let copy = render_job(&generated);
        assert!(copy["spec"].get("selector").is_none());
        assert_eq!(
            copy["spec"]["template"]["metadata"]["labels"],
            json!({"app": "pi"})
        );
        let manual = json!({"metadata": {"name": "pi"}, "spec": {"manualSelector": true,
            "selector": {"matchLabels": {"job-name": "pi"}},
            "template": {"metadata": {"labels": {"job-name": "pi"}}}}});
        assert_eq!(render_job(&manual)["spec"], manual["spec"]);
    }

    #[test]
    fn updates_touch_only_mutable_fields() {
        let current = json!({"metadata": {"name": "pi", "labels": {"a": "1"}, "resourceVersion": "5"},
            "spec": {"completions": 4, "parallelism": 2, "selector": {"matchLabels": {"x": "y"}}, "template": {"t": 1}},
            "status": {"active": 2}});
        let desired = json!({"metadata": {"name": "pi", "labels": {"a": "2"}}, "spec": {"completions": 5, "parallelism": 3, "template": {"t": 2}}});
        let update = Jobs::new().for_update(desired, &current);
        assert_eq!(update["spec"]["completions"], 4);
        assert_eq!(update["spec"]["parallelism"], 3);
        assert_eq!(update["spec"]["template"], json!({"t": 1}));
        assert_eq!(update["metadata"]["labels"]["a"], "2");
        assert!(update.get("status").is_none());
    }
}
