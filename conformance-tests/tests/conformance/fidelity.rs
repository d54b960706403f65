//! Objects as kube-apiserver shows them: the defaults of `kubectl get -o json` after `kubectl apply`, checked
//! field by field against what the Kubernetes 1.33 API reference gives for the same input; kube's validation
//! errors (422 with the field); and `fieldValidation` (kubectl's `--validate`) for misspelt fields. With
//! kubectl 1.27, 1.30 and 1.33, which all send `fieldValidation=Strict` by default.

use flotilla_conformance_tests::{Backend, TestApiserver};
use serde_json::{Value, json};

crate::on_both_backends!(
    applied_objects_show_kubes_defaults,
    invalid_objects_are_refused_with_the_field,
    misspelt_fields_follow_validate,
    server_side_apply_owns_fields_and_reports_conflicts,
    prune_works_with_kubectls_default_allowlist,
    configmaps_and_secrets_from_files,
);

const VERSIONS: [&str; 3] = ["1.27", "1.30", "1.33"];

const MANIFESTS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
        env:
        - name: NODE
          valueFrom:
            fieldRef: {fieldPath: spec.nodeName}
        readinessProbe:
          httpGet: {port: 80}
        resources:
          limits: {cpu: 500m, memory: 128Mi}
        volumeMounts:
        - {name: config, mountPath: /etc/shop}
      - name: sidecar
        image: busybox
      volumes:
      - name: config
        configMap: {name: shop}
      - name: scratch
        emptyDir: {}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: report
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: report
        image: busybox:1.36
---
apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  type: LoadBalancer
  selector: {app: shop}
  ports:
  - {name: http, port: 80}
  - {name: https, port: 443, targetPort: 8443}
---
apiVersion: v1
kind: Secret
metadata:
  name: shop
stringData: {password: s3cret}
---
apiVersion: v1
kind: Service
metadata:
  name: shop-internal
spec:
  selector: {app: shop}
  ports:
  - {port: 8080, targetPort: http}
---
apiVersion: v1
kind: Service
metadata:
  name: shop-nodes
spec:
  type: NodePort
  selector: {app: shop}
  ports:
  - {port: 80}
---
apiVersion: v1
kind: Service
metadata:
  name: shop-db
spec:
  type: ExternalName
  externalName: db.example.com
---
apiVersion: v1
kind: Service
metadata:
  name: shop-peers
spec:
  clusterIP: None
  selector: {app: shop}
  ports:
  - {port: 5432}
---
apiVersion: v1
kind: Service
metadata:
  name: shop-external
spec:
  clusterIP: None
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: shop
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: shop}
  maxReplicas: 10
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
  - type: External
    external:
      metric:
        name: queue_depth
        selector: {matchLabels: {queue: orders}}
      target: {type: AverageValue, averageValue: "30"}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
spec:
  tls:
  - hosts: [shop.example.com]
    secretName: shop-tls
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: shop
            port: {name: http}
"#;

/// `kubectl get <args> -o json`, parsed.
async fn get_json(server: &TestApiserver, version: &str, args: &[&str]) -> Value {
    let mut command = vec!["get"];
    command.extend_from_slice(args);
    command.extend(["-o", "json"]);
    server.kubectl(version, &command).await.unwrap().ok().json()
}

