//! kube-apiserver's defaults for the served built-in types (the `SetDefaults_*` functions of `k8s.io/kubernetes`'s
//! `pkg/apis/*/v1`), so that `kubectl get -o yaml` after `kubectl apply` shows what a cluster would, and
//! `kubectl diff` and `rollout status` read the same fields.
//!
//! Defaults fill only what is absent (`null` counts as absent); a field of the wrong shape is left for the type
//! check to reject with a 400. Server-assigned values that are not defaults (a Service's cluster IP, node ports)
//! are not made up: the federation has no service network.

use serde_json::{Map, Value, json};

use flotilla_api::resources::Resource;

type Object = Map<String, Value>;

/// Fills kube's defaults into `object`, an object of `resource` in its storage version.
pub fn apply(object: &mut Value, resource: &Resource) {
    let Some(object) = object.as_object_mut() else {
        return;
    };
    match (resource.group, resource.plural) {
        ("apps", "deployments") => deployment(object),
        ("apps", "replicasets") => replica_set(object),
        ("apps", "daemonsets") => daemon_set(object),
        ("apps", "statefulsets") => stateful_set(object),
        ("batch", "jobs") => job(object),
        ("", "services") => service(object),
        ("", "secrets") => {
            or_insert(object, "type", json!("Opaque"));
        }
        ("autoscaling", "horizontalpodautoscalers") => autoscaler(object),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => role_binding(object),
        _ => {}
    }
}

/// The labels and selector kube gives a Job whose selector it generates (`manualSelector` not true), from the
/// Job's uid: done once, on create.
pub fn generate_job_selector(object: &mut Value) {
    let uid = object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("manualSelector") == Some(&json!(true)) {
        return;
    }
    // As kube: the uid label joins whatever selector was sent, and validation refuses anything but exactly it.
    if let Some(selector) = object_at(spec, "selector")
        && let Some(labels) = object_at(selector, "matchLabels")
    {
        or_insert(labels, "batch.kubernetes.io/controller-uid", json!(uid));
    }
    let Some(template) = object_at(spec, "template") else {
        return;
    };
    let Some(metadata) = object_at(template, "metadata") else {
        return;
    };
    let Some(labels) = object_at(metadata, "labels") else {
        return;
    };
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        or_insert(labels, key, json!(value));
    }
}

/// The object at `key`, created empty when absent or null; `None` when something else is there.
fn object_at<'a>(map: &'a mut Object, key: &str) -> Option<&'a mut Object> {
    let entry = map.entry(key).or_insert_with(|| json!({}));
    if entry.is_null() {
        *entry = json!({});
    }
    entry.as_object_mut()
}

/// Sets `key` when it is absent or null.
fn or_insert(map: &mut Object, key: &str, value: Value) {
    let entry = map.entry(key).or_insert(Value::Null);
    if entry.is_null() {
        *entry = value;
    }
}

fn each_object(map: &mut Object, key: &str, mut f: impl FnMut(&mut Object)) {
    if let Some(Value::Array(items)) = map.get_mut(key) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            f(item);
        }
    }
}

fn spec(object: &mut Object) -> Option<&mut Object> {
    object_at(object, "spec")
}

/// `spec.template` of a workload, when it is there: its pod spec's defaults, and its `creationTimestamp`.
fn pod_template(spec: &mut Object) {
    let Some(template) = spec.get_mut("template").and_then(Value::as_object_mut) else {
        return;
    };
    zero_creation_timestamp(template);
    if let Some(pod) = template.get_mut("spec").and_then(Value::as_object_mut) {
        pod_spec(pod);
    }
}

/// A template's `metadata` is a Go struct in kube, not a pointer, and its zero `creationTimestamp` is written as
/// `null`: `kubectl get -o yaml` shows `creationTimestamp: null` in every pod template and claim template.
fn zero_creation_timestamp(template: &mut Object) {
    if let Some(metadata) = object_at(template, "metadata") {
        metadata.entry("creationTimestamp").or_insert(Value::Null);
    }
}

