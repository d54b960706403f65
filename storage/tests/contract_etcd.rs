//! The store contract suite on a real etcd, plus etcd outages in the middle of a watch.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use flotilla_storage::etcd::{EtcdConfig, EtcdStore};
use flotilla_storage::testing::EtcdServer;
use flotilla_storage::{Error, Revision, Store, WatchEvent};
use futures::StreamExt;

struct Fixture {
    store: EtcdStore,
    _etcd: EtcdServer,
}

async fn fixture() -> Fixture {
    let etcd = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap()
        .expect("start etcd");
    let store = EtcdStore::connect(&EtcdConfig::new([etcd.endpoint()]))
        .await
        .expect("connect to etcd");
    Fixture { store, _etcd: etcd }
}

flotilla_storage::store_contract_tests!(fixture);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_an_etcd_restart_losing_nothing() {
    let mut etcd = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap()
        .expect("start etcd");
    let mut config = EtcdConfig::new([etcd.endpoint()]);
    config.request_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_millis(500);
    let store = EtcdStore::connect(&config).await.unwrap();
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch("/t/", start).await.unwrap();
    let mut acknowledged = BTreeSet::new();
    for i in 0..100 {
        acknowledged.insert(
            store
                .create(&format!("/t/before-{i:03}"), Bytes::from("x"))
                .await
                .unwrap(),
        );
    }

    etcd = tokio::task::spawn_blocking(move || {
        etcd.stop();
        etcd
    })
    .await
    .unwrap();
    let err = store.create("/t/while-down", Bytes::from("x")).await.unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { .. }),
        "a call while etcd is down is Unavailable: {err:?}"
    );
    let store = &store;
    let reads = (0..8).map(|i| async move { store.get(&format!("/t/before-{i:03}")).await });
    for result in futures::future::join_all(reads).await {
        let err = result.unwrap_err();
        assert!(
            matches!(err, Error::Unavailable { .. }),
            "a GET while etcd is down: {err:?}"
        );
    }

    let etcd = tokio::task::spawn_blocking(move || {
        etcd.start_again().expect("restart etcd");
        etcd
    })
    .await
    .unwrap();
    // The client reconnects on its own; the first calls may still race the reconnection.
    let mut i = 0;
    while i < 100 {
        match store.create(&format!("/t/after-{i:03}"), Bytes::from("y")).await {
            Ok(revision) => {
                acknowledged.insert(revision);
                i += 1;
            }
            Err(Error::Unavailable { .. }) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(Error::AlreadyExists { .. }) => i += 1, // acknowledged by etcd, lost by the broken connection
            Err(err) => panic!("{err:?}"),
        }
    }
    let last = store.current_revision().await.unwrap();
    let mut seen = Vec::new();
    while seen.last().copied().unwrap_or(Revision::ZERO) < last {
        let event = tokio::time::timeout(Duration::from_secs(30), watch.next()).await;
        match event
            .expect("watch resumes")
            .expect("watch open")
            .expect("no watch error")
        {
            WatchEvent::Put { kv, .. } => seen.push(kv.mod_revision),
            WatchEvent::Delete { .. } => panic!("nothing was deleted"),
            WatchEvent::Progress { .. } => {}
        }
    }
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "in order, no duplicates"
    );
    let seen: BTreeSet<Revision> = seen.into_iter().collect();
    assert!(
        acknowledged.is_subset(&seen),
        "every acknowledged write reached the watch"
    );
    assert_eq!(
        seen.len() as i64,
        last.get() - start.get(),
        "no gap: one event per revision"
    );
    drop(etcd);
}