async fn applied_objects_show_kubes_defaults(backend: Backend) {
    let server = TestApiserver::start(backend).await.unwrap();
    let file = server.dir().join("shop.yaml");
    std::fs::write(&file, MANIFESTS).unwrap();
    let file = file.to_str().unwrap();
    for version in VERSIONS {
        let namespace = format!("shop-{}", version.replace('.', "-"));
        server
            .kubectl(version, &["create", "namespace", &namespace])
            .await
            .unwrap()
            .ok();
        server
            .kubectl(version, &["apply", "-n", &namespace, "-f", file])
            .await
            .unwrap()
            .ok();
        let get = |what: &'static str| {
            let (server, namespace) = (&server, namespace.clone());
            async move { get_json(server, version, &["-n", &namespace, what]).await }
        };

        let deployment = get("deployment/shop").await;
        assert_eq!(deployment["status"], json!({}), "{version}: kube's zero status");
        let spec = &deployment["spec"];
        assert_eq!(spec["replicas"], 1, "{version}");
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        assert_eq!(
            spec["template"]["metadata"],
            json!({"creationTimestamp": null, "labels": {"app": "shop"}}),
            "kube writes a template's zero timestamp as null"
        );
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
        assert_eq!(web["ports"][0], json!({"containerPort": 80, "protocol": "TCP"}));
        assert_eq!(
            web["env"][0]["valueFrom"]["fieldRef"],
            json!({"apiVersion": "v1", "fieldPath": "spec.nodeName"})
        );
        assert_eq!(
            web["readinessProbe"],
            json!({"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}, "failureThreshold": 3,
                "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1})
        );
        // Limits are not copied to requests in a template (kube does that for pods only).
        assert_eq!(
            web["resources"],
            json!({"limits": {"cpu": "500m", "memory": "128Mi"}})
        );
        let sidecar = &pod["containers"][1];
        assert_eq!(sidecar["imagePullPolicy"], "Always");
        assert_eq!(sidecar["resources"], json!({}));
        assert_eq!(
            pod["volumes"],
            json!([{"name": "config", "configMap": {"name": "shop", "defaultMode": 420}},
                {"name": "scratch", "emptyDir": {}}])
        );

        let job = get("job/report").await;
        let uid = job["metadata"]["uid"].as_str().unwrap().to_owned();
        let spec = &job["spec"];
        assert_eq!(spec["completions"], 1, "{version}");
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        );
        assert_eq!(
            spec["template"]["metadata"]["labels"],
            json!({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "report",
                "controller-uid": uid, "job-name": "report"})
        );

        let service = get("service/shop").await;
        let spec = &service["spec"];
        assert_eq!(spec["sessionAffinity"], "None", "{version}");
        assert_eq!(spec["externalTrafficPolicy"], "Cluster");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        // Allocated as a cluster's apiserver does: a cluster IP from 10.96.0.0/12 (its upper band) and a node
        // port per port from 30000-32767.
        let ip: std::net::Ipv4Addr = spec["clusterIP"].as_str().unwrap().parse().unwrap();
        let [a, b, _, _] = ip.octets();
        assert!(
            a == 10 && (96..112).contains(&b) && ip > std::net::Ipv4Addr::new(10, 96, 1, 0),
            "{ip}"
        );
        assert_eq!(spec["clusterIPs"], json!([ip.to_string()]));
        let mut ports = spec["ports"].clone();
        let node_ports: Vec<i64> = ports
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .map(|p| {
                p.as_object_mut()
                    .unwrap()
                    .remove("nodePort")
                    .unwrap()
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert!(
            node_ports.iter().all(|p| (30000..=32767).contains(p)),
            "{node_ports:?}"
        );
        assert_ne!(node_ports[0], node_ports[1]);
        assert_eq!(
            ports,
            json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}])
        );

        let secret = get("secret/shop").await;
        assert_eq!(secret["type"], "Opaque", "{version}");
        assert_eq!(secret["data"], json!({"password": "czNjcmV0"}));

        // A Service of each other type, field by field (allocated addresses and ports checked, then set aside).
        let allocated = |spec: &Value| {
            let mut spec = spec.clone();
            let ip = spec["clusterIP"].as_str().unwrap_or_default().to_owned();
            assert!(ip.starts_with("10."), "{version}: {spec}");
            assert_eq!(spec["clusterIPs"], json!([ip]));
            let map = spec.as_object_mut().unwrap();
            map.remove("clusterIP");
            map.remove("clusterIPs");
            spec
        };
        let internal = get("service/shop-internal").await;
        assert_eq!(
            allocated(&internal["spec"]),
            json!({"internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "ports": [{"port": 8080, "protocol": "TCP", "targetPort": "http"}], "selector": {"app": "shop"},
                "sessionAffinity": "None", "type": "ClusterIP"}),
            "{version}"
        );
        assert_eq!(internal["status"], json!({"loadBalancer": {}}));
        let mut nodes = allocated(&get("service/shop-nodes").await["spec"]);
        let node_port = nodes["ports"][0].as_object_mut().unwrap().remove("nodePort");
        assert!(
            node_port
                .and_then(|p| p.as_i64())
                .is_some_and(|p| (30000..=32767).contains(&p))
        );
        assert_eq!(
            nodes,
            json!({"externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack", "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "selector": {"app": "shop"}, "sessionAffinity": "None", "type": "NodePort"}),
            "{version}"
        );
        assert_eq!(
            get("service/shop-db").await["spec"],
            json!({"externalName": "db.example.com", "sessionAffinity": "None", "type": "ExternalName"}),
            "{version}"
        );
        assert_eq!(
            get("service/shop-peers").await["spec"],
            json!({"clusterIP": "None", "clusterIPs": ["None"], "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "ports": [{"port": 5432, "protocol": "TCP", "targetPort": 5432}], "selector": {"app": "shop"},
                "sessionAffinity": "None", "type": "ClusterIP"}),
            "{version}"
        );
        // Headless without a selector: kube asks for both families, even of a single-stack cluster.
        assert_eq!(
            get("service/shop-external").await["spec"],
            json!({"clusterIP": "None", "clusterIPs": ["None"], "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack",
                "sessionAffinity": "None", "type": "ClusterIP"}),
            "{version}"
        );

        // An autoscaling/v2 HPA with a resource and an external metric: only minReplicas is defaulted.
        assert_eq!(
            get("horizontalpodautoscaler.v2.autoscaling/shop").await["spec"],
            json!({"maxReplicas": 10, "minReplicas": 1,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "External", "external": {
                        "metric": {"name": "queue_depth", "selector": {"matchLabels": {"queue": "orders"}}},
                        "target": {"type": "AverageValue", "averageValue": "30"}}}],
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop"}}),
            "{version}"
        );

        // An Ingress with TLS: nothing is defaulted; the status is an empty load balancer.
        let ingress = get("ingress/shop").await;
        assert_eq!(
            ingress["spec"],
            json!({"tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
                "rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "shop", "port": {"name": "http"}}}}]}}]}),
            "{version}"
        );
        assert_eq!(ingress["status"], json!({"loadBalancer": {}}));

        // The defaults are the server's: re-applying the same file changes nothing (but the Secret, whose
        // `stringData` kube never stores, so kubectl sends it again every time), and diff sees no difference.
        let again = server
            .kubectl(version, &["apply", "-n", &namespace, "-f", file])
            .await
            .unwrap()
            .ok();
        assert!(
            again
                .stdout
                .lines()
                .all(|l| l.ends_with("unchanged") || l == "secret/shop configured"),
            "{version}: {}",
            again.stdout
        );
        let diff = server
            .kubectl(version, &["diff", "-n", &namespace, "-f", file])
            .await
            .unwrap();
        assert_eq!(diff.code, 0, "{version}: {}{}", diff.stdout, diff.stderr);
    }
}

async fn invalid_objects_are_refused_with_the_field(backend: Backend) {
    let server = TestApiserver::start(backend).await.unwrap();
    let cases = [
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  selector: {matchLabels: {app: a}}\n  \
             template:\n    metadata: {labels: {app: b}}\n    spec:\n      containers: [{name: c, image: nginx}]\n",
            "deployment/bad",
            "The Deployment \"bad\" is invalid: spec.template.metadata.labels: Invalid value: {\"app\":\"b\"}: \
             `selector` does not match template `labels`",
        ),
        (
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: bad}\nspec:\n  template:\n    spec:\n      \
             containers: [{name: c, image: busybox}]\n",
            "job/bad",
            "The Job \"bad\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Always\": \
             supported values: \"OnFailure\", \"Never\"",
        ),
        (
            "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: bad}\nspec:\n  \
             scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 5\n  maxReplicas: 2\n",
            "hpa/bad",
            "The HorizontalPodAutoscaler \"bad\" is invalid: spec.maxReplicas: Invalid value: 2: must be greater \
             than or equal to `minReplicas`",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec:\n  ports: [{port: 80}, {port: 81}]\n",
            "service/bad",
            "The Service \"bad\" is invalid: \n* spec.ports[0].name: Required value\n* spec.ports[1].name: Required value",
        ),
        (
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: bad}\nspec:\n  selector: {matchLabels: {app: a}}\n  \
             template:\n    metadata: {labels: {app: a}}\n    spec:\n      containers:\n      - name: c\n        \
             image: nginx\n        volumeMounts: [{name: data, mountPath: /data}]\n        \
             resources: {requests: {cpu: '2'}, limits: {cpu: 500m}}\n        livenessProbe: {periodSeconds: 5}\n",
            "statefulset/bad",
            "The StatefulSet \"bad\" is invalid: \n* spec.template.spec.containers[0].volumeMounts[0].name: Not found: \
             \"data\"\n* spec.template.spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less \
             than or equal to cpu limit of 500m\n* spec.template.spec.containers[0].livenessProbe: Required value: must \
             specify a handler type",
        ),
        (
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: bad}\nspec:\n  selector: {matchLabels: {app: a}}\n  \
             template:\n    metadata: {labels: {app: a}}\n    spec:\n      \
             tolerations: [{key: gpu, operator: Bogus}]\n      \
             topologySpreadConstraints: [{maxSkew: 0, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}]\n      \
             containers:\n      - name: c\n        image: nginx\n        \
             env: [{name: A, valueFrom: {configMapKeyRef: {name: c, key: k}, secretKeyRef: {name: s, key: k}}}]\n        \
             securityContext: {runAsUser: -1}\n",
            "daemonset/bad",
            "The DaemonSet \"bad\" is invalid: \n* spec.template.spec.containers[0].env[0].valueFrom: Invalid value: \"\": \
             may not have more than one field specified at a time\n* \
             spec.template.spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and \
             2147483647, inclusive\n* spec.template.spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must \
             be greater than zero\n* spec.template.spec.tolerations[0].operator: Unsupported value: \"Bogus\": \
             supported values: \"Equal\", \"Exists\"",
        ),
    ];
    for version in VERSIONS {
        for (manifest, what, message) in cases {
            let file = server.dir().join("bad.yaml");
            std::fs::write(&file, manifest).unwrap();
            let out = server
                .kubectl(version, &["apply", "-f", file.to_str().unwrap()])
                .await
                .unwrap()
                .failed();
            assert!(out.stderr.contains(message), "{version} {what}: {}", out.stderr);
            let get = server.kubectl(version, &["get", what]).await.unwrap().failed();
            assert!(
                get.stderr.contains("NotFound"),
                "{version} {what}: nothing written"
            );
        }
    }
}

