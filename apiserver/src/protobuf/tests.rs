//! Tests of the protobuf decoder: bodies kubectl sent (golden files under `test_data/protobuf/`, refreshed with
//! `UPDATE_EXPECT=1`), bodies built here with k8s-pb and prost for every served kind's tricky fields, and broken
//! bodies, which must fail without a panic.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_pb::api::{apps, autoscaling, batch, coordination, core, networking};
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::{Value, json};

use super::table::{Kind, Shape};
use super::{DecodeError, decode, messages};

/// Bodies kubectl 1.32.5 and 1.33.1 sent (byte for byte the same), and the commands that sent them. The `-demo`
/// and `-democm` ones are the captures of the kubectl reference notes.
const CAPTURES: &[(&str, &str)] = &[
    ("kubectl-create-namespace-demo", "kubectl create namespace demo"),
    (
        "kubectl-create-configmap-democm",
        "kubectl create configmap democm --from-literal=a=b",
    ),
    ("kubectl-create-namespace", "kubectl create namespace ns1"),
    (
        "kubectl-create-configmap",
        "kubectl create configmap cm --from-literal=a=b --from-literal=empty=",
    ),
    (
        "kubectl-create-secret-generic",
        "kubectl create secret generic s --from-literal=password=s3cr3t --from-literal=bin=$'\\x01\\x02'",
    ),
    (
        "kubectl-create-deployment",
        "kubectl create deployment web --image=nginx --replicas=3",
    ),
    (
        "kubectl-create-deployment-replicas-0",
        "kubectl create deployment web0 --image=nginx --replicas=0",
    ),
    (
        "kubectl-create-job",
        "kubectl create job j --image=busybox -- echo hi",
    ),
    (
        "kubectl-create-service-clusterip",
        "kubectl create service clusterip svc --tcp=80:8080",
    ),
    (
        "kubectl-create-ingress",
        "kubectl create ingress ing --rule=foo.com/bar=svc1:8080,tls=my-cert",
    ),
];

fn test_data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("test_data/protobuf")
        .join(name)
}

fn capture(name: &str) -> Vec<u8> {
    std::fs::read(test_data(&format!("{name}.bin"))).unwrap_or_else(|e| panic!("read capture {name}: {e}"))
}

#[test]
fn kubectl_captures_decode_to_their_golden_json() {
    for (name, command) in CAPTURES {
        let object = decode(&capture(name)).unwrap_or_else(|e| panic!("{command}: {e}"));
        let actual = serde_json::to_string_pretty(&object).unwrap() + "\n";
        let golden = test_data(&format!("{name}.json"));
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        assert_eq!(
            actual, expected,
            "{command}: {name}.json differs (refresh with UPDATE_EXPECT=1)"
        );
    }
}

#[test]
fn kubectl_create_namespace_is_what_its_json_would_be() {
    // Go wrote generateName "", generation 0 and an empty creationTimestamp; the JSON path has none of them.
    assert_eq!(
        decode(&capture("kubectl-create-namespace-demo")).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}, "spec": {}, "status": {}})
    );
    assert_eq!(
        decode(&capture("kubectl-create-configmap-democm")).unwrap(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "democm"}, "data": {"a": "b"}})
    );
}

#[test]
fn kubectl_create_deployment_keeps_replicas_and_the_pod_template() {
    let deployment = decode(&capture("kubectl-create-deployment")).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "nginx");
    assert_eq!(container["image"], "nginx");
    assert_eq!(container["resources"], json!({}));
    assert!(container.get("stdin").is_none(), "false is absent: {container}");
    assert!(
        deployment["spec"].get("minReadySeconds").is_none(),
        "{deployment}"
    );
    let zero = decode(&capture("kubectl-create-deployment-replicas-0")).unwrap();
    assert_eq!(
        zero["spec"]["replicas"], 0,
        "replicas is a pointer: an explicit 0 stays"
    );
}

