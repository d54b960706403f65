//! Real kubectl against the federation apiserver: the commands users and pipelines run.
//!
//! Discovery is checked with every kubectl from 1.27 to 1.33; the rest mostly with 1.30, which sends JSON.
//! `apply.rs` covers `apply`, `create -f`, `edit`, `diff` and `explain`, `protobuf.rs` the protobuf bodies of
//! kubectl 1.32+ `create <generator>`.

use std::time::Duration;

use flotilla_conformance_tests::{Backend, TestApiserver, eventually};
use serde_json::Value;

crate::on_both_backends!(
    version_and_discovery_work_for_every_kubectl,
    configmaps_round_trip_through_every_read_and_write_verb,
    deployments_scale_and_patch_strategically,
    get_watch_sees_concurrent_changes,
    delete_honours_each_cascade_policy,
    wait_for_delete_returns_when_the_last_finalizer_goes,
    deleting_a_namespace_deletes_its_contents,
    describe_shows_a_deployment,
);

async fn start(backend: Backend) -> TestApiserver {
    TestApiserver::start(backend).await.expect("start the apiserver")
}

async fn version_and_discovery_work_for_every_kubectl(backend: Backend) {
    let server = start(backend).await;
    for version in ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"] {
        let out = server.kubectl(version, &["version"]).await.unwrap().ok();
        assert!(
            // 1.27 prints `version.Info{… GitVersion:"v1.33.0+…"}`, later ones `Server Version: v1.33.0+…`.
            out.stdout.contains("v1.33.0+flotilla"),
            "{version}: {}",
            out.stdout
        );
        let out = server
            .kubectl(version, &["api-resources", "-o", "wide"])
            .await
            .unwrap()
            .ok();
        for expected in [
            "deployments",
            "deploy",
            "apps/v1",
            "horizontalpodautoscalers",
            "autoscaling/v2",
            "leases",
            "statefulsets",
            "serviceaccounts",
            "rolebindings",
            "rbac.authorization.k8s.io/v1",
        ] {
            assert!(
                out.stdout.contains(expected),
                "{version}: no {expected} in\n{}",
                out.stdout
            );
        }
        assert!(
            ["deletecollection", "patch", "watch"]
                .iter()
                .all(|verb| out.stdout.contains(verb)),
            "{}",
            out.stdout
        );
        let out = server
            .kubectl(version, &["get", "namespaces", "-o", "name"])
            .await
            .unwrap()
            .ok();
        assert!(out.stdout.contains("namespace/default") && out.stdout.contains("namespace/kube-system"));
    }
}

