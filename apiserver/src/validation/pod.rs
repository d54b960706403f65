//! The pod template of workloads, as kube's `ValidatePodTemplateSpec` sees it: containers and their ports,
//! environment, mounts, resources, security contexts and probes; volumes; the pod's security context, affinity,
//! tolerations and topology spread constraints.

use std::collections::BTreeSet;

use serde_json::Value;

use super::names::{
    Requirement, config_key_problems, label_selector, label_value_problems, selector_requirement,
};
use super::{EMPTY, Problems, field_or_empty, is_set, items, protocol, text};
use crate::object::name_problems;

pub(super) fn pod_template(problems: &mut Problems, spec: &Value, restart: &[&str]) {
    let Some(pod) = spec.pointer("/template/spec") else {
        problems.required("spec.template.spec.containers", "");
        return;
    };
    let base = "spec.template.spec";
    let host_users = pod.get("hostUsers") != Some(&Value::Bool(false));
    if let Some(policy) = pod.get("restartPolicy")
        && !restart.iter().any(|r| policy == *r)
    {
        problems.unsupported(&format!("{base}.restartPolicy"), policy, restart);
    }
    if let Some(policy) = pod.get("dnsPolicy").filter(|p| !p.is_null()) {
        const DNS: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
        if !DNS.iter().any(|d| policy == *d) {
            problems.unsupported(&format!("{base}.dnsPolicy"), policy, DNS);
        }
    }
    let containers = pod.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        problems.required(&format!("{base}.containers"), "");
    }
    let mut volume_names = volumes(problems, base, pod);
    // A StatefulSet's claim templates become volumes of its pods.
    let claims = spec
        .get("volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    volume_names
        .extend(claims.filter_map(|claim| Some(claim.pointer("/metadata/name")?.as_str()?.to_owned())));
    let mut names = BTreeSet::new();
    for key in ["initContainers", "containers"] {
        let list = pod.get(key).and_then(Value::as_array).into_iter().flatten();
        for (i, container) in list.enumerate() {
            let path = format!("{base}.{key}[{i}]");
            match container.get("name").filter(|n| !n.is_null()) {
                None => problems.required(&format!("{path}.name"), ""),
                Some(name) => {
                    let text = name.as_str().unwrap_or_default();
                    if text.is_empty() {
                        problems.required(&format!("{path}.name"), "");
                    }
                    for problem in name_problems(text, true).into_iter().filter(|_| !text.is_empty()) {
                        problems.invalid(&format!("{path}.name"), name, &problem);
                    }
                    if !text.is_empty() && !names.insert(text.to_owned()) {
                        problems.duplicate(&format!("{path}.name"), name);
                    }
                }
            }
            container_ports(problems, &path, container);
            env(problems, &path, container);
            env_from(problems, &path, container);
            mounts(problems, &path, container, &volume_names);
            resources(problems, &path, container);
            security_context(problems, &path, container, host_users);
            if key == "containers" {
                for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                    if let Some(found) = container.get(probe).filter(|p| !p.is_null()) {
                        self::probe(
                            problems,
                            &format!("{path}.{probe}"),
                            found,
                            probe != "readinessProbe",
                        );
                    }
                }
            }
        }
    }
    pod_security_context(problems, base, pod);
    affinity(problems, base, pod);
    topology_spread_constraints(problems, base, pod);
    tolerations(problems, base, pod);
}

/// A container's ports: in range, with a supported protocol.
fn container_ports(problems: &mut Problems, path: &str, container: &Value) {
    for (j, port) in items(container, "ports").enumerate() {
        let port_path = format!("{path}.ports[{j}]");
        match port.get("containerPort") {
            Some(value) if !value.is_null() => problems.port(&format!("{port_path}.containerPort"), value),
            _ => problems.required(&format!("{port_path}.containerPort"), ""),
        }
        if let Some(value) = port.get("hostPort").filter(|v| v.as_i64() != Some(0)) {
            problems.port(&format!("{port_path}.hostPort"), value);
        }
        protocol(problems, &format!("{port_path}.protocol"), port);
    }
}

/// The pod's `securityContext`: IDs in range, sysctls, supported policies, valid seccomp, AppArmor and Windows
/// options.
fn pod_security_context(problems: &mut Problems, base: &str, pod: &Value) {
    let Some(context) = pod.get("securityContext").filter(|c| !c.is_null()) else {
        return;
    };
    let path = format!("{base}.securityContext");
    for field in ["fsGroup", "runAsUser", "runAsGroup"] {
        problems.id(&format!("{path}.{field}"), context.get(field));
    }
    for (i, group) in items(context, "supplementalGroups").enumerate() {
        problems.id(&format!("{path}.supplementalGroups[{i}]"), Some(group));
    }
    let enabled = |field: &str| pod.get(field) == Some(&Value::Bool(true));
    if enabled("shareProcessNamespace") && enabled("hostPID") {
        // kube keeps these pod fields in its internal security context, hence the path.
        problems.invalid(
            &format!("{path}.shareProcessNamespace"),
            &Value::Bool(true),
            "ShareProcessNamespace and HostPID cannot both be enabled",
        );
    }
    let mut sysctl_names = BTreeSet::new();
    for (i, sysctl) in items(context, "sysctls").enumerate() {
        let field = format!("{path}.sysctls[{i}].name");
        let name = text(sysctl, "name").unwrap_or_default();
        let shown = Value::String(name.to_owned());
        if name.is_empty() {
            problems.required(&field, "");
        } else if !is_sysctl_name(name) {
            problems.invalid(
                &field,
                &shown,
                "must have at most 253 characters and match regex \
                 ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
            );
        } else if sysctl_names.contains(name) {
            problems.duplicate(&field, &shown);
        }
        match sysctl_namespace(name) {
            Some("net") if enabled("hostNetwork") => {
                problems.invalid(&field, &shown, "may not be specified when 'hostNetwork' is true");
            }
            Some("ipc") if enabled("hostIPC") => {
                problems.invalid(&field, &shown, "may not be specified when 'hostIPC' is true");
            }
            _ => {}
        }
        sysctl_names.insert(name);
    }
    problems.one_of(
        &format!("{path}.fsGroupChangePolicy"),
        context.get("fsGroupChangePolicy"),
        &["Always", "OnRootMismatch"],
    );
    seccomp_profile(problems, &path, context);
    windows_options(problems, &path, context);
    app_armor_profile(problems, &path, context);
    problems.one_of(
        &format!("{path}.supplementalGroupsPolicy"),
        context.get("supplementalGroupsPolicy"),
        &["Merge", "Strict"],
    );
}

/// Segments of `[a-z0-9]([-_a-z0-9]*[a-z0-9])?` joined by `.` or `/`, at most 253 characters.
fn is_sysctl_name(name: &str) -> bool {
    name.len() <= 253
        && name.split(['.', '/']).all(|segment| {
            let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            ends(segment.chars().next())
                && ends(segment.chars().last())
                && segment
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'))
        })
}

/// The kernel namespace a sysctl belongs to, `net` or `ipc`, if it is namespaced (names may use `/` for `.`).
fn sysctl_namespace(name: &str) -> Option<&'static str> {
    let dotted = if name.find(['.', '/']).is_some_and(|i| name[i..].starts_with('/')) {
        name.chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect()
    } else {
        name.to_owned()
    };
    if dotted.starts_with("net.") {
        Some("net")
    } else if dotted == "kernel.sem"
        || ["kernel.shm", "kernel.msg", "fs.mqueue."]
            .iter()
            .any(|p| dotted.starts_with(p))
    {
        Some("ipc")
    } else {
        None
    }
}

const REQUIRED_TERMS: &str = "requiredDuringSchedulingIgnoredDuringExecution";
const PREFERRED_TERMS: &str = "preferredDuringSchedulingIgnoredDuringExecution";

