//! What a real cluster's controllers and kubelets would report for each workload, as pure functions of the
//! object, how long its current generation has existed, and the member's settings.
//!
//! Every function returns the whole `status` the simulator wants (a JSON merge patch: `null` removes a field,
//! as a zero count is omitted by kube) and when to look again if the object is still on its way.

use std::time::Duration;

use serde_json::{Map, Value, json};

/// How to look again at an object whose status will change with time.
pub const CAPACITY_RETRY: Duration = Duration::from_secs(2);

/// The simulator's verdict on one object.
#[derive(Debug, PartialEq)]
pub struct Simulated {
    pub status: Value,
    /// When to compute the status again (the object is still starting, or waits for capacity).
    pub recheck: Option<Duration>,
}

/// What the simulator knows about an object besides the object itself.
#[derive(Clone, Copy, Debug)]
pub struct Clock<'a> {
    /// How long the object's current generation has been seen.
    pub elapsed: Duration,
    /// How long pods take to become ready.
    pub ready_delay: Duration,
    /// RFC 3339, for condition times.
    pub now: &'a str,
}

impl Clock<'_> {
    fn started(&self) -> bool {
        self.elapsed >= self.ready_delay
    }

    fn remaining(&self) -> Duration {
        self.ready_delay.saturating_sub(self.elapsed)
    }
}

fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

/// A count as kube writes it: omitted (here: removed) when zero.
fn count(n: i64) -> Value {
    if n == 0 { Value::Null } else { json!(n) }
}

/// A condition, keeping the transition time of the current one when its status has not changed.
fn condition(
    current: &Value,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
    update_time: bool,
) -> Value {
    let previous = current
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == type_));
    let unchanged = previous.is_some_and(|p| p["status"] == status);
    let transition = match previous {
        Some(p) if unchanged => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let mut condition = json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    });
    if update_time {
        let same_reason =
            previous.is_some_and(|p| unchanged && p["reason"] == reason && p["message"] == message);
        condition["lastUpdateTime"] = match previous {
            Some(p) if same_reason => p["lastUpdateTime"].clone(),
            _ => json!(now),
        };
    }
    condition
}

/// `maxUnavailable` of a rolling update, as an absolute number of `replicas` (25% rounded down by default).
fn max_unavailable(object: &Value, replicas: i64) -> i64 {
    match object.pointer("/spec/strategy/rollingUpdate/maxUnavailable") {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(percent)) => percent
            .trim_end_matches('%')
            .parse::<i64>()
            .map(|p| replicas * p / 100)
            .unwrap_or(0),
        _ if object.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate") => replicas,
        _ => replicas * 25 / 100,
    }
}

/// The ready pods of an object's previous status, kept while a new generation starts (pods already running
/// stay ready when a Deployment scales).
fn previous_ready(object: &Value, field: &str) -> i64 {
    int(object, &format!("/status/{field}")).unwrap_or(0)
}

/// A Deployment (`deployment == true`) or ReplicaSet of `spec.replicas` pods, of which at most `grant` may be
/// ready (the member's capacity).
pub fn replicated(object: &Value, clock: Clock<'_>, grant: i64, deployment: bool) -> Simulated {
    let replicas = int(object, "/spec/replicas").unwrap_or(1).max(0);
    let ready = if clock.started() {
        replicas.min(grant)
    } else {
        previous_ready(object, "readyReplicas").min(replicas).min(grant)
    };
    let mut status = json!({
        "observedGeneration": int(object, "/metadata/generation").unwrap_or(1),
        "replicas": count(replicas),
        "readyReplicas": count(ready),
        "availableReplicas": count(ready),
    });
    let recheck = if ready < replicas {
        Some(if clock.started() {
            CAPACITY_RETRY
        } else {
            clock.remaining()
        })
    } else {
        None
    };
    if deployment {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        status["updatedReplicas"] = count(replicas);
        status["unavailableReplicas"] = count(replicas - ready);
        let available = ready >= replicas - max_unavailable(object, replicas);
        let (progress_reason, progress_message) = if ready == replicas {
            (
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{name}\" has successfully progressed."),
            )
        } else {
            (
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{name}\" is progressing."),
            )
        };
        status["conditions"] = json!([
            if available {
                condition(
                    object,
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                    clock.now,
                    true,
                )
            } else {
                condition(
                    object,
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                    clock.now,
                    true,
                )
            },
            condition(
                object,
                "Progressing",
                "True",
                progress_reason,
                &progress_message,
                clock.now,
                true
            ),
        ]);
    } else {
        status["fullyLabeledReplicas"] = count(replicas);
    }
    Simulated { status, recheck }
}