fn deployment(object: &mut Object) {
    let Some(spec) = spec(object) else { return };
    or_insert(spec, "replicas", json!(1));
    or_insert(spec, "revisionHistoryLimit", json!(10));
    or_insert(spec, "progressDeadlineSeconds", json!(600));
    if let Some(strategy) = object_at(spec, "strategy") {
        or_insert(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(rolling) = object_at(strategy, "rollingUpdate")
        {
            or_insert(rolling, "maxUnavailable", json!("25%"));
            or_insert(rolling, "maxSurge", json!("25%"));
        }
    }
    pod_template(spec);
}

fn replica_set(object: &mut Object) {
    let Some(spec) = spec(object) else { return };
    or_insert(spec, "replicas", json!(1));
    pod_template(spec);
}

fn daemon_set(object: &mut Object) {
    let Some(spec) = spec(object) else { return };
    or_insert(spec, "revisionHistoryLimit", json!(10));
    if let Some(strategy) = object_at(spec, "updateStrategy") {
        or_insert(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(rolling) = object_at(strategy, "rollingUpdate")
        {
            or_insert(rolling, "maxUnavailable", json!(1));
            or_insert(rolling, "maxSurge", json!(0));
        }
    }
    pod_template(spec);
}

fn stateful_set(object: &mut Object) {
    let Some(spec) = spec(object) else { return };
    or_insert(spec, "replicas", json!(1));
    or_insert(spec, "podManagementPolicy", json!("OrderedReady"));
    or_insert(spec, "revisionHistoryLimit", json!(10));
    if let Some(policy) = object_at(spec, "persistentVolumeClaimRetentionPolicy") {
        or_insert(policy, "whenDeleted", json!("Retain"));
        or_insert(policy, "whenScaled", json!("Retain"));
    }
    if let Some(strategy) = object_at(spec, "updateStrategy") {
        or_insert(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(rolling) = object_at(strategy, "rollingUpdate")
        {
            or_insert(rolling, "partition", json!(0));
        }
    }
    each_object(spec, "volumeClaimTemplates", |claim| {
        zero_creation_timestamp(claim);
        if let Some(claim_spec) = object_at(claim, "spec") {
            or_insert(claim_spec, "volumeMode", json!("Filesystem"));
        }
    });
    pod_template(spec);
}

fn job(object: &mut Object) {
    let Some(spec) = spec(object) else { return };
    let unset = |spec: &Object, key: &str| spec.get(key).is_none_or(Value::is_null);
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".to_owned(), json!(1));
    }
    or_insert(spec, "parallelism", json!(1));
    if unset(spec, "backoffLimitPerIndex") {
        or_insert(spec, "backoffLimit", json!(6));
    } else {
        or_insert(spec, "backoffLimit", json!(i32::MAX));
    }
    or_insert(spec, "completionMode", json!("NonIndexed"));
    or_insert(spec, "suspend", json!(false));
    let replacement = if unset(spec, "podFailurePolicy") {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    or_insert(spec, "podReplacementPolicy", json!(replacement));
    pod_template(spec);
}

fn service(object: &mut Object) {
    let Some(spec) = spec(object) else { return };
    or_insert(spec, "type", json!("ClusterIP"));
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    or_insert(spec, "sessionAffinity", json!("None"));
    if spec.get("sessionAffinity") == Some(&json!("ClientIP"))
        && let Some(config) = object_at(spec, "sessionAffinityConfig")
        && let Some(client_ip) = object_at(config, "clientIP")
    {
        or_insert(client_ip, "timeoutSeconds", json!(10800));
    }
    each_object(spec, "ports", |port| {
        or_insert(port, "protocol", json!("TCP"));
        let target_unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if target_unset && let Some(number) = port.get("port").cloned() {
            port.insert("targetPort".to_owned(), number);
        }
    });
    if kind == "ExternalName" {
        return;
    }
    or_insert(spec, "internalTrafficPolicy", json!("Cluster"));
    if kind == "NodePort" || kind == "LoadBalancer" {
        or_insert(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        or_insert(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    // Chosen by kube's IP allocation, which runs for every Service that is not ExternalName: a headless Service
    // is `None` in `clusterIPs` too, and one without a selector asks for both families (kube's
    // `initIPFamilyFields`), even of a single-stack cluster.
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if headless {
        let no_ips = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(|ips| ips.is_empty());
        if no_ips {
            spec.insert("clusterIPs".to_owned(), json!(["None"]));
        }
    }
    let selectorless = spec
        .get("selector")
        .and_then(Value::as_object)
        .is_none_or(|selector| selector.is_empty());
    if headless && selectorless {
        or_insert(spec, "ipFamilyPolicy", json!("RequireDualStack"));
        or_insert(spec, "ipFamilies", json!(["IPv4", "IPv6"]));
    } else {
        or_insert(spec, "ipFamilyPolicy", json!("SingleStack"));
        or_insert(spec, "ipFamilies", json!(["IPv4"]));
    }
}

/// autoscaling/v2 (the stored version; v1 objects are converted to it first).
fn autoscaler(object: &mut Object) {
    let Some(spec) = spec(object) else { return };
    or_insert(spec, "minReplicas", json!(1));
    let no_metrics = match spec.get("metrics") {
        None | Some(Value::Null) => true,
        Some(Value::Array(metrics)) => metrics.is_empty(),
        _ => false,
    };
    if no_metrics {
        spec.insert(
            "metrics".to_owned(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    // The scaling rules are defaulted only when a behavior is given (`SetDefaults_HorizontalPodAutoscalerBehavior`).
    let Some(Value::Object(behavior)) = spec.get_mut("behavior") else {
        return;
    };
    if let Some(up) = object_at(behavior, "scaleUp") {
        or_insert(up, "stabilizationWindowSeconds", json!(0));
        or_insert(up, "selectPolicy", json!("Max"));
        or_insert(
            up,
            "policies",
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
    if let Some(down) = object_at(behavior, "scaleDown") {
        or_insert(down, "stabilizationWindowSeconds", json!(300));
        or_insert(down, "selectPolicy", json!("Max"));
        or_insert(
            down,
            "policies",
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
}

fn role_binding(object: &mut Object) {
    each_object(object, "subjects", |subject| {
        let group = match subject.get("kind").and_then(Value::as_str) {
            Some("User" | "Group") => "rbac.authorization.k8s.io",
            Some("ServiceAccount") => "",
            _ => return,
        };
        or_insert(subject, "apiGroup", json!(group));
    });
}

/// A pod template's spec (`SetDefaults_PodSpec` and the defaults of what it holds).
fn pod_spec(pod: &mut Object) {
    or_insert(pod, "dnsPolicy", json!("ClusterFirst"));
    or_insert(pod, "restartPolicy", json!("Always"));
    or_insert(pod, "terminationGracePeriodSeconds", json!(30));
    or_insert(pod, "securityContext", json!({}));
    or_insert(pod, "schedulerName", json!("default-scheduler"));
    for key in ["initContainers", "containers"] {
        each_object(pod, key, container);
    }
    each_object(pod, "ephemeralContainers", container);
    each_object(pod, "volumes", volume);
}

fn container(container: &mut Object) {
    or_insert(container, "terminationMessagePath", json!("/dev/termination-log"));
    or_insert(container, "terminationMessagePolicy", json!("File"));
    or_insert(container, "resources", json!({}));
    if let Some(image) = container.get("image").and_then(Value::as_str) {
        let policy = image_pull_policy(image);
        or_insert(container, "imagePullPolicy", json!(policy));
    }
    each_object(container, "ports", |port| {
        or_insert(port, "protocol", json!("TCP"))
    });
    each_object(container, "env", |env| {
        if let Some(Value::Object(from)) = env.get_mut("valueFrom")
            && let Some(Value::Object(field)) = from.get_mut("fieldRef")
        {
            or_insert(field, "apiVersion", json!("v1"));
        }
    });
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(Value::Object(probe)) = container.get_mut(probe) {
            or_insert(probe, "timeoutSeconds", json!(1));
            or_insert(probe, "periodSeconds", json!(10));
            or_insert(probe, "successThreshold", json!(1));
            or_insert(probe, "failureThreshold", json!(3));
            handler(probe);
        }
    }
    if let Some(Value::Object(lifecycle)) = container.get_mut("lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(Value::Object(hook)) = lifecycle.get_mut(hook) {
                handler(hook);
            }
        }
    }
}

/// An HTTP GET probe or hook: path `/`, scheme HTTP.
fn handler(handler: &mut Object) {
    if let Some(Value::Object(get)) = handler.get_mut("httpGet") {
        or_insert(get, "path", json!("/"));
        or_insert(get, "scheme", json!("HTTP"));
    }
}

/// `Always` for `:latest` or an image with neither tag nor digest, else `IfNotPresent`.
fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    // A tag is after the last colon, unless that colon belongs to a registry's port (a slash follows it).
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn volume(volume: &mut Object) {
    const SOURCES: &[&str] = &[
        "hostPath",
        "emptyDir",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "gitRepo",
        "secret",
        "nfs",
        "iscsi",
        "glusterfs",
        "persistentVolumeClaim",
        "rbd",
        "flexVolume",
        "cinder",
        "cephfs",
        "flocker",
        "downwardAPI",
        "fc",
        "azureFile",
        "configMap",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "projected",
        "portworxVolume",
        "scaleIO",
        "storageos",
        "csi",
        "ephemeral",
        "image",
    ];
    if !SOURCES
        .iter()
        .any(|s| volume.get(*s).is_some_and(|v| !v.is_null()))
    {
        volume.insert("emptyDir".to_owned(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(Value::Object(source)) = volume.get_mut(source) {
            or_insert(source, "defaultMode", json!(420));
        }
    }
    if let Some(Value::Object(host_path)) = volume.get_mut("hostPath") {
        or_insert(host_path, "type", json!(""));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(plural: &str, mut object: Value) -> Value {
        let resource = flotilla_api::resources::RESOURCES
            .iter()
            .find(|r| r.plural == plural)
            .expect("served");
        apply(&mut object, resource);
        object
    }

    #[test]
    fn deployments_get_kubes_strategy_limits_and_pod_defaults() {
        let object = defaulted(
            "deployments",
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                 "readinessProbe": {"httpGet": {"port": 80}}},
                {"name": "side", "image": "busybox"}
            ]}}}}),
        );
        let spec = &object["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["securityContext"], json!({}));
        let web = &pod["containers"][0];
        assert_eq!(web["imagePullPolicy"], "IfNotPresent");
        assert_eq!(web["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(web["terminationMessagePolicy"], "File");
        assert_eq!(web["ports"][0]["protocol"], "TCP");
        assert_eq!(
            web["readinessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(pod["containers"][1]["imagePullPolicy"], "Always");
    }

    #[test]
    fn given_values_are_kept() {
        let object = defaulted(
            "deployments",
            json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"},
                "template": {"spec": {"restartPolicy": "Always", "containers": [
                    {"name": "c", "image": "nginx", "imagePullPolicy": "Never"}]}}}}),
        );
        assert_eq!(object["spec"]["replicas"], 0);
        assert_eq!(object["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(
            object["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Never"
        );
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("nginx:latest"), "Always");
        assert_eq!(image_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(image_pull_policy("registry:5000/nginx"), "Always");
        assert_eq!(image_pull_policy("registry:5000/nginx:1"), "IfNotPresent");
        assert_eq!(image_pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn jobs_get_kubes_defaults_and_a_generated_selector() {
        let mut object = defaulted(
            "jobs",
            json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5"}]}}}}),
        );
        generate_job_selector(&mut object);
        let spec = &object["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        let labels = &spec["template"]["metadata"]["labels"];
        assert_eq!(labels["job-name"], "pi");
        assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
        assert_eq!(labels["controller-uid"], "u-1");
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");

        // Parallelism alone leaves completions unset (a work queue).
        let queue = defaulted("jobs", json!({"spec": {"parallelism": 3}}));
        assert!(queue["spec"].get("completions").is_none());
        // A manual selector is the user's.
        let mut manual = json!({"metadata": {"uid": "u"}, "spec": {"manualSelector": true,
            "selector": {"matchLabels": {"x": "y"}}}});
        generate_job_selector(&mut manual);
        assert_eq!(manual["spec"]["selector"], json!({"matchLabels": {"x": "y"}}));
    }

    #[test]
    fn services_get_type_affinity_target_ports_and_policies() {
        let object = defaulted(
            "services",
            json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443, "targetPort": "https"}]}}),
        );
        let spec = &object["spec"];
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(
            spec["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(spec["ports"][1]["targetPort"], "https");
        assert_eq!(spec["externalTrafficPolicy"], "Cluster");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        let plain = defaulted("services", json!({"spec": {"ports": [{"port": 80}]}}));
        assert_eq!(plain["spec"]["type"], "ClusterIP");
        assert!(plain["spec"].get("externalTrafficPolicy").is_none());
        let external = defaulted(
            "services",
            json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
        );
        assert!(external["spec"].get("ipFamilies").is_none());
        let headless = defaulted(
            "services",
            json!({"spec": {"clusterIP": "None", "selector": {"app": "db"}}}),
        );
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(headless["spec"]["ipFamilyPolicy"], "SingleStack");
        let selectorless = defaulted("services", json!({"spec": {"clusterIP": "None"}}));
        assert_eq!(selectorless["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(selectorless["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    }

    #[test]
    fn autoscalers_default_min_replicas_and_cpu() {
        let object = defaulted(
            "horizontalpodautoscalers",
            json!({"spec": {"maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}),
        );
        let spec = &object["spec"];
        assert_eq!(spec["minReplicas"], 1);
        assert_eq!(spec["metrics"][0]["resource"]["target"]["averageUtilization"], 80);
        assert_eq!(spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"], 60);
        assert_eq!(spec["behavior"]["scaleUp"]["policies"][0]["value"], 4);
        let plain = defaulted("horizontalpodautoscalers", json!({"spec": {"maxReplicas": 5}}));
        assert!(plain["spec"].get("behavior").is_none());
    }

    #[test]
    fn volumes_secrets_and_bindings() {
        let object = defaulted(
            "daemonsets",
            json!({"spec": {"template": {"spec": {"containers": [], "volumes": [
                {"name": "a"}, {"name": "b", "configMap": {"name": "c"}}, {"name": "h", "hostPath": {"path": "/x"}}]}}}}),
        );
        let volumes = &object["spec"]["template"]["spec"]["volumes"];
        assert_eq!(volumes[0]["emptyDir"], json!({}));
        assert_eq!(volumes[1]["configMap"]["defaultMode"], 420);
        assert_eq!(volumes[2]["hostPath"]["type"], "");
        assert_eq!(
            object["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(defaulted("secrets", json!({}))["type"], "Opaque");
        let binding = defaulted(
            "rolebindings",
            json!({"subjects": [{"kind": "User", "name": "a"}, {"kind": "ServiceAccount", "name": "b"}]}),
        );
        assert_eq!(binding["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(binding["subjects"][1]["apiGroup"], "");
    }

    #[test]
    fn bodies_of_the_wrong_shape_are_left_alone() {
        for body in [
            json!({"spec": "x"}),
            json!("x"),
            json!({"spec": {"template": {"spec": 3}}}),
        ] {
            let _ = defaulted("deployments", body.clone());
            let _ = defaulted("jobs", body.clone());
            let _ = defaulted("services", body);
        }
    }
}