/// The pod's `affinity`: node selector terms, pod (anti-)affinity terms, weights.
fn affinity(problems: &mut Problems, base: &str, pod: &Value) {
    let Some(affinity) = pod.get("affinity").filter(|a| !a.is_null()) else {
        return;
    };
    let path = format!("{base}.affinity");
    if let Some(node) = affinity.get("nodeAffinity").filter(|n| !n.is_null()) {
        let path = format!("{path}.nodeAffinity");
        if let Some(required) = node.get(REQUIRED_TERMS).filter(|r| !r.is_null()) {
            let terms_path = format!("{path}.{REQUIRED_TERMS}.nodeSelectorTerms");
            if items(required, "nodeSelectorTerms").next().is_none() {
                problems.required(&terms_path, "must have at least one node selector term");
            }
            for (i, term) in items(required, "nodeSelectorTerms").enumerate() {
                node_selector_term(problems, &format!("{terms_path}[{i}]"), term, Requirement::Node);
            }
        }
        for (i, term) in items(node, PREFERRED_TERMS).enumerate() {
            let at = format!("{path}.{PREFERRED_TERMS}[{i}]");
            problems.weight(&format!("{at}.weight"), term);
            let preference = term.get("preference").unwrap_or(&Value::Null);
            node_selector_term(
                problems,
                &format!("{at}.preference"),
                preference,
                Requirement::PreferredNode,
            );
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let Some(pod_affinity) = affinity.get(kind).filter(|a| !a.is_null()) else {
            continue;
        };
        let path = format!("{path}.{kind}");
        for (i, term) in items(pod_affinity, REQUIRED_TERMS).enumerate() {
            pod_affinity_term(problems, &format!("{path}.{REQUIRED_TERMS}[{i}]"), term);
        }
        for (i, weighted) in items(pod_affinity, PREFERRED_TERMS).enumerate() {
            let at = format!("{path}.{PREFERRED_TERMS}[{i}]");
            problems.weight(&format!("{at}.weight"), weighted);
            let term = weighted.get("podAffinityTerm").unwrap_or(&Value::Null);
            pod_affinity_term(problems, &format!("{at}.podAffinityTerm"), term);
        }
    }
}

/// A node selector term: label requirements, and field requirements on `metadata.name` only.
fn node_selector_term(problems: &mut Problems, path: &str, term: &Value, kind: Requirement) {
    for (j, requirement) in items(term, "matchExpressions").enumerate() {
        selector_requirement(
            problems,
            &format!("{path}.matchExpressions[{j}]"),
            requirement,
            kind,
        );
    }
    for (j, requirement) in items(term, "matchFields").enumerate() {
        let at = format!("{path}.matchFields[{j}]");
        let values: Vec<&Value> = items(requirement, "values").collect();
        let operator = field_or_empty(requirement, "operator");
        if operator == "In" || operator == "NotIn" {
            if values.len() != 1 {
                problems.required(
                    &format!("{at}.values"),
                    "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                );
            }
        } else {
            problems.invalid(
                &format!("{at}.operator"),
                operator,
                "not a valid selector operator",
            );
        }
        let key = field_or_empty(requirement, "key");
        if key != "metadata.name" {
            problems.invalid(&format!("{at}.key"), key, "not a valid field selector key");
            continue;
        }
        for (k, value) in values.iter().enumerate() {
            for problem in name_problems(value.as_str().unwrap_or_default(), false) {
                problems.invalid(&format!("{at}.values[{k}]"), value, &problem);
            }
        }
    }
}

/// A pod (anti-)affinity term: valid selectors, namespaces and label keys, a topology key.
fn pod_affinity_term(problems: &mut Problems, path: &str, term: &Value) {
    let selector = term.get("labelSelector").filter(|s| !s.is_null());
    for (field, found) in [
        ("labelSelector", selector),
        ("namespaceSelector", term.get("namespaceSelector")),
    ] {
        if let Some(found) = found.filter(|s| !s.is_null()) {
            label_selector(problems, &format!("{path}.{field}"), found);
        }
    }
    for namespace in items(term, "namespaces") {
        for problem in name_problems(namespace.as_str().unwrap_or_default(), true) {
            // kube names the list in the singular here.
            problems.invalid(&format!("{path}.namespace"), namespace, &problem);
        }
    }
    let match_keys: Vec<&str> = items(term, "matchLabelKeys").filter_map(Value::as_str).collect();
    let mismatch_keys: Vec<&str> = items(term, "mismatchLabelKeys")
        .filter_map(Value::as_str)
        .collect();
    for (field, keys) in [
        ("matchLabelKeys", &match_keys),
        ("mismatchLabelKeys", &mismatch_keys),
    ] {
        if keys.is_empty() {
            continue;
        }
        if selector.is_none() {
            problems.forbidden(
                &format!("{path}.{field}"),
                "must not be specified when labelSelector is not set",
            );
            continue;
        }
        for (i, key) in keys.iter().enumerate() {
            problems.qualified_name(&format!("{path}.{field}[{i}]"), key);
        }
    }
    if let Some(selector) = selector {
        let labels = selector.get("matchLabels").and_then(Value::as_object);
        let mut selector_keys: BTreeSet<&str> =
            labels.into_iter().flatten().map(|(k, _)| k.as_str()).collect();
        for expression in items(selector, "matchExpressions") {
            let key = text(expression, "key").unwrap_or_default();
            if let Some(i) = match_keys.iter().rposition(|k| *k == key)
                && selector_keys.contains(key)
            {
                // kube indexes the term's path here, not `matchLabelKeys`.
                problems.invalid(
                    &format!("{path}[{i}]"),
                    &Value::String(key.to_owned()),
                    "exists in both matchLabelKeys and labelSelector",
                );
            }
            selector_keys.insert(key);
        }
    }
    for (i, key) in match_keys.iter().enumerate() {
        if mismatch_keys.contains(key) {
            problems.invalid(
                &format!("{path}.matchLabelKeys[{i}]"),
                &Value::String((*key).to_owned()),
                "exists in both matchLabelKeys and mismatchLabelKeys",
            );
        }
    }
    let topology_key = text(term, "topologyKey").unwrap_or_default();
    let topology_path = format!("{path}.topologyKey");
    if topology_key.is_empty() {
        problems.required(&topology_path, "can not be empty");
    }
    problems.qualified_name(&topology_path, topology_key);
}

/// The pod's `topologySpreadConstraints`: a positive skew, a topology key, a supported action given once per
/// key, `minDomains` only to keep pods unscheduled, supported policies, valid label keys and selector.
fn topology_spread_constraints(problems: &mut Problems, base: &str, pod: &Value) {
    let constraints: Vec<&Value> = items(pod, "topologySpreadConstraints").collect();
    for (i, constraint) in constraints.iter().enumerate() {
        let at = format!("{base}.topologySpreadConstraints[{i}]");
        let max_skew = constraint
            .get("maxSkew")
            .filter(|m| !m.is_null())
            .cloned()
            .unwrap_or(Value::from(0));
        if max_skew.as_i64().is_none_or(|skew| skew <= 0) {
            problems.invalid(&format!("{at}.maxSkew"), &max_skew, "must be greater than zero");
        }
        let topology_key = text(constraint, "topologyKey").unwrap_or_default();
        if topology_key.is_empty() {
            problems.required(&format!("{at}.topologyKey"), "can not be empty");
        }
        let action = field_or_empty(constraint, "whenUnsatisfiable");
        const ACTIONS: &[&str] = &["DoNotSchedule", "ScheduleAnyway"];
        if !ACTIONS.iter().any(|a| action == *a) {
            problems.unsupported(&format!("{at}.whenUnsatisfiable"), action, ACTIONS);
        }
        let action = action.as_str().unwrap_or_default();
        // kube reports the first of a repeated pair.
        let repeated = constraints[i + 1..].iter().any(|later| {
            text(later, "topologyKey").unwrap_or_default() == topology_key
                && text(later, "whenUnsatisfiable").unwrap_or_default() == action
        });
        if repeated {
            problems.duplicate(
                &format!("{at}.{{topologyKey, whenUnsatisfiable}}"),
                &Value::String(format!("{{{topology_key}, {action}}}")),
            );
        }
        if let Some(min_domains) = constraint.get("minDomains").filter(|m| !m.is_null()) {
            let field = format!("{at}.minDomains");
            if min_domains.as_i64().is_none_or(|n| n <= 0) {
                problems.invalid(&field, min_domains, "must be greater than zero");
            }
            if action != "DoNotSchedule" {
                let detail =
                    format!("can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {action}");
                problems.invalid(&field, min_domains, &detail);
            }
        }
        for policy in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
            problems.one_of(
                &format!("{at}.{policy}"),
                constraint.get(policy),
                &["Honor", "Ignore"],
            );
        }
        let selector = constraint.get("labelSelector").filter(|s| !s.is_null());
        let keys: Vec<&Value> = items(constraint, "matchLabelKeys").collect();
        if !keys.is_empty() {
            let keys_path = format!("{at}.matchLabelKeys");
            let selector_keys: BTreeSet<&str> = match selector {
                Some(selector) => {
                    let labels = selector.get("matchLabels").and_then(Value::as_object);
                    let expressions =
                        items(selector, "matchExpressions").map(|e| text(e, "key").unwrap_or_default());
                    labels
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| k.as_str())
                        .chain(expressions)
                        .collect()
                }
                None => {
                    problems.forbidden(&keys_path, "must not be specified when labelSelector is not set");
                    BTreeSet::new()
                }
            };
            for (j, key) in keys.iter().enumerate() {
                let key_text = key.as_str().unwrap_or_default();
                problems.qualified_name(&format!("{keys_path}[{j}]"), key_text);
                if selector_keys.contains(key_text) {
                    problems.invalid(
                        &format!("{keys_path}[{j}]"),
                        key,
                        "exists in both matchLabelKeys and labelSelector",
                    );
                }
            }
        }
        if let Some(selector) = selector {
            label_selector(problems, &format!("{at}.labelSelector"), selector);
        }
    }
}