async fn misspelt_fields_follow_validate(backend: Backend) {
    let server = TestApiserver::start(backend).await.unwrap();
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: NAME}\ndata: {a: b}\ndatta: {c: d}\n";
    for version in VERSIONS {
        let name = format!("typo-{}", version.replace('.', "-"));
        let file = server.dir().join(format!("{name}.yaml"));
        std::fs::write(&file, manifest.replace("NAME", &name)).unwrap();
        let file = file.to_str().unwrap();
        // kubectl's default is --validate=strict: refused, nothing written.
        let strict = server
            .kubectl(version, &["apply", "-f", file])
            .await
            .unwrap()
            .failed();
        assert!(
            strict.stderr.contains("unknown field \"datta\""),
            "{version}: {}",
            strict.stderr
        );
        server
            .kubectl(version, &["get", "configmap", &name])
            .await
            .unwrap()
            .failed();
        // Warn: written without the unknown field, with a warning.
        let warn = server
            .kubectl(version, &["apply", "--validate=warn", "-f", file])
            .await
            .unwrap()
            .ok();
        assert!(
            warn.stderr.contains("unknown field \"datta\""),
            "{version}: {}",
            warn.stderr
        );
        let stored = get_json(&server, version, &[&format!("configmap/{name}")]).await;
        assert_eq!(stored["data"], json!({"a": "b"}));
        assert!(stored.get("datta").is_none(), "{version}: {stored}");
        // Ignore: no warning.
        let ignore = server
            .kubectl(
                version,
                &["create", "--validate=false", "-f", file, "--dry-run=server"],
            )
            .await
            .unwrap();
        assert!(!ignore.stderr.contains("datta"), "{version}: {}", ignore.stderr);
    }
    // The server's own message, as a raw request shows it.
    let response = server
        .curl(&[
            "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"raw"},"datta":{}}"#,
        ])
        .await
        .unwrap();
    assert_eq!(response.code, 400, "{}", response.body);
    assert_eq!(
        response.json()["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"datta\""
    );
    // A repeated field: refused under Strict; under Warn the last one is kept, as kube keeps it.
    let repeated = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"twice"},"data":{"a":"1"},"data":{"b":"2"}}"#;
    for (validation, code) in [("Strict", 400), ("Warn", 201)] {
        let response = server
            .curl(&[
                &format!("/api/v1/namespaces/default/configmaps?fieldValidation={validation}"),
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "--data",
                repeated,
            ])
            .await
            .unwrap();
        assert_eq!(response.code, code, "{validation}: {}", response.body);
        if code == 400 {
            assert!(
                response.json()["message"]
                    .as_str()
                    .unwrap_or_default()
                    .ends_with("strict decoding error: duplicate field \"data\""),
                "{}",
                response.body
            );
        } else {
            assert_eq!(response.json()["data"], json!({"b": "2"}));
        }
    }
    // So is one inside a merge or strategic merge patch, in the words kube uses for patches; Warn warns.
    for patch_type in ["merge-patch", "strategic-merge-patch"] {
        let content_type = format!("Content-Type: application/{patch_type}+json");
        let patch = |validation: &'static str| {
            let content_type = content_type.clone();
            let server = &server;
            async move {
                server
                    .curl(&[
                        &format!("/api/v1/namespaces/default/configmaps/twice?fieldValidation={validation}"),
                        "-X",
                        "PATCH",
                        "-H",
                        &content_type,
                        "-i",
                        "--data",
                        r#"{"data":{"c":"3","c":"4"}}"#,
                    ])
                    .await
                    .unwrap()
            }
        };
        let refused = patch("Strict").await;
        assert_eq!(refused.code, 400, "{patch_type}: {}", refused.body);
        let message = r#""message":"strict decoding error: duplicate field \"data.c\"""#;
        assert!(refused.body.contains(message), "{patch_type}: {}", refused.body);
        let warned = patch("Warn").await;
        assert_eq!(warned.code, 200, "{patch_type}: {}", warned.body);
        let warning = r#"warning: 299 - "duplicate field \"data.c\"""#;
        assert!(
            warned.body.to_lowercase().contains(warning),
            "{patch_type}: {}",
            warned.body
        );
        assert!(warned.body.contains(r#""c":"4""#), "{}", warned.body);
    }
}