#[test]
fn kubectl_create_secret_and_service_keep_their_values() {
    let secret = decode(&capture("kubectl-create-secret-generic")).unwrap();
    assert_eq!(secret["data"], json!({"bin": "AQI=", "password": "czNjcjN0"}));
    assert!(secret.get("type").is_none(), "type \"\" is absent");
    let service = decode(&capture("kubectl-create-service-clusterip")).unwrap();
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}])
    );
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert!(service["spec"].get("clusterIP").is_none(), "{}", service["spec"]);
}

/// A body as client-go sends it: the magic, then `runtime.Unknown` around the object's message.
fn envelope(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
    envelope_raw(api_version, kind, object.encode_to_vec())
}

fn envelope_raw(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_owned()),
            kind: Some(kind.to_owned()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

/// Object metadata as Go writes it: every non-pointer field, zero or not.
fn go_metadata(name: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: Some(name.to_owned()),
        generate_name: Some(String::new()),
        namespace: Some(String::new()),
        self_link: Some(String::new()),
        uid: Some(String::new()),
        resource_version: Some(String::new()),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

fn quantity(s: &str) -> Quantity {
    Quantity { string: some(s) }
}

/// Decodes and checks the object deserialises as the served type, as the write path requires.
#[track_caller]
fn decode_served(body: &[u8], group: &str, version: &str, plural: &str) -> Value {
    let object = decode(body).expect("decodes");
    let resource = flotilla_api::resources::lookup(
        flotilla_api::resources::Profile::Federation,
        group,
        version,
        plural,
    )
    .expect("served");
    let unknown =
        crate::object::check_decodes(&mut object.clone(), resource).expect("deserialises as the served type");
    assert_eq!(unknown, Vec::<String>::new(), "fields the type does not have");
    object
}

#[test]
fn secret_bytes_become_base64_and_pointer_false_stays() {
    let secret = core::v1::Secret {
        metadata: Some(go_metadata("s")),
        immutable: Some(false),
        data: BTreeMap::from([
            ("bin".to_owned(), vec![0, 1, 0xff]),
            ("empty".to_owned(), Vec::new()),
            ("password".to_owned(), b"s3cr3t".to_vec()),
        ]),
        r#type: some(""),
        ..Default::default()
    };
    let object = decode_served(&envelope("v1", "Secret", &secret), "", "v1", "secrets");
    assert_eq!(
        object,
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "immutable": false,
            "data": {"bin": "AAH/", "empty": "", "password": "czNjcjN0"},
        })
    );
}

#[test]
fn service_ports_are_int_or_string_and_zero_node_ports_absent() {
    let port = |name: &str, number: i32, target: IntOrString| core::v1::ServicePort {
        name: some(name),
        protocol: some("TCP"),
        port: Some(number),
        target_port: Some(target),
        node_port: Some(0),
        ..Default::default()
    };
    let service = core::v1::Service {
        metadata: Some(go_metadata("svc")),
        spec: Some(core::v1::ServiceSpec {
            ports: vec![
                port(
                    "http",
                    80,
                    IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: some(""),
                    },
                ),
                port(
                    "named",
                    443,
                    IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: some("https"),
                    },
                ),
            ],
            selector: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
            cluster_ip: some(""),
            r#type: some("ClusterIP"),
            ..Default::default()
        }),
        status: Some(core::v1::ServiceStatus::default()),
    };
    let object = decode_served(&envelope("v1", "Service", &service), "", "v1", "services");
    assert_eq!(
        object["spec"],
        json!({
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "named", "protocol": "TCP", "port": 443, "targetPort": "https"},
            ],
            "selector": {"app": "web"},
            "type": "ClusterIP",
        })
    );
    assert_eq!(object["status"], json!({}));
}

fn pod_template(container: core::v1::Container) -> core::v1::PodTemplateSpec {
    core::v1::PodTemplateSpec {
        metadata: Some(meta::ObjectMeta {
            labels: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
            ..go_metadata("")
        }),
        spec: Some(core::v1::PodSpec {
            containers: vec![container],
            restart_policy: some("Always"),
            ..Default::default()
        }),
    }
}

