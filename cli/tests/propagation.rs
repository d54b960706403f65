//! Propagation end to end: real kubectl against `flotilla up`, three `flotilla member` processes as members,
//! and the member objects checked with kubectl in each member.

mod common;

use std::collections::BTreeMap;

use common::Federation;
use flotilla_api::federation::MANAGED_LABEL;
use flotilla_conformance_tests::eventually;
use flotilla_controller_manager::orphans::RECORD_LABEL;
use flotilla_controller_manager::planner::{self, Preferences};

const MEMBERS: &[(&str, &str)] = &[("m1", "region=eu"), ("m2", "region=us"), ("m3", "region=eu")];

fn deployment(name: &str, replicas: i64, annotations: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations: {annotations}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: web, image: nginx:1.25}}]
"#
    )
}

/// What federation v1's planner gives `total` replicas over the three members.
fn expected_split(preferences: &str, total: i64, key: &str) -> Vec<Option<i64>> {
    let preferences = Preferences::parse(preferences).unwrap();
    let clusters: Vec<String> = MEMBERS.iter().map(|(n, _)| (*n).to_owned()).collect();
    let plan = planner::plan(
        &preferences,
        total,
        &clusters,
        &BTreeMap::new(),
        &BTreeMap::new(),
        key,
    );
    clusters.iter().map(|c| Some(plan.replicas[c])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_split_by_preferences_scale_roll_out_and_delete() {
    let federation = Federation::start(MEMBERS).await;
    let preferences = r#"{"rebalance": true, "clusters": {"m1": {"weight": 2}, "m2": {"weight": 1}, "m3": {"weight": 1, "maxReplicas": 2}}}"#;
    let annotations = format!("{{federation.kubernetes.io/deployment-preferences: '{preferences}'}}");
    federation.apply(&deployment("web", 10, &annotations)).await.ok();
    let expected = expected_split(preferences, 10, "default/web");
    assert_eq!(expected.iter().flatten().sum::<i64>(), 10);
    eventually("the planned split in the members", || async {
        (federation.replicas("deployment/web", "/spec/replicas").await == expected).then_some(())
    })
    .await;
    federation
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await
        .ok();
    let status = federation
        .kubectl(&["get", "deployment", "web", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(status["status"]["availableReplicas"], 10);
    assert_eq!(
        status["status"]["observedGeneration"],
        status["metadata"]["generation"]
    );

    // Scaling re-splits.
    federation
        .kubectl(&["scale", "deployment/web", "--replicas=6"])
        .await
        .ok();
    let expected = expected_split(preferences, 6, "default/web");
    eventually("the re-split after scaling", || async {
        (federation.replicas("deployment/web", "/spec/replicas").await == expected).then_some(())
    })
    .await;
    federation
        .kubectl(&[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=30s",
        ])
        .await
        .ok();
    federation
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await
        .ok();
    let described = federation.kubectl(&["describe", "deployment", "web"]).await.ok();
    assert!(described.stdout.contains("in cluster m1"), "{}", described.stdout);

    // Deleting removes it everywhere (kubectl's default is Background).
    federation
        .kubectl(&["delete", "deployment", "web", "--wait=true", "--timeout=30s"])
        .await
        .ok();
    eventually("the copies to be gone", || async {
        federation
            .replicas("deployment/web", "/spec/replicas")
            .await
            .iter()
            .all(Option::is_none)
            .then_some(())
    })
    .await;
}

const EVERYTHING: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {color: blue}
---
apiVersion: v1
kind: Secret
metadata: {name: token, namespace: shop}
stringData: {token: s3cret}
---
apiVersion: v1
kind: Service
metadata: {name: front, namespace: shop}
spec:
  type: LoadBalancer
  selector: {app: front}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: front, namespace: shop}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: front, port: {number: 80}}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: shop}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: busybox:1.36}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: crunch, namespace: shop}