/// The pod's `tolerations`: a qualified key, or none with `Exists`; an operator with the value it allows; a
/// supported effect, `NoExecute` when `tolerationSeconds` is set.
fn tolerations(problems: &mut Problems, base: &str, pod: &Value) {
    for (i, toleration) in items(pod, "tolerations").enumerate() {
        let at = format!("{base}.tolerations[{i}]");
        let key = text(toleration, "key").unwrap_or_default();
        let operator = field_or_empty(toleration, "operator");
        let effect = field_or_empty(toleration, "effect");
        let value = field_or_empty(toleration, "value");
        let value_text = value.as_str().unwrap_or_default();
        if !key.is_empty() {
            problems.qualified_name(&format!("{at}.key"), key);
        } else if operator != "Exists" {
            problems.invalid(
                &format!("{at}.operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            );
        }
        if is_set(toleration, "tolerationSeconds") && effect != "NoExecute" {
            problems.invalid(
                &format!("{at}.effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            );
        }
        // kube reports a bad value at the operator.
        match operator.as_str().unwrap_or_default() {
            "Equal" | "" => {
                let value_problems = label_value_problems(value_text);
                if !value_problems.is_empty() {
                    problems.invalid(&format!("{at}.operator"), value, &value_problems.join(";"));
                }
            }
            "Exists" => {
                if !value_text.is_empty() {
                    problems.invalid(
                        &format!("{at}.operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    );
                }
            }
            _ => problems.unsupported(&format!("{at}.operator"), operator, &["Equal", "Exists"]),
        }
        if effect != "" {
            problems.one_of(
                &format!("{at}.effect"),
                Some(effect),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            );
        }
    }
}

/// The sources a volume may name; exactly one of them.
const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

/// A pod's volumes: named uniquely as DNS labels, each with exactly one source. Returns their names.
fn volumes(problems: &mut Problems, base: &str, pod: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let list = pod.get("volumes").and_then(Value::as_array).into_iter().flatten();
    for (i, volume) in list.enumerate() {
        let path = format!("{base}.volumes[{i}]");
        match text(volume, "name") {
            None => problems.required(&format!("{path}.name"), ""),
            Some(name) => {
                for problem in name_problems(name, true) {
                    problems.invalid(&format!("{path}.name"), &volume["name"], &problem);
                }
                if !names.insert(name.to_owned()) {
                    problems.duplicate(&format!("{path}.name"), &volume["name"]);
                }
            }
        }
        exactly_one(problems, &path, volume, VOLUME_SOURCES, "volume type");
    }
    names
}

/// Exactly one of `fields` set in `value` (a volume's source, a probe's handler), as kube words it: the first
/// is kept and each further one is forbidden.
fn exactly_one(problems: &mut Problems, path: &str, value: &Value, fields: &[&str], what: &str) {
    let mut set = fields.iter().filter(|field| is_set(value, field));
    if set.next().is_none() {
        problems.required(path, &format!("must specify a {what}"));
    }
    for field in set {
        problems.forbidden(
            &format!("{path}.{field}"),
            &format!("may not specify more than 1 {what}"),
        );
    }
}

/// A container's volume mounts: each of a volume of the pod, at a path given once.
fn mounts(problems: &mut Problems, path: &str, container: &Value, volumes: &BTreeSet<String>) {
    let mut paths = BTreeSet::new();
    let list = container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for (i, mount) in list.enumerate() {
        let at = format!("{path}.volumeMounts[{i}]");
        match text(mount, "name") {
            None => problems.required(&format!("{at}.name"), ""),
            Some(name) if !volumes.contains(name) => {
                problems.not_found(&format!("{at}.name"), &mount["name"])
            }
            Some(_) => {}
        }
        match text(mount, "mountPath") {
            None => problems.required(&format!("{at}.mountPath"), ""),
            Some(mount_path) if !paths.insert(mount_path.to_owned()) => {
                problems.invalid(&format!("{at}.mountPath"), &mount["mountPath"], "must be unique");
            }
            Some(_) => {}
        }
    }
}

/// kube 1.33's environment variable names (`RelaxedEnvironmentVariableValidation`, on by default): printable
/// ASCII other than `=`.
fn env_name_problems(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if name.is_empty() {
        problems.push("environment variable name must be non-empty".to_owned());
    }
    if name.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        problems.push(
            "a valid environment variable name must consist only of printable ASCII characters other than '='"
                .to_owned(),
        );
    }
    problems
}

/// A container's `env`: named, each `valueFrom` with exactly one source and no `value` beside it.
fn env(problems: &mut Problems, path: &str, container: &Value) {
    for (i, var) in items(container, "env").enumerate() {
        let at = format!("{path}.env[{i}]");
        match text(var, "name") {
            None => problems.required(&format!("{at}.name"), ""),
            Some(name) => {
                for problem in env_name_problems(name) {
                    problems.invalid(&format!("{at}.name"), &var["name"], &problem);
                }
            }
        }
        if let Some(from) = var.get("valueFrom").filter(|f| !f.is_null()) {
            value_from(
                problems,
                &format!("{at}.valueFrom"),
                from,
                text(var, "value").is_some(),
            );
        }
    }
}

/// The fields a pod's environment may name through `fieldRef` (kube's `validEnvDownwardAPIFieldPathExpressions`).
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The pod fields the downward API knows in v1 (kube's `ConvertDownwardAPIFieldLabel`); some are for volumes only.
const POD_FIELD_LABELS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The container resources an environment variable may name through `resourceFieldRef`, besides huge pages.
const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn value_from(problems: &mut Problems, path: &str, from: &Value, has_value: bool) {
    let mut sources = 0;
    if let Some(field_ref) = from.get("fieldRef").filter(|r| !r.is_null()) {
        sources += 1;
        env_field_ref(problems, &format!("{path}.fieldRef"), field_ref);
    }
    if let Some(resource_ref) = from.get("resourceFieldRef").filter(|r| !r.is_null()) {
        sources += 1;
        let resource_path = format!("{path}.resourceFieldRef.resource");
        match text(resource_ref, "resource") {
            None => problems.required(&resource_path, ""),
            Some(resource)
                if !RESOURCE_FIELD_PATHS.contains(&resource)
                    && !resource.starts_with("requests.hugepages-")
                    && !resource.starts_with("limits.hugepages-") =>
            {
                problems.unsupported(&resource_path, &resource_ref["resource"], RESOURCE_FIELD_PATHS);
            }
            Some(_) => {}
        }
    }
    for key in ["configMapKeyRef", "secretKeyRef"] {
        if let Some(selector) = from.get(key).filter(|s| !s.is_null()) {
            sources += 1;
            key_selector(problems, &format!("{path}.{key}"), selector);
        }
    }
    if sources == 0 {
        problems.invalid(
            path,
            &EMPTY,
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        );
    } else if has_value {
        problems.invalid(path, &EMPTY, "may not be specified when `value` is not empty");
    } else if sources > 1 {
        problems.invalid(
            path,
            &EMPTY,
            "may not have more than one field specified at a time",
        );
    }
}

/// kube's `SplitMaybeSubscriptedPath`: `metadata.labels['app']` is (`metadata.labels`, `app`).
fn subscripted(field_path: &str) -> Option<(&str, &str)> {
    let (path, subscript) = field_path.strip_suffix("']")?.split_once("['")?;
    (!path.is_empty()).then_some((path, subscript))
}

/// An environment variable's `fieldRef`: a v1 pod field that the environment may name, or a label or annotation.
fn env_field_ref(problems: &mut Problems, path: &str, field_ref: &Value) {
    let Some(version) = text(field_ref, "apiVersion") else {
        problems.required(&format!("{path}.apiVersion"), "");
        return;
    };
    let Some(field_path) = text(field_ref, "fieldPath") else {
        problems.required(&format!("{path}.fieldPath"), "");
        return;
    };
    let converted = if version != "v1" {
        Err(format!("unsupported pod version: {version}"))
    } else if let Some((label, _)) = subscripted(field_path) {
        if matches!(label, "metadata.annotations" | "metadata.labels") {
            Ok(field_path)
        } else {
            Err(format!("field label does not support subscript: {field_path}"))
        }
    } else if field_path == "spec.host" {
        // Old v1 clients' name for `spec.nodeName`.
        Ok("spec.nodeName")
    } else if POD_FIELD_LABELS.contains(&field_path) {
        Ok(field_path)
    } else {
        Err(format!("field label not supported: {field_path}"))
    };
    let converted = match converted {
        Ok(converted) => converted,
        Err(error) => {
            problems.invalid(
                &format!("{path}.fieldPath"),
                &field_ref["fieldPath"],
                &format!("error converting fieldPath: {error}"),
            );
            return;
        }
    };
    match subscripted(converted) {
        // Annotation keys are matched without regard to case.
        Some(("metadata.annotations", key)) => problems.qualified_name(path, &key.to_lowercase()),
        Some((_, key)) => problems.qualified_name(path, key),
        None if !ENV_FIELD_PATHS.contains(&converted) => problems.unsupported(
            &format!("{path}.fieldPath"),
            &Value::String(converted.to_owned()),
            ENV_FIELD_PATHS,
        ),
        None => {}
    }
}

/// A `configMapKeyRef` or `secretKeyRef`: the name of an object (checked even when empty, as kube does) and a
/// config key.
fn key_selector(problems: &mut Problems, path: &str, selector: &Value) {
    let name = field_or_empty(selector, "name");
    for problem in name_problems(name.as_str().unwrap_or_default(), false) {
        problems.invalid(&format!("{path}.name"), name, &problem);
    }
    match text(selector, "key") {
        None => problems.required(&format!("{path}.key"), ""),
        Some(key) => {
            for problem in config_key_problems(key) {
                problems.invalid(&format!("{path}.key"), &selector["key"], &problem);
            }
        }
    }
}

/// A container's `envFrom`: exactly one of a ConfigMap or a Secret, named; a prefix that makes valid names.
fn env_from(problems: &mut Problems, path: &str, container: &Value) {
    let list_path = format!("{path}.envFrom");
    for (i, source) in items(container, "envFrom").enumerate() {
        let at = format!("{list_path}[{i}]");
        if let Some(prefix) = text(source, "prefix") {
            for problem in env_name_problems(prefix) {
                problems.invalid(&format!("{at}.prefix"), &source["prefix"], &problem);
            }
        }
        let mut sources = 0;
        for key in ["configMapRef", "secretRef"] {
            let Some(reference) = source.get(key).filter(|r| !r.is_null()) else {
                continue;
            };
            sources += 1;
            let name_path = format!("{at}.{key}.name");
            match text(reference, "name") {
                None => problems.required(&name_path, ""),
                Some(name) => {
                    // kube checks these names as it checks generateName prefixes: a trailing `-` passes.
                    for problem in name_problems(&mask_trailing_dash(name), false) {
                        problems.invalid(&name_path, &reference["name"], &problem);
                    }
                }
            }
        }
        // kube reports these on the list, not on the entry.
        if sources == 0 {
            problems.invalid(
                &list_path,
                &EMPTY,
                "must specify one of: `configMapRef` or `secretRef`",
            );
        } else if sources > 1 {
            problems.invalid(
                &list_path,
                &EMPTY,
                "may not have more than one field specified at a time",
            );
        }
    }
}

/// kube's `maskTrailingDash`, verbatim: a name ending in `-` loses its last two characters for an `a`.
fn mask_trailing_dash(name: &str) -> String {
    match name.strip_suffix('-') {
        Some(rest) if !rest.is_empty() => {
            let mut masked: String = rest.chars().take(rest.chars().count() - 1).collect();
            masked.push('a');
            masked
        }
        _ => name.to_owned(),
    }
}

/// A container's `securityContext`: IDs in range, a supported `procMount`, valid seccomp, AppArmor and Windows
/// options, and no privilege escalation turned off beside what implies it.
fn security_context(problems: &mut Problems, path: &str, container: &Value, host_users: bool) {
    let Some(context) = container.get("securityContext").filter(|c| !c.is_null()) else {
        return;
    };
    let path = format!("{path}.securityContext");
    for field in ["runAsUser", "runAsGroup"] {
        problems.id(&format!("{path}.{field}"), context.get(field));
    }
    if let Some(proc_mount) = context.get("procMount").filter(|p| !p.is_null()) {
        let field = format!("{path}.procMount");
        problems.one_of(&field, Some(proc_mount), &["Default", "Unmasked"]);
        if host_users && proc_mount == "Unmasked" {
            problems.invalid(&field, proc_mount, "`hostUsers` must be false to use `Unmasked`");
        }
    }
    seccomp_profile(problems, &path, context);
    if context.get("allowPrivilegeEscalation") == Some(&Value::Bool(false)) {
        if context.get("privileged") == Some(&Value::Bool(true)) {
            problems.invalid(
                &path,
                context,
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            );
        }
        let capabilities = context.get("capabilities").unwrap_or(&Value::Null);
        for _ in items(capabilities, "add").filter(|c| *c == "CAP_SYS_ADMIN") {
            problems.invalid(
                &path,
                context,
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            );
        }
    }
    windows_options(problems, &path, context);
    app_armor_profile(problems, &path, context);
}

/// kube's `validateLocalDescendingPath`: a relative path that does not climb out.
fn local_descending_path(problems: &mut Problems, field: &str, value: &Value) {
    let path = value.as_str().unwrap_or_default();
    if path.starts_with('/') {
        problems.invalid(field, value, "must be a relative path");
    }
    if path.split('/').any(|part| part == "..") {
        problems.invalid(field, value, "must not contain '..'");
    }
}

/// The `seccompProfile` of a pod's or a container's security context (at `path`).
fn seccomp_profile(problems: &mut Problems, path: &str, context: &Value) {
    let Some(profile) = context.get("seccompProfile").filter(|p| !p.is_null()) else {
        return;
    };
    let path = format!("{path}.seccompProfile");
    let kind = text(profile, "type").unwrap_or_default();
    match kind {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => problems.required(
            &format!("{path}.type"),
            "type is required when seccompProfile is set",
        ),
        _ => problems.unsupported(
            &format!("{path}.type"),
            &profile["type"],
            &["Localhost", "RuntimeDefault", "Unconfined"],
        ),
    }
    let localhost_path = format!("{path}.localhostProfile");
    match profile.get("localhostProfile").filter(|p| !p.is_null()) {
        None if kind == "Localhost" => {
            problems.required(&localhost_path, "must be set when seccomp type is Localhost");
        }
        Some(localhost) if kind == "Localhost" => local_descending_path(problems, &localhost_path, localhost),
        Some(_) => problems.invalid(
            &localhost_path,
            profile,
            "can only be set when seccomp type is Localhost",
        ),
        None => {}
    }
}

/// The `appArmorProfile` of a pod's or a container's security context (at `path`).
fn app_armor_profile(problems: &mut Problems, path: &str, context: &Value) {
    let Some(profile) = context.get("appArmorProfile").filter(|p| !p.is_null()) else {
        return;
    };
    let path = format!("{path}.appArmorProfile");
    let localhost_path = format!("{path}.localhostProfile");
    let localhost = profile.get("localhostProfile").filter(|p| !p.is_null());
    match text(profile, "type").unwrap_or_default() {
        "Localhost" => match localhost {
            None => problems.required(&localhost_path, "must be set when AppArmor type is Localhost"),
            Some(value) => {
                let name = value.as_str().unwrap_or_default();
                if name.trim() != name {
                    problems.invalid(&localhost_path, value, "must not be padded with whitespace");
                } else if name.is_empty() {
                    problems.required(&localhost_path, "must be set when AppArmor type is Localhost");
                }
                // PATH_MAX - 1.
                if name.len() > 4095 {
                    problems.too_long(&localhost_path, 4095);
                }
            }
        },
        "RuntimeDefault" | "Unconfined" => {
            if let Some(value) = localhost {
                problems.invalid(
                    &localhost_path,
                    value,
                    "can only be set when AppArmor type is Localhost",
                );
            }
        }
        "" => problems.required(
            &format!("{path}.type"),
            "type is required when appArmorProfile is set",
        ),
        _ => problems.unsupported(
            &format!("{path}.type"),
            &profile["type"],
            &["Localhost", "RuntimeDefault", "Unconfined"],
        ),
    }
}

/// The `windowsOptions` of a pod's or a container's security context (at `path`).
fn windows_options(problems: &mut Problems, path: &str, context: &Value) {
    let Some(options) = context.get("windowsOptions").filter(|o| !o.is_null()) else {
        return;
    };
    let path = format!("{path}.windowsOptions");
    if let Some(name) = options.get("gmsaCredentialSpecName").filter(|n| n.is_string()) {
        for problem in name_problems(name.as_str().unwrap_or_default(), false) {
            problems.invalid(&format!("{path}.gmsaCredentialSpecName"), name, &problem);
        }
    }
    if let Some(spec) = options.get("gmsaCredentialSpec").filter(|s| s.is_string()) {
        let length = spec.as_str().unwrap_or_default().len();
        let field = format!("{path}.gmsaCredentialSpec");
        if length == 0 {
            problems.invalid(&field, spec, "gmsaCredentialSpec cannot be an empty string");
        } else if length > 64 * 1024 {
            problems.invalid(&field, spec, "gmsaCredentialSpec size must be under 64 KiB");
        }
    }
    if let Some(user) = options.get("runAsUserName").filter(|u| u.is_string()) {
        for problem in windows_user_problems(user.as_str().unwrap_or_default()) {
            problems.invalid(&format!("{path}.runAsUserName"), user, problem);
        }
    }
}

/// A Windows `DOMAIN\USER` or `USER`: a NetBIOS or DNS domain under 256 characters, a user of at most 104
/// characters that is not only dots and spaces and has none of `"/\:;|=,+*?<>@[]`.
fn windows_user_problems(name: &str) -> Vec<&'static str> {
    if name.is_empty() {
        return vec!["runAsUserName cannot be an empty string"];
    }
    if name.chars().any(|c| c.is_ascii_control()) {
        return vec!["runAsUserName cannot contain control characters"];
    }
    let (domain, user) = match name.split('\\').collect::<Vec<_>>().as_slice() {
        [user] => (None, *user),
        [domain, user] => (Some(*domain), *user),
        _ => return vec!["runAsUserName cannot contain more than one backslash"],
    };
    let mut problems = Vec::new();
    if domain.is_some_and(|d| d.len() >= 256) {
        problems.push("runAsUserName's Domain length must be under 256 characters");
    }
    let netbios = |domain: &str| {
        const RESERVED: &str = "\\/:*?\"<>|";
        let count = domain.chars().count();
        (1..=15).contains(&count) && !domain.starts_with('.') && !domain.chars().any(|c| RESERVED.contains(c))
    };
    let dns = |domain: &str| {
        domain.split('.').all(|label| {
            let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
            label.len() <= 63
                && ends(label.chars().next())
                && ends(label.chars().last())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    };
    if domain.is_some_and(|d| !netbios(d) && !dns(d)) {
        problems.push("runAsUserName's Domain doesn't match the NetBios nor the DNS format");
    }
    if user.is_empty() {
        problems.push("runAsUserName's User cannot be empty");
    } else if user.len() > 104 {
        problems.push("runAsUserName's User length must not be longer than 104 characters");
    }
    if !user.is_empty() && user.chars().all(|c| c == '.' || c == ' ') {
        problems.push("runAsUserName's User cannot contain only periods or spaces");
    }
    if user.chars().any(|c| "\"/\\:;|=,+*?<>@[]".contains(c)) {
        problems.push("runAsUserName's User cannot contain the following characters: \"/\\:;|=,+*?<>@[]");
    }
    problems
}

/// A probe: exactly one handler, non-negative timings; liveness and startup probes succeed once.
fn probe(problems: &mut Problems, path: &str, probe: &Value, success_once: bool) {
    exactly_one(
        problems,
        path,
        probe,
        &["exec", "httpGet", "tcpSocket", "grpc"],
        "handler type",
    );
    for field in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        if let Some(value) = probe.get(field) {
            problems.at_least(&format!("{path}.{field}"), value, 0);
        }
    }
    if success_once
        && let Some(value) = probe.get("successThreshold")
        && value.as_i64().is_some_and(|n| n != 1)
    {
        problems.invalid(&format!("{path}.successThreshold"), value, "must be 1");
    }
    if let Some(port) = probe
        .pointer("/httpGet/port")
        .or_else(|| probe.pointer("/tcpSocket/port"))
    {
        let handler = if is_set(probe, "httpGet") {
            "httpGet"
        } else {
            "tcpSocket"
        };
        if port.is_number() {
            problems.port(&format!("{path}.{handler}.port"), port);
        }
    }
}

/// A container's resources: no negative amount, and no request above its limit.
fn resources(problems: &mut Problems, path: &str, container: &Value) {
    let Some(resources) = container.get("resources") else {
        return;
    };
    let amounts = |key: &str| -> Vec<(String, Value, f64)> {
        resources
            .get(key)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| Some((name.clone(), value.clone(), quantity(value)?)))
            .collect()
    };
    let limits = amounts("limits");
    for key in ["limits", "requests"] {
        for (name, value, amount) in amounts(key) {
            let field = format!("{path}.resources.{key}[{name}]");
            if amount < 0.0 {
                problems.invalid(&field, &value, "must be greater than or equal to 0");
            } else if key == "requests"
                && let Some((_, limit_value, limit)) =
                    limits.iter().find(|(limit_name, _, _)| *limit_name == name)
                && amount > *limit
            {
                let limit_text = limit_value
                    .as_str()
                    .map_or_else(|| limit_value.to_string(), str::to_owned);
                problems.invalid(
                    &field,
                    &value,
                    &format!("must be less than or equal to {name} limit of {limit_text}"),
                );
            }
        }
    }
}

/// A quantity's amount (`500m` is 0.5, `1Gi` 2^30), for comparisons; `None` if it is not one.
fn quantity(value: &Value) -> Option<f64> {
    let text = match value {
        Value::Number(n) => return n.as_f64(),
        Value::String(text) => text.as_str(),
        _ => return None,
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => 10f64.powi(exponent.strip_prefix(['e', 'E'])?.parse().ok()?),
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests {
    use super::super::names::{QUALIFIED_NAME, qualified_name_problems};
    use super::super::tests::deployment;
    use super::super::validate;
    use super::*;
    use serde_json::json;

    /// The causes of a Deployment whose pod template has `pod` set in its spec and `container` in its one
    /// container, as (reason, field, message) with the fields relative to `spec.template.spec`.
    fn template_causes(pod: Value, container: Value) -> Vec<(&'static str, String, String)> {
        let mut object = deployment(json!({"app": "web"}), json!([{"name": "web", "image": "nginx"}]));
        let spec = &mut object["spec"]["template"]["spec"];
        for (key, value) in pod.as_object().expect("pod fields") {
            spec[key.as_str()] = value.clone();
        }
        for (key, value) in container.as_object().expect("container fields") {
            spec["containers"][0][key.as_str()] = value.clone();
        }
        let resource = flotilla_api::resources::RESOURCES
            .iter()
            .find(|r| r.plural == "deployments")
            .expect("served");
        crate::defaults::apply(&mut object, resource);
        validate(&object, None, resource)
            .into_iter()
            .map(|c| {
                let field = c.field.strip_prefix("spec.template.spec.").unwrap_or(&c.field);
                (c.kind, field.to_owned(), c.message)
            })
            .collect()
    }

    fn cause(kind: &'static str, field: &str, message: &str) -> (&'static str, String, String) {
        (kind, field.to_owned(), message.to_owned())
    }

    const INVALID: &str = "FieldValueInvalid";
    const REQUIRED: &str = "FieldValueRequired";
    const UNSUPPORTED: &str = "FieldValueNotSupported";
    const FORBIDDEN: &str = "FieldValueForbidden";
    const DUPLICATE: &str = "FieldValueDuplicate";

    #[test]
    fn names_keys_and_values_follow_kube() {
        let name_part = format!("name part {QUALIFIED_NAME}");
        let subdomain = &name_problems("Example.com", false)[0];
        let cases: &[(&str, Vec<String>)] = &[
            ("app", vec![]),
            ("example.com/App_1.x", vec![]),
            (
                "",
                vec!["name part must be non-empty".to_owned(), name_part.clone()],
            ),
            ("/app", vec!["prefix part must be non-empty".to_owned()]),
            ("Example.com/app", vec![format!("prefix part {subdomain}")]),
            ("bad key", vec![name_part.clone()]),
            (
                &"x".repeat(64),
                vec!["name part must be no more than 63 characters".to_owned()],
            ),
            (
                "a/b/c",
                vec![format!(
                    "a qualified name {QUALIFIED_NAME} with an optional DNS subdomain prefix and '/' (e.g. \
                     'example.com/MyName')"
                )],
            ),
        ];
        for (name, expect) in cases {
            assert_eq!(&qualified_name_problems(name), expect, "{name:?}");
        }
        assert_eq!(label_value_problems(""), Vec::<String>::new());
        assert_eq!(label_value_problems("My_value.1"), Vec::<String>::new());
        assert!(label_value_problems("-x")[0].starts_with("a valid label must be an empty string"));
        assert_eq!(
            label_value_problems(&"x".repeat(64)),
            ["must be no more than 63 characters"]
        );
        assert_eq!(config_key_problems("."), ["must not be '.'"]);
        assert_eq!(config_key_problems(".."), ["must not be '..'"]);
        assert_eq!(config_key_problems("..data"), ["must not start with '..'"]);
        assert!(config_key_problems("a b")[0].starts_with("a valid config key"));
        assert_eq!(env_name_problems("MY VAR.1-x"), Vec::<String>::new());
        assert_eq!(
            env_name_problems(""),
            ["environment variable name must be non-empty"]
        );
        let relaxed = "a valid environment variable name must consist only of printable ASCII characters other than '='";
        assert_eq!(env_name_problems("A=B"), [relaxed]);
        assert_eq!(env_name_problems("café"), [relaxed]);
        assert_eq!(mask_trailing_dash("creds-"), "creda");
        assert_eq!(mask_trailing_dash("-"), "-");
        assert_eq!(mask_trailing_dash("creds"), "creds");
    }

    #[test]
    fn sysctl_names_and_windows_users_follow_kube() {
        assert!(is_sysctl_name("net.ipv4.ip_local_port_range"));
        assert!(is_sysctl_name("net/ipv4/conf/eno2.100/rp_filter"));
        assert!(!is_sysctl_name("Net.core"));
        assert!(!is_sysctl_name("net..core"));
        assert_eq!(sysctl_namespace("net.core.somaxconn"), Some("net"));
        assert_eq!(sysctl_namespace("net/ipv4/ip_forward"), Some("net"));
        assert_eq!(sysctl_namespace("kernel.shm_rmid_forced"), Some("ipc"));
        assert_eq!(sysctl_namespace("kernel.msgmax"), Some("ipc"));
        assert_eq!(sysctl_namespace("kernel.sem"), Some("ipc"));
        assert_eq!(sysctl_namespace("fs.mqueue.msg_max"), Some("ipc"));
        assert_eq!(sysctl_namespace("vm.swappiness"), None);
        let cases: &[(&str, &[&str])] = &[
            ("web", &[]),
            ("CONTOSO\\web", &[]),
            ("corp.example.com\\web", &[]),
            ("", &["runAsUserName cannot be an empty string"]),
            ("we\tb", &["runAsUserName cannot contain control characters"]),
            (
                "a\\b\\c",
                &["runAsUserName cannot contain more than one backslash"],
            ),
            (
                "bad/domain\\web",
                &["runAsUserName's Domain doesn't match the NetBios nor the DNS format"],
            ),
            ("CONTOSO\\", &["runAsUserName's User cannot be empty"]),
            (
                ". .",
                &["runAsUserName's User cannot contain only periods or spaces"],
            ),
            (
                "we:b",
                &["runAsUserName's User cannot contain the following characters: \"/\\:;|=,+*?<>@[]"],
            ),
        ];
        for (name, expect) in cases {
            assert_eq!(&windows_user_problems(name), expect, "{name:?}");
        }
    }

    #[test]
    fn a_valid_pod_template_with_every_covered_field_has_no_problems() {
        let pod = json!({
            "hostUsers": false,
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000],
                "fsGroupChangePolicy": "OnRootMismatch", "supplementalGroupsPolicy": "Strict",
                "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"},
                "appArmorProfile": {"type": "RuntimeDefault"},
                "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"},
                    {"name": "kernel.shm_rmid_forced", "value": "0"}]},
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
                        "matchExpressions": [
                            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-west-1a"]},
                            {"key": "cpus", "operator": "Gt", "values": ["4"]}],
                        "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["node-1"]}]}]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1,
                        "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["any value!"]}]}}]},
                "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["cache"]}]},
                    "namespaces": ["shop"], "matchLabelKeys": ["pod-template-hash"],
                    "topologyKey": "topology.kubernetes.io/zone"}]},
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
                    "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "namespaceSelector": {},
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "web"}}}}]}},
            "tolerations": [{"operator": "Exists"},
                {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"},
                {"key": "example.com/gpu", "effect": "PreferNoSchedule"},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": 300}],
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
                    "minDomains": 3, "nodeAffinityPolicy": "Honor", "nodeTaintsPolicy": "Ignore",
                    "labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["pod-template-hash"]},
                {"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}],
            "initContainers": [{"name": "init", "image": "busybox", "env": [{"name": "MODE", "value": "init"}],
                "securityContext": {"runAsNonRoot": true, "runAsUser": 0}}],
        });
        let container = json!({
            "env": [
                {"name": "PLAIN", "value": "1"},
                {"name": "relaxed name.1-x", "value": "kube 1.33 allows it"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.host"}}},
                {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['Example.com/Team']"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                {"name": "PAGES", "valueFrom": {"resourceFieldRef": {"resource": "requests.hugepages-2Mi"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "web-config", "key": "mode.conf"}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "web", "key": "TOKEN", "optional": true}}}],
            "envFrom": [{"configMapRef": {"name": "web-config"}}, {"prefix": "DB_", "secretRef": {"name": "db-"}}],
            "securityContext": {"allowPrivilegeEscalation": false, "privileged": false, "procMount": "Unmasked",
                "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}, "readOnlyRootFilesystem": true,
                "seccompProfile": {"type": "RuntimeDefault"},
                "appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-web"},
                "windowsOptions": {"gmsaCredentialSpecName": "webapp", "runAsUserName": "CONTOSO\\web"}},
        });
        assert_eq!(template_causes(pod, container), vec![]);
    }

    #[test]
    fn security_contexts() {
        let pod = json!({"shareProcessNamespace": true, "hostPID": true, "securityContext": {
            "runAsUser": -1, "fsGroup": 2_147_483_648_i64, "supplementalGroups": [5, -3],
            "fsGroupChangePolicy": "Sometimes", "supplementalGroupsPolicy": "Loose"}});
        let context = json!({"runAsGroup": -2, "procMount": "Unmasked", "allowPrivilegeEscalation": false,
            "privileged": true, "capabilities": {"add": ["CAP_SYS_ADMIN"]}});
        let c = "containers[0].securityContext";
        let range = "must be between 0 and 2147483647, inclusive";
        assert_eq!(
            template_causes(pod, json!({"securityContext": context})),
            [
                cause(
                    INVALID,
                    &format!("{c}.runAsGroup"),
                    &format!("Invalid value: -2: {range}")
                ),
                cause(
                    INVALID,
                    &format!("{c}.procMount"),
                    "Invalid value: \"Unmasked\": `hostUsers` must be false to use `Unmasked`"
                ),
                cause(
                    INVALID,
                    c,
                    &format!(
                        "Invalid value: {context}: cannot set `allowPrivilegeEscalation` to false and `privileged` \
                         to true"
                    )
                ),
                cause(
                    INVALID,
                    c,
                    &format!(
                        "Invalid value: {context}: cannot set `allowPrivilegeEscalation` to false and \
                         `capabilities.Add` CAP_SYS_ADMIN"
                    )
                ),
                cause(
                    INVALID,
                    "securityContext.fsGroup",
                    &format!("Invalid value: 2147483648: {range}")
                ),
                cause(
                    INVALID,
                    "securityContext.runAsUser",
                    &format!("Invalid value: -1: {range}")
                ),
                cause(
                    INVALID,
                    "securityContext.supplementalGroups[1]",
                    &format!("Invalid value: -3: {range}")
                ),
                cause(
                    INVALID,
                    "securityContext.shareProcessNamespace",
                    "Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled"
                ),
                cause(
                    UNSUPPORTED,
                    "securityContext.fsGroupChangePolicy",
                    "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnRootMismatch\""
                ),
                cause(
                    UNSUPPORTED,
                    "securityContext.supplementalGroupsPolicy",
                    "Unsupported value: \"Loose\": supported values: \"Merge\", \"Strict\""
                ),
            ]
        );
        // Without the host's user namespace a container may unmask /proc; unknown mounts are refused.
        let pod = json!({"hostUsers": false, "initContainers": [{"name": "init", "image": "busybox",
            "securityContext": {"procMount": "Raw"}}]});
        assert_eq!(
            template_causes(pod, json!({"securityContext": {"procMount": "Unmasked"}})),
            [cause(
                UNSUPPORTED,
                "initContainers[0].securityContext.procMount",
                "Unsupported value: \"Raw\": supported values: \"Default\", \"Unmasked\""
            )]
        );
    }

    #[test]
    fn seccomp_app_armor_and_windows_options() {
        let unconfined = json!({"type": "Unconfined", "localhostProfile": "audit.json"});
        let pod = json!({"securityContext": {"seccompProfile": unconfined,
            "appArmorProfile": {"type": "Localhost", "localhostProfile": " web"},
            "windowsOptions": {"gmsaCredentialSpecName": "Web_App", "gmsaCredentialSpec": ""}}});
        let container = json!({"securityContext": {"seccompProfile": {"type": "Localhost"},
            "appArmorProfile": {"type": "RuntimeDefault", "localhostProfile": "web"},
            "windowsOptions": {"runAsUserName": "a\\b\\c"}}});
        let c = "containers[0].securityContext";
        let subdomain = &name_problems("Web_App", false)[0];
        assert_eq!(
            template_causes(pod, container),
            [
                cause(
                    REQUIRED,
                    &format!("{c}.seccompProfile.localhostProfile"),
                    "Required value: must be set when seccomp type is Localhost"
                ),
                cause(
                    INVALID,
                    &format!("{c}.windowsOptions.runAsUserName"),
                    "Invalid value: \"a\\\\b\\\\c\": runAsUserName cannot contain more than one backslash"
                ),
                cause(
                    INVALID,
                    &format!("{c}.appArmorProfile.localhostProfile"),
                    "Invalid value: \"web\": can only be set when AppArmor type is Localhost"
                ),
                cause(
                    INVALID,
                    "securityContext.seccompProfile.localhostProfile",
                    &format!("Invalid value: {unconfined}: can only be set when seccomp type is Localhost")
                ),
                cause(
                    INVALID,
                    "securityContext.windowsOptions.gmsaCredentialSpecName",
                    &format!("Invalid value: \"Web_App\": {subdomain}")
                ),
                cause(
                    INVALID,
                    "securityContext.windowsOptions.gmsaCredentialSpec",
                    "Invalid value: \"\": gmsaCredentialSpec cannot be an empty string"
                ),
                cause(
                    INVALID,
                    "securityContext.appArmorProfile.localhostProfile",
                    "Invalid value: \" web\": must not be padded with whitespace"
                ),
            ]
        );
        let pod = json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "/x/../y"},
            "appArmorProfile": {"type": "Localhost", "localhostProfile": "p".repeat(4096)}}});
        let container =
            json!({"securityContext": {"seccompProfile": {"type": "Default"}, "appArmorProfile": {}}});
        assert_eq!(
            template_causes(pod, container),
            [
                cause(
                    UNSUPPORTED,
                    &format!("{c}.seccompProfile.type"),
                    "Unsupported value: \"Default\": supported values: \"Localhost\", \"RuntimeDefault\", \
                     \"Unconfined\""
                ),
                cause(
                    REQUIRED,
                    &format!("{c}.appArmorProfile.type"),
                    "Required value: type is required when appArmorProfile is set"
                ),
                cause(
                    INVALID,
                    "securityContext.seccompProfile.localhostProfile",
                    "Invalid value: \"/x/../y\": must be a relative path"
                ),
                cause(
                    INVALID,
                    "securityContext.seccompProfile.localhostProfile",
                    "Invalid value: \"/x/../y\": must not contain '..'"
                ),
                cause(
                    "FieldValueTooLong",
                    "securityContext.appArmorProfile.localhostProfile",
                    "Too long: may not be more than 4095 bytes"
                ),
            ]
        );
    }

    #[test]
    fn sysctls_are_valid_unique_and_kept_off_shared_host_namespaces() {
        let pod = json!({"hostNetwork": true, "securityContext": {"sysctls": [
            {"name": "net.core.somaxconn", "value": "1024"},
            {"name": "kernel.shm_rmid_forced", "value": "1"},
            {"name": "kernel.shm_rmid_forced", "value": "0"},
            {"name": "Kernel.Bad", "value": "1"},
            {"name": "", "value": "1"},
            {"name": "net/ipv4/ip_forward", "value": "1"}]}});
        let s = "securityContext.sysctls";
        assert_eq!(
            template_causes(pod, json!({})),
            [
                cause(
                    INVALID,
                    &format!("{s}[0].name"),
                    "Invalid value: \"net.core.somaxconn\": may not be specified when 'hostNetwork' is true"
                ),
                cause(
                    DUPLICATE,
                    &format!("{s}[2].name"),
                    "Duplicate value: \"kernel.shm_rmid_forced\""
                ),
                cause(
                    INVALID,
                    &format!("{s}[3].name"),
                    "Invalid value: \"Kernel.Bad\": must have at most 253 characters and match regex \
                     ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$"
                ),
                cause(REQUIRED, &format!("{s}[4].name"), "Required value"),
                cause(
                    INVALID,
                    &format!("{s}[5].name"),
                    "Invalid value: \"net/ipv4/ip_forward\": may not be specified when 'hostNetwork' is true"
                ),
            ]
        );
        let pod = json!({"hostIPC": true, "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}});
        assert_eq!(
            template_causes(pod, json!({})),
            [cause(
                INVALID,
                "securityContext.sysctls[0].name",
                "Invalid value: \"kernel.msgmax\": may not be specified when 'hostIPC' is true"
            )]
        );
    }

    #[test]
    fn node_affinity() {
        let pod = json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
                "matchExpressions": [
                    {"key": "zone", "operator": "In"},
                    {"key": "zone", "operator": "Exists", "values": ["a"]},
                    {"key": "cpus", "operator": "Gt", "values": ["1", "2"]},
                    {"key": "bad key", "operator": "Near", "values": ["bad value!"]}],
                "matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": ["node-1", "node-2"]},
                    {"key": "spec.nodeName", "operator": "Exists"}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {
                "matchExpressions": [{"key": "disk", "operator": "In", "values": ["no label value!"]}]}}]}}});
        let r = "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]";
        let label_value = &label_value_problems("bad value!")[0];
        assert_eq!(
            template_causes(pod, json!({})),
            [
                cause(
                    REQUIRED,
                    &format!("{r}.matchExpressions[0].values"),
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'"
                ),
                cause(
                    FORBIDDEN,
                    &format!("{r}.matchExpressions[1].values"),
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                ),
                cause(
                    REQUIRED,
                    &format!("{r}.matchExpressions[2].values"),
                    "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"
                ),
                cause(
                    INVALID,
                    &format!("{r}.matchExpressions[3].operator"),
                    "Invalid value: \"Near\": not a valid selector operator"
                ),
                cause(
                    INVALID,
                    &format!("{r}.matchExpressions[3].key"),
                    &format!("Invalid value: \"bad key\": name part {QUALIFIED_NAME}")
                ),
                cause(
                    INVALID,
                    &format!("{r}.matchExpressions[3].values[0]"),
                    &format!("Invalid value: \"bad value!\": {label_value}")
                ),
                cause(
                    REQUIRED,
                    &format!("{r}.matchFields[0].values"),
                    "Required value: must be only one value when `operator` is 'In' or 'NotIn' for node field \
                     selector"
                ),
                cause(
                    INVALID,
                    &format!("{r}.matchFields[1].operator"),
                    "Invalid value: \"Exists\": not a valid selector operator"
                ),
                cause(
                    INVALID,
                    &format!("{r}.matchFields[1].key"),
                    "Invalid value: \"spec.nodeName\": not a valid field selector key"
                ),
                cause(
                    INVALID,
                    "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
                    "Invalid value: 0: must be in the range 1-100"
                ),
            ]
        );
        let no_terms = json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}});
        assert_eq!(
            template_causes(no_terms, json!({})),
            [cause(
                REQUIRED,
                "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
                "Required value: must have at least one node selector term"
            )]
        );
    }

    #[test]
    fn pod_affinity_terms() {
        let pod = json!({"affinity": {
            "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]},
                "namespaces": ["Shop"], "matchLabelKeys": ["pod-template-hash"],
                "mismatchLabelKeys": ["pod-template-hash"], "topologyKey": ""}]},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 101,
                "podAffinityTerm": {"namespaceSelector": {"matchLabels": {"team": "-x"}},
                    "mismatchLabelKeys": ["tenant"], "topologyKey": "kubernetes.io/hostname"}}]}}});
        let p = "affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]";
        let a = "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]";
        let label = &name_problems("Shop", true)[0];
        let label_value = &label_value_problems("-x")[0];
        assert_eq!(
            template_causes(pod, json!({})),
            [
                cause(
                    INVALID,
                    &format!("{p}.labelSelector.matchExpressions[0].operator"),
                    "Invalid value: \"Gt\": not a valid selector operator"
                ),
                cause(
                    INVALID,
                    &format!("{p}.namespace"),
                    &format!("Invalid value: \"Shop\": {label}")
                ),
                cause(
                    INVALID,
                    &format!("{p}.matchLabelKeys[0]"),
                    "Invalid value: \"pod-template-hash\": exists in both matchLabelKeys and mismatchLabelKeys"
                ),
                cause(
                    REQUIRED,
                    &format!("{p}.topologyKey"),
                    "Required value: can not be empty"
                ),
                cause(
                    INVALID,
                    &format!("{p}.topologyKey"),
                    "Invalid value: \"\": name part must be non-empty"
                ),
                cause(
                    INVALID,
                    &format!("{p}.topologyKey"),
                    &format!("Invalid value: \"\": name part {QUALIFIED_NAME}")
                ),
                cause(
                    INVALID,
                    &format!("{a}.weight"),
                    "Invalid value: 101: must be in the range 1-100"
                ),
                cause(
                    INVALID,
                    &format!("{a}.podAffinityTerm.namespaceSelector.matchLabels"),
                    &format!("Invalid value: \"-x\": {label_value}")
                ),
                cause(
                    FORBIDDEN,
                    &format!("{a}.podAffinityTerm.mismatchLabelKeys"),
                    "Forbidden: must not be specified when labelSelector is not set"
                ),
            ]
        );
        // A key both in matchLabelKeys and (twice) in the selector: kube indexes the term's path.
        let pod = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
            "matchLabelKeys": ["app"], "topologyKey": "zone"}]}}});
        assert_eq!(
            template_causes(pod, json!({})),
            [cause(
                INVALID,
                &format!("{p}[0]"),
                "Invalid value: \"app\": exists in both matchLabelKeys and labelSelector"
            )]
        );
    }

    #[test]
    fn tolerations_in_kubes_words() {
        let pod = json!({"tolerations": [
            {"operator": "Equal", "value": "x"},
            {"key": "bad key", "operator": "Exists", "value": "x"},
            {"key": "a", "operator": "Near"},
            {"key": "a", "value": "not valid!", "effect": "NoSchedule", "tolerationSeconds": 5},
            {"key": "a", "effect": "Sometimes"},
            {"operator": "Exists"},
            {"key": "b", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]});
        let label_value = &label_value_problems("not valid!")[0];
        assert_eq!(
            template_causes(pod, json!({})),
            [
                cause(
                    INVALID,
                    "tolerations[0].operator",
                    "Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match \
                     all values and all keys\""
                ),
                cause(
                    INVALID,
                    "tolerations[1].key",
                    &format!("Invalid value: \"bad key\": name part {QUALIFIED_NAME}")
                ),
                cause(
                    INVALID,
                    "tolerations[1].operator",
                    "Invalid value: \"x\": value must be empty when `operator` is 'Exists'"
                ),
                cause(
                    UNSUPPORTED,
                    "tolerations[2].operator",
                    "Unsupported value: \"Near\": supported values: \"Equal\", \"Exists\""
                ),
                cause(
                    INVALID,
                    "tolerations[3].effect",
                    "Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set"
                ),
                cause(
                    INVALID,
                    "tolerations[3].operator",
                    &format!("Invalid value: \"not valid!\": {label_value}")
                ),
                cause(
                    UNSUPPORTED,
                    "tolerations[4].effect",
                    "Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \
                     \"NoExecute\""
                ),
            ]
        );
    }

    #[test]
    fn environment_variables() {
        let container = json!({"env": [
            {"name": ""},
            {"name": "A=B", "value": "x"},
            {"name": "B", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "C", "valueFrom": {}},
            {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"},
                "secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "E", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}},
            {"name": "F", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}},
            {"name": "G", "valueFrom": {"fieldRef": {"apiVersion": "v2", "fieldPath": "metadata.name"}}},
            {"name": "H", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['bad key']"}}},
            {"name": "I", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName['x']"}}},
            {"name": "J", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}},
            {"name": "K", "valueFrom": {"configMapKeyRef": {"key": "bad key"}}},
            {"name": "L", "valueFrom": {"secretKeyRef": {"name": "s"}}}]});
        let e = "containers[0].env";
        let subdomain = &name_problems("", false)[0];
        let config_key = &config_key_problems("bad key")[0];
        assert_eq!(
            template_causes(json!({}), container),
            [
                cause(REQUIRED, &format!("{e}[0].name"), "Required value"),
                cause(
                    INVALID,
                    &format!("{e}[1].name"),
                    "Invalid value: \"A=B\": a valid environment variable name must consist only of printable \
                     ASCII characters other than '='"
                ),
                cause(
                    INVALID,
                    &format!("{e}[2].valueFrom"),
                    "Invalid value: \"\": may not be specified when `value` is not empty"
                ),
                cause(
                    INVALID,
                    &format!("{e}[3].valueFrom"),
                    "Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` \
                     or `secretKeyRef`"
                ),
                cause(
                    INVALID,
                    &format!("{e}[4].valueFrom"),
                    "Invalid value: \"\": may not have more than one field specified at a time"
                ),
                cause(
                    UNSUPPORTED,
                    &format!("{e}[5].valueFrom.fieldRef.fieldPath"),
                    "Unsupported value: \"status.phase\": supported values: \"metadata.name\", \
                     \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \
                     \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\""
                ),
                cause(
                    INVALID,
                    &format!("{e}[6].valueFrom.fieldRef.fieldPath"),
                    "Invalid value: \"spec.containers\": error converting fieldPath: field label not supported: \
                     spec.containers"
                ),
                cause(
                    INVALID,
                    &format!("{e}[7].valueFrom.fieldRef.fieldPath"),
                    "Invalid value: \"metadata.name\": error converting fieldPath: unsupported pod version: v2"
                ),
                cause(
                    INVALID,
                    &format!("{e}[8].valueFrom.fieldRef"),
                    &format!("Invalid value: \"bad key\": name part {QUALIFIED_NAME}")
                ),
                cause(
                    INVALID,
                    &format!("{e}[9].valueFrom.fieldRef.fieldPath"),
                    "Invalid value: \"spec.nodeName['x']\": error converting fieldPath: field label does not \
                     support subscript: spec.nodeName['x']"
                ),
                cause(
                    UNSUPPORTED,
                    &format!("{e}[10].valueFrom.resourceFieldRef.resource"),
                    "Unsupported value: \"limits.gpu\": supported values: \"limits.cpu\", \
                     \"limits.ephemeral-storage\", \"limits.memory\", \"requests.cpu\", \
                     \"requests.ephemeral-storage\", \"requests.memory\""
                ),
                cause(
                    INVALID,
                    &format!("{e}[11].valueFrom.configMapKeyRef.name"),
                    &format!("Invalid value: \"\": {subdomain}")
                ),
                cause(
                    INVALID,
                    &format!("{e}[11].valueFrom.configMapKeyRef.key"),
                    &format!("Invalid value: \"bad key\": {config_key}")
                ),
                cause(
                    REQUIRED,
                    &format!("{e}[12].valueFrom.secretKeyRef.key"),
                    "Required value"
                ),
            ]
        );
    }

    #[test]
    fn environment_sources() {
        let container = json!({"envFrom": [
            {"configMapRef": {"name": "web-config"}, "prefix": "APP_"},
            {"secretRef": {"name": "creds-"}},
            {"prefix": "A=", "configMapRef": {"name": "Bad_Name"}},
            {"configMapRef": {}},
            {},
            {"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]});
        let e = "containers[0].envFrom";
        let subdomain = &name_problems("Bad_Name", false)[0];
        assert_eq!(
            template_causes(json!({}), container),
            [
                cause(
                    INVALID,
                    &format!("{e}[2].prefix"),
                    "Invalid value: \"A=\": a valid environment variable name must consist only of printable \
                     ASCII characters other than '='"
                ),
                cause(
                    INVALID,
                    &format!("{e}[2].configMapRef.name"),
                    &format!("Invalid value: \"Bad_Name\": {subdomain}")
                ),
                cause(REQUIRED, &format!("{e}[3].configMapRef.name"), "Required value"),
                cause(
                    INVALID,
                    e,
                    "Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`"
                ),
                cause(
                    INVALID,
                    e,
                    "Invalid value: \"\": may not have more than one field specified at a time"
                ),
            ]
        );
    }

    #[test]
    fn topology_spread_constraints_in_kubes_words() {
        let pod = json!({"topologySpreadConstraints": [
            {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["app", "pod-template-hash"]},
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
            {"maxSkew": 1, "whenUnsatisfiable": "Sometimes", "minDomains": 0, "nodeAffinityPolicy": "Always",
                "matchLabelKeys": ["app"]},
            {"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                "minDomains": 2, "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}]});
        let t = "topologySpreadConstraints";
        assert_eq!(
            template_causes(pod, json!({})),
            [
                cause(
                    INVALID,
                    &format!("{t}[0].maxSkew"),
                    "Invalid value: 0: must be greater than zero"
                ),
                cause(
                    DUPLICATE,
                    &format!("{t}[0].{{topologyKey, whenUnsatisfiable}}"),
                    "Duplicate value: \"{zone, DoNotSchedule}\""
                ),
                cause(
                    INVALID,
                    &format!("{t}[0].matchLabelKeys[0]"),
                    "Invalid value: \"app\": exists in both matchLabelKeys and labelSelector"
                ),
                cause(
                    REQUIRED,
                    &format!("{t}[2].topologyKey"),
                    "Required value: can not be empty"
                ),
                cause(
                    UNSUPPORTED,
                    &format!("{t}[2].whenUnsatisfiable"),
                    "Unsupported value: \"Sometimes\": supported values: \"DoNotSchedule\", \"ScheduleAnyway\""
                ),
                cause(
                    INVALID,
                    &format!("{t}[2].minDomains"),
                    "Invalid value: 0: must be greater than zero"
                ),
                cause(
                    INVALID,
                    &format!("{t}[2].minDomains"),
                    "Invalid value: 0: can only use minDomains if whenUnsatisfiable=DoNotSchedule, not Sometimes"
                ),
                cause(
                    UNSUPPORTED,
                    &format!("{t}[2].nodeAffinityPolicy"),
                    "Unsupported value: \"Always\": supported values: \"Honor\", \"Ignore\""
                ),
                cause(
                    FORBIDDEN,
                    &format!("{t}[2].matchLabelKeys"),
                    "Forbidden: must not be specified when labelSelector is not set"
                ),
                cause(
                    INVALID,
                    &format!("{t}[3].minDomains"),
                    "Invalid value: 2: can only use minDomains if whenUnsatisfiable=DoNotSchedule, not \
                     ScheduleAnyway"
                ),
                cause(
                    REQUIRED,
                    &format!("{t}[3].labelSelector.matchExpressions[0].values"),
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'"
                ),
            ]
        );
    }
}