async fn configmaps_round_trip_through_every_read_and_write_verb(backend: Backend) {
    let server = start(backend).await;
    let k = |args: &'static [&'static str]| {
        let server = &server;
        async move { server.kubectl("1.30", args).await.unwrap() }
    };
    let out = k(&["create", "configmap", "cfg", "--from-literal=a=1"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "configmap/cfg created");
    let again = k(&["create", "configmap", "cfg", "--from-literal=a=1"])
        .await
        .failed();
    assert!(
        again.stderr.contains("configmaps \"cfg\" already exists"),
        "{}",
        again.stderr
    );

    let object = k(&["get", "configmap", "cfg", "-o", "json"]).await.ok().json();
    assert_eq!(object["data"]["a"], "1");
    assert_eq!(object["metadata"]["namespace"], "default");
    assert!(
        object["metadata"]["uid"]
            .as_str()
            .is_some_and(|uid| uid.len() == 36)
    );
    assert!(
        object["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| rv.parse::<i64>().is_ok())
    );
    assert_eq!(
        k(&["get", "cm", "cfg", "-o", "name"]).await.ok().stdout.trim(),
        "configmap/cfg"
    );
    assert_eq!(
        k(&["get", "cm", "cfg", "-o", "jsonpath={.data.a}"])
            .await
            .ok()
            .stdout,
        "1"
    );
    assert!(
        k(&["get", "cm", "cfg", "-o", "yaml"])
            .await
            .ok()
            .stdout
            .contains("name: cfg")
    );

    k(&["label", "cm", "cfg", "team=blue"]).await.ok();
    k(&["annotate", "cm", "cfg", "note=hello"]).await.ok();
    k(&[
        "patch",
        "cm",
        "cfg",
        "--type=merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ])
    .await
    .ok();
    k(&[
        "patch",
        "cm",
        "cfg",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/data/c","value":"3"}]"#,
    ])
    .await
    .ok();
    k(&["patch", "cm", "cfg", "-p", r#"{"data":{"d":"4"}}"#])
        .await
        .ok(); // strategic, kubectl's default
    let object = server
        .kubectl("1.33", &["get", "cm", "cfg", "-o", "json"])
        .await
        .unwrap()
        .ok()
        .json();
    assert_eq!(object["metadata"]["labels"]["team"], "blue");
    assert_eq!(object["metadata"]["annotations"]["note"], "hello");
    assert_eq!(
        object["data"],
        serde_json::json!({"a": "1", "b": "2", "c": "3", "d": "4"})
    );

    assert!(
        k(&["get", "cm", "-l", "team=blue", "-o", "name"])
            .await
            .ok()
            .stdout
            .contains("configmap/cfg")
    );
    assert!(
        k(&["get", "cm", "-l", "team=red", "-o", "name"])
            .await
            .ok()
            .stdout
            .trim()
            .is_empty()
    );
    let all = server
        .kubectl(
            "1.27",
            &[
                "get",
                "cm",
                "-A",
                "--field-selector",
                "metadata.name=cfg",
                "-o",
                "name",
            ],
        )
        .await
        .unwrap()
        .ok();
    assert_eq!(all.stdout.trim(), "configmap/cfg");

    assert_eq!(
        k(&["delete", "cm", "cfg"]).await.ok().stdout.trim(),
        "configmap \"cfg\" deleted"
    );
    let gone = k(&["get", "cm", "cfg"]).await.failed();
    assert!(
        gone.stderr
            .contains("Error from server (NotFound): configmaps \"cfg\" not found"),
        "{}",
        gone.stderr
    );
    let missing_ns = k(&["create", "cm", "x", "-n", "nope", "--from-literal=a=b"])
        .await
        .failed();
    assert!(
        missing_ns.stderr.contains("namespaces \"nope\" not found"),
        "{}",
        missing_ns.stderr
    );
}

async fn deployments_scale_and_patch_strategically(backend: Backend) {
    let server = start(backend).await;
    let k = |args: &'static [&'static str]| {
        let server = &server;
        async move { server.kubectl("1.30", args).await.unwrap() }
    };
    k(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=2",
        "--port=80",
    ])
    .await
    .ok();
    let created = k(&["get", "deploy", "web", "-o", "json"]).await.ok().json();
    assert_eq!(created["metadata"]["generation"], 1);

    assert_eq!(
        k(&["scale", "deploy", "web", "--replicas=5"])
            .await
            .ok()
            .stdout
            .trim(),
        "deployment.apps/web scaled"
    );
    let scale = server
        .curl(&["/apis/apps/v1/namespaces/default/deployments/web/scale"])
        .await
        .unwrap()
        .json();
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(5))
    );
    assert_eq!(scale["status"]["selector"], "app=web");

    k(&["set", "image", "deploy/web", "nginx=nginx:1.26"]).await.ok();
    // A strategic patch by merge key keeps the container's other fields.
    let patch = r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"A","value":"1"}]}]}}}}"#;
    server
        .kubectl("1.33", &["patch", "deploy", "web", "-p", patch])
        .await
        .unwrap()
        .ok();
    let object = k(&["get", "deploy", "web", "-o", "json"]).await.ok().json();
    let container = &object["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.26");
    assert_eq!(container["ports"][0]["containerPort"], 80);
    assert_eq!(container["env"][0]["name"], "A");
    assert_eq!(object["spec"]["replicas"], 5);
    assert_eq!(
        object["metadata"]["generation"], 4,
        "scale, image and env each changed the spec"
    );

    let stale = server
        .curl(&[
            "/apis/apps/v1/namespaces/default/deployments/web",
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/merge-patch+json",
            "-d",
            r#"{"metadata":{"resourceVersion":"1"},"spec":{"replicas":1}}"#,
        ])
        .await
        .unwrap();
    assert_eq!(
        stale.code, 409,
        "a stale resourceVersion in a patch is a conflict: {}",
        stale.body
    );
}

async fn get_watch_sees_concurrent_changes(backend: Backend) {
    let server = start(backend).await;
    for version in ["1.30", "1.33"] {
        for table in [false, true] {
            let name = format!("watched-{}-{table}", version.replace('.', "-"));
            // `-o json` watches objects; the default output watches server-side Tables, one row per event.
            let mut args = vec!["get", "cm", "-w", "--output-watch-events", "--request-timeout=6s"];
            if !table {
                args.extend(["-o", "json"]);
            }
            let watch = server.kubectl(version, &args);
            let changes = async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                server
                    .kubectl("1.30", &["create", "cm", &name, "--from-literal=a=b"])
                    .await
                    .unwrap()
                    .ok();
                server
                    .kubectl("1.30", &["label", "cm", &name, "x=y"])
                    .await
                    .unwrap()
                    .ok();
                server
                    .kubectl("1.30", &["delete", "cm", &name])
                    .await
                    .unwrap()
                    .ok();
            };
            let (watched, ()) = tokio::join!(watch, changes);
            let stdout = watched.unwrap().stdout;
            let kinds: Vec<String> = if table {
                // One header, then `EVENT NAME DATA AGE` rows.
                let header: Vec<&str> = stdout
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect();
                assert_eq!(header, ["EVENT", "NAME", "DATA", "AGE"], "{version}: {stdout}");
                stdout
                    .lines()
                    .filter(|line| line.split_whitespace().nth(1) == Some(name.as_str()))
                    .map(|line| {
                        let cells: Vec<&str> = line.split_whitespace().collect();
                        assert_eq!(cells[2], "1", "{version}: one data key: {line}");
                        cells[0].to_owned()
                    })
                    .collect()
            } else {
                // One JSON watch event per change, in order.
                serde_json::Deserializer::from_str(&stdout)
                    .into_iter::<Value>()
                    .map(|event| event.expect("watch output is a sequence of JSON events"))
                    .filter(|event| event["object"]["metadata"]["name"] == name.as_str())
                    .map(|event| event["type"].as_str().unwrap_or_default().to_owned())
                    .collect()
            };
            assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"], "{version}: {stdout}");
        }
    }
}

