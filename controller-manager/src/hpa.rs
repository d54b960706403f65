//! HorizontalPodAutoscalers: the federation's `minReplicas`/`maxReplicas` distributed over the selected
//! members, as federation v1's HPA controller did it but without its bugs (random map order, swapped status
//! fields, division by zero with no cluster): the members' maxima always add up to the federation's, each
//! member's minimum is at least 1, and one unit of maximum moves per sync from a member with headroom to a
//! member whose HPA runs at its maximum. While an HPA exists, the member HPAs own their targets' replica counts.

use std::collections::BTreeMap;

use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::adapters::{Adapter, Placement, key_of, observed_generation, render};
use crate::planner::{self, Preferences};

#[derive(Debug)]
pub struct Autoscalers {
    resource: ApiResource,
}

impl Autoscalers {
    pub fn new() -> Self {
        Autoscalers {
            resource: ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("autoscaling", "v2", "HorizontalPodAutoscaler"),
                "horizontalpodautoscalers",
            ),
        }
    }
}

impl Default for Autoscalers {
    fn default() -> Self {
        Self::new()
    }
}

fn int(value: &Value, pointer: &str) -> Option<i64> {
    value.pointer(pointer).and_then(Value::as_i64)
}

/// Each member's `(min, max)`.
pub fn distribute(
    min: i64,
    max: i64,
    clusters: &[String],
    members: &BTreeMap<String, Value>,
    key: &str,
) -> BTreeMap<String, (i64, i64)> {
    let none = BTreeMap::new();
    let even = Preferences::default();
    // Each member HPA needs a maximum of at least 1: with fewer units than clusters, the first get one each.
    let maxima = planner::plan(&even, max, clusters, &none, &none, key).replicas;
    let mut bounds: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let current: Option<BTreeMap<String, i64>> = clusters
        .iter()
        .map(|c| Some((c.clone(), int(members.get(c)?, "/spec/maxReplicas")?)))
        .collect();
    let mut maxima = match current {
        // Every member has an HPA whose maxima already add up: keep them (and move toward demand below).
        Some(current) if current.values().sum::<i64>() == max && current.values().all(|m| *m >= 1) => current,
        _ => maxima,
    };
    // Toward demand: one unit from a member with headroom to one that runs at its maximum.
    let at_max = |c: &String| {
        members.get(c).is_some_and(|m| {
            let current = int(m, "/status/currentReplicas").unwrap_or(0);
            current > 0 && Some(current) == int(m, "/spec/maxReplicas")
        })
    };
    let has_headroom = |c: &String, maxima: &BTreeMap<String, i64>| {
        members.get(c).is_some_and(|m| {
            let desired = int(m, "/status/desiredReplicas").unwrap_or(0);
            let floor = int(m, "/spec/minReplicas").unwrap_or(1).max(1);
            desired < maxima[c] && maxima[c] > floor
        })
    };
    if let (Some(needy), Some(donor)) = (
        clusters.iter().find(|c| at_max(c)),
        clusters.iter().find(|c| !at_max(c) && has_headroom(c, &maxima)),
    ) {
        let (needy, donor) = (needy.clone(), donor.clone());
        *maxima.get_mut(&donor).expect("planned") -= 1;
        *maxima.get_mut(&needy).expect("planned") += 1;
    }
    let hosts: Vec<String> = clusters
        .iter()
        .filter(|c| maxima.get(*c).copied().unwrap_or(0) > 0)
        .cloned()
        .collect();
    let minima = planner::plan(&even, min, &hosts, &none, &none, key).replicas;
    for cluster in hosts {
        let max = maxima[&cluster];
        let min = minima.get(&cluster).copied().unwrap_or(0).clamp(1, max);
        bounds.insert(cluster, (min, max));
    }
    bounds
}

impl Adapter for Autoscalers {
    fn resource(&self) -> &ApiResource {
        &self.resource
    }

    fn namespaced(&self) -> bool {
        true
    }

    fn place(&self, object: &Value, placement: &Placement<'_>) -> BTreeMap<String, Value> {
        let min = int(object, "/spec/minReplicas").unwrap_or(1).max(1);
        let max = int(object, "/spec/maxReplicas").unwrap_or(min).max(min);
        let desired = render(object);
        distribute(min, max, placement.clusters, placement.members, &key_of(object))
            .into_iter()
            .map(|(cluster, (min, max))| {
                let mut copy = desired.clone();
                copy["spec"]["minReplicas"] = json!(min);
                copy["spec"]["maxReplicas"] = json!(max);
                (cluster, copy)
            })
            .collect()
    }

    fn aggregate(&self, object: &Value, members: &BTreeMap<String, Value>, applied: bool) -> Option<Value> {
        let sum = |field: &str| {
            members
                .values()
                .filter_map(|m| int(m, &format!("/status/{field}")))
                .sum::<i64>()
        };
        let mut status = json!({
            "currentReplicas": sum("currentReplicas"),
            "desiredReplicas": sum("desiredReplicas"),
            "observedGeneration": observed_generation(object, members, applied),
        });
        let latest = members
            .values()
            .filter_map(|m| m.pointer("/status/lastScaleTime").and_then(Value::as_str))
            .max();
        if let Some(latest) = latest {
            status["lastScaleTime"] = json!(latest);
        }
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn maxima_add_up_and_minima_are_at_least_one() {
        let bounds = distribute(3, 12, &names(&["a", "b", "c"]), &BTreeMap::new(), "default/web");
        assert_eq!(bounds.values().map(|(_, max)| max).sum::<i64>(), 12);
        assert!(bounds.values().all(|(min, max)| *min >= 1 && min <= max));
        assert!(bounds.values().map(|(min, _)| min).sum::<i64>() >= 3);
    }

    #[test]
    fn fewer_units_than_clusters_leave_some_without_an_hpa() {
        let bounds = distribute(1, 2, &names(&["a", "b", "c"]), &BTreeMap::new(), "default/web");
        assert_eq!(bounds.len(), 2);
        assert!(
            distribute(1, 5, &[], &BTreeMap::new(), "x").is_empty(),
            "no cluster, no division by zero"
        );
    }

    #[test]
    fn a_member_at_its_maximum_gets_one_more_from_one_with_headroom() {
        let member = |max: i64, current: i64, desired: i64| json!({"spec": {"minReplicas": 1, "maxReplicas": max}, "status": {"currentReplicas": current, "desiredReplicas": desired}});
        let members = BTreeMap::from([
            ("a".to_owned(), member(5, 5, 5)),
            ("b".to_owned(), member(5, 1, 1)),
        ]);
        let bounds = distribute(2, 10, &names(&["a", "b"]), &members, "default/web");
        assert_eq!(bounds["a"].1, 6);
        assert_eq!(bounds["b"].1, 4);
    }
}