spec:
  completions: 12
  parallelism: 6
  template:
    spec:
      restartPolicy: Never
      containers: [{name: crunch, image: busybox:1.36}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: nginx:1.25}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: api, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  minReplicas: 3
  maxReplicas: 12
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: runner, namespace: shop}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: shop}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: runner-reads, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: runner, namespace: shop}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: shop-viewer}
rules: [{apiGroups: [apps], resources: [deployments], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: shop-viewers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: shop-viewer}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: shop-team}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      serviceAccountName: runner
      containers: [{name: db, image: postgres:16}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_reaches_every_member_and_status_adds_up() {
    let federation = Federation::start(MEMBERS).await;
    federation.apply(EVERYTHING).await.ok();
    for (member, _) in MEMBERS {
        eventually(&format!("everything in {member}"), || async {
            for object in [
                "namespace/shop",
                "configmap/settings",
                "secret/token",
                "service/front",
                "ingress/front",
                "daemonset/agent",
                "job/crunch",
                "hpa/api",
                "serviceaccount/runner",
                "role/reader",
                "rolebinding/runner-reads",
                "clusterrole/shop-viewer",
                "clusterrolebinding/shop-viewers",
                "statefulset/db",
            ] {
                let args = if object.starts_with("namespace") || object.starts_with("cluster") {
                    vec![object]
                } else {
                    vec![object, "-n", "shop"]
                };
                federation.member_object(member, &args).await?;
            }
            Some(())
        })
        .await;
        let secret = federation
            .member_object(member, &["secret/token", "-n", "shop"])
            .await
            .unwrap();
        assert_eq!(secret["data"]["token"], "czNjcmV0");
        let config = federation
            .member_object(member, &["configmap/settings", "-n", "shop"])
            .await
            .unwrap();
        assert_eq!(config["data"]["color"], "blue");
    }

    // The Job's completions and parallelism split over the three members, and it completes at the federation.
    let mut parts = Vec::new();
    for (member, _) in MEMBERS {
        let job = federation
            .member_object(member, &["job/crunch", "-n", "shop"])
            .await
            .unwrap();
        parts.push((
            job["spec"]["completions"].as_i64().unwrap(),
            job["spec"]["parallelism"].as_i64().unwrap(),
        ));
    }
    assert_eq!(parts.iter().map(|p| p.0).sum::<i64>(), 12, "{parts:?}");
    assert_eq!(parts.iter().map(|p| p.1).sum::<i64>(), 6, "{parts:?}");
    federation
        .kubectl(&[
            "wait",
            "--for=condition=Complete",
            "job/crunch",
            "-n",
            "shop",
            "--timeout=60s",
        ])
        .await
        .ok();
    let job = federation
        .kubectl(&["get", "job", "crunch", "-n", "shop", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(job["status"]["succeeded"], 12);

    // The HPA's bounds split: the maxima add up to 12, every minimum at least 1, together at least 3.
    let mut bounds = Vec::new();
    for (member, _) in MEMBERS {
        let hpa = federation
            .member_object(member, &["hpa/api", "-n", "shop"])
            .await
            .unwrap();
        bounds.push((
            hpa["spec"]["minReplicas"].as_i64().unwrap(),
            hpa["spec"]["maxReplicas"].as_i64().unwrap(),
        ));
    }
    assert_eq!(bounds.iter().map(|b| b.1).sum::<i64>(), 12, "{bounds:?}");
    assert!(
        bounds.iter().all(|b| b.0 >= 1) && bounds.iter().map(|b| b.0).sum::<i64>() >= 3,
        "{bounds:?}"
    );
    eventually("the HPA's status summed", || async {
        let hpa = federation
            .kubectl(&["get", "hpa", "api", "-n", "shop", "-o", "json"])
            .await
            .ok()
            .json();
        (hpa["status"]["currentReplicas"].as_i64().unwrap_or(0) >= 3).then_some(())
    })
    .await;

    // Load balancers: the union of the members' addresses.
    eventually("three load-balancer addresses on the Service", || async {
        let service = federation
            .kubectl(&["get", "service", "front", "-n", "shop", "-o", "json"])
            .await
            .ok()
            .json();
        (service["status"]["loadBalancer"]["ingress"]
            .as_array()
            .map(Vec::len)
            == Some(3))
        .then_some(())
    })
    .await;
    eventually("the DaemonSet's counts summed", || async {
        let ds = federation
            .kubectl(&["get", "daemonset", "agent", "-n", "shop", "-o", "json"])
            .await
            .ok()
            .json();
        (ds["status"]["numberReady"] == 9).then_some(())
    })
    .await;

    // Every member runs the whole StatefulSet; the federation's is rolled out when every member's is.
    federation
        .kubectl(&[
            "rollout",
            "status",
            "statefulset/db",
            "-n",
            "shop",
            "--timeout=60s",
        ])
        .await
        .ok();
    let db = federation
        .kubectl(&["get", "statefulset", "db", "-n", "shop", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(db["status"]["readyReplicas"], 2, "{db}");
    for (member, _) in MEMBERS {
        let copy = federation
            .member_object(member, &["statefulset/db", "-n", "shop"])
            .await
            .unwrap();
        assert_eq!(copy["spec"]["replicas"], 2);
    }
    let binding = federation
        .member_object(MEMBERS[0].0, &["clusterrolebinding/shop-viewers"])
        .await
        .unwrap();
    assert_eq!(binding["subjects"][0]["name"], "shop-team");

    // Orphaning leaves the copies; deleting the namespace removes the rest everywhere.
    federation
        .kubectl(&[
            "delete",
            "configmap",
            "settings",
            "-n",
            "shop",
            "--cascade=orphan",
        ])
        .await
        .ok();
    federation
        .kubectl(&["delete", "namespace", "shop", "--timeout=60s"])
        .await
        .ok();
    for (member, _) in MEMBERS {
        assert!(
            federation
                .member_object(member, &["configmap/settings", "-n", "shop"])
                .await
                .is_none()
                || federation
                    .member_object(member, &["namespace/shop"])
                    .await
                    .is_some(),
        );
        eventually(&format!("the namespace gone from {member}"), || async {
            federation
                .member_object(member, &["namespace/shop"])
                .await
                .is_none()
                .then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_copies_stay_and_drift_is_put_back() {
    let federation = Federation::start(MEMBERS).await;
    federation
        .kubectl(&["create", "configmap", "kept", "--from-literal=a=1"])
        .await
        .ok();
    federation
        .kubectl(&["create", "configmap", "watched", "--from-literal=a=1"])
        .await
        .ok();
    for (member, _) in MEMBERS {
        eventually(&format!("both in {member}"), || async {
            federation.member_object(member, &["configmap/watched"]).await?;
            federation.member_object(member, &["configmap/kept"]).await
        })
        .await;
    }
    federation
        .kubectl(&["delete", "configmap", "kept", "--cascade=orphan"])
        .await
        .ok();
    eventually("the federation object gone", || async {
        (!federation.kubectl(&["get", "configmap", "kept"]).await.success).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    for (member, _) in MEMBERS {
        let kept = federation
            .in_member(member, &["get", "configmap", "kept", "-o", "json"])
            .await;
        assert!(
            kept.success,
            "--cascade=orphan deleted the copy in {member}: {}\n{}",
            kept.stderr,
            federation
                .up_log()
                .lines()
                .filter(|l| l.contains("kept"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            kept.json()["metadata"]["labels"]
                .get(flotilla_api::federation::MANAGED_LABEL)
                .is_none(),
            "released"
        );
    }
    // Foreground deletion finishes (federation v1's hung forever) and removes the copies.
    federation
        .kubectl(&["create", "configmap", "foreground", "--from-literal=a=1"])
        .await
        .ok();
    eventually("the foreground copy in m3", || async {
        federation.member_object("m3", &["configmap/foreground"]).await
    })
    .await;
    federation
        .kubectl(&[
            "delete",
            "configmap",
            "foreground",
            "--cascade=foreground",
            "--timeout=30s",
        ])
        .await
        .ok();
    for (member, _) in MEMBERS {
        eventually(&format!("the foreground copy gone from {member}"), || async {
            federation
                .member_object(member, &["configmap/foreground"])
                .await
                .is_none()
                .then_some(())
        })
        .await;
    }
    // Someone edits a copy in a member: Flotilla puts it back.
    federation
        .in_member(
            "m2",
            &[
                "patch",
                "configmap",
                "watched",
                "--type=merge",
                "-p",
                r#"{"data":{"a":"changed"}}"#,
            ],
        )
        .await
        .ok();
    eventually("the drift repaired", || async {
        let copy = federation.member_object("m2", &["configmap/watched"]).await?;
        (copy["data"]["a"] == "1").then_some(())
    })
    .await;
    // A member object Flotilla did not create is left alone.
    federation
        .in_member(
            "m1",
            &["create", "configmap", "theirs", "--from-literal=owner=m1"],
        )
        .await
        .ok();
    federation
        .kubectl(&["create", "configmap", "theirs", "--from-literal=owner=federation"])
        .await
        .ok();
    eventually("the copy in m3", || async {
        federation.member_object("m3", &["configmap/theirs"]).await
    })
    .await;
    let theirs = federation
        .member_object("m1", &["configmap/theirs"])
        .await
        .unwrap();
    assert_eq!(theirs["data"]["owner"], "m1");
    let events = federation
        .kubectl(&["get", "events", "-o", "json"])
        .await
        .ok()
        .json();
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"AlreadyExistsInCluster"), "{reasons:?}");
    // Deleting the federation object removes Flotilla's copies only.
    federation
        .kubectl(&["delete", "configmap", "theirs", "--timeout=30s"])
        .await
        .ok();
    eventually("Flotilla's copy gone from m3", || async {
        federation
            .member_object("m3", &["configmap/theirs"])
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let theirs = federation.member_object("m1", &["configmap/theirs"]).await;
    assert!(
        theirs.is_some(),
        "the cascade deleted an object Flotilla did not create"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_selectors_place_and_relabelling_moves() {
    let federation = Federation::start(MEMBERS).await;
    let selector = r#"[{"key": "region", "operator": "In", "values": ["eu"]}]"#;
    let annotations = format!("{{federation.alpha.kubernetes.io/cluster-selector: '{selector}'}}");
    federation
        .apply(&deployment("eu-only", 4, &annotations))
        .await
        .ok();
    eventually("eu-only on m1 and m3 only", || async {
        let replicas = federation.replicas("deployment/eu-only", "/spec/replicas").await;
        (replicas == vec![Some(2), None, Some(2)]).then_some(())
    })
    .await;
    federation
        .kubectl(&["label", "cluster", "m2", "region=eu", "--overwrite"])
        .await
        .ok();
    federation
        .kubectl(&["label", "cluster", "m1", "region=us", "--overwrite"])
        .await
        .ok();
    eventually("eu-only moved to m2 and m3", || async {
        let replicas = federation.replicas("deployment/eu-only", "/spec/replicas").await;
        (replicas[0].is_none()
            && replicas[1].is_some()
            && replicas[2].is_some()
            && replicas.iter().flatten().sum::<i64>() == 4)
            .then_some(())
    })
    .await;
}

/// A member that dies keeps its copies; its replicas run elsewhere meanwhile and come back with it. Deletions
/// made while it is away do not wait for it, and happen when it is back: a cascading one deletes its copy, an
/// orphaning one leaves the copy there, released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_members_replicas_move_and_come_back() {
    let mut federation = Federation::start(MEMBERS).await;
    let annotations = r#"{federation.kubernetes.io/deployment-preferences: '{"rebalance": true, "clusters": {"*": {"weight": 1}}}'}"#;
    federation.apply(&deployment("web", 6, annotations)).await.ok();
    federation
        .apply(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deleted-while-away}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: orphaned-while-away}\n",
        )
        .await
        .ok();
    eventually("2/2/2 and the ConfigMaps in m2", || async {
        (federation.replicas("deployment/web", "/spec/replicas").await == vec![Some(2), Some(2), Some(2)])
            .then_some(())?;
        federation
            .member_object("m2", &["configmap/deleted-while-away"])
            .await?;
        federation
            .member_object("m2", &["configmap/orphaned-while-away"])
            .await?;
        Some(())
    })
    .await;
    let dir = federation.path().to_owned();
    federation.members[1].kill().await;
    eventually("m1 and m3 to run all six", || async {
        let m1 = federation.member_object("m1", &["deployment/web"]).await?;
        let m3 = federation.member_object("m3", &["deployment/web"]).await?;
        let sum = m1["spec"]["replicas"].as_i64()? + m3["spec"]["replicas"].as_i64()?;
        (sum == 6).then_some(())
    })
    .await;
    federation
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await
        .ok();
    // m2 is away: neither deletion waits for it (kubectl waits for the object to be gone).
    federation
        .kubectl(&["delete", "configmap", "deleted-while-away", "--timeout=20s"])
        .await
        .ok();
    federation
        .kubectl(&[
            "delete",
            "configmap",
            "orphaned-while-away",
            "--cascade=orphan",
            "--timeout=20s",
        ])
        .await
        .ok();
    assert!(
        federation
            .member_object("m1", &["configmap/deleted-while-away"])
            .await
            .is_none()
    );
    let released = federation
        .member_object("m1", &["configmap/orphaned-while-away"])
        .await;
    assert!(
        released.as_ref().unwrap()["metadata"]["labels"][MANAGED_LABEL].is_null(),
        "{released:?}"
    );
    federation.members[1].restart(&dir).await;
    eventually("2/2/2 again", || async {
        (federation.replicas("deployment/web", "/spec/replicas").await == vec![Some(2), Some(2), Some(2)])
            .then_some(())
    })
    .await;
    eventually("m2's copies deleted and released", || async {
        if federation
            .member_object("m2", &["configmap/deleted-while-away"])
            .await
            .is_some()
        {
            return None;
        }
        let kept = federation
            .member_object("m2", &["configmap/orphaned-while-away"])
            .await?;
        kept["metadata"]["labels"][MANAGED_LABEL].is_null().then_some(())
    })
    .await;
    // Nothing is left to remember.
    eventually("the orphan record dropped", || async {
        let out = federation
            .kubectl(&[
                "get",
                "configmaps",
                "-n",
                "federation-system",
                "-l",
                &format!("{RECORD_LABEL}=true"),
                "-o",
                "name",
            ])
            .await
            .ok();
        out.stdout.trim().is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_short_of_capacity_gets_its_overflow_moved() {
    // m1 can make only 2 pods ready: once they stay short past the capacity timeout (2 s here), its share is
    // capped and the rest placed on the others, as federation v1's estimated capacity did.
    let federation = Federation::start_with(MEMBERS, |name| {
        if name == "m1" {
            vec!["--capacity", "2"]
        } else {
            vec![]
        }
    })
    .await;
    let preferences = r#"{"rebalance": true, "clusters": {"m1": {"weight": 4}, "*": {"weight": 1}}}"#;
    let annotations = format!("{{federation.kubernetes.io/deployment-preferences: '{preferences}'}}");
    federation.apply(&deployment("big", 12, &annotations)).await.ok();
    let clusters: Vec<String> = MEMBERS.iter().map(|(n, _)| (*n).to_owned()).collect();
    let parsed = Preferences::parse(preferences).unwrap();
    let capped = planner::plan(
        &parsed,
        12,
        &clusters,
        &BTreeMap::new(),
        &BTreeMap::from([("m1".to_owned(), 2)]),
        "default/big",
    );
    let expected: Vec<Option<i64>> = clusters
        .iter()
        .map(|c| Some(capped.replicas[c] + capped.overflow.get(c).copied().unwrap_or(0)))
        .collect();
    eventually("the overflow placed on m2 and m3", || async {
        (federation.replicas("deployment/big", "/spec/replicas").await == expected).then_some(())
    })
    .await;
    let ready: i64 = federation
        .replicas("deployment/big", "/status/readyReplicas")
        .await
        .iter()
        .flatten()
        .sum();
    assert!(ready >= 2, "{ready}");
    let placed_elsewhere = capped.replicas["m2"] + capped.replicas["m3"];
    assert_eq!(placed_elsewhere, 10, "{capped:?}");
}

/// Copies of a type the federation holds nothing of are not watched, but a member that joins with copies left
/// from an earlier life of the federation has them looked at once: Flotilla's go, anything else stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_left_behind_of_an_unused_type_are_swept_when_a_member_joins() {
    let federation = Federation::start(&[("m1", "region=eu")]).await;
    let late = common::Member::start("late", federation.path(), &[]).await;
    let in_late = |args: Vec<&str>, stdin: Option<&str>| {
        let kubeconfig = late.kubeconfig.clone();
        let dir = federation.path().to_owned();
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let stdin = stdin.map(str::to_owned);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            flotilla_conformance_tests::kubectl_at(
                &kubeconfig,
                &dir,
                common::KUBECTL,
                &args,
                stdin.as_deref(),
                &[],
            )
            .await
            .unwrap()
        }
    };
    let leftovers = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: stale, namespace: default, labels: {federation.flotilla.io/managed: "true"}}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: owned-by-the-member, namespace: default}
rules: []
"#;
    in_late(vec!["apply", "-f", "-"], Some(leftovers)).await.ok();
    let out = common::flotilla(&[
        "join",
        "late",
        "--kubeconfig",
        federation.kubeconfig.to_str().unwrap(),
        "--cluster-kubeconfig",
        late.kubeconfig.to_str().unwrap(),
    ])
    .await;
    assert!(out.success, "{}", out.stderr);
    eventually("the stale copy swept from the late member", || async {
        let out = in_late(vec!["get", "role", "stale", "-o", "name"], None).await;
        (!out.success).then_some(())
    })
    .await;
    in_late(vec!["get", "role", "owned-by-the-member"], None)
        .await
        .ok();
}
