//! Kubernetes protobuf request bodies: kubectl 1.32 and 1.33 send them for `create <generator>`, `autoscale` and
//! `create --dry-run=server`; typed clients send them for updates and the scale subresource. Responses stay JSON.

use std::collections::BTreeMap;

use base64::Engine;
use flotilla_conformance_tests::{Backend, HttpResponse, Output, TestApiserver};
use k8s_pb::api::{apps, autoscaling, core};
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message as _;
use serde_json::{Value, json};

crate::on_both_backends!(
    kubectl_1_32_and_1_33_create_every_generator_with_protobuf,
    protobuf_updates_and_scales_keep_explicit_zeros,
    malformed_protobuf_bodies_are_400_and_write_nothing,
);

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

async fn kubectl_1_32_and_1_33_create_every_generator_with_protobuf(backend: Backend) {
    let server = TestApiserver::start(backend).await.expect("start the apiserver");
    for version in ["1.32", "1.33"] {
        let namespace = format!("pb-{}", version.replace('.', "-"));
        let ns = namespace.as_str();
        let server = &server;
        let run = |args: &'static [&'static str]| kubectl_in(server, version, ns, args);
        let get = |kind: &'static str, name: &'static str| async move {
            kubectl_in(server, version, ns, &["get", kind, name, "-o", "json"])
                .await
                .ok()
                .json()
        };

        let out = server
            .kubectl(version, &["create", "namespace", ns])
            .await
            .unwrap()
            .ok();
        assert_eq!(out.stdout.trim(), format!("namespace/{ns} created"), "{version}");
        let namespace_object = server
            .kubectl(version, &["get", "namespace", ns, "-o", "json"])
            .await
            .unwrap()
            .ok()
            .json();
        assert_eq!(namespace_object["status"]["phase"], "Active", "{version}");

        let out = run(&["create", "deployment", "web", "--image=nginx", "--replicas=3"])
            .await
            .ok();
        assert_eq!(out.stdout.trim(), "deployment.apps/web created", "{version}");
        let deployment = get("deployment", "web").await;
        assert_eq!(deployment["spec"]["replicas"], 3, "{version}");
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx"
        );
        assert_eq!(deployment["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(deployment["metadata"]["generation"], 1);
        assert!(
            deployment["metadata"].get("generateName").is_none(),
            "Go's empty strings are absent: {}",
            deployment["metadata"]
        );

        run(&[
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=1",
            "--from-literal=empty=",
        ])
        .await
        .ok();
        assert_eq!(
            get("configmap", "cfg").await["data"],
            json!({"a": "1", "empty": ""})
        );

        run(&[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=password=s3cr3t",
        ])
        .await
        .ok();
        let secret = get("secret", "creds").await;
        let password = base64::engine::general_purpose::STANDARD
            .decode(secret["data"]["password"].as_str().expect("base64 data"))
            .expect("valid base64");
        assert_eq!(password, b"s3cr3t", "{version}");

        run(&["create", "job", "once", "--image=busybox", "--", "echo", "hi"])
            .await
            .ok();
        let job = get("job", "once").await;
        let container = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            (&container["image"], &container["command"]),
            (&json!("busybox"), &json!(["echo", "hi"]))
        );
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");

        run(&["create", "service", "clusterip", "web", "--tcp=80:8080"])
            .await
            .ok();
        let service = get("service", "web").await;
        assert_eq!(
            service["spec"]["ports"][0],
            json!({"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}),
            "{version}"
        );
        assert_eq!(service["spec"]["selector"], json!({"app": "web"}));

        run(&[
            "create",
            "ingress",
            "web",
            "--rule=foo.com/bar=web:8080,tls=web-cert",
        ])
        .await
        .ok();
        let ingress = get("ingress", "web").await;
        assert_eq!(
            ingress["spec"]["rules"][0],
            json!({"host": "foo.com", "http": {"paths": [{
                "path": "/bar", "pathType": "Exact",
                "backend": {"service": {"name": "web", "port": {"number": 8080}}},
            }]}}),
            "{version}"
        );
        assert_eq!(ingress["spec"]["tls"][0]["secretName"], "web-cert");

        let out = run(&["create", "deployment", "dry", "--image=nginx", "--dry-run=server"])
            .await
            .ok();
        assert_eq!(
            out.stdout.trim(),
            "deployment.apps/dry created (server dry run)",
            "{version}"
        );
        let absent = run(&["get", "deployment", "dry"]).await.failed();
        assert!(absent.stderr.contains("NotFound"), "{}", absent.stderr);

        const AUTOSCALE: &[&str] = &[
            "autoscale",
            "deployment",
            "web",
            "--min=2",
            "--max=5",
            "--cpu-percent=80",
        ];
        let out = run(AUTOSCALE).await.ok();
        assert_eq!(
            out.stdout.trim(),
            "horizontalpodautoscaler.autoscaling/web autoscaled",
            "{version}"
        );
        let hpa = get("hpa", "web").await;
        assert_eq!(hpa["apiVersion"], "autoscaling/v2");
        assert_eq!(
            (&hpa["spec"]["minReplicas"], &hpa["spec"]["maxReplicas"]),
            (&json!(2), &json!(5))
        );
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        // One stored object, served in both versions (kubectl 1.32 posted it as autoscaling/v1).
        let v1 = get("horizontalpodautoscalers.v1.autoscaling", "web").await;
        assert_eq!(v1["apiVersion"], "autoscaling/v1", "{version}");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 80, "{version}");
        assert!(v1["spec"].get("metrics").is_none(), "{version}: {v1}");
    }
}

