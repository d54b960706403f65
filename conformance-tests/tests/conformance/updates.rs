//! Updates start from the watch cache's copy of their object (one storage round trip, as kube-apiserver's), yet act
//! on the latest object when that copy is behind: here another writer (as another apiserver replica would) writes
//! straight to etcd, and the apiserver's updates race its watch.

use std::collections::BTreeMap;

use flotilla_conformance_tests::{Backend, TestApiserver};
use flotilla_storage::Store;
use flotilla_storage::etcd::{EtcdConfig, EtcdStore};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const KEY: &str = "/registry/configmaps/default/a";
/// Rounds to make at least, and at most while the cache has not yet been caught behind.
const ROUNDS: (usize, usize) = (50, 2000);

/// A write behind the apiserver's back: sets `data.<field>` in the stored object, as a compare-and-swap.
async fn write_directly(etcd: &EtcdStore, field: &str, value: &str) -> i64 {
    loop {
        let kv = etcd.get(KEY).await.expect("the stored object");
        let mut stored: Value = serde_json::from_slice(&kv.value).unwrap();
        stored["data"][field] = json!(value);
        let bytes = serde_json::to_vec(&stored).unwrap().into();
        match etcd.update(KEY, bytes, kv.mod_revision).await {
            Ok(revision) => return revision.get(),
            Err(flotilla_storage::Error::Conflict { .. }) => continue,
            Err(err) => panic!("direct write: {err}"),
        }
    }
}

/// `flotilla_apiserver_update_retries_total{reason="…"}`.
async fn retries(server: &TestApiserver, reason: &str) -> u64 {
    let metrics = server.curl(&["/metrics"]).await.unwrap().body;
    let series = format!("flotilla_apiserver_update_retries_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_act_on_the_latest_object_when_the_watch_cache_is_behind() {
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
    while round < ROUNDS.0 || (round < ROUNDS.1 && retries(&server, "stale_cache").await == 0) {
        let i = round.to_string();
        // An update naming the revision another writer just made is not refused as stale.
        let revision = write_directly(&etcd, "direct", &i).await;
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
            write_directly(&etcd, "raced", &i),
        );
        patched.unwrap_or_else(|err| panic!("round {round}: patch: {err}"));
        let data = api.get("a").await.unwrap().data.unwrap();
        assert_eq!(
            (data["patched"].as_str(), data["raced"].as_str()),
            (i.as_str(), i.as_str()),
            "round {round}"
        );
        round += 1;
    }
    // Else nothing above tested a copy that was behind.
    assert!(
        retries(&server, "stale_cache").await > 0,
        "the watch cache was never behind in {round} rounds"
    );
    eprintln!(
        "{round} rounds; retries: stale_cache {}, recheck {}, conflict {}",
        retries(&server, "stale_cache").await,
        retries(&server, "recheck").await,
        retries(&server, "conflict").await
    );
}