#[test]
fn deployment_keeps_explicit_zero_replicas_and_drops_plain_zeros() {
    let container = core::v1::Container {
        name: some("web"),
        image: some("nginx"),
        args: vec!["--port".to_owned(), String::new()],
        ports: vec![core::v1::ContainerPort {
            container_port: Some(80),
            host_port: Some(0),
            protocol: some("TCP"),
            ..Default::default()
        }],
        resources: Some(core::v1::ResourceRequirements {
            limits: BTreeMap::from([
                ("cpu".to_owned(), quantity("500m")),
                ("memory".to_owned(), quantity("1Gi")),
            ]),
            ..Default::default()
        }),
        stdin: Some(false),
        ..Default::default()
    };
    let deployment = apps::v1::Deployment {
        metadata: Some(meta::ObjectMeta {
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_704_164_645),
                nanos: Some(0),
            }),
            ..go_metadata("web")
        }),
        spec: Some(apps::v1::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
                ..Default::default()
            }),
            template: Some(pod_template(container)),
            strategy: Some(apps::v1::DeploymentStrategy {
                r#type: some("RollingUpdate"),
                rolling_update: Some(apps::v1::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(0),
                        str_val: some(""),
                    }),
                    max_surge: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: some("25%"),
                    }),
                }),
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::v1::DeploymentStatus::default()),
    };
    let object = decode_served(
        &envelope("apps/v1", "Deployment", &deployment),
        "apps",
        "v1",
        "deployments",
    );
    assert_eq!(
        object["metadata"],
        json!({"name": "web", "creationTimestamp": "2024-01-02T03:04:05Z"})
    );
    let spec = &object["spec"];
    assert_eq!(spec["replicas"], 0);
    assert!(
        spec.get("minReadySeconds").is_none() && spec.get("paused").is_none(),
        "{spec}"
    );
    assert_eq!(
        spec["strategy"]["rollingUpdate"],
        json!({"maxUnavailable": 0, "maxSurge": "25%"})
    );
    let pod = &spec["template"];
    assert_eq!(pod["metadata"], json!({"labels": {"app": "web"}}));
    assert_eq!(
        pod["spec"]["containers"][0],
        json!({
            "name": "web", "image": "nginx", "args": ["--port", ""],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
        })
    );
}

#[test]
fn job_keeps_pointer_zeros_and_false() {
    let job = batch::v1::Job {
        metadata: Some(go_metadata("j")),
        spec: Some(batch::v1::JobSpec {
            parallelism: Some(0),
            suspend: Some(false),
            template: Some(pod_template(core::v1::Container {
                name: some("j"),
                image: some("busybox"),
                command: vec!["echo".to_owned(), "hi".to_owned()],
                ..Default::default()
            })),
            ..Default::default()
        }),
        status: None,
    };
    let object = decode_served(&envelope("batch/v1", "Job", &job), "batch", "v1", "jobs");
    assert_eq!(object["spec"]["parallelism"], 0);
    assert_eq!(object["spec"]["suspend"], false);
    assert!(object["spec"].get("completions").is_none());
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["echo", "hi"])
    );
    assert!(object.get("status").is_none(), "an absent message stays absent");
}

#[test]
fn lease_times_have_microseconds_and_pointer_strings_stay() {
    let lease = coordination::v1::Lease {
        metadata: Some(go_metadata("leader")),
        spec: Some(coordination::v1::LeaseSpec {
            holder_identity: some(""),
            lease_duration_seconds: Some(15),
            acquire_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_645),
                nanos: Some(123_456_789),
            }),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_645),
                nanos: Some(0),
            }),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    let object = decode_served(
        &envelope("coordination.k8s.io/v1", "Lease", &lease),
        "coordination.k8s.io",
        "v1",
        "leases",
    );
    assert_eq!(
        object["spec"],
        json!({
            "holderIdentity": "", "leaseDurationSeconds": 15, "leaseTransitions": 0,
            // Go truncates to microseconds.
            "acquireTime": "2024-01-02T03:04:05.123456Z", "renewTime": "2024-01-02T03:04:05.000000Z",
        })
    );
}

