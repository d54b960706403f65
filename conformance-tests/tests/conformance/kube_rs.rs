//! kube-rs (the Rust client the controller manager builds on) against the apiserver: aggregated discovery,
//! create, get, list with selectors, merge and strategic patches, the runtime watcher, delete.

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla_conformance_tests::{Backend, TestApiserver};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;

crate::on_both_backends!(kube_rs_discovers_creates_patches_and_watches);

pub(crate) async fn client(server: &TestApiserver) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(&server.kubeconfig).expect("read the kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).expect("a kube client")
}

fn configmap(name: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.to_owned());
    cm.metadata.labels = Some(BTreeMap::from([("app".to_owned(), "kube-rs".to_owned())]));
    cm.data = Some(BTreeMap::from([("a".to_owned(), "1".to_owned())]));
    cm
}

async fn kube_rs_discovers_creates_patches_and_watches(backend: Backend) {
    let server = TestApiserver::start(backend).await.unwrap();
    let client = client(&server).await;

    let version = client.apiserver_version().await.unwrap();
    assert_eq!((version.major.as_str(), version.minor.as_str()), ("1", "33"));
    let discovery = kube::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    let apps = discovery
        .groups()
        .find(|group| group.name() == "apps")
        .expect("the apps group");
    assert!(
        apps.recommended_resources()
            .iter()
            .any(|(resource, _)| resource.kind == "Deployment")
    );

    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    // The watcher first, so that it sees the create.
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let created = api
        .create(&PostParams::default(), &configmap("from-kube-rs"))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    let conflict = api
        .create(&PostParams::default(), &configmap("from-kube-rs"))
        .await
        .unwrap_err();
    assert!(
        matches!(conflict, kube::Error::Api(ref status) if status.code == 409),
        "{conflict:?}"
    );

    let listed = api
        .list(&ListParams::default().labels("app=kube-rs"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let merged = serde_json::json!({"data": {"b": "2"}});
    api.patch("from-kube-rs", &PatchParams::default(), &Patch::Merge(&merged))
        .await
        .unwrap();
    let strategic = serde_json::json!({"metadata": {"labels": {"patched": "yes"}}});
    let patched = api
        .patch(
            "from-kube-rs",
            &PatchParams::default(),
            &Patch::Strategic(&strategic),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap().get("b").map(String::as_str), Some("2"));
    assert_eq!(
        patched
            .metadata
            .labels
            .unwrap()
            .get("patched")
            .map(String::as_str),
        Some("yes")
    );

    // Server-side apply, as controllers and GitOps tools built on kube-rs send it: created, then owned.
    let applied = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "applied-by-kube-rs"}, "data": {"owner": "kube-rs"}});
    let object = api
        .patch(
            "applied-by-kube-rs",
            &PatchParams::apply("kube-rs-test"),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap();
    let entries = object.metadata.managed_fields.unwrap_or_default();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].manager.as_deref(), Some("kube-rs-test"));
    assert_eq!(entries[0].operation.as_deref(), Some("Apply"));
    let other = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "applied-by-kube-rs"}, "data": {"owner": "someone-else"}});
    let conflict = api
        .patch(
            "applied-by-kube-rs",
            &PatchParams::apply("other"),
            &Patch::Apply(&other),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(conflict, kube::Error::Api(ref status) if status.code == 409 && status.reason == "Conflict"),
        "{conflict:?}"
    );
    let forced = api
        .patch(
            "applied-by-kube-rs",
            &PatchParams::apply("other").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    let current = forced.metadata.resource_version.clone().unwrap();
    assert_eq!(
        forced.data.unwrap().get("owner").map(String::as_str),
        Some("someone-else")
    );
    // A resourceVersion in the configuration is a precondition.
    let stale = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "applied-by-kube-rs", "resourceVersion": "1"}, "data": {"owner": "other"}});
    let refused = api
        .patch(
            "applied-by-kube-rs",
            &PatchParams::apply("other"),
            &Patch::Apply(&stale),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, kube::Error::Api(ref status) if status.code == 409 && status.message.contains("has been modified")),
        "{refused:?}"
    );
    let fresh = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "applied-by-kube-rs", "resourceVersion": current}, "data": {"owner": "other", "k": "v"}});
    api.patch(
        "applied-by-kube-rs",
        &PatchParams::apply("other"),
        &Patch::Apply(&fresh),
    )
    .await
    .expect("the current resourceVersion passes");

    let saw_patched = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.next().await {
            if let watcher::Event::Apply(cm) | watcher::Event::InitApply(cm) = event.expect("watcher event")
                && cm
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("patched"))
                    .is_some()
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(saw_patched, Ok(true), "the watcher sees the patched object");

    api.delete("from-kube-rs", &DeleteParams::default())
        .await
        .unwrap();
    let gone = api.get("from-kube-rs").await.unwrap_err();
    assert!(
        matches!(gone, kube::Error::Api(ref status) if status.code == 404),
        "{gone:?}"
    );
}