fn applied(name: &str, replicas: u32, labels: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  \
         replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      \
         labels: {{app: {name}}}\n    spec:\n      containers:\n      - {{name: web, image: nginx}}\n"
    )
}

async fn server_side_apply_owns_fields_and_reports_conflicts(backend: Backend) {
    let server = TestApiserver::start(backend).await.unwrap();
    for version in VERSIONS {
        let name = format!("ssa-{}", version.replace('.', "-"));
        let write = |file: &str, text: String| {
            let path = server.dir().join(file);
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let first = write("ssa-1.yaml", applied(&name, 2, "app: web, tier: front, team: x"));
        let out = server
            .kubectl(version, &["apply", "--server-side", "-f", &first])
            .await
            .unwrap()
            .ok();
        assert_eq!(
            out.stdout.trim(),
            format!("deployment.apps/{name} serverside-applied"),
            "{version}"
        );
        let object = get_json(&server, version, &["deploy", &name, "--show-managed-fields"]).await;
        let managers: Vec<(String, String)> = object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap().to_owned(),
                    e["operation"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            managers,
            [("kubectl".to_owned(), "Apply".to_owned())],
            "{version}: {object}"
        );
        assert_eq!(
            object["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:replicas"],
            json!({})
        );

        // Another manager applying another replica count conflicts, and nothing changes.
        let other = write("ssa-2.yaml", applied(&name, 5, "app: web, tier: front"));
        let conflict = server
            .kubectl(
                version,
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=autoscaler",
                    "-f",
                    &other,
                ],
            )
            .await
            .unwrap()
            .failed();
        assert!(
            conflict.stderr.contains(
                "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas"
            ),
            "{version}: {}",
            conflict.stderr
        );
        let replicas = server
            .kubectl(
                version,
                &["get", "deploy", &name, "-o", "jsonpath={.spec.replicas}"],
            )
            .await
            .unwrap()
            .ok();
        assert_eq!(replicas.stdout, "2", "{version}");
        // Forced, the field changes hands.
        server
            .kubectl(
                version,
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=autoscaler",
                    "--force-conflicts",
                    "-f",
                    &other,
                ],
            )
            .await
            .unwrap()
            .ok();
        let object = get_json(&server, version, &["deploy", &name, "--show-managed-fields"]).await;
        assert_eq!(object["spec"]["replicas"], 5, "{version}");
        let fields = |manager: &str| {
            object["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["manager"] == manager)
                .map(|e| e["fieldsV1"].clone())
                .unwrap_or_default()
        };
        assert!(
            fields("kubectl")["f:spec"].get("f:replicas").is_none(),
            "{version}: {object}"
        );
        assert_eq!(fields("autoscaler")["f:spec"]["f:replicas"], json!({}));

        // The first manager drops two labels: `team`, which it alone applied, goes; `tier`, which the autoscaler's
        // configuration holds too, stays.
        let fewer = write("ssa-3.yaml", applied(&name, 5, "app: web"));
        server
            .kubectl(version, &["apply", "--server-side", "-f", &fewer])
            .await
            .unwrap()
            .ok();
        let labels = server
            .kubectl(
                version,
                &["get", "deploy", &name, "-o", "jsonpath={.metadata.labels}"],
            )
            .await
            .unwrap()
            .ok();
        assert!(
            labels.stdout.contains("\"tier\":\"front\""),
            "{version}: {}",
            labels.stdout
        );
        assert!(!labels.stdout.contains("team"), "{version}: {}", labels.stdout);
        // Re-applying the same configuration changes nothing, and diff agrees.
        let diff = server
            .kubectl(version, &["diff", "--server-side", "-f", &fewer])
            .await
            .unwrap();
        assert_eq!(diff.code, 0, "{version}: {}{}", diff.stdout, diff.stderr);
    }
}