#[test]
fn event_drops_zero_times_and_keeps_fields_go_always_writes() {
    let event = core::v1::Event {
        metadata: Some(go_metadata("web.1")),
        involved_object: Some(core::v1::ObjectReference {
            kind: some("Deployment"),
            name: some("web"),
            ..Default::default()
        }),
        reason: some("ScalingReplicaSet"),
        first_timestamp: Some(meta::Time::default()),
        count: Some(0),
        event_time: Some(meta::MicroTime {
            seconds: Some(0),
            nanos: Some(5_000),
        }),
        reporting_component: some(""),
        ..Default::default()
    };
    let object = decode_served(&envelope("v1", "Event", &event), "", "v1", "events");
    assert!(object.get("firstTimestamp").is_none(), "{object}");
    assert!(object.get("count").is_none(), "{object}");
    assert_eq!(object["eventTime"], "1970-01-01T00:00:00.000005Z");
    // `reportingComponent` has no omitempty in Go: its JSON always carries it.
    assert_eq!(object["reportingComponent"], "");
}

#[test]
fn hpa_metrics_carry_quantities_and_utilization() {
    let hpa = autoscaling::v2::HorizontalPodAutoscaler {
        metadata: Some(go_metadata("web")),
        spec: Some(autoscaling::v2::HorizontalPodAutoscalerSpec {
            scale_target_ref: Some(autoscaling::v2::CrossVersionObjectReference {
                kind: some("Deployment"),
                name: some("web"),
                api_version: some("apps/v1"),
            }),
            min_replicas: Some(2),
            max_replicas: Some(5),
            metrics: vec![autoscaling::v2::MetricSpec {
                r#type: some("Resource"),
                resource: Some(autoscaling::v2::ResourceMetricSource {
                    name: some("cpu"),
                    target: Some(autoscaling::v2::MetricTarget {
                        r#type: some("Utilization"),
                        average_utilization: Some(80),
                        average_value: Some(quantity("100m")),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(autoscaling::v2::HorizontalPodAutoscalerStatus {
            current_replicas: Some(0),
            desired_replicas: Some(0),
            ..Default::default()
        }),
    };
    let object = decode_served(
        &envelope("autoscaling/v2", "HorizontalPodAutoscaler", &hpa),
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
    );
    assert_eq!(object["spec"]["minReplicas"], 2);
    assert_eq!(
        object["spec"]["metrics"][0]["resource"],
        json!({"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80, "averageValue": "100m"}})
    );
    // `desiredReplicas` has no omitempty, `currentReplicas` has.
    assert_eq!(object["status"], json!({"desiredReplicas": 0}));
    let v1 = autoscaling::v1::HorizontalPodAutoscaler {
        metadata: Some(go_metadata("web")),
        spec: Some(autoscaling::v1::HorizontalPodAutoscalerSpec {
            max_replicas: Some(5),
            target_cpu_utilization_percentage: Some(80),
            ..Default::default()
        }),
        status: None,
    };
    let object = decode(&envelope("autoscaling/v1", "HorizontalPodAutoscaler", &v1)).unwrap();
    assert_eq!(
        object["spec"],
        json!({"maxReplicas": 5, "targetCPUUtilizationPercentage": 80})
    );
}

#[test]
fn inline_messages_merge_into_their_parent() {
    let ingress = networking::v1::Ingress {
        metadata: Some(go_metadata("ing")),
        spec: Some(networking::v1::IngressSpec {
            rules: vec![networking::v1::IngressRule {
                host: some("foo.com"),
                ingress_rule_value: Some(networking::v1::IngressRuleValue {
                    http: Some(networking::v1::HttpIngressRuleValue {
                        paths: vec![networking::v1::HttpIngressPath {
                            path: some("/bar"),
                            path_type: some("Exact"),
                            backend: Some(networking::v1::IngressBackend {
                                service: Some(networking::v1::IngressServiceBackend {
                                    name: some("svc1"),
                                    port: Some(networking::v1::ServiceBackendPort {
                                        name: some(""),
                                        number: Some(8080),
                                    }),
                                }),
                                resource: None,
                            }),
                        }],
                    }),
                }),
            }],
            ..Default::default()
        }),
        status: None,
    };
    let object = decode_served(
        &envelope("networking.k8s.io/v1", "Ingress", &ingress),
        "networking.k8s.io",
        "v1",
        "ingresses",
    );
    assert_eq!(
        object["spec"]["rules"][0],
        json!({"host": "foo.com", "http": {"paths": [{
            "path": "/bar", "pathType": "Exact",
            "backend": {"service": {"name": "svc1", "port": {"number": 8080}}},
        }]}})
    );

    let mut template = pod_template(core::v1::Container {
        name: some("web"),
        liveness_probe: Some(core::v1::Probe {
            handler: Some(core::v1::ProbeHandler {
                http_get: Some(core::v1::HttpGetAction {
                    path: some("/healthz"),
                    port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: some("http"),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            period_seconds: Some(10),
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod_spec = template.spec.as_mut().unwrap();
    pod_spec.volumes = vec![core::v1::Volume {
        name: some("config"),
        volume_source: Some(core::v1::VolumeSource {
            config_map: Some(core::v1::ConfigMapVolumeSource {
                local_object_reference: Some(core::v1::LocalObjectReference { name: some("cfg") }),
                default_mode: Some(0o644),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }];
    pod_spec.security_context = Some(core::v1::PodSecurityContext {
        supplemental_groups: vec![0, 1000],
        ..Default::default()
    });
    let daemon_set = apps::v1::DaemonSet {
        metadata: Some(go_metadata("agent")),
        spec: Some(apps::v1::DaemonSetSpec {
            template: Some(template),
            ..Default::default()
        }),
        status: None,
    };
    let object = decode_served(
        &envelope("apps/v1", "DaemonSet", &daemon_set),
        "apps",
        "v1",
        "daemonsets",
    );
    let pod = &object["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"],
        json!([{"name": "config", "configMap": {"name": "cfg", "defaultMode": 420}}])
    );
    assert_eq!(
        pod["containers"][0]["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10})
    );
    assert_eq!(pod["securityContext"]["supplementalGroups"], json!([0, 1000]));
}

#[test]
fn replica_sets_and_config_maps_decode() {
    let replica_set = apps::v1::ReplicaSet {
        metadata: Some(meta::ObjectMeta {
            owner_references: vec![meta::OwnerReference {
                api_version: some("apps/v1"),
                kind: some("Deployment"),
                name: some("web"),
                uid: some("0000"),
                controller: Some(true),
                block_owner_deletion: Some(false),
            }],
            ..go_metadata("web-1")
        }),
        spec: Some(apps::v1::ReplicaSetSpec {
            replicas: Some(2),
            ..Default::default()
        }),
        status: Some(apps::v1::ReplicaSetStatus {
            replicas: Some(0),
            ..Default::default()
        }),
    };
    let object = decode_served(
        &envelope("apps/v1", "ReplicaSet", &replica_set),
        "apps",
        "v1",
        "replicasets",
    );
    assert_eq!(
        object["metadata"]["ownerReferences"],
        json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "0000",
                "controller": true, "blockOwnerDeletion": false}])
    );
    assert_eq!(object["status"], json!({"replicas": 0}), "no omitempty");

    let config_map = core::v1::ConfigMap {
        metadata: Some(go_metadata("cm")),
        data: BTreeMap::from([("empty".to_owned(), String::new())]),
        binary_data: BTreeMap::from([("b".to_owned(), vec![1])]),
        immutable: None,
    };
    let object = decode_served(&envelope("v1", "ConfigMap", &config_map), "", "v1", "configmaps");
    assert_eq!(object["data"], json!({"empty": ""}));
    assert_eq!(object["binaryData"], json!({"b": "AQ=="}));
}

#[test]
fn scale_with_zero_replicas_has_none() {
    let scale = autoscaling::v1::Scale {
        metadata: Some(go_metadata("web")),
        spec: Some(autoscaling::v1::ScaleSpec { replicas: Some(0) }),
        status: None,
    };
    let object = decode(&envelope("autoscaling/v1", "Scale", &scale)).unwrap();
    assert_eq!(object["spec"], json!({}), "ScaleSpec.replicas is omitempty");
    let scale = autoscaling::v1::Scale {
        spec: Some(autoscaling::v1::ScaleSpec { replicas: Some(4) }),
        ..scale
    };
    let object = decode(&envelope("autoscaling/v1", "Scale", &scale)).unwrap();
    assert_eq!(object["spec"], json!({"replicas": 4}));
}

#[test]
fn repeated_numbers_may_be_packed_or_not() {
    // PodSecurityContext (tag 14 of PodSpec) with supplementalGroups (tag 4), packed: 0, 1000.
    let packed_context = [0x22, 0x03, 0x00, 0xe8, 0x07];
    let mut pod_spec = vec![0x72, packed_context.len() as u8];
    pod_spec.extend(packed_context);
    let mut template = vec![0x12, pod_spec.len() as u8];
    template.extend(pod_spec);
    let mut spec = vec![0x12, template.len() as u8];
    spec.extend(template);
    let mut daemon_set = vec![0x12, spec.len() as u8];
    daemon_set.extend(spec);
    let object = decode(&envelope_raw("apps/v1", "DaemonSet", daemon_set)).unwrap();
    assert_eq!(
        object["spec"]["template"]["spec"]["securityContext"]["supplementalGroups"],
        json!([0, 1000])
    );
    // k8s-pb, like Go, writes them one by one (`packed = "false"`).
    let context = core::v1::PodSecurityContext {
        supplemental_groups: vec![0, 1000],
        ..Default::default()
    };
    assert_eq!(context.encode_to_vec(), [0x20, 0x00, 0x20, 0xe8, 0x07]);
    let template = core::v1::PodTemplateSpec {
        spec: Some(core::v1::PodSpec {
            security_context: Some(context),
            ..Default::default()
        }),
        ..Default::default()
    };
    let daemon_set = apps::v1::DaemonSet {
        spec: Some(apps::v1::DaemonSetSpec {
            template: Some(template),
            ..Default::default()
        }),
        ..Default::default()
    };
    let object = decode(&envelope("apps/v1", "DaemonSet", &daemon_set)).unwrap();
    assert_eq!(
        object["spec"]["template"]["spec"]["securityContext"]["supplementalGroups"],
        json!([0, 1000])
    );
}

#[test]
fn unknown_fields_are_skipped() {
    let mut raw = core::v1::ConfigMap {
        metadata: Some(go_metadata("cm")),
        ..Default::default()
    }
    .encode_to_vec();
    // Field 99 of every wire type: varint, fixed64, length-delimited, fixed32.
    raw.extend([0x98, 0x06, 0x01]);
    raw.extend([0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]);
    raw.extend([0x9a, 0x06, 0x02, b'h', b'i']);
    raw.extend([0x9d, 0x06, 1, 2, 3, 4]);
    let object = decode(&envelope_raw("v1", "ConfigMap", raw)).unwrap();
    assert_eq!(
        object,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}})
    );
}

#[test]
fn envelopes_must_be_kubernetes_protobuf_of_a_known_kind() {
    let config_map = core::v1::ConfigMap {
        metadata: Some(go_metadata("cm")),
        ..Default::default()
    };
    let body = envelope("v1", "ConfigMap", &config_map);
    assert!(matches!(decode(&body[4..]), Err(DecodeError::NotEnvelope)));
    assert!(matches!(
        decode(br#"{"kind":"ConfigMap"}"#),
        Err(DecodeError::NotEnvelope)
    ));
    let err = decode(&envelope("v1", "Pod", &config_map)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no kind \"Pod\" is registered for version \"v1\""
    );
    assert!(matches!(
        decode(&envelope("v2", "ConfigMap", &config_map)),
        Err(DecodeError::UnknownKind { .. })
    ));
    let gzipped = Unknown {
        type_meta: Some(TypeMeta {
            api_version: some("v1"),
            kind: some("ConfigMap"),
        }),
        raw: Some(config_map.encode_to_vec()),
        content_encoding: some("gzip"),
        content_type: some(""),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(gzipped.encode_to_vec());
    assert!(matches!(decode(&body), Err(DecodeError::UnsupportedEnvelope(_))));
}

#[test]
fn malformed_values_name_the_field() {
    // DeploymentSpec.replicas (tag 1) sent length-delimited.
    let body = envelope_raw("apps/v1", "Deployment", vec![0x12, 0x03, 0x0a, 0x01, 0x00]);
    assert_eq!(
        decode(&body).unwrap_err().to_string(),
        "malformed protobuf at spec.replicas: int32 field with wire type length-delimited"
    );
    // ObjectMeta.name (tag 1) that is not UTF-8.
    let body = envelope_raw("v1", "ConfigMap", vec![0x0a, 0x03, 0x0a, 0x01, 0xff]);
    assert_eq!(
        decode(&body).unwrap_err().to_string(),
        "malformed protobuf at metadata.name: a string is not valid UTF-8"
    );
    // A length running past the end of its message.
    let body = envelope_raw("v1", "ConfigMap", vec![0x0a, 0x09, 0x0a, 0x01]);
    assert!(matches!(decode(&body), Err(DecodeError::Malformed { .. })));
    // A Time out of range.
    let time = meta::Time {
        seconds: Some(i64::MAX),
        nanos: Some(0),
    };
    let body = envelope(
        "v1",
        "ConfigMap",
        &core::v1::ConfigMap {
            metadata: Some(meta::ObjectMeta {
                creation_timestamp: Some(time),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    let err = decode(&body).unwrap_err().to_string();
    assert!(
        err.starts_with("malformed protobuf at metadata.creationTimestamp: time out of range"),
        "{err}"
    );
}

#[test]
fn broken_bodies_fail_without_panicking() {
    // Every truncation and many corruptions of every capture either decode or fail; none panics.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (name, _) in CAPTURES {
        let body = capture(name);
        for len in 0..body.len() {
            let _ = decode(&body[..len]);
        }
        for _ in 0..2_000 {
            let mut corrupted = body.clone();
            for _ in 0..1 + next() % 3 {
                let at = 4 + (next() as usize) % (corrupted.len() - 4);
                corrupted[at] = next() as u8;
            }
            let _ = decode(&corrupted);
        }
    }
}

#[test]
fn times_format_as_kube_writes_them() {
    let check = |seconds: i64, nanos: i32, micro: bool, expected: &str| {
        assert_eq!(super::format_time(seconds, nanos, micro).unwrap(), expected);
    };
    check(1_704_164_645, 0, false, "2024-01-02T03:04:05Z");
    check(1_704_164_645, 999_999_999, false, "2024-01-02T03:04:05Z");
    check(1_704_164_645, 999_999_999, true, "2024-01-02T03:04:05.999999Z");
    check(1_704_164_645, 1_000, true, "2024-01-02T03:04:05.000001Z");
    check(0, 0, false, "1970-01-01T00:00:00Z");
    check(-1, 0, false, "1969-12-31T23:59:59Z");
}

#[test]
fn the_table_is_sorted_and_closed() {
    let messages = messages::MESSAGES;
    for pair in messages.windows(2) {
        assert!(pair[0].name < pair[1].name, "messages sorted by name");
    }
    for message in messages {
        for pair in message.fields.windows(2) {
            assert!(
                pair[0].tag < pair[1].tag,
                "{}: fields sorted by tag",
                message.name
            );
        }
        for field in message.fields {
            if let Kind::Message(name) = field.kind {
                assert!(
                    super::table::message(name).is_some(),
                    "{}.{} refers to {name}, which the table lacks",
                    message.name,
                    field.json
                );
            }
            assert_eq!(
                field.json.is_empty(),
                field.shape == Shape::Inline,
                "{}: only inline fields lack a JSON name",
                message.name
            );
            if field.shape == Shape::Inline {
                assert!(
                    matches!(field.kind, Kind::Message(_)),
                    "{}: only messages inline",
                    message.name
                );
            }
        }
    }
    for root in messages::ROOTS {
        assert!(
            super::table::root(root.api_version, root.kind).is_some(),
            "{}",
            root.kind
        );
    }
    for resource in flotilla_api::resources::RESOURCES {
        if !super::generate::has_protobuf(resource.group, resource.kind) {
            continue;
        }
        for version in resource.versions {
            assert!(
                super::table::root(&resource.api_version(version), resource.kind).is_some(),
                "served {} has no message",
                resource.kind
            );
        }
    }
}
