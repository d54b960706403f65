//! The commands that need the OpenAPI documents: `apply` (client-side), `diff`, `create -f`, `explain`, `edit`,
//! with kubectl 1.27 and 1.28 (which read `/openapi/v2` as protobuf) and 1.30 and 1.33 (OpenAPI v3), all with
//! their default validation.

use flotilla_conformance_tests::{Backend, TestApiserver};

crate::on_both_backends!(
    apply_creates_then_is_unchanged_then_configures,
    apply_a_directory_of_every_served_kind,
    create_from_file_explain_and_edit,
    autoscaling_v1_and_v2_are_one_object,
);

const VERSIONS: [&str; 4] = ["1.27", "1.28", "1.30", "1.33"];

fn deployment(name: &str, image: &str, with_sidecar: bool) -> String {
    let sidecar = if with_sidecar {
        "\n      - name: sidecar\n        image: busybox:1.36"
    } else {
        ""
    };
    let env_b = if with_sidecar {
        "\n        - {name: B, value: \"2\"}"
    } else {
        ""
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels: {{app: {name}, tier: front}}\n\
         spec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      \
         labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n        \
         env:\n        - {{name: A, value: \"1\"}}{env_b}{sidecar}\n"
    )
}

async fn apply_creates_then_is_unchanged_then_configures(backend: Backend) {
    let server = TestApiserver::start(backend).await.unwrap();
    for version in VERSIONS {
        let name = format!("web-{}", version.replace('.', "-"));
        let first = server.dir().join(format!("{name}-1.yaml"));
        let second = server.dir().join(format!("{name}-2.yaml"));
        std::fs::write(&first, deployment(&name, "nginx:1.25", true)).unwrap();
        std::fs::write(&second, deployment(&name, "nginx:1.26", false)).unwrap();
        let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();

        let out = server
            .kubectl(version, &["apply", "-f", &path(&first)])
            .await
            .unwrap()
            .ok();
        assert_eq!(
            out.stdout.trim(),
            format!("deployment.apps/{name} created"),
            "{version}"
        );
        let out = server
            .kubectl(version, &["apply", "-f", &path(&first)])
            .await
            .unwrap()
            .ok();
        assert_eq!(
            out.stdout.trim(),
            format!("deployment.apps/{name} unchanged"),
            "{version}"
        );
        let same = server
            .kubectl(version, &["diff", "-f", &path(&first)])
            .await
            .unwrap();
        assert_eq!(
            same.code, 0,
            "{version}: no difference: {}{}",
            same.stdout, same.stderr
        );
        let changed = server
            .kubectl(version, &["diff", "-f", &path(&second)])
            .await
            .unwrap();
        assert_eq!(changed.code, 1, "{version}: {}", changed.stderr);
        assert!(
            changed.stdout.contains("-        image: nginx:1.25")
                && changed.stdout.contains("+        image: nginx:1.26"),
            "{}",
            changed.stdout
        );

        let out = server
            .kubectl(version, &["apply", "-f", &path(&second)])
            .await
            .unwrap()
            .ok();
        assert_eq!(
            out.stdout.trim(),
            format!("deployment.apps/{name} configured"),
            "{version}"
        );
        let object = server
            .kubectl("1.33", &["get", "deploy", &name, "-o", "json"])
            .await
            .unwrap()
            .ok()
            .json();
        let containers = object["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(
            containers.len(),
            1,
            "{version}: the removed sidecar is gone: {containers:?}"
        );
        assert_eq!(containers[0]["image"], "nginx:1.26");
        assert_eq!(
            containers[0]["env"],
            serde_json::json!([{"name": "A", "value": "1"}]),
            "{version}: env B removed"
        );
        assert_eq!(object["metadata"]["generation"], 2);
        assert!(
            object["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
                .as_str()
                .unwrap()
                .contains("nginx:1.26")
        );
    }
}

async fn apply_a_directory_of_every_served_kind(backend: Backend) {
    let server = TestApiserver::start(backend).await.unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/manifests/mixed");
    let out = server.kubectl("1.30", &["apply", "-f", dir]).await.unwrap().ok();
    for created in [
        "namespace/shop created",
        "configmap/shop-config created",
        "secret/shop-secret created",
        "deployment.apps/shop created",
        "daemonset.apps/log-agent created",
        "job.batch/migrate created",
        "service/shop created",
        "ingress.networking.k8s.io/shop created",
        "horizontalpodautoscaler.autoscaling/shop created",
    ] {
        assert!(out.stdout.contains(created), "no {created:?} in\n{}", out.stdout);
    }
    let before = secret_rv(&server).await;
    let again = server.kubectl("1.33", &["apply", "-f", dir]).await.unwrap().ok();
    // As against kube-apiserver: a Secret applied with stringData always reads "configured" (the live object
    // holds only data), though nothing changes.
    assert_eq!(again.stdout.matches("unchanged").count(), 8, "{}", again.stdout);
    assert!(
        again.stdout.contains("secret/shop-secret configured"),
        "{}",
        again.stdout
    );
    assert_eq!(secret_rv(&server).await, before, "the no-op patch wrote nothing");
    let out = server
        .kubectl(
            "1.27",
            &[
                "get",
                "deploy,ds,job,svc,ing,hpa,cm,secret",
                "-n",
                "shop",
                "-o",
                "name",
            ],
        )
        .await
        .unwrap()
        .ok();
    assert_eq!(out.stdout.lines().count(), 8, "{}", out.stdout);
    let secret = server
        .kubectl(
            "1.30",
            &["get", "secret", "shop-secret", "-n", "shop", "-o", "json"],
        )
        .await
        .unwrap()
        .ok()
        .json();
    assert_eq!(
        secret["data"]["password"], "czNjcmV0",
        "stringData is stored as base64 data"
    );
}

async fn create_from_file_explain_and_edit(backend: Backend) {
    let server = TestApiserver::start(backend).await.unwrap();
    for version in VERSIONS {
        let name = format!("created-{}", version.replace('.', "-"));
        let file = server.dir().join(format!("{name}.yaml"));
        std::fs::write(&file, deployment(&name, "nginx:1.25", false)).unwrap();
        let out = server
            .kubectl(version, &["create", "-f", file.to_str().unwrap()])
            .await
            .unwrap()
            .ok();
        assert_eq!(
            out.stdout.trim(),
            format!("deployment.apps/{name} created"),
            "{version}"
        );

        let explain = server
            .kubectl(version, &["explain", "deployment.spec.replicas"])
            .await
            .unwrap()
            .ok();
        assert!(
            explain.stdout.contains("Number of desired pods"),
            "{version}: {}",
            explain.stdout
        );

        // The editor raises the replicas in the file kubectl hands it.
        let editor = server.dir().join("editor.sh");
        std::fs::write(&editor, "#!/bin/sh\nsed -i 's/replicas: 2/replicas: 7/' \"$1\"\n").unwrap();
        std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let editor = editor.to_str().unwrap().to_owned();
        let out = server
            .kubectl_with(
                version,
                &["edit", "deployment", &name],
                None,
                &[("EDITOR", &editor), ("KUBE_EDITOR", &editor)],
            )
            .await
            .unwrap()
            .ok();
        assert!(out.stdout.contains("edited"), "{version}: {}", out.stdout);
        let replicas = server
            .kubectl(
                "1.33",
                &["get", "deploy", &name, "-o", "jsonpath={.spec.replicas}"],
            )
            .await
            .unwrap()
            .ok();
        assert_eq!(replicas.stdout, "7", "{version}");
    }
}

async fn secret_rv(server: &TestApiserver) -> String {
    let args = [
        "get",
        "secret",
        "shop-secret",
        "-n",
        "shop",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ];
    server.kubectl("1.30", &args).await.unwrap().ok().stdout
}

/// A HorizontalPodAutoscaler applied as autoscaling/v1 is one object with its v2 form: kubectl's apply, diff and
/// re-apply work in v1, v2 readers see the CPU target as a metric, and a v2 change shows in v1.
async fn autoscaling_v1_and_v2_are_one_object(backend: Backend) {
    let server = TestApiserver::start(backend).await.unwrap();
    for version in VERSIONS {
        let name = format!("hpa-{}", version.replace('.', "-"));
        let manifest = |cpu: u32| {
            format!(
                "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: {name}\nspec:\n  \
                 scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}\n  minReplicas: 2\n  \
                 maxReplicas: 6\n  targetCPUUtilizationPercentage: {cpu}\n"
            )
        };
        let file = server.dir().join(format!("{name}.yaml"));
        let path = file.to_str().unwrap().to_owned();
        let args = ["apply", "-f", path.as_str()];
        let apply = |cpu: u32| {
            std::fs::write(&file, manifest(cpu)).unwrap();
            server.kubectl(version, &args)
        };
        let out = apply(70).await.unwrap().ok();
        let hpa = format!("horizontalpodautoscaler.autoscaling/{name}");
        assert_eq!(out.stdout.trim(), format!("{hpa} created"), "{version}");
        let out = apply(70).await.unwrap().ok();
        assert_eq!(out.stdout.trim(), format!("{hpa} unchanged"), "{version}");

        let v2 = server
            .kubectl(version, &["get", "hpa", &name, "-o", "json"])
            .await
            .unwrap()
            .ok()
            .json();
        assert_eq!(v2["apiVersion"], "autoscaling/v2", "{version}");
        assert_eq!(
            v2["spec"]["metrics"],
            serde_json::json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]),
            "{version}"
        );

        let out = apply(55).await.unwrap().ok();
        assert_eq!(out.stdout.trim(), format!("{hpa} configured"), "{version}");
        let v1_name = "horizontalpodautoscalers.v1.autoscaling";
        let v1 = server
            .kubectl(version, &["get", v1_name, &name, "-o", "json"])
            .await
            .unwrap()
            .ok()
            .json();
        assert_eq!(v1["apiVersion"], "autoscaling/v1", "{version}");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 55, "{version}");

        // A v2-only change (a second metric) is kept when a v1 client patches the object.
        server
            .kubectl(
                version,
                &[
                    "patch", "hpa", &name, "--type=merge", "-p",
                    r#"{"spec":{"metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":55}}},{"type":"Pods","pods":{"metric":{"name":"qps"},"target":{"type":"AverageValue","averageValue":"10"}}}]}}"#,
                ],
            )
            .await
            .unwrap()
            .ok();
        server
            .kubectl(
                version,
                &[
                    "patch",
                    v1_name,
                    &name,
                    "--type=merge",
                    "-p",
                    r#"{"spec":{"maxReplicas":9}}"#,
                ],
            )
            .await
            .unwrap()
            .ok();
        let v2 = server
            .kubectl(version, &["get", "hpa", &name, "-o", "json"])
            .await
            .unwrap()
            .ok()
            .json();
        assert_eq!(v2["spec"]["maxReplicas"], 9, "{version}");
        assert_eq!(
            v2["spec"]["metrics"].as_array().map(Vec::len),
            Some(2),
            "{version}: {v2}"
        );
        assert!(
            v2["metadata"]["annotations"]
                .get("autoscaling.alpha.kubernetes.io/metrics")
                .is_none(),
            "{version}: the round-trip annotation is not stored: {v2}"
        );
        let table = server
            .kubectl(version, &["get", v1_name, &name])
            .await
            .unwrap()
            .ok();
        assert!(table.stdout.contains(&name), "{version}: {}", table.stdout);
    }
}