fn labelled_config_map(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {{app: pruned}}\ndata: {{a: '1'}}\n"
    )
}

/// kubectl's default prune allowlist names kinds Flotilla does not federate (pods, PVCs, cron jobs, …); they are
/// listed, always empty, so that `apply --prune -l` works without `--prune-allowlist`, and refuse writes with a
/// 405 that says why.
async fn prune_works_with_kubectls_default_allowlist(backend: Backend) {
    let server = TestApiserver::start(backend).await.unwrap();
    for version in VERSIONS {
        let namespace = format!("prune-{}", version.replace('.', "-"));
        server
            .kubectl(version, &["create", "namespace", &namespace])
            .await
            .unwrap()
            .ok();
        let dir = server.dir().join(&namespace);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.yaml"), labelled_config_map("a")).unwrap();
        std::fs::write(dir.join("b.yaml"), labelled_config_map("b")).unwrap();
        let dir_arg = dir.to_str().unwrap();
        let prune = [
            "apply",
            "-n",
            &namespace,
            "--prune",
            "-l",
            "app=pruned",
            "-f",
            dir_arg,
        ];
        let out = server.kubectl(version, &prune).await.unwrap().ok();
        assert!(
            out.stdout.contains("configmap/b created"),
            "{version}: {}",
            out.stdout
        );

        std::fs::remove_file(dir.join("b.yaml")).unwrap();
        let out = server.kubectl(version, &prune).await.unwrap().ok();
        assert!(
            out.stdout.contains("configmap/a unchanged"),
            "{version}: {}",
            out.stdout
        );
        assert!(
            out.stdout.contains("configmap/b pruned"),
            "{version}: {}",
            out.stdout
        );
        let gone = server
            .kubectl(version, &["get", "-n", &namespace, "configmap", "b"])
            .await
            .unwrap()
            .failed();
        assert!(gone.stderr.contains("NotFound"), "{version}: {}", gone.stderr);

        let pods = server
            .kubectl(version, &["get", "pods", "-n", &namespace])
            .await
            .unwrap()
            .ok();
        assert!(
            pods.stderr.contains("No resources found"),
            "{version}: {}",
            pods.stderr
        );
        let run = server
            .kubectl(version, &["run", "-n", &namespace, "web", "--image=nginx"])
            .await
            .unwrap()
            .failed();
        assert!(
            run.stderr.contains("(MethodNotAllowed)") && run.stderr.contains("pods are not federated"),
            "{version}: {}",
            run.stderr
        );
        let all = server
            .kubectl(version, &["get", "all", "-n", &namespace])
            .await
            .unwrap()
            .ok();
        assert!(
            all.stderr.contains("No resources found"),
            "{version}: {}",
            all.stderr
        );
    }
    let resources = server
        .kubectl("1.33", &["api-resources", "-o", "wide", "--api-group="])
        .await
        .unwrap()
        .ok();
    let pods = resources
        .stdout
        .lines()
        .find(|l| l.starts_with("pods "))
        .expect("pods listed");
    assert!(
        pods.contains(" get,list,watch ") && pods.trim_end().ends_with(" all"),
        "{pods}"
    );
    let cronjobs = server
        .kubectl("1.33", &["api-resources", "-o", "wide", "--api-group=batch"])
        .await
        .unwrap()
        .ok();
    assert!(
        cronjobs.stdout.contains("cronjobs") && cronjobs.stdout.contains("cj"),
        "{}",
        cronjobs.stdout
    );
    let explain = server
        .kubectl("1.33", &["explain", "pods.spec.nodeName"])
        .await
        .unwrap()
        .ok();
    assert!(explain.stdout.contains("nodeName"), "{}", explain.stdout);
}