/// A StatefulSet of `spec.replicas` pods, ready after the ready delay (not counted against the member's
/// capacity, which is for Deployments and ReplicaSets), at the revision of its generation.
pub fn stateful_set(object: &Value, clock: Clock<'_>) -> Simulated {
    let mut simulated = replicated(object, clock, i64::MAX, false);
    let status = &mut simulated.status;
    if let Some(fields) = status.as_object_mut() {
        fields.remove("fullyLabeledReplicas");
    }
    let replicas = int(object, "/spec/replicas").unwrap_or(1).max(0);
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let revision = format!("{name}-{}", int(object, "/metadata/generation").unwrap_or(1));
    status["currentReplicas"] = count(replicas);
    status["updatedReplicas"] = count(replicas);
    status["currentRevision"] = json!(revision);
    status["updateRevision"] = json!(revision);
    simulated
}

/// A Job: `parallelism` pods at a time, each wave taking the ready delay, until `completions` succeeded.
/// `clock.elapsed` counts from when the Job was first seen.
pub fn job(object: &Value, clock: Clock<'_>) -> Simulated {
    let completions = int(object, "/spec/completions").unwrap_or(1).max(0);
    let parallelism = int(object, "/spec/parallelism").unwrap_or(1).max(0);
    let start_time = object
        .pointer("/status/startTime")
        .cloned()
        .unwrap_or_else(|| json!(clock.now));
    if object.pointer("/spec/suspend") == Some(&Value::Bool(true)) {
        let status = json!({
            "active": Value::Null,
            "ready": 0,
            "conditions": [condition(object, "Suspended", "True", "JobSuspended", "Job suspended", clock.now, false)],
        });
        return Simulated {
            status,
            recheck: None,
        };
    }
    let done_before = previous_ready(object, "succeeded");
    let delay = clock.ready_delay.max(Duration::from_millis(1));
    let waves = (clock.elapsed.as_millis() / delay.as_millis()) as i64;
    let succeeded = (waves * parallelism).min(completions).max(done_before);
    let active = parallelism.min(completions - succeeded);
    let mut status = json!({
        "startTime": start_time,
        "active": count(active),
        "ready": active,
        "terminating": 0,
        "succeeded": count(succeeded),
        "uncountedTerminatedPods": {},
    });
    if succeeded >= completions {
        status["completionTime"] = object
            .pointer("/status/completionTime")
            .cloned()
            .unwrap_or_else(|| json!(clock.now));
        status["conditions"] = json!([
            condition(
                object,
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                clock.now,
                false
            ),
            condition(
                object,
                "Complete",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                clock.now,
                false
            ),
        ]);
        return Simulated {
            status,
            recheck: None,
        };
    }
    let next_wave = delay * (waves as u32 + 1);
    Simulated {
        status,
        recheck: Some(next_wave.saturating_sub(clock.elapsed)),
    }
}

/// A DaemonSet, one pod on each of `nodes` nodes.
pub fn daemon_set(object: &Value, clock: Clock<'_>, nodes: i64) -> Simulated {
    let ready = if clock.started() {
        nodes
    } else {
        previous_ready(object, "numberReady").min(nodes)
    };
    let status = json!({
        "observedGeneration": int(object, "/metadata/generation").unwrap_or(1),
        "desiredNumberScheduled": nodes,
        "currentNumberScheduled": nodes,
        "updatedNumberScheduled": count(nodes),
        "numberMisscheduled": 0,
        "numberReady": ready,
        "numberAvailable": count(ready),
        "numberUnavailable": count(nodes - ready),
    });
    Simulated {
        status,
        recheck: (ready < nodes).then(|| clock.remaining()),
    }
}