async fn delete_honours_each_cascade_policy(backend: Backend) {
    let server = start(backend).await;
    for cascade in ["background", "foreground", "orphan"] {
        let name = format!("web-{cascade}");
        server
            .kubectl("1.30", &["create", "deployment", &name, "--image=nginx"])
            .await
            .unwrap()
            .ok();
        let out = server
            .kubectl(
                "1.30",
                &["delete", "deploy", &name, &format!("--cascade={cascade}")],
            )
            .await
            .unwrap()
            .ok();
        assert!(
            out.stdout
                .contains(&format!("deployment.apps \"{name}\" deleted")),
            "{}",
            out.stdout
        );
        let gone = server
            .kubectl("1.30", &["get", "deploy", &name])
            .await
            .unwrap()
            .failed();
        assert!(gone.stderr.contains("NotFound"), "{cascade}: {}", gone.stderr);
    }
}

async fn wait_for_delete_returns_when_the_last_finalizer_goes(backend: Backend) {
    let server = start(backend).await;
    let k = |args: &'static [&'static str]| {
        let server = &server;
        async move { server.kubectl("1.30", args).await.unwrap() }
    };
    k(&["create", "cm", "held", "--from-literal=a=b"]).await.ok();
    k(&[
        "patch",
        "cm",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])
    .await
    .ok();
    k(&["delete", "cm", "held", "--wait=false"]).await.ok();
    let held = k(&["get", "cm", "held", "-o", "json"]).await.ok().json();
    assert!(
        held["metadata"]["deletionTimestamp"].is_string(),
        "marked for deletion, kept by its finalizer"
    );
    let added = k(&[
        "patch",
        "cm",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold","another"]}}"#,
    ])
    .await
    .failed();
    assert!(
        added.stderr.contains("no new finalizers can be added"),
        "{}",
        added.stderr
    );
    let wait = server.kubectl("1.33", &["wait", "--for=delete", "cm/held", "--timeout=30s"]);
    let release = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        k(&[
            "patch",
            "cm",
            "held",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ])
        .await
        .ok();
    };
    let (waited, ()) = tokio::join!(wait, release);
    let waited = waited.unwrap().ok();
    assert!(
        waited.stdout.contains("configmap/held condition met"),
        "{}",
        waited.stdout
    );
}

async fn deleting_a_namespace_deletes_its_contents(backend: Backend) {
    let server = start(backend).await;
    let k = |args: &'static [&'static str]| {
        let server = &server;
        async move { server.kubectl("1.30", args).await.unwrap() }
    };
    k(&["create", "namespace", "team-a"]).await.ok();
    k(&["create", "cm", "one", "-n", "team-a", "--from-literal=a=b"])
        .await
        .ok();
    k(&["create", "deployment", "web", "-n", "team-a", "--image=nginx"])
        .await
        .ok();
    let ns = k(&["get", "ns", "team-a", "-o", "json"]).await.ok().json();
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "team-a");
    k(&["delete", "namespace", "team-a", "--wait=false"]).await.ok();
    let refused = k(&["create", "cm", "late", "-n", "team-a", "--from-literal=a=b"]).await;
    if !refused.success {
        assert!(
            refused.stderr.contains("being terminated") || refused.stderr.contains("not found"),
            "{}",
            refused.stderr
        );
    }
    eventually("the namespace to go", || async {
        (!k(&["get", "ns", "team-a"]).await.success).then_some(())
    })
    .await;
    let cms = server
        .curl(&["/api/v1/namespaces/team-a/configmaps"])
        .await
        .unwrap()
        .json();
    assert_eq!(cms["items"], Value::Array(vec![]));
}

async fn describe_shows_a_deployment(backend: Backend) {
    let server = start(backend).await;
    server
        .kubectl(
            "1.30",
            &[
                "create",
                "deployment",
                "web",
                "--image=nginx:1.25",
                "--replicas=3",
            ],
        )
        .await
        .unwrap()
        .ok();
    for version in ["1.30", "1.33"] {
        let out = server
            .kubectl(version, &["describe", "deployment", "web"])
            .await
            .unwrap()
            .ok();
        assert!(
            out.stdout.contains("Name:") && out.stdout.contains("web"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("nginx:1.25"), "{}", out.stdout);
    }
}
