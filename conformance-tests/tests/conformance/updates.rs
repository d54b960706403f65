//! Updates and deletes start from the watch cache's copy of their object (one storage round trip, as
//! kube-apiserver's), yet act on the latest object when that copy is behind: here another writer (as another
//! apiserver replica would) writes straight to etcd, and the apiserver's updates and deletes race its watch.

use std::collections::BTreeMap;

use flotilla_conformance_tests::{Backend, TestApiserver};
use flotilla_storage::Store;
use flotilla_storage::etcd::{EtcdConfig, EtcdStore};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{Value, json};

const KEY: &str = "/registry/configmaps/default/a";
/// Rounds to make at least, and at most while the cache has not yet been caught behind by both an update and a
/// delete.
const ROUNDS: (usize, usize) = (50, 2000);

/// A write behind the apiserver's back: sets `data.<field>` in the stored object at `key`, as a compare-and-swap.
async fn write_directly(etcd: &EtcdStore, key: &str, field: &str, value: &str) -> i64 {
    loop {
        let kv = etcd.get(key).await.expect("the stored object");
        let mut stored: Value = serde_json::from_slice(&kv.value).unwrap();
        stored["data"][field] = json!(value);
        let bytes = serde_json::to_vec(&stored).unwrap().into();
        match etcd.update(key, bytes, kv.mod_revision).await {
            Ok(revision) => return revision.get(),
            Err(flotilla_storage::Error::Conflict { .. }) => continue,
            Err(err) => panic!("direct write: {err}"),
        }
    }
}

/// `flotilla_apiserver_write_retries_total{verb="…",reason="…"}`.
async fn retries(server: &TestApiserver, verb: &str, reason: &str) -> u64 {
    let metrics = server.curl(&["/metrics"]).await.unwrap().body;
    let series = format!("flotilla_apiserver_write_retries_total{{verb=\"{verb}\",reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_deletes_act_on_the_latest_object_when_the_watch_cache_is_behind() {
    let server = TestApiserver::start(Backend::Etcd).await.unwrap();
    let etcd = EtcdStore::connect(&EtcdConfig::new([server.etcd_endpoint().unwrap()]))
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(crate::kube_rs::client(&server).await);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("a".to_owned());
    cm.data = Some(BTreeMap::from([("k".to_owned(), "0".to_owned())]));
    api.create(&PostParams::default(), &cm).await.unwrap();

    let mut round = 0;
    // Until both an update and a delete have met a copy that was behind (else nothing here tested one).
    let exercised = async |server: &TestApiserver| {
        retries(server, "UPDATE", "stale_cache").await > 0
            && retries(server, "DELETE", "recheck").await + retries(server, "DELETE", "stale_cache").await > 0
    };
    while round < ROUNDS.0 || (round < ROUNDS.1 && !exercised(&server).await) {
        let i = round.to_string();
        // An update naming the revision another writer just made is not refused as stale.
        let revision = write_directly(&etcd, KEY, "direct", &i).await;
        let mut wanted = cm.clone();
        wanted.metadata.resource_version = Some(revision.to_string());
        wanted.data = Some(BTreeMap::from([("k".to_owned(), i.clone())]));
        let replaced = api
            .replace("a", &PostParams::default(), &wanted)
            .await
            .unwrap_or_else(|err| panic!("round {round}: replace at {revision}: {err}"));
        assert_eq!(replaced.data.unwrap()["k"], i);
        // A patch racing another writer: neither write is lost.
        let patch = Patch::Merge(json!({"data": {"patched": i}}));
        let params = PatchParams::default();
        let (patched, _) = tokio::join!(
            api.patch("a", &params, &patch),
            write_directly(&etcd, KEY, "raced", &i),
        );
        patched.unwrap_or_else(|err| panic!("round {round}: patch: {err}"));
        let data = api.get("a").await.unwrap().data.unwrap();
        assert_eq!(
            (data["patched"].as_str(), data["raced"].as_str()),
            (i.as_str(), i.as_str()),
            "round {round}"
        );
        // A delete whose precondition names the revision another writer just made goes through.
        let name = format!("d{round}");
        let mut doomed = cm.clone();
        doomed.metadata.name = Some(name.clone());
        api.create(&PostParams::default(), &doomed).await.unwrap();
        let revision = write_directly(
            &etcd,
            &format!("/registry/configmaps/default/{name}"),
            "direct",
            &i,
        )
        .await;
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(revision.to_string()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        api.delete(&name, &params)
            .await
            .unwrap_or_else(|err| panic!("round {round}: delete at {revision}: {err}"));
        assert!(
            api.get_opt(&name).await.unwrap().is_none(),
            "round {round}: {name} is still there"
        );
        round += 1;
    }
    assert!(
        exercised(&server).await,
        "in {round} rounds, the watch cache was never behind an update and a delete"
    );
    let mut counts = Vec::new();
    for verb in ["UPDATE", "DELETE"] {
        for reason in ["stale_cache", "recheck", "conflict"] {
            counts.push(format!(
                "{verb} {reason} {}",
                retries(&server, verb, reason).await
            ));
        }
    }
    eprintln!("{round} rounds; retries: {}", counts.join(", "));
}