/// A HorizontalPodAutoscaler (v2) whose target runs `target_replicas`: it keeps the target within
/// `[minReplicas, maxReplicas]` (returned as the replicas to scale the target to, when it must move).
pub fn horizontal_pod_autoscaler(
    object: &Value,
    target_replicas: Option<i64>,
    now: &str,
) -> (Simulated, Option<i64>) {
    let min = int(object, "/spec/minReplicas").unwrap_or(1).max(1);
    let max = int(object, "/spec/maxReplicas").unwrap_or(min).max(min);
    let Some(current) = target_replicas else {
        let status = json!({
            "currentReplicas": 0,
            "desiredReplicas": 0,
            "conditions": [condition(object, "AbleToScale", "False", "FailedGetScale", "the HPA controller was unable to get the target's current scale", now, false)],
        });
        return (
            Simulated {
                status,
                recheck: Some(CAPACITY_RETRY),
            },
            None,
        );
    };
    let desired = current.clamp(min, max);
    let (limited, reason, message) = if current < min {
        (
            "True",
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )
    } else if current > max {
        (
            "True",
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    } else {
        (
            "False",
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        )
    };
    let mut status = json!({
        "observedGeneration": int(object, "/metadata/generation").unwrap_or(1),
        "currentReplicas": current,
        "desiredReplicas": desired,
        "conditions": [
            condition(object, "AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size", now, false),
            condition(object, "ScalingLimited", limited, reason, message, now, false),
        ],
    });
    let scale = (desired != current).then_some(desired);
    if scale.is_some() {
        status["lastScaleTime"] = json!(now);
    }
    (
        Simulated {
            status,
            recheck: None,
        },
        scale,
    )
}

/// A Service of type LoadBalancer or an Ingress: the load-balancer address `ip` from the member's range (an
/// address already assigned is kept). Other Services have nothing to report.
pub fn load_balanced(object: &Value, ip: &str) -> Option<Simulated> {
    let is_service = object.pointer("/spec/type").is_some() || object.pointer("/spec/ports").is_some();
    let is_ingress = object.pointer("/spec/rules").is_some()
        || object.pointer("/spec/defaultBackend").is_some()
        || object.pointer("/spec/ingressClassName").is_some();
    if is_service
        && !is_ingress
        && object.pointer("/spec/type").and_then(Value::as_str) != Some("LoadBalancer")
    {
        return None;
    }
    if let Some(existing) = object
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        && !existing.is_empty()
    {
        return Some(Simulated {
            status: json!({"loadBalancer": {"ingress": existing}}),
            recheck: None,
        });
    }
    let mut entry = Map::new();
    entry.insert("ip".to_owned(), json!(ip));
    if !is_ingress {
        entry.insert("ipMode".to_owned(), json!("VIP"));
    }
    Some(Simulated {
        status: json!({"loadBalancer": {"ingress": [entry]}}),
        recheck: None,
    })
}

/// Whether `current` already shows every field of the merge patch `desired` (`null` meaning absent).
pub fn shows(current: &Value, desired: &Value) -> bool {
    match (current, desired) {
        (_, Value::Null) => current.is_null(),
        (Value::Object(current), Value::Object(desired)) => desired
            .iter()
            .all(|(key, want)| shows(current.get(key).unwrap_or(&Value::Null), want)),
        _ => current == desired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn clock(elapsed_ms: u64) -> Clock<'static> {
        Clock {
            elapsed: Duration::from_millis(elapsed_ms),
            ready_delay: Duration::from_millis(1000),
            now: NOW,
        }
    }

    fn deployment(replicas: i64) -> Value {
        json!({"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": replicas}})
    }

    #[test]
    fn deployments_become_available_after_the_ready_delay() {
        let starting = replicated(&deployment(4), clock(200), i64::MAX, true);
        assert_eq!(starting.status["replicas"], 4);
        assert_eq!(starting.status["updatedReplicas"], 4);
        assert_eq!(starting.status["availableReplicas"], Value::Null);
        assert_eq!(starting.status["observedGeneration"], 2);
        assert_eq!(starting.status["conditions"][0]["status"], "False");
        assert_eq!(starting.recheck, Some(Duration::from_millis(800)));

        let ready = replicated(&deployment(4), clock(1000), i64::MAX, true);
        assert_eq!(ready.status["readyReplicas"], 4);
        assert_eq!(ready.status["availableReplicas"], 4);
        assert_eq!(ready.status["unavailableReplicas"], Value::Null);
        assert_eq!(ready.status["conditions"][0]["status"], "True");
        assert_eq!(ready.status["conditions"][1]["reason"], "NewReplicaSetAvailable");
        assert_eq!(ready.recheck, None);
    }

    #[test]
    fn capacity_caps_the_ready_pods() {
        let capped = replicated(&deployment(10), clock(5000), 6, true);
        assert_eq!(capped.status["availableReplicas"], 6);
        assert_eq!(capped.status["unavailableReplicas"], 4);
        assert_eq!(
            capped.status["conditions"][0]["status"], "False",
            "6 of 10 is below 75%"
        );
        assert_eq!(capped.recheck, Some(CAPACITY_RETRY));
    }

    #[test]
    fn scaling_keeps_running_pods_ready() {
        let mut object = deployment(5);
        object["status"] = json!({"readyReplicas": 3});
        let scaling = replicated(&object, clock(10), i64::MAX, true);
        assert_eq!(scaling.status["readyReplicas"], 3);
    }

    #[test]
    fn stateful_sets_become_ready_after_the_delay_at_their_generation() {
        let object = json!({"metadata": {"name": "db", "generation": 2}, "spec": {"replicas": 3}});
        let waiting = stateful_set(&object, clock(100));
        assert_eq!(waiting.status["readyReplicas"], Value::Null);
        assert!(waiting.recheck.is_some());
        let ready = stateful_set(&object, clock(5_000));
        assert_eq!(ready.status["readyReplicas"], 3);
        assert_eq!(ready.status["currentRevision"], "db-2");
        assert_eq!(ready.status["updateRevision"], "db-2");
        assert!(ready.status.get("fullyLabeledReplicas").is_none());
    }

    #[test]
    fn replica_sets_have_no_deployment_conditions() {
        let rs = replicated(&deployment(2), clock(2000), i64::MAX, false);
        assert_eq!(rs.status["fullyLabeledReplicas"], 2);
        assert!(rs.status.get("conditions").is_none());
    }

    #[test]
    fn jobs_run_in_waves_of_parallelism_until_complete() {
        let object = json!({"metadata": {"name": "pi"}, "spec": {"completions": 5, "parallelism": 2}});
        let first = job(&object, clock(0));
        assert_eq!(first.status["active"], 2);
        assert_eq!(first.status["succeeded"], Value::Null);
        assert_eq!(first.recheck, Some(Duration::from_millis(1000)));
        let second = job(&object, clock(1500));
        assert_eq!(second.status["succeeded"], 2);
        assert_eq!(second.status["active"], 2);
        let last = job(&object, clock(2000));
        assert_eq!(last.status["succeeded"], 4);
        assert_eq!(last.status["active"], 1);
        let done = job(&object, clock(3000));
        assert_eq!(done.status["succeeded"], 5);
        assert_eq!(done.status["active"], Value::Null);
        assert_eq!(done.status["conditions"][1]["type"], "Complete");
        assert_eq!(done.recheck, None);
    }

    #[test]
    fn hpas_keep_their_target_within_bounds() {
        let hpa = json!({"spec": {"minReplicas": 2, "maxReplicas": 5}});
        let (status, scale) = horizontal_pod_autoscaler(&hpa, Some(8), NOW);
        assert_eq!(scale, Some(5));
        assert_eq!(status.status["desiredReplicas"], 5);
        let (status, scale) = horizontal_pod_autoscaler(&hpa, Some(3), NOW);
        assert_eq!(scale, None);
        assert_eq!(status.status["currentReplicas"], 3);
    }

    #[test]
    fn only_load_balancers_and_ingresses_get_addresses() {
        let cluster_ip = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        assert!(load_balanced(&cluster_ip, "10.0.0.1").is_none());
        let lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        let status = load_balanced(&lb, "10.0.0.1").unwrap().status;
        assert_eq!(status["loadBalancer"]["ingress"][0]["ip"], "10.0.0.1");
        let ingress = json!({"spec": {"rules": [{"host": "a"}]}});
        let status = load_balanced(&ingress, "10.0.0.2").unwrap().status;
        assert_eq!(status["loadBalancer"]["ingress"][0], json!({"ip": "10.0.0.2"}));
    }

    #[test]
    fn conditions_keep_their_transition_time_while_unchanged() {
        let mut object = deployment(1);
        object["status"] = json!({"conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
            "message": "Deployment has minimum availability.", "lastTransitionTime": "2020-01-01T00:00:00Z",
            "lastUpdateTime": "2020-01-01T00:00:00Z"}]});
        let ready = replicated(&object, clock(2000), i64::MAX, true);
        assert_eq!(
            ready.status["conditions"][0]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        assert!(shows(
            &json!({"a": 1, "b": {"c": 2}}),
            &json!({"b": {"c": 2}, "d": null})
        ));
        assert!(!shows(&json!({"a": 1}), &json!({"a": null})));
    }
}