/// Runs kubectl `version` in namespace `ns`.
async fn kubectl_in(server: &TestApiserver, version: &str, ns: &str, args: &[&str]) -> Output {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    server.kubectl(version, &full).await.unwrap()
}

/// A body as client-go sends it: the magic, then `runtime.Unknown` around the object's message.
fn envelope(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_owned()),
            kind: Some(kind.to_owned()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

/// Sends `body` as protobuf with kubectl's Accept header; returns the response and its headers.
async fn send(
    server: &TestApiserver,
    method: &str,
    path: &str,
    name: &str,
    body: &[u8],
) -> (HttpResponse, String) {
    let body_file = server.dir().join(format!("{name}.pb"));
    let headers_file = server.dir().join(format!("{name}.headers"));
    std::fs::write(&body_file, body).unwrap();
    let response = server
        .curl(&[
            path,
            "-X",
            method,
            "-H",
            &format!("Content-Type: {PROTOBUF}"),
            "-H",
            &format!("Accept: {PROTOBUF},application/json"),
            "--data-binary",
            &format!("@{}", body_file.display()),
            "-D",
            &headers_file.display().to_string(),
        ])
        .await
        .unwrap();
    let headers = std::fs::read_to_string(&headers_file).unwrap_or_default();
    (response, headers.to_ascii_lowercase())
}

fn deployment(name: &str, replicas: i32, resource_version: &str) -> apps::v1::Deployment {
    let labels = BTreeMap::from([("app".to_owned(), name.to_owned())]);
    apps::v1::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: Some(name.to_owned()),
            generate_name: Some(String::new()),
            namespace: Some(String::new()),
            resource_version: Some(resource_version.to_owned()),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        }),
        spec: Some(apps::v1::DeploymentSpec {
            replicas: Some(replicas),
            selector: Some(meta::LabelSelector {
                match_labels: labels.clone(),
                ..Default::default()
            }),
            template: Some(core::v1::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels,
                    ..Default::default()
                }),
                spec: Some(core::v1::PodSpec {
                    containers: vec![core::v1::Container {
                        name: Some("web".to_owned()),
                        image: Some("nginx".to_owned()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::v1::DeploymentStatus::default()),
    }
}

async fn protobuf_updates_and_scales_keep_explicit_zeros(backend: Backend) {
    let server = TestApiserver::start(backend).await.expect("start the apiserver");
    let collection = "/apis/apps/v1/namespaces/default/deployments";
    let (created, headers) = send(
        &server,
        "POST",
        collection,
        "create",
        &envelope("apps/v1", "Deployment", &deployment("web", 0, "")),
    )
    .await;
    assert_eq!(created.code, 201, "{}", created.body);
    assert!(
        headers.contains("content-type: application/json"),
        "responses stay JSON: {headers}"
    );
    let created = created.json();
    assert_eq!(
        created["spec"]["replicas"], 0,
        "an explicit zero in a pointer stays"
    );
    assert!(created["spec"].get("paused").is_none(), "{}", created["spec"]);

    // Reads with kubectl 1.32+'s typed-client Accept get JSON too.
    let headers_file = server.dir().join("get.headers");
    let read = server
        .curl(&[
            &format!("{collection}/web"),
            "-H",
            &format!("Accept: {PROTOBUF},application/json"),
            "-D",
            &headers_file.display().to_string(),
        ])
        .await
        .unwrap();
    assert_eq!(read.json()["spec"]["replicas"], 0);
    let headers = std::fs::read_to_string(&headers_file)
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("content-type: application/json"), "{headers}");

    let resource_version = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let (updated, headers) = send(
        &server,
        "PUT",
        &format!("{collection}/web"),
        "update",
        &envelope("apps/v1", "Deployment", &deployment("web", 4, &resource_version)),
    )
    .await;
    assert_eq!(updated.code, 200, "{}", updated.body);
    assert!(headers.contains("content-type: application/json"), "{headers}");
    assert_eq!(updated.json()["spec"]["replicas"], 4);
    assert_eq!(updated.json()["metadata"]["generation"], 2);

    // A stale resourceVersion in a protobuf body is a precondition like in JSON.
    let (stale, _) = send(
        &server,
        "PUT",
        &format!("{collection}/web"),
        "stale",
        &envelope("apps/v1", "Deployment", &deployment("web", 5, &resource_version)),
    )
    .await;
    assert_eq!(stale.code, 409, "{}", stale.body);

    // Scaling to zero: Go writes ScaleSpec.replicas (not a pointer) as 0, which JSON leaves out.
    let scale = |replicas| autoscaling::v1::Scale {
        metadata: Some(meta::ObjectMeta {
            name: Some("web".to_owned()),
            ..Default::default()
        }),
        spec: Some(autoscaling::v1::ScaleSpec {
            replicas: Some(replicas),
        }),
        status: None,
    };
    let scale_path = format!("{collection}/web/scale");
    let (scaled, _) = send(
        &server,
        "PUT",
        &scale_path,
        "scale-up",
        &envelope("autoscaling/v1", "Scale", &scale(6)),
    )
    .await;
    assert_eq!(scaled.code, 200, "{}", scaled.body);
    assert_eq!(scaled.json()["spec"]["replicas"], 6);
    let (scaled, _) = send(
        &server,
        "PUT",
        &scale_path,
        "scale-zero",
        &envelope("autoscaling/v1", "Scale", &scale(0)),
    )
    .await;
    assert_eq!(scaled.code, 200, "{}", scaled.body);
    let stored = server.curl(&[&format!("{collection}/web")]).await.unwrap().json();
    assert_eq!(stored["spec"]["replicas"], 0, "{}", stored["spec"]);

    // A Deployment where the Scale belongs is refused by the usual type check.
    let (wrong, _) = send(
        &server,
        "PUT",
        &scale_path,
        "scale-wrong",
        &envelope("apps/v1", "Deployment", &deployment("web", 1, "")),
    )
    .await;
    assert_eq!(wrong.code, 400, "{}", wrong.body);
}

async fn malformed_protobuf_bodies_are_400_and_write_nothing(backend: Backend) {
    let server = TestApiserver::start(backend).await.expect("start the apiserver");
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let count = || async {
        server.curl(&[configmaps]).await.unwrap().json()["items"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let before = count().await;
    let config_map = core::v1::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: Some("cm".to_owned()),
            ..Default::default()
        }),
        data: BTreeMap::from([("a".to_owned(), "b".to_owned())]),
        ..Default::default()
    };
    let good = envelope("v1", "ConfigMap", &config_map);

    let assert_bad_request = |response: &HttpResponse, what: &str| {
        assert_eq!(response.code, 400, "{what}: {}", response.body);
        let status: Value = response.json();
        assert_eq!(
            (&status["kind"], &status["reason"], &status["code"]),
            (&json!("Status"), &json!("BadRequest"), &json!(400)),
            "{what}: {status}"
        );
    };
    // Cut inside the object: the length of `raw` runs past the end.
    let (truncated, _) = send(&server, "POST", configmaps, "truncated", &good[..good.len() - 3]).await;
    assert_bad_request(&truncated, "truncated");
    assert!(
        truncated.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("the protobuf body could not be decoded: malformed protobuf"),
        "{}",
        truncated.body
    );
    let (garbage, _) = send(&server, "POST", configmaps, "garbage", b"k8s\0\xff\xff\xff\xff").await;
    assert_bad_request(&garbage, "garbage after the magic");
    let (json_body, _) = send(
        &server,
        "POST",
        configmaps,
        "json",
        br#"{"metadata":{"name":"cm"}}"#,
    )
    .await;
    assert_bad_request(&json_body, "JSON labelled protobuf");
    let (pod, _) = send(
        &server,
        "POST",
        configmaps,
        "pod",
        &envelope("v1", "Pod", &config_map),
    )
    .await;
    assert_bad_request(&pod, "a kind nothing serves");
    let (secret, _) = send(
        &server,
        "POST",
        configmaps,
        "secret",
        &envelope("v1", "Secret", &config_map),
    )
    .await;
    assert_bad_request(&secret, "another served kind");
    assert_eq!(count().await, before, "nothing was written");

    // Patches are never protobuf.
    let (patch, _) = send(&server, "PATCH", &format!("{configmaps}/cm"), "patch", &good).await;
    assert_eq!(patch.code, 415, "{}", patch.body);

    let (created, _) = send(&server, "POST", configmaps, "good", &good).await;
    assert_eq!(created.code, 201, "{}", created.body);
    assert_eq!(count().await, before + 1);
}