/// `kubectl create configmap|secret generic --from-file` (JSON bodies from 1.27 and 1.30, protobuf from 1.33):
/// text files become `data`, others a ConfigMap's `binaryData`, everything a Secret's base64 `data`, keyed by file
/// name or by the `key=` given.
async fn configmaps_and_secrets_from_files(backend: Backend) {
    use base64::Engine as _;
    let server = TestApiserver::start(backend).await.unwrap();
    let dir = server.dir().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let logo: &[u8] = &[0x89, b'P', b'N', b'G', 0xff, 0x00, 0x01];
    std::fs::write(dir.join("app.properties"), "color=blue\nsize=2\n").unwrap();
    std::fs::write(dir.join("logo.png"), logo).unwrap();
    let (dir, base64) = (dir.to_str().unwrap(), base64::engine::general_purpose::STANDARD);
    let renamed = format!("settings={dir}/app.properties");
    for version in VERSIONS {
        let name = format!("files-{}", version.replace('.', "-"));
        for args in [
            vec!["create", "configmap", name.as_str(), "--from-file", dir],
            vec!["create", "secret", "generic", name.as_str(), "--from-file", dir],
            vec!["create", "configmap", "renamed", "--from-file", renamed.as_str()],
        ] {
            server.kubectl(version, &args).await.unwrap().ok();
        }
        let configmap = get_json(&server, version, &["configmap", &name]).await;
        assert_eq!(
            (&configmap["data"], &configmap["binaryData"]),
            (
                &json!({"app.properties": "color=blue\nsize=2\n"}),
                &json!({"logo.png": base64.encode(logo)})
            ),
            "{version}"
        );
        let secret = get_json(&server, version, &["secret", &name]).await;
        assert_eq!(secret["type"], "Opaque", "{version}");
        assert_eq!(
            secret["data"],
            json!({"app.properties": base64.encode("color=blue\nsize=2\n"), "logo.png": base64.encode(logo)}),
            "{version}"
        );
        let renamed_map = get_json(&server, version, &["configmap", "renamed"]).await;
        assert_eq!(renamed_map["data"], json!({"settings": "color=blue\nsize=2\n"}));
        server
            .kubectl(version, &["delete", "configmap", "renamed"])
            .await
            .unwrap()
            .ok();
    }
}
